//! End to end with real amphorae, the health side: heartbeats drive the operating statuses, a
//! killed amphora is failed over, a restarted health manager fails nothing over, spare amphorae
//! serve new load balancers, amphora certificates rotate without a failed request.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::dataplane::*;
use common::*;
use serde_json::json;

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

/// Octavia's `PUT /v2/octavia/amphorae/{id}/config`: the health manager moved to another port
/// while rocta was down; told of the new configuration, the amphora's agent sends its
/// heartbeats there at once (no restart), so the health manager never finds it silent.
#[test]
fn a_configuration_update_follows_a_moved_health_manager() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let free = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let config = |p: u16| FAILOVER_CONFIG.replace("bind_port = 0", &format!("bind_port = {p}"));
    let (before, after) = (free(), free());
    let mut r = Rocta::start_real_with(dir.path(), &config(before), &[]);
    let (s, lb) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": PUBLIC}}),
    );
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let amp = amphorae_of(&r, &id)[0]["id"].as_str().unwrap().to_string();
    r.kill();
    let r = Rocta::start_real_with(dir.path(), &config(after), &[]);
    let path = format!("/v2/octavia/amphorae/{amp}/config");
    let policy = "Policy does not allow this request to be performed.";
    assert_fault(
        r.req_as("PUT", &path, None, "p1", Some("member")),
        403,
        policy,
    );
    assert_fault(
        r.req(
            "PUT",
            "/v2/octavia/amphorae/00000000-0000-0000-0000-000000000001/config",
            None,
        ),
        404,
        "not found",
    );
    let (s, b) = r.req("PUT", &path, None);
    assert_eq!(s, 202, "{b}");
    let agent_toml = dir
        .path()
        .join("data/amphorae")
        .join(&amp)
        .join("agent.toml");
    eventually("the agent was not given the new health manager", || {
        std::fs::read_to_string(&agent_toml).is_ok_and(|t| t.contains(&format!(":{after}")))
    });
    // Past the restart's grace period and the heartbeat timeout (3 s each): heard all along.
    std::thread::sleep(Duration::from_secs(8));
    let amps = amphorae_of(&r, &id);
    assert_eq!(amps.len(), 1, "{amps:?}");
    assert_eq!(
        amps[0]["id"],
        amp.as_str(),
        "the amphora was failed over: heartbeats lost"
    );
    let got = r.get(&format!("/v2/lbaas/loadbalancers/{id}")).1;
    assert_eq!(
        (
            &got["loadbalancer"]["provisioning_status"],
            &got["loadbalancer"]["operating_status"]
        ),
        (&json!("ACTIVE"), &json!("ONLINE")),
        "{got}"
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
    // Enough traffic to mean something (member changes no longer reload, so they are quick).
    eventually("too little traffic", || ok.load(Ordering::Relaxed) > 100);
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
