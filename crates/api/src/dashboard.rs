//! The web dashboard at `/dashboard/`: static assets compiled into the binary
//! (`crates/api/dashboard/`: plain HTML, CSS and an ES module, no build step), which draw from
//! the Octavia API itself (load balancers, status trees, listener `/stats`) with the caller's
//! credentials, plus two admin-only views the Octavia API has no resource for:
//! `/dashboard/api/amphorae` (amphorae with the age of their last heartbeat) and
//! `/dashboard/api/jobs` (unfinished jobs with their journaled steps, and the history of ended
//! ones, failovers among them). The assets need no credentials (under Keystone the page asks
//! for a token once); the views are behind the same authentication and policy as the API.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use rocta_model::{time, Amphora};
use rocta_store::{Filter, JobView};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::context::Context;
use crate::error::ApiResult;
use crate::wire::AmphoraWire;
use crate::AppState;

const INDEX: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");

/// Whether `path` is one of the dashboard's static assets (served without credentials, and
/// whatever the browser's `Accept` header says).
pub fn is_asset(path: &str) -> bool {
    matches!(
        path,
        "/dashboard" | "/dashboard/" | "/dashboard/app.js" | "/dashboard/app.css"
    )
}

/// The dashboard's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/dashboard",
            get(|| async { Redirect::permanent("/dashboard/") }),
        )
        .route("/dashboard/", get(index))
        .route(
            "/dashboard/app.js",
            get(|| async { asset(APP_JS, "text/javascript") }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { asset(APP_CSS, "text/css") }),
        )
        .route("/dashboard/api/whoami", get(whoami))
        .route("/dashboard/api/amphorae", get(amphorae))
        .route("/dashboard/api/jobs", get(jobs))
        .with_state(state)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The page, told how the API authenticates (`noauth` or `keystone`).
async fn index(State(s): State<AppState>) -> Response {
    let auth = if s.keystone.is_some() {
        "keystone"
    } else {
        "noauth"
    };
    let mut r = asset(INDEX, "text/html; charset=utf-8");
    *r.body_mut() = INDEX.replace("{{auth}}", auth).into();
    r
}

/// Who the page is talking as: its project and whether the admin views are open to it.
async fn whoami(ctx: Context) -> Response {
    axum::Json(json!({
        "project_id": ctx.project_id,
        "is_admin": ctx.is_admin(),
    }))
    .into_response()
}

/// Live amphorae (Octavia's amphora fields) with the seconds since their last counted
/// heartbeat (`null`: none yet), and the health manager's timeout to judge them by.
async fn amphorae(State(s): State<AppState>, ctx: Context) -> ApiResult<Response> {
    ctx.require_admin()?;
    let (amps, seen) = s
        .store
        .read(|tx| {
            let amps = tx.list::<Amphora>(&Filter {
                live_only: true,
                ..Default::default()
            })?;
            Ok::<_, rocta_store::StoreError>((amps, tx.health_last_seen()?))
        })
        .await?;
    let seen: std::collections::HashMap<_, _> = seen.into_iter().collect();
    let now = time::now_ms();
    let list: Vec<Value> = amps
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(AmphoraWire(a)).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                let age = seen.get(&a.id).map(|t| (now - t).max(0) as f64 / 1000.0);
                o.insert("last_heartbeat_age".into(), json!(age));
            }
            v
        })
        .collect();
    Ok(axum::Json(json!({
        "amphorae": list,
        "heartbeat_timeout": s.cfg.health_manager.heartbeat_timeout,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct JobsQuery {
    limit: Option<i64>,
}

/// Unfinished jobs (oldest first) with their steps so far; ended ones (newest first); the
/// failovers among the ended ones.
async fn jobs(
    State(s): State<AppState>,
    ctx: Context,
    q: Result<Query<JobsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    let limit = match q {
        Ok(Query(q)) => q.limit.unwrap_or(50).clamp(1, 500),
        Err(_) => {
            return Err(crate::error::ApiError::new(
                StatusCode::BAD_REQUEST,
                "limit must be an integer",
            ))
        }
    };
    let (open, ended, failovers) = s
        .store
        .read(|tx| {
            Ok::<_, rocta_store::StoreError>((
                tx.jobs_open(limit)?,
                tx.job_history(&[], limit)?,
                tx.job_history(&["failover_amphora", "failover_loadbalancer"], limit)?,
            ))
        })
        .await?;
    let wire = |v: Vec<JobView>| -> Vec<Value> { v.iter().map(job).collect() };
    Ok(axum::Json(json!({
        "open": wire(open),
        "ended": wire(ended),
        "failovers": wire(failovers),
    }))
    .into_response())
}

fn job(j: &JobView) -> Value {
    let ts = |t: &Option<rocta_model::time::Timestamp>| {
        t.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    };
    json!({
        "id": j.id,
        "kind": j.name,
        "loadbalancer_id": (!j.lb_id.is_nil()).then_some(j.lb_id),
        "job": j.job,
        "state": j.state,
        "steps": j.steps,
        "failed_step": j.failed_step,
        "error": j.error,
        "attempts": j.attempts,
        "created_at": ts(&j.created_at),
        "updated_at": ts(&j.updated_at),
    })
}
