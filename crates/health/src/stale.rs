//! Stale-amphora detection (Octavia's `health_check`): every `health_check_interval`, amphorae
//! whose last counted heartbeat is older than `heartbeat_timeout` are failed over by a durable
//! job for the worker, their load balancer tested-and-set `ACTIVE|ERROR → PENDING_UPDATE` in the
//! same transaction (a load balancer already busy is left for a later round).
//!
//! Three guards keep healthy amphorae from being replaced: a freshly started (or reconnected)
//! health manager waits `heartbeat_timeout` before judging; an amphora heard at the socket
//! within the timeout is never stale, whatever the writer's backlog; and when
//! `failover_threshold` or more amphorae look stale at once, none is failed over (this health
//! manager is more likely cut off than they are dead), which is logged and counted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocta_model::*;
use rocta_service::tasks::{periodic, DutyStats};
use rocta_store::{Store, StoreError, Table};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Metrics;

/// The newest authenticated heartbeat heard per amphora at the socket, before any queue, with
/// its sequence number (a replayed datagram does not refresh it).
#[derive(Debug, Default)]
pub struct Heard(Mutex<HashMap<String, (u64, Instant)>>);

impl Heard {
    pub(crate) fn heard(&self, amphora: &str, seq: u64) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(amphora) {
            Some(e) if e.0 >= seq => {}
            Some(e) => *e = (seq, Instant::now()),
            None => {
                m.insert(amphora.to_string(), (seq, Instant::now()));
            }
        }
    }

    fn within(&self, amphora: &str, timeout: Duration) -> bool {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.get(amphora).is_some_and(|(_, t)| t.elapsed() < timeout)
    }
}

/// Settings of the checker (`[health_manager]`).
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub heartbeat_timeout: Duration,
    pub interval: Duration,
    /// 0: no threshold.
    pub failover_threshold: u64,
    /// With a threshold, how much longer than `heartbeat_timeout` an amphora must stay silent
    /// before it is failed over (the longer of the check and heartbeat intervals): amphorae
    /// that fall silent together, as when this health manager is cut off, are then counted
    /// together instead of the first of them being failed over alone.
    pub confirm_for: Duration,
    /// Where the counters are written in Prometheus' text format.
    pub metrics_file: Option<PathBuf>,
}

/// Runs the checker until `shutdown`; `wake` tells an in-process worker about new jobs.
pub async fn check_loop(
    store: Store,
    cfg: CheckConfig,
    metrics: Arc<Metrics>,
    heard: Arc<Heard>,
    wake: Arc<Notify>,
    stats: Arc<DutyStats>,
    shutdown: CancellationToken,
) {
    let judge_after = std::sync::Mutex::new(Instant::now() + cfg.heartbeat_timeout);
    tracing::info!(
        grace_s = cfg.heartbeat_timeout.as_secs_f64(),
        "stale-amphora checks start after a grace period"
    );
    let due = || {
        judge_after
            .lock()
            .map(|t| Instant::now() >= *t)
            .unwrap_or(false)
    };
    let round = || async {
        let result = if due() {
            check_once(&store, &cfg, &metrics, &heard).await
        } else {
            Ok(0)
        };
        if let Some(path) = &cfg.metrics_file {
            if let Err(e) = write_metrics(path, &metrics) {
                tracing::debug!(error = %e, "writing the metrics file failed");
            }
        }
        match result {
            Ok(n) => {
                if n > 0 {
                    wake.notify_one();
                }
                Ok(())
            }
            Err(e) => {
                // As Octavia: after a database outage amphorae get a new grace period.
                if let Ok(mut t) = judge_after.lock() {
                    *t = Instant::now() + cfg.heartbeat_timeout;
                }
                Err(e)
            }
        }
    };
    periodic("stale_check", cfg.interval, stats, shutdown, round).await;
}

/// One round; returns how many failovers were started.
pub async fn check_once(
    store: &Store,
    cfg: &CheckConfig,
    metrics: &Metrics,
    heard: &Heard,
) -> Result<usize, StoreError> {
    let timeout_ms = cfg.heartbeat_timeout.as_millis() as i64;
    let cutoff = crate::now_ms() - timeout_ms;
    let stale: Vec<(Id, Id)> = store
        .read(|tx| tx.stale_amphorae(cutoff))
        .await?
        .into_iter()
        .filter(|(amp, _)| !heard.within(&amp.to_string(), cfg.heartbeat_timeout))
        .collect();
    metrics.stale.store(stale.len() as u64, Ordering::Relaxed);
    if stale.is_empty() {
        return Ok(0);
    }
    if cfg.failover_threshold > 0 && stale.len() as u64 >= cfg.failover_threshold {
        metrics.failover_stopped.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            stale = stale.len(),
            threshold = cfg.failover_threshold,
            "{} amphorae look stale at once, at or above failover_threshold: no failover this \
             round (is this health manager cut off from the management network?)",
            stale.len()
        );
        return Ok(0);
    }
    // With a threshold, only those already silent for a while longer go now; the others are
    // counted again next round, together with whatever falls silent meanwhile.
    let stale = if cfg.failover_threshold > 0 {
        let confirmed_cutoff = cutoff - cfg.confirm_for.as_millis() as i64;
        let confirmed: Vec<Id> = store
            .read(|tx| tx.stale_amphorae(confirmed_cutoff))
            .await?
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        stale
            .into_iter()
            .filter(|(a, _)| confirmed.contains(a))
            .collect()
    } else {
        stale
    };
    let mut started = 0;
    for (amp, lb) in stale {
        let job = Job::FailoverAmphora {
            lb_id: lb,
            amphora_id: amp,
        };
        let posted = store
            .write(|tx| -> Result<bool, StoreError> {
                // Conditional: of two health managers judging the same amphora, one locks
                // the load balancer and posts the failover, the other finds it locked.
                let locked = tx.transition(
                    Table::LoadBalancers,
                    &[lb],
                    &[ProvisioningStatus::Active, ProvisioningStatus::Error],
                    ProvisioningStatus::PendingUpdate,
                )?;
                if locked != 1 {
                    return Ok(false);
                }
                tx.job_post(&job)?;
                Ok(true)
            })
            .await?;
        if posted {
            started += 1;
            metrics.failovers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(amphora = %amp, loadbalancer = %lb, "amphora stale: failing over");
        }
    }
    Ok(started)
}

/// Rewrites the Prometheus text file of the counters (atomically: a reader never sees half);
/// the same figures `/metrics` shows.
pub fn write_metrics(path: &std::path::Path, m: &Arc<Metrics>) -> std::io::Result<()> {
    use rocta_service::metrics::prometheus_client;
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(m.clone()));
    let mut t = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut t, &registry)
        .map_err(std::io::Error::other)?;
    rocta_service::atomic_write(path, t.as_bytes(), 0o644)
}
