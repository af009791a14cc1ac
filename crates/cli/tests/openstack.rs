//! The OpenStack drivers against real OpenStack services: Keystone, Nova (its fake virt driver,
//! keeping each server's config drive as files), Neutron, Glance, Placement and Barbican, as
//! `tests/openstack/stack.py` runs them from the venvs `scripts/openstack` makes (.ci/run
//! does; ROCTA_OS_PYTHON overrides the master venv's python). One stack serves every test of
//! this file; it stops (and drops its databases) when this process ends and closes its stdin.
//! Every test asserts on the services' own state: what it made is gone afterwards.

#[path = "openstack/barbican.rs"]
mod barbican;
mod common;
#[path = "openstack/flows.rs"]
mod flows;
#[path = "openstack/hypervisor.rs"]
mod hypervisor;
#[path = "openstack/stack.rs"]
mod stack;

use std::time::Duration;

use rocta_drivers::openstack::{neutron, nova, Endpoint, Session, SessionConfig};
use rocta_drivers::{AdditionalVipRequest, Boot, Compute, Network, VipError, VipRequest};
use rocta_model::*;
use rocta_proto::agent_conf::AgentConf;
use serde_json::{json, Value};
use stack::{serial, stack, Stack};

fn session(s: &Stack) -> std::sync::Arc<Session> {
    std::sync::Arc::new(
        Session::new(SessionConfig {
            auth_url: s.ready["keystone"].as_str().unwrap().into(),
            username: "rocta".into(),
            password: "rocta-pass".into(),
            project_name: "service".into(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            cafile: String::new(),
            insecure: false,
            timeout: Duration::from_secs(120),
            retries: 2,
            backoff: Duration::from_millis(200),
        })
        .unwrap(),
    )
}

fn e(t: &str) -> Endpoint {
    Endpoint {
        service_type: t.into(),
        interfaces: vec!["internal".into(), "public".into()],
        region: "RegionOne".into(),
        endpoint_override: String::new(),
    }
}

fn settings(s: &Stack) -> nova::NovaSettings {
    nova::NovaSettings {
        nova: e("compute"),
        glance: e("image"),
        neutron: e("network"),
        image_tag: "amphora".into(),
        image_owner_id: String::new(),
        flavor_id: s.ready["flavor_id"].as_str().unwrap().into(),
        ssh_key_name: String::new(),
        secgroups: Vec::new(),
        boot_networks: vec![s.network("lb-mgmt-net")["network_id"]
            .as_str()
            .unwrap()
            .into()],
        active_retries: 120,
        active_wait: Duration::from_millis(500),
        user_data_config_drive: false,
        availability_zone: String::new(),
        heartbeat: rocta_drivers::local::HeartbeatTarget {
            controllers: vec!["198.19.251.2:5555".into()],
            interval: 3.0,
            key: "openstack-test-key".into(),
            logs: Default::default(),
        },
        topology: "SINGLE".into(),
        anti_affinity: None,
    }
}

fn boot() -> Boot {
    Boot {
        server_pem: "-----BEGIN CERTIFICATE-----\nserver\n-----END CERTIFICATE-----\n".into(),
        client_ca_pem: "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n".into(),
        ..Boot::default()
    }
}

/// Deletes amphora `amp`'s server: neither it nor its management port is left.
fn deleted_leaving_nothing(
    s: &Stack,
    rt: &tokio::runtime::Runtime,
    compute: &nova::NovaCompute,
    amp: Id,
) {
    rt.block_on(compute.delete(amp)).unwrap();
    assert!(s.servers_named(&format!("amphora-{amp}")).is_empty());
    assert!(s
        .ports_named(&format!("octavia-amphora-mgmt-{amp}"))
        .is_empty());
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An amphora is a Nova server from the image tagged `amphora`, on a management port made in
/// Neutron, with Octavia's config drive (the agent conf rocta's agent reads, the server
/// certificate, the client CA); booting it again finds it; deleting it leaves no server and no
/// port in Nova and Neutron.
#[test]
fn nova_boots_an_amphora_with_octavias_config_drive() {
    let _one = serial();
    let s = stack();
    let compute = nova::NovaCompute::new(session(s), settings(s));
    let amp = Id::new_v4();
    let name = format!("amphora-{amp}");
    let port = format!("octavia-amphora-mgmt-{amp}");
    let rt = rt();
    let t = std::time::Instant::now();
    let inst = rt.block_on(compute.create(amp, &boot())).unwrap();
    eprintln!("booted {name} in {:?}", t.elapsed());
    let ip: std::net::Ipv4Addr = inst.lb_network_ip.parse().unwrap();
    assert!(
        "198.19.251.0/24"
            .parse::<ipnet::Ipv4Net>()
            .unwrap()
            .contains(&ip),
        "{ip}"
    );
    let servers = s.servers_named(&name);
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["id"], json!(inst.compute_id));
    assert_eq!(servers[0]["status"], "ACTIVE");
    assert_eq!(servers[0]["image"]["id"], s.ready["image_id"]);
    assert_eq!(s.ports_named(&port).len(), 1);
    assert_eq!(s.ports_named(&port)[0]["device_id"], json!(inst.compute_id));

    let (files, user_data) = s.config_drive(&inst.compute_id);
    assert_eq!(user_data, None);
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/etc/octavia/amphora-agent.conf",
            "/etc/octavia/certs/server.pem",
            "/etc/octavia/certs/client_ca.pem"
        ]
    );
    let conf = AgentConf::parse(&files[0].1).unwrap();
    assert_eq!(conf.amphora_id, amp.to_string());
    assert_eq!(conf.controller_ip_port_list, ["198.19.251.2:5555"]);
    assert_eq!(conf.heartbeat_key, "openstack-test-key");
    assert_eq!(conf.agent_server_cert, "/etc/octavia/certs/server.pem");
    assert_eq!(files[1].1, boot().server_pem);
    assert_eq!(files[2].1, boot().client_ca_pem);
    // What the agent would boot with now is what the drive holds.
    assert_eq!(rt.block_on(compute.agent_config(amp)).unwrap(), files[0].1);
    assert_eq!(rt.block_on(compute.stopped(amp)).unwrap(), None);

    // A step run again (a worker killed mid-boot) finds the same server and port.
    let again = rt.block_on(compute.create(amp, &boot())).unwrap();
    assert_eq!(again, inst);
    assert_eq!(s.servers_named(&name).len(), 1);
    assert_eq!(s.ports_named(&port).len(), 1);

    rt.block_on(compute.delete(amp)).unwrap();
    assert!(s.servers_named(&name).is_empty());
    assert!(
        s.ports_named(&port).is_empty(),
        "the management port is left"
    );
    assert!(rt
        .block_on(compute.stopped(amp))
        .unwrap()
        .is_some_and(|why| why.contains("no longer exists")));
    // Deleting what is gone is fine.
    rt.block_on(compute.delete(amp)).unwrap();

    // user_data_config_drive: the same files as cloud-init's write_files.
    let mut set = settings(s);
    set.user_data_config_drive = true;
    let compute = nova::NovaCompute::new(session(s), set);
    let amp = Id::new_v4();
    let inst = rt.block_on(compute.create(amp, &boot())).unwrap();
    let (files, user_data) = s.config_drive(&inst.compute_id);
    assert!(files.is_empty(), "{files:?}");
    let user_data = user_data.unwrap();
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    assert!(user_data.contains("-   path: /etc/octavia/amphora-agent.conf\n"));
    assert!(user_data.contains(&format!("        amphora_id = {amp}\n")));
    deleted_leaving_nothing(s, &rt, &compute, amp);
}

