//! Housekeeping (Octavia's `octavia-housekeeping`), three periodic duties that only read the
//! store and post durable jobs for the worker (they never touch an amphora themselves):
//! - the **spare pool**: keeps `spare_amphora_pool_size` amphorae booted and `READY`, so a load
//!   balancer create claims one instead of booting (refilled as creates consume them);
//! - the **purge**: removes `DELETED` load balancers and amphorae older than their expiry age
//!   (and the history of jobs that ended before the load balancers' expiry age), and releases VIPs allocated for load balancers never recorded (an API process died between
//!   the allocation and the commit; the API's intent record is older than
//!   `vip_allocation_grace`);
//! - **certificate rotation**: amphorae whose server certificate expires within
//!   `cert_expiry_buffer` get a new one (the agent swaps it without dropping a request).

use std::sync::Arc;
use std::time::Duration;

use rocta_model::*;
use rocta_service::tasks::{periodic, DutyStats};
use rocta_store::{CatalogKind, Filter, Store, StoreError, Tx};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// `[house_keeping]`, in the units the loops use.
#[derive(Debug, Clone)]
pub struct Settings {
    pub spare_pool_size: usize,
    pub spare_check_interval: Duration,
    pub cleanup_interval: Duration,
    pub amphora_expiry_age: Duration,
    pub load_balancer_expiry_age: Duration,
    pub cert_interval: Duration,
    pub cert_expiry_buffer: Duration,
    pub vip_allocation_grace: Duration,
}

/// How each duty has fared (rounds, errors), for logs and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub spares: Arc<DutyStats>,
    pub purge: Arc<DutyStats>,
    pub certs: Arc<DutyStats>,
}

/// Runs the three duties until `shutdown` (each through `rocta_service::tasks::periodic`:
/// error counts, back-off while failing); `wake` tells an in-process worker about new jobs.
pub async fn run(
    store: Store,
    s: Settings,
    wake: Arc<Notify>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let spares = periodic(
        "spare_pool",
        s.spare_check_interval,
        stats.spares.clone(),
        shutdown.clone(),
        || async {
            let n = fill_spares(&store, s.spare_pool_size).await?;
            if n > 0 {
                tracing::info!(booting = n, "refilling the spare amphora pool");
                wake.notify_one();
            }
            Ok::<_, StoreError>(())
        },
    );
    let purge = periodic(
        "purge",
        s.cleanup_interval,
        stats.purge.clone(),
        shutdown.clone(),
        || async {
            let (a, l, j) = purge(&store, s.amphora_expiry_age, s.load_balancer_expiry_age).await?;
            if a + l + j > 0 {
                tracing::info!(
                    amphorae = a,
                    loadbalancers = l,
                    jobs = j,
                    "purged deleted records and the history of old jobs"
                );
            }
            let n = release_abandoned_vips(&store, s.vip_allocation_grace).await?;
            if n > 0 {
                tracing::warn!(
                    loadbalancers = n,
                    "releasing VIPs of load balancers never recorded"
                );
                wake.notify_one();
            }
            Ok::<_, StoreError>(())
        },
    );
    let certs = periodic(
        "cert_rotation",
        s.cert_interval,
        stats.certs.clone(),
        shutdown.clone(),
        || async {
            let n = rotate_expiring(&store, s.cert_expiry_buffer).await?;
            if n > 0 {
                tracing::info!(amphorae = n, "rotating amphora certificates");
                wake.notify_one();
            }
            Ok::<_, StoreError>(())
        },
    );
    tokio::join!(spares, purge, certs);
}

fn post(tx: &Tx<'_>, job: &Job) -> Result<(), StoreError> {
    tx.job_post(job).map(drop)
}

