//! Golden rulesets (reviewed like code), the choices behind them, and `nft -c` on each.

use super::*;
use crate::tests::{id, lb, listener, member, pool};

/// A load balancer with a TCP listener (HAProxy's, not here), a UDP listener on a weighted
/// round-robin pool with a backup, a disabled and a drained member, a UDP listener without a
/// pool and a disabled one.
fn tree() -> LbTree {
    let mut lb = lb();
    lb.vip_address = Some("198.19.0.42".into());
    let dns = listener(10, ListenerProtocol::Udp, 53, Some(20));
    let empty = listener(11, ListenerProtocol::Udp, 5353, None);
    let mut off = listener(12, ListenerProtocol::Udp, 5354, Some(20));
    off.admin_state_up = false;
    let tcp = listener(13, ListenerProtocol::Tcp, 53, Some(21));
    let p = pool(20, PoolProtocol::Udp, LbAlgorithm::RoundRobin);
    let mut heavy = member(31, 20, "198.19.0.6", 5300);
    heavy.weight = 4;
    let mut light = member(30, 20, "198.19.0.5", 5300);
    light.weight = 2;
    let mut backup = member(32, 20, "198.19.0.7", 5300);
    backup.backup = true;
    let mut disabled = member(33, 20, "198.19.0.8", 5300);
    disabled.admin_state_up = false;
    let mut drained = member(34, 20, "198.19.0.9", 5300);
    drained.weight = 0;
    LbTree {
        loadbalancer: Some(lb),
        listeners: vec![dns, empty, off, tcp],
        pools: vec![p, pool(21, PoolProtocol::Tcp, LbAlgorithm::RoundRobin)],
        members: vec![light, heavy, backup, disabled, drained],
        ..Default::default()
    }
}

fn all_up(_: Id) -> bool {
    true
}

#[test]
fn service_takes_the_enabled_udp_listeners_pools_and_members() {
    let s = service(&tree()).unwrap();
    assert_eq!(s.vip, "198.19.0.42");
    let ports: Vec<u16> = s.listeners.iter().map(|l| l.port).collect();
    assert_eq!(
        ports,
        [53, 5353],
        "the TCP and the disabled listener are not forwarded here"
    );
    let members: Vec<&str> = s.listeners[0]
        .pool
        .as_ref()
        .unwrap()
        .members
        .iter()
        .map(|m| m.address.as_str())
        .collect();
    assert_eq!(
        members,
        ["198.19.0.5", "198.19.0.6", "198.19.0.7", "198.19.0.9"]
    );
    // Serialized for the agent and read back unchanged.
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<UdpService>(&json).unwrap(), s);
    let mut t = tree();
    t.loadbalancer.as_mut().unwrap().admin_state_up = false;
    assert_eq!(
        service(&t),
        None,
        "a disabled load balancer forwards nothing"
    );
    t = tree();
    t.listeners.retain(|l| !l.protocol.is_lvs());
    assert_eq!(service(&t), None);
}

#[test]
fn weighted_round_robin_with_backup() {
    let s = service(&tree()).unwrap();
    insta::assert_snapshot!(render(&s, &all_up).unwrap());
}

#[test]
fn algorithms_persistence_and_health() {
    let mut t = tree();
    t.pools[0].lb_algorithm = LbAlgorithm::SourceIpPort;
    let s = service(&t).unwrap();
    let chain = |s: &UdpService, up: &dyn Fn(Id) -> bool| {
        let text = render(s, up).unwrap();
        let start = text.find("chain listener_").unwrap();
        let line = text[start..].lines().nth(1).unwrap().trim().to_string();
        line
    };
    // Weights 2 and 4 become one slot and two.
    assert_eq!(
        chain(&s, &all_up),
        "meta l4proto udp dnat to jhash ip saddr . udp sport mod 3 map { 0 : 198.19.0.5 . 5300, 1 : 198.19.0.6 . 5300, 2 : 198.19.0.6 . 5300 }"
    );
    t.pools[0].lb_algorithm = LbAlgorithm::SourceIp;
    let s = service(&t).unwrap();
    assert!(chain(&s, &all_up).starts_with("meta l4proto udp dnat to jhash ip saddr mod 3 map"));
    // SOURCE_IP persistence: the masked source address remembers its slot for the timeout;
    // the algorithm picks a new client's.
    t.pools[0].lb_algorithm = LbAlgorithm::RoundRobin;
    t.pools[0].session_persistence = Some(SessionPersistence {
        kind: PersistenceType::SourceIp,
        cookie_name: None,
        persistence_timeout: Some(60),
        persistence_granularity: Some("255.255.255.0".into()),
    });
    let s = service(&t).unwrap();
    insta::assert_snapshot!("source_ip_persistence", render(&s, &all_up).unwrap());
    // Without a timeout, Octavia's default.
    t.pools[0]
        .session_persistence
        .as_mut()
        .unwrap()
        .persistence_timeout = None;
    let text = render(&service(&t).unwrap(), &all_up).unwrap();
    assert!(text.contains("timeout 360s"), "{text}");
    // A member the monitors find down takes no new flows; with every primary down the backup
    // serves; with nothing alive the listener drops.
    let light_down = |m: Id| m != id(30);
    assert_eq!(
        chain(&s, &light_down),
        "meta l4proto udp dnat to 198.19.0.6:5300"
    );
    let primaries_down = |m: Id| m == id(32);
    assert_eq!(
        chain(&s, &primaries_down),
        "meta l4proto udp dnat to 198.19.0.7:5300"
    );
    assert_eq!(chain(&s, &|_| false), "drop");
}

