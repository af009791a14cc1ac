//! The `nova` compute driver (Octavia's `compute_nova_driver`): an amphora is a Nova server
//! named `amphora-<id>`, booted from the newest active Glance image tagged
//! `[controller_worker] amp_image_tag`, on a management port made first in Neutron
//! (`octavia-amphora-mgmt-<id>`, on the load balancer's availability zone's management network
//! or the first of `amp_boot_network_list`), with Octavia's config drive: its
//! `/etc/octavia/amphora-agent.conf`, `/etc/octavia/certs/server.pem` and
//! `/etc/octavia/certs/client_ca.pem` (or, with `user_data_config_drive`, the same files as
//! cloud-init `write_files` user data).
//!
//! Everything is found by name before it is made, so a flow step run again (a worker killed
//! mid-boot) finds the server and port of the first run, and delete (by amphora id) finds them
//! even when their ids were never recorded. A boot is waited for `amp_active_retries` ×
//! `amp_active_wait_sec`; a server that goes `ERROR` ends the step at once with Nova's fault.

use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use rocta_model::Id;
use rocta_proto::agent_conf::{AgentConf, CLIENT_CA_PATH, CONFIG_PATH, SERVER_CERT_PATH};
use serde_json::{json, Value};

use super::{Endpoint, OsError, Session};
use crate::local::HeartbeatTarget;
use crate::*;

/// Nova's API microversion rocta speaks (Octavia's: personality files are in it).
const MICROVERSION: &str = "2.15";

/// How amphorae are built: `[controller_worker]`'s `amp_*` options and where the services are.
#[derive(Debug, Clone)]
pub struct NovaSettings {
    pub nova: Endpoint,
    pub glance: Endpoint,
    pub neutron: Endpoint,
    pub image_tag: String,
    /// Empty: images of any owner.
    pub image_owner_id: String,
    pub flavor_id: String,
    /// Empty: no key pair.
    pub ssh_key_name: String,
    /// Security groups of the management port; empty: the project's default.
    pub secgroups: Vec<String>,
    /// The first is the management network.
    pub boot_networks: Vec<String>,
    pub active_retries: u32,
    pub active_wait: Duration,
    pub user_data_config_drive: bool,
    /// `[nova] availability_zone`: where servers boot when their load balancer's zone names
    /// none; empty: Nova's choice.
    pub availability_zone: String,
    /// What the agents are told: health managers, heartbeat interval and key, log shipping.
    pub heartbeat: HeartbeatTarget,
    /// `[controller_worker] loadbalancer_topology` (the agent conf's).
    pub topology: String,
    /// `[nova] anti_affinity_policy` when `enable_anti_affinity`: the two amphorae of an
    /// ACTIVE_STANDBY load balancer are booted in a server group `octavia-lb-<lb id>` with it.
    pub anti_affinity: Option<String>,
}

pub struct NovaCompute {
    session: std::sync::Arc<Session>,
    s: NovaSettings,
}

/// An OpenStack error as a driver error: transient when the service could not be reached.
pub(crate) fn os_err(op: &'static str) -> impl Fn(OsError) -> DriverError {
    move |e| match e {
        OsError::Unavailable(m) => DriverError::transient(op, m),
        other => DriverError::fatal(op, other.to_string()),
    }
}

/// A DELETE's answer: done, or already gone (404); anything else fails step `op`.
pub(crate) fn deleted(op: &'static str, r: Result<Value, OsError>) -> DriverResult<()> {
    match r {
        Ok(_) | Err(OsError::Status { status: 404, .. }) => Ok(()),
        Err(e) => Err(os_err(op)(e)),
    }
}

/// The message of a Nova/Neutron/Glance error body (`{"badRequest": {"message": ...}}`,
/// `{"NeutronError": {"message": ...}}`), else the whole error.
pub(crate) fn fault_message(e: &OsError) -> String {
    if let OsError::Status { body, .. } = e {
        if let Some(m) = body
            .as_object()
            .and_then(|o| o.values().find_map(|v| v.get("message")?.as_str()))
        {
            return m.to_string();
        }
    }
    e.to_string()
}

