//! The heartbeat sender (Octavia's `health_daemon`): every `heartbeat_interval` it reads each
//! running HAProxy's `show stat` and the UDP listeners' nftables counters and monitors
//! (`crate::udp`), builds one message v3 for the amphora (listener counters as
//! deltas since the previous report, `conns` absolute) and sends it to the next health manager
//! of `controller_ip_port_list` (round robin). The last absolute counters persist in the base
//! directory, so a restarted agent does not report counters twice.
//!
//! The sequence number never goes backwards, across restarts too, even when its file is lost
//! or corrupt (the health manager drops a heartbeat whose sequence is not above the last one
//! as a replay, and would then fail a healthy amphora over): each one is the larger of the
//! previous one plus one and the wall clock in milliseconds. Heartbeats are at least 50 ms
//! apart, so the sequence never runs ahead of the clock, and a restarted agent that lost its
//! file starts above every number it sent before. The file (written atomically) still guards
//! against a clock set back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rocta_haproxy::stats::parse_show_stat;
use rocta_proto::heartbeat::{
    encode, Heartbeat, ListenerReport, ListenerStats, Ordered, PoolReport,
};
use rocta_service::atomic_write;
use tokio_util::sync::CancellationToken;

use crate::haproxy::{stats_command, Supervisor};

/// What the sender needs.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub amphora_id: String,
    /// Where heartbeats go and how they are signed: changed live by a configuration update
    /// (`PUT /1.0/config`, Octavia's mutable options), read at every heartbeat.
    pub target: tokio::sync::watch::Receiver<Target>,
    pub interval: Duration,
    pub state_dir: PathBuf,
}

/// The health managers heartbeats go to (round robin) and the HMAC key that signs them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Target {
    pub controllers: Vec<SocketAddr>,
    pub key: String,
}

impl Target {
    /// From the agent's configuration (addresses that do not parse are left out).
    pub fn of(cfg: &crate::AgentConfig) -> Target {
        Target {
            controllers: cfg
                .controller_ip_port_list
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
            key: cfg.heartbeat_key.clone(),
        }
    }
}

/// Absolute counters of one listener at the previous report.
type Counters = HashMap<String, [u64; 4]>;

