//! The host networks of a netns test: a management bridge, controller port and tenant network
//! of the test's own (names and 198.18.0.0/15 subnets derived from the process id and a
//! counter, so tests running at once never share one), torn down with `rocta network
//! teardown` when the test ends, passed or failed, after the amphorae the test left.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// One test's networks and the `rocta` config naming them.
pub struct NetnsEnv {
    pub k: u32,
    /// The management and tenant bridges.
    pub bridges: [String; 3],
    /// The controller port's peer on the management bridge.
    host_peer: String,
    /// The `[netns]` (and `[health_manager]`) part of the config.
    pub config: String,
    /// The host's address on the tenant network (members listen here).
    pub gateway: String,
    pub subnet_id: String,
    pub mgmt_prefix: String,
    /// A second tenant network for members (`u<k>`, 198.19.k.128/25), its gateway and subnet.
    pub member_gateway: String,
    pub member_subnet_id: String,
    config_file: std::path::PathBuf,
}

static N: AtomicU32 = AtomicU32::new(0);

/// A free UDP port on the host (the health manager's, fixed so a restarted control plane
/// listens where the amphorae send).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NetnsEnv {
    pub fn new(dir: &Path, extra: &str) -> NetnsEnv {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let k = 1 + (std::process::id() % 60 * 4 + n) % 250;
        let subnet_id = format!("5e75e75e-0000-4000-8000-{k:012}");
        let member_subnet_id = format!("5e75e75e-0000-4000-a000-{k:012}");
        let config = format!(
            "[netns]\nmanagement_bridge = \"rocta-m{k}\"\nmanagement_cidr = \"198.18.{k}.0/24\"\n\
             host_port = \"rocta-h{k}\"\n\
             [[netns.networks]]\nname = \"t{k}\"\ncidr = \"198.19.{k}.0/25\"\n\
             network_id = \"5e75e75e-0000-4000-9000-{k:012}\"\nsubnet_id = \"{subnet_id}\"\n\
             [[netns.networks]]\nname = \"u{k}\"\ncidr = \"198.19.{k}.128/25\"\n\
             network_id = \"5e75e75e-0000-4000-b000-{k:012}\"\nsubnet_id = \"{member_subnet_id}\"\n\
             [health_manager]\nbind_port = {port}\n{extra}",
            port = free_udp_port(),
        );
        let config_file = dir.join(format!("netns-{k}.toml"));
        std::fs::write(&config_file, &config).unwrap();
        NetnsEnv {
            k,
            bridges: [
                format!("rocta-m{k}"),
                format!("rocta-t{k}"),
                format!("rocta-u{k}"),
            ],
            host_peer: format!("rocta-h{k}-br"),
            config,
            gateway: format!("198.19.{k}.1"),
            subnet_id,
            mgmt_prefix: format!("198.18.{k}."),
            member_gateway: format!("198.19.{k}.129"),
            member_subnet_id,
            config_file,
        }
    }

    /// The networks `rocta serve` builds by default (rocta-mgmt 198.18.0.0/24, rocta-public
    /// 198.19.0.0/24): the README's quick start runs on them.
    pub fn defaults(dir: &Path) -> NetnsEnv {
        let config_file = dir.join("netns-defaults.toml");
        std::fs::write(&config_file, "").unwrap();
        NetnsEnv {
            k: 0,
            bridges: ["rocta-mgmt".into(), "rocta-public".into(), String::new()],
            host_peer: "rocta-hm0-br".into(),
            config: String::new(),
            gateway: "198.19.0.1".into(),
            subnet_id: "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b".into(),
            mgmt_prefix: "198.18.0.".into(),
            member_gateway: String::new(),
            member_subnet_id: String::new(),
            config_file,
        }
    }

    /// The namespaces of amphorae (`amphora-*`) whose management address is in this test's
    /// subnet.
    pub fn namespaces(&self) -> Vec<String> {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|ns| ns.starts_with("amphora-"))
            .filter(|ns| {
                let a = Command::new("ip")
                    .args(["-n", ns, "-4", "-o", "addr", "show", "eth0"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&a.stdout).contains(&self.mgmt_prefix)
            })
            .map(str::to_string)
            .collect()
    }

    /// Host interfaces plugged into this test's bridges.
    pub fn ports(&self) -> Vec<String> {
        let mut v = Vec::new();
        for br in &self.bridges {
            let rd = std::fs::read_dir(format!("/sys/class/net/{br}/brif"));
            v.extend(
                rd.into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n != &self.host_peer),
            );
        }
        v
    }
}

impl Drop for NetnsEnv {
    fn drop(&mut self) {
        for ns in self.namespaces() {
            let pids = Command::new("ip").args(["netns", "pids", &ns]).output();
            for pid in pids
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
                .split_whitespace()
            {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        let _ = Command::new(super::bin())
            .args(["network", "teardown", "--config"])
            .arg(&self.config_file)
            .output();
    }
}

/// A network namespace, deleted on drop.
pub struct Ns(pub String);

impl Ns {
    pub fn new(tag: &str) -> Ns {
        let name = format!("rocta-t{}-{tag}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Ns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn run(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(argv)
            .output()
            .unwrap()
    }

    pub fn ip(&self, args: &[&str]) -> String {
        let mut argv = vec!["ip"];
        argv.extend(args);
        let out = self.run(&argv);
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn rocta(&self, args: &[&str], config: &std::path::Path) -> Output {
        let mut argv = vec![super::bin(), "network"];
        argv.extend(args);
        let cfg = config.display().to_string();
        argv.extend(["--config", &cfg]);
        self.run(&argv)
    }

    pub fn has_link(&self, name: &str) -> bool {
        self.run(&["ip", "link", "show", name]).status.success()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

pub fn sh(argv: &[&str]) {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The live amphorae of load balancer `lb` (the admin API's records).
pub fn amphorae_of(r: &super::Rocta, lb: &str) -> Vec<serde_json::Value> {
    let (s, amps) = r.req_as(
        "GET",
        &format!("/v2/octavia/amphorae?loadbalancer_id={lb}"),
        None,
        "p1",
        Some("admin"),
    );
    assert_eq!(s, 200, "{amps}");
    amps["amphorae"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] != "DELETED")
        .cloned()
        .collect()
}

/// Kills everything in network namespace `ns`; how many processes that was.
pub fn kill_all_in(ns: &str) -> usize {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&out.stdout).into_owned();
    for pid in pids.split_whitespace() {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    pids.split_whitespace().count()
}
