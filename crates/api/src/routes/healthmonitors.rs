//! `/healthmonitors`: CRUD with Octavia's type, pool and HTTP-option rules.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rocta_model::*;
use rocta_store::{Entity, Filter, Tx};
use serde_json::{Map, Value};

use super::loadbalancers::created;
use super::pools::lock_pool_listeners;
use crate::common::*;
use crate::context::Context;
use crate::en;
use crate::error::{ApiError, ApiResult};
use crate::query::{respond, respond_one, ListQuery};
use crate::validate::{envelope, opt, path_id, req, Get, F, T};
use crate::wire;
use crate::AppState;

const MAX_DELAY: i64 = i32::MAX as i64;

macro_rules! hm_fields {
    ($($extra:expr),*) => {
        &[
            $($extra,)*
            opt("name", T::Str(255)),
            opt("admin_state_up", T::Bool),
            opt("max_retries_down", T::Int(1, 10)),
            opt("http_method", en!(HttpMethod)),
            opt("url_path", T::Str(255)),
            opt("expected_codes", T::Str(64)),
            opt("http_version", T::Num(&[1.0, 1.1])),
            opt("domain_name", T::Str(255)),
            opt("tags", T::StrList(255)),
        ]
    };
}

pub(crate) const POST: &[F] = hm_fields!(
    req("pool_id", T::Uuid),
    req("type", en!(HealthMonitorType)),
    req("delay", T::Int(0, MAX_DELAY)),
    req("timeout", T::Int(0, MAX_DELAY)),
    req("max_retries", T::Int(1, 10)),
    opt("project_id", T::Str(36)),
    opt("tenant_id", T::Str(36))
);
pub(crate) const PUT: &[F] = hm_fields!(
    opt("delay", T::Int(0, MAX_DELAY)),
    opt("timeout", T::Int(0, MAX_DELAY)),
    opt("max_retries", T::Int(1, 10))
);

pub(crate) async fn list(
    State(s): State<AppState>,
    ctx: Context,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let scope = ctx.list_scope()?;
    let q = ListQuery::parse(raw.as_deref(), s.cfg.api_settings.pagination_max_limit)?;
    let f = Filter {
        project: scope.as_deref(),
        ..Default::default()
    };
    let hms = s.store.read(|tx| tx.list::<HealthMonitor>(&f)).await?;
    let w: Vec<_> = hms.iter().map(wire::hm).collect();
    respond(
        w,
        &q,
        "healthmonitors",
        "healthmonitors_links",
        &base_url(&s, &headers),
        "/v2/lbaas/healthmonitors",
    )
}

pub(crate) async fn show(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = path_id(&id, "Health Monitor")?;
    let h: HealthMonitor = s
        .store
        .read(|tx| visible(tx, &ctx, id, "Health Monitor"))
        .await?;
    Ok(respond_one(&wire::hm(&h), "healthmonitor", raw.as_deref()))
}

fn apply(h: &mut HealthMonitor, b: &Map<String, Value>) {
    if b.has("name") {
        h.name = b.s("name").unwrap_or_default();
    }
    if b.has("admin_state_up") {
        h.admin_state_up = b.b("admin_state_up").unwrap_or(true);
    }
    for (k, slot) in [
        ("delay", &mut h.delay),
        ("timeout", &mut h.timeout),
        ("max_retries", &mut h.max_retries),
    ] {
        if let Some(v) = b.i(k) {
            *slot = v;
        }
    }
    if b.has("max_retries_down") {
        h.max_retries_down = b.i("max_retries_down").unwrap_or(3);
    }
    let http = h.kind.is_http();
    if b.has("http_method") {
        h.http_method = b
            .parse("http_method", HttpMethod::parse)
            .or(http.then_some(HttpMethod::Get));
    }
    if b.has("url_path") {
        h.url_path = b.s("url_path").or_else(|| http.then(|| "/".into()));
    }
    if b.has("expected_codes") {
        h.expected_codes = b.s("expected_codes").or_else(|| http.then(|| "200".into()));
    }
    if b.has("http_version") {
        h.http_version = b.f("http_version");
    }
    if b.has("domain_name") {
        h.domain_name = b.s("domain_name");
    }
    if b.has("tags") {
        h.tags = tags(b);
    }
}

fn valid_codes(c: &str) -> bool {
    let three = |s: &str| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit());
    match c.split_once('-') {
        Some((a, b)) => three(a) && three(b) && a <= b,
        None => c.split(',').map(str::trim).all(three),
    }
}

fn check(h: &HealthMonitor, body: &Map<String, Value>, pool: &Pool) -> ApiResult<()> {
    if !rules::pool_accepts_monitor(pool.protocol, h.kind) {
        return Err(ApiError::validation(format!(
            "The {} type is not supported for {} protocol pools.",
            h.kind, pool.protocol
        )));
    }
    if !h.kind.is_http() {
        for k in ["http_method", "url_path", "expected_codes"] {
            if body.get(k).is_some_and(|v| !v.is_null()) {
                return Err(ApiError::validation(format!(
                    "{k} is not a valid option for health monitors of type {}",
                    h.kind
                )));
            }
        }
    }
    if h.kind == HealthMonitorType::UdpConnect && h.delay < 3 {
        return Err(ApiError::validation(
            "The request delay value 3 should be larger than the UDP-CONNECT minimum interval (3 seconds).",
        ));
    }
    if let Some(p) = &h.url_path {
        if !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ApiError::invalid_field(
                "url_path",
                p,
                "Value should be a valid URL path.",
            ));
        }
    }
    if let Some(c) = &h.expected_codes {
        if !valid_codes(c) {
            return Err(ApiError::invalid_field(
                "expected_codes",
                c,
                "Value should match the pattern ^(\\d{3}(\\s*,\\s*\\d{3})*)$|^(\\d{3}-\\d{3})$",
            ));
        }
    }
    if h.domain_name.is_some() && h.http_version != Some(1.1) {
        return Err(ApiError::validation(
            "http_version 1.1 is required when domain_name is set.",
        ));
    }
    if let Some(d) = &h.domain_name {
        let ok = !d.is_empty()
            && d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !ok {
            return Err(ApiError::invalid_field(
                "domain_name",
                d,
                "Value should be a valid domain name.",
            ));
        }
    }
    Ok(())
}

