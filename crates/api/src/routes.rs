//! Route table: every tenant resource answers under `/v2/lbaas`, `/v2` and their `/v2.0`
//! aliases, as Octavia; the amphora admin API under `/v2/octavia`.

mod amphorae;
mod catalog;
mod graph;
mod healthmonitors;
mod l7policies;
mod l7rules;
mod listeners;
mod loadbalancers;
mod members;
mod neutron;
mod pools;
mod quotas;
mod status;
mod versions;

use axum::http::Method;
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;

use crate::openapi::{Body, Doc, Query, Resp};
use crate::validate::F;
use crate::wire::*;
use crate::AppState;

const PREFIXES: [&str; 4] = ["/v2/lbaas", "/v2.0/lbaas", "/v2", "/v2.0"];

/// Where an operation is served.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Area {
    /// A tenant resource: under each of [`PREFIXES`] (documented under `/v2/lbaas`).
    Tenant,
    /// The amphora admin API: under `/v2/octavia` and `/v2.0/octavia`.
    Admin,
}

/// One operation: where it is served, its handler and its documentation. The router and the
/// OpenAPI document are both built from this table, so they cannot drift apart.
pub(crate) struct Op {
    pub area: Area,
    pub method: Method,
    pub path: &'static str,
    pub handler: MethodRouter<AppState>,
    pub doc: Doc,
}

fn op(
    area: Area,
    method: Method,
    path: &'static str,
    handler: MethodRouter<AppState>,
    doc: Doc,
) -> Op {
    Op {
        area,
        method,
        path,
        handler,
        doc,
    }
}

/// A create body `{"<key>": {...}}` checked against `spec` (mandatory fields required).
fn create(key: &'static str, spec: &'static [F]) -> Option<Body> {
    Some(Body::Envelope {
        key,
        spec,
        create: true,
    })
}

/// An update body (no field mandatory).
fn update(key: &'static str, spec: &'static [F]) -> Option<Body> {
    Some(Body::Envelope {
        key,
        spec,
        create: false,
    })
}

/// The CRUD operations of one resource: list, create, show, update, delete.
#[allow(clippy::too_many_arguments)]
fn crud<T: schemars::JsonSchema>(
    ops: &mut Vec<Op>,
    tag: &'static str,
    coll: &'static str,
    item: &'static str,
    (key, plural): (&'static str, &'static str),
    (post_spec, put_spec): (&'static [F], &'static [F]),
    handlers: [MethodRouter<AppState>; 5],
    delete_query: Query,
) {
    let [l, c, s, u, d] = handlers;
    let one = Resp::one::<T>(key);
    ops.push(op(
        Area::Tenant,
        Method::GET,
        coll,
        l,
        Doc::new(tag, "list", Query::List, None, 200, Resp::list::<T>(plural)),
    ));
    ops.push(op(
        Area::Tenant,
        Method::POST,
        coll,
        c,
        Doc::new(
            tag,
            "create",
            Query::None,
            create(key, post_spec),
            201,
            one.clone(),
        ),
    ));
    ops.push(op(
        Area::Tenant,
        Method::GET,
        item,
        s,
        Doc::new(tag, "show", Query::Fields, None, 200, one.clone()),
    ));
    ops.push(op(
        Area::Tenant,
        Method::PUT,
        item,
        u,
        Doc::new(tag, "update", Query::None, update(key, put_spec), 200, one),
    ));
    ops.push(op(
        Area::Tenant,
        Method::DELETE,
        item,
        d,
        Doc::new(tag, "delete", delete_query, None, 204, Resp::Empty),
    ));
}

