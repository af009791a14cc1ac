//! The test's hypervisor. Nova's fake virt driver boots nothing, so this plays the compute host
//! the way a real one would: each Neutron network of the test is a Linux bridge on this host
//! (with the subnet's gateway address, so the control plane and the test's clients and
//! members are on it); when Nova reports an `amphora-*` server ACTIVE, its instance is a
//! network namespace with a veth per port Nova attached to it (the port's MAC, the management
//! port configured as cloud-init would from the port's address), its disk the config drive
//! Nova gave it (the files the fake virt driver kept) mounted where Octavia's image keeps them
//! (`/etc/octavia`, `/var/lib/octavia`, in a mount namespace of its own), and its init
//! `rocta amphora-agent --config /etc/octavia/amphora-agent.conf`. Ports attached or detached
//! later (`os-interface`) are plugged or unplugged; a server deleted is powered off (its
//! processes killed, its namespace and veths removed). Everything is undone on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::Stack;

/// One Neutron network as a bridge on this host.
pub struct Bridge {
    pub network_id: String,
    pub name: String,
    /// The host's address on it, with the prefix (the subnet's gateway).
    pub host_cidr: String,
}

struct Guest {
    ns: String,
    dir: PathBuf,
    agent: Child,
    /// Port id → the host end of its veth.
    ports: BTreeMap<String, String>,
    n: usize,
}

pub struct Hypervisor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    guests: Arc<Mutex<BTreeMap<String, Guest>>>,
    bridges: Vec<Bridge>,
    made_dirs: Vec<&'static str>,
    /// What happened, for a failing test's message.
    pub log: Arc<Mutex<Vec<String>>>,
}

