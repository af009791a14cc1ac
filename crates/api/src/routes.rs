//! Route table: every tenant resource answers under `/v2/lbaas`, `/v2` and their `/v2.0`
//! aliases, as Octavia; the amphora admin API under `/v2/octavia`.

mod amphorae;
mod graph;
mod healthmonitors;
mod l7policies;
mod l7rules;
mod listeners;
mod loadbalancers;
mod members;
mod pools;
mod quotas;
mod versions;

use axum::routing::{get, put, MethodRouter};
use axum::Router;

use crate::AppState;

const PREFIXES: [&str; 4] = ["/v2/lbaas", "/v2.0/lbaas", "/v2", "/v2.0"];

pub(crate) fn router(state: AppState) -> Router {
    let mut r = Router::new()
        .route("/", get(versions::root))
        .route("/v2", get(versions::v2))
        .route("/v2.0", get(versions::v2))
        .route("/v2/", get(versions::v2));
    let tenant: Vec<(&str, MethodRouter<AppState>)> = vec![
        (
            "/loadbalancers",
            get(loadbalancers::list).post(loadbalancers::create),
        ),
        (
            "/loadbalancers/{id}",
            get(loadbalancers::show)
                .put(loadbalancers::update)
                .delete(loadbalancers::delete),
        ),
        ("/loadbalancers/{id}/status", get(loadbalancers::status)),
        ("/loadbalancers/{id}/statuses", get(loadbalancers::status)),
        ("/loadbalancers/{id}/stats", get(loadbalancers::stats)),
        ("/loadbalancers/{id}/failover", put(loadbalancers::failover)),
        ("/listeners", get(listeners::list).post(listeners::create)),
        (
            "/listeners/{id}",
            get(listeners::show)
                .put(listeners::update)
                .delete(listeners::delete),
        ),
        ("/listeners/{id}/stats", get(listeners::stats)),
        ("/pools", get(pools::list).post(pools::create)),
        (
            "/pools/{id}",
            get(pools::show).put(pools::update).delete(pools::delete),
        ),
        (
            "/pools/{pool_id}/members",
            get(members::list).post(members::create).put(members::batch),
        ),
        (
            "/pools/{pool_id}/members/{id}",
            get(members::show)
                .put(members::update)
                .delete(members::delete),
        ),
        (
            "/healthmonitors",
            get(healthmonitors::list).post(healthmonitors::create),
        ),
        (
            "/healthmonitors/{id}",
            get(healthmonitors::show)
                .put(healthmonitors::update)
                .delete(healthmonitors::delete),
        ),
        (
            "/l7policies",
            get(l7policies::list).post(l7policies::create),
        ),
        (
            "/l7policies/{id}",
            get(l7policies::show)
                .put(l7policies::update)
                .delete(l7policies::delete),
        ),
        (
            "/l7policies/{policy_id}/rules",
            get(l7rules::list).post(l7rules::create),
        ),
        (
            "/l7policies/{policy_id}/rules/{id}",
            get(l7rules::show)
                .put(l7rules::update)
                .delete(l7rules::delete),
        ),
        ("/quotas", get(quotas::list)),
        ("/quotas/defaults", get(quotas::defaults)),
        (
            "/quotas/{project}",
            get(quotas::show).put(quotas::update).delete(quotas::reset),
        ),
        ("/quotas/{project}/default", get(quotas::defaults_for)),
        ("/providers", get(versions::providers)),
    ];
    for prefix in PREFIXES {
        for (path, mr) in &tenant {
            r = r.route(&format!("{prefix}{path}"), mr.clone());
        }
    }
    for prefix in ["/v2/octavia", "/v2.0/octavia"] {
        r = r
            .route(&format!("{prefix}/amphorae"), get(amphorae::list))
            .route(&format!("{prefix}/amphorae/{{id}}"), get(amphorae::show))
            .route(
                &format!("{prefix}/amphorae/{{id}}/stats"),
                get(amphorae::stats),
            )
            .route(
                &format!("{prefix}/amphorae/{{id}}/failover"),
                put(amphorae::failover),
            );
    }
    r.with_state(state)
}
