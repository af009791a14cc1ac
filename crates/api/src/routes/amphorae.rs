//! `/v2/octavia/amphorae` (admin only): list, show, stats, failover, configuration, delete.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rocta_model::*;
use rocta_store::Filter;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::common::{base_url, lock_lb, post_job};
use crate::context::Context;
use crate::error::{ApiError, ApiResult};
use crate::query::{json_response, respond, respond_one, ListQuery};
use crate::validate::path_id;
use crate::wire::AmphoraWire;
use crate::AppState;

pub(crate) async fn list(
    State(s): State<AppState>,
    ctx: Context,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    let q = ListQuery::parse(raw.as_deref(), s.cfg.api_settings.pagination_max_limit)?;
    let amps = s
        .store
        .read(|tx| {
            tx.list::<Amphora>(&Filter {
                live_only: true,
                ..Default::default()
            })
        })
        .await?;
    let w: Vec<_> = amps.iter().map(AmphoraWire).collect();
    respond(
        w,
        &q,
        "amphorae",
        "amphorae_links",
        &base_url(&s, &headers),
        "/v2/octavia/amphorae",
    )
}

async fn get(s: &AppState, ctx: &Context, raw: &str) -> ApiResult<Amphora> {
    ctx.require_admin()?;
    let id = path_id(raw, "Amphora")?;
    match s.store.read(|tx| tx.get::<Amphora>(id)).await? {
        Some(a) if a.status != AmphoraStatus::Deleted => Ok(a),
        _ => Err(ApiError::not_found("Amphora", id)),
    }
}

pub(crate) async fn show(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let a = get(&s, &ctx, &id).await?;
    Ok(respond_one(&AmphoraWire(&a), "amphora", raw.as_deref()))
}

/// One listener's counters on an amphora.
#[derive(Serialize, JsonSchema)]
pub(crate) struct AmphoraStats {
    id: Id,
    loadbalancer_id: Option<Id>,
    listener_id: Id,
    #[serde(flatten)]
    stats: Stats,
}

pub(crate) async fn stats(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let a = get(&s, &ctx, &id).await?;
    let rows = s.store.read(|tx| tx.amphora_stats(a.id)).await?;
    let list: Vec<_> = rows
        .into_iter()
        .map(|(listener_id, stats)| AmphoraStats {
            id: a.id,
            loadbalancer_id: a.loadbalancer_id,
            listener_id,
            stats,
        })
        .collect();
    Ok(json_response(&json!({ "amphora_stats": list })))
}

/// Octavia's `PUT /v2/octavia/amphorae/{id}/config`: the amphora's agent gets the
/// configuration the controller now has (health managers, heartbeat key); 202 once the job is
/// queued, whatever the load balancer's status (it does not lock it).
pub(crate) async fn update_config(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let a = get(&s, &ctx, &id).await?;
    let job = Job::UpdateAmphoraConfig {
        lb_id: a.loadbalancer_id.unwrap_or_default(),
        amphora_id: a.id,
    };
    s.store.write(|tx| post_job(tx, &job)).await?;
    s.wake.notify_one();
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Octavia's `DELETE /v2/octavia/amphorae/{id}`: only an amphora in `ERROR` can be deleted
/// (409 otherwise); it goes `PENDING_DELETE` with its job in one transaction, 204.
pub(crate) async fn delete(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let a = get(&s, &ctx, &id).await?;
    let job = Job::DeleteAmphora {
        lb_id: a.loadbalancer_id.unwrap_or_default(),
        amphora_id: a.id,
    };
    s.store
        .write(|tx| -> ApiResult<_> {
            if !tx.amphora_transition(
                a.id,
                &[AmphoraStatus::Error],
                AmphoraStatus::PendingDelete,
            )? {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("amphora {} is immutable and cannot be updated.", a.id),
                ));
            }
            post_job(tx, &job)
        })
        .await?;
    s.wake.notify_one();
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn failover(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let a = get(&s, &ctx, &id).await?;
    let Some(lb_id) = a.loadbalancer_id else {
        return Err(ApiError::validation(format!(
            "Amphora {} is not attached to a load balancer.",
            a.id
        )));
    };
    s.store
        .write(|tx| -> ApiResult<_> {
            let lb = tx
                .get::<LoadBalancer>(lb_id)?
                .ok_or_else(|| ApiError::not_found("Load Balancer", lb_id))?;
            if lb.provisioning_status != ProvisioningStatus::Active {
                return Err(ApiError::immutable(lb_id));
            }
            lock_lb(
                tx,
                lb_id,
                &[ProvisioningStatus::Active],
                ProvisioningStatus::PendingUpdate,
            )?;
            post_job(
                tx,
                &Job::FailoverAmphora {
                    lb_id,
                    amphora_id: a.id,
                },
            )
        })
        .await?;
    s.wake.notify_one();
    Ok(StatusCode::ACCEPTED.into_response())
}
