//! `/metrics` of every role, scraped as Prometheus would and checked with Prometheus' own
//! parser and linter (`promtool check metrics`, Debian's `prometheus` package): beside the API
//! of `rocta serve`, on an address of its own (`[metrics] bind`) for the roles without an API,
//! and absent when `[metrics] enabled = false`. The figures move with what the process does.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

/// The text at `url`, checked by promtool (parse errors and lint problems fail the test).
fn scrape(url: &str) -> String {
    let resp = reqwest::blocking::Client::new()
        .get(url)
        .header("Accept", "text/plain")
        .timeout(Duration::from_secs(10))
        .send()
        .expect("scrape");
    assert_eq!(resp.status(), 200, "{url}");
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = resp.text().unwrap();
    promtool_check(&text);
    text
}

/// The Grafana dashboard of the control plane's metrics.
const DASHBOARD: &str = include_str!("../../../docs/grafana/rocta-control-plane.json");

/// The value of the sample whose line starts with `series` (name and labels as rendered).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

#[test]
fn serve_exposes_its_metrics_beside_the_api_and_they_move() {
    let (_d, r) = Rocta::start();
    let url = format!("{}/metrics", r.url);
    let before = scrape(&url);
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "rocta_heartbeats_received_total",
        "rocta_jobs_oldest_unfinished_age_seconds",
    ] {
        assert!(value(&before, name).is_some(), "{name} missing:\n{before}");
    }
    assert!(value(&before, "process_resident_memory_bytes").unwrap() > 1e6);
    let (s, lb) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": SUBNET}}),
    );
    assert_eq!(s, 201, "{lb}");
    let id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    assert_eq!(r.get("/v2/lbaas/loadbalancers/nope").0, 404);
    let after = scrape(&url);
    let post =
        r#"rocta_api_requests_total{route="/v2/lbaas/loadbalancers",method="POST",status="201"}"#;
    assert_eq!(value(&after, post), Some(1.0), "{after}");
    let missing = r#"rocta_api_requests_total{route="/v2/lbaas/loadbalancers/{id}",method="GET",status="404"}"#;
    assert_eq!(value(&after, missing), Some(1.0), "{after}");
    let latency = r#"rocta_api_request_duration_seconds_count{route="/v2/lbaas/loadbalancers",method="POST"}"#;
    assert_eq!(value(&after, latency), Some(1.0), "{after}");
    let kind = r#"{kind="create_loadbalancer"}"#;
    assert_eq!(
        value(&after, &format!("rocta_jobs_claimed_total{kind}")),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        value(&after, &format!("rocta_jobs_posted_total{kind}")),
        Some(1.0),
        "{after}"
    );
    let ended = r#"rocta_jobs_ended_total{kind="create_loadbalancer",outcome="completed"}"#;
    assert_eq!(value(&after, ended), Some(1.0), "{after}");
    assert!(
        value(
            &after,
            r#"rocta_flow_task_duration_seconds_count{task="plug_vip"}"#
        )
        .is_some(),
        "{after}"
    );
    let amps = r#"rocta_amphorae{status="ALLOCATED",role="STANDALONE"}"#;
    assert_eq!(value(&after, amps), Some(1.0), "{after}");
    assert_eq!(value(&after, "rocta_metrics_store_read_failed"), Some(0.0));
    for mode in ["read", "write"] {
        let ok = format!(r#"rocta_store_transactions_total{{mode="{mode}",outcome="ok"}}"#);
        assert!(value(&after, &ok).unwrap_or(0.0) >= 1.0, "{ok}: {after}");
        let took = format!(r#"rocta_store_transaction_duration_seconds_count{{mode="{mode}"}}"#);
        assert!(
            value(&after, &took).unwrap_or(0.0) >= 1.0,
            "{took}: {after}"
        );
    }
    // The dashboard reads only what is served.
    dashboard_reads_only(DASHBOARD, &after);
    // Scraping needs no credentials, and is itself counted.
    assert!(
        value(
            &after,
            r#"rocta_api_requests_total{route="/metrics",method="GET",status="200"}"#
        )
        .is_some(),
        "{after}"
    );
}

#[test]
fn roles_without_an_api_serve_metrics_on_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{TEST_CONFIG}[metrics]\nbind = \"127.0.0.1:0\"\n");
    for role in ["worker", "health-manager", "housekeeping"] {
        let cfg = dir.path().join(format!("{role}.toml"));
        std::fs::write(&cfg, &config).unwrap();
        let mut child = Command::new(bin())
            .arg(role)
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--drivers", "noop"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(
            line.starts_with(&format!("rocta {role}: metrics on http://")),
            "{line:?}"
        );
        let text = scrape(&url);
        assert!(value(&text, "process_open_fds").is_some(), "{role}: {text}");
        assert!(text.contains("# TYPE rocta_jobs gauge"), "{role}: {text}");
        let spares = value(&text, "rocta_spare_pool_target");
        assert_eq!(spares.is_some(), role == "housekeeping", "{role}: {text}");
        let heartbeats = value(&text, "rocta_heartbeats_received_total").is_some();
        assert_eq!(heartbeats, role == "health-manager", "{role}: {text}");
        assert!(!text.contains("rocta_api_requests"), "{role}: {text}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn metrics_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let r = Rocta::start_in(
        dir.path(),
        "serve",
        &format!("{TEST_CONFIG}[metrics]\nenabled = false\n"),
        &[],
    );
    let resp = reqwest::blocking::get(format!("{}/metrics", r.url)).unwrap();
    assert_eq!(resp.status(), 404);
}

#[test]
fn the_dashboards_queries_parse() {
    dashboard_parses(DASHBOARD);
    dashboard_parses(include_str!(
        "../../../docs/grafana/rocta-load-balancers.json"
    ));
}
