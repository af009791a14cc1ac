//! The `neutron` network driver (Octavia's `allowed_address_pairs_driver`): a load balancer's
//! VIP is a Neutron port (`octavia-lb-<lb id>`, admin down, device owner `Octavia`) holding
//! the address; each amphora gets a port of its own on the VIP subnet
//! (`octavia-lb-vrrp-<amphora id>`) with the VIP (and each additional VIP, more fixed IPs of
//! the VIP port) as allowed address pairs and the load balancer's security group
//! (`lb-<lb id>`, `security.rs`: a rule per listener port and allowed CIDR, VRRP and the
//! HAProxy peers' port between the amphorae), attached to its Nova server through
//! `os-interface`; member subnets are reached through more ports
//! (`octavia-amp-member-<amphora id>-<subnet id>`), attached the same way.
//!
//! Everything is found by name before it is made, so a step run again finds what the first
//! run made, and releases find what was never recorded.

use reqwest::Method;
use rocta_model::{Amphora, Id, LbTree};
use serde_json::{json, Value};

use super::nova::{deleted, fault_message, os_err};
use super::{Endpoint, OsError, Session};
use crate::*;

mod security;

/// Nova's API microversion for `os-interface` (as the compute driver's).
const MICROVERSION: &str = "2.15";

pub struct NeutronNetwork {
    session: std::sync::Arc<Session>,
    neutron: Endpoint,
    nova: Endpoint,
}

fn vip_port_name(lb: &str) -> String {
    format!("octavia-lb-{lb}")
}

fn vrrp_port_name(amp: Id) -> String {
    format!("octavia-lb-vrrp-{amp}")
}

fn member_port_name(amp: Id, subnet: &str) -> String {
    format!("octavia-amp-member-{amp}-{subnet}")
}

/// A Neutron refusal of a VIP as the API answers it (Octavia passes Neutron's code and message).
fn vip_refused(e: OsError) -> VipError {
    match e {
        OsError::Unavailable(m) => VipError::Driver(DriverError::transient("allocate vip", m)),
        OsError::Status { status: 409, .. } => VipError::Conflict(fault_message(&e)),
        OsError::Status { status, .. } if (400..500).contains(&status) => {
            VipError::Invalid(fault_message(&e))
        }
        e => VipError::Driver(DriverError::fatal("allocate vip", e.to_string())),
    }
}

impl NeutronNetwork {
    pub fn new(session: std::sync::Arc<Session>, neutron: Endpoint, nova: Endpoint) -> Self {
        NeutronNetwork {
            session,
            neutron,
            nova,
        }
    }

