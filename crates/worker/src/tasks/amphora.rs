//! Steps that build, configure and remove amphorae and their VIPs.

use rocta_drivers::{AdditionalVipAddress, Vip};
use rocta_flow::{Outputs, RetryPolicy, Task, TaskError};
use rocta_model::time;
use rocta_model::*;
use rocta_store::{CatalogKind, Filter, StoreError, Tx};
use serde_json::{json, Value};

use super::*;
use crate::Ctx;

/// Boots the amphora of `slot` for the load balancer.
pub(crate) struct CreateAmphora {
    /// `None`: a spare.
    pub lb_id: Option<Id>,
    pub slot: &'static str,
    /// Claim a `READY` spare when there is one instead of booting.
    pub use_spare: bool,
    /// A spare's availability zone (a load balancer's amphora takes its load balancer's).
    pub spare_zone: Option<String>,
    /// Its role in the load balancer's topology.
    pub role: SlotRole,
}

/// Where an amphora goes and what it is built with: from its load balancer's availability
/// zone (its profile's `compute_zone` and `management_network`) and flavor (its profile's
/// `compute_flavor`, `amp_image_tag`), or a spare's zone.
#[derive(Debug, Default, Clone, PartialEq)]
struct Placement {
    zone: Option<String>,
    management_network: Option<String>,
    compute_flavor: Option<String>,
    image_tag: Option<String>,
}

async fn placement(ctx: &Ctx, lb_id: Option<Id>, spare_zone: Option<&str>) -> R<Placement> {
    let spare_zone = spare_zone.map(str::to_string);
    ctx.store
        .read(|tx| {
            let (az, flavor) = match lb_id {
                Some(id) => match tx.get::<LoadBalancer>(id)? {
                    Some(lb) => (lb.availability_zone, lb.flavor_id),
                    None => (None, None),
                },
                None => (spare_zone, None),
            };
            // The settings of each profile, read once.
            let settings = |kind, key: Option<String>| match key {
                Some(k) => Ok(tx.catalog_profiled(kind, &k)?.map(|p| p.settings)),
                None => Ok::<_, StoreError>(None),
            };
            let (zone, flavor) = (
                settings(CatalogKind::AvailabilityZone, az)?,
                settings(CatalogKind::Flavor, flavor)?,
            );
            let get = |s: &Option<Value>, name: &str| {
                s.as_ref()
                    .and_then(|s| s[name].as_str().map(str::to_string))
            };
            Ok(Placement {
                zone: get(&zone, "compute_zone"),
                management_network: get(&zone, "management_network"),
                compute_flavor: get(&flavor, "compute_flavor"),
                image_tag: get(&flavor, "amp_image_tag"),
            })
        })
        .await
        .map_err(db)
}

