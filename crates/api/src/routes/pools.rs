//! `/pools`: CRUD with Octavia's protocol, algorithm and persistence rules.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rocta_model::*;
use rocta_store::{Entity, Filter, Tx};
use serde_json::{Map, Value};

use super::listeners::{default_alpn, default_tls_versions, ALPN, DEFAULT_CIPHERS, TLS_VERSIONS};
use super::loadbalancers::created;
use crate::common::*;
use crate::context::Context;
use crate::en;
use crate::error::{ApiError, ApiResult};
use crate::query::{respond, respond_one, ListQuery};
use crate::validate::{envelope, opt, path_id, req, Get, F, T};
use crate::wire::{refs, PoolWire};
use crate::AppState;

const PERSISTENCE: &[F] = &[
    req("type", en!(PersistenceType)),
    opt("cookie_name", T::Str(255)),
    opt("persistence_timeout", T::Int(0, i32::MAX as i64)),
    opt("persistence_granularity", T::Ip),
];

macro_rules! pool_fields {
    ($($extra:expr),*) => {
        &[
            $($extra,)*
            opt("name", T::Str(255)),
            opt("description", T::Str(255)),
            opt("admin_state_up", T::Bool),
            opt("session_persistence", T::Obj(PERSISTENCE)),
            opt("tags", T::StrList(255)),
            opt("tls_enabled", T::Bool),
            opt("tls_container_ref", T::Str(255)),
            opt("ca_tls_container_ref", T::Str(255)),
            opt("crl_container_ref", T::Str(255)),
            opt("tls_ciphers", T::Str(2048)),
            opt("tls_versions", T::StrList(16)),
            opt("alpn_protocols", T::StrList(16)),
        ]
    };
}

pub(crate) const POST: &[F] = pool_fields!(
    req("protocol", en!(PoolProtocol)),
    req("lb_algorithm", en!(LbAlgorithm)),
    opt("loadbalancer_id", T::Uuid),
    opt("listener_id", T::Uuid),
    opt("project_id", T::Str(36)),
    opt("tenant_id", T::Str(36)),
    opt("healthmonitor", T::Any),
    opt("members", T::Any)
);
pub(crate) const PUT: &[F] = pool_fields!(opt("lb_algorithm", en!(LbAlgorithm)));

/// Child links of pools: listeners using them by default, members, monitors.
struct Links {
    listeners: HashMap<Id, Vec<Id>>,
    members: HashMap<Id, Vec<Id>>,
    hms: HashMap<Id, Id>,
}

fn links(tx: &Tx<'_>, f: &Filter<'_>) -> ApiResult<Links> {
    let mut listeners: HashMap<Id, Vec<Id>> = HashMap::new();
    for l in tx.list::<Listener>(f)? {
        if let Some(p) = l.default_pool_id {
            listeners.entry(p).or_default().push(l.id);
        }
    }
    let mut members: HashMap<Id, Vec<Id>> = HashMap::new();
    for (p, m) in tx.links(Member::TABLE, f)? {
        members.entry(p).or_default().push(m);
    }
    let hms = tx.links(HealthMonitor::TABLE, f)?.into_iter().collect();
    Ok(Links {
        listeners,
        members,
        hms,
    })
}

fn wire<'a>(p: &'a Pool, l: &Links) -> PoolWire<'a> {
    PoolWire {
        pool: p,
        loadbalancers: refs([p.lb_id]),
        listeners: refs(l.listeners.get(&p.id).cloned().unwrap_or_default()),
        members: refs(l.members.get(&p.id).cloned().unwrap_or_default()),
        healthmonitor_id: l.hms.get(&p.id).copied(),
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
    let (pools, l) = s
        .store
        .read(|tx| Ok::<_, ApiError>((tx.list::<Pool>(&f)?, links(tx, &f)?)))
        .await?;
    let w: Vec<_> = pools.iter().map(|p| wire(p, &l)).collect();
    respond(
        w,
        &q,
        "pools",
        "pools_links",
        &base_url(&s, &headers),
        "/v2/lbaas/pools",
    )
}

fn one(tx: &Tx<'_>, ctx: &Context, id: Id) -> ApiResult<(Pool, Links)> {
    let p: Pool = visible(tx, ctx, id, "Pool")?;
    let l = links(
        tx,
        &Filter {
            lb_id: Some(p.lb_id),
            ..Default::default()
        },
    )?;
    Ok((p, l))
}

