//! rocta's configuration: a TOML file whose sections and keys take Octavia's option names
//! (`[api_settings]`, `[database]`, `[controller_worker]`, `[haproxy_amphora]`, `[quotas]`, ...),
//! so an Octavia operator finds them. Every key has a default; `etc/rocta.example.toml` in the
//! repository lists them all with their defaults, and a test keeps it parseable and complete.
//!
//! Layout: one struct per section, `Config::from_toml` parses and validates (`validate.rs`;
//! unknown keys are errors, so a typo never silently falls back to a default).

use std::collections::BTreeMap;

use serde::Deserialize;

mod controller_worker;
mod keepalived;
mod netns;
mod openstack;
mod operations;
mod validate;
pub use controller_worker::{
    AmphoraDriver, CertManager, ComputeDriver, ControllerWorker, NetworkDriver,
};
pub use keepalived::KeepalivedVrrp;
pub use netns::{ComputeZone, Netns, NetnsNetwork};
pub use openstack::{Nova, ServiceAuth, ServiceEndpoint};
pub use operations::{AmphoraAgent, MetricsSettings};

/// A configuration error; the binary exits 64 (`EX_USAGE`) on it before binding anything.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// One line: the parser's message and where.
    #[error("cannot parse the configuration: {0}")]
    Parse(String),
    #[error("invalid configuration: [{section}] {key}: {reason}")]
    Invalid {
        section: &'static str,
        key: &'static str,
        reason: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[DEFAULT]`: process-wide options (oslo.service's names).
    #[serde(rename = "DEFAULT")]
    pub default: Defaults,
    pub api_settings: ApiSettings,
    pub database: Database,
    pub oslo_messaging: OsloMessaging,
    pub controller_worker: ControllerWorker,
    pub haproxy_amphora: HaproxyAmphora,
    pub quotas: Quotas,
    pub certificates: Certificates,
    pub health_manager: HealthManager,
    pub house_keeping: HouseKeeping,
    pub logging: Logging,
    pub metrics: MetricsSettings,
    pub amphora_agent: AmphoraAgent,
    pub keystone_authtoken: KeystoneAuthtoken,
    pub oslo_policy: OsloPolicy,
    pub netns: Netns,
    pub keepalived_vrrp: KeepalivedVrrp,
    pub service_auth: ServiceAuth,
    pub nova: Nova,
    pub neutron: ServiceEndpoint,
    pub glance: ServiceEndpoint,
}

/// `[oslo_policy]`: oslo.policy's options. The API enforces Octavia's in-code policy; a
/// `policy_file` (YAML or JSON, Octavia's rule names) overrides rules of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OsloPolicy {
    /// The operator's rule overrides; empty = none. Relative paths are relative to the
    /// directory of the configuration file.
    pub policy_file: String,
    /// Only the Keystone default roles count (oslo.policy's default since 4.4.0); `false` also
    /// accepts Octavia's deprecated `load-balancer_*` roles, OR-ed with the new rules.
    pub enforce_new_defaults: bool,
    /// Refuse system-scoped tokens on Octavia's project-scoped rules.
    pub enforce_scope: bool,
}

impl Default for OsloPolicy {
    fn default() -> Self {
        OsloPolicy {
            policy_file: String::new(),
            enforce_new_defaults: true,
            enforce_scope: true,
        }
    }
}

/// `[keystone_authtoken]`: keystonemiddleware's `auth_token` options (their names), used when
/// `[api_settings] auth_strategy = "keystone"`. Its other options (memcached, service token
/// roles, ...) are accepted and have no effect.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct KeystoneAuthtoken {
    /// What a 401 tells clients to authenticate against (`WWW-Authenticate: Keystone uri=…`);
    /// empty = `auth_url`.
    pub www_authenticate_uri: String,
    /// Keystone's identity endpoint (`http://HOST:5000` or `…/v3`), for the service's own
    /// token and for validating callers' tokens.
    pub auth_url: String,
    /// Only `password`.
    pub auth_type: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    /// Tokens in `X-Service-Token` count only with one of `service_token_roles`.
    pub service_token_roles_required: bool,
    pub service_token_roles: Vec<String>,
    /// Seconds a validation (valid or not) is reused; a token is never trusted past its expiry.
    pub token_cache_time: u64,
    /// Accepted for compatibility (the endpoint is `auth_url`).
    pub region_name: String,
    /// CA bundle (PEM) for an `https` Keystone; empty = the system's roots.
    pub cafile: String,
    /// Do not verify Keystone's certificate (tests only).
    pub insecure: bool,
    /// Seconds one call to Keystone may take before the API answers 503.
    pub http_connect_timeout: f64,
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

impl Default for KeystoneAuthtoken {
    fn default() -> Self {
        KeystoneAuthtoken {
            www_authenticate_uri: String::new(),
            auth_url: String::new(),
            auth_type: "password".into(),
            username: String::new(),
            password: String::new(),
            project_name: String::new(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            service_token_roles_required: false,
            service_token_roles: vec!["service".into()],
            token_cache_time: 300,
            region_name: String::new(),
            cafile: String::new(),
            insecure: false,
            http_connect_timeout: 5.0,
            other: BTreeMap::new(),
        }
    }
}

/// `[DEFAULT]`: what every process shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Seconds a stopping process gives its tasks (requests in flight, a job's current step,
    /// a duty's round) before it exits anyway; unfinished jobs resume on restart.
    pub graceful_shutdown_timeout: f64,
    /// oslo.messaging's bus (`rabbit://USER:PASS@HOST:5672/VHOST`, several hosts separated by
    /// commas); where Octavia keeps it. `[oslo_messaging] transport_url` wins when both are set.
    pub transport_url: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            graceful_shutdown_timeout: 10.0,
            transport_url: String::new(),
        }
    }
}

