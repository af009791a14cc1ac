//! `/l7policies/{policy_id}/rules`: CRUD with Octavia's per-type rule constraints.

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
use crate::wire;
use crate::AppState;

/// Octavia's `MAX_L7RULES_PER_L7POLICY`.
const MAX_RULES: usize = 50;

macro_rules! rule_fields {
    ($($extra:expr),*) => {
        &[
            $($extra,)*
            opt("key", T::Str(255)),
            opt("invert", T::Bool),
            opt("admin_state_up", T::Bool),
            opt("tags", T::StrList(255)),
        ]
    };
}

pub(crate) const POST: &[F] = rule_fields!(
    req("type", en!(L7RuleType)),
    req("compare_type", en!(L7CompareType)),
    req("value", T::Str(255)),
    opt("project_id", T::Str(36)),
    opt("tenant_id", T::Str(36))
);
pub(crate) const PUT: &[F] = rule_fields!(
    opt("type", en!(L7RuleType)),
    opt("compare_type", en!(L7CompareType)),
    opt("value", T::Str(255))
);

fn policy_of(tx: &Tx<'_>, ctx: &Context, raw: &str) -> ApiResult<L7Policy> {
    let id = path_id(raw, "L7 Policy")?;
    visible(tx, ctx, id, "L7 Policy")
}

fn rule_in(tx: &Tx<'_>, ctx: &Context, p: &L7Policy, raw: &str) -> ApiResult<L7Rule> {
    let id = path_id(raw, "L7 Rule")?;
    match tx.get::<L7Rule>(id)? {
        Some(r) if r.l7policy_id == p.id => {
            ctx.check_read(&r.project_id)?;
            Ok(r)
        }
        _ => Err(ApiError::not_found("L7 Rule", id)),
    }
}

