//! The health manager: receives the amphorae's UDP heartbeats, drops and counts every datagram
//! that is forged, truncated, oversized, undecodable or replayed, and turns the others into
//! amphora health records, operating statuses (Octavia's rules) and listener statistics.
//!
//! Layout: `derive` (pure: heartbeat + desired state → operating statuses), this file (the
//! intake loop, a bounded queue that sheds load when full, and a batcher that writes many
//! heartbeats in one transaction, keeping only the newest per amphora).

pub mod derive;

pub mod stale;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rocta_model::*;
use rocta_proto::heartbeat::{decode, DecodeError, Heartbeat};
use rocta_store::{Entity, Store, StoreError, Table};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use rocta_service::metrics::prometheus_client;

/// Counters of the intake (what was accepted, and why the rest was dropped).
#[derive(Debug, Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub forged: AtomicU64,
    pub malformed: AtomicU64,
    pub oversized: AtomicU64,
    pub replayed: AtomicU64,
    /// Processed, then superseded by a newer heartbeat of the same amphora in the same batch
    /// (only the newest is written).
    pub superseded: AtomicU64,
    pub unknown_amphora: AtomicU64,
    /// Dropped because the queue was full (overload): newer heartbeats follow.
    pub shed: AtomicU64,
    /// Inode of the heartbeat socket (0 until bound), to read the kernel's drop count of it.
    pub socket_inode: AtomicU64,
    /// Amphorae found stale in the last check (a gauge).
    pub stale: AtomicU64,
    /// Failovers started for stale amphorae.
    pub failovers: AtomicU64,
    /// Checks that failed nothing over because `failover_threshold` was reached.
    pub failover_stopped: AtomicU64,
}

impl prometheus_client::collector::Collector for Metrics {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let kernel = match c(&self.socket_inode) {
            0 => 0,
            inode => kernel_drops(inode).unwrap_or(0),
        };
        let counter = |e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64| {
            let m = ConstCounter::new(v);
            m.encode(e.encode_descriptor(name, help, None, m.metric_type())?)
        };
        counter(
            &mut e,
            "rocta_heartbeats_received",
            "Heartbeat datagrams received.",
            c(&self.received),
        )?;
        counter(
            &mut e,
            "rocta_heartbeats_accepted",
            "Heartbeats counted (amphora health, statuses, statistics written).",
            c(&self.accepted),
        )?;
        counter(
            &mut e,
            "rocta_heartbeats_superseded",
            "Heartbeats verified, then superseded by a newer one of the same amphora in one batch.",
            c(&self.superseded),
        )?;
        let dropped = [
            ("forged", c(&self.forged)),
            ("malformed", c(&self.malformed)),
            ("oversized", c(&self.oversized)),
            ("replayed", c(&self.replayed)),
            ("unknown_amphora", c(&self.unknown_amphora)),
            ("shed", c(&self.shed)),
            // Never read: the socket's receive buffer was full (the kernel's own count).
            ("socket_buffer_full", kernel),
        ];
        let mut family = e.encode_descriptor(
            "rocta_heartbeats_dropped",
            "Heartbeats dropped, by reason.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (reason, v) in dropped {
            ConstCounter::new(v).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        let stale = ConstGauge::new(c(&self.stale) as i64);
        stale.encode(e.encode_descriptor(
            "rocta_stale_amphorae",
            "Amphorae found stale in the last check.",
            None,
            stale.metric_type(),
        )?)?;
        counter(
            &mut e,
            "rocta_failovers",
            "Failovers started for stale amphorae.",
            c(&self.failovers),
        )?;
        counter(
            &mut e,
            "rocta_failover_stopped",
            "Checks that started no failover because failover_threshold was reached.",
            c(&self.failover_stopped),
        )
    }
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

/// The inode of a socket (what `/proc/net/udp` names it by).
fn socket_inode(socket: &impl std::os::fd::AsRawFd) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
        .ok()
        .map(|m| m.ino())
}