/// `[oslo_messaging]`: the bus that carries job wake-ups between API and worker processes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OsloMessaging {
    /// `rabbit://USER:PASS@HOST:5672/VHOST`; empty: `[DEFAULT] transport_url`, and without
    /// either, PostgreSQL `LISTEN/NOTIFY` or polling.
    pub transport_url: String,
    /// The queue's name (Octavia: the RPC topic; rocta's own, so as not to meet an Octavia's).
    pub topic: String,
}

impl Default for OsloMessaging {
    fn default() -> Self {
        OsloMessaging {
            transport_url: String::new(),
            topic: "rocta_jobs".into(),
        }
    }
}

impl Config {
    /// The bus URL in effect, if any.
    pub fn transport_url(&self) -> Option<&str> {
        [
            &self.oslo_messaging.transport_url,
            &self.default.transport_url,
        ]
        .into_iter()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
    }
}

/// `[house_keeping]` (Octavia's section name): spare pool, purge, certificate rotation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HouseKeeping {
    /// Amphorae kept booted and `READY` for new load balancers (0: no spares, boot on create).
    pub spare_amphora_pool_size: usize,
    /// Seconds between two checks of the spare pool (Octavia: 30).
    pub spare_check_interval: f64,
    /// Seconds between two purges of deleted records.
    pub cleanup_interval: f64,
    /// Seconds a `DELETED` amphora is kept before it is purged.
    pub amphora_expiry_age: f64,
    /// Seconds a `DELETED` load balancer is kept before it is purged.
    pub load_balancer_expiry_age: f64,
    /// Seconds between two searches for amphora certificates to rotate.
    pub cert_interval: f64,
    /// Certificates expiring within this many seconds are rotated.
    pub cert_expiry_buffer: f64,
    /// Seconds after which a VIP allocated for a load balancer that was never recorded (its API
    /// process died between the allocation and the commit) is released. Checked with the purge.
    pub vip_allocation_grace: f64,
}

impl Default for HouseKeeping {
    fn default() -> Self {
        HouseKeeping {
            spare_amphora_pool_size: 0,
            spare_check_interval: 5.0,
            cleanup_interval: 30.0,
            amphora_expiry_age: 604800.0,
            load_balancer_expiry_age: 604800.0,
            cert_interval: 3600.0,
            cert_expiry_buffer: 1209600.0,
            vip_allocation_grace: 60.0,
        }
    }
}

