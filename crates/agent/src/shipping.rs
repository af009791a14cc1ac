//! Log offloading (Octavia's `[amphora_agent] tenant_log_targets`): the per-request log lines
//! the agent drains from HAProxy's rings (already RFC 5424 syslog messages) go to the first
//! syslog receiver that takes them, over UDP (a datagram a line) or TCP (a line each, ended by
//! a newline). A receiver that fails is tried `log_retry_count` times, `log_retry_interval`
//! apart, then the next one, round and round; meanwhile the lines wait in a queue of
//! `log_queue_size`, and the ones that do not fit are dropped and counted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The agent configuration's `[log_shipping]`.
pub use rocta_proto::logs::LogShipping as Shipping;

/// The shippers of an agent: the tenant's per-request logs and the administrative logs.
#[derive(Clone, Default)]
pub struct Shippers {
    pub tenant: Option<Arc<Shipper>>,
    pub admin: Option<Arc<Shipper>>,
    admin_facility: u8,
    keep_local: bool,
}

/// The admin shipper the agent's own log goes to ([`AdminLog`]), once there is one.
static ADMIN: OnceLock<(Arc<Shipper>, u8)> = OnceLock::new();

/// Told whether `forward_all_logs` is on when the shippers are made: it sets the level of the
/// agent's own log that goes to the admin targets (the process's tracing setup registers it).
static FORWARD_ALL: OnceLock<Box<dyn Fn(bool) + Send + Sync>> = OnceLock::new();

/// Registers what sets the level of the agent's log shipped to the admin targets: `true`,
/// every level (`forward_all_logs`); `false`, info and above.
pub fn on_forward_all(f: Box<dyn Fn(bool) + Send + Sync>) {
    let _ = FORWARD_ALL.set(f);
}

impl Shippers {
    pub fn new(cfg: &Shipping) -> Shippers {
        let s = Shippers {
            tenant: Shipper::new(&cfg.tenant_log_targets, cfg),
            admin: Shipper::new(&cfg.admin_log_targets, cfg),
            admin_facility: cfg.administrative_log_facility,
            keep_local: !cfg.disable_local_log_storage,
        };
        if let Some(a) = &s.admin {
            let _ = ADMIN.set((a.clone(), cfg.administrative_log_facility));
        }
        if let Some(f) = FORWARD_ALL.get() {
            f(cfg.forward_all_logs && s.admin.is_some());
        }
        s
    }

    /// Whether the lines are to be kept on the amphora too.
    pub fn keep_local(&self) -> bool {
        self.keep_local || self.tenant.is_none()
    }

    /// Queues each complete line of `chunk` for the tenant's or the admin targets, by its
    /// syslog facility.
    pub fn push(&self, chunk: &[u8]) {
        let admin = 16 + u32::from(self.admin_facility);
        for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let to = if facility(line) == Some(admin) {
                &self.admin
            } else {
                &self.tenant
            };
            if let Some(s) = to {
                s.push_line(line);
            }
        }
    }

    pub fn spawn(&self, stop: &CancellationToken) {
        for s in [&self.tenant, &self.admin].into_iter().flatten() {
            tokio::spawn(s.clone().run(stop.clone()));
        }
    }
}

/// The agent's own log as syslog messages to the admin targets: a writer for tracing's fmt
/// layer, each event one RFC 5424 message (`rocta-agent` from host `<amphora id>`, the
/// receiver stamping the time). Nothing goes anywhere without admin targets.
#[derive(Clone)]
pub struct AdminLog {
    host: String,
}

impl AdminLog {
    pub fn new(amphora_id: &str) -> AdminLog {
        AdminLog {
            host: amphora_id.to_string(),
        }
    }
}

/// One event being formatted; shipped when dropped.
pub struct AdminLine {
    severity: u8,
    host: String,
    buf: Vec<u8>,
}

