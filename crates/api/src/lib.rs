//! The Octavia v2 REST API. It validates and authorizes requests, enforces quotas and the
//! immutability rule, and writes the desired state with `PENDING_*` statuses together with the
//! job for the worker in one transaction. It never calls a driver, except the network driver's
//! VIP allocation on load-balancer create, which Octavia's API also does synchronously so that
//! the 201 already carries the VIP.
//!
//! Layout: `routes/<resource>.rs` (handlers), `validate` (field tables and WSME messages),
//! `query` (filters, sorting, pagination), `wire` (response shapes), `context` (noauth context
//! and policy), `error` (the fault body), `common` (locking, quotas, jobs shared by resources).

pub mod common;
pub mod context;
pub mod error;
pub mod query;
pub mod routes;
pub mod validate;
pub mod wire;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
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
    /// VIP allocation on load-balancer create.
    pub network: Arc<dyn Network>,
    /// Wakes an in-process worker when a job is posted (other processes poll).
    pub wake: Arc<Notify>,
}

/// The API's router over `state`.
pub fn router(state: AppState) -> Router {
    routes::router(state.clone())
        .fallback(|| async { error::routing_error(StatusCode::NOT_FOUND) })
        .layer(axum::middleware::from_fn_with_state(state, request_id))
}

/// Adds `x-openstack-request-id` to every response and a span to every request.
async fn request_id(State(_): State<AppState>, req: Request, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    let span = tracing::debug_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let _g = span.enter();
    drop(_g);
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && resp.headers().get("content-type").is_none()
    {
        let allow = resp.headers().get("allow").cloned();
        resp = error::routing_error(StatusCode::METHOD_NOT_ALLOWED);
        if let Some(a) = allow {
            resp.headers_mut().insert("allow", a);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-openstack-request-id", v);
    }
    resp
}
