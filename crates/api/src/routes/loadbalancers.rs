//! `/loadbalancers`: CRUD, cascade delete, stats and failover (the status tree is in
//! `status.rs`).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rocta_drivers::{AdditionalVipRequest, VipError, VipRequest};
use rocta_model::*;
use rocta_store::{CatalogKind, Entity, Filter, RawRow, Table, Tx};
use serde_json::{json, Value};

use crate::common::*;
use crate::context::Context;
use crate::error::{ApiError, ApiResult};
use crate::query::{json_response, respond, respond_one, respond_one_raw, ListQuery, RawItem};
use crate::validate::{envelope, opt, path_id, Get, F, T};
use crate::wire::{refs, LbWire};
use crate::AppState;

const ADDITIONAL_VIP: &[F] = &[
    crate::validate::req("subnet_id", T::Uuid),
    opt("ip_address", T::Ip),
    opt("port_id", T::Uuid),
];

pub(crate) const POST: &[F] = &[
    opt("name", T::Str(255)),
    opt("description", T::Str(255)),
    opt("admin_state_up", T::Bool),
    opt("vip_address", T::Ip),
    opt("vip_port_id", T::Uuid),
    opt("vip_subnet_id", T::Uuid),
    opt("vip_network_id", T::Uuid),
    opt("vip_qos_policy_id", T::Uuid),
    opt("vip_sg_ids", T::UuidList),
    opt("additional_vips", T::ObjList(ADDITIONAL_VIP)),
    opt("project_id", T::Str(36)),
    opt("tenant_id", T::Str(36)),
    opt("listeners", T::Any),
    opt("pools", T::Any),
    opt("provider", T::Str(64)),
    opt("tags", T::StrList(255)),
    opt("flavor_id", T::Uuid),
    opt("availability_zone", T::Str(255)),
];

pub(crate) const PUT: &[F] = &[
    opt("name", T::Str(255)),
    opt("description", T::Str(255)),
    opt("vip_qos_policy_id", T::Uuid),
    opt("admin_state_up", T::Bool),
    opt("vip_sg_ids", T::UuidList),
    opt("tags", T::StrList(255)),
];

type Links = HashMap<Id, Vec<Id>>;

fn group(links: Vec<(Id, Id)>) -> HashMap<Id, Vec<Id>> {
    let mut m: HashMap<Id, Vec<Id>> = HashMap::new();
    for (parent, id) in links {
        m.entry(parent).or_default().push(id);
    }
    m
}

fn wire<'a>(
    lb: &'a LoadBalancer,
    listeners: &HashMap<Id, Vec<Id>>,
    pools: &HashMap<Id, Vec<Id>>,
) -> LbWire<'a> {
    LbWire {
        lb,
        listeners: refs(listeners.get(&lb.id).cloned().unwrap_or_default()),
        pools: refs(pools.get(&lb.id).cloned().unwrap_or_default()),
        tenant_id: &lb.project_id,
    }
}

fn child_links(tx: &Tx<'_>, f: &Filter<'_>) -> ApiResult<(Links, Links)> {
    Ok((
        group(tx.links(Listener::TABLE, f)?),
        group(tx.links(Pool::TABLE, f)?),
    ))
}

/// Load balancers matching `f` as the API shows them, with the listeners and pools matching
/// `children` grouped by load balancer: one statement, outside a transaction.
async fn read_linked(
    s: &AppState,
    f: &Filter<'_>,
    children: &Filter<'_>,
) -> ApiResult<(Vec<RawRow>, (Links, Links))> {
    let (rows, mut links) = s
        .store
        .read_single(|tx| {
            tx.list_raw_linked::<LoadBalancer>(
                f,
                &[(Listener::TABLE, children), (Pool::TABLE, children)],
            )
        })
        .await?;
    let pools = group(links.pop().unwrap_or_default());
    let listeners = group(links.pop().unwrap_or_default());
    Ok((rows, (listeners, pools)))
}

pub(crate) async fn list(
    State(s): State<AppState>,
    ctx: Context,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let scope = ctx.list_scope()?;
    let q = ListQuery::parse(raw.as_deref(), s.cfg.api_settings.pagination_max_limit)?;
    let f = Filter {
        project: scope.as_deref(),
        live_only: true,
        ..Default::default()
    };
    let all = Filter {
        project: scope.as_deref(),
        ..Default::default()
    };
    let (rows, (listeners, pools)) = read_linked(&s, &f, &all).await?;
    let items = rows
        .iter()
        .map(|(id, project, _, body)| raw_wire(*id, project, body, &listeners, &pools))
        .collect::<ApiResult<Vec<_>>>()?;
    respond(
        items,
        &q,
        "loadbalancers",
        "loadbalancers_links",
        &base_url(&s, &headers),
        "/v2/lbaas/loadbalancers",
    )
}

