//! The heartbeat sender (Octavia's `health_daemon`): every `heartbeat_interval` it reads each
//! running HAProxy's `show stat`, builds one message v3 for the amphora (listener counters as
//! deltas since the previous report, `conns` absolute) and sends it to the next health manager
//! of `controller_ip_port_list` (round robin). The sequence number and the last absolute
//! counters persist in the base directory, so a restarted agent neither replays old sequence
//! numbers nor reports counters twice.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rocta_haproxy::stats::parse_show_stat;
use rocta_proto::heartbeat::{
    encode, Heartbeat, ListenerReport, ListenerStats, Ordered, PoolReport,
};
use tokio_util::sync::CancellationToken;

use crate::haproxy::{stats_command, Supervisor};

/// What the sender needs.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub amphora_id: String,
    pub controllers: Vec<SocketAddr>,
    pub interval: Duration,
    pub key: String,
    pub state_dir: PathBuf,
}

/// Absolute counters of one listener at the previous report.
type Counters = HashMap<String, [u64; 4]>;

/// Builds the next message from the stats of every running load balancer.
pub async fn build(sup: &Supervisor, amphora_id: &str, seq: u64, prev: &mut Counters) -> Heartbeat {
    let mut listeners = Vec::new();
    let mut pools = Vec::new();
    for lb in sup.load_balancers() {
        if sup.running(&lb).is_none() {
            continue;
        }
        let sock = rocta_haproxy::stats_socket_name(amphora_id, lb.parse().unwrap_or_default());
        let Ok(csv) = stats_command(&sock, "show stat").await else {
            continue;
        };
        let (fronts, backs) = parse_show_stat(&csv);
        for f in fronts {
            let now = [f.bytes_out, f.bytes_in, f.total_sessions, f.request_errors];
            let before = prev.insert(f.listener.clone(), now).unwrap_or([0; 4]);
            // A counter that went down means HAProxy restarted: report the new absolute value.
            let d = |i: usize| {
                if now[i] >= before[i] {
                    now[i] - before[i]
                } else {
                    now[i]
                }
            };
            listeners.push((
                f.listener,
                ListenerReport {
                    status: f.status,
                    stats: ListenerStats {
                        tx: d(0),
                        rx: d(1),
                        conns: f.current_sessions,
                        totconns: d(2),
                        ereq: d(3),
                    },
                },
            ));
        }
        for b in backs.into_iter().filter(|b| b.name.contains(':')) {
            pools.push((
                b.name,
                PoolReport {
                    status: b.status,
                    members: Ordered(b.members),
                },
            ));
        }
    }
    Heartbeat {
        id: amphora_id.to_string(),
        seq,
        ver: 3,
        listeners: Ordered(listeners),
        pools: Ordered(pools),
    }
}

/// Sends heartbeats until `shutdown`.
pub async fn run(sup: Supervisor, cfg: SenderConfig, shutdown: CancellationToken) {
    if cfg.controllers.is_empty() || cfg.key.is_empty() {
        tracing::info!("no controller_ip_port_list or heartbeat_key: heartbeats off");
        return;
    }
    let sock = match tokio::net::UdpSocket::bind("0.0.0.0:0").await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the heartbeat socket");
            return;
        }
    };
    let seq_file = cfg.state_dir.join("heartbeat.seq");
    let counters_file = cfg.state_dir.join("heartbeat.counters.json");
    let mut seq: u64 = std::fs::read_to_string(&seq_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let mut prev: Counters = std::fs::read(&counters_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut next = 0usize;
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        seq += 1;
        let msg = build(&sup, &cfg.amphora_id, seq, &mut prev).await;
        // Persist before sending: a crash never reuses a sequence number.
        let _ = std::fs::write(&seq_file, seq.to_string());
        let _ = serde_json::to_vec(&prev).map(|b| std::fs::write(&counters_file, b));
        let to = cfg.controllers[next % cfg.controllers.len()];
        next += 1;
        if let Err(e) = sock.send_to(&encode(&msg, cfg.key.as_bytes()), to).await {
            tracing::debug!(%to, error = %e, "heartbeat not sent");
        }
    }
}
