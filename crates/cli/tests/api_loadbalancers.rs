//! The load-balancer API over HTTP against the real binary: Octavia's shapes, codes and rules.

mod common;

use common::*;
use serde_json::json;

#[test]
fn versions_and_routing_errors() {
    let (_d, r) = Rocta::start();
    let (s, b) = r.get("/");
    assert_eq!(s, 200);
    let v = b["versions"].as_array().unwrap();
    assert_eq!(v.len(), 31);
    assert_eq!(v[30]["id"], "v2.30");
    assert_eq!(v[30]["status"], "CURRENT");
    assert!(v[0]["links"][0]["href"].as_str().unwrap().ends_with("/v2"));
    assert_eq!(r.get("/v2"), (200, json!("v2")));
    let (s, b) = r.get("/v2/lbaas/nosuchresource");
    assert_eq!(
        (s, b),
        (
            404,
            json!({"code": 404, "title": "Not Found", "description": ""})
        )
    );
    let (s, b) = r.req("PATCH", "/v2/lbaas/loadbalancers/x", Some(json!({})));
    assert_eq!(s, 405);
    assert_eq!(b["code"], 405);
    let (s, b) = r.get("/v2/lbaas/providers");
    assert_eq!(s, 200);
    assert_eq!(b["providers"][0]["name"], "amphora");
    assert!(b["providers"][0]["description"].is_string(), "{b}");
    let (s, b) = r.get("/v2/lbaas/providers?fields=name");
    assert_eq!(s, 200);
    assert_eq!(b["providers"][0], json!({"name": "amphora"}));
}

