//! `[keepalived_vrrp]`: the VRRP of ACTIVE_STANDBY pairs (Octavia's option names).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepalivedVrrp {
    /// Seconds between VRRP advertisements (VRRPv3: down to 0.01). Octavia's default is 1,
    /// which takes about 3 s to move the VIP when the MASTER dies; rocta's 0.2 takes < 1 s.
    pub vrrp_advert_int: f64,
    /// Seconds between runs of the check script that follows HAProxy's health.
    pub vrrp_check_interval: f64,
    /// Failed checks before the amphora gives up the VIP.
    pub vrrp_fail_count: u32,
    /// Successful checks before it may hold it again.
    pub vrrp_success_count: u32,
    /// Seconds between gratuitous ARPs of the MASTER.
    pub vrrp_garp_refresh_interval: u32,
    /// Gratuitous ARPs sent each time.
    pub vrrp_garp_refresh_count: u32,
}

impl Default for KeepalivedVrrp {
    fn default() -> Self {
        KeepalivedVrrp {
            vrrp_advert_int: 0.2,
            vrrp_check_interval: 1.0,
            vrrp_fail_count: 2,
            vrrp_success_count: 2,
            vrrp_garp_refresh_interval: 5,
            vrrp_garp_refresh_count: 2,
        }
    }
}