/// `[health_manager]`: the heartbeat receiver (Octavia's option names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthManager {
    /// Address heartbeats are received on (the management network side of the controller).
    /// With the netns drivers a loopback address means the controller's management address.
    pub bind_ip: String,
    /// UDP port (0: any free port, for tests; amphorae are told the real one).
    pub bind_port: u16,
    /// Seconds between an amphora's heartbeats.
    pub heartbeat_interval: f64,
    /// Shared HMAC key of heartbeats; empty: generated once into `<data-dir>/pki/heartbeat_key`.
    pub heartbeat_key: String,
    /// Every health manager's `IP:PORT`, as amphorae are told to send heartbeats (in turn);
    /// empty: this process's own `bind_ip:bind_port` (Octavia's option).
    pub controller_ip_port_list: Vec<String>,
    /// Seconds without a heartbeat after which an amphora is stale and failed over. A health
    /// manager that has just started waits this long before judging (amphorae check in first).
    pub heartbeat_timeout: f64,
    /// Seconds between two searches for stale amphorae (Octavia: 3; 1 here so that detection
    /// adds at most a second to `heartbeat_timeout`).
    pub health_check_interval: f64,
    /// When this many amphorae or more are stale at once, none is failed over (the health
    /// manager is more likely cut off than they are dead): logged as an error and counted in
    /// `rocta_failover_stopped_total`. With a threshold an amphora is failed over only once
    /// silent for the longer of `health_check_interval` and `heartbeat_interval` beyond
    /// `heartbeat_timeout`, so amphorae falling silent together are counted together.
    /// 0: no threshold (Octavia's default `None`).
    pub failover_threshold: u64,
    /// Prometheus text file the health manager rewrites with its counters every
    /// `health_check_interval` (node_exporter's textfile collector reads it); empty:
    /// `<data-dir>/health-manager.prom`.
    pub metrics_file: String,
}

impl Default for HealthManager {
    fn default() -> Self {
        HealthManager {
            bind_ip: "127.0.0.1".into(),
            bind_port: 5555,
            heartbeat_interval: 10.0,
            heartbeat_key: String::new(),
            controller_ip_port_list: Vec::new(),
            heartbeat_timeout: 60.0,
            health_check_interval: 1.0,
            failover_threshold: 0,
            metrics_file: String::new(),
        }
    }
}

/// `[certificates]`: where listener and pool TLS certificates are kept (Octavia's option names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Certificates {
    /// `local_cert_manager` (PEM files in `storage_path`; rocta's default),
    /// `barbican_cert_manager` (Barbican secrets and containers, as the `[service_auth]` user
    /// with ACLs the API sets with the caller's token) or `noop_cert_manager` (tests).
    pub cert_manager: TlsManager,
    /// Directory of PEM bundles (certificate, key, chain) that `*_tls_container_ref` fields name
    /// by file name (Octavia's local certificate manager option); empty = `<data-dir>/certificates`.
    pub storage_path: String,
    /// Only `barbican_acl_auth`.
    pub barbican_auth: String,
    /// Barbican's endpoint: a fixed URL instead of the catalog's key-manager endpoint.
    pub endpoint: String,
    pub region_name: String,
    /// The catalog interface (`publicURL`, `internalURL`, `adminURL`).
    pub endpoint_type: String,
    /// The name Barbican's container consumers carry (Octavia's consumer name).
    pub service_name: String,
    /// Accepted for compatibility: `[service_auth] cafile` and `insecure` apply.
    pub ca_certificates_file: String,
    pub insecure: bool,
}

impl Default for Certificates {
    fn default() -> Self {
        Certificates {
            cert_manager: TlsManager::Local,
            storage_path: String::new(),
            barbican_auth: "barbican_acl_auth".into(),
            endpoint: String::new(),
            region_name: String::new(),
            endpoint_type: "publicURL".into(),
            service_name: "Octavia".into(),
            ca_certificates_file: String::new(),
            insecure: false,
        }
    }
}

impl Certificates {
    /// Barbican's place, as the other OpenStack services' sections give theirs.
    pub fn barbican_endpoint(&self) -> ServiceEndpoint {
        ServiceEndpoint {
            endpoint_override: self.endpoint.clone(),
            region_name: self.region_name.clone(),
            endpoint_type: self.endpoint_type.clone(),
            ..ServiceEndpoint::default()
        }
    }
}

/// `[certificates] cert_manager`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsManager {
    #[serde(rename = "local_cert_manager")]
    Local,
    #[serde(rename = "barbican_cert_manager")]
    Barbican,
    #[serde(rename = "noop_cert_manager")]
    Noop,
}

impl Config {
    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|sp| {
                text.as_bytes()[..sp.start.min(text.len())]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count()
                    + 1
            });
            let msg = e.message().replace('\n', " ");
            ConfigError::Parse(match line {
                Some(l) => format!("line {l}: {msg}"),
                None => msg,
            })
        })?;
        let mut cfg = cfg;
        // Whether the file chose where amphorae run (else it depends on the user: see
        // `ControllerWorker::default_placement`).
        cfg.controller_worker.placement_chosen = toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|t| t.get("controller_worker")?.as_table().cloned())
            .is_some_and(|w| w.contains_key("compute_driver") || w.contains_key("network_driver"));
        cfg.validate()?;
        Ok(cfg)
    }
}

