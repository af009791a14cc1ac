//! The `rest` amphora driver: the controller side of the agent API v1.0, over mutual TLS with
//! rocta's PKI. Like Octavia, the agent's certificate is checked against the amphora's id
//! (its DNS name), not its address: requests go to `https://<amphora id>:9443` and a resolver
//! maps that name to the amphora's management address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use md5::Digest;
use reqwest::dns::{Name, Resolve, Resolving};
use rocta_haproxy::RenderOptions;
use rocta_model::{Amphora, AmphoraRole, Id, LbTree, ListenerProtocol};
use serde_json::Value;

use crate::local::AGENT_PORT;
use crate::*;

/// Amphora id → management address.
#[derive(Default)]
struct Names(RwLock<HashMap<String, SocketAddr>>);

impl Resolve for Names {
    fn resolve(&self, name: Name) -> Resolving {
        let addr = self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name.as_str())
            .copied();
        Box::pin(async move {
            match addr {
                Some(a) => Ok(Box::new(std::iter::once(a)) as reqwest::dns::Addrs),
                None => Err(format!("unknown amphora {}", name.as_str()).into()),
            }
        })
    }
}

pub struct RestAmphora {
    http: reqwest::Client,
    /// Where listener and pool certificates come from.
    tls: Arc<dyn TlsStore>,
    names: Arc<Names>,
    /// Connection limit for listeners that say -1 (`[haproxy_amphora] default_connection_limit`).
    pub default_connection_limit: i64,
    /// Per-request logging into a ring buffer (`[haproxy_amphora] connection_logging`).
    pub connection_logging: bool,
    /// `[amphora_agent] user_log_facility`, `administrative_log_facility`.
    pub log_facilities: (u8, u8),
}

impl RestAmphora {
    /// `server_ca`: the CA of agent certificates; `identity`: the controller's certificate+key.
    pub fn new(
        tls: Arc<dyn TlsStore>,
        server_ca: &str,
        identity: &str,
        default_connection_limit: i64,
        connection_logging: bool,
        log_facilities: (u8, u8),
    ) -> Result<Self, String> {
        let names = Arc::new(Names::default());
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(server_ca.as_bytes()).map_err(|e| e.to_string())?,
            )
            .identity(reqwest::Identity::from_pem(identity.as_bytes()).map_err(|e| e.to_string())?)
            .dns_resolver(names.clone())
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(60))
            // A connection idle this long is not reused: across a management-network outage
            // it may sit in TCP's retransmission backoff (tens of seconds) where a new one
            // answers at once; agent calls are rare enough that a new handshake costs nothing.
            .pool_idle_timeout(std::time::Duration::from_secs(10))
            .user_agent("rocta amphora driver")
            .build()
            .map_err(|e| e.to_string())?;
        Ok(RestAmphora {
            http,
            tls,
            names,
            default_connection_limit,
            connection_logging,
            log_facilities,
        })
    }

    fn url(&self, amp: &Amphora, path: &str) -> Result<String, DriverError> {
        let ip = amp
            .lb_network_ip
            .as_deref()
            .and_then(|i| i.parse::<std::net::IpAddr>().ok())
            .ok_or_else(|| {
                DriverError::fatal(
                    "amphora api",
                    format!("amphora {} has no management address", amp.id),
                )
            })?;
        self.names
            .0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(amp.id.to_string(), SocketAddr::new(ip, AGENT_PORT));
        Ok(format!("https://{}:{AGENT_PORT}/1.0/{path}", amp.id))
    }

    /// Sends a request; a refused connection or a 5xx is transient, a 4xx is not.
    async fn call(
        &self,
        op: &'static str,
        amp: &Amphora,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        ok: &[u16],
    ) -> DriverResult<Value> {
        let mut rb = self.http.request(method, self.url(amp, path)?);
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let r = rb
            .send()
            .await
            .map_err(|e| DriverError::transient(op, e.to_string()))?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        if ok.contains(&status) {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        let msg = format!("agent answered {status}: {text}");
        if status >= 500 {
            Err(DriverError::transient(op, msg))
        } else {
            Err(DriverError::fatal(op, msg))
        }
    }
}

