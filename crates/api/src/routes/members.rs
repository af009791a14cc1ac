//! `/pools/{pool_id}/members`: CRUD and the batch replace (`PUT .../members`).

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
use crate::error::{ApiError, ApiResult};
use crate::query::{respond, respond_one, ListQuery};
use crate::validate::{check_object, envelope, opt, path_id, req, Get, F, T};
use crate::wire;
use crate::AppState;

macro_rules! member_fields {
    ($($extra:expr),*) => {
        &[
            $($extra,)*
            opt("name", T::Str(255)),
            opt("admin_state_up", T::Bool),
            opt("weight", T::Int(0, 256)),
            opt("backup", T::Bool),
            opt("monitor_address", T::Ip),
            opt("monitor_port", T::Int(1, 65535)),
            opt("tags", T::StrList(255)),
        ]
    };
}

pub(crate) const POST: &[F] = member_fields!(
    req("address", T::Ip),
    req("protocol_port", T::Int(1, 65535)),
    opt("subnet_id", T::Uuid),
    opt("project_id", T::Str(36)),
    opt("tenant_id", T::Str(36)),
    opt("request_sriov", T::Bool)
);
pub(crate) const PUT: &[F] = member_fields!();

fn pool_of(tx: &Tx<'_>, ctx: &Context, raw: &str) -> ApiResult<Pool> {
    let pid = path_id(raw, "Pool")?;
    visible(tx, ctx, pid, "Pool")
}

