//! Octavia's amphora agent API v1.0 (reference/octavia.md §2), the parts a loopback amphora
//! needs: version, info, details, plug VIP / network, HAProxy configuration upload (validated
//! first), start/stop/reload, load balancer and listener status, per-load-balancer certificate
//! files, and the agent's own server certificate.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as S};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use md5::{Digest, Md5};
use rocta_service::atomic_write;
use serde_json::json;

use crate::haproxy::{HaproxyError, Supervisor};
use crate::tls::{certified_key, SwappableCert};
use crate::AgentConfig;

/// Shared by the handlers.
#[derive(Clone)]
pub struct State {
    cfg: Arc<AgentConfig>,
    pub sup: Supervisor,
    /// UDP and SCTP listeners (nftables) and their monitors.
    pub udp: crate::udp::Udp,
    certs: Arc<SwappableCert>,
    /// One configuration change at a time per agent (HAProxy reloads are not concurrent-safe).
    lock: Arc<tokio::sync::Mutex<()>>,
    /// The heartbeat sender's health managers and key (a configuration update changes them).
    target: Arc<tokio::sync::watch::Sender<crate::heartbeat::Target>>,
}

impl State {
    /// Where the logs are shipped (`[log_shipping]`).
    pub fn log_shipping(&self) -> &crate::shipping::Shipping {
        &self.cfg.log_shipping
    }

    pub fn new(
        cfg: AgentConfig,
        certs: Arc<SwappableCert>,
        target: tokio::sync::watch::Sender<crate::heartbeat::Target>,
    ) -> Self {
        let sup = Supervisor::new(
            &cfg.base_dir,
            &cfg.haproxy_bin,
            &cfg.amphora_id,
            crate::shipping::Shippers::new(&cfg.log_shipping),
        );
        State {
            udp: crate::udp::Udp::new(&cfg.base_dir),
            cfg: Arc::new(cfg),
            sup,
            certs,
            lock: Arc::new(tokio::sync::Mutex::new(())),
            target: Arc::new(target),
        }
    }
}

pub fn router(state: State) -> Router {
    Router::new()
        .route("/", get(|| async { Json(json!({"api_version": "1.0"})) }))
        .route(
            "/1.0/",
            get(|| async { Json(json!({"api_version": "1.0"})) }),
        )
        .route("/1.0/info", get(info))
        .route("/1.0/details", get(details))
        .route("/1.0/plug/vip/{vip}", post(plug_vip))
        .route("/1.0/plug/network", post(plug_network))
        .route("/1.0/loadbalancer/{amphora}/{lb}/haproxy", put(upload))
        .route(
            "/1.0/loadbalancer/{amphora}/{lb}/udp",
            put(udp_upload).delete(udp_delete),
        )
        .route("/1.0/loadbalancer/{lb}/haproxy", get(get_config))
        .route("/1.0/loadbalancer/{lb}/{action}", put(action))
        .route("/1.0/loadbalancer/{lb}", get(lb_status))
        .route(
            "/1.0/loadbalancer/{lb}/certificates/{file}",
            put(put_cert).get(get_cert).delete(delete_cert),
        )
        .route("/1.0/listeners", get(listeners))
        .route("/1.0/listeners/{lb}", axum::routing::delete(delete_lb))
        .route("/1.0/certificate", put(rotate))
        .route("/1.0/config", put(update_config))
        .route("/1.0/vrrp/upload", put(vrrp_upload))
        .route("/1.0/vrrp/{action}", put(vrrp_action))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "Not Found", "") })
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// The framework's own refusals (a path segment that is not UTF-8, a wrong method, a body
/// that cannot be read) are plain text: they get the agent's `{"message", "details"}` body
/// like every other error.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let allow = resp.headers().get("allow").cloned();
    let body = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut out = err(status, reason, String::from_utf8_lossy(&body).trim());
    if let Some(a) = allow {
        out.headers_mut().insert("allow", a);
    }
    out
}

/// `{"message", "details"}` with a status.
fn err(code: StatusCode, message: &str, details: &str) -> Response {
    (code, Json(json!({"message": message, "details": details}))).into_response()
}

fn ok(code: StatusCode, details: &str) -> Response {
    (code, Json(json!({"message": "OK", "details": details}))).into_response()
}

fn md5_hex(b: &[u8]) -> String {
    format!("{:x}", Md5::digest(b))
}

