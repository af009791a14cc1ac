//! UDP (and SCTP) listeners in the kernel: the nftables ruleset that forwards a load balancer's
//! UDP listeners to their members. Octavia serves these protocols with keepalived's LVS (IPVS);
//! rocta's kernels have no IPVS, and nftables does the same job (kube-proxy's newest backend
//! made the same move): each listener's first packet of a flow is DNAT'ed to a member chosen by
//! the pool's algorithm, conntrack keeps the flow on that member, and the reply is
//! masqueraded through the amphora (as Octavia's LVS NAT mode with its masquerade rule), so
//! members need no route back to the client. No per-packet user-space work.
//!
//! Two steps, both pure: [`service`] picks from a load balancer's desired state what the
//! amphora forwards (the controller sends it to the agent as JSON), and [`render`] turns it,
//! with the members the agent's monitors find alive, into one `nft -f` file that replaces the
//! load balancer's table in one transaction: flows already tracked keep their member.
//!
//! Algorithms: `ROUND_ROBIN` (`numgen inc`), `SOURCE_IP` (`jhash` of the source address),
//! `SOURCE_IP_PORT` (`jhash` of address and port), each member weighted by repeating it in the
//! map (weights divided by their greatest common divisor); `LEAST_CONNECTIONS` cannot be done
//! without counting connections per member and is refused. `SOURCE_IP` session persistence
//! hashes the source address under `persistence_granularity`'s mask (a client stays on its
//! member while the live members stay the same). Backup members serve only when no other
//! member is alive; a member with weight 0 takes no new flows.

use std::fmt::Write;

use rocta_model::*;
use serde::{Deserialize, Serialize};

/// What an amphora forwards in the kernel for one load balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpService {
    pub lb_id: Id,
    pub vip: String,
    pub listeners: Vec<UdpListener>,
}

/// An enabled UDP or SCTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpListener {
    pub id: Id,
    pub protocol: ListenerProtocol,
    pub port: u16,
    /// Its default pool when enabled; without one the listener drops what it receives.
    pub pool: Option<UdpPool>,
}

/// An enabled pool of a UDP or SCTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpPool {
    pub id: Id,
    pub algorithm: LbAlgorithm,
    /// `SOURCE_IP` session persistence: the mask of the source address (from
    /// `persistence_granularity`; `None`: the whole address).
    pub persistence: Option<Option<String>>,
    /// The enabled members.
    pub members: Vec<UdpMember>,
    /// Its enabled health monitor, run by the agent; none: every enabled member serves.
    #[serde(default)]
    pub monitor: Option<UdpMonitor>,
}

/// A UDP pool's health monitor (Octavia's UDP-CONNECT, HTTP, TCP and PING for LVS pools).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpMonitor {
    pub kind: HealthMonitorType,
    /// Seconds between checks of a member.
    pub delay: i64,
    /// Seconds a check may take.
    pub timeout: i64,
    /// Successes in a row that bring a member up.
    pub rise: i64,
    /// Failures in a row that take a member down.
    pub fall: i64,
    pub http_method: Option<HttpMethod>,
    pub url_path: Option<String>,
    pub expected_codes: Option<String>,
}

/// An enabled member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpMember {
    pub id: Id,
    pub address: String,
    pub port: u16,
    pub weight: u16,
    pub backup: bool,
    /// Where the monitor checks it (`monitor_address` / `monitor_port`; none: its own).
    #[serde(default)]
    pub monitor_address: Option<String>,
    #[serde(default)]
    pub monitor_port: Option<u16>,
}

/// Why a service cannot be rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum NftError {
    /// The pool's algorithm needs state nftables does not keep.
    Unsupported(String),
    /// An address that is not one of the VIP's family.
    BadAddress(String),
}

