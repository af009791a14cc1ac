//! The Octavia v2 REST API. It validates and authorizes requests, enforces quotas and the
//! immutability rule, and writes the desired state with `PENDING_*` statuses together with the
//! job for the worker in one transaction. It never calls a driver, except the network driver's
//! VIP allocation on load-balancer create, which Octavia's API also does synchronously so that
//! the 201 already carries the VIP.
//!
//! Layout: `routes/<resource>.rs` (handlers), `validate` (field tables and WSME messages),
//! `query` (filters, sorting, pagination), `wire` (response shapes), `context` (noauth context
//! and policy), `error` (the fault body), `common` (locking, quotas, jobs shared by resources),
//! `routes` (the operation table the router and `openapi` are both built from).

pub mod common;
pub mod context;
pub mod dashboard;
pub mod error;
pub mod keystone;
mod metrics;
pub mod openapi;
pub mod policy;
pub mod query;
pub mod routes;
pub mod validate;
pub mod wire;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use rocta_config::Config;
use rocta_drivers::Network;
use rocta_store::Store;
use tokio::sync::Notify;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub cfg: Arc<Config>,
    /// VIP allocation on load-balancer create; the networks availability zones name.
    pub network: Arc<dyn Network>,
    /// Where amphorae can go: availability zone profiles are checked against it.
    pub compute: Arc<dyn rocta_drivers::Compute>,
    /// The certificate manager that TLS container references name certificates in.
    pub tls: Arc<dyn rocta_drivers::TlsStore>,
    /// Said after each committed job: wakes the workers.
    pub wake: JobSignal,
    /// Keystone token validation (`auth_strategy = "keystone"`); `None` under noauth.
    pub keystone: Option<Arc<keystone::Keystone>>,
    /// Octavia's policy with the operator's overrides (`[oslo_policy]`).
    pub policy: Arc<policy::Policy>,
}

/// What the API does after committing a job: wake an in-process worker, and announce the job to
/// workers in other processes when a bus carries announcements (RabbitMQ; on PostgreSQL the
/// commit itself notifies them).
#[derive(Clone, Default)]
pub struct JobSignal {
    local: Arc<Notify>,
    remote: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl JobSignal {
    pub fn new(local: Arc<Notify>, remote: Option<Arc<dyn Fn() + Send + Sync>>) -> Self {
        JobSignal { local, remote }
    }

    /// A job was committed.
    pub fn notify_one(&self) {
        self.local.notify_one();
        if let Some(r) = &self.remote {
            r();
        }
    }
}

/// The API's router over `state`.
pub fn router(state: AppState) -> Router {
    let mut r = routes::router(state.clone()).merge(dashboard::router(state.clone()));
    // Prometheus' scrape, beside the API unless `[metrics] bind` names an address of its own.
    if state.cfg.metrics.enabled && state.cfg.metrics.bind.is_empty() {
        r = r.route(
            "/metrics",
            axum::routing::get(rocta_service::metrics::handler),
        );
    }
    let mut r = r.fallback(|| async { error::routing_error(StatusCode::NOT_FOUND) });
    if let Some(k) = state.keystone.clone() {
        r = r.layer(axum::middleware::from_fn_with_state(
            k,
            keystone::authenticate,
        ));
    }
    r.layer(axum::middleware::from_fn_with_state(state, request_id))
        .layer(axum::middleware::from_fn(metrics::track))
}

/// Adds `x-openstack-request-id` to every response, refuses non-JSON `Accept` headers (406, as
/// Octavia), and turns the framework's own plain-text errors into Octavia's bodies.
async fn request_id(State(_): State<AppState>, req: Request, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    let accepts_json = req
        .headers()
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect::<Vec<_>>();
    // `/metrics` answers Prometheus' text format, the dashboard's assets what a browser
    // asks for, whatever the Accept header says.
    let mut resp = if !accepts_json.is_empty()
        && req.uri().path() != "/metrics"
        && !dashboard::is_asset(req.uri().path())
        && !accepts_json
            .iter()
            .any(|m| m == "application/json" || m == "*/*" || m == "application/*" || m.is_empty())
    {
        let body = serde_json::json!({"errors": [{
            "status": 406,
            "title": "Not Acceptable",
            "detail": "Only application/json is offered.",
            "request_id": id,
        }]});
        (StatusCode::NOT_ACCEPTABLE, axum::Json(body)).into_response()
    } else {
        next.run(req).await
    };
    let is_json = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let allow = resp.headers().get("allow").cloned();
        resp = match status {
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => error::routing_error(status),
            _ => {
                let body = axum::body::to_bytes(std::mem::take(resp.body_mut()), 4096)
                    .await
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&body).trim().to_string();
                let msg = if status.is_server_error() || text.is_empty() {
                    status.canonical_reason().unwrap_or("Error").to_string()
                } else {
                    text
                };
                error::ApiError::new(status, msg).into_response()
            }
        };
        if let Some(a) = allow {
            resp.headers_mut().insert("allow", a);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-openstack-request-id", v);
    }
    resp
}
