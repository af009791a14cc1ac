//! End to end with real amphorae: `rocta serve` on its default drivers (an agent process per
//! amphora, HAProxy, loopback VIPs, mutual TLS), backends started by the test, traffic through
//! the VIP.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const PUBLIC: &str = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b";

/// A keep-alive HTTP backend answering its name (and echoing nothing else).
fn backend(name: &'static str) -> u16 {
    serve_backend(TcpListener::bind("127.0.0.1:0").unwrap(), name)
}

fn serve_backend(l: TcpListener, name: &'static str) -> u16 {
    switchable_backend(l, name, Arc::new(AtomicBool::new(true)))
}

/// A backend that answers while `alive`, and otherwise closes each new connection at once
/// (a failed HTTP health check).
fn switchable_backend(l: TcpListener, name: &'static str, alive: Arc<AtomicBool>) -> u16 {
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            if !alive.load(Ordering::Relaxed) {
                drop(s);
                continue;
            }
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                loop {
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if write!(
                        w,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                        name.len()
                    )
                    .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn get(url: &str) -> Option<(u16, String)> {
    let c = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = c.get(url).send().ok()?;
    Some((r.status().as_u16(), r.text().unwrap_or_default()))
}

/// Amphora processes (agents and HAProxy) whose command line mentions `needle`.
fn processes(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains(needle) && (c.contains("amphora-agent") || c.contains("haproxy"))
            })
        })
        .count()
}

/// Waits until `f` holds (the data plane converges after the API says ACTIVE at most a reload later).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn traffic_through_a_real_amphora() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let (a, b) = (backend("A"), backend("B"));
    let mut r = Rocta::start_real(dir.path());
    let body = json!({"loadbalancer": {"name": "web", "vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "HTTP", "protocol_port": 8080, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": [{"address": "127.0.0.1", "protocol_port": a}, {"address": "127.0.0.1", "protocol_port": b}]}]}});
    let (s, lb) = r.post("/v2/lbaas/loadbalancers", body);
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    let vip = lb["loadbalancer"]["vip_address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(vip.starts_with("127.10."), "{vip}");
    r.wait_active(&id);
    let url = format!("http://{vip}:8080/");
    let answers: Vec<String> = (0..4).map(|_| get(&url).unwrap().1).collect();
    assert_eq!(answers, ["A", "B", "A", "B"], "round robin");
    // A member disabled stops receiving traffic.
    let pool = lb["loadbalancer"]["pools"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m0 = lb["loadbalancer"]["pools"][0]["members"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = r.put(
        &format!("/v2/lbaas/pools/{pool}/members/{m0}"),
        json!({"member": {"admin_state_up": false}}),
    );
    assert_eq!(s, 200);
    r.wait_active(&id);
    eventually("disabled member still served", || {
        (0..4).all(|_| get(&url).is_some_and(|x| x.1 == "B"))
    });
    // An L7 REJECT and a redirect, in position order.
    let listener = lb["loadbalancer"]["listeners"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = r.child(
        &id,
        "/v2/lbaas/l7policies",
        json!({"l7policy": {"listener_id": listener, "action": "REJECT", "position": 1}}),
    );
    let pid = p["l7policy"]["id"].as_str().unwrap().to_string();
    r.child(
        &id,
        &format!("/v2/lbaas/l7policies/{pid}/rules"),
        json!({"rule": {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/admin"}}),
    );
    let q = r.child(&id, "/v2/lbaas/l7policies", json!({"l7policy": {"listener_id": listener, "action": "REDIRECT_TO_URL", "redirect_url": "http://example.invalid/moved", "redirect_http_code": 301}}));
    let qid = q["l7policy"]["id"].as_str().unwrap().to_string();
    r.child(
        &id,
        &format!("/v2/lbaas/l7policies/{qid}/rules"),
        json!({"rule": {"type": "PATH", "compare_type": "EQUAL_TO", "value": "/old"}}),
    );
    eventually("REJECT not applied", || {
        get(&format!("{url}admin/x")).is_some_and(|x| x.0 == 403)
    });
    eventually("redirect not applied", || {
        get(&format!("{url}old")).is_some_and(|x| x.0 == 301)
    });
    assert_eq!(get(&url).unwrap(), (200, "B".to_string()));
    // The data plane outlives the control plane, and a restarted one finds its amphorae.
    r.kill();
    assert_eq!(
        get(&url).unwrap().1,
        "B",
        "traffic stops with the control plane"
    );
    let r = Rocta::start_real(dir.path());
    let (s, _) = r.put(
        &format!("/v2/lbaas/pools/{pool}/members/{m0}"),
        json!({"member": {"admin_state_up": true}}),
    );
    assert_eq!(s, 200);
    r.wait_active(&id);
    eventually("re-enabled member not served", || {
        let v: Vec<String> = (0..4).filter_map(|_| get(&url).map(|x| x.1)).collect();
        v.contains(&"A".to_string()) && v.contains(&"B".to_string())
    });
    // Delete frees the VIP and ends the amphora's processes.
    let data = dir.path().join("data").display().to_string();
    assert!(processes(&data) >= 2, "agent and haproxy should run");
    assert_eq!(
        r.delete(&format!("/v2/lbaas/loadbalancers/{id}?cascade=true"))
            .0,
        204
    );
    eventually("load balancer not deleted", || {
        r.get(&format!("/v2/lbaas/loadbalancers/{id}")).0 == 404
    });
    eventually("amphora processes left behind", || processes(&data) == 0);
    assert!(get(&url).is_none(), "the VIP still answers");
    assert_eq!(
        std::fs::read_dir(dir.path().join("data/loopback/vips"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn source_ip_persistence_sticks_and_unknown_subnets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let (a, b) = (backend("A"), backend("B"));
    let r = Rocta::start_real(dir.path());
    assert_fault(
        r.post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"vip_subnet_id": SUBNET}}),
        ),
        400,
        "not found",
    );
    let body = json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "TCP", "protocol_port": 8081, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN", "session_persistence": {"type": "SOURCE_IP"},
                   "members": [{"address": "127.0.0.1", "protocol_port": a}, {"address": "127.0.0.1", "protocol_port": b}]}]}});
    let (s, lb) = r.post("/v2/lbaas/loadbalancers", body);
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let url = format!(
        "http://{}:8081/",
        lb["loadbalancer"]["vip_address"].as_str().unwrap()
    );
    let first = get(&url).unwrap().1;
    for _ in 0..6 {
        assert_eq!(get(&url).unwrap().1, first, "SOURCE_IP persistence");
    }
    assert_eq!(
        r.delete(&format!("/v2/lbaas/loadbalancers/{id}?cascade=true"))
            .0,
        204
    );
    eventually("load balancer not deleted", || {
        r.get(&format!("/v2/lbaas/loadbalancers/{id}")).0 == 404
    });
}