impl std::fmt::Display for NftError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NftError::Unsupported(m) | NftError::BadAddress(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for NftError {}

/// The named counters of each listener (`<kind>_<listener id without dashes>`): flows
/// forwarded, bytes received from clients, bytes sent back to them.
pub const COUNTERS: [&str; 3] = ["flows", "rx", "tx"];

/// The nftables table of load balancer `lb` (in the amphora's namespace).
pub fn table_name(lb: Id) -> String {
    format!("rocta_{}", lb.simple())
}

/// The UDP and SCTP part of a load balancer's desired state: its enabled listeners with their
/// enabled default pools and members. `None` when there is nothing to forward (no such
/// listener, or the load balancer is disabled).
pub fn service(t: &LbTree) -> Option<UdpService> {
    let lb = t.loadbalancer.as_ref().filter(|lb| lb.admin_state_up)?;
    let vip = lb.vip_address.clone()?;
    let listeners: Vec<UdpListener> = t
        .listeners
        .iter()
        .filter(|l| l.admin_state_up && l.protocol.is_lvs())
        .map(|l| UdpListener {
            id: l.id,
            protocol: l.protocol,
            port: l.protocol_port,
            pool: l
                .default_pool_id
                .and_then(|p| t.pools.iter().find(|x| x.id == p && x.admin_state_up))
                .map(|p| UdpPool {
                    id: p.id,
                    algorithm: p.lb_algorithm,
                    persistence: p
                        .session_persistence
                        .as_ref()
                        .filter(|s| s.kind == PersistenceType::SourceIp)
                        .map(|s| s.persistence_granularity.clone()),
                    members: t
                        .members
                        .iter()
                        .filter(|m| m.pool_id == p.id && m.admin_state_up)
                        .map(|m| UdpMember {
                            id: m.id,
                            address: m.address.clone(),
                            port: m.protocol_port,
                            weight: m.weight,
                            backup: m.backup,
                            monitor_address: m.monitor_address.clone(),
                            monitor_port: m.monitor_port,
                        })
                        .collect(),
                    monitor: t
                        .health_monitors
                        .iter()
                        .find(|h| h.pool_id == p.id && h.admin_state_up)
                        .map(|h| UdpMonitor {
                            kind: h.kind,
                            delay: h.delay,
                            timeout: h.timeout,
                            rise: h.max_retries,
                            fall: h.max_retries_down,
                            http_method: h.http_method,
                            url_path: h.url_path.clone(),
                            expected_codes: h.expected_codes.clone(),
                        }),
                }),
        })
        .collect();
    (!listeners.is_empty()).then_some(UdpService {
        lb_id: lb.id,
        vip,
        listeners,
    })
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The members that take new flows: the live primaries with a weight, else the live backups.
fn serving<'a>(p: &'a UdpPool, up: &dyn Fn(Id) -> bool) -> Vec<&'a UdpMember> {
    let live = |backup: bool| -> Vec<&UdpMember> {
        p.members
            .iter()
            .filter(|m| m.backup == backup && m.weight > 0 && up(m.id))
            .collect()
    };
    let primaries = live(false);
    if primaries.is_empty() {
        live(true)
    } else {
        primaries
    }
}

/// `address . port` as nftables writes a concatenation (IPv6 addresses in brackets are not
/// needed there).
fn target(m: &UdpMember) -> String {
    format!("{} . {}", m.address, m.port)
}

/// The statement of a listener's chain that picks a member of its pool.
fn dispatch(l: &UdpListener, family: &str, up: &dyn Fn(Id) -> bool) -> Result<String, NftError> {
    let Some(pool) = &l.pool else {
        return Ok("drop".into());
    };
    if pool.algorithm == LbAlgorithm::LeastConnections {
        return Err(NftError::Unsupported(format!(
            "pool {}: LEAST_CONNECTIONS is not supported for {} pools: rocta forwards them in \
             the kernel with nftables, which keeps no connection count per member; use \
             ROUND_ROBIN, SOURCE_IP or SOURCE_IP_PORT.",
            pool.id,
            l.protocol.as_str()
        )));
    }
    let members = serving(pool, up);
    for m in &members {
        let v6 = m.address.contains(':');
        if v6 != (family == "ip6") || m.address.parse::<std::net::IpAddr>().is_err() {
            return Err(NftError::BadAddress(format!(
                "member {}: address {} is not an {} address like the VIP's",
                m.id,
                m.address,
                if family == "ip6" { "IPv6" } else { "IPv4" }
            )));
        }
    }
    // nftables maps ports only after a transport protocol match.
    let proto = l.protocol.as_str().to_ascii_lowercase();
    match members.as_slice() {
        [] => return Ok("drop".into()),
        [one] => {
            let addr = if family == "ip6" {
                format!("[{}]", one.address)
            } else {
                one.address.clone()
            };
            return Ok(format!("meta l4proto {proto} dnat to {addr}:{}", one.port));
        }
        _ => {}
    }
    let g = members
        .iter()
        .fold(0u32, |g, m| gcd(g, u32::from(m.weight)))
        .max(1);
    let mut slots: Vec<&UdpMember> = Vec::new();
    for m in &members {
        slots.extend(std::iter::repeat_n(*m, (u32::from(m.weight) / g) as usize));
    }
    let saddr = match &pool.persistence {
        Some(Some(mask)) => format!("{family} saddr & {mask}"),
        _ => format!("{family} saddr"),
    };
    let pick = match (pool.persistence.is_some(), pool.algorithm) {
        (true, _) | (false, LbAlgorithm::SourceIp) => format!("jhash {saddr}"),
        (false, LbAlgorithm::SourceIpPort) => format!("jhash {saddr} . {proto} sport"),
        _ => "numgen inc".into(),
    };
    let map: Vec<String> = slots
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{i} : {}", target(m)))
        .collect();
    Ok(format!(
        "meta l4proto {proto} dnat to {pick} mod {} map {{ {} }}",
        slots.len(),
        map.join(", ")
    ))
}

