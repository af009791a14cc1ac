//! Octavia's policy as an operator changes it: `[oslo_policy] enforce_new_defaults = false`
//! (Octavia's `load-balancer_*` roles), a policy file overriding base rules (Octavia's own
//! `admin_or_owner-policy.yaml`) and per-API rules, and a file that does not parse.

mod common;

use common::*;
use serde_json::json;

#[test]
fn operator_policy() {
    // enforce_new_defaults off: Octavia's load-balancer_* roles count beside Keystone's.
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{TEST_CONFIG}[oslo_policy]\nenforce_new_defaults = false\n");
    let r = Rocta::start_in(dir.path(), "serve", &config, &[]);
    let lbs = "/v2/lbaas/loadbalancers";
    let body = json!({"loadbalancer": {"vip_subnet_id": SUBNET}});
    let (s, b) = r.req_as(
        "POST",
        lbs,
        Some(body.clone()),
        "p1",
        Some("load-balancer_member"),
    );
    assert_eq!(s, 201, "{b}");
    let path = format!("{lbs}/{}", b["loadbalancer"]["id"].as_str().unwrap());
    let get = |project: &str, roles: &str| r.req_as("GET", &path, None, project, Some(roles)).0;
    assert_eq!(get("p2", "load-balancer_global_observer"), 200);
    assert_eq!(get("p1", "load-balancer_observer"), 200);
    assert_eq!(get("p2", "load-balancer_observer"), 403);
    assert_eq!(get("p2", "member"), 403);
    drop(r);

    // Octavia's etc/policy/admin_or_owner-policy.yaml, named relative to the config file:
    // any user of the owning project may write, with no role at all.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        include_str!("fixtures/admin_or_owner-policy.yaml"),
    )
    .unwrap();
    let config = format!("{TEST_CONFIG}[oslo_policy]\npolicy_file = \"policy.yaml\"\n");
    let r = Rocta::start_in(dir.path(), "serve", &config, &[]);
    let (s, b) = r.req_as("POST", lbs, Some(body.clone()), "p1", Some("nothing"));
    assert_eq!(s, 201, "{b}");
    let path = format!("{lbs}/{}", b["loadbalancer"]["id"].as_str().unwrap());
    assert_eq!(r.req_as("GET", &path, None, "p1", Some("")).0, 200);
    assert_eq!(r.req_as("GET", &path, None, "p2", Some("member")).0, 403);
    // Lists of other projects: only for admins (is_admin: context_is_admin).
    let (s, b) = r.req_as("GET", lbs, None, "p2", Some("load-balancer_admin"));
    assert_eq!((s, b["loadbalancers"].as_array().unwrap().len()), (200, 1));
    let (s, b) = r.req_as("GET", lbs, None, "p2", Some("member"));
    assert_eq!((s, b["loadbalancers"].as_array().unwrap().len()), (200, 0));
    drop(r);

    // Octavia's per-API rules: deletes for administrators only, no listener lists at all.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        "\"os_load-balancer_api:loadbalancer:delete\": \"rule:load-balancer:admin\"\n\
         \"os_load-balancer_api:listener:get_all\": \"!\"\n",
    )
    .unwrap();
    let config = format!("{TEST_CONFIG}[oslo_policy]\npolicy_file = \"policy.yaml\"\n");
    let r = Rocta::start_in(dir.path(), "serve", &config, &[]);
    let (s, b) = r.req_as("POST", lbs, Some(body.clone()), "p1", Some("member"));
    assert_eq!(s, 201, "{b}");
    let id = b["loadbalancer"]["id"].as_str().unwrap().to_string();
    let path = format!("{lbs}/{id}");
    r.wait_active(&id);
    assert_eq!(r.req_as("GET", &path, None, "p1", Some("member")).0, 200);
    assert_eq!(r.req_as("DELETE", &path, None, "p1", Some("member")).0, 403);
    let listeners = "/v2/lbaas/listeners";
    assert_eq!(
        r.req_as("GET", listeners, None, "p1", Some("member")).0,
        403
    );
    assert_eq!(
        r.req_as("GET", "/v2/lbaas/pools", None, "p1", Some("member"))
            .0,
        200
    );
    assert_eq!(r.req_as("DELETE", &path, None, "p1", Some("admin")).0, 204);
    drop(r);

    // A policy file that does not parse stops the API at start, naming the rule.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        "\"load-balancer:read\": \"role:a or\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rocta.toml"),
        "[oslo_policy]\npolicy_file = \"policy.yaml\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--drivers",
            "noop",
            "--api-bind",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(dir.path().join("rocta.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("load-balancer:read"), "{err}");
}
