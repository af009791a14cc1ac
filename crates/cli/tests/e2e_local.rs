//! End to end with real amphorae: `rocta serve` on its default drivers (an agent process per
//! amphora, HAProxy, loopback VIPs, mutual TLS), backends started by the test, traffic through
//! the VIP. Health, failover, spares and certificate rotation are in `e2e_failover.rs`.

mod common;

use std::time::Duration;

use common::dataplane::*;
use common::*;
use serde_json::json;

#[test]
fn traffic_through_a_real_amphora() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let (a, b) = (backend("A"), backend("B"));
    let mut r = Rocta::start_real(dir.path());
    let body = json!({"loadbalancer": {"name": "web", "vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "HTTP", "protocol_port": 8080, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": [{"address": "127.0.0.1", "protocol_port": a}, {"address": "127.0.0.1", "protocol_port": b}]}]}});
    let (id, vip, lb) = r.create_lb(body);
    assert!(vip.starts_with("127.10."), "{vip}");
    let url = format!("http://{vip}:8080/");
    let answers: Vec<String> = (0..4).map(|_| get(&url).unwrap().1).collect();
    assert_eq!(answers, ["A", "B", "A", "B"], "round robin");
    // A member disabled stops receiving traffic.
    let pool = lb["loadbalancer"]["pools"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m0 = lb["loadbalancer"]["pools"][0]["members"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = r.put(
        &format!("/v2/lbaas/pools/{pool}/members/{m0}"),
        json!({"member": {"admin_state_up": false}}),
    );
    assert_eq!(s, 200);
    r.wait_active(&id);
    eventually("disabled member still served", || {
        (0..4).all(|_| get(&url).is_some_and(|x| x.1 == "B"))
    });
    // An L7 REJECT and a redirect, in position order.
    let listener = lb["loadbalancer"]["listeners"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = r.child(
        &id,
        "/v2/lbaas/l7policies",
        json!({"l7policy": {"listener_id": listener, "action": "REJECT", "position": 1}}),
    );
    let pid = p["l7policy"]["id"].as_str().unwrap().to_string();
    r.child(
        &id,
        &format!("/v2/lbaas/l7policies/{pid}/rules"),
        json!({"rule": {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/admin"}}),
    );
    let q = r.child(&id, "/v2/lbaas/l7policies", json!({"l7policy": {"listener_id": listener, "action": "REDIRECT_TO_URL", "redirect_url": "http://example.invalid/moved", "redirect_http_code": 301}}));
    let qid = q["l7policy"]["id"].as_str().unwrap().to_string();
    r.child(
        &id,
        &format!("/v2/lbaas/l7policies/{qid}/rules"),
        json!({"rule": {"type": "PATH", "compare_type": "EQUAL_TO", "value": "/old"}}),
    );
    eventually("REJECT not applied", || {
        get(&format!("{url}admin/x")).is_some_and(|x| x.0 == 403)
    });
    eventually("redirect not applied", || {
        get(&format!("{url}old")).is_some_and(|x| x.0 == 301)
    });
    assert_eq!(get(&url).unwrap(), (200, "B".to_string()));
    // The data plane outlives the control plane, and a restarted one finds its amphorae.
    r.kill();
    assert_eq!(
        get(&url).unwrap().1,
        "B",
        "traffic stops with the control plane"
    );
    let r = Rocta::start_real(dir.path());
    let (s, _) = r.put(
        &format!("/v2/lbaas/pools/{pool}/members/{m0}"),
        json!({"member": {"admin_state_up": true}}),
    );
    assert_eq!(s, 200);
    r.wait_active(&id);
    eventually("re-enabled member not served", || {
        let v: Vec<String> = (0..4).filter_map(|_| get(&url).map(|x| x.1)).collect();
        v.contains(&"A".to_string()) && v.contains(&"B".to_string())
    });
    // Delete frees the VIP and ends the amphora's processes.
    let data = dir.path().join("data").display().to_string();
    assert!(processes(&data) >= 2, "agent and haproxy should run");
    delete_lb(&r, &id);
    eventually("amphora processes left behind", || processes(&data) == 0);
    assert!(get(&url).is_none(), "the VIP still answers");
    assert_eq!(
        std::fs::read_dir(dir.path().join("data/loopback/vips"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn source_ip_persistence_sticks_and_unknown_subnets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let (a, b) = (backend("A"), backend("B"));
    let r = Rocta::start_real(dir.path());
    assert_fault(
        r.post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"vip_subnet_id": SUBNET}}),
        ),
        400,
        "not found",
    );
    let body = json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "TCP", "protocol_port": 8081, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN", "session_persistence": {"type": "SOURCE_IP"},
                   "members": [{"address": "127.0.0.1", "protocol_port": a}, {"address": "127.0.0.1", "protocol_port": b}]}]}});
    let (s, lb) = r.post("/v2/lbaas/loadbalancers", body);
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let url = format!(
        "http://{}:8081/",
        lb["loadbalancer"]["vip_address"].as_str().unwrap()
    );
    let first = get(&url).unwrap().1;
    for _ in 0..6 {
        assert_eq!(get(&url).unwrap().1, first, "SOURCE_IP persistence");
    }
    delete_lb(&r, &id);
}