impl RestAmphora {
    /// Uploads every certificate file the configuration refers to (skipping those whose md5
    /// already matches, as Octavia) and the crt-list of each TERMINATED_HTTPS listener.
    /// Whether any file changed (HAProxy reads them only when it reloads).
    async fn upload_certificates(
        &self,
        amp: &Amphora,
        tree: &LbTree,
        cert_dir: &str,
    ) -> DriverResult<bool> {
        let Some(lb) = &tree.loadbalancer else {
            return Ok(false);
        };
        let mut changed = false;
        let mut files: Vec<(String, String)> = Vec::new();
        let mut refs: Vec<&String> = Vec::new();
        for l in tree
            .listeners
            .iter()
            .filter(|l| l.protocol == ListenerProtocol::TerminatedHttps)
        {
            refs.extend(l.default_tls_container_ref.iter());
            refs.extend(l.sni_container_refs.iter());
            refs.extend(l.client_ca_tls_container_ref.iter());
            refs.extend(l.client_crl_container_ref.iter());
            files.push((
                rocta_haproxy::crt_list_name(l.id),
                rocta_haproxy::crt_list(l, cert_dir),
            ));
        }
        for p in tree.pools.iter().filter(|p| p.tls_enabled) {
            refs.extend(p.tls_container_ref.iter());
            refs.extend(p.ca_tls_container_ref.iter());
            refs.extend(p.crl_container_ref.iter());
        }
        for r in refs {
            let pem = self.tls.fetch(r).await?;
            files.push((rocta_haproxy::cert_file_name(r), pem));
        }
        for (name, body) in files {
            let path = format!("loadbalancer/{}/certificates/{name}", lb.id);
            let have = self
                .call(
                    "get certificate",
                    amp,
                    reqwest::Method::GET,
                    &path,
                    None,
                    &[200, 404],
                )
                .await?;
            let want = format!("{:x}", md5::Md5::digest(body.as_bytes()));
            if have["md5sum"].as_str() != Some(want.as_str()) {
                changed = true;
                self.call(
                    "upload certificate",
                    amp,
                    reqwest::Method::PUT,
                    &path,
                    Some(body),
                    &[200],
                )
                .await?;
            }
        }
        Ok(changed)
    }
}

impl RestAmphora {
    /// Sends the load balancer's UDP and SCTP listeners to the agent, which forwards them with
    /// nftables (`PUT /1.0/loadbalancer/{amphora}/{lb}/udp`).
    async fn apply_udp(
        &self,
        amp: &Amphora,
        udp: &rocta_haproxy::nft::UdpService,
    ) -> DriverResult<()> {
        let body = serde_json::to_string(udp)
            .map_err(|e| DriverError::fatal("upload udp listeners", e.to_string()))?;
        self.call(
            "upload udp listeners",
            amp,
            reqwest::Method::PUT,
            &format!("loadbalancer/{}/{}/udp", amp.id, udp.lb_id),
            Some(body),
            &[202],
        )
        .await
        .map(|_| ())
    }
}

/// HAProxy needs about 2.5 file descriptors per connection (client, server, splice pipes):
/// the global `maxconn` cap follows from the agent's hard descriptor limit.
pub fn maxconn_cap(max_open_files: i64) -> i64 {
    ((max_open_files - 1000) * 2 / 5).max(256)
}

#[async_trait::async_trait]
impl AmphoraDriver for RestAmphora {
    async fn wait_ready(&self, amp: &Amphora) -> DriverResult<()> {
        self.call(
            "wait for agent",
            amp,
            reqwest::Method::GET,
            "info",
            None,
            &[200],
        )
        .await
        .map_err(|e| DriverError {
            retryable: true,
            ..e
        })
        .map(|_| ())
    }

