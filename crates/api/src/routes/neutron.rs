//! A read-only Neutron v2.0 view of the networks rocta's network driver owns, so that clients
//! which resolve names through Neutron (`openstack loadbalancer create --vip-subnet-id public`)
//! work against a rocta that has no Neutron beside it. Served at `/v2.0/{networks,subnets,ports}`
//! and under `/networking` (the endpoint a Keystone catalog registers as the `network`
//! service: `/networking/` answers Neutron's version document).
//!
//! Networks and subnets are the driver's ([`Network::networks`]), shared with every project;
//! ports are the VIP ports of the load balancers the caller may read. Neutron's attribute
//! filters (`?name=public&id=…`, a repeated key meaning any of its values) and `fields=` apply;
//! errors are Neutron's (`{"NeutronError": …}`).
//!
//! [`Network::networks`]: rocta_drivers::Network::networks

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rocta_model::LoadBalancer;
use rocta_store::Filter;
use serde_json::{json, Map, Value};

use crate::common::base_url;
use crate::context::Context;
use crate::query::json_response;
use crate::AppState;

/// Adds the view's routes to `r`.
pub(crate) fn routes(mut r: Router<AppState>) -> Router<AppState> {
    r = r
        .route("/networking", get(versions))
        .route("/networking/", get(versions));
    for prefix in ["/v2.0", "/networking/v2.0"] {
        r = r
            .route(&format!("{prefix}/networks"), get(networks))
            .route(&format!("{prefix}/networks/{{id}}"), get(network))
            .route(&format!("{prefix}/subnets"), get(subnets))
            .route(&format!("{prefix}/subnets/{{id}}"), get(subnet))
            .route(&format!("{prefix}/ports"), get(ports))
            .route(&format!("{prefix}/ports/{{id}}"), get(port));
    }
    r
}

/// Neutron's version document (no token needed, as Neutron's).
async fn versions(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&s, &headers);
    json_response(&json!({"versions": [{
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"href": format!("{base}/networking/v2.0/"), "rel": "self"}],
    }]}))
}

/// `{"NeutronError": {...}}` with Neutron's status and type.
fn neutron_error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        json_response(&json!({"NeutronError": {"type": kind, "message": message, "detail": ""}})),
    )
        .into_response()
}

fn not_found(kind: &str, id: &str) -> Response {
    neutron_error(
        StatusCode::NOT_FOUND,
        &format!("{kind}NotFound"),
        format!("{kind} {id} could not be found."),
    )
}

fn network_docs(s: &AppState) -> Vec<Value> {
    s.network
        .networks()
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "name": n.name,
                "status": "ACTIVE",
                "admin_state_up": true,
                "shared": true,
                "router:external": true,
                "subnets": n.subnets.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
                "project_id": "",
                "tenant_id": "",
                "mtu": 1500,
                "port_security_enabled": false,
                "availability_zones": [],
                "description": "",
                "tags": [],
            })
        })
        .collect()
}

fn subnet_docs(s: &AppState) -> Vec<Value> {
    s.network
        .networks()
        .iter()
        .flat_map(|n| {
            n.subnets.iter().map(move |sn| {
                json!({
                    "id": sn.id,
                    "name": sn.name,
                    "network_id": n.id,
                    "ip_version": sn.ip_version,
                    "cidr": sn.cidr,
                    "gateway_ip": sn.gateway_ip,
                    "allocation_pools": sn.allocation_pools.iter()
                        .map(|(start, end)| json!({"start": start, "end": end}))
                        .collect::<Vec<_>>(),
                    "enable_dhcp": false,
                    "dns_nameservers": [],
                    "host_routes": [],
                    "ipv6_address_mode": null,
                    "ipv6_ra_mode": null,
                    "subnetpool_id": null,
                    "project_id": "",
                    "tenant_id": "",
                    "description": "",
                    "service_types": [],
                    "tags": [],
                })
            })
        })
        .collect()
}

/// The VIP port of a load balancer, as Octavia's VIP port looks in Neutron.
fn port_doc(lb: &LoadBalancer) -> Option<Value> {
    let id = lb.vip_port_id.as_ref()?;
    Some(json!({
        "id": id,
        "name": format!("octavia-lb-{}", lb.id),
        "network_id": lb.vip_network_id,
        "fixed_ips": [{"subnet_id": lb.vip_subnet_id, "ip_address": lb.vip_address}],
        "device_owner": "Octavia",
        "device_id": format!("lb-{}", lb.id),
        "status": "ACTIVE",
        "admin_state_up": true,
        "project_id": lb.project_id,
        "tenant_id": lb.project_id,
        "security_groups": lb.vip_sg_ids,
        "allowed_address_pairs": [],
        "description": "",
        "tags": [],
    }))
}

