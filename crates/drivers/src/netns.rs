//! Amphorae as network namespaces (the `netns` compute placement of [`crate::local`] and the
//! `netns` network driver here).
//!
//! An amphora is the namespace `amphora-<first 8 hex digits of its id>`. Its interfaces are
//! veth pairs whose host ends are named `rocta<8 hex>e<k>` (at most 15 characters, IFNAMSIZ)
//! and sit on a bridge: `e0` its management interface (`eth0` inside, on the management
//! bridge, built by the compute driver), `e1` its VIP port (on the VIP network's bridge, built
//! here; the agent names it `eth1` and configures it, as Octavia's plug-VIP does). Tenant
//! networks are the bridges `rocta network setup` builds from `[[netns.networks]]`, each with
//! the host's gateway address (the subnet's first address) on it, like a provider network.
//! Addresses (VIPs, the amphorae's own port addresses) are reservations of an
//! [`AddressPool`] per subnet.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use rocta_model::{Amphora, Id};

use crate::addresses::{allocate_vip as allocate, release_vip as release, AddressPool};
use crate::*;

/// The namespace of amphora `amp`.
pub fn namespace(amp: Id) -> String {
    format!("amphora-{}", short(amp))
}

fn short(amp: Id) -> String {
    amp.simple().to_string()[..8].to_string()
}

/// The host end of amphora `amp`'s interface `k` (`eth<k>` inside).
pub fn port(amp: Id, k: u8) -> String {
    format!("rocta{}e{k}", short(amp))
}

