//! Listeners, pools, members, health monitors, L7 policies and rules over HTTP: Octavia's
//! defaults, validation rules and status transitions.

mod common;

use common::*;
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn sample(name: &str, key: &str) -> Vec<String> {
    let path = format!(
        "{}/tests/fixtures/octavia-samples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    keys(&v["body"][key])
}

fn id(v: &Value, key: &str) -> String {
    v[key]["id"].as_str().unwrap().to_string()
}

fn listener(r: &Rocta, lb: &str, proto: &str, port: u16) -> String {
    id(
        &r.child(
            lb,
            "/v2/lbaas/listeners",
            json!({"listener": {"loadbalancer_id": lb, "protocol": proto, "protocol_port": port}}),
        ),
        "listener",
    )
}

fn pool(r: &Rocta, listener: &str) -> String {
    id(&r.child_of_listener(listener), "pool")
}

trait Helpers {
    fn child_of_listener(&self, listener: &str) -> Value;
}

impl Helpers for Rocta {
    fn child_of_listener(&self, listener: &str) -> Value {
        let (s, b) = self.post("/v2/lbaas/pools", json!({"pool": {"listener_id": listener, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}));
        assert_eq!(s, 201, "{b}");
        let lb = self.get(&format!("/v2/lbaas/listeners/{listener}")).1["listener"]
            ["loadbalancers"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.wait_active(&lb);
        b
    }
}

#[test]
fn listener_defaults_and_rules() {
    let (_d, r) = Rocta::start();
    let lb = r.lb();
    let (s, b) = r.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}}),
    );
    assert_eq!(s, 201, "{b}");
    let l = &b["listener"];
    assert_eq!(keys(l), sample("listener_create.json", "listener"));
    assert_eq!(l["provisioning_status"], "PENDING_CREATE");
    assert_eq!(l["connection_limit"], -1);
    assert_eq!(l["timeout_client_data"], 50000);
    assert_eq!(l["allowed_cidrs"], Value::Null);
    assert_eq!(l["insert_headers"], json!({}));
    assert_eq!(l["loadbalancers"], json!([{"id": lb}]));
    let lid = id(&b, "listener");
    // The load balancer is locked while the listener is created (or already done).
    let st = r.get(&format!("/v2/lbaas/loadbalancers/{lb}")).1["loadbalancer"]
        ["provisioning_status"]
        .clone();
    assert!(st == "PENDING_UPDATE" || st == "ACTIVE", "{st}");
    r.wait_active(&lb);
    assert_fault(
        r.post("/v2/lbaas/listeners", json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 80}})),
        409,
        "Another Listener on this Load Balancer is already using protocol HTTP and protocol_port 80",
    );
    // UDP and TCP may share a port.
    listener(&r, &lb, "UDP", 80);
    let ls = "/v2/lbaas/listeners";
    assert_fault(
        r.post(ls, json!({"listener": {"loadbalancer_id": lb, "protocol": "FOO", "protocol_port": 80}})),
        400,
        "Invalid input for field/attribute protocol. Value: 'FOO'. Value should be one of: HTTP, PROMETHEUS, HTTPS, TERMINATED_HTTPS, TCP, UDP, SCTP",
    );
    assert_fault(
        r.post(
            ls,
            json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 0}}),
        ),
        400,
        "greater or equal to 1",
    );
    assert_fault(
        r.post(
            ls,
            json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP"}}),
        ),
        400,
        "protocol_port. Value: 'Unset'. Mandatory field missing.",
    );
    assert_fault(r.post(ls, json!({"listener": {"loadbalancer_id": lb, "protocol": "TERMINATED_HTTPS", "protocol_port": 443}})), 400, "SNI or default certificate");
    assert_fault(r.post(ls, json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 81, "insert_headers": {"X-SSL-Client-DN": "true"}}})), 400, "X-SSL-Client-DN");
    assert_fault(r.post(ls, json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 82, "allowed_cidrs": ["nope"]}})), 400, "CIDR");
    assert_fault(r.post(ls, json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 82, "allowed_cidrs": ["2001:db8::/32"]}})), 400, "IP version incompatible");
    assert_fault(r.post(ls, json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 83, "timeout_client_data": -1}})), 400, "greater or equal to 0");
    let unknown = "00000000-0000-0000-0000-000000000001";
    assert_fault(r.post(ls, json!({"listener": {"loadbalancer_id": unknown, "protocol": "TCP", "protocol_port": 83}})), 404, &format!("Load Balancer {unknown} not found."));
    // TERMINATED_HTTPS gets Octavia's TLS defaults.
    let (s, b) = r.post(ls, json!({"listener": {"loadbalancer_id": lb, "protocol": "TERMINATED_HTTPS", "protocol_port": 443, "default_tls_container_ref": "ref"}}));
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["listener"]["tls_versions"], json!(["TLSv1.2", "TLSv1.3"]));
    assert_eq!(
        b["listener"]["alpn_protocols"],
        json!(["h2", "http/1.1", "http/1.0"])
    );
    r.wait_active(&lb);
    // Update, then reset a timeout with null.
    let (s, b) = r.put(&format!("{ls}/{lid}"), json!({"listener": {"connection_limit": 10, "timeout_client_data": 1000, "allowed_cidrs": ["10.0.0.0/8"]}}));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["listener"]["provisioning_status"], "PENDING_UPDATE");
    r.wait_active(&lb);
    let (_, b) = r.put(
        &format!("{ls}/{lid}"),
        json!({"listener": {"timeout_client_data": null}}),
    );
    assert_eq!(b["listener"]["timeout_client_data"], 50000);
    assert_eq!(b["listener"]["connection_limit"], 10);
    assert_eq!(b["listener"]["allowed_cidrs"], json!(["10.0.0.0/8"]));
    r.wait_active(&lb);
    assert_fault(
        r.put(
            &format!("{ls}/{lid}"),
            json!({"listener": {"protocol": "TCP"}}),
        ),
        400,
        "Unknown attribute",
    );
    assert_eq!(
        r.get(&format!("{ls}/{lid}")).1["listener"]["provisioning_status"],
        "ACTIVE"
    );
    assert_eq!(r.delete(&format!("{ls}/{lid}")).0, 204);
    r.wait_active(&lb);
    assert_fault(
        r.get(&format!("{ls}/{lid}")),
        404,
        &format!("Listener {lid} not found."),
    );
}