async fn port_docs(s: &AppState, ctx: &Context) -> Result<Vec<Value>, Response> {
    let scope = if ctx.is_global_reader() {
        None
    } else {
        // A caller with no project sees no ports.
        Some(ctx.project_id.clone().unwrap_or_default())
    };
    let f = Filter {
        project: scope.as_deref(),
        live_only: true,
        ..Default::default()
    };
    let lbs = s
        .store
        .read(|tx| tx.list::<LoadBalancer>(&f))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read load balancers for the port view");
            neutron_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The database is unavailable.".into(),
            )
        })?;
    Ok(lbs.iter().filter_map(port_doc).collect())
}

/// Neutron's query: attribute filters (a repeated key: any of its values) and `fields`.
struct Query {
    filters: Vec<(String, Vec<String>)>,
    fields: Vec<String>,
}

/// Query keys Neutron takes that are not attribute filters (paging and sorting are not applied:
/// the view holds a handful of objects).
const NOT_FILTERS: &[&str] = &["limit", "marker", "page_reverse", "sort_key", "sort_dir"];

fn parse_query(raw: Option<&str>) -> Query {
    let mut q = Query {
        filters: Vec::new(),
        fields: Vec::new(),
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let (k, v) = (k.into_owned(), v.into_owned());
        if k == "fields" {
            q.fields.extend(v.split(',').map(str::to_string));
        } else if !NOT_FILTERS.contains(&k.as_str()) {
            match q.filters.iter_mut().find(|(key, _)| *key == k) {
                Some((_, vs)) => vs.push(v),
                None => q.filters.push((k, vec![v])),
            }
        }
    }
    q
}

/// Whether an attribute's value equals a filter's text (Neutron compares the string forms).
fn matches(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => want.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Number(n) => n.to_string() == want,
        Value::Array(a) => a.iter().any(|x| matches(x, want)),
        _ => false,
    }
}

fn select(doc: &Value, fields: &[String]) -> Value {
    match doc {
        Value::Object(m) if !fields.is_empty() => Value::Object(
            m.iter()
                .filter(|(k, _)| fields.iter().any(|f| f == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<_, _>>(),
        ),
        d => d.clone(),
    }
}

fn list(docs: Vec<Value>, plural: &str, raw: Option<&str>) -> Response {
    let q = parse_query(raw);
    // An attribute no object has cannot be filtered on (Neutron: 400).
    if let Some(first) = docs.first() {
        if let Some((k, _)) = q.filters.iter().find(|(k, _)| first.get(k).is_none()) {
            return neutron_error(
                StatusCode::BAD_REQUEST,
                "HTTPBadRequest",
                format!("[{k}] is invalid attribute for filtering"),
            );
        }
    }
    let items: Vec<Value> = docs
        .iter()
        .filter(|d| {
            q.filters.iter().all(|(k, wants)| {
                d.get(k)
                    .is_some_and(|v| wants.iter().any(|w| matches(v, w)))
            })
        })
        .map(|d| select(d, &q.fields))
        .collect();
    json_response(&json!({ plural: items }))
}

fn one(docs: Vec<Value>, kind: &str, key: &str, id: &str, raw: Option<&str>) -> Response {
    match docs.iter().find(|d| d["id"] == id) {
        Some(d) => json_response(&json!({ key: select(d, &parse_query(raw).fields) })),
        None => not_found(kind, id),
    }
}

async fn networks(State(s): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    list(network_docs(&s), "networks", raw.as_deref())
}

async fn network(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    one(network_docs(&s), "Network", "network", &id, raw.as_deref())
}

async fn subnets(State(s): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    list(subnet_docs(&s), "subnets", raw.as_deref())
}

async fn subnet(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    one(subnet_docs(&s), "Subnet", "subnet", &id, raw.as_deref())
}

async fn ports(State(s): State<AppState>, ctx: Context, RawQuery(raw): RawQuery) -> Response {
    match port_docs(&s, &ctx).await {
        Ok(docs) => list(docs, "ports", raw.as_deref()),
        Err(r) => r,
    }
}

async fn port(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    match port_docs(&s, &ctx).await {
        Ok(docs) => one(docs, "Port", "port", &id, raw.as_deref()),
        Err(r) => r,
    }
}
