//! End to end on the `netns` drivers (issue 15): each amphora is a network namespace of its own
//! on a management network `rocta serve` builds itself (bridge, controller port, nftables
//! filter), its VIP plugged through the agent into a tenant bridge, members on the host's
//! gateway address. Isolation, traffic, the control plane stopped and restarted, failover
//! after `kill -9` of everything in the namespace, and nothing left after delete.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::dataplane::*;
use common::netns::NetnsEnv;
use common::*;
use serde_json::json;

/// Whether a TCP connection from namespace `ns` to `addr:port` opens within a second.
fn connects_from(ns: &str, addr: &str, port: u16) -> bool {
    let code = format!(
        "import socket,sys\ns=socket.socket()\ns.settimeout(1)\n\
         try:\n s.connect(('{addr}',{port}))\nexcept Exception:\n sys.exit(1)\n"
    );
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &code])
        .status()
        .unwrap()
        .success()
}

fn links_of(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

fn kill_namespace(ns: &str) {
    assert!(common::netns::kill_all_in(ns) > 0, "nothing runs in {ns}");
}

#[test]
fn an_amphora_is_a_namespace_of_its_own_on_the_management_network() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let env = NetnsEnv::new(
        dir.path(),
        "heartbeat_interval = 0.5\nheartbeat_timeout = 3.0\n\
         [controller_worker]\njob_lease_seconds = 2\njob_poll_interval_ms = 50\n",
    );
    let mut r = Rocta::start_netns(dir.path(), &env.config);
    // The host networks exist now: members listen on the host's gateway address.
    let gw = env.gateway.clone();
    let a = serve_backend(TcpListener::bind((gw.as_str(), 0)).unwrap(), "A");
    let b = serve_backend(TcpListener::bind((gw.as_str(), 0)).unwrap(), "B");
    let body = json!({"loadbalancer": {"name": "web", "vip_subnet_id": env.subnet_id,
        "listeners": [{"protocol": "HTTP", "protocol_port": 8080, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": [{"address": gw, "protocol_port": a}, {"address": gw, "protocol_port": b}]}]}});
    let (s, lb) = r.post("/v2/lbaas/loadbalancers", body);
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    let vip = lb["loadbalancer"]["vip_address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(vip.starts_with(&format!("198.19.{}.", env.k)), "{vip}");
    assert_ne!(vip, gw);
    r.wait_active(&id);
    let url = format!("http://{vip}:8080/");
    eventually("no traffic through the VIP", || get(&url).is_some());
    let answers: Vec<String> = (0..4).map(|_| get(&url).unwrap().1).collect();
    assert!(
        answers == ["A", "B", "A", "B"] || answers == ["B", "A", "B", "A"],
        "round robin: {answers:?}"
    );
    // A PROMETHEUS listener: the agent's metrics proxy and HAProxy's exporter meet on abstract
    // sockets of the amphora's namespace.
    let (s, prom) = r.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": id, "protocol": "PROMETHEUS", "protocol_port": 9100}}),
    );
    assert_eq!(s, 201, "{prom}");
    r.wait_active(&id);
    let http_listener = lb["loadbalancer"]["listeners"][0]["id"].as_str().unwrap();
    let series = format!("octavia_listener_http_requests_total{{listener=\"{http_listener}\"}} ");
    // The listener's creation reloaded HAProxy, whose counters start again: traffic now.
    eventually("no Octavia metrics on the PROMETHEUS listener", || {
        get(&url).is_some()
            && reqwest::blocking::get(format!("http://{vip}:9100/metrics"))
                .and_then(|r| r.text())
                .is_ok_and(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix(&series))
                        .is_some_and(|v| v.parse::<f64>().is_ok_and(|n| n >= 1.0))
                })
    });
    let text = reqwest::blocking::get(format!("http://{vip}:9100/metrics"))
        .unwrap()
        .text()
        .unwrap();
    promtool_check(&text);

    // The amphora: a namespace with its own loopback, a management interface and the VIP port.
    let spaces = env.namespaces();
    assert_eq!(spaces.len(), 1, "{spaces:?}");
    let ns = spaces[0].clone();
    let mut links = links_of(&ns);
    links.sort();
    assert_eq!(links, ["eth0", "eth1", "lo"]);
    // A member on another tenant network: the amphora gets a port on its subnet (plug-network).
    let mgw = env.member_gateway.clone();
    let c = serve_backend(TcpListener::bind((mgw.as_str(), 0)).unwrap(), "C");
    let pool0 = lb["loadbalancer"]["pools"][0]["id"].as_str().unwrap();
    let (s, m) = r.post(
        &format!("/v2/lbaas/pools/{pool0}/members"),
        json!({"member": {"address": mgw, "protocol_port": c, "subnet_id": env.member_subnet_id}}),
    );
    assert_eq!(s, 201, "{m}");
    r.wait_active(&id);
    let mut links = links_of(&ns);
    links.sort();
    // eth<2 + the network's position in [[netns.networks]]>: the second network, eth3.
    assert_eq!(
        links,
        ["eth0", "eth1", "eth3", "lo"],
        "no port on the member subnet"
    );
    eventually("the member on the other network never served", || {
        (0..3).any(|_| get(&url).is_some_and(|x| x.1 == "C"))
    });
    let (s, _) = r.delete(&format!(
        "/v2/lbaas/pools/{pool0}/members/{}",
        m["member"]["id"].as_str().unwrap()
    ));
    assert_eq!(s, 204);
    r.wait_active(&id);
    // Its last member gone, the port on the member subnet goes too (unplug-network).
    let mut links = links_of(&ns);
    links.sort();
    assert_eq!(
        links,
        ["eth0", "eth1", "lo"],
        "the member subnet's port stayed"
    );
    let (s, amps) = r.req_as(
        "GET",
        &format!("/v2/octavia/amphorae?loadbalancer_id={id}"),
        None,
        "p1",
        Some("admin"),
    );
    assert_eq!(s, 200, "{amps}");
    let amp = &amps["amphorae"][0];
    let mgmt = amp["lb_network_ip"].as_str().unwrap();
    assert!(mgmt.starts_with(&env.mgmt_prefix), "{amp}");
    assert!(
        ns.ends_with(&amp["id"].as_str().unwrap()[..8]),
        "{ns} {amp}"
    );
    // Its loopback is its own, and the management network passes only the agent API and
    // heartbeats: a service on the controller's management address is out of reach, the
    // tenant network's gateway is not.
    let ctl = TcpListener::bind((format!("{}1", env.mgmt_prefix).as_str(), 0)).unwrap();
    let ctl_port = ctl.local_addr().unwrap().port();
    assert!(
        !connects_from(&ns, &format!("{}1", env.mgmt_prefix), ctl_port),
        "the management filter let a connection to the controller through"
    );
    assert!(
        connects_from(&ns, &gw, a),
        "members unreachable from the amphora"
    );
    let api_port: u16 = r.url.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        !connects_from(&ns, "127.0.0.1", api_port),
        "the amphora shares the host's loopback"
    );

    // The control plane stopped: the amphora keeps serving; restarted, it finds it.
    r.kill();
    assert_eq!(
        get(&url).map(|x| x.0),
        Some(200),
        "served without a control plane"
    );
    let r = Rocta::start_netns(dir.path(), &env.config);
    let pool = lb["loadbalancer"]["pools"][0]["id"].as_str().unwrap();
    let m0 = lb["loadbalancer"]["pools"][0]["members"][0]["id"]
        .as_str()
        .unwrap();
    let (s, _) = r.put(
        &format!("/v2/lbaas/pools/{pool}/members/{m0}"),
        json!({"member": {"admin_state_up": false}}),
    );
    assert_eq!(s, 200);
    r.wait_active(&id);
    eventually(
        "the restarted control plane did not reach the amphora",
        || (0..4).all(|_| get(&url).is_some_and(|x| x.1 == "B")),
    );

    // kill -9 of everything in the namespace: failed over to a new namespace, same VIP.
    kill_namespace(&ns);
    let killed = Instant::now();
    let mut resumed = None;
    while killed.elapsed() < Duration::from_secs(30) {
        if killed.elapsed() > Duration::from_millis(500) && get(&url).is_some_and(|x| x.1 == "B") {
            resumed = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let gap = resumed.expect("traffic did not resume within 30 s of the kill");
    eprintln!("netns failover: traffic resumed {gap:?} after kill -9");
    r.wait_active(&id);
    eventually("the dead amphora's namespace is left", || {
        let now = env.namespaces();
        now.len() == 1 && now[0] != ns
    });

    // A flavor asking for ACTIVE_STANDBY gets a pair on a SINGLE deployment.
    let admin = |path: &str, body: serde_json::Value| {
        let (s, b) = r.req_as("POST", path, Some(body), "p1", Some("admin"));
        assert_eq!(s, 201, "{b}");
        b
    };
    let fp = admin(
        "/v2/lbaas/flavorprofiles",
        json!({"flavorprofile": {"name": "ha", "provider_name": "amphora",
            "flavor_data": "{\"loadbalancer_topology\": \"ACTIVE_STANDBY\"}"}}),
    );
    let fl = admin(
        "/v2/lbaas/flavors",
        json!({"flavor": {"name": "ha", "flavor_profile_id": fp["flavorprofile"]["id"]}}),
    );
    let (s, ha) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"name": "ha", "vip_subnet_id": env.subnet_id,
                                "flavor_id": fl["flavor"]["id"]}}),
    );
    assert_eq!(s, 201, "{ha}");
    let ha = ha["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&ha);
    let (_, amps) = r.req_as(
        "GET",
        &format!("/v2/octavia/amphorae?loadbalancer_id={ha}"),
        None,
        "p1",
        Some("admin"),
    );
    let mut roles: Vec<&str> = amps["amphorae"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["role"].as_str())
        .collect();
    roles.sort();
    assert_eq!(roles, ["BACKUP", "MASTER"], "{amps}");
    delete_lb(&r, &ha);

    // Delete: no namespace, no port on the bridges, no filter element, no reservation.
    delete_lb(&r, &id);
    eventually("namespaces or ports left after delete", || {
        env.namespaces().is_empty() && env.ports().is_empty()
    });
    let set = Command::new("nft")
        .args([
            "list",
            "set",
            "bridge",
            &format!("rocta_m{}", env.k),
            "ports",
        ])
        .output()
        .unwrap();
    let set = String::from_utf8_lossy(&set.stdout).into_owned();
    assert!(
        !set.contains("e0\""),
        "a management port left in the filter: {set}"
    );
    for sub in [
        format!("netns/t{}", env.k),
        format!("netns/u{}", env.k),
        "amphorae/mgmt".to_string(),
    ] {
        let left: Vec<_> = std::fs::read_dir(dir.path().join("data").join(&sub))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "reservations left in {sub}: {left:?}");
    }
}

