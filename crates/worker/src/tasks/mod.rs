//! The steps of the flows. Every step is idempotent (it may run again after a crash) and its
//! revert copes with a step that never ran or ran only partly.
//!
//! Layout: `status` (`*ErrorOnRevert`, `MarkLbActive`, `Finalize`, `MarkLbDeleted`: the
//! provisioning statuses a flow moves), `amphora` (`CreateAmphora`, `WaitAmphora`, `PlugVip`,
//! `ApplyConfig`, `DeleteAmphorae`, spares, certificates, VIPs), `vrrp` (slot roles, the
//! topology, `ConfigureVrrp` for ACTIVE_STANDBY); here the helpers they share.

mod amphora;
mod status;
mod vrrp;

pub(crate) use amphora::*;
pub(crate) use status::*;
pub use vrrp::TopologySettings;
pub(crate) use vrrp::*;

use rocta_drivers::DriverError;
use rocta_flow::TaskError;
use rocta_model::*;
use rocta_store::StoreError;

use crate::Ctx;

type R<T> = Result<T, TaskError>;

fn db(e: StoreError) -> TaskError {
    match e {
        StoreError::Corrupt { .. } | StoreError::Encode(..) => TaskError::fatal(e.to_string()),
        e => TaskError::transient(e.to_string()),
    }
}

fn drv(e: DriverError) -> TaskError {
    TaskError {
        message: e.to_string(),
        retryable: e.retryable,
    }
}

/// The id of the amphora a job builds in `slot`: derived from the job, so a resumed step finds
/// the amphora it started instead of building a second one.
fn built_amphora_id(ctx: &Ctx, slot: &str) -> Id {
    uuid::Uuid::new_v5(&ctx.job_id, slot.as_bytes())
}

/// The amphora of a job's `slot`: the spare it claimed (recorded with the claim), else the one
/// it builds.
pub(crate) async fn amphora_id(ctx: &Ctx, slot: &'static str) -> R<Id> {
    let job = ctx.job_id;
    let claimed = ctx
        .store
        .read(|tx| tx.claim_get(job, slot))
        .await
        .map_err(db)?;
    Ok(claimed.unwrap_or_else(|| built_amphora_id(ctx, slot)))
}
