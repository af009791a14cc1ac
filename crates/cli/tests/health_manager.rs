//! The health manager inside `rocta serve` (noop amphorae, heartbeats sent by the test with
//! Octavia's envelope): forged, malformed and replayed datagrams change nothing; stale amphorae
//! are failed over unless the failover threshold is reached; counters land in the metrics file.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use rocta_proto::heartbeat::{encode, Heartbeat, ListenerReport, Ordered, PoolReport};
use serde_json::{json, Value};

const KEY: &str = "test-heartbeat-key";

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(port: u16, timeout: f64, threshold: u64) -> String {
    format!(
        "{TEST_CONFIG}bind_ip = \"127.0.0.1\"\nheartbeat_key = \"{KEY}\"\nheartbeat_timeout = {timeout}\n\
         health_check_interval = 0.1\nfailover_threshold = {threshold}\n"
    )
    .replace("bind_port = 0", &format!("bind_port = {port}"))
}

/// The load balancer's ids: (lb, amphora, listener, pool, member).
fn setup(r: &Rocta) -> (String, String, String, String, String) {
    let (s, lb) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b",
            "listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": {"name": "p"}}],
            "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                "healthmonitor": {"type": "HTTP", "delay": 1, "timeout": 1, "max_retries": 1},
                "members": [{"address": "127.0.0.1", "protocol_port": 9}]}]}}),
    );
    assert_eq!(s, 201, "{lb}");
    let lb = &lb["loadbalancer"];
    let id = lb["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let amp = amphora_of(r, &id);
    let pool = &lb["pools"][0];
    (
        id,
        amp,
        lb["listeners"][0]["id"].as_str().unwrap().to_string(),
        pool["id"].as_str().unwrap().to_string(),
        pool["members"][0]["id"].as_str().unwrap().to_string(),
    )
}

fn amphora_of(r: &Rocta, lb: &str) -> String {
    let amps = r
        .get(&format!("/v2/octavia/amphorae?loadbalancer_id={lb}"))
        .1;
    let live: Vec<&Value> = amps["amphorae"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "ALLOCATED")
        .collect();
    assert_eq!(live.len(), 1, "{amps}");
    live[0]["id"].as_str().unwrap().to_string()
}

fn heartbeat(amp: &str, seq: u64, listener: &str, pool: &str, member: &str, up: bool) -> Heartbeat {
    let state = if up { "UP" } else { "DOWN" };
    Heartbeat {
        id: amp.into(),
        seq,
        ver: 3,
        listeners: Ordered(vec![(
            listener.into(),
            ListenerReport {
                status: "OPEN".into(),
                stats: Default::default(),
            },
        )]),
        pools: Ordered(vec![(
            format!("{pool}:{listener}"),
            PoolReport {
                status: state.into(),
                members: Ordered(vec![(member.into(), state.into())]),
            },
        )]),
    }
}

