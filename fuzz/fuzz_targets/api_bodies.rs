//! Any request body (and list query) through the Octavia v2 API in process: the router, the
//! field tables, the cross-field checks and the transactions of `rocta-api` over SQLite and the
//! noop network driver. The answer is an Octavia fault or a success, never a 5xx and never a
//! panic.
//!
//! Input: the first byte picks the operation (create or update of every resource, a batch
//! member update, a quota update, a list query); the rest is the body (or query string). The
//! tokens `$LB`, `$LI`, `$PO`, `$ME`, `$HM`, `$PL`, `$RU` in it become the ids of a load
//! balancer tree made at start-up (listener, pool, member, monitor, L7 policy and rule), so the
//! fuzzer reaches the checks that need existing objects (`fuzz/api_bodies.dict` lists them with
//! the field names). After each request every pending status of that tree is set back to
//! `ACTIVE`, as a worker would, so the tree stays mutable.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use rocta_store::Store;
use serde_json::{json, Value};
use tower::ServiceExt;

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    store: Store,
    ids: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

const PROJECT: &str = "fuzz";
const SUBNET: &str = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b";

impl World {
    fn send(&self, method: Method, path: &str, body: Vec<u8>) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("x-project-id", PROJECT)
            .body(Body::from(body))
            .expect("a request from a valid path");
        self.rt.block_on(async {
            let resp = self.app.clone().oneshot(req).await.expect("infallible");
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
                .await
                .expect("a body");
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        })
    }

    /// Back to `ACTIVE`, as the worker would leave it.
    fn settle(&self) {
        let lb = self.id("$LB");
        self.rt.block_on(async {
            self.store
                .write(|tx| {
                    use rocta_model::ProvisioningStatus as P;
                    for t in rocta_store::Table::ALL {
                        tx.transition_lb(t, lb, &[P::PendingCreate, P::PendingUpdate], P::Active)?;
                    }
                    tx.set_status(
                        rocta_store::Table::LoadBalancers,
                        &[lb],
                        Some(P::Active),
                        None,
                    )
                })
                .await
                .expect("settle");
        });
    }

    fn id(&self, token: &str) -> uuid::Uuid {
        let s = &self.ids.iter().find(|(t, _)| *t == token).expect("known").1;
        s.parse().expect("an id")
    }

    fn create(&mut self, token: &'static str, path: &str, key: &str, body: Value) {
        let (s, b) = self.send(Method::POST, path, body.to_string().into_bytes());
        assert!(s == 201 || s == 202, "setup {path}: {s} {b}");
        let id = b[key]["id"].as_str().expect("an id").to_string();
        self.ids.push((token, id));
        self.settle();
    }

    fn subst(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (token, id) in &self.ids {
            out = out.replace(token, id);
        }
        out
    }
}