/// A refused request: status, message and details of the agent's error body.
struct Refusal(StatusCode, &'static str, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        err(self.0, self.1, &self.2)
    }
}

/// Ids in paths are UUIDs; anything else cannot name a load balancer (and never a path).
fn lb_id(raw: &str) -> Result<String, Refusal> {
    uuid::Uuid::try_parse(raw)
        .map(|u| u.to_string())
        .map_err(|_| {
            Refusal(
                StatusCode::NOT_FOUND,
                "Loadbalancer Not Found",
                format!("No loadbalancer with UUID: {raw}"),
            )
        })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A load balancer id that has a configuration on this amphora.
fn known_lb(s: &State, raw: &str) -> Result<String, Refusal> {
    let lb = lb_id(raw)?;
    if s.sup.cfg(&lb).exists() {
        Ok(lb)
    } else {
        Err(Refusal(
            StatusCode::NOT_FOUND,
            "Loadbalancer Not Found",
            format!("No loadbalancer with UUID: {lb}"),
        ))
    }
}

async fn info(S(s): S<State>) -> Response {
    Json(json!({
        "hostname": hostname(),
        "haproxy_version": s.sup.version(),
        "api_version": "1.0",
        "amphora_id": s.cfg.amphora_id,
        "base_path": s.cfg.base_dir.display().to_string(),
        "max_open_files": max_open_files(),
        // rocta's: the load balancers with UDP/SCTP listeners here (the controller removes
        // their forwarding when the last such listener goes).
        "udp_loadbalancers": s.udp.load_balancers(),
        // rocta's: the md5 of each running HAProxy's configuration, so the controller skips
        // an upload that would change nothing.
        "running_configs": s
            .sup
            .load_balancers()
            .into_iter()
            .filter_map(|lb| {
                let c = s.sup.running_config(&lb)?;
                Some((lb, serde_json::Value::String(md5_hex(&c))))
            })
            .collect::<serde_json::Map<String, serde_json::Value>>(),
    }))
    .into_response()
}

/// The hard limit of open files (HAProxy's `maxconn` must stay below what it allows).
fn max_open_files() -> i64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))
                .and_then(|x| x.split_whitespace().nth(4).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

async fn details(S(s): S<State>) -> Response {
    let lbs = s.sup.load_balancers();
    let running = lbs.iter().filter(|lb| s.sup.running(lb).is_some()).count();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |k: &str| -> u64 {
        mem.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let load: Vec<String> = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .map(str::to_string)
        .collect();
    Json(json!({
        "hostname": hostname(),
        "haproxy_version": s.sup.version(),
        "api_version": "1.0",
        "haproxy_count": running,
        "cpu_count": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "memory": {"total": kb("MemTotal:"), "free": kb("MemFree:"), "buffers": kb("Buffers:"), "cached": kb("Cached:")},
        "load": load,
        "listeners": lbs,
        "topology": if crate::vrrp::Keepalived::new(&s.cfg.base_dir).conf().exists() {
            "ACTIVE_STANDBY"
        } else {
            "SINGLE"
        },
    }))
    .into_response()
}

async fn vrrp_upload(S(s): S<State>, body: Bytes) -> Response {
    use crate::vrrp::VrrpError;
    let _g = s.lock.lock().await;
    match crate::vrrp::Keepalived::new(&s.cfg.base_dir)
        .upload(&body)
        .await
    {
        Ok(()) => {
            let mut r = (StatusCode::OK, Json(json!({"message": "OK"}))).into_response();
            if let Ok(v) = HeaderValue::from_str(&md5_hex(&body)) {
                r.headers_mut().insert("etag", v);
            }
            r
        }
        Err(VrrpError::Invalid(m)) => err(StatusCode::BAD_REQUEST, "Invalid request", &m),
        Err(VrrpError::Failed(m)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unable to update keepalived configuration",
            &m,
        ),
    }
}

async fn vrrp_action(S(s): S<State>, Path(action): Path<String>) -> Response {
    use crate::vrrp::VrrpError;
    let _g = s.lock.lock().await;
    match crate::vrrp::Keepalived::new(&s.cfg.base_dir)
        .act(&action)
        .await
    {
        Ok(d) => ok(StatusCode::ACCEPTED, &d),
        Err(VrrpError::Invalid(m)) => err(StatusCode::BAD_REQUEST, "Invalid request", &m),
        Err(VrrpError::Failed(m)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Failed to {action} keepalived"),
            &m,
        ),
    }
}

/// Plugs the VIP: the interface with the body's MAC address becomes `eth1` with the VIP (and
/// this amphora's own port address), the subnet's gateway as default route and the host
/// routes (`netif`). Without a MAC address (loopback, where every 127/8 address is already
/// local) the address is only validated.
async fn plug_vip(S(s): S<State>, Path(vip): Path<String>, body: Bytes) -> Response {
    use crate::netif::{PlugError, PlugVip};
    let req: PlugVip = if body.iter().all(u8::is_ascii_whitespace) {
        PlugVip::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return err(StatusCode::BAD_REQUEST, "Invalid request", &e.to_string()),
        }
    };
    let plugged = match req.config(&vip) {
        Ok(None) => Ok("lo".to_string()),
        Ok(Some(cfg)) => {
            let _g = s.lock.lock().await;
            let r = crate::netif::plug_vip(&cfg, "eth1").await;
            // SINGLE: this amphora holds the VIP now; say so (keepalived does for a pair).
            if let (Ok(dev), false, Ok(ip)) = (&r, cfg.vrrp, vip.parse()) {
                crate::garp::announce(dev.clone(), ip);
            }
            r
        }
        Err(e) => Err(e),
    };
    match plugged {
        Ok(dev) => ok(
            StatusCode::ACCEPTED,
            &format!("VIPs plugged on interface {dev}: {vip}"),
        ),
        Err(PlugError::Invalid(m)) => err(StatusCode::BAD_REQUEST, "Invalid VIP", &m),
        Err(PlugError::NoInterface) => err(
            StatusCode::NOT_FOUND,
            "No suitable network interface found",
            &vip,
        ),
        Err(PlugError::Exists(m)) => err(StatusCode::CONFLICT, "Interface already exists", &m),
        Err(PlugError::Failed(m)) => {
            err(StatusCode::INTERNAL_SERVER_ERROR, "Error plugging VIP", &m)
        }
    }
}

/// Plugs a member subnet: the interface with the body's MAC address gets its fixed IPs (no
/// default route: members are on the subnet or behind its host routes). Without a MAC
/// address (loopback) there is nothing to configure.
async fn plug_network(S(s): S<State>, body: Bytes) -> Response {
    use crate::netif::{PlugError, PlugNetwork};
    let req: PlugNetwork = if body.iter().all(u8::is_ascii_whitespace) {
        PlugNetwork::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return err(StatusCode::BAD_REQUEST, "Invalid request", &e.to_string()),
        }
    };
    let plugged = match req.config() {
        Ok(None) => Ok("lo".to_string()),
        Ok(Some(cfg)) => {
            let _g = s.lock.lock().await;
            crate::netif::plug_network(&cfg).await
        }
        Err(e) => Err(e),
    };
    match plugged {
        Ok(dev) => ok(StatusCode::ACCEPTED, &format!("Plugged on interface {dev}")),
        // Already plugged as asked: Octavia's "Updated existing interface".
        Err(PlugError::Exists(m)) => ok(
            StatusCode::ACCEPTED,
            &format!("Updated existing interface: {m}"),
        ),
        Err(PlugError::Invalid(m)) => err(StatusCode::BAD_REQUEST, "Invalid network", &m),
        Err(PlugError::NoInterface) => err(
            StatusCode::NOT_FOUND,
            "No suitable network interface found",
            "",
        ),
        Err(PlugError::Failed(m)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error plugging network",
            &m,
        ),
    }
}

