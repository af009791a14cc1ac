//! `auth_strategy = "keystone"` against a real Keystone (tests/keystone/keystone_server.py in
//! the venv .ci/run makes: ROCTA_KEYSTONE_PYTHON, default /opt/rocta-keystone/bin/python).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::{json, Value};

struct Keystone {
    child: Child,
    url: String,
    projects: Value,
}

impl Drop for Keystone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keystone(dir: &std::path::Path) -> Keystone {
    let python = std::env::var("ROCTA_KEYSTONE_PYTHON")
        .unwrap_or_else(|_| "/opt/rocta-keystone/bin/python".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/keystone/keystone_server.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .arg(dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("Keystone needs {python} (.ci/run installs it): {e}"));
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(
        line.strip_prefix("READY ")
            .unwrap_or_else(|| panic!("Keystone did not start: {line:?}")),
    )
    .unwrap();
    Keystone {
        child,
        url: ready["url"].as_str().unwrap().to_string(),
        projects: ready["projects"].clone(),
    }
}

fn token(k: &Keystone, user: &str, project: &str) -> String {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": format!("{user}-pass")}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v3/auth/tokens", k.url))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.headers()["x-subject-token"].to_str().unwrap().to_string()
}

fn call(
    r: &Rocta,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = reqwest::blocking::Client::new().request(m, format!("{}{path}", r.url));
    if let Some(t) = token {
        rb = rb.header("X-Auth-Token", t);
    }
    // noauth's identity headers: never believed under Keystone.
    rb = rb.header("X-Project-Id", "lb-b").header("X-Roles", "admin");
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().unwrap();
    let s = resp.status().as_u16();
    let h = resp.headers().clone();
    (
        s,
        h,
        serde_json::from_str(&resp.text().unwrap_or_default()).unwrap_or(Value::Null),
    )
}

#[test]
fn keystone_tokens_decide_who_calls() {
    let dir = tempfile::tempdir().unwrap();
    let k = keystone(&dir.path().join("keystone"));
    let config = format!(
        "{TEST_CONFIG}[api_settings]\nauth_strategy = \"keystone\"\n[keystone_authtoken]\n\
         auth_url = \"{u}/v3\"\nwww_authenticate_uri = \"{u}\"\nusername = \"rocta\"\n\
         password = \"rocta-pass\"\nproject_name = \"service\"\ntoken_cache_time = 2\n",
        u = k.url
    );
    let r = Rocta::start_in(dir.path(), "serve", &config, &[]);
    let lbs = "/v2/lbaas/loadbalancers";
    // The version document answers without a token; nothing else does.
    assert_eq!(call(&r, "GET", "/", None, None).0, 200);
    let (s, h, b) = call(&r, "GET", lbs, None, None);
    assert_eq!(s, 401, "{b}");
    assert_eq!(
        h["www-authenticate"],
        format!("Keystone uri=\"{}\"", k.url).as_str()
    );
    assert_eq!(call(&r, "GET", lbs, Some("not-a-token"), None).0, 401);
    let alice = token(&k, "alice", "lb-a");
    let (rita, bob) = (token(&k, "rita", "lb-a"), token(&k, "bob", "lb-b"));
    // The project is the token's, whatever X-Project-Id says.
    let (s, _, b) = call(
        &r,
        "POST",
        lbs,
        Some(&alice),
        Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET}})),
    );
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["loadbalancer"]["project_id"], k.projects["lb-a"]);
    let id = b["loadbalancer"]["id"].as_str().unwrap().to_string();
    let one = format!("{lbs}/{id}");
    // A reader of the project sees it and cannot change it; another project's member is
    // refused by policy (X-Roles: admin counts for nothing).
    assert_eq!(call(&r, "GET", &one, Some(&rita), None).0, 200);
    assert_eq!(
        call(
            &r,
            "PUT",
            &one,
            Some(&rita),
            Some(json!({"loadbalancer": {"name": "x"}}))
        )
        .0,
        403
    );
    assert_eq!(call(&r, "GET", &one, Some(&bob), None).0, 403);
    assert_eq!(
        call(&r, "GET", lbs, Some(&bob), None).2["loadbalancers"],
        json!([])
    );
    assert_eq!(
        call(&r, "GET", "/v2/octavia/amphorae", Some(&alice), None).0,
        403
    );
    // A revoked token stops working once its cached validation lapses (2 s here).
    let admin = token(&k, "admin", "admin");
    let revoked = reqwest::blocking::Client::new()
        .delete(format!("{}/v3/auth/tokens", k.url))
        .header("X-Auth-Token", &admin)
        .header("X-Subject-Token", &bob)
        .send()
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 204);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(call(&r, "GET", lbs, Some(&bob), None).0, 401);
    // Keystone gone: 503, never an open door (a cached validation lapses in 2 s).
    drop(k);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (s, _, b) = call(&r, "GET", lbs, Some(&alice), None);
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["faultcode"], "Server");
}