impl std::io::Write for AdminLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for AdminLine {
    fn drop(&mut self) {
        let Some((shipper, facility)) = ADMIN.get() else {
            return;
        };
        let msg = String::from_utf8_lossy(&self.buf);
        let msg = msg.trim_end();
        if msg.is_empty() {
            return;
        }
        let pri = (16 + u32::from(*facility)) * 8 + u32::from(self.severity);
        let line = format!(
            "<{pri}>1 - {} rocta-agent {} - - {}",
            self.host,
            std::process::id(),
            msg.replace('\n', " ")
        );
        shipper.push_line(line.as_bytes());
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AdminLog {
    type Writer = AdminLine;
    fn make_writer(&'a self) -> AdminLine {
        self.line(6)
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> AdminLine {
        use tracing::Level;
        self.line(match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        })
    }
}

impl AdminLog {
    fn line(&self, severity: u8) -> AdminLine {
        AdminLine {
            severity,
            host: self.host.clone(),
            buf: Vec::with_capacity(256),
        }
    }
}

/// The facility of a syslog line (`<PRI>` = facility × 8 + severity).
fn facility(line: &[u8]) -> Option<u32> {
    let end = line.iter().position(|b| *b == b'>')?;
    let pri: u32 = std::str::from_utf8(line.get(1..end)?).ok()?.parse().ok()?;
    (line.first() == Some(&b'<')).then_some(pri / 8)
}

/// Lines sent in one write (TCP) at most.
const BATCH: usize = 256;

/// The lines waiting for a receiver, and what became of the others.
pub struct Shipper {
    cfg: Shipping,
    targets: Vec<SocketAddr>,
    queue: Mutex<VecDeque<Vec<u8>>>,
    ready: Notify,
    /// Lines handed to a receiver.
    pub shipped: AtomicU64,
    /// Lines dropped because the queue was full.
    pub dropped: AtomicU64,
}

enum Conn {
    Udp(tokio::net::UdpSocket),
    Tcp(tokio::net::TcpStream),
}

impl Shipper {
    /// A shipper to `targets` as `cfg` says; `None` without targets (or with none that parses).
    pub fn new(targets: &[String], cfg: &Shipping) -> Option<Arc<Shipper>> {
        let targets: Vec<SocketAddr> = targets
            .iter()
            .filter_map(|t| match t.parse() {
                Ok(a) => Some(a),
                Err(_) => {
                    tracing::error!(target = %t, "not a log target address; left out");
                    None
                }
            })
            .collect();
        (!targets.is_empty()).then(|| {
            Arc::new(Shipper {
                cfg: cfg.clone(),
                targets,
                queue: Mutex::new(VecDeque::new()),
                ready: Notify::new(),
                shipped: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            })
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Vec<u8>>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one line (without its newline), or counts it dropped when the queue is full.
    pub fn push_line(&self, line: &[u8]) {
        let mut q = self.lock();
        if q.len() >= self.cfg.log_queue_size {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.push_back(line.to_vec());
        drop(q);
        self.ready.notify_one();
    }

    /// Ships until `stop`, then what is queued if a receiver takes it at once.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let interval = Duration::from_secs_f64(self.cfg.log_retry_interval);
        let mut target = 0;
        let mut failures = 0;
        let mut conn: Option<Conn> = None;
        loop {
            if self.lock().is_empty() {
                tokio::select! {
                    _ = self.ready.notified() => {}
                    _ = stop.cancelled() => return,
                }
                continue;
            }
            let addr = self.targets[target];
            let sent = match conn.as_mut() {
                Some(c) => self.send(c).await,
                None => match self.connect(addr).await {
                    Ok(c) => {
                        conn = Some(c);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match sent {
                Ok(()) => failures = 0,
                Err(e) => {
                    conn = None;
                    failures += 1;
                    tracing::warn!(target = %addr, error = %e, attempt = failures, "shipping logs failed");
                    if failures >= self.cfg.log_retry_count.max(1) {
                        failures = 0;
                        target = (target + 1) % self.targets.len();
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
    }

    async fn connect(&self, addr: SocketAddr) -> std::io::Result<Conn> {
        let timeout = Duration::from_secs(5);
        if self.cfg.log_protocol == "TCP" {
            let s = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect"))??;
            s.set_nodelay(true)?;
            Ok(Conn::Tcp(s))
        } else {
            let local = if addr.is_ipv4() {
                SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
            } else {
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
            };
            let s = tokio::net::UdpSocket::bind(local).await?;
            s.connect(addr).await?;
            Ok(Conn::Udp(s))
        }
    }

    /// Sends up to `BATCH` lines from the queue's head; they leave it only once written.
    async fn send(&self, conn: &mut Conn) -> std::io::Result<()> {
        let lines: Vec<Vec<u8>> = self.lock().iter().take(BATCH).cloned().collect();
        match conn {
            Conn::Udp(s) => {
                for line in &lines {
                    s.send(line).await?;
                    self.lock().pop_front();
                    self.shipped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Conn::Tcp(s) => {
                // A receiver that closed its end (it stopped) is found before writing to it:
                // a write would be buffered and lost.
                let mut probe = [0u8; 64];
                match s.try_read(&mut probe) {
                    Ok(0) => {
                        return Err(std::io::Error::other("the receiver closed the connection"))
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
                for line in &lines {
                    buf.extend_from_slice(line);
                    buf.push(b'\n');
                }
                tokio::time::timeout(Duration::from_secs(10), s.write_all(&buf))
                    .await
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write"))??;
                self.lock().drain(..lines.len());
                self.shipped
                    .fetch_add(lines.len() as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(queue: usize) -> Shipping {
        Shipping {
            tenant_log_targets: vec!["127.0.0.1:9".into()],
            log_queue_size: queue,
            ..Default::default()
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let s = Shippers::new(&cfg(3));
        s.push(b"a\nb\n\nc\nd\ne\n");
        let t = s.tenant.unwrap();
        assert_eq!(t.lock().len(), 3);
        assert_eq!(t.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(t.lock().front().unwrap(), b"a");
    }

    #[test]
    fn lines_go_by_facility() {
        let mut c = cfg(10);
        c.admin_log_targets = vec!["127.0.0.1:10".into()];
        c.administrative_log_facility = 3;
        let s = Shippers::new(&c);
        // local0.info = 134, local3.notice = 157
        s.push(b"<134>1 - a\n<157>1 - b\nc\n");
        let q = |x: &Option<Arc<Shipper>>| {
            x.as_ref()
                .unwrap()
                .lock()
                .iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(q(&s.tenant), [b"<134>1 - a".to_vec(), b"c".to_vec()]);
        assert_eq!(q(&s.admin), [b"<157>1 - b".to_vec()]);
    }

    #[test]
    fn no_targets_no_shipper() {
        let s = Shippers::new(&Shipping::default());
        assert!(s.tenant.is_none() && s.admin.is_none() && s.keep_local());
    }

    #[tokio::test]
    async fn tcp_lines_arrive_in_order_once() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = cfg(100);
        c.tenant_log_targets = vec![l.local_addr().unwrap().to_string()];
        c.log_protocol = "TCP".into();
        let s = Shipper::new(&c.tenant_log_targets, &c).unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(s.clone().run(stop.clone()));
        for line in ["one", "two", "three"] {
            s.push_line(line.as_bytes());
        }
        let (mut peer, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        while got.len() < 14 {
            let mut b = [0u8; 64];
            let n = tokio::io::AsyncReadExt::read(&mut peer, &mut b)
                .await
                .unwrap();
            assert!(n > 0);
            got.extend_from_slice(&b[..n]);
        }
        assert_eq!(got, b"one\ntwo\nthree\n");
        assert_eq!(s.shipped.load(Ordering::Relaxed), 3);
        stop.cancel();
    }
}