fn run(argv: &[&str]) -> Result<(), String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| format!("{argv:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The mount points of Octavia's image (made on the host if missing, removed after).
const IMAGE_DIRS: [&str; 2] = ["/etc/octavia", "/var/lib/octavia"];

impl Hypervisor {
    pub fn start(stack: &'static Stack, rocta: &str, bridges: Vec<Bridge>) -> Hypervisor {
        for b in &bridges {
            let _ = run(&["ip", "link", "del", &b.name]);
            run(&["ip", "link", "add", &b.name, "type", "bridge"]).unwrap();
            run(&["ip", "addr", "add", &b.host_cidr, "dev", &b.name]).unwrap();
            run(&["ip", "link", "set", &b.name, "up"]).unwrap();
        }
        let made_dirs = IMAGE_DIRS
            .into_iter()
            .filter(|d| !std::path::Path::new(d).exists())
            .inspect(|d| std::fs::create_dir_all(d).unwrap())
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let guests = Arc::new(Mutex::new(BTreeMap::new()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let nets: BTreeMap<String, String> = bridges
            .iter()
            .map(|b| (b.network_id.clone(), b.name.clone()))
            .collect();
        let thread = {
            let (stop, guests, log) = (stop.clone(), guests.clone(), log.clone());
            let rocta = rocta.to_string();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = round(stack, &rocta, &nets, &guests) {
                        log.lock().unwrap().push(e);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Hypervisor {
            stop,
            thread: Some(thread),
            guests,
            bridges,
            made_dirs,
            log,
        }
    }

    /// The console log (the agent's output) of every guest running now.
    pub fn consoles(&self) -> String {
        let g = self.guests.lock().unwrap();
        g.iter()
            .map(|(id, guest)| {
                format!(
                    "--- {id} ({}):\n{}",
                    guest.ns,
                    std::fs::read_to_string(guest.dir.join("console.log")).unwrap_or_default()
                )
            })
            .collect()
    }

    /// Every guest: its interfaces and addresses, neighbours and console.
    pub fn describe(&self) -> String {
        let g = self.guests.lock().unwrap();
        let mut out = format!("hypervisor log: {:?}\n", self.log.lock().unwrap());
        for (id, guest) in g.iter() {
            let ip = |args: &[&str]| {
                let o = Command::new("ip")
                    .args(["netns", "exec", &guest.ns, "ip"])
                    .args(args)
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                o
            };
            let run_in = |argv: &[&str]| {
                Command::new("ip")
                    .args(["netns", "exec", &guest.ns])
                    .args(argv)
                    .output()
                    .map(|o| {
                        format!(
                            "{argv:?}: {}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    })
                    .unwrap_or_default()
            };
            out += &format!(
                "--- {id} ({}), ports {:?}\nfiles: {}\n{}{}{}{}{}console:\n{}\n",
                guest.ns,
                guest.ports,
                Command::new("find")
                    .arg(guest.dir.join("root/var/lib/octavia"))
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).replace('\n', " "))
                    .unwrap_or_default(),
                ip(&["-br", "addr"]),
                ip(&["route"]),
                ip(&["neigh"]),
                run_in(&["ss", "-ltnp"]),
                Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "tail -n 20 {}/*/haproxy.log; ip netns pids {} | xargs -r ps -o pid,args -p",
                        guest.dir.join("root/var/lib/octavia").display(),
                        guest.ns
                    ))
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default(),
                std::fs::read_to_string(guest.dir.join("console.log")).unwrap_or_default()
            );
        }
        out
    }

    /// How many guests run.
    pub fn running(&self) -> usize {
        self.guests.lock().unwrap().len()
    }
}

impl Drop for Hypervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for (_, g) in std::mem::take(&mut *self.guests.lock().unwrap()) {
            power_off(g);
        }
        for b in &self.bridges {
            let _ = run(&["ip", "link", "del", &b.name]);
        }
        for d in &self.made_dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Every process of the guest killed, its namespace, veths and disk removed.
fn power_off(mut g: Guest) {
    let out = Command::new("ip").args(["netns", "pids", &g.ns]).output();
    if let Ok(out) = out {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = g.agent.kill();
    let _ = g.agent.wait();
    for host in g.ports.values() {
        let _ = run(&["ip", "link", "del", host]);
    }
    let _ = run(&["ip", "netns", "del", &g.ns]);
    let _ = std::fs::remove_dir_all(&g.dir);
}

fn nova_get(stack: &Stack, path: &str) -> Result<Value, String> {
    let (s, b) = stack.admin(
        reqwest::Method::GET,
        &format!("{}/v2.1{path}", stack.url("nova")),
        None,
    );
    if s == 200 {
        Ok(b)
    } else {
        Err(format!("GET {path}: {s} {b}"))
    }
}

/// One look at Nova: new ACTIVE servers booted, gone ones powered off, interfaces synced.
fn round(
    stack: &'static Stack,
    rocta: &str,
    nets: &BTreeMap<String, String>,
    guests: &Mutex<BTreeMap<String, Guest>>,
) -> Result<(), String> {
    let b = nova_get(stack, "/servers/detail?all_tenants=1&name=%5Eamphora-")?;
    let servers = b["servers"].as_array().cloned().unwrap_or_default();
    let active: BTreeMap<String, Value> = servers
        .into_iter()
        .filter(|s| s["status"] == "ACTIVE")
        .filter_map(|s| Some((s["id"].as_str()?.to_string(), s)))
        .collect();
    let mut g = guests.lock().unwrap();
    let gone: Vec<String> = g
        .keys()
        .filter(|id| !active.contains_key(*id))
        .cloned()
        .collect();
    for id in gone {
        if let Some(guest) = g.remove(&id) {
            power_off(guest);
        }
    }
    for id in active.keys() {
        if !g.contains_key(id) {
            let guest = boot(stack, rocta, id)?;
            g.insert(id.clone(), guest);
        }
        let ifaces = nova_get(stack, &format!("/servers/{id}/os-interface"))?;
        let Some(guest) = g.get_mut(id) else { continue };
        sync_ports(guest, &ifaces, nets)?;
    }
    Ok(())
}

/// The instance of server `id`: its namespace and disk, its agent started (ports come next).
fn boot(stack: &Stack, rocta: &str, id: &str) -> Result<Guest, String> {
    let (files, _) = stack.config_drive(id);
    let dir = std::env::temp_dir().join(format!("rocta-guest-{id}"));
    let root = dir.join("root");
    for (path, content) in &files {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(&p, content).map_err(|e| e.to_string())?;
    }
    for d in IMAGE_DIRS {
        std::fs::create_dir_all(root.join(d.trim_start_matches('/'))).map_err(|e| e.to_string())?;
    }
    let ns = format!("rosvm-{}", &id[..8]);
    let _ = run(&["ip", "netns", "del", &ns]);
    run(&["ip", "netns", "add", &ns])?;
    run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
    let console = std::fs::File::create(dir.join("console.log")).map_err(|e| e.to_string())?;
    let script = format!(
        "mount --bind {r}/etc/octavia /etc/octavia && \
         mount --bind {r}/var/lib/octavia /var/lib/octavia && \
         exec {rocta} amphora-agent --config /etc/octavia/amphora-agent.conf",
        r = root.display()
    );
    let agent = Command::new("ip")
        .args([
            "netns", "exec", &ns, "unshare", "--mount", "sh", "-c", &script,
        ])
        .stdin(Stdio::null())
        .stdout(console.try_clone().map_err(|e| e.to_string())?)
        .stderr(console)
        .spawn()
        .map_err(|e| e.to_string())?;
    Ok(Guest {
        ns,
        dir,
        agent,
        ports: BTreeMap::new(),
        n: 0,
    })
}

/// Plugs the ports Nova attached since the last look, unplugs those it detached. The first
/// port (the management network's) is `eth0` with its address, as cloud-init configures it;
/// the others are left for the agent, which finds them by MAC.
fn sync_ports(
    guest: &mut Guest,
    ifaces: &Value,
    nets: &BTreeMap<String, String>,
) -> Result<(), String> {
    let attached = ifaces["interfaceAttachments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ids: BTreeSet<String> = attached
        .iter()
        .filter_map(|i| i["port_id"].as_str().map(String::from))
        .collect();
    let detached: Vec<String> = guest
        .ports
        .keys()
        .filter(|p| !ids.contains(*p))
        .cloned()
        .collect();
    for p in detached {
        if let Some(host) = guest.ports.remove(&p) {
            let _ = run(&["ip", "link", "del", &host]);
        }
    }
    for i in attached {
        let port = i["port_id"].as_str().unwrap_or_default().to_string();
        if guest.ports.contains_key(&port) {
            continue;
        }
        let Some(bridge) = i["net_id"].as_str().and_then(|n| nets.get(n)) else {
            continue;
        };
        let n = guest.n;
        guest.n += 1;
        let host = format!("rv{}{n}", &guest.ns[6..12]);
        let peer = format!("rp{}{n}", &guest.ns[6..12]);
        let mac = i["mac_addr"].as_str().unwrap_or_default();
        let _ = run(&["ip", "link", "del", &host]);
        run(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", &peer,
        ])?;
        run(&["ip", "link", "set", &host, "master", bridge, "up"])?;
        run(&[
            "ip", "link", "set", &peer, "address", mac, "netns", &guest.ns,
        ])?;
        let name = if n == 0 {
            "eth0".to_string()
        } else {
            format!("nic{n}")
        };
        let inside = |args: &[&str]| {
            let mut argv = vec!["ip", "netns", "exec", &guest.ns, "ip"];
            argv.extend(args);
            run(&argv)
        };
        inside(&["link", "set", &peer, "name", &name])?;
        if n == 0 {
            let ip = i["fixed_ips"][0]["ip_address"].as_str().unwrap_or_default();
            inside(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
            inside(&["link", "set", "eth0", "up"])?;
        }
        guest.ports.insert(port, host);
    }
    Ok(())
}