/// Datagrams the kernel dropped on the UDP socket with this inode because its receive buffer
/// was full (the last column of `/proc/net/udp` and `/proc/net/udp6`); `None` when not found.
pub fn kernel_drops(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|f| {
        let table = std::fs::read_to_string(f).ok()?;
        table.lines().skip(1).find_map(|line| {
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.len() >= 13 && cols[9].parse::<u64>().ok() == Some(inode))
                .then(|| cols[cols.len() - 1].parse().ok())
                .flatten()
        })
    })
}

/// Queue between the socket and the writer; beyond it, datagrams are shed.
const QUEUE: usize = 65_536;
/// Largest batch written in one transaction.
const BATCH: usize = 4_096;

pub(crate) use rocta_model::time::now_ms;

/// Datagram receivers (each verifies and decodes on its own core when there is one).
const RECEIVERS: usize = 2;
/// Kernel receive buffer asked for the heartbeat socket (bursts wait there, not dropped).
const RCVBUF: usize = 8 << 20;

/// Runs the intake on an already-bound socket until `shutdown`.
pub async fn run(
    socket: UdpSocket,
    key: Vec<u8>,
    store: Store,
    metrics: Arc<Metrics>,
    heard: Arc<stale::Heard>,
    shutdown: CancellationToken,
) {
    if let Err(e) = socket2::SockRef::from(&socket).set_recv_buffer_size(RCVBUF) {
        tracing::debug!(error = %e, "enlarging the heartbeat receive buffer failed");
    }
    if let Some(inode) = socket_inode(&socket) {
        metrics.socket_inode.store(inode, Ordering::Relaxed);
    }
    let socket = Arc::new(socket);
    let key = Arc::new(key);
    let (tx, rx) = mpsc::channel::<Heartbeat>(QUEUE);
    let writer = tokio::spawn(write_loop(rx, store, metrics.clone()));
    let mut receivers = tokio::task::JoinSet::new();
    for _ in 0..RECEIVERS {
        receivers.spawn(receive(
            socket.clone(),
            key.clone(),
            tx.clone(),
            metrics.clone(),
            heard.clone(),
            shutdown.clone(),
        ));
    }
    drop(tx);
    while receivers.join_next().await.is_some() {}
    let _ = writer.await;
}

async fn receive(
    socket: Arc<UdpSocket>,
    key: Arc<Vec<u8>>,
    tx: mpsc::Sender<Heartbeat>,
    metrics: Arc<Metrics>,
    heard: Arc<stale::Heard>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 65_536];
    // Consecutive receive errors back off (1 ms doubling to 1 s) instead of spinning.
    let mut failing = 0u32;
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => {
                    failing = 0;
                    n
                }
                Err(e) => {
                    tracing::debug!(error = %e, "heartbeat receive failed");
                    let pause = std::time::Duration::from_millis(1 << failing.min(10));
                    failing += 1;
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
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
    let mut cache: HashMap<Id, Known> = HashMap::new();
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let newest = newest_per_amphora(batch.drain(..), &last_seq, &metrics);
        if newest.is_empty() {
            continue;
        }
        let now = now_ms();
        let result = store
            .write(|tx| apply_batch(tx, &newest, now, &mut cache, &metrics))
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

/// What the writer knows of an amphora's load balancer: the tree with the statuses it last
/// read or wrote, reloaded after [`TREE_TTL`] or when a heartbeat names an object it does not
/// know; and the signature of the last statuses applied, so an unchanged heartbeat costs one
/// health write (and the statistics it carries).
struct Known {
    tree: LbTree,
    loaded: std::time::Instant,
    signature: Option<u64>,
    /// Last absolute `conns` per listener (zero deltas with unchanged `conns` are not written).
    conns: HashMap<Id, u64>,
}

/// How long a cached tree is trusted (changes made elsewhere show within this).
const TREE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// The statuses a heartbeat reports (its counters left out).
fn signature(hb: &Heartbeat) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (id, l) in &hb.listeners.0 {
        (id, &l.status).hash(&mut h);
    }
    for (id, p) in &hb.pools.0 {
        (id, &p.status).hash(&mut h);
        for m in &p.members.0 {
            m.hash(&mut h);
        }
    }
    h.finish()
}

