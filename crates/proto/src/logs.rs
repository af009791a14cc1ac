//! The log shipping an agent is told (its configuration's `[log_shipping]` table, written by
//! the controller from Octavia's `[amphora_agent]` options).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogShipping {
    /// `host:port` syslog receivers of the per-request logs, the first that takes them.
    pub tenant_log_targets: Vec<String>,
    /// `host:port` syslog receivers of HAProxy's administrative messages and the agent's log.
    pub admin_log_targets: Vec<String>,
    /// `UDP` (a datagram a line) or `TCP` (lines ended by a newline).
    pub log_protocol: String,
    /// Attempts on a receiver before the next one is tried.
    pub log_retry_count: u32,
    /// Seconds between two attempts.
    pub log_retry_interval: f64,
    /// Lines held per kind while no receiver takes them; the others are dropped and counted.
    pub log_queue_size: usize,
    /// Ship only: keep no `traffic.log` on the amphora.
    pub disable_local_log_storage: bool,
    /// The facility (`localN`) of the administrative lines; the others are the tenant's.
    pub administrative_log_facility: u8,
    /// The agent's own log at every level to the admin targets, not info and above only.
    pub forward_all_logs: bool,
}

impl Default for LogShipping {
    fn default() -> Self {
        LogShipping {
            tenant_log_targets: vec![],
            admin_log_targets: vec![],
            log_protocol: "UDP".into(),
            log_retry_count: 5,
            log_retry_interval: 2.0,
            log_queue_size: 10_000,
            disable_local_log_storage: false,
            administrative_log_facility: 1,
            forward_all_logs: false,
        }
    }
}

impl LogShipping {
    /// Whether anything is shipped at all.
    pub fn ships(&self) -> bool {
        !(self.tenant_log_targets.is_empty() && self.admin_log_targets.is_empty())
    }
}