#[test]
fn a_failed_create_leaves_no_amphora_behind() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let r = Rocta::start_real_with(
        dir.path(),
        TEST_CONFIG,
        &[("ROCTA_FAIL_AT", "create_loadbalancer:mark_lb_active")],
    );
    let (s, lb) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "TCP", "protocol_port": 8090}]}}),
    );
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_status(&id, "ERROR");
    let data = dir.path().join("data");
    // The amphora was built, configured, then torn down by the revert: nothing is left.
    eventually("amphora processes left after the revert", || {
        processes(&data.display().to_string()) == 0
    });
    let amps: Vec<_> = std::fs::read_dir(data.join("amphorae"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "mgmt")
        .collect();
    assert!(amps.is_empty(), "amphora directories left: {amps:?}");
    assert_eq!(
        std::fs::read_dir(data.join("amphorae/mgmt"))
            .unwrap()
            .count(),
        0,
        "management address kept"
    );
    assert!(r.get("/v2/octavia/amphorae").1["amphorae"]
        .as_array()
        .unwrap()
        .is_empty());
    // The VIP stays with the ERROR load balancer until it is deleted.
    assert_eq!(
        std::fs::read_dir(data.join("loopback/vips"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(
        r.delete(&format!("/v2/lbaas/loadbalancers/{id}?cascade=true"))
            .0,
        204
    );
    eventually("load balancer not deleted", || {
        r.get(&format!("/v2/lbaas/loadbalancers/{id}")).0 == 404
    });
    assert_eq!(
        std::fs::read_dir(data.join("loopback/vips"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn missing_haproxy_is_reported_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[haproxy_amphora]\nhaproxy_cmd = \"/nonexistent/haproxy\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--api-bind", "127.0.0.1:0", "--config"])
        .arg(dir.path().join("c.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("apt-get install -y haproxy"), "{err}");
}

#[test]
fn terminated_https_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let a = backend("A");
    let r = Rocta::start_real(dir.path());
    let vip = "127.10.200.1";
    let certs = dir.path().join("data/certificates");
    // A CA and a server certificate for the VIP, as a tenant would bring them.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "tenant CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![rcgen::SanType::IpAddress(vip.parse().unwrap())];
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::write(
        certs.join("web.pem"),
        format!("{}{}", leaf.pem(), key.serialize_pem()),
    )
    .unwrap();
    let crt = ca.pem();
    let lb = |refname: &str| {
        json!({"loadbalancer": {"vip_subnet_id": PUBLIC, "vip_address": vip,
        "listeners": [{"protocol": "TERMINATED_HTTPS", "protocol_port": 8443, "default_tls_container_ref": refname,
                       "insert_headers": {"X-Forwarded-Proto": "true"}, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "members": [{"address": "127.0.0.1", "protocol_port": a}]}]}})
    };
    assert_fault(
        r.post("/v2/lbaas/loadbalancers", lb("missing.pem")),
        400,
        "Could not retrieve certificate: missing.pem",
    );
    let (s, b) = r.post("/v2/lbaas/loadbalancers", lb("web.pem"));
    assert_eq!(s, 201, "{b}");
    let id = b["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let client = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(crt.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("https://{vip}:8443/");
    eventually("TLS listener not serving", || {
        client
            .get(&url)
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "A");
    assert_eq!(
        r.delete(&format!("/v2/lbaas/loadbalancers/{id}?cascade=true"))
            .0,
        204
    );
    eventually("load balancer not deleted", || {
        r.get(&format!("/v2/lbaas/loadbalancers/{id}")).0 == 404
    });
}

#[test]
fn heartbeats_drive_operating_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let a = backend("A");
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = Rocta::start_real(dir.path());
    let body = json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "HTTP", "protocol_port": 8082, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "healthmonitor": {"type": "HTTP", "delay": 1, "timeout": 1, "max_retries": 1, "max_retries_down": 1},
                   "members": [{"address": "127.0.0.1", "protocol_port": a}, {"address": "127.0.0.1", "protocol_port": dead}]}]}});
    let (s, lb) = r.post("/v2/lbaas/loadbalancers", body);
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    eventually("statuses not derived from heartbeats", || {
        let t =
            &r.get(&format!("/v2/lbaas/loadbalancers/{id}/status")).1["statuses"]["loadbalancer"];
        let pool = &t["listeners"][0]["pools"][0];
        t["operating_status"] == "DEGRADED"
            && t["listeners"][0]["operating_status"] == "ONLINE"
            && pool["operating_status"] == "DEGRADED"
            && pool["members"][0]["operating_status"] == "ONLINE"
            && pool["members"][1]["operating_status"] == "ERROR"
    });
    let stats = r.get(&format!("/v2/lbaas/loadbalancers/{id}/stats")).1;
    assert!(stats["stats"].is_object());
    // The member comes back, stops answering, comes back: each verdict of HAProxy's monitor
    // (1 s delay, 1 s timeout, one try) reaches the API within two heartbeat intervals (0.5 s);
    // the bound below adds the monitor's own detection time and a margin.
    let alive = Arc::new(AtomicBool::new(true));
    switchable_backend(
        TcpListener::bind(("127.0.0.1", dead)).unwrap(),
        "B",
        alive.clone(),
    );
    let status = || {
        let t =
            &r.get(&format!("/v2/lbaas/loadbalancers/{id}/status")).1["statuses"]["loadbalancer"];
        let pool = &t["listeners"][0]["pools"][0];
        (
            t["operating_status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            pool["operating_status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            pool["members"][1]["operating_status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    let within = |what: &str, want: (&str, &str, &str)| {
        let t = Instant::now();
        loop {
            let (lb, pool, member) = status();
            if (lb.as_str(), pool.as_str(), member.as_str()) == want {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < Duration::from_secs(4),
                "{what}: still {lb}/{pool}/{member}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    let up = ("ONLINE", "ONLINE", "ONLINE");
    let down = ("DEGRADED", "DEGRADED", "ERROR");
    eprintln!("recovered in {:?}", within("member recovery", up));
    alive.store(false, Ordering::Relaxed);
    eprintln!("failure seen in {:?}", within("member failure", down));
    alive.store(true, Ordering::Relaxed);
    eprintln!("recovered in {:?}", within("member recovery", up));
}

#[test]
fn source_ip_port_hashing_and_ping_monitors() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let (a, b) = (backend("A"), backend("B"));
    let r = Rocta::start_real(dir.path());
    let body = json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "TCP", "protocol_port": 8083, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "TCP", "lb_algorithm": "SOURCE_IP_PORT",
                   "healthmonitor": {"type": "PING", "delay": 1, "timeout": 1, "max_retries": 1},
                   "members": [{"address": "127.0.0.1", "protocol_port": a}, {"address": "127.0.0.1", "protocol_port": b}]}]}});
    let (s, lb) = r.post("/v2/lbaas/loadbalancers", body);
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    // Both members answer HAProxy's external ping check.
    eventually("PING-monitored members not ONLINE", || {
        let t =
            &r.get(&format!("/v2/lbaas/loadbalancers/{id}/status")).1["statuses"]["loadbalancer"];
        let m = &t["listeners"][0]["pools"][0]["members"];
        t["operating_status"] == "ONLINE"
            && m[0]["operating_status"] == "ONLINE"
            && m[1]["operating_status"] == "ONLINE"
    });
    // Each new connection has its own source port: the hash spreads them over both members.
    let url = format!(
        "http://{}:8083/",
        lb["loadbalancer"]["vip_address"].as_str().unwrap()
    );
    let seen: std::collections::BTreeSet<String> =
        (0..30).filter_map(|_| get(&url)).map(|(_, b)| b).collect();
    assert_eq!(seen.len(), 2, "SOURCE_IP_PORT over both members: {seen:?}");
}

/// Heartbeats every second, stale after three (the failover target settings).
const FAILOVER_CONFIG: &str =
    "[controller_worker]\njob_lease_seconds = 2\njob_poll_interval_ms = 50\n\
     [health_manager]\nbind_port = 0\nheartbeat_interval = 1.0\nheartbeat_timeout = 3.0\n\
     health_check_interval = 0.25\n";

fn amphorae_of(r: &Rocta, lb: &str) -> Vec<serde_json::Value> {
    r.get(&format!("/v2/octavia/amphorae?loadbalancer_id={lb}"))
        .1["amphorae"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["status"] != "DELETED")
        .collect()
}

#[test]
fn a_killed_amphora_is_failed_over_and_traffic_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let (a, b) = (backend("A"), backend("B"));
    let r = Rocta::start_real_with(dir.path(), FAILOVER_CONFIG, &[]);
    let body = json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "HTTP", "protocol_port": 8084, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": [{"address": "127.0.0.1", "protocol_port": a}, {"address": "127.0.0.1", "protocol_port": b}]}]}});
    let (s, lb) = r.post("/v2/lbaas/loadbalancers", body);
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let url = format!(
        "http://{}:8084/",
        lb["loadbalancer"]["vip_address"].as_str().unwrap()
    );
    eventually("no traffic before the kill", || {
        get(&url).is_some_and(|(s, _)| s == 200)
    });
    // Heartbeats are counted (the amphora has a health record) before it dies.
    eventually("load balancer not ONLINE from heartbeats", || {
        r.get(&format!("/v2/lbaas/loadbalancers/{id}")).1["loadbalancer"]["operating_status"]
            == "ONLINE"
    });
    let amps = amphorae_of(&r, &id);
    assert_eq!(amps.len(), 1, "{amps:?}");
    let old = amps[0]["id"].as_str().unwrap().to_string();
    let old_dir = dir.path().join("data/amphorae").join(&old);
    let pgid: i32 = std::fs::read_to_string(old_dir.join("agent.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // kill -9 of the amphora's whole process group: agent and HAProxy.
    let killed = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-9", "--", &format!("-{pgid}")])
        .status()
        .unwrap()
        .success());
    let mut resumed = None;
    while killed.elapsed() < Duration::from_secs(15) {
        if get(&url).is_some_and(|(s, _)| s == 200) && killed.elapsed() > Duration::from_millis(200)
        {
            resumed = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let gap = resumed.expect("traffic did not resume within 15 s of the kill");
    eprintln!("failover: traffic resumed {gap:?} after kill -9");
    assert!(
        gap < Duration::from_secs(5),
        "traffic resumed only after {gap:?}"
    );
    let lb_now = r.wait_active(&id);
    assert_eq!(lb_now["provisioning_status"], "ACTIVE");
    let amps = amphorae_of(&r, &id);
    assert_eq!(amps.len(), 1, "{amps:?}");
    assert_ne!(amps[0]["id"], old.as_str(), "a new amphora serves");
    assert_eq!(amps[0]["status"], "ALLOCATED");
    assert_eq!(processes(&old_dir.display().to_string()), 0);
    assert!(!old_dir.exists(), "the old amphora's directory is removed");
    let seen: std::collections::BTreeSet<String> =
        (0..4).filter_map(|_| get(&url)).map(|(_, b)| b).collect();
    assert_eq!(
        seen.len(),
        2,
        "both members behind the new amphora: {seen:?}"
    );
}

#[test]
fn a_restarted_health_manager_does_not_fail_over_healthy_amphorae() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    // A fixed heartbeat port: the amphorae keep sending to it while rocta is down.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = FAILOVER_CONFIG.replace("bind_port = 0", &format!("bind_port = {port}"));
    let mut r = Rocta::start_real_with(dir.path(), &config, &[]);
    let (s, lb) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": PUBLIC}}),
    );
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let amp = amphorae_of(&r, &id)[0]["id"].as_str().unwrap().to_string();
    eventually("no heartbeat counted", || {
        r.get(&format!("/v2/lbaas/loadbalancers/{id}")).1["loadbalancer"]["operating_status"]
            == "ONLINE"
    });
    // Down for longer than heartbeat_timeout: every stored heartbeat is stale on restart.
    r.kill();
    std::thread::sleep(Duration::from_secs(4));
    let r = Rocta::start_real_with(dir.path(), &config, &[]);
    std::thread::sleep(Duration::from_secs(5));
    let amps = amphorae_of(&r, &id);
    assert_eq!(amps.len(), 1, "{amps:?}");
    assert_eq!(
        amps[0]["id"],
        amp.as_str(),
        "a healthy amphora was failed over"
    );
    assert_eq!(
        r.get(&format!("/v2/lbaas/loadbalancers/{id}")).1["loadbalancer"]["provisioning_status"],
        "ACTIVE"
    );
}

fn ready_spares(r: &Rocta) -> Vec<String> {
    r.get("/v2/octavia/amphorae").1["amphorae"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["status"] == "READY")
        .filter_map(|a| a["id"].as_str().map(String::from))
        .collect()
}

#[test]
fn a_spare_amphora_serves_a_new_load_balancer_and_the_pool_refills() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let a = backend("A");
    let config = format!(
        "{TEST_CONFIG}[house_keeping]\nspare_amphora_pool_size = 1\nspare_check_interval = 0.1\n"
    );
    let r = Rocta::start_real_with(dir.path(), &config, &[]);
    eventually("no spare booted", || ready_spares(&r).len() == 1);
    let spare = ready_spares(&r)[0].clone();
    let (s, lb) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
            "listeners": [{"protocol": "HTTP", "protocol_port": 8085, "default_pool": {"name": "p"}}],
            "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                       "members": [{"address": "127.0.0.1", "protocol_port": a}]}]}}),
    );
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let amps = amphorae_of(&r, &id);
    assert_eq!(amps.len(), 1);
    assert_eq!(amps[0]["id"], spare.as_str(), "the spare was used");
    let url = format!(
        "http://{}:8085/",
        lb["loadbalancer"]["vip_address"].as_str().unwrap()
    );
    eventually("no traffic through the spare", || {
        get(&url).is_some_and(|(s, b)| s == 200 && b == "A")
    });
    eventually("the pool did not refill", || {
        ready_spares(&r).iter().any(|s| *s != spare)
    });
}

