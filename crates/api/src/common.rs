//! What every resource's handlers share: reading bodies, the load-balancer lock
//! (test-and-set `ACTIVE` → `PENDING_UPDATE`), quotas, and posting jobs.

use axum::body::Body;
use axum::http::StatusCode;
use rocta_model::*;
use rocta_store::{Entity, Filter, Table, Tx};
use serde_json::Value;

use crate::context::Context;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Reads and parses a JSON request body within the configured size limit.
pub async fn read_json(state: &AppState, body: Body) -> ApiResult<Value> {
    let bytes = axum::body::to_bytes(body, state.cfg.api_settings.max_request_body_size)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request is too large."))?;
    crate::validate::parse_json(&bytes)
}

/// The base URL of links: `[api_settings] api_base_uri`, else from the Host header.
pub fn base_url(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    let cfg = state.cfg.api_settings.api_base_uri.trim_end_matches('/');
    if !cfg.is_empty() {
        return cfg.to_string();
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{proto}://{host}")
}

/// 400 "Provider '<name>' is not enabled." unless `[api_settings] enabled_provider_drivers`
/// names it.
pub fn require_provider(state: &AppState, name: &str) -> ApiResult<()> {
    if state
        .cfg
        .api_settings
        .enabled_provider_drivers
        .contains_key(name)
    {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Provider '{name}' is not enabled."
        )))
    }
}

/// A load balancer the caller may see: 404 when missing or `DELETED`, 403 when it belongs to a
/// project the caller may not read (Octavia loads the object, then enforces policy on it).
pub fn visible_lb(tx: &Tx<'_>, ctx: &Context, id: Id) -> ApiResult<LoadBalancer> {
    match tx.get::<LoadBalancer>(id)? {
        Some(lb) if lb.provisioning_status != ProvisioningStatus::Deleted => {
            ctx.check_read(&lb.project_id)?;
            Ok(lb)
        }
        _ => Err(ApiError::not_found("Load Balancer", id)),
    }
}

/// An entity the caller may see: 404 "`<resource>` `<id>` not found." when missing, 403 when
/// another project's.
pub fn visible<E: Entity>(tx: &Tx<'_>, ctx: &Context, id: Id, resource: &str) -> ApiResult<E> {
    match tx.get::<E>(id)? {
        Some(e) => {
            ctx.check_read(e.project())?;
            Ok(e)
        }
        None => Err(ApiError::not_found(resource, id)),
    }
}

/// The immutability rule for child writes: the caller must be allowed to write the load
/// balancer, which must be `ACTIVE`; it becomes `PENDING_UPDATE` in this transaction.
pub fn lock_lb_for_child(tx: &Tx<'_>, ctx: &Context, lb_id: Id) -> ApiResult<LoadBalancer> {
    let lb = visible_lb(tx, ctx, lb_id)?;
    if !ctx.can_write(&lb.project_id) {
        return Err(ApiError::forbidden());
    }
    if lb.provisioning_status != ProvisioningStatus::Active {
        return Err(ApiError::immutable(lb_id));
    }
    lock_lb(
        tx,
        lb_id,
        &[ProvisioningStatus::Active],
        ProvisioningStatus::PendingUpdate,
    )?;
    Ok(lb)
}

/// Moves a load balancer from one of `from` to `to` in one conditional update: of two requests
/// racing for it (on any API process), one wins and the other is refused as if it had seen the
/// status the winner set.
pub fn lock_lb(
    tx: &Tx<'_>,
    lb_id: Id,
    from: &[ProvisioningStatus],
    to: ProvisioningStatus,
) -> ApiResult<()> {
    if tx.transition(Table::LoadBalancers, &[lb_id], from, to)? == 1 {
        return Ok(());
    }
    match tx.get::<LoadBalancer>(lb_id)? {
        Some(lb) if lb.provisioning_status.is_pending() => Err(ApiError::immutable(lb_id)),
        Some(lb) => Err(ApiError::lb_state(lb.provisioning_status, lb_id)),
        None => Err(ApiError::not_found("Load Balancer", lb_id)),
    }
}

/// Marks parents `PENDING_UPDATE` (listeners of a pool, the pool of a member, ...).
pub fn mark_pending_update(tx: &Tx<'_>, table: Table, ids: &[Id]) -> ApiResult<()> {
    tx.set_status(table, ids, Some(ProvisioningStatus::PendingUpdate), None)?;
    Ok(())
}

/// Fails with 403 when adding `adding` objects would exceed the project's quota.
pub fn check_quota<E: Entity>(
    tx: &Tx<'_>,
    state: &AppState,
    project: &str,
    res: QuotaResource,
    adding: i64,
) -> ApiResult<()> {
    let d = &state.cfg.quotas;
    let default = match res {
        QuotaResource::LoadBalancer => d.default_load_balancer_quota,
        QuotaResource::Listener => d.default_listener_quota,
        QuotaResource::Pool => d.default_pool_quota,
        QuotaResource::Member => d.default_member_quota,
        QuotaResource::HealthMonitor => d.default_health_monitor_quota,
        QuotaResource::L7Policy => d.default_l7policy_quota,
        QuotaResource::L7Rule => d.default_l7rule_quota,
    };
    let limit = tx
        .quota_get(project)?
        .and_then(|q| q.get(res))
        .unwrap_or(default);
    if limit < 0 {
        return Ok(());
    }
    // Creates in one project count one after the other, on every API process.
    tx.quota_lock(project)?;
    let used = tx.count::<E>(&Filter {
        project: Some(project),
        live_only: true,
        ..Default::default()
    })?;
    if used + adding > limit {
        return Err(ApiError::quota(res.octavia_name()));
    }
    Ok(())
}

