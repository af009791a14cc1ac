//! `/quotas`: list, per project (effective values), defaults, set (202) and reset (202).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rocta_model::Quota;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::common::read_json;
use crate::context::Context;
use crate::error::{ApiError, ApiResult};
use crate::query::{json_response, respond_all_linked};
use crate::validate::{envelope, opt, Get, F, T};
use crate::AppState;

const LIMIT: T = T::Int(-1, 2_000_000_000);
pub(crate) const PUT: &[F] = &[
    opt("loadbalancer", LIMIT),
    opt("load_balancer", LIMIT),
    opt("listener", LIMIT),
    opt("member", LIMIT),
    opt("pool", LIMIT),
    opt("healthmonitor", LIMIT),
    opt("health_monitor", LIMIT),
    opt("l7policy", LIMIT),
    opt("l7rule", LIMIT),
];

/// The quota document: effective values (override, else default), with Octavia's aliases.
#[derive(Serialize, JsonSchema)]
pub(crate) struct QuotaDoc {
    loadbalancer: i64,
    load_balancer: i64,
    listener: i64,
    member: i64,
    pool: i64,
    healthmonitor: i64,
    health_monitor: i64,
    l7policy: i64,
    l7rule: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
}

fn render(s: &AppState, q: &Quota, project: Option<&str>) -> QuotaDoc {
    let d = &s.cfg.quotas;
    let lb = q.loadbalancer.unwrap_or(d.default_load_balancer_quota);
    let hm = q.healthmonitor.unwrap_or(d.default_health_monitor_quota);
    QuotaDoc {
        loadbalancer: lb,
        load_balancer: lb,
        listener: q.listener.unwrap_or(d.default_listener_quota),
        member: q.member.unwrap_or(d.default_member_quota),
        pool: q.pool.unwrap_or(d.default_pool_quota),
        healthmonitor: hm,
        health_monitor: hm,
        l7policy: q.l7policy.unwrap_or(d.default_l7policy_quota),
        l7rule: q.l7rule.unwrap_or(d.default_l7rule_quota),
        project_id: project.map(str::to_string),
        tenant_id: project.map(str::to_string),
    }
}

/// The quotas the caller may read; `?project_id=` (or `tenant_id`) narrows to one project,
/// `fields=` selects attributes.
pub(crate) async fn list(
    State(s): State<AppState>,
    ctx: Context,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let all = s.store.read(|tx| tx.quota_list()).await?;
    let global = ctx.can_read_quota_global();
    if !global {
        ctx.require_reader()?;
    }
    let wanted: Vec<String> = form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "project_id" || k == "tenant_id")
        .map(|(_, v)| v.into_owned())
        .collect();
    let items: Vec<QuotaDoc> = all
        .iter()
        .filter(|(p, _)| global || ctx.can_read_quota(p))
        .filter(|(p, _)| wanted.is_empty() || wanted.iter().any(|w| w == p))
        .map(|(p, q)| render(&s, q, Some(p)))
        .collect();
    Ok(respond_all_linked(
        &items,
        "quotas",
        "quotas_links",
        raw.as_deref(),
    ))
}

pub(crate) async fn show(
    State(s): State<AppState>,
    ctx: Context,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    if !ctx.can_read_quota(&project) {
        return Err(ApiError::forbidden());
    }
    let q = s
        .store
        .read(|tx| tx.quota_get(&project))
        .await?
        .unwrap_or_default();
    Ok(json_response(
        &json!({ "quota": render(&s, &q, Some(&project)) }),
    ))
}

/// `GET /quotas/defaults` (the api-ref route).
pub(crate) async fn defaults(State(s): State<AppState>, ctx: Context) -> ApiResult<Response> {
    ctx.require_reader()?;
    Ok(json_response(
        &json!({ "quota": render(&s, &Quota::default(), None) }),
    ))
}

/// `GET /quotas/{project}/default`.
pub(crate) async fn defaults_for(
    State(s): State<AppState>,
    ctx: Context,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    if !ctx.can_read_quota(&project) {
        return Err(ApiError::forbidden());
    }
    Ok(json_response(
        &json!({ "quota": render(&s, &Quota::default(), None) }),
    ))
}

fn merge(q: &mut Quota, b: &Map<String, Value>) {
    let pick = |a: &str, alias: Option<&str>| -> Option<Option<i64>> {
        for k in std::iter::once(a).chain(alias) {
            if b.has(k) {
                return Some(b.i(k));
            }
        }
        None
    };
    if let Some(v) = pick("loadbalancer", Some("load_balancer")) {
        q.loadbalancer = v;
    }
    if let Some(v) = pick("listener", None) {
        q.listener = v;
    }
    if let Some(v) = pick("member", None) {
        q.member = v;
    }
    if let Some(v) = pick("pool", None) {
        q.pool = v;
    }
    if let Some(v) = pick("healthmonitor", Some("health_monitor")) {
        q.healthmonitor = v;
    }
    if let Some(v) = pick("l7policy", None) {
        q.l7policy = v;
    }
    if let Some(v) = pick("l7rule", None) {
        q.l7rule = v;
    }
}

pub(crate) async fn update(
    State(s): State<AppState>,
    ctx: Context,
    Path(project): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    if !ctx.can_write_quota() {
        return Err(ApiError::forbidden());
    }
    let v = read_json(&s, body).await?;
    let b = envelope(&v, "quotas", "quota", PUT, false)?;
    let q = s
        .store
        .write(|tx| -> ApiResult<_> {
            let mut q = tx.quota_get(&project)?.unwrap_or_default();
            merge(&mut q, &b);
            tx.quota_set(&project, &q)?;
            Ok::<_, ApiError>(q)
        })
        .await?;
    let mut r = json_response(&json!({ "quota": render(&s, &q, Some(&project)) }));
    *r.status_mut() = StatusCode::ACCEPTED;
    Ok(r)
}

pub(crate) async fn reset(
    State(s): State<AppState>,
    ctx: Context,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    if !ctx.can_write_quota() {
        return Err(ApiError::forbidden());
    }
    s.store.write(|tx| tx.quota_delete(&project)).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