/// Every operation of the API.
pub(crate) fn ops() -> Vec<Op> {
    use Area::*;
    let mut v = Vec::new();
    v.push(op(
        Tenant,
        Method::GET,
        "/",
        get(versions::root),
        Doc::new(
            "versions",
            "list API versions",
            Query::None,
            None,
            200,
            Resp::one::<Vec<versions::Version>>("versions"),
        ),
    ));
    crud::<LbWire<'static>>(
        &mut v,
        "loadbalancers",
        "/loadbalancers",
        "/loadbalancers/{id}",
        ("loadbalancer", "loadbalancers"),
        (loadbalancers::POST, loadbalancers::PUT),
        [
            get(loadbalancers::list),
            post(loadbalancers::create),
            get(loadbalancers::show),
            put(loadbalancers::update),
            delete(loadbalancers::delete),
        ],
        Query::Cascade,
    );
    for path in ["/loadbalancers/{id}/status", "/loadbalancers/{id}/statuses"] {
        v.push(op(
            Tenant,
            Method::GET,
            path,
            get(status::status),
            Doc::new(
                "loadbalancers",
                "status tree",
                Query::None,
                None,
                200,
                Resp::raw::<status::StatusBody>(),
            ),
        ));
    }
    v.push(op(
        Tenant,
        Method::GET,
        "/loadbalancers/{id}/stats",
        get(loadbalancers::stats),
        Doc::new(
            "loadbalancers",
            "statistics",
            Query::None,
            None,
            200,
            Resp::one::<rocta_model::Stats>("stats"),
        ),
    ));
    v.push(op(
        Tenant,
        Method::PUT,
        "/loadbalancers/{id}/failover",
        put(loadbalancers::failover),
        Doc::new(
            "loadbalancers",
            "failover",
            Query::None,
            None,
            202,
            Resp::Empty,
        ),
    ));
    crud::<ListenerWire<'static>>(
        &mut v,
        "listeners",
        "/listeners",
        "/listeners/{id}",
        ("listener", "listeners"),
        (listeners::POST, listeners::PUT),
        [
            get(listeners::list),
            post(listeners::create),
            get(listeners::show),
            put(listeners::update),
            delete(listeners::delete),
        ],
        Query::None,
    );
    v.push(op(
        Tenant,
        Method::GET,
        "/listeners/{id}/stats",
        get(listeners::stats),
        Doc::new(
            "listeners",
            "statistics",
            Query::None,
            None,
            200,
            Resp::one::<rocta_model::Stats>("stats"),
        ),
    ));
    crud::<PoolWire<'static>>(
        &mut v,
        "pools",
        "/pools",
        "/pools/{id}",
        ("pool", "pools"),
        (pools::POST, pools::PUT),
        [
            get(pools::list),
            post(pools::create),
            get(pools::show),
            put(pools::update),
            delete(pools::delete),
        ],
        Query::None,
    );
    crud::<MemberWire<'static>>(
        &mut v,
        "members",
        "/pools/{pool_id}/members",
        "/pools/{pool_id}/members/{id}",
        ("member", "members"),
        (members::POST, members::PUT),
        [
            get(members::list),
            post(members::create),
            get(members::show),
            put(members::update),
            delete(members::delete),
        ],
        Query::None,
    );
    v.push(op(
        Tenant,
        Method::PUT,
        "/pools/{pool_id}/members",
        put(members::batch),
        Doc::new(
            "members",
            "batch update",
            Query::Additive,
            Some(Body::List {
                key: "members",
                spec: members::POST,
            }),
            202,
            Resp::Empty,
        ),
    ));
    crud::<HmWire<'static>>(
        &mut v,
        "healthmonitors",
        "/healthmonitors",
        "/healthmonitors/{id}",
        ("healthmonitor", "healthmonitors"),
        (healthmonitors::POST, healthmonitors::PUT),
        [
            get(healthmonitors::list),
            post(healthmonitors::create),
            get(healthmonitors::show),
            put(healthmonitors::update),
            delete(healthmonitors::delete),
        ],
        Query::None,
    );
    crud::<L7PolicyWire<'static>>(
        &mut v,
        "l7policies",
        "/l7policies",
        "/l7policies/{id}",
        ("l7policy", "l7policies"),
        (l7policies::POST, l7policies::PUT),
        [
            get(l7policies::list),
            post(l7policies::create),
            get(l7policies::show),
            put(l7policies::update),
            delete(l7policies::delete),
        ],
        Query::None,
    );
    crud::<L7RuleWire<'static>>(
        &mut v,
        "l7rules",
        "/l7policies/{policy_id}/rules",
        "/l7policies/{policy_id}/rules/{id}",
        ("rule", "rules"),
        (l7rules::POST, l7rules::PUT),
        [
            get(l7rules::list),
            post(l7rules::create),
            get(l7rules::show),
            put(l7rules::update),
            delete(l7rules::delete),
        ],
        Query::None,
    );
    v.push(op(
        Tenant,
        Method::GET,
        "/quotas",
        get(quotas::list),
        Doc::new(
            "quotas",
            "list",
            Query::Fields,
            None,
            200,
            Resp::list::<quotas::QuotaDoc>("quotas"),
        ),
    ));
    v.push(op(
        Tenant,
        Method::GET,
        "/quotas/defaults",
        get(quotas::defaults),
        Doc::new(
            "quotas",
            "defaults",
            Query::None,
            None,
            200,
            Resp::one::<quotas::QuotaDoc>("quota"),
        ),
    ));
    v.push(op(
        Tenant,
        Method::GET,
        "/quotas/{project_id}",
        get(quotas::show),
        Doc::new(
            "quotas",
            "show",
            Query::None,
            None,
            200,
            Resp::one::<quotas::QuotaDoc>("quota"),
        ),
    ));
    v.push(op(
        Tenant,
        Method::PUT,
        "/quotas/{project_id}",
        put(quotas::update),
        Doc::new(
            "quotas",
            "update",
            Query::None,
            update("quota", quotas::PUT),
            202,
            Resp::one::<quotas::QuotaDoc>("quota"),
        ),
    ));
    v.push(op(
        Tenant,
        Method::DELETE,
        "/quotas/{project_id}",
        delete(quotas::reset),
        Doc::new("quotas", "reset", Query::None, None, 202, Resp::Empty),
    ));
    v.push(op(
        Tenant,
        Method::GET,
        "/quotas/{project_id}/default",
        get(quotas::defaults_for),
        Doc::new(
            "quotas",
            "defaults for a project",
            Query::None,
            None,
            200,
            Resp::one::<quotas::QuotaDoc>("quota"),
        ),
    ));
    {
        use catalog::handlers::{az_capabilities, az_profiles, azs, flavor_capabilities};
        use catalog::handlers::{flavor_profiles, flavors};
        use catalog::{AzProfileWire, AzWire, CapabilityWire, FlavorProfileWire, FlavorWire};
        use catalog::{AZS, AZ_POST, AZ_PROFILES, AZ_PROFILE_POST, AZ_PROFILE_PUT, AZ_PUT};
        use catalog::{FLAVORS, FLAVOR_POST, FLAVOR_PROFILES, FLAVOR_PROFILE_POST};
        use catalog::{FLAVOR_PROFILE_PUT, FLAVOR_PUT};
        macro_rules! catalog {
            ($m:ident, $wire:ty, $res:expr, $coll:literal, $item:literal, $post:expr, $put:expr) => {
                crud::<$wire>(
                    &mut v,
                    $res.plural,
                    $coll,
                    $item,
                    ($res.key, $res.plural),
                    ($post, $put),
                    [
                        get($m::list),
                        post($m::create),
                        get($m::show),
                        put($m::update),
                        delete($m::delete),
                    ],
                    Query::None,
                )
            };
        }
        catalog!(
            flavor_profiles,
            FlavorProfileWire,
            FLAVOR_PROFILES,
            "/flavorprofiles",
            "/flavorprofiles/{id}",
            FLAVOR_PROFILE_POST,
            FLAVOR_PROFILE_PUT
        );
        catalog!(
            flavors,
            FlavorWire,
            FLAVORS,
            "/flavors",
            "/flavors/{id}",
            FLAVOR_POST,
            FLAVOR_PUT
        );
        catalog!(
            az_profiles,
            AzProfileWire,
            AZ_PROFILES,
            "/availabilityzoneprofiles",
            "/availabilityzoneprofiles/{id}",
            AZ_PROFILE_POST,
            AZ_PROFILE_PUT
        );
        catalog!(
            azs,
            AzWire,
            AZS,
            "/availabilityzones",
            "/availabilityzones/{id}",
            AZ_POST,
            AZ_PUT
        );
        for (path, handler, key) in [
            (
                "/providers/{id}/flavor_capabilities",
                get(flavor_capabilities),
                "flavor_capabilities",
            ),
            (
                "/providers/{id}/availability_zone_capabilities",
                get(az_capabilities),
                "availability_zone_capabilities",
            ),
        ] {
            v.push(op(
                Tenant,
                Method::GET,
                path,
                handler,
                Doc::new(
                    "providers",
                    key,
                    Query::Fields,
                    None,
                    200,
                    Resp::one::<Vec<CapabilityWire>>(key),
                ),
            ));
        }
    }
    v.push(op(
        Tenant,
        Method::GET,
        "/providers",
        get(versions::providers),
        Doc::new(
            "providers",
            "list",
            Query::None,
            None,
            200,
            Resp::one::<Vec<versions::Provider>>("providers"),
        ),
    ));
    v.push(op(
        Admin,
        Method::GET,
        "/amphorae",
        get(amphorae::list),
        Doc::new(
            "amphorae",
            "list",
            Query::List,
            None,
            200,
            Resp::list::<AmphoraWire<'static>>("amphorae"),
        ),
    ));
    v.push(op(
        Admin,
        Method::GET,
        "/amphorae/{id}",
        get(amphorae::show),
        Doc::new(
            "amphorae",
            "show",
            Query::Fields,
            None,
            200,
            Resp::one::<AmphoraWire<'static>>("amphora"),
        ),
    ));
    v.push(op(
        Admin,
        Method::GET,
        "/amphorae/{id}/stats",
        get(amphorae::stats),
        Doc::new(
            "amphorae",
            "statistics",
            Query::None,
            None,
            200,
            Resp::one::<Vec<amphorae::AmphoraStats>>("amphora_stats"),
        ),
    ));
    v.push(op(
        Admin,
        Method::DELETE,
        "/amphorae/{id}",
        delete(amphorae::delete),
        Doc::new("amphorae", "delete", Query::None, None, 204, Resp::Empty),
    ));
    v.push(op(
        Admin,
        Method::PUT,
        "/amphorae/{id}/failover",
        put(amphorae::failover),
        Doc::new("amphorae", "failover", Query::None, None, 202, Resp::Empty),
    ));
    v.push(op(
        Admin,
        Method::PUT,
        "/amphorae/{id}/config",
        put(amphorae::update_config),
        Doc::new(
            "amphorae",
            "push the agent configuration",
            Query::None,
            None,
            202,
            Resp::Empty,
        ),
    ));
    v
}

pub(crate) fn router(state: AppState) -> Router {
    let mut r = Router::new()
        .route("/v2", get(versions::v2))
        .route("/v2.0", get(versions::v2))
        .route("/v2/", get(versions::v2))
        .route("/v2/openapi.json", get(crate::openapi::serve));
    for o in ops() {
        if o.path == "/" {
            r = r.route("/", o.handler);
            continue;
        }
        let prefixes: &[&str] = match o.area {
            Area::Tenant => &PREFIXES,
            Area::Admin => &["/v2/octavia", "/v2.0/octavia"],
        };
        for prefix in prefixes {
            r = r.route(&format!("{prefix}{}", o.path), o.handler.clone());
        }
    }
    neutron::routes(r).with_state(state)
}

/// Where the document lists an operation.
pub(crate) fn documented_path(o: &Op) -> String {
    match (o.area, o.path) {
        (_, "/") => "/".into(),
        (Area::Tenant, p) => format!("/v2/lbaas{p}"),
        (Area::Admin, p) => format!("/v2/octavia{p}"),
    }
}
