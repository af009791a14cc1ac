//! Test harness: starts the real `rocta` binary on an ephemeral port with a generated config in
//! a temporary data dir, and drives it over HTTP.
#![allow(dead_code)]

pub mod dataplane;
pub mod netns;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const SUBNET: &str = "11111111-2222-3333-4444-555555555555";

pub struct Rocta {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
    _stdout: BufReader<ChildStdout>,
    http: reqwest::blocking::Client,
    pub project: String,
}

/// Default test config: short leases so resumed jobs are picked up quickly.
pub const TEST_CONFIG: &str =
    "[controller_worker]\njob_lease_seconds = 2\njob_poll_interval_ms = 50\n\
     [health_manager]\nbind_port = 0\nheartbeat_interval = 0.5\n";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rocta")
}

impl Rocta {
    /// Starts `rocta serve --drivers noop` in a fresh temporary directory.
    pub fn start() -> (tempfile::TempDir, Rocta) {
        let dir = tempfile::tempdir().unwrap();
        let r = Rocta::start_in(dir.path(), "serve", TEST_CONFIG, &[]);
        (dir, r)
    }

    /// Starts `role` with `config` in `dir` (reused across restarts) and extra env vars.
    pub fn start_in(dir: &Path, role: &str, config: &str, env: &[(&str, &str)]) -> Rocta {
        Rocta::start_with(dir, role, config, env, Some("noop"))
    }

    /// Starts `rocta serve` on its default drivers (as root: amphorae in namespaces).
    pub fn start_default(dir: &Path) -> Rocta {
        Rocta::start_with(dir, "serve", TEST_CONFIG, &[], None)
    }

    /// Starts `rocta serve` on the drivers `config` chooses.
    pub fn start_configured(dir: &Path, config: &str) -> Rocta {
        Rocta::start_with(dir, "serve", config, &[], None)
    }

    /// `start_configured` with extra environment (fault injection).
    pub fn start_configured_with(dir: &Path, config: &str, env: &[(&str, &str)]) -> Rocta {
        Rocta::start_with(dir, "serve", config, env, None)
    }

    /// Starts `rocta serve --drivers netns` (amphorae in network namespaces) with `config`.
    pub fn start_netns(dir: &Path, config: &str) -> Rocta {
        Rocta::start_with(dir, "serve", config, &[], Some("netns"))
    }

    /// Starts `rocta serve` with the real drivers (local amphorae, loopback network, HAProxy).
    pub fn start_real(dir: &Path) -> Rocta {
        Rocta::start_with(dir, "serve", TEST_CONFIG, &[], Some("local"))
    }

    /// `start_real` with a config and extra environment (fault injection).
    pub fn start_real_with(dir: &Path, config: &str, env: &[(&str, &str)]) -> Rocta {
        Rocta::start_with(dir, "serve", config, env, Some("local"))
    }

    /// Starts `role` on the real drivers, with its own config file (`<role>-<n>.toml`) so that
    /// processes of one data dir can differ (e.g. each health manager's port).
    pub fn start_role_real(dir: &Path, role: &str, config: &str, env: &[(&str, &str)]) -> Rocta {
        Rocta::start_with(dir, role, config, env, Some("local"))
    }

    /// Starts `rocta serve --drivers netns` inside network namespace `host` (a test's
    /// "host"), its API on `api_ip` there (an address the test can reach).
    pub fn start_netns_on(dir: &Path, host: &str, api_ip: &str, config: &str) -> Rocta {
        Rocta::spawn(dir, "serve", config, &[], Some("netns"), Some(host), api_ip)
    }

    fn start_with(
        dir: &Path,
        role: &str,
        config: &str,
        env: &[(&str, &str)],
        drivers: Option<&str>,
    ) -> Rocta {
        Rocta::spawn(dir, role, config, env, drivers, None, "127.0.0.1")
    }

