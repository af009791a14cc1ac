//! ACTIVE_STANDBY: which amphora a slot builds (MASTER, BACKUP, or none for a SINGLE load
//! balancer's second slot), and keepalived on every amphora of a pair (`ConfigureVrrp`).
//! A load balancer's topology is its flavor's `loadbalancer_topology`, else
//! `[controller_worker] loadbalancer_topology`; a failover keeps the role of the amphora it
//! replaces.

use rocta_drivers::{VrrpPlan, VrrpSettings};
use rocta_flow::{Outputs, Task, TaskError};
use rocta_model::*;
use rocta_store::{CatalogKind, StoreError};
use serde_json::Value;

use super::*;
use crate::Ctx;

/// The role of the amphora a slot builds.
#[derive(Debug, Clone)]
pub(crate) enum SlotRole {
    /// MASTER (ACTIVE_STANDBY) or STANDALONE (SINGLE).
    Primary,
    /// BACKUP (ACTIVE_STANDBY); nothing for SINGLE.
    Secondary,
    /// The role of the amphora it replaces (a failover).
    Like(Id),
    /// Replaces the pair's amphora of this role (a load balancer failover, one amphora after
    /// the other); for SINGLE, `Master` is the one amphora and `Backup` builds nothing.
    Replacing(AmphoraRole),
    /// A spare: none until claimed.
    Spare,
}

/// What the worker needs of `[controller_worker]` and `[keepalived_vrrp]`.
#[derive(Debug, Clone)]
pub struct TopologySettings {
    pub default: Topology,
    pub vrrp: VrrpSettings,
}

impl TopologySettings {
    /// `[controller_worker] loadbalancer_topology` (validated by the configuration).
    pub fn named(default: &str, vrrp: VrrpSettings) -> Self {
        TopologySettings {
            default: if default == "ACTIVE_STANDBY" {
                Topology::ActiveStandby
            } else {
                Topology::Single
            },
            vrrp,
        }
    }
}

impl Default for TopologySettings {
    fn default() -> Self {
        TopologySettings {
            default: Topology::Single,
            vrrp: VrrpSettings::default(),
        }
    }
}

/// The load balancer's topology: its flavor's, else the deployment's.
async fn topology(ctx: &Ctx, lb_id: Id) -> R<Topology> {
    let flavor_setting = ctx
        .store
        .read(
            |tx| match tx.get::<LoadBalancer>(lb_id)?.and_then(|lb| lb.flavor_id) {
                Some(f) => tx.profile_setting(CatalogKind::Flavor, &f, "loadbalancer_topology"),
                None => Ok::<_, StoreError>(None),
            },
        )
        .await
        .map_err(db)?;
    Ok(match flavor_setting.as_deref() {
        Some("ACTIVE_STANDBY") => Topology::ActiveStandby,
        Some(_) => Topology::Single,
        None => ctx.topology.default,
    })
}

/// The topology the load balancer runs in now: ACTIVE_STANDBY while one of its amphorae is
/// MASTER or BACKUP (a failover keeps what the load balancer was built as).
async fn topology_now(ctx: &Ctx, lb_id: Id) -> R<Topology> {
    let pair = live_amphorae(ctx, lb_id)
        .await?
        .iter()
        .any(|a| matches!(a.role, Some(AmphoraRole::Master | AmphoraRole::Backup)));
    Ok(if pair {
        Topology::ActiveStandby
    } else {
        Topology::Single
    })
}

/// Whether an amphora of role `have` is the one a replacement of `role` replaces (for SINGLE
/// the one amphora is the MASTER's place).
pub(crate) fn replaces(role: AmphoraRole, have: Option<AmphoraRole>) -> bool {
    match role {
        AmphoraRole::Master => !matches!(have, Some(AmphoraRole::Backup)),
        r => have == Some(r),
    }
}

/// The role a slot's amphora gets; `None`: the slot builds nothing.
pub(crate) async fn slot_role(
    ctx: &Ctx,
    lb_id: Option<Id>,
    role: &SlotRole,
) -> R<Option<Option<AmphoraRole>>> {
    let Some(lb_id) = lb_id else {
        return Ok(Some(None));
    };
    Ok(match role {
        SlotRole::Spare => Some(None),
        SlotRole::Like(id) => {
            let was = ctx
                .store
                .read(|tx| tx.get::<Amphora>(*id))
                .await
                .map_err(db)?
                .and_then(|a| a.role);
            Some(Some(was.unwrap_or(AmphoraRole::Standalone)))
        }
        SlotRole::Primary => Some(Some(match topology(ctx, lb_id).await? {
            Topology::ActiveStandby => AmphoraRole::Master,
            Topology::Single => AmphoraRole::Standalone,
        })),
        SlotRole::Secondary => match topology(ctx, lb_id).await? {
            Topology::ActiveStandby => Some(Some(AmphoraRole::Backup)),
            Topology::Single => None,
        },
        SlotRole::Replacing(r) => match (topology_now(ctx, lb_id).await?, r) {
            (Topology::ActiveStandby, r) => Some(Some(*r)),
            (Topology::Single, AmphoraRole::Backup) => None,
            (Topology::Single, _) => Some(Some(AmphoraRole::Standalone)),
        },
    })
}

