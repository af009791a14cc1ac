//! The controller worker: claims jobs from the durable queue and runs each job's flow (ordered,
//! journaled, revertible tasks) against the drivers, ending every object `ACTIVE` or `ERROR`.
//!
//! Several workers (in one process or many) can share one database: a job is owned through a
//! lease that the running worker renews; a job whose worker died is resumed from its journal by
//! the next worker that claims it. A job claimed too many times (it keeps killing its worker) is
//! reverted instead of run again.
//!
//! Layout: `Worker` (the claim loop, lease renewal, the journal over the store), `flows` (one
//! flow per job kind) and `tasks` (the steps, grouped by what they act on).

mod flows;
mod metrics;
mod tasks;

pub use tasks::TopologySettings;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocta_drivers::Drivers;
use rocta_flow::{Journal, JournalError, JournalState, Outcome};
use rocta_model::{Id, Job};
use rocta_store::{JobRow, JobState, Store, StoreError};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// A job claimed this many times is reverted rather than run again (it keeps killing workers).
const MAX_ATTEMPTS: i64 = 5;

/// Worker settings (from `[controller_worker]`).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs run at once.
    pub concurrency: usize,
    pub lease: Duration,
    /// How often to look for jobs posted by other processes.
    pub poll: Duration,
    /// Up while another process's jobs are pushed to this one (PostgreSQL `LISTEN`): the
    /// worker then only sweeps now and then (`PUSHED_SWEEP`) for jobs nobody told it about.
    pub pushed: Option<Arc<AtomicBool>>,
    /// The default topology and the VRRP settings of ACTIVE_STANDBY pairs.
    pub topology: TopologySettings,
}

/// The sweep interval while jobs are pushed.
const PUSHED_SWEEP: Duration = Duration::from_secs(1);

/// What every task of a job can reach.
pub(crate) struct Ctx {
    pub store: Store,
    pub drivers: Drivers,
    pub job_id: Id,
    pub topology: TopologySettings,
}

/// The worker role.
pub struct Worker {
    store: Store,
    drivers: Drivers,
    cfg: WorkerConfig,
    /// Woken by the API (same process) when it posts a job, and by finished jobs.
    wake: Arc<Notify>,
    owner: String,
}

pub(crate) use rocta_model::time::now_ms;

impl Worker {
    fn sweep_interval(&self) -> Duration {
        match &self.cfg.pushed {
            Some(up) if up.load(Ordering::Relaxed) => PUSHED_SWEEP.max(self.cfg.poll),
            _ => self.cfg.poll,
        }
    }

    pub fn new(store: Store, drivers: Drivers, cfg: WorkerConfig, wake: Arc<Notify>) -> Self {
        let owner = format!("worker-{}-{}", std::process::id(), rocta_model::new_id());
        Worker {
            store,
            drivers,
            cfg,
            wake,
            owner,
        }
    }