    fn spawn(
        dir: &Path,
        role: &str,
        config: &str,
        env: &[(&str, &str)],
        drivers: Option<&str>,
        netns: Option<&str>,
        api_ip: &str,
    ) -> Rocta {
        let cfg = (0..)
            .map(|n| dir.join(format!("rocta-{role}-{n}.toml")))
            .find(|p| !p.exists())
            .expect("a free config name");
        std::fs::write(&cfg, config).unwrap();
        let mut cmd = match netns {
            None => Command::new(bin()),
            // Only the network namespace: `ip netns exec` would give it a mount namespace of
            // its own, where the amphorae's namespaces it makes would stay out of the test's
            // sight.
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg(bin());
                c
            }
        };
        cmd.arg(role)
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.join("data"))
            // ROCTA_TEST_LOG=warn shows why a flow failed (a step's error is a warning).
            .env(
                "RUST_LOG",
                std::env::var("ROCTA_TEST_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let has_api = matches!(role, "serve" | "api");
        if has_api {
            cmd.arg("--api-bind").arg(format!("{api_ip}:0"));
        }
        if let Some(d) = drivers {
            cmd.arg("--drivers").arg(d);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn rocta");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut url = String::new();
        if has_api {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            url = line
                .trim()
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_string();
            assert!(url.starts_with("http://"), "unexpected first line {line:?}");
        }
        Rocta {
            child,
            url,
            dir: dir.to_path_buf(),
            _stdout: out,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            project: "p1".into(),
        }
    }

    /// Sends a request with `X-Project-Id` (and `X-Roles` when given); returns status and JSON.
    pub fn req_as(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        project: &str,
        roles: Option<&str>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self
            .http
            .request(m, format!("{}{}", self.url, path))
            .header("X-Project-Id", project);
        if let Some(r) = roles {
            rb = rb.header("X-Roles", r);
        }
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = rb.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, v)
    }

    /// Like `req`, but a failed connection (the server died mid-request) is `None`.
    pub fn try_req(&self, method: &str, path: &str, body: Option<Value>) -> Option<u16> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
        let mut rb = self
            .http
            .request(m, format!("{}{}", self.url, path))
            .header("X-Project-Id", &self.project);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        rb.send().ok().map(|r| r.status().as_u16())
    }

    pub fn req(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.req_as(method, path, body, &self.project, None)
    }

    pub fn raw(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .http
            .request(m, format!("{}{}", self.url, path))
            .header("X-Project-Id", &self.project)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .expect("request");
        let status = resp.status().as_u16();
        (
            status,
            serde_json::from_str(&resp.text().unwrap_or_default()).unwrap_or(Value::Null),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.req("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.req("POST", path, Some(body))
    }

    pub fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.req("PUT", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.req("DELETE", path, None)
    }

    /// Creates a load balancer and waits until it is ACTIVE; returns its id.
    pub fn lb(&self) -> String {
        let (s, b) = self.post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"name": "lb", "vip_subnet_id": SUBNET}}),
        );
        assert_eq!(s, 201, "{b}");
        let id = b["loadbalancer"]["id"].as_str().unwrap().to_string();
        self.wait_active(&id);
        id
    }

    /// Creates a load balancer from `body` (201) and waits until it is ACTIVE: its id, VIP
    /// and the create's answer.
    pub fn create_lb(&self, body: Value) -> (String, String, Value) {
        let (s, lb) = self.post("/v2/lbaas/loadbalancers", body);
        assert_eq!(s, 201, "{lb}");
        let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
        let vip = lb["loadbalancer"]["vip_address"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.wait_active(&id);
        (id, vip, lb)
    }

    /// Polls until the load balancer is ACTIVE (panics on ERROR or after 10 s).
    pub fn wait_active(&self, lb: &str) -> Value {
        self.wait_status(lb, "ACTIVE")
    }

    pub fn wait_status(&self, lb: &str, want: &str) -> Value {
        let t = Instant::now();
        loop {
            let (s, b) = self.get(&format!("/v2/lbaas/loadbalancers/{lb}"));
            let st = b["loadbalancer"]["provisioning_status"]
                .as_str()
                .unwrap_or("");
            if s == 200 && st == want {
                return b["loadbalancer"].clone();
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "lb {lb} stuck: {s} {b}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Creates a child object under `path` and waits for its load balancer.
    pub fn child(&self, lb: &str, path: &str, body: Value) -> Value {
        let (s, b) = self.post(path, body);
        assert_eq!(s, 201, "POST {path}: {b}");
        self.wait_active(lb);
        b
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself (e.g. an injected crash).
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Rocta {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asserts an Octavia fault body with this status.
pub fn assert_fault(got: (u16, Value), status: u16, contains: &str) {
    let (s, b) = got;
    assert_eq!(s, status, "body: {b}");
    assert_eq!(
        b["faultcode"],
        if status >= 500 { "Server" } else { "Client" },
        "{b}"
    );
    assert!(b["debuginfo"].is_null(), "{b}");
    let msg = b["faultstring"].as_str().unwrap_or_default();
    assert!(
        msg.contains(contains),
        "faultstring {msg:?} lacks {contains:?}"
    );
}

/// Kills the amphora processes of a test's directory when the test ends, passed or failed.
pub struct Reaper(pub String);

impl Reaper {
    /// Reaps the amphorae whose command lines name `dir`.
    pub fn new(dir: &Path) -> Reaper {
        Reaper(dir.display().to_string())
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let hit = std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains(&self.0) && (c.contains("amphora-agent") || c.contains("haproxy"))
            });
            if hit {
                let _ = std::process::Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
}

/// Checks Prometheus text with Prometheus' own parser and linter (`promtool check metrics`,
/// Debian's `prometheus` package): a parse error or a lint problem fails the test.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install -y --no-install-recommends prometheus)");
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every PromQL query of a Grafana dashboard, with Grafana's variables given values.
pub fn dashboard_queries(dashboard: &str) -> Vec<String> {
    let d: Value = serde_json::from_str(dashboard).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            out.push(
                e.replace("$__rate_interval", "1m")
                    .replace("$__range", "1h")
                    .replace("$job", ".*"),
            );
        }
    }
    assert!(out.len() > 10, "{out:?}");
    out
}

/// Checks that every metric a dashboard's queries read (rocta's, Octavia's, the process
/// collector's) is in `scraped`: a sample, or its family's TYPE line (a gauge without series).
pub fn dashboard_reads_only(dashboard: &str, scraped: &str) {
    for q in dashboard_queries(dashboard) {
        let names = q
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| {
                ["rocta_", "octavia_", "process_"]
                    .iter()
                    .any(|p| w.starts_with(p))
            });
        for name in names {
            let served = scraped.lines().any(|l| {
                l.starts_with(&format!("{name} "))
                    || l.starts_with(&format!("{name}{{"))
                    || l.starts_with(&format!("# TYPE {name} "))
            });
            assert!(
                served,
                "the dashboard's {name} is not served ({q}):\n{scraped}"
            );
        }
    }
}

/// Parses each query of a dashboard with Prometheus' own PromQL parser (as recording rules,
/// `promtool check rules`).
pub fn dashboard_parses(dashboard: &str) {
    let rules: Vec<Value> = dashboard_queries(dashboard)
        .iter()
        .enumerate()
        .map(|(i, q)| json!({"record": format!("rocta:dashboard_{i}"), "expr": q}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    // JSON is YAML.
    std::fs::write(
        &file,
        json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool (apt-get install -y --no-install-recommends prometheus)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
