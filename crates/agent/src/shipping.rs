//! Log offloading (Octavia's `[amphora_agent] tenant_log_targets`): the per-request log lines
//! the agent drains from HAProxy's rings (already RFC 5424 syslog messages) go to the first
//! syslog receiver that takes them, over UDP (a datagram a line) or TCP (a line each, ended by
//! a newline). A receiver that fails is tried `log_retry_count` times, `log_retry_interval`
//! apart, then the next one, round and round; meanwhile the lines wait in a queue of
//! `log_queue_size`, and the ones that do not fit are dropped and counted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The agent configuration's log shipping (the controller's `[amphora_agent]` names).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct Shipping {
    pub tenant_log_targets: Vec<String>,
    pub log_protocol: String,
    pub log_retry_count: u32,
    pub log_retry_interval: f64,
    pub log_queue_size: usize,
    pub disable_local_log_storage: bool,
}

impl Default for Shipping {
    fn default() -> Self {
        Shipping {
            tenant_log_targets: vec![],
            log_protocol: "UDP".into(),
            log_retry_count: 5,
            log_retry_interval: 2.0,
            log_queue_size: 10_000,
            disable_local_log_storage: false,
        }
    }
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
    /// A shipper for `cfg`; `None` without targets (or with none that parses).
    pub fn new(cfg: &Shipping) -> Option<Arc<Shipper>> {
        let targets: Vec<SocketAddr> = cfg
            .tenant_log_targets
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

    /// Whether the lines are to be kept on the amphora too.
    pub fn keep_local(&self) -> bool {
        !self.cfg.disable_local_log_storage
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Vec<u8>>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the complete lines of `chunk` (newline-terminated).
    pub fn push(&self, chunk: &[u8]) {
        let mut q = self.lock();
        for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if q.len() >= self.cfg.log_queue_size {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                q.push_back(line.to_vec());
            }
        }
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
            let local: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse().expect("an address")
            } else {
                "[::]:0".parse().expect("an address")
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
        let s = Shipper::new(&cfg(3)).unwrap();
        s.push(b"a\nb\n\nc\nd\ne\n");
        assert_eq!(s.lock().len(), 3);
        assert_eq!(s.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(s.lock().front().unwrap(), b"a");
    }

    #[test]
    fn no_targets_no_shipper() {
        assert!(Shipper::new(&Shipping::default()).is_none());
    }

    #[tokio::test]
    async fn tcp_lines_arrive_in_order_once() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = cfg(100);
        c.tenant_log_targets = vec![l.local_addr().unwrap().to_string()];
        c.log_protocol = "TCP".into();
        let s = Shipper::new(&c).unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(s.clone().run(stop.clone()));
        s.push(b"one\ntwo\n");
        s.push(b"three\n");
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
