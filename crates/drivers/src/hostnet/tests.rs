use super::*;
use std::collections::HashSet;

#[derive(Default)]
struct Fake {
    ports: Vec<String>,
    links: HashSet<String>,
    addrs: HashSet<(String, String)>,
    nft: bool,
    foreign: Vec<Ipv4Net>,
}

impl Host for Fake {
    fn link_exists(&self, n: &str) -> bool {
        self.links.contains(n)
    }
    fn has_address(&self, d: &str, a: &str) -> bool {
        self.addrs.contains(&(d.into(), a.into()))
    }
    fn nft_table_exists(&self, t: &str) -> bool {
        self.nft && t == "rocta_mgmt"
    }
    fn bridge_ports(&self, br: &str) -> Vec<String> {
        if br == "rocta-mgmt" {
            self.ports.clone()
        } else {
            Vec::new()
        }
    }
    fn namespace_processes(&self, ns: &str) -> Option<Vec<i32>> {
        (ns == "amphora-5f0e1a2b").then(|| vec![41, 42])
    }
    fn foreign_networks(&self) -> Vec<Ipv4Net> {
        self.foreign.clone()
    }
}

fn net() -> HostNetworks {
    HostNetworks {
        bridge: "rocta-mgmt".into(),
        cidr: "198.18.0.0/24".parse().unwrap(),
        host_port: "rocta-hm0".into(),
        host_address: "198.18.0.1".parse().unwrap(),
        other_controllers: vec!["198.18.0.2".parse().unwrap()],
        agent_port: 9443,
        mtu: 1450,
        heartbeat_port: 5555,
        vxlan: None,
        tenants: vec![TenantNetwork {
            name: "public".into(),
            cidr: "198.19.0.0/24".parse().unwrap(),
        }],
    }
}

fn lines(p: &Plan) -> Vec<String> {
    p.steps.iter().map(|s| s.argv.join(" ")).collect()
}

#[test]
fn a_fresh_host_gets_everything_and_a_second_run_only_refreshes() {
    let n = net();
    let p = n.setup(&Fake::default()).unwrap();
    let l = lines(&p);
    assert_eq!(l[0], "ip link add rocta-mgmt type bridge");
    // The bridge answers no ARP for the host's addresses (only the controller's port does).
    assert_eq!(l[1], "sysctl -qw net.ipv4.conf.rocta-mgmt.arp_ignore=1");
    assert!(l.contains(&"ip link add rocta-hm0 type veth peer name rocta-hm0-br".into()));
    assert!(l.contains(&"ip addr add 198.18.0.1/24 dev rocta-hm0".into()));
    assert!(l.contains(&"ip link add rocta-public type bridge".into()));
    assert!(l.contains(&"ip addr add 198.19.0.1/24 dev rocta-public".into()));
    let script = p.steps.last().unwrap().stdin.clone().unwrap();
    assert!(script.contains("iifname != @ports accept"), "{script}");
    assert!(
        script.contains("elements = { \"rocta-hm0-br\" }"),
        "{script}"
    );
    assert!(script.trim_end().ends_with("drop\n  }\n}"), "{script}");
    assert!(script.contains("ip saddr { 198.18.0.1, 198.18.0.2 } tcp dport 9443 accept"));
    assert!(script.contains("udp dport 5555 accept"));
    let done = Fake {
        links: ["rocta-mgmt", "rocta-hm0", "rocta-public"]
            .map(String::from)
            .into(),
        addrs: [
            ("rocta-hm0".to_string(), "198.18.0.1/24".to_string()),
            ("rocta-public".to_string(), "198.19.0.1/24".to_string()),
        ]
        .into(),
        nft: true,
        ..Default::default()
    };
    let again = lines(&n.setup(&done).unwrap());
    assert!(again.iter().all(|l| !l.contains(" add ")), "{again:?}");
    assert_eq!(lines(&n.teardown(&Fake::default())), Vec::<String>::new());
    assert_eq!(
        lines(&n.teardown(&done)),
        [
            "nft delete table bridge rocta_mgmt",
            "ip link del rocta-hm0",
            "ip link del rocta-mgmt",
            "ip link del rocta-public"
        ]
    );
    // Amphorae still plugged go first: their processes, then their namespaces.
    let with_amphora = Fake {
        ports: vec![
            "rocta-hm0-br".into(),
            "rocta5f0e1a2be0".into(),
            "rocta0000aaaae0".into(),
        ],
        ..done
    };
    let l = lines(&n.teardown(&with_amphora));
    assert_eq!(l[..2], ["kill -9 41 42", "ip netns del amphora-5f0e1a2b"]);
    assert_eq!(
        l[2], "nft delete table bridge rocta_mgmt",
        "a namespace already gone is skipped"
    );
    assert_eq!(
        amphora_of_port("rocta5f0e1a2be1").as_deref(),
        Some("amphora-5f0e1a2b")
    );
    for not in [
        "rocta-hm0-br",
        "rocta-vx42",
        "rocta5F0E1A2Be0",
        "rocta5f0e1a2be",
    ] {
        assert_eq!(amphora_of_port(not), None, "{not}");
    }
}

