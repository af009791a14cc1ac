//! Plugging networks inside the amphora (Octavia's `POST /plug/vip/<ip>` and
//! `POST /plug/network`): the interface the network driver attached is found by its MAC
//! address, named (`eth1` for the VIP), given its addresses and routes, and brought up. Its
//! `arp_notify` is set first, so bringing it up announces its addresses with gratuitous ARP
//! (what Octavia's agent sends after plugging, so a failed-over VIP moves at once).
//!
//! An amphora without interfaces to configure (the loopback placement, where every 127/8
//! address is local) gets a plug-VIP request without a MAC address: it is only validated.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Deserialize;

/// A host route of a subnet.
#[derive(Debug, Clone, Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

/// Octavia's plug-VIP body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PlugVip {
    pub subnet_cidr: Option<String>,
    pub gateway: Option<String>,
    pub mac_address: Option<String>,
    pub mtu: Option<u32>,
    pub vrrp_ip: Option<String>,
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
    /// More VIPs on other subnets of the VIP's network (on the same port).
    #[serde(default)]
    pub additional_vips: Vec<AdditionalVip>,
    /// `ACTIVE_STANDBY`: keepalived holds the VIP (only the amphora's own address is
    /// configured, and HAProxy may bind the VIP it does not hold). Octavia's agent reads this
    /// from its configuration; rocta's amphorae (spares among them) learn it here.
    pub topology: Option<String>,
}

/// An additional VIP of Octavia's plug-VIP body.
#[derive(Debug, Clone, Deserialize)]
pub struct AdditionalVip {
    pub ip_address: String,
    pub subnet_cidr: String,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
}

/// Why a plug failed: the agent's status and its words.
#[derive(Debug, PartialEq)]
pub enum PlugError {
    /// 400: the request does not describe a usable VIP.
    Invalid(String),
    /// 404: no interface with that MAC address (yet); the controller retries.
    NoInterface,
    /// 409: the interface is already plugged as asked (the controller takes it as success).
    Exists(String),
    /// 500: configuring it failed.
    Failed(String),
}

/// What [`plug_vip`] will do, checked before anything is touched.
#[derive(Debug, PartialEq)]
pub struct VipConfig {
    pub mac: String,
    /// keepalived moves the VIP (ACTIVE_STANDBY).
    pub vrrp: bool,
    pub addresses: Vec<String>,
    pub mtu: u32,
    pub routes: Vec<Vec<String>>,
}

