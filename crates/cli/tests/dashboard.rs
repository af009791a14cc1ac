//! The web dashboard's server side (the page itself runs in a real browser in
//! scripts/browser-test): its assets answer a browser's request without credentials, its views
//! of amphorae and jobs are an administrator's, and the jobs view shows an ended job with every
//! step of its flow.

mod common;

use common::*;
use serde_json::json;

#[test]
fn dashboard_assets_and_views() {
    let (_dir, r) = Rocta::start();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| {
        http.get(format!("{}{path}", r.url))
            .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
            .unwrap()
    };
    let to_slash = get("/dashboard");
    assert_eq!(to_slash.status().as_u16(), 308);
    assert_eq!(to_slash.headers()["location"], "/dashboard/");
    let page = get("/dashboard/");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().unwrap();
    assert!(
        html.contains("data-auth=\"noauth\"") && html.contains("app.js"),
        "{html}"
    );
    for (asset, kind) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let a = get(&format!("/dashboard/{asset}"));
        assert_eq!(a.status().as_u16(), 200, "{asset}");
        assert_eq!(a.headers()["content-type"], kind);
    }
    assert_eq!(get("/dashboard/nothing.js").status().as_u16(), 404);

    let (id, _, _) = r.create_lb(json!({"loadbalancer": {"vip_subnet_id": SUBNET}}));
    let (s, jobs) = r.get("/dashboard/api/jobs");
    assert_eq!(s, 200, "{jobs}");
    assert_eq!(jobs["open"], json!([]));
    let create = jobs["ended"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["loadbalancer_id"] == id.as_str() && j["kind"] == "create_loadbalancer")
        .unwrap_or_else(|| panic!("the create is not in {jobs}"));
    assert_eq!(create["state"], "done");
    assert_eq!(create["job"]["lb_id"], id.as_str());
    let steps = create["steps"].as_array().unwrap();
    assert!(steps.len() > 3, "{create}");
    assert!(
        steps
            .iter()
            .all(|s| s["state"] == "done" && s["name"] != ""),
        "{create}"
    );
    assert_eq!(steps.last().unwrap()["name"], "mark_lb_active");
    assert_eq!(jobs["failovers"], json!([]));

    let (s, amps) = r.get("/dashboard/api/amphorae");
    assert_eq!(s, 200, "{amps}");
    assert_eq!(amps["heartbeat_timeout"], 60.0);
    let mine: Vec<_> = amps["amphorae"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["loadbalancer_id"] == id.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{amps}");
    // The noop drivers' amphorae send no heartbeats.
    assert_eq!(mine[0]["last_heartbeat_age"], json!(null));
    assert_eq!(mine[0]["role"], "STANDALONE");

    // A tenant: its identity, and no admin views.
    let member = Some("member,load-balancer_member");
    let (s, me) = r.req_as("GET", "/dashboard/api/whoami", None, "p9", member);
    assert_eq!(
        (s, me),
        (200, json!({"project_id": "p9", "is_admin": false}))
    );
    for view in ["/dashboard/api/jobs", "/dashboard/api/amphorae"] {
        let (s, b) = r.req_as("GET", view, None, "p9", member);
        assert_eq!(s, 403, "{view}: {b}");
    }
    let (s, b) = r.get("/dashboard/api/jobs?limit=many");
    assert_eq!(s, 400, "{b}");
    assert!(b["faultstring"].as_str().unwrap().contains("limit"), "{b}");
}
