//! The API's request metrics: requests by route template, method and status, and their
//! latency, registered in the process's metrics (`rocta_service::metrics`) on first use.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use rocta_service::metrics::{CounterFamily, LatencyFamily};

struct ApiMetrics {
    requests: CounterFamily,
    latency: LatencyFamily,
}

fn api() -> &'static ApiMetrics {
    static M: OnceLock<ApiMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let g = rocta_service::metrics::global();
        ApiMetrics {
            requests: g.counters(
                "rocta_api_requests",
                "API requests answered, by route template, method and status",
            ),
            latency: g.latencies(
                "rocta_api_request_duration",
                "Time to answer an API request, by route template and method",
            ),
        }
    })
}

/// Counts and times each request; `route` is the matched template (`unmatched` for a 404 of
/// the router), so the labels' values stay few whatever the requests carry.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    // Any token is a method to HTTP: the label keeps the standard ones and folds the rest.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    }
    .to_string();
    let t = Instant::now();
    let resp = next.run(req).await;
    let m = api();
    m.latency
        .get_or_create(&vec![("route", route.clone()), ("method", method.clone())])
        .observe(t.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&vec![
            ("route", route),
            ("method", method),
            ("status", resp.status().as_u16().to_string()),
        ])
        .inc();
    resp
}
