//! `rocta-bench`: measures control-plane latencies against an Octavia v2 endpoint, the way a
//! polling client sees them (every request counted, polling every `--poll-ms`).
//! Every run is bounded in count and time and stops by itself. Loopback targets only.

mod flood;
mod tls;

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Parser)]
struct Cli {
    /// API base URL, e.g. http://127.0.0.1:9876
    #[arg(long, default_value = "http://127.0.0.1:9876")]
    url: String,
    /// Poll interval while waiting for ACTIVE.
    #[arg(long, default_value_t = 2)]
    poll_ms: u64,
    /// VIP subnet of the load balancers created (the loopback network's is
    /// 0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b; noop drivers accept any).
    #[arg(long, default_value = "11111111-2222-3333-4444-555555555555")]
    subnet: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load balancer create → ACTIVE, `n` times.
    Create {
        #[arg(long, default_value_t = 100)]
        n: usize,
    },
    /// Full tree (LB, listener, pool, 2 members, monitor), waiting for ACTIVE after each.
    Tree {
        #[arg(long, default_value_t = 30)]
        n: usize,
    },
    /// Member create + wait: `clients` threads, each on its own load balancer, for `seconds`.
    Members {
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// A minimal keep-alive HTTP backend answering `name` (one thread; pin it with taskset).
    Backend {
        #[arg(long)]
        port: u16,
        /// The address to listen on (a tenant network's gateway for amphorae in namespaces).
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        #[arg(long, default_value = "ok")]
        name: String,
    },
    /// Offers heartbeats to a health manager at increasing rates (see flood.rs).
    Flood {
        /// The health manager's UDP address.
        #[arg(long, default_value = "127.0.0.1:5555")]
        hm: String,
        /// The heartbeat key (`[health_manager] heartbeat_key`).
        #[arg(long)]
        key: String,
        /// Load balancers (one amphora each) sending heartbeats.
        #[arg(long, default_value_t = 2000)]
        lbs: usize,
        /// Offered rates (heartbeats/s), comma-separated, one step each.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "10000,25000,50000,75000,100000"
        )]
        rates: Vec<u64>,
        /// Seconds per step.
        #[arg(long, default_value_t = 4)]
        secs: u64,
        /// The health manager's metrics file (`[health_manager] metrics_file`).
        #[arg(long)]
        metrics: String,
    },
    /// TLS 1.3 connections per second (one request each) to a TERMINATED_HTTPS listener
    /// (see tls.rs).
    Tls {
        /// `host:port` of the listener.
        #[arg(long)]
        target: String,
        /// The name its certificate carries.
        #[arg(long)]
        name: String,
        /// PEM file of the CA that signed its certificate.
        #[arg(long)]
        ca: String,
        #[arg(long, default_value_t = 32)]
        conns: usize,
        #[arg(long, default_value_t = 5)]
        secs: u64,
        /// Resume each client's previous session instead of a full handshake every time.
        #[arg(long)]
        resume: bool,
    },
    /// Ensures exactly `count` load balancers exist in project `bench-list`; prints one id.
    Fill {
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
}

struct Api {
    base: String,
    http: reqwest::blocking::Client,
    project: String,
    poll: Duration,
    subnet: String,
}

