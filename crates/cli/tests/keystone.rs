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

fn python() -> String {
    std::env::var("ROCTA_KEYSTONE_PYTHON")
        .unwrap_or_else(|_| "/opt/rocta-keystone/bin/python".into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn keystone(dir: &std::path::Path) -> Keystone {
    keystone_on(dir, free_port(), &[])
}

/// Keystone on `port`, with a catalog service for each `TYPE=NAME=URL` of `services`.
fn keystone_on(dir: &std::path::Path, port: u16, services: &[String]) -> Keystone {
    let python = python();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/keystone/keystone_server.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .arg(dir)
        .arg(port.to_string())
        .args(services)
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
    token_scoped(
        k,
        user,
        json!({"project": {"name": project, "domain": {"id": "default"}}}),
    )
}

/// A token of `user` with this scope (`{"project": …}`, `{"system": {"all": true}}`).
fn token_scoped(k: &Keystone, user: &str, scope: Value) -> String {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": format!("{user}-pass")}}},
        "scope": scope}});
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
    // The dashboard's page loads without a token (it asks for one, told how the API
    // authenticates); its views are the API's: a token, and an administrator's for the admin
    // views.
    let page = reqwest::blocking::get(format!("{}/dashboard/", r.url)).unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().unwrap().contains("data-auth=\"keystone\""));
    assert_eq!(call(&r, "GET", "/dashboard/api/jobs", None, None).0, 401);
    assert_eq!(
        call(&r, "GET", "/dashboard/api/jobs", Some(&alice), None).0,
        403
    );
    let me = call(&r, "GET", "/dashboard/api/whoami", Some(&alice), None).2;
    assert_eq!(
        me,
        json!({"project_id": k.projects["lb-a"], "is_admin": false})
    );
    // A system-scoped admin token: Octavia's rules are project-scoped (enforce_scope).
    let system = token_scoped(&k, "admin", json!({"system": {"all": true}}));
    assert_eq!(call(&r, "GET", lbs, Some(&system), None).0, 403);
    // A revoked token stops working once its cached validation lapses (2 s here).
    let admin = token(&k, "admin", "admin");
    assert_eq!(call(&r, "GET", &one, Some(&admin), None).0, 200);
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

/// Runs the `openstack` CLI (python-openstackclient + python-octaviaclient, in the Keystone
/// venv) as `user` of `project`; returns its exit status and standard output (stderr on failure).
fn openstack(k: &Keystone, user: &str, project: &str, args: &[&str]) -> (bool, String) {
    let cli = std::path::Path::new(&python()).with_file_name("openstack");
    let out = Command::new(&cli)
        .args(args)
        .env("OS_AUTH_URL", format!("{}/v3", k.url))
        .env("OS_USERNAME", user)
        .env("OS_PASSWORD", format!("{user}-pass"))
        .env("OS_PROJECT_NAME", project)
        .env("OS_USER_DOMAIN_NAME", "Default")
        .env("OS_PROJECT_DOMAIN_NAME", "Default")
        .env("OS_IDENTITY_API_VERSION", "3")
        .env("OS_REGION_NAME", "RegionOne")
        .env_remove("OS_CLOUD")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the openstack CLI needs {} (.ci/run installs it): {e}",
                cli.display()
            )
        });
    let text = if out.status.success() {
        out.stdout
    } else {
        out.stderr
    };
    (
        out.status.success(),
        String::from_utf8_lossy(&text).into_owned(),
    )
}

fn openstack_json(k: &Keystone, user: &str, project: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-f", "json"]);
    let (ok, out) = openstack(k, user, project, &a);
    assert!(ok, "openstack {}: {out}", args.join(" "));
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("openstack {}: {e}: {out}", args.join(" ")))
}