#[test]
fn a_failed_create_leaves_no_amphora_behind() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let r = Rocta::start_real_with(
        dir.path(),
        TEST_CONFIG,
        &[("ROCTA_FAIL_AT", "create_loadbalancer:mark_lb_active")],
    );
    let (s, lb) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "TCP", "protocol_port": 8090}]}}),
    );
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_status(&id, "ERROR");
    let data = dir.path().join("data");
    // The amphora was built, configured, then torn down by the revert: nothing is left.
    eventually("amphora processes left after the revert", || {
        processes(&data.display().to_string()) == 0
    });
    let amps: Vec<_> = std::fs::read_dir(data.join("amphorae"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "mgmt")
        .collect();
    assert!(amps.is_empty(), "amphora directories left: {amps:?}");
    assert_eq!(
        std::fs::read_dir(data.join("amphorae/mgmt"))
            .unwrap()
            .count(),
        0,
        "management address kept"
    );
    assert!(r.get("/v2/octavia/amphorae").1["amphorae"]
        .as_array()
        .unwrap()
        .is_empty());
    // The VIP stays with the ERROR load balancer until it is deleted.
    assert_eq!(
        std::fs::read_dir(data.join("loopback/vips"))
            .unwrap()
            .count(),
        1
    );
    delete_lb(&r, &id);
    assert_eq!(
        std::fs::read_dir(data.join("loopback/vips"))
            .unwrap()
            .count(),
        0
    );
}

/// Fault 3 of the hardening issue: `rocta serve` dies between spawning an amphora's agent and
/// writing its pid file. The resumed create adopts that agent (no second one), and the delete
/// ends it: no agent or HAProxy of the test's directory is left.
#[test]
fn an_agent_spawned_before_a_crash_is_adopted_and_ended() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let mut r = Rocta::start_real_with(
        dir.path(),
        TEST_CONFIG,
        &[("ROCTA_CRASH_AT", "driver:spawn_agent")],
    );
    let _ = r.try_req(
        "POST",
        "/v2/lbaas/loadbalancers",
        Some(json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "TCP", "protocol_port": 8091}]}})),
    );
    assert!(
        r.wait_exit(Duration::from_secs(20)),
        "crash point not reached"
    );
    let data = dir.path().join("data");
    let needle = data.display().to_string();
    let agents = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains(&needle) && c.contains("amphora-agent")
                })
            })
            .count()
    };
    assert_eq!(agents(), 1, "the agent outlived the crash");
    let r = Rocta::start_real_with(dir.path(), TEST_CONFIG, &[]);
    let (_, lbs) = r.get("/v2/lbaas/loadbalancers");
    let id = lbs["loadbalancers"][0]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    assert_eq!(agents(), 1, "the resumed create started a second agent");
    delete_lb(&r, &id);
    eventually("amphora processes left after the delete", || {
        processes(&needle) == 0
    });
}

