//! What every role adds to its process's metrics (`rocta_service::metrics`): the job queue and
//! the amphorae as the store holds them, read at each scrape; and the `/metrics` endpoint of its
//! own (`[metrics] bind`) for roles without an HTTP API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use rocta_service::metrics::prometheus_client;
use rocta_store::{JobState, QueueRow, Store, StoreError};
use tokio_util::sync::CancellationToken;

/// The store's figures as the last scrape read them.
#[derive(Debug, Default)]
struct Snapshot {
    queue: Vec<QueueRow>,
    amphorae: Vec<(String, String, i64)>,
    /// The store could not be read at the last scrape.
    failed: bool,
}

#[derive(Debug, Default)]
struct StoreGauges(Mutex<Snapshot>);

impl prometheus_client::collector::Collector for StoreGauges {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut jobs = e.encode_descriptor(
            "rocta_jobs",
            "Jobs in the queue, by kind and state (pending, running, reverting; failed: kept for \
             the record).",
            None,
            MetricType::Gauge,
        )?;
        for q in &s.queue {
            ConstGauge::new(q.count).encode(
                jobs.encode_family(&[("kind", q.kind.as_str()), ("state", q.state.as_str())])?,
            )?;
        }
        let oldest = s
            .queue
            .iter()
            .filter(|q| q.state != JobState::Failed)
            .filter_map(|q| q.oldest_age_secs)
            .fold(0.0, f64::max);
        let age = ConstGauge::new(oldest);
        age.encode(e.encode_descriptor(
            "rocta_jobs_oldest_unfinished_age",
            "Age of the oldest job not yet finished (0: none).",
            Some(&Unit::Seconds),
            age.metric_type(),
        )?)?;
        let mut amps = e.encode_descriptor(
            "rocta_amphorae",
            "Amphorae by status and role (role \"\": a spare or one not yet given its role).",
            None,
            MetricType::Gauge,
        )?;
        for (status, role, n) in &s.amphorae {
            ConstGauge::new(*n).encode(
                amps.encode_family(&[("status", status.as_str()), ("role", role.as_str())])?,
            )?;
        }
        let failed = ConstGauge::new(i64::from(s.failed));
        failed.encode(e.encode_descriptor(
            "rocta_metrics_store_read_failed",
            "1 when the store could not be read for this scrape (the store's figures are then \
             the previous scrape's).",
            None,
            failed.metric_type(),
        )?)
    }
}

/// Adds the store's figures to the process's metrics, read at each scrape.
pub fn install(store: &Store) {
    let gauges = Arc::new(StoreGauges::default());
    let m = rocta_service::metrics::global();
    m.register_collector(Box::new(gauges.clone()));
    let store = store.clone();
    m.on_scrape(Arc::new(move || {
        let (store, gauges) = (store.clone(), gauges.clone());
        Box::pin(async move {
            let read = store
                .read(|tx| Ok::<_, StoreError>((tx.jobs_queue()?, tx.amphorae_by_status_role()?)))
                .await;
            let mut s = gauges.0.lock().unwrap_or_else(|p| p.into_inner());
            match read {
                Ok((queue, amphorae)) => {
                    *s = Snapshot {
                        queue,
                        amphorae,
                        failed: false,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the store for the metrics failed");
                    s.failed = true;
                }
            }
        })
    }));
}

/// Times every transaction of the store: `rocta_store_transactions_total` by mode and
/// outcome, `rocta_store_transaction_duration_seconds` by mode; counts the jobs committed
/// transactions posted, `rocta_jobs_posted_total` by kind (by whichever role posted them: the
/// API, housekeeping, the health manager).
pub fn observe(store: Store) -> Store {
    let m = rocta_service::metrics::global();
    let count = m.counters(
        "rocta_store_transactions",
        "Database transactions (or single statements) by mode (read, write, single) and outcome \
         (ok; error: the database's, or the caller's rules refusing and rolling back)",
    );
    let time = m.latencies(
        "rocta_store_transaction_duration",
        "Time of a database transaction, by mode",
    );
    let posted_jobs = m.counters(
        "rocta_jobs_posted",
        "Jobs posted by this process (in committed transactions), by kind",
    );
    store.with_observer(Arc::new(move |mode, took, ok, posted| {
        for kind in posted {
            posted_jobs
                .get_or_create(&vec![("kind", kind.to_string())])
                .inc();
        }
        let outcome = if ok { "ok" } else { "error" };
        count
            .get_or_create(&vec![
                ("mode", mode.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
        time.get_or_create(&vec![("mode", mode.to_string())])
            .observe(took.as_secs_f64());
    }))
}

/// The spare pool's configured size (`[house_keeping] spare_amphora_pool_size`), beside the
/// spares there are (`rocta_amphorae{status="READY"}`); how long a spare takes to boot is the
/// worker's `rocta_flow_duration_seconds{kind="create_spare_amphora"}`.
pub fn spare_pool_target(size: usize) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(size).unwrap_or(i64::MAX));
    rocta_service::metrics::global().register(
        "rocta_spare_pool_target",
        "Spare amphorae the housekeeping keeps READY",
        g,
    );
}

/// Serves `/metrics` on `listener` until `stop`.
pub async fn serve(listener: tokio::net::TcpListener, stop: CancellationToken) {
    let limits = rocta_service::net::Limits {
        handshakes: 64,
        handshake_timeout: Duration::from_secs(10),
        connections: 64,
        idle_timeout: Duration::from_secs(60),
    };
    rocta_service::net::serve(
        listener,
        limits,
        |tcp| async move { Ok(tcp) },
        rocta_service::metrics::router(),
        Default::default(),
        stop,
    )
    .await
}
