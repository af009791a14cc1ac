//! `Config::validate`: the values that parse but make no sense, each refused with its section
//! and key.

use crate::*;

impl Config {
    /// Checks the values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |section, key, reason: &str| ConfigError::Invalid {
            section,
            key,
            reason: reason.to_string(),
        };
        match self.api_settings.auth_strategy.as_str() {
            "noauth" => {}
            "keystone" => {
                let k = &self.keystone_authtoken;
                for (key, v) in [
                    ("auth_url", &k.auth_url),
                    ("username", &k.username),
                    ("password", &k.password),
                    ("project_name", &k.project_name),
                ] {
                    if v.is_empty() {
                        return Err(invalid(
                            "keystone_authtoken",
                            key,
                            "must be set when auth_strategy is \"keystone\"",
                        ));
                    }
                }
                if k.auth_type != "password" {
                    return Err(invalid(
                        "keystone_authtoken",
                        "auth_type",
                        "only \"password\" is available",
                    ));
                }
                if !(k.auth_url.starts_with("http://") || k.auth_url.starts_with("https://")) {
                    return Err(invalid(
                        "keystone_authtoken",
                        "auth_url",
                        "must be an http:// or https:// URL",
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    "api_settings",
                    "auth_strategy",
                    "must be \"keystone\" or \"noauth\"",
                ))
            }
        }
        let a = &self.amphora_agent;
        if !matches!(a.log_protocol.as_str(), "UDP" | "TCP") {
            return Err(invalid(
                "amphora_agent",
                "log_protocol",
                "must be \"UDP\" or \"TCP\"",
            ));
        }
        for (key, targets) in [
            ("tenant_log_targets", &a.tenant_log_targets),
            ("admin_log_targets", &a.admin_log_targets),
        ] {
            if let Some(t) = targets
                .iter()
                .find(|t| t.parse::<std::net::SocketAddr>().is_err())
            {
                return Err(invalid(
                    "amphora_agent",
                    key,
                    &format!("{t:?} is not an address and port (e.g. \"192.0.2.10:514\")"),
                ));
            }
        }
        for (key, f) in [
            ("user_log_facility", a.user_log_facility),
            ("administrative_log_facility", a.administrative_log_facility),
        ] {
            if f > 7 {
                return Err(invalid(
                    "amphora_agent",
                    key,
                    "must be 0 to 7 (local0 to local7)",
                ));
            }
        }
        if a.user_log_facility == a.administrative_log_facility {
            return Err(invalid(
                "amphora_agent",
                "administrative_log_facility",
                "must differ from user_log_facility",
            ));
        }
        if !(a.log_retry_interval.is_finite() && a.log_retry_interval > 0.0)
            || a.log_queue_size == 0
        {
            return Err(invalid(
                "amphora_agent",
                "log_retry_interval",
                "log_retry_interval and log_queue_size must be positive",
            ));
        }
        if !self
            .api_settings
            .enabled_provider_drivers
            .contains_key(&self.api_settings.default_provider_driver)
        {
            return Err(invalid(
                "api_settings",
                "default_provider_driver",
                "must be one of enabled_provider_drivers",
            ));
        }
        if self.api_settings.max_request_body_size < 1024 {
            return Err(invalid(
                "api_settings",
                "max_request_body_size",
                "must be at least 1024 bytes",
            ));
        }
        // Whether the drivers can place two amphorae is checked once they are chosen
        // (`--drivers`, root): `rocta` refuses ACTIVE_STANDBY on loopback at start.
        if !["SINGLE", "ACTIVE_STANDBY"]
            .contains(&self.controller_worker.loadbalancer_topology.as_str())
        {
            return Err(invalid(
                "controller_worker",
                "loadbalancer_topology",
                "must be SINGLE or ACTIVE_STANDBY",
            ));
        }
        let k = &self.keepalived_vrrp;
        if !(0.01..=255.0).contains(&k.vrrp_advert_int)
            || !(0.1..=3600.0).contains(&k.vrrp_check_interval)
            || k.vrrp_fail_count == 0
            || k.vrrp_success_count == 0
        {
            return Err(invalid(
                "keepalived_vrrp",
                "vrrp_advert_int",
                "advert_int 0.01 .. 255 s, check interval 0.1 .. 3600 s, counts at least 1",
            ));
        }
        let w = &self.controller_worker;
        if (w.compute_driver == ComputeDriver::Netns) != (w.network_driver == NetworkDriver::Netns)
        {
            return Err(invalid(
                "controller_worker",
                "compute_driver",
                "the netns compute and network drivers go together (amphorae in namespaces are plugged into the netns networks)",
            ));
        }
        let zones = &self.netns.compute_zones;
        if let Some((i, z)) = zones.iter().enumerate().find(|(i, z)| {
            z.name.is_empty() || z.name.len() > 255 || zones[..*i].iter().any(|o| o.name == z.name)
        }) {
            return Err(invalid(
                "netns",
                "compute_zones",
                &format!(
                    "zone {i} ({:?}): a name of 1 to 255 characters, each zone once",
                    z.name
                ),
            ));
        }
        if self.controller_worker.workers == 0 {
            return Err(invalid(
                "controller_worker",
                "workers",
                "must be at least 1",
            ));
        }
        if self.controller_worker.job_lease_seconds < 2 {
            return Err(invalid(
                "controller_worker",
                "job_lease_seconds",
                "must be at least 2",
            ));
        }
        if !["off", "normal", "full"].contains(&self.database.sqlite_synchronous.as_str()) {
            return Err(invalid(
                "database",
                "sqlite_synchronous",
                "must be off, normal or full",
            ));
        }
        if let Some(bad) = self
            .health_manager
            .controller_ip_port_list
            .iter()
            .find(|a| a.parse::<std::net::SocketAddr>().is_err())
        {
            return Err(invalid(
                "health_manager",
                "controller_ip_port_list",
                &format!("{bad:?} is not IP:PORT"),
            ));
        }
        if self.database.max_pool_size == 0 {
            return Err(invalid("database", "max_pool_size", "must be at least 1"));
        }
        if !(0.05..=3600.0).contains(&self.health_manager.heartbeat_interval) {
            return Err(invalid(
                "health_manager",
                "heartbeat_interval",
                "must be 0.05 .. 3600 seconds",
            ));
        }
        let hm = &self.health_manager;
        if !(0.1..=86400.0).contains(&hm.heartbeat_timeout)
            || hm.heartbeat_timeout <= hm.heartbeat_interval
        {
            return Err(invalid(
                "health_manager",
                "heartbeat_timeout",
                "must be 0.1 .. 86400 seconds and longer than heartbeat_interval",
            ));
        }
        if !(0.05..=3600.0).contains(&hm.health_check_interval) {
            return Err(invalid(
                "health_manager",
                "health_check_interval",
                "must be 0.05 .. 3600 seconds",
            ));
        }
        if !(0.0..=3600.0).contains(&self.default.graceful_shutdown_timeout) {
            return Err(invalid(
                "DEFAULT",
                "graceful_shutdown_timeout",
                "must be 0 .. 3600 seconds",
            ));
        }
        let hk = &self.house_keeping;
        for (key, v, min) in [
            ("spare_check_interval", hk.spare_check_interval, 0.05),
            ("cleanup_interval", hk.cleanup_interval, 0.05),
            ("amphora_expiry_age", hk.amphora_expiry_age, 0.0),
            ("load_balancer_expiry_age", hk.load_balancer_expiry_age, 0.0),
            ("cert_interval", hk.cert_interval, 0.05),
            ("cert_expiry_buffer", hk.cert_expiry_buffer, 0.0),
            ("vip_allocation_grace", hk.vip_allocation_grace, 0.0),
        ] {
            if !(min..=1e9).contains(&v) {
                return Err(invalid("house_keeping", key, "out of range (seconds)"));
            }
        }
        if hk.spare_amphora_pool_size > 1000 {
            return Err(invalid(
                "house_keeping",
                "spare_amphora_pool_size",
                "must be 0 .. 1000",
            ));
        }
        if !["text", "json"].contains(&self.logging.format.as_str()) {
            return Err(invalid("logging", "format", "must be text or json"));
        }
        for (key, v) in [
            (
                "default_load_balancer_quota",
                self.quotas.default_load_balancer_quota,
            ),
            ("default_listener_quota", self.quotas.default_listener_quota),
            ("default_member_quota", self.quotas.default_member_quota),
            ("default_pool_quota", self.quotas.default_pool_quota),
            (
                "default_health_monitor_quota",
                self.quotas.default_health_monitor_quota,
            ),
            ("default_l7policy_quota", self.quotas.default_l7policy_quota),
            ("default_l7rule_quota", self.quotas.default_l7rule_quota),
        ] {
            if !(-1..=2_000_000_000).contains(&v) {
                return Err(invalid(
                    "quotas",
                    key,
                    "must be -1 (unlimited) .. 2000000000",
                ));
            }
        }
        openstack::check(self)?;
        Ok(())
    }
}
