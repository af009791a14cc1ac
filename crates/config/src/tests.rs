use super::*;

#[test]
fn empty_file_gives_defaults() {
    let c = Config::from_toml("").unwrap();
    assert_eq!(c.api_settings.bind_port, 9876);
    assert_eq!(c.quotas.default_member_quota, -1);
}

#[test]
fn unknown_key_is_an_error() {
    let e = Config::from_toml("[api_settings]\nbind_prot = 1\n").unwrap_err();
    assert!(e.to_string().contains("bind_prot"), "{e}");
}

#[test]
fn bad_value_is_an_error() {
    let e = Config::from_toml("[quotas]\ndefault_pool_quota = -5\n").unwrap_err();
    assert!(e.to_string().contains("default_pool_quota"), "{e}");
}

#[test]
fn example_config_parses_and_names_every_key() {
    let text = include_str!("../../../etc/rocta.example.toml");
    // The example has every key commented out; uncommenting must give a valid config.
    let uncommented: String = text
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .filter(|r| r.contains(" = ") || r.starts_with('['))
                .unwrap_or(l)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = Config::from_toml(&uncommented).unwrap();
    assert_eq!(cfg.api_settings.bind_port, ApiSettings::default().bind_port);
    for key in [
        "bind_host",
        "bind_port",
        "auth_strategy",
        "pagination_max_limit",
        "api_base_uri",
        "default_provider_driver",
        "max_request_body_size",
        "connection",
        "sqlite_synchronous",
        "loadbalancer_topology",
        "vrrp_advert_int",
        "vrrp_check_interval",
        "workers",
        "job_lease_seconds",
        "job_poll_interval_ms",
        "compute_driver",
        "amp_image_tag",
        "amp_image_owner_id",
        "amp_flavor_id",
        "amp_ssh_key_name",
        "amp_secgroup_list",
        "amp_active_retries",
        "amp_active_wait_sec",
        "user_data_config_drive",
        "connect_retries",
        "retry_interval",
        "enable_anti_affinity",
        "anti_affinity_policy",
        "random_amphora_name_length",
        "valid_interfaces",
        "endpoint_override",
        "network_driver",
        "amphora_driver",
        "cert_manager",
        "haproxy_cmd",
        "connection_logging",
        "default_connection_limit",
        "timeout_client_data",
        "timeout_member_connect",
        "timeout_member_data",
        "timeout_tcp_inspect",
        "default_load_balancer_quota",
        "default_listener_quota",
        "default_member_quota",
        "default_pool_quota",
        "default_health_monitor_quota",
        "default_l7policy_quota",
        "default_l7rule_quota",
        "storage_path",
        "bind_ip",
        "heartbeat_interval",
        "heartbeat_key",
        "format",
        "level",
    ] {
        assert!(
            text.contains(&format!("# {key} = ")),
            "example config lacks {key}"
        );
    }
}

#[test]
fn root_gets_namespaced_amphorae_unless_the_file_chooses() {
    let mut c = Config::from_toml("").unwrap();
    c.controller_worker.default_placement(false);
    assert_eq!(c.controller_worker.compute_driver, ComputeDriver::Local);
    c.controller_worker.default_placement(true);
    assert_eq!(c.controller_worker.compute_driver, ComputeDriver::Netns);
    assert_eq!(c.controller_worker.network_driver, NetworkDriver::Netns);
    let mut c = Config::from_toml("[controller_worker]\ncompute_driver = \"local\"\n").unwrap();
    c.controller_worker.default_placement(true);
    assert_eq!(c.controller_worker.compute_driver, ComputeDriver::Local);
    assert_eq!(c.controller_worker.network_driver, NetworkDriver::Loopback);
    let e = Config::from_toml("[controller_worker]\ncompute_driver = \"netns\"\n").unwrap_err();
    assert!(e.to_string().contains("go together"), "{e}");
}

#[test]
fn topologies_and_vrrp_settings_are_checked() {
    let c = Config::from_toml("[controller_worker]\nloadbalancer_topology = \"ACTIVE_STANDBY\"\n")
        .unwrap();
    assert_eq!(c.controller_worker.loadbalancer_topology, "ACTIVE_STANDBY");
    assert_eq!(c.keepalived_vrrp.vrrp_advert_int, 0.2);
    for bad in [
        "[controller_worker]\nloadbalancer_topology = \"TRIPLE\"\n",
        "[keepalived_vrrp]\nvrrp_advert_int = 0.0\n",
        "[keepalived_vrrp]\nvrrp_fail_count = 0\n",
    ] {
        assert!(Config::from_toml(bad).is_err(), "{bad}");
    }
}

