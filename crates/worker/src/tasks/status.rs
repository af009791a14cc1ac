//! Steps that move provisioning statuses: a flow's first step (`ERROR` on revert) and its last
//! (`ACTIVE`, or deleted).

use rocta_flow::{Outputs, Task};
use rocta_model::*;
use rocta_store::{Entity, Filter, Move, StoreError, Table, Tx};
use serde_json::Value;

use super::*;
use crate::Ctx;

pub(crate) fn table(kind: ChildKind) -> Table {
    match kind {
        ChildKind::Listener => Listener::TABLE,
        ChildKind::Pool => Pool::TABLE,
        ChildKind::Member => Member::TABLE,
        ChildKind::HealthMonitor => HealthMonitor::TABLE,
        ChildKind::L7Policy => L7Policy::TABLE,
        ChildKind::L7Rule => L7Rule::TABLE,
    }
}

const PENDING: [ProvisioningStatus; 3] = [
    ProvisioningStatus::PendingCreate,
    ProvisioningStatus::PendingUpdate,
    ProvisioningStatus::PendingDelete,
];

/// Whether this job's status steps may act on `lb_id`: it still holds the load balancer's lock.
/// It does not when a later job already locked the load balancer, which is possible only if
/// this job ended its statuses before (it was killed after its last status step, before the
/// journal recorded it): running that step again must not undo the later job's lock (a deleted
/// load balancer would come back `ACTIVE`).
fn holds_lock(tx: &Tx<'_>, job: Id, lb_id: Id) -> Result<bool, StoreError> {
    let holds = tx.job_holds_lb(job, lb_id)?;
    if !holds {
        tracing::info!(%lb_id, "a later job holds the load balancer; statuses left to it");
    }
    Ok(holds)
}

/// Back to `ACTIVE`: the load balancer and every child left pending by this change. Monitors
/// and L7 objects have no data-plane status of their own and go `ONLINE`, as in Octavia.
fn mark_lb_active(tx: &Tx<'_>, job: Id, lb_id: Id) -> Result<(), StoreError> {
    if !holds_lock(tx, job, lb_id)? {
        return Ok(());
    }
    let created_or_updated = [
        ProvisioningStatus::PendingCreate,
        ProvisioningStatus::PendingUpdate,
    ];
    let mv = |table: Table, by_lb: bool, op: Option<OperatingStatus>| Move {
        table,
        by_lb,
        key: lb_id,
        from: &created_or_updated,
        to: ProvisioningStatus::Active,
        op,
        offline_if_disabled: op.is_some(),
    };
    // Objects without traffic statuses of their own are ONLINE once provisioned, OFFLINE when
    // disabled (those this job provisions: the others keep their status and `updated_at`).
    let mut moves: Vec<Move<'_>> = Table::CHILDREN
        .iter()
        .map(|&t| match t {
            Table::HealthMonitors | Table::L7Policies | Table::L7Rules => {
                mv(t, true, Some(OperatingStatus::Online))
            }
            _ => mv(t, true, None),
        })
        .collect();
    moves.push(mv(Table::LoadBalancers, false, None));
    // One round trip on PostgreSQL.
    tx.transitions(&moves)?;
    Ok(())
}

/// First step of load-balancer flows: on revert the load balancer (and, for a graph create,
/// its pending children) end `ERROR`.
pub(crate) struct LbErrorOnRevert {
    pub lb_id: Id,
}

