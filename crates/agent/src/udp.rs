//! UDP and SCTP listeners, forwarded in the kernel with nftables (Octavia uses keepalived's
//! LVS, which these kernels lack). The controller sends what to forward as JSON
//! (`rocta_haproxy::nft::UdpService`, `PUT /1.0/loadbalancer/{amphora}/{lb}/udp`); the agent
//! renders it with `rocta_haproxy::nft`, turns on IP forwarding in its namespace, and applies
//! the load balancer's table with one `nft -f` (one transaction: the table is replaced whole
//! or not at all, and flows already tracked keep their member).
//!
//! Health monitors of UDP pools (Octavia's UDP-CONNECT, TCP, HTTP, PING) run here, as
//! keepalived's checkers do for LVS: each member is checked every `delay` seconds within
//! `timeout`, goes down after `fall` failures in a row and up after `rise` successes, and a
//! change re-renders the table without the member (flows it still has are left to time out).
//! Members start up, as HAProxy's servers do. The heartbeat reports each listener (OPEN, with
//! the table's counters), pool and member.
//!
//! Layout under a load balancer's directory: `udp.json` (what the controller sent), `udp.nft`
//! (what was applied).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocta_haproxy::nft::{self, UdpMember, UdpMonitor, UdpService};
use rocta_model::{HealthMonitorType, Id, ListenerProtocol};
use rocta_service::atomic_write;
use tokio_util::sync::CancellationToken;

/// Why a UDP configuration was not applied.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// The controller asked for something that cannot be forwarded (the agent's 400).
    #[error("{0}")]
    Invalid(String),
    /// The amphora could not apply it (the agent's 500).
    #[error("{0}")]
    Failed(String),
}

/// What the monitors know of a member.
#[derive(Debug, Clone)]
struct Health {
    up: bool,
    /// Successes (positive) or failures (negative) in a row.
    run: i64,
    next: Instant,
}

/// One load balancer's forwarding: what the controller sent and its members' health.
#[derive(Debug, Clone)]
struct Forwarding {
    service: UdpService,
    health: HashMap<Id, Health>,
}

impl Forwarding {
    fn up(&self, m: Id) -> bool {
        self.health.get(&m).is_none_or(|h| h.up)
    }
}

/// The UDP and SCTP listeners of this amphora.
#[derive(Clone)]
pub struct Udp {
    base: PathBuf,
    state: Arc<Mutex<HashMap<String, Forwarding>>>,
    /// One `nft -f` at a time, rendered from the state it was taken under.
    apply: Arc<tokio::sync::Mutex<()>>,
}

/// A member's report in a heartbeat.
pub struct MemberReport {
    pub id: String,
    /// `UP`, `DOWN` or `no check` (HAProxy's words, which the health manager reads).
    pub status: &'static str,
}