/// The wire form of a stored load balancer, spliced from its document.
fn raw_wire(
    id: Id,
    project: &str,
    body: &str,
    listeners: &Links,
    pools: &Links,
) -> ApiResult<RawItem> {
    let ids = |m: &Links| {
        serde_json::to_string(&refs(m.get(&id).cloned().unwrap_or_default()))
            .unwrap_or_else(|_| "[]".into())
    };
    let tenant = serde_json::to_string(project).map_err(|_| ApiError::internal())?;
    RawItem::splice(
        id,
        body,
        &[
            ("listeners", &ids(listeners)),
            ("pools", &ids(pools)),
            ("tenant_id", &tenant),
        ],
    )
    .ok_or_else(|| {
        tracing::error!(lb_id = %id, "stored load balancer document is not a JSON object");
        ApiError::internal()
    })
}

pub(crate) async fn show(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = path_id(&id, "Load Balancer")?;
    let f = Filter {
        lb_id: Some(id),
        live_only: true,
        ..Default::default()
    };
    let children = Filter {
        lb_id: Some(id),
        ..Default::default()
    };
    let (rows, (l, p)) = read_linked(&s, &f, &children).await?;
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("Load Balancer", id))?;
    ctx.check_read(&row.1)?;
    let item = raw_wire(id, &row.1, &row.3, &l, &p)?;
    Ok(respond_one_raw(&item, "loadbalancer", raw.as_deref()))
}

/// The flavor a new load balancer asks for (which must exist and be enabled) and the
/// provider of its profile.
async fn flavor_of(
    s: &AppState,
    flavor: Option<String>,
) -> ApiResult<(Option<String>, Option<String>)> {
    let Some(f) = flavor else {
        return Ok((None, None));
    };
    let Some(found) = s
        .store
        .read(|tx| tx.catalog_profiled(CatalogKind::Flavor, &f))
        .await?
    else {
        return Err(ApiError::validation(format!(
            "Invalid flavor_id: flavor {f} not found."
        )));
    };
    if found.object.doc["enabled"] == false {
        return Err(ApiError::bad_request(format!(
            "The selected flavor is not allowed in this deployment: {f}"
        )));
    }
    let provider = found.provider;
    // Two amphorae per load balancer need VRRP between isolated hosts, which only the netns
    // drivers give: elsewhere refused rather than silently built SINGLE.
    if found.settings["loadbalancer_topology"] == "ACTIVE_STANDBY"
        && !s.network.supports_active_standby()
    {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_IMPLEMENTED,
            format!(
                "Provider '{}' does not support a requested option: loadbalancer_topology \
                 ACTIVE_STANDBY (this deployment runs one amphora per load balancer).",
                provider.as_deref().unwrap_or("amphora")
            ),
        ));
    }
    Ok((Some(f), provider))
}

/// The availability zone a new load balancer asks for (it must exist and be enabled), with
/// the VIP networks its profile allows (`valid_vip_networks`; empty: any).
async fn availability_zone_of(
    s: &AppState,
    az: Option<String>,
) -> ApiResult<(Option<String>, Vec<String>)> {
    let Some(az) = az else {
        return Ok((None, Vec::new()));
    };
    match s
        .store
        .read(|tx| tx.catalog_profiled(CatalogKind::AvailabilityZone, &az))
        .await?
    {
        None => Err(ApiError::validation(format!(
            "Invalid availability zone: {az} not found."
        ))),
        Some(z) if z.object.doc["enabled"] == false => Err(ApiError::bad_request(format!(
            "The selected availability_zone is not allowed in this deployment: {az}"
        ))),
        Some(z) => {
            let networks = z.settings["valid_vip_networks"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_ascii_lowercase)
                        .collect()
                })
                .unwrap_or_default();
            Ok((Some(az), networks))
        }
    }
}

