//! The process's Prometheus metrics: one registry per process (prometheus-client), filled by
//! the parts a role runs as they start, rendered in Prometheus' text format (0.0.4) by
//! [`handler`] at `/metrics`. Values read from elsewhere at scrape time (the store's job queue,
//! the amphorae) are refreshed by hooks ([`Metrics::on_scrape`]) just before rendering; the
//! process's own memory, file descriptors and CPU come from `/proc/self`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

pub use prometheus_client;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

/// A hook run before each scrape.
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Label pairs of a family's series.
pub type Labels = Vec<(&'static str, String)>;
/// Counters by labels.
pub type CounterFamily = prometheus_client::metrics::family::Family<Labels, Counter>;
/// Latency histograms (seconds, [`latency_histogram`]'s buckets) by labels.
pub type LatencyFamily =
    prometheus_client::metrics::family::Family<Labels, Histogram, fn() -> Histogram>;

/// A process's metrics.
#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
    refresh: Mutex<Vec<Refresh>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process's metrics, created with the process collector on first use.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let m = Metrics::default();
        m.register_collector(Box::new(Process));
        m
    })
}

impl Metrics {
    /// Registers `metric` as `name` (a counter gets `_total` appended when rendered); `help`
    /// without its final period (the registry adds it).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        lock(&self.registry).register(name, help, metric);
    }

    /// Registers `metric` as `name` in `unit` (appended to the name: `_seconds`, `_bytes`).
    pub fn register_with_unit(&self, name: &str, help: &str, unit: Unit, metric: impl Metric) {
        lock(&self.registry).register_with_unit(name, help, unit, metric);
    }

    /// A family of counters registered as `name` (`_total` appended).
    pub fn counters(&self, name: &str, help: &str) -> CounterFamily {
        let f = CounterFamily::default();
        self.register(name, help, f.clone());
        f
    }

    /// A family of latency histograms registered as `name` (`_seconds` appended).
    pub fn latencies(&self, name: &str, help: &str) -> LatencyFamily {
        let f = LatencyFamily::new_with_constructor(latency_histogram);
        self.register_with_unit(name, help, Unit::Seconds, f.clone());
        f
    }

    pub fn register_collector(&self, c: Box<dyn Collector>) {
        lock(&self.registry).register_collector(c);
    }

    /// Runs `f` before every scrape (to set gauges read from elsewhere).
    pub fn on_scrape(&self, f: Refresh) {
        lock(&self.refresh).push(f);
    }

    /// The metrics in Prometheus' text format, after the scrape hooks ran.
    pub async fn render(&self) -> String {
        let hooks: Vec<Refresh> = lock(&self.refresh).clone();
        for f in hooks {
            f().await;
        }
        let mut out = String::new();
        // Writing into a String cannot fail; a metric that fails to encode is a bug.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &lock(&self.registry))
        {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

/// `GET /metrics`.
pub async fn handler() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        global().render().await,
    )
}

/// A router serving only `/metrics` (for roles without an HTTP API).
pub fn router() -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(handler))
}

/// Buckets for request and transaction latencies: 0.5 ms to ~16 s, doubling.
pub fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 16,
    ))
}

/// The process collector's figures (the names of Prometheus' own process collectors).
#[derive(Debug)]
struct Process;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_kb: i64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64);
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let ticks: f64 = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                let f: Vec<&str> = rest.split_whitespace().collect();
                [11, 12]
                    .iter()
                    .filter_map(|i| f.get(*i)?.parse::<f64>().ok())
                    .sum()
            })
            .unwrap_or(0.0);
        let rss = ConstGauge::new(rss_kb * 1024);
        rss.encode(encoder.encode_descriptor(
            "process_resident_memory",
            "Resident memory size.",
            Some(&Unit::Bytes),
            rss.metric_type(),
        )?)?;
        let open = ConstGauge::new(fds);
        open.encode(encoder.encode_descriptor(
            "process_open_fds",
            "Open file descriptors.",
            None,
            open.metric_type(),
        )?)?;
        let cpu = ConstCounter::new(ticks / USER_HZ);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent.",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_registered_metrics_hooks_and_the_process() {
        let m = Metrics::default();
        m.register_collector(Box::new(Process));
        let c: Counter = Counter::default();
        m.register("rocta_things", "Things done", c.clone());
        let hooked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let h = hooked.clone();
        m.on_scrape(Arc::new(move || {
            let h = h.clone();
            Box::pin(async move {
                h.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
        }));
        c.inc_by(3);
        let text = m.render().await;
        assert!(
            text.contains("# TYPE rocta_things_total counter\nrocta_things_total 3\n"),
            "{text}"
        );
        assert_eq!(hooked.load(std::sync::atomic::Ordering::Relaxed), 1);
        let rss: i64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse().ok())
            .expect("rss line");
        assert!(rss > 1 << 20, "{text}");
        assert!(text.contains("\nprocess_open_fds "), "{text}");
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
    }
}