/// The amphorae of a load balancer: (id, role, status) of the live ones.
fn amphorae_of(r: &Rocta, lb: &str) -> Vec<(String, String, String)> {
    common::netns::amphorae_of(r, lb)
        .iter()
        .map(|a| {
            let f = |k: &str| a[k].as_str().unwrap_or_default().to_string();
            (f("id"), f("role"), f("status"))
        })
        .collect()
}

/// The entries of every stick table of the HAProxy of load balancer `lb` on amphora `amp`
/// (`show table` on its stats socket, an abstract socket of the amphora's namespace, whose
/// name HAProxy pads with NULs to the whole address).
fn stick_table(ns: &str, amp: &str, lb: &str) -> String {
    let ask = |cmd: &str| {
        let code = format!(
            "import socket\ns=socket.socket(socket.AF_UNIX)\n\
             a='\\0rocta-{amp}-{lb}'\ns.connect(a+'\\0'*(108-len(a)))\n\
             s.sendall(b'{cmd}\\n')\nout=b''\nwhile True:\n d=s.recv(65536)\n \
             if not d: break\n out+=d\nprint(out.decode())\n"
        );
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", &code])
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text
    };
    let tables = ask("show table");
    let mut all = tables.clone();
    for t in tables.lines().filter_map(|l| l.strip_prefix("# table: ")) {
        all.push_str(&ask(&format!(
            "show table {}",
            t.split(',').next().unwrap_or_default()
        )));
    }
    all
}