pub(crate) async fn show(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = path_id(&id, "Pool")?;
    let (p, l) = s.store.read(|tx| one(tx, &ctx, id)).await?;
    Ok(respond_one(&wire(&p, &l), "pool", raw.as_deref()))
}

fn apply(p: &mut Pool, m: &Map<String, Value>) {
    if m.has("name") {
        p.name = m.s("name").unwrap_or_default();
    }
    if m.has("description") {
        p.description = m.s("description").unwrap_or_default();
    }
    if m.has("admin_state_up") {
        p.admin_state_up = m.b("admin_state_up").unwrap_or(true);
    }
    if let Some(a) = m.parse("lb_algorithm", LbAlgorithm::parse) {
        p.lb_algorithm = a;
    }
    if m.has("session_persistence") {
        p.session_persistence = m
            .get("session_persistence")
            .and_then(Value::as_object)
            .map(|o| SessionPersistence {
                kind: o
                    .parse("type", PersistenceType::parse)
                    .unwrap_or(PersistenceType::SourceIp),
                cookie_name: o.s("cookie_name"),
                persistence_timeout: o.i("persistence_timeout"),
                persistence_granularity: o.s("persistence_granularity"),
            });
    }
    if m.has("tags") {
        p.tags = tags(m);
    }
    if m.has("tls_enabled") {
        p.tls_enabled = m.b("tls_enabled").unwrap_or(false);
    }
    for (k, slot) in [
        ("tls_container_ref", &mut p.tls_container_ref),
        ("ca_tls_container_ref", &mut p.ca_tls_container_ref),
        ("crl_container_ref", &mut p.crl_container_ref),
    ] {
        if m.has(k) {
            *slot = m.s(k);
        }
    }
    let tls = p.tls_enabled;
    if m.has("tls_ciphers") || (tls && p.tls_ciphers.is_none()) {
        p.tls_ciphers = m
            .s("tls_ciphers")
            .or_else(|| tls.then(|| DEFAULT_CIPHERS.to_string()));
    }
    if m.has("tls_versions") || (tls && p.tls_versions.is_none()) {
        p.tls_versions = m
            .list("tls_versions")
            .or_else(|| tls.then(default_tls_versions));
    }
    if m.has("alpn_protocols") || (tls && p.alpn_protocols.is_none()) {
        p.alpn_protocols = m.list("alpn_protocols").or_else(|| tls.then(default_alpn));
    }
}

/// LEAST_CONNECTIONS on a UDP or SCTP pool needs a connection count per member, which the
/// amphorae's nftables forwarding does not keep (Octavia's LVS does): refused with 400 where
/// the drivers say so (`Network::udp_least_connections`; noop accepts it, as Octavia's).
pub(crate) fn check_algorithm(s: &AppState, p: &Pool) -> ApiResult<()> {
    if p.protocol.is_lvs()
        && p.lb_algorithm == LbAlgorithm::LeastConnections
        && !s.network.udp_least_connections()
    {
        return Err(ApiError::validation(format!(
            "The lb_algorithm LEAST_CONNECTIONS is not supported for {} pools in this \
             deployment: its amphorae forward {} in the kernel with nftables, which keeps no \
             connection count per member. Use ROUND_ROBIN, SOURCE_IP or SOURCE_IP_PORT.",
            p.protocol, p.protocol
        )));
    }
    Ok(())
}

