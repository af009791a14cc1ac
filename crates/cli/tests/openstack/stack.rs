//! The OpenStack stack of the tests (`tests/openstack/stack.py`, started once for this test
//! binary) and what the tests read from it: tokens, the cloud admin's view of servers, ports
//! and security groups, a server's config drive.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rocta_model::Id;
use serde_json::{json, Value};

/// What stack.py printed when ready.
pub struct Stack {
    pub ready: Value,
}

/// One test at a time: they share the stack's networks and the hypervisor boots every
/// `amphora-*` server it sees.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static M: std::sync::Mutex<()> = std::sync::Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn stack() -> &'static Stack {
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
    pub fn url(&self, service: &str) -> String {
        self.ready["urls"][service].as_str().unwrap().to_string()
    }

    pub fn network(&self, name: &str) -> &Value {
        &self.ready["networks"][name]
    }

    /// A token of `user` in `project` (password `<user>-pass`).
    pub fn token(&self, user: &str, project: &str) -> String {
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
    pub fn admin(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
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
    pub fn servers_named(&self, name: &str) -> Vec<Value> {
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
    pub fn ports_named(&self, name: &str) -> Vec<Value> {
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
    pub fn config_drive(&self, id: &str) -> (Vec<(String, String)>, Option<String>) {
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

impl Stack {
    /// The ingress rules of security group `lb-<lb>` as `protocol port prefix` lines.
    pub fn sg_rules(&self, lb: Id) -> Vec<String> {
        let (_, b) = self.admin(
            reqwest::Method::GET,
            &format!("{}/v2.0/security-groups?name=lb-{lb}", self.url("neutron")),
            None,
        );
        let Some(id) = b["security_groups"][0]["id"].as_str() else {
            return vec![];
        };
        let (_, b) = self.admin(
            reqwest::Method::GET,
            &format!(
                "{}/v2.0/security-group-rules?security_group_id={id}&direction=ingress",
                self.url("neutron")
            ),
            None,
        );
        let mut v: Vec<String> = b["security_group_rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["protocol"].as_str().unwrap_or("any"),
                    r["port_range_min"],
                    r["remote_ip_prefix"].as_str().unwrap_or("group")
                )
            })
            .collect();
        v.sort();
        v
    }

    pub fn security_groups_named(&self, name: &str) -> usize {
        let (_, b) = self.admin(
            reqwest::Method::GET,
            &format!("{}/v2.0/security-groups?name={name}", self.url("neutron")),
            None,
        );
        b["security_groups"].as_array().map_or(0, Vec::len)
    }
}