/// A listener's report in a heartbeat.
pub struct ListenerReport {
    pub id: String,
    /// Absolute counters: bytes out, bytes in, flows.
    pub tx: u64,
    pub rx: u64,
    pub flows: u64,
    /// `<pool>:<listener>` and the pool's status (`UP` while a member serves) with its
    /// members, when the listener has a pool.
    pub pool: Option<(String, &'static str, Vec<MemberReport>)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Udp {
    /// The listeners this amphora already forwards (a restarted agent finds them in their
    /// `udp.json`; the kernel kept forwarding meanwhile).
    pub fn new(base: &Path) -> Self {
        let mut state = HashMap::new();
        for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let Ok(lb) = e.file_name().into_string() else {
                continue;
            };
            let service = std::fs::read(e.path().join("udp.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<UdpService>(&b).ok());
            if let Some(service) = service {
                let health = initial_health(&service, &HashMap::new());
                state.insert(lb, Forwarding { service, health });
            }
        }
        Udp {
            base: base.to_path_buf(),
            state: Arc::new(Mutex::new(state)),
            apply: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn dir(&self, lb: &str) -> PathBuf {
        self.base.join(lb)
    }

    /// Forwards what `service` describes for load balancer `lb`. Idempotent.
    pub async fn apply(&self, lb: &str, service: &UdpService) -> Result<(), UdpError> {
        if service.lb_id.to_string() != lb {
            return Err(UdpError::Invalid(format!(
                "the body is for load balancer {}, not {lb}",
                service.lb_id
            )));
        }
        if let Some(l) = service
            .listeners
            .iter()
            .find(|l| l.protocol == ListenerProtocol::Sctp)
        {
            if let Err(e) = sctp_available() {
                return Err(UdpError::Invalid(format!(
                    "SCTP listener {}: this amphora's kernel has no SCTP ({e})",
                    l.id
                )));
            }
        }
        let _one = self.apply.lock().await;
        // Members keep the health the monitors found; new ones start up.
        let next = {
            let state = lock(&self.state);
            let known = state.get(lb).map(|f| f.health.clone()).unwrap_or_default();
            Forwarding {
                service: service.clone(),
                health: initial_health(service, &known),
            }
        };
        let ruleset =
            nft::render(service, &|m| next.up(m)).map_err(|e| UdpError::Invalid(e.to_string()))?;
        let dir = self.dir(lb);
        let failed = |e: std::io::Error| UdpError::Failed(e.to_string());
        std::fs::create_dir_all(&dir).map_err(failed)?;
        let file = dir.join("udp.nft");
        atomic_write(&file, ruleset.as_bytes(), 0o600).map_err(failed)?;
        forwarding(service.vip.contains(':')).map_err(failed)?;
        run_nft(&file).await?;
        let json = serde_json::to_vec(service).map_err(|e| UdpError::Failed(e.to_string()))?;
        atomic_write(&dir.join("udp.json"), &json, 0o600).map_err(failed)?;
        lock(&self.state).insert(lb.to_string(), next);
        Ok(())
    }

    /// Applies `lb`'s table again with the health the monitors now report.
    async fn refresh(&self, lb: &str) -> Result<(), UdpError> {
        let _one = self.apply.lock().await;
        let ruleset = {
            let state = lock(&self.state);
            let Some(f) = state.get(lb) else {
                return Ok(());
            };
            nft::render(&f.service, &|m| f.up(m)).map_err(|e| UdpError::Invalid(e.to_string()))?
        };
        let file = self.dir(lb).join("udp.nft");
        atomic_write(&file, ruleset.as_bytes(), 0o600)
            .map_err(|e| UdpError::Failed(e.to_string()))?;
        run_nft(&file).await
    }

    /// Stops forwarding for load balancer `lb` (its table removed). Idempotent.
    pub async fn remove(&self, lb: &str) -> Result<(), UdpError> {
        let Ok(id) = lb.parse() else {
            return Ok(());
        };
        let _one = self.apply.lock().await;
        let dir = self.dir(lb);
        if dir.join("udp.json").exists() || lock(&self.state).contains_key(lb) {
            let file = dir.join("udp-delete.nft");
            let failed = |e: std::io::Error| UdpError::Failed(e.to_string());
            std::fs::create_dir_all(&dir).map_err(failed)?;
            atomic_write(&file, nft::render_delete(id).as_bytes(), 0o600).map_err(failed)?;
            run_nft(&file).await?;
        }
        for f in ["udp.json", "udp.nft", "udp-delete.nft"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        lock(&self.state).remove(lb);
        Ok(())
    }

    /// The load balancers that forward UDP or SCTP listeners here.
    pub fn load_balancers(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.state).keys().cloned().collect();
        v.sort();
        v
    }

    /// Each forwarded listener with its counters, pool and members, for the heartbeat.
    pub async fn reports(&self) -> Vec<ListenerReport> {
        let snapshot: Vec<Forwarding> = lock(&self.state).values().cloned().collect();
        let mut out = Vec::new();
        for f in snapshot {
            let counters = read_counters(&f.service).await;
            for l in &f.service.listeners {
                let id = l.id.simple().to_string();
                let c = |k: &str| counters.get(&format!("{k}_{id}")).copied().unwrap_or(0);
                let pool = l.pool.as_ref().map(|p| {
                    let members: Vec<MemberReport> = p
                        .members
                        .iter()
                        .map(|m| MemberReport {
                            id: m.id.to_string(),
                            status: match (&p.monitor, f.up(m.id)) {
                                (None, _) => "no check",
                                (Some(_), true) => "UP",
                                (Some(_), false) => "DOWN",
                            },
                        })
                        .collect();
                    let serving = p.members.iter().any(|m| m.weight > 0 && f.up(m.id));
                    (
                        format!("{}:{}", p.id, l.id),
                        if serving { "UP" } else { "DOWN" },
                        members,
                    )
                });
                out.push(ListenerReport {
                    id: l.id.to_string(),
                    tx: c("tx"),
                    rx: c("rx"),
                    flows: c("flows"),
                    pool,
                });
            }
        }
        out
    }

    /// Runs the health monitors of every forwarded pool until `shutdown`.
    pub async fn monitor(self, shutdown: CancellationToken) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Id, bool)>(1024);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Start the checks that are due.
            let now = Instant::now();
            let due: Vec<(String, UdpMember, UdpMonitor)> = {
                let mut state = lock(&self.state);
                let mut due = Vec::new();
                for (lb, f) in state.iter_mut() {
                    for p in f.service.listeners.iter().filter_map(|l| l.pool.as_ref()) {
                        let Some(mon) = &p.monitor else { continue };
                        for m in &p.members {
                            let Some(h) = f.health.get_mut(&m.id) else {
                                continue;
                            };
                            if h.next <= now {
                                h.next = now + Duration::from_secs(mon.delay.max(1) as u64);
                                due.push((lb.clone(), m.clone(), mon.clone()));
                            }
                        }
                    }
                }
                due
            };
            for (lb, m, mon) in due {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let ok = check(&m, &mon).await;
                    let _ = tx.send((lb, m.id, ok)).await;
                });
            }
            // Count the results in; re-apply the tables whose serving members changed.
            let mut changed: Vec<String> = Vec::new();
            while let Ok((lb, member, ok)) = rx.try_recv() {
                let mut state = lock(&self.state);
                let Some(f) = state.get_mut(&lb) else {
                    continue;
                };
                let mon = f
                    .service
                    .listeners
                    .iter()
                    .filter_map(|l| l.pool.as_ref())
                    .find(|p| p.members.iter().any(|m| m.id == member))
                    .and_then(|p| p.monitor.clone());
                let (Some(mon), Some(h)) = (mon, f.health.get_mut(&member)) else {
                    continue;
                };
                h.run = match (ok, h.run) {
                    (true, r) if r > 0 => r + 1,
                    (true, _) => 1,
                    (false, r) if r < 0 => r - 1,
                    (false, _) => -1,
                };
                let flip = if h.up {
                    -h.run >= mon.fall.max(1)
                } else {
                    h.run >= mon.rise.max(1)
                };
                if flip {
                    h.up = !h.up;
                    tracing::info!(%lb, %member, up = h.up, "UDP member health changed");
                    if !changed.contains(&lb) {
                        changed.push(lb);
                    }
                }
            }
            for lb in changed {
                if let Err(e) = self.refresh(&lb).await {
                    tracing::warn!(%lb, error = %e, "cannot apply a member's health change");
                }
            }
        }
    }
}

