//! Every field of every create body, replaced by values of the wrong type or out of range:
//! the answer is never a 5xx, a refusal always carries the fault body, and a refused request
//! writes nothing (the number of objects equals the number of 201s).

mod common;

use common::*;
use serde_json::{json, Value};

fn wrong_values() -> Vec<Value> {
    vec![
        json!(null),
        json!(""),
        json!("x".repeat(300)),
        json!("not-a-uuid"),
        json!(-1),
        json!(0),
        json!(9_999_999_999_i64),
        json!(1.5),
        json!(true),
        json!([]),
        json!(["a", 1]),
        json!({}),
        json!({"k": [1]}),
        json!("\u{0}\u{202e}é"),
    ]
}

/// Posts every single-field mutation of `valid` under `key`; returns how many were created.
fn mutate(r: &Rocta, lb: &str, path: &str, key: &str, valid: Value) -> usize {
    let mut created = 0;
    let fields: Vec<String> = valid.as_object().unwrap().keys().cloned().collect();
    for f in fields {
        for v in wrong_values() {
            let mut body = valid.clone();
            body[&f] = v.clone();
            let (s, b) = r.post(path, json!({ key: body }));
            assert!(s < 500, "POST {path} {f}={v}: {s} {b}");
            if s == 201 {
                created += 1;
                r.wait_active(lb);
            } else {
                assert!(
                    b["faultstring"].is_string() && b["faultcode"] == "Client",
                    "{f}={v}: {s} {b}"
                );
            }
        }
    }
    // Extra and missing attributes, and non-object envelopes.
    for body in [
        json!({ key: {"bogus": 1} }),
        json!({ key: [] }),
        json!({ key: "x" }),
        json!({}),
        json!(null),
        json!(7),
    ] {
        let (s, b) = r.post(path, body.clone());
        assert!((400..500).contains(&s), "{body}: {s} {b}");
    }
    created
}

#[test]
fn no_input_makes_a_5xx_or_a_partial_write() {
    let (_d, r) = Rocta::start();
    let lb = r.lb();
    let n_lb = mutate(
        &r,
        &lb,
        "/v2/lbaas/loadbalancers",
        "loadbalancer",
        json!({"name": "n", "vip_subnet_id": SUBNET, "admin_state_up": true, "tags": ["t"], "vip_address": "198.51.100.9"}),
    );
    for lbv in r.get("/v2/lbaas/loadbalancers").1["loadbalancers"]
        .as_array()
        .unwrap()
    {
        r.wait_active(lbv["id"].as_str().unwrap());
    }
    assert_eq!(
        r.get("/v2/lbaas/loadbalancers").1["loadbalancers"]
            .as_array()
            .unwrap()
            .len(),
        n_lb + 1
    );
    let n_l = mutate(
        &r,
        &lb,
        "/v2/lbaas/listeners",
        "listener",
        json!({"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 8000, "connection_limit": 5, "timeout_client_data": 10, "insert_headers": {"X-Forwarded-For": "true"}}),
    );
    let listeners = r.get("/v2/lbaas/listeners").1["listeners"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(listeners.len(), n_l);
    // A listener on a fresh port for the children below.
    let (s, b) = r.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 9999}}),
    );
    assert_eq!(s, 201, "{b}");
    let li = b["listener"]["id"].as_str().unwrap().to_string();
    r.wait_active(&lb);
    let n_p = mutate(
        &r,
        &lb,
        "/v2/lbaas/pools",
        "pool",
        json!({"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "session_persistence": {"type": "SOURCE_IP"}}),
    );
    assert_eq!(
        r.get("/v2/lbaas/pools").1["pools"]
            .as_array()
            .unwrap()
            .len(),
        n_p
    );
    let (s, b) = r.post(
        "/v2/lbaas/pools",
        json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
    );
    assert_eq!(s, 201, "{b}");
    let pool = b["pool"]["id"].as_str().unwrap().to_string();
    r.wait_active(&lb);
    let members = format!("/v2/lbaas/pools/{pool}/members");
    let n_m = mutate(
        &r,
        &lb,
        &members,
        "member",
        json!({"address": "192.0.2.1", "protocol_port": 80, "weight": 3, "monitor_port": 81}),
    );
    assert_eq!(r.get(&members).1["members"].as_array().unwrap().len(), n_m);
    let n_h = mutate(
        &r,
        &lb,
        "/v2/lbaas/healthmonitors",
        "healthmonitor",
        json!({"pool_id": pool, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3, "url_path": "/h"}),
    );
    assert_eq!(
        r.get("/v2/lbaas/healthmonitors").1["healthmonitors"]
            .as_array()
            .unwrap()
            .len(),
        n_h
    );
    let n_7 = mutate(
        &r,
        &lb,
        "/v2/lbaas/l7policies",
        "l7policy",
        json!({"listener_id": li, "action": "REDIRECT_TO_URL", "redirect_url": "http://a.example/", "position": 1}),
    );
    let pols = r.get("/v2/lbaas/l7policies").1["l7policies"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(pols.len(), n_7);
    let (s, b) = r.post(
        "/v2/lbaas/l7policies",
        json!({"l7policy": {"listener_id": li, "action": "REJECT"}}),
    );
    assert_eq!(s, 201, "{b}");
    let pol = b["l7policy"]["id"].as_str().unwrap().to_string();
    r.wait_active(&lb);
    let rules = format!("/v2/lbaas/l7policies/{pol}/rules");
    let n_r = mutate(
        &r,
        &lb,
        &rules,
        "rule",
        json!({"type": "HEADER", "compare_type": "EQUAL_TO", "key": "X-A", "value": "b"}),
    );
    assert_eq!(r.get(&rules).1["rules"].as_array().unwrap().len(), n_r);
    // PUTs with wrong values on an existing object.
    for v in wrong_values() {
        for f in [
            "name",
            "admin_state_up",
            "connection_limit",
            "default_pool_id",
            "tags",
            "timeout_member_data",
        ] {
            let (s, b) = r.put(
                &format!("/v2/lbaas/listeners/{li}"),
                json!({"listener": { f: v.clone() }}),
            );
            assert!(s < 500, "PUT listener {f}={v}: {s} {b}");
            if s == 200 {
                r.wait_active(&lb);
            }
        }
    }
    assert_eq!(
        r.get(&format!("/v2/lbaas/loadbalancers/{lb}")).1["loadbalancer"]["provisioning_status"],
        "ACTIVE"
    );
}