/// Keeps `size` spares for load balancers without an availability zone and `size` for each
/// enabled availability zone (Octavia's spare pool per zone; a spare's zone is its compute
/// zone, `cached_zone`): posts one spare-creation job per missing spare (spares being built
/// count as present). Returns how many were posted.
pub async fn fill_spares(store: &Store, size: usize) -> Result<usize, StoreError> {
    if size == 0 {
        return Ok(0);
    }
    store
        .write(|tx| {
            tx.duty_lock("spares")?;
            let mut zones: Vec<Option<String>> = vec![None];
            zones.extend(
                tx.catalog_list(CatalogKind::AvailabilityZone)?
                    .into_iter()
                    .filter(|z| z.doc["enabled"] != false)
                    .map(|z| Some(z.key)),
            );
            let ready_ids = tx.amphorae_in(AmphoraStatus::Ready, i64::MAX)?;
            let ready = tx.list_in::<Amphora>(false, &ready_ids)?;
            let building = tx.open_jobs_named("create_spare_amphora")?;
            let mut posted = 0;
            for az in zones {
                let compute_zone = match &az {
                    Some(name) => {
                        tx.profile_setting(CatalogKind::AvailabilityZone, name, "compute_zone")?
                    }
                    None => None,
                };
                let have = ready
                    .iter()
                    .filter(|a| a.cached_zone == compute_zone)
                    .count()
                    + building
                        .iter()
                        .filter(|j| {
                            matches!(j, Job::CreateSpareAmphora { availability_zone } if *availability_zone == az)
                        })
                        .count();
                for _ in have..size {
                    post(
                        tx,
                        &Job::CreateSpareAmphora {
                            availability_zone: az.clone(),
                        },
                    )?;
                    posted += 1;
                }
            }
            Ok(posted)
        })
        .await
}

/// Purges what has been `DELETED` for longer than the expiry ages.
pub async fn purge(
    store: &Store,
    amphora_age: Duration,
    lb_age: Duration,
) -> Result<(usize, usize, usize), StoreError> {
    let now = time::now();
    let ago = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    store
        .write(|tx| {
            let (a, l) = tx.purge_deleted(ago(amphora_age), ago(lb_age))?;
            // Ended jobs are history as long as deleted load balancers are.
            let j = tx.job_history_purge(ago(lb_age))?;
            Ok((a, l, j as usize))
        })
        .await
}

/// Posts a `ReleaseVip` job for each VIP intent older than `grace` (taking the intent in the
/// same transaction, so the API can no longer record a load balancer with that VIP). Returns
/// how many were posted.
pub async fn release_abandoned_vips(store: &Store, grace: Duration) -> Result<usize, StoreError> {
    let cutoff = time::now_ms() - grace.as_millis() as i64;
    store
        .write(|tx| {
            tx.duty_lock("vips")?;
            let mut n = 0;
            for lb_id in tx.vip_intents_before(cutoff)? {
                // Only the transaction that ends the intent releases its VIP.
                if tx.vip_intent_end(lb_id)? {
                    post(tx, &Job::ReleaseVip { lb_id })?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
}

/// Posts a rotation job for each live amphora whose certificate expires within `buffer`
/// (none while earlier rotations are still unfinished). Returns how many were posted.
pub async fn rotate_expiring(store: &Store, buffer: Duration) -> Result<usize, StoreError> {
    let horizon = time::now() + chrono::Duration::from_std(buffer).unwrap_or(chrono::Duration::MAX);
    store
        .write(|tx| {
            tx.duty_lock("rotation")?;
            if tx.jobs_named("rotate_amphora_cert")? > 0 {
                return Ok(0);
            }
            let amps: Vec<Amphora> = tx.list(&Filter {
                live_only: true,
                ..Default::default()
            })?;
            let mut n = 0;
            for a in amps.iter().filter(|a| {
                matches!(a.status, AmphoraStatus::Allocated | AmphoraStatus::Ready)
                    && a.cert_expiration.is_some_and(|e| e < horizon)
            }) {
                post(
                    tx,
                    &Job::RotateAmphoraCert {
                        lb_id: a.loadbalancer_id.unwrap_or(Id::nil()),
                        amphora_id: a.id,
                    },
                )?;
                n += 1;
            }
            Ok(n)
        })
        .await
}
