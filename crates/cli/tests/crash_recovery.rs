//! Invariant 1, "nothing stuck, nothing lost": the worker is killed (a test-only crash point
//! aborts the process) at many points of the flows, including in the middle of reverts. After a
//! restart every object ends ACTIVE or ERROR, and once everything is deleted no driver resource
//! (amphora instance, certificate, VIP, amphora config) is left behind.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rocta_drivers::noop::NoopState;
use serde_json::{json, Value};

/// What exists before the crash.
struct Setup {
    lb: String,
    listener: String,
}

fn records(r: &Rocta, kind: &str) -> Vec<String> {
    NoopState::recorded(&r.dir.join("data").join("noop"), kind)
}

fn setup(r: &Rocta) -> Setup {
    let lb = r.lb();
    let l = r.child(
        &lb,
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}}),
    );
    Setup {
        lb,
        listener: l["listener"]["id"].as_str().unwrap().to_string(),
    }
}

/// Every object of every list, with its provisioning status.
fn statuses(r: &Rocta) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, key) in [
        ("/v2/lbaas/loadbalancers", "loadbalancers"),
        ("/v2/lbaas/listeners", "listeners"),
        ("/v2/lbaas/pools", "pools"),
        ("/v2/lbaas/healthmonitors", "healthmonitors"),
        ("/v2/lbaas/l7policies", "l7policies"),
    ] {
        let (_, b) = r.get(path);
        for o in b[key].as_array().cloned().unwrap_or_default() {
            out.push((
                format!("{key} {}", o["id"]),
                o["provisioning_status"].as_str().unwrap_or("?").to_string(),
            ));
        }
    }
    out
}

fn settle(r: &Rocta) -> Vec<(String, String)> {
    let t = Instant::now();
    loop {
        let s = statuses(r);
        if s.iter().all(|(_, st)| st == "ACTIVE" || st == "ERROR") {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "still pending after restart: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one crash scenario end to end.
fn scenario(crash: &str, fail: Option<&str>, action: impl Fn(&Rocta, &Setup)) {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rocta::start_in(dir.path(), "serve", TEST_CONFIG, &[]);
    let s = setup(&r);
    r.kill();
    let mut env = vec![("ROCTA_CRASH_AT", crash)];
    if let Some(f) = fail {
        env.push(("ROCTA_FAIL_AT", f));
    }
    let mut r = Rocta::start_in(dir.path(), "serve", TEST_CONFIG, &env);
    action(&r, &s);
    assert!(
        r.wait_exit(Duration::from_secs(10)),
        "{crash}: the crash point was never reached"
    );
    let r = Rocta::start_in(dir.path(), "serve", TEST_CONFIG, &[]);
    let after = settle(&r);
    // Live amphorae and driver records agree.
    let (_, amps) = r.get("/v2/octavia/amphorae");
    let live: Vec<String> = amps["amphorae"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        records(&r, "certs"),
        {
            let mut l = live.clone();
            l.sort();
            l
        },
        "{crash}: certificates vs amphorae"
    );
    assert_eq!(
        records(&r, "compute").len(),
        live.len(),
        "{crash}: instances vs amphorae"
    );
    for a in amps["amphorae"].as_array().unwrap() {
        assert_eq!(a["status"], "ALLOCATED", "{crash}: {a}");
    }
    // Tear everything down: nothing may remain.
    for (what, st) in &after {
        if what.starts_with("loadbalancers ") {
            let id = what
                .trim_start_matches("loadbalancers ")
                .trim_matches('"')
                .to_string();
            assert!(st == "ACTIVE" || st == "ERROR");
            assert_eq!(
                r.delete(&format!("/v2/lbaas/loadbalancers/{id}?cascade=true"))
                    .0,
                204,
                "{crash}"
            );
        }
    }
    let t = Instant::now();
    while !r.get("/v2/lbaas/loadbalancers").1["loadbalancers"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{crash}: delete did not finish"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for kind in ["compute", "certs", "vips", "configs"] {
        assert!(
            records(&r, kind).is_empty(),
            "{crash}: leaked {kind}: {:?}",
            records(&r, kind)
        );
    }
}

fn create_lb(r: &Rocta, _: &Setup) {
    let _ = r.try_req(
        "POST",
        "/v2/lbaas/loadbalancers",
        Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET}})),
    );
}