/// A stable MAC address for amphora `amp`'s interface `k` (OpenStack's `fa:16:3e` prefix).
pub fn mac(amp: Id, k: u8) -> String {
    let h = uuid::Uuid::new_v5(&amp, &[b'e', k]);
    let b = h.as_bytes();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// Whether the namespace `ns` exists.
pub fn namespace_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Runs `ip <args>` in this process's namespace; the error is its standard error.
pub async fn ip(args: &[&str]) -> Result<(), String> {
    let mut argv = vec!["ip".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    run(&argv).await
}

/// Runs `argv`; the error is the command line and its standard error.
pub async fn run(argv: &[String]) -> Result<(), String> {
    let out = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Where the bridges amphorae plug into are: this host (`None`), or a network namespace
/// standing for another host (`[netns] amphora_host_netns`), where every host-side command
/// runs (`ip -n`, `ip netns exec`).
#[derive(Debug, Clone, Default)]
pub struct HostNs(Option<String>);

impl HostNs {
    /// `""`: this host.
    pub fn of(name: &str) -> HostNs {
        HostNs((!name.is_empty()).then(|| name.to_string()))
    }

    /// The namespace's name; empty for this host.
    pub fn name(&self) -> &str {
        self.0.as_deref().unwrap_or_default()
    }

    /// `argv` run on that host.
    pub fn argv(&self, argv: &[String]) -> Vec<String> {
        match &self.0 {
            None => argv.to_vec(),
            Some(ns) => ["ip", "netns", "exec", ns]
                .map(String::from)
                .into_iter()
                .chain(argv.iter().cloned())
                .collect(),
        }
    }

    /// `ip <args>` on that host.
    pub async fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut argv: Vec<&str> = Vec::new();
        if let Some(ns) = &self.0 {
            argv.extend(["-n", ns.as_str()]);
        }
        argv.extend(args);
        ip(&argv).await
    }

    /// Runs `argv` on that host.
    pub async fn run(&self, argv: &[String]) -> Result<(), String> {
        run(&self.argv(argv)).await
    }

    /// Whether that host has the interface `name` (asked over netlink: `/sys` may show
    /// another namespace's).
    pub async fn link_exists(&self, name: &str) -> bool {
        self.ip(&["link", "show", "dev", name]).await.is_ok()
    }

    /// Makes a veth pair from that host (`host_end`, on `bridge`, up) into namespace `ns`
    /// (named `inner` there, with `mac`, left down for the amphora to configure). Idempotent.
    pub async fn plug(
        &self,
        host_end: &str,
        bridge: &str,
        ns: &str,
        inner: &str,
        mac: &str,
    ) -> Result<(), String> {
        if !self.link_exists(host_end).await {
            self.ip(&[
                "link", "add", host_end, "type", "veth", "peer", "name", inner, "address", mac,
                "netns", ns,
            ])
            .await?;
        }
        self.ip(&["link", "set", host_end, "master", bridge])
            .await?;
        self.ip(&["link", "set", host_end, "up"]).await
    }

    /// Removes the veth pair whose host end is `host_end`. Idempotent.
    pub async fn unplug(&self, host_end: &str) -> Result<(), String> {
        if !self.link_exists(host_end).await {
            return Ok(());
        }
        match self.ip(&["link", "del", host_end]).await {
            // Gone meanwhile (its namespace was deleted): fine.
            Err(_) if !self.link_exists(host_end).await => Ok(()),
            r => r,
        }
    }
}

/// The hosts amphorae are plugged on: the default one (`[netns] amphora_host_netns`) for
/// amphorae without a compute zone, and the host of each compute zone
/// (`[[netns.compute_zones]]`). The compute driver places an amphora by the zone it boots
/// in; the network driver finds its ports by the zone the amphora records (`cached_zone`).
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    default: HostNs,
    zones: Vec<(String, HostNs)>,
}

impl Hosts {
    pub fn new(default: HostNs, zones: Vec<(String, HostNs)>) -> Hosts {
        Hosts { default, zones }
    }

    /// The host of compute zone `zone` (`None`: the default host); an unknown zone is an
    /// error naming it (Nova's "availability zone not found").
    pub fn of_zone(&self, zone: Option<&str>) -> Result<&HostNs, String> {
        let Some(zone) = zone else {
            return Ok(&self.default);
        };
        self.zones
            .iter()
            .find(|(z, _)| z == zone)
            .map(|(_, h)| h)
            .ok_or_else(|| format!("Compute availability zone {zone} not found."))
    }

    /// The host of amphora `amp` (its recorded compute zone's).
    pub fn of(&self, amp: &Amphora, op: &'static str) -> DriverResult<&HostNs> {
        self.of_zone(amp.cached_zone.as_deref())
            .map_err(|e| DriverError::fatal(op, e))
    }
}

/// The amphora's own address on a tenant network: the one it holds, else a free one.
fn own_address(
    pool: &AddressPool,
    net: &TenantNet,
    amp: Id,
    op: &'static str,
) -> DriverResult<Ipv4Addr> {
    let owner = amp.to_string();
    let io = |e: std::io::Error| DriverError::transient(op, e.to_string());
    if let Some(ip) = pool.owned_by(&owner).map_err(io)?.first() {
        return Ok(*ip);
    }
    pool.reserve_any(&owner, amp.as_u128())
        .map_err(io)?
        .ok_or_else(|| {
            DriverError::fatal(
                op,
                format!(
                    "No more IP addresses available on subnet {}.",
                    NetnsNetwork::label(net)
                ),
            )
        })
}

/// The interface index of an amphora's port on the `k`-th tenant network as a member subnet
/// (`eth2` ... `eth9`; `eth1` is the VIP's).
fn member_port(k: usize) -> u8 {
    2 + (k.min(7) as u8)
}

/// A tenant network of the `netns` network driver: a bridge with one subnet.
#[derive(Debug, Clone)]
pub struct TenantNet {
    pub name: String,
    pub bridge: String,
    pub cidr: Ipv4Net,
    pub network_id: String,
    pub subnet_id: String,
}

impl TenantNet {
    /// The host's address on it: the subnet's first address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.cidr.hosts().next().unwrap_or(self.cidr.network())
    }
}

/// The `netns` network driver (Octavia's network driver contract over Linux bridges).
pub struct NetnsNetwork {
    nets: Vec<(TenantNet, AddressPool)>,
    hosts: Hosts,
}