/// The `nft -f` file that makes the load balancer's table exactly `s` (created if missing,
/// replaced whole in one transaction), with `up` saying which members the monitors find
/// alive.
pub fn render(s: &UdpService, up: &dyn Fn(Id) -> bool) -> Result<String, NftError> {
    let v6 = s.vip.contains(':');
    let family = if v6 { "ip6" } else { "ip" };
    if s.vip.parse::<std::net::IpAddr>().is_err() {
        return Err(NftError::BadAddress(format!(
            "VIP {} is not an address",
            s.vip
        )));
    }
    let table = table_name(s.lb_id);
    let mut c = String::new();
    let ids: Vec<String> = s
        .listeners
        .iter()
        .map(|l| l.id.simple().to_string())
        .collect();
    let _ = writeln!(
        c,
        "# Rendered by rocta for load balancer {}; do not edit.",
        s.lb_id
    );
    // Declaring the table first makes the delete succeed when it does not exist yet; the
    // three commands are one transaction.
    let _ = writeln!(c, "table {family} {table}\ndelete table {family} {table}");
    let _ = writeln!(c, "table {family} {table} {{");
    // Per listener: flows (the first packet of each, which the nat chain sees), and bytes in
    // and out of every packet of its flows (the forward chain sees them all).
    for id in &ids {
        for k in COUNTERS {
            let _ = writeln!(c, "\tcounter {k}_{id} {{\n\t}}");
        }
    }
    c.push_str(
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n",
    );
    for (l, id) in s.listeners.iter().zip(&ids) {
        let proto = l.protocol.as_str().to_ascii_lowercase();
        let _ = writeln!(
            c,
            "\t\t{family} daddr {} {proto} dport {} counter name flows_{id} jump listener_{id}",
            s.vip, l.port,
        );
    }
    c.push_str("\t}\n");
    c.push_str(
        "\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n",
    );
    for (l, id) in s.listeners.iter().zip(&ids) {
        let proto = l.protocol.as_str().to_ascii_lowercase();
        for (dir, k) in [("original", "rx"), ("reply", "tx")] {
            let _ = writeln!(
                c,
                "\t\tct original {family} daddr {} ct original protocol {proto} ct original proto-dst {} ct direction {dir} counter name {k}_{id}",
                s.vip, l.port,
            );
        }
    }
    c.push_str("\t}\n");
    for l in &s.listeners {
        let _ = writeln!(
            c,
            "\n\tchain listener_{} {{\n\t\t{}\n\t}}",
            l.id.simple(),
            dispatch(l, family, up)?
        );
    }
    let _ = writeln!(
        c,
        "\n\tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tct status dnat ct original {family} daddr {} masquerade\n\t}}\n}}",
        s.vip
    );
    Ok(c)
}

/// The `nft -f` file that removes the load balancer's tables (whether or not they exist).
pub fn render_delete(lb: Id) -> String {
    let table = table_name(lb);
    ["ip", "ip6"]
        .map(|f| format!("table {f} {table}\ndelete table {f} {table}\n"))
        .concat()
}

#[cfg(test)]
mod tests;