impl PlugVip {
    /// Validates the request for VIP `vip`; `None` when there is no interface to configure.
    pub fn config(&self, vip: &str) -> Result<Option<VipConfig>, PlugError> {
        let ip: std::net::IpAddr = vip
            .parse()
            .map_err(|_| PlugError::Invalid(format!("Invalid VIP: {vip}")))?;
        let Some(mac) = &self.mac_address else {
            return Ok(None);
        };
        let std::net::IpAddr::V4(ip) = ip else {
            return Err(PlugError::Invalid(format!(
                "IPv6 VIPs are not supported: {vip}"
            )));
        };
        let mac = mac.to_ascii_lowercase();
        let ok_mac = mac.len() == 17
            && mac
                .split(':')
                .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok_mac {
            return Err(PlugError::Invalid(format!("Invalid MAC address: {mac}")));
        }
        let cidr: Ipv4Net = self
            .subnet_cidr
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|_| {
                PlugError::Invalid(format!("Invalid subnet_cidr: {:?}", self.subnet_cidr))
            })?;
        let inside = |a: Ipv4Addr| cidr.contains(&a);
        if !inside(ip) {
            return Err(PlugError::Invalid(format!("VIP {vip} is not in {cidr}")));
        }
        let len = cidr.prefix_len();
        let mut addresses = Vec::new();
        if let Some(v) = &self.vrrp_ip {
            let a: Ipv4Addr = v
                .parse()
                .ok()
                .filter(|a| inside(*a))
                .ok_or_else(|| PlugError::Invalid(format!("Invalid VRRP IP: {v}")))?;
            if a != ip {
                addresses.push(format!("{a}/{len}"));
            }
        }
        let vrrp = self.topology.as_deref() == Some("ACTIVE_STANDBY");
        if vrrp && addresses.is_empty() {
            return Err(PlugError::Invalid("ACTIVE_STANDBY needs a vrrp_ip".into()));
        }
        if !vrrp {
            addresses.push(format!("{ip}/{len}"));
        }
        let mut routes = Vec::new();
        if let Some(g) = &self.gateway {
            let gw: Ipv4Addr = g
                .parse()
                .ok()
                .filter(|a| inside(*a))
                .ok_or_else(|| PlugError::Invalid(format!("Invalid gateway: {g}")))?;
            routes.push(
                ["default", "via", &gw.to_string()]
                    .map(String::from)
                    .to_vec(),
            );
        }
        for r in &self.host_routes {
            routes.push(host_route(r)?);
        }
        // Additional VIPs: on the interface beside the VIP (SINGLE), or held by keepalived
        // with their subnet routed to the interface (ACTIVE_STANDBY). Their gateways are not
        // used: replies leave by the VIP subnet's default route.
        for a in &self.additional_vips {
            let cidr: Ipv4Net = a.subnet_cidr.parse().map_err(|_| {
                PlugError::Invalid(format!("Invalid subnet_cidr: {}", a.subnet_cidr))
            })?;
            let add: Ipv4Addr = a
                .ip_address
                .parse()
                .ok()
                .filter(|x| cidr.contains(x))
                .ok_or_else(|| {
                    PlugError::Invalid(format!("Invalid additional VIP: {}", a.ip_address))
                })?;
            if vrrp {
                routes.push(vec![cidr.trunc().to_string()]);
            } else {
                addresses.push(format!("{add}/{}", cidr.prefix_len()));
            }
            for r in &a.host_routes {
                routes.push(host_route(r)?);
            }
        }
        let mtu = self.mtu.unwrap_or(1500);
        if !(576..=9216).contains(&mtu) {
            return Err(PlugError::Invalid(format!("Invalid MTU: {mtu}")));
        }
        Ok(Some(VipConfig {
            mac,
            vrrp,
            addresses,
            mtu,
            routes,
        }))
    }
}

/// `ip route` arguments for a subnet's host route.
fn host_route(r: &HostRoute) -> Result<Vec<String>, PlugError> {
    let dest: Ipv4Net = r
        .destination
        .parse()
        .map_err(|_| PlugError::Invalid(format!("Invalid host route: {}", r.destination)))?;
    let hop: Ipv4Addr = r
        .nexthop
        .parse()
        .map_err(|_| PlugError::Invalid(format!("Invalid host route: {}", r.nexthop)))?;
    Ok(vec![dest.to_string(), "via".into(), hop.to_string()])
}

/// A fixed IP of Octavia's plug-network body.
#[derive(Debug, Clone, Deserialize)]
pub struct FixedIp {
    pub ip_address: String,
    pub subnet_cidr: String,
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
}

/// Octavia's plug-network body (a member subnet's port).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PlugNetwork {
    pub mac_address: Option<String>,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    pub mtu: Option<u32>,
}

impl PlugNetwork {
    /// Validates the request; `None` when there is no interface to configure (loopback).
    pub fn config(&self) -> Result<Option<VipConfig>, PlugError> {
        let Some(mac) = &self.mac_address else {
            return Ok(None);
        };
        let mut addresses = Vec::new();
        let mut routes = Vec::new();
        for f in &self.fixed_ips {
            let cidr: Ipv4Net = f.subnet_cidr.parse().map_err(|_| {
                PlugError::Invalid(format!("Invalid subnet_cidr: {}", f.subnet_cidr))
            })?;
            let ip: Ipv4Addr = f
                .ip_address
                .parse()
                .ok()
                .filter(|a| cidr.contains(a))
                .ok_or_else(|| PlugError::Invalid(format!("Invalid IP: {}", f.ip_address)))?;
            addresses.push(format!("{ip}/{}", cidr.prefix_len()));
            for r in &f.host_routes {
                routes.push(host_route(r)?);
            }
        }
        if addresses.is_empty() {
            return Err(PlugError::Invalid("No fixed IP to plug".into()));
        }
        // The MAC and MTU as a plug-VIP checks them.
        let as_vip = PlugVip {
            mac_address: Some(mac.clone()),
            subnet_cidr: self.fixed_ips.first().map(|f| f.subnet_cidr.clone()),
            mtu: self.mtu,
            ..Default::default()
        };
        let first = self.fixed_ips[0].ip_address.clone();
        let checked = as_vip.config(&first)?.ok_or(PlugError::NoInterface)?;
        Ok(Some(VipConfig {
            addresses,
            routes,
            ..checked
        }))
    }
}

