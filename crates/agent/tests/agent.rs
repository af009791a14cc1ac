//! The agent over mutual TLS with a real HAProxy: certificates, config validation, start,
//! reload under traffic, status, certificate files, deletion.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf certificate + key PEM signed by `ca`.
fn leaf(ca: &Ca, cn: &str, sans: Vec<SanType>) -> String {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = sans;
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tiny keep-alive HTTP backend answering `hello from <name>`.
fn backend(name: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                loop {
                    let mut line = String::new();
                    let mut close = false;
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line.to_ascii_lowercase().starts_with("connection: close") {
                            close = true;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let body = format!("hello from {name}");
                    let _ = write!(
                        w,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if close {
                        return;
                    }
                }
            });
        }
    });
    port
}

struct Agent {
    url: String,
    client: reqwest::blocking::Client,
    dir: tempfile::TempDir,
    ca: Ca,
    client_ca: Ca,
    _stop: tokio_util::sync::CancellationToken,
}

impl Drop for Agent {
    /// A failed test must not leave HAProxy processes behind.
    fn drop(&mut self) {
        for pid in haproxy_pids(&self.dir.path().display().to_string()) {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .status();
        }
    }
}

fn client(server_ca: &Ca, identity: Option<String>) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(server_ca.cert.pem().as_bytes()).unwrap(),
        )
        .timeout(Duration::from_secs(10));
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn start() -> Agent {
    start_with(vec![], "")
}

fn start_with(controllers: Vec<String>, key: &str) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("rocta server CA");
    let client_ca = ca("rocta client CA");
    let amp = "5c0f8a8e-0d3c-4c61-9c57-0a2b7c1b1a01";
    std::fs::write(
        dir.path().join("server.pem"),
        leaf(
            &server_ca,
            amp,
            vec![SanType::IpAddress("127.0.0.1".parse().unwrap())],
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("client_ca.pem"), client_ca.cert.pem()).unwrap();
    let cfg = rocta_agent::AgentConfig {
        bind: "127.0.0.1:0".into(),
        amphora_id: amp.into(),
        base_dir: dir.path().join("lb"),
        server_cert: dir.path().join("server.pem"),
        client_ca: dir.path().join("client_ca.pem"),
        haproxy_bin: "haproxy".into(),
        config_path: Some(dir.path().join("agent.toml")),
        controller_ip_port_list: controllers,
        heartbeat_interval: 0.2,
        heartbeat_key: key.into(),
    };
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", l.local_addr().unwrap());
    l.set_nonblocking(true).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let s2 = stop.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rocta-agent")
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            rocta_agent::serve(l, cfg, s2).await.unwrap();
        });
    });
    let identity = leaf(&client_ca, "controller", vec![]);
    let client = client(&server_ca, Some(identity));
    Agent {
        url,
        client,
        dir,
        ca: server_ca,
        client_ca,
        _stop: stop,
    }
}

fn config(lb: &str, run: &Path, port: u16, backends: &[u16]) -> String {
    let mut c = format!(
        "global\n    stats socket abns@rocta-{amp}-{lb} mode 0600 level admin expose-fd listeners\n    maxconn 1000\n\
         \x20   log ring@rocta-{lb} local0\n\
         ring rocta-{lb}\n    format rfc5424\n    maxlen 1200\n    size 4194304\n\
         defaults\n    log global\n    option httplog\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n    option http-keep-alive\n\
         frontend f\n    bind 127.0.0.1:{port}\n    mode http\n    http-after-response set-header Connection close if {{ var(proc.rocta_drain) -m found }}\n    default_backend b\n\
         backend b\n    balance roundrobin\n",
        amp = AMP,
    );
    let _ = run;
    for (i, b) in backends.iter().enumerate() {
        c.push_str(&format!("    server s{i} 127.0.0.1:{b}\n"));
    }
    c
}

