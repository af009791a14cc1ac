//! `/l7policies`: CRUD with Octavia's action/redirect rules and contiguous positions.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rocta_model::*;
use rocta_store::{Entity, Filter, Tx};
use serde_json::{Map, Value};

use super::loadbalancers::created;
use crate::common::*;
use crate::context::Context;
use crate::en;
use crate::error::{ApiError, ApiResult};
use crate::query::{respond, respond_one, ListQuery};
use crate::validate::{envelope, opt, path_id, req, Get, F, T};
use crate::wire::{refs, L7PolicyWire};
use crate::AppState;

const CODES: &[i64] = &[301, 302, 303, 307, 308];

macro_rules! policy_fields {
    ($($extra:expr),*) => {
        &[
            $($extra,)*
            opt("name", T::Str(255)),
            opt("description", T::Str(255)),
            opt("admin_state_up", T::Bool),
            opt("redirect_pool_id", T::Uuid),
            opt("redirect_url", T::Str(255)),
            opt("redirect_prefix", T::Str(255)),
            opt("redirect_http_code", T::Int(301, 308)),
            opt("position", T::Int(1, i32::MAX as i64)),
            opt("tags", T::StrList(255)),
        ]
    };
}

pub(crate) const POST: &[F] = policy_fields!(
    req("listener_id", T::Uuid),
    req("action", en!(L7PolicyAction)),
    opt("project_id", T::Str(36)),
    opt("tenant_id", T::Str(36)),
    opt("rules", T::Any),
    opt("redirect_pool", T::Any)
);
pub(crate) const PUT: &[F] = policy_fields!(opt("action", en!(L7PolicyAction)));

fn rule_links(tx: &Tx<'_>, f: &Filter<'_>) -> ApiResult<std::collections::HashMap<Id, Vec<Id>>> {
    let mut m: std::collections::HashMap<Id, Vec<Id>> = std::collections::HashMap::new();
    for (p, r) in tx.links(L7Rule::TABLE, f)? {
        m.entry(p).or_default().push(r);
    }
    Ok(m)
}

fn wire(p: &L7Policy, rules: Vec<Id>) -> L7PolicyWire<'_> {
    L7PolicyWire {
        policy: p,
        rules: refs(rules),
        tenant_id: &p.project_id,
    }
}

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
    let (ps, rl) = s
        .store
        .read(|tx| Ok::<_, ApiError>((tx.list::<L7Policy>(&f)?, rule_links(tx, &f)?)))
        .await?;
    let w: Vec<_> = ps
        .iter()
        .map(|p| wire(p, rl.get(&p.id).cloned().unwrap_or_default()))
        .collect();
    respond(
        w,
        &q,
        "l7policies",
        "l7policies_links",
        &base_url(&s, &headers),
        "/v2/lbaas/l7policies",
    )
}

fn one(tx: &Tx<'_>, ctx: &Context, id: Id) -> ApiResult<(L7Policy, Vec<Id>)> {
    let p: L7Policy = visible(tx, ctx, id, "L7 Policy")?;
    let r = tx.links(
        L7Rule::TABLE,
        &Filter {
            parent_id: Some(id),
            ..Default::default()
        },
    )?;
    Ok((p, r.into_iter().map(|(_, c)| c).collect()))
}

pub(crate) async fn show(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = path_id(&id, "L7 Policy")?;
    let (p, r) = s.store.read(|tx| one(tx, &ctx, id)).await?;
    Ok(respond_one(&wire(&p, r), "l7policy", raw.as_deref()))
}

fn valid_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !u.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

