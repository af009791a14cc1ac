//! The entities. Field names are Octavia's v2 API names; `#[serde(skip)]` fields are kept in the
//! store's indexed columns rather than in the entity's JSON document.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::enums::*;
use crate::time::{serde_ts, serde_ts_opt, Timestamp};
use crate::Id;

/// A load balancer: a VIP and the amphora that serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadBalancer {
    pub id: Id,
    pub name: String,
    pub description: String,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub admin_state_up: bool,
    pub project_id: String,
    #[serde(with = "serde_ts")]
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    #[serde(with = "serde_ts_opt")]
    #[schemars(with = "Option<String>")]
    pub updated_at: Option<Timestamp>,
    pub vip_address: Option<String>,
    pub vip_port_id: Option<String>,
    pub vip_subnet_id: Option<String>,
    pub vip_network_id: Option<String>,
    pub vip_sg_ids: Vec<String>,
    pub additional_vips: Vec<AdditionalVip>,
    pub provider: String,
    pub flavor_id: Option<String>,
    pub vip_qos_policy_id: Option<String>,
    pub tags: Vec<String>,
    pub availability_zone: Option<String>,
    pub vip_vnic_type: String,
}

/// A secondary VIP (API v2.26).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdditionalVip {
    pub subnet_id: String,
    pub ip_address: Option<String>,
    pub port_id: Option<String>,
}

/// A listener: a protocol and port on the load balancer's VIP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Listener {
    pub id: Id,
    /// Owning load balancer (a store column; rendered as `loadbalancers: [{id}]`).
    #[serde(skip, default = "crate::Id::nil")]
    pub lb_id: Id,
    pub name: String,
    pub description: String,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub admin_state_up: bool,
    pub protocol: ListenerProtocol,
    pub protocol_port: u16,
    /// -1 = unlimited (HAProxy gets the configured default connection limit).
    pub connection_limit: i64,
    pub default_tls_container_ref: Option<String>,
    pub sni_container_refs: Vec<String>,
    pub project_id: String,
    pub default_pool_id: Option<Id>,
    pub insert_headers: BTreeMap<String, String>,
    #[serde(with = "serde_ts")]
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    #[serde(with = "serde_ts_opt")]
    #[schemars(with = "Option<String>")]
    pub updated_at: Option<Timestamp>,
    /// Milliseconds.
    pub timeout_client_data: i64,
    pub timeout_member_connect: i64,
    pub timeout_member_data: i64,
    pub timeout_tcp_inspect: i64,
    pub tags: Vec<String>,
    pub client_ca_tls_container_ref: Option<String>,
    pub client_authentication: ClientAuthentication,
    pub client_crl_container_ref: Option<String>,
    /// `null` on the wire when empty, as Octavia.
    pub allowed_cidrs: Option<Vec<String>>,
    pub tls_ciphers: Option<String>,
    pub tls_versions: Option<Vec<String>>,
    pub alpn_protocols: Option<Vec<String>>,
    pub hsts_max_age: Option<i64>,
    pub hsts_include_subdomains: bool,
    pub hsts_preload: bool,
}

/// Session persistence of a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionPersistence {
    #[serde(rename = "type")]
    pub kind: PersistenceType,
    pub cookie_name: Option<String>,
    pub persistence_timeout: Option<i64>,
    pub persistence_granularity: Option<String>,
}

/// A pool of members behind a listener (or an L7 policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pool {
    pub id: Id,
    #[serde(skip, default = "crate::Id::nil")]
    pub lb_id: Id,
    pub name: String,
    pub description: String,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub admin_state_up: bool,
    pub protocol: PoolProtocol,
    pub lb_algorithm: LbAlgorithm,
    pub session_persistence: Option<SessionPersistence>,
    pub project_id: String,
    #[serde(with = "serde_ts")]
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    #[serde(with = "serde_ts_opt")]
    #[schemars(with = "Option<String>")]
    pub updated_at: Option<Timestamp>,
    pub tags: Vec<String>,
    pub tls_container_ref: Option<String>,
    pub ca_tls_container_ref: Option<String>,
    pub crl_container_ref: Option<String>,
    pub tls_enabled: bool,
    pub tls_ciphers: Option<String>,
    pub tls_versions: Option<Vec<String>>,
    pub alpn_protocols: Option<Vec<String>>,
}

/// A backend server of a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Member {
    pub id: Id,
    #[serde(skip, default = "crate::Id::nil")]
    pub pool_id: Id,
    #[serde(skip, default = "crate::Id::nil")]
    pub lb_id: Id,
    pub name: String,
    pub operating_status: OperatingStatus,
    pub provisioning_status: ProvisioningStatus,
    pub admin_state_up: bool,
    pub address: String,
    pub protocol_port: u16,
    /// 0..=256; 0 drains the member.
    pub weight: u16,
    pub backup: bool,
    pub subnet_id: Option<String>,
    pub project_id: String,
    #[serde(with = "serde_ts")]
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    #[serde(with = "serde_ts_opt")]
    #[schemars(with = "Option<String>")]
    pub updated_at: Option<Timestamp>,
    pub monitor_address: Option<String>,
    pub monitor_port: Option<u16>,
    pub tags: Vec<String>,
    pub vnic_type: String,
}