#[test]
fn missing_haproxy_is_reported_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[haproxy_amphora]\nhaproxy_cmd = \"/nonexistent/haproxy\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--api-bind", "127.0.0.1:0", "--config"])
        .arg(dir.path().join("c.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("apt-get install -y haproxy"), "{err}");
}

#[test]
fn terminated_https_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let a = backend("A");
    let r = Rocta::start_real(dir.path());
    let vip = "127.10.200.1";
    let certs = dir.path().join("data/certificates");
    // A CA and a server certificate for the VIP, as a tenant would bring them.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "tenant CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![rcgen::SanType::IpAddress(vip.parse().unwrap())];
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::write(
        certs.join("web.pem"),
        format!("{}{}", leaf.pem(), key.serialize_pem()),
    )
    .unwrap();
    let crt = ca.pem();
    let lb = |refname: &str| {
        json!({"loadbalancer": {"vip_subnet_id": PUBLIC, "vip_address": vip,
        "listeners": [{"protocol": "TERMINATED_HTTPS", "protocol_port": 8443, "default_tls_container_ref": refname,
                       "insert_headers": {"X-Forwarded-Proto": "true"}, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "members": [{"address": "127.0.0.1", "protocol_port": a}]}]}})
    };
    assert_fault(
        r.post("/v2/lbaas/loadbalancers", lb("missing.pem")),
        400,
        "Could not retrieve certificate: missing.pem",
    );
    let (s, b) = r.post("/v2/lbaas/loadbalancers", lb("web.pem"));
    assert_eq!(s, 201, "{b}");
    let id = b["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let client = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(crt.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("https://{vip}:8443/");
    eventually("TLS listener not serving", || {
        client
            .get(&url)
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "A");
    delete_lb(&r, &id);
}
#[test]
fn source_ip_port_hashing_and_ping_monitors() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let (a, b) = (backend("A"), backend("B"));
    let r = Rocta::start_real(dir.path());
    let body = json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "TCP", "protocol_port": 8083, "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "TCP", "lb_algorithm": "SOURCE_IP_PORT",
                   "healthmonitor": {"type": "PING", "delay": 1, "timeout": 1, "max_retries": 1},
                   "members": [{"address": "127.0.0.1", "protocol_port": a}, {"address": "127.0.0.1", "protocol_port": b}]}]}});
    let (s, lb) = r.post("/v2/lbaas/loadbalancers", body);
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    // Both members answer HAProxy's external ping check.
    eventually("PING-monitored members not ONLINE", || {
        let t =
            &r.get(&format!("/v2/lbaas/loadbalancers/{id}/status")).1["statuses"]["loadbalancer"];
        let m = &t["listeners"][0]["pools"][0]["members"];
        t["operating_status"] == "ONLINE"
            && m[0]["operating_status"] == "ONLINE"
            && m[1]["operating_status"] == "ONLINE"
    });
    // Each new connection has its own source port: the hash spreads them over both members.
    let url = format!(
        "http://{}:8083/",
        lb["loadbalancer"]["vip_address"].as_str().unwrap()
    );
    let seen: std::collections::BTreeSet<String> =
        (0..30).filter_map(|_| get(&url)).map(|(_, b)| b).collect();
    assert_eq!(seen.len(), 2, "SOURCE_IP_PORT over both members: {seen:?}");
}