impl Api {
    /// A request outside `/v2/lbaas` (e.g. `/v2/octavia/amphorae`).
    fn raw(&self, method: &str, path: &str) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        match self
            .http
            .request(m, format!("{}{path}", self.base))
            .header("X-Project-Id", &self.project)
            .send()
        {
            Ok(r) => (r.status().as_u16(), r.json().unwrap_or(Value::Null)),
            Err(e) => panic!("request failed: {e}"),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self
            .http
            .request(m, format!("{}/v2/lbaas{}", self.base, path))
            .header("X-Project-Id", &self.project);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        match rb.send() {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.json().unwrap_or(Value::Null))
            }
            Err(e) => panic!("request failed: {e}"),
        }
    }

    fn create(&self, path: &str, key: &str, body: Value) -> String {
        let (s, b) = self.call("POST", path, Some(body));
        assert_eq!(s, 201, "POST {path}: {b}");
        b[key]["id"].as_str().expect("id").to_string()
    }

    fn wait_active(&self, lb: &str) {
        let t = Instant::now();
        loop {
            let (_, b) = self.call("GET", &format!("/loadbalancers/{lb}"), None);
            match b["loadbalancer"]["provisioning_status"].as_str() {
                Some("ACTIVE") => return,
                Some("ERROR") => panic!("load balancer {lb} went ERROR"),
                _ => {}
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "timeout waiting for {lb}"
            );
            std::thread::sleep(self.poll);
        }
    }

    fn lb(&self) -> String {
        let id = self.create(
            "/loadbalancers",
            "loadbalancer",
            json!({"loadbalancer": {"vip_subnet_id": self.subnet}}),
        );
        self.wait_active(&id);
        id
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn report(name: &str, mut ms: Vec<f64>) {
    let p50 = pct(&mut ms, 0.5);
    let p95 = pct(&mut ms, 0.95);
    println!("{name}: n={} p50={p50:.2}ms p95={p95:.2}ms", ms.len());
}

fn api(cli: &Cli, project: &str) -> Api {
    Api {
        base: cli.url.trim_end_matches('/').to_string(),
        http: reqwest::blocking::Client::new(),
        project: project.to_string(),
        poll: Duration::from_millis(cli.poll_ms),
        subnet: cli.subnet.clone(),
    }
}

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Backend { port, bind, name } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let body: &'static str = Box::leak(name.into_boxed_str());
                let app = axum::Router::new().fallback(move || async move { body });
                let l = tokio::net::TcpListener::bind((bind.as_str(), port))
                    .await
                    .expect("bind backend port");
                axum::serve(l, app).await.expect("serve");
            });
        }
        Cmd::Create { n } => {
            let a = api(&cli, "bench-create");
            let ms = (0..n)
                .map(|_| {
                    let t = Instant::now();
                    a.lb();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            report("lb_create_to_active", ms);
        }
        Cmd::Tree { n } => {
            let a = api(&cli, "bench-tree");
            let ms = (0..n)
                .map(|_| {
                    let t = Instant::now();
                    let lb = a.lb();
                    let li = a.create("/listeners", "listener", json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}}));
                    a.wait_active(&lb);
                    let po = a.create("/pools", "pool", json!({"pool": {"listener_id": li, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}));
                    a.wait_active(&lb);
                    for i in 0..2 {
                        a.create(&format!("/pools/{po}/members"), "member", json!({"member": {"address": format!("192.0.2.{}", 10 + i), "protocol_port": 80}}));
                        a.wait_active(&lb);
                    }
                    a.create("/healthmonitors", "healthmonitor", json!({"healthmonitor": {"pool_id": po, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3}}));
                    a.wait_active(&lb);
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            report("full_tree_to_active", ms);
        }
        Cmd::Members { clients, seconds } => {
            let deadline = Duration::from_secs(seconds);
            let handles: Vec<_> = (0..clients)
                .map(|c| {
                    let a = api(&cli, &format!("bench-members-{c}"));
                    std::thread::spawn(move || {
                        let lb = a.lb();
                        let li = a.create("/listeners", "listener", json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}}));
                        a.wait_active(&lb);
                        let po = a.create("/pools", "pool", json!({"pool": {"listener_id": li, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}));
                        a.wait_active(&lb);
                        let t = Instant::now();
                        let mut n = 0u32;
                        while t.elapsed() < deadline && n < 60_000 {
                            a.create(&format!("/pools/{po}/members"), "member", json!({"member": {"address": format!("10.{}.{}.{}", n / 65536 % 256, n / 256 % 256, n % 256), "protocol_port": 80}}));
                            a.wait_active(&lb);
                            n += 1;
                        }
                        (n, t.elapsed())
                    })
                })
                .collect();
            let mut total = 0u32;
            let mut longest = Duration::ZERO;
            for h in handles {
                let (n, d) = h.join().expect("client thread");
                total += n;
                longest = longest.max(d);
            }
            println!(
                "member_create_and_wait: clients={clients} members={total} rate={:.1}/s",
                total as f64 / longest.as_secs_f64()
            );
        }
        Cmd::Flood {
            ref hm,
            ref key,
            lbs,
            ref rates,
            secs,
            ref metrics,
        } => {
            let a = api(&cli, "bench-flood");
            flood::run(
                &a,
                flood::Args {
                    hm,
                    key,
                    lbs,
                    rates,
                    secs,
                    metrics,
                },
            );
        }
        Cmd::Tls {
            ref target,
            ref name,
            ref ca,
            conns,
            secs,
            resume,
        } => tls::run(tls::Args {
            target,
            name,
            ca,
            conns,
            secs,
            resume,
        }),
        Cmd::Fill { count } => {
            let a = api(&cli, "bench-list");
            let (_, b) = a.call("GET", "/loadbalancers?project_id=bench-list", None);
            let have = b["loadbalancers"].as_array().map(|v| v.len()).unwrap_or(0);
            let mut last = b["loadbalancers"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for _ in have..count {
                last = a.create(
                    "/loadbalancers",
                    "loadbalancer",
                    json!({"loadbalancer": {"vip_subnet_id": a.subnet}}),
                );
            }
            if !last.is_empty() {
                a.wait_active(&last);
            }
            println!("{last}");
        }
    }
}