#[async_trait::async_trait]
impl Task<Ctx> for CreateAmphora {
    fn name(&self) -> &'static str {
        "create_amphora"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        let lb_id = self.lb_id;
        let role = match slot_role(ctx, lb_id, &self.role).await? {
            Some(r) => r,
            // The second amphora of a SINGLE load balancer: none.
            None => return Ok(json!({ "skipped": true })),
        };
        let place = placement(ctx, lb_id, self.spare_zone.as_deref()).await?;
        // Spares are booted with the default compute flavor: a flavor that names another one
        // gets an amphora of its own.
        let use_spare =
            self.use_spare && place.compute_flavor.is_none() && place.image_tag.is_none();
        if let (Some(lb), true) = (lb_id, use_spare) {
            let (job, slot, built) = (ctx.job_id, self.slot, built_amphora_id(ctx, self.slot));
            let zone = place.zone.as_deref();
            let spare = ctx
                .store
                .write(|tx| claim_spare(tx, job, slot, built, lb, zone))
                .await
                .map_err(db)?;
            if let Some(id) = spare {
                update_amphora(ctx, id, |a| a.role = role).await?;
                return Ok(json!({ "amphora_id": id, "spare": true }));
            }
        }
        let id = amphora_id(ctx, self.slot).await?;
        ctx.store
            .write(|tx| {
                if tx.get::<Amphora>(id)?.is_none() {
                    tx.insert(&Amphora {
                        id,
                        loadbalancer_id: lb_id,
                        compute_id: None,
                        lb_network_ip: None,
                        vrrp_ip: None,
                        ha_ip: None,
                        vrrp_port_id: None,
                        ha_port_id: None,
                        cert_expiration: None,
                        cert_busy: false,
                        role,
                        status: AmphoraStatus::PendingCreate,
                        vrrp_interface: None,
                        vrrp_id: None,
                        vrrp_priority: None,
                        cached_zone: place.zone.clone(),
                        created_at: time::now(),
                        updated_at: None,
                        image_id: None,
                        compute_flavor: place.compute_flavor.clone(),
                    })?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .map_err(db)?;
        let cert = ctx
            .drivers
            .certs
            .issue_amphora_cert(id)
            .await
            .map_err(drv)?;
        let boot = rocta_drivers::Boot {
            server_pem: cert.pem.clone(),
            client_ca_pem: ctx.drivers.certs.client_ca_pem(),
            zone: place.zone.clone(),
            compute_flavor: place.compute_flavor.clone(),
            image_tag: place.image_tag.clone(),
            management_network: place.management_network.clone(),
            pair_of: lb_id
                .filter(|_| matches!(role, Some(AmphoraRole::Master | AmphoraRole::Backup))),
        };
        let inst = ctx.drivers.compute.create(id, &boot).await.map_err(drv)?;
        update_amphora(ctx, id, |a| {
            a.compute_id = Some(inst.compute_id.clone());
            a.lb_network_ip = Some(inst.lb_network_ip.clone());
            a.cert_expiration =
                chrono::DateTime::from_timestamp(cert.not_after, 0).map(|d| d.naive_utc());
            a.status = AmphoraStatus::Booting;
        })
        .await?;
        Ok(json!({ "amphora_id": id }))
    }
    async fn revert(&self, ctx: &Ctx, _: Option<&Value>, _: &Outputs) -> R<()> {
        let id = amphora_id(ctx, self.slot).await?;
        destroy_amphora(ctx, id, None).await
    }
}

/// Claims the oldest `READY` spare for (`job`, `slot`) in one transaction, unless the slot
/// already has its amphora (a claim, or a built one: the step is running again).
fn claim_spare(
    tx: &Tx<'_>,
    job: Id,
    slot: &str,
    built: Id,
    lb: Id,
    zone: Option<&str>,
) -> Result<Option<Id>, StoreError> {
    if let Some(id) = tx.claim_get(job, slot)? {
        return Ok(Some(id));
    }
    if tx.get::<Amphora>(built)?.is_some() {
        return Ok(None);
    }
    // A spare of the load balancer's zone is taken by moving it out of READY: of two workers
    // taking the same one, one moves it and the other moves on.
    let ready = tx.amphorae_in(AmphoraStatus::Ready, SPARES_LOOKED_AT)?;
    for spare in tx.list_in::<Amphora>(false, &ready)? {
        if spare.cached_zone.as_deref() != zone {
            continue;
        }
        let id = spare.id;
        if !tx.amphora_transition(id, &[AmphoraStatus::Ready], AmphoraStatus::Allocated)? {
            continue;
        }
        if let Some(mut a) = tx.get::<Amphora>(id)? {
            a.loadbalancer_id = Some(lb);
            a.status = AmphoraStatus::Allocated;
            a.updated_at = Some(time::now());
            tx.update(&a)?;
            tx.claim_put(job, slot, id)?;
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// How many `READY` spares a claim looks through for one of its zone.
const SPARES_LOOKED_AT: i64 = 256;

/// A booted spare is ready to be claimed.
pub(crate) struct MarkAmphoraReady {
    pub slot: &'static str,
}

#[async_trait::async_trait]
impl Task<Ctx> for MarkAmphoraReady {
    fn name(&self) -> &'static str {
        "mark_amphora_ready"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        let id = amphora_id(ctx, self.slot).await?;
        update_amphora(ctx, id, |a| {
            a.status = AmphoraStatus::Ready;
        })
        .await?;
        Ok(Value::Null)
    }
}

/// Gives an amphora a new server certificate (the agent swaps it without dropping a
/// connection) and records its expiry.
pub(crate) struct RotateCert {
    pub amphora_id: Id,
}

#[async_trait::async_trait]
impl Task<Ctx> for RotateCert {
    fn name(&self) -> &'static str {
        "rotate_cert"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        let id = self.amphora_id;
        let amp = load_amphora(ctx, id).await?;
        if matches!(
            amp.status,
            AmphoraStatus::Deleted | AmphoraStatus::PendingDelete
        ) {
            return Ok(Value::Null);
        }
        let cert = ctx
            .drivers
            .certs
            .issue_amphora_cert(id)
            .await
            .map_err(drv)?;
        ctx.drivers
            .amphora
            .rotate_cert(&amp, &cert.pem)
            .await
            .map_err(drv)?;
        update_amphora(ctx, id, |a| {
            a.cert_expiration =
                chrono::DateTime::from_timestamp(cert.not_after, 0).map(|d| d.naive_utc());
            a.cert_busy = false;
        })
        .await?;
        Ok(Value::Null)
    }
}

/// Pushes the agent configuration the controller now has to one amphora (Octavia's
/// `AmphoraConfigUpdate`); a deleted amphora is left alone.
pub(crate) struct UpdateAgentConfig {
    pub amphora_id: Id,
}

#[async_trait::async_trait]
impl Task<Ctx> for UpdateAgentConfig {
    fn name(&self) -> &'static str {
        "update_agent_config"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        let amp = load_amphora(ctx, self.amphora_id).await?;
        if matches!(
            amp.status,
            AmphoraStatus::Deleted | AmphoraStatus::PendingDelete
        ) {
            return Ok(Value::Null);
        }
        let config = ctx
            .drivers
            .compute
            .agent_config(amp.id)
            .await
            .map_err(drv)?;
        ctx.drivers
            .amphora
            .update_agent_config(&amp, &config)
            .await
            .map_err(drv)?;
        Ok(Value::Null)
    }
}

/// Tears an amphora down (every part idempotent) and marks it `DELETED`.
async fn destroy_amphora(ctx: &Ctx, id: Id, vip: Option<&Vip>) -> R<()> {
    let amp = ctx
        .store
        .read(|tx| tx.get::<Amphora>(id))
        .await
        .map_err(db)?;
    if let Some(a) = &amp {
        if let Some(lb) = a.loadbalancer_id {
            // Best effort, as Octavia: a failed-over amphora is usually dead, and deleting
            // its compute instance below ends whatever still runs.
            if let Err(e) = ctx.drivers.amphora.remove(a, lb).await {
                tracing::info!(amphora = %id, error = %e, "amphora unreachable; deleting it anyway");
            }
        }
        if let Some(v) = vip {
            ctx.drivers.network.unplug_vip(a, v).await.map_err(drv)?;
        }
        ctx.drivers.network.release_amphora(a).await.map_err(drv)?;
    }
    ctx.drivers.compute.delete(id).await.map_err(drv)?;
    ctx.drivers
        .certs
        .revoke_amphora_cert(id)
        .await
        .map_err(drv)?;
    update_amphora(ctx, id, |a| {
        a.status = AmphoraStatus::Deleted;
    })
    .await
}

/// Changes one amphora's record (a missing one is left alone) and stamps `updated_at`.
async fn update_amphora(ctx: &Ctx, id: Id, change: impl FnOnce(&mut Amphora)) -> R<()> {
    ctx.store
        .write(|tx| {
            if let Some(mut a) = tx.get::<Amphora>(id)? {
                change(&mut a);
                a.updated_at = Some(time::now());
                tx.update(&a)?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(db)
}

/// Waits until the amphora's agent answers.
pub(crate) struct WaitAmphora {
    pub slot: &'static str,
}

#[async_trait::async_trait]
impl Task<Ctx> for WaitAmphora {
    fn name(&self) -> &'static str {
        "wait_amphora"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        let Some(amp) = slot_amphora(ctx, self.slot).await? else {
            return Ok(Value::Null);
        };
        let id = amp.id;
        // An instance that died while booting will never answer: give up now (the flow
        // reverts) rather than after every retry, as Octavia does for a VM gone to ERROR.
        if let Some(why) = ctx.drivers.compute.stopped(id).await.map_err(drv)? {
            return Err(TaskError::fatal(format!(
                "amphora {id} stopped while booting: {why}"
            )));
        }
        ctx.drivers.amphora.wait_ready(&amp).await.map_err(drv)?;
        Ok(Value::Null)
    }
    fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: 300,
            initial: std::time::Duration::from_millis(10),
            max: std::time::Duration::from_millis(500),
        }
    }
}

async fn load_amphora(ctx: &Ctx, id: Id) -> R<Amphora> {
    ctx.store
        .read(|tx| tx.get::<Amphora>(id))
        .await
        .map_err(db)?
        .ok_or_else(|| TaskError::fatal(format!("amphora {id} vanished")))
}

pub(crate) async fn load_lb(ctx: &Ctx, id: Id) -> R<LoadBalancer> {
    ctx.store
        .read(|tx| tx.get::<LoadBalancer>(id))
        .await
        .map_err(db)?
        .ok_or_else(|| TaskError::fatal(format!("load balancer {id} vanished")))
}

pub(crate) fn vip_of(lb: &LoadBalancer) -> Option<Vip> {
    Some(Vip {
        address: lb.vip_address.clone()?,
        port_id: lb.vip_port_id.clone()?,
        subnet_id: lb.vip_subnet_id.clone().unwrap_or_default(),
        network_id: lb.vip_network_id.clone().unwrap_or_default(),
        additional: lb
            .additional_vips
            .iter()
            .filter_map(|a| {
                Some(AdditionalVipAddress {
                    subnet_id: a.subnet_id.clone(),
                    address: a.ip_address.clone()?,
                })
            })
            .collect(),
    })
}

/// Attaches the amphora of `slot` to the VIP and marks it `ALLOCATED`.
pub(crate) struct PlugVip {
    pub lb_id: Id,
    pub slot: &'static str,
}

#[async_trait::async_trait]
impl Task<Ctx> for PlugVip {
    fn name(&self) -> &'static str {
        "plug_vip"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        let Some(amp) = slot_amphora(ctx, self.slot).await? else {
            return Ok(Value::Null);
        };
        let id = amp.id;
        let lb = load_lb(ctx, self.lb_id).await?;
        let vip = vip_of(&lb).ok_or_else(|| TaskError::fatal("load balancer has no VIP"))?;
        let role = amp.role.unwrap_or(AmphoraRole::Standalone);
        let plug = ctx
            .drivers
            .network
            .plug_vip(&amp, &vip)
            .await
            .map_err(drv)?;
        ctx.drivers
            .amphora
            .post_vip_plug(&amp, &vip, &plug)
            .await
            .map_err(drv)?;
        update_amphora(ctx, id, |a| {
            a.vrrp_ip = Some(plug.vrrp_ip.clone());
            a.ha_ip = Some(plug.ha_ip.clone());
            a.vrrp_port_id = Some(plug.vrrp_port_id.clone());
            a.ha_port_id = Some(plug.ha_port_id.clone());
            a.role = Some(role);
            a.vrrp_id = Some(1);
            a.vrrp_priority = vrrp_priority(role);
            a.vrrp_interface = (role != AmphoraRole::Standalone).then(|| "eth1".into());
            a.status = AmphoraStatus::Allocated;
        })
        .await?;
        Ok(Value::Null)
    }
    async fn revert(&self, ctx: &Ctx, _: Option<&Value>, _: &Outputs) -> R<()> {
        let id = amphora_id(ctx, self.slot).await?;
        let lb = load_lb(ctx, self.lb_id).await?;
        let amp = ctx
            .store
            .read(|tx| tx.get::<Amphora>(id))
            .await
            .map_err(db)?;
        if let (Some(a), Some(v)) = (amp, vip_of(&lb)) {
            ctx.drivers.network.unplug_vip(&a, &v).await.map_err(drv)?;
        }
        Ok(())
    }
}

/// Loads what the amphorae must serve now.
pub(crate) async fn load_tree(ctx: &Ctx, lb_id: Id) -> R<LbTree> {
    ctx.store
        .read_single(|tx| tx.lb_tree(lb_id))
        .await
        .map_err(db)
        .map(LbTree::without_pending_deletes)
}

/// Pushes the load balancer's desired state to its amphorae (all allocated ones, or only the
/// one of `slot`).
pub(crate) struct ApplyConfig {
    pub lb_id: Id,
    /// Only the amphorae this job built in these slots (failover: the old ones may be dead).
    pub only_slots: Option<&'static [&'static str]>,
}