#[test]
fn request_id_header_is_set() {
    let (_d, r) = Rocta::start();
    let resp = reqwest::blocking::get(format!("{}/v2/lbaas/loadbalancers", r.url)).unwrap();
    let id = resp.headers()["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(id.starts_with("req-") && id.len() == 40, "{id}");
}

/// A server whose every flow step waits, so the PENDING_* window can be observed.
fn slow() -> (tempfile::TempDir, Rocta) {
    let dir = tempfile::tempdir().unwrap();
    let r = Rocta::start_in(
        dir.path(),
        "serve",
        TEST_CONFIG,
        &[("ROCTA_FAULT_DELAY_MS", "150")],
    );
    (dir, r)
}

#[test]
fn create_get_update_delete() {
    let (_d, r) = slow();
    let (s, b) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"name": "a", "description": "d", "vip_subnet_id": SUBNET, "tags": ["t1"]}}),
    );
    assert_eq!(s, 201, "{b}");
    let lb = &b["loadbalancer"];
    assert_eq!(lb["provisioning_status"], "PENDING_CREATE");
    assert_eq!(lb["operating_status"], "OFFLINE");
    assert_eq!(lb["project_id"], "p1");
    assert_eq!(lb["tenant_id"], "p1");
    assert_eq!(lb["vip_address"], "198.51.100.1");
    assert_eq!(lb["provider"], "amphora");
    assert_eq!(lb["listeners"], json!([]));
    assert!(lb["updated_at"].is_null());
    assert_eq!(lb["created_at"].as_str().unwrap().len(), 19);
    // Same keys as Octavia's captured response.
    let sample: serde_json::Value = serde_json::from_str(include_str!(
        "fixtures/octavia-samples/loadbalancer_create.json"
    ))
    .unwrap();
    let mut want: Vec<_> = sample["body"]["loadbalancer"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut got: Vec<_> = lb.as_object().unwrap().keys().cloned().collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    let id = lb["id"].as_str().unwrap().to_string();
    let active = r.wait_active(&id);
    assert!(active["updated_at"].is_string());
    let (s, b) = r.put(
        &format!("/v2/lbaas/loadbalancers/{id}"),
        json!({"loadbalancer": {"name": "b"}}),
    );
    assert_eq!(s, 200);
    assert_eq!(b["loadbalancer"]["name"], "b");
    assert_eq!(b["loadbalancer"]["provisioning_status"], "PENDING_UPDATE");
    // A second change while PENDING_UPDATE is refused.
    assert_fault(
        r.put(
            &format!("/v2/lbaas/loadbalancers/{id}"),
            json!({"loadbalancer": {"name": "c"}}),
        ),
        409,
        "Invalid state PENDING_UPDATE of loadbalancer resource",
    );
    r.wait_active(&id);
    assert_eq!(r.delete(&format!("/v2/lbaas/loadbalancers/{id}")).0, 204);
    // Deleted load balancers vanish (404), as Octavia v2.1.
    let t = std::time::Instant::now();
    while r.get(&format!("/v2/lbaas/loadbalancers/{id}")).0 != 404 {
        assert!(t.elapsed().as_secs() < 5);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_fault(
        r.get(&format!("/v2/lbaas/loadbalancers/{id}")),
        404,
        &format!("Load Balancer {id} not found."),
    );
}

#[test]
fn create_errors_are_octavia_faults_and_write_nothing() {
    let (_d, r) = Rocta::start();
    let lbs = "/v2/lbaas/loadbalancers";
    assert_fault(
        r.raw("POST", lbs, "{not json"),
        400,
        "Request is not in valid JSON format",
    );
    assert_fault(
        r.post(
            lbs,
            json!({"loadbalancer": {"vip_subnet_id": "not-a-uuid", "bogus_field": 1}}),
        ),
        400,
        "Unknown attribute for argument load_balancer.loadbalancer: bogus_field",
    );
    assert_fault(
        r.post(lbs, json!({"loadbalancer": {"vip_subnet_id": "nope"}})),
        400,
        "Value should be UUID format",
    );
    assert_fault(
        r.post(
            lbs,
            json!({"loadbalancer": {"name": 5, "vip_subnet_id": SUBNET}}),
        ),
        400,
        "Wrong type",
    );
    assert_fault(
        r.post(
            lbs,
            json!({"loadbalancer": {"name": "x".repeat(256), "vip_subnet_id": SUBNET}}),
        ),
        400,
        "maximum character requirement of 255",
    );
    // WSME takes "yes" for true, but nothing it cannot read unambiguously.
    assert_fault(
        r.post(
            lbs,
            json!({"loadbalancer": {"admin_state_up": "maybe", "vip_subnet_id": SUBNET}}),
        ),
        400,
        "Wrong type",
    );
    assert_fault(
        r.post(lbs, json!({"loadbalancer": {"name": "x"}})),
        400,
        "VIP must contain one of",
    );
    assert_fault(r.post(lbs, json!([1, 2])), 400, "Invalid input");
    assert_fault(
        r.post(
            lbs,
            json!({"loadbalancer": {"vip_subnet_id": SUBNET, "provider": "nope"}}),
        ),
        400,
        "Provider 'nope' is not enabled.",
    );
    let big = format!(
        "{{\"loadbalancer\": {{\"name\": \"{}\"}}}}",
        "x".repeat(120_000)
    );
    assert_fault(r.raw("POST", lbs, &big), 413, "too large");
    let (s, b) = r.req_as(
        "POST",
        lbs,
        Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET}})),
        "",
        None,
    );
    assert_eq!(s, 400, "{b}");
    assert!(b["faultstring"]
        .as_str()
        .unwrap()
        .contains("Missing project ID"));
    // Nothing was written.
    assert_eq!(r.get(lbs).1["loadbalancers"], json!([]));
    // The project may come from the body.
    let (s, b) = r.req_as(
        "POST",
        lbs,
        Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET, "project_id": "p9"}})),
        "",
        None,
    );
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["loadbalancer"]["project_id"], "p9");
}

