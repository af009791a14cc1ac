//! The security group of a load balancer's VIP (`lb-<lb id>`) and the ports it is on: the
//! rules its listeners need, the user's `vip_sg_ids` and `vip_qos_policy_id` on the ports.

use reqwest::Method;
use rocta_model::{LbTree, ListenerProtocol, LoadBalancer};
use serde_json::{json, Value};

use super::super::nova::{deleted, fault_message, os_err};
use super::super::OsError;
use super::NeutronNetwork;
use crate::*;

fn sg_name(lb: &str) -> String {
    format!("lb-{lb}")
}

/// One ingress rule of a load balancer's security group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rule {
    protocol: String,
    port: Option<u16>,
    /// A CIDR, or `None` for "from the group's own ports".
    remote_ip_prefix: Option<String>,
    ethertype: &'static str,
}

impl Rule {
    fn of(v: &Value) -> Option<Rule> {
        if v["direction"] != "ingress" {
            return None;
        }
        Some(Rule {
            protocol: v["protocol"].as_str()?.to_string(),
            port: v["port_range_min"].as_u64().map(|p| p as u16),
            remote_ip_prefix: v["remote_ip_prefix"].as_str().map(String::from),
            ethertype: if v["ethertype"] == "IPv6" {
                "IPv6"
            } else {
                "IPv4"
            },
        })
    }
}

/// The ingress rules a load balancer's security group must hold: each listener's port from its
/// allowed CIDRs (anywhere when none), VRRP and the HAProxy peers' port (1025) between the
/// group's own ports (the amphorae of an ACTIVE_STANDBY pair).
fn wanted_rules(
    listeners: &[(ListenerProtocol, u16, Option<Vec<String>>)],
    ipv6: bool,
) -> Vec<Rule> {
    let any = if ipv6 { "::/0" } else { "0.0.0.0/0" };
    let family = |cidr: &str| if cidr.contains(':') { "IPv6" } else { "IPv4" };
    let mut rules = vec![
        Rule {
            protocol: "112".into(),
            port: None,
            remote_ip_prefix: None,
            ethertype: if ipv6 { "IPv6" } else { "IPv4" },
        },
        Rule {
            protocol: "tcp".into(),
            port: Some(1025),
            remote_ip_prefix: None,
            ethertype: if ipv6 { "IPv6" } else { "IPv4" },
        },
    ];
    for (protocol, port, allowed) in listeners {
        let protocol = match protocol {
            ListenerProtocol::Udp => "udp",
            ListenerProtocol::Sctp => "sctp",
            _ => "tcp",
        };
        let cidrs = match allowed {
            Some(c) if !c.is_empty() => c.clone(),
            _ => vec![any.to_string()],
        };
        for cidr in cidrs {
            rules.push(Rule {
                protocol: protocol.into(),
                port: Some(*port),
                ethertype: family(&cidr),
                remote_ip_prefix: Some(cidr),
            });
        }
    }
    rules.sort();
    rules.dedup();
    rules
}