fn lock(tx: &Tx<'_>, ctx: &Context, pool: &Pool) -> ApiResult<()> {
    lock_lb_for_child(tx, ctx, pool.lb_id)?;
    lock_pool_listeners(tx, pool)?;
    mark_pending_update(tx, Pool::TABLE, &[pool.id])
}

/// A new monitor of `pool` from a validated body, `PENDING_CREATE`.
pub(crate) fn new_hm(pool: &Pool, b: &Map<String, Value>) -> ApiResult<HealthMonitor> {
    let kind = b
        .parse("type", HealthMonitorType::parse)
        .ok_or_else(|| ApiError::invalid_field("type", "Unset", "Mandatory field missing."))?;
    let http = kind.is_http();
    let mut h = HealthMonitor {
        id: new_id(),
        pool_id: pool.id,
        lb_id: pool.lb_id,
        name: String::new(),
        kind,
        delay: 0,
        timeout: 0,
        max_retries: 0,
        max_retries_down: 3,
        http_method: http.then_some(HttpMethod::Get),
        url_path: http.then(|| "/".into()),
        expected_codes: http.then(|| "200".into()),
        admin_state_up: true,
        project_id: pool.project_id.clone(),
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        created_at: now(),
        updated_at: None,
        tags: vec![],
        http_version: None,
        domain_name: None,
    };
    apply(&mut h, b);
    check(&h, b, pool)?;
    Ok(h)
}

pub(crate) async fn create(
    State(s): State<AppState>,
    ctx: Context,
    body: Body,
) -> ApiResult<Response> {
    let v = read_json(&s, body).await?;
    let b = envelope(&v, "health_monitor_", "healthmonitor", POST, true)?;
    let pool_id = b.id("pool_id").ok_or_else(ApiError::internal)?;
    let h = s
        .store
        .write(|tx| -> ApiResult<_> {
            let pool: Pool = visible(tx, &ctx, pool_id, "Pool")?;
            let h = new_hm(&pool, &b)?;
            check_quota::<HealthMonitor>(
                tx,
                &s,
                &pool.project_id,
                QuotaResource::HealthMonitor,
                1,
            )?;
            lock(tx, &ctx, &pool)?;
            if !tx
                .links(
                    HealthMonitor::TABLE,
                    &Filter {
                        parent_id: Some(pool_id),
                        ..Default::default()
                    },
                )?
                .is_empty()
            {
                return Err(ApiError::conflict("This pool already has a health monitor"));
            }
            tx.insert(&h)?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::HealthMonitor,
                    op: Op::Create,
                    id: h.id,
                    lb_id: pool.lb_id,
                },
            )?;
            Ok(h)
        })
        .await?;
    s.wake.notify_one();
    Ok(created(respond_one(&wire::hm(&h), "healthmonitor", None)))
}

pub(crate) async fn update(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let id = path_id(&id, "Health Monitor")?;
    let v = read_json(&s, body).await?;
    let b = envelope(&v, "health_monitor_", "healthmonitor", PUT, false)?;
    let h = s
        .store
        .write(|tx| -> ApiResult<_> {
            let mut h: HealthMonitor = visible(tx, &ctx, id, "Health Monitor")?;
            let pool: Pool = visible(tx, &ctx, h.pool_id, "Pool")?;
            lock(tx, &ctx, &pool)?;
            apply(&mut h, &b);
            check(&h, &b, &pool)?;
            h.provisioning_status = ProvisioningStatus::PendingUpdate;
            h.updated_at = Some(now());
            tx.update(&h)?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::HealthMonitor,
                    op: Op::Update,
                    id,
                    lb_id: h.lb_id,
                },
            )?;
            Ok(h)
        })
        .await?;
    s.wake.notify_one();
    Ok(respond_one(&wire::hm(&h), "healthmonitor", None))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "Health Monitor")?;
    s.store
        .write(|tx| -> ApiResult<_> {
            let h: HealthMonitor = visible(tx, &ctx, id, "Health Monitor")?;
            let pool: Pool = visible(tx, &ctx, h.pool_id, "Pool")?;
            lock(tx, &ctx, &pool)?;
            tx.set_status(
                HealthMonitor::TABLE,
                &[id],
                Some(ProvisioningStatus::PendingDelete),
                None,
            )?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::HealthMonitor,
                    op: Op::Delete,
                    id,
                    lb_id: h.lb_id,
                },
            )
        })
        .await?;
    s.wake.notify_one();
    Ok(StatusCode::NO_CONTENT.into_response())
}