/// Applies the body to the policy with Octavia's precedence: a redirect target implies its
/// action and clears the other targets.
fn apply(p: &mut L7Policy, b: &Map<String, Value>) -> ApiResult<()> {
    if b.has("name") {
        p.name = b.s("name").unwrap_or_default();
    }
    if b.has("description") {
        p.description = b.s("description").unwrap_or_default();
    }
    if b.has("admin_state_up") {
        p.admin_state_up = b.b("admin_state_up").unwrap_or(true);
    }
    if b.has("tags") {
        p.tags = tags(b);
    }
    if let Some(a) = b.parse("action", L7PolicyAction::parse) {
        p.action = a;
    }
    if b.id("redirect_pool_id").is_some() {
        p.action = L7PolicyAction::RedirectToPool;
    } else if b.s("redirect_url").is_some() {
        p.action = L7PolicyAction::RedirectToUrl;
    } else if b.s("redirect_prefix").is_some() {
        p.action = L7PolicyAction::RedirectPrefix;
    }
    for (k, slot) in [
        ("redirect_url", &mut p.redirect_url),
        ("redirect_prefix", &mut p.redirect_prefix),
    ] {
        if b.has(k) {
            *slot = b.s(k);
        }
    }
    if b.has("redirect_pool_id") {
        p.redirect_pool_id = b.id("redirect_pool_id");
    }
    if b.has("redirect_http_code") {
        let code = b.i("redirect_http_code");
        if let Some(c) = code {
            if !CODES.contains(&c) {
                return Err(ApiError::invalid_field(
                    "redirect_http_code",
                    &c.to_string(),
                    "Value should be one of: 301, 302, 303, 307, 308",
                ));
            }
        }
        p.redirect_http_code = code.map(|c| c as u16);
    }
    let invalid = |m: &str| ApiError::bad_request(format!("Invalid L7 Policy arguments: {m}"));
    match p.action {
        L7PolicyAction::RedirectToPool => {
            if p.redirect_pool_id.is_none() {
                return Err(invalid(
                    "redirect_pool_id or redirect_pool must not be None",
                ));
            }
            p.redirect_url = None;
            p.redirect_prefix = None;
            p.redirect_http_code = None;
        }
        L7PolicyAction::RedirectToUrl => {
            let Some(u) = &p.redirect_url else {
                return Err(invalid("redirect_url must not be None"));
            };
            if !valid_url(u) {
                return Err(ApiError::validation(format!("{u} is not a valid URL")));
            }
            p.redirect_pool_id = None;
            p.redirect_prefix = None;
            p.redirect_http_code.get_or_insert(302);
        }
        L7PolicyAction::RedirectPrefix => {
            let Some(u) = &p.redirect_prefix else {
                return Err(invalid("redirect_prefix must not be None"));
            };
            if !valid_url(u) {
                return Err(ApiError::validation(format!("{u} is not a valid URL")));
            }
            p.redirect_pool_id = None;
            p.redirect_url = None;
            p.redirect_http_code.get_or_insert(302);
        }
        L7PolicyAction::Reject => {
            if b.s("redirect_url").is_some()
                || b.id("redirect_pool_id").is_some()
                || b.s("redirect_prefix").is_some()
            {
                return Err(invalid("REJECT policies take no redirect target"));
            }
            p.redirect_pool_id = None;
            p.redirect_url = None;
            p.redirect_prefix = None;
            p.redirect_http_code = None;
        }
    }
    Ok(())
}

fn check_pool(tx: &Tx<'_>, p: &L7Policy, listener: &Listener) -> ApiResult<()> {
    if let Some(pid) = p.redirect_pool_id {
        let pool = match tx.get::<Pool>(pid)? {
            Some(pool) if pool.lb_id == listener.lb_id => pool,
            _ => return Err(ApiError::not_found("Pool", pid)),
        };
        if !rules::listener_accepts_pool(listener.protocol, pool.protocol) {
            return Err(ApiError::validation(format!(
                "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
                pool.protocol, listener.protocol
            )));
        }
    }
    Ok(())
}

/// Places `p` at its position among the listener's policies and renumbers them from 1.
fn reposition(tx: &Tx<'_>, p: &mut L7Policy, requested: Option<i64>) -> ApiResult<()> {
    let mut others: Vec<L7Policy> = tx
        .list::<L7Policy>(&Filter {
            parent_id: Some(p.listener_id),
            ..Default::default()
        })?
        .into_iter()
        .filter(|o| o.id != p.id)
        .collect();
    others.sort_by_key(|o| o.position);
    let at = requested
        .map(|r| (r - 1).clamp(0, others.len() as i64) as usize)
        .unwrap_or(others.len());
    for (i, mut o) in others.into_iter().enumerate() {
        let want = if i < at { i as i64 + 1 } else { i as i64 + 2 };
        if o.position != want {
            o.position = want;
            tx.update(&o)?;
        }
    }
    p.position = at as i64 + 1;
    Ok(())
}