#[test]
fn vxlan_joins_the_bridge() {
    let mut n = net();
    n.vxlan = Some(Vxlan {
        id: 42,
        local: "198.19.255.1".parse().unwrap(),
        remotes: vec!["198.19.255.2".parse().unwrap()],
        group: None,
        dstport: 4789,
        dev: Some("eth9".into()),
    });
    let host = Fake {
        links: ["eth9".to_string()].into(),
        ..Default::default()
    };
    let l = lines(&n.setup(&host).unwrap());
    assert!(l.contains(
        &"ip link add rocta-vx42 type vxlan id 42 local 198.19.255.1 dstport 4789 nolearning dev eth9"
            .into()
    ));
    assert!(
        l.contains(&"bridge fdb append 00:00:00:00:00:00 dev rocta-vx42 dst 198.19.255.2".into())
    );
    assert!(l.contains(&"ip link set rocta-vx42 master rocta-mgmt".into()));
}

#[test]
fn bad_input_is_one_line_and_nothing_planned() {
    let bad = |change: &dyn Fn(&mut HostNetworks), host: &Fake, want: &str| {
        let mut n = net();
        change(&mut n);
        let e = n.setup(host).unwrap_err().0;
        assert!(e.contains(want), "{e} / {want}");
        assert!(!e.contains('\n'));
    };
    let none = Fake::default();
    let vx = |n: &mut HostNetworks| {
        n.vxlan = Some(Vxlan {
            id: 7,
            local: "198.19.0.1".parse().unwrap(),
            remotes: vec![],
            group: None,
            dstport: 4789,
            dev: None,
        })
    };
    bad(&vx, &none, "needs --remote");
    bad(
        &|n| {
            vx(n);
            n.vxlan.as_mut().unwrap().remotes = vec!["198.19.0.2".parse().unwrap()];
            n.vxlan.as_mut().unwrap().dev = Some("nope0".into());
        },
        &none,
        "--dev nope0: no such interface",
    );
    bad(
        &|n| n.bridge = "br0".into(),
        &none,
        "must start with \"rocta\"",
    );
    let taken = Fake {
        foreign: vec!["198.18.0.0/16".parse().unwrap()],
        ..Default::default()
    };
    bad(&|_| {}, &taken, "overlaps 198.18.0.0/16");
    bad(
        &|n| n.tenants[0].cidr = "198.18.0.128/25".parse().unwrap(),
        &none,
        "network public 198.18.0.128/25 overlaps the management network 198.18.0.0/24",
    );
    bad(
        &|n| n.tenants[0].name = "Public_Net".into(),
        &none,
        "network name \"Public_Net\"",
    );
}