/// Each member's health: what was known of it, else up and due for a check now.
fn initial_health(service: &UdpService, known: &HashMap<Id, Health>) -> HashMap<Id, Health> {
    let mut health = HashMap::new();
    for p in service.listeners.iter().filter_map(|l| l.pool.as_ref()) {
        for m in &p.members {
            let h = match (&p.monitor, known.get(&m.id)) {
                (Some(_), Some(h)) => h.clone(),
                _ => Health {
                    up: true,
                    run: 0,
                    next: Instant::now(),
                },
            };
            health.insert(m.id, h);
        }
    }
    health
}

/// One check of member `m` by monitor `mon`: whether it passed within the timeout.
async fn check(m: &UdpMember, mon: &UdpMonitor) -> bool {
    let ip: IpAddr = match m.monitor_address.as_deref().unwrap_or(&m.address).parse() {
        Ok(ip) => ip,
        Err(_) => return false,
    };
    let to = SocketAddr::new(ip, m.monitor_port.unwrap_or(m.port));
    let timeout = Duration::from_secs(mon.timeout.max(1) as u64);
    match mon.kind {
        HealthMonitorType::UdpConnect => udp_connect(to, timeout).await,
        HealthMonitorType::Tcp => {
            matches!(
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(to)).await,
                Ok(Ok(_))
            )
        }
        HealthMonitorType::Http => tokio::time::timeout(timeout, http(to, mon))
            .await
            .unwrap_or(false),
        HealthMonitorType::Ping => ping(ip, timeout).await,
        // SCTP needs the kernel's SCTP, TLS checks a TLS stack: neither is here.
        _ => false,
    }
}

/// UDP-CONNECT as Octavia's check: a datagram sent, the member down only if the port is
/// closed (an ICMP port unreachable comes back as a refused receive); silence is success.
async fn udp_connect(to: SocketAddr, timeout: Duration) -> bool {
    let any = if to.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    let Ok(s) = tokio::net::UdpSocket::bind(any).await else {
        return false;
    };
    if s.connect(to).await.is_err() || s.send(b"\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    match tokio::time::timeout(timeout, s.recv(&mut buf)).await {
        Ok(Ok(_)) | Err(_) => true,
        Ok(Err(e)) => e.kind() != std::io::ErrorKind::ConnectionRefused,
    }
}

