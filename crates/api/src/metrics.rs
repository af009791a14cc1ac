//! The API's request metrics: requests by route template, method and status, and their
//! latency, registered in the process's metrics (`rocta_service::metrics`) on first use.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use rocta_service::metrics::prometheus_client::metrics::counter::Counter;
use rocta_service::metrics::prometheus_client::metrics::family::Family;
use rocta_service::metrics::prometheus_client::metrics::histogram::Histogram;
use rocta_service::metrics::prometheus_client::registry::Unit;

type Labels = Vec<(&'static str, String)>;

struct ApiMetrics {
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
}

fn api() -> &'static ApiMetrics {
    static M: OnceLock<ApiMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let m = ApiMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(rocta_service::metrics::latency_histogram),
        };
        let g = rocta_service::metrics::global();
        g.register(
            "rocta_api_requests",
            "API requests answered, by route template, method and status",
            m.requests.clone(),
        );
        g.register_with_unit(
            "rocta_api_request_duration",
            "Time to answer an API request, by route template and method",
            Unit::Seconds,
            m.latency.clone(),
        );
        m
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