#[async_trait::async_trait]
impl Task<Ctx> for ApplyConfig {
    fn name(&self) -> &'static str {
        "apply_config"
    }
    /// The whole desired state, pushed again on resume.
    fn journaled(&self) -> bool {
        false
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        let amps: Vec<Amphora> = match self.only_slots {
            Some(slots) => {
                let mut v = Vec::new();
                for slot in slots {
                    v.extend(slot_amphora(ctx, slot).await?);
                }
                v
            }
            None => live_amphorae(ctx, self.lb_id).await?,
        };
        push_config(ctx, self.lb_id, &amps).await?;
        Ok(Value::Null)
    }
}

/// Makes the allocated ones of `amps` serve the load balancer's desired state: their ports on
/// the member subnets first, then the configuration with the pair's peers, then the ports of
/// subnets no member is on any more removed.
pub(crate) async fn push_config(ctx: &Ctx, lb_id: Id, amps: &[Amphora]) -> R<()> {
    let tree = load_tree(ctx, lb_id).await?;
    // The VIP's filtering first (a new listener's port opened before it serves).
    ctx.drivers.network.update_vip(&tree).await.map_err(drv)?;
    let peers = pair_peers(ctx, lb_id).await?;
    let member_subnets = member_subnets(&tree);
    for a in amps.iter().filter(|a| a.status == AmphoraStatus::Allocated) {
        // Members on other subnets than the VIP's are reached through a port on theirs.
        for subnet in &member_subnets {
            let plug = ctx
                .drivers
                .network
                .plug_network(a, subnet)
                .await
                .map_err(drv)?;
            if let Some(p) = plug {
                ctx.drivers
                    .amphora
                    .post_network_plug(a, &p)
                    .await
                    .map_err(drv)?;
            }
        }
        ctx.drivers
            .amphora
            .apply(a, &tree, &peers)
            .await
            .map_err(drv)?;
        // Then the subnets no member is on any more are let go.
        ctx.drivers
            .network
            .unplug_networks(a, &member_subnets)
            .await
            .map_err(drv)?;
    }
    Ok(())
}