    /// Claims and runs jobs until `shutdown`; then stops claiming, lets running jobs finish
    /// (they are crash-safe, so the caller may also just exit after its grace period).
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.cfg.concurrency));
        let tracker = TaskTracker::new();
        tracing::info!(owner = %this.owner, concurrency = this.cfg.concurrency, "worker started");
        loop {
            // Fill free slots with claimable jobs.
            while let Ok(permit) = slots.clone().try_acquire_owned() {
                let lease = this.cfg.lease.as_millis() as i64;
                let claimed = this.store.job_claim(&this.owner, now_ms(), lease).await;
                match claimed {
                    Ok(Some(job)) => {
                        let w = this.clone();
                        tracker.spawn(async move {
                            w.run_job(job).await;
                            drop(permit);
                            w.wake.notify_one();
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming a job failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = this.wake.notified() => {}
                _ = tokio::time::sleep(this.sweep_interval()) => {}
            }
        }
        tracker.close();
        tracker.wait().await;
        if let Err(e) = this.store.write(|tx| tx.jobs_release(&this.owner)).await {
            tracing::warn!(error = %e, "releasing job leases failed");
        }
        tracing::info!("worker stopped");
    }

    async fn run_job(&self, job: JobRow) {
        let parsed: Result<Job, _> = serde_json::from_str(&job.payload);
        let Ok(parsed) = parsed else {
            tracing::error!(job_id = %job.id, "unreadable job payload; dropping it");
            let _ = self
                .store
                .write(|tx| tx.job_finish(job.id, &self.owner, Some("unreadable payload"), &[]))
                .await;
            return;
        };
        // The span goes with the job's future (`instrument`), never entered across an await:
        // other jobs' lines on this thread must not carry this job's ids.
        let span = tracing::info_span!("job", job_id = %job.id, flow = parsed.name(), lb_id = %parsed.lb_id());
        metrics::worker()
            .claimed
            .get_or_create(&vec![("kind", parsed.name().to_string())])
            .inc();
        self.run_flow(job, parsed).instrument(span).await
    }

    async fn run_flow(&self, job: JobRow, parsed: Job) {
        let flow = flows::build(&parsed, job.id);
        let ctx = Ctx {
            store: self.store.clone(),
            drivers: self.drivers.clone(),
            job_id: job.id,
            topology: self.cfg.topology.clone(),
        };
        let journal = StoreJournal {
            store: self.store.clone(),
            job: job.id,
            owner: self.owner.clone(),
            first_run: job.attempts == 1,
            since: std::sync::Mutex::new(std::time::Instant::now()),
            steps: flow.tasks.iter().map(|t| t.name()).collect(),
        };
        if job.state == JobState::Running && job.attempts > MAX_ATTEMPTS {
            tracing::error!(
                attempts = job.attempts,
                "job keeps failing its worker; reverting it"
            );
            let state = journal.load().await.unwrap_or_default();
            let last = state.done.keys().max().map(|m| m + 1).unwrap_or(0);
            let _ = journal
                .begin_revert(
                    last.min(flow.tasks.len().saturating_sub(1)),
                    "job abandoned",
                )
                .await;
        }
        // Keep the lease while the flow runs.
        let renew = {
            let store = self.store.clone();
            let owner = self.owner.clone();
            let lease = self.cfg.lease;
            let id = job.id;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    let until = now_ms() + lease.as_millis() as i64;
                    match store.write(|tx| tx.job_renew(id, &owner, until)).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(job_id = %id, "lease lost");
                            return;
                        }
                        Err(e) => tracing::warn!(job_id = %id, error = %e, "lease renewal failed"),
                    }
                }
            })
        };
        let started = std::time::Instant::now();
        let outcome = rocta_flow::run(&flow, &ctx, &journal).await;
        renew.abort();
        let labels = vec![
            ("kind", parsed.name().to_string()),
            (
                "outcome",
                match &outcome {
                    Outcome::Completed => "completed",
                    Outcome::Reverted { .. } => "reverted",
                    Outcome::Interrupted(_) => "interrupted",
                }
                .to_string(),
            ),
        ];
        let m = metrics::worker();
        m.ended.get_or_create(&labels).inc();
        m.flow
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        let end = match &outcome {
            Outcome::Completed => {
                // The journal ended the job with its last step (`complete`).
                tracing::debug!("job completed");
                None
            }
            Outcome::Reverted { step, error } => {
                tracing::warn!(%step, %error, "job reverted");
                Some(Some(format!("{step}: {error}")))
            }
            Outcome::Interrupted(e) => {
                tracing::warn!(error = %e, "job interrupted; it will be resumed");
                None
            }
        };
        if let Some(err) = end {
            if let Err(e) = self
                .store
                .write(|tx| tx.job_finish(job.id, &self.owner, err.as_deref(), &journal.steps))
                .await
            {
                tracing::warn!(error = %e, "finishing the job failed; it will be resumed");
            }
        }
    }
}

/// The flow journal of one job, kept in the store and guarded by the job's lease.
struct StoreJournal {
    store: Store,
    job: Id,
    owner: String,
    /// Claimed for the first time: nobody can have journaled anything yet.
    first_run: bool,
    /// When the task now running began (the previous journal write), for its duration.
    since: std::sync::Mutex<std::time::Instant>,
    /// The flow's task names, in order (the job's history).
    steps: Vec<&'static str>,
}

impl StoreJournal {
    /// Observes the time since the previous journal write as task `name`'s duration.
    fn task_done(&self, name: &str) {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        metrics::worker()
            .task
            .get_or_create(&vec![("task", name.to_string())])
            .observe(since.elapsed().as_secs_f64());
        *since = std::time::Instant::now();
    }
}

fn jerr(e: StoreError) -> JournalError {
    JournalError(e.to_string())
}

#[async_trait::async_trait]
impl Journal for StoreJournal {
    async fn load(&self) -> Result<JournalState, JournalError> {
        if self.first_run {
            return Ok(JournalState::default());
        }
        let (steps, failed) = self
            .store
            .read(|tx| Ok::<_, StoreError>((tx.job_steps(self.job)?, tx.job_failure(self.job)?)))
            .await
            .map_err(jerr)?;
        let mut st = JournalState {
            failed,
            ..Default::default()
        };
        for s in steps {
            if s.reverted {
                st.reverted.push(s.step);
            } else {
                st.done.insert(s.step, s.output);
            }
        }
        Ok(st)
    }

    async fn step_done(&self, i: usize, name: &str, out: &Value) -> Result<(), JournalError> {
        self.task_done(name);
        self.store
            .write(|tx| tx.job_step_done(self.job, &self.owner, i, name, out))
            .await
            .map_err(jerr)
    }

    async fn begin_revert(&self, i: usize, error: &str) -> Result<(), JournalError> {
        self.store
            .write(|tx| tx.job_begin_revert(self.job, &self.owner, i, error))
            .await
            .map_err(jerr)
    }

    async fn step_reverted(&self, i: usize) -> Result<(), JournalError> {
        self.store
            .write(|tx| tx.job_step_reverted(self.job, &self.owner, i))
            .await
            .map_err(jerr)
    }

    /// The job ends (its row and journal go) in the write that would have journaled its last
    /// step: nothing is left to resume.
    async fn complete(&self, last: Option<(usize, &str, &Value)>) -> Result<(), JournalError> {
        if let Some((_, name, _)) = last {
            self.task_done(name);
        }
        self.store
            .write(|tx| tx.job_finish(self.job, &self.owner, None, &self.steps))
            .await
            .map_err(jerr)
    }
}
