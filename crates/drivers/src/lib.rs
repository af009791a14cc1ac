//! The driver traits the worker (and, for VIP allocation, the API) use to act on the world, and
//! their implementations. Only the binary chooses implementations (from `[controller_worker]`).
//!
//! Layout:
//! - this file: the traits `Compute`, `Network`, `AmphoraDriver`, `CertManager`, their data
//!   types and `DriverError`.
//! - `noop`: implementations that act on nothing but record what they hold in a state directory,
//!   so tests can prove that nothing leaks (every record must belong to a live object).
//! - `local` (compute: an agent process per amphora on this host, sharing its loopback or, in
//!   the `netns` placement, in a network namespace of its own), `loopback` (network: VIPs in
//!   127.10.0.0/16, management addresses in 127.20.0.0/16), `netns` (network: VIPs on Linux
//!   bridges plugged into the amphorae's namespaces), `addresses` (reservations both use),
//!   `rest` (the agent API over mutual TLS), `pki` (rocta's CAs and certificates;
//!   `LocalCerts` is its `CertManager`).

pub mod addresses;
mod fault;
pub mod hostnet;
pub mod local;
pub mod loopback;
pub mod netns;
pub mod noop;
pub mod openstack;
pub mod pki;
pub mod rest;

use rocta_model::{Amphora, Id, LbTree};
use serde::{Deserialize, Serialize};

/// A driver failure: which operation, why, and whether retrying can help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op}: {message}")]
pub struct DriverError {
    pub op: &'static str,
    pub message: String,
    /// Transient (peer not reachable yet, rate limited): the flow engine retries.
    pub retryable: bool,
}

impl DriverError {
    pub fn fatal(op: &'static str, message: impl Into<String>) -> Self {
        DriverError {
            op,
            message: message.into(),
            retryable: false,
        }
    }

    pub fn transient(op: &'static str, message: impl Into<String>) -> Self {
        DriverError {
            op,
            message: message.into(),
            retryable: true,
        }
    }
}

pub type DriverResult<T> = Result<T, DriverError>;

/// What the API asked for as VIP.
#[derive(Debug, Clone, Default)]
pub struct VipRequest {
    pub lb_id: Id,
    pub subnet_id: Option<String>,
    pub network_id: Option<String>,
    pub port_id: Option<String>,
    pub address: Option<String>,
    /// The project the load balancer is made for (the VIP port's owner in Neutron).
    pub project_id: Option<String>,
    /// `vip_qos_policy_id`: the VIP port's QoS policy (Neutron).
    pub qos_policy_id: Option<String>,
    /// `vip_sg_ids`: security groups of the user's that must exist (Neutron).
    pub sg_ids: Vec<String>,
    /// `additional_vips`: one more address on each of these subnets of the VIP's network
    /// (the address when given), all on the VIP port.
    pub additional: Vec<AdditionalVipRequest>,
}

/// One of `additional_vips` as asked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdditionalVipRequest {
    pub subnet_id: String,
    pub address: Option<String>,
}

/// An additional VIP as allocated: an address of the VIP port on another subnet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdditionalVipAddress {
    pub subnet_id: String,
    pub address: String,
}

/// An allocated VIP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vip {
    pub address: String,
    pub port_id: String,
    pub subnet_id: String,
    pub network_id: String,
    /// `additional_vips`, on the same port and network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional: Vec<AdditionalVipAddress>,
}

/// Why a VIP request was refused (the API answers 400 with this text).
#[derive(Debug, Clone, thiserror::Error)]
pub enum VipError {
    #[error("{0}")]
    Invalid(String),
    /// The network refused it as conflicting (the address is in use): the API answers 409.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// The amphora's attachment to the VIP network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VipPlug {
    pub vrrp_ip: String,
    pub ha_ip: String,
    pub vrrp_port_id: String,
    pub ha_port_id: String,
    /// The port's interface as the agent finds it (Octavia's plug-VIP body); `None` where the
    /// amphora needs no interface configured (loopback).
    #[serde(default)]
    pub mac_address: Option<String>,
    #[serde(default)]
    pub subnet_cidr: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The additional VIPs with their subnets (Octavia's plug-VIP `additional_vips`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional: Vec<AdditionalVipPlug>,
}

/// An additional VIP as the agent configures it (Octavia's plug-VIP body).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdditionalVipPlug {
    pub ip_address: String,
    pub subnet_cidr: String,
    pub gateway: Option<String>,
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
}

