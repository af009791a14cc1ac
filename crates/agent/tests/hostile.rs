//! The agent against hostile or broken peers: idle and slow connections bounded, the
//! framework's own refusals in the agent's error body. Its own test binary, so the load it
//! makes is not measured by (or measuring) the traffic tests in `agent.rs`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// CPU time (user + system), in clock ticks, of the agents' runtime threads in this process.
fn cpu_ticks() -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        if !stat.contains("(rocta-agent)") {
            continue;
        }
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        // utime and stime, fields 14 and 15 of proc(5), counted after the command name.
        total += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    total
}

/// Idle and slow peers (1,000 connections that send nothing, 200 that stall in the middle of
/// their TLS handshake) neither keep the controller from configuring the agent nor make the
/// agent spin.
#[test]
fn hostile_connections_do_not_keep_the_controller_out() {
    let a = start();
    let addr = a.url.trim_start_matches("https://").to_string();
    let mut held = Vec::new();
    for _ in 0..1000 {
        held.push(TcpStream::connect(&addr).unwrap());
    }
    for _ in 0..200 {
        let mut s = TcpStream::connect(&addr).unwrap();
        // A TLS record header announcing a 512-byte ClientHello, then only its first bytes.
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
            .unwrap();
        held.push(s);
    }
    let controller = client(&a.ca, Some(leaf(&a.client_ca, "controller", vec![])));
    let t = Instant::now();
    let r = controller
        .get(format!("{}/1.0/info", a.url))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let path = a.dir.path().join("agent.toml");
    let cfg = agent_toml(&a);
    let r = controller
        .put(format!("{}/1.0/config", a.url))
        .body(cfg.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), cfg);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the controller waited {:?}",
        t.elapsed()
    );
    // With every hostile connection still open, the agent stays idle.
    let ticks = clock_ticks_per_second();
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let used = (cpu_ticks() - before) as f64 / ticks as f64;
    assert!(
        used < 0.2,
        "{used:.2} s of agent CPU in 2 s with idle peers"
    );
    // The agent holds no more unauthenticated connections than its bound: the oldest were
    // closed to make room.
    let mut open = 0;
    for s in &mut held {
        s.set_nonblocking(true).unwrap();
        let r = s.read(&mut [0u8; 64]);
        open += matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) as usize;
    }
    assert!(
        open <= rocta_agent::LIMITS.handshakes,
        "{open} hostile connections still held open"
    );
}

/// Clock ticks per second as `getconf CLK_TCK` reports it (100 on Linux).
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// The framework's refusals (a path that is not UTF-8, a wrong method) carry the agent's JSON
/// error body like every other error (found by the agent_requests fuzz target).
#[test]
fn framework_refusals_are_json() {
    let a = start();
    for (method, path, status) in [
        (reqwest::Method::GET, "/1.0/loadbalancer/%FF", 400),
        (reqwest::Method::POST, "/1.0/info", 405),
    ] {
        let r = a
            .client
            .request(method, format!("{}{path}", a.url))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        let body: serde_json::Value = r.json().unwrap();
        assert!(body["message"].is_string(), "{path}: {body}");
    }
}
