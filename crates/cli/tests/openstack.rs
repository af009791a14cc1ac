//! The OpenStack drivers against real OpenStack services: Keystone, Nova (its fake virt driver,
//! keeping each server's config drive as files), Neutron, Glance, Placement and Barbican, as
//! `tests/openstack/stack.py` runs them from the venvs `scripts/openstack` makes (.ci/run
//! does; ROCTA_OS_PYTHON overrides the master venv's python). One stack serves every test of
//! this file; it stops (and drops its databases) when this process ends and closes its stdin.
//! Every test asserts on the services' own state: what it made is gone afterwards.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use rocta_drivers::openstack::{nova, Endpoint, Session, SessionConfig};
use rocta_drivers::{Boot, Compute};
use rocta_model::Id;
use rocta_proto::agent_conf::AgentConf;
use serde_json::{json, Value};

/// What stack.py printed when ready.
struct Stack {
    ready: Value,
}

fn stack() -> &'static Stack {
    static S: OnceLock<Stack> = OnceLock::new();
    S.get_or_init(|| {
        let python = std::env::var("ROCTA_OS_PYTHON")
            .unwrap_or_else(|_| "/opt/rocta-os-master/bin/python".into());
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/openstack/stack.py"
        );
        // Kept beyond this process: the stack removes it when it stops.
        let dir = tempfile::Builder::new()
            .prefix("rocta-openstack-")
            .tempdir()
            .unwrap()
            .keep();
        let mut child = Command::new(&python)
            .arg(script)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{python}: {e}: the OpenStack tests need scripts/openstack's venvs")
            });
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        let ready = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("the OpenStack stack did not start: {line:?}"));
        let ready: Value = serde_json::from_str(ready).unwrap();
        // Its stdin stays open until this process ends; then it stops.
        std::mem::forget(child);
        Stack { ready }
    })
}

impl Stack {
    fn url(&self, service: &str) -> String {
        self.ready["urls"][service].as_str().unwrap().to_string()
    }

    fn network(&self, name: &str) -> &Value {
        &self.ready["networks"][name]
    }

    /// A token of `user` in `project` (password `<user>-pass`).
    fn token(&self, user: &str, project: &str) -> String {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/auth/tokens", self.ready["keystone"].as_str().unwrap()))
            .json(&json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": user, "domain": {"id": "default"}, "password": format!("{user}-pass")}}},
                "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        r.headers()["x-subject-token"].to_str().unwrap().to_string()
    }

    /// `method url` as the cloud's admin; the status and the JSON body.
    fn admin(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
        static TOKEN: OnceLock<String> = OnceLock::new();
        let token = TOKEN.get_or_init(|| self.token("admin", "admin"));
        let mut r = reqwest::blocking::Client::new()
            .request(method, url)
            .header("X-Auth-Token", token)
            .header("X-OpenStack-Nova-API-Version", "2.15");
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// Every server of every project named `name`.
    fn servers_named(&self, name: &str) -> Vec<Value> {
        let (s, b) = self.admin(
            reqwest::Method::GET,
            &format!(
                "{}/v2.1/servers/detail?all_tenants=1&name=%5E{name}%24",
                self.url("nova")
            ),
            None,
        );
        assert_eq!(s, 200, "{b}");
        b["servers"].as_array().unwrap().clone()
    }

    /// Every port named `name`.
    fn ports_named(&self, name: &str) -> Vec<Value> {
        let (s, b) = self.admin(
            reqwest::Method::GET,
            &format!("{}/v2.0/ports?name={name}", self.url("neutron")),
            None,
        );
        assert_eq!(s, 200, "{b}");
        b["ports"].as_array().unwrap().clone()
    }

    /// The config drive Nova gave server `id`: its files (path → content), from the
    /// `openstack/latest/meta_data.json` the fake hypervisor kept, and its user data.
    fn config_drive(&self, id: &str) -> (Vec<(String, String)>, Option<String>) {
        let root = std::path::Path::new(self.ready["dir"].as_str().unwrap())
            .join("nova/instances")
            .join(id)
            .join("config-drive/openstack");
        let md: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("latest/meta_data.json")).unwrap(),
        )
        .unwrap();
        let files = md["files"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|f| {
                let content =
                    root.join(f["content_path"].as_str().unwrap().trim_start_matches('/'));
                (
                    f["path"].as_str().unwrap().to_string(),
                    std::fs::read_to_string(content).unwrap(),
                )
            })
            .collect();
        (
            files,
            std::fs::read_to_string(root.join("latest/user_data")).ok(),
        )
    }
}

