//! HAProxy's `show stat` CSV, parsed into what the heartbeat reports (Octavia's
//! `status_message`/`health_daemon` mapping): listeners from FRONTEND rows, pools from BACKEND
//! rows, members from server rows. Pure; unknown or malformed rows are skipped.

use std::collections::HashMap;

/// One FRONTEND row (a listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendStat {
    pub listener: String,
    /// `OPEN`, `FULL`, `STOP`.
    pub status: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub current_sessions: u64,
    pub total_sessions: u64,
    pub request_errors: u64,
}

/// One BACKEND row with its servers (a pool as served by one listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStat {
    /// `<pool_id>:<listener_id>`.
    pub name: String,
    /// `UP` or `DOWN`.
    pub status: String,
    /// Member id → status as Octavia reports it (`UP`, `DOWN`, `DRAIN`, `MAINT`, `no check`, ...).
    pub members: Vec<(String, String)>,
}

/// Parses the output of `show stat`.
pub fn parse_show_stat(csv: &str) -> (Vec<FrontendStat>, Vec<BackendStat>) {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return (vec![], vec![]);
    };
    let cols: HashMap<&str, usize> = header.split(',').enumerate().map(|(i, c)| (c, i)).collect();
    let col = |row: &[&str], name: &str| -> String {
        cols.get(name)
            .and_then(|i| row.get(*i))
            .map(|s| s.to_string())
            .unwrap_or_default()
    };
    let num = |row: &[&str], name: &str| -> u64 { col(row, name).parse().unwrap_or(0) };
    let mut frontends = Vec::new();
    let mut backends: Vec<BackendStat> = Vec::new();
    let mut servers: Vec<(String, String, String)> = Vec::new();
    for line in lines {
        let row: Vec<&str> = line.split(',').collect();
        if row.len() < 2 {
            continue;
        }
        let (px, sv) = (row[0], row[1]);
        match sv {
            "FRONTEND" => frontends.push(FrontendStat {
                listener: px.to_string(),
                status: col(&row, "status"),
                bytes_in: num(&row, "bin"),
                bytes_out: num(&row, "bout"),
                current_sessions: num(&row, "scur"),
                total_sessions: num(&row, "stot"),
                request_errors: num(&row, "ereq"),
            }),
            "BACKEND" => backends.push(BackendStat {
                name: px.to_string(),
                status: col(&row, "status"),
                members: vec![],
            }),
            _ => {
                let mut status = col(&row, "status");
                // Weight 0 and up is a draining member (Octavia reports DRAIN).
                if status.starts_with("UP") && col(&row, "weight") == "0" {
                    status = "DRAIN".into();
                }
                servers.push((px.to_string(), sv.to_string(), status));
            }
        }
    }
    for (px, sv, status) in servers {
        if let Some(b) = backends.iter_mut().find(|b| b.name == px) {
            b.members.push((sv, status));
        }
    }
    (frontends, backends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_frontends_backends_and_member_states() {
        let csv = include_str!("../fixtures/show_stat.csv");
        let (f, b) = parse_show_stat(csv);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, "OPEN");
        assert_eq!(
            (f[0].bytes_in, f[0].bytes_out, f[0].total_sessions),
            (82, 181, 1)
        );
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].status, "UP");
        let st: Vec<&str> = b[0].members.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(st, ["UP", "DOWN", "DRAIN", "MAINT", "no check"]);
        assert_eq!(parse_show_stat("garbage"), (vec![], vec![]));
    }
}
