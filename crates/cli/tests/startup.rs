//! Startup errors: one clear line on stderr and a distinct exit code, before binding anything.

mod common;

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(common::bin()).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn bad_config_exits_64_with_one_line() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("bad.toml");
    std::fs::write(&cfg, "[api_settings]\nbind_prot = 1\n").unwrap();
    let data = d.path().join("data");
    let (code, err) = run(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 64, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bind_prot"), "{err}");
    assert!(!data.exists(), "nothing may be created on a bad config");
    std::fs::write(&cfg, "[controller_worker]\ncompute_driver = \"xen\"\n").unwrap();
    let (code, err) = run(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("unknown driver"), "{err}");
    // The OpenStack drivers without the service user to act as.
    std::fs::write(
        &cfg,
        "[controller_worker]\ncompute_driver = \"nova\"\nnetwork_driver = \"neutron\"\n",
    )
    .unwrap();
    let (code, err) = run(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("[service_auth] auth_url"), "{err}");
    // Two amphorae need the netns drivers.
    std::fs::write(
        &cfg,
        "[controller_worker]\nloadbalancer_topology = \"ACTIVE_STANDBY\"\n",
    )
    .unwrap();
    let (code, err) = run(&[
        "serve",
        "--drivers",
        "local",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("ACTIVE_STANDBY needs the netns drivers"),
        "{err}"
    );
    // Octavia's boot network list names what amphorae boot on: here the management network
    // only, refused before anything is built.
    std::fs::write(
        &cfg,
        "[controller_worker]\namp_boot_network_list = [\"11111111-2222-3333-4444-555555555555\"]\n\
         [netns]\nmanagement_bridge = \"rocta-tbad\"\n",
    )
    .unwrap();
    let (code, err) = run(&[
        "serve",
        "--drivers",
        "netns",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("amp_boot_network_list"), "{err}");
    assert!(
        !std::path::Path::new("/sys/class/net/rocta-tbad").exists(),
        "a bridge was built on a bad config"
    );
    let (code, _) = run(&["serve", "--config", "/nonexistent/rocta.toml"]);
    assert_eq!(code, 64);
}

#[test]
fn port_in_use_exits_69() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let d = tempfile::tempdir().unwrap();
    let (code, err) = run(&[
        "serve",
        "--drivers",
        "noop",
        "--api-bind",
        &addr,
        "--data-dir",
        d.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
}

#[test]
fn unwritable_data_dir_exits_73() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (code, err) = run(&[
        "serve",
        "--data-dir",
        file.join("sub").to_str().unwrap(),
        "--api-bind",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 73, "{err}");
    assert!(err.contains("data dir"), "{err}");
}

#[test]
fn api_and_worker_run_as_separate_processes() {
    let d = tempfile::tempdir().unwrap();
    let api = common::Rocta::start_in(d.path(), "api", common::TEST_CONFIG, &[]);
    let (s, b) = api.post(
        "/v2/lbaas/loadbalancers",
        serde_json::json!({"loadbalancer": {"vip_subnet_id": common::SUBNET}}),
    );
    assert_eq!(s, 201, "{b}");
    let id = b["loadbalancer"]["id"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // No worker yet: the job waits, durable.
    assert_eq!(
        api.get(&format!("/v2/lbaas/loadbalancers/{id}")).1["loadbalancer"]["provisioning_status"],
        "PENDING_CREATE"
    );
    let _worker = common::Rocta::start_in(d.path(), "worker", common::TEST_CONFIG, &[]);
    api.wait_active(&id);
}

/// Roles started together on a fresh data directory (real drivers: each opens the PKI) all
/// come up and share one heartbeat key and one set of CAs: what one creates first, the others
/// read (before, two could each write their own, and one removed the other's write probe).
#[test]
fn roles_started_together_share_their_data_dir() {
    for _ in 0..5 {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("rocta.toml");
        std::fs::write(&cfg, common::TEST_CONFIG).unwrap();
        let data = d.path().join("data");
        let mut children: Vec<std::process::Child> =
            ["api", "worker", "health-manager", "housekeeping"]
                .iter()
                .map(|role| {
                    let mut c = Command::new(common::bin());
                    // On loopback: as root the default would build the host networks.
                    c.arg(role)
                        .args(["--drivers", "local"])
                        .arg("--config")
                        .arg(&cfg)
                        .arg("--data-dir")
                        .arg(&data)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::piped());
                    if *role == "api" {
                        c.arg("--api-bind").arg("127.0.0.1:0");
                    }
                    c.spawn().unwrap()
                })
                .collect();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let mut exited = Vec::new();
        for c in &mut children {
            if let Some(status) = c.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                exited.push(format!("{status}: {err}"));
            }
        }
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(exited.is_empty(), "roles exited: {exited:?}");
        let key = std::fs::read_to_string(data.join("pki/heartbeat_key")).unwrap();
        assert_eq!(key.trim().len(), 64);
        for f in [
            "server_ca.pem",
            "server_ca.key",
            "client_ca.pem",
            "client_ca.key",
            "controller.pem",
        ] {
            assert!(data.join("pki").join(f).exists(), "{f}");
        }
    }
}
