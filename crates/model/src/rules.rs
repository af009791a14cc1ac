//! Octavia's compatibility rules between resources.

use crate::enums::{HealthMonitorType, ListenerProtocol, PoolProtocol};

/// `VALID_LISTENER_POOL_PROTOCOL_MAP`: which pool protocols a listener may use.
pub fn listener_accepts_pool(listener: ListenerProtocol, pool: PoolProtocol) -> bool {
    use ListenerProtocol as L;
    use PoolProtocol as P;
    match listener {
        L::Http | L::TerminatedHttps => matches!(pool, P::Http | P::Proxy | P::ProxyV2),
        L::Https => matches!(pool, P::Https | P::Proxy | P::ProxyV2 | P::Tcp),
        L::Tcp => matches!(pool, P::Http | P::Https | P::Proxy | P::ProxyV2 | P::Tcp),
        L::Udp => pool == P::Udp,
        L::Sctp => pool == P::Sctp,
        L::Prometheus => false,
    }
}

/// Health-monitor type allowed on a pool of this protocol.
pub fn pool_accepts_monitor(pool: PoolProtocol, hm: HealthMonitorType) -> bool {
    use HealthMonitorType as H;
    if pool.is_lvs() {
        matches!(hm, H::UdpConnect | H::Sctp | H::Tcp | H::Http)
    } else {
        !matches!(hm, H::UdpConnect | H::Sctp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_matrix_matches_octavia() {
        assert!(listener_accepts_pool(
            ListenerProtocol::Http,
            PoolProtocol::Http
        ));
        assert!(!listener_accepts_pool(
            ListenerProtocol::Http,
            PoolProtocol::Tcp
        ));
        assert!(listener_accepts_pool(
            ListenerProtocol::Tcp,
            PoolProtocol::Https
        ));
        assert!(!listener_accepts_pool(
            ListenerProtocol::Udp,
            PoolProtocol::Tcp
        ));
        for p in PoolProtocol::ALL {
            assert!(!listener_accepts_pool(ListenerProtocol::Prometheus, *p));
        }
    }

    #[test]
    fn monitor_rules_match_octavia() {
        assert!(pool_accepts_monitor(
            PoolProtocol::Udp,
            HealthMonitorType::UdpConnect
        ));
        assert!(!pool_accepts_monitor(
            PoolProtocol::Udp,
            HealthMonitorType::Ping
        ));
        assert!(!pool_accepts_monitor(
            PoolProtocol::Http,
            HealthMonitorType::Sctp
        ));
    }
}