pub(crate) async fn list(
    State(s): State<AppState>,
    ctx: Context,
    headers: HeaderMap,
    Path(pool_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    ctx.require_reader()?;
    let q = ListQuery::parse(raw.as_deref(), s.cfg.api_settings.pagination_max_limit)?;
    let (pool, members) = s
        .store
        .read(|tx| -> ApiResult<_> {
            let p = pool_of(tx, &ctx, &pool_id)?;
            let m = tx.list::<Member>(&Filter {
                parent_id: Some(p.id),
                ..Default::default()
            })?;
            Ok::<_, ApiError>((p, m))
        })
        .await?;
    let w: Vec<_> = members.iter().map(wire::member).collect();
    let path = format!("/v2/lbaas/pools/{}/members", pool.id);
    respond(
        w,
        &q,
        "members",
        "members_links",
        &base_url(&s, &headers),
        &path,
    )
}

fn member_in(tx: &Tx<'_>, ctx: &Context, pool: &Pool, raw: &str) -> ApiResult<Member> {
    let id = path_id(raw, "Member")?;
    match tx.get::<Member>(id)? {
        Some(m) if m.pool_id == pool.id => {
            ctx.check_read(&m.project_id)?;
            Ok(m)
        }
        _ => Err(ApiError::not_found("Member", id)),
    }
}

pub(crate) async fn show(
    State(s): State<AppState>,
    ctx: Context,
    Path((pool_id, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let m = s
        .store
        .read(|tx| -> ApiResult<_> {
            let p = pool_of(tx, &ctx, &pool_id)?;
            member_in(tx, &ctx, &p, &id)
        })
        .await?;
    Ok(respond_one(&wire::member(&m), "member", raw.as_deref()))
}

fn apply(m: &mut Member, b: &Map<String, Value>) {
    if b.has("name") {
        m.name = b.s("name").unwrap_or_default();
    }
    if b.has("admin_state_up") {
        m.admin_state_up = b.b("admin_state_up").unwrap_or(true);
    }
    if b.has("weight") {
        m.weight = b.i("weight").unwrap_or(1) as u16;
    }
    if b.has("backup") {
        m.backup = b.b("backup").unwrap_or(false);
    }
    if b.has("monitor_address") {
        m.monitor_address = b.s("monitor_address");
    }
    if b.has("monitor_port") {
        m.monitor_port = b.i("monitor_port").map(|p| p as u16);
    }
    if b.has("tags") {
        m.tags = tags(b);
    }
}

pub(crate) fn new_member(pool: &Pool, b: &Map<String, Value>, has_hm: bool) -> ApiResult<Member> {
    let address = b.s("address").unwrap_or_default();
    if address == "169.254.169.254" {
        return Err(ApiError::validation(format!(
            "The IP address {address} is reserved."
        )));
    }
    if b.b("request_sriov") == Some(true) {
        return Err(ApiError::bad_request(
            "Validation failure: SR-IOV member ports are not enabled in this deployment.",
        ));
    }
    let mut m = Member {
        id: new_id(),
        pool_id: pool.id,
        lb_id: pool.lb_id,
        name: String::new(),
        operating_status: if has_hm {
            OperatingStatus::Offline
        } else {
            OperatingStatus::NoMonitor
        },
        provisioning_status: ProvisioningStatus::PendingCreate,
        admin_state_up: true,
        address,
        protocol_port: b.i("protocol_port").unwrap_or(0) as u16,
        weight: 1,
        backup: false,
        subnet_id: b.s("subnet_id"),
        project_id: pool.project_id.clone(),
        created_at: now(),
        updated_at: None,
        monitor_address: None,
        monitor_port: None,
        tags: vec![],
        vnic_type: "normal".into(),
    };
    apply(&mut m, b);
    Ok(m)
}

/// 409 if another member of the pool has `m`'s address and port. Reads only those two fields
/// of each stored member (pools of thousands of members are read on every create).
fn duplicate(tx: &Tx<'_>, m: &Member) -> ApiResult<()> {
    #[derive(serde::Deserialize)]
    struct AddrPort {
        address: String,
        protocol_port: u16,
    }
    let f = Filter {
        parent_id: Some(m.pool_id),
        ..Default::default()
    };
    let taken = tx.list_raw::<Member>(&f)?.iter().any(|(id, _, _, doc)| {
        *id != m.id
            && serde_json::from_str::<AddrPort>(doc)
                .is_ok_and(|o| o.address == m.address && o.protocol_port == m.protocol_port)
    });
    if taken {
        return Err(ApiError::conflict(format!(
            "Another member on this pool is already using ip {} on protocol_port {}",
            m.address, m.protocol_port
        )));
    }
    Ok(())
}

/// Locks the load balancer, the pool and its listeners for a member change.
fn lock(tx: &Tx<'_>, ctx: &Context, pool: &Pool) -> ApiResult<()> {
    lock_lb_for_child(tx, ctx, pool.lb_id)?;
    lock_pool_listeners(tx, pool)?;
    mark_pending_update(tx, Pool::TABLE, &[pool.id])
}

fn has_hm(tx: &Tx<'_>, pool: Id) -> ApiResult<bool> {
    Ok(!tx
        .links(
            HealthMonitor::TABLE,
            &Filter {
                parent_id: Some(pool),
                ..Default::default()
            },
        )?
        .is_empty())
}

pub(crate) async fn create(
    State(s): State<AppState>,
    ctx: Context,
    Path(pool_id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let v = read_json(&s, body).await?;
    let b = envelope(&v, "member_", "member", POST, true)?;
    let m = s
        .store
        .write(|tx| -> ApiResult<_> {
            let pool = pool_of(tx, &ctx, &pool_id)?;
            let m = new_member(&pool, &b, has_hm(tx, pool.id)?)?;
            check_quota::<Member>(tx, &s, &pool.project_id, QuotaResource::Member, 1)?;
            lock(tx, &ctx, &pool)?;
            duplicate(tx, &m)?;
            tx.insert(&m)?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::Member,
                    op: Op::Create,
                    id: m.id,
                    lb_id: pool.lb_id,
                },
            )?;
            Ok(m)
        })
        .await?;
    s.wake.notify_one();
    Ok(created(respond_one(&wire::member(&m), "member", None)))
}

pub(crate) async fn update(
    State(s): State<AppState>,
    ctx: Context,
    Path((pool_id, id)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let v = read_json(&s, body).await?;
    let b = envelope(&v, "member_", "member", PUT, false)?;
    let m = s
        .store
        .write(|tx| -> ApiResult<_> {
            let pool = pool_of(tx, &ctx, &pool_id)?;
            let mut m = member_in(tx, &ctx, &pool, &id)?;
            lock(tx, &ctx, &pool)?;
            apply(&mut m, &b);
            m.provisioning_status = ProvisioningStatus::PendingUpdate;
            m.updated_at = Some(now());
            tx.update(&m)?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::Member,
                    op: Op::Update,
                    id: m.id,
                    lb_id: pool.lb_id,
                },
            )?;
            Ok(m)
        })
        .await?;
    s.wake.notify_one();
    Ok(respond_one(&wire::member(&m), "member", None))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    ctx: Context,
    Path((pool_id, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    s.store
        .write(|tx| -> ApiResult<_> {
            let pool = pool_of(tx, &ctx, &pool_id)?;
            let m = member_in(tx, &ctx, &pool, &id)?;
            lock(tx, &ctx, &pool)?;
            tx.set_status(
                Member::TABLE,
                &[m.id],
                Some(ProvisioningStatus::PendingDelete),
                None,
            )?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::Member,
                    op: Op::Delete,
                    id: m.id,
                    lb_id: pool.lb_id,
                },
            )
        })
        .await?;
    s.wake.notify_one();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Batch replace: members are matched on (address, protocol_port); new ones are created,
/// matched ones updated, and the others deleted unless `additive_only=true`.
pub(crate) async fn batch(
    State(s): State<AppState>,
    ctx: Context,
    Path(pool_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> ApiResult<Response> {
    let additive = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "additive_only" && v.eq_ignore_ascii_case("true"));
    let v = read_json(&s, body).await?;
    let Some(Value::Array(list)) = v.as_object().and_then(|o| o.get("members")) else {
        return Err(ApiError::invalid_field(
            "members",
            "Unset",
            "Mandatory field missing.",
        ));
    };
    if let Some(k) = v
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "members"))
    {
        return Err(ApiError::bad_request(format!(
            "Unknown attribute for argument members_: {k}"
        )));
    }
    let mut bodies = Vec::new();
    for item in list {
        let o = item.as_object().ok_or_else(|| {
            ApiError::invalid_field("members", &crate::validate::show(item), "Wrong type.")
        })?;
        bodies.push(check_object(o, "members_.members", POST, true)?);
    }
    let posted = s
        .store
        .write(|tx| -> ApiResult<_> {
            let pool = pool_of(tx, &ctx, &pool_id)?;
            let existing = tx.list::<Member>(&Filter {
                parent_id: Some(pool.id),
                ..Default::default()
            })?;
            let hm = has_hm(tx, pool.id)?;
            let (mut created, mut updated, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
            let mut seen: Vec<(String, u16)> = Vec::new();
            let mut writes: Vec<(Member, bool)> = Vec::new();
            for b in &bodies {
                let key = (
                    b.s("address").unwrap_or_default(),
                    b.i("protocol_port").unwrap_or(0) as u16,
                );
                let parsed_addr: Option<std::net::IpAddr> = key.0.parse().ok();
                if seen.contains(&key) {
                    return Err(ApiError::validation(format!(
                        "Member address/port {}:{} appears more than once in the batch.",
                        key.0, key.1
                    )));
                }
                seen.push(key.clone());
                let found = existing.iter().find(|m| {
                    m.protocol_port == key.1
                        && m.address.parse::<std::net::IpAddr>().ok() == parsed_addr
                });
                match found {
                    Some(old) => {
                        let mut m = old.clone();
                        apply(&mut m, b);
                        if m != *old {
                            m.provisioning_status = ProvisioningStatus::PendingUpdate;
                            m.updated_at = Some(now());
                            updated.push(m.id);
                            writes.push((m, false));
                        }
                    }
                    None => {
                        let m = new_member(&pool, b, hm)?;
                        created.push(m.id);
                        writes.push((m, true));
                    }
                }
            }
            if !additive {
                for m in &existing {
                    let k = (m.address.clone(), m.protocol_port);
                    let still = seen.iter().any(|(a, p)| {
                        *p == k.1 && a.parse::<std::net::IpAddr>().ok() == k.0.parse().ok()
                    });
                    if !still {
                        deleted.push(m.id);
                    }
                }
            }
            if created.is_empty() && updated.is_empty() && deleted.is_empty() {
                return Ok(false);
            }
            let net = created.len() as i64 - deleted.len() as i64;
            if net > 0 {
                check_quota::<Member>(tx, &s, &pool.project_id, QuotaResource::Member, net)?;
            }
            lock(tx, &ctx, &pool)?;
            for (m, new) in &writes {
                if *new {
                    tx.insert(m)?;
                } else {
                    tx.update(m)?;
                }
            }
            tx.set_status(
                Member::TABLE,
                &deleted,
                Some(ProvisioningStatus::PendingDelete),
                None,
            )?;
            post_job(
                tx,
                &Job::BatchMembers {
                    lb_id: pool.lb_id,
                    pool_id: pool.id,
                    created,
                    updated,
                    deleted,
                },
            )?;
            Ok(true)
        })
        .await?;
    if posted {
        s.wake.notify_one();
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
