//! rocta's flows with every decision taken by the real services: `rocta serve` on the `nova`
//! and `neutron` drivers, the test playing the hypervisor. A fully populated load balancer
//! serves, fails over and is deleted; a create failing at each of its steps reverts, leaving
//! only what the load balancer in ERROR keeps (its VIP port and security group) until its
//! delete; a Nova outage mid-create is retried, then the create reverts. Every test asserts
//! on Nova's and Neutron's own state.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{self, Rocta};
use super::hypervisor::{Bridge, Hypervisor};
use super::stack::{serial, stack, Stack};

fn sh_out(argv: &[&str]) -> String {
    let out = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap();
    format!(
        "{argv:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `rocta serve` on Nova and Neutron, with the test's hypervisor.
struct Cloud {
    s: &'static Stack,
    hv: Hypervisor,
    r: Rocta,
    _dir: tempfile::TempDir,
}

impl Cloud {
    /// `worker` and `nova` add lines to `[controller_worker]` and `[nova]`; `env` reaches
    /// `rocta serve` (fault injection).
    fn start(worker: &str, nova: &str, env: &[(&str, &str)]) -> Cloud {
        let s = stack();
        let net = |n: &str| s.network(n)["network_id"].as_str().unwrap().to_string();
        let tag = std::process::id() % 10000;
        let bridge = |n: &str, prefix: &str, cidr: &str| Bridge {
            network_id: net(n),
            name: format!("{prefix}{tag}"),
            host_cidr: cidr.into(),
        };
        let hv = Hypervisor::start(
            s,
            common::bin(),
            vec![
                bridge("lb-mgmt-net", "rosm", "198.19.251.1/24"),
                bridge("public", "rosp", "198.19.252.1/24,198.19.250.1/24"),
                bridge("private", "rosv", "198.19.253.1/24"),
            ],
        );
        let hm = common::netns::free_udp_port();
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[controller_worker]\ncompute_driver = \"nova\"\nnetwork_driver = \"neutron\"\n\
             amphora_driver = \"rest\"\ncert_manager = \"local\"\namp_image_tag = \"amphora\"\n\
             amp_flavor_id = \"{flavor}\"\namp_boot_network_list = [\"{mgmt}\"]\n\
             amp_active_retries = 240\namp_active_wait_sec = 1\njob_lease_seconds = 10\n\
             job_poll_interval_ms = 50\n{worker}\n\
             [health_manager]\nbind_ip = \"198.19.251.1\"\nbind_port = {hm}\n\
             controller_ip_port_list = [\"198.19.251.1:{hm}\"]\nheartbeat_interval = 1.0\n\
             [service_auth]\nauth_url = \"{ks}\"\nusername = \"rocta\"\npassword = \"rocta-pass\"\n\
             project_name = \"service\"\nconnect_retries = 2\nretry_interval = 0.2\n\
             [nova]\nregion_name = \"RegionOne\"\n{nova}\n[neutron]\nregion_name = \"RegionOne\"\n\
             [glance]\nregion_name = \"RegionOne\"\n",
            flavor = s.ready["flavor_id"].as_str().unwrap(),
            mgmt = net("lb-mgmt-net"),
            ks = s.ready["keystone"].as_str().unwrap(),
        );
        let r = Rocta::start_configured_with(dir.path(), &config, env);
        Cloud {
            s,
            hv,
            r,
            _dir: dir,
        }
    }

    /// Deletes every load balancer left (a failed test's), so the next test starts clean.
    fn clean_up(&self) {
        let (_, b) = self.r.get("/v2/lbaas/loadbalancers");
        let lbs: Vec<String> = b["loadbalancers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["id"].as_str().map(String::from))
            .collect();
        for lb in &lbs {
            self.r
                .delete(&format!("/v2/lbaas/loadbalancers/{lb}?cascade=true"));
        }
        let t = Instant::now();
        while lbs
            .iter()
            .any(|lb| self.r.get(&format!("/v2/lbaas/loadbalancers/{lb}")).0 == 200)
            && t.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Creates a load balancer named `name` with an additional VIP on the public network's
    /// second subnet, an HTTP listener, a pool and one member on the private subnet (a backend
    /// on the hypervisor's address there); its id, VIP and additional VIP.
    fn populated_lb(&self, name: &str) -> (String, String, String) {
        let backend = common::dataplane::serve_backend(
            std::net::TcpListener::bind("198.19.253.1:0").unwrap(),
            "member-1",
        );
        let (st, b) = self.r.post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"name": name, "vip_subnet_id": self.subnet("public"),
                "additional_vips": [{"subnet_id": self.subnet("public-2")}],
                "listeners": [{"protocol": "HTTP", "protocol_port": 80,
                    "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                        "members": [{"address": "198.19.253.1", "protocol_port": backend,
                                     "subnet_id": self.subnet("private")}]}}]}}),
        );
        assert_eq!(st, 201, "{b}");
        let field = |k: &str| b["loadbalancer"][k].as_str().unwrap().to_string();
        let added = &b["loadbalancer"]["additional_vips"];
        assert_eq!(added[0]["subnet_id"], json!(self.subnet("public-2")), "{b}");
        let vip2 = added[0]["ip_address"].as_str().unwrap().to_string();
        assert!(vip2.starts_with("198.19.250."), "{b}");
        (field("id"), field("vip_address"), vip2)
    }

    /// The VIP port holds both VIPs; each amphora's port has both as allowed address pairs.
    fn assert_vip_ports(&self, lb: &str, vips: [&str; 2]) {
        let vip_port = &self.s.ports_named(&format!("octavia-lb-{lb}"))[0];
        let mut fixed: Vec<&str> = vip_port["fixed_ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["ip_address"].as_str().unwrap())
            .collect();
        fixed.sort();
        let mut want = vips.to_vec();
        want.sort();
        assert_eq!(fixed, want, "{vip_port}");
        for a in common::netns::amphorae_of(&self.r, lb) {
            let port = &self
                .s
                .ports_named(&format!("octavia-lb-vrrp-{}", a["id"].as_str().unwrap()))[0];
            let mut pairs: Vec<&str> = port["allowed_address_pairs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["ip_address"].as_str().unwrap())
                .collect();
            pairs.sort();
            assert_eq!(pairs, want, "{port}");
        }
    }

    fn subnet(&self, n: &str) -> String {
        self.s.network(n)["subnet_id"].as_str().unwrap().to_string()
    }

    /// Waits until load balancer `lb` is `want` (ERROR only when wanted).
    fn wait(&self, lb: &str, want: &str) {
        let t = Instant::now();
        loop {
            let (st, b) = self.r.get(&format!("/v2/lbaas/loadbalancers/{lb}"));
            let p = b["loadbalancer"]["provisioning_status"]
                .as_str()
                .unwrap_or("");
            if st == 200 && p == want {
                return;
            }
            assert!(
                (p != "ERROR" || want == "ERROR") && t.elapsed() < Duration::from_secs(240),
                "lb {lb} is {st} {p} after {:?}\n{}",
                t.elapsed(),
                self.hv.describe()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What Nova and Neutron still hold of rocta's: amphora servers, amphora ports (management,
    /// VRRP, member), and of load balancer `lb` its VIP port and security group.
    fn left(&self, lb: &str) -> Vec<String> {
        let s = self.s;
        let mut left: Vec<String> = s
            .servers_named("amphora-.*")
            .iter()
            .map(|v| format!("server {}", v["name"]))
            .collect();
        let (_, ports) = s.admin(
            reqwest::Method::GET,
            &format!("{}/v2.0/ports", s.url("neutron")),
            None,
        );
        left.extend(
            ports["ports"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["name"].as_str())
                .filter(|n| n.contains(lb) || n.starts_with("octavia-amp"))
                .map(|n| format!("port {n}")),
        );
        if s.security_groups_named(&format!("lb-{lb}")) > 0 {
            left.push(format!("security group lb-{lb}"));
        }
        left
    }

    /// The newest job of kind `kind` of load balancer `lb`, open or ended (the dashboard's
    /// view: steps and their states, error).
    fn job(&self, lb: &str, kind: &str) -> serde_json::Value {
        let (_, jobs) = self
            .r
            .req_as("GET", "/dashboard/api/jobs?limit=50", None, "p1", None);
        ["open", "ended"]
            .iter()
            .flat_map(|k| jobs[*k].as_array().cloned().unwrap_or_default())
            .find(|j| j["loadbalancer_id"] == lb && j["kind"] == kind)
            .unwrap_or_default()
    }

    /// The error of the create of load balancer `lb`.
    fn job_error(&self, lb: &str) -> String {
        self.job(lb, "create_loadbalancer")["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.clean_up();
        }
    }
}

/// A fully populated load balancer on Nova servers and Neutron ports, traffic through the VIP
/// to a member on another subnet, a failover onto a new server, and a cascade delete after
/// which Nova, Neutron and the hypervisor hold nothing of it.
#[test]
fn a_load_balancer_on_nova_and_neutron_serves_fails_over_and_is_deleted() {
    let _one = serial();
    let c = Cloud::start("", "", &[]);
    let (s, r, hv) = (c.s, &c.r, &c.hv);
    let t = Instant::now();
    let (lb, vip, vip2) = c.populated_lb("on-openstack");
    assert_eq!(s.ports_named(&format!("octavia-lb-{lb}")).len(), 1);
    c.wait(&lb, "ACTIVE");
    eprintln!("create to ACTIVE on Nova and Neutron: {:?}", t.elapsed());
    c.assert_vip_ports(&lb, [&vip, &vip2]);
    let get_at = |v: &str| common::dataplane::get(&format!("http://{v}/"));
    let get = || get_at(&vip);
    common::dataplane::eventually("traffic through the VIP", || {
        get().is_some_and(|(code, body)| code == 200 && body.contains("member-1"))
    });
    common::dataplane::eventually("traffic through the additional VIP", || {
        get_at(&vip2).is_some_and(|(code, body)| code == 200 && body.contains("member-1"))
    });
    let amps = common::netns::amphorae_of(r, &lb);
    assert_eq!(amps.len(), 1, "{amps:?}");
    let first = amps[0]["compute_id"].as_str().unwrap().to_string();
    assert_eq!(
        s.servers_named(&format!("amphora-{}", amps[0]["id"].as_str().unwrap()))
            .len(),
        1
    );
    assert_eq!(
        s.sg_rules(lb.parse().unwrap()),
        ["112 null group", "tcp 1025 group", "tcp 80 0.0.0.0/0"]
    );

    // A failover: a new server, the old one deleted, traffic back.
    let (st, b) = r.put(&format!("/v2/lbaas/loadbalancers/{lb}/failover"), json!({}));
    assert_eq!(st, 202, "{b}");
    c.wait(&lb, "ACTIVE");
    let amps = common::netns::amphorae_of(r, &lb);
    assert_eq!(amps.len(), 1, "{amps:?}");
    assert_ne!(amps[0]["compute_id"], json!(first));
    let (_, old) = s.admin(
        reqwest::Method::GET,
        &format!("{}/v2.1/servers/{first}", s.url("nova")),
        None,
    );
    assert!(
        old["server"].is_null() || old["server"]["status"] == "DELETED",
        "{old}"
    );
    let t = Instant::now();
    while !get().is_some_and(|(code, body)| code == 200 && body.contains("member-1")) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no traffic after the failover: {:?}\n{}\n{}",
            get(),
            sh_out(&["ip", "neigh", "show", &vip]),
            hv.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("traffic after the failover's ACTIVE: {:?}", t.elapsed());
    c.assert_vip_ports(&lb, [&vip, &vip2]);
    common::dataplane::eventually(
        "traffic through the additional VIP after the failover",
        || get_at(&vip2).is_some_and(|(code, body)| code == 200 && body.contains("member-1")),
    );

    // The last member on the private subnet goes: so does the amphora's port on it.
    let amp = amps[0]["id"].as_str().unwrap();
    let member_port = format!("octavia-amp-member-{amp}-{}", c.subnet("private"));
    assert_eq!(s.ports_named(&member_port).len(), 1);
    let (_, pools) = r.get("/v2/lbaas/pools");
    let pool = pools["pools"][0]["id"].as_str().unwrap().to_string();
    let (st, b) = r.put(
        &format!("/v2/lbaas/pools/{pool}/members"),
        json!({"members": []}),
    );
    assert_eq!(st, 202, "{b}");
    c.wait(&lb, "ACTIVE");
    assert!(s.ports_named(&member_port).is_empty());

    // Delete: nothing of it is left in Nova, Neutron or on the hypervisor.
    common::dataplane::delete_lb(r, &lb);
    assert_eq!(c.left(&lb), Vec::<String>::new());
    common::dataplane::eventually("the hypervisor powered everything off", || {
        hv.running() == 0
    });
}

/// A create failing at each step after the first (each reverting what the steps before it
/// made in Nova and Neutron): the load balancer is ERROR with nothing left but its VIP port and
/// security group, which its delete removes.
#[test]
fn a_create_failing_at_any_step_reverts_in_nova_and_neutron() {
    let _one = serial();
    let fail = tempfile::NamedTempFile::new().unwrap();
    let spec = format!("@{}", fail.path().display());
    let c = Cloud::start("", "", &[("ROCTA_FAIL_AT", spec.as_str())]);
    for step in [
        "wait_amphora",
        "plug_vip",
        "apply_config",
        "configure_vrrp",
        "mark_lb_active",
    ] {
        std::fs::write(fail.path(), format!("create_loadbalancer:{step}")).unwrap();
        let (st, b) = c.r.post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"name": step, "vip_subnet_id": c.subnet("public"),
                "listeners": [{"protocol": "HTTP", "protocol_port": 80}]}}),
        );
        assert_eq!(st, 201, "{b}");
        let lb = b["loadbalancer"]["id"].as_str().unwrap().to_string();
        c.wait(&lb, "ERROR");
        assert!(
            c.job_error(&lb).contains("injected failure"),
            "{step}: {}",
            c.job_error(&lb)
        );
        let mut kept = vec![format!("port octavia-lb-{lb}")];
        if !matches!(step, "wait_amphora" | "plug_vip") {
            // Made by plug_vip; it goes with the load balancer (as Octavia's).
            kept.push(format!("security group lb-{lb}"));
        }
        assert_eq!(
            c.left(&lb),
            kept,
            "after a failure at {step}: {}",
            c.job(&lb, "create_loadbalancer")
        );
        std::fs::write(fail.path(), "").unwrap();
        common::dataplane::delete_lb(&c.r, &lb);
        assert_eq!(c.left(&lb), Vec::<String>::new(), "after deleting ({step})");
    }
    common::dataplane::eventually("the hypervisor powered everything off", || {
        c.hv.running() == 0
    });
}

