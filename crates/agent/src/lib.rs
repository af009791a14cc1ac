//! The rocta amphora agent: the REST API of Octavia's amphora agent (v1.0) on the amphora's
//! management address, behind mutual TLS (a client without a certificate signed by the
//! controller's CA is refused at the handshake), supervising one HAProxy per load balancer.
//! It depends on neither the store nor the drivers: it only knows its own directory.
//!
//! Layout: `tls` (server config with a swappable certificate, client verification), `api`
//! (routes), `haproxy` (config validation, master-worker processes, hitless reloads), `udp`
//! (UDP and SCTP listeners forwarded by nftables), `vrrp` (keepalived), `netif` (plugging).

pub mod api;
pub mod garp;
pub mod haproxy;
pub mod heartbeat;
pub mod logs;
pub mod netif;
pub mod promproxy;
pub mod shipping;
pub mod tls;
pub mod udp;
pub mod vrrp;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Agent settings (its "config drive"), read from a TOML file by `rocta amphora-agent`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Management address and port the agent listens on (Octavia: 9443).
    pub bind: String,
    /// This amphora's id (the CN of its server certificate).
    pub amphora_id: String,
    /// Where configs, certificates, sockets and pid files live.
    pub base_dir: PathBuf,
    /// Server certificate and key, one PEM file.
    pub server_cert: PathBuf,
    /// CA that signs the controller's client certificates.
    pub client_ca: PathBuf,
    /// The HAProxy binary.
    pub haproxy_bin: String,
    /// Health managers (`ip:port`) heartbeats go to, round robin (Octavia's option name);
    /// empty: no heartbeats.
    #[serde(default)]
    pub controller_ip_port_list: Vec<String>,
    /// Seconds between heartbeats.
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval: f64,
    /// The shared HMAC key of heartbeats.
    #[serde(default)]
    pub heartbeat_key: String,
    /// Where the per-request logs are shipped (`[log_shipping]`; none by default).
    #[serde(default)]
    pub log_shipping: shipping::Shipping,
    /// The file this configuration was read from (rewritten by `PUT /1.0/config`).
    #[serde(skip)]
    pub config_path: Option<PathBuf>,
}

fn default_heartbeat_interval() -> f64 {
    10.0
}

impl AgentConfig {
    /// Parses the agent's configuration: Octavia's `amphora-agent.conf` (what an Octavia or
    /// rocta controller burns into the config drive and sends with `PUT /1.0/config`), or
    /// rocta's own TOML file (what the `local` and `netns` compute drivers write).
    pub fn parse(text: &str) -> Result<AgentConfig, String> {
        if !rocta_proto::agent_conf::AgentConf::is_octavia(text) {
            return Self::from_toml(text);
        }
        let c = rocta_proto::agent_conf::AgentConf::parse(text)?;
        let bind = match c.bind_host.parse::<std::net::IpAddr>() {
            Ok(ip) => std::net::SocketAddr::new(ip, c.bind_port).to_string(),
            Err(_) => {
                return Err(format!(
                    "[haproxy_amphora] bind_host: {:?} is not an IP address",
                    c.bind_host
                ))
            }
        };
        Ok(AgentConfig {
            bind,
            amphora_id: c.amphora_id,
            base_dir: c.base_path.into(),
            server_cert: c.agent_server_cert.into(),
            client_ca: c.agent_server_ca.into(),
            haproxy_bin: c.haproxy_cmd,
            controller_ip_port_list: c.controller_ip_port_list,
            heartbeat_interval: c.heartbeat_interval,
            heartbeat_key: c.heartbeat_key,
            log_shipping: c.logs,
            config_path: None,
        })
    }

    /// Parses rocta's TOML agent configuration.
    pub fn from_toml(text: &str) -> Result<AgentConfig, String> {
        toml::from_str(text).map_err(|e| e.message().replace('\n', " "))
    }
}

/// Agent startup errors.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("loading TLS material: {0}")]
    Tls(String),
    #[error("preparing {path}: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The agent listener's bounds: only controllers (with a client certificate of rocta's CA) get
/// past the handshake, so established connections are few; handshakes are bounded, timed and
/// evict the oldest, so idle or slow unauthenticated peers cannot keep a controller out.
pub const LIMITS: rocta_service::net::Limits = rocta_service::net::Limits {
    handshakes: 64,
    handshake_timeout: std::time::Duration::from_secs(10),
    connections: 256,
    idle_timeout: std::time::Duration::from_secs(60),
};

/// Serves the agent API on an already-bound listener until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    cfg: AgentConfig,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    std::fs::create_dir_all(&cfg.base_dir).map_err(|source| AgentError::Dir {
        path: cfg.base_dir.display().to_string(),
        source,
    })?;
    let certs = Arc::new(tls::SwappableCert::load(&cfg.server_cert)?);
    let tls_cfg = tls::server_config(&cfg.client_ca, certs.clone())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_cfg));
    let (target, target_rx) = tokio::sync::watch::channel(heartbeat::Target::of(&cfg));
    let sender = heartbeat::SenderConfig {
        amphora_id: cfg.amphora_id.clone(),
        target: target_rx,
        interval: std::time::Duration::from_secs_f64(cfg.heartbeat_interval.max(0.05)),
        state_dir: cfg.base_dir.clone(),
    };
    let amphora_id = cfg.amphora_id.clone();
    let state = api::State::new(cfg, certs, target);
    let sup = state.sup.clone();
    sup.shippers().spawn(&shutdown);
    if sup.shippers().admin.is_some() {
        tracing::info!(
            targets = ?state.log_shipping().admin_log_targets,
            "shipping the administrative logs"
        );
    }
    // HAProxies that outlived an agent restart: their logs are drained again.
    for lb in sup.load_balancers() {
        if sup.running(&lb).is_some() {
            sup.follow_logs(&lb);
        }
    }
    tokio::spawn(state.udp.clone().monitor(shutdown.clone()));
    tokio::spawn(promproxy::run(sup.clone(), amphora_id, shutdown.clone()));
    tokio::spawn(heartbeat::run(
        sup,
        state.udp.clone(),
        sender,
        shutdown.clone(),
    ));
    let app = api::router(state);
    let handshake = move |tcp| {
        let acceptor = acceptor.clone();
        async move { acceptor.accept(tcp).await }
    };
    rocta_service::net::serve(
        listener,
        LIMITS,
        handshake,
        app,
        Default::default(),
        shutdown,
    )
    .await;
    Ok(())
}