    async fn neutron(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, OsError> {
        let base = self.session.endpoint(&self.neutron).await?;
        Ok(self
            .session
            .call("Neutron", method, &format!("{base}/v2.0{path}"), body)
            .await?
            .body)
    }

    async fn nova(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, OsError> {
        let base = self.session.endpoint(&self.nova).await?;
        Ok(self
            .session
            .call_with(
                "Nova",
                method,
                &format!("{base}{path}"),
                body,
                &[("X-OpenStack-Nova-API-Version", MICROVERSION)],
            )
            .await?
            .body)
    }

    /// `GET path` → `body[key]`, `None` on a 404.
    async fn get(&self, path: &str, key: &str) -> Result<Option<Value>, OsError> {
        match self.neutron(Method::GET, path, None).await {
            Ok(b) => Ok(Some(b[key].clone())),
            Err(OsError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn ports_named(&self, name: &str) -> Result<Vec<Value>, OsError> {
        let b = self
            .neutron(Method::GET, &format!("/ports?name={name}"), None)
            .await?;
        Ok(b["ports"].as_array().cloned().unwrap_or_default())
    }

    async fn delete_ports_named(&self, name: &str, op: &'static str) -> DriverResult<()> {
        for p in self.ports_named(name).await.map_err(os_err(op))? {
            self.delete_port(p["id"].as_str().unwrap_or_default(), op)
                .await?;
        }
        Ok(())
    }

    /// Deletes port `id` (gone already: done).
    async fn delete_port(&self, id: &str, op: &'static str) -> DriverResult<()> {
        deleted(
            op,
            self.neutron(Method::DELETE, &format!("/ports/{id}"), None)
                .await,
        )
    }

    /// Detaches from the amphora's server (`os-interface`) and deletes each of its ports whose
    /// name `which` picks.
    async fn detach_ports(
        &self,
        amphora: &Amphora,
        op: &'static str,
        which: impl Fn(&str) -> bool + Send + Sync,
    ) -> DriverResult<()> {
        let Some(server) = &amphora.compute_id else {
            return Ok(());
        };
        let b = self
            .neutron(Method::GET, &format!("/ports?device_id={server}"), None)
            .await
            .map_err(os_err(op))?;
        for p in b["ports"].as_array().cloned().unwrap_or_default() {
            if !which(p["name"].as_str().unwrap_or_default()) {
                continue;
            }
            let id = p["id"].as_str().unwrap_or_default();
            deleted(
                op,
                self.nova(
                    Method::DELETE,
                    &format!("/servers/{server}/os-interface/{id}"),
                    None,
                )
                .await,
            )?;
            self.delete_port(id, op).await?;
        }
        Ok(())
    }

    /// The subnet, `None` when Neutron has no such subnet.
    async fn subnet(&self, id: &str) -> Result<Option<Value>, OsError> {
        self.get(&format!("/subnets/{id}"), "subnet").await
    }

    /// Port `port` attached to server `server` (attached unless it already is).
    async fn attach(&self, server: &str, port: &str, op: &'static str) -> DriverResult<()> {
        let b = self
            .nova(
                Method::GET,
                &format!("/servers/{server}/os-interface"),
                None,
            )
            .await
            .map_err(os_err(op))?;
        let attached = b["interfaceAttachments"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["port_id"] == port));
        if attached {
            return Ok(());
        }
        self.nova(
            Method::POST,
            &format!("/servers/{server}/os-interface"),
            Some(&json!({"interfaceAttachment": {"port_id": port}})),
        )
        .await
        .map_err(|e| match e {
            OsError::Unavailable(m) => DriverError::transient(op, m),
            // The server is still building or being changed: retried by the flow.
            e @ OsError::Status { status: 409, .. } => {
                DriverError::transient(op, fault_message(&e))
            }
            e => DriverError::fatal(op, fault_message(&e)),
        })?;
        Ok(())
    }

    /// The port named `name` on `subnet` (made unless it exists), attached to the amphora.
    async fn amphora_port(
        &self,
        amphora: &Amphora,
        name: &str,
        subnet: &Value,
        extra: Value,
        op: &'static str,
    ) -> DriverResult<Value> {
        let server = amphora.compute_id.clone().ok_or_else(|| {
            DriverError::fatal(op, format!("amphora {} has no server", amphora.id))
        })?;
        let port = match self
            .ports_named(name)
            .await
            .map_err(os_err(op))?
            .into_iter()
            .next()
        {
            Some(p) => p,
            None => {
                let mut port = json!({
                    "name": name,
                    "network_id": subnet["network_id"],
                    "fixed_ips": [{"subnet_id": subnet["id"]}],
                    "admin_state_up": true,
                });
                if let (Some(p), Some(e)) = (port.as_object_mut(), extra.as_object()) {
                    p.extend(e.clone());
                }
                self.neutron(Method::POST, "/ports", Some(&json!({ "port": port })))
                    .await
                    .map_err(|e| match e {
                        OsError::Unavailable(m) => DriverError::transient(op, m),
                        e => DriverError::fatal(op, fault_message(&e)),
                    })?["port"]
                    .clone()
            }
        };
        let id = port["id"].as_str().unwrap_or_default().to_string();
        self.attach(&server, &id, op).await?;
        Ok(port)
    }

    async fn mtu(&self, network: &str, op: &'static str) -> DriverResult<u32> {
        let n = self
            .get(&format!("/networks/{network}"), "network")
            .await
            .map_err(os_err(op))?;
        Ok(n.and_then(|n| n["mtu"].as_u64()).unwrap_or(1500) as u32)
    }
}

/// The VIP a VIP port holds: its address on the asked subnet (or the first that is not an
/// additional VIP's), and one on each additional VIP's subnet.
fn vip_of_port(p: &Value, req: &VipRequest) -> Vip {
    let fixed: Vec<(String, String)> = p["fixed_ips"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("subnet_id"), s("ip_address"))
        })
        .collect();
    let extra = |s: &str| req.additional.iter().any(|a| a.subnet_id == s);
    let primary = fixed
        .iter()
        .find(|(s, _)| match &req.subnet_id {
            Some(want) => s == want,
            None => !extra(s),
        })
        .or(fixed.first())
        .cloned()
        .unwrap_or_default();
    Vip {
        address: primary.1,
        port_id: p["id"].as_str().unwrap_or_default().to_string(),
        subnet_id: primary.0,
        network_id: p["network_id"].as_str().unwrap_or_default().to_string(),
        additional: req
            .additional
            .iter()
            .filter_map(|a| {
                let (s, ip) = fixed.iter().find(|(s, _)| *s == a.subnet_id)?;
                Some(AdditionalVipAddress {
                    subnet_id: s.clone(),
                    address: ip.clone(),
                })
            })
            .collect(),
    }
}

fn first_ip(port: &Value) -> String {
    port["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[async_trait::async_trait]
impl Network for NeutronNetwork {
    async fn allocate_vip(&self, req: &VipRequest) -> Result<Vip, VipError> {
        let vip_of = |p: &Value| vip_of_port(p, req);
        // A port of the user's: the VIP is its address.
        if let Some(id) = &req.port_id {
            return match self
                .get(&format!("/ports/{id}"), "port")
                .await
                .map_err(vip_refused)?
            {
                Some(p) if p["fixed_ips"][0].is_object() => {
                    let vip = vip_of(&p);
                    match req
                        .additional
                        .iter()
                        .find(|a| !vip.additional.iter().any(|v| v.subnet_id == a.subnet_id))
                    {
                        Some(a) => Err(VipError::Invalid(format!(
                            "Port {id} has no fixed IP on subnet {}.",
                            a.subnet_id
                        ))),
                        None => Ok(vip),
                    }
                }
                Some(_) => Err(VipError::Invalid(format!("Port {id} has no fixed IP."))),
                None => Err(VipError::Invalid(format!("Port {id} not found."))),
            };
        }
        // The user's security groups and QoS policy must exist (Octavia's 400s).
        for sg in &req.sg_ids {
            if self
                .get(&format!("/security-groups/{sg}"), "security_group")
                .await
                .map_err(vip_refused)?
                .is_none()
            {
                return Err(VipError::Invalid(format!(
                    "Invalid input for field/attribute vip_sg_ids. Value: '{sg}'. Security group {sg} not found."
                )));
            }
        }
        if let Some(q) = &req.qos_policy_id {
            let found = self
                .get(&format!("/qos/policies/{q}"), "policy")
                .await
                .map_err(vip_refused)?;
            if found.is_none() {
                return Err(VipError::Invalid(format!(
                    "Invalid input for field/attribute vip_qos_policy_id. Value: '{q}'. QoS policy {q} not found."
                )));
            }
        }
        let name = vip_port_name(&req.lb_id.to_string());
        if let Some(p) = self.ports_named(&name).await.map_err(vip_refused)?.first() {
            return Ok(vip_of(p));
        }
        let subnet = match (&req.subnet_id, &req.network_id) {
            (Some(s), _) => self
                .subnet(s)
                .await
                .map_err(vip_refused)?
                .ok_or_else(|| VipError::Invalid(format!("Subnet {s} not found.")))?,
            (None, Some(n)) => {
                let net = self
                    .get(&format!("/networks/{n}"), "network")
                    .await
                    .map_err(vip_refused)?
                    .ok_or_else(|| VipError::Invalid(format!("Network {n} not found.")))?;
                // Its first subnet, an IPv4 one if any (Octavia's choice when only the
                // network is given).
                let mut subnets = Vec::new();
                for id in net["subnets"].as_array().cloned().unwrap_or_default() {
                    if let Some(s) = self
                        .subnet(id.as_str().unwrap_or_default())
                        .await
                        .map_err(vip_refused)?
                    {
                        subnets.push(s);
                    }
                }
                subnets.sort_by_key(|s| s["ip_version"].as_u64() != Some(4));
                subnets
                    .into_iter()
                    .next()
                    .ok_or_else(|| VipError::Invalid(format!("Network {n} has no subnet.")))?
            }
            (None, None) => {
                return Err(VipError::Invalid("No VIP subnet or network given.".into()))
            }
        };
        let mut fixed = json!({"subnet_id": subnet["id"]});
        if let Some(a) = &req.address {
            fixed["ip_address"] = json!(a);
        }
        let mut fixed_ips = vec![fixed];
        // Additional VIPs: more fixed IPs of the port, on other subnets of its network.
        for a in &req.additional {
            // The VIP's subnet found from its network may be one of them (Octavia's check,
            // once the VIP's subnet is known).
            if subnet["id"] == a.subnet_id.as_str() {
                return Err(VipError::Invalid(
                    "Duplicate VIP subnet(s) specified. Only one IP can be bound per subnet."
                        .into(),
                ));
            }
            let extra = self
                .subnet(&a.subnet_id)
                .await
                .map_err(vip_refused)?
                .ok_or_else(|| VipError::Invalid(format!("Subnet {} not found.", a.subnet_id)))?;
            if extra["network_id"] != subnet["network_id"] {
                return Err(VipError::Invalid(
                    "All VIP subnets must belong to the same network.".into(),
                ));
            }
            // The amphora's data plane serves one address family per load balancer.
            if extra["ip_version"] != subnet["ip_version"] {
                return Err(VipError::Invalid(format!(
                    "Subnet {} is not of the VIP's IP version: additional VIPs of another IP version are not supported.",
                    a.subnet_id
                )));
            }
            let mut f = json!({"subnet_id": a.subnet_id});
            if let Some(ip) = &a.address {
                f["ip_address"] = json!(ip);
            }
            fixed_ips.push(f);
        }
        let mut port = json!({
            "name": name,
            "network_id": subnet["network_id"],
            "fixed_ips": fixed_ips,
            "admin_state_up": false,
            "device_owner": "Octavia",
            "device_id": format!("lb-{}", req.lb_id),
        });
        if let Some(p) = &req.project_id {
            port["project_id"] = json!(p);
        }
        if let Some(q) = &req.qos_policy_id {
            port["qos_policy_id"] = json!(q);
        }
        let b = self
            .neutron(Method::POST, "/ports", Some(&json!({ "port": port })))
            .await
            .map_err(vip_refused)?;
        crate::fault::crash_point("allocate_vip");
        Ok(vip_of(&b["port"]))
    }

    async fn deallocate_vip(&self, vip: &Vip) -> DriverResult<()> {
        let op = "deallocate vip";
        let port = self
            .get(&format!("/ports/{}", vip.port_id), "port")
            .await
            .map_err(os_err(op))?;
        // Only the ports this driver made (a user's `vip_port_id` stays theirs).
        let Some(lb) = port
            .as_ref()
            .and_then(|p| p["name"].as_str()?.strip_prefix("octavia-lb-"))
            .filter(|rest| !rest.starts_with("vrrp-"))
            .map(String::from)
        else {
            return Ok(());
        };
        self.delete_ports_named(&vip_port_name(&lb), op).await?;
        self.delete_security_group(&lb, op).await
    }

    async fn deallocate_vips_of(&self, lb_id: Id) -> DriverResult<()> {
        let op = "deallocate vips";
        self.delete_ports_named(&vip_port_name(&lb_id.to_string()), op)
            .await?;
        self.delete_security_group(&lb_id.to_string(), op).await
    }

    async fn plug_vip(&self, amphora: &Amphora, vip: &Vip) -> DriverResult<VipPlug> {
        let op = "plug vip";
        let lb = amphora
            .loadbalancer_id
            .ok_or_else(|| DriverError::fatal(op, "the amphora has no load balancer"))?;
        let subnet = self
            .subnet(&vip.subnet_id)
            .await
            .map_err(os_err(op))?
            .ok_or_else(|| {
                DriverError::fatal(op, format!("Subnet {} not found.", vip.subnet_id))
            })?;
        let sg = self
            .security_group(&lb.to_string())
            .await
            .map_err(os_err(op))?;
        let pairs: Vec<Value> = std::iter::once(&vip.address)
            .chain(vip.additional.iter().map(|a| &a.address))
            .map(|a| json!({ "ip_address": a }))
            .collect();
        let extra = json!({
            "allowed_address_pairs": pairs,
            "security_groups": [sg],
        });
        let port = self
            .amphora_port(amphora, &vrrp_port_name(amphora.id), &subnet, extra, op)
            .await?;
        let mut additional = Vec::new();
        for a in &vip.additional {
            let s = self
                .subnet(&a.subnet_id)
                .await
                .map_err(os_err(op))?
                .ok_or_else(|| {
                    DriverError::fatal(op, format!("Subnet {} not found.", a.subnet_id))
                })?;
            additional.push(AdditionalVipPlug {
                ip_address: a.address.clone(),
                subnet_cidr: s["cidr"].as_str().unwrap_or_default().to_string(),
                gateway: s["gateway_ip"].as_str().map(String::from),
                host_routes: serde_json::from_value(s["host_routes"].clone()).unwrap_or_default(),
            });
        }
        Ok(VipPlug {
            vrrp_ip: first_ip(&port),
            ha_ip: vip.address.clone(),
            vrrp_port_id: port["id"].as_str().unwrap_or_default().to_string(),
            ha_port_id: vip.port_id.clone(),
            mac_address: port["mac_address"].as_str().map(String::from),
            subnet_cidr: subnet["cidr"].as_str().map(String::from),
            gateway: subnet["gateway_ip"].as_str().map(String::from),
            mtu: Some(self.mtu(&vip.network_id, op).await?),
            additional,
        })
    }

    async fn unplug_vip(&self, amphora: &Amphora, _vip: &Vip) -> DriverResult<()> {
        let op = "unplug vip";
        let name = vrrp_port_name(amphora.id);
        self.detach_ports(amphora, op, |n| n == name).await?;
        // One its server no longer holds (a boot that failed after it was made).
        self.delete_ports_named(&name, op).await
    }

    fn supports_active_standby(&self) -> bool {
        true
    }

    /// Whether Neutron has network `id` (and the service may see it).
    async fn has_network(&self, id: &str) -> bool {
        matches!(
            self.get(&format!("/networks/{id}"), "network").await,
            Ok(Some(_))
        )
    }

    async fn plug_network(
        &self,
        amphora: &Amphora,
        subnet_id: &str,
    ) -> DriverResult<Option<NetworkPlug>> {
        let op = "plug network";
        let subnet = self
            .subnet(subnet_id)
            .await
            .map_err(os_err(op))?
            .ok_or_else(|| DriverError::fatal(op, format!("Subnet {subnet_id} not found.")))?;
        let port = self
            .amphora_port(
                amphora,
                &member_port_name(amphora.id, subnet_id),
                &subnet,
                json!({}),
                op,
            )
            .await?;
        Ok(Some(NetworkPlug {
            mac_address: port["mac_address"].as_str().unwrap_or_default().to_string(),
            ip_address: first_ip(&port),
            subnet_cidr: subnet["cidr"].as_str().unwrap_or_default().to_string(),
            mtu: self
                .mtu(subnet["network_id"].as_str().unwrap_or_default(), op)
                .await?,
        }))
    }

    async fn unplug_networks(&self, amphora: &Amphora, keep: &[String]) -> DriverResult<()> {
        let prefix = format!("octavia-amp-member-{}-", amphora.id);
        self.detach_ports(amphora, "unplug network", |name| {
            name.strip_prefix(&prefix)
                .is_some_and(|subnet| !keep.iter().any(|k| k == subnet))
        })
        .await
    }

    async fn update_vip(&self, tree: &LbTree) -> DriverResult<()> {
        self.sync_security_group(tree).await
    }

    async fn release_amphora(&self, amphora: &Amphora) -> DriverResult<()> {
        let op = "release amphora ports";
        // Called before its server is deleted: the ports still name it as their device.
        let member = format!("octavia-amp-member-{}-", amphora.id);
        let vrrp = vrrp_port_name(amphora.id);
        self.detach_ports(amphora, op, |name| {
            name.starts_with(&member) || name == vrrp
        })
        .await?;
        self.delete_ports_named(&vrrp_port_name(amphora.id), op)
            .await
    }
}
