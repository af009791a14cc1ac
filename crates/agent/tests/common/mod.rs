//! What the agent's tests share: a test CA and leaf certificates, an agent started on
//! `127.0.0.1:0` in a temporary directory (its HAProxies killed when it is dropped), a
//! mutual-TLS client, small HTTP backends, a rendered config and stats-socket helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

pub fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf certificate + key PEM signed by `ca`.
pub fn leaf(ca: &Ca, cn: &str, sans: Vec<SanType>) -> String {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = sans;
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tiny keep-alive HTTP backend answering `hello from <name>`.
pub fn backend(name: &'static str) -> u16 {
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

pub struct Agent {
    pub url: String,
    pub client: reqwest::blocking::Client,
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub client_ca: Ca,
    pub _stop: tokio_util::sync::CancellationToken,
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

pub fn client(server_ca: &Ca, identity: Option<String>) -> reqwest::blocking::Client {
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

pub fn start() -> Agent {
    start_with(vec![], "")
}

pub fn start_with(controllers: Vec<String>, key: &str) -> Agent {
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
        log_shipping: Default::default(),
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

pub fn config(lb: &str, run: &Path, port: u16, backends: &[u16]) -> String {
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

pub const LB: &str = "0b4b6a36-38a3-4f33-8f2e-8c2a6ef0a0aa";
pub const AMP: &str = "5c0f8a8e-0d3c-4c61-9c57-0a2b7c1b1a01";

/// One command on a HAProxy stats socket (the agent's own client, on a throwaway runtime).
pub fn stats_command(name: &str, cmd: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(rocta_agent::haproxy::stats_command(name, cmd))
        .unwrap()
}

/// Processes whose command line mentions `needle` (e.g. a test's temporary directory).
pub fn haproxy_pids(needle: &str) -> Vec<u32> {
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

/// A valid agent configuration for `a` (its identity and address unchanged).
pub fn agent_toml(a: &Agent) -> String {
    format!(
        "bind = \"127.0.0.1:0\"\namphora_id = \"{AMP}\"\nbase_dir = \"{b}/lb\"\nserver_cert = \"{b}/server.pem\"\nclient_ca = \"{b}/client_ca.pem\"\nhaproxy_bin = \"/usr/sbin/haproxy\"\n",
        b = a.dir.path().display()
    )
}

/// Waits until `url` answers through `client` (HAProxy just started), at most 5 s.
pub fn wait_serving(client: &reqwest::blocking::Client, url: &str) {
    let t = std::time::Instant::now();
    while client.get(url).send().is_err() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "haproxy did not come up"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