fn session(s: &Stack) -> std::sync::Arc<Session> {
    std::sync::Arc::new(
        Session::new(SessionConfig {
            auth_url: s.ready["keystone"].as_str().unwrap().into(),
            username: "rocta".into(),
            password: "rocta-pass".into(),
            project_name: "service".into(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            cafile: String::new(),
            insecure: false,
            timeout: Duration::from_secs(120),
            retries: 2,
            backoff: Duration::from_millis(200),
        })
        .unwrap(),
    )
}

fn settings(s: &Stack) -> nova::NovaSettings {
    let e = |t: &str| Endpoint {
        service_type: t.into(),
        interfaces: vec!["internal".into(), "public".into()],
        region: "RegionOne".into(),
        endpoint_override: String::new(),
    };
    nova::NovaSettings {
        nova: e("compute"),
        glance: e("image"),
        neutron: e("network"),
        image_tag: "amphora".into(),
        image_owner_id: String::new(),
        flavor_id: s.ready["flavor_id"].as_str().unwrap().into(),
        ssh_key_name: String::new(),
        secgroups: Vec::new(),
        boot_networks: vec![s.network("lb-mgmt-net")["network_id"]
            .as_str()
            .unwrap()
            .into()],
        active_retries: 120,
        active_wait: Duration::from_millis(500),
        user_data_config_drive: false,
        availability_zone: String::new(),
        heartbeat: rocta_drivers::local::HeartbeatTarget {
            controllers: vec!["198.18.64.2:5555".into()],
            interval: 3.0,
            key: "openstack-test-key".into(),
            logs: Default::default(),
        },
        topology: "SINGLE".into(),
    }
}

fn boot() -> Boot {
    Boot {
        server_pem: "-----BEGIN CERTIFICATE-----\nserver\n-----END CERTIFICATE-----\n".into(),
        client_ca_pem: "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n".into(),
        ..Boot::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An amphora is a Nova server from the image tagged `amphora`, on a management port made in
/// Neutron, with Octavia's config drive (the agent conf rocta's agent reads, the server
/// certificate, the client CA); booting it again finds it; deleting it leaves no server and no
/// port in Nova and Neutron.
#[test]
fn nova_boots_an_amphora_with_octavias_config_drive() {
    let s = stack();
    let compute = nova::NovaCompute::new(session(s), settings(s));
    let amp = Id::new_v4();
    let name = format!("amphora-{amp}");
    let port = format!("octavia-amphora-mgmt-{amp}");
    let rt = rt();
    let t = std::time::Instant::now();
    let inst = rt.block_on(compute.create(amp, &boot())).unwrap();
    eprintln!("booted {name} in {:?}", t.elapsed());
    let ip: std::net::Ipv4Addr = inst.lb_network_ip.parse().unwrap();
    assert!(
        "198.18.64.0/24"
            .parse::<ipnet::Ipv4Net>()
            .unwrap()
            .contains(&ip),
        "{ip}"
    );
    let servers = s.servers_named(&name);
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["id"], json!(inst.compute_id));
    assert_eq!(servers[0]["status"], "ACTIVE");
    assert_eq!(servers[0]["image"]["id"], s.ready["image_id"]);
    assert_eq!(s.ports_named(&port).len(), 1);
    assert_eq!(s.ports_named(&port)[0]["device_id"], json!(inst.compute_id));

    let (files, user_data) = s.config_drive(&inst.compute_id);
    assert_eq!(user_data, None);
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/etc/octavia/amphora-agent.conf",
            "/etc/octavia/certs/server.pem",
            "/etc/octavia/certs/client_ca.pem"
        ]
    );
    let conf = AgentConf::parse(&files[0].1).unwrap();
    assert_eq!(conf.amphora_id, amp.to_string());
    assert_eq!(conf.controller_ip_port_list, ["198.18.64.2:5555"]);
    assert_eq!(conf.heartbeat_key, "openstack-test-key");
    assert_eq!(conf.agent_server_cert, "/etc/octavia/certs/server.pem");
    assert_eq!(files[1].1, boot().server_pem);
    assert_eq!(files[2].1, boot().client_ca_pem);
    // What the agent would boot with now is what the drive holds.
    assert_eq!(rt.block_on(compute.agent_config(amp)).unwrap(), files[0].1);
    assert_eq!(rt.block_on(compute.stopped(amp)).unwrap(), None);

    // A step run again (a worker killed mid-boot) finds the same server and port.
    let again = rt.block_on(compute.create(amp, &boot())).unwrap();
    assert_eq!(again, inst);
    assert_eq!(s.servers_named(&name).len(), 1);
    assert_eq!(s.ports_named(&port).len(), 1);

    rt.block_on(compute.delete(amp)).unwrap();
    assert!(s.servers_named(&name).is_empty());
    assert!(
        s.ports_named(&port).is_empty(),
        "the management port is left"
    );
    assert!(rt
        .block_on(compute.stopped(amp))
        .unwrap()
        .is_some_and(|why| why.contains("no longer exists")));
    // Deleting what is gone is fine.
    rt.block_on(compute.delete(amp)).unwrap();

    // user_data_config_drive: the same files as cloud-init's write_files.
    let mut set = settings(s);
    set.user_data_config_drive = true;
    let compute = nova::NovaCompute::new(session(s), set);
    let amp = Id::new_v4();
    let inst = rt.block_on(compute.create(amp, &boot())).unwrap();
    let (files, user_data) = s.config_drive(&inst.compute_id);
    assert!(files.is_empty(), "{files:?}");
    let user_data = user_data.unwrap();
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    assert!(user_data.contains("-   path: /etc/octavia/amphora-agent.conf\n"));
    assert!(user_data.contains(&format!("        amphora_id = {amp}\n")));
    rt.block_on(compute.delete(amp)).unwrap();
    assert!(s.servers_named(&format!("amphora-{amp}")).is_empty());
    assert!(s
        .ports_named(&format!("octavia-amphora-mgmt-{amp}"))
        .is_empty());
}