/// The sequence number after `prev` at wall-clock time `now_ms` (see the module doc).
pub fn next_seq(prev: u64, now_ms: u64) -> u64 {
    prev.saturating_add(1).max(now_ms)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The counters of listener `id` as deltas since the previous report (`now`: absolute bytes
/// out, bytes in, sessions, request errors). A counter that went down means its source
/// restarted (HAProxy, or a UDP table replaced): the new absolute value is reported.
fn deltas(prev: &mut Counters, id: &str, now: [u64; 4]) -> [u64; 4] {
    let before = prev.insert(id.to_string(), now).unwrap_or([0; 4]);
    std::array::from_fn(|i| {
        if now[i] >= before[i] {
            now[i] - before[i]
        } else {
            now[i]
        }
    })
}

/// Builds the next message from the stats of every running load balancer and the UDP
/// listeners the kernel forwards.
pub async fn build(
    sup: &Supervisor,
    udp: &crate::udp::Udp,
    amphora_id: &str,
    seq: u64,
    prev: &mut Counters,
) -> Heartbeat {
    let mut listeners = Vec::new();
    let mut pools = Vec::new();
    for l in udp.reports().await {
        let d = deltas(prev, &l.id, [l.tx, l.rx, l.flows, 0]);
        listeners.push((
            l.id,
            ListenerReport {
                status: "OPEN".into(),
                stats: ListenerStats {
                    tx: d[0],
                    rx: d[1],
                    conns: 0,
                    totconns: d[2],
                    ereq: 0,
                },
            },
        ));
        if let Some((key, status, members)) = l.pool {
            pools.push((
                key,
                PoolReport {
                    status: status.into(),
                    members: Ordered(
                        members
                            .into_iter()
                            .map(|m| (m.id, m.status.to_string()))
                            .collect(),
                    ),
                },
            ));
        }
    }
    for lb in sup.load_balancers() {
        if sup.running(&lb).is_none() {
            continue;
        }
        let sock = rocta_haproxy::stats_socket_name(amphora_id, lb.parse().unwrap_or_default());
        let Ok(csv) = stats_command(&sock, "show stat").await else {
            continue;
        };
        let (fronts, backs) = parse_show_stat(&csv);
        // The internal exporter of a PROMETHEUS listener is no listener of the tenant's.
        for f in fronts
            .into_iter()
            .filter(|f| !f.listener.starts_with("prometheus-exporter"))
        {
            let now = [f.bytes_out, f.bytes_in, f.total_sessions, f.request_errors];
            let d = deltas(prev, &f.listener, now);
            listeners.push((
                f.listener,
                ListenerReport {
                    status: f.status,
                    stats: ListenerStats {
                        tx: d[0],
                        rx: d[1],
                        conns: f.current_sessions,
                        totconns: d[2],
                        ereq: d[3],
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

/// The sender's state across rounds.
struct Sender {
    sup: Supervisor,
    udp: crate::udp::Udp,
    cfg: SenderConfig,
    sock: tokio::net::UdpSocket,
    seq: u64,
    prev: Counters,
    next: usize,
    seq_file: PathBuf,
    counters_file: PathBuf,
    persist_failed: bool,
}

impl rocta_service::tasks::Duty for Sender {
    type Error = std::io::Error;
    /// One heartbeat. Nothing here fails the duty: a heartbeat not sent or not persisted is
    /// logged, and the next one goes at the next interval (a backed-off sender would make a
    /// healthy amphora look dead).
    async fn work(&mut self) -> std::io::Result<()> {
        self.seq = next_seq(self.seq, now_ms());
        let msg = build(
            &self.sup,
            &self.udp,
            &self.cfg.amphora_id,
            self.seq,
            &mut self.prev,
        )
        .await;
        // Persist before sending: a crash never reuses a sequence number.
        let persisted = atomic_write(&self.seq_file, self.seq.to_string().as_bytes(), 0o600)
            .and_then(|()| {
                let counters = serde_json::to_vec(&self.prev).map_err(std::io::Error::other)?;
                atomic_write(&self.counters_file, &counters, 0o600)
            });
        match persisted {
            Err(e) if !self.persist_failed => {
                self.persist_failed = true;
                tracing::warn!(error = %e, "cannot persist the heartbeat sequence and counters");
            }
            Ok(()) if self.persist_failed => {
                self.persist_failed = false;
                tracing::info!("heartbeat sequence and counters persisted again");
            }
            _ => {}
        }
        let target = self.cfg.target.borrow().clone();
        if target.controllers.is_empty() || target.key.is_empty() {
            // Heartbeats off until a configuration update names health managers and a key.
            return Ok(());
        }
        let to = target.controllers[self.next % target.controllers.len()];
        self.next += 1;
        if let Err(e) = self
            .sock
            .send_to(&encode(&msg, target.key.as_bytes()), to)
            .await
        {
            tracing::debug!(%to, error = %e, "heartbeat not sent");
        }
        Ok(())
    }
}

/// Sends heartbeats every `interval` until `shutdown` (a periodic duty).
pub async fn run(
    sup: Supervisor,
    udp: crate::udp::Udp,
    cfg: SenderConfig,
    shutdown: CancellationToken,
) {
    if cfg.target.borrow().controllers.is_empty() || cfg.target.borrow().key.is_empty() {
        tracing::info!("no controller_ip_port_list or heartbeat_key: heartbeats off until set");
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
    let seq = std::fs::read_to_string(&seq_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let prev = std::fs::read(&counters_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let interval = cfg.interval;
    let sender = Sender {
        sup,
        udp,
        cfg,
        sock,
        seq,
        prev,
        next: 0,
        seq_file,
        counters_file,
        persist_failed: false,
    };
    rocta_service::tasks::periodic("heartbeat", interval, Default::default(), shutdown, sender)
        .await;
}

#[cfg(test)]
mod tests {
    use super::next_seq;

    #[test]
    fn the_sequence_never_goes_backwards_even_when_its_file_is_lost() {
        // An agent sends every 50 ms (the shortest interval) for a while...
        let start = 1_700_000_000_000u64;
        let mut seq = 0;
        let mut sent = Vec::new();
        for i in 0..1000 {
            seq = next_seq(seq, start + 50 * i);
            sent.push(seq);
        }
        assert!(sent.windows(2).all(|w| w[0] < w[1]));
        // ...then restarts without its file (0) or with a corrupt one (read as 0) 50 ms later.
        let restarted = next_seq(0, start + 50 * 1000);
        assert!(restarted > seq, "{restarted} <= {seq}");
        // A clock set back is covered by the file.
        assert_eq!(next_seq(seq, start), seq + 1);
    }
}