    async fn post_vip_plug(&self, amp: &Amphora, vip: &Vip, plug: &VipPlug) -> DriverResult<()> {
        // Octavia's body; without a MAC address the amphora has no interface to configure.
        let body = match &plug.mac_address {
            Some(mac) => serde_json::json!({
                "subnet_cidr": plug.subnet_cidr,
                "gateway": plug.gateway,
                "mac_address": mac,
                "mtu": plug.mtu,
                "vrrp_ip": plug.vrrp_ip,
                "host_routes": [],
                "additional_vips": plug.additional,
                "topology": match amp.role {
                    Some(AmphoraRole::Master | AmphoraRole::Backup) => "ACTIVE_STANDBY",
                    _ => "SINGLE",
                },
            })
            .to_string(),
            None => "{}".into(),
        };
        self.call(
            "plug vip",
            amp,
            reqwest::Method::POST,
            &format!("plug/vip/{}", vip.address),
            Some(body),
            &[202, 409],
        )
        .await
        .map(|_| ())
        .map_err(|e| DriverError {
            // The interface not visible yet (404): retried, as Octavia.
            retryable: e.retryable || e.message.contains("answered 404"),
            ..e
        })
    }

    async fn apply(&self, amp: &Amphora, tree: &LbTree, peers: &[Peer]) -> DriverResult<()> {
        let Some(lb) = &tree.loadbalancer else {
            return Ok(());
        };
        let served = tree
            .listeners
            .iter()
            .any(|l| l.admin_state_up && !l.protocol.is_lvs());
        // UDP and SCTP listeners are forwarded by the kernel (nftables), the rest by HAProxy.
        let udp = rocta_haproxy::nft::service(tree);
        if !served || !lb.admin_state_up {
            let Some(u) = udp else {
                return self.remove(amp, lb.id).await;
            };
            // UDP listeners only: HAProxy stops (if it ran), the forwarding keeps its state
            // (the monitors' verdicts, the persistence map).
            self.call(
                "stop haproxy",
                amp,
                reqwest::Method::PUT,
                &format!("loadbalancer/{}/stop", lb.id),
                None,
                &[202, 404],
            )
            .await?;
            return self.apply_udp(amp, &u).await;
        }
        let info = self
            .call(
                "agent info",
                amp,
                reqwest::Method::GET,
                "info",
                None,
                &[200],
            )
            .await?;
        let forwards = info["udp_loadbalancers"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(&lb.id.to_string())));
        match &udp {
            Some(u) => self.apply_udp(amp, u).await?,
            // Its last UDP listener went: the agent stops forwarding.
            None if forwards => {
                self.call(
                    "remove udp listeners",
                    amp,
                    reqwest::Method::DELETE,
                    &format!("loadbalancer/{}/{}/udp", amp.id, lb.id),
                    None,
                    &[202],
                )
                .await?;
            }
            None => {}
        }
        let base = info["base_path"].as_str().unwrap_or("/var/lib/rocta");
        let files = info["max_open_files"].as_i64().unwrap_or(20_000);
        let run = format!("{base}/{}", lb.id);
        let certs_changed = self
            .upload_certificates(amp, tree, &format!("{run}/certs"))
            .await?;
        let cfg = rocta_haproxy::render(
            tree,
            &RenderOptions {
                amphora_id: amp.id.to_string(),
                run_dir: run.clone(),
                cert_dir: format!("{run}/certs"),
                maxconn_cap: maxconn_cap(files),
                default_connection_limit: self.default_connection_limit,
                log_target: self.connection_logging.then(|| "ring".to_string()),
                log_facilities: self.log_facilities,
                peers: peers
                    .iter()
                    .map(|p| {
                        (
                            rocta_haproxy::peer_name(&p.amphora_id.to_string()),
                            format!("{}:{}", p.address, rocta_haproxy::PEER_PORT),
                        )
                    })
                    .collect(),
            },
        );
        // The agent runs exactly this already (and no certificate file changed): nothing to do.
        let digest = format!("{:x}", md5::Md5::digest(cfg.as_bytes()));
        if !certs_changed && info["running_configs"][lb.id.to_string()].as_str() == Some(&digest) {
            return Ok(());
        }
        self.call(
            "upload config",
            amp,
            reqwest::Method::PUT,
            &format!("loadbalancer/{}/{}/haproxy", amp.id, lb.id),
            Some(cfg),
            &[202],
        )
        .await?;
        self.call(
            "reload haproxy",
            amp,
            reqwest::Method::PUT,
            &format!("loadbalancer/{}/reload", lb.id),
            None,
            &[202],
        )
        .await
        .map(|_| ())
    }

    async fn rotate_cert(&self, amp: &Amphora, pem: &str) -> DriverResult<()> {
        self.call(
            "rotate server certificate",
            amp,
            reqwest::Method::PUT,
            "certificate",
            Some(pem.to_string()),
            &[202],
        )
        .await
        .map(|_| ())
    }

    async fn update_agent_config(&self, amp: &Amphora, config: &str) -> DriverResult<()> {
        self.call(
            "update agent configuration",
            amp,
            reqwest::Method::PUT,
            "config",
            Some(config.to_string()),
            &[202],
        )
        .await
        .map(|_| ())
    }

    async fn post_network_plug(&self, amp: &Amphora, plug: &NetworkPlug) -> DriverResult<()> {
        let body = serde_json::json!({
            "mac_address": plug.mac_address,
            "fixed_ips": [{"ip_address": plug.ip_address, "subnet_cidr": plug.subnet_cidr,
                           "host_routes": []}],
            "mtu": plug.mtu,
        });
        self.call(
            "plug network",
            amp,
            reqwest::Method::POST,
            "plug/network",
            Some(body.to_string()),
            &[202],
        )
        .await
        .map(|_| ())
        .map_err(|e| DriverError {
            retryable: e.retryable || e.message.contains("answered 404"),
            ..e
        })
    }

    async fn update_vrrp(&self, amp: &Amphora, plan: &VrrpPlan) -> DriverResult<()> {
        let info = self
            .call(
                "agent info",
                amp,
                reqwest::Method::GET,
                "info",
                None,
                &[200],
            )
            .await?;
        let base = info["base_path"].as_str().unwrap_or("/var/lib/rocta");
        let s = &plan.settings;
        let conf = rocta_haproxy::keepalived::render(&rocta_haproxy::keepalived::Vrrp {
            group: plan.lb_id.simple().to_string(),
            interface: amp.vrrp_interface.clone().unwrap_or_else(|| "eth1".into()),
            virtual_router_id: amp.vrrp_id.and_then(|v| u8::try_from(v).ok()).unwrap_or(1),
            priority: plan.priority,
            src_ip: plan.src_ip.clone(),
            peers: plan.peers.clone(),
            vips: std::iter::once(&plan.vip_cidr)
                .chain(&plan.additional_cidrs)
                .cloned()
                .collect(),
            advert_int: s.advert_int,
            check_script: format!("{base}/vrrp/check.sh"),
            check_interval: s.check_interval,
            fall: s.fail_count,
            rise: s.success_count,
            garp_refresh: s.garp_refresh_interval,
            garp_refresh_repeat: s.garp_refresh_count,
        });
        self.call(
            "upload keepalived configuration",
            amp,
            reqwest::Method::PUT,
            "vrrp/upload",
            Some(conf),
            &[200],
        )
        .await?;
        self.call(
            "start keepalived",
            amp,
            reqwest::Method::PUT,
            "vrrp/start",
            None,
            &[202],
        )
        .await
        .map(|_| ())
    }

    async fn remove(&self, amp: &Amphora, lb_id: Id) -> DriverResult<()> {
        self.call(
            "delete load balancer",
            amp,
            reqwest::Method::DELETE,
            &format!("listeners/{lb_id}"),
            None,
            &[200, 404],
        )
        .await
        .map(|_| ())
    }
}
