//! Housekeeping inside `rocta serve` (noop drivers): deleted records are purged after their
//! expiry age, and not before.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn amphora_ids(r: &Rocta) -> Vec<String> {
    r.get("/v2/octavia/amphorae").1["amphorae"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str().map(String::from))
        .collect()
}

/// Whether the amphora's row is still in the database (the API hides `DELETED` amphorae).
fn stored(dir: &std::path::Path, amp: &str) -> bool {
    let store = rocta_store::Store::open_sqlite(&dir.join("data/rocta.db"), "normal").unwrap();
    let id = rocta_model::Id::parse_str(amp).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(store.read(|tx| tx.get::<rocta_model::Amphora>(id)))
        .unwrap()
        .is_some()
}

fn create_and_delete(r: &Rocta) -> String {
    let (s, lb) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b"}}),
    );
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let amp = amphora_ids(r).pop().unwrap();
    assert_eq!(r.delete(&format!("/v2/lbaas/loadbalancers/{id}")).0, 204);
    let t = Instant::now();
    while r.get(&format!("/v2/lbaas/loadbalancers/{id}")).0 != 404 {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    amp
}

#[test]
fn deleted_records_are_purged_after_their_expiry_age() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{TEST_CONFIG}[house_keeping]\ncleanup_interval = 0.1\namphora_expiry_age = 1.0\nload_balancer_expiry_age = 1.0\n"
    );
    let r = Rocta::start_in(dir.path(), "serve", &config, &[]);
    let amp = create_and_delete(&r);
    // Kept while younger than the expiry age, then purged.
    assert!(stored(dir.path(), &amp));
    let t = Instant::now();
    while stored(dir.path(), &amp) {
        assert!(t.elapsed() < Duration::from_secs(10), "amphora not purged");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[test]
fn nothing_is_purged_before_the_default_week() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{TEST_CONFIG}[house_keeping]\ncleanup_interval = 0.1\n");
    let r = Rocta::start_in(dir.path(), "serve", &config, &[]);
    let amp = create_and_delete(&r);
    std::thread::sleep(Duration::from_millis(500));
    assert!(stored(dir.path(), &amp));
}

/// The amphorae (every field) the API lists.
fn amphorae(r: &Rocta) -> Vec<serde_json::Value> {
    r.get("/v2/octavia/amphorae").1["amphorae"]
        .as_array()
        .unwrap()
        .clone()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn each_availability_zone_has_its_spare_pool_and_flavors_place_amphorae() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{TEST_CONFIG}[house_keeping]\nspare_amphora_pool_size = 1\nspare_check_interval = 0.1\n"
    );
    let r = Rocta::start_in(dir.path(), "serve", &config, &[]);
    let (s, b) = r.post(
        "/v2/lbaas/availabilityzoneprofiles",
        json!({"availability_zone_profile": {"name": "zp", "provider_name": "amphora",
            "availability_zone_data": "{\"compute_zone\": \"zone-a\"}"}}),
    );
    assert_eq!(s, 201, "{b}");
    let zp = b["availability_zone_profile"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = r.post(
        "/v2/lbaas/availabilityzones",
        json!({"availability_zone": {"name": "az1", "availability_zone_profile_id": zp}}),
    );
    assert_eq!(s, 201, "{b}");
    let (s, b) = r.post(
        "/v2/lbaas/flavorprofiles",
        json!({"flavorprofile": {"name": "fp", "provider_name": "amphora",
            "flavor_data": "{\"compute_flavor\": \"m1.amphora\"}"}}),
    );
    assert_eq!(s, 201, "{b}");
    let fp = b["flavorprofile"]["id"].as_str().unwrap().to_string();
    let (s, b) = r.post(
        "/v2/lbaas/flavors",
        json!({"flavor": {"name": "big", "flavor_profile_id": fp}}),
    );
    assert_eq!(s, 201, "{b}");
    let flavor = b["flavor"]["id"].as_str().unwrap().to_string();
    // One spare for load balancers without a zone, one in az1's compute zone.
    let ready_in = |zone: Option<&str>| {
        amphorae(&r)
            .into_iter()
            .filter(|a| a["status"] == "READY" && a["cached_zone"].as_str() == zone)
            .collect::<Vec<_>>()
    };
    wait_for("a spare per zone", || {
        ready_in(None).len() == 1 && ready_in(Some("zone-a")).len() == 1
    });
    let spare = ready_in(Some("zone-a"))[0]["id"].clone();
    let create = |extra: serde_json::Value| {
        let mut lb = json!({"vip_subnet_id": SUBNET});
        lb.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, b) = r.post("/v2/lbaas/loadbalancers", json!({ "loadbalancer": lb }));
        assert_eq!(s, 201, "{b}");
        let id = b["loadbalancer"]["id"].as_str().unwrap().to_string();
        r.wait_active(&id);
        let amps = r
            .get(&format!("/v2/octavia/amphorae?loadbalancer_id={id}"))
            .1;
        amps["amphorae"][0].clone()
    };
    // A load balancer in az1 takes az1's spare; the pool is filled again.
    let a = create(json!({"availability_zone": "az1"}));
    assert_eq!(a["id"], spare, "{a}");
    assert_eq!(a["cached_zone"], "zone-a");
    wait_for("az1's pool refilled", || {
        ready_in(Some("zone-a")).len() == 1
    });
    // A flavor naming a compute flavor gets an amphora booted with it, in the zone.
    let a = create(json!({"availability_zone": "az1", "flavor_id": flavor}));
    assert_ne!(a["id"], ready_in(Some("zone-a"))[0]["id"]);
    assert_eq!(a["compute_flavor"], "m1.amphora", "{a}");
    assert_eq!(a["cached_zone"], "zone-a");
    assert_eq!(ready_in(Some("zone-a")).len(), 1, "the spare stays");
}