/// A subnet's host route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

/// What the compute driver made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub compute_id: String,
    /// Address of the agent on the management network.
    pub lb_network_ip: String,
}

/// What an amphora boots with (Octavia's config drive): its server certificate and the CA of
/// the controller's client certificates.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    pub server_pem: String,
    pub client_ca_pem: String,
    /// Where to place it: the compute zone of its availability zone (Nova's
    /// `availability_zone`); `None`: anywhere.
    pub zone: Option<String>,
    /// The compute flavor its load balancer's flavor asks for; `None`: the driver's default.
    pub compute_flavor: Option<String>,
    /// The image tag its load balancer's flavor asks for (`amp_image_tag`); `None`: the
    /// driver's default.
    pub image_tag: Option<String>,
    /// The management network its availability zone names (Octavia's `management_network`);
    /// `None`: `[controller_worker] amp_boot_network_list`'s.
    pub management_network: Option<String>,
    /// The load balancer whose ACTIVE_STANDBY pair the amphora belongs to: compute drivers
    /// that can (Nova, with `[nova] enable_anti_affinity`) place the two apart.
    pub pair_of: Option<Id>,
}

/// Where amphorae run (Octavia's compute driver).
#[async_trait::async_trait]
pub trait Compute: Send + Sync {
    /// Boots the amphora `amphora_id`. Idempotent: booting an id that exists returns it.
    async fn create(&self, amphora_id: Id, boot: &Boot) -> DriverResult<Instance>;
    /// Destroys the instance of amphora `amphora_id` (found by amphora id, so a revert works
    /// even when the compute id was never recorded). Idempotent: an unknown id is already gone.
    async fn delete(&self, amphora_id: Id) -> DriverResult<()>;
    /// Why the instance of `amphora_id` no longer runs (Nova: `ERROR` and its fault, or gone),
    /// `None` while it runs. A boot that died is given up at once instead of waited for, with
    /// this reason in the flow's error. Read-only.
    async fn stopped(&self, amphora_id: Id) -> DriverResult<Option<String>>;
    /// The agent configuration amphora `amphora_id` would boot with now (its config drive's,
    /// with the controller's current health managers, heartbeat key and interval).
    async fn agent_config(&self, amphora_id: Id) -> DriverResult<String>;
    /// Whether amphorae can be placed in compute zone `zone` and booted on management
    /// network `management_network` (an availability zone profile's settings; Octavia's
    /// `validate_availability_zone`): the error says which cannot, for the API's 400. The
    /// default (noop) places anything anywhere. Read-only.
    async fn check_placement(
        &self,
        _zone: Option<&str>,
        _management_network: Option<&str>,
    ) -> Result<(), String> {
        Ok(())
    }
    /// Whether amphorae can be built with compute flavor `compute_flavor` from the image
    /// tagged `image_tag` (a flavor profile's settings; Octavia's `validate_flavor`). As
    /// `check_placement`: the error says which cannot; noop builds anything. Read-only.
    async fn check_flavor(
        &self,
        _compute_flavor: Option<&str>,
        _image_tag: Option<&str>,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// VIPs and ports (Octavia's network driver).
#[async_trait::async_trait]
pub trait Network: Send + Sync {
    /// Reserves the VIP of a new load balancer (the API does this synchronously, as Octavia).
    async fn allocate_vip(&self, req: &VipRequest) -> Result<Vip, VipError>;
    /// Releases it. Idempotent.
    async fn deallocate_vip(&self, vip: &Vip) -> DriverResult<()>;
    /// Releases whatever VIP was allocated for `lb_id`, found by what the allocation records
    /// (as Octavia finds a VIP port by its name, `octavia-lb-<id>`): the VIP of a load balancer
    /// whose API process died before recording it. Idempotent; nothing allocated is fine.
    async fn deallocate_vips_of(&self, lb_id: Id) -> DriverResult<()>;
    /// Attaches an amphora to the VIP network. Idempotent.
    async fn plug_vip(&self, amphora: &Amphora, vip: &Vip) -> DriverResult<VipPlug>;
    /// Detaches it. Idempotent.
    async fn unplug_vip(&self, amphora: &Amphora, vip: &Vip) -> DriverResult<()>;
    /// The networks this driver owns and hands VIPs out of (the API serves them as a
    /// read-only Neutron view, so clients resolve `--vip-subnet-id public`). None by default.
    fn networks(&self) -> Vec<NetworkInfo> {
        Vec::new()
    }
    /// Whether network `id` exists (an availability zone's `valid_vip_networks`; Octavia's
    /// `get_network`). Drivers that own no networks (noop) know of every one.
    async fn has_network(&self, _id: &str) -> bool {
        true
    }
    /// Attaches an amphora to a member subnet (Octavia's plug-network): `None` where members
    /// need no port of their own (loopback, noop). Idempotent.
    async fn plug_network(
        &self,
        _amphora: &Amphora,
        _subnet_id: &str,
    ) -> DriverResult<Option<NetworkPlug>> {
        Ok(None)
    }
    /// Detaches an amphora from the member subnets it no longer needs (Octavia's
    /// unplug-network of a network delta): every member port of it but those on `keep`, after
    /// the configuration without their members is applied. Idempotent; nothing by default.
    async fn unplug_networks(&self, _amphora: &Amphora, _keep: &[String]) -> DriverResult<()> {
        Ok(())
    }
    /// Makes the VIP's filtering match the load balancer's listeners (Octavia's `update_vip`:
    /// the security group's rules), before each configuration push. Nothing by default.
    async fn update_vip(&self, _tree: &LbTree) -> DriverResult<()> {
        Ok(())
    }
    /// Releases the ports it gave an amphora (member subnets, the VIP network) before its
    /// instance is deleted. Idempotent; nothing by default.
    async fn release_amphora(&self, _amphora: &Amphora) -> DriverResult<()> {
        Ok(())
    }
    /// Whether it can give a load balancer two amphorae that move the VIP between them with
    /// VRRP (ACTIVE_STANDBY): each on a network of its own, reachable by the other.
    fn supports_active_standby(&self) -> bool {
        false
    }
    /// Whether amphorae on its networks can forward UDP and SCTP listeners in the kernel
    /// (nftables in a network namespace of their own).
    fn supports_udp(&self) -> bool {
        false
    }
    /// Whether amphorae on its networks can balance UDP and SCTP pools by least connections
    /// (nftables cannot: it keeps no connection count per member).
    fn udp_least_connections(&self) -> bool {
        false
    }
    /// Whether it can make a VIP port an SR-IOV virtual function (a flavor's `sriov_vip`).
    fn supports_sriov_vip(&self) -> bool {
        false
    }
}

/// An amphora's port on a member subnet, as the agent configures it.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkPlug {
    pub mac_address: String,
    pub ip_address: String,
    pub subnet_cidr: String,
    pub mtu: u32,
}

/// A network a network driver owns, with its subnets.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub subnets: Vec<SubnetInfo>,
}