impl NetnsNetwork {
    pub fn new(state_dir: &Path, nets: Vec<TenantNet>, hosts: Hosts) -> std::io::Result<Self> {
        let nets = nets
            .into_iter()
            .map(|n| {
                let dir: PathBuf = state_dir.join(&n.name);
                let pool = AddressPool::of_subnet(&dir, n.cidr, vec![n.gateway()])?;
                Ok((n, pool))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(NetnsNetwork { nets, hosts })
    }

    fn of_subnet(&self, subnet_id: &str) -> Option<&(TenantNet, AddressPool)> {
        self.nets.iter().find(|(n, _)| n.subnet_id == subnet_id)
    }

    fn label(n: &TenantNet) -> String {
        format!("{} ({})", n.subnet_id, n.cidr)
    }
}

fn transient(op: &'static str) -> impl Fn(String) -> DriverError {
    move |e| DriverError::transient(op, e)
}

#[async_trait::async_trait]
impl Network for NetnsNetwork {
    fn supports_active_standby(&self) -> bool {
        true
    }

    fn supports_udp(&self) -> bool {
        true
    }

    async fn has_network(&self, id: &str) -> bool {
        self.nets.iter().any(|(n, _)| n.network_id == id)
    }

    fn networks(&self) -> Vec<NetworkInfo> {
        self.nets
            .iter()
            .map(|(n, _)| {
                let mut hosts = n.cidr.hosts();
                let _gateway = hosts.next();
                let first = hosts.next().unwrap_or(n.cidr.network());
                let last = hosts.next_back().unwrap_or(first);
                NetworkInfo {
                    id: n.network_id.clone(),
                    name: n.name.clone(),
                    subnets: vec![SubnetInfo {
                        id: n.subnet_id.clone(),
                        name: n.name.clone(),
                        cidr: n.cidr.to_string(),
                        ip_version: 4,
                        gateway_ip: Some(n.gateway().to_string()),
                        allocation_pools: vec![(first.to_string(), last.to_string())],
                    }],
                }
            })
            .collect()
    }

    async fn allocate_vip(&self, req: &VipRequest) -> Result<Vip, VipError> {
        if let Some(p) = &req.port_id {
            return Err(VipError::Invalid(format!("Port {p} not found.")));
        }
        let found = match (&req.subnet_id, &req.network_id) {
            (Some(s), _) => self
                .of_subnet(s)
                .ok_or_else(|| VipError::Invalid(format!("Subnet {s} not found.")))?,
            (None, Some(id)) => self
                .nets
                .iter()
                .find(|(n, _)| &n.network_id == id)
                .ok_or_else(|| VipError::Invalid(format!("Network {id} not found.")))?,
            (None, None) => {
                return Err(VipError::Invalid("No VIP subnet or network given.".into()))
            }
        };
        let (net, pool) = found;
        // Each network has one subnet: an additional VIP's is another network's, or none.
        if let Some(a) = req.additional.first() {
            return Err(VipError::Invalid(match self.of_subnet(&a.subnet_id) {
                Some(_) => "All VIP subnets must belong to the same network.".into(),
                None => format!("Subnet {} not found.", a.subnet_id),
            }));
        }
        let address = allocate(pool, req, &Self::label(net))?;
        crate::fault::crash_point("allocate_vip");
        Ok(Vip {
            address: address.to_string(),
            port_id: uuid::Uuid::new_v5(&req.lb_id, b"netns-vip-port").to_string(),
            subnet_id: net.subnet_id.clone(),
            network_id: net.network_id.clone(),
            additional: Vec::new(),
        })
    }

    async fn deallocate_vip(&self, vip: &Vip) -> DriverResult<()> {
        match self.of_subnet(&vip.subnet_id) {
            Some((_, pool)) => release(pool, vip),
            None => Ok(()),
        }
    }

    async fn deallocate_vips_of(&self, lb_id: Id) -> DriverResult<()> {
        for (_, pool) in &self.nets {
            pool.release_owned_by(&lb_id.to_string())
                .map_err(|e| DriverError::transient("deallocate vips", e.to_string()))?;
        }
        Ok(())
    }

    /// The amphora's port on the VIP network: an address of its own (its VRRP address, as
    /// Octavia's base port) and a veth from the network's bridge into its namespace, which the
    /// agent configures on `post_vip_plug` (found by its MAC).
    async fn plug_vip(&self, amphora: &Amphora, vip: &Vip) -> DriverResult<VipPlug> {
        let (net, pool) = self.of_subnet(&vip.subnet_id).ok_or_else(|| {
            DriverError::fatal("plug vip", format!("subnet {} not found", vip.subnet_id))
        })?;
        let ns = namespace(amphora.id);
        if !namespace_exists(&ns) {
            return Err(DriverError::transient(
                "plug vip",
                format!("amphora namespace {ns} does not exist"),
            ));
        }
        let host = self.hosts.of(amphora, "plug vip")?;
        let vrrp_ip = own_address(pool, net, amphora.id, "plug vip")?;
        let mac_address = mac(amphora.id, 1);
        host.plug(&port(amphora.id, 1), &net.bridge, &ns, "eth1", &mac_address)
            .await
            .map_err(transient("plug vip"))?;
        Ok(VipPlug {
            vrrp_ip: vrrp_ip.to_string(),
            ha_ip: vip.address.clone(),
            vrrp_port_id: uuid::Uuid::new_v5(&amphora.id, b"netns-vrrp-port").to_string(),
            ha_port_id: vip.port_id.clone(),
            mac_address: Some(mac_address),
            subnet_cidr: Some(net.cidr.to_string()),
            gateway: Some(net.gateway().to_string()),
            mtu: Some(1500),
            additional: Vec::new(),
        })
    }

    /// Every port of the amphora on the tenant networks (VIP and member subnets) and every
    /// address it holds on them.
    async fn unplug_vip(&self, amphora: &Amphora, _vip: &Vip) -> DriverResult<()> {
        let host = self.hosts.of(amphora, "unplug vip")?;
        host.unplug(&port(amphora.id, 1))
            .await
            .map_err(transient("unplug vip"))?;
        for (k, (_, pool)) in self.nets.iter().enumerate() {
            host.unplug(&port(amphora.id, member_port(k)))
                .await
                .map_err(transient("unplug vip"))?;
            pool.release_owned_by(&amphora.id.to_string())
                .map_err(|e| DriverError::transient("unplug vip", e.to_string()))?;
        }
        Ok(())
    }

    /// A port on a member subnet: `eth<k>` (k = 2 + the network's position in the
    /// configuration) with an address of the amphora's own there.
    async fn plug_network(
        &self,
        amphora: &Amphora,
        subnet_id: &str,
    ) -> DriverResult<Option<NetworkPlug>> {
        let Some(k) = self.nets.iter().position(|(n, _)| n.subnet_id == subnet_id) else {
            return Err(DriverError::fatal(
                "plug network",
                format!("Subnet {subnet_id} not found."),
            ));
        };
        let (net, pool) = &self.nets[k];
        let host = self.hosts.of(amphora, "plug network")?;
        let ip = own_address(pool, net, amphora.id, "plug network")?;
        let idx = member_port(k);
        let mac_address = mac(amphora.id, idx);
        host.plug(
            &port(amphora.id, idx),
            &net.bridge,
            &namespace(amphora.id),
            &format!("eth{idx}"),
            &mac_address,
        )
        .await
        .map_err(transient("plug network"))?;
        Ok(Some(NetworkPlug {
            mac_address,
            ip_address: ip.to_string(),
            subnet_cidr: net.cidr.to_string(),
            mtu: 1500,
        }))
    }

    /// Removes the member ports on the subnets not in `keep` (the veth pair goes, the
    /// interface inside with it). The amphora's address there stays reserved until it goes.
    async fn unplug_networks(&self, amphora: &Amphora, keep: &[String]) -> DriverResult<()> {
        let host = self.hosts.of(amphora, "unplug network")?;
        for (k, (net, _)) in self.nets.iter().enumerate() {
            if !keep.contains(&net.subnet_id) {
                host.unplug(&port(amphora.id, member_port(k)))
                    .await
                    .map_err(transient("unplug network"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_and_are_stable() {
        let id: Id = "5f0e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b".parse().unwrap();
        assert_eq!(namespace(id), "amphora-5f0e1a2b");
        assert_eq!(port(id, 1), "rocta5f0e1a2be1");
        assert!(port(id, 9).len() <= 15);
        assert_eq!(mac(id, 1), mac(id, 1));
        assert_ne!(mac(id, 1), mac(id, 2));
        assert!(mac(id, 0).starts_with("fa:16:3e:"));
    }

    #[test]
    fn compute_zones_name_their_hosts() {
        let hosts = Hosts::new(
            HostNs::of("b"),
            vec![
                ("zone-a".into(), HostNs::of("")),
                ("zone-b".into(), HostNs::of("b")),
            ],
        );
        assert_eq!(hosts.of_zone(None).unwrap().0.as_deref(), Some("b"));
        assert_eq!(hosts.of_zone(Some("zone-a")).unwrap().0, None);
        assert_eq!(
            hosts.of_zone(Some("nowhere")).unwrap_err(),
            "Compute availability zone nowhere not found."
        );
        let argv = ["ip".to_string(), "link".to_string()];
        assert_eq!(hosts.of_zone(Some("zone-a")).unwrap().argv(&argv), argv);
        assert_eq!(
            hosts.of_zone(Some("zone-b")).unwrap().argv(&argv)[..4],
            ["ip", "netns", "exec", "b"]
        );
    }

    #[tokio::test]
    async fn vips_come_from_the_subnet_without_its_gateway() {
        let d = tempfile::tempdir().unwrap();
        let net = TenantNet {
            name: "public".into(),
            bridge: "rocta-public".into(),
            cidr: "198.19.7.0/29".parse().unwrap(),
            network_id: "n1".into(),
            subnet_id: "s1".into(),
        };
        let n = NetnsNetwork::new(d.path(), vec![net], Hosts::default()).unwrap();
        let info = n.networks();
        assert_eq!(info[0].subnets[0].gateway_ip.as_deref(), Some("198.19.7.1"));
        assert_eq!(
            info[0].subnets[0].allocation_pools,
            [("198.19.7.2".to_string(), "198.19.7.6".to_string())]
        );
        let req = |addr: Option<&str>| VipRequest {
            lb_id: rocta_model::new_id(),
            subnet_id: Some("s1".into()),
            address: addr.map(str::to_string),
            ..Default::default()
        };
        let v = n.allocate_vip(&req(None)).await.unwrap();
        assert_ne!(v.address, "198.19.7.1");
        assert_eq!(v.network_id, "n1");
        for bad in ["198.19.7.1", "198.19.7.7", "10.0.0.1", v.address.as_str()] {
            assert!(
                matches!(
                    n.allocate_vip(&req(Some(bad))).await,
                    Err(VipError::Invalid(_))
                ),
                "{bad}"
            );
        }
        let by_net = VipRequest {
            network_id: Some("n1".into()),
            subnet_id: None,
            ..req(None)
        };
        assert!(n.allocate_vip(&by_net).await.is_ok());
        let other = VipRequest {
            subnet_id: Some("nope".into()),
            ..req(None)
        };
        assert!(
            matches!(n.allocate_vip(&other).await, Err(VipError::Invalid(m)) if m == "Subnet nope not found.")
        );
        // One subnet per network: no additional VIP can be on the VIP's network.
        let additional = VipRequest {
            additional: vec![AdditionalVipRequest {
                subnet_id: "nope".into(),
                address: None,
            }],
            ..req(None)
        };
        assert!(
            matches!(n.allocate_vip(&additional).await, Err(VipError::Invalid(m)) if m == "Subnet nope not found.")
        );
        n.deallocate_vip(&v).await.unwrap();
        assert_eq!(
            n.allocate_vip(&req(Some(&v.address)))
                .await
                .unwrap()
                .address,
            v.address
        );
    }
}
