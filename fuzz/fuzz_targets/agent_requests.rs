//! Any request to the amphora agent's API v1.0 in process (after mutual TLS, which rustls
//! owns): path segments and bodies of the routes that parse input without starting HAProxy
//! (plug VIP and network, certificate files, the server certificate, the agent config, status
//! reads). The answer is JSON, never a panic, and nothing is written outside the agent's
//! directory.
//!
//! Input: the first byte picks the route; then two path segments, each ended by a newline
//! (percent-encoded into the path, so `../`, NULs and the like reach the handlers); the rest is
//! the body.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const AMP: &str = "5c0f8a8e-0d3c-4c61-9c57-0a2b7c1b1a01";

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    /// A directory beside the agent's: nothing may ever appear in it.
    outside: PathBuf,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let agent = dir.path().join("agent");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&agent).expect("agent dir");
        std::fs::create_dir_all(&outside).expect("outside dir");
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = rcgen::CertificateParams::new(vec![AMP.to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("a certificate");
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        std::fs::write(agent.join("server.pem"), &pem).expect("server.pem");
        std::fs::write(agent.join("client_ca.pem"), cert.pem()).expect("client_ca.pem");
        let cfg = rocta_agent::AgentConfig {
            bind: "127.0.0.1:0".into(),
            amphora_id: AMP.into(),
            base_dir: agent.join("lb"),
            server_cert: agent.join("server.pem"),
            client_ca: agent.join("client_ca.pem"),
            haproxy_bin: "/nonexistent/haproxy".into(),
            config_path: Some(agent.join("agent.toml")),
            controller_ip_port_list: vec![],
            heartbeat_interval: 10.0,
            heartbeat_key: String::new(),
            log_shipping: Default::default(),
        };
        std::fs::create_dir_all(&cfg.base_dir).expect("base dir");
        let certs = Arc::new(
            rocta_agent::tls::SwappableCert::load(&cfg.server_cert).expect("the certificate"),
        );
        let (target, _) = tokio::sync::watch::channel(rocta_agent::heartbeat::Target::of(&cfg));
        let app = rocta_agent::api::router(rocta_agent::api::State::new(cfg, certs, target));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        World {
            rt,
            app,
            outside,
            _dir: dir,
        }
    })
}

/// Percent-encodes every byte but ASCII letters and digits.
fn segment(raw: &[u8]) -> String {
    raw.iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (*b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let a = segment(parts.next().unwrap_or_default());
    let b = segment(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default().to_vec();
    let (method, path) = match op % 10 {
        0 => (Method::POST, format!("/1.0/plug/vip/{a}")),
        1 => (Method::POST, "/1.0/plug/network".to_string()),
        2 => (
            Method::PUT,
            format!("/1.0/loadbalancer/{a}/certificates/{b}"),
        ),
        3 => (
            Method::GET,
            format!("/1.0/loadbalancer/{a}/certificates/{b}"),
        ),
        4 => (
            Method::DELETE,
            format!("/1.0/loadbalancer/{a}/certificates/{b}"),
        ),
        5 => (Method::PUT, "/1.0/certificate".into()),
        6 => (Method::PUT, "/1.0/config".into()),
        7 => (Method::GET, format!("/1.0/loadbalancer/{a}")),
        8 => (Method::GET, format!("/1.0/loadbalancer/{a}/haproxy")),
        _ => (Method::DELETE, format!("/1.0/listeners/{a}")),
    };
    let w = world();
    let Ok(req) = Request::builder()
        .method(method)
        .uri(&path)
        .body(Body::from(body))
    else {
        return;
    };
    let answer = w.rt.block_on(async {
        let resp = w.app.clone().oneshot(req).await.expect("infallible");
        axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .expect("a body")
    });
    assert!(
        answer.is_empty() || serde_json::from_slice::<serde_json::Value>(&answer).is_ok(),
        "not JSON for {path}: {answer:?}"
    );
    assert!(
        std::fs::read_dir(&w.outside)
            .expect("outside")
            .next()
            .is_none(),
        "{path} wrote outside the agent's directory"
    );
});