#[test]
fn amphora_certificates_rotate_without_a_failed_request() {
    use std::sync::atomic::AtomicU64;
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let a = backend("A");
    // Every certificate is always due: one rotation per cert_interval.
    let config =
        format!("{TEST_CONFIG}[house_keeping]\ncert_interval = 0.3\ncert_expiry_buffer = 1e8\n");
    let r = Rocta::start_real_with(dir.path(), &config, &[]);
    let (s, lb) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
            "listeners": [{"protocol": "HTTP", "protocol_port": 8086, "default_pool": {"name": "p"}}],
            "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                       "members": [{"address": "127.0.0.1", "protocol_port": a}]}]}}),
    );
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let pool = lb["loadbalancer"]["pools"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!(
        "http://{}:8086/",
        lb["loadbalancer"]["vip_address"].as_str().unwrap()
    );
    let expiry = || {
        amphorae_of(&r, &id)[0]["cert_expiration"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = expiry();
    let (stop, failed, ok) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let load = {
        let (stop, failed, ok, url) = (stop.clone(), failed.clone(), ok.clone(), url.clone());
        std::thread::spawn(move || {
            let c = reqwest::blocking::Client::new();
            let t = Instant::now();
            while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(30) {
                match c.get(&url).send().and_then(|r| r.error_for_status()) {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    // Control-plane requests to the agent go on across rotations too.
    for port in 0..3u16 {
        let (s, m) = r.post(
            &format!("/v2/lbaas/pools/{pool}/members"),
            json!({"member": {"address": format!("127.0.0.{}", 2 + port), "protocol_port": a, "admin_state_up": false}}),
        );
        assert_eq!(s, 201, "{m}");
        r.wait_active(&id);
        std::thread::sleep(Duration::from_millis(400));
    }
    eventually("certificate not rotated", || expiry() != first);
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 100, "too little traffic: {ok}");
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert_eq!(
        r.get(&format!("/v2/lbaas/loadbalancers/{id}")).1["loadbalancer"]["provisioning_status"],
        "ACTIVE"
    );
}
