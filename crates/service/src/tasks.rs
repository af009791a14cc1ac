//! Periodic work and task supervision, shared by every role.
//!
//! - `periodic`: the contract of a periodic duty (garage's `Worker`: one round of work, then
//!   wait; error counts; back-off while it keeps failing; stops at shutdown between rounds).
//!   Housekeeping's duties and the health manager's stale check run through it.
//! - `Tasks`: the tasks of a process, each named. A task that ends (or panics) before
//!   shutdown is a fault of the process: `Tasks::run` returns it, the binary exits non-zero
//!   and its supervisor restarts it, instead of leaving a half-dead process that answers some
//!   requests and silently stopped doing the rest. At shutdown the tasks get a grace period.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What a periodic duty has done so far (for logs and metrics).
#[derive(Debug, Default)]
pub struct DutyStats {
    /// Rounds that succeeded.
    pub rounds: AtomicU64,
    /// Rounds that failed.
    pub errors: AtomicU64,
    /// Failed rounds in a row now (0 once one succeeds).
    pub consecutive_errors: AtomicU64,
}

/// The wait after `failures` failed rounds in a row: `interval`, doubled per failure after
/// the first, at most 60 s (or `interval` when that is longer).
pub fn backoff(interval: Duration, failures: u64) -> Duration {
    if failures <= 1 {
        return interval;
    }
    let cap = interval.max(Duration::from_secs(60));
    interval
        .saturating_mul(1u32 << (failures - 1).min(16))
        .min(cap)
}

/// One periodic duty (garage's `Worker`): `work` does one round. A closure returning a future
/// is a duty; a duty with state across rounds (the heartbeat sender's sequence) implements it.
pub trait Duty: Send {
    type Error: std::fmt::Display;
    fn work(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl<F, Fut, E> Duty for F
where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    type Error = E;
    fn work(&mut self) -> impl Future<Output = Result<(), E>> + Send {
        self()
    }
}

/// Runs `duty` every `interval` until `shutdown`: a round first, then the wait. A failed
/// round is logged with how many failed in a row and the wait backs off (`backoff`); the first
/// success after failures is logged too. Shutdown is seen between rounds (a round in progress
/// finishes, within the process's grace period).
pub async fn periodic<D: Duty>(
    name: &'static str,
    interval: Duration,
    stats: Arc<DutyStats>,
    shutdown: CancellationToken,
    duty: D,
) {
    periodic_or_woken(name, interval, stats, shutdown, None, duty).await
}

/// `periodic`, with `wake` starting the next round at once (the log watcher after a reload).
pub async fn periodic_or_woken<D: Duty>(
    name: &'static str,
    interval: Duration,
    stats: Arc<DutyStats>,
    shutdown: CancellationToken,
    wake: Option<Arc<tokio::sync::Notify>>,
    mut duty: D,
) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let failures = match duty.work().await {
            Ok(()) => {
                stats.rounds.fetch_add(1, Ordering::Relaxed);
                let before = stats.consecutive_errors.swap(0, Ordering::Relaxed);
                if before > 0 {
                    tracing::info!(duty = name, failed_before = before, "duty works again");
                }
                0
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                let n = stats.consecutive_errors.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(duty = name, error = %e, failures_in_a_row = n, "duty failed");
                n
            }
        };
        let woken = async {
            match &wake {
                Some(w) => w.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = woken => {}
            _ = tokio::time::sleep(backoff(interval, failures)) => {}
        }
    }
}

/// A task that ended before shutdown.
#[derive(Debug, thiserror::Error)]
#[error("task {name} {how} before shutdown")]
pub struct TaskEnded {
    pub name: &'static str,
    /// "returned" or "panicked".
    pub how: &'static str,
}

/// The named tasks of one process.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Tasks {
    pub fn new() -> Self {
        Tasks::default()
    }

    /// Tracks `task`; it must run until shutdown.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Waits for `shutdown`, then up to `grace` for every task to end. Returns `Err` at once
    /// (after cancelling `shutdown`, so the others stop too) if a task ends or panics first.
    /// `Ok(false)` when the grace period ran out with tasks still running.
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<bool, TaskEnded> {
        let early = tokio::select! {
            _ = shutdown.cancelled() => None,
            ended = self.set.join_next_with_id() => ended,
        };
        if let Some(ended) = early {
            let name = |id| self.names.get(&id).copied().unwrap_or("unnamed");
            let err = match ended {
                Ok((id, ())) => TaskEnded {
                    name: name(id),
                    how: "returned",
                },
                Err(e) => TaskEnded {
                    name: name(e.id()),
                    how: if e.is_panic() {
                        "panicked"
                    } else {
                        "was cancelled"
                    },
                },
            };
            shutdown.cancel();
            let _ = tokio::time::timeout(grace, async {
                while self.set.join_next().await.is_some() {}
            })
            .await;
            return Err(err);
        }
        Ok(tokio::time::timeout(grace, async {
            while self.set.join_next().await.is_some() {}
        })
        .await
        .is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_second_failure_up_to_a_minute() {
        let s = Duration::from_secs(1);
        assert_eq!(backoff(s, 0), s);
        assert_eq!(backoff(s, 1), s);
        assert_eq!(backoff(s, 2), 2 * s);
        assert_eq!(backoff(s, 4), 8 * s);
        assert_eq!(backoff(s, 40), 60 * s);
        let long = Duration::from_secs(3600);
        assert_eq!(backoff(long, 5), long, "never shorter than the interval");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_duty_backs_off_and_recovers() {
        let stats = Arc::new(DutyStats::default());
        let stop = CancellationToken::new();
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let duty = tokio::spawn(periodic(
            "test",
            Duration::from_secs(1),
            stats.clone(),
            stop.clone(),
            move || {
                let n = c.fetch_add(1, Ordering::Relaxed);
                async move {
                    if n < 3 {
                        Err("down")
                    } else {
                        Ok(())
                    }
                }
            },
        ));
        // Failures at t=0, 1, 3 (waits 1, 2, 4 s), success at t=7.
        tokio::time::sleep(Duration::from_millis(6_900)).await;
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        assert_eq!(stats.errors.load(Ordering::Relaxed), 3);
        assert_eq!(stats.consecutive_errors.load(Ordering::Relaxed), 0);
        stop.cancel();
        duty.await.unwrap();
    }

    #[tokio::test]
    async fn a_task_that_ends_early_is_a_fault_and_stops_the_others() {
        let stop = CancellationToken::new();
        let mut tasks = Tasks::new();
        let s = stop.clone();
        tasks.spawn("forever", async move { s.cancelled().await });
        tasks.spawn("quitter", async {});
        let r = tasks.run(stop.clone(), Duration::from_secs(5)).await;
        assert_eq!(r.unwrap_err().name, "quitter");
        assert!(stop.is_cancelled());
    }

    #[tokio::test]
    async fn a_panicking_task_is_a_fault() {
        let stop = CancellationToken::new();
        let mut tasks = Tasks::new();
        tasks.spawn("boom", async { panic!("boom") });
        let r = tasks.run(stop, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!((r.name, r.how), ("boom", "panicked"));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_the_grace_period_at_most() {
        let stop = CancellationToken::new();
        let mut tasks = Tasks::new();
        let s = stop.clone();
        tasks.spawn("slow", async move {
            s.cancelled().await;
            tokio::time::sleep(Duration::from_secs(100)).await;
        });
        stop.cancel();
        assert!(!tasks.run(stop, Duration::from_secs(2)).await.unwrap());
    }
}
