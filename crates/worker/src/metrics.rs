//! The worker's metrics: jobs claimed and ended by kind, flow and task durations, registered
//! in the process's metrics (`rocta_service::metrics`) on first use.

use std::sync::OnceLock;

use rocta_service::metrics::{CounterFamily, LatencyFamily};

pub(crate) struct WorkerMetrics {
    /// By `kind`; a job resumed after its worker died is claimed again.
    pub claimed: CounterFamily,
    /// By `kind` and `outcome` (completed, reverted, interrupted).
    pub ended: CounterFamily,
    pub flow: LatencyFamily,
    pub task: LatencyFamily,
}

pub(crate) fn worker() -> &'static WorkerMetrics {
    static M: OnceLock<WorkerMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let g = rocta_service::metrics::global();
        WorkerMetrics {
            claimed: g.counters(
                "rocta_jobs_claimed",
                "Jobs claimed by this worker, by kind (a resumed job counts again)",
            ),
            ended: g.counters(
                "rocta_jobs_ended",
                "Flow runs ended, by kind and outcome (completed, reverted, interrupted: resumed later)",
            ),
            flow: g.latencies("rocta_flow_duration", "Time of a flow run, by kind and outcome"),
            task: g.latencies(
                "rocta_flow_task_duration",
                "Time of a flow task until its result was journaled, by task",
            ),
        }
    })
}