#[test]
fn child_writes_are_refused_while_the_load_balancer_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let r = Rocta::start_in(
        dir.path(),
        "serve",
        TEST_CONFIG,
        &[("ROCTA_FAULT_DELAY_MS", "200")],
    );
    let lb = r.lb();
    let (s, _) = r.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}}),
    );
    assert_eq!(s, 201);
    assert_fault(
        r.post(
            "/v2/lbaas/listeners",
            json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 81}}),
        ),
        409,
        &format!("Load Balancer {lb} is immutable and cannot be updated."),
    );
    assert_fault(
        r.delete(&format!("/v2/lbaas/loadbalancers/{lb}")),
        409,
        "Invalid state PENDING_UPDATE",
    );
    r.wait_active(&lb);
    assert_eq!(
        r.get("/v2/lbaas/listeners").1["listeners"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn pool_rules() {
    let (_d, r) = Rocta::start();
    let lb = r.lb();
    let http = listener(&r, &lb, "HTTP", 80);
    let ps = "/v2/lbaas/pools";
    assert_fault(
        r.post(
            ps,
            json!({"pool": {"listener_id": http, "protocol": "HTTP", "lb_algorithm": "NOPE"}}),
        ),
        400,
        "lb_algorithm",
    );
    // SOURCE_IP_PORT is rendered as HAProxy's `balance hash` on address and port.
    let (st, body) = r.post(ps, json!({"pool": {"listener_id": http, "protocol": "HTTP", "lb_algorithm": "SOURCE_IP_PORT"}}));
    assert_eq!(st, 201, "{body}");
    r.wait_active(&lb);
    let pid = body["pool"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.delete(&format!("{ps}/{pid}")).0, 204);
    r.wait_active(&lb);
    assert_fault(r.post(ps, json!({"pool": {"listener_id": http, "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}})), 400, "The pool protocol 'TCP' is invalid while the listener protocol is 'HTTP'.");
    assert_fault(
        r.post(
            ps,
            json!({"pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
        ),
        400,
        "Either loadbalancer_id or listener_id",
    );
    assert_fault(r.post(ps, json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "session_persistence": {"type": "APP_COOKIE"}}})), 400, "cookie_name");
    assert_fault(r.post(ps, json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "session_persistence": {"type": "HTTP_COOKIE", "cookie_name": "c"}}})), 400, "Cookie names");
    let (s, b) = r.post(ps, json!({"pool": {"listener_id": http, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "session_persistence": {"type": "APP_COOKIE", "cookie_name": "JSESSIONID"}}}));
    assert_eq!(s, 201, "{b}");
    assert_eq!(keys(&b["pool"]), sample("pool_create.json", "pool"));
    assert_eq!(
        b["pool"]["session_persistence"],
        json!({"type": "APP_COOKIE", "cookie_name": "JSESSIONID", "persistence_timeout": null, "persistence_granularity": null})
    );
    let pid = id(&b, "pool");
    r.wait_active(&lb);
    assert_eq!(
        r.get(&format!("/v2/lbaas/listeners/{http}")).1["listener"]["default_pool_id"],
        pid.as_str()
    );
    assert_eq!(
        r.get(&format!("{ps}/{pid}")).1["pool"]["listeners"],
        json!([{"id": http}])
    );
    assert_fault(r.post(ps, json!({"pool": {"listener_id": http, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})), 409, "already has a default pool");
    // A pool used by an L7 policy cannot go.
    let (s, b) = r.post("/v2/lbaas/l7policies", json!({"l7policy": {"listener_id": http, "action": "REDIRECT_TO_POOL", "redirect_pool_id": pid}}));
    assert_eq!(s, 201, "{b}");
    r.wait_active(&lb);
    assert_fault(
        r.delete(&format!("{ps}/{pid}")),
        409,
        "in use by an L7 policy",
    );
    assert_eq!(
        r.delete(&format!("/v2/lbaas/l7policies/{}", id(&b, "l7policy")))
            .0,
        204
    );
    r.wait_active(&lb);
    assert_eq!(r.delete(&format!("{ps}/{pid}")).0, 204);
    r.wait_active(&lb);
    assert_eq!(
        r.get(&format!("/v2/lbaas/listeners/{http}")).1["listener"]["default_pool_id"],
        Value::Null
    );
}

#[test]
fn members_and_batch_update() {
    let (_d, r) = Rocta::start();
    let lb = r.lb();
    let l = listener(&r, &lb, "HTTP", 80);
    let p = pool(&r, &l);
    let ms = format!("/v2/lbaas/pools/{p}/members");
    let (s, b) = r.post(&ms, json!({"member": {"name": "m1", "address": "192.0.2.10", "protocol_port": 8080, "subnet_id": SUBNET, "weight": 5}}));
    assert_eq!(s, 201, "{b}");
    assert_eq!(keys(&b["member"]), sample("member_create.json", "member"));
    assert_eq!(b["member"]["operating_status"], "NO_MONITOR");
    let m1 = id(&b, "member");
    r.wait_active(&lb);
    assert_fault(
        r.post(
            &ms,
            json!({"member": {"address": "192.0.2.10", "protocol_port": 8080}}),
        ),
        409,
        "already using ip 192.0.2.10 on protocol_port 8080",
    );
    assert_fault(
        r.post(
            &ms,
            json!({"member": {"address": "192.0.2.11", "protocol_port": 80, "weight": 257}}),
        ),
        400,
        "lower or equal to 256",
    );
    assert_fault(
        r.post(
            &ms,
            json!({"member": {"address": "not-an-ip", "protocol_port": 80}}),
        ),
        400,
        "IPv4 or IPv6",
    );
    assert_fault(
        r.post(
            &ms,
            json!({"member": {"address": "169.254.169.254", "protocol_port": 80}}),
        ),
        400,
        "reserved",
    );
    let other = "00000000-0000-0000-0000-0000000000aa";
    assert_fault(
        r.get(&format!("{ms}/{other}")),
        404,
        &format!("Member {other} not found."),
    );
    assert_fault(
        r.get(&format!("/v2/lbaas/pools/{other}/members")),
        404,
        "Pool",
    );
    // Batch: keep m1 (updated), add one, and the pool's other members go.
    r.child(
        &lb,
        &ms,
        json!({"member": {"address": "192.0.2.12", "protocol_port": 80}}),
    );
    let (s, _) = r.put(
        &ms,
        json!({"members": [
            {"address": "192.0.2.10", "protocol_port": 8080, "weight": 9},
            {"address": "192.0.2.13", "protocol_port": 80}
        ]}),
    );
    assert_eq!(s, 202);
    r.wait_active(&lb);
    let (_, b) = r.get(&ms);
    let mut got: Vec<(String, i64)> = b["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["address"].as_str().unwrap().to_string(),
                m["weight"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("192.0.2.10".to_string(), 9), ("192.0.2.13".to_string(), 1)]
    );
    assert_eq!(r.get(&format!("{ms}/{m1}")).1["member"]["weight"], 9);
    // additive_only leaves the others; an identical batch changes nothing.
    assert_eq!(
        r.put(
            &format!("{ms}?additive_only=true"),
            json!({"members": [{"address": "192.0.2.14", "protocol_port": 80}]})
        )
        .0,
        202
    );
    r.wait_active(&lb);
    assert_eq!(r.get(&ms).1["members"].as_array().unwrap().len(), 3);
    assert_eq!(
        r.put(
            &format!("{ms}?additive_only=true"),
            json!({"members": [{"address": "192.0.2.14", "protocol_port": 80}]})
        )
        .0,
        202
    );
    assert_eq!(
        r.get(&format!("/v2/lbaas/loadbalancers/{lb}")).1["loadbalancer"]["provisioning_status"],
        "ACTIVE"
    );
    assert_fault(
        r.put(&ms, json!({"members": [{"address": "192.0.2.14"}]})),
        400,
        "protocol_port",
    );
    // Update and delete.
    let (s, b) = r.put(
        &format!("{ms}/{m1}"),
        json!({"member": {"backup": true, "weight": 42}}),
    );
    assert_eq!(s, 200, "{b}");
    r.wait_active(&lb);
    assert_eq!(r.delete(&format!("{ms}/{m1}")).0, 204);
    r.wait_active(&lb);
    assert_eq!(r.get(&format!("{ms}/{m1}")).0, 404);
}

#[test]
fn health_monitor_rules() {
    let (_d, r) = Rocta::start();
    let lb = r.lb();
    let l = listener(&r, &lb, "HTTP", 80);
    let p = pool(&r, &l);
    let hs = "/v2/lbaas/healthmonitors";
    assert_fault(r.post(hs, json!({"healthmonitor": {"pool_id": p, "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 3, "url_path": "/x"}})), 400, "url_path is not a valid option");
    assert_fault(r.post(hs, json!({"healthmonitor": {"pool_id": p, "type": "UDP-CONNECT", "delay": 5, "timeout": 3, "max_retries": 3}})), 400, "not supported");
    assert_fault(r.post(hs, json!({"healthmonitor": {"pool_id": p, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 11}})), 400, "lower or equal to 10");
    assert_fault(r.post(hs, json!({"healthmonitor": {"pool_id": p, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3, "expected_codes": "2xx"}})), 400, "expected_codes");
    assert_fault(r.post(hs, json!({"healthmonitor": {"pool_id": p, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3, "domain_name": "a.example"}})), 400, "http_version 1.1");
    let (s, b) = r.post(hs, json!({"healthmonitor": {"name": "h", "pool_id": p, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3}}));
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        keys(&b["healthmonitor"]),
        sample("healthmonitor_create.json", "healthmonitor")
    );
    let h = &b["healthmonitor"];
    assert_eq!(
        (
            h["http_method"].clone(),
            h["url_path"].clone(),
            h["expected_codes"].clone(),
            h["max_retries_down"].clone()
        ),
        (json!("GET"), json!("/"), json!("200"), json!(3))
    );
    assert_eq!(h["pools"], json!([{"id": p}]));
    let hid = id(&b, "healthmonitor");
    r.wait_active(&lb);
    assert_eq!(
        r.get(&format!("{hs}/{hid}")).1["healthmonitor"]["operating_status"],
        "ONLINE"
    );
    assert_eq!(
        r.get(&format!("/v2/lbaas/pools/{p}")).1["pool"]["healthmonitor_id"],
        hid.as_str()
    );
    assert_fault(r.post(hs, json!({"healthmonitor": {"pool_id": p, "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 3}})), 409, "already has a health monitor");
    // Members created under a monitored pool start OFFLINE.
    let m = r.child(
        &lb,
        &format!("/v2/lbaas/pools/{p}/members"),
        json!({"member": {"address": "192.0.2.1", "protocol_port": 80}}),
    );
    assert_eq!(m["member"]["operating_status"], "OFFLINE");
    let (s, b) = r.put(
        &format!("{hs}/{hid}"),
        json!({"healthmonitor": {"delay": 7, "http_version": 1.1, "domain_name": "a.example"}}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["healthmonitor"]["delay"], 7);
    r.wait_active(&lb);
    // Disabled, it is OFFLINE once provisioned; enabled again, ONLINE (Octavia's rule).
    for (up, want) in [(false, "OFFLINE"), (true, "ONLINE")] {
        let (s, b) = r.put(
            &format!("{hs}/{hid}"),
            json!({"healthmonitor": {"admin_state_up": up}}),
        );
        assert_eq!(s, 200, "{b}");
        r.wait_active(&lb);
        assert_eq!(
            r.get(&format!("{hs}/{hid}")).1["healthmonitor"]["operating_status"],
            want
        );
    }
    assert_eq!(r.delete(&format!("{hs}/{hid}")).0, 204);
    r.wait_active(&lb);
    assert!(r.get(&format!("/v2/lbaas/pools/{p}")).1["pool"]
        .get("healthmonitor_id")
        .is_none());
}

#[test]
fn l7_policies_and_rules() {
    let (_d, r) = Rocta::start();
    let lb = r.lb();
    let l = listener(&r, &lb, "HTTP", 80);
    let tcp = listener(&r, &lb, "TCP", 90);
    let ps = "/v2/lbaas/l7policies";
    assert_fault(
        r.post(
            ps,
            json!({"l7policy": {"listener_id": tcp, "action": "REJECT"}}),
        ),
        501,
        "L7 policies are only supported",
    );
    assert_fault(
        r.post(
            ps,
            json!({"l7policy": {"listener_id": l, "action": "REDIRECT_TO_POOL"}}),
        ),
        400,
        "redirect_pool_id",
    );
    assert_fault(r.post(ps, json!({"l7policy": {"listener_id": l, "action": "REDIRECT_TO_URL", "redirect_url": "not a url"}})), 400, "not a valid URL");
    assert_fault(r.post(ps, json!({"l7policy": {"listener_id": l, "action": "REDIRECT_TO_URL", "redirect_url": "http://a.example/", "redirect_http_code": 304}})), 400, "redirect_http_code");
    let (s, b) = r.post(
        ps,
        json!({"l7policy": {"listener_id": l, "action": "REJECT", "name": "a"}}),
    );
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        keys(&b["l7policy"]),
        sample("l7policy_create.json", "l7policy")
    );
    assert_eq!(b["l7policy"]["redirect_http_code"], Value::Null);
    let a = id(&b, "l7policy");
    r.wait_active(&lb);
    let b2 = r.child(&lb, ps, json!({"l7policy": {"listener_id": l, "action": "REDIRECT_TO_URL", "redirect_url": "http://a.example/", "position": 1, "name": "b"}}));
    assert_eq!(b2["l7policy"]["redirect_http_code"], 302);
    assert_eq!(b2["l7policy"]["position"], 1);
    let c = r.child(&lb, ps, json!({"l7policy": {"listener_id": l, "action": "REDIRECT_PREFIX", "redirect_prefix": "https://b.example", "position": 99, "name": "c"}}));
    assert_eq!(c["l7policy"]["position"], 3);
    assert_eq!(r.get(&format!("{ps}/{a}")).1["l7policy"]["position"], 2);
    assert_eq!(
        r.get(&format!("/v2/lbaas/listeners/{l}")).1["listener"]["l7policies"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Rules.
    let rs = format!("{ps}/{a}/rules");
    assert_fault(
        r.post(
            &rs,
            json!({"rule": {"type": "HEADER", "compare_type": "EQUAL_TO", "value": "x"}}),
        ),
        400,
        "key is required",
    );
    assert_fault(
        r.post(
            &rs,
            json!({"rule": {"type": "PATH", "compare_type": "REGEX", "value": "(["}}),
        ),
        400,
        "invalid regex",
    );
    assert_fault(r.post(&rs, json!({"rule": {"type": "SSL_CONN_HAS_CERT", "compare_type": "EQUAL_TO", "value": "false"}})), 400, "SSL_CONN_HAS_CERT");
    assert_fault(
        r.post(
            &rs,
            json!({"rule": {"type": "FILE_TYPE", "compare_type": "CONTAINS", "value": "jpg"}}),
        ),
        400,
        "FILE_TYPE",
    );
    let (s, b) = r.post(
        &rs,
        json!({"rule": {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"}}),
    );
    assert_eq!(s, 201, "{b}");
    assert_eq!(keys(&b["rule"]), sample("l7rule_create.json", "rule"));
    let rid = id(&b, "rule");
    r.wait_active(&lb);
    assert_eq!(
        r.get(&format!("{ps}/{a}")).1["l7policy"]["rules"],
        json!([{"id": rid}])
    );
    assert_eq!(
        r.get(&format!("{rs}/{rid}")).1["rule"]["operating_status"],
        "ONLINE"
    );
    let (s, b) = r.put(
        &format!("{rs}/{rid}"),
        json!({"rule": {"value": "/v2", "invert": true}}),
    );
    assert_eq!(s, 200, "{b}");
    r.wait_active(&lb);
    assert_eq!(
        r.get(&format!("{rs}?invert=true")).1["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Deleting the first policy renumbers the rest from 1 and takes its rules along.
    assert_eq!(r.delete(&format!("{ps}/{}", id(&b2, "l7policy"))).0, 204);
    r.wait_active(&lb);
    assert_eq!(r.get(&format!("{ps}/{a}")).1["l7policy"]["position"], 1);
    assert_eq!(
        r.get(&format!("{ps}/{}", id(&c, "l7policy"))).1["l7policy"]["position"],
        2
    );
    assert_eq!(r.delete(&format!("{ps}/{a}")).0, 204);
    r.wait_active(&lb);
    assert_eq!(r.get(&format!("{rs}/{rid}")).0, 404);
}

/// WSME converts what it can before it validates: numeric strings to integers, its boolean
/// spellings to booleans (octavia-tempest-plugin sends `"protocol_port": "80"`); the converted
/// value is what is stored and answered.
#[test]
fn wsme_conversions_of_typed_fields() {
    let (_d, r) = Rocta::start();
    let lb = r.lb();
    let b = r.child(
        &lb,
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": " 80 ",
            "connection_limit": "-1", "admin_state_up": "off"}}),
    );
    let l = &b["listener"];
    assert_eq!(
        (
            &l["protocol_port"],
            &l["connection_limit"],
            &l["admin_state_up"]
        ),
        (&json!(80), &json!(-1), &json!(false)),
        "{b}"
    );
    let lid = id(&b, "listener");
    let got = r.get(&format!("/v2/lbaas/listeners/{lid}")).1;
    assert_eq!(got["listener"]["protocol_port"], 80, "{got}");
    let (s, b) = r.put(
        &format!("/v2/lbaas/listeners/{lid}"),
        json!({"listener": {"admin_state_up": 1, "timeout_client_data": 1000.9}}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["listener"]["admin_state_up"], true);
    assert_eq!(b["listener"]["timeout_client_data"], 1000);
    r.wait_active(&lb);
    let ls = "/v2/lbaas/listeners";
    for (field, value, msg) in [
        ("protocol_port", json!("eighty"), "should be an integer"),
        ("protocol_port", json!("8 0"), "should be an integer"),
        ("protocol_port", json!("70000"), "lower or equal to 65535"),
        ("admin_state_up", json!("True"), "Expected '<class 'bool'>'"),
        ("admin_state_up", json!(1.0), "Expected '<class 'bool'>'"),
    ] {
        let mut body = json!({"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 81});
        body[field] = value;
        assert_fault(r.post(ls, json!({ "listener": body })), 400, msg);
    }
}