/// An HTTP check: the status code is one of `expected_codes` (default 200).
async fn http(to: SocketAddr, mon: &UdpMonitor) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(to).await else {
        return false;
    };
    let method = mon.http_method.map_or("GET", |m| m.as_str());
    let path = mon.url_path.as_deref().unwrap_or("/");
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
        to.ip()
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    code.is_some_and(|c| expected(mon.expected_codes.as_deref().unwrap_or("200"), c))
}

/// Whether `code` is in Octavia's `expected_codes` (`200`, `200,202`, `200-204`).
pub fn expected(codes: &str, code: u16) -> bool {
    codes
        .split(',')
        .any(|part| match part.trim().split_once('-') {
            Some((a, b)) => match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                (Ok(a), Ok(b)) => (a..=b).contains(&code),
                _ => false,
            },
            None => part.trim().parse::<u16>() == Ok(code),
        })
}

async fn ping(ip: IpAddr, timeout: Duration) -> bool {
    let secs = timeout.as_secs().max(1).to_string();
    tokio::process::Command::new("ping")
        .args(["-q", "-n", "-c", "1", "-W", &secs])
        .arg(ip.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// The named counters of a load balancer's table (`name` → bytes, or packets for `flows_*`).
async fn read_counters(s: &UdpService) -> HashMap<String, u64> {
    let family = if s.vip.contains(':') { "ip6" } else { "ip" };
    let out = tokio::process::Command::new("nft")
        .args([
            "-j",
            "list",
            "counters",
            "table",
            family,
            &nft::table_name(s.lb_id),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    let Ok(out) = out else {
        return HashMap::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut counters = HashMap::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let c = &item["counter"];
        let Some(name) = c["name"].as_str() else {
            continue;
        };
        let key = if name.starts_with("flows_") {
            "packets"
        } else {
            "bytes"
        };
        counters.insert(name.to_string(), c[key].as_u64().unwrap_or(0));
    }
    counters
}

/// Whether the kernel has SCTP: an SCTP socket opens (which loads the module if it is one).
fn sctp_available() -> std::io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::from(132))).map(drop)
}

/// Turns on IP forwarding in this namespace (the kernel forwards the DNAT'ed packets).
fn forwarding(v6: bool) -> std::io::Result<()> {
    let path = if v6 {
        "/proc/sys/net/ipv6/conf/all/forwarding"
    } else {
        "/proc/sys/net/ipv4/ip_forward"
    };
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1")
}

/// `nft -f file`: one transaction. A ruleset the kernel refuses is the controller's error.
async fn run_nft(file: &Path) -> Result<(), UdpError> {
    let out = tokio::process::Command::new("nft")
        .arg("-f")
        .arg(file)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| UdpError::Failed(format!("cannot run nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(UdpError::Invalid(format!(
            "nft -f {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's kernel (and CI's) has no SCTP: an SCTP listener is refused with the
    /// reason, before anything is written or applied. Where the kernel has SCTP there is
    /// nothing to refuse (and nothing here may touch the host's nftables).
    #[tokio::test]
    async fn sctp_listeners_are_refused_where_the_kernel_has_no_sctp() {
        let d = tempfile::tempdir().unwrap();
        let udp = Udp::new(d.path());
        let lb: Id = "5f0e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b".parse().unwrap();
        let service = UdpService {
            lb_id: lb,
            vip: "198.19.0.42".into(),
            additional_vips: vec![],
            listeners: vec![nft::UdpListener {
                id: lb,
                protocol: ListenerProtocol::Sctp,
                port: 5000,
                pool: None,
            }],
        };
        match sctp_available() {
            Err(why) => {
                let e = udp.apply(&lb.to_string(), &service).await.unwrap_err();
                assert!(
                    matches!(&e, UdpError::Invalid(m) if m.contains("this amphora's kernel has no SCTP")),
                    "{e}"
                );
                eprintln!("refused as expected: {e} ({why})");
                assert!(udp.load_balancers().is_empty());
                assert!(!d.path().join(lb.to_string()).exists());
            }
            Ok(()) => eprintln!("this kernel has SCTP: nothing to refuse"),
        }
    }

    #[test]
    fn expected_codes_as_octavia_writes_them() {
        assert!(expected("200", 200));
        assert!(!expected("200", 201));
        assert!(expected("200,202", 202));
        assert!(expected("200-204", 203));
        assert!(!expected("200-204", 205));
        assert!(!expected("x", 200));
    }
}
