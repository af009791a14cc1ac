//! `[amphora_agent]` (where the amphorae ship their logs) and `[metrics]` (each role's
//! Prometheus metrics): what operators watch rocta by.

use serde::Deserialize;

/// `[amphora_agent]` (Octavia's section): where the amphorae ship their logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmphoraAgent {
    /// `host:port` syslog receivers of the load balancers' per-request logs (RFC 5424), the
    /// first that takes them; the others only while it fails. Empty: kept on the amphora only.
    pub tenant_log_targets: Vec<String>,
    /// `UDP` or `TCP` (lines framed by a newline).
    pub log_protocol: String,
    /// Attempts on a target before the next one is tried.
    pub log_retry_count: u32,
    /// Seconds between two attempts.
    pub log_retry_interval: f64,
    /// Lines held per amphora while no target takes them; the ones beyond are dropped and
    /// counted (`rocta_amphora_log_lines_dropped_total` on a PROMETHEUS listener).
    pub log_queue_size: usize,
    /// Ship the logs only: no `traffic.log` on the amphora.
    pub disable_local_log_storage: bool,
    /// `host:port` syslog receivers of the amphorae's administrative logs: HAProxy's own
    /// messages (a member going down, a reload) and the agent's log; the first that takes them.
    pub admin_log_targets: Vec<String>,
    /// Syslog facility (`localN`, 0–7) of the per-request logs.
    pub user_log_facility: u8,
    /// Syslog facility (`localN`, 0–7) of the administrative logs.
    pub administrative_log_facility: u8,
    /// Forward every log the amphora keeps, not only its administrative messages, to the
    /// admin targets (the per-request logs still go to the tenant's): on rocta's amphorae,
    /// which run no system logger of their own, rocta's own events at every level (debug too)
    /// instead of info and above.
    pub forward_all_logs: bool,
}

impl Default for AmphoraAgent {
    fn default() -> Self {
        AmphoraAgent {
            tenant_log_targets: vec![],
            log_protocol: "UDP".into(),
            log_retry_count: 5,
            log_retry_interval: 2.0,
            log_queue_size: 10_000,
            disable_local_log_storage: false,
            admin_log_targets: vec![],
            user_log_facility: 0,
            administrative_log_facility: 1,
            forward_all_logs: false,
        }
    }
}

/// `[metrics]`: each role's Prometheus metrics at `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve `/metrics` at all.
    pub enabled: bool,
    /// `host:port` where every role serves `/metrics` (port 0: any free one, printed at start).
    /// Empty: `rocta api` and `rocta serve` serve it on the API's address, beside the API,
    /// without authentication (as Octavia's `/healthcheck`); the other roles serve none. Set it
    /// to keep metrics off the API's address, e.g. on the management network.
    pub bind: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            bind: String::new(),
        }
    }
}
