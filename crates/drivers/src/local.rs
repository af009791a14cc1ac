//! The `local` compute driver: an amphora is a `rocta amphora-agent` process on this host, in its
//! own process group, with its certificates and settings in its own directory (its "config
//! drive") and its own management address (agent on port 9443): in 127.20.0.0/16 on the
//! host's loopback ([`Placement::Loopback`], compute driver `local`), or, as compute driver
//! `netns` ([`Placement::Netns`]), in a network namespace of its own (`amphora-<short id>`,
//! see [`crate::netns`]) whose only interface is a veth into the management bridge with an
//! address of the management subnet, the agent started in it with `ip netns exec`. Amphorae keep
//! serving when the control plane stops; a restarted control plane finds them by what they are
//! (a `rocta amphora-agent` whose command line names the amphora's `agent.toml`), not only by
//! the pid file written after the spawn, so a controller killed between the spawn and the pid
//! file neither starts a second agent nor leaves the first behind. Delete ends the whole process
//! group of every such agent (agent and HAProxy), in the `netns` placement every process left
//! in the namespace and the namespace with its interfaces, and removes the directory.

use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use rocta_model::Id;

use crate::addresses::AddressPool;
use crate::netns;
use crate::*;

/// The agent's port, as Octavia's.
pub const AGENT_PORT: u16 = 9443;

/// Where and how amphorae send heartbeats (written into each agent's configuration).
#[derive(Debug, Clone, Default)]
pub struct HeartbeatTarget {
    pub controllers: Vec<String>,
    pub interval: f64,
    pub key: String,
    /// Where the agents ship their logs (`[amphora_agent]`), their `[log_shipping]`.
    pub logs: LogShipping,
}

pub use rocta_proto::logs::LogShipping;

/// The agent configuration's `[log_shipping]` table, last in the file (none when nothing is
/// shipped: the agent's defaults).
fn log_shipping_table(l: &LogShipping) -> String {
    if !l.ships() {
        return String::new();
    }
    // A table of strings, numbers and booleans always serializes.
    toml::to_string(l).map_or_else(|_| String::new(), |t| format!("[log_shipping]\n{t}"))
}

/// Where the amphorae's agents live.
#[derive(Debug, Clone)]
pub enum Placement {
    /// On this host's loopback, management addresses in 127.20.0.0/16.
    Loopback,
    /// In a network namespace each, plugged into the management bridge.
    Netns(Management),
}

/// The management network of the `netns` placement (what `rocta network setup` built).
#[derive(Debug, Clone)]
pub struct Management {
    pub bridge: String,
    pub cidr: ipnet::Ipv4Net,
    /// Addresses of the subnet that are not the amphorae's (the hosts' ports).
    pub excluded: Vec<Ipv4Addr>,
    /// The MTU of the amphorae's management interfaces.
    pub mtu: u32,
    /// Its Neutron-style id (the only network amphorae here boot on).
    pub network_id: String,
    /// The hosts amphorae are plugged on (the bridge is on each), by compute zone.
    pub hosts: netns::Hosts,
}

pub struct LocalCompute {
    root: PathBuf,
    placement: Placement,
    mgmt: AddressPool,
    heartbeat: HeartbeatTarget,
    /// The `rocta` binary (the agent is its `amphora-agent` subcommand).
    exe: PathBuf,
    haproxy_bin: String,
}

fn io(op: &'static str) -> impl Fn(std::io::Error) -> DriverError {
    move |e| DriverError::transient(op, e.to_string())
}

fn write_file(path: &Path, body: &str, mode: u32) -> std::io::Result<()> {
    rocta_service::atomic_write(path, body.as_bytes(), mode)
}

impl LocalCompute {
    pub fn new(
        root: &Path,
        exe: &Path,
        haproxy_bin: &str,
        heartbeat: HeartbeatTarget,
        placement: Placement,
    ) -> std::io::Result<Self> {
        let dir = root.join("mgmt");
        let mgmt = match &placement {
            Placement::Loopback => AddressPool::new(
                &dir,
                Ipv4Addr::new(127, 20, 0, 2),
                Ipv4Addr::new(127, 20, 255, 254),
            )?,
            Placement::Netns(m) => AddressPool::of_subnet(&dir, m.cidr, m.excluded.clone())?,
        };
        Ok(LocalCompute {
            root: root.to_path_buf(),
            placement,
            mgmt,
            heartbeat,
            exe: exe.to_path_buf(),
            haproxy_bin: haproxy_bin.into(),
        })
    }