async fn upload(S(s): S<State>, Path((_amp, lb)): Path<(String, String)>, body: Bytes) -> Response {
    let lb = match lb_id(&lb) {
        Ok(l) => l,
        Err(r) => return r.into_response(),
    };
    let _g = s.lock.lock().await;
    match s.sup.install(&lb, &body).await {
        Ok(()) => {
            let mut r = (StatusCode::ACCEPTED, Json(json!({"message": "OK"}))).into_response();
            if let Ok(v) = HeaderValue::from_str(&md5_hex(&body)) {
                r.headers_mut().insert("etag", v);
            }
            r
        }
        Err(HaproxyError::Invalid(out)) => err(StatusCode::BAD_REQUEST, "Invalid request", &out),
        Err(HaproxyError::Failed(out)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error installing the configuration",
            &out,
        ),
    }
}

/// UDP and SCTP listeners: what the controller's `rocta_haproxy::nft::UdpService` describes,
/// applied at once (there is no process to start).
async fn udp_upload(
    S(s): S<State>,
    Path((_amp, lb)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let lb = match lb_id(&lb) {
        Ok(l) => l,
        Err(r) => return r.into_response(),
    };
    let service: rocta_haproxy::nft::UdpService = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return err(StatusCode::BAD_REQUEST, "Invalid request", &e.to_string()),
    };
    let _g = s.lock.lock().await;
    udp_result(s.udp.apply(&lb, &service).await)
}