pub(crate) async fn create(
    State(s): State<AppState>,
    ctx: Context,
    body: Body,
) -> ApiResult<Response> {
    let v = read_json(&s, body).await?;
    let m = envelope(&v, "load_balancer", "loadbalancer", POST, true)?;
    let project = create_project(&ctx, m.s("project_id").or_else(|| m.s("tenant_id")))?;
    if !m.has("vip_port_id") && !m.has("vip_network_id") && !m.has("vip_subnet_id")
        || (m.is_null("vip_port_id") && m.is_null("vip_network_id") && m.is_null("vip_subnet_id"))
    {
        return Err(ApiError::validation(
            "VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id.",
        ));
    }
    let (flavor_id, flavor_provider) = flavor_of(&s, m.s("flavor_id")).await?;
    let (availability_zone, valid_vip_networks) =
        availability_zone_of(&s, m.s("availability_zone")).await?;
    let provider = match (m.s("provider"), flavor_provider) {
        (Some(p), Some(fp)) if p != fp => {
            return Err(ApiError::bad_request(format!(
                "Flavor '{}' is not compatible with provider '{p}'",
                flavor_id.as_deref().unwrap_or_default()
            )));
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => s.cfg.api_settings.default_provider_driver.clone(),
    };
    crate::common::require_provider(&s, &provider)?;
    if let Some(a) = m.s("vip_address") {
        if a == "169.254.169.254" {
            return Err(ApiError::validation(format!(
                "The IP address {a} is reserved."
            )));
        }
    }
    let requested_additional: Vec<AdditionalVipRequest> = m
        .get("additional_vips")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_object)
                .map(|o| AdditionalVipRequest {
                    subnet_id: o.s("subnet_id").unwrap_or_default(),
                    address: o.s("ip_address"),
                })
                .collect()
        })
        .unwrap_or_default();
    // One address per subnet, the VIP's subnet counted (Octavia's rule).
    let mut subnets: Vec<String> = m.s("vip_subnet_id").into_iter().collect();
    for a in &requested_additional {
        if subnets.contains(&a.subnet_id) {
            return Err(ApiError::validation(
                "Duplicate VIP subnet(s) specified. Only one IP can be bound per subnet.",
            ));
        }
        subnets.push(a.subnet_id.clone());
    }
    let lb_id = new_id();
    // The intent, committed before the allocation: if this process dies before the load
    // balancer is recorded, housekeeping releases the VIP (nothing leaks).
    s.store
        .write(|tx| tx.vip_intent(lb_id, rocta_model::time::now_ms()))
        .await?;
    let allocated = s
        .network
        .allocate_vip(&VipRequest {
            lb_id,
            subnet_id: m.s("vip_subnet_id"),
            network_id: m.s("vip_network_id"),
            port_id: m.s("vip_port_id"),
            address: m.s("vip_address"),
            project_id: Some(project.clone()),
            qos_policy_id: m.s("vip_qos_policy_id"),
            sg_ids: m.list("vip_sg_ids").unwrap_or_default(),
            additional: requested_additional.clone(),
        })
        .await;
    let vip = match allocated {
        // The zone's profile may restrict the VIP networks (Octavia's `valid_vip_networks`).
        Ok(vip)
            if !valid_vip_networks.is_empty()
                && !valid_vip_networks.contains(&vip.network_id.to_ascii_lowercase()) =>
        {
            if let Err(e) = s.network.deallocate_vip(&vip).await {
                tracing::error!(error = %e, "cannot release a refused VIP; housekeeping will");
            } else {
                end_vip_intent(&s, lb_id).await;
            }
            return Err(ApiError::validation(
                "Supplied VIP network_id is not allowed by the configuration of this deployment.",
            ));
        }
        Ok(vip) => vip,
        Err(VipError::Invalid(msg)) => {
            end_vip_intent(&s, lb_id).await;
            return Err(ApiError::validation(msg));
        }
        // Neutron's code and message, as Octavia passes them (an address in use).
        Err(VipError::Conflict(msg)) => {
            end_vip_intent(&s, lb_id).await;
            return Err(ApiError::conflict(msg));
        }
        Err(VipError::Driver(d)) => {
            // Whatever the driver did allocate is released by housekeeping after the grace.
            tracing::error!(error = %d, "VIP allocation failed");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Provider 'amphora' reports error: VIP allocation failed.",
            ));
        }
    };
    // As allocated: the address on each subnet, on the VIP port.
    let additional_vips = vip
        .additional
        .iter()
        .map(|a| AdditionalVip {
            subnet_id: a.subnet_id.clone(),
            ip_address: Some(a.address.clone()),
            port_id: Some(vip.port_id.clone()),
        })
        .collect();
    let lb = LoadBalancer {
        id: lb_id,
        name: m.s("name").unwrap_or_default(),
        description: m.s("description").unwrap_or_default(),
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        admin_state_up: m.b("admin_state_up").unwrap_or(true),
        project_id: project.clone(),
        created_at: now(),
        updated_at: None,
        vip_address: Some(vip.address.clone()),
        vip_port_id: Some(vip.port_id.clone()),
        vip_subnet_id: Some(vip.subnet_id.clone()),
        vip_network_id: Some(vip.network_id.clone()),
        vip_sg_ids: m.list("vip_sg_ids").unwrap_or_default(),
        additional_vips,
        provider,
        flavor_id,
        vip_qos_policy_id: m.s("vip_qos_policy_id"),
        tags: tags(&m),
        availability_zone,
        vip_vnic_type: "normal".into(),
    };
    let built = match super::graph::build(&lb, &m, &s) {
        Ok(tree) => {
            let mut checked = Ok(());
            for (_, _, refs) in super::graph::tls_refs(&tree) {
                checked = check_tls_refs(&s, &ctx, &refs).await;
                if checked.is_err() {
                    break;
                }
            }
            checked.map(|_| tree)
        }
        Err(e) => Err(e),
    };
    let res = match built {
        Ok(tree) => {
            s.store
                .write(|tx| -> ApiResult<_> {
                    check_quota::<LoadBalancer>(tx, &s, &project, QuotaResource::LoadBalancer, 1)?;
                    for (res, n) in super::graph::counts(&tree) {
                        if n > 0 {
                            graph_quota(tx, &s, &project, res, n)?;
                        }
                    }
                    if !tx.vip_intent_end(lb_id)? {
                        // Housekeeping took the intent for an abandoned one and releases it.
                        tracing::error!(%lb_id, "VIP allocation outlived its grace period");
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "VIP allocation timed out; retry the request.",
                        ));
                    }
                    tx.insert(&lb)?;
                    for l in &tree.listeners {
                        tx.insert(l)?;
                    }
                    for p in &tree.pools {
                        tx.insert(p)?;
                    }
                    for m in &tree.members {
                        tx.insert(m)?;
                    }
                    for h in &tree.health_monitors {
                        tx.insert(h)?;
                    }
                    for p in &tree.l7policies {
                        tx.insert(p)?;
                    }
                    for r in &tree.l7rules {
                        tx.insert(r)?;
                    }
                    post_job(tx, &Job::CreateLoadBalancer { lb_id })?;
                    Ok(tree)
                })
                .await
        }
        Err(e) => Err(e),
    };
    let tree = match res {
        Ok(t) => t,
        Err(e) => {
            if let Err(d) = s.network.deallocate_vip(&vip).await {
                tracing::error!(error = %d, "releasing the VIP of a refused load balancer failed");
            } else {
                end_vip_intent(&s, lb_id).await;
            }
            return Err(e);
        }
    };
    s.wake.notify_one();
    for (kind, id, refs) in super::graph::tls_refs(&tree) {
        tls_consumers(&s, &ctx, kind, id, &refs, &[]).await;
    }
    Ok(created(json_response(
        &json!({ "loadbalancer": super::graph::render_full(&lb, &tree) }),
    )))
}