#[test]
fn compute_zones_are_named_once() {
    let zone = |name: &str, host: &str| {
        format!("[[netns.compute_zones]]\nname = \"{name}\"\nhost_netns = \"{host}\"\n")
    };
    let c = Config::from_toml(&(zone("a", "") + &zone("b", "host-b"))).unwrap();
    assert_eq!(c.netns.compute_zones[1].host_netns, "host-b");
    for bad in [zone("a", "") + &zone("a", "x"), zone("", "x")] {
        let e = Config::from_toml(&bad).unwrap_err().to_string();
        assert!(e.contains("compute_zones"), "{e}");
    }
}

#[test]
fn log_shipping_is_checked() {
    for (text, key) in [
        ("[amphora_agent]\nlog_protocol = \"RELP\"\n", "log_protocol"),
        (
            "[amphora_agent]\ntenant_log_targets = [\"logs.example\"]\n",
            "tenant_log_targets",
        ),
        (
            "[amphora_agent]\nlog_queue_size = 0\n",
            "log_retry_interval",
        ),
    ] {
        let e = Config::from_toml(text).unwrap_err();
        assert!(e.to_string().contains(key), "{text}: {e}");
    }
    let ok = Config::from_toml(
        "[amphora_agent]\ntenant_log_targets = [\"192.0.2.10:514\", \"[2001:db8::1]:514\"]\nlog_protocol = \"TCP\"\n",
    )
    .unwrap();
    assert_eq!(ok.amphora_agent.tenant_log_targets.len(), 2);
}

#[test]
fn the_nova_driver_needs_its_settings() {
    let base = "[controller_worker]\ncompute_driver = \"nova\"\nnetwork_driver = \"neutron\"\n";
    let full = format!(
        "{base}amp_image_tag = \"amphora\"\namp_flavor_id = \"f\"\namp_boot_network_list = [\"n\"]\n\
         [service_auth]\nauth_url = \"http://127.0.0.1:5000/v3\"\nusername = \"rocta\"\n\
         password = \"p\"\nproject_name = \"service\"\n"
    );
    let cfg = Config::from_toml(&full).unwrap();
    assert_eq!(cfg.controller_worker.compute_driver, ComputeDriver::Nova);
    assert_eq!(cfg.nova.endpoint().interfaces(), ["publicURL"]);
    let e = |t: &str| Config::from_toml(t).unwrap_err().to_string();
    assert!(e(base).contains("[service_auth] auth_url"), "{}", e(base));
    assert!(e(&full.replace("amp_image_tag = \"amphora\"\n", "")).contains("amp_image_tag"));
    assert!(
        e(&full.replace("amp_boot_network_list = [\"n\"]\n", "")).contains("amp_boot_network_list")
    );
    assert!(e(&format!("{full}[nova]\nanti_affinity_policy = \"x\"\n"))
        .contains("anti_affinity_policy"));
    assert!(e(&format!("{full}[glance]\nregion = \"x\"\n")).contains("region"));
    assert!(e(&full.replace("network_driver = \"neutron\"\n", "")).contains("go together"));
}

#[test]
fn the_barbican_cert_manager_needs_service_auth() {
    let cfg = Config::from_toml("").unwrap();
    assert_eq!(cfg.certificates.cert_manager, TlsManager::Local);
    let base = "[certificates]\ncert_manager = \"barbican_cert_manager\"\nregion_name = \"R\"\n";
    let full = format!(
        "{base}[service_auth]\nauth_url = \"http://127.0.0.1:5000/v3\"\nusername = \"rocta\"\n\
         password = \"p\"\nproject_name = \"service\"\n"
    );
    let cfg = Config::from_toml(&full).unwrap();
    assert_eq!(cfg.certificates.cert_manager, TlsManager::Barbican);
    let b = cfg.certificates.barbican_endpoint();
    assert_eq!(
        (b.region_name.as_str(), b.interfaces()),
        ("R", vec!["publicURL".to_string()])
    );
    let e = |t: &str| Config::from_toml(t).unwrap_err().to_string();
    assert!(e(base).contains("[service_auth] auth_url"), "{}", e(base));
    let other_auth = full.replace("region_name", "barbican_auth = \"x\"\nregion_name");
    assert!(
        e(&other_auth).contains("barbican_auth"),
        "{}",
        e(&other_auth)
    );
    assert!(
        e("[certificates]\ncert_manager = \"castellan_cert_manager\"\n").contains("cert_manager")
    );
}