/// A PROMETHEUS listener (Octavia API 2.25) serves the load balancer's metrics under Octavia's
/// names (`octavia_listener_*`, `octavia_pool_*`, `octavia_member_*`,
/// `octavia_loadbalancer_*`), readable by Prometheus, moving with the traffic.
#[test]
fn prometheus_listener_serves_octavias_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let a = backend("A");
    let r = Rocta::start_real(dir.path());
    let body = json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "HTTP", "protocol_port": 8080, "default_pool": {"name": "p"}},
                      {"protocol": "PROMETHEUS", "protocol_port": 9100, "allowed_cidrs": ["127.0.0.0/8"]}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": [{"address": "127.0.0.1", "protocol_port": a}]}]}});
    let (id, vip, lb) = r.create_lb(body);
    let lb = &lb["loadbalancer"];
    let listener = lb["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["protocol"] == "HTTP")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pool = lb["pools"][0]["id"].as_str().unwrap();
    let member = lb["pools"][0]["members"][0]["id"].as_str().unwrap();
    let scrape = || -> String {
        let resp = reqwest::blocking::get(format!("http://{vip}:9100/metrics")).unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().unwrap();
        promtool_check(&text);
        text
    };
    let requests = |text: &str| -> f64 {
        let series = format!("octavia_listener_http_requests_total{{listener=\"{listener}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
            .parse()
            .unwrap()
    };
    let url = format!("http://{vip}:8080/");
    eventually("the HTTP listener serving", || get(&url).is_some());
    let before = requests(&scrape());
    for _ in 0..3 {
        assert_eq!(get(&url).unwrap().1, "A");
    }
    let text = scrape();
    assert_eq!(requests(&text), before + 3.0, "{text}");
    assert!(!text.contains("haproxy_"), "{text}");
    assert!(!text.contains("prometheus-exporter"), "{text}");
    for want in [
        format!("octavia_member_weight{{pool=\"{pool}:{listener}\",member=\"{member}\"}} 1"),
        format!("octavia_pool_active_members{{pool=\"{pool}:{listener}\"}} 1"),
    ] {
        assert!(text.lines().any(|l| l == want), "{want} missing:\n{text}");
    }
    for name in [
        "octavia_loadbalancer_cpu ",
        "octavia_loadbalancer_current_connections ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{text}"
        );
    }
    delete_lb(&r, &id);
}

/// A real rsyslogd receiving on loopback TCP (`imtcp`), writing every message to a file.
struct Rsyslog {
    dir: std::path::PathBuf,
    port: u16,
    child: Option<std::process::Child>,
}

