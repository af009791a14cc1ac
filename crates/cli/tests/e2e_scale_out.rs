//! Every role twice, on real amphorae, sharing one PostgreSQL (then MariaDB) database: two `rocta api`, two
//! `rocta worker` (the first killed by a crash point in the middle of a create), two
//! `rocta health-manager` (amphorae send heartbeats to both in turn, Octavia's
//! `controller_ip_port_list`) and two `rocta housekeeping` keeping one spare amphora. A load
//! balancer created through one API is finished by the other worker and serves traffic; it is
//! changed through the other API; one health manager is killed with SIGKILL, then the
//! amphora's processes are: the surviving health manager fails it over and traffic resumes;
//! the two housekeepers never keep more than one spare; a delete leaves nothing behind.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::dataplane::*;
use common::*;
use rocta_store::testing::TempDb;
use serde_json::{json, Value};

fn udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(db: &str, hm_port: u16, hms: (u16, u16)) -> String {
    format!(
        "[controller_worker]\njob_lease_seconds = 2\njob_poll_interval_ms = 50\n\
         [health_manager]\nbind_ip = \"127.0.0.1\"\nbind_port = {hm_port}\n\
         heartbeat_key = \"scale-out-key\"\nheartbeat_interval = 0.5\nheartbeat_timeout = 3.0\n\
         health_check_interval = 0.2\n\
         controller_ip_port_list = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n\
         [house_keeping]\nspare_amphora_pool_size = 1\nspare_check_interval = 0.2\n\
         [database]\nconnection = \"{db}\"\nmax_pool_size = 4\n",
        hms.0, hms.1
    )
}

fn amphorae(r: &Rocta) -> Vec<Value> {
    r.get("/v2/octavia/amphorae").1["amphorae"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["status"] != "DELETED")
        .collect()
}

/// Amphorae of no load balancer (spares, booting or `READY`).
fn spares(r: &Rocta) -> usize {
    amphorae(r)
        .iter()
        .filter(|a| a["loadbalancer_id"].is_null())
        .count()
}

fn serving(r: &Rocta, lb: &str) -> Vec<String> {
    amphorae(r)
        .iter()
        .filter(|a| a["loadbalancer_id"] == lb && a["status"] == "ALLOCATED")
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_role_twice_on_real_amphorae_and_postgresql() {
    every_role_twice(TempDb::postgres().expect("PostgreSQL"), 8096);
}

#[test]
fn every_role_twice_on_real_amphorae_and_mariadb() {
    every_role_twice(TempDb::mysql().expect("MariaDB/MySQL"), 8097);
}

/// The scenario on `db`, the listener on `port` (tests running at once must not share one:
/// their VIPs come from one loopback range).
fn every_role_twice(db: TempDb, port: u16) {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let (a, b) = (backend("A"), backend("B"));
    let hms = (udp_port(), udp_port());
    let any = config(&db.url, 0, hms);
    let start = |role: &str, cfg: &str, env: &[(&str, &str)]| {
        Rocta::start_role_real(dir.path(), role, cfg, env)
    };
    let api1 = start("api", &any, &[]);
    let api2 = start("api", &any, &[]);
    let mut w1 = start(
        "worker",
        &any,
        &[(
            "ROCTA_CRASH_AT",
            "create_loadbalancer:create_amphora:executed",
        )],
    );
    let mut hm1 = start("health-manager", &config(&db.url, hms.0, hms), &[]);
    let _hm2 = start("health-manager", &config(&db.url, hms.1, hms), &[]);
    let _hk1 = start("housekeeping", &any, &[]);
    let _hk2 = start("housekeeping", &any, &[]);

    // Created through API 1; worker 1 dies once the amphora is built; worker 2 finishes.
    let body = json!({"loadbalancer": {"name": "web", "vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "HTTP", "protocol_port": port, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": [{"address": "127.0.0.1", "protocol_port": a},
                               {"address": "127.0.0.1", "protocol_port": b}]}]}});
    let (s, lb) = api1.post("/v2/lbaas/loadbalancers", body);
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    let url = format!(
        "http://{}:{port}/",
        lb["loadbalancer"]["vip_address"].as_str().unwrap()
    );
    assert!(
        w1.wait_exit(Duration::from_secs(30)),
        "worker 1 never reached its crash point"
    );
    let _w2 = start("worker", &any, &[]);
    let _w3 = start("worker", &any, &[]);
    api2.wait_active(&id);
    eventually("round robin through the VIP", || {
        let v: Vec<String> = (0..4).filter_map(|_| get(&url).map(|x| x.1)).collect();
        v == ["A", "B", "A", "B"] || v == ["B", "A", "B", "A"]
    });

    // Changed through API 2: a disabled member gets no more traffic.
    let pool = lb["loadbalancer"]["pools"][0]["id"].as_str().unwrap();
    let m0 = lb["loadbalancer"]["pools"][0]["members"][0]["id"]
        .as_str()
        .unwrap();
    let (s, _) = api2.put(
        &format!("/v2/lbaas/pools/{pool}/members/{m0}"),
        json!({"member": {"admin_state_up": false}}),
    );
    assert_eq!(s, 200);
    api1.wait_active(&id);
    eventually("disabled member still served", || {
        (0..4).all(|_| get(&url).is_some_and(|x| x.1 == "B"))
    });
    eventually("load balancer not ONLINE from heartbeats", || {
        api1.get(&format!("/v2/lbaas/loadbalancers/{id}")).1["loadbalancer"]["operating_status"]
            == "ONLINE"
    });

    // One health manager dies: the amphora's heartbeats to it are lost, the other's suffice.
    let amp = serving(&api1, &id);
    assert_eq!(amp.len(), 1, "{amp:?}");
    hm1.kill();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        serving(&api1, &id),
        amp,
        "failed over while heartbeats kept coming"
    );

    // Then the amphora dies: the surviving health manager fails it over.
    let amp_dir = dir.path().join("data/amphorae").join(&amp[0]);
    let pgid = std::fs::read_to_string(amp_dir.join("agent.pid")).unwrap();
    let killed = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-9", "--", &format!("-{}", pgid.trim())])
        .status()
        .unwrap()
        .success());
    eventually("not failed over by the surviving health manager", || {
        let now = serving(&api1, &id);
        now.len() == 1 && now != amp
    });
    assert!(killed.elapsed() >= Duration::from_secs(2));
    api2.wait_active(&id);
    eventually("traffic did not resume on the new amphora", || {
        get(&url).is_some_and(|x| x.1 == "B")
    });

    // Two housekeepers, one spare pool of one: never two spares.
    eventually("the spare pool was not refilled", || spares(&api1) == 1);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        assert!(
            spares(&api1) <= 1,
            "two housekeepers doubled the spare pool"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Delete through API 1: the processes of both of its amphorae and the VIP are gone.
    let new = serving(&api1, &id);
    delete_lb(&api1, &id);
    for a in [&amp[0], &new[0]] {
        let d = dir
            .path()
            .join("data/amphorae")
            .join(a)
            .display()
            .to_string();
        eventually("amphora processes left behind", || processes(&d) == 0);
    }
    assert!(get(&url).is_none(), "the VIP still answers");
}