    /// The compute driver's name in the configuration.
    fn driver_name(&self) -> &'static str {
        match self.placement {
            Placement::Loopback => "local",
            Placement::Netns(_) => "netns",
        }
    }

    fn dir(&self, amp: Id) -> PathBuf {
        self.root.join(amp.to_string())
    }

    /// Whether `pid` is a live agent of amphora `amp` (its command line names the amphora's
    /// config file; a zombie's is empty).
    fn is_agent(&self, pid: i32, amp: Id) -> bool {
        let cfg = self.dir(amp).join("agent.toml");
        let want = cfg.as_os_str().as_bytes();
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        args.contains(&&b"amphora-agent"[..])
            && args.windows(2).any(|w| w[0] == b"--config" && w[1] == want)
    }

    /// Every live agent process of amphora `amp`: the pid file's, and any other found in /proc.
    fn agents(&self, amp: Id) -> Vec<i32> {
        let mut pids: Vec<i32> = std::fs::read_dir("/proc")
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                    .filter(|pid| self.is_agent(*pid, amp))
                    .collect()
            })
            .unwrap_or_default();
        pids.sort_unstable();
        pids
    }

    /// The agent's pid when it runs (the pid file's if it still names the agent, else one found
    /// by its command line, which is then written to the pid file).
    fn agent_pid(&self, amp: Id) -> Option<i32> {
        let pid_file = self.dir(amp).join("agent.pid");
        let recorded = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = recorded.filter(|p| self.is_agent(*p, amp)) {
            return Some(pid);
        }
        let pid = *self.agents(amp).first()?;
        if let Err(e) = write_file(&pid_file, &pid.to_string(), 0o644) {
            tracing::warn!(amphora = %amp, error = %e, "recording an adopted agent's pid failed");
        }
        Some(pid)
    }

    /// The agent's configuration for amphora `amp` on management address `ip`, with this
    /// controller's health managers, heartbeat interval and key.
    fn agent_toml(&self, amp: Id, ip: Ipv4Addr) -> String {
        let dir = self.dir(amp);
        let controllers: Vec<String> = self
            .heartbeat
            .controllers
            .iter()
            .map(|c| format!("{c:?}"))
            .collect();
        format!(
            "amphora_id = \"{amp}\"\nbind = \"{ip}:{AGENT_PORT}\"\nbase_dir = \"{base}\"\nserver_cert = \"{dir}/server.pem\"\nclient_ca = \"{dir}/client_ca.pem\"\nhaproxy_bin = \"{hx}\"\ncontroller_ip_port_list = [{ctl}]\nheartbeat_interval = {iv:?}\nheartbeat_key = {key:?}\n",
            base = dir.join("lb").display(),
            dir = dir.display(),
            hx = self.haproxy_bin,
            ctl = controllers.join(", "),
            iv = self.heartbeat.interval,
            key = self.heartbeat.key,
        ) + &log_shipping_table(&self.heartbeat.logs)
    }

    /// Reserves a management address (the one it holds, else a free one).
    fn reserve_mgmt(&self, amp: Id) -> Result<Ipv4Addr, DriverError> {
        let owner = amp.to_string();
        let held = self
            .mgmt
            .owned_by(&owner)
            .map_err(io("reserve management address"))?;
        if let Some(ip) = held.first() {
            return Ok(*ip);
        }
        self.mgmt
            .reserve_any(&owner, amp.as_u128())
            .map_err(io("reserve management address"))?
            .ok_or_else(|| {
                DriverError::fatal(
                    "reserve management address",
                    "the management network is full",
                )
            })
    }

    /// The host amphora `amp` is plugged on: the one its config drive records (written
    /// before anything is plugged), else the default host.
    fn host_of(&self, m: &Management, amp: Id) -> netns::HostNs {
        match std::fs::read_to_string(self.dir(amp).join("host_netns")) {
            Ok(name) => netns::HostNs::of(name.trim()),
            Err(_) => m.hosts.of_zone(None).cloned().unwrap_or_default(),
        }
    }

    /// The amphora's namespace with its management interface up on `ip`, plugged on `host`
    /// (idempotent).
    async fn build_namespace(
        &self,
        m: &Management,
        host: &netns::HostNs,
        amp: Id,
        ip: Ipv4Addr,
    ) -> DriverResult<()> {
        let ns = netns::namespace(amp);
        let fail = |e: String| DriverError::transient("create amphora namespace", e);
        if !netns::namespace_exists(&ns) {
            netns::ip(&["netns", "add", &ns]).await.map_err(fail)?;
        }
        let mac = netns::mac(amp, 0);
        let port = netns::port(amp, 0);
        host.plug(&port, &m.bridge, &ns, "eth0", &mac)
            .await
            .map_err(fail)?;
        // The management bridge's filter applies to the port (only the agent API from the
        // controllers and heartbeats to them pass).
        host.run(&crate::hostnet::nft_add_port(&m.bridge, &port))
            .await
            .map_err(fail)?;
        let cidr = format!("{ip}/{}", m.cidr.prefix_len());
        let mtu = m.mtu.to_string();
        host.ip(&["link", "set", &port, "mtu", &mtu])
            .await
            .map_err(fail)?;
        // Bringing eth0 up announces its address (gratuitous ARP): a management address an
        // earlier amphora had is otherwise sent to that one's MAC from the controller's
        // neighbour cache until the entry goes stale, and agent calls hang meanwhile.
        netns::ip(&[
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv4.conf.eth0.arp_notify=1",
        ])
        .await
        .map_err(fail)?;
        for args in [
            vec!["-n", &ns, "link", "set", "lo", "up"],
            vec!["-n", &ns, "link", "set", "eth0", "mtu", &mtu],
            vec!["-n", &ns, "addr", "replace", &cidr, "dev", "eth0"],
            vec!["-n", &ns, "link", "set", "eth0", "up"],
        ] {
            netns::ip(&args).await.map_err(fail)?;
        }
        Ok(())
    }

    /// Ends every process left in the amphora's namespace and removes it with its interfaces.
    async fn remove_namespace(&self, amp: Id) -> DriverResult<()> {
        let ns = netns::namespace(amp);
        if netns::namespace_exists(&ns) {
            let pids = tokio::process::Command::new("ip")
                .args(["netns", "pids", &ns])
                .output()
                .await
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if let Err(e) = netns::ip(&["netns", "del", &ns]).await {
                if netns::namespace_exists(&ns) {
                    return Err(DriverError::transient("delete amphora namespace", e));
                }
            }
        }
        if let Placement::Netns(m) = &self.placement {
            let port = netns::port(amp, 0);
            let host = self.host_of(m, amp);
            host.unplug(&port)
                .await
                .map_err(|e| DriverError::transient("delete amphora namespace", e))?;
            // Best effort: the filter may have been rebuilt without it already.
            let _ = host
                .run(&crate::hostnet::nft_delete_port(&m.bridge, &port))
                .await;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Compute for LocalCompute {
    async fn create(&self, amp: Id, boot: &Boot) -> DriverResult<Instance> {
        // Nova's answer to a zone it does not have.
        self.check_placement(boot.zone.as_deref(), boot.management_network.as_deref())
            .await
            .map_err(|e| {
                DriverError::fatal("boot amphora", format!("No valid host was found. {e}"))
            })?;
        let dir = self.dir(amp);
        std::fs::create_dir_all(&dir).map_err(io("create amphora directory"))?;
        let ip = self.reserve_mgmt(amp)?;
        write_file(&dir.join("mgmt_ip"), &ip.to_string(), 0o644)
            .map_err(io("write config drive"))?;
        let instance = Instance {
            compute_id: amp.to_string(),
            lb_network_ip: ip.to_string(),
        };
        if let Placement::Netns(m) = &self.placement {
            let host = m
                .hosts
                .of_zone(boot.zone.as_deref())
                .map_err(|e| DriverError::fatal("boot amphora", e))?
                .clone();
            // Recorded before anything is plugged there, so a delete finds it.
            write_file(&dir.join("host_netns"), host.name(), 0o644)
                .map_err(io("write config drive"))?;
            self.build_namespace(m, &host, amp, ip).await?;
        }
        if self.agent_pid(amp).is_some() {
            return Ok(instance);
        }
        write_file(&dir.join("server.pem"), &boot.server_pem, 0o600)
            .map_err(io("write config drive"))?;
        write_file(&dir.join("client_ca.pem"), &boot.client_ca_pem, 0o600)
            .map_err(io("write config drive"))?;
        let cfg = self.agent_toml(amp, ip);
        write_file(&dir.join("agent.toml"), &cfg, 0o600).map_err(io("write config drive"))?;
        let log = std::fs::File::create(dir.join("agent.log")).map_err(io("start agent"))?;
        let log2 = log.try_clone().map_err(io("start agent"))?;
        let mut cmd = match &self.placement {
            Placement::Loopback => tokio::process::Command::new(&self.exe),
            Placement::Netns(_) => {
                // `ip netns exec` enters the namespace (and a mount namespace with its own
                // /sys) and execs the agent: the pid stays the agent's.
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", &netns::namespace(amp)])
                    .arg(&self.exe);
                c
            }
        };
        let child = cmd
            .arg("amphora-agent")
            .arg("--config")
            .arg(dir.join("agent.toml"))
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io("start agent"))?;
        let pid = child
            .id()
            .ok_or_else(|| DriverError::transient("start agent", "agent exited at once"))?;
        crate::fault::crash_point("spawn_agent");
        write_file(&dir.join("agent.pid"), &pid.to_string(), 0o644)
            .map_err(io("write config drive"))?;
        // The child is not waited for: it is the amphora and outlives this process; tokio reaps
        // it if it ends while we run.
        drop(child);
        Ok(instance)
    }

    async fn check_placement(
        &self,
        zone: Option<&str>,
        management_network: Option<&str>,
    ) -> Result<(), String> {
        match &self.placement {
            // One host, no zones, and the loopback is no network of any id.
            Placement::Loopback => match (zone, management_network) {
                (Some(z), _) => Err(format!("Compute availability zone {z} not found.")),
                (None, Some(n)) => Err(format!(
                    "Network {n} not found: amphorae of the {} compute driver boot on this \
                     host's loopback.",
                    self.driver_name()
                )),
                (None, None) => Ok(()),
            },
            Placement::Netns(m) => {
                m.hosts.of_zone(zone)?;
                match management_network {
                    Some(n) if n != m.network_id => Err(format!(
                        "Network {n} not found: amphorae boot on the management network \
                         ([netns] management_network_id {}).",
                        m.network_id
                    )),
                    _ => Ok(()),
                }
            }
        }
    }

    /// An amphora here is this host's `rocta amphora-agent`: no compute flavors (the
    /// resources of a process are the host's), no images to choose by tag.
    async fn check_flavor(
        &self,
        compute_flavor: Option<&str>,
        image_tag: Option<&str>,
    ) -> Result<(), String> {
        if let Some(f) = compute_flavor {
            return Err(format!(
                "Compute flavor {f} not found: amphorae of the {} compute driver are \
                 processes of this host, it has no compute flavors.",
                self.driver_name()
            ));
        }
        if let Some(t) = image_tag {
            return Err(format!(
                "Failed to find an image with tag {t}: amphorae of the {} compute driver run \
                 this host's rocta binary, it has no images.",
                self.driver_name()
            ));
        }
        Ok(())
    }

    async fn agent_config(&self, amp: Id) -> DriverResult<String> {
        let ip = std::fs::read_to_string(self.dir(amp).join("mgmt_ip"))
            .map_err(io("read config drive"))?;
        let ip: Ipv4Addr = ip.trim().parse().map_err(|_| {
            DriverError::fatal("read config drive", format!("management address {ip:?}"))
        })?;
        Ok(self.agent_toml(amp, ip))
    }

    async fn stopped(&self, amp: Id) -> DriverResult<Option<String>> {
        // Looked at three times 100 ms apart: a process caught in exec (`ip netns exec`
        // becoming the agent) briefly shows no command line.
        for round in 0..3 {
            if self.agent_pid(amp).is_some() {
                return Ok(None);
            }
            if round < 2 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        // The agent's last words (its log is the instance's console).
        let log = std::fs::read(self.dir(amp).join("agent.log")).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let last = log.lines().rev().find(|l| !l.trim().is_empty());
        Ok(Some(match last {
            Some(line) => format!("its agent exited: {}", line.trim()),
            None => "its agent is not running".to_string(),
        }))
    }

    async fn delete(&self, amp: Id) -> DriverResult<()> {
        let dir = self.dir(amp);
        // In a namespace everything the amphora runs (agent, HAProxy, keepalived, which
        // daemonizes out of the agent's group) ends with it, at once: its load balancers were
        // already stopped through the agent.
        if let Placement::Netns(_) = &self.placement {
            self.remove_namespace(amp).await?;
        }
        // Each agent leads its own process group (HAProxy included): end every group, TERM
        // first, KILL after 2 s.
        for pid in self.agents(amp).into_iter().filter(|p| *p > 1) {
            let group = Pid::from_raw(pid);
            let _ = killpg(group, Signal::SIGTERM);
            for round in 0..300 {
                if kill(Pid::from_raw(-pid), None).is_err() {
                    break;
                }
                if round == 200 {
                    let _ = killpg(group, Signal::SIGKILL);
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        self.mgmt
            .release_owned_by(&amp.to_string())
            .map_err(io("release management address"))?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DriverError::transient(
                "delete amphora directory",
                e.to_string(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compute(dir: &Path, placement: Placement) -> LocalCompute {
        let exe = Path::new("/nonexistent/rocta");
        LocalCompute::new(dir, exe, "haproxy", HeartbeatTarget::default(), placement).unwrap()
    }

    #[tokio::test]
    async fn zones_and_management_networks_are_what_the_placement_has() {
        let d = tempfile::tempdir().unwrap();
        let local = compute(d.path(), Placement::Loopback);
        assert_eq!(local.check_placement(None, None).await, Ok(()));
        assert_eq!(
            local.check_placement(Some("nova"), None).await,
            Err("Compute availability zone nova not found.".into())
        );
        assert!(local.check_placement(None, Some("n")).await.is_err());
        let netns = compute(
            &d.path().join("netns"),
            Placement::Netns(Management {
                bridge: "rocta-mgmt".into(),
                cidr: "198.18.0.0/24".parse().unwrap(),
                excluded: Vec::new(),
                mtu: 1450,
                network_id: "mgmt".into(),
                hosts: netns::Hosts::new(
                    netns::HostNs::default(),
                    vec![("zone-b".into(), netns::HostNs::of("b"))],
                ),
            }),
        );
        assert_eq!(
            netns.check_placement(Some("zone-b"), Some("mgmt")).await,
            Ok(())
        );
        assert!(netns.check_placement(Some("zone-c"), None).await.is_err());
        assert!(netns.check_placement(None, Some("public")).await.is_err());
        for c in [&local, &netns] {
            assert_eq!(c.check_flavor(None, None).await, Ok(()));
            assert!(c.check_flavor(Some("m1.amphora"), None).await.is_err());
            assert!(c.check_flavor(None, Some("amphora")).await.is_err());
        }
        // A boot in a zone the driver no longer has fails before anything is made.
        let amp = rocta_model::new_id();
        let boot = Boot {
            zone: Some("zone-c".into()),
            ..Boot::default()
        };
        let err = netns.create(amp, &boot).await.unwrap_err();
        assert!(!err.retryable);
        assert_eq!(
            err.message,
            "No valid host was found. Compute availability zone zone-c not found."
        );
        assert!(!netns.dir(amp).exists());
    }
}
