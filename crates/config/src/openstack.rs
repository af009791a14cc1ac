//! The OpenStack drivers' sections, with Octavia's option names: `[service_auth]` (how the
//! drivers authenticate to Keystone, keystoneauth's password plugin), `[nova]`, `[neutron]`
//! and `[glance]` (where each service is and how to reach it).

use serde::Deserialize;

/// `[service_auth]`: the Keystone user rocta's drivers act as (Octavia's service user).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceAuth {
    /// Keystone's identity endpoint (`http://HOST:5000` or `…/v3`).
    pub auth_url: String,
    /// Only `password`.
    pub auth_type: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    /// CA bundle (PEM) for https endpoints (Keystone's and the catalog's); empty = the
    /// system's roots.
    pub cafile: String,
    /// Do not verify certificates (tests only).
    pub insecure: bool,
    /// Seconds one HTTP exchange with an OpenStack service may take.
    pub timeout: f64,
    /// Attempts after the first while a service cannot be reached or answers 502–504, with
    /// exponential backoff from `retry_interval` seconds (rocta's; keystoneauth's
    /// `connect_retries` / `status_code_retries`).
    pub connect_retries: u32,
    pub retry_interval: f64,
}

impl Default for ServiceAuth {
    fn default() -> Self {
        ServiceAuth {
            auth_url: String::new(),
            auth_type: "password".into(),
            username: String::new(),
            password: String::new(),
            project_name: String::new(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            cafile: String::new(),
            insecure: false,
            timeout: 60.0,
            connect_retries: 5,
            retry_interval: 1.0,
        }
    }
}

/// Where one OpenStack service is (`[neutron]`, `[glance]`; `[nova]` carries the same).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceEndpoint {
    /// A fixed URL instead of the catalog's (`endpoint_override`; Octavia's older name
    /// `endpoint` is read too).
    pub endpoint_override: String,
    pub endpoint: String,
    /// The catalog's region; empty = any.
    pub region_name: String,
    /// Which of the catalog's interfaces, in order (`public`, `internal`, `admin`);
    /// Octavia's older single `endpoint_type` (`publicURL`, ...) is read when this is empty.
    pub valid_interfaces: Vec<String>,
    pub endpoint_type: String,
    /// Accepted for compatibility (services are found by type).
    pub service_name: String,
    /// Accepted for compatibility: `[service_auth] cafile` and `insecure` apply to every
    /// service (one session serves them all).
    pub ca_certificates_file: String,
    pub insecure: bool,
}

impl Default for ServiceEndpoint {
    fn default() -> Self {
        ServiceEndpoint {
            endpoint_override: String::new(),
            endpoint: String::new(),
            region_name: String::new(),
            valid_interfaces: Vec::new(),
            endpoint_type: "publicURL".into(),
            service_name: String::new(),
            ca_certificates_file: String::new(),
            insecure: false,
        }
    }
}

impl ServiceEndpoint {
    /// The fixed URL, if any.
    pub fn url_override(&self) -> &str {
        if self.endpoint_override.is_empty() {
            &self.endpoint
        } else {
            &self.endpoint_override
        }
    }

    /// The catalog interfaces to try, in order.
    pub fn interfaces(&self) -> Vec<String> {
        if self.valid_interfaces.is_empty() {
            vec![self.endpoint_type.clone()]
        } else {
            self.valid_interfaces.clone()
        }
    }
}

/// `[nova]`: the compute service, and how amphorae are placed on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nova {
    pub endpoint_override: String,
    pub endpoint: String,
    pub region_name: String,
    pub valid_interfaces: Vec<String>,
    pub endpoint_type: String,
    pub service_name: String,
    pub ca_certificates_file: String,
    pub insecure: bool,
    /// Put the two amphorae of an ACTIVE_STANDBY load balancer in a server group with
    /// `anti_affinity_policy`, so Nova places them on different hosts.
    pub enable_anti_affinity: bool,
    /// `anti-affinity` (a second host is required) or `soft-anti-affinity` (preferred).
    pub anti_affinity_policy: String,
    /// Name amphora servers `a` + this many random characters instead of `amphora-<id>`
    /// (0: the id).
    pub random_amphora_name_length: usize,
    /// The availability zone servers boot in when the load balancer's has none; empty:
    /// Nova's choice.
    pub availability_zone: String,
}

