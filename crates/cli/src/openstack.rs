//! The OpenStack drivers from the configuration: one Keystone session as `[service_auth]` for
//! the process, the `nova` compute driver from `[controller_worker]`'s `amp_*` options and the
//! `[nova]`, `[glance]`, `[neutron]` endpoint options.

use std::sync::Arc;
use std::time::Duration;

use rocta_config::{Config, ServiceEndpoint};
use rocta_drivers::openstack::{barbican, neutron, nova, Endpoint, Session, SessionConfig};

use crate::boot::BootError;

/// The catalog entry of a service of type `service_type` as its section says.
fn endpoint(service_type: &str, e: &ServiceEndpoint) -> Endpoint {
    Endpoint {
        service_type: service_type.into(),
        interfaces: e.interfaces(),
        region: e.region_name.clone(),
        endpoint_override: e.url_override().to_string(),
    }
}

/// The process's session as the service user.
pub fn session(cfg: &Config) -> Result<Arc<Session>, BootError> {
    let a = &cfg.service_auth;
    Session::new(SessionConfig {
        auth_url: a.auth_url.clone(),
        username: a.username.clone(),
        password: a.password.clone(),
        project_name: a.project_name.clone(),
        user_domain_name: a.user_domain_name.clone(),
        project_domain_name: a.project_domain_name.clone(),
        cafile: a.cafile.clone(),
        insecure: a.insecure,
        timeout: Duration::from_secs_f64(a.timeout),
        retries: a.connect_retries,
        backoff: Duration::from_secs_f64(a.retry_interval),
    })
    .map(Arc::new)
    .map_err(|e| BootError::BuildDrivers(format!("[service_auth]: {e}")))
}

/// `[certificates] cert_manager = "barbican_cert_manager"`.
pub fn barbican_tls(cfg: &Config, session: Arc<Session>) -> barbican::BarbicanTls {
    let c = &cfg.certificates;
    barbican::BarbicanTls::new(
        session,
        endpoint("key-manager", &c.barbican_endpoint()),
        &c.service_name,
    )
}

/// `network_driver = "neutron"`.
pub fn neutron_network(cfg: &Config, session: Arc<Session>) -> neutron::NeutronNetwork {
    neutron::NeutronNetwork::new(
        session,
        endpoint("network", &cfg.neutron),
        endpoint("compute", &cfg.nova.endpoint()),
    )
}

/// `compute_driver = "nova"`.
pub fn nova_compute(
    cfg: &Config,
    session: Arc<Session>,
    heartbeat: rocta_drivers::local::HeartbeatTarget,
) -> nova::NovaCompute {
    let w = &cfg.controller_worker;
    nova::NovaCompute::new(
        session,
        nova::NovaSettings {
            nova: endpoint("compute", &cfg.nova.endpoint()),
            glance: endpoint("image", &cfg.glance),
            neutron: endpoint("network", &cfg.neutron),
            image_tag: w.amp_image_tag.clone(),
            image_owner_id: w.amp_image_owner_id.clone(),
            flavor_id: w.amp_flavor_id.clone(),
            ssh_key_name: w.amp_ssh_key_name.clone(),
            secgroups: w.amp_secgroup_list.clone(),
            boot_networks: w.amp_boot_network_list.clone(),
            active_retries: w.amp_active_retries,
            active_wait: Duration::from_secs(w.amp_active_wait_sec),
            user_data_config_drive: w.user_data_config_drive,
            availability_zone: cfg.nova.availability_zone.clone(),
            heartbeat,
            topology: w.loadbalancer_topology.clone(),
            anti_affinity: cfg
                .nova
                .enable_anti_affinity
                .then(|| cfg.nova.anti_affinity_policy.clone()),
        },
    )
}