/// Nova's and Glance's refusals end the boot with Octavia's messages, and the revert (delete)
/// leaves nothing behind.
#[test]
fn a_failed_boot_says_why_and_leaves_nothing() {
    let s = stack();
    let rt = rt();
    // No image with the tag: nothing is made.
    let mut set = settings(s);
    set.image_tag = "no-such-tag".into();
    let compute = nova::NovaCompute::new(session(s), set);
    let amp = Id::new_v4();
    let e = rt.block_on(compute.create(amp, &boot())).unwrap_err();
    assert!(!e.retryable);
    assert_eq!(
        e.message,
        "No Glance images are tagged with no-such-tag tag."
    );
    assert!(s
        .ports_named(&format!("octavia-amphora-mgmt-{amp}"))
        .is_empty());

    // A flavor no host can hold: the scheduler's "No valid host", then the revert.
    let (st, f) = s.admin(
        reqwest::Method::POST,
        &format!("{}/v2.1/flavors", s.url("nova")),
        Some(
            json!({"flavor": {"name": format!("huge-{}", Id::new_v4()), "vcpus": 1,
                               "ram": 1 << 30, "disk": 1}}),
        ),
    );
    assert_eq!(st, 200, "{f}");
    let mut set = settings(s);
    set.flavor_id = f["flavor"]["id"].as_str().unwrap().into();
    let compute = nova::NovaCompute::new(session(s), set);
    let amp = Id::new_v4();
    let e = rt.block_on(compute.create(amp, &boot())).unwrap_err();
    assert!(!e.retryable);
    assert!(
        e.message
            .starts_with("Failed to build compute instance due to: No valid host was found"),
        "{e}"
    );
    assert!(rt
        .block_on(compute.stopped(amp))
        .unwrap()
        .is_some_and(|why| why.contains("ERROR")));
    rt.block_on(compute.delete(amp)).unwrap();
    assert!(s.servers_named(&format!("amphora-{amp}")).is_empty());
    assert!(s
        .ports_named(&format!("octavia-amphora-mgmt-{amp}"))
        .is_empty());
}