/// Nova's and Glance's refusals end the boot with Octavia's messages, and the revert (delete)
/// leaves nothing behind.
#[test]
fn a_failed_boot_says_why_and_leaves_nothing() {
    let _one = serial();
    let s = stack();
    let rt = rt();
    // No image with the tag: nothing is made.
    let mut set = settings(s);
    set.image_tag = "no-such-tag".into();
    let compute = nova::NovaCompute::new(session(s), set);
    let amp = Id::new_v4();
    let e = rt.block_on(compute.create(amp, &boot())).unwrap_err();
    assert!(!e.retryable);
    assert_eq!(
        e.message,
        "No Glance images are tagged with no-such-tag tag."
    );
    assert!(s
        .ports_named(&format!("octavia-amphora-mgmt-{amp}"))
        .is_empty());

    // A flavor no host can hold: the scheduler's "No valid host", then the revert.
    let (st, f) = s.admin(
        reqwest::Method::POST,
        &format!("{}/v2.1/flavors", s.url("nova")),
        Some(
            json!({"flavor": {"name": format!("huge-{}", Id::new_v4()), "vcpus": 1,
                               "ram": 1 << 30, "disk": 1}}),
        ),
    );
    assert_eq!(st, 200, "{f}");
    let mut set = settings(s);
    set.flavor_id = f["flavor"]["id"].as_str().unwrap().into();
    let compute = nova::NovaCompute::new(session(s), set);
    let amp = Id::new_v4();
    let e = rt.block_on(compute.create(amp, &boot())).unwrap_err();
    assert!(!e.retryable);
    assert!(
        e.message
            .starts_with("Failed to build compute instance due to: No valid host was found"),
        "{e}"
    );
    assert!(rt
        .block_on(compute.stopped(amp))
        .unwrap()
        .is_some_and(|why| why.contains("ERROR")));
    deleted_leaving_nothing(s, &rt, &compute, amp);

    // The service's instance quota spent: Nova's 403 and its words, then the revert.
    let quota = format!(
        "{}/v2.1/os-quota-sets/{}",
        s.url("nova"),
        s.ready["projects"]["service"].as_str().unwrap()
    );
    let (_, before) = s.admin(reqwest::Method::GET, &quota, None);
    let instances = before["quota_set"]["instances"].clone();
    let set_quota = |n: Value| {
        let (st, b) = s.admin(
            reqwest::Method::PUT,
            &quota,
            Some(json!({"quota_set": {"instances": n}})),
        );
        assert_eq!(st, 200, "{b}");
    };
    set_quota(json!(0));
    let compute = nova::NovaCompute::new(session(s), settings(s));
    let amp = Id::new_v4();
    let e = rt.block_on(compute.create(amp, &boot()));
    set_quota(instances);
    let e = e.unwrap_err();
    assert!(!e.retryable, "{e}");
    // Octavia's ComputeBuildException around Nova's words.
    assert!(
        e.message
            .starts_with("Failed to build compute instance due to: Quota exceeded for instances"),
        "{e}"
    );
    deleted_leaving_nothing(s, &rt, &compute, amp);
}