#[test]
fn delete_with_children_needs_cascade() {
    let (_d, r) = slow();
    let lb = r.lb();
    let l = r.child(
        &lb,
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}}),
    );
    let lid = l["listener"]["id"].as_str().unwrap().to_string();
    r.child(
        &lb,
        "/v2/lbaas/pools",
        json!({"pool": {"listener_id": lid, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
    );
    assert_fault(
        r.delete(&format!("/v2/lbaas/loadbalancers/{lb}")),
        400,
        &format!("Cannot delete Load Balancer {lb} - it has children"),
    );
    let (s, b) = r.get(&format!("/v2/lbaas/loadbalancers/{lb}"));
    assert_eq!(s, 200);
    assert_eq!(b["loadbalancer"]["listeners"], json!([{"id": lid}]));
    assert_eq!(
        r.delete(&format!("/v2/lbaas/loadbalancers/{lb}?cascade=true"))
            .0,
        204
    );
    assert_eq!(
        r.get(&format!("/v2/lbaas/listeners/{lid}")).1["listener"]["provisioning_status"],
        "PENDING_DELETE"
    );
    let t = std::time::Instant::now();
    while r.get(&format!("/v2/lbaas/loadbalancers/{lb}")).0 != 404 {
        assert!(t.elapsed().as_secs() < 5);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(r.get(&format!("/v2/lbaas/listeners/{lid}")).0, 404);
    assert_eq!(r.get("/v2/lbaas/pools").1["pools"], json!([]));
    assert_eq!(r.get("/v2/octavia/amphorae").1["amphorae"], json!([]));
}

#[test]
fn status_tree_stats_and_failover() {
    let (_d, r) = Rocta::start();
    let lb = r.lb();
    let l = r.child(&lb, "/v2/lbaas/listeners", json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80, "name": "l"}}));
    let lid = l["listener"]["id"].as_str().unwrap().to_string();
    let p = r.child(
        &lb,
        "/v2/lbaas/pools",
        json!({"pool": {"listener_id": lid, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
    );
    let pid = p["pool"]["id"].as_str().unwrap().to_string();
    r.child(
        &lb,
        &format!("/v2/lbaas/pools/{pid}/members"),
        json!({"member": {"address": "192.0.2.10", "protocol_port": 8080}}),
    );
    let h = r.child(&lb, "/v2/lbaas/healthmonitors", json!({"healthmonitor": {"pool_id": pid, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3}}));
    let (s, b) = r.get(&format!("/v2/lbaas/loadbalancers/{lb}/status"));
    assert_eq!(s, 200);
    let t = &b["statuses"]["loadbalancer"];
    assert_eq!(t["id"], lb.as_str());
    let pool = &t["listeners"][0]["pools"][0];
    assert_eq!(pool["id"], pid.as_str());
    assert_eq!(pool["health_monitor"]["id"], h["healthmonitor"]["id"]);
    assert_eq!(pool["health_monitor"]["operating_status"], "ONLINE");
    assert_eq!(pool["members"][0]["address"], "192.0.2.10");
    assert_eq!(pool["members"][0]["operating_status"], "NO_MONITOR");
    let (s, b) = r.get(&format!("/v2/lbaas/loadbalancers/{lb}/stats"));
    assert_eq!(s, 200);
    assert_eq!(
        b,
        json!({"stats": {"bytes_in": 0, "bytes_out": 0, "active_connections": 0, "total_connections": 0, "request_errors": 0}})
    );
    assert_eq!(r.get(&format!("/v2/lbaas/listeners/{lid}/stats")).1, b);
    // Failover replaces the amphora.
    let before = r
        .get(&format!("/v2/octavia/amphorae?loadbalancer_id={lb}"))
        .1["amphorae"][0]["id"]
        .clone();
    assert_eq!(
        r.put(&format!("/v2/lbaas/loadbalancers/{lb}/failover"), json!({}))
            .0,
        202
    );
    r.wait_active(&lb);
    let amps = r
        .get(&format!("/v2/octavia/amphorae?loadbalancer_id={lb}"))
        .1["amphorae"]
        .clone();
    assert_eq!(amps.as_array().unwrap().len(), 1, "{amps}");
    assert_ne!(amps[0]["id"], before);
    assert_eq!(amps[0]["status"], "ALLOCATED");
    let aid = amps[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.get(&format!("/v2/octavia/amphorae/{aid}/stats")).1,
        json!({"amphora_stats": []})
    );
    assert_eq!(
        r.put(&format!("/v2/octavia/amphorae/{aid}/failover"), json!({}))
            .0,
        202
    );
    r.wait_active(&lb);
    assert_fault(
        r.get(&format!("/v2/octavia/amphorae/{aid}")),
        404,
        "Amphora",
    );
    // Failover is for admins.
    let (s, _) = r.req_as(
        "PUT",
        &format!("/v2/lbaas/loadbalancers/{lb}/failover"),
        None,
        "p1",
        Some("member"),
    );
    assert_eq!(s, 403);
}

#[test]
fn list_pagination_sorting_filtering_fields() {
    let (_d, r) = Rocta::start();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (s, b) = r.post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"name": format!("lb{i}"), "vip_subnet_id": SUBNET, "tags": if i % 2 == 0 { json!(["even"]) } else { json!(["odd"]) }}}),
        );
        assert_eq!(s, 201);
        ids.push(b["loadbalancer"]["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        r.wait_active(id);
    }
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["loadbalancers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, b) = r.get("/v2/lbaas/loadbalancers?limit=2");
    assert_eq!(names(&b), ["lb0", "lb1"]);
    let next = b["loadbalancers_links"][0]["href"].as_str().unwrap();
    assert!(next.contains(&format!("marker={}", ids[1])), "{next}");
    let (_, b) = r.get(&format!(
        "/v2/lbaas/loadbalancers?limit=2&marker={}",
        ids[1]
    ));
    assert_eq!(names(&b), ["lb2", "lb3"]);
    assert_eq!(b["loadbalancers_links"].as_array().unwrap().len(), 2);
    let (_, b) = r.get(&format!(
        "/v2/lbaas/loadbalancers?limit=2&marker={}&page_reverse=True",
        ids[2]
    ));
    assert_eq!(names(&b), ["lb0", "lb1"]);
    let (_, b) = r.get("/v2/lbaas/loadbalancers?sort=name:desc");
    assert_eq!(names(&b), ["lb4", "lb3", "lb2", "lb1", "lb0"]);
    let (_, b) = r.get("/v2/lbaas/loadbalancers?sort_key=name&sort_dir=desc&limit=1");
    assert_eq!(names(&b), ["lb4"]);
    let (_, b) = r.get("/v2/lbaas/loadbalancers?name=lb3");
    assert_eq!(names(&b), ["lb3"]);
    let (_, b) = r.get("/v2/lbaas/loadbalancers?tags=even");
    assert_eq!(names(&b), ["lb0", "lb2", "lb4"]);
    let (_, b) = r.get("/v2/lbaas/loadbalancers?not-tags=even");
    assert_eq!(names(&b), ["lb1", "lb3"]);
    let (_, b) =
        r.get("/v2/lbaas/loadbalancers?admin_state_up=true&provisioning_status=ACTIVE&limit=1");
    assert_eq!(names(&b), ["lb0"]);
    let (_, b) = r.get("/v2/lbaas/loadbalancers?fields=id&fields=name");
    let first = b["loadbalancers"][0].as_object().unwrap();
    assert_eq!(first.len(), 2);
    let (_, b) = r.get(&format!("/v2/lbaas/loadbalancers/{}?fields=name", ids[0]));
    assert_eq!(b, json!({"loadbalancer": {"name": "lb0"}}));
    assert_fault(r.get("/v2/lbaas/loadbalancers?bogus=1"), 400, "invalid");
    assert_fault(
        r.get("/v2/lbaas/loadbalancers?sort=name:sideways"),
        400,
        "sort direction",
    );
    assert_fault(r.get("/v2/lbaas/loadbalancers?sort=nope"), 400, "sort key");
    assert_fault(
        r.get("/v2/lbaas/loadbalancers?marker=00000000-0000-0000-0000-000000000000"),
        400,
        "Marker",
    );
    assert_fault(r.get("/v2/lbaas/loadbalancers?limit=abc"), 400, "limit");
}

#[test]
fn project_isolation_with_roles() {
    let (_d, r) = Rocta::start();
    let lb = r.lb();
    let path = format!("/v2/lbaas/loadbalancers/{lb}");
    // Another project's member lists nothing of p1, and is refused p1's objects by policy
    // (403, as Octavia: it loads the object, then enforces policy on its owner's project);
    // only an object that does not exist is 404.
    let (s, b) = r.req_as("GET", "/v2/lbaas/loadbalancers", None, "p2", Some("member"));
    assert_eq!((s, b["loadbalancers"].clone()), (200, json!([])));
    let policy = "Policy does not allow this request to be performed.";
    assert_fault(
        r.req_as("GET", &path, None, "p2", Some("member")),
        403,
        policy,
    );
    assert_fault(
        r.req_as(
            "PUT",
            &path,
            Some(json!({"loadbalancer": {"name": "x"}})),
            "p2",
            Some("member"),
        ),
        403,
        policy,
    );
    assert_fault(
        r.req_as("DELETE", &path, None, "p2", Some("member")),
        403,
        policy,
    );
    for sub in ["status", "stats"] {
        let p = format!("{path}/{sub}");
        assert_fault(r.req_as("GET", &p, None, "p2", Some("member")), 403, policy);
    }
    let missing = "/v2/lbaas/loadbalancers/00000000-0000-0000-0000-000000000001";
    assert_fault(
        r.req_as("GET", missing, None, "p2", Some("member")),
        404,
        "not found",
    );
    // Children too, reached directly or through their parent.
    let (s, pool) = r.post(
        "/v2/lbaas/pools",
        json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
    );
    assert_eq!(s, 201, "{pool}");
    r.wait_active(&lb);
    let pool = pool["pool"]["id"].as_str().unwrap().to_string();
    let members = format!("/v2/lbaas/pools/{pool}/members");
    let (s, m) = r.post(
        &members,
        json!({"member": {"address": "192.0.2.9", "protocol_port": 80}}),
    );
    assert_eq!(s, 201, "{m}");
    r.wait_active(&lb);
    let member = format!("{members}/{}", m["member"]["id"].as_str().unwrap());
    for p in [format!("/v2/lbaas/pools/{pool}"), members.clone(), member] {
        assert_fault(r.req_as("GET", &p, None, "p2", Some("member")), 403, policy);
    }
    assert_fault(
        r.req_as(
            "POST",
            "/v2/lbaas/healthmonitors",
            Some(
                json!({"healthmonitor": {"pool_id": pool, "type": "TCP", "delay": 1,
                "timeout": 1, "max_retries": 1}}),
            ),
            "p2",
            Some("member"),
        ),
        403,
        policy,
    );
    // The owner's reader sees but cannot write.
    assert_eq!(r.req_as("GET", &path, None, "p1", Some("reader")).0, 200);
    assert_eq!(
        r.req_as(
            "PUT",
            &path,
            Some(json!({"loadbalancer": {"name": "x"}})),
            "p1",
            Some("reader")
        )
        .0,
        403
    );
    let (s, b) = r.req_as("GET", "/v2/lbaas/loadbalancers", None, "p1", Some("reader"));
    assert_eq!((s, b["loadbalancers"].as_array().unwrap().len()), (200, 1));
    // Creating in another project is refused; an admin sees everything; Octavia's deprecated
    // roles count only with enforce_new_defaults off (operator_policy below).
    let (s, _) = r.req_as(
        "POST",
        "/v2/lbaas/loadbalancers",
        Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET, "project_id": "p1"}})),
        "p2",
        Some("member"),
    );
    assert_eq!(s, 403);
    assert_eq!(r.req_as("GET", &path, None, "p3", Some("admin")).0, 200);
    assert_eq!(
        r.req_as(
            "GET",
            &path,
            None,
            "p3",
            Some("load-balancer_global_observer")
        )
        .0,
        403
    );
    // Amphorae are admin-only; no role at all is refused.
    assert_eq!(
        r.req_as("GET", "/v2/octavia/amphorae", None, "p1", Some("member"))
            .0,
        403
    );
    assert_eq!(
        r.req_as("GET", "/v2/lbaas/loadbalancers", None, "p1", Some(""))
            .0,
        403
    );
}

