//! `GET /loadbalancers/{id}/status`: Octavia's status tree of a load balancer (its listeners,
//! their pools, members and health monitors, each with both statuses).

use axum::extract::{Path, State};
use axum::response::Response;
use rocta_model::*;
use rocta_store::Filter;
use schemars::JsonSchema;
use serde::Serialize;

use crate::common::visible_lb;
use crate::context::Context;
use crate::error::{ApiError, ApiResult};
use crate::query::json_response;
use crate::validate::path_id;
use crate::AppState;

pub(crate) async fn status(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "Load Balancer")?;
    let tree = s
        .store
        .read(|tx| -> ApiResult<_> {
            let lb = visible_lb(tx, &ctx, id)?;
            let f = Filter {
                lb_id: Some(id),
                ..Default::default()
            };
            Ok::<_, ApiError>(LbTree {
                loadbalancer: Some(lb),
                listeners: tx.list(&f)?,
                pools: tx.list(&f)?,
                members: tx.list(&f)?,
                health_monitors: tx.list(&f)?,
                l7policies: tx.list(&f)?,
                l7rules: vec![],
            })
        })
        .await?;
    Ok(json_response(&StatusBody {
        statuses: Statuses {
            loadbalancer: status_tree(&tree),
        },
    }))
}

/// Octavia's status tree (key `health_monitor`, as its code renders it).
#[derive(Serialize, JsonSchema)]
pub(crate) struct LbStatus {
    id: Id,
    name: String,
    operating_status: OperatingStatus,
    provisioning_status: ProvisioningStatus,
    listeners: Vec<ListenerStatus>,
}

#[derive(Serialize, JsonSchema)]
struct ListenerStatus {
    id: Id,
    name: String,
    operating_status: OperatingStatus,
    provisioning_status: ProvisioningStatus,
    pools: Vec<PoolStatus>,
}

#[derive(Serialize, JsonSchema)]
struct PoolStatus {
    id: Id,
    name: String,
    provisioning_status: ProvisioningStatus,
    operating_status: OperatingStatus,
    members: Vec<MemberStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_monitor: Option<MonitorStatus>,
}

#[derive(Serialize, JsonSchema)]
struct MemberStatus {
    id: Id,
    name: String,
    operating_status: OperatingStatus,
    provisioning_status: ProvisioningStatus,
    address: String,
    protocol_port: u16,
}

#[derive(Serialize, JsonSchema)]
struct MonitorStatus {
    id: Id,
    name: String,
    #[serde(rename = "type")]
    kind: HealthMonitorType,
    provisioning_status: ProvisioningStatus,
    operating_status: OperatingStatus,
}

/// `GET .../status` body.
#[derive(Serialize, JsonSchema)]
pub(crate) struct StatusBody {
    statuses: Statuses,
}

#[derive(Serialize, JsonSchema)]
struct Statuses {
    loadbalancer: Option<LbStatus>,
}

fn status_tree(t: &LbTree) -> Option<LbStatus> {
    let lb = t.loadbalancer.as_ref()?;
    let pool_status = |p: &Pool| PoolStatus {
        id: p.id,
        name: p.name.clone(),
        provisioning_status: p.provisioning_status,
        operating_status: p.operating_status,
        members: t
            .members
            .iter()
            .filter(|m| m.pool_id == p.id)
            .map(|m| MemberStatus {
                id: m.id,
                name: m.name.clone(),
                operating_status: m.operating_status,
                provisioning_status: m.provisioning_status,
                address: m.address.clone(),
                protocol_port: m.protocol_port,
            })
            .collect(),
        health_monitor: t
            .health_monitors
            .iter()
            .find(|h| h.pool_id == p.id)
            .map(|h| MonitorStatus {
                id: h.id,
                name: h.name.clone(),
                kind: h.kind,
                provisioning_status: h.provisioning_status,
                operating_status: h.operating_status,
            }),
    };
    let listeners = t
        .listeners
        .iter()
        .map(|l| {
            let mut pool_ids: Vec<Id> = l.default_pool_id.into_iter().collect();
            for p in t.l7policies.iter().filter(|p| p.listener_id == l.id) {
                if let Some(rp) = p.redirect_pool_id {
                    if !pool_ids.contains(&rp) {
                        pool_ids.push(rp);
                    }
                }
            }
            ListenerStatus {
                id: l.id,
                name: l.name.clone(),
                operating_status: l.operating_status,
                provisioning_status: l.provisioning_status,
                pools: pool_ids
                    .iter()
                    .filter_map(|pid| t.pools.iter().find(|p| p.id == *pid))
                    .map(pool_status)
                    .collect(),
            }
        })
        .collect();
    Some(LbStatus {
        id: lb.id,
        name: lb.name.clone(),
        operating_status: lb.operating_status,
        provisioning_status: lb.provisioning_status,
        listeners,
    })
}