/// The subnets of the tree's members other than the VIP's, each once.
fn member_subnets(tree: &LbTree) -> Vec<String> {
    let vip = tree
        .loadbalancer
        .as_ref()
        .and_then(|lb| lb.vip_subnet_id.clone());
    let mut v: Vec<String> = Vec::new();
    for m in &tree.members {
        if let Some(s) = &m.subnet_id {
            if Some(s) != vip.as_ref() && !v.contains(s) {
                v.push(s.clone());
            }
        }
    }
    v
}

pub(crate) async fn live_amphorae(ctx: &Ctx, lb_id: Id) -> R<Vec<Amphora>> {
    ctx.store
        .read_single(|tx| {
            tx.list::<Amphora>(&Filter {
                lb_id: Some(lb_id),
                live_only: true,
                ..Default::default()
            })
        })
        .await
        .map_err(db)
}

/// Deletes the load balancer's amphorae: all of them, one (`only`), or all but the one this
/// job built in `keep_slot` (failover).
pub(crate) struct DeleteAmphorae {
    pub lb_id: Id,
    pub only: Option<Id>,
    pub keep_slots: &'static [&'static str],
    /// Only the one a replacement of this role replaces (see `replaces`).
    pub only_role: Option<AmphoraRole>,
}

#[async_trait::async_trait]
impl Task<Ctx> for DeleteAmphorae {
    fn name(&self) -> &'static str {
        "delete_amphorae"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        let lb = load_lb(ctx, self.lb_id).await?;
        let vip = vip_of(&lb);
        let mut keep = Vec::new();
        for s in self.keep_slots {
            keep.push(amphora_id(ctx, s).await?);
        }
        for a in live_amphorae(ctx, self.lb_id).await? {
            if keep.contains(&a.id)
                || self.only.is_some_and(|o| o != a.id)
                || self.only_role.is_some_and(|r| !replaces(r, a.role))
            {
                continue;
            }
            destroy_amphora(ctx, a.id, vip.as_ref()).await?;
        }
        Ok(Value::Null)
    }
}

