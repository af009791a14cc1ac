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