impl Rsyslog {
    fn new(dir: &std::path::Path) -> Rsyslog {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = dir.join("rsyslog");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rsyslog.conf"),
            format!(
                "global(workDirectory=\"{d}\")\nmodule(load=\"imtcp\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
                 template(name=\"raw\" type=\"string\" string=\"%syslogfacility-text% %rawmsg%\\n\")\n\
                 *.* action(type=\"omfile\" file=\"{d}/tenant.log\" template=\"raw\")\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let mut r = Rsyslog {
            dir,
            port,
            child: None,
        };
        r.start();
        r
    }

    fn start(&mut self) {
        let child = std::process::Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .spawn()
            .expect("rsyslogd (apt-get install -y rsyslog)");
        self.child = Some(child);
        let port = self.port;
        eventually("rsyslogd listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .arg(c.id().to_string())
                .status();
            c.wait().unwrap();
        }
    }

    /// The received messages, each `<facility> <message>`.
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("tenant.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many received lines hold `needle` (a request path followed by a space).
    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Log offloading (`[amphora_agent] tenant_log_targets`, TCP): every request of a burst reaches
/// a real rsyslogd exactly once; while it is down the lines wait (up to `log_queue_size`) and
/// arrive once it is back; the lines beyond the queue are dropped and counted on the load
/// balancer's PROMETHEUS listener. With `forward_all_logs` the agent's debug lines go to the
/// admin target too, the request logs still only to the tenant's.
#[test]
fn request_logs_are_shipped_to_a_syslog_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let mut rsyslog = Rsyslog::new(dir.path());
    let a = backend("A");
    let r = Rocta::start_real_with(
        dir.path(),
        &format!(
            "{TEST_CONFIG}[amphora_agent]\ntenant_log_targets = [\"127.0.0.1:{p}\"]\n\
             admin_log_targets = [\"127.0.0.1:{p}\"]\nlog_protocol = \"TCP\"\n\
             log_retry_interval = 0.2\nlog_queue_size = 60\nforward_all_logs = true\n",
            p = rsyslog.port
        ),
        &[],
    );
    let body = json!({"loadbalancer": {"vip_subnet_id": PUBLIC,
        "listeners": [{"protocol": "HTTP", "protocol_port": 8080, "default_pool": {"name": "p"}},
                      {"protocol": "PROMETHEUS", "protocol_port": 9100}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": [{"address": "127.0.0.1", "protocol_port": a}]}]}});
    let (id, vip, _) = r.create_lb(body);
    let url = |path: &str| format!("http://{vip}:8080/{path}");
    eventually("the HTTP listener serving", || {
        get(&url("warm-up")).is_some()
    });
    let burst = |prefix: &str, n: usize| {
        for i in 0..n {
            assert_eq!(get(&url(&format!("{prefix}-{i}"))).unwrap().1, "A");
        }
    };
    let all_once = |rs: &Rsyslog, prefix: &str, n: usize| {
        (0..n).all(|i| rs.count(&format!("/{prefix}-{i} ")) == 1)
    };
    burst("up", 100);
    eventually("the burst in rsyslog, each request once", || {
        all_once(&rsyslog, "up", 100)
    });
    // The request logs on local0, the administrative ones (the agent's own) on local1.
    assert!(rsyslog
        .lines()
        .iter()
        .filter(|l| l.contains("/up-"))
        .all(|l| l.starts_with("local0 ")));
    eventually("the agent's own log on local1", || {
        rsyslog.lines().iter().any(|l| {
            l.starts_with("local1 ")
                && l.contains("rocta-agent")
                && l.contains("shipping the administrative logs")
        })
    });
    eventually(
        "the agent's debug lines on local1 (forward_all_logs)",
        || {
            rsyslog.lines().iter().any(|l| {
                l.starts_with("local1 ")
                    && l.contains("rocta-agent")
                    && l.contains("configuration uploaded")
            })
        },
    );
    // The receiver down: the lines wait, and arrive once it is back.
    rsyslog.stop();
    burst("down", 40);
    std::thread::sleep(Duration::from_millis(600));
    rsyslog.start();
    eventually("the lines logged while rsyslog was down", || {
        all_once(&rsyslog, "down", 40)
    });
    assert!(all_once(&rsyslog, "up", 100), "a line came twice");
    // Beyond the queue: 100 lines for 60 places; the 40 others are counted.
    rsyslog.stop();
    burst("over", 100);
    let dropped = || -> Option<f64> {
        let text = reqwest::blocking::get(format!("http://{vip}:9100/metrics"))
            .ok()?
            .text()
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("rocta_amphora_log_lines_dropped_total "))?
            .parse()
            .ok()
    };
    // (At least: each scrape's own request is logged too, and may not fit either.)
    eventually("40 lines counted as dropped", || {
        dropped().is_some_and(|n| n >= 40.0)
    });
    // The load balancers' dashboard reads only what a PROMETHEUS listener serves.
    let served = reqwest::blocking::get(format!("http://{vip}:9100/metrics"))
        .unwrap()
        .text()
        .unwrap();
    dashboard_reads_only(
        include_str!("../../../docs/grafana/rocta-load-balancers.json"),
        &served,
    );
    rsyslog.start();
    eventually("the 60 queued lines", || all_once(&rsyslog, "over", 60));
    std::thread::sleep(Duration::from_millis(500));
    let late = (60..100)
        .filter(|i| rsyslog.count(&format!("/over-{i} ")) > 0)
        .count();
    assert_eq!(late, 0, "lines beyond the queue arrived");
    delete_lb(&r, &id);
}