/// `[api_settings]`: the REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Address the API listens on (`--api-bind` overrides host and port).
    pub bind_host: String,
    /// Port the API listens on.
    pub bind_port: u16,
    /// `keystone` (Octavia's default): callers' tokens validated against Keystone
    /// (`[keystone_authtoken]`); `noauth`: project from `X-Project-Id`, roles from `X-Roles`
    /// (Octavia's noauth, the embedded default).
    pub auth_strategy: String,
    /// Largest page a list returns, and the default `limit`.
    pub pagination_max_limit: usize,
    /// Base of pagination links and version documents; empty = taken from the request's Host.
    pub api_base_uri: String,
    /// Provider used when a load balancer names none.
    pub default_provider_driver: String,
    /// Provider name → description, as listed by `GET /v2/lbaas/providers`.
    pub enabled_provider_drivers: BTreeMap<String, String>,
    /// Largest request body accepted, in bytes (oslo sizelimit's default is 114688).
    pub max_request_body_size: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            bind_host: "127.0.0.1".into(),
            bind_port: 9876,
            auth_strategy: "noauth".into(),
            pagination_max_limit: 1000,
            api_base_uri: String::new(),
            default_provider_driver: "amphora".into(),
            enabled_provider_drivers: BTreeMap::from([
                ("amphora".into(), "The Octavia Amphora driver.".into()),
                (
                    "octavia".into(),
                    "Deprecated alias of the Octavia Amphora driver.".into(),
                ),
            ]),
            max_request_body_size: 114_688,
        }
    }
}

/// `[database]`: where the desired state and the job queue live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// Octavia's SQLAlchemy URL: `sqlite:///PATH`, `postgresql://USER:PASS@HOST:5432/DB`
    /// (also `postgresql+psycopg2://`), `mysql://USER:PASS@HOST:3306/DB` (also
    /// `mysql+pymysql://`). Empty: SQLite at `<data-dir>/rocta.db`.
    pub connection: String,
    /// Connections each process keeps to PostgreSQL or MySQL (oslo.db's option).
    pub max_pool_size: usize,
    /// SQLite `synchronous` in WAL mode: `normal` survives any process crash (a power loss may
    /// lose the last commits); `full` also survives power loss at a cost per commit.
    pub sqlite_synchronous: String,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            connection: String::new(),
            max_pool_size: 8,
            sqlite_synchronous: "normal".into(),
        }
    }
}

/// `[haproxy_amphora]`: HAProxy on the amphorae and the defaults applied to listeners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaproxyAmphora {
    /// The HAProxy binary amphorae run (2.6 or newer).
    pub haproxy_cmd: String,
    /// Per-request logging (Octavia's option of this name). rocta logs into an in-memory
    /// HAProxy ring buffer per load balancer instead of a syslog socket.
    pub connection_logging: bool,
    /// Connection limit used when a listener says -1.
    pub default_connection_limit: i64,
    /// Listener timeout defaults, milliseconds.
    pub timeout_client_data: i64,
    pub timeout_member_connect: i64,
    pub timeout_member_data: i64,
    pub timeout_tcp_inspect: i64,
}

impl Default for HaproxyAmphora {
    fn default() -> Self {
        HaproxyAmphora {
            haproxy_cmd: "haproxy".into(),
            connection_logging: true,
            default_connection_limit: 50_000,
            timeout_client_data: 50_000,
            timeout_member_connect: 5_000,
            timeout_member_data: 50_000,
            timeout_tcp_inspect: 0,
        }
    }
}

/// `[quotas]`: per-project defaults; -1 = unlimited.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    pub default_load_balancer_quota: i64,
    pub default_listener_quota: i64,
    pub default_member_quota: i64,
    pub default_pool_quota: i64,
    pub default_health_monitor_quota: i64,
    pub default_l7policy_quota: i64,
    pub default_l7rule_quota: i64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            default_load_balancer_quota: -1,
            default_listener_quota: -1,
            default_member_quota: -1,
            default_pool_quota: -1,
            default_health_monitor_quota: -1,
            default_l7policy_quota: -1,
            default_l7rule_quota: -1,
        }
    }
}

/// `[logging]`: rocta's own logs (stderr).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `rocta_worker=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

#[cfg(test)]
mod tests;