pub(crate) async fn list(
    State(s): State<AppState>,
    ctx: Context,
    headers: HeaderMap,
    Path(policy_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    ctx.require_reader()?;
    let q = ListQuery::parse(raw.as_deref(), s.cfg.api_settings.pagination_max_limit)?;
    let (p, rules) = s
        .store
        .read(|tx| -> ApiResult<_> {
            let p = policy_of(tx, &ctx, &policy_id)?;
            let r = tx.list::<L7Rule>(&Filter {
                parent_id: Some(p.id),
                ..Default::default()
            })?;
            Ok::<_, ApiError>((p, r))
        })
        .await?;
    let w: Vec<_> = rules.iter().map(wire::rule).collect();
    let path = format!("/v2/lbaas/l7policies/{}/rules", p.id);
    respond(
        w,
        &q,
        "rules",
        "rules_links",
        &base_url(&s, &headers),
        &path,
    )
}

pub(crate) async fn show(
    State(s): State<AppState>,
    ctx: Context,
    Path((policy_id, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let r = s
        .store
        .read(|tx| -> ApiResult<_> {
            let p = policy_of(tx, &ctx, &policy_id)?;
            rule_in(tx, &ctx, &p, &id)
        })
        .await?;
    Ok(respond_one(&wire::rule(&r), "rule", raw.as_deref()))
}

fn apply(r: &mut L7Rule, b: &Map<String, Value>) {
    if let Some(t) = b.parse("type", L7RuleType::parse) {
        r.kind = t;
    }
    if let Some(c) = b.parse("compare_type", L7CompareType::parse) {
        r.compare_type = c;
    }
    if let Some(v) = b.s("value") {
        r.value = v;
    }
    if b.has("key") {
        r.key = b.s("key");
    }
    if b.has("invert") {
        r.invert = b.b("invert").unwrap_or(false);
    }
    if b.has("admin_state_up") {
        r.admin_state_up = b.b("admin_state_up").unwrap_or(true);
    }
    if b.has("tags") {
        r.tags = tags(b);
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Octavia's `validate.l7rule_data`.
fn check(r: &L7Rule) -> ApiResult<()> {
    let bad = |m: String| ApiError::bad_request(format!("Validation failure: L7Rule: {m}"));
    if r.value.contains(['\r', '\n']) {
        return Err(bad("value must not contain line breaks".into()));
    }
    use L7CompareType as C;
    use L7RuleType as K;
    if r.compare_type == C::Regex {
        regex::Regex::new(&r.value).map_err(|e| bad(format!("invalid regex: {e}")))?;
    }
    match r.kind {
        K::HostName | K::Path => {
            if r.compare_type != C::Regex && r.value.contains(char::is_whitespace) {
                return Err(bad(format!("{} value must not contain whitespace", r.kind)));
            }
        }
        K::FileType => {
            if !matches!(r.compare_type, C::EqualTo | C::Regex) {
                return Err(bad(
                    "FILE_TYPE rules only support EQUAL_TO and REGEX comparisons".into(),
                ));
            }
        }
        K::Header => {
            let Some(k) = &r.key else {
                return Err(bad("key is required for HEADER rules".into()));
            };
            if !is_token(k) {
                return Err(bad(format!("{k} is not a valid HTTP header name")));
            }
        }
        K::Cookie => {
            let Some(k) = &r.key else {
                return Err(bad("key is required for COOKIE rules".into()));
            };
            if !is_token(k) {
                return Err(bad(format!("{k} is not a valid cookie name")));
            }
            if r.compare_type != C::Regex
                && r.value
                    .chars()
                    .any(|c| c.is_whitespace() || "\",;\\".contains(c))
            {
                return Err(bad("invalid cookie value".into()));
            }
        }
        K::SslConnHasCert => {
            if r.key.is_some() || r.value != "true" || r.compare_type != C::EqualTo {
                return Err(bad(
                    "SSL_CONN_HAS_CERT rules take no key, the value 'true' and EQUAL_TO".into(),
                ));
            }
        }
        K::SslVerifyResult => {
            if r.key.is_some() || r.value.parse::<u64>().is_err() || r.compare_type != C::EqualTo {
                return Err(bad("SSL_VERIFY_RESULT rules take no key, a non-negative integer value and EQUAL_TO".into()));
            }
        }
        K::SslDnField => {
            let Some(k) = &r.key else {
                return Err(bad("key is required for SSL_DN_FIELD rules".into()));
            };
            let ok = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                return Err(bad(format!("{k} is not a valid SSL DN field")));
            }
        }
    }
    Ok(())
}

fn lock(tx: &Tx<'_>, ctx: &Context, p: &L7Policy) -> ApiResult<()> {
    lock_lb_for_child(tx, ctx, p.lb_id)?;
    mark_pending_update(tx, Listener::TABLE, &[p.listener_id])?;
    mark_pending_update(tx, L7Policy::TABLE, &[p.id])
}

/// A new rule of policy `p` from a validated body, `PENDING_CREATE`.
pub(crate) fn new_rule(p: &L7Policy, b: &Map<String, Value>) -> ApiResult<L7Rule> {
    let mut r = L7Rule {
        id: new_id(),
        l7policy_id: p.id,
        lb_id: p.lb_id,
        kind: L7RuleType::Path,
        compare_type: L7CompareType::EqualTo,
        key: None,
        value: String::new(),
        invert: false,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        created_at: now(),
        updated_at: None,
        project_id: p.project_id.clone(),
        admin_state_up: true,
        tags: vec![],
    };
    apply(&mut r, b);
    check(&r)?;
    Ok(r)
}

pub(crate) async fn create(
    State(s): State<AppState>,
    ctx: Context,
    Path(policy_id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let v = read_json(&s, body).await?;
    let b = envelope(&v, "rule_", "rule", POST, true)?;
    let r = s
        .store
        .write(|tx| -> ApiResult<_> {
            let p = policy_of(tx, &ctx, &policy_id)?;
            let r = new_rule(&p, &b)?;
            check_quota::<L7Rule>(tx, &s, &p.project_id, QuotaResource::L7Rule, 1)?;
            lock(tx, &ctx, &p)?;
            let n = tx
                .links(
                    L7Rule::TABLE,
                    &Filter {
                        parent_id: Some(p.id),
                        ..Default::default()
                    },
                )?
                .len();
            if n >= MAX_RULES {
                return Err(ApiError::conflict(format!(
                    "Too many rules on L7 policy {}",
                    p.id
                )));
            }
            tx.insert(&r)?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::L7Rule,
                    op: Op::Create,
                    id: r.id,
                    lb_id: p.lb_id,
                },
            )?;
            Ok(r)
        })
        .await?;
    s.wake.notify_one();
    Ok(created(respond_one(&wire::rule(&r), "rule", None)))
}

pub(crate) async fn update(
    State(s): State<AppState>,
    ctx: Context,
    Path((policy_id, id)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let v = read_json(&s, body).await?;
    let b = envelope(&v, "rule_", "rule", PUT, false)?;
    let r = s
        .store
        .write(|tx| -> ApiResult<_> {
            let p = policy_of(tx, &ctx, &policy_id)?;
            let mut r = rule_in(tx, &ctx, &p, &id)?;
            apply(&mut r, &b);
            check(&r)?;
            lock(tx, &ctx, &p)?;
            r.provisioning_status = ProvisioningStatus::PendingUpdate;
            r.updated_at = Some(now());
            tx.update(&r)?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::L7Rule,
                    op: Op::Update,
                    id: r.id,
                    lb_id: p.lb_id,
                },
            )?;
            Ok(r)
        })
        .await?;
    s.wake.notify_one();
    Ok(respond_one(&wire::rule(&r), "rule", None))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    ctx: Context,
    Path((policy_id, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    s.store
        .write(|tx| -> ApiResult<_> {
            let p = policy_of(tx, &ctx, &policy_id)?;
            let r = rule_in(tx, &ctx, &p, &id)?;
            lock(tx, &ctx, &p)?;
            tx.set_status(
                L7Rule::TABLE,
                &[r.id],
                Some(ProvisioningStatus::PendingDelete),
                None,
            )?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::L7Rule,
                    op: Op::Delete,
                    id: r.id,
                    lb_id: p.lb_id,
                },
            )
        })
        .await?;
    s.wake.notify_one();
    Ok(StatusCode::NO_CONTENT.into_response())
}
