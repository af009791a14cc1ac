//! Several processes of each role on one network database (PostgreSQL, then MariaDB/MySQL):
//! two `rocta api` and two `rocta worker` (noop drivers) share a database of their own on the
//! server. A load balancer created through one API is updated through the other; a worker
//! killed in the middle of a flow leaves the job to the other worker, which finishes it. Job
//! wake-ups across processes (PostgreSQL `LISTEN/NOTIFY`, RabbitMQ), and RabbitMQ unreachable
//! or lost mid-run. The same with real amphorae and every role twice: `e2e_scale_out.rs`.

mod common;

use std::time::Duration;

use common::{Rocta, SUBNET};
use rocta_store::testing::TempDb;
use rocta_store::{Filter, Options, Store};
use serde_json::json;

fn config(url: &str) -> String {
    format!(
        "{}[database]\nconnection = \"{url}\"\nmax_pool_size = 4\n",
        common::TEST_CONFIG
    )
}

fn two_apis_two_workers_one_database(db: TempDb) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&db.url);
    let api1 = Rocta::start_in(dir.path(), "api", &cfg, &[]);
    let api2 = Rocta::start_in(dir.path(), "api", &cfg, &[]);
    // Worker 1 dies right after building the amphora of the first load balancer it creates.
    let mut w1 = Rocta::start_in(
        dir.path(),
        "worker",
        &cfg,
        &[(
            "ROCTA_CRASH_AT",
            "create_loadbalancer:create_amphora:executed",
        )],
    );

    let (s, b) = api1.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"name": "one", "vip_subnet_id": SUBNET}}),
    );
    assert_eq!(s, 201, "{b}");
    let id = b["loadbalancer"]["id"].as_str().unwrap().to_string();
    assert!(
        w1.wait_exit(Duration::from_secs(20)),
        "worker 1 never reached its crash point"
    );
    // The other worker resumes the job once worker 1's lease lapses, and finishes it.
    let _w2 = Rocta::start_in(dir.path(), "worker", &cfg, &[]);
    let _w3 = Rocta::start_in(dir.path(), "worker", &cfg, &[]);
    api2.wait_active(&id);

    // Created through API 1, updated through API 2, seen by both.
    let (s, b) = api2.put(
        &format!("/v2/lbaas/loadbalancers/{id}"),
        json!({"loadbalancer": {"name": "two"}}),
    );
    assert_eq!(s, 200, "{b}");
    // A second change through the other API while the first is pending is refused (409).
    let (s, _) = api1.put(
        &format!("/v2/lbaas/loadbalancers/{id}"),
        json!({"loadbalancer": {"name": "three"}}),
    );
    assert!(s == 409 || s == 200, "{s}");
    api1.wait_active(&id);
    let name = api1.get(&format!("/v2/lbaas/loadbalancers/{id}")).1["loadbalancer"]["name"].clone();
    assert!(name == "two" || name == "three", "{name}");

    // A tree of children, created through both APIs in turn.
    let l = api1.child(
        &id,
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": id, "protocol": "HTTP", "protocol_port": 80}}),
    );
    let p = api2.child(&id, "/v2/lbaas/pools", json!({"pool": {"listener_id": l["listener"]["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}));
    for i in 0..4 {
        let api = if i % 2 == 0 { &api1 } else { &api2 };
        api.child(
            &id,
            &format!(
                "/v2/lbaas/pools/{}/members",
                p["pool"]["id"].as_str().unwrap()
            ),
            json!({"member": {"address": format!("198.18.0.{}", 10 + i), "protocol_port": 80}}),
        );
    }
    let (s, _) = api2.delete(&format!("/v2/lbaas/loadbalancers/{id}?cascade=true"));
    assert_eq!(s, 204);
    common::dataplane::eventually("the load balancer is deleted", || {
        api1.get(&format!("/v2/lbaas/loadbalancers/{id}")).0 == 404
    });

    // Nothing left pending, no job unfinished (the delete job ends just after its last step).
    let store = Store::open(&db.target, &Options::default()).unwrap();
    let left = || {
        store
            .blocking(false, |tx| -> Result<_, rocta_store::StoreError> {
                let lbs = tx.list::<rocta_model::LoadBalancer>(&Filter::default())?;
                Ok((
                    lbs.iter()
                        .filter(|l| l.provisioning_status.is_pending())
                        .count(),
                    tx.jobs_unfinished()?,
                ))
            })
            .unwrap()
    };
    common::dataplane::eventually("nothing pending, no job unfinished", || left() == (0, 0));
}

#[test]
fn postgresql_two_apis_two_workers() {
    two_apis_two_workers_one_database(TempDb::postgres().expect("PostgreSQL"));
}

#[test]
fn mysql_two_apis_two_workers() {
    two_apis_two_workers_one_database(TempDb::mysql().expect("MySQL/MariaDB"));
}

/// On PostgreSQL a worker in another process learns of a new job from `LISTEN/NOTIFY`, not
/// from its (here 10 s) polling.
#[test]
fn postgresql_wakes_workers_in_other_processes() {
    let db = TempDb::postgres().expect("PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[controller_worker]\njob_lease_seconds = 2\njob_poll_interval_ms = 10000\n\
         [health_manager]\nbind_port = 0\n[database]\nconnection = \"{}\"\n",
        db.url
    );
    let api = Rocta::start_in(dir.path(), "api", &cfg, &[]);
    let _worker = Rocta::start_in(dir.path(), "worker", &cfg, &[]);
    // Let the worker settle into its long sleep.
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..3 {
        let took = timed_create(&api);
        assert!(
            took < Duration::from_secs(3),
            "create -> ACTIVE took {took:?}: the worker was not woken"
        );
    }
}

/// RabbitMQ (`transport_url`) carries the API's job announcements to a worker in another
/// process (here on MariaDB, which has no LISTEN of its own); with the broker unreachable the
/// API keeps accepting changes and the worker falls back to polling.
#[test]
fn rabbitmq_wakes_workers_and_its_absence_only_costs_latency() {
    let db = TempDb::mysql().expect("MySQL/MariaDB");
    let queue = format!("rocta_test_{}", uuid_ish());
    let _cleanup = DeleteQueue(queue.clone());
    let dir = tempfile::tempdir().unwrap();
    let cfg = |url: &str, poll_ms: u64| {
        format!(
            "[DEFAULT]\ntransport_url = \"{url}\"\n[oslo_messaging]\ntopic = \"{queue}\"\n\
             [controller_worker]\njob_lease_seconds = 2\njob_poll_interval_ms = {poll_ms}\n\
             [health_manager]\nbind_port = 0\n[database]\nconnection = \"{}\"\n",
            db.url
        )
    };
    let pushed = cfg("rabbit://guest:guest@127.0.0.1:5672/", 10_000);
    let create = timed_create;
    {
        let api = Rocta::start_in(dir.path(), "api", &pushed, &[]);
        let _worker = Rocta::start_in(dir.path(), "worker", &pushed, &[]);
        std::thread::sleep(Duration::from_millis(1500));
        for _ in 0..3 {
            let took = create(&api);
            assert!(
                took < Duration::from_secs(3),
                "create -> ACTIVE took {took:?}: not woken"
            );
        }
    }
    // Nothing listens on port 1: announcements are dropped, the worker polls (every 100 ms).
    let down = cfg("rabbit://guest:guest@127.0.0.1:1/", 100);
    let api = Rocta::start_in(dir.path(), "api", &down, &[]);
    let _worker = Rocta::start_in(dir.path(), "worker", &down, &[]);
    for _ in 0..2 {
        let took = create(&api);
        assert!(
            took < Duration::from_secs(5),
            "create -> ACTIVE took {took:?} without the bus"
        );
    }
}

/// RabbitMQ lost in the middle of a run and back again (through a TCP proxy the test cuts,
/// so the shared broker is never stopped): while it is gone the API still answers 201 and the
/// worker finds jobs by polling; once it is back, both reconnect and jobs are pushed again.
#[test]
fn rabbitmq_lost_mid_run_and_back() {
    let db = TempDb::postgres().expect("PostgreSQL");
    let queue = format!("rocta_test_{}", uuid_ish());
    let _cleanup = DeleteQueue(queue.clone());
    let proxy = Proxy::start(5672);
    let dir = tempfile::tempdir().unwrap();
    // LISTEN/NOTIFY would wake the worker on PostgreSQL too; with transport_url set, the bus
    // is the only push, and polling (every 4 s) the fallback.
    let cfg = format!(
        "[DEFAULT]\ntransport_url = \"rabbit://guest:guest@127.0.0.1:{}/\"\n\
         [oslo_messaging]\ntopic = \"{queue}\"\n\
         [controller_worker]\njob_lease_seconds = 2\njob_poll_interval_ms = 4000\n\
         [health_manager]\nbind_port = 0\n[database]\nconnection = \"{}\"\n",
        proxy.port, db.url
    );
    let api = Rocta::start_in(dir.path(), "api", &cfg, &[]);
    let _worker = Rocta::start_in(dir.path(), "worker", &cfg, &[]);
    let create = || timed_create(&api);
    let pushed = |what: &str| {
        let t = std::time::Instant::now();
        while create() >= Duration::from_millis(1500) {
            assert!(t.elapsed() < Duration::from_secs(40), "{what}");
        }
    };
    pushed("jobs never pushed through the bus");
    proxy.set_up(false);
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..2 {
        let took = create();
        assert!(
            took < Duration::from_secs(8),
            "create -> ACTIVE took {took:?} with the broker gone"
        );
    }
    proxy.set_up(true);
    pushed("jobs not pushed again after the broker came back");
}

/// A TCP proxy to a local port that the test can cut (every connection closed, new ones
/// refused) and restore.
struct Proxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let bind = |port: u16| {
            let l = TcpListener::bind(("127.0.0.1", port)).ok()?;
            l.set_nonblocking(true).ok()?;
            Some(l)
        };
        let first = bind(0).expect("proxy port");
        let port = first.local_addr().unwrap().port();
        let (up, stop) = (
            Arc::new(AtomicBool::new(true)),
            Arc::new(AtomicBool::new(false)),
        );
        let (up2, stop2) = (up.clone(), stop.clone());
        std::thread::spawn(move || {
            let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
            let mut listener = Some(first);
            while !stop2.load(Ordering::Relaxed) {
                match (up2.load(Ordering::Relaxed), listener.is_some()) {
                    (true, false) => listener = bind(port),
                    (false, true) => {
                        listener = None;
                        for c in conns.lock().unwrap().drain(..) {
                            let _ = c.shutdown(Shutdown::Both);
                        }
                    }
                    _ => {}
                }
                let accepted = listener.as_ref().and_then(|l| l.accept().ok());
                let Some((client, _)) = accepted else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let mut held = conns.lock().unwrap();
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    held.push(from.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, up, stop }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set_up(false);
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Creates a load balancer through `api`; how long until it was `ACTIVE`.
fn timed_create(api: &Rocta) -> Duration {
    let t = std::time::Instant::now();
    let (s, b) = api.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": SUBNET}}),
    );
    assert_eq!(s, 201, "{b}");
    api.wait_active(b["loadbalancer"]["id"].as_str().unwrap());
    t.elapsed()
}

/// Removes the test's queue from RabbitMQ, even when the test fails.
struct DeleteQueue(String);

impl Drop for DeleteQueue {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_queue", &self.0])
            .output();
    }
}

fn uuid_ish() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