impl NeutronNetwork {
    /// The load balancer's security group (made unless one of its name exists); its id.
    pub(super) async fn security_group(&self, lb: &str) -> Result<String, OsError> {
        let b = self
            .neutron(
                Method::GET,
                &format!("/security-groups?name={}", sg_name(lb)),
                None,
            )
            .await?;
        if let Some(id) = b["security_groups"][0]["id"].as_str() {
            return Ok(id.to_string());
        }
        let b = self
            .neutron(
                Method::POST,
                "/security-groups",
                Some(&json!({"security_group": {"name": sg_name(lb),
                    "description": format!("Security group of load balancer {lb}")}})),
            )
            .await?;
        Ok(b["security_group"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub(super) async fn delete_security_group(
        &self,
        lb: &str,
        op: &'static str,
    ) -> DriverResult<()> {
        let b = self
            .neutron(
                Method::GET,
                &format!("/security-groups?name={}", sg_name(lb)),
                None,
            )
            .await
            .map_err(os_err(op))?;
        for g in b["security_groups"].as_array().cloned().unwrap_or_default() {
            let id = g["id"].as_str().unwrap_or_default();
            match self
                .neutron(Method::DELETE, &format!("/security-groups/{id}"), None)
                .await
            {
                Ok(_) | Err(OsError::Status { status: 404, .. }) => {}
                // Still on a port being deleted: retried by the flow.
                Err(e @ OsError::Status { status: 409, .. }) => {
                    return Err(DriverError::transient(op, fault_message(&e)))
                }
                Err(e) => return Err(os_err(op)(e)),
            }
        }
        Ok(())
    }

    /// The ports of a load balancer's VIP follow its `vip_sg_ids` and `vip_qos_policy_id`:
    /// each amphora's port (the ports in its group `sg`) carries the group and the user's
    /// groups, and it and the VIP port the QoS policy (none when it has none). Only what
    /// differs is changed.
    async fn sync_vip_ports(&self, lb: &LoadBalancer, sg: &str) -> DriverResult<()> {
        let op = "update vip ports";
        let qos = json!(lb.vip_qos_policy_id);
        // A port without the attribute: Neutron without QoS, where only "none" is possible.
        let qos_differs = |p: &Value| p.get("qos_policy_id").unwrap_or(&Value::Null) != &qos;
        let mut groups = vec![sg.to_string()];
        groups.extend(lb.vip_sg_ids.iter().cloned());
        let b = self
            .neutron(Method::GET, &format!("/ports?security_groups={sg}"), None)
            .await
            .map_err(os_err(op))?;
        let mut changes = Vec::new();
        for p in b["ports"].as_array().cloned().unwrap_or_default() {
            let mut have: Vec<String> = p["security_groups"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            have.sort();
            let mut want = groups.clone();
            want.sort();
            let mut body = serde_json::Map::new();
            if have != want {
                body.insert("security_groups".into(), json!(groups));
            }
            if qos_differs(&p) {
                body.insert("qos_policy_id".into(), qos.clone());
            }
            changes.push((p["id"].as_str().unwrap_or_default().to_string(), body));
        }
        if let Some(id) = &lb.vip_port_id {
            if let Some(p) = self
                .get(&format!("/ports/{id}"), "port")
                .await
                .map_err(os_err(op))?
            {
                if qos_differs(&p) {
                    let mut body = serde_json::Map::new();
                    body.insert("qos_policy_id".into(), qos.clone());
                    changes.push((id.clone(), body));
                }
            }
        }
        for (id, body) in changes.into_iter().filter(|(_, b)| !b.is_empty()) {
            self.neutron(
                Method::PUT,
                &format!("/ports/{id}"),
                Some(&json!({ "port": body })),
            )
            .await
            .map_err(|e| match e {
                OsError::Unavailable(m) => DriverError::transient(op, m),
                e => DriverError::fatal(op, fault_message(&e)),
            })?;
        }
        Ok(())
    }

    /// The load balancer's security group follows its listeners (Octavia's `update_vip`):
    /// rules added and removed to match [`wanted_rules`]; then its ports follow its
    /// `vip_sg_ids` and `vip_qos_policy_id`.
    pub(super) async fn sync_security_group(&self, tree: &LbTree) -> DriverResult<()> {
        let op = "update vip security group";
        let Some(lb) = &tree.loadbalancer else {
            return Ok(());
        };
        let ipv6 = lb.vip_address.as_deref().is_some_and(|a| a.contains(':'));
        let sg = self
            .security_group(&lb.id.to_string())
            .await
            .map_err(os_err(op))?;
        let b = self
            .neutron(
                Method::GET,
                &format!("/security-group-rules?security_group_id={sg}"),
                None,
            )
            .await
            .map_err(os_err(op))?;
        // With `vip_sg_ids` the user's groups decide who reaches the listeners; the
        // load balancer's own group keeps only VRRP and the peers' rules (as Octavia).
        let listeners: Vec<_> = tree
            .listeners
            .iter()
            .filter(|_| lb.vip_sg_ids.is_empty())
            .map(|l| (l.protocol, l.protocol_port, l.allowed_cidrs.clone()))
            .collect();
        let wanted = wanted_rules(&listeners, ipv6);
        let mut have = Vec::new();
        for r in b["security_group_rules"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let Some(rule) = Rule::of(&r) else { continue };
            if wanted.contains(&rule) {
                have.push(rule);
            } else {
                let id = r["id"].as_str().unwrap_or_default();
                deleted(
                    op,
                    self.neutron(Method::DELETE, &format!("/security-group-rules/{id}"), None)
                        .await,
                )?;
            }
        }
        for rule in wanted.iter().filter(|r| !have.contains(r)) {
            let mut body = json!({
                "security_group_id": sg,
                "direction": "ingress",
                "ethertype": rule.ethertype,
                "protocol": rule.protocol,
            });
            if let Some(p) = rule.port {
                body["port_range_min"] = json!(p);
                body["port_range_max"] = json!(p);
            }
            match &rule.remote_ip_prefix {
                Some(c) => body["remote_ip_prefix"] = json!(c),
                None => body["remote_group_id"] = json!(sg),
            }
            match self
                .neutron(
                    Method::POST,
                    "/security-group-rules",
                    Some(&json!({ "security_group_rule": body })),
                )
                .await
            {
                // Made by a run of this step that died before it finished.
                Ok(_) | Err(OsError::Status { status: 409, .. }) => {}
                Err(e) => return Err(os_err(op)(e)),
            }
        }
        self.sync_vip_ports(lb, &sg).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_per_listener_port_and_cidr_plus_the_pairs_own() {
        let rules = wanted_rules(
            &[
                (ListenerProtocol::Http, 80, None),
                (
                    ListenerProtocol::Udp,
                    53,
                    Some(vec!["198.18.0.0/24".into(), "2001:db8::/64".into()]),
                ),
                (ListenerProtocol::TerminatedHttps, 443, Some(vec![])),
            ],
            false,
        );
        let show: Vec<String> = rules
            .iter()
            .map(|r| {
                format!(
                    "{} {} {:?} {}",
                    r.protocol,
                    r.ethertype,
                    r.port,
                    r.remote_ip_prefix.as_deref().unwrap_or("group")
                )
            })
            .collect();
        assert_eq!(
            show,
            [
                "112 IPv4 None group",
                "tcp IPv4 Some(80) 0.0.0.0/0",
                "tcp IPv4 Some(443) 0.0.0.0/0",
                "tcp IPv4 Some(1025) group",
                "udp IPv4 Some(53) 198.18.0.0/24",
                "udp IPv6 Some(53) 2001:db8::/64",
            ]
        );
        // A rule read back from Neutron compares equal to the one asked for.
        let back = Rule::of(
            &json!({"direction": "ingress", "protocol": "udp", "ethertype": "IPv6",
            "port_range_min": 53, "port_range_max": 53, "remote_ip_prefix": "2001:db8::/64"}),
        );
        assert!(back.is_some_and(|r| rules.contains(&r)));
        assert_eq!(
            Rule::of(&json!({"direction": "egress", "protocol": null})),
            None
        );
    }
}
