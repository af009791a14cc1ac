//! Two hosts over VXLAN (issue 15): "hosts" A and B are network namespaces joined only by an
//! underlay veth, each with its own management bridge (`rocta network setup`), the two joined
//! by VXLAN 42. The control plane runs on A; the amphorae are plugged on B's bridges
//! (`[netns] amphora_host_netns`), so every agent call and every heartbeat crosses the VXLAN.
//! Create, traffic (from B), member health, failover after `kill -9`, and the VXLAN torn down:
//! every amphora falls silent at once and the failover threshold stops a mass failover.
//! Then availability zones (issue 14): compute zone `zone-a` is host A, so a load balancer
//! in an availability zone whose profile names it gets its amphora plugged on A.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{free_udp_port, kill_all_in, Ns};
use common::*;
use serde_json::{json, Value};

fn namespaces() -> HashSet<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("amphora-"))
        .map(str::to_string)
        .collect()
}

/// Removes the amphora namespaces this test made (those that were not there before it).
struct Amphorae(HashSet<String>);

impl Drop for Amphorae {
    fn drop(&mut self) {
        for ns in namespaces().difference(&self.0) {
            kill_all_in(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// An interface the test made in this host's namespace, deleted when it ends (its peer's
/// namespace may outlive the test for a while, keeping the pair and its address alive).
struct Link(String);

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Background processes of the test, killed when it ends.
struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A member on `host`'s gateway address of `public`, port `port`, answering `name`.
fn http_member(host: &Ns, dir: &std::path::Path, name: &str, port: u16) -> std::process::Child {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("index.html"), name).unwrap();
    let port = port.to_string();
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &host.0,
            "python3",
            "-m",
            "http.server",
            &port,
        ])
        .args(["--bind", "198.19.0.1", "--directory"])
        .arg(&d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A GET from inside `host`: the body, or `None`.
fn get_from(host: &Ns, url: &str) -> Option<String> {
    let code = format!(
        "import urllib.request,sys\n\
         try:\n print(urllib.request.urlopen('{url}', timeout=2).read().decode(), end='')\n\
         except Exception:\n sys.exit(1)\n"
    );
    let out = host.run(&["python3", "-c", &code]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn until(what: &str, within: Duration, f: impl Fn() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "{what} (after {:?})", t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    t.elapsed()
}

fn member_statuses(r: &Rocta, lb: &str) -> Vec<String> {
    let (_, tree) = r.get(&format!("/v2/lbaas/loadbalancers/{lb}/status"));
    tree["statuses"]["loadbalancer"]["listeners"][0]["pools"][0]["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            m["operating_status"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn amphora_of(r: &Rocta, lb: &str) -> Value {
    common::netns::amphorae_of(r, lb)
        .into_iter()
        .find(|a| a["status"] == "ALLOCATED")
        .unwrap_or(Value::Null)
}

#[test]
fn amphorae_on_another_host_are_driven_across_the_vxlan() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let _amphorae = Amphorae(namespaces());
    let (a, b) = (Ns::new("A"), Ns::new("B"));
    let pid = std::process::id() % 100_000;
    // The underlay: one veth between the hosts, nothing else joins them.
    let (ua, ub) = (format!("rxa{pid}"), format!("rxb{pid}"));
    a.ip(&["link", "add", &ua, "type", "veth", "peer", "name", &ub]);
    a.ip(&["link", "set", &ub, "netns", &b.0]);
    a.ip(&["addr", "add", "198.18.254.1/30", "dev", &ua]);
    a.ip(&["link", "set", &ua, "up"]);
    b.ip(&["addr", "add", "198.18.254.2/30", "dev", &ub]);
    b.ip(&["link", "set", &ub, "up"]);
    // The test reaches A's API over a link of its own.
    let api = format!("rxp{pid}");
    common::netns::sh(&[
        "ip", "link", "add", &api, "type", "veth", "peer", "name", "api0", "netns", &a.0,
    ]);
    let _api_link = Link(api.clone());
    common::netns::sh(&["ip", "addr", "add", "198.18.253.1/30", "dev", &api]);
    common::netns::sh(&["ip", "link", "set", &api, "up"]);
    a.ip(&["addr", "add", "198.18.253.2/30", "dev", "api0"]);
    a.ip(&["link", "set", "api0", "up"]);

    let port = free_udp_port();
    let hm = format!(
        "[health_manager]\nbind_port = {port}\ncontroller_ip_port_list = [\"198.18.0.1:{port}\"]\n"
    );
    let cfg_a = format!(
        "[netns]\namphora_host_netns = \"{b}\"\n{hm}heartbeat_interval = 0.5\n\
         heartbeat_timeout = 3.0\nfailover_threshold = 2\n\
         [controller_worker]\njob_lease_seconds = 2\njob_poll_interval_ms = 50\n\
         [[netns.compute_zones]]\nname = \"zone-a\"\nhost_netns = \"\"\n\
         [[netns.compute_zones]]\nname = \"zone-b\"\nhost_netns = \"{b}\"\n",
        b = b.0
    );
    let cfg_b = format!("[netns]\nhost_address = \"198.18.0.2\"\n{hm}");
    let (file_a, file_b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::fs::write(&file_a, &cfg_a).unwrap();
    std::fs::write(&file_b, &cfg_b).unwrap();
    let vxlan = |host: &Ns, file: &std::path::Path, local: &str, remote: &str, dev: &str| {
        let out = host.rocta(
            &[
                "setup",
                "--vxlan-id",
                "42",
                "--local",
                local,
                "--remote",
                remote,
                "--dev",
                dev,
            ],
            file,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    vxlan(&a, &file_a, "198.18.254.1", "198.18.254.2", &ua);
    vxlan(&b, &file_b, "198.18.254.2", "198.18.254.1", &ub);

    let r = Rocta::start_netns_on(dir.path(), &a.0, "198.18.253.2", &cfg_a);
    // Members on host B, on its gateway address of `public`.
    let mut servers = Procs(Vec::new());
    for (name, p) in [("A", 8001), ("B", 8002)] {
        servers.0.push(http_member(&b, dir.path(), name, p));
    }
    let lb_body = |name: &str| {
        json!({"loadbalancer": {"name": name, "vip_subnet_id": common::dataplane::PUBLIC,
            "listeners": [{"protocol": "HTTP", "protocol_port": 8080, "default_pool": {"name": "p"}}],
            "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                "healthmonitor": {"type": "HTTP", "delay": 1, "timeout": 1, "max_retries": 1},
                "members": [{"address": "198.19.0.1", "protocol_port": 8001},
                            {"address": "198.19.0.1", "protocol_port": 8002}]}]}})
    };
    let (id, vip, _) = r.create_lb(lb_body("one"));
    let url = format!("http://{vip}:8080/");
    until(
        "no traffic through the VIP on host B",
        Duration::from_secs(10),
        || get_from(&b, &url).is_some(),
    );
    let answers: HashSet<String> = (0..4).filter_map(|_| get_from(&b, &url)).collect();
    assert_eq!(
        answers,
        ["A", "B"].map(String::from).into(),
        "both members serve"
    );

    // The amphora is plugged on B: its management port is on B's bridge, not on A.
    let amp = amphora_of(&r, &id);
    let amp_id: rocta_model::Id = amp["id"].as_str().unwrap().parse().unwrap();
    let port0 = rocta_drivers::netns::port(amp_id, 0);
    assert!(b.has_link(&port0), "{port0} not on host B");
    assert!(!a.has_link(&port0));
    let mgmt = amp["lb_network_ip"].as_str().unwrap();
    let last: u8 = mgmt.rsplit('.').next().unwrap().parse().unwrap();
    assert!(mgmt.starts_with("198.18.0.") && last > 10, "{mgmt}");

    // Member health travels in heartbeats across the VXLAN.
    until("members never ONLINE", Duration::from_secs(15), || {
        member_statuses(&r, &id) == ["ONLINE", "ONLINE"]
    });
    let _ = servers.0[0].kill();
    let _ = servers.0[0].wait();
    until("a dead member never ERROR", Duration::from_secs(15), || {
        member_statuses(&r, &id).contains(&"ERROR".to_string())
    });
    assert!((0..4).all(|_| get_from(&b, &url).as_deref() == Some("B")));

    // kill -9 of everything in the amphora: failed over across the VXLAN.
    let ns = rocta_drivers::netns::namespace(amp_id);
    assert_eq!(
        amphora_of(&r, &id)["id"],
        amp["id"],
        "failed over before the kill"
    );
    assert!(kill_all_in(&ns) >= 2, "agent and HAProxy run in {ns}");
    let killed = Instant::now();
    assert_eq!(get_from(&b, &url), None, "served after kill -9");
    let gap = until(
        "traffic never resumed after kill -9",
        Duration::from_secs(30),
        || get_from(&b, &url).as_deref() == Some("B"),
    );
    eprintln!(
        "vxlan failover: traffic resumed {:?} after kill -9 ({gap:?} after the first refusal)",
        killed.elapsed()
    );
    r.wait_active(&id);
    assert_ne!(amphora_of(&r, &id)["id"], amp["id"], "not failed over");

    // A second load balancer, then the VXLAN torn down: both amphorae fall silent at once,
    // which is the failover threshold (2): nothing is failed over.
    let (s, lb2) = r.post("/v2/lbaas/loadbalancers", lb_body("two"));
    assert_eq!(s, 201, "{lb2}");
    let id2 = lb2["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id2);
    let before = [
        amphora_of(&r, &id)["id"].clone(),
        amphora_of(&r, &id2)["id"].clone(),
    ];
    a.ip(&["link", "del", "rocta-vx42"]);
    let prom = dir.path().join("data/health-manager.prom");
    until(
        "the threshold never tripped",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(&prom).is_ok_and(|t| {
                t.lines().any(|l| {
                    l.starts_with("rocta_failover_stopped_total")
                        && l.split_whitespace().last().is_some_and(|v| v != "0")
                })
            })
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    for (lb, was) in [(&id, &before[0]), (&id2, &before[1])] {
        let (_, l) = r.get(&format!("/v2/lbaas/loadbalancers/{lb}"));
        assert_eq!(l["loadbalancer"]["provisioning_status"], "ACTIVE", "{l}");
        assert_eq!(&amphora_of(&r, lb)["id"], was, "an amphora was failed over");
    }
    // The data plane never depended on the management network.
    assert_eq!(get_from(&b, &url).as_deref(), Some("B"));

    // Joined again: the control plane reaches the amphorae (a change applies), then delete.
    vxlan(&a, &file_a, "198.18.254.1", "198.18.254.2", &ua);
    let (s, _) = r.put(
        &format!("/v2/lbaas/loadbalancers/{id2}"),
        json!({"loadbalancer": {"description": "joined again"}}),
    );
    assert_eq!(s, 200);
    // The first agent call after the outage may wait out TCP's retransmission backoff (the
    // connection was idle while the VXLAN was gone): up to 30 s here (usually < 1 s).
    let t = Instant::now();
    until(
        "no change reached the amphora after the VXLAN came back",
        Duration::from_secs(30),
        || {
            r.get(&format!("/v2/lbaas/loadbalancers/{id2}")).1["loadbalancer"]
                ["provisioning_status"]
                == "ACTIVE"
        },
    );
    eprintln!(
        "vxlan: a change applied {:?} after the VXLAN came back",
        t.elapsed()
    );

    // Availability zones place amphorae: a profile names a compute zone of the driver's and
    // the management network, or is refused.
    const AZP: &str = "/v2/lbaas/availabilityzoneprofiles";
    let mgmt_net = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c60";
    let profile = |data: Value| {
        let data = data.to_string();
        r.post(
            AZP,
            json!({"availability_zone_profile": {"name": "zp", "provider_name": "amphora",
                "availability_zone_data": data}}),
        )
    };
    assert_fault(
        profile(json!({"compute_zone": "nowhere"})),
        400,
        "Compute availability zone nowhere not found.",
    );
    let public_net = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5a";
    assert_fault(
        profile(json!({"management_network": public_net})),
        400,
        "amphorae boot on the management network",
    );
    let (s, zp) = profile(
        json!({"compute_zone": "zone-a", "management_network": mgmt_net,
        "valid_vip_networks": [public_net]}),
    );
    assert_eq!(s, 201, "{zp}");
    let zp = zp["availability_zone_profile"]["id"].as_str().unwrap();
    let (s, az) = r.post(
        "/v2/lbaas/availabilityzones",
        json!({"availability_zone": {"name": "az-a", "availability_zone_profile_id": zp}}),
    );
    assert_eq!(s, 201, "{az}");
    // A member on host A's `public`.
    servers.0.push(http_member(&a, dir.path(), "Z", 8003));
    let (id3, vip3, _) = r.create_lb(
        json!({"loadbalancer": {"name": "zoned", "vip_subnet_id": common::dataplane::PUBLIC,
            "availability_zone": "az-a",
            "listeners": [{"protocol": "HTTP", "protocol_port": 8080, "default_pool": {"name": "p"}}],
            "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                "members": [{"address": "198.19.0.1", "protocol_port": 8003}]}]}}),
    );
    let (_, shown) = r.get(&format!("/v2/lbaas/loadbalancers/{id3}"));
    assert_eq!(
        shown["loadbalancer"]["availability_zone"], "az-a",
        "{shown}"
    );
    let amp3 = amphora_of(&r, &id3);
    assert_eq!(amp3["cached_zone"], "zone-a", "{amp3}");
    let amp3_id: rocta_model::Id = amp3["id"].as_str().unwrap().parse().unwrap();
    for k in [0, 1] {
        let port = rocta_drivers::netns::port(amp3_id, k);
        assert!(a.has_link(&port), "{port} not on host A");
        assert!(!b.has_link(&port), "{port} on host B");
    }
    let url3 = format!("http://{vip3}:8080/");
    until(
        "no traffic through the zoned VIP on host A",
        Duration::from_secs(10),
        || get_from(&a, &url3).as_deref() == Some("Z"),
    );
    for lb in [&id, &id2, &id3] {
        common::dataplane::delete_lb(&r, lb);
    }
    assert!(
        !a.has_link(&rocta_drivers::netns::port(amp3_id, 0)),
        "left on A"
    );
    until(
        "amphora namespaces left after delete",
        Duration::from_secs(10),
        || namespaces().is_subset(&_amphorae.0),
    );
}