/// Whether one request through the VIP is answered by backend A.
fn answers(client: &reqwest::blocking::Client, url: &str) -> bool {
    client
        .get(url)
        .send()
        .ok()
        .and_then(|r| r.text().ok())
        .is_some_and(|t| t == "A")
}

fn holds(ns: &str, vip: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-4", "-o", "addr", "show", "eth1"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(&format!(" {vip}/"))
}

#[test]
fn active_standby_keeps_the_vip_when_the_master_dies() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let env = NetnsEnv::new(
        dir.path(),
        "heartbeat_interval = 0.5\nheartbeat_timeout = 3.0\n\
         [controller_worker]\nloadbalancer_topology = \"ACTIVE_STANDBY\"\n\
         job_lease_seconds = 2\njob_poll_interval_ms = 50\n",
    );
    let r = Rocta::start_netns(dir.path(), &env.config);
    let gw = env.gateway.clone();
    let a = serve_backend(TcpListener::bind((gw.as_str(), 0)).unwrap(), "A");
    let body = json!({"loadbalancer": {"name": "pair", "vip_subnet_id": env.subnet_id,
        "listeners": [{"protocol": "HTTP", "protocol_port": 8080, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "session_persistence": {"type": "SOURCE_IP"},
                   "members": [{"address": gw, "protocol_port": a}]}]}});
    let (id, vip, _) = r.create_lb(body);
    let url = format!("http://{vip}:8080/");

    // Two amphorae in namespaces of their own, MASTER holding the VIP.
    let amps = amphorae_of(&r, &id);
    let mut roles: Vec<&str> = amps.iter().map(|a| a.1.as_str()).collect();
    roles.sort();
    assert_eq!(roles, ["BACKUP", "MASTER"], "{amps:?}");
    let ns_of = |id: &str| rocta_drivers::netns::namespace(id.parse().unwrap());
    let master = amps.iter().find(|a| a.1 == "MASTER").unwrap().0.clone();
    let backup = amps.iter().find(|a| a.1 == "BACKUP").unwrap().0.clone();
    eventually("the MASTER never took the VIP", || {
        holds(&ns_of(&master), &vip)
    });
    assert!(!holds(&ns_of(&backup), &vip), "both hold the VIP");
    eventually("no traffic through the VIP", || {
        get(&url).is_some_and(|x| x.1 == "A")
    });
    // Stickiness learnt by the MASTER reaches the BACKUP's table (HAProxy peers).
    let t = Instant::now();
    loop {
        let table = stick_table(&ns_of(&backup), &backup, &id);
        if table.contains(&gw) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the BACKUP's stick table never learnt the client: {table}\nMASTER's: {}",
            stick_table(&ns_of(&master), &master, &id)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // kill -9 of everything in the MASTER's namespace, under a request every 20 ms.
    let fast = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(300))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let killed = Instant::now();
    kill_namespace(&ns_of(&master));
    let mut failed = 0;
    // Resumed: the first of ten requests in a row served (while the dead namespace still
    // answers for the VIP, refusals and answers alternate).
    let (mut streak, mut since) = (0, None);
    let resumed = loop {
        let ok = answers(&fast, &url);
        if ok {
            since.get_or_insert(killed.elapsed());
            streak += 1;
            if streak == 10 {
                break since.unwrap_or_default();
            }
        } else {
            failed += 1;
            (streak, since) = (0, None);
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "the VIP never moved"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "active/standby: traffic resumed {resumed:?} after kill -9 of the MASTER ({failed} requests failed)"
    );
    assert!(
        resumed < Duration::from_secs(1),
        "the VIP took {resumed:?} to move (target 1 s)"
    );
    assert!(
        holds(&ns_of(&backup), &vip),
        "the BACKUP does not hold the VIP"
    );

    // The health manager rebuilds the pair: a new amphora with the dead one's role, the
    // survivor keeping the VIP.
    let t = Instant::now();
    loop {
        let now = amphorae_of(&r, &id);
        let allocated: Vec<_> = now.iter().filter(|a| a.2 == "ALLOCATED").collect();
        if allocated.len() == 2 && !now.iter().any(|a| a.0 == master) {
            let new = allocated
                .iter()
                .find(|a| a.0 != backup)
                .expect("the survivor");
            assert_eq!(new.1, "MASTER", "{now:?}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "pair not rebuilt: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    r.wait_active(&id);
    assert!(holds(&ns_of(&backup), &vip), "the survivor lost the VIP");
    assert_eq!(get(&url).map(|x| x.1), Some("A".to_string()));

    // Now the standby dies (the new amphora: it does not hold the VIP): traffic goes on, and
    // the pair is rebuilt around the holder again.
    let standby = amphorae_of(&r, &id)
        .into_iter()
        .find(|a| a.0 != backup && a.2 == "ALLOCATED")
        .expect("the standby")
        .0;
    assert!(!holds(&ns_of(&standby), &vip));
    kill_namespace(&ns_of(&standby));
    let t = Instant::now();
    let mut lost = 0;
    loop {
        let ok = answers(&fast, &url);
        if !ok {
            lost += 1;
        }
        let now = amphorae_of(&r, &id);
        let allocated = now.iter().filter(|a| a.2 == "ALLOCATED").count();
        if allocated == 2 && !now.iter().any(|a| a.0 == standby) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "standby not replaced: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lost, 0, "requests lost while the standby was replaced");
    r.wait_active(&id);
    assert!(holds(&ns_of(&backup), &vip), "the holder lost the VIP");

    // A failover of the whole load balancer: the standby first, then the other, so the VIP
    // always has a holder; under a request every 20 ms.
    let before: Vec<String> = amphorae_of(&r, &id).into_iter().map(|a| a.0).collect();
    let (s, b) = r.req_as(
        "PUT",
        &format!("/v2/lbaas/loadbalancers/{id}/failover"),
        None,
        "p1",
        Some("admin"),
    );
    assert_eq!(s, 202, "{b}");
    let (mut served, mut lost) = (0, 0);
    let t = Instant::now();
    loop {
        let ok = answers(&fast, &url);
        if ok {
            served += 1;
        } else {
            lost += 1;
        }
        let (_, l) = r.get(&format!("/v2/lbaas/loadbalancers/{id}"));
        if l["loadbalancer"]["provisioning_status"] == "ACTIVE" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "failover never ended: {l}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("active/standby load balancer failover: {served} requests served, {lost} lost");
    let after = amphorae_of(&r, &id);
    let mut roles: Vec<&str> = after.iter().map(|a| a.1.as_str()).collect();
    roles.sort();
    assert_eq!(roles, ["BACKUP", "MASTER"], "{after:?}");
    assert!(
        after.iter().all(|a| !before.contains(&a.0)),
        "not all replaced: {after:?}"
    );
    eventually("nobody holds the VIP after the failover", || {
        after.iter().filter(|a| holds(&ns_of(&a.0), &vip)).count() == 1
    });
    eventually("no traffic after the failover", || {
        get(&url).is_some_and(|x| x.1 == "A")
    });

    delete_lb(&r, &id);
    eventually("namespaces left after delete", || {
        env.namespaces().is_empty()
    });
}