/// Tears down one amphora an administrator deleted (it was `ERROR`, the API set it
/// `PENDING_DELETE`): unplugged from its load balancer's VIP if it had one, its instance and
/// certificate gone, `DELETED`. On revert it is `ERROR` again.
pub(crate) struct DeleteErroredAmphora {
    pub amphora_id: Id,
}

#[async_trait::async_trait]
impl Task<Ctx> for DeleteErroredAmphora {
    fn name(&self) -> &'static str {
        "delete_errored_amphora"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        let amp = ctx
            .store
            .read(|tx| tx.get::<Amphora>(self.amphora_id))
            .await
            .map_err(db)?;
        let lb = match amp.and_then(|a| a.loadbalancer_id) {
            Some(lb_id) => ctx
                .store
                .read(|tx| tx.get::<LoadBalancer>(lb_id))
                .await
                .map_err(db)?,
            None => None,
        };
        let vip = lb.as_ref().and_then(vip_of);
        destroy_amphora(ctx, self.amphora_id, vip.as_ref()).await?;
        Ok(Value::Null)
    }
    async fn revert(&self, ctx: &Ctx, _: Option<&Value>, _: &Outputs) -> R<()> {
        let id = self.amphora_id;
        ctx.store
            .write(|tx| {
                tx.amphora_transition(id, &[AmphoraStatus::PendingDelete], AmphoraStatus::Error)
            })
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// Releases the VIP.
pub(crate) struct DeallocateVip {
    pub lb_id: Id,
}

#[async_trait::async_trait]
impl Task<Ctx> for DeallocateVip {
    fn name(&self) -> &'static str {
        "deallocate_vip"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        let lb = load_lb(ctx, self.lb_id).await?;
        if let Some(v) = vip_of(&lb) {
            ctx.drivers.network.deallocate_vip(&v).await.map_err(drv)?;
        }
        Ok(Value::Null)
    }
}

/// Releases the VIP allocated for a load balancer that was never recorded.
pub(crate) struct ReleaseVipsOf {
    pub lb_id: Id,
}

#[async_trait::async_trait]
impl Task<Ctx> for ReleaseVipsOf {
    fn name(&self) -> &'static str {
        "release_vips_of"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        ctx.drivers
            .network
            .deallocate_vips_of(self.lb_id)
            .await
            .map_err(drv)?;
        Ok(Value::Null)
    }
}