fn check(p: &Pool) -> ApiResult<()> {
    if let Some(sp) = &p.session_persistence {
        if p.protocol.is_lvs() {
            if sp.kind != PersistenceType::SourceIp {
                return Err(ApiError::validation(format!(
                    "Session persistence of type {} is not supported for {} protocol pools.",
                    sp.kind, p.protocol
                )));
            }
        } else if sp.persistence_timeout.is_some() || sp.persistence_granularity.is_some() {
            return Err(ApiError::validation(format!(
                "persistence_timeout and persistence_granularity is only for UDP and SCTP protocol pools, not {}.",
                p.protocol
            )));
        }
        match (sp.kind, &sp.cookie_name) {
            (PersistenceType::AppCookie, None) => {
                return Err(ApiError::validation(
                    "A cookie_name must be provided for APP_COOKIE session persistence.",
                ));
            }
            (PersistenceType::AppCookie, Some(c))
                if c.is_empty()
                    || c.chars().any(|ch| {
                        ch.is_whitespace() || ch.is_control() || ",;\\\"".contains(ch)
                    }) =>
            {
                return Err(ApiError::invalid_field(
                    "cookie_name",
                    c,
                    "Value should be a valid cookie name.",
                ));
            }
            (PersistenceType::AppCookie, Some(_)) => {}
            (_, Some(_)) => {
                return Err(ApiError::validation("Cookie names are not supported for SOURCE_IP and HTTP_COOKIE session persistence."));
            }
            _ => {}
        }
    }
    if p.crl_container_ref.is_some() && p.ca_tls_container_ref.is_none() {
        return Err(ApiError::validation(
            "A CA reference is required to specify a certificate revocation list.",
        ));
    }
    if !p.tls_enabled
        && (p.tls_ciphers.is_some() || p.tls_versions.is_some() || p.alpn_protocols.is_some())
    {
        return Err(ApiError::validation(
            "TLS cipher, version and ALPN options require tls_enabled.",
        ));
    }
    for v in p.tls_versions.iter().flatten() {
        if !TLS_VERSIONS.contains(&v.as_str()) {
            return Err(ApiError::invalid_field(
                "tls_versions",
                v,
                format!("Value should be one of: {}", TLS_VERSIONS.join(", ")),
            ));
        }
    }
    for v in p.alpn_protocols.iter().flatten() {
        if !ALPN.contains(&v.as_str()) {
            return Err(ApiError::invalid_field(
                "alpn_protocols",
                v,
                format!("Value should be one of: {}", ALPN.join(", ")),
            ));
        }
    }
    Ok(())
}

/// A new pool from a validated body, `PENDING_CREATE`; the caller sets `lb_id` and project.
pub(crate) fn new_pool(m: &Map<String, Value>) -> ApiResult<Pool> {
    let mut p = Pool {
        id: new_id(),
        lb_id: Id::nil(),
        name: String::new(),
        description: String::new(),
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        admin_state_up: true,
        protocol: m
            .parse("protocol", PoolProtocol::parse)
            .ok_or_else(ApiError::internal)?,
        lb_algorithm: LbAlgorithm::RoundRobin,
        session_persistence: None,
        project_id: String::new(),
        created_at: now(),
        updated_at: None,
        tags: vec![],
        tls_container_ref: None,
        ca_tls_container_ref: None,
        crl_container_ref: None,
        tls_enabled: false,
        tls_ciphers: None,
        tls_versions: None,
        alpn_protocols: None,
    };
    apply(&mut p, m);
    check(&p)?;
    Ok(p)
}

pub(crate) async fn create(
    State(s): State<AppState>,
    ctx: Context,
    body: Body,
) -> ApiResult<Response> {
    let v = read_json(&s, body).await?;
    let m = envelope(&v, "pool_", "pool", POST, true)?;
    reject_graph_only(&m, &["healthmonitor", "members"])?;
    let listener_id = m.id("listener_id");
    let lb_given = m.id("loadbalancer_id");
    if listener_id.is_none() && lb_given.is_none() {
        return Err(ApiError::validation(
            "Either loadbalancer_id or listener_id must be specified.",
        ));
    }
    let mut p = new_pool(&m)?;
    check_algorithm(&s, &p)?;
    check_tls_refs(&s, &ctx, &pool_refs(&p)).await?;
    let (p, l) = s
        .store
        .write(|tx| -> ApiResult<_> {
            let listener = match listener_id {
                Some(lid) => Some(visible::<Listener>(tx, &ctx, lid, "Listener")?),
                None => None,
            };
            let lb_id = match (&listener, lb_given) {
                (Some(l), Some(given)) if l.lb_id != given => {
                    return Err(ApiError::validation(
                        "The listener and the pool must be on the same load balancer.",
                    ));
                }
                (Some(l), _) => l.lb_id,
                (None, Some(g)) => g,
                (None, None) => return Err(ApiError::internal()),
            };
            let lb = visible_lb(tx, &ctx, lb_id)?;
            p.lb_id = lb_id;
            p.project_id = lb.project_id.clone();
            check_quota::<Pool>(tx, &s, &lb.project_id, QuotaResource::Pool, 1)?;
            lock_lb_for_child(tx, &ctx, lb_id)?;
            if let Some(mut l) = listener {
                if l.default_pool_id.is_some() {
                    return Err(ApiError::conflict(format!(
                        "Listener {} already has a default pool.",
                        l.id
                    )));
                }
                if !rules::listener_accepts_pool(l.protocol, p.protocol) {
                    return Err(ApiError::validation(format!(
                        "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
                        p.protocol, l.protocol
                    )));
                }
                l.default_pool_id = Some(p.id);
                l.provisioning_status = ProvisioningStatus::PendingUpdate;
                tx.update(&l)?;
            }
            tx.insert(&p)?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::Pool,
                    op: Op::Create,
                    id: p.id,
                    lb_id,
                },
            )?;
            let l = links(
                tx,
                &Filter {
                    lb_id: Some(lb_id),
                    ..Default::default()
                },
            )?;
            Ok((p, l))
        })
        .await?;
    s.wake.notify_one();
    tls_consumers(&s, &ctx, "pools", p.id, &pool_refs(&p), &[]).await;
    Ok(created(respond_one(&wire(&p, &l), "pool", None)))
}