const LB: &str = "0b4b6a36-38a3-4f33-8f2e-8c2a6ef0a0aa";
const AMP: &str = "5c0f8a8e-0d3c-4c61-9c57-0a2b7c1b1a01";

/// One command on a HAProxy stats socket (the agent's own client, on a throwaway runtime).
fn stats_command(name: &str, cmd: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(rocta_agent::haproxy::stats_command(name, cmd))
        .unwrap()
}

/// Processes whose command line mentions `needle` (e.g. a test's temporary directory).
fn haproxy_pids(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn mutual_tls_is_required() {
    let a = start();
    assert!(
        client(&a.ca, None)
            .get(format!("{}/", a.url))
            .send()
            .is_err(),
        "no client certificate"
    );
    let rogue = ca("rogue");
    let bad = client(&a.ca, Some(leaf(&rogue, "controller", vec![])));
    assert!(
        bad.get(format!("{}/", a.url)).send().is_err(),
        "client certificate from another CA"
    );
    let r = a.client.get(format!("{}/", a.url)).send().unwrap();
    assert_eq!(r.text().unwrap(), r#"{"api_version":"1.0"}"#);
    let info: serde_json::Value = serde_json::from_str(
        &a.client
            .get(format!("{}/1.0/info", a.url))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    assert!(
        info["haproxy_version"].as_str().unwrap().starts_with('2'),
        "{info}"
    );
    let _ = &a.client_ca;
}

#[test]
fn haproxy_lifecycle_with_hitless_reloads() {
    let _alone = heavy();
    let a = start();
    let run = a.dir.path().join("lb").join(LB);
    let b1 = backend("one");
    let b2 = backend("two");
    let port = free_port();
    let put = |path: &str, body: String| {
        a.client
            .put(format!("{}{path}", a.url))
            .body(body)
            .send()
            .unwrap()
    };
    // A bad config is refused with HAProxy's message.
    let r = put(
        &format!("/1.0/loadbalancer/amp/{LB}/haproxy"),
        "frontend x\n    bind :notaport\n".into(),
    );
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("Invalid request"));
    assert_eq!(
        a.client
            .put(format!("{}/1.0/loadbalancer/{LB}/start", a.url))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    // A good one is installed and started.
    let r = put(
        &format!("/1.0/loadbalancer/amp/{LB}/haproxy"),
        config(LB, &run, port, &[b1, b2]),
    );
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(r.headers()["etag"].len(), 32);
    let r = a
        .client
        .put(format!("{}/1.0/loadbalancer/{LB}/start", a.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{:?}", r.text());
    let plain = reqwest::blocking::Client::new();
    let url = format!("http://127.0.0.1:{port}/");
    let t = Instant::now();
    while plain.get(&url).send().is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "haproxy did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen_requests = 4;
    let seen: std::collections::BTreeSet<String> = (0..seen_requests)
        .map(|_| plain.get(&url).send().unwrap().text().unwrap())
        .collect();
    assert_eq!(seen.len(), 2, "round robin over both backends: {seen:?}");
    // The agent reaches the worker's stats socket (used to save server state and drain
    // keep-alive connections before each reload).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let info = rt
        .block_on(rocta_agent::haproxy::stats_command(
            &format!("rocta-{AMP}-{LB}"),
            "show info",
        ))
        .expect("stats socket");
    assert!(info.contains("Name: HAProxy"), "{info}");
    // Reloads under continuous keep-alive and `Connection: close` traffic: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<(Arc<AtomicU64>, Arc<AtomicU64>)> = (0..2)
        .map(|_| (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))))
        .collect();
    let mut load = Vec::new();
    for (i, keep_alive) in [false, true, true].into_iter().enumerate() {
        let (ok, failed) = counters[usize::from(keep_alive)].clone();
        let (stop, url) = (stop.clone(), url.clone());
        let _ = i;
        load.push(std::thread::spawn(move || {
            let c = if keep_alive {
                reqwest::blocking::Client::new()
            } else {
                reqwest::blocking::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap()
            };
            let t = Instant::now();
            while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(30) {
                match c
                    .get(&url)
                    .send()
                    .and_then(|r| r.error_for_status())
                    .and_then(|r| r.text())
                {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for i in 0..20 {
        let backends = if i % 2 == 0 { vec![b1] } else { vec![b1, b2] };
        assert_eq!(
            put(
                &format!("/1.0/loadbalancer/amp/{LB}/haproxy"),
                config(LB, &run, port, &backends)
            )
            .status()
            .as_u16(),
            202
        );
        let r = a
            .client
            .put(format!("{}/1.0/loadbalancer/{LB}/reload", a.url))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let n = |i: usize| {
        (
            counters[i].0.load(Ordering::Relaxed),
            counters[i].1.load(Ordering::Relaxed),
        )
    };
    let ((close_ok, close_failed), (ka_ok, ka_failed)) = (n(0), n(1));
    eprintln!("20 reloads: Connection: close {close_ok} ok / {close_failed} failed; keep-alive {ka_ok} ok / {ka_failed} failed");
    assert!(close_ok > 100 && ka_ok > 100, "too little traffic");
    assert_eq!(
        close_failed,
        0,
        "{close_failed} of {} new-connection requests failed across 20 reloads",
        close_ok + close_failed
    );
    assert_eq!(
        ka_failed,
        0,
        "{ka_failed} of {} keep-alive requests failed across 20 reloads",
        ka_ok + ka_failed
    );
    // Every request is in the drained log exactly once, and no old worker is kept alive by
    // the drain once its ring is quiet.
    let requests = 1 + seen_requests + close_ok + ka_ok;
    let logged = || {
        std::fs::read_to_string(run.join("traffic.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"GET / HTTP/1.1\""))
            .count() as u64
    };
    let t = Instant::now();
    while logged() < requests && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(logged(), requests, "requests in traffic.log");
    let t = Instant::now();
    while haproxy_pids(&run.display().to_string()).len() > 2 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "old workers still running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A drain session that ends while its worker runs is replaced within the watch period:
    // later requests reach the log again.
    let sock = format!("rocta-{AMP}-{LB}");
    let sessions = stats_command(&sock, "show sess");
    let drain: Vec<&str> = sessions
        .lines()
        .filter(|l| l.contains("fe=GLOBAL") && !l.contains(" age=0s"))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(drain.len(), 1, "one drain session: {sessions}");
    stats_command(&sock, &format!("shutdown session {}", drain[0]));
    std::thread::sleep(rocta_agent::logs::WATCH * 2);
    let before = logged();
    for _ in 0..10 {
        assert!(plain.get(&url).send().unwrap().status().is_success());
    }
    let t = Instant::now();
    while logged() < before + 10 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        logged(),
        before + 10,
        "requests logged after the drain session ended"
    );
    // A bad config leaves the running one serving.
    assert_eq!(
        put(
            &format!("/1.0/loadbalancer/amp/{LB}/haproxy"),
            "garbage\n".into()
        )
        .status()
        .as_u16(),
        400
    );
    assert!(plain.get(&url).send().unwrap().status().is_success());
    // Status, listeners, certificates.
    let st: serde_json::Value = a
        .client
        .get(format!("{}/1.0/loadbalancer/{LB}", a.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(st["status"], "ACTIVE");
    let ls: serde_json::Value = a
        .client
        .get(format!("{}/1.0/listeners", a.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ls[0]["uuid"], "f");
    let cert = format!("/1.0/loadbalancer/{LB}/certificates/abc.pem");
    assert_eq!(put(&cert, "PEM".into()).status().as_u16(), 200);
    let md: serde_json::Value = a
        .client
        .get(format!("{}{cert}", a.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(md["md5sum"], format!("{:032x}", md5_of(b"PEM")));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(run.join("certs/abc.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        put(
            &format!("/1.0/loadbalancer/{LB}/certificates/..%2Fx.pem"),
            "x".into()
        )
        .status()
        .as_u16(),
        400
    );
    // Delete ends the processes and removes the files.
    let mine = run.display().to_string();
    assert!(!haproxy_pids(&mine).is_empty());
    assert_eq!(
        a.client
            .delete(format!("{}/1.0/listeners/{LB}", a.url))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert!(haproxy_pids(&mine).is_empty(), "haproxy still running");
    assert!(!run.exists());
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(200),
    );
    if let Ok(s) = s.as_mut() {
        let mut buf = [0u8; 1];
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        assert!(s.read(&mut buf).unwrap_or(0) == 0, "the port still answers");
    }
}

fn md5_of(b: &[u8]) -> u128 {
    use md5::Digest;
    u128::from_be_bytes(md5::Md5::digest(b).into())
}

/// A valid agent configuration for `a` (its identity and address unchanged).
fn agent_toml(a: &Agent) -> String {
    format!(
        "bind = \"127.0.0.1:0\"\namphora_id = \"{AMP}\"\nbase_dir = \"{b}/lb\"\nserver_cert = \"{b}/server.pem\"\nclient_ca = \"{b}/client_ca.pem\"\nhaproxy_bin = \"/usr/sbin/haproxy\"\n",
        b = a.dir.path().display()
    )
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn server_certificate_rotation() {
    let a = start();
    let amp = "5c0f8a8e-0d3c-4c61-9c57-0a2b7c1b1a01";
    let new = leaf(
        &a.ca,
        amp,
        vec![SanType::IpAddress("127.0.0.1".parse().unwrap())],
    );
    let r = a
        .client
        .put(format!("{}/1.0/certificate", a.url))
        .body(new.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(
        std::fs::read_to_string(a.dir.path().join("server.pem")).unwrap(),
        new
    );
    // It holds the private key: private, whatever the umask.
    assert_eq!(mode(&a.dir.path().join("server.pem")), 0o600);
    // A fresh client (new handshake) still verifies against the CA.
    let fresh = client(&a.ca, Some(leaf(&a.client_ca, "controller", vec![])));
    assert!(fresh
        .get(format!("{}/", a.url))
        .send()
        .unwrap()
        .status()
        .is_success());
    let r = a
        .client
        .put(format!("{}/1.0/certificate", a.url))
        .body("not a pem")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[test]
fn agent_configuration_update() {
    let a = start();
    let path = a.dir.path().join("agent.toml");
    let good = agent_toml(&a);
    let r = a
        .client
        .put(format!("{}/1.0/config", a.url))
        .body(good.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), good);
    assert_eq!(mode(&path), 0o600, "it may hold the heartbeat key");
    let other = good.replace(AMP, "00000000-0000-4000-8000-000000000000");
    assert_eq!(
        a.client
            .put(format!("{}/1.0/config", a.url))
            .body(other)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        a.client
            .put(format!("{}/1.0/config", a.url))
            .body("nonsense = [")
            .send()
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        good,
        "a refused update must not touch the file"
    );
}

#[test]
fn heartbeats_report_listeners_with_octavia_envelope() {
    let hm = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    hm.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let a = start_with(vec![hm.local_addr().unwrap().to_string()], "hb-key");
    const LB2: &str = "1c5c7b47-49b4-4a44-9f3f-9d3b7f01b1bb";
    let run = a.dir.path().join("lb").join(LB2);
    let port = free_port();
    let b1 = backend("one");
    let put = |path: &str, body: String| {
        a.client
            .put(format!("{}{path}", a.url))
            .body(body)
            .send()
            .unwrap()
    };
    assert_eq!(
        put(
            &format!("/1.0/loadbalancer/amp/{LB2}/haproxy"),
            config(LB2, &run, port, &[b1])
        )
        .status()
        .as_u16(),
        202
    );
    assert_eq!(
        a.client
            .put(format!("{}/1.0/loadbalancer/{LB2}/start", a.url))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        202
    );
    let mut buf = [0u8; 65536];
    let mut last_seq = 0;
    let t = Instant::now();
    loop {
        let n = hm.recv(&mut buf).expect("no heartbeat within 5 s");
        let msg = rocta_proto::heartbeat::decode(&buf[..n], b"hb-key").expect("valid envelope");
        assert_eq!(msg.id, AMP);
        assert!(msg.seq > last_seq, "sequence numbers increase");
        last_seq = msg.seq;
        if let Some((id, l)) = msg.listeners.0.first() {
            assert_eq!(id, "f");
            assert_eq!(l.status, "OPEN");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "no listener reported");
    }
    // Forged by another key: refused by the receiver's decoder.
    let n = hm.recv(&mut buf).unwrap();
    assert!(rocta_proto::heartbeat::decode(&buf[..n], b"other").is_err());
}

/// Serializes the tests that load the machine (traffic under reloads, hostile connections):
/// run side by side on two cores, each would measure the other.
fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// CPU time (user + system), in clock ticks, of the agents' runtime threads in this process
/// (other tests run beside it).
fn cpu_ticks() -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        if !stat.contains("(rocta-agent)") {
            continue;
        }
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        // utime and stime, fields 14 and 15 of proc(5), counted after the command name.
        total += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    total
}

/// Idle and slow peers (1,000 connections that send nothing, 200 that stall in the middle of
/// their TLS handshake) neither keep the controller from configuring the agent nor make the
/// agent spin.
#[test]
fn hostile_connections_do_not_keep_the_controller_out() {
    let _alone = heavy();
    let a = start();
    let addr = a.url.trim_start_matches("https://").to_string();
    let mut held = Vec::new();
    for _ in 0..1000 {
        held.push(TcpStream::connect(&addr).unwrap());
    }
    for _ in 0..200 {
        let mut s = TcpStream::connect(&addr).unwrap();
        // A TLS record header announcing a 512-byte ClientHello, then only its first bytes.
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
            .unwrap();
        held.push(s);
    }
    let controller = client(&a.ca, Some(leaf(&a.client_ca, "controller", vec![])));
    let t = Instant::now();
    let r = controller
        .get(format!("{}/1.0/info", a.url))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let path = a.dir.path().join("agent.toml");
    let cfg = agent_toml(&a);
    let r = controller
        .put(format!("{}/1.0/config", a.url))
        .body(cfg.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), cfg);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the controller waited {:?}",
        t.elapsed()
    );
    // With every hostile connection still open, the agent stays idle.
    let ticks = clock_ticks_per_second();
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let used = (cpu_ticks() - before) as f64 / ticks as f64;
    assert!(
        used < 0.2,
        "{used:.2} s of agent CPU in 2 s with idle peers"
    );
    // The agent holds no more unauthenticated connections than its bound: the oldest were
    // closed to make room.
    let mut open = 0;
    for s in &mut held {
        s.set_nonblocking(true).unwrap();
        let r = s.read(&mut [0u8; 64]);
        open += matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) as usize;
    }
    assert!(
        open <= rocta_agent::LIMITS.handshakes,
        "{open} hostile connections still held open"
    );
}

/// Clock ticks per second as `getconf CLK_TCK` reports it (100 on Linux).
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// The framework's refusals (a path that is not UTF-8, a wrong method) carry the agent's JSON
/// error body like every other error (found by the agent_requests fuzz target).
#[test]
fn framework_refusals_are_json() {
    let a = start();
    for (method, path, status) in [
        (reqwest::Method::GET, "/1.0/loadbalancer/%FF", 400),
        (reqwest::Method::POST, "/1.0/info", 405),
    ] {
        let r = a
            .client
            .request(method, format!("{}{path}", a.url))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        let body: serde_json::Value = r.json().unwrap();
        assert!(body["message"].is_string(), "{path}: {body}");
    }
}
