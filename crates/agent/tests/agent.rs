//! The agent over mutual TLS with a real HAProxy: certificates, config validation, start,
//! reload under traffic, member changes through the runtime API, status, certificate files,
//! deletion.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::*;
use rcgen::SanType;

#[test]
fn mutual_tls_is_required() {
    let a = start();
    assert!(
        client(&a.ca, None)
            .get(format!("{}/", a.url))
            .send()
            .is_err(),
        "no client certificate"
    );
    let rogue = ca("rogue");
    let bad = client(&a.ca, Some(leaf(&rogue, "controller", vec![])));
    assert!(
        bad.get(format!("{}/", a.url)).send().is_err(),
        "client certificate from another CA"
    );
    let r = a.client.get(format!("{}/", a.url)).send().unwrap();
    assert_eq!(r.text().unwrap(), r#"{"api_version":"1.0"}"#);
    let info: serde_json::Value = serde_json::from_str(
        &a.client
            .get(format!("{}/1.0/info", a.url))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    assert!(
        info["haproxy_version"].as_str().unwrap().starts_with('2'),
        "{info}"
    );
    let _ = &a.client_ca;
}

#[test]
fn haproxy_lifecycle_with_hitless_reloads() {
    let a = start();
    let run = a.dir.path().join("lb").join(LB);
    let b1 = backend("one");
    let b2 = backend("two");
    let port = free_port();
    let put = |path: &str, body: String| {
        a.client
            .put(format!("{}{path}", a.url))
            .body(body)
            .send()
            .unwrap()
    };
    // A bad config is refused with HAProxy's message.
    let r = put(
        &format!("/1.0/loadbalancer/amp/{LB}/haproxy"),
        "frontend x\n    bind :notaport\n".into(),
    );
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("Invalid request"));
    assert_eq!(
        a.client
            .put(format!("{}/1.0/loadbalancer/{LB}/start", a.url))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    // A good one is installed and started.
    let r = put(
        &format!("/1.0/loadbalancer/amp/{LB}/haproxy"),
        config(LB, &run, port, &[b1, b2]),
    );
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(r.headers()["etag"].len(), 32);
    let r = a
        .client
        .put(format!("{}/1.0/loadbalancer/{LB}/start", a.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{:?}", r.text());
    let plain = reqwest::blocking::Client::new();
    let url = format!("http://127.0.0.1:{port}/");
    wait_serving(&plain, &url);
    let seen_requests = 4;
    let seen: std::collections::BTreeSet<String> = (0..seen_requests)
        .map(|_| plain.get(&url).send().unwrap().text().unwrap())
        .collect();
    assert_eq!(seen.len(), 2, "round robin over both backends: {seen:?}");
    // The agent reaches the worker's stats socket (used to save server state and drain
    // keep-alive connections before each reload).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let info = rt
        .block_on(rocta_agent::haproxy::stats_command(
            &format!("rocta-{AMP}-{LB}"),
            "show info",
        ))
        .expect("stats socket");
    assert!(info.contains("Name: HAProxy"), "{info}");
    // Reloads under continuous keep-alive and `Connection: close` traffic: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<(Arc<AtomicU64>, Arc<AtomicU64>)> = (0..2)
        .map(|_| (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))))
        .collect();
    let mut load = Vec::new();
    for (i, keep_alive) in [false, true, true].into_iter().enumerate() {
        let (ok, failed) = counters[usize::from(keep_alive)].clone();
        let (stop, url) = (stop.clone(), url.clone());
        let _ = i;
        load.push(std::thread::spawn(move || {
            let c = if keep_alive {
                reqwest::blocking::Client::new()
            } else {
                reqwest::blocking::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap()
            };
            let t = Instant::now();
            while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(30) {
                match c
                    .get(&url)
                    .send()
                    .and_then(|r| r.error_for_status())
                    .and_then(|r| r.text())
                {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for i in 0..20 {
        let backends = if i % 2 == 0 { vec![b1] } else { vec![b1, b2] };
        // A global setting changes each time: a real reload (members alone would change
        // through the runtime API, see below).
        let cfg = config(LB, &run, port, &backends)
            .replace("maxconn 1000", &format!("maxconn {}", 1000 + i));
        assert_eq!(
            put(&format!("/1.0/loadbalancer/amp/{LB}/haproxy"), cfg)
                .status()
                .as_u16(),
            202
        );
        let r = a
            .client
            .put(format!("{}/1.0/loadbalancer/{LB}/reload", a.url))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let n = |i: usize| {
        (
            counters[i].0.load(Ordering::Relaxed),
            counters[i].1.load(Ordering::Relaxed),
        )
    };
    let ((close_ok, close_failed), (ka_ok, ka_failed)) = (n(0), n(1));
    eprintln!("20 reloads: Connection: close {close_ok} ok / {close_failed} failed; keep-alive {ka_ok} ok / {ka_failed} failed");
    assert!(close_ok > 100 && ka_ok > 100, "too little traffic");
    assert_eq!(
        close_failed,
        0,
        "{close_failed} of {} new-connection requests failed across 20 reloads",
        close_ok + close_failed
    );
    assert_eq!(
        ka_failed,
        0,
        "{ka_failed} of {} keep-alive requests failed across 20 reloads",
        ka_ok + ka_failed
    );
    // Every request is in the drained log exactly once, and no old worker is kept alive by
    // the drain once its ring is quiet.
    let requests = 1 + seen_requests + close_ok + ka_ok;
    let logged = || {
        std::fs::read_to_string(run.join("traffic.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"GET / HTTP/1.1\""))
            .count() as u64
    };
    let t = Instant::now();
    while logged() < requests && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(logged(), requests, "requests in traffic.log");
    let t = Instant::now();
    while haproxy_pids(&run.display().to_string()).len() > 2 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "old workers still running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A drain session that ends while its worker runs is replaced within the watch period:
    // later requests reach the log again.
    let sock = format!("rocta-{AMP}-{LB}");
    let sessions = stats_command(&sock, "show sess");
    let drain: Vec<&str> = sessions
        .lines()
        .filter(|l| l.contains("fe=GLOBAL") && !l.contains(" age=0s"))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(drain.len(), 1, "one drain session: {sessions}");
    stats_command(&sock, &format!("shutdown session {}", drain[0]));
    std::thread::sleep(rocta_agent::logs::WATCH * 2);
    let before = logged();
    for _ in 0..10 {
        assert!(plain.get(&url).send().unwrap().status().is_success());
    }
    let t = Instant::now();
    while logged() < before + 10 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        logged(),
        before + 10,
        "requests logged after the drain session ended"
    );
    // A bad config leaves the running one serving.
    assert_eq!(
        put(
            &format!("/1.0/loadbalancer/amp/{LB}/haproxy"),
            "garbage\n".into()
        )
        .status()
        .as_u16(),
        400
    );
    assert!(plain.get(&url).send().unwrap().status().is_success());
    // Status, listeners, certificates.
    let st: serde_json::Value = a
        .client
        .get(format!("{}/1.0/loadbalancer/{LB}", a.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(st["status"], "ACTIVE");
    let ls: serde_json::Value = a
        .client
        .get(format!("{}/1.0/listeners", a.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ls[0]["uuid"], "f");
    let cert = format!("/1.0/loadbalancer/{LB}/certificates/abc.pem");
    assert_eq!(put(&cert, "PEM".into()).status().as_u16(), 200);
    let md: serde_json::Value = a
        .client
        .get(format!("{}{cert}", a.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(md["md5sum"], format!("{:032x}", md5_of(b"PEM")));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(run.join("certs/abc.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        put(
            &format!("/1.0/loadbalancer/{LB}/certificates/..%2Fx.pem"),
            "x".into()
        )
        .status()
        .as_u16(),
        400
    );
    // Delete ends the processes and removes the files.
    let mine = run.display().to_string();
    assert!(!haproxy_pids(&mine).is_empty());
    assert_eq!(
        a.client
            .delete(format!("{}/1.0/listeners/{LB}", a.url))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert!(haproxy_pids(&mine).is_empty(), "haproxy still running");
    assert!(!run.exists());
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(200),
    );
    if let Ok(s) = s.as_mut() {
        let mut buf = [0u8; 1];
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        assert!(s.read(&mut buf).unwrap_or(0) == 0, "the port still answers");
    }
}

fn md5_of(b: &[u8]) -> u128 {
    use md5::Digest;
    u128::from_be_bytes(md5::Md5::digest(b).into())
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn server_certificate_rotation() {
    let a = start();
    let amp = "5c0f8a8e-0d3c-4c61-9c57-0a2b7c1b1a01";
    let new = leaf(
        &a.ca,
        amp,
        vec![SanType::IpAddress("127.0.0.1".parse().unwrap())],
    );
    let r = a
        .client
        .put(format!("{}/1.0/certificate", a.url))
        .body(new.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(
        std::fs::read_to_string(a.dir.path().join("server.pem")).unwrap(),
        new
    );
    // It holds the private key: private, whatever the umask.
    assert_eq!(mode(&a.dir.path().join("server.pem")), 0o600);
    // A fresh client (new handshake) still verifies against the CA.
    let fresh = client(&a.ca, Some(leaf(&a.client_ca, "controller", vec![])));
    assert!(fresh
        .get(format!("{}/", a.url))
        .send()
        .unwrap()
        .status()
        .is_success());
    let r = a
        .client
        .put(format!("{}/1.0/certificate", a.url))
        .body("not a pem")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[test]
fn agent_configuration_update() {
    let a = start();
    let path = a.dir.path().join("agent.toml");
    let good = agent_toml(&a);
    let r = a
        .client
        .put(format!("{}/1.0/config", a.url))
        .body(good.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), good);
    assert_eq!(mode(&path), 0o600, "it may hold the heartbeat key");
    let other = good.replace(AMP, "00000000-0000-4000-8000-000000000000");
    assert_eq!(
        a.client
            .put(format!("{}/1.0/config", a.url))
            .body(other)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        a.client
            .put(format!("{}/1.0/config", a.url))
            .body("nonsense = [")
            .send()
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        good,
        "a refused update must not touch the file"
    );
}

/// Octavia's mutable options: a configuration update sends the next heartbeats to the health
/// managers it names, signed with its key, without restarting the agent; an agent started
/// without any begins sending once told.
#[test]
fn a_configuration_update_moves_heartbeats_live() {
    let recv = |sock: &std::net::UdpSocket| {
        let mut buf = vec![0u8; 65536];
        sock.recv(&mut buf)
            .ok()
            .map(|n| buf.truncate(n))
            .map(|_| buf)
    };
    let old = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let new = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&old, &new] {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    }
    let a = start_with(vec![old.local_addr().unwrap().to_string()], "old-key");
    let beat = recv(&old).expect("no heartbeat before the update");
    assert!(rocta_proto::heartbeat::decode(&beat, b"old-key").is_ok());
    let update = format!(
        "{}controller_ip_port_list = [\"{}\"]\nheartbeat_key = \"new-key\"\n",
        agent_toml(&a),
        new.local_addr().unwrap()
    );
    let r = a
        .client
        .put(format!("{}/1.0/config", a.url))
        .body(update)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let beat = recv(&new).expect("heartbeats did not move to the new health manager");
    assert!(
        rocta_proto::heartbeat::decode(&beat, b"new-key").is_ok(),
        "signed with the new key"
    );
    // Drain what the old one got before the switch, then nothing more arrives there.
    old.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    while recv(&old).is_some() {}
    assert!(
        recv(&old).is_none(),
        "the old health manager still gets heartbeats"
    );

    let quiet = start();
    let hm = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    hm.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let update = format!(
        "{}controller_ip_port_list = [\"{}\"]\nheartbeat_key = \"k\"\n",
        agent_toml(&quiet),
        hm.local_addr().unwrap()
    );
    let r = quiet
        .client
        .put(format!("{}/1.0/config", quiet.url))
        .body(update)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert!(
        recv(&hm).is_some(),
        "an agent told of a health manager starts sending"
    );
}

/// The configuration an Octavia controller sends (its `amphora-agent.conf`, INI) is taken as
/// rocta's own: heartbeats move to the health manager it names, signed with its key.
#[test]
fn an_octavia_amphora_agent_conf_is_understood() {
    let a = start();
    let path = a.dir.path().join("agent.toml");
    let hm = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    hm.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let conf = rocta_proto::agent_conf::AgentConf {
        amphora_id: AMP.into(),
        bind_host: "127.0.0.1".into(),
        bind_port: 0,
        base_path: a.dir.path().join("lb").display().to_string(),
        agent_server_cert: a.dir.path().join("server.pem").display().to_string(),
        agent_server_ca: a.dir.path().join("client_ca.pem").display().to_string(),
        controller_ip_port_list: vec![hm.local_addr().unwrap().to_string()],
        heartbeat_key: "octavia-key".into(),
        ..Default::default()
    }
    .render();
    let r = a
        .client
        .put(format!("{}/1.0/config", a.url))
        .body(conf.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), conf);
    let mut buf = vec![0u8; 65536];
    let n = hm
        .recv(&mut buf)
        .expect("no heartbeat at the health manager it names");
    assert!(rocta_proto::heartbeat::decode(&buf[..n], b"octavia-key").is_ok());
    // Another amphora's file, or one without an id, is refused.
    for bad in [
        conf.replace(AMP, "00000000-0000-4000-8000-000000000000"),
        conf.replace(&format!("amphora_id = {AMP}"), ""),
        conf.replace("bind_port = 0", "bind_port = nine"),
    ] {
        let r = a
            .client
            .put(format!("{}/1.0/config", a.url))
            .body(bad)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
    }
}

#[test]
fn heartbeats_report_listeners_with_octavia_envelope() {
    let hm = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    hm.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let a = start_with(vec![hm.local_addr().unwrap().to_string()], "hb-key");
    const LB2: &str = "1c5c7b47-49b4-4a44-9f3f-9d3b7f01b1bb";
    let run = a.dir.path().join("lb").join(LB2);
    let port = free_port();
    let b1 = backend("one");
    let put = |path: &str, body: String| {
        a.client
            .put(format!("{}{path}", a.url))
            .body(body)
            .send()
            .unwrap()
    };
    assert_eq!(
        put(
            &format!("/1.0/loadbalancer/amp/{LB2}/haproxy"),
            config(LB2, &run, port, &[b1])
        )
        .status()
        .as_u16(),
        202
    );
    assert_eq!(
        a.client
            .put(format!("{}/1.0/loadbalancer/{LB2}/start", a.url))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        202
    );
    let mut buf = [0u8; 65536];
    let mut last_seq = 0;
    let t = Instant::now();
    loop {
        let n = hm.recv(&mut buf).expect("no heartbeat within 5 s");
        let msg = rocta_proto::heartbeat::decode(&buf[..n], b"hb-key").expect("valid envelope");
        assert_eq!(msg.id, AMP);
        assert!(msg.seq > last_seq, "sequence numbers increase");
        last_seq = msg.seq;
        if let Some((id, l)) = msg.listeners.0.first() {
            assert_eq!(id, "f");
            assert_eq!(l.status, "OPEN");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "no listener reported");
    }
    // Forged by another key: refused by the receiver's decoder.
    let n = hm.recv(&mut buf).unwrap();
    assert!(rocta_proto::heartbeat::decode(&buf[..n], b"other").is_err());
}

/// The servers HAProxy runs for backend `b`: (name, address, port, weight, admin state).
fn servers(sock: &str) -> Vec<(String, String, String, String, String)> {
    let mut v: Vec<_> = stats_command(sock, "show servers state b")
        .lines()
        .filter(|l| !l.starts_with('#') && l.split_whitespace().count() > 18)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let s = |i: usize| f[i].to_string();
            (s(3), s(4), s(18), s(7), s(6))
        })
        .collect();
    v.sort();
    v
}

fn worker_pid(sock: &str) -> String {
    stats_command(sock, "show info")
        .lines()
        .find(|l| l.starts_with("Pid:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn member_changes_go_through_the_runtime_api() {
    // A load balancer of its own: the stats socket name must not collide with the other
    // tests' HAProxy running at the same time.
    const LB: &str = "0b4b6a36-38a3-4f33-8f2e-8c2a6ef0a0ab";
    let a = start();
    let run = a.dir.path().join("lb").join(LB);
    let (b1, b2) = (backend("one"), backend("two"));
    let port = free_port();
    let sock = format!("rocta-{AMP}-{LB}");
    let cfg = |servers: &[(u16, u16)]| {
        let mut c = config(LB, &run, port, &[]);
        for (i, (b, w)) in servers.iter().enumerate() {
            c.push_str(&format!("    server s{i} 127.0.0.1:{b} weight {w}\n"));
        }
        c
    };
    // Uploads `c`, then asks for `action`: the two statuses and the action's answer.
    let send = |c: String, action: &str| -> (u16, u16, String) {
        let up = a
            .client
            .put(format!("{}/1.0/loadbalancer/amp/{LB}/haproxy", a.url))
            .body(c)
            .send()
            .unwrap();
        let r = a
            .client
            .put(format!("{}/1.0/loadbalancer/{LB}/{action}", a.url))
            .send()
            .unwrap();
        (up.status().as_u16(), r.status().as_u16(), r.text().unwrap())
    };
    let apply = |c: String, action: &str| -> String {
        let (up, done, said) = send(c, action);
        assert_eq!((up, done), (202, 202), "{said}");
        said
    };
    apply(cfg(&[(b1, 1), (b2, 1)]), "start");
    let plain = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    wait_serving(&plain, &url);
    let answers = |n: usize| -> std::collections::BTreeSet<String> {
        (0..n)
            .map(|_| plain.get(&url).send().unwrap().text().unwrap())
            .collect()
    };
    let mut pid = worker_pid(&sock);
    // After each runtime change, the worker is the same one, it serves the change, and a
    // reload from the file changes nothing visible: running state and file agree.
    type Step = (Vec<(u16, u16)>, &'static [&'static str]);
    let steps: [Step; 4] = [
        (vec![(b1, 1)], &["hello from one"]),
        (
            vec![(b1, 1), (b2, 1)],
            &["hello from one", "hello from two"],
        ),
        (vec![(b1, 0), (b2, 3)], &["hello from two"]),
        (
            vec![(b1, 1), (b2, 1)],
            &["hello from one", "hello from two"],
        ),
    ];
    for (list, want) in steps {
        let said = apply(cfg(&list), "reload");
        assert!(said.contains("changed at runtime"), "{said}");
        assert_eq!(worker_pid(&sock), pid, "reloaded");
        let want: std::collections::BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(answers(6), want);
        let running = servers(&sock);
        assert_eq!(running.len(), list.len(), "{running:?}");
        // `start` on a running HAProxy always reloads.
        apply(cfg(&list), "start");
        let reloaded = worker_pid(&sock);
        assert_ne!(reloaded, pid, "the forced reload did not happen");
        assert_eq!(
            servers(&sock),
            running,
            "the file and the running state differ"
        );
        pid = reloaded;
        // The same configuration again: nothing to do.
        let said = apply(cfg(&list), "reload");
        assert!(said.contains("unchanged"), "{said}");
        assert_eq!(worker_pid(&sock), pid);
    }
    // A member line HAProxy refuses (member lines skip `haproxy -c` at upload): the reload
    // says why, the running configuration is installed again and serves on.
    let good = cfg(&[(b1, 1), (b2, 1)]);
    let bad = format!("{good}    server s9 127.0.0.1:1 weight 1 no-such-keyword\n");
    let (up, done, said) = send(bad, "reload");
    assert_eq!((up, done), (202, 400), "{said}");
    assert!(said.contains("no-such-keyword"), "{said}");
    let installed = a
        .client
        .get(format!("{}/1.0/loadbalancer/{LB}/haproxy", a.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        installed, good,
        "the refused configuration stayed installed"
    );
    assert_eq!(servers(&sock).len(), 2);
    assert_eq!(
        answers(6),
        ["hello from one", "hello from two"]
            .map(String::from)
            .into()
    );
}