fn lock(tx: &Tx<'_>, ctx: &Context, l: &Listener) -> ApiResult<()> {
    lock_lb_for_child(tx, ctx, l.lb_id)?;
    mark_pending_update(tx, Listener::TABLE, &[l.id])
}

/// A new policy of listener `l` from a validated body, `PENDING_CREATE`, appended last.
pub(crate) fn new_policy(l: &Listener, b: &Map<String, Value>) -> ApiResult<L7Policy> {
    if !l.protocol.is_http() {
        return Err(ApiError::unsupported(format!(
            "L7 policies are only supported on HTTP and TERMINATED_HTTPS listeners, not {}.",
            l.protocol
        )));
    }
    let mut p = L7Policy {
        id: new_id(),
        lb_id: l.lb_id,
        name: String::new(),
        description: String::new(),
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        admin_state_up: true,
        project_id: l.project_id.clone(),
        action: L7PolicyAction::Reject,
        listener_id: l.id,
        redirect_pool_id: None,
        redirect_url: None,
        redirect_prefix: None,
        position: 1,
        created_at: now(),
        updated_at: None,
        tags: vec![],
        redirect_http_code: None,
    };
    apply(&mut p, b)?;
    Ok(p)
}

pub(crate) async fn create(
    State(s): State<AppState>,
    ctx: Context,
    body: Body,
) -> ApiResult<Response> {
    let v = read_json(&s, body).await?;
    let b = envelope(&v, "l7policy_", "l7policy", POST, true)?;
    reject_graph_only(&b, &["rules", "redirect_pool"])?;
    let listener_id = b.id("listener_id").ok_or_else(ApiError::internal)?;
    let p = s
        .store
        .write(|tx| -> ApiResult<_> {
            let l: Listener = visible(tx, &ctx, listener_id, "Listener")?;
            let mut p = new_policy(&l, &b)?;
            check_pool(tx, &p, &l)?;
            check_quota::<L7Policy>(tx, &s, &l.project_id, QuotaResource::L7Policy, 1)?;
            lock(tx, &ctx, &l)?;
            reposition(tx, &mut p, b.i("position"))?;
            tx.insert(&p)?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::L7Policy,
                    op: Op::Create,
                    id: p.id,
                    lb_id: l.lb_id,
                },
            )?;
            Ok(p)
        })
        .await?;
    s.wake.notify_one();
    Ok(created(respond_one(&wire(&p, vec![]), "l7policy", None)))
}

pub(crate) async fn update(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let id = path_id(&id, "L7 Policy")?;
    let v = read_json(&s, body).await?;
    let b = envelope(&v, "l7policy_", "l7policy", PUT, false)?;
    let (p, r) = s
        .store
        .write(|tx| -> ApiResult<_> {
            let (mut p, r) = one(tx, &ctx, id)?;
            let l: Listener = visible(tx, &ctx, p.listener_id, "Listener")?;
            apply(&mut p, &b)?;
            check_pool(tx, &p, &l)?;
            lock(tx, &ctx, &l)?;
            if b.has("position") {
                reposition(tx, &mut p, b.i("position"))?;
            }
            p.provisioning_status = ProvisioningStatus::PendingUpdate;
            p.updated_at = Some(now());
            tx.update(&p)?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::L7Policy,
                    op: Op::Update,
                    id,
                    lb_id: p.lb_id,
                },
            )?;
            Ok((p, r))
        })
        .await?;
    s.wake.notify_one();
    Ok(respond_one(&wire(&p, r), "l7policy", None))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "L7 Policy")?;
    s.store
        .write(|tx| -> ApiResult<_> {
            let p: L7Policy = visible(tx, &ctx, id, "L7 Policy")?;
            let l: Listener = visible(tx, &ctx, p.listener_id, "Listener")?;
            lock(tx, &ctx, &l)?;
            tx.set_status(
                L7Policy::TABLE,
                &[id],
                Some(ProvisioningStatus::PendingDelete),
                None,
            )?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::L7Policy,
                    op: Op::Delete,
                    id,
                    lb_id: p.lb_id,
                },
            )
        })
        .await?;
    s.wake.notify_one();
    Ok(StatusCode::NO_CONTENT.into_response())
}