#[async_trait::async_trait]
impl Task<Ctx> for LbErrorOnRevert {
    fn name(&self) -> &'static str {
        "lb_error_on_revert"
    }
    fn journaled(&self) -> bool {
        false
    }
    async fn execute(&self, _: &Ctx, _: &Outputs) -> R<Value> {
        Ok(Value::Null)
    }
    async fn revert(&self, ctx: &Ctx, _: Option<&Value>, _: &Outputs) -> R<()> {
        ctx.store
            .write(|tx| {
                if !holds_lock(tx, ctx.job_id, self.lb_id)? {
                    return Ok(());
                }
                for t in Table::CHILDREN {
                    tx.transition_lb(t, self.lb_id, &PENDING, ProvisioningStatus::Error)?;
                }
                tx.transition(
                    Table::LoadBalancers,
                    &[self.lb_id],
                    &PENDING,
                    ProvisioningStatus::Error,
                )
                .map(drop)
            })
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// First step of child flows: on revert the objects end `ERROR` and the load balancer and its
/// listeners and pools go back to `ACTIVE` (Octavia's `*ToErrorOnRevertTask`).
pub(crate) struct ChildErrorOnRevert {
    pub lb_id: Id,
    pub kind: ChildKind,
    pub ids: Vec<Id>,
}

#[async_trait::async_trait]
impl Task<Ctx> for ChildErrorOnRevert {
    fn name(&self) -> &'static str {
        "child_error_on_revert"
    }
    fn journaled(&self) -> bool {
        false
    }
    async fn execute(&self, _: &Ctx, _: &Outputs) -> R<Value> {
        Ok(Value::Null)
    }
    async fn revert(&self, ctx: &Ctx, _: Option<&Value>, _: &Outputs) -> R<()> {
        ctx.store
            .write(|tx| {
                if !holds_lock(tx, ctx.job_id, self.lb_id)? {
                    return Ok(());
                }
                let updating = [ProvisioningStatus::PendingUpdate];
                tx.transition(
                    table(self.kind),
                    &self.ids,
                    &PENDING,
                    ProvisioningStatus::Error,
                )?;
                for t in [Table::Listeners, Table::Pools] {
                    tx.transition_lb(t, self.lb_id, &updating, ProvisioningStatus::Active)?;
                }
                tx.transition(
                    Table::LoadBalancers,
                    &[self.lb_id],
                    &updating,
                    ProvisioningStatus::Active,
                )
                .map(drop)
            })
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// Last step of load-balancer create/update/failover: everything pending goes `ACTIVE`.
pub(crate) struct MarkLbActive {
    pub lb_id: Id,
}

#[async_trait::async_trait]
impl Task<Ctx> for MarkLbActive {
    fn name(&self) -> &'static str {
        "mark_lb_active"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        ctx.store
            .write(|tx| mark_lb_active(tx, ctx.job_id, self.lb_id))
            .await
            .map_err(db)?;
        Ok(Value::Null)
    }
}

/// Last step of load-balancer delete: children removed, the load balancer `DELETED` (kept for
/// housekeeping to purge, as Octavia).
pub(crate) struct MarkLbDeleted {
    pub lb_id: Id,
}

#[async_trait::async_trait]
impl Task<Ctx> for MarkLbDeleted {
    fn name(&self) -> &'static str {
        "mark_lb_deleted"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        ctx.store
            .write(|tx| {
                if !holds_lock(tx, ctx.job_id, self.lb_id)? {
                    return Ok(());
                }
                let f = Filter {
                    lb_id: Some(self.lb_id),
                    ..Default::default()
                };
                let listeners: Vec<Id> = tx
                    .links(Table::Listeners, &f)?
                    .into_iter()
                    .map(|(_, id)| id)
                    .collect();
                tx.listener_stats_delete(&listeners)?;
                for t in Table::CHILDREN {
                    tx.delete_by_lb(t, self.lb_id)?;
                }
                tx.transition(
                    Table::LoadBalancers,
                    &[self.lb_id],
                    &[ProvisioningStatus::PendingDelete],
                    ProvisioningStatus::Deleted,
                )
                .map(drop)
            })
            .await
            .map_err(db)?;
        Ok(Value::Null)
    }
}

/// Last step of child flows: created and updated objects go `ACTIVE`, deleted ones are removed
/// with what hangs from them; then the load balancer and its listeners go `ACTIVE`.
pub(crate) struct Finalize {
    pub lb_id: Id,
    pub kind: ChildKind,
    pub delete: Vec<Id>,
}

#[async_trait::async_trait]
impl Task<Ctx> for Finalize {
    fn name(&self) -> &'static str {
        "finalize"
    }
    async fn execute(&self, ctx: &Ctx, _: &Outputs) -> R<Value> {
        ctx.store
            .write(|tx| {
                for id in &self.delete {
                    delete_child(tx, self.kind, *id)?;
                }
                mark_lb_active(tx, ctx.job_id, self.lb_id)
            })
            .await
            .map_err(db)?;
        Ok(Value::Null)
    }
}

/// Removes one child and everything that hangs from it.
fn delete_child(tx: &Tx<'_>, kind: ChildKind, id: Id) -> Result<(), StoreError> {
    let by_parent = |parent| Filter {
        parent_id: Some(parent),
        ..Default::default()
    };
    let children = |t: Table, parent: Id| -> Result<Vec<Id>, StoreError> {
        Ok(tx
            .links(t, &by_parent(parent))?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    };
    match kind {
        ChildKind::Listener => {
            for p in children(Table::L7Policies, id)? {
                delete_child(tx, ChildKind::L7Policy, p)?;
            }
            tx.listener_stats_delete(&[id])?;
        }
        ChildKind::Pool => {
            tx.delete(Table::Members, &children(Table::Members, id)?)?;
            tx.delete(Table::HealthMonitors, &children(Table::HealthMonitors, id)?)?;
            if let Some(p) = tx.get::<Pool>(id)? {
                let f = Filter {
                    lb_id: Some(p.lb_id),
                    ..Default::default()
                };
                for mut l in tx.list::<Listener>(&f)? {
                    if l.default_pool_id == Some(id) {
                        l.default_pool_id = None;
                        tx.update(&l)?;
                    }
                }
            }
        }
        ChildKind::L7Policy => {
            tx.delete(Table::L7Rules, &children(Table::L7Rules, id)?)?;
            if let Some(p) = tx.get::<L7Policy>(id)? {
                // Keep positions contiguous from 1.
                let mut rest: Vec<L7Policy> = tx
                    .list::<L7Policy>(&by_parent(p.listener_id))?
                    .into_iter()
                    .filter(|o| o.id != id)
                    .collect();
                rest.sort_by_key(|o| o.position);
                for (i, mut o) in rest.into_iter().enumerate() {
                    if o.position != i as i64 + 1 {
                        o.position = i as i64 + 1;
                        tx.update(&o)?;
                    }
                }
            }
        }
        ChildKind::Member | ChildKind::HealthMonitor | ChildKind::L7Rule => {}
    }
    tx.delete(table(kind), &[id])?;
    Ok(())
}