async fn udp_delete(S(s): S<State>, Path((_amp, lb)): Path<(String, String)>) -> Response {
    let lb = match lb_id(&lb) {
        Ok(l) => l,
        Err(r) => return r.into_response(),
    };
    let _g = s.lock.lock().await;
    udp_result(s.udp.remove(&lb).await)
}

fn udp_result(r: Result<(), crate::udp::UdpError>) -> Response {
    use crate::udp::UdpError;
    match r {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({"message": "OK"}))).into_response(),
        Err(UdpError::Invalid(out)) => err(StatusCode::BAD_REQUEST, "Invalid request", &out),
        Err(UdpError::Failed(out)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error applying the UDP configuration",
            &out,
        ),
    }
}

async fn get_config(S(s): S<State>, Path(lb): Path<String>) -> Response {
    let lb = match lb_id(&lb) {
        Ok(l) => l,
        Err(r) => return r.into_response(),
    };
    match std::fs::read(s.sup.cfg(&lb)) {
        Ok(b) => {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static("text/plain"));
            if let Ok(v) = HeaderValue::from_str(&md5_hex(&b)) {
                h.insert("etag", v);
            }
            (h, b).into_response()
        }
        Err(_) => err(
            StatusCode::NOT_FOUND,
            "Loadbalancer Not Found",
            &format!("No loadbalancer with UUID: {lb}"),
        ),
    }
}

async fn action(S(s): S<State>, Path((lb, action)): Path<(String, String)>) -> Response {
    let lb = match known_lb(&s, &lb) {
        Ok(l) => l,
        Err(r) => return r.into_response(),
    };
    let _g = s.lock.lock().await;
    let r = match action.as_str() {
        "start" => s.sup.start(&lb).await,
        "reload" => s.sup.reload(&lb).await,
        "stop" => s.sup.stop(&lb).await,
        other => {
            return err(
                StatusCode::BAD_REQUEST,
                "Invalid Request",
                &format!("Unknown action: {other}"),
            )
        }
    };
    match r {
        Ok(d) => ok(StatusCode::ACCEPTED, &d),
        Err(HaproxyError::Invalid(out)) => err(StatusCode::BAD_REQUEST, "Invalid request", &out),
        Err(HaproxyError::Failed(out)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Error performing action {action}"),
            &out,
        ),
    }
}

async fn lb_status(S(s): S<State>, Path(lb): Path<String>) -> Response {
    let lb = match known_lb(&s, &lb) {
        Ok(l) => l,
        Err(r) => return r.into_response(),
    };
    let status = if s.sup.running(&lb).is_some() {
        "ACTIVE"
    } else {
        "OFFLINE"
    };
    Json(json!({"uuid": lb, "status": status})).into_response()
}

/// Frontends of every configuration, as Octavia's `GET /listeners`.
async fn listeners(S(s): S<State>) -> Response {
    let mut out = Vec::new();
    for lb in s.sup.load_balancers() {
        let status = if s.sup.running(&lb).is_some() {
            "ACTIVE"
        } else {
            "STOPPED"
        };
        let text = std::fs::read_to_string(s.sup.cfg(&lb)).unwrap_or_default();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let t = line.trim();
            if let Some(id) = t.strip_prefix("frontend ") {
                current = Some(id.trim().to_string());
            } else if let (Some(id), Some(mode)) = (&current, t.strip_prefix("mode ")) {
                out.push(json!({"status": status, "uuid": id, "type": mode.trim().to_uppercase()}));
                current = None;
            } else if t.starts_with("backend ") {
                current = None;
            }
        }
    }
    Json(out).into_response()
}