/// The service's token revoked in Keystone: the next call is answered 401, the session
/// authenticates again and sends it once more.
#[test]
fn a_revoked_service_token_is_renewed() {
    let _one = serial();
    let s = stack();
    let rt = rt();
    let session = session(s);
    let keystone = s.ready["keystone"].as_str().unwrap();
    // Keystone itself checks revocations (the other services cache validated tokens).
    let catalog = format!("{keystone}/auth/catalog");
    let get = || rt.block_on(session.call("Keystone", reqwest::Method::GET, &catalog, None));
    assert_eq!(get().unwrap().status, 200);
    let first = rt.block_on(session.token(false)).unwrap();
    let revoked = reqwest::blocking::Client::new()
        .delete(format!("{keystone}/auth/tokens"))
        .header("X-Auth-Token", s.token("admin", "admin"))
        .header("X-Subject-Token", &first)
        .send()
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 204);
    assert_eq!(get().unwrap().status, 200, "not renewed after the 401");
    let second = rt.block_on(session.token(false)).unwrap();
    assert_ne!(first, second);
}

fn load_balancer(id: Id, vip: &str) -> LoadBalancer {
    LoadBalancer {
        id,
        name: "lb".into(),
        description: String::new(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        admin_state_up: true,
        project_id: "p".into(),
        created_at: time::now(),
        updated_at: None,
        vip_address: Some(vip.into()),
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

fn listener(
    lb_id: Id,
    protocol: ListenerProtocol,
    port: u16,
    cidrs: Option<Vec<String>>,
) -> Listener {
    Listener {
        id: Id::new_v4(),
        lb_id,
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
        default_pool_id: None,
        insert_headers: Default::default(),
        created_at: time::now(),
        updated_at: None,
        timeout_client_data: 50000,
        timeout_member_connect: 5000,
        timeout_member_data: 50000,
        timeout_tcp_inspect: 0,
        tags: vec![],
        client_ca_tls_container_ref: None,
        client_authentication: ClientAuthentication::None,
        client_crl_container_ref: None,
        allowed_cidrs: cidrs,
        tls_ciphers: None,
        tls_versions: None,
        alpn_protocols: None,
        hsts_max_age: None,
        hsts_include_subdomains: false,
        hsts_preload: false,
    }
}

/// The neutron network driver: the VIP a port of the tenant's (Neutron's own 409 for an
/// address in use), each amphora's port with the VIP as allowed address pair and the load
/// balancer's security group attached to its server, rules following the listeners, a member
/// subnet's port; all of it gone after unplug, release and deallocate.
#[test]
fn neutron_plugs_vips_and_member_subnets() {
    let _one = serial();
    let s = stack();
    let rt = rt();
    let net = neutron::NeutronNetwork::new(session(s), e("network"), e("compute"));
    let compute = nova::NovaCompute::new(session(s), settings(s));
    let public = s.network("public")["subnet_id"]
        .as_str()
        .unwrap()
        .to_string();
    let private = s.network("private")["subnet_id"]
        .as_str()
        .unwrap()
        .to_string();
    let project = s.ready["projects"]["lb-a"].as_str().unwrap().to_string();
    let lb = Id::new_v4();
    let req = VipRequest {
        lb_id: lb,
        subnet_id: Some(public.clone()),
        project_id: Some(project.clone()),
        ..Default::default()
    };
    let vip = rt.block_on(net.allocate_vip(&req)).unwrap();
    let ip: std::net::Ipv4Addr = vip.address.parse().unwrap();
    assert!("198.19.252.0/24"
        .parse::<ipnet::Ipv4Net>()
        .unwrap()
        .contains(&ip));
    let ports = s.ports_named(&format!("octavia-lb-{lb}"));
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["id"], json!(vip.port_id));
    assert_eq!(ports[0]["project_id"], json!(project));
    assert_eq!(ports[0]["admin_state_up"], json!(false));
    assert_eq!(ports[0]["device_owner"], "Octavia");
    // Again (the API retried): the same port.
    assert_eq!(rt.block_on(net.allocate_vip(&req)).unwrap(), vip);

    // Another load balancer asking for the same address: Neutron's conflict, nothing made.
    let other = Id::new_v4();
    let taken = rt.block_on(net.allocate_vip(&VipRequest {
        lb_id: other,
        subnet_id: Some(public.clone()),
        address: Some(vip.address.clone()),
        ..Default::default()
    }));
    match taken {
        Err(VipError::Conflict(m)) => assert!(m.contains(&vip.address), "{m}"),
        other => panic!("not a conflict: {other:?}"),
    }
    assert!(s.ports_named(&format!("octavia-lb-{other}")).is_empty());
    match rt.block_on(net.allocate_vip(&VipRequest {
        lb_id: other,
        subnet_id: Some("nope".into()),
        ..Default::default()
    })) {
        Err(VipError::Invalid(m)) => assert_eq!(m, "Subnet nope not found."),
        other => panic!("not invalid: {other:?}"),
    }
    // Additional VIPs: on subnets of the VIP's network only, and ones Neutron has.
    for (subnet, want) in [
        (
            private.as_str(),
            "All VIP subnets must belong to the same network.",
        ),
        ("nope", "Subnet nope not found."),
    ] {
        match rt.block_on(net.allocate_vip(&VipRequest {
            lb_id: other,
            subnet_id: Some(public.clone()),
            additional: vec![AdditionalVipRequest {
                subnet_id: subnet.into(),
                address: None,
            }],
            ..Default::default()
        })) {
            Err(VipError::Invalid(m)) => assert_eq!(m, want),
            other => panic!("not invalid: {other:?}"),
        }
    }
    // The VIP's subnet found from its network, asked again as an additional VIP's (both of
    // the network's subnets are: whichever Neutron lists first is the VIP's).
    match rt.block_on(
        net.allocate_vip(&VipRequest {
            lb_id: other,
            network_id: s.network("public")["network_id"].as_str().map(String::from),
            additional: ["public", "public-2"]
                .map(|n| AdditionalVipRequest {
                    subnet_id: s.network(n)["subnet_id"].as_str().unwrap().into(),
                    address: None,
                })
                .to_vec(),
            ..Default::default()
        }),
    ) {
        Err(VipError::Invalid(m)) => assert!(m.starts_with("Duplicate VIP subnet(s)"), "{m}"),
        other => panic!("not invalid: {other:?}"),
    }
    assert!(s.ports_named(&format!("octavia-lb-{other}")).is_empty());

    // An amphora of it: its own port on the VIP subnet, attached to its server.
    let amp_id = Id::new_v4();
    let inst = rt.block_on(compute.create(amp_id, &boot())).unwrap();
    let amp = Amphora {
        id: amp_id,
        loadbalancer_id: Some(lb),
        compute_id: Some(inst.compute_id.clone()),
        lb_network_ip: Some(inst.lb_network_ip.clone()),
        vrrp_ip: None,
        ha_ip: None,
        vrrp_port_id: None,
        ha_port_id: None,
        cert_expiration: None,
        cert_busy: false,
        role: Some(AmphoraRole::Standalone),
        status: AmphoraStatus::Allocated,
        vrrp_interface: None,
        vrrp_id: None,
        vrrp_priority: None,
        cached_zone: None,
        created_at: time::now(),
        updated_at: None,
        image_id: None,
        compute_flavor: None,
    };
    let plug = rt.block_on(net.plug_vip(&amp, &vip)).unwrap();
    assert_eq!(plug.ha_ip, vip.address);
    assert_eq!(plug.ha_port_id, vip.port_id);
    assert_eq!(plug.subnet_cidr.as_deref(), Some("198.19.252.0/24"));
    assert_eq!(plug.gateway.as_deref(), Some("198.19.252.1"));
    let vrrp = s.ports_named(&format!("octavia-lb-vrrp-{amp_id}"));
    assert_eq!(vrrp.len(), 1);
    assert_eq!(vrrp[0]["id"], json!(plug.vrrp_port_id));
    assert_eq!(
        vrrp[0]["mac_address"],
        json!(plug.mac_address.clone().unwrap())
    );
    assert_eq!(
        vrrp[0]["allowed_address_pairs"][0]["ip_address"],
        json!(vip.address)
    );
    assert_eq!(
        vrrp[0]["device_id"],
        json!(inst.compute_id),
        "attached to its server"
    );
    assert_eq!(rt.block_on(net.plug_vip(&amp, &vip)).unwrap(), plug);

    // The security group follows the listeners.
    let mut tree = LbTree {
        loadbalancer: Some(load_balancer(lb, &vip.address)),
        ..Default::default()
    };
    tree.listeners = vec![
        listener(
            lb,
            ListenerProtocol::Http,
            80,
            Some(vec!["198.18.0.0/15".into()]),
        ),
        listener(lb, ListenerProtocol::Udp, 53, None),
    ];
    rt.block_on(net.update_vip(&tree)).unwrap();
    assert_eq!(
        s.sg_rules(lb),
        [
            "112 null group",
            "tcp 1025 group",
            "tcp 80 198.18.0.0/15",
            "udp 53 0.0.0.0/0"
        ]
    );
    tree.listeners.remove(0);
    rt.block_on(net.update_vip(&tree)).unwrap();
    assert_eq!(
        s.sg_rules(lb),
        ["112 null group", "tcp 1025 group", "udp 53 0.0.0.0/0"]
    );

    // The user's security groups (`vip_sg_ids`) and QoS policy (`vip_qos_policy_id`): the
    // amphora's port carries both, the VIP port the policy, and the load balancer's own group
    // keeps only the VRRP and peer rules; cleared, everything is as before.
    let neutron_url = |path: &str| format!("{}/v2.0/{path}", s.url("neutron"));
    let (st, b) = s.admin(
        reqwest::Method::POST,
        &neutron_url("security-groups"),
        Some(json!({"security_group": {"name": format!("user-{lb}")}})),
    );
    assert_eq!(st, 201, "{b}");
    let user_sg = b["security_group"]["id"].as_str().unwrap().to_string();
    let (st, b) = s.admin(
        reqwest::Method::POST,
        &neutron_url("qos/policies"),
        Some(json!({"policy": {"name": format!("qos-{lb}")}})),
    );
    assert_eq!(st, 201, "{b}");
    let qos = b["policy"]["id"].as_str().unwrap().to_string();
    let port = |id: &str| {
        s.admin(
            reqwest::Method::GET,
            &neutron_url(&format!("ports/{id}")),
            None,
        )
        .1["port"]
            .clone()
    };
    let groups = |p: &Value| {
        let mut g: Vec<String> = p["security_groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect();
        g.sort();
        g
    };
    let own_sg = groups(&port(&plug.vrrp_port_id));
    assert_eq!(own_sg.len(), 1);
    if let Some(l) = tree.loadbalancer.as_mut() {
        l.vip_port_id = Some(vip.port_id.clone());
        l.vip_sg_ids = vec![user_sg.clone()];
        l.vip_qos_policy_id = Some(qos.clone());
    }
    rt.block_on(net.update_vip(&tree)).unwrap();
    assert_eq!(s.sg_rules(lb), ["112 null group", "tcp 1025 group"]);
    let mut both = vec![own_sg[0].clone(), user_sg.clone()];
    both.sort();
    assert_eq!(groups(&port(&plug.vrrp_port_id)), both);
    assert_eq!(port(&plug.vrrp_port_id)["qos_policy_id"], json!(qos));
    assert_eq!(port(&vip.port_id)["qos_policy_id"], json!(qos));
    if let Some(l) = tree.loadbalancer.as_mut() {
        l.vip_sg_ids.clear();
        l.vip_qos_policy_id = None;
    }
    rt.block_on(net.update_vip(&tree)).unwrap();
    assert_eq!(
        s.sg_rules(lb),
        ["112 null group", "tcp 1025 group", "udp 53 0.0.0.0/0"]
    );
    assert_eq!(groups(&port(&plug.vrrp_port_id)), own_sg);
    assert_eq!(port(&plug.vrrp_port_id)["qos_policy_id"], Value::Null);
    assert_eq!(port(&vip.port_id)["qos_policy_id"], Value::Null);
    // Groups and policies that do not exist are refused before anything is made.
    let missing = Id::new_v4().to_string();
    for (sg_ids, qos_policy_id, field) in [
        (vec![missing.clone()], None, "vip_sg_ids"),
        (vec![], Some(missing.clone()), "vip_qos_policy_id"),
    ] {
        match rt.block_on(net.allocate_vip(&VipRequest {
            lb_id: other,
            subnet_id: Some(public.clone()),
            sg_ids,
            qos_policy_id,
            ..Default::default()
        })) {
            Err(VipError::Invalid(m)) => {
                assert!(m.contains(field) && m.contains(&missing), "{m}")
            }
            other => panic!("not invalid: {other:?}"),
        }
    }
    assert!(s.ports_named(&format!("octavia-lb-{other}")).is_empty());
    for path in [
        format!("security-groups/{user_sg}"),
        format!("qos/policies/{qos}"),
    ] {
        assert_eq!(
            s.admin(reqwest::Method::DELETE, &neutron_url(&path), None)
                .0,
            204
        );
    }

    // A member subnet: a port of its own.
    let member = rt
        .block_on(net.plug_network(&amp, &private))
        .unwrap()
        .unwrap();
    assert_eq!(member.subnet_cidr, "198.19.253.0/24");
    let member_port = format!("octavia-amp-member-{amp_id}-{private}");
    assert_eq!(
        s.ports_named(&member_port)[0]["device_id"],
        json!(inst.compute_id)
    );
    // Kept while a member is on the subnet; detached and deleted once none is.
    rt.block_on(net.unplug_networks(&amp, std::slice::from_ref(&private)))
        .unwrap();
    assert_eq!(s.ports_named(&member_port).len(), 1);
    rt.block_on(net.unplug_networks(&amp, &[])).unwrap();
    assert!(s.ports_named(&member_port).is_empty());
    rt.block_on(net.unplug_networks(&amp, &[])).unwrap();
    rt.block_on(net.plug_network(&amp, &private))
        .unwrap()
        .unwrap();

    // Deleting the amphora and the load balancer leaves nothing.
    rt.block_on(net.unplug_vip(&amp, &vip)).unwrap();
    assert!(s
        .ports_named(&format!("octavia-lb-vrrp-{amp_id}"))
        .is_empty());
    rt.block_on(net.release_amphora(&amp)).unwrap();
    assert!(s.ports_named(&member_port).is_empty());
    rt.block_on(compute.delete(amp_id)).unwrap();
    rt.block_on(net.deallocate_vip(&vip)).unwrap();
    assert!(s.ports_named(&format!("octavia-lb-{lb}")).is_empty());
    assert_eq!(s.security_groups_named(&format!("lb-{lb}")), 0);
    rt.block_on(net.deallocate_vips_of(lb)).unwrap();
    rt.block_on(net.release_amphora(&amp)).unwrap();
}

/// `[nova] enable_anti_affinity`: the two amphorae of an ACTIVE_STANDBY pair boot in one
/// server group with the policy (soft here: the fake cloud has one host); the group goes with
/// its last member.
#[test]
fn nova_puts_an_active_standby_pair_in_a_server_group() {
    let _one = serial();
    let s = stack();
    let rt = rt();
    let mut set = settings(s);
    set.anti_affinity = Some("soft-anti-affinity".into());
    let compute = nova::NovaCompute::new(session(s), set);
    let lb = Id::new_v4();
    let pair = [Id::new_v4(), Id::new_v4()];
    let mut servers = Vec::new();
    for amp in pair {
        let b = Boot {
            pair_of: Some(lb),
            ..boot()
        };
        servers.push(rt.block_on(compute.create(amp, &b)).unwrap().compute_id);
    }
    let group = || {
        let (st, b) = s.admin(
            reqwest::Method::GET,
            &format!("{}/v2.1/os-server-groups?all_projects=1", s.url("nova")),
            None,
        );
        assert_eq!(st, 200, "{b}");
        b["server_groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == format!("octavia-lb-{lb}").as_str())
            .cloned()
    };
    let g = group().expect("no server group for the pair");
    assert_eq!(g["policies"], json!(["soft-anti-affinity"]));
    let mut members: Vec<String> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    members.sort();
    servers.sort();
    assert_eq!(members, servers);
    rt.block_on(compute.delete(pair[0])).unwrap();
    assert!(group().is_some(), "the group went with a member left");
    rt.block_on(compute.delete(pair[1])).unwrap();
    assert!(group().is_none(), "the group is left after its last member");
}
