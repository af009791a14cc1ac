//! The host side of the load-balancer management network, as Octavia's installation guide
//! builds it: a bridge the amphorae's management interfaces plug into (`rocta-mgmt`), the
//! controller's own port on it carrying the health manager's and worker's address (Octavia's
//! `o-hm0`; here a veth pair `rocta-hm0` / `rocta-hm0-br`), nftables rules on the bridge that
//! let through only the agent API (TCP to the agents' port) from the controllers and heartbeats
//! (UDP to the health manager's port) from amphorae, and optionally a VXLAN interface joining
//! this host's bridge to other hosts' (`rocta-vx<id>`).
//!
//! `rocta network setup` / `teardown` build a [`Plan`]: the `ip` and `nft` commands still
//! needed on this host (what exists is skipped, so both are idempotent), which `--dry-run`
//! prints and a real run executes, removing what it created if a command fails.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

/// The nftables table (bridge family) holding the filter of management bridge `bridge`
/// (`rocta_mgmt` for `rocta-mgmt`). Its set `ports` names the bridge's ports the filter
/// applies to (the controller's port, the VXLAN, every amphora's management port: the netns
/// compute driver adds each as it plugs it): the kernel here cannot match a frame's bridge,
/// and frames of other bridges must pass untouched.
pub fn nft_table(bridge: &str) -> String {
    bridge.replace('-', "_")
}

/// Adds a management port to the filter of `bridge` (the netns compute driver, per amphora).
pub fn nft_add_port(bridge: &str, port: &str) -> Vec<String> {
    let t = nft_table(bridge);
    [
        "nft",
        "add",
        "element",
        "bridge",
        &t,
        "ports",
        &format!("{{ \"{port}\" }}"),
    ]
    .map(String::from)
    .to_vec()
}

/// Removes it again (the port is gone; its name could come back).
pub fn nft_delete_port(bridge: &str, port: &str) -> Vec<String> {
    let mut v = nft_add_port(bridge, port);
    v[1] = "delete".into();
    v
}

/// The networks `rocta network setup` builds on this host: the management network and the
/// tenant networks.
#[derive(Debug, Clone, PartialEq)]
pub struct HostNetworks {
    pub bridge: String,
    pub cidr: Ipv4Net,
    /// The controller's port (Octavia's `o-hm0`); its peer on the bridge is `<name>-br`.
    pub host_port: String,
    /// The controller's address on it: the subnet's first address.
    pub host_address: Ipv4Addr,
    /// Other controllers' management addresses (`[health_manager] controller_ip_port_list`):
    /// they too may call agents and receive heartbeats.
    pub other_controllers: Vec<Ipv4Addr>,
    /// The agents' API port.
    pub agent_port: u16,
    /// The MTU of the controller's port (and of the amphorae's, set by the compute driver).
    pub mtu: u32,
    /// The health managers' heartbeat port.
    pub heartbeat_port: u16,
    pub vxlan: Option<Vxlan>,
    /// Tenant networks: a bridge each, with the host's gateway address on it (the subnet's
    /// first address), as a provider network.
    pub tenants: Vec<TenantNetwork>,
}

/// A tenant network on this host.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantNetwork {
    pub name: String,
    pub cidr: Ipv4Net,
}

impl TenantNetwork {
    /// Its bridge: `rocta-<name>`.
    pub fn bridge(&self) -> String {
        format!("rocta-{}", self.name)
    }

    /// The host's address on it: the subnet's first address, with the prefix.
    pub fn gateway(&self) -> String {
        let first = self.cidr.hosts().next().unwrap_or(self.cidr.network());
        format!("{first}/{}", self.cidr.prefix_len())
    }
}

/// A VXLAN interface joining the management bridge to other hosts'.
#[derive(Debug, Clone, PartialEq)]
pub struct Vxlan {
    pub id: u32,
    pub local: IpAddr,
    /// Unicast peers (head-end replication: one all-zero FDB entry each).
    pub remotes: Vec<IpAddr>,
    /// Or a multicast group.
    pub group: Option<IpAddr>,
    pub dstport: u16,
    /// The underlay interface.
    pub dev: Option<String>,
}

