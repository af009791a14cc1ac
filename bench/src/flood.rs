//! `rocta-bench flood`: offers heartbeats (Octavia's envelope, as real amphorae send them) to a
//! health manager at increasing rates and reports what it processed and shed, read from its
//! metrics file. The amphorae are real records: `lbs` load balancers (listener, pool, member)
//! are created through the API first (reused when they exist). Each step is bounded in count
//! and time; loopback only.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use rocta_proto::heartbeat::{
    encode, Heartbeat, ListenerReport, ListenerStats, Ordered, PoolReport,
};
use serde_json::json;

use crate::Api;

/// One amphora as its heartbeat names it.
struct Amp {
    id: String,
    listener: String,
    pool: String,
    member: String,
}

pub struct Args<'a> {
    pub hm: &'a str,
    pub key: &'a str,
    pub lbs: usize,
    pub rates: &'a [u64],
    pub secs: u64,
    pub metrics: &'a str,
}

const PROJECT: &str = "bench-flood";

fn setup(a: &Api, n: usize) -> Vec<Amp> {
    let (_, have) = a.call("GET", &format!("/loadbalancers?project_id={PROJECT}"), None);
    let have = have["loadbalancers"]
        .as_array()
        .map(|v| v.len())
        .unwrap_or(0);
    let mut last = None;
    for _ in have..n {
        last = Some(a.create(
            "/loadbalancers",
            "loadbalancer",
            json!({"loadbalancer": {"vip_subnet_id": a.subnet,
                "listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": {"name": "p"}}],
                "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                    "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 5, "max_retries": 3},
                    "members": [{"address": "127.0.0.1", "protocol_port": 9}]}]}}),
        ));
    }
    if let Some(lb) = last {
        a.wait_active(&lb);
    }
    let (_, lbs) = a.call(
        "GET",
        &format!("/loadbalancers?project_id={PROJECT}&limit={}", n.max(1)),
        None,
    );
    let (_, amps) = a.raw("GET", "/v2/octavia/amphorae");
    let amp_of: HashMap<&str, &str> = amps["amphorae"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["status"] == "ALLOCATED")
        .filter_map(|x| Some((x["loadbalancer_id"].as_str()?, x["id"].as_str()?)))
        .collect();
    let mut out = Vec::new();
    for lb in lbs["loadbalancers"].as_array().into_iter().flatten() {
        let id = lb["id"].as_str().unwrap_or_default();
        let (Some(amp), Some(pool)) = (amp_of.get(id), lb["pools"][0]["id"].as_str()) else {
            continue;
        };
        let (_, m) = a.call("GET", &format!("/pools/{pool}/members"), None);
        out.push(Amp {
            id: amp.to_string(),
            listener: lb["listeners"][0]["id"].as_str().unwrap_or_default().into(),
            pool: pool.into(),
            member: m["members"][0]["id"].as_str().unwrap_or_default().into(),
        });
    }
    out
}

fn heartbeat(a: &Amp, seq: u64) -> Heartbeat {
    Heartbeat {
        id: a.id.clone(),
        seq,
        ver: 3,
        listeners: Ordered(vec![(
            a.listener.clone(),
            ListenerReport {
                status: "OPEN".into(),
                stats: ListenerStats {
                    tx: 1000,
                    rx: 100,
                    conns: 1,
                    totconns: 10,
                    ereq: 0,
                },
            },
        )]),
        pools: Ordered(vec![(
            format!("{}:{}", a.pool, a.listener),
            PoolReport {
                status: "UP".into(),
                members: Ordered(vec![(a.member.clone(), "UP".into())]),
            },
        )]),
    }
}

/// The health manager's counters (Prometheus text file).
fn counters(path: &str) -> HashMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

pub fn run(a: &Api, args: Args<'_>) {
    let t = Instant::now();
    let amps = setup(a, args.lbs);
    assert!(!amps.is_empty(), "no amphorae to send as");
    eprintln!(
        "{} amphorae ready in {:.1}s",
        amps.len(),
        t.elapsed().as_secs_f64()
    );
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_nonblocking(false).ok();
    // Sequence numbers continue across steps and runs (the health manager keeps the last).
    let mut seq = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0))
        * 1000;
    println!("offered/s  sent/s  processed/s  shed  dropped(other)  processed%");
    for &rate in args.rates {
        let total = (rate * args.secs) as usize;
        // Pre-encoded (zlib + HMAC as the agent does), so sending costs one syscall each.
        let datagrams: Vec<Vec<u8>> = (0..total)
            .map(|i| {
                if i % amps.len() == 0 {
                    seq += 1;
                }
                encode(&heartbeat(&amps[i % amps.len()], seq), args.key.as_bytes())
            })
            .collect();
        let before = counters(args.metrics);
        let start = Instant::now();
        let tick = Duration::from_millis(1);
        let per_tick = (rate as f64 / 1000.0).max(1.0);
        let mut sent = 0usize;
        let mut due = 0.0f64;
        while sent < total && start.elapsed() < Duration::from_secs(args.secs * 3) {
            due += per_tick;
            while (sent as f64) < due && sent < total {
                let _ = sock.send_to(&datagrams[sent], args.hm);
                sent += 1;
            }
            let next = tick * ((due / per_tick) as u32);
            if let Some(wait) = next.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let sending = start.elapsed().as_secs_f64();
        let d = |after: &HashMap<String, u64>, k: &str| {
            after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0)
        };
        let processed_in = |c: &HashMap<String, u64>| {
            d(c, "rocta_heartbeats_accepted_total") + d(c, "rocta_heartbeats_superseded_total")
        };
        // Until the backlog is worked off: the rate counts the time it took.
        let (mut after, mut last, mut end) = (counters(args.metrics), 0, start.elapsed());
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(150));
            after = counters(args.metrics);
            let p = processed_in(&after);
            if p == last && start.elapsed().as_secs_f64() > sending + 0.3 {
                break;
            }
            if p != last {
                end = start.elapsed();
            }
            last = p;
        }
        let took = end.as_secs_f64().max(sending);
        let processed = processed_in(&after);
        let d = |k: &str| d(&after, k);
        let shed = d("rocta_heartbeats_dropped_total{reason=\"shed\"}");
        let other: u64 = [
            "forged",
            "malformed",
            "oversized",
            "replayed",
            "unknown_amphora",
        ]
        .iter()
        .map(|r| d(&format!("rocta_heartbeats_dropped_total{{reason=\"{r}\"}}")))
        .sum();
        println!(
            "{rate:>9}  {:>6.0}  {:>11.0}  {shed:>4}  {other:>14}  {:>9.1}",
            sent as f64 / sending,
            processed as f64 / took,
            processed as f64 * 100.0 / sent.max(1) as f64
        );
    }
}