/// A subnet of a [`NetworkInfo`].
#[derive(Debug, Clone, PartialEq)]
pub struct SubnetInfo {
    pub id: String,
    pub name: String,
    pub cidr: String,
    pub ip_version: u8,
    pub gateway_ip: Option<String>,
    /// Inclusive address ranges VIPs come from.
    pub allocation_pools: Vec<(String, String)>,
}

/// How the controller talks to an amphora's agent.
#[async_trait::async_trait]
pub trait AmphoraDriver: Send + Sync {
    /// Returns once the agent answers; a transient error while it does not yet.
    async fn wait_ready(&self, amphora: &Amphora) -> DriverResult<()>;
    /// Configures the VIP inside the amphora.
    async fn post_vip_plug(&self, amphora: &Amphora, vip: &Vip, plug: &VipPlug)
        -> DriverResult<()>;
    /// Configures a member subnet's port inside the amphora (`POST /1.0/plug/network`).
    async fn post_network_plug(&self, amphora: &Amphora, plug: &NetworkPlug) -> DriverResult<()>;
    /// Makes the amphora serve `tree` (render, upload, validate, reload), sharing its stick
    /// tables with `peers` (the amphorae of its ACTIVE_STANDBY pair, itself included; empty
    /// for SINGLE). Idempotent.
    async fn apply(&self, amphora: &Amphora, tree: &LbTree, peers: &[Peer]) -> DriverResult<()>;
    /// Stops serving load balancer `lb_id`. Idempotent.
    async fn remove(&self, amphora: &Amphora, lb_id: Id) -> DriverResult<()>;
    /// Replaces the agent's server certificate (PEM: certificate and key). Idempotent.
    async fn rotate_cert(&self, amphora: &Amphora, pem: &str) -> DriverResult<()>;
    /// Replaces the agent's configuration (`PUT /1.0/config`); its heartbeat settings take
    /// effect at once. Idempotent.
    async fn update_agent_config(&self, amphora: &Amphora, config: &str) -> DriverResult<()>;
    /// Configures and starts (or reloads) the amphora's keepalived for its part in an
    /// ACTIVE_STANDBY pair (`PUT /1.0/vrrp/upload`, `PUT /1.0/vrrp/start`). Idempotent.
    async fn update_vrrp(&self, amphora: &Amphora, plan: &VrrpPlan) -> DriverResult<()>;
}