#[test]
fn quotas_are_reported_and_enforced() {
    let (_d, r) = Rocta::start();
    let (s, b) = r.get("/v2/lbaas/quotas/p1");
    assert_eq!(s, 200);
    assert_eq!(b["quota"]["loadbalancer"], -1);
    assert_eq!(b["quota"]["load_balancer"], -1);
    assert_eq!(b["quota"]["tenant_id"], "p1");
    assert_eq!(r.get("/v2/lbaas/quotas/defaults").1["quota"]["member"], -1);
    assert_eq!(r.get("/v2/lbaas/quotas/p1/default").1["quota"]["pool"], -1);
    let (s, b) = r.put(
        "/v2/lbaas/quotas/p1",
        json!({"quota": {"load_balancer": 1, "listener": 1}}),
    );
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["quota"]["loadbalancer"], 1);
    assert_fault(
        r.put("/v2/lbaas/quotas/p1", json!({"quota": {"pool": -2}})),
        400,
        "greater or equal to -1",
    );
    assert_eq!(
        r.get("/v2/lbaas/quotas").1["quotas"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Filtered by project, fields selected.
    assert_eq!(
        r.get("/v2/lbaas/quotas?project_id=p1&fields=project_id&fields=pool")
            .1,
        json!({"quotas": [{"project_id": "p1", "pool": -1}], "quotas_links": []})
    );
    assert_eq!(
        r.get("/v2/lbaas/quotas?project_id=p9").1["quotas"],
        json!([])
    );
    let lb = r.lb();
    assert_fault(
        r.post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"vip_subnet_id": SUBNET}}),
        ),
        403,
        "Quota has been met for resources: Load Balancer",
    );
    r.child(
        &lb,
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 1}}),
    );
    assert_fault(
        r.post(
            "/v2/lbaas/listeners",
            json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 2}}),
        ),
        403,
        "Quota has been met for resources: Listener",
    );
    assert_eq!(
        r.get(&format!("/v2/lbaas/loadbalancers/{lb}")).1["loadbalancer"]["provisioning_status"],
        "ACTIVE"
    );
    assert_eq!(r.delete("/v2/lbaas/quotas/p1").0, 202);
    assert_eq!(r.get("/v2/lbaas/quotas/p1").1["quota"]["loadbalancer"], -1);
    // Only quota admins may set quotas.
    assert_eq!(
        r.req_as(
            "PUT",
            "/v2/lbaas/quotas/p1",
            Some(json!({"quota": {"pool": 1}})),
            "p1",
            Some("member")
        )
        .0,
        403
    );
}