/// Ends the VIP intent of a load balancer refused after (or at) the allocation, once nothing
/// is allocated for it any more. Best effort: an intent left behind only makes housekeeping
/// release (again) what is already free.
async fn end_vip_intent(s: &AppState, lb_id: Id) {
    if let Err(e) = s.store.write(|tx| tx.vip_intent_end(lb_id)).await {
        tracing::warn!(error = %e, %lb_id, "ending a VIP intent failed; housekeeping will");
    }
}

/// Quota check for one kind of child in a graph create.
fn graph_quota(
    tx: &Tx<'_>,
    s: &AppState,
    project: &str,
    res: QuotaResource,
    n: i64,
) -> ApiResult<()> {
    match res {
        QuotaResource::Listener => check_quota::<Listener>(tx, s, project, res, n),
        QuotaResource::Pool => check_quota::<Pool>(tx, s, project, res, n),
        QuotaResource::Member => check_quota::<Member>(tx, s, project, res, n),
        QuotaResource::HealthMonitor => check_quota::<HealthMonitor>(tx, s, project, res, n),
        QuotaResource::L7Policy => check_quota::<L7Policy>(tx, s, project, res, n),
        QuotaResource::L7Rule => check_quota::<L7Rule>(tx, s, project, res, n),
        QuotaResource::LoadBalancer => check_quota::<LoadBalancer>(tx, s, project, res, n),
    }
}

/// Turns a 200 response into a 201.
pub(crate) fn created(mut r: Response) -> Response {
    *r.status_mut() = StatusCode::CREATED;
    r
}