fn create_pool(r: &Rocta, s: &Setup) {
    let _ = r.try_req("POST", "/v2/lbaas/pools", Some(json!({"pool": {"listener_id": s.listener, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})));
}

fn delete_lb(r: &Rocta, s: &Setup) {
    let _ = r.try_req(
        "DELETE",
        &format!("/v2/lbaas/loadbalancers/{}?cascade=true", s.lb),
        None,
    );
}

fn failover(r: &Rocta, s: &Setup) {
    let _ = r.try_req(
        "PUT",
        &format!("/v2/lbaas/loadbalancers/{}/failover", s.lb),
        None,
    );
}

const WHEN: [&str; 3] = ["before", "executed", "recorded"];

/// Steps whose completion is not journaled (they act only on revert, or push the whole
/// desired state again on resume): no `recorded` point.
fn journaled(step: &str, when: &str) -> bool {
    when != "recorded" || !(step.ends_with("_error_on_revert") || step == "apply_config")
}

#[test]
fn crash_anywhere_in_load_balancer_create() {
    for step in [
        "lb_error_on_revert",
        "create_amphora",
        "wait_amphora",
        "plug_vip",
        "apply_config",
        "mark_lb_active",
    ] {
        for when in WHEN.into_iter().filter(|w| journaled(step, w)) {
            scenario(
                &format!("create_loadbalancer:{step}:{when}"),
                None,
                create_lb,
            );
        }
    }
}

#[test]
fn crash_anywhere_in_child_create() {
    for step in ["child_error_on_revert", "apply_config", "finalize"] {
        for when in WHEN.into_iter().filter(|w| journaled(step, w)) {
            scenario(&format!("child:{step}:{when}"), None, create_pool);
        }
    }
}

#[test]
fn crash_in_delete_and_failover() {
    for step in ["delete_amphorae", "deallocate_vip", "mark_lb_deleted"] {
        scenario(
            &format!("delete_loadbalancer:{step}:executed"),
            None,
            delete_lb,
        );
    }
    for step in [
        "create_amphora",
        "plug_vip",
        "apply_config",
        "delete_amphorae",
        "mark_lb_active",
    ] {
        scenario(&format!("failover:{step}:executed"), None, failover);
    }
}

#[test]
fn crash_in_the_middle_of_reverts() {
    for step in ["plug_vip", "create_amphora", "lb_error_on_revert"] {
        scenario(
            &format!("create_loadbalancer:{step}:revert"),
            Some("create_loadbalancer:apply_config"),
            create_lb,
        );
    }
    for step in ["apply_config", "child_error_on_revert"] {
        scenario(
            &format!("child:{step}:revert"),
            Some("child:finalize"),
            create_pool,
        );
    }
    scenario(
        "failover:create_amphora:revert",
        Some("failover:delete_amphorae"),
        failover,
    );
}

#[test]
fn a_failed_flow_ends_in_error_and_unlocks_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let r = Rocta::start_in(
        dir.path(),
        "serve",
        TEST_CONFIG,
        &[("ROCTA_FAIL_AT", "child:apply_config")],
    );
    let s = setup_without_children(&r);
    let (st, b) = r.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": s, "protocol": "TCP", "protocol_port": 22}}),
    );
    assert_eq!(st, 201);
    let lb = r.wait_active(&s);
    assert_eq!(lb["provisioning_status"], "ACTIVE");
    let id = b["listener"]["id"].as_str().unwrap();
    let (_, l) = r.get(&format!("/v2/lbaas/listeners/{id}"));
    assert_eq!(l["listener"]["provisioning_status"], "ERROR");
    let _: Value = l;
}

fn setup_without_children(r: &Rocta) -> String {
    r.lb()
}

/// Fault 0 of the hardening issue: the worker dies after its last status step set the load
/// balancer `ACTIVE` and before the journal recorded it. A client deletes the load balancer
/// while the job waits for its lease to lapse. The resumed job must neither run before the
/// delete's job is queued behind it nor set the deleted load balancer `ACTIVE` again.
#[test]
fn a_load_balancer_deleted_while_its_job_waits_stays_deleted() {
    let dir = tempfile::tempdir().unwrap();
    // A long lease keeps the killed job unclaimed while the client deletes.
    let config = "[controller_worker]\njob_lease_seconds = 3\njob_poll_interval_ms = 50\n\
                  [health_manager]\nbind_port = 0\n";
    let mut r = Rocta::start_in(
        dir.path(),
        "serve",
        config,
        &[(
            "ROCTA_CRASH_AT",
            "create_loadbalancer:mark_lb_active:executed",
        )],
    );
    let lb = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": SUBNET}}),
    );
    let id = lb.1["loadbalancer"]["id"].as_str().unwrap().to_string();
    assert!(
        r.wait_exit(Duration::from_secs(10)),
        "crash point not reached"
    );
    let r = Rocta::start_in(dir.path(), "serve", config, &[]);
    let (_, got) = r.get(&format!("/v2/lbaas/loadbalancers/{id}"));
    assert_eq!(got["loadbalancer"]["provisioning_status"], "ACTIVE");
    assert_eq!(
        r.delete(&format!("/v2/lbaas/loadbalancers/{id}")).0,
        204,
        "the load balancer is unlocked, so the delete is accepted"
    );
    // Both jobs end: the create resumed first, then the delete.
    let t = Instant::now();
    loop {
        let (s, b) = r.get(&format!("/v2/lbaas/loadbalancers/{id}"));
        if s == 404 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "never deleted: {b}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Past the killed job's lease: a resumed job that would resurrect it has run by now.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(r.get(&format!("/v2/lbaas/loadbalancers/{id}")).0, 404);
    for kind in ["compute", "certs", "vips", "configs"] {
        assert!(records(&r, kind).is_empty(), "leaked {kind}");
    }
}

/// Fault 2: the API dies between allocating a VIP and committing its load balancer. The
/// intent it recorded first lets housekeeping release the VIP after the grace period.
#[test]
fn a_vip_allocated_by_an_api_that_died_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{TEST_CONFIG}[house_keeping]\ncleanup_interval = 0.1\nvip_allocation_grace = 0.5\n"
    );
    let mut r = Rocta::start_in(
        dir.path(),
        "serve",
        &config,
        &[("ROCTA_CRASH_AT", "driver:allocate_vip")],
    );
    let _ = r.try_req(
        "POST",
        "/v2/lbaas/loadbalancers",
        Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET}})),
    );
    assert!(
        r.wait_exit(Duration::from_secs(10)),
        "crash point not reached"
    );
    assert_eq!(records(&r, "vips").len(), 1, "the VIP was allocated");
    let r = Rocta::start_in(dir.path(), "serve", &config, &[]);
    let t = Instant::now();
    while !records(&r, "vips").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "VIP never released: {:?}",
            records(&r, "vips")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, lbs) = r.get("/v2/lbaas/loadbalancers");
    assert_eq!(lbs["loadbalancers"], json!([]));
    // A create after that is unaffected.
    let lb = r.lb();
    r.wait_active(&lb);
    assert_eq!(records(&r, "vips").len(), 1);
}