#[test]
fn the_openstack_cli_works_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    // rocta first (its Keystone is on a port chosen now), then Keystone with rocta in its
    // catalog: the load-balancer service and the Neutron view as the network service.
    let ks_port = free_port();
    let ks_url = format!("http://127.0.0.1:{ks_port}");
    let config = format!(
        "{TEST_CONFIG}[api_settings]\nauth_strategy = \"keystone\"\n[keystone_authtoken]\n\
         auth_url = \"{ks_url}/v3\"\nwww_authenticate_uri = \"{ks_url}\"\nusername = \"rocta\"\n\
         password = \"rocta-pass\"\nproject_name = \"service\"\n"
    );
    let r = Rocta::start_real_with(dir.path(), &config, &[]);
    let k = keystone_on(
        &dir.path().join("keystone"),
        ks_port,
        &[
            format!("load-balancer=octavia={}", r.url),
            format!("network=neutron={}/networking", r.url),
        ],
    );
    let alice = |args: &[&str]| openstack_json(&k, "alice", "lb-a", args);
    // The VIP subnet by name, resolved through the Neutron view.
    let lb = alice(&[
        "loadbalancer",
        "create",
        "--vip-subnet-id",
        "public",
        "--name",
        "web",
        "--wait",
    ]);
    assert_eq!(lb["name"], "web");
    assert_eq!(lb["vip_subnet_id"], "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b");
    assert!(
        lb["vip_address"].as_str().unwrap().starts_with("127.10."),
        "{lb}"
    );
    assert_eq!(lb["project_id"], k.projects["lb-a"]);
    let id = lb["id"].as_str().unwrap().to_string();
    let list = alice(&["loadbalancer", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["provisioning_status"], "ACTIVE");
    let (ok, out) = openstack(
        &k,
        "alice",
        "lb-a",
        &[
            "loadbalancer",
            "set",
            "--description",
            "front",
            "--wait",
            "web",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        alice(&["loadbalancer", "show", "web"])["description"],
        "front"
    );
    let (ok, out) = openstack(
        &k,
        "alice",
        "lb-a",
        &["loadbalancer", "status", "show", "web"],
    );
    assert!(ok, "{out}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["loadbalancer"]["id"], id.as_str());
    let stats = alice(&["loadbalancer", "stats", "show", "web"]);
    assert_eq!(stats["total_connections"], 0, "{stats}");
    let project = k.projects["lb-a"].as_str().unwrap();
    let quota = alice(&["loadbalancer", "quota", "show", project]);
    assert_eq!(quota["load_balancer"], -1, "{quota}");
    // Amphorae are the administrator's; bob (another project) is refused alice's objects.
    let (ok, out) = openstack(&k, "alice", "lb-a", &["loadbalancer", "amphora", "list"]);
    assert!(!ok && out.contains("Policy does not allow"), "{out}");
    let (ok, out) = openstack(&k, "bob", "lb-b", &["loadbalancer", "show", &id]);
    assert!(!ok && out.contains("403"), "{out}");
    let amps = openstack_json(
        &k,
        "admin",
        "admin",
        &["loadbalancer", "amphora", "list", "--loadbalancer", &id],
    );
    assert_eq!(amps.as_array().unwrap().len(), 1, "{amps}");
    let amp = amps[0]["id"].as_str().unwrap();
    let shown = openstack_json(
        &k,
        "admin",
        "admin",
        &["loadbalancer", "amphora", "show", amp],
    );
    assert_eq!(shown["loadbalancer_id"], id.as_str());
    let ports = openstack_json(&k, "alice", "lb-a", &["port", "list"]);
    assert_eq!(ports[0]["ID"], lb["vip_port_id"], "{ports}");
    // rocta's own client: Keystone password auth from OS_* variables, then from clouds.yaml;
    // the endpoint is the catalog's.
    let rocta_client = |args: &[&str], env: &[(&str, String)]| {
        let mut c = Command::new(bin());
        c.args(args).args(["-f", "json"]).env_remove("ROCTA_URL");
        for k in [
            "OS_AUTH_URL",
            "OS_USERNAME",
            "OS_PASSWORD",
            "OS_PROJECT_NAME",
            "OS_CLOUD",
        ] {
            c.env_remove(k);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "rocta {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let os_env = [
        ("OS_AUTH_URL", format!("{}/v3", k.url)),
        ("OS_USERNAME", "alice".to_string()),
        ("OS_PASSWORD", "alice-pass".to_string()),
        ("OS_PROJECT_NAME", "lb-a".to_string()),
    ];
    let shown = rocta_client(&["loadbalancer", "show", &id], &os_env);
    assert_eq!(shown["description"], "front", "{shown}");
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  test:\n    auth:\n      auth_url: {}\n      username: alice\n      \
             password: alice-pass\n      project_name: lb-a\n      user_domain_name: Default\n      \
             project_domain_name: Default\n    region_name: RegionOne\n",
            k.url
        ),
    )
    .unwrap();
    let listed = rocta_client(
        &["loadbalancer", "list"],
        &[
            ("OS_CLIENT_CONFIG_FILE", clouds.display().to_string()),
            ("OS_CLOUD", "test".to_string()),
        ],
    );
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    let (ok, out) = openstack(
        &k,
        "alice",
        "lb-a",
        &["loadbalancer", "delete", "--wait", "web"],
    );
    assert!(ok, "{out}");
    assert_eq!(alice(&["loadbalancer", "list"]), json!([]));
}

/// The OpenStack drivers' Keystone session (`[service_auth]`): the service user's token and
/// catalog, endpoints by type, interface and region, a revoked token renewed on the 401, wrong
/// credentials and an unreachable Keystone reported as what they are.
#[test]
fn the_drivers_session_authenticates_as_the_service() {
    use rocta_drivers::openstack::{Endpoint, OsError, Session, SessionConfig};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let k = keystone_on(
        &dir.path().join("keystone"),
        free_port(),
        &[
            "compute=nova=http://127.0.0.1:8774/v2.1/".to_string(),
            "image=glance=http://127.0.0.1:9292".to_string(),
        ],
    );
    let cfg = |user: &str, password: &str, url: &str| SessionConfig {
        auth_url: format!("{url}/v3"),
        username: user.into(),
        password: password.into(),
        project_name: "service".into(),
        user_domain_name: "Default".into(),
        project_domain_name: "Default".into(),
        cafile: String::new(),
        insecure: false,
        timeout: Duration::from_secs(5),
        retries: 2,
        backoff: Duration::from_millis(50),
    };
    let admin = token(&k, "admin", "admin");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = Session::new(cfg("rocta", "rocta-pass", &k.url)).unwrap();
        let ep = |t: &str, i: &[&str], region: &str| Endpoint {
            service_type: t.into(),
            interfaces: i.iter().map(|x| x.to_string()).collect(),
            region: region.into(),
            endpoint_override: String::new(),
        };
        // Octavia's `publicURL` spelling; the trailing slash dropped.
        let nova = s.endpoint(&ep("compute", &["publicURL"], "")).await;
        assert_eq!(nova.unwrap(), "http://127.0.0.1:8774/v2.1");
        let glance = ep("image", &["internal", "public"], "RegionOne");
        assert_eq!(s.endpoint(&glance).await.unwrap(), "http://127.0.0.1:9292");
        let e = s.endpoint(&ep("image", &["public"], "RegionTwo")).await;
        assert!(
            matches!(&e, Err(OsError::Config(m)) if m.contains("RegionTwo")),
            "{e:?}"
        );
        let e = s.endpoint(&ep("key-manager", &[], "")).await;
        assert!(
            matches!(&e, Err(OsError::Config(m)) if m.contains("key-manager")),
            "{e:?}"
        );
        let mut fixed = ep("key-manager", &[], "");
        fixed.endpoint_override = "http://127.0.0.1:9311/".into();
        assert_eq!(s.endpoint(&fixed).await.unwrap(), "http://127.0.0.1:9311");

        // A call with the service's token; a revoked token is renewed on the 401.
        let projects = format!("{}/v3/auth/projects", k.url);
        let a = s
            .call("keystone", reqwest::Method::GET, &projects, None)
            .await;
        let names = a.unwrap().body["projects"].to_string();
        assert!(names.contains("\"service\""), "{names}");
        let first = s.token(false).await.unwrap();
        let revoked = reqwest::Client::new()
            .delete(format!("{}/v3/auth/tokens", k.url))
            .header("X-Auth-Token", &admin)
            .header("X-Subject-Token", &first)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status().as_u16(), 204);
        let a = s
            .call("keystone", reqwest::Method::GET, &projects, None)
            .await;
        assert_eq!(a.unwrap().status, 200);
        assert_ne!(
            s.token(false).await.unwrap(),
            first,
            "the token was not renewed"
        );
        // Another status is the service's answer, with its body (the service user may not
        // read users).
        let user = format!("{}/v3/users/no-such-user", k.url);
        let e = s.call("keystone", reqwest::Method::GET, &user, None).await;
        assert!(
            matches!(&e, Err(OsError::Status { status: 403, body, .. }) if body["error"]["code"] == 403),
            "{e:?}"
        );

        // Wrong credentials: a configuration error naming the user, at once.
        let bad = Session::new(cfg("rocta", "wrong", &k.url)).unwrap();
        let e = bad.token(false).await;
        assert!(
            matches!(&e, Err(OsError::Config(m)) if m.contains("rocta")),
            "{e:?}"
        );
        // Keystone unreachable: retried (50 + 100 ms of backoff), then unavailable.
        let closed = format!("http://127.0.0.1:{}", free_port());
        let down = Session::new(cfg("rocta", "rocta-pass", &closed)).unwrap();
        let t = Instant::now();
        let e = down.token(false).await;
        assert!(
            matches!(&e, Err(OsError::Unavailable(m)) if m.contains("after 3 attempts")),
            "{e:?}"
        );
        assert!(t.elapsed() >= Duration::from_millis(150) && t.elapsed() < Duration::from_secs(5));
    });
}