#[test]
fn accept_and_framework_errors_use_octavia_bodies() {
    let (_d, r) = Rocta::start();
    let c = reqwest::blocking::Client::new();
    let resp = c
        .get(format!("{}/v2/lbaas/loadbalancers", r.url))
        .header("Accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 406);
    let b: serde_json::Value = resp.json().unwrap();
    assert_eq!(b["errors"][0]["status"], 406);
    let resp = c
        .get(format!("{}/v2/lbaas/loadbalancers", r.url))
        .header("Accept", "application/json; charset=utf-8")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // A path segment that is not valid percent-encoded UTF-8 is refused with a JSON body.
    let (s, b) = r.get("/v2/lbaas/loadbalancers/%FF");
    assert!(s == 400 || s == 404, "{s}");
    assert!(b.is_object(), "{b}");
}

#[test]
fn graph_create_builds_the_whole_tree_in_one_request() {
    let (_d, r) = Rocta::start();
    let body = json!({"loadbalancer": {
        "name": "g", "vip_subnet_id": SUBNET,
        "pools": [{"name": "web", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": [{"address": "192.0.2.1", "protocol_port": 80}, {"address": "192.0.2.2", "protocol_port": 80}],
                   "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2}}],
        "listeners": [{"name": "http", "protocol": "HTTP", "protocol_port": 80, "default_pool": {"name": "web"},
                       "l7policies": [{"action": "REDIRECT_TO_POOL",
                                       "redirect_pool": {"name": "api", "protocol": "HTTP", "lb_algorithm": "LEAST_CONNECTIONS"},
                                       "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"}]},
                                      {"action": "REJECT"}]},
                      {"protocol": "TCP", "protocol_port": 443}]
    }});
    let (s, b) = r.post("/v2/lbaas/loadbalancers", body);
    assert_eq!(s, 201, "{b}");
    let lb = &b["loadbalancer"];
    assert_eq!(lb["listeners"].as_array().unwrap().len(), 2);
    assert_eq!(
        lb["listeners"][0]["l7policies"][0]["rules"][0]["value"],
        "/api"
    );
    assert_eq!(lb["listeners"][0]["l7policies"][1]["position"], 2);
    assert_eq!(lb["pools"].as_array().unwrap().len(), 2);
    assert_eq!(lb["pools"][0]["members"].as_array().unwrap().len(), 2);
    assert_eq!(lb["pools"][0]["members"][0]["operating_status"], "OFFLINE");
    assert_eq!(lb["pools"][0]["healthmonitor"]["max_retries"], 2);
    assert_eq!(lb["listeners"][0]["default_pool_id"], lb["pools"][0]["id"]);
    assert_eq!(lb["listeners"][0]["provisioning_status"], "PENDING_CREATE");
    let id = lb["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let (_, t) = r.get(&format!("/v2/lbaas/loadbalancers/{id}/status"));
    let l0 = &t["statuses"]["loadbalancer"]["listeners"][0];
    assert_eq!(l0["provisioning_status"], "ACTIVE");
    assert_eq!(l0["pools"].as_array().unwrap().len(), 2, "{t}");
    assert_eq!(
        l0["pools"][0]["health_monitor"]["provisioning_status"],
        "ACTIVE"
    );
    let (_, g) = r.get(&format!("/v2/lbaas/loadbalancers/{id}"));
    assert_eq!(g["loadbalancer"]["listeners"].as_array().unwrap().len(), 2);
    assert!(
        g["loadbalancer"]["listeners"][0].as_object().unwrap().len() == 1,
        "lists ids only outside create"
    );
    // Errors: nothing is written.
    let lbs = "/v2/lbaas/loadbalancers";
    assert_fault(r.post(lbs, json!({"loadbalancer": {"vip_subnet_id": SUBNET, "pools": [{"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}]}})), 400, "Pools must be named");
    assert_fault(r.post(lbs, json!({"loadbalancer": {"vip_subnet_id": SUBNET, "listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": {"name": "nope"}}]}})), 400, "nope");
    assert_fault(r.post(lbs, json!({"loadbalancer": {"vip_subnet_id": SUBNET, "listeners": [{"protocol": "HTTP", "protocol_port": 80}, {"protocol": "TCP", "protocol_port": 80}]}})), 409, "already using protocol HTTP and protocol_port 80");
    assert_fault(r.post(lbs, json!({"loadbalancer": {"vip_subnet_id": SUBNET, "listeners": [{"protocol": "HTTP", "protocol_port": 80, "bogus": 1}]}})), 400, "Unknown attribute");
    assert_fault(r.post(lbs, json!({"loadbalancer": {"vip_subnet_id": SUBNET, "pools": [{"name": "a", "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}], "listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": {"name": "a"}}]}})), 400, "invalid while the listener protocol");
    assert_eq!(
        r.put("/v2/lbaas/quotas/p1", json!({"quota": {"member": 1}}))
            .0,
        202
    );
    assert_fault(r.post(lbs, json!({"loadbalancer": {"vip_subnet_id": SUBNET, "pools": [{"name": "a", "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN", "members": [{"address": "192.0.2.9", "protocol_port": 1}]}]}})), 403, "Member");
    assert_eq!(r.get(lbs).1["loadbalancers"].as_array().unwrap().len(), 1);
    assert_eq!(
        r.get("/v2/lbaas/pools").1["pools"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn only_an_amphora_in_error_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let r = Rocta::start_in(dir.path(), "serve", TEST_CONFIG, &[]);
    let (s, b) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": SUBNET, "project_id": "p1"}}),
    );
    assert_eq!(s, 201, "{b}");
    let lb = b["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&lb);
    let amps = r
        .get(&format!("/v2/octavia/amphorae?loadbalancer_id={lb}"))
        .1;
    let aid = amps["amphorae"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/v2/octavia/amphorae/{aid}");
    // A working amphora is refused; members may not delete amphorae at all.
    assert_fault(
        r.req("DELETE", &path, None),
        409,
        "is immutable and cannot be updated.",
    );
    assert_eq!(r.req_as("DELETE", &path, None, "p1", Some("member")).0, 403);
    // An amphora Octavia would have marked ERROR (rocta's flows replace theirs instead).
    let store =
        rocta_store::Store::open_sqlite(&dir.path().join("data/rocta.db"), "normal").unwrap();
    let id: rocta_model::Id = aid.parse().unwrap();
    let moved = store
        .blocking(true, |tx| {
            tx.amphora_transition(
                id,
                &[rocta_model::AmphoraStatus::Allocated],
                rocta_model::AmphoraStatus::Error,
            )
        })
        .unwrap();
    assert!(moved);
    assert_eq!(r.get(&path).1["amphora"]["status"], "ERROR");
    assert_eq!(r.req("DELETE", &path, None).0, 204);
    common::dataplane::eventually("the amphora is deleted", || r.get(&path).0 == 404);
    assert_fault(r.req("DELETE", &path, None), 404, "Amphora");
    assert_fault(
        r.req("DELETE", "/v2/octavia/amphorae/not-an-id", None),
        404,
        "Amphora",
    );
}

/// Additional VIPs (API 2.26): one per subnet, the VIP's counted; each gets the address the
/// network driver gave it on the VIP port, shown as Octavia shows them.
#[test]
fn additional_vips_get_an_address_each() {
    let (_d, r) = Rocta::start();
    let lbs = "/v2/lbaas/loadbalancers";
    let second = "6c1e0c36-5b3a-4a8e-9f2e-2f7e7a1d0b11";
    let third = "6c1e0c36-5b3a-4a8e-9f2e-2f7e7a1d0b12";
    assert_fault(
        r.post(
            lbs,
            json!({"loadbalancer": {"vip_subnet_id": SUBNET,
                "additional_vips": [{"subnet_id": SUBNET}]}}),
        ),
        400,
        "Duplicate VIP subnet(s) specified. Only one IP can be bound per subnet.",
    );
    assert_fault(
        r.post(
            lbs,
            json!({"loadbalancer": {"vip_subnet_id": SUBNET,
                "additional_vips": [{"subnet_id": second}, {"subnet_id": second}]}}),
        ),
        400,
        "Duplicate VIP subnet(s)",
    );
    assert_fault(
        r.post(
            lbs,
            json!({"loadbalancer": {"vip_subnet_id": SUBNET,
                "additional_vips": [{"ip_address": "198.51.100.9"}]}}),
        ),
        400,
        "subnet_id",
    );
    assert_eq!(r.get(lbs).1["loadbalancers"], json!([]));
    let (s, b) = r.post(
        lbs,
        json!({"loadbalancer": {"vip_subnet_id": SUBNET, "additional_vips": [
            {"subnet_id": second, "ip_address": "198.51.100.77"},
            {"subnet_id": third}]}}),
    );
    assert_eq!(s, 201, "{b}");
    let lb = &b["loadbalancer"];
    let port = lb["vip_port_id"].as_str().unwrap();
    let added = lb["additional_vips"].as_array().unwrap();
    assert_eq!(added.len(), 2, "{lb}");
    assert_eq!(added[0]["subnet_id"], second);
    assert_eq!(added[0]["ip_address"], "198.51.100.77");
    assert_eq!(added[1]["subnet_id"], third);
    assert!(added[1]["ip_address"]
        .as_str()
        .is_some_and(|a| !a.is_empty()));
    assert!(added.iter().all(|a| a["port_id"] == port), "{lb}");
    let id = lb["id"].as_str().unwrap();
    let (_, got) = r.get(&format!("{lbs}/{id}"));
    assert_eq!(
        got["loadbalancer"]["additional_vips"],
        lb["additional_vips"]
    );
}