impl Default for Nova {
    fn default() -> Self {
        let e = ServiceEndpoint::default();
        Nova {
            endpoint_override: e.endpoint_override,
            endpoint: e.endpoint,
            region_name: e.region_name,
            valid_interfaces: e.valid_interfaces,
            endpoint_type: e.endpoint_type,
            service_name: e.service_name,
            ca_certificates_file: e.ca_certificates_file,
            insecure: e.insecure,
            enable_anti_affinity: false,
            anti_affinity_policy: "anti-affinity".into(),
            random_amphora_name_length: 0,
            availability_zone: String::new(),
        }
    }
}

impl Nova {
    /// Its endpoint options.
    pub fn endpoint(&self) -> ServiceEndpoint {
        ServiceEndpoint {
            endpoint_override: self.endpoint_override.clone(),
            endpoint: self.endpoint.clone(),
            region_name: self.region_name.clone(),
            valid_interfaces: self.valid_interfaces.clone(),
            endpoint_type: self.endpoint_type.clone(),
            service_name: self.service_name.clone(),
            ca_certificates_file: self.ca_certificates_file.clone(),
            insecure: self.insecure,
        }
    }
}

/// What the OpenStack drivers need, checked when `compute_driver = "nova"` or
/// `network_driver = "neutron"` (which attaches its ports to Nova servers: it needs both).
pub(crate) fn check(cfg: &crate::Config) -> Result<(), crate::ConfigError> {
    let invalid = |section, key, reason: &str| crate::ConfigError::Invalid {
        section,
        key,
        reason: reason.to_string(),
    };
    let w = &cfg.controller_worker;
    let nova = w.compute_driver == crate::ComputeDriver::Nova;
    let neutron = w.network_driver == crate::NetworkDriver::Neutron;
    let barbican = cfg.certificates.cert_manager == crate::TlsManager::Barbican;
    if barbican && cfg.certificates.barbican_auth != "barbican_acl_auth" {
        return Err(invalid(
            "certificates",
            "barbican_auth",
            "only \"barbican_acl_auth\" is available",
        ));
    }
    if !nova && !neutron && !barbican {
        return Ok(());
    }
    check_service_auth(&cfg.service_auth)?;
    if !nova && !neutron {
        return Ok(());
    }
    if nova != neutron {
        return Err(invalid(
            "controller_worker",
            if nova {
                "network_driver"
            } else {
                "compute_driver"
            },
            "compute_driver \"nova\" and network_driver \"neutron\" go together",
        ));
    }
    for (key, v) in [
        ("amp_image_tag", &w.amp_image_tag),
        ("amp_flavor_id", &w.amp_flavor_id),
    ] {
        if v.is_empty() {
            return Err(invalid(
                "controller_worker",
                key,
                "must be set when compute_driver is \"nova\"",
            ));
        }
    }
    if w.amp_boot_network_list.is_empty() {
        return Err(invalid(
            "controller_worker",
            "amp_boot_network_list",
            "must name the management network when compute_driver is \"nova\"",
        ));
    }
    if w.amp_active_retries == 0 || w.amp_active_wait_sec == 0 {
        return Err(invalid(
            "controller_worker",
            "amp_active_retries",
            "amp_active_retries and amp_active_wait_sec must be at least 1",
        ));
    }
    if !matches!(
        cfg.nova.anti_affinity_policy.as_str(),
        "anti-affinity" | "soft-anti-affinity"
    ) {
        return Err(invalid(
            "nova",
            "anti_affinity_policy",
            "must be \"anti-affinity\" or \"soft-anti-affinity\"",
        ));
    }
    Ok(())
}

/// `[service_auth]`, which every OpenStack driver (Nova, Neutron, Barbican) needs.
fn check_service_auth(a: &ServiceAuth) -> Result<(), crate::ConfigError> {
    let invalid = |section, key, reason: &str| crate::ConfigError::Invalid {
        section,
        key,
        reason: reason.to_string(),
    };
    for (key, v) in [
        ("auth_url", &a.auth_url),
        ("username", &a.username),
        ("password", &a.password),
        ("project_name", &a.project_name),
    ] {
        if v.is_empty() {
            return Err(invalid(
                "service_auth",
                key,
                "must be set for the OpenStack drivers (nova, neutron, barbican)",
            ));
        }
    }
    if a.auth_type != "password" {
        return Err(invalid(
            "service_auth",
            "auth_type",
            "only \"password\" is available",
        ));
    }
    if !(a.auth_url.starts_with("http://") || a.auth_url.starts_with("https://")) {
        return Err(invalid(
            "service_auth",
            "auth_url",
            "must be an http:// or https:// URL",
        ));
    }
    if !(a.timeout > 0.0 && a.retry_interval >= 0.0) {
        return Err(invalid(
            "service_auth",
            "timeout",
            "timeout must be above 0 and retry_interval at least 0",
        ));
    }
    Ok(())
}