/// Octavia's priorities: MASTER 100, BACKUP 90.
pub(crate) fn vrrp_priority(role: AmphoraRole) -> Option<i64> {
    match role {
        AmphoraRole::Master => Some(100),
        AmphoraRole::Backup => Some(90),
        AmphoraRole::Standalone => None,
    }
}

/// The amphora of a job's slot, if the slot built one.
pub(crate) async fn slot_amphora(ctx: &Ctx, slot: &'static str) -> R<Option<Amphora>> {
    let id = amphora_id(ctx, slot).await?;
    ctx.store.read(|tx| tx.get::<Amphora>(id)).await.map_err(db)
}

/// The allocated amphorae of the load balancer's ACTIVE_STANDBY pair with their own
/// addresses (HAProxy's `peers`); empty for SINGLE.
pub(crate) async fn pair_peers(ctx: &Ctx, lb_id: Id) -> R<Vec<rocta_drivers::Peer>> {
    Ok(pair_of(ctx, lb_id)
        .await?
        .into_iter()
        .filter_map(|a| {
            Some(rocta_drivers::Peer {
                amphora_id: a.id,
                address: a.vrrp_ip?,
            })
        })
        .collect())
}

async fn pair_of(ctx: &Ctx, lb_id: Id) -> R<Vec<Amphora>> {
    Ok(live_amphorae(ctx, lb_id)
        .await?
        .into_iter()
        .filter(|a| a.status == AmphoraStatus::Allocated)
        .filter(|a| matches!(a.role, Some(AmphoraRole::Master | AmphoraRole::Backup)))
        .collect())
}

/// keepalived on every allocated amphora of an ACTIVE_STANDBY load balancer, each told its
/// peer (after a failover the survivor learns its new peer and reloads, keeping the VIP).
/// With `with_config`, HAProxy's configuration is pushed to both again too, its `peers`
/// naming the pair as it is now (a failover replaced one). Nothing for SINGLE.
pub(crate) struct ConfigureVrrp {
    pub lb_id: Id,
    pub with_config: bool,
}

#[async_trait::async_trait]
impl Task<Ctx> for ConfigureVrrp {
    fn name(&self) -> &'static str {
        "configure_vrrp"
    }
    /// Pushed again on resume: the pair as it is now.
    fn journaled(&self) -> bool {
        false
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        let pair = pair_of(ctx, self.lb_id).await?;
        if pair.is_empty() {
            return Ok(Value::Null);
        }
        let lb = load_lb(ctx, self.lb_id).await?;
        let vip = vip_of(&lb).ok_or_else(|| TaskError::fatal("load balancer has no VIP"))?;
        let prefix = ctx
            .drivers
            .network
            .networks()
            .iter()
            .flat_map(|n| n.subnets.iter())
            .find(|s| s.id == vip.subnet_id)
            .and_then(|s| s.cidr.rsplit_once('/').map(|(_, p)| p.to_string()))
            .unwrap_or_else(|| "32".into());
        for a in &pair {
            let role = a.role.unwrap_or(AmphoraRole::Backup);
            let plan = VrrpPlan {
                lb_id: self.lb_id,
                priority: vrrp_priority(role).unwrap_or(90) as u8,
                src_ip: a.vrrp_ip.clone().unwrap_or_default(),
                peers: pair
                    .iter()
                    .filter(|p| p.id != a.id)
                    .filter_map(|p| p.vrrp_ip.clone())
                    .collect(),
                vip_cidr: format!("{}/{prefix}", vip.address),
                // Host addresses: the agent routed their subnets to the VIP interface.
                additional_cidrs: vip
                    .additional
                    .iter()
                    .map(|a| {
                        format!(
                            "{}/{}",
                            a.address,
                            if a.address.contains(':') { 128 } else { 32 }
                        )
                    })
                    .collect(),
                settings: ctx.topology.vrrp.clone(),
            };
            ctx.drivers
                .amphora
                .update_vrrp(a, &plan)
                .await
                .map_err(drv)?;
        }
        if self.with_config {
            push_config(ctx, self.lb_id, &pair).await?;
        }
        Ok(Value::Null)
    }
}
