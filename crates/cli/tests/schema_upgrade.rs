//! Upgrading a database written by the previous release's schema (SQLite, version 4): the new
//! release refuses it with the command that fixes it, `rocta db upgrade` brings it to the
//! current version, and the API then serves every object exactly as the old release did.

mod common;

use std::process::Command;

use common::{Rocta, TEST_CONFIG};
use serde_json::{json, Value};

const V4_SQL: &str = include_str!("fixtures/upgrade/v4.sql");
/// The old release's API answers over that database (collected by `snapshot` below).
const V4_API: &str = include_str!("fixtures/upgrade/v4-api.json");

fn rocta(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// What the old release's API answered: every collection, children per parent, status trees.
fn snapshot(r: &Rocta) -> Value {
    let get = |p: &str| {
        let (code, v) = r.get(p);
        assert_eq!(code, 200, "{p}: {v}");
        v
    };
    let mut out = serde_json::Map::new();
    for (k, p) in [
        ("loadbalancers", "/v2/lbaas/loadbalancers"),
        ("listeners", "/v2/lbaas/listeners"),
        ("pools", "/v2/lbaas/pools"),
        ("healthmonitors", "/v2/lbaas/healthmonitors"),
        ("l7policies", "/v2/lbaas/l7policies"),
        ("amphorae", "/v2/octavia/amphorae"),
        ("quotas", "/v2/lbaas/quotas"),
    ] {
        out.insert(k.into(), get(p));
    }
    let mut members = vec![];
    for p in out["pools"]["pools"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        members.extend(
            get(&format!("/v2/lbaas/pools/{id}/members"))["members"]
                .as_array()
                .unwrap()
                .clone(),
        );
    }
    out.insert("members".into(), json!({ "members": members }));
    let mut rules = vec![];
    for p in out["l7policies"]["l7policies"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        rules.extend(
            get(&format!("/v2/lbaas/l7policies/{id}/rules"))["rules"]
                .as_array()
                .unwrap()
                .clone(),
        );
    }
    out.insert("rules".into(), json!({ "rules": rules }));
    let lbs = out["loadbalancers"]["loadbalancers"]
        .as_array()
        .unwrap()
        .clone();
    for lb in lbs {
        let (id, name) = (lb["id"].as_str().unwrap(), lb["name"].as_str().unwrap());
        out.insert(
            format!("status_{name}"),
            get(&format!("/v2/lbaas/loadbalancers/{id}/status")),
        );
    }
    Value::Object(out)
}

#[test]
fn a_version_4_database_is_refused_then_upgraded_with_every_object_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = rusqlite::Connection::open(data.join("rocta.db")).unwrap();
    db.execute_batch(V4_SQL).unwrap();
    drop(db);
    let d = data.to_str().unwrap();

    // The new release does not run on the old schema, and says what to do, in one line.
    let (code, _, err) = rocta(&[
        "serve",
        "--drivers",
        "noop",
        "--api-bind",
        "127.0.0.1:0",
        "--data-dir",
        d,
    ]);
    assert_eq!(code, 74, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("version 4") && err.contains("rocta db upgrade"),
        "{err}"
    );
    let (code, out, err) = rocta(&["db", "version", "--data-dir", d]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("version 4"), "{out}");

    let (code, out, err) = rocta(&["db", "upgrade", "--data-dir", d]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("from version 4 to 7"), "{out}");
    let (code, out, _) = rocta(&["db", "upgrade", "--data-dir", d]);
    assert_eq!(code, 0);
    assert!(out.contains("already current"), "{out}");

    let mut r = Rocta::start_in(dir.path(), "serve", TEST_CONFIG, &[]);
    r.project = "demo".into();
    let want: Value = serde_json::from_str(V4_API).unwrap();
    assert_eq!(snapshot(&r), want);
    // And the upgraded database takes changes: the old load balancer is updated and deleted.
    let lb = want["loadbalancers"]["loadbalancers"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, v) = r.put(
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        json!({"loadbalancer": {"name": "renamed"}}),
    );
    assert_eq!(code, 200, "{v}");
    r.wait_active(&lb);
    assert_eq!(
        r.get(&format!("/v2/lbaas/loadbalancers/{lb}")).1["loadbalancer"]["name"],
        "renamed"
    );
}