/// An amphora of an ACTIVE_STANDBY pair, as HAProxy's `peers` section names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub amphora_id: Id,
    /// Its own address on the VIP network.
    pub address: String,
}

/// An amphora's part in its load balancer's VRRP pair.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpPlan {
    pub lb_id: Id,
    /// 100 for MASTER, 90 for BACKUP.
    pub priority: u8,
    /// Its own address on the VIP network.
    pub src_ip: String,
    /// The other amphora's.
    pub peers: Vec<String>,
    /// The VIP with the subnet's prefix length.
    pub vip_cidr: String,
    /// The additional VIPs as host addresses (`/32`, `/128`): keepalived moves them with the
    /// VIP; the agent routed their subnets to the VIP's interface when it plugged it.
    pub additional_cidrs: Vec<String>,
    pub settings: VrrpSettings,
}

/// `[keepalived_vrrp]`: Octavia's option names.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpSettings {
    pub advert_int: f64,
    pub check_interval: f64,
    pub fail_count: u32,
    pub success_count: u32,
    pub garp_refresh_interval: u32,
    pub garp_refresh_count: u32,
}

impl Default for VrrpSettings {
    fn default() -> Self {
        VrrpSettings {
            advert_int: 0.2,
            check_interval: 1.0,
            fail_count: 2,
            success_count: 2,
            garp_refresh_interval: 5,
            garp_refresh_count: 2,
        }
    }
}

/// An amphora's server certificate, as issued.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedCert {
    /// Certificate and private key, PEM (never journaled).
    pub pem: String,
    /// Seconds since the epoch.
    pub not_after: i64,
}

/// rocta's PKI (Octavia's certificate generator).
#[async_trait::async_trait]
pub trait CertManager: Send + Sync {
    /// Issues (or re-issues) the server certificate of an amphora. Idempotent.
    async fn issue_amphora_cert(&self, amphora_id: Id) -> DriverResult<IssuedCert>;
    /// Forgets it. Idempotent.
    async fn revoke_amphora_cert(&self, amphora_id: Id) -> DriverResult<()>;
    /// The CA agents must trust for the controller's client certificate.
    fn client_ca_pem(&self) -> String;
}

/// Octavia's certificate manager (`[certificates] cert_manager`): where the TLS material
/// listeners and pools reference is kept by its owner (`default_tls_container_ref`,
/// `sni_container_refs`, `client_ca_tls_container_ref`, `*_crl_container_ref`,
/// `tls_container_ref`, `ca_tls_container_ref`).
#[async_trait::async_trait]
pub trait TlsStore: Send + Sync {
    /// What the API does before it accepts a reference: lets the service read it on behalf of
    /// the caller (Octavia's `set_acls`, with the caller's own token when there is one), then
    /// reads it once. An error's message is the 400's detail.
    async fn check(&self, caller_token: Option<&str>, reference: &str) -> DriverResult<()>;
    /// The PEM bundle a reference names: certificate, private key and chain; or a CA / CRL.
    async fn fetch(&self, reference: &str) -> DriverResult<String>;
    /// Records `resource` (the listener's or pool's API URL) as a consumer of `reference`,
    /// where the store keeps consumers (Barbican's certificate containers). Idempotent.
    async fn add_consumer(&self, _reference: &str, _resource: &str) -> DriverResult<()> {
        Ok(())
    }
    /// Removes that record. Idempotent.
    async fn remove_consumer(&self, _reference: &str, _resource: &str) -> DriverResult<()> {
        Ok(())
    }
}

/// The drivers a worker uses, chosen once by the binary.
#[derive(Clone)]
pub struct Drivers {
    pub compute: std::sync::Arc<dyn Compute>,
    pub network: std::sync::Arc<dyn Network>,
    pub amphora: std::sync::Arc<dyn AmphoraDriver>,
    pub certs: std::sync::Arc<dyn CertManager>,
    pub tls: std::sync::Arc<dyn TlsStore>,
}