/// The health monitor of a pool (at most one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthMonitor {
    pub id: Id,
    #[serde(skip, default = "crate::Id::nil")]
    pub pool_id: Id,
    #[serde(skip, default = "crate::Id::nil")]
    pub lb_id: Id,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: HealthMonitorType,
    /// Seconds between checks.
    pub delay: i64,
    /// Seconds a check may take.
    pub timeout: i64,
    /// Successes to go up (HAProxy `rise`).
    pub max_retries: i64,
    /// Failures to go down (HAProxy `fall`).
    pub max_retries_down: i64,
    pub http_method: Option<HttpMethod>,
    pub url_path: Option<String>,
    pub expected_codes: Option<String>,
    pub admin_state_up: bool,
    pub project_id: String,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    #[serde(with = "serde_ts")]
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    #[serde(with = "serde_ts_opt")]
    #[schemars(with = "Option<String>")]
    pub updated_at: Option<Timestamp>,
    pub tags: Vec<String>,
    pub http_version: Option<f64>,
    pub domain_name: Option<String>,
}

/// An L7 policy of an HTTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct L7Policy {
    pub id: Id,
    #[serde(skip, default = "crate::Id::nil")]
    pub lb_id: Id,
    pub name: String,
    pub description: String,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub admin_state_up: bool,
    pub project_id: String,
    pub action: L7PolicyAction,
    pub listener_id: Id,
    pub redirect_pool_id: Option<Id>,
    pub redirect_url: Option<String>,
    pub redirect_prefix: Option<String>,
    /// 1-based; contiguous within a listener.
    pub position: i64,
    #[serde(with = "serde_ts")]
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    #[serde(with = "serde_ts_opt")]
    #[schemars(with = "Option<String>")]
    pub updated_at: Option<Timestamp>,
    pub tags: Vec<String>,
    pub redirect_http_code: Option<u16>,
}

/// A rule of an L7 policy (rules of a policy are AND-ed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct L7Rule {
    pub id: Id,
    #[serde(skip, default = "crate::Id::nil")]
    pub l7policy_id: Id,
    #[serde(skip, default = "crate::Id::nil")]
    pub lb_id: Id,
    #[serde(rename = "type")]
    pub kind: L7RuleType,
    pub compare_type: L7CompareType,
    pub key: Option<String>,
    pub value: String,
    pub invert: bool,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    #[serde(with = "serde_ts")]
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    #[serde(with = "serde_ts_opt")]
    #[schemars(with = "Option<String>")]
    pub updated_at: Option<Timestamp>,
    pub project_id: String,
    pub admin_state_up: bool,
    pub tags: Vec<String>,
}

/// An amphora: the host (here: a process or a noop record) that runs a load balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Amphora {
    pub id: Id,
    pub loadbalancer_id: Option<Id>,
    pub compute_id: Option<String>,
    pub lb_network_ip: Option<String>,
    pub vrrp_ip: Option<String>,
    pub ha_ip: Option<String>,
    pub vrrp_port_id: Option<String>,
    pub ha_port_id: Option<String>,
    #[serde(with = "serde_ts_opt")]
    #[schemars(with = "Option<String>")]
    pub cert_expiration: Option<Timestamp>,
    pub cert_busy: bool,
    pub role: Option<AmphoraRole>,
    pub status: AmphoraStatus,
    pub vrrp_interface: Option<String>,
    pub vrrp_id: Option<i64>,
    pub vrrp_priority: Option<i64>,
    pub cached_zone: Option<String>,
    #[serde(with = "serde_ts")]
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    #[serde(with = "serde_ts_opt")]
    #[schemars(with = "Option<String>")]
    pub updated_at: Option<Timestamp>,
    pub image_id: Option<String>,
    pub compute_flavor: Option<String>,
}

/// Per-project quota overrides; `None` = the deployment default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Quota {
    pub loadbalancer: Option<i64>,
    pub listener: Option<i64>,
    pub member: Option<i64>,
    pub pool: Option<i64>,
    pub healthmonitor: Option<i64>,
    pub l7policy: Option<i64>,
    pub l7rule: Option<i64>,
}

/// The quota'd resource kinds, with their Octavia names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaResource {
    LoadBalancer,
    Listener,
    Pool,
    Member,
    HealthMonitor,
    L7Policy,
    L7Rule,
}

impl QuotaResource {
    /// Octavia's name in the "Quota has been met for resources: X" message.
    pub fn octavia_name(self) -> &'static str {
        match self {
            Self::LoadBalancer => "Load Balancer",
            Self::Listener => "Listener",
            Self::Pool => "Pool",
            Self::Member => "Member",
            Self::HealthMonitor => "Health Monitor",
            Self::L7Policy => "L7 Policy",
            Self::L7Rule => "L7 Rule",
        }
    }
}

impl Quota {
    /// The override for one resource.
    pub fn get(&self, r: QuotaResource) -> Option<i64> {
        match r {
            QuotaResource::LoadBalancer => self.loadbalancer,
            QuotaResource::Listener => self.listener,
            QuotaResource::Pool => self.pool,
            QuotaResource::Member => self.member,
            QuotaResource::HealthMonitor => self.healthmonitor,
            QuotaResource::L7Policy => self.l7policy,
            QuotaResource::L7Rule => self.l7rule,
        }
    }
}

/// Traffic counters of one listener as served by one amphora.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub active_connections: i64,
    pub total_connections: i64,
    pub request_errors: i64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.active_connections += o.active_connections;
        self.total_connections += o.total_connections;
        self.request_errors += o.request_errors;
    }
}