/// A TCP proxy in front of a service that the test can take down: while down it refuses
/// every connection and has cut the ones it carried.
struct Outage {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Outage {
    fn in_front_of(upstream: &str) -> Outage {
        let upstream: std::net::SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(u) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut held = open2.lock().unwrap();
                held.extend([c.try_clone().unwrap(), u.try_clone().unwrap()]);
                for (mut from, mut to) in [(c.try_clone().unwrap(), u.try_clone().unwrap()), (u, c)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Outage { port, up, open }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Nova goes down while the create plugs the VIP (after it made the amphora's port in
/// Neutron, before Nova attaches it): each call is retried with backoff (`connect_retries`),
/// the step by the flow, then the create reverts; Nova is back for the revert, which removes
/// the server and every port; the job says why.
#[test]
fn a_nova_outage_is_retried_then_the_create_reverts_cleanly() {
    let _one = serial();
    let nova = Outage::in_front_of(&stack().url("nova"));
    // Each step waits a second first: time to take Nova down between two steps.
    let c = Cloud::start(
        "",
        &format!(
            "endpoint_override = \"http://127.0.0.1:{}/v2.1\"",
            nova.port
        ),
        &[("ROCTA_FAULT_DELAY_MS", "1000")],
    );
    let (st, b) = c.r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": c.subnet("public")}}),
    );
    assert_eq!(st, 201, "{b}");
    let lb = b["loadbalancer"]["id"].as_str().unwrap().to_string();
    let job = || c.job(&lb, "create_loadbalancer");
    // An open job lists its journaled steps, as an ended one its flow's.
    let step_done = |j: &serde_json::Value, name: &str| {
        j["steps"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == name && s["state"] == "done"))
    };
    let until = |what: &str, f: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(240), "{what}: {}", job());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    until("the amphora up", &|| step_done(&job(), "wait_amphora"));
    nova.down();
    eprintln!("Nova down: {}", job());
    until("the create failing", &|| !job()["failed_step"].is_null());
    nova.up();
    eprintln!("Nova up: {}", job());
    c.wait(&lb, "ERROR");
    let error = c.job_error(&lb);
    assert!(
        error.starts_with("plug_vip:")
            && error.contains("Nova unreachable")
            && error.contains("after 3 attempts"),
        "{error}"
    );
    assert_eq!(
        c.left(&lb),
        [
            format!("port octavia-lb-{lb}"),
            format!("security group lb-{lb}")
        ]
    );
    common::dataplane::delete_lb(&c.r, &lb);
    assert_eq!(c.left(&lb), Vec::<String>::new());
}

/// ACTIVE_STANDBY on Nova and Neutron: two servers in an anti-affinity server group, each with
/// its port on the VIP subnet, keepalived in each guest; the MASTER holds the VIP. When the
/// MASTER's VIP interface goes down (its host lost that network), the BACKUP takes the VIP
/// over and traffic goes on; the delete removes both servers, their ports and the group.
#[test]
fn an_active_standby_pair_on_nova_and_neutron_survives_its_master() {
    let _one = serial();
    let c = Cloud::start(
        "loadbalancer_topology = \"ACTIVE_STANDBY\"",
        "enable_anti_affinity = true\nanti_affinity_policy = \"soft-anti-affinity\"",
        &[],
    );
    let (s, r, hv) = (c.s, &c.r, &c.hv);
    let t = Instant::now();
    let (lb, vip, vip2) = c.populated_lb("pair");
    c.wait(&lb, "ACTIVE");
    eprintln!("ACTIVE_STANDBY create to ACTIVE: {:?}", t.elapsed());
    c.assert_vip_ports(&lb, [&vip, &vip2]);
    let amps = common::netns::amphorae_of(r, &lb);
    let server_of = |role: &str| {
        amps.iter()
            .find(|a| a["role"] == role)
            .and_then(|a| a["compute_id"].as_str())
            .unwrap_or_else(|| panic!("no {role}: {amps:?}"))
            .to_string()
    };
    let (master, backup) = (server_of("MASTER"), server_of("BACKUP"));
    // Both in the load balancer's server group.
    let groups = || {
        let (_, g) = s.admin(
            reqwest::Method::GET,
            &format!("{}/v2.1/os-server-groups?all_projects=True", s.url("nova")),
            None,
        );
        g["server_groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["name"] == format!("octavia-lb-{lb}"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut members: Vec<String> = groups()[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    members.sort();
    let mut pair = vec![master.clone(), backup.clone()];
    pair.sort();
    assert_eq!(members, pair);
    assert_eq!(groups()[0]["policies"], json!(["soft-anti-affinity"]));

    // The interface of a guest that holds `vip`, if it does.
    let holds = |server: &str, vip: &str| -> Option<String> {
        let ns = hv.namespace(server)?;
        let out = std::process::Command::new("ip")
            .args(["-n", &ns, "-br", "addr"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .any(|a| a.starts_with(&format!("{vip}/")))
            })
            .and_then(|l| l.split_whitespace().next())
            .map(|i| i.split('@').next().unwrap_or(i).to_string())
    };
    let holder = |server: &str| holds(server, &vip);
    let get_at = |v: &str| common::dataplane::get(&format!("http://{v}/"));
    let get = || get_at(&vip);
    let served =
        |v: &str| get_at(v).is_some_and(|(code, body)| code == 200 && body.contains("member-1"));
    common::dataplane::eventually("traffic through the MASTER", || served(&vip));
    common::dataplane::eventually("the additional VIP through the MASTER", || served(&vip2));
    assert!(
        holds(&master, &vip2).is_some(),
        "keepalived holds both\n{}",
        hv.describe()
    );
    assert_eq!(holds(&backup, &vip2), None);
    let iface =
        holder(&master).unwrap_or_else(|| panic!("the MASTER lacks the VIP\n{}", hv.describe()));
    assert_eq!(holder(&backup), None);

    // The MASTER loses its VIP network: the BACKUP takes over.
    let ns = hv.namespace(&master).unwrap();
    let st = std::process::Command::new("ip")
        .args(["-n", &ns, "link", "set", &iface, "down"])
        .status()
        .unwrap();
    assert!(st.success());
    let t = Instant::now();
    while !(holder(&backup).is_some()
        && get().is_some_and(|(code, body)| code == 200 && body.contains("member-1")))
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the BACKUP did not take over: {:?}\n{}\n{}",
            get(),
            sh_out(&["ip", "neigh", "show", &vip]),
            hv.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "the BACKUP serves {:?} after the MASTER's VIP link went down",
        t.elapsed()
    );
    common::dataplane::eventually("the additional VIP through the BACKUP", || served(&vip2));
    assert!(holds(&backup, &vip2).is_some(), "{}", hv.describe());

    common::dataplane::delete_lb(r, &lb);
    assert_eq!(c.left(&lb), Vec::<String>::new());
    assert!(groups().is_empty(), "{:?}", groups());
    common::dataplane::eventually("the hypervisor powered everything off", || {
        hv.running() == 0
    });
}

/// The outage itself: connections pass while up; while down new ones are refused and the
/// ones it carried are cut.
#[test]
fn an_outage_cuts_and_refuses_connections() {
    let port = common::dataplane::backend("up");
    let o = Outage::in_front_of(&format!("http://127.0.0.1:{port}"));
    let url = format!("http://127.0.0.1:{}/", o.port);
    let client = reqwest::blocking::Client::new();
    let get = || client.get(&url).send().and_then(|r| r.text());
    assert_eq!(get().unwrap(), "up");
    o.down();
    assert!(get().is_err());
    o.up();
    assert_eq!(get().unwrap(), "up");
}

/// Flavor and availability zone profiles name what Nova, Glance and Neutron have (Octavia's
/// `validate_flavor` / `validate_availability_zone`): 400 for what they lack.
#[test]
fn profiles_are_checked_against_nova_glance_and_neutron() {
    let _one = serial();
    let c = Cloud::start("", "", &[]);
    let s = c.s;
    let flavor = |data: serde_json::Value| {
        c.r.post(
            "/v2/lbaas/flavorprofiles",
            json!({"flavorprofile": {"name": "fp", "provider_name": "amphora",
                "flavor_data": data.to_string()}}),
        )
    };
    let zone = |data: serde_json::Value| {
        c.r.post(
            "/v2/lbaas/availabilityzoneprofiles",
            json!({"availability_zone_profile": {"name": "azp", "provider_name": "amphora",
                "availability_zone_data": data.to_string()}}),
        )
    };
    let real_flavor = s.ready["flavor_id"].as_str().unwrap();
    let mgmt = s.network("lb-mgmt-net")["network_id"].as_str().unwrap();
    let missing = "6f1c3c2e-8c59-4f3c-9d0b-3f3a3c1b2a10";
    for ok in [
        flavor(json!({"compute_flavor": real_flavor, "amp_image_tag": "amphora"})),
        zone(json!({"compute_zone": "nova", "management_network": mgmt,
                    "valid_vip_networks": [mgmt]})),
    ] {
        assert_eq!(ok.0, 201, "{}", ok.1);
    }
    for (answer, says) in [
        (
            flavor(json!({"compute_flavor": "nope"})),
            "Invalid flavor data: Nova flavor nope not found.".to_string(),
        ),
        (
            flavor(json!({"amp_image_tag": "nope"})),
            "Invalid flavor data: No Glance images are tagged with nope tag.".to_string(),
        ),
        (
            zone(json!({"compute_zone": "nowhere"})),
            "Invalid availability zone data: Nova availability zone nowhere not found.".to_string(),
        ),
        (
            zone(json!({"management_network": missing})),
            format!("Invalid availability zone data: Network {missing} not found."),
        ),
        (
            zone(json!({"valid_vip_networks": [missing]})),
            format!("Invalid availability zone data: Network {missing} not found."),
        ),
    ] {
        common::assert_fault(answer, 400, &says);
    }
}