fn world() -> &'static std::sync::Mutex<World> {
    static W: OnceLock<std::sync::Mutex<World>> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open_sqlite(&dir.path().join("fuzz.db"), "off").expect("a store");
        let drivers = rocta_drivers::noop::drivers(&dir.path().join("noop")).expect("noop");
        let state = rocta_api::AppState {
            store: store.clone(),
            cfg: Arc::new(rocta_config::Config::default()),
            network: drivers.network.clone(),
            compute: drivers.compute.clone(),
            tls: drivers.tls.clone(),
            wake: Default::default(),
            keystone: None,
            policy: Arc::new(rocta_api::policy::Policy::defaults(true)),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut w = World {
            rt,
            app: rocta_api::router(state),
            store,
            ids: Vec::new(),
            _dir: dir,
        };
        // A bounded project: creates that pass validation end in 403 once it is full.
        let (s, _) = w.send(
            Method::PUT,
            &format!("/v2/lbaas/quotas/{PROJECT}"),
            json!({"quota": {"load_balancer": 20, "listener": 50, "pool": 50, "member": 200,
                "healthmonitor": 50, "l7policy": 50, "l7rule": 200}})
            .to_string()
            .into_bytes(),
        );
        assert_eq!(s, 202);
        w.ids.push(("$LB", String::new()));
        let (s, b) = w.send(
            Method::POST,
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"vip_subnet_id": SUBNET}})
                .to_string()
                .into_bytes(),
        );
        assert_eq!(s, 201, "{b}");
        w.ids[0].1 = b["loadbalancer"]["id"].as_str().expect("an id").to_string();
        w.settle();
        let lb = w.ids[0].1.clone();
        w.create(
            "$LI",
            "/v2/lbaas/listeners",
            "listener",
            json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}}),
        );
        let li = w.ids[1].1.clone();
        w.create(
            "$PO",
            "/v2/lbaas/pools",
            "pool",
            json!({"pool": {"listener_id": li, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
        );
        let po = w.ids[2].1.clone();
        w.create(
            "$ME",
            &format!("/v2/lbaas/pools/{po}/members"),
            "member",
            json!({"member": {"address": "192.0.2.1", "protocol_port": 80}}),
        );
        w.create(
            "$HM",
            "/v2/lbaas/healthmonitors",
            "healthmonitor",
            json!({"healthmonitor": {"pool_id": po, "type": "HTTP", "delay": 5, "timeout": 3,
                "max_retries": 3}}),
        );
        w.create(
            "$PL",
            "/v2/lbaas/l7policies",
            "l7policy",
            json!({"l7policy": {"listener_id": li, "action": "REJECT"}}),
        );
        let pl = w.ids[5].1.clone();
        w.create(
            "$RU",
            &format!("/v2/lbaas/l7policies/{pl}/rules"),
            "rule",
            json!({"rule": {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/a"}}),
        );
        std::sync::Mutex::new(w)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let w = world().lock().unwrap_or_else(|e| e.into_inner());
    let body = w.subst(&String::from_utf8_lossy(rest)).into_bytes();
    let (method, path) = match op % 17 {
        0 => (Method::POST, "/v2/lbaas/loadbalancers".to_string()),
        1 => (Method::PUT, "/v2/lbaas/loadbalancers/$LB".into()),
        2 => (Method::POST, "/v2/lbaas/listeners".into()),
        3 => (Method::PUT, "/v2/lbaas/listeners/$LI".into()),
        4 => (Method::POST, "/v2/lbaas/pools".into()),
        5 => (Method::PUT, "/v2/lbaas/pools/$PO".into()),
        6 => (Method::POST, "/v2/lbaas/pools/$PO/members".into()),
        7 => (Method::PUT, "/v2/lbaas/pools/$PO/members".into()),
        8 => (Method::PUT, "/v2/lbaas/pools/$PO/members/$ME".into()),
        9 => (Method::POST, "/v2/lbaas/healthmonitors".into()),
        10 => (Method::PUT, "/v2/lbaas/healthmonitors/$HM".into()),
        11 => (Method::POST, "/v2/lbaas/l7policies".into()),
        12 => (Method::PUT, "/v2/lbaas/l7policies/$PL".into()),
        13 => (Method::POST, "/v2/lbaas/l7policies/$PL/rules".into()),
        14 => (Method::PUT, "/v2/lbaas/l7policies/$PL/rules/$RU".into()),
        15 => (Method::PUT, format!("/v2/lbaas/quotas/{PROJECT}-other")),
        _ => {
            // The body as a list query: filters, sorting, pagination, fields.
            let q: String = String::from_utf8_lossy(&body)
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .collect();
            let path = format!("/v2/lbaas/loadbalancers?{q}");
            if path.parse::<axum::http::Uri>().is_err() {
                return;
            }
            (Method::GET, path)
        }
    };
    let path = w.subst(&path);
    let (status, answer) = w.send(method, &path, body);
    assert!(status < 500, "{status} for {path}: {answer}");
    w.settle();
});
