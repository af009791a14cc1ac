//! The health manager: receives the amphorae's UDP heartbeats, drops and counts every datagram
//! that is forged, truncated, oversized, undecodable or replayed, and turns the others into
//! amphora health records, operating statuses (Octavia's rules) and listener statistics.
//!
//! Layout: `derive` (pure: heartbeat + desired state → operating statuses), this file (the
//! intake loop, a bounded queue that sheds load when full, and a batcher that writes many
//! heartbeats in one transaction, keeping only the newest per amphora).

pub mod derive;
pub mod stale;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rocta_model::*;
use rocta_proto::heartbeat::{decode, DecodeError, Heartbeat};
use rocta_store::{Entity, Filter, Store, StoreError};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Counters of the intake (what was accepted, and why the rest was dropped).
#[derive(Debug, Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub forged: AtomicU64,
    pub malformed: AtomicU64,
    pub oversized: AtomicU64,
    pub replayed: AtomicU64,
    pub unknown_amphora: AtomicU64,
    /// Dropped because the queue was full (overload): newer heartbeats follow.
    pub shed: AtomicU64,
    /// Amphorae found stale in the last check (a gauge).
    pub stale: AtomicU64,
    /// Failovers started for stale amphorae.
    pub failovers: AtomicU64,
    /// Checks that failed nothing over because `failover_threshold` was reached.
    pub failover_stopped: AtomicU64,
}

impl Metrics {
    fn count(&self, e: &DecodeError) {
        let c = match e {
            DecodeError::Forged => &self.forged,
            DecodeError::Oversized(_) => &self.oversized,
            DecodeError::Truncated
            | DecodeError::Undecodable
            | DecodeError::Bomb
            | DecodeError::BadMessage => &self.malformed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Queue between the socket and the writer; beyond it, datagrams are shed.
const QUEUE: usize = 65_536;
/// Largest batch written in one transaction.
const BATCH: usize = 4_096;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the intake on an already-bound socket until `shutdown`.
pub async fn run(
    socket: UdpSocket,
    key: Vec<u8>,
    store: Store,
    metrics: Arc<Metrics>,
    heard: Arc<stale::Heard>,
    shutdown: CancellationToken,
) {
    let (tx, rx) = mpsc::channel::<Heartbeat>(QUEUE);
    let writer = tokio::spawn(write_loop(rx, store, metrics.clone()));
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "heartbeat receive failed");
                    continue;
                }
            },
        };
        metrics.received.fetch_add(1, Ordering::Relaxed);
        match decode(&buf[..n], &key) {
            Ok(hb) => {
                heard.heard(&hb.id, hb.seq);
                if tx.try_send(hb).is_err() {
                    metrics.shed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => metrics.count(&e),
        }
    }
    drop(tx);
    let _ = writer.await;
}

async fn write_loop(mut rx: mpsc::Receiver<Heartbeat>, store: Store, metrics: Arc<Metrics>) {
    let mut last_seq: HashMap<String, u64> = match store.read(|tx| tx.health_sequences()).await {
        Ok(v) => v
            .into_iter()
            .map(|(a, s)| (a.to_string(), s.max(0) as u64))
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read amphora health");
            HashMap::new()
        }
    };
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        // Newest heartbeat per amphora; older ones (and replays) are dropped.
        let mut newest: HashMap<String, Heartbeat> = HashMap::new();
        for hb in batch.drain(..) {
            let seen = last_seq.get(&hb.id).copied().unwrap_or(0);
            if hb.seq <= seen || newest.get(&hb.id).is_some_and(|o| o.seq >= hb.seq) {
                metrics.replayed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            newest.insert(hb.id.clone(), hb);
        }
        if newest.is_empty() {
            continue;
        }
        let now = now_ms();
        let result = store
            .write(|tx| -> Result<Vec<(String, u64)>, StoreError> {
                let mut counted = Vec::new();
                for hb in newest.values() {
                    if apply(tx, hb, now)? {
                        counted.push((hb.id.clone(), hb.seq));
                    } else {
                        metrics.unknown_amphora.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(counted)
            })
            .await;
        match result {
            Ok(counted) => {
                metrics
                    .accepted
                    .fetch_add(counted.len() as u64, Ordering::Relaxed);
                for (id, seq) in counted {
                    last_seq.insert(id, seq);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "writing heartbeats failed; the next ones will count")
            }
        }
    }
}

/// Applies one heartbeat; `false` when it is not from a live amphora of a load balancer.
fn apply(tx: &rocta_store::Tx<'_>, hb: &Heartbeat, now: i64) -> Result<bool, StoreError> {
    let Ok(amp_id) = Id::parse_str(&hb.id) else {
        return Ok(false);
    };
    let Some(amp) = tx.get::<Amphora>(amp_id)? else {
        return Ok(false);
    };
    if matches!(
        amp.status,
        AmphoraStatus::Deleted | AmphoraStatus::PendingDelete
    ) {
        return Ok(false);
    }
    let Some(lb_id) = amp.loadbalancer_id else {
        return Ok(false);
    };
    tx.health_seen(amp_id, now, hb.seq as i64)?;
    let f = Filter {
        lb_id: Some(lb_id),
        ..Default::default()
    };
    let tree = LbTree {
        loadbalancer: tx.get::<LoadBalancer>(lb_id)?,
        listeners: tx.list(&f)?,
        pools: tx.list(&f)?,
        members: tx.list(&f)?,
        ..Default::default()
    };
    let Some(lb) = &tree.loadbalancer else {
        return Ok(false);
    };
    let d = derive::derive(&tree, hb);
    let set = |table: &str,
               id: Id,
               cur: OperatingStatus,
               new: OperatingStatus|
     -> Result<(), StoreError> {
        if cur != new {
            tx.set_status(table, &[id], None, Some(new.as_str()))?;
        }
        Ok(())
    };
    set(
        LoadBalancer::TABLE,
        lb.id,
        lb.operating_status,
        d.loadbalancer,
    )?;
    for l in &tree.listeners {
        if let Some(s) = d.listeners.get(&l.id) {
            set(Listener::TABLE, l.id, l.operating_status, *s)?;
        }
    }
    for p in &tree.pools {
        if let Some(s) = d.pools.get(&p.id) {
            set(Pool::TABLE, p.id, p.operating_status, *s)?;
        }
    }
    for m in &tree.members {
        if let Some(s) = d.members.get(&m.id) {
            set(Member::TABLE, m.id, m.operating_status, *s)?;
        }
    }
    for (lid, report) in &hb.listeners.0 {
        if let Ok(l) = Id::parse_str(lid) {
            let s = &report.stats;
            let stats = Stats {
                bytes_in: s.rx as i64,
                bytes_out: s.tx as i64,
                active_connections: s.conns as i64,
                total_connections: s.totconns as i64,
                request_errors: s.ereq as i64,
            };
            if tree.listeners.iter().any(|x| x.id == l) {
                tx.listener_stats_add(l, amp_id, &stats)?;
            }
        }
    }
    Ok(true)
}
