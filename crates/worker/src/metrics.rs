//! The worker's metrics: jobs claimed and ended by kind, flow and task durations, registered
//! in the process's metrics (`rocta_service::metrics`) on first use.

use std::sync::OnceLock;

use rocta_service::metrics::prometheus_client::metrics::counter::Counter;
use rocta_service::metrics::prometheus_client::metrics::family::Family;
use rocta_service::metrics::prometheus_client::metrics::histogram::Histogram;
use rocta_service::metrics::prometheus_client::registry::Unit;

type Labels = Vec<(&'static str, String)>;

pub(crate) struct WorkerMetrics {
    /// By `kind`; a job resumed after its worker died is claimed again.
    pub claimed: Family<Labels, Counter>,
    /// By `kind` and `outcome` (completed, reverted, interrupted).
    pub ended: Family<Labels, Counter>,
    pub flow: Family<Labels, Histogram, fn() -> Histogram>,
    pub task: Family<Labels, Histogram, fn() -> Histogram>,
}

pub(crate) fn worker() -> &'static WorkerMetrics {
    static M: OnceLock<WorkerMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let m = WorkerMetrics {
            claimed: Family::default(),
            ended: Family::default(),
            flow: Family::new_with_constructor(rocta_service::metrics::latency_histogram),
            task: Family::new_with_constructor(rocta_service::metrics::latency_histogram),
        };
        let g = rocta_service::metrics::global();
        g.register(
            "rocta_jobs_claimed",
            "Jobs claimed by this worker, by kind (a resumed job counts again)",
            m.claimed.clone(),
        );
        g.register(
            "rocta_jobs_ended",
            "Flow runs ended, by kind and outcome (completed, reverted, interrupted: resumed later)",
            m.ended.clone(),
        );
        g.register_with_unit(
            "rocta_flow_duration",
            "Time of a flow run, by kind and outcome",
            Unit::Seconds,
            m.flow.clone(),
        );
        g.register_with_unit(
            "rocta_flow_task_duration",
            "Time of a flow task until its result was journaled, by task",
            Unit::Seconds,
            m.task.clone(),
        );
        m
    })
}