#[test]
fn what_nftables_cannot_do_is_refused() {
    let mut t = tree();
    t.pools[0].lb_algorithm = LbAlgorithm::LeastConnections;
    let e = render(&service(&t).unwrap(), &all_up).unwrap_err();
    assert!(
        matches!(&e, NftError::Unsupported(m) if m.contains("LEAST_CONNECTIONS is not supported for UDP pools")),
        "{e}"
    );
    let mut t = tree();
    t.loadbalancer.as_mut().unwrap().vip_address = Some("2001:db8::5".into());
    let e = render(&service(&t).unwrap(), &all_up).unwrap_err();
    assert!(matches!(e, NftError::BadAddress(_)), "{e}");
}

#[test]
fn ipv6_vips_get_an_ip6_table() {
    let mut t = tree();
    t.loadbalancer.as_mut().unwrap().vip_address = Some("2001:db8::5".into());
    for (i, m) in t.members.iter_mut().enumerate() {
        m.address = format!("2001:db8::{}", 10 + i);
    }
    let text = render(&service(&t).unwrap(), &all_up).unwrap();
    assert!(text.contains("table ip6 rocta_"), "{text}");
    assert!(
        text.contains("ip6 daddr 2001:db8::5 udp dport 53"),
        "{text}"
    );
    assert!(text.contains("0 : 2001:db8::10 . 5300"), "{text}");
}

fn with_additional_vip() -> LbTree {
    let mut t = tree();
    t.loadbalancer.as_mut().unwrap().additional_vips = vec![AdditionalVip {
        subnet_id: "s2".into(),
        ip_address: Some("198.19.1.42".into()),
        port_id: None,
    }];
    t
}

/// Additional VIPs are forwarded as the VIP: one set of destination addresses in each rule.
#[test]
fn additional_vips_are_forwarded_as_the_vip() {
    let s = service(&with_additional_vip()).unwrap();
    assert_eq!(s.additional_vips, ["198.19.1.42"]);
    let text = render(&s, &all_up).unwrap();
    let matched = text.matches("daddr { 198.19.0.42, 198.19.1.42 }").count();
    // Two listeners: dispatch and two counters each, and masquerade.
    assert_eq!(matched, 2 * 3 + 1, "{text}");
    assert!(!text.contains("daddr 198.19.0.42 "), "{text}");
    let mut mixed = s.clone();
    mixed.additional_vips = vec!["2001:db8::5".into()];
    assert!(matches!(
        render(&mixed, &all_up),
        Err(NftError::BadAddress(_))
    ));
}

/// Every rendered ruleset is accepted by the kernel's nftables (`nft -c`: checked, not
/// applied; CI runs as root with nftables installed).
#[test]
fn nft_accepts_every_rendered_ruleset() {
    let present = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        present,
        "nft is required for this test (apt-get install -y nftables)"
    );
    let mut v6 = tree();
    v6.loadbalancer.as_mut().unwrap().vip_address = Some("2001:db8::5".into());
    for m in v6.members.iter_mut() {
        m.address = "2001:db8::10".into();
    }
    let mut hashed = tree();
    hashed.pools[0].lb_algorithm = LbAlgorithm::SourceIpPort;
    let mut sticky = tree();
    sticky.pools[0].session_persistence = Some(SessionPersistence {
        kind: PersistenceType::SourceIp,
        cookie_name: None,
        persistence_timeout: None,
        persistence_granularity: Some("255.255.255.0".into()),
    });
    let d = tempfile::tempdir().unwrap();
    let mut files = vec![("delete".to_string(), render_delete(id(1)))];
    for (name, t) in [
        ("rr", tree()),
        ("additional", with_additional_vip()),
        ("v6", v6),
        ("hashed", hashed),
        ("sticky", sticky),
    ] {
        let s = service(&t).unwrap();
        files.push((name.into(), render(&s, &all_up).unwrap()));
        files.push((format!("{name}-down"), render(&s, &|_| false).unwrap()));
        // One member left: a plain address and port, not a map.
        files.push((format!("{name}-one"), render(&s, &|m| m == id(31)).unwrap()));
    }
    for (name, text) in files {
        let f = d.path().join(format!("{name}.nft"));
        std::fs::write(&f, &text).unwrap();
        let out = std::process::Command::new("nft")
            .arg("-c")
            .arg("-f")
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: nft -c failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
