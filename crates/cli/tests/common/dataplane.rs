//! Data-plane helpers of the end-to-end tests: backends started by the test, plain HTTP
//! requests through a VIP, the amphora processes left on the host.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The VIP subnet of the `loopback` network driver.
pub const PUBLIC: &str = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b";

/// A keep-alive HTTP backend answering its name (and echoing nothing else).
pub fn backend(name: &'static str) -> u16 {
    serve_backend(TcpListener::bind("127.0.0.1:0").unwrap(), name)
}

pub fn serve_backend(l: TcpListener, name: &'static str) -> u16 {
    switchable_backend(l, name, Arc::new(AtomicBool::new(true)))
}

/// A backend that answers while `alive`, and otherwise closes each new connection at once
/// (a failed HTTP health check).
pub fn switchable_backend(l: TcpListener, name: &'static str, alive: Arc<AtomicBool>) -> u16 {
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            if !alive.load(Ordering::Relaxed) {
                drop(s);
                continue;
            }
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                loop {
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if write!(
                        w,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                        name.len()
                    )
                    .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

pub fn get(url: &str) -> Option<(u16, String)> {
    let c = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = c.get(url).send().ok()?;
    Some((r.status().as_u16(), r.text().unwrap_or_default()))
}

/// Amphora processes (agents and HAProxy) whose command line mentions `needle`.
pub fn processes(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains(needle) && (c.contains("amphora-agent") || c.contains("haproxy"))
            })
        })
        .count()
}

/// Waits until `f` holds (the data plane converges after the API says ACTIVE at most a reload later).
/// Deletes a load balancer with everything on it and waits until it is gone (404).
pub fn delete_lb(r: &super::Rocta, id: &str) {
    assert_eq!(
        r.delete(&format!("/v2/lbaas/loadbalancers/{id}?cascade=true"))
            .0,
        204
    );
    // Usually 0.1-0.2 s. (It once took more than 10 s, then 30, now and then on the netns
    // drivers: the management bridge answered ARP for the controller's address, and an
    // amphora that took its answer could not reach the controller; `rocta network setup`
    // sets the bridge's arp_ignore since session 16.)
    let t = Instant::now();
    while r.get(&format!("/v2/lbaas/loadbalancers/{id}")).0 != 404 {
        if t.elapsed() >= Duration::from_secs(30) {
            let amps = r.req_as(
                "GET",
                &format!("/v2/octavia/amphorae?loadbalancer_id={id}"),
                None,
                "p1",
                Some("admin"),
            );
            // The jobs of this load balancer still open, with the steps they journaled, and
            // how its recent ones ended (the dashboard's view of the queue).
            let (_, jobs) = r.req_as("GET", "/dashboard/api/jobs?limit=500", None, "p1", None);
            let of_lb = |k: &str| -> Vec<serde_json::Value> {
                jobs[k]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|j| j["loadbalancer_id"] == id)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default()
            };
            panic!(
                "load balancer not deleted: {:?} {:?}\nopen jobs: {:?}\nended jobs: {:?}",
                r.get(&format!("/v2/lbaas/loadbalancers/{id}")),
                amps,
                of_lb("open"),
                of_lb("ended")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if t.elapsed() > Duration::from_secs(5) {
        eprintln!("delete_lb: {:?} (slow)", t.elapsed());
    }
}

pub fn eventually(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
