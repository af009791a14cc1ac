//! Golden configurations (reviewed like code) and `haproxy -c` on each of them.

use std::collections::BTreeMap;

use rocta_model::time::Timestamp;
use rocta_model::*;

use super::*;

fn ts() -> Timestamp {
    Timestamp::parse_from_str("2026-11-25T00:00:00", "%Y-%m-%dT%H:%M:%S").unwrap()
}

/// Stable ids so snapshots do not change between runs.
pub(crate) fn id(n: u128) -> Id {
    uuid::Uuid::from_u128(0x1000_0000_0000_4000_8000_0000_0000_0000 + n)
}

pub(crate) fn lb() -> LoadBalancer {
    LoadBalancer {
        id: id(1),
        name: "lb".into(),
        description: String::new(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        admin_state_up: true,
        project_id: "p".into(),
        created_at: ts(),
        updated_at: None,
        vip_address: Some("127.10.0.5".into()),
        vip_port_id: None,
        vip_subnet_id: None,
        vip_network_id: None,
        vip_sg_ids: vec![],
        additional_vips: vec![],
        provider: "amphora".into(),
        flavor_id: None,
        vip_qos_policy_id: None,
        tags: vec![],
        availability_zone: None,
        vip_vnic_type: "normal".into(),
    }
}

pub(crate) fn listener(
    n: u128,
    protocol: ListenerProtocol,
    port: u16,
    pool: Option<u128>,
) -> Listener {
    Listener {
        id: id(n),
        lb_id: id(1),
        name: String::new(),
        description: String::new(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        admin_state_up: true,
        protocol,
        protocol_port: port,
        connection_limit: -1,
        default_tls_container_ref: None,
        sni_container_refs: vec![],
        project_id: "p".into(),
        default_pool_id: pool.map(id),
        insert_headers: BTreeMap::new(),
        created_at: ts(),
        updated_at: None,
        timeout_client_data: 50000,
        timeout_member_connect: 5000,
        timeout_member_data: 50000,
        timeout_tcp_inspect: 0,
        tags: vec![],
        client_ca_tls_container_ref: None,
        client_authentication: ClientAuthentication::None,
        client_crl_container_ref: None,
        allowed_cidrs: None,
        tls_ciphers: None,
        tls_versions: None,
        alpn_protocols: None,
        hsts_max_age: None,
        hsts_include_subdomains: false,
        hsts_preload: false,
    }
}

pub(crate) fn pool(n: u128, protocol: PoolProtocol, alg: LbAlgorithm) -> Pool {
    Pool {
        id: id(n),
        lb_id: id(1),
        name: String::new(),
        description: String::new(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        admin_state_up: true,
        protocol,
        lb_algorithm: alg,
        session_persistence: None,
        project_id: "p".into(),
        created_at: ts(),
        updated_at: None,
        tags: vec![],
        tls_container_ref: None,
        ca_tls_container_ref: None,
        crl_container_ref: None,
        tls_enabled: false,
        tls_ciphers: None,
        tls_versions: None,
        alpn_protocols: None,
    }
}

pub(crate) fn member(n: u128, pool: u128, address: &str, port: u16) -> Member {
    Member {
        id: id(n),
        pool_id: id(pool),
        lb_id: id(1),
        name: String::new(),
        operating_status: OperatingStatus::Online,
        provisioning_status: ProvisioningStatus::Active,
        admin_state_up: true,
        address: address.into(),
        protocol_port: port,
        weight: 1,
        backup: false,
        subnet_id: None,
        project_id: "p".into(),
        created_at: ts(),
        updated_at: None,
        monitor_address: None,
        monitor_port: None,
        tags: vec![],
        vnic_type: "normal".into(),
    }
}

fn hm(n: u128, pool: u128, kind: HealthMonitorType) -> HealthMonitor {
    let http = kind.is_http();
    HealthMonitor {
        id: id(n),
        pool_id: id(pool),
        lb_id: id(1),
        name: String::new(),
        kind,
        delay: 5,
        timeout: 3,
        max_retries: 2,
        max_retries_down: 3,
        http_method: http.then_some(HttpMethod::Get),
        url_path: http.then(|| "/healthz".into()),
        expected_codes: http.then(|| "200-202".into()),
        admin_state_up: true,
        project_id: "p".into(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        created_at: ts(),
        updated_at: None,
        tags: vec![],
        http_version: None,
        domain_name: None,
    }
}

fn policy(n: u128, listener: u128, position: i64, action: L7PolicyAction) -> L7Policy {
    L7Policy {
        id: id(n),
        lb_id: id(1),
        name: String::new(),
        description: String::new(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        admin_state_up: true,
        project_id: "p".into(),
        action,
        listener_id: id(listener),
        redirect_pool_id: None,
        redirect_url: None,
        redirect_prefix: None,
        position,
        created_at: ts(),
        updated_at: None,
        tags: vec![],
        redirect_http_code: None,
    }
}

fn rule(
    n: u128,
    policy: u128,
    kind: L7RuleType,
    cmp: L7CompareType,
    key: Option<&str>,
    value: &str,
) -> L7Rule {
    L7Rule {
        id: id(n),
        l7policy_id: id(policy),
        lb_id: id(1),
        kind,
        compare_type: cmp,
        key: key.map(str::to_string),
        value: value.into(),
        invert: false,
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        created_at: ts(),
        updated_at: None,
        project_id: "p".into(),
        admin_state_up: true,
        tags: vec![],
    }
}

fn opts(dir: &str) -> RenderOptions {
    RenderOptions {
        amphora_id: "a0000000-0000-4000-8000-00000000000a".into(),
        run_dir: dir.into(),
        cert_dir: format!("{dir}/certs"),
        maxconn_cap: 7600,
        default_connection_limit: 50000,
        log_target: None,
        log_facilities: (0, 1),
        peers: vec![],
    }
}

/// The options of a named case: the ring for `logged_to_ring`, an ACTIVE_STANDBY pair's
/// peers for `active_standby_peers`.
fn opts_for(name: &str, dir: &str) -> RenderOptions {
    let mut o = opts(dir);
    match name {
        "logged_to_ring" => o.log_target = Some("ring".into()),
        "active_standby_peers" => {
            o.peers = vec![
                (peer_name(&o.amphora_id), "127.0.0.1:1025".into()),
                (
                    peer_name("b0000000-0000-4000-8000-00000000000b"),
                    "127.0.0.2:1025".into(),
                ),
            ]
        }
        _ => {}
    }
    o
}

fn http_basic() -> LbTree {
    let mut l = listener(10, ListenerProtocol::Http, 8080, Some(20));
    for h in ["X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"] {
        l.insert_headers.insert(h.into(), "true".into());
    }
    LbTree {
        loadbalancer: Some(lb()),
        listeners: vec![l],
        pools: vec![pool(20, PoolProtocol::Http, LbAlgorithm::RoundRobin)],
        members: vec![
            member(30, 20, "127.0.0.1", 9001),
            member(31, 20, "127.0.0.1", 9002),
        ],
        health_monitors: vec![hm(40, 20, HealthMonitorType::Http)],
        ..Default::default()
    }
}

fn tcp_source() -> LbTree {
    let mut l = listener(10, ListenerProtocol::Tcp, 5432, Some(20));
    l.connection_limit = 100;
    l.allowed_cidrs = Some(vec!["127.0.0.0/8".into(), "10.0.0.0/8".into()]);
    l.timeout_tcp_inspect = 1000;
    let mut p = pool(20, PoolProtocol::Tcp, LbAlgorithm::SourceIp);
    p.session_persistence = Some(SessionPersistence {
        kind: PersistenceType::SourceIp,
        cookie_name: None,
        persistence_timeout: None,
        persistence_granularity: None,
    });
    let mut backup = member(31, 20, "::1", 5433);
    backup.backup = true;
    backup.weight = 0;
    let mut off = member(32, 20, "127.0.0.3", 5432);
    off.admin_state_up = false;
    off.monitor_address = Some("127.0.0.4".into());
    off.monitor_port = Some(6000);
    let mut udp = listener(11, ListenerProtocol::Udp, 53, None);
    udp.name = "served by LVS, not HAProxy".into();
    LbTree {
        loadbalancer: Some(lb()),
        listeners: vec![l, udp],
        pools: vec![p],
        members: vec![member(30, 20, "127.0.0.2", 5432), backup, off],
        health_monitors: vec![hm(40, 20, HealthMonitorType::Tcp)],
        ..Default::default()
    }
}

fn terminated_https() -> LbTree {
    let mut l = listener(10, ListenerProtocol::TerminatedHttps, 8443, Some(20));
    l.default_tls_container_ref = Some("default-cert".into());
    l.sni_container_refs = vec!["sni-cert".into()];
    l.client_ca_tls_container_ref = Some("client-ca".into());
    l.client_authentication = ClientAuthentication::Optional;
    l.tls_versions = Some(vec!["TLSv1.2".into(), "TLSv1.3".into()]);
    l.alpn_protocols = Some(vec!["h2".into(), "http/1.1".into()]);
    l.tls_ciphers = Some("ECDHE-RSA-AES128-GCM-SHA256".into());
    l.hsts_max_age = Some(31536000);
    l.hsts_include_subdomains = true;
    l.insert_headers
        .insert("X-SSL-Client-DN".into(), "true".into());
    l.insert_headers
        .insert("X-Forwarded-Proto".into(), "true".into());
    let mut p = pool(20, PoolProtocol::Http, LbAlgorithm::LeastConnections);
    p.session_persistence = Some(SessionPersistence {
        kind: PersistenceType::HttpCookie,
        cookie_name: None,
        persistence_timeout: None,
        persistence_granularity: None,
    });
    let mut h = hm(40, 20, HealthMonitorType::Https);
    h.http_version = Some(1.1);
    h.domain_name = Some("app.example".into());
    h.expected_codes = Some("200,204".into());
    let mut https = listener(11, ListenerProtocol::Https, 9443, Some(21));
    https.name = "passthrough".into();
    let mut proxy = pool(21, PoolProtocol::Proxy, LbAlgorithm::RoundRobin);
    proxy.session_persistence = None;
    // An additional VIP (API 2.26): every frontend binds it as the VIP, TLS options and all.
    let mut lb = lb();
    lb.additional_vips = vec![AdditionalVip {
        subnet_id: "second".into(),
        ip_address: Some("127.10.1.5".into()),
        port_id: None,
    }];
    LbTree {
        loadbalancer: Some(lb),
        listeners: vec![l, https],
        pools: vec![p, proxy],
        members: vec![
            member(30, 20, "127.0.0.1", 9001),
            member(31, 21, "127.0.0.1", 9443),
        ],
        health_monitors: vec![h, hm(41, 21, HealthMonitorType::TlsHello)],
        ..Default::default()
    }
}

/// An HTTP listener beside a PROMETHEUS one (Octavia API 2.25) reachable from one network.
fn prometheus() -> LbTree {
    let mut t = http_basic();
    let mut prom = listener(12, ListenerProtocol::Prometheus, 9100, None);
    prom.allowed_cidrs = Some(vec!["198.18.0.0/15".into()]);
    t.listeners.push(prom);
    t
}

fn l7() -> LbTree {
    let l = listener(10, ListenerProtocol::Http, 80, Some(20));
    let mut app = pool(21, PoolProtocol::Http, LbAlgorithm::RoundRobin);
    app.session_persistence = Some(SessionPersistence {
        kind: PersistenceType::AppCookie,
        cookie_name: Some("JSESSIONID".into()),
        persistence_timeout: None,
        persistence_granularity: None,
    });
    let mut to_pool = policy(50, 10, 1, L7PolicyAction::RedirectToPool);
    to_pool.redirect_pool_id = Some(id(21));
    let mut to_url = policy(51, 10, 2, L7PolicyAction::RedirectToUrl);
    to_url.redirect_url = Some("https://www.example.com/moved here".into());
    to_url.redirect_http_code = Some(301);
    let mut prefix = policy(52, 10, 3, L7PolicyAction::RedirectPrefix);
    prefix.redirect_prefix = Some("https://secure.example.com".into());
    prefix.redirect_http_code = Some(302);
    let reject = policy(53, 10, 4, L7PolicyAction::Reject);
    let empty = policy(54, 10, 5, L7PolicyAction::Reject);
    let mut inverted = rule(
        64,
        53,
        L7RuleType::Cookie,
        L7CompareType::Contains,
        Some("session"),
        "x y",
    );
    inverted.invert = true;
    LbTree {
        loadbalancer: Some(lb()),
        listeners: vec![l],
        pools: vec![pool(20, PoolProtocol::Http, LbAlgorithm::RoundRobin), app],
        members: vec![
            member(30, 20, "127.0.0.1", 9001),
            member(31, 21, "127.0.0.1", 9002),
        ],
        l7policies: vec![reject, prefix, to_url, to_pool, empty],
        l7rules: vec![
            rule(
                60,
                50,
                L7RuleType::Path,
                L7CompareType::StartsWith,
                None,
                "/api",
            ),
            rule(
                61,
                50,
                L7RuleType::HostName,
                L7CompareType::EndsWith,
                None,
                ".example.com",
            ),
            rule(
                62,
                51,
                L7RuleType::FileType,
                L7CompareType::EqualTo,
                None,
                "jpg",
            ),
            rule(
                63,
                52,
                L7RuleType::Header,
                L7CompareType::Regex,
                Some("X-Env"),
                "^(dev|test)$",
            ),
            inverted,
            rule(
                65,
                53,
                L7RuleType::Path,
                L7CompareType::EqualTo,
                None,
                "/admin",
            ),
        ],
        ..Default::default()
    }
}

fn disabled() -> LbTree {
    let mut l = listener(10, ListenerProtocol::Http, 80, None);
    l.admin_state_up = false;
    LbTree {
        loadbalancer: Some(lb()),
        listeners: vec![l],
        ..Default::default()
    }
}

/// A TCP listener hashing on client address and port, its members checked by ping.
fn ping_source_port() -> LbTree {
    LbTree {
        loadbalancer: Some(lb()),
        listeners: vec![listener(10, ListenerProtocol::Tcp, 3306, Some(20))],
        pools: vec![pool(20, PoolProtocol::Tcp, LbAlgorithm::SourceIpPort)],
        members: vec![
            member(30, 20, "127.0.0.1", 3306),
            member(31, 20, "::1", 3306),
        ],
        health_monitors: vec![hm(40, 20, HealthMonitorType::Ping)],
        ..Default::default()
    }
}

type Case = (&'static str, fn() -> LbTree);

fn logged() -> LbTree {
    http_basic()
}

const CASES: &[Case] = &[
    ("logged_to_ring", logged),
    ("http_basic", http_basic),
    ("tcp_source_ip", tcp_source),
    ("terminated_https", terminated_https),
    ("l7_policies", l7),
    ("prometheus_listener", prometheus),
    ("disabled_listener", disabled),
    ("ping_source_ip_port", ping_source_port),
    ("active_standby_peers", tcp_source),
];

#[test]
fn golden_configs() {
    for (name, case) in CASES {
        let o = opts_for(name, "/run/rocta");
        insta::assert_snapshot!(*name, render(&case(), &o));
    }
}

#[test]
fn expected_code_ranges_expand() {
    assert_eq!(expected_codes("200-202"), "200|201|202");
    assert_eq!(expected_codes("200, 204"), "200|204");
}

/// A self-signed certificate and key in one PEM, made with the system's openssl.
fn pem(dir: &std::path::Path, name: &str) {
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test", "-days", "2",
        ])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.crt")))
        .output()
        .expect("openssl");
    assert!(out.status.success());
    let mut both = std::fs::read(dir.join(format!("{name}.crt"))).unwrap();
    both.extend(std::fs::read(dir.join(format!("{name}.key"))).unwrap());
    std::fs::write(dir.join(name), both).unwrap();
}

/// Every golden config is accepted by the HAProxy this machine runs (CI installs it).
#[test]
fn haproxy_accepts_every_rendered_config() {
    let haproxy = std::env::var("HAPROXY").unwrap_or_else(|_| "haproxy".into());
    let present = std::process::Command::new(&haproxy)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        present,
        "haproxy is required for this test (apt-get install -y haproxy)"
    );
    let d = tempfile::tempdir().unwrap();
    let run = d.path().to_str().unwrap().to_string();
    let certs = d.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    for r in ["default-cert", "sni-cert", "client-ca"] {
        pem(&certs, &cert_file_name(r));
    }
    for (name, case) in CASES {
        let t = case();
        for l in &t.listeners {
            if l.protocol == ListenerProtocol::TerminatedHttps {
                std::fs::write(
                    certs.join(crt_list_name(l.id)),
                    crt_list(l, certs.to_str().unwrap()),
                )
                .unwrap();
            }
        }
        // The agent keeps a (possibly empty) server-state file beside each load balancer.
        std::fs::write(
            d.path().join(format!("{}.state", id(1))),
            EMPTY_SERVER_STATE,
        )
        .unwrap();
        let cfg = d.path().join(format!("{name}.cfg"));
        let o = opts_for(name, &run);
        std::fs::write(&cfg, render(&t, &o)).unwrap();
        // As the agent runs it: this amphora's name among the peers.
        let out = std::process::Command::new(&haproxy)
            .args(["-L", &peer_name(&o.amphora_id)])
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: haproxy -c failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let warnings = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!warnings.contains("[WARNING]"), "{name}: {warnings}");
    }
}