fn member_status(r: &Rocta, pool: &str, member: &str) -> String {
    r.get(&format!("/v2/lbaas/pools/{pool}/members/{member}")).1["member"]["operating_status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn metric(dir: &std::path::Path, line: &str) -> u64 {
    std::fs::read_to_string(dir.join("data/health-manager.prom"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0)
}

fn until(what: &str, within: Duration, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn forged_malformed_and_replayed_heartbeats_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let r = Rocta::start_in(dir.path(), "serve", &config(port, 3600.0, 0), &[]);
    let (_, amp, listener, pool, member) = setup(&r);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |d: &[u8]| {
        sock.send_to(d, ("127.0.0.1", port)).unwrap();
    };
    let hb = |seq, up| {
        encode(
            &heartbeat(&amp, seq, &listener, &pool, &member, up),
            KEY.as_bytes(),
        )
    };
    send(&hb(10, true));
    until("member not ONLINE", Duration::from_secs(5), || {
        member_status(&r, &pool, &member) == "ONLINE"
    });
    // Each of these says the member is down; none may be believed.
    let forged = encode(
        &heartbeat(&amp, 11, &listener, &pool, &member, false),
        b"another key",
    );
    send(&forged);
    let good = hb(12, false);
    send(&good[..good.len() - 5]); // truncated
    send(b"not a heartbeat at all, just bytes");
    send(&vec![0u8; 70_000][..65_000]); // oversized
    send(&hb(10, false)); // replayed sequence number
    send(&hb(9, false)); // older
    let dropped = |reason: &str| {
        metric(
            dir.path(),
            &format!("rocta_heartbeats_dropped_total{{reason=\"{reason}\"}}"),
        )
    };
    until("drops not counted", Duration::from_secs(5), || {
        // A cut-off or altered datagram fails its signature: counted as forged.
        dropped("forged") >= 2
            && dropped("replayed") >= 2
            && dropped("forged") + dropped("malformed") + dropped("oversized") >= 4
    });
    assert_eq!(member_status(&r, &pool, &member), "ONLINE");
    // A genuine newer heartbeat is believed (the test could fail).
    send(&hb(13, false));
    until("member not ERROR", Duration::from_secs(5), || {
        member_status(&r, &pool, &member) == "ERROR"
    });
}

/// Two health managers on one PostgreSQL database: a datagram already counted by one and
/// replayed to the other (which has not seen that amphora's sequence numbers) changes nothing.
#[test]
fn a_heartbeat_replayed_to_another_health_manager_changes_nothing() {
    let db = rocta_store::testing::TempDb::postgres().expect("PostgreSQL");
    let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (port1, port2) = (free_udp_port(), free_udp_port());
    let with_db = |port| {
        format!(
            "{}[database]\nconnection = \"{}\"\n",
            config(port, 3600.0, 0),
            db.url
        )
    };
    let r = Rocta::start_in(dir1.path(), "serve", &with_db(port1), &[]);
    let _hm2 = Rocta::start_in(dir2.path(), "health-manager", &with_db(port2), &[]);
    let (_, amp, listener, pool, member) = setup(&r);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let hb = |seq, up| {
        encode(
            &heartbeat(&amp, seq, &listener, &pool, &member, up),
            KEY.as_bytes(),
        )
    };
    let up_10 = hb(10, true);
    sock.send_to(&up_10, ("127.0.0.1", port1)).unwrap();
    until("member not ONLINE", Duration::from_secs(5), || {
        member_status(&r, &pool, &member) == "ONLINE"
    });
    sock.send_to(&hb(12, false), ("127.0.0.1", port1)).unwrap();
    until("member not ERROR", Duration::from_secs(5), || {
        member_status(&r, &pool, &member) == "ERROR"
    });
    // The old "member up" datagram, replayed to the other health manager.
    sock.send_to(&up_10, ("127.0.0.1", port2)).unwrap();
    until(
        "replay not counted by the second health manager",
        Duration::from_secs(5),
        || {
            metric(
                dir2.path(),
                "rocta_heartbeats_dropped_total{reason=\"replayed\"}",
            ) >= 1
        },
    );
    assert_eq!(member_status(&r, &pool, &member), "ERROR");
    // A genuine newer heartbeat through the second health manager is believed.
    sock.send_to(&hb(13, true), ("127.0.0.1", port2)).unwrap();
    until("member not ONLINE again", Duration::from_secs(5), || {
        member_status(&r, &pool, &member) == "ONLINE"
    });
}

#[test]
fn stale_amphorae_are_failed_over_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let r = Rocta::start_in(dir.path(), "serve", &config(port, 1.0, 0), &[]);
    let (lb, amp, listener, pool, member) = setup(&r);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    sock.send_to(
        &encode(
            &heartbeat(&amp, 1, &listener, &pool, &member, true),
            KEY.as_bytes(),
        ),
        ("127.0.0.1", port),
    )
    .unwrap();
    // Silent from now on: replaced once stale (never before heartbeat_timeout).
    until(
        "stale amphora not failed over",
        Duration::from_secs(10),
        || amphora_of_opt(&r, &lb).is_some_and(|a| a != amp),
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    r.wait_active(&lb);
    assert!(metric(dir.path(), "rocta_failovers_total") >= 1);
}

#[test]
fn the_failover_threshold_stops_mass_failover() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let r = Rocta::start_in(dir.path(), "serve", &config(port, 1.0, 1), &[]);
    let (lb, amp, listener, pool, member) = setup(&r);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(
        &encode(
            &heartbeat(&amp, 1, &listener, &pool, &member, true),
            KEY.as_bytes(),
        ),
        ("127.0.0.1", port),
    )
    .unwrap();
    until("threshold not counted", Duration::from_secs(10), || {
        metric(dir.path(), "rocta_failover_stopped_total") >= 3
    });
    assert_eq!(amphora_of(&r, &lb), amp, "no failover above the threshold");
    assert_eq!(metric(dir.path(), "rocta_failovers_total"), 0);
    assert_eq!(metric(dir.path(), "rocta_stale_amphorae"), 1);
}

fn amphora_of_opt(r: &Rocta, lb: &str) -> Option<String> {
    let amps = r
        .get(&format!("/v2/octavia/amphorae?loadbalancer_id={lb}"))
        .1;
    amps["amphorae"]
        .as_array()?
        .iter()
        .find(|a| a["status"] == "ALLOCATED")
        .and_then(|a| a["id"].as_str())
        .map(String::from)
}

/// Two health managers on one MariaDB database (api and worker as processes of their own); the
/// amphorae send heartbeats to both in turn, as Octavia's `controller_ip_port_list` makes
/// them. One health manager is killed with SIGKILL: the other goes on alone. An amphora that
/// keeps sending (half of its heartbeats now lost with the dead one) is never failed over; one
/// that falls silent at the same moment is, by the survivor.
#[test]
fn a_health_manager_killed_leaves_failover_detection_to_the_other() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let db = rocta_store::testing::TempDb::mysql().expect("MariaDB/MySQL");
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (port1, port2) = (free_udp_port(), free_udp_port());
    let with_db = |port| {
        format!(
            "{}[database]\nconnection = \"{}\"\n",
            config(port, 2.0, 0),
            db.url
        )
    };
    let api = Rocta::start_in(dirs[0].path(), "api", &with_db(0), &[]);
    let _worker = Rocta::start_in(dirs[0].path(), "worker", &with_db(0), &[]);
    let mut hm1 = Rocta::start_in(dirs[1].path(), "health-manager", &with_db(port1), &[]);
    let _hm2 = Rocta::start_in(dirs[2].path(), "health-manager", &with_db(port2), &[]);
    let (_, amp_a, l_a, p_a, m_a) = setup(&api);
    let (lb_b, amp_b, l_b, p_b, m_b) = setup(&api);
    let (stop, b_silent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let sender = {
        let (stop, b_silent) = (stop.clone(), b_silent.clone());
        let (a, b) = (
            (amp_a.clone(), l_a, p_a, m_a),
            (amp_b.clone(), l_b, p_b, m_b),
        );
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut seq = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let port = if seq.is_multiple_of(2) { port1 } else { port2 };
                let mut amps = vec![&a];
                if !b_silent.load(Ordering::Relaxed) {
                    amps.push(&b);
                }
                for (amp, l, p, m) in amps {
                    let hb = encode(&heartbeat(amp, seq, l, p, m, true), KEY.as_bytes());
                    sock.send_to(&hb, ("127.0.0.1", port)).unwrap();
                }
                seq += 1;
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(amphora_of_opt(&api, &lb_b).as_deref(), Some(amp_b.as_str()));
    hm1.kill();
    b_silent.store(true, Ordering::Relaxed);
    let killed = Instant::now();
    until(
        "the silent amphora was not failed over by the surviving health manager",
        Duration::from_secs(15),
        || amphora_of_opt(&api, &lb_b).is_some_and(|a| a != amp_b),
    );
    assert!(killed.elapsed() >= Duration::from_millis(1500));
    assert!(metric(dirs[2].path(), "rocta_failovers_total") >= 1);
    // Well past the timeout, the amphora that kept sending is still the same one.
    std::thread::sleep(Duration::from_millis(2500));
    let (s, amps) = api.get(&format!("/v2/octavia/amphorae/{amp_a}"));
    assert_eq!(s, 200);
    assert_eq!(amps["amphora"]["status"], "ALLOCATED", "{amps}");
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
}