/// The interfaces of this namespace: `(name, MAC address, addresses with prefix, up)`.
async fn links() -> Result<Vec<(String, String, Vec<String>, bool)>, PlugError> {
    let out = tokio::process::Command::new("ip")
        .args(["-j", "addr"])
        .output()
        .await
        .map_err(|e| PlugError::Failed(format!("cannot run ip: {e}")))?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Ok(doc
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let addrs = l["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
                .collect();
            let up = l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP"));
            (
                l["ifname"].as_str().unwrap_or_default().to_string(),
                l["address"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                addrs,
                up,
            )
        })
        .collect())
}

async fn ip(args: &[&str]) -> Result<(), PlugError> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| PlugError::Failed(format!("cannot run ip: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PlugError::Failed(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Configures a member network's interface as `cfg` says, keeping the name the network
/// driver gave it; returns its name.
pub async fn plug_network(cfg: &VipConfig) -> Result<String, PlugError> {
    let all = links().await?;
    let Some((name, ..)) = all.into_iter().find(|l| l.1 == cfg.mac) else {
        return Err(PlugError::NoInterface);
    };
    plug_vip(cfg, &name).await
}

/// Configures the VIP interface as `cfg` says and names it `name`; returns its name.
pub async fn plug_vip(cfg: &VipConfig, name: &str) -> Result<String, PlugError> {
    let all = links().await?;
    let Some((current, _, addrs, up)) = all.into_iter().find(|l| l.1 == cfg.mac) else {
        return Err(PlugError::NoInterface);
    };
    if current == name && up && cfg.addresses.iter().all(|a| addrs.contains(a)) {
        return Err(PlugError::Exists(format!(
            "Interface already exists: {name}"
        )));
    }
    if current != name {
        ip(&["link", "set", &current, "down"]).await?;
        ip(&["link", "set", &current, "name", name]).await?;
    }
    if cfg.vrrp {
        // HAProxy of the standby binds the VIP it does not hold yet.
        let nonlocal = "/proc/sys/net/ipv4/ip_nonlocal_bind";
        std::fs::write(nonlocal, "1").map_err(|e| PlugError::Failed(format!("{nonlocal}: {e}")))?;
    }
    // Bringing the interface up then announces every address on it (gratuitous ARP).
    let notify = format!("/proc/sys/net/ipv4/conf/{name}/arp_notify");
    if let Err(e) = std::fs::write(&notify, "1") {
        tracing::warn!(error = %e, "{notify}: gratuitous ARP on plug is off");
    }
    ip(&["link", "set", name, "mtu", &cfg.mtu.to_string()]).await?;
    for a in &cfg.addresses {
        ip(&["addr", "replace", a, "dev", name]).await?;
    }
    if up && current == name {
        // Re-plugged with new addresses: down and up again so they are announced.
        ip(&["link", "set", name, "down"]).await?;
    }
    ip(&["link", "set", name, "up"]).await?;
    for r in &cfg.routes {
        let mut args = vec!["route", "replace"];
        args.extend(r.iter().map(String::as_str));
        args.extend(["dev", name]);
        // A gateway is on the link even outside the subnet (a route without one is
        // on the link by itself, and `onlink` is refused there).
        if r.iter().any(|a| a == "via") {
            args.push("onlink");
        }
        ip(&args).await?;
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> PlugVip {
        PlugVip {
            subnet_cidr: Some("198.19.0.0/24".into()),
            gateway: Some("198.19.0.1".into()),
            mac_address: Some("FA:16:3E:01:02:03".into()),
            mtu: None,
            vrrp_ip: Some("198.19.0.9".into()),
            host_routes: vec![HostRoute {
                destination: "203.0.113.0/24".into(),
                nexthop: "198.19.0.5".into(),
            }],
            additional_vips: vec![],
            topology: None,
        }
    }

    fn additional(ip: &str, cidr: &str) -> AdditionalVip {
        AdditionalVip {
            ip_address: ip.into(),
            subnet_cidr: cidr.into(),
            gateway: Some("198.19.1.1".into()),
            host_routes: vec![HostRoute {
                destination: "192.0.2.0/24".into(),
                nexthop: "198.19.1.254".into(),
            }],
        }
    }

    #[test]
    fn additional_vips_are_addresses_or_routes_to_keepalived() {
        let b = PlugVip {
            additional_vips: vec![additional("198.19.1.7", "198.19.1.0/24")],
            ..body()
        };
        let c = b.config("198.19.0.7").unwrap().unwrap();
        assert_eq!(
            c.addresses,
            ["198.19.0.9/24", "198.19.0.7/24", "198.19.1.7/24"]
        );
        assert_eq!(c.routes[2], ["192.0.2.0/24", "via", "198.19.1.254"]);
        // ACTIVE_STANDBY: keepalived adds it; its subnet is routed to the interface.
        let vrrp = PlugVip {
            topology: Some("ACTIVE_STANDBY".into()),
            ..b
        };
        let c = vrrp.config("198.19.0.7").unwrap().unwrap();
        assert_eq!(c.addresses, ["198.19.0.9/24"]);
        assert_eq!(c.routes[2], ["198.19.1.0/24"]);
        for bad in [
            additional("198.19.2.7", "198.19.1.0/24"),
            additional("x", "198.19.1.0/24"),
            additional("198.19.1.7", "nope"),
        ] {
            let b = PlugVip {
                additional_vips: vec![bad],
                ..body()
            };
            assert!(matches!(b.config("198.19.0.7"), Err(PlugError::Invalid(_))));
        }
    }

    #[test]
    fn a_vip_plug_is_checked_before_anything_is_touched() {
        let c = body().config("198.19.0.7").unwrap().unwrap();
        assert_eq!(c.mac, "fa:16:3e:01:02:03");
        assert_eq!(c.addresses, ["198.19.0.9/24", "198.19.0.7/24"]);
        assert_eq!(c.routes[0], ["default", "via", "198.19.0.1"]);
        assert_eq!(c.routes[1], ["203.0.113.0/24", "via", "198.19.0.5"]);
        assert_eq!(c.mtu, 1500);
        let vrrp = PlugVip {
            topology: Some("ACTIVE_STANDBY".into()),
            ..body()
        };
        let c2 = vrrp.config("198.19.0.7").unwrap().unwrap();
        assert!(c2.vrrp);
        assert_eq!(c2.addresses, ["198.19.0.9/24"], "keepalived holds the VIP");
        // No MAC: nothing to configure (loopback).
        assert_eq!(PlugVip::default().config("127.10.0.5").unwrap(), None);
        for (vip, b) in [
            ("nope", body()),
            ("198.20.0.7", body()),
            (
                "198.19.0.7",
                PlugVip {
                    mac_address: Some("zz".into()),
                    ..body()
                },
            ),
            (
                "198.19.0.7",
                PlugVip {
                    vrrp_ip: Some("10.0.0.1".into()),
                    ..body()
                },
            ),
            (
                "198.19.0.7",
                PlugVip {
                    gateway: Some("x".into()),
                    ..body()
                },
            ),
            (
                "198.19.0.7",
                PlugVip {
                    subnet_cidr: None,
                    ..body()
                },
            ),
            (
                "198.19.0.7",
                PlugVip {
                    mtu: Some(70000),
                    ..body()
                },
            ),
        ] {
            assert!(
                matches!(b.config(vip), Err(PlugError::Invalid(_))),
                "{vip} {b:?}"
            );
        }
    }
}