impl Vxlan {
    pub fn name(&self) -> String {
        format!("rocta-vx{}", self.id)
    }
}

/// Why a network cannot be set up as asked: one line, nothing created.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, SetupError> {
    Err(SetupError(msg.into()))
}

/// One command of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub argv: Vec<String>,
    /// Fed to the command's standard input (an `nft -f -` script).
    pub stdin: Option<String>,
    /// The command that removes what this one made, if it makes something.
    pub undo: Option<Vec<String>>,
}

fn step(argv: &[&str]) -> Step {
    Step {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        undo: None,
    }
}

fn making(argv: &[&str], undo: &[&str]) -> Step {
    Step {
        undo: Some(undo.iter().map(|s| s.to_string()).collect()),
        ..step(argv)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.argv.join(" "))?;
        if let Some(s) = &self.stdin {
            write!(f, " <<'EOF'\n{s}EOF")?;
        }
        Ok(())
    }
}

/// The commands still needed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// What exists on this host, as far as a plan cares.
pub trait Host {
    fn link_exists(&self, name: &str) -> bool;
    fn has_address(&self, dev: &str, addr: &str) -> bool;
    fn nft_table_exists(&self, table: &str) -> bool;
    /// The interfaces enslaved to `bridge`.
    fn bridge_ports(&self, bridge: &str) -> Vec<String>;
    /// Whether the network namespace `ns` exists, and the processes in it.
    fn namespace_processes(&self, ns: &str) -> Option<Vec<i32>>;
    /// Addresses (with prefix) configured on interfaces rocta did not make.
    fn foreign_networks(&self) -> Vec<Ipv4Net>;
}

/// This host, read through `ip` (netlink: right in whatever network namespace this process is,
/// whatever `/sys` shows) and `nft list`.
pub struct ThisHost;