/// Marks the listeners using `pool` as default `PENDING_UPDATE`.
pub(crate) fn lock_pool_listeners(tx: &Tx<'_>, pool: &Pool) -> ApiResult<()> {
    let f = Filter {
        lb_id: Some(pool.lb_id),
        ..Default::default()
    };
    let ids: Vec<Id> = tx
        .list::<Listener>(&f)?
        .into_iter()
        .filter(|l| l.default_pool_id == Some(pool.id))
        .map(|l| l.id)
        .collect();
    mark_pending_update(tx, Listener::TABLE, &ids)
}

/// The fields naming TLS material (what an update must check before its transaction).
const TLS_FIELDS: [&str; 3] = [
    "tls_container_ref",
    "ca_tls_container_ref",
    "crl_container_ref",
];

pub(crate) async fn update(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let id = path_id(&id, "Pool")?;
    let v = read_json(&s, body).await?;
    let m = envelope(&v, "pool_", "pool", PUT, false)?;
    // The references the update brings are checked (and granted) before its transaction.
    let (before, after) = check_update_refs(
        &s,
        &ctx,
        TLS_FIELDS.iter().any(|k| m.has(k)),
        id,
        "Pool",
        pool_refs,
        |p: &mut Pool| apply(p, &m),
    )
    .await?;
    let (p, l) = s
        .store
        .write(|tx| -> ApiResult<_> {
            let mut p: Pool = visible(tx, &ctx, id, "Pool")?;
            lock_lb_for_child(tx, &ctx, p.lb_id)?;
            apply(&mut p, &m);
            check(&p)?;
            check_algorithm(&s, &p)?;
            lock_pool_listeners(tx, &p)?;
            p.provisioning_status = ProvisioningStatus::PendingUpdate;
            p.updated_at = Some(now());
            tx.update(&p)?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::Pool,
                    op: Op::Update,
                    id,
                    lb_id: p.lb_id,
                },
            )?;
            let l = links(
                tx,
                &Filter {
                    lb_id: Some(p.lb_id),
                    ..Default::default()
                },
            )?;
            Ok((p, l))
        })
        .await?;
    s.wake.notify_one();
    let (after, before): (Vec<&String>, Vec<&String>) =
        (after.iter().collect(), before.iter().collect());
    tls_consumers(&s, &ctx, "pools", id, &after, &before).await;
    Ok(respond_one(&wire(&p, &l), "pool", None))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "Pool")?;
    let p = s
        .store
        .write(|tx| -> ApiResult<_> {
            let p: Pool = visible(tx, &ctx, id, "Pool")?;
            let f = Filter {
                lb_id: Some(p.lb_id),
                ..Default::default()
            };
            if tx
                .list::<L7Policy>(&f)?
                .iter()
                .any(|pol| pol.redirect_pool_id == Some(id))
            {
                return Err(ApiError::conflict(format!(
                    "Pool {id} is in use by an L7 policy and cannot be deleted."
                )));
            }
            lock_lb_for_child(tx, &ctx, p.lb_id)?;
            lock_pool_listeners(tx, &p)?;
            tx.set_status(
                Pool::TABLE,
                &[id],
                Some(ProvisioningStatus::PendingDelete),
                None,
            )?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::Pool,
                    op: Op::Delete,
                    id,
                    lb_id: p.lb_id,
                },
            )?;
            Ok(p)
        })
        .await?;
    s.wake.notify_one();
    tls_consumers(&s, &ctx, "pools", id, &[], &pool_refs(&p)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