/// Queues `job` in the caller's transaction.
pub fn post_job(tx: &Tx<'_>, job: &Job) -> ApiResult<()> {
    tx.job_post(job)?;
    Ok(())
}

/// The project of a new load balancer: the body's, else the caller's; 400 without either.
pub fn create_project(ctx: &Context, body_project: Option<String>) -> ApiResult<String> {
    let p = body_project
        .or_else(|| ctx.project_id.clone())
        .ok_or_else(|| {
            ApiError::validation(
                "Missing project ID in request where one is required. An administrator should \
             check the keystone settings in the Octavia configuration.",
            )
        })?;
    if !ctx.can_write(&p) {
        return Err(ApiError::forbidden());
    }
    Ok(p)
}

/// Tags: a list of strings, at most 255 characters each.
pub fn tags(m: &serde_json::Map<String, Value>) -> Vec<String> {
    use crate::validate::Get;
    m.list("tags").unwrap_or_default()
}

/// Creation/update timestamps.
pub fn now() -> rocta_model::time::Timestamp {
    rocta_model::time::now()
}

/// Octavia's `_validate_tls_refs`: the certificate manager must read every reference, after
/// granting the service access with the caller's token (Barbican's ACL); else 400 with the
/// manager's reason ("Could not retrieve certificate: <ref>", or an unreadable PKCS#12).
pub async fn check_tls_refs(state: &AppState, ctx: &Context, refs: &[&String]) -> ApiResult<()> {
    for r in refs {
        if let Err(e) = state.tls.check(ctx.auth_token.as_deref(), r).await {
            return Err(ApiError::bad_request(e.message));
        }
    }
    Ok(())
}

/// The TLS references an update of `resource` `id` brings, checked (and granted) before its
/// transaction, when the body names any TLS field (`named`); `refs` reads an object's
/// references, `apply` makes the update on a copy. The object's references before and after
/// the update (for [`tls_consumers`]); none when it names no TLS field.
pub async fn check_update_refs<E: Entity>(
    state: &AppState,
    ctx: &Context,
    named: bool,
    id: Id,
    resource: &str,
    refs: fn(&E) -> Vec<&String>,
    apply: impl FnOnce(&mut E) + Send,
) -> ApiResult<(Vec<String>, Vec<String>)> {
    if !named {
        return Ok((Vec::new(), Vec::new()));
    }
    let owned = |e: &E| -> Vec<String> { refs(e).into_iter().cloned().collect() };
    let (before, after) = state
        .store
        .read(|tx| -> ApiResult<_> {
            let mut e: E = visible(tx, ctx, id, resource)?;
            let before = owned(&e);
            apply(&mut e);
            Ok((before, owned(&e)))
        })
        .await?;
    let brought: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
    check_tls_refs(state, ctx, &brought).await?;
    Ok((before, after))
}

/// The certificate manager's consumer records (Barbican containers) of a listener or pool
/// (`kind` is `listeners` or `pools`): it uses `added` now and no longer uses `removed`.
/// After the commit, best effort as Octavia's: a failure is logged, never the request's.
pub async fn tls_consumers(
    state: &AppState,
    ctx: &Context,
    kind: &str,
    id: Id,
    added: &[&String],
    removed: &[&String],
) {
    let resource = format!("{}/v2/lbaas/{kind}/{id}", ctx.base_url);
    for r in removed.iter().filter(|r| !added.contains(r)) {
        if let Err(e) = state.tls.remove_consumer(r, &resource).await {
            tracing::warn!(reference = %r, %resource, error = %e.message, "removing a certificate consumer failed");
        }
    }
    for r in added.iter().filter(|r| !removed.contains(r)) {
        if let Err(e) = state.tls.add_consumer(r, &resource).await {
            tracing::warn!(reference = %r, %resource, error = %e.message, "registering a certificate consumer failed");
        }
    }
}

/// The TLS references of a listener.
pub fn listener_refs(l: &Listener) -> Vec<&String> {
    l.default_tls_container_ref
        .iter()
        .chain(l.sni_container_refs.iter())
        .chain(l.client_ca_tls_container_ref.iter())
        .chain(l.client_crl_container_ref.iter())
        .collect()
}

/// The TLS references of a pool.
pub fn pool_refs(p: &Pool) -> Vec<&String> {
    p.tls_container_ref
        .iter()
        .chain(p.ca_tls_container_ref.iter())
        .chain(p.crl_container_ref.iter())
        .collect()
}

/// Refuses the inline children a single-object create may not carry (only the load-balancer
/// graph create nests them): a field counts when it is neither absent, null nor `[]`.
pub fn reject_graph_only(m: &serde_json::Map<String, Value>, fields: &[&str]) -> ApiResult<()> {
    let given = |k: &&str| {
        m.get(*k)
            .is_some_and(|v| !v.is_null() && v != &Value::Array(vec![]))
    };
    if fields.iter().any(given) {
        return Err(ApiError::validation(format!(
            "{} are only allowed in a load balancer graph create.",
            fields.join(" and ")
        )));
    }
    Ok(())
}