/// Whether the tree knows every listener, pool and member the heartbeat names.
fn knows_all(t: &LbTree, hb: &Heartbeat) -> bool {
    let listener = |id: &str| t.listeners.iter().any(|l| l.id.to_string() == id);
    hb.listeners.0.iter().all(|(id, _)| listener(id))
        && hb.pools.0.iter().all(|(key, p)| {
            let pool = key.split(':').next().unwrap_or_default();
            t.pools.iter().any(|x| x.id.to_string() == pool)
                && p.members
                    .0
                    .iter()
                    .all(|(m, _)| t.members.iter().any(|x| x.id.to_string() == *m))
        })
}

/// The newest heartbeat per amphora of a batch, carrying the counter deltas of the others;
/// replays (not newer than the last counted here) are dropped. Sorted by amphora: health
/// managers sharing a database lock amphorae in one order (no deadlock).
fn newest_per_amphora(
    batch: impl Iterator<Item = Heartbeat>,
    last_seq: &HashMap<String, u64>,
    metrics: &Metrics,
) -> BTreeMap<String, Heartbeat> {
    let mut newest: BTreeMap<String, Heartbeat> = BTreeMap::new();
    for hb in batch {
        let seen = last_seq.get(&hb.id).copied().unwrap_or(0);
        if hb.seq <= seen {
            metrics.replayed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match newest.get_mut(&hb.id) {
            Some(o) if o.seq == hb.seq => {
                metrics.replayed.fetch_add(1, Ordering::Relaxed);
            }
            Some(o) => {
                // Two heartbeats of one amphora in a batch: the newer one's statuses count,
                // and the counter deltas of both.
                metrics.superseded.fetch_add(1, Ordering::Relaxed);
                let mut hb = hb;
                if o.seq < hb.seq {
                    std::mem::swap(o, &mut hb);
                }
                add_deltas(o, &hb);
            }
            None => {
                newest.insert(hb.id.clone(), hb);
            }
        }
    }
    newest
}

/// Adds the counter deltas of `older` to those of `newer` (connections now open are
/// `newer`'s alone).
fn add_deltas(newer: &mut Heartbeat, older: &Heartbeat) {
    for (id, o) in &older.listeners.0 {
        if let Some((_, n)) = newer.listeners.0.iter_mut().find(|(x, _)| x == id) {
            n.stats.rx += o.stats.rx;
            n.stats.tx += o.stats.tx;
            n.stats.totconns += o.stats.totconns;
            n.stats.ereq += o.stats.ereq;
        }
    }
}

/// The trees of the load balancers of `amphorae` (live amphorae of a load balancer only),
/// read with one query per table whatever their number.
fn load_trees(
    tx: &rocta_store::Tx<'_>,
    amphorae: &[Id],
) -> Result<HashMap<Id, LbTree>, StoreError> {
    let amp_lb: Vec<(Id, Id)> = tx
        .list_in::<Amphora>(false, amphorae)?
        .into_iter()
        .filter(|a| {
            !matches!(
                a.status,
                AmphoraStatus::Deleted | AmphoraStatus::PendingDelete
            )
        })
        .filter_map(|a| Some((a.id, a.loadbalancer_id?)))
        .collect();
    let mut lb_ids: Vec<Id> = amp_lb.iter().map(|x| x.1).collect();
    lb_ids.sort_unstable();
    lb_ids.dedup();
    let mut trees: HashMap<Id, LbTree> = HashMap::new();
    for lb in tx.list_in::<LoadBalancer>(false, &lb_ids)? {
        let id = lb.id;
        trees.entry(id).or_default().loadbalancer = Some(lb);
    }
    for l in tx.list_in::<Listener>(true, &lb_ids)? {
        trees.entry(l.cols().lb_id).or_default().listeners.push(l);
    }
    for p in tx.list_in::<Pool>(true, &lb_ids)? {
        trees.entry(p.cols().lb_id).or_default().pools.push(p);
    }
    for m in tx.list_in::<Member>(true, &lb_ids)? {
        trees.entry(m.cols().lb_id).or_default().members.push(m);
    }
    Ok(amp_lb
        .into_iter()
        .filter_map(|(amp, lb)| {
            let t = trees.get(&lb)?;
            t.loadbalancer.is_some().then(|| (amp, t.clone()))
        })
        .collect())
}

/// Applies a batch of heartbeats (one per amphora) in one transaction: trees not cached (or
/// stale) read together, the batch counted against replays together, statuses written where
/// they changed, counters added in one statement. Returns the heartbeats counted.
fn apply_batch(
    tx: &rocta_store::Tx<'_>,
    beats: &BTreeMap<String, Heartbeat>,
    now: i64,
    cache: &mut HashMap<Id, Known>,
    metrics: &Metrics,
) -> Result<Vec<(String, u64)>, StoreError> {
    let unknown = |n: usize| {
        metrics
            .unknown_amphora
            .fetch_add(n as u64, Ordering::Relaxed)
    };
    let mut parsed = Vec::with_capacity(beats.len());
    for hb in beats.values() {
        match Id::parse_str(&hb.id) {
            Ok(id) => parsed.push((id, hb)),
            Err(_) => {
                unknown(1);
            }
        }
    }
    let stale: Vec<Id> = parsed
        .iter()
        .filter(|(id, hb)| {
            !cache
                .get(id)
                .is_some_and(|k| k.loaded.elapsed() < TREE_TTL && knows_all(&k.tree, hb))
        })
        .map(|x| x.0)
        .collect();
    if !stale.is_empty() {
        let mut trees = load_trees(tx, &stale)?;
        for id in stale {
            let conns = cache.remove(&id).map(|k| k.conns).unwrap_or_default();
            if let Some(tree) = trees.remove(&id) {
                let loaded = std::time::Instant::now();
                let k = Known {
                    tree,
                    loaded,
                    signature: None,
                    conns,
                };
                cache.insert(id, k);
            }
        }
    }
    let before = parsed.len();
    parsed.retain(|(id, _)| cache.contains_key(id));
    unknown(before - parsed.len());
    // Conditional in the database: a datagram replayed to another health manager (whose
    // memory of sequence numbers is behind) still counts once at most.
    let seqs: Vec<(Id, i64)> = parsed.iter().map(|(id, hb)| (*id, hb.seq as i64)).collect();
    let seen = tx.health_seen_many(&seqs, now)?;
    let mut counted = Vec::with_capacity(seen.len());
    let mut stats = Vec::new();
    for (amp_id, hb) in parsed {
        let Some(k) = cache.get_mut(&amp_id).filter(|_| seen.contains(&amp_id)) else {
            metrics.replayed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let sig = signature(hb);
        if k.signature != Some(sig) {
            write_statuses(tx, &mut k.tree, hb)?;
            k.signature = Some(sig);
        }
        for (lid, report) in &hb.listeners.0 {
            let Ok(l) = Id::parse_str(lid) else { continue };
            let s = &report.stats;
            let idle = s.rx == 0 && s.tx == 0 && s.totconns == 0 && s.ereq == 0;
            if idle && k.conns.get(&l) == Some(&s.conns) {
                continue;
            }
            if k.tree.listeners.iter().any(|x| x.id == l) {
                let delta = Stats {
                    bytes_in: s.rx as i64,
                    bytes_out: s.tx as i64,
                    active_connections: s.conns as i64,
                    total_connections: s.totconns as i64,
                    request_errors: s.ereq as i64,
                };
                stats.push((l, amp_id, delta));
                k.conns.insert(l, s.conns);
            }
        }
        counted.push((hb.id.clone(), hb.seq));
    }
    tx.listener_stats_add_many(&stats)?;
    Ok(counted)
}

/// Derives the operating statuses and writes those that changed (keeping the tree in step).
fn write_statuses(
    tx: &rocta_store::Tx<'_>,
    tree: &mut LbTree,
    hb: &Heartbeat,
) -> Result<(), StoreError> {
    let d = derive::derive(tree, hb);
    let set = |table: Table,
               id: Id,
               cur: &mut OperatingStatus,
               new: OperatingStatus|
     -> Result<(), StoreError> {
        if *cur != new {
            tx.set_status(table, &[id], None, Some(new))?;
            *cur = new;
        }
        Ok(())
    };
    if let Some(lb) = tree.loadbalancer.as_mut() {
        set(
            LoadBalancer::TABLE,
            lb.id,
            &mut lb.operating_status,
            d.loadbalancer,
        )?;
    }
    for l in &mut tree.listeners {
        if let Some(s) = d.listeners.get(&l.id) {
            set(Listener::TABLE, l.id, &mut l.operating_status, *s)?;
        }
    }
    for p in &mut tree.pools {
        if let Some(s) = d.pools.get(&p.id) {
            set(Pool::TABLE, p.id, &mut p.operating_status, *s)?;
        }
    }
    for m in &mut tree.members {
        if let Some(s) = d.members.get(&m.id) {
            set(Member::TABLE, m.id, &mut m.operating_status, *s)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_the_newest_heartbeat_of_each_amphora_with_every_counter_delta() {
        let hb = |id: &str, seq: u64, rx: u64, conns: u64, status: &str| {
            let stats = rocta_proto::heartbeat::ListenerStats {
                rx,
                conns,
                ..Default::default()
            };
            let r = rocta_proto::heartbeat::ListenerReport {
                status: status.into(),
                stats,
            };
            Heartbeat {
                id: id.into(),
                seq,
                ver: 3,
                listeners: rocta_proto::heartbeat::Ordered(vec![("l1".into(), r)]),
                pools: rocta_proto::heartbeat::Ordered(Vec::new()),
            }
        };
        let m = Metrics::default();
        let last: HashMap<String, u64> = [("a".to_string(), 5)].into();
        let batch = vec![
            hb("a", 7, 10, 1, "OPEN"),
            hb("a", 9, 20, 2, "FULL"),
            hb("a", 8, 40, 3, "OPEN"),
            hb("a", 9, 80, 2, "FULL"),  // a replay within the batch
            hb("a", 5, 160, 9, "OPEN"), // counted before
            hb("b", 1, 1, 1, "OPEN"),
        ];
        let got = newest_per_amphora(batch.into_iter(), &last, &m);
        let a = &got["a"];
        assert_eq!(a.seq, 9);
        let (_, r) = &a.listeners.0[0];
        assert_eq!(
            (r.status.as_str(), r.stats.rx, r.stats.conns),
            ("FULL", 70, 2)
        );
        assert_eq!(got["b"].seq, 1);
        assert_eq!(m.replayed.load(Ordering::Relaxed), 2);
        assert_eq!(m.superseded.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn kernel_drops_of_an_overflowing_socket_reach_the_metrics() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&rx)
            .set_recv_buffer_size(4096)
            .unwrap();
        let inode = socket_inode(&rx).unwrap();
        assert_eq!(kernel_drops(inode), Some(0));
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..500 {
            tx.send_to(&[7u8; 1000], rx.local_addr().unwrap()).unwrap();
        }
        let drops = kernel_drops(inode).unwrap();
        assert!(
            drops > 400,
            "{drops} drops of 500 datagrams into a 4 KiB buffer"
        );
        let m = Arc::new(Metrics::default());
        m.socket_inode.store(inode, Ordering::Relaxed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.prom");
        stale::write_metrics(&path, &m).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("reason=\"socket_buffer_full\""))
            .unwrap();
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= drops, "{line}");
    }
}