fn server_name(amp: Id) -> String {
    format!("amphora-{amp}")
}

fn port_name(amp: Id) -> String {
    format!("octavia-amphora-mgmt-{amp}")
}

impl NovaCompute {
    pub fn new(session: std::sync::Arc<Session>, settings: NovaSettings) -> Self {
        NovaCompute {
            session,
            s: settings,
        }
    }

    async fn nova(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, OsError> {
        let base = self.session.endpoint(&self.s.nova).await?;
        let url = format!("{base}{path}");
        Ok(self
            .session
            .call_with(
                "Nova",
                method,
                &url,
                body,
                &[("X-OpenStack-Nova-API-Version", MICROVERSION)],
            )
            .await?
            .body)
    }

    async fn neutron(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, OsError> {
        let base = self.session.endpoint(&self.s.neutron).await?;
        let url = format!("{base}/v2.0{path}");
        Ok(self.session.call("Neutron", method, &url, body).await?.body)
    }

    /// The servers named `amphora-<amp>` (Nova filters names by regular expression).
    async fn servers_of(&self, amp: Id) -> Result<Vec<Value>, OsError> {
        let b = self
            .nova(
                Method::GET,
                &format!("/servers/detail?name=%5E{}%24", server_name(amp)),
                None,
            )
            .await?;
        Ok(b["servers"].as_array().cloned().unwrap_or_default())
    }

    /// The management ports named for `amp`.
    async fn ports_of(&self, amp: Id) -> Result<Vec<Value>, OsError> {
        let b = self
            .neutron(
                Method::GET,
                &format!("/ports?name={}", port_name(amp)),
                None,
            )
            .await?;
        Ok(b["ports"].as_array().cloned().unwrap_or_default())
    }

    /// The pair's server group (made unless one of its name exists); its id.
    async fn server_group(&self, lb: Id, policy: &str) -> DriverResult<String> {
        let op = "create server group";
        let name = format!("octavia-lb-{lb}");
        let b = self
            .nova(Method::GET, "/os-server-groups", None)
            .await
            .map_err(os_err(op))?;
        if let Some(id) = b["server_groups"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["name"] == name.as_str()))
            .and_then(|g| g["id"].as_str())
        {
            return Ok(id.to_string());
        }
        let b = self
            .nova(
                Method::POST,
                "/os-server-groups",
                Some(&json!({"server_group": {"name": name, "policies": [policy]}})),
            )
            .await
            .map_err(|e| match e {
                OsError::Unavailable(m) => DriverError::transient(op, m),
                e => DriverError::fatal(op, fault_message(&e)),
            })?;
        Ok(b["server_group"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The pair groups server `server` is a member of.
    async fn groups_of(&self, server: &str) -> Result<Vec<String>, OsError> {
        let b = self.nova(Method::GET, "/os-server-groups", None).await?;
        Ok(b["server_groups"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|g| {
                g["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("octavia-lb-"))
            })
            .filter(|g| {
                g["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m == server))
            })
            .filter_map(|g| g["id"].as_str().map(String::from))
            .collect())
    }

    /// The newest active image with `tag` (Octavia's `_extract_amp_image_id_by_tag`).
    async fn image(&self, tag: &str) -> DriverResult<String> {
        let op = "find amphora image";
        let base = self
            .session
            .endpoint(&self.s.glance)
            .await
            .map_err(os_err(op))?;
        let mut url = format!(
            "{base}/v2/images?tag={}&status=active&sort=created_at:desc&limit=2",
            tag
        );
        if !self.s.image_owner_id.is_empty() {
            url += &format!("&owner={}", self.s.image_owner_id);
        }
        let b = self
            .session
            .call("Glance", Method::GET, &url, None)
            .await
            .map_err(os_err(op))?
            .body;
        let images = b["images"].as_array().cloned().unwrap_or_default();
        if images.len() > 1 {
            tracing::warn!(
                tag,
                "a single Glance image should be tagged with the amphora tag, but at least two \
                 were found; using the newest"
            );
        }
        images
            .first()
            .and_then(|i| i["id"].as_str())
            .map(String::from)
            .ok_or_else(|| {
                DriverError::fatal(op, format!("No Glance images are tagged with {tag} tag."))
            })
    }

    /// The amphora's management port (made unless one of its name exists).
    async fn management_port(&self, amp: Id, network: &str) -> DriverResult<Value> {
        let op = "create management port";
        if let Some(p) = self
            .ports_of(amp)
            .await
            .map_err(os_err(op))?
            .into_iter()
            .next()
        {
            return Ok(p);
        }
        let mut port = json!({"name": port_name(amp), "network_id": network,
                              "admin_state_up": true});
        if !self.s.secgroups.is_empty() {
            port["security_groups"] = json!(self.s.secgroups);
        }
        let b = self
            .neutron(Method::POST, "/ports", Some(&json!({ "port": port })))
            .await
            .map_err(|e| match e {
                OsError::Unavailable(m) => DriverError::transient(op, m),
                e => DriverError::fatal(op, fault_message(&e)),
            })?;
        Ok(b["port"].clone())
    }

    /// The files of the config drive, as Octavia's amphora image expects them.
    fn config_drive(&self, amp: Id, boot: &Boot) -> Vec<(&'static str, String)> {
        vec![
            (CONFIG_PATH, self.agent_conf(amp)),
            (SERVER_CERT_PATH, boot.server_pem.clone()),
            (CLIENT_CA_PATH, boot.client_ca_pem.clone()),
        ]
    }

    fn agent_conf(&self, amp: Id) -> String {
        AgentConf {
            amphora_id: amp.to_string(),
            controller_ip_port_list: self.s.heartbeat.controllers.clone(),
            heartbeat_interval: self.s.heartbeat.interval,
            heartbeat_key: self.s.heartbeat.key.clone(),
            logs: self.s.heartbeat.logs.clone(),
            topology: self.s.topology.clone(),
            ..AgentConf::default()
        }
        .render()
    }

    /// Waits until server `id` is ACTIVE; its fault when it goes ERROR, a timeout after
    /// `active_retries` × `active_wait`.
    async fn wait_active(&self, id: &str) -> DriverResult<()> {
        let op = "wait for amphora server";
        for attempt in 0..self.s.active_retries {
            if attempt > 0 {
                tokio::time::sleep(self.s.active_wait).await;
            }
            let b = match self
                .nova(Method::GET, &format!("/servers/{id}"), None)
                .await
            {
                Ok(b) => b,
                Err(OsError::Status { status: 404, .. }) => {
                    return Err(DriverError::fatal(
                        op,
                        format!("Failed to build compute instance due to: server {id} was deleted"),
                    ))
                }
                Err(OsError::Unavailable(m)) => {
                    tracing::warn!(server = id, error = %m, "Nova unavailable while waiting");
                    continue;
                }
                Err(e) => return Err(DriverError::fatal(op, e.to_string())),
            };
            match b["server"]["status"].as_str() {
                Some("ACTIVE") => return Ok(()),
                Some("ERROR") => {
                    let fault = b["server"]["fault"]["message"]
                        .as_str()
                        .unwrap_or("the server went to ERROR");
                    return Err(DriverError::fatal(
                        op,
                        format!("Failed to build compute instance due to: {fault}"),
                    ));
                }
                _ => {}
            }
        }
        Err(DriverError::fatal(
            op,
            format!("Waiting for compute id {id} to go active timeout."),
        ))
    }
}

/// `#cloud-config` `write_files` with the config drive's files (Octavia's
/// `user_data_config_drive.template`), then the agent restarted.
fn cloud_config(files: &[(&str, String)]) -> String {
    let mut out = String::from("#cloud-config\n# vim: syntax=yaml\nwrite_files:\n");
    for (path, content) in files {
        out += &format!("-   path: {path}\n    content: |\n");
        for line in content.lines() {
            out += &format!("        {line}\n");
        }
    }
    out + "runcmd:\n-   service amphora-agent restart\n"
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[async_trait::async_trait]
impl Compute for NovaCompute {
    async fn create(&self, amp: Id, boot: &Boot) -> DriverResult<Instance> {
        let op = "create amphora server";
        let network = boot
            .management_network
            .clone()
            .or_else(|| self.s.boot_networks.first().cloned())
            .ok_or_else(|| DriverError::fatal(op, "no management network to boot on"))?;
        let existing = self.servers_of(amp).await.map_err(os_err(op))?;
        // The image first: a missing one leaves nothing to clean up.
        let (booted, image) = match existing.first() {
            Some(s) => (s["id"].as_str().map(String::from), String::new()),
            None => (
                None,
                self.image(boot.image_tag.as_deref().unwrap_or(&self.s.image_tag))
                    .await?,
            ),
        };
        let port = self.management_port(amp, &network).await?;
        let ip = port["fixed_ips"][0]["ip_address"]
            .as_str()
            .ok_or_else(|| {
                DriverError::fatal(op, format!("management port without an address: {port}"))
            })?
            .to_string();
        let port_id = port["id"].as_str().unwrap_or_default().to_string();
        let id = match booted {
            Some(id) => id,
            None => {
                let files = self.config_drive(amp, boot);
                let mut server = json!({
                    "name": server_name(amp),
                    "imageRef": image,
                    "flavorRef": boot.compute_flavor.clone().unwrap_or_else(|| self.s.flavor_id.clone()),
                    "networks": [{"port": port_id}],
                    "config_drive": true,
                });
                if self.s.user_data_config_drive {
                    server["user_data"] = json!(b64(&cloud_config(&files)));
                } else {
                    server["personality"] = files
                        .iter()
                        .map(|(path, content)| json!({"path": path, "contents": b64(content)}))
                        .collect();
                }
                if !self.s.ssh_key_name.is_empty() {
                    server["key_name"] = json!(self.s.ssh_key_name);
                }
                let zone = boot
                    .zone
                    .clone()
                    .unwrap_or_else(|| self.s.availability_zone.clone());
                if !zone.is_empty() {
                    server["availability_zone"] = json!(zone);
                }
                let mut request = json!({ "server": server });
                if let (Some(policy), Some(lb)) = (&self.s.anti_affinity, boot.pair_of) {
                    let group = self.server_group(lb, policy).await?;
                    request["os:scheduler_hints"] = json!({ "group": group });
                }
                let b = self
                    .nova(Method::POST, "/servers", Some(&request))
                    .await
                    .map_err(|e| match e {
                        OsError::Unavailable(m) => DriverError::transient(op, m),
                        e => DriverError::fatal(
                            op,
                            format!(
                                "Failed to build compute instance due to: {}",
                                fault_message(&e)
                            ),
                        ),
                    })?;
                b["server"]["id"].as_str().unwrap_or_default().to_string()
            }
        };
        self.wait_active(&id).await?;
        Ok(Instance {
            compute_id: id,
            lb_network_ip: ip,
        })
    }

    async fn delete(&self, amp: Id) -> DriverResult<()> {
        let op = "delete amphora server";
        let servers = self.servers_of(amp).await.map_err(os_err(op))?;
        let mut groups = Vec::new();
        for s in &servers {
            let id = s["id"].as_str().unwrap_or_default();
            groups.extend(self.groups_of(id).await.map_err(os_err(op))?);
            deleted(
                op,
                self.nova(Method::DELETE, &format!("/servers/{id}"), None)
                    .await,
            )?;
        }
        // The port is deleted once Nova let go of it (deleting it first would leave Nova to
        // notice a vanished interface).
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !self.servers_of(amp).await.map_err(os_err(op))?.is_empty() {
            if std::time::Instant::now() > deadline {
                return Err(DriverError::transient(
                    op,
                    format!("server {} is still being deleted", server_name(amp)),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for p in self.ports_of(amp).await.map_err(os_err(op))? {
            let id = p["id"].as_str().unwrap_or_default();
            deleted(
                op,
                self.neutron(Method::DELETE, &format!("/ports/{id}"), None)
                    .await,
            )?;
        }
        // A pair's group goes with its last member (a failover's new amphora joins it first).
        for g in groups {
            let b = match self
                .nova(Method::GET, &format!("/os-server-groups/{g}"), None)
                .await
            {
                Ok(b) => b,
                Err(OsError::Status { status: 404, .. }) => continue,
                Err(e) => return Err(os_err(op)(e)),
            };
            if b["server_group"]["members"]
                .as_array()
                .is_some_and(|m| m.is_empty())
            {
                deleted(
                    op,
                    self.nova(Method::DELETE, &format!("/os-server-groups/{g}"), None)
                        .await,
                )?;
            }
        }
        Ok(())
    }

    async fn stopped(&self, amp: Id) -> DriverResult<Option<String>> {
        let servers = self
            .servers_of(amp)
            .await
            .map_err(os_err("read amphora server"))?;
        let Some(s) = servers.first() else {
            return Ok(Some(format!(
                "its server {} no longer exists in Nova",
                server_name(amp)
            )));
        };
        Ok(match s["status"].as_str() {
            Some("ERROR") => Some(format!(
                "its server is in ERROR: {}",
                s["fault"]["message"].as_str().unwrap_or("no fault given")
            )),
            Some(st @ ("SHUTOFF" | "DELETED" | "SOFT_DELETED" | "SHELVED_OFFLOADED")) => {
                Some(format!("its server is {st}"))
            }
            _ => None,
        })
    }

    /// Octavia's `validate_availability_zone` and the management network: the compute zone
    /// is one of Nova's available zones, the network one Neutron has.
    async fn check_placement(
        &self,
        zone: Option<&str>,
        management_network: Option<&str>,
    ) -> Result<(), String> {
        if let Some(z) = zone {
            let b = self
                .nova(Method::GET, "/os-availability-zone", None)
                .await
                .map_err(|e| fault_message(&e))?;
            let found = b["availabilityZoneInfo"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|i| i["zoneName"] == z && i["zoneState"]["available"] == true)
            });
            if !found {
                return Err(format!("Nova availability zone {z} not found."));
            }
        }
        if let Some(n) = management_network {
            match self
                .neutron(Method::GET, &format!("/networks/{n}"), None)
                .await
            {
                Ok(_) => {}
                Err(OsError::Status { status: 404, .. }) => {
                    return Err(format!("Network {n} not found."))
                }
                Err(e) => return Err(fault_message(&e)),
            }
        }
        Ok(())
    }

    /// Octavia's `validate_flavor`: the compute flavor is Nova's, the image tag Glance's.
    async fn check_flavor(
        &self,
        compute_flavor: Option<&str>,
        image_tag: Option<&str>,
    ) -> Result<(), String> {
        if let Some(f) = compute_flavor {
            match self.nova(Method::GET, &format!("/flavors/{f}"), None).await {
                Ok(_) => {}
                Err(OsError::Status { status: 404, .. }) => {
                    return Err(format!("Nova flavor {f} not found."))
                }
                Err(e) => return Err(fault_message(&e)),
            }
        }
        if let Some(t) = image_tag {
            self.image(t).await.map_err(|e| e.message)?;
        }
        Ok(())
    }

    async fn agent_config(&self, amp: Id) -> DriverResult<String> {
        Ok(self.agent_conf(amp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_is_octavias_cloud_config() {
        let files = [(
            "/etc/octavia/a.conf",
            "[DEFAULT]\ndebug = False\n".to_string(),
        )];
        assert_eq!(
            cloud_config(&files),
            "#cloud-config\n# vim: syntax=yaml\nwrite_files:\n-   path: /etc/octavia/a.conf\n    \
             content: |\n        [DEFAULT]\n        debug = False\nruncmd:\n-   service \
             amphora-agent restart\n"
        );
    }

    #[test]
    fn fault_messages_are_found_in_any_envelope() {
        let e = OsError::Status {
            service: "Nova".into(),
            status: 403,
            body: json!({"forbidden": {"message": "Quota exceeded for instances", "code": 403}}),
        };
        assert_eq!(fault_message(&e), "Quota exceeded for instances");
        let e = OsError::Status {
            service: "Neutron".into(),
            status: 409,
            body: json!({"NeutronError": {"type": "IpAddressAlreadyAllocated", "message": "IP in use"}}),
        };
        assert_eq!(fault_message(&e), "IP in use");
    }
}