impl Host for ThisHost {
    fn link_exists(&self, name: &str) -> bool {
        Command::new("ip")
            .args(["link", "show", "dev", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
    fn has_address(&self, dev: &str, addr: &str) -> bool {
        addresses()
            .iter()
            .any(|(d, net)| d == dev && net.to_string() == addr)
    }
    fn bridge_ports(&self, bridge: &str) -> Vec<String> {
        let Ok(out) = Command::new("ip")
            .args(["-j", "link", "show", "master", bridge])
            .output()
        else {
            return Vec::new();
        };
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut v: Vec<String> = doc
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect();
        v.sort();
        v
    }
    fn nft_table_exists(&self, table: &str) -> bool {
        Command::new("nft")
            .args(["list", "table", "bridge", table])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
    fn namespace_processes(&self, ns: &str) -> Option<Vec<i32>> {
        if !std::path::Path::new("/run/netns").join(ns).exists() {
            return None;
        }
        let out = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .ok()?;
        Some(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect(),
        )
    }
    fn foreign_networks(&self) -> Vec<Ipv4Net> {
        addresses()
            .into_iter()
            .filter(|(d, _)| !d.starts_with("rocta-"))
            .map(|(_, n)| n.trunc())
            .collect()
    }
}

/// Every IPv4 address of this host with its interface (`ip -j -4 addr`).
fn addresses() -> Vec<(String, Ipv4Net)> {
    let Ok(out) = Command::new("ip").args(["-j", "-4", "addr"]).output() else {
        return Vec::new();
    };
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut v = Vec::new();
    for link in doc.as_array().into_iter().flatten() {
        let dev = link["ifname"].as_str().unwrap_or_default();
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let (Some(ip), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) else {
                continue;
            };
            if let Ok(n) = format!("{ip}/{len}").parse::<Ipv4Net>() {
                v.push((dev.to_string(), n));
            }
        }
    }
    v
}

impl HostNetworks {
    /// Checks what can be checked before touching anything.
    pub fn validate(&self, host: &dyn Host) -> Result<(), SetupError> {
        for name in [&self.bridge, &self.host_port] {
            // `<host_port>-br` and `rocta-vx<id>` must fit IFNAMSIZ (15) too.
            if name.len() > 12 || name.is_empty() || !name.starts_with("rocta") {
                return err(format!(
                    "interface name {name:?}: must start with \"rocta\" and have at most 12 characters"
                ));
            }
        }
        if self.cidr.prefix_len() > 30 {
            return err(format!(
                "management network {}: too small (at most /30)",
                self.cidr
            ));
        }
        for net in host.foreign_networks() {
            if net.contains(&self.cidr.network()) || self.cidr.contains(&net.network()) {
                return err(format!(
                    "management network {} overlaps {net}, already on this host",
                    self.cidr
                ));
            }
        }
        if self.tenants.len() > 8 {
            return err("at most 8 tenant networks ([[netns.networks]]): an amphora has eth2 .. eth9 for member subnets");
        }
        let mut ours = vec![("the management network".to_string(), self.cidr)];
        for t in &self.tenants {
            let ok_name = !t.name.is_empty()
                && t.name.len() <= 9
                && t.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok_name || t.bridge() == self.bridge || t.bridge() == self.host_port {
                return err(format!(
                    "network name {:?}: 1 to 9 of a-z, 0-9 and -, not the management bridge's",
                    t.name
                ));
            }
            if t.cidr.prefix_len() > 30 {
                return err(format!(
                    "network {} {}: too small (at most /30)",
                    t.name, t.cidr
                ));
            }
            for net in host.foreign_networks() {
                if net.contains(&t.cidr.network()) || t.cidr.contains(&net.network()) {
                    return err(format!(
                        "network {} {} overlaps {net}, already on this host",
                        t.name, t.cidr
                    ));
                }
            }
            for (other, c) in &ours {
                if c.contains(&t.cidr.network()) || t.cidr.contains(&c.network()) {
                    return err(format!(
                        "network {} {} overlaps {other} {c}",
                        t.name, t.cidr
                    ));
                }
            }
            ours.push((format!("network {}", t.name), t.cidr));
        }
        if let Some(v) = &self.vxlan {
            if v.id == 0 || v.id > 16_777_215 {
                return err(format!("--vxlan-id {}: a VXLAN id is 1 to 16777215", v.id));
            }
            if v.remotes.is_empty() && v.group.is_none() {
                return err("--vxlan-id needs --remote ADDR (one or more) or --group MCAST");
            }
            if !v.remotes.is_empty() && v.group.is_some() {
                return err("--remote and --group exclude each other");
            }
            if let Some(g) = v.group {
                if !g.is_multicast() {
                    return err(format!("--group {g}: not a multicast address"));
                }
            }
            if let Some(dev) = &v.dev {
                if !host.link_exists(dev) {
                    return err(format!("--dev {dev}: no such interface on this host"));
                }
            } else if v.group.is_some() {
                return err("--group needs --dev IF (the interface to join the group on)");
            }
        }
        Ok(())
    }

    fn host_cidr(&self) -> String {
        format!("{}/{}", self.host_address, self.cidr.prefix_len())
    }

    /// The nftables script of the management bridge's filter; `ports`: the bridge's ports it
    /// applies to besides the controller's and the VXLAN (the amphorae's, when it is rebuilt).
    pub fn nft_script(&self, ports: &[String]) -> String {
        let mut controllers = vec![self.host_address.to_string()];
        controllers.extend(self.other_controllers.iter().map(|a| a.to_string()));
        let set = controllers.join(", ");
        let mut filtered = vec![format!("{}-br", self.host_port)];
        filtered.extend(self.vxlan.iter().map(Vxlan::name));
        for p in ports {
            if !filtered.contains(p) {
                filtered.push(p.clone());
            }
        }
        let elements: Vec<String> = filtered.iter().map(|p| format!("\"{p}\"")).collect();
        format!(
            "table bridge {table} {{\n\
             \x20 set ports {{\n\
             \x20   type ifname\n\
             \x20   elements = {{ {elements} }}\n\
             \x20 }}\n\
             \x20 chain forward {{\n\
             \x20   type filter hook forward priority 0; policy accept;\n\
             \x20   iifname != @ports accept\n\
             \x20   ether type arp accept\n\
             \x20   ip saddr {{ {set} }} tcp dport {agent} accept\n\
             \x20   ip daddr {{ {set} }} tcp sport {agent} accept\n\
             \x20   ip daddr {{ {set} }} udp dport {hb} accept\n\
             \x20   drop\n\
             \x20 }}\n\
             }}\n",
            table = nft_table(&self.bridge),
            elements = elements.join(", "),
            agent = self.agent_port,
            hb = self.heartbeat_port,
        )
    }

    /// What `rocta network setup` still has to do on `host`.
    pub fn setup(&self, host: &dyn Host) -> Result<Plan, SetupError> {
        self.validate(host)?;
        let (br, hp) = (self.bridge.as_str(), self.host_port.as_str());
        let peer = format!("{hp}-br");
        let mut p = Vec::new();
        if !host.link_exists(br) {
            p.push(making(
                &["ip", "link", "add", br, "type", "bridge"],
                &["ip", "link", "del", br],
            ));
        }
        // The bridge holds no address; without this it would answer ARP for the host's
        // addresses (the controller's port is on this host too), racing the controller's own
        // answer: an amphora that believed the bridge sent the controller's packets to it,
        // where the host dropped them (reverse-path filter).
        let arp_ignore = format!("net.ipv4.conf.{br}.arp_ignore=1");
        p.push(step(&["sysctl", "-qw", &arp_ignore]));
        p.push(step(&["ip", "link", "set", br, "up"]));
        if !host.link_exists(hp) {
            p.push(making(
                &[
                    "ip", "link", "add", hp, "type", "veth", "peer", "name", &peer,
                ],
                &["ip", "link", "del", hp],
            ));
        }
        let mtu = self.mtu.to_string();
        p.push(step(&["ip", "link", "set", &peer, "mtu", &mtu]));
        p.push(step(&["ip", "link", "set", hp, "mtu", &mtu]));
        p.push(step(&["ip", "link", "set", &peer, "master", br]));
        p.push(step(&["ip", "link", "set", &peer, "up"]));
        let cidr = self.host_cidr();
        if !host.has_address(hp, &cidr) {
            p.push(step(&["ip", "addr", "add", &cidr, "dev", hp]));
        }
        p.push(step(&["ip", "link", "set", hp, "up"]));
        if let Some(v) = &self.vxlan {
            let name = v.name();
            if !host.link_exists(&name) {
                let (id, local, port) =
                    (v.id.to_string(), v.local.to_string(), v.dstport.to_string());
                let mut argv = vec![
                    "ip", "link", "add", &name, "type", "vxlan", "id", &id, "local", &local,
                    "dstport", &port,
                ];
                let group = v.group.map(|g| g.to_string());
                if let Some(g) = &group {
                    argv.extend(["group", g.as_str()]);
                } else {
                    argv.push("nolearning");
                }
                if let Some(d) = &v.dev {
                    argv.extend(["dev", d.as_str()]);
                }
                p.push(making(&argv, &["ip", "link", "del", &name]));
                for r in &v.remotes {
                    let r = r.to_string();
                    p.push(step(&[
                        "bridge",
                        "fdb",
                        "append",
                        "00:00:00:00:00:00",
                        "dev",
                        &name,
                        "dst",
                        &r,
                    ]));
                }
            }
            p.push(step(&["ip", "link", "set", &name, "master", br]));
            p.push(step(&["ip", "link", "set", &name, "up"]));
        }
        for t in &self.tenants {
            let (b, gw) = (t.bridge(), t.gateway());
            if !host.link_exists(&b) {
                p.push(making(
                    &["ip", "link", "add", &b, "type", "bridge"],
                    &["ip", "link", "del", &b],
                ));
            }
            if !host.has_address(&b, &gw) {
                p.push(step(&["ip", "addr", "add", &gw, "dev", &b]));
            }
            p.push(step(&["ip", "link", "set", &b, "up"]));
        }
        let table = nft_table(br);
        // The amphorae already plugged stay filtered.
        let ports = host.bridge_ports(br);
        if host.nft_table_exists(&table) {
            // Rules follow the configuration: the table is replaced as a whole, atomically.
            p.push(Step {
                stdin: Some(format!(
                    "delete table bridge {table}\n{}",
                    self.nft_script(&ports)
                )),
                ..step(&["nft", "-f", "-"])
            });
        } else {
            p.push(Step {
                stdin: Some(self.nft_script(&ports)),
                undo: Some(
                    ["nft", "delete", "table", "bridge", &table]
                        .map(String::from)
                        .to_vec(),
                ),
                ..step(&["nft", "-f", "-"])
            });
        }
        Ok(Plan { steps: p })
    }

    /// What `rocta network teardown` still has to remove on `host`.
    pub fn teardown(&self, host: &dyn Host) -> Plan {
        let mut p = Vec::new();
        // The amphorae plugged on these networks go first: their processes, then their
        // namespaces (with their interfaces), found by the names of their ports.
        let mut amphorae: Vec<String> = Vec::new();
        let bridges = std::iter::once(self.bridge.clone())
            .chain(self.tenants.iter().map(TenantNetwork::bridge));
        for br in bridges {
            for port in host.bridge_ports(&br) {
                if let Some(ns) = amphora_of_port(&port) {
                    if !amphorae.contains(&ns) {
                        amphorae.push(ns);
                    }
                }
            }
        }
        for ns in amphorae {
            let Some(pids) = host.namespace_processes(&ns) else {
                continue;
            };
            if !pids.is_empty() {
                let mut argv = vec!["kill".to_string(), "-9".into()];
                argv.extend(pids.iter().map(|p| p.to_string()));
                p.push(Step {
                    argv,
                    stdin: None,
                    undo: None,
                });
            }
            p.push(step(&["ip", "netns", "del", &ns]));
        }
        let table = nft_table(&self.bridge);
        if host.nft_table_exists(&table) {
            p.push(step(&["nft", "delete", "table", "bridge", &table]));
        }
        if let Some(v) = &self.vxlan {
            if host.link_exists(&v.name()) {
                p.push(step(&["ip", "link", "del", &v.name()]));
            }
        }
        // Deleting one end of the veth deletes both.
        let tenants = self.tenants.iter().map(TenantNetwork::bridge);
        for name in [self.host_port.clone(), self.bridge.clone()]
            .into_iter()
            .chain(tenants)
        {
            if host.link_exists(&name) {
                p.push(step(&["ip", "link", "del", &name]));
            }
        }
        Plan { steps: p }
    }
}

/// The namespace of the amphora whose port is `port` (`rocta<8 hex>e<k>`, see
/// `crate::netns::port`).
pub fn amphora_of_port(port: &str) -> Option<String> {
    let rest = port.strip_prefix("rocta")?;
    let (hex, k) = (rest.get(..8)?, rest.get(8..)?);
    let ok = hex
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && k.len() == 2
        && k.starts_with('e')
        && k[1..].chars().all(|c| c.is_ascii_digit());
    ok.then(|| format!("amphora-{hex}"))
}

impl Plan {
    /// Runs the steps in order; if one fails, undoes (newest first) what the earlier ones
    /// made, so a failed setup leaves nothing half-created.
    pub fn apply(&self) -> Result<(), SetupError> {
        let mut made: Vec<&Vec<String>> = Vec::new();
        for s in &self.steps {
            if let Err(e) = run(&s.argv, s.stdin.as_deref()) {
                for undo in made.iter().rev() {
                    let _ = run(undo, None);
                }
                return err(format!("{s}: {e}"));
            }
            if let Some(u) = &s.undo {
                made.push(u);
            }
        }
        Ok(())
    }
}

fn run(argv: &[String], stdin: Option<&str>) -> Result<(), String> {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        input
            .write_all(text.as_bytes())
            .map_err(|e| format!("writing to {}: {e}", argv[0]))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests;