async fn delete_lb(S(s): S<State>, Path(lb): Path<String>) -> Response {
    let lb = match lb_id(&lb) {
        Ok(l) => l,
        Err(_) => return ok(StatusCode::OK, "nothing to delete"),
    };
    let _g = s.lock.lock().await;
    if let Err(e) = s.udp.remove(&lb).await {
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error deleting the load balancer",
            &e.to_string(),
        );
    }
    match s.sup.delete(&lb).await {
        Ok(()) => (StatusCode::OK, Json(json!({"message": "OK"}))).into_response(),
        Err(e) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error deleting the load balancer",
            &e.to_string(),
        ),
    }
}

fn cert_path(s: &State, lb: &str, file: &str) -> Result<std::path::PathBuf, Refusal> {
    let lb = lb_id(lb)?;
    let ok_name = regex::Regex::new(r"^[\w.-]+\.(pem|crtlist)$")
        .map(|r| r.is_match(file))
        .unwrap_or(false);
    if !ok_name || file.starts_with('.') {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "Filename has wrong extension",
            file.to_string(),
        ));
    }
    Ok(s.sup.dir(&lb).join("certs").join(file))
}

async fn put_cert(
    S(s): S<State>,
    Path((lb, file)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let path = match cert_path(&s, &lb, &file) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let write = || -> std::io::Result<()> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        atomic_write(&path, &body, 0o600)
    };
    match write() {
        Ok(()) => {
            let mut r = (StatusCode::OK, Json(json!({"message": "OK"}))).into_response();
            if let Ok(v) = HeaderValue::from_str(&md5_hex(&body)) {
                r.headers_mut().insert("etag", v);
            }
            r
        }
        Err(e) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error writing the certificate",
            &e.to_string(),
        ),
    }
}

async fn get_cert(S(s): S<State>, Path((lb, file)): Path<(String, String)>) -> Response {
    let path = match cert_path(&s, &lb, &file) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    match std::fs::read(&path) {
        Ok(b) => Json(json!({"md5sum": md5_hex(&b)})).into_response(),
        Err(_) => err(StatusCode::NOT_FOUND, "Certificate Not Found", &file),
    }
}

async fn delete_cert(S(s): S<State>, Path((lb, file)): Path<(String, String)>) -> Response {
    let path = match cert_path(&s, &lb, &file) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let _ = std::fs::remove_file(path);
    (StatusCode::OK, Json(json!({"message": "OK"}))).into_response()
}

/// Replaces the agent's server certificate: new handshakes use it at once, open connections
/// are not touched.
async fn rotate(S(s): S<State>, body: Bytes) -> Response {
    let ck = match certified_key(&body) {
        Ok(ck) => ck,
        Err(e) => {
            return err(
                StatusCode::BAD_REQUEST,
                "Invalid certificate",
                &e.to_string(),
            )
        }
    };
    // Certificate and private key: private, as the first one written at boot.
    if let Err(e) = atomic_write(&s.cfg.server_cert, &body, 0o600) {
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unable to write the certificate",
            &e.to_string(),
        );
    }
    s.certs.swap(ck);
    ok(StatusCode::ACCEPTED, "certificate replaced")
}

/// Replaces the agent's configuration file (Octavia's `PUT /config`). The amphora's identity
/// and address cannot change under a running agent; the other settings take effect when the
/// agent next starts (heartbeat settings will apply live once heartbeats exist).
async fn update_config(S(s): S<State>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    let new = match AgentConfig::parse(&text) {
        Ok(c) => c,
        Err(e) => {
            return err(
                StatusCode::BAD_REQUEST,
                "Invalid amphora-agent configuration.",
                &e,
            )
        }
    };
    if new.amphora_id != s.cfg.amphora_id || new.bind != s.cfg.bind {
        return err(
            StatusCode::BAD_REQUEST,
            "Invalid amphora-agent configuration.",
            "amphora_id and bind cannot change",
        );
    }
    let Some(path) = &s.cfg.config_path else {
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unable to update amphora-agent configuration.",
            "the agent was not started from a file",
        );
    };
    // It holds the heartbeat key: private, as the one written at boot.
    match atomic_write(path, text.as_bytes(), 0o600) {
        Ok(()) => {
            // Octavia's mutable options take effect now: where heartbeats go and their key
            // (the rest, e.g. the interval, at the agent's next start).
            s.target.send_replace(crate::heartbeat::Target::of(&new));
            (StatusCode::ACCEPTED, Json(json!({"message": "OK"}))).into_response()
        }
        Err(e) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unable to update amphora-agent configuration.",
            &e.to_string(),
        ),
    }
}
