//! The test's hypervisor: `tests/openstack/hypervisor.py` (shared with the OpenStack
//! benchmark) run for the test's life. Nova's fake virt driver boots nothing, so it plays the
//! compute host: each Neutron network a bridge on this host, each ACTIVE `amphora-*` server a
//! network namespace with a veth per attached port and its config drive at `/etc/octavia`,
//! running `rocta amphora-agent`. Dropped: every guest powered off, the bridges removed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::Stack;

/// One Neutron network as a bridge on this host.
pub struct Bridge {
    pub network_id: String,
    pub name: String,
    /// The host's address on it, with the prefix (the subnet's gateway).
    pub host_cidr: String,
}

pub struct Hypervisor {
    child: Child,
    work: tempfile::TempDir,
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_else(|e| e.to_string())
}

impl Hypervisor {
    pub fn start(stack: &Stack, rocta: &str, bridges: Vec<Bridge>) -> Hypervisor {
        let work = tempfile::tempdir().unwrap();
        let ready = work.path().join("ready.json");
        std::fs::write(&ready, stack.ready.to_string()).unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/openstack/hypervisor.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&ready)
            .arg(rocta)
            .arg(work.path().join("guests"))
            .args(
                bridges
                    .iter()
                    .map(|b| format!("{}={}={}", b.network_id, b.name, b.host_cidr)),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "the hypervisor did not start");
        Hypervisor { child, work }
    }

    /// The guests running now: server id → `{"ns", "ports"}`.
    fn guests(&self) -> serde_json::Map<String, Value> {
        std::fs::read_to_string(self.work.path().join("guests/guests.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    }

    /// The network namespace of server `id`'s guest, while it runs.
    pub fn namespace(&self, id: &str) -> Option<String> {
        self.guests()
            .get(id)
            .and_then(|g| g["ns"].as_str())
            .map(String::from)
    }

    /// How many guests run.
    pub fn running(&self) -> usize {
        self.guests().len()
    }

    /// Every guest: interfaces, routes, neighbours, listening sockets, its HAProxy log and
    /// processes, its console (for a failing test's message).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, g) in self.guests() {
            let ns = g["ns"].as_str().unwrap_or_default().to_string();
            let dir = self.work.path().join("guests").join(&id);
            let ip = |args: &[&str]| output(Command::new("ip").args(["-n", &ns]).args(args));
            out += &format!(
                "--- {id} ({ns}), ports {}\n{}{}{}{}{}console:\n{}\n",
                g["ports"],
                ip(&["-br", "addr"]),
                ip(&["route"]),
                ip(&["neigh"]),
                output(Command::new("ip").args(["netns", "exec", &ns, "ss", "-ltnp"])),
                output(Command::new("sh").arg("-c").arg(format!(
                    "tail -n 20 {}/root/var/lib/octavia/*/haproxy.log; \
                     ip netns pids {ns} | xargs -r ps -o pid,args -p",
                    dir.display()
                ))),
                std::fs::read_to_string(dir.join("console.log")).unwrap_or_default()
            );
        }
        out
    }
}

impl Drop for Hypervisor {
    fn drop(&mut self) {
        // Closing its stdin powers everything off.
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.wait();
    }
}
