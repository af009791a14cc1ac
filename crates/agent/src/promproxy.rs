//! The metrics a PROMETHEUS listener serves (Octavia's amphora `prometheus-proxy`): the agent
//! listens on its abstract socket `rocta_haproxy::metrics_proxy_socket_name`, which each
//! PROMETHEUS listener's backend forwards to; each `GET` reads the exporter of every load
//! balancer running here (`rocta_haproxy::exporter_socket_name`, HTTP through hyper), renames it
//! as Octavia's (`rocta_haproxy::promex::to_octavia`), and adds the amphora's CPU and memory use
//! as Octavia's proxy does (`octavia_loadbalancer_cpu`, `octavia_loadbalancer_memory`).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::haproxy::Supervisor;

struct Proxy {
    sup: Supervisor,
    amphora_id: String,
}

/// Serves the metrics proxy until `stop`; a socket that cannot be bound is logged (the
/// PROMETHEUS listeners then answer 503) and the agent goes on.
pub async fn run(sup: Supervisor, amphora_id: String, stop: CancellationToken) {
    let name = rocta_haproxy::metrics_proxy_socket_name(&amphora_id);
    let listener = match bind_abstract(&name) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(socket = %name, error = %e, "cannot serve the PROMETHEUS listeners' metrics");
            return;
        }
    };
    let proxy = Arc::new(Proxy { sup, amphora_id });
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(proxy);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "the metrics proxy stopped");
    }
}

/// Listens on the abstract unix socket HAProxy's `abns@<name>` connects to.
fn bind_abstract(name: &str) -> std::io::Result<tokio::net::UnixListener> {
    let l = std::os::unix::net::UnixListener::bind_addr(&crate::haproxy::abns_addr(name)?)?;
    l.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(l)
}

async fn metrics(
    axum::extract::State(p): axum::extract::State<Arc<Proxy>>,
) -> axum::response::Response {
    let mut out = host_usage();
    if let Some(sh) = &p.sup.shippers().tenant {
        use std::sync::atomic::Ordering::Relaxed;
        let (shipped, dropped) = (sh.shipped.load(Relaxed), sh.dropped.load(Relaxed));
        out.push_str(&format!(
            "# HELP rocta_amphora_log_lines_shipped_total Per-request log lines handed to a log target.\n\
             # TYPE rocta_amphora_log_lines_shipped_total counter\n\
             rocta_amphora_log_lines_shipped_total {shipped}\n\
             # HELP rocta_amphora_log_lines_dropped_total Per-request log lines dropped: the queue for the log targets was full.\n\
             # TYPE rocta_amphora_log_lines_dropped_total counter\n\
             rocta_amphora_log_lines_dropped_total {dropped}\n"
        ));
    }
    for lb in p.sup.load_balancers() {
        if p.sup.running(&lb).is_none() {
            continue;
        }
        let name =
            rocta_haproxy::exporter_socket_name(&p.amphora_id, lb.parse().unwrap_or_default());
        match tokio::time::timeout(Duration::from_secs(5), scrape(&name)).await {
            Ok(Ok(text)) => out.push_str(&rocta_haproxy::promex::to_octavia(&text)),
            // A load balancer without a PROMETHEUS listener has no exporter: nothing to add.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Ok(Err(e)) => {
                tracing::warn!(lb = %lb, error = %e, "reading HAProxy's exporter failed");
                return StatusCode::BAD_GATEWAY.into_response();
            }
            Err(_) => {
                tracing::warn!(lb = %lb, "HAProxy's exporter did not answer within 5 s");
                return StatusCode::BAD_GATEWAY.into_response();
            }
        }
    }
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        out,
    )
        .into_response()
}

/// `GET /metrics` from the exporter on abstract socket `name`.
async fn scrape(name: &str) -> std::io::Result<String> {
    let stream = crate::haproxy::stats_connect(name).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    let req = hyper::Request::get("/metrics")
        .header(header::HOST, "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(std::io::Error::other)?;
    let resp = send
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    if resp.status() != StatusCode::OK {
        return Err(std::io::Error::other(format!(
            "exporter answered {}",
            resp.status()
        )));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?;
    String::from_utf8(body.to_bytes().to_vec()).map_err(std::io::Error::other)
}

/// The amphora's CPU and memory use as Octavia's proxy reports them: the 1-minute load
/// average over the CPUs, and memory not available over the total, in percent.
fn host_usage() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |key: &str| -> f64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let (total, available) = (kb("MemTotal:"), kb("MemAvailable:"));
    let memory = if total > 0.0 {
        (total - available) / total * 100.0
    } else {
        0.0
    };
    format!(
        "# HELP octavia_loadbalancer_cpu Load balancer CPU utilization (percentage).\n\
         # TYPE octavia_loadbalancer_cpu gauge\n\
         octavia_loadbalancer_cpu {:.1}\n\
         # HELP octavia_loadbalancer_memory Load balancer memory utilization (percentage).\n\
         # TYPE octavia_loadbalancer_memory gauge\n\
         octavia_loadbalancer_memory {memory:.1}\n",
        load / cpus * 100.0
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_usage_is_two_gauges_in_range() {
        let text = super::host_usage();
        for name in ["octavia_loadbalancer_cpu", "octavia_loadbalancer_memory"] {
            let v: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {text}"));
            assert!(v >= 0.0, "{text}");
        }
        assert!(super::host_usage().contains("# TYPE octavia_loadbalancer_memory gauge"));
    }
}