pub(crate) async fn update(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let id = path_id(&id, "Load Balancer")?;
    let v = read_json(&s, body).await?;
    let m = envelope(&v, "load_balancer", "loadbalancer", PUT, false)?;
    let (lb, (l, p)) = s
        .store
        .write(|tx| -> ApiResult<_> {
            let mut lb = visible_lb(tx, &ctx, id)?;
            if !ctx.can_write(&lb.project_id) {
                return Err(ApiError::forbidden());
            }
            if lb.provisioning_status != ProvisioningStatus::Active {
                return Err(ApiError::lb_state(lb.provisioning_status, id));
            }
            if m.has("name") {
                lb.name = m.s("name").unwrap_or_default();
            }
            if m.has("description") {
                lb.description = m.s("description").unwrap_or_default();
            }
            if m.has("admin_state_up") {
                lb.admin_state_up = m.b("admin_state_up").unwrap_or(true);
            }
            if m.has("vip_qos_policy_id") {
                lb.vip_qos_policy_id = m.s("vip_qos_policy_id");
            }
            if m.has("vip_sg_ids") {
                lb.vip_sg_ids = m.list("vip_sg_ids").unwrap_or_default();
            }
            if m.has("tags") {
                lb.tags = tags(&m);
            }
            lb.provisioning_status = ProvisioningStatus::PendingUpdate;
            lb.updated_at = Some(now());
            tx.update(&lb)?;
            post_job(tx, &Job::UpdateLoadBalancer { lb_id: id })?;
            let links = child_links(
                tx,
                &Filter {
                    lb_id: Some(id),
                    ..Default::default()
                },
            )?;
            Ok((lb, links))
        })
        .await?;
    s.wake.notify_one();
    Ok(respond_one(&wire(&lb, &l, &p), "loadbalancer", None))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = path_id(&id, "Load Balancer")?;
    let cascade = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "cascade" && v.eq_ignore_ascii_case("true"));
    let (listeners, pools) = s
        .store
        .write(|tx| -> ApiResult<_> {
            let lb = visible_lb(tx, &ctx, id)?;
            if !ctx.can_write(&lb.project_id) {
                return Err(ApiError::forbidden());
            }
            if !matches!(
                lb.provisioning_status,
                ProvisioningStatus::Active | ProvisioningStatus::Error
            ) {
                return Err(ApiError::lb_state(lb.provisioning_status, id));
            }
            let f = Filter {
                lb_id: Some(id),
                ..Default::default()
            };
            let has_children = !tx.links(Listener::TABLE, &f)?.is_empty()
                || !tx.links(Pool::TABLE, &f)?.is_empty();
            if has_children && !cascade {
                return Err(ApiError::validation(format!(
                    "Cannot delete Load Balancer {id} - it has children"
                )));
            }
            for t in Table::CHILDREN {
                let ids: Vec<Id> = tx.links(t, &f)?.into_iter().map(|(_, c)| c).collect();
                tx.set_status(t, &ids, Some(ProvisioningStatus::PendingDelete), None)?;
            }
            lock_lb(
                tx,
                id,
                &[ProvisioningStatus::Active, ProvisioningStatus::Error],
                ProvisioningStatus::PendingDelete,
            )?;
            post_job(tx, &Job::DeleteLoadBalancer { lb_id: id, cascade })?;
            Ok((tx.list::<Listener>(&f)?, tx.list::<Pool>(&f)?))
        })
        .await?;
    s.wake.notify_one();
    for l in &listeners {
        tls_consumers(&s, &ctx, "listeners", l.id, &[], &listener_refs(l)).await;
    }
    for p in &pools {
        tls_consumers(&s, &ctx, "pools", p.id, &[], &pool_refs(p)).await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn failover(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "Load Balancer")?;
    s.store
        .write(|tx| -> ApiResult<_> {
            let lb = visible_lb(tx, &ctx, id)?;
            ctx.require_admin()?;
            if !matches!(
                lb.provisioning_status,
                ProvisioningStatus::Active | ProvisioningStatus::Error
            ) {
                return Err(ApiError::lb_state(lb.provisioning_status, id));
            }
            lock_lb(
                tx,
                id,
                &[ProvisioningStatus::Active, ProvisioningStatus::Error],
                ProvisioningStatus::PendingUpdate,
            )?;
            post_job(tx, &Job::FailoverLoadBalancer { lb_id: id })
        })
        .await?;
    s.wake.notify_one();
    Ok(StatusCode::ACCEPTED.into_response())
}

pub(crate) async fn stats(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "Load Balancer")?;
    let total = s
        .store
        .read(|tx| -> ApiResult<_> {
            visible_lb(tx, &ctx, id)?;
            let mut total = Stats::default();
            for (_, l) in tx.links(
                Listener::TABLE,
                &Filter {
                    lb_id: Some(id),
                    ..Default::default()
                },
            )? {
                total += tx.listener_stats(l)?;
            }
            Ok::<_, ApiError>(total)
        })
        .await?;
    Ok(json_response(&json!({ "stats": total })))
}
