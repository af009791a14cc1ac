//! `/listeners`: CRUD and stats, with Octavia's protocol, TLS, header and port rules.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rocta_model::*;
use rocta_store::{Entity, Filter, Tx};
use serde_json::{json, Map, Value};

use super::loadbalancers::created;
use crate::common::*;
use crate::context::Context;
use crate::en;
use crate::error::{ApiError, ApiResult};
use crate::query::{json_response, respond, respond_one, ListQuery};
use crate::validate::{envelope, opt, path_id, req, Get, F, T};
use crate::wire::{self, refs};
use crate::AppState;

const TIMEOUT_MAX: i64 = 2_073_600_000;

/// Octavia's default `tls_ciphers` for listeners and pools (`CIPHERS_OWASP_SUITE_B` since
/// Octavia 2025.2: the TLS 1.3 suites first, then ECDHE and DHE with AEAD only).
pub(crate) const DEFAULT_CIPHERS: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
pub(crate) const TLS_VERSIONS: &[&str] = &["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];
pub(crate) const ALPN: &[&str] = &["h2", "http/1.1", "http/1.0"];

const HTTP_HEADERS: &[&str] = &[
    "X-Forwarded-For",
    "X-Forwarded-Port",
    "X-Forwarded-Proto",
    "X-Forwarded-IP",
    "X-Client-IP",
    "X-Real-IP",
];
const TLS_HEADERS: &[&str] = &[
    "X-SSL-Client-Verify",
    "X-SSL-Client-Has-Cert",
    "X-SSL-Client-DN",
    "X-SSL-Client-CN",
    "X-SSL-Issuer",
    "X-SSL-Client-SHA1",
    "X-SSL-Client-Not-Before",
    "X-SSL-Client-Not-After",
];

macro_rules! listener_fields {
    ($($extra:expr),*) => {
        &[
            $($extra,)*
            opt("name", T::Str(255)),
            opt("description", T::Str(255)),
            opt("admin_state_up", T::Bool),
            opt("connection_limit", T::Int(-1, i32::MAX as i64)),
            opt("default_tls_container_ref", T::Str(255)),
            opt("sni_container_refs", T::StrList(255)),
            opt("default_pool_id", T::Uuid),
            opt("insert_headers", T::StrDict),
            opt("timeout_client_data", T::Int(0, TIMEOUT_MAX)),
            opt("timeout_member_connect", T::Int(0, TIMEOUT_MAX)),
            opt("timeout_member_data", T::Int(0, TIMEOUT_MAX)),
            opt("timeout_tcp_inspect", T::Int(0, TIMEOUT_MAX)),
            opt("tags", T::StrList(255)),
            opt("client_authentication", en!(ClientAuthentication)),
            opt("client_ca_tls_container_ref", T::Str(255)),
            opt("client_crl_container_ref", T::Str(255)),
            opt("allowed_cidrs", T::StrList(64)),
            opt("tls_ciphers", T::Str(2048)),
            opt("tls_versions", T::StrList(16)),
            opt("alpn_protocols", T::StrList(16)),
            opt("hsts_max_age", T::Int(0, i32::MAX as i64)),
            opt("hsts_include_subdomains", T::Bool),
            opt("hsts_preload", T::Bool),
        ]
    };
}

pub(crate) const POST: &[F] = listener_fields!(
    req("loadbalancer_id", T::Uuid),
    req("protocol", en!(ListenerProtocol)),
    req("protocol_port", T::Int(1, 65535)),
    opt("project_id", T::Str(36)),
    opt("tenant_id", T::Str(36)),
    opt("default_pool", T::Any),
    opt("l7policies", T::Any)
);
pub(crate) const PUT: &[F] = listener_fields!();

fn links(tx: &Tx<'_>, f: &Filter<'_>) -> ApiResult<std::collections::HashMap<Id, Vec<Id>>> {
    let mut m: std::collections::HashMap<Id, Vec<Id>> = std::collections::HashMap::new();
    for (parent, id) in tx.links(L7Policy::TABLE, f)? {
        m.entry(parent).or_default().push(id);
    }
    Ok(m)
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
        ..Default::default()
    };
    let (items, pol) = s
        .store
        .read(|tx| Ok::<_, ApiError>((tx.list::<Listener>(&f)?, links(tx, &f)?)))
        .await?;
    let w: Vec<_> = items
        .iter()
        .map(|l| wire::listener(l, refs(pol.get(&l.id).cloned().unwrap_or_default())))
        .collect();
    respond(
        w,
        &q,
        "listeners",
        "listeners_links",
        &base_url(&s, &headers),
        "/v2/lbaas/listeners",
    )
}

async fn load(s: &AppState, ctx: &Context, id: Id) -> ApiResult<(Listener, Vec<Id>)> {
    s.store
        .read(|tx| -> ApiResult<_> {
            let l: Listener = visible(tx, ctx, id, "Listener")?;
            let p = tx.links(
                L7Policy::TABLE,
                &Filter {
                    parent_id: Some(id),
                    ..Default::default()
                },
            )?;
            Ok((l, p.into_iter().map(|(_, c)| c).collect()))
        })
        .await
}

pub(crate) async fn show(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = path_id(&id, "Listener")?;
    let (l, p) = load(&s, &ctx, id).await?;
    Ok(respond_one(
        &wire::listener(&l, refs(p)),
        "listener",
        raw.as_deref(),
    ))
}

pub(crate) async fn stats(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "Listener")?;
    let st = s
        .store
        .read(|tx| -> ApiResult<_> {
            let _: Listener = visible(tx, &ctx, id, "Listener")?;
            Ok::<_, ApiError>(tx.listener_stats(id)?)
        })
        .await?;
    Ok(json_response(&json!({ "stats": st })))
}

/// Applies the mutable fields of `m` to `l` (create and update share it); `null` resets.
fn apply(l: &mut Listener, m: &Map<String, Value>, cfg: &rocta_config::Config) {
    let h = &cfg.haproxy_amphora;
    if m.has("name") {
        l.name = m.s("name").unwrap_or_default();
    }
    if m.has("description") {
        l.description = m.s("description").unwrap_or_default();
    }
    if m.has("admin_state_up") {
        l.admin_state_up = m.b("admin_state_up").unwrap_or(true);
    }
    if m.has("connection_limit") {
        l.connection_limit = m.i("connection_limit").unwrap_or(-1);
    }
    if m.has("default_tls_container_ref") {
        l.default_tls_container_ref = m.s("default_tls_container_ref");
    }
    if m.has("sni_container_refs") {
        l.sni_container_refs = m.list("sni_container_refs").unwrap_or_default();
    }
    if m.has("default_pool_id") {
        l.default_pool_id = m.id("default_pool_id");
    }
    if m.has("insert_headers") {
        l.insert_headers = m
            .get("insert_headers")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
    }
    for (k, def, slot) in [
        (
            "timeout_client_data",
            h.timeout_client_data,
            &mut l.timeout_client_data,
        ),
        (
            "timeout_member_connect",
            h.timeout_member_connect,
            &mut l.timeout_member_connect,
        ),
        (
            "timeout_member_data",
            h.timeout_member_data,
            &mut l.timeout_member_data,
        ),
        (
            "timeout_tcp_inspect",
            h.timeout_tcp_inspect,
            &mut l.timeout_tcp_inspect,
        ),
    ] {
        if m.has(k) {
            *slot = m.i(k).unwrap_or(def);
        }
    }
    if m.has("tags") {
        l.tags = tags(m);
    }
    if m.has("client_authentication") {
        l.client_authentication = m
            .parse("client_authentication", ClientAuthentication::parse)
            .unwrap_or(ClientAuthentication::None);
    }
    if m.has("client_ca_tls_container_ref") {
        l.client_ca_tls_container_ref = m.s("client_ca_tls_container_ref");
    }
    if m.has("client_crl_container_ref") {
        l.client_crl_container_ref = m.s("client_crl_container_ref");
    }
    if m.has("allowed_cidrs") {
        l.allowed_cidrs = m.list("allowed_cidrs").filter(|v| !v.is_empty());
    }
    let tls = l.protocol == ListenerProtocol::TerminatedHttps;
    if m.has("tls_ciphers") {
        l.tls_ciphers = m
            .s("tls_ciphers")
            .or_else(|| tls.then(|| DEFAULT_CIPHERS.to_string()));
    }
    if m.has("tls_versions") {
        l.tls_versions = m
            .list("tls_versions")
            .or_else(|| tls.then(default_tls_versions));
    }
    if m.has("alpn_protocols") {
        l.alpn_protocols = m.list("alpn_protocols").or_else(|| tls.then(default_alpn));
    }
    if m.has("hsts_max_age") {
        l.hsts_max_age = m.i("hsts_max_age");
    }
    if m.has("hsts_include_subdomains") {
        l.hsts_include_subdomains = m.b("hsts_include_subdomains").unwrap_or(false);
    }
    if m.has("hsts_preload") {
        l.hsts_preload = m.b("hsts_preload").unwrap_or(false);
    }
}

pub(crate) fn default_tls_versions() -> Vec<String> {
    vec!["TLSv1.2".into(), "TLSv1.3".into()]
}

pub(crate) fn default_alpn() -> Vec<String> {
    ALPN.iter().map(|s| s.to_string()).collect()
}

/// The rules between fields of a listener (create and update alike).
pub(crate) fn check(l: &Listener, vip: Option<&str>) -> ApiResult<()> {
    let p = l.protocol;
    let tls = p == ListenerProtocol::TerminatedHttps;
    let has_certs = l.default_tls_container_ref.is_some() || !l.sni_container_refs.is_empty();
    if tls && !has_certs {
        return Err(ApiError::validation(
            "An SNI or default certificate container reference must be provided for TERMINATED_HTTPS listeners.",
        ));
    }
    if has_certs
        && !matches!(
            p,
            ListenerProtocol::TerminatedHttps | ListenerProtocol::Prometheus
        )
    {
        return Err(ApiError::validation(
            "Certificate container references are only allowed on TERMINATED_HTTPS or PROMETHEUS listeners.",
        ));
    }
    if !tls
        && (l.client_authentication != ClientAuthentication::None
            || l.client_ca_tls_container_ref.is_some()
            || l.client_crl_container_ref.is_some())
    {
        return Err(ApiError::validation(format!(
            "TLS client authentication is only valid for TERMINATED_HTTPS listeners, not {p}."
        )));
    }
    if l.client_authentication != ClientAuthentication::None
        && l.client_ca_tls_container_ref.is_none()
    {
        return Err(ApiError::validation(
            "Client authentication setting OPTIONAL or MANDATORY requires a client CA container reference.",
        ));
    }
    if l.client_crl_container_ref.is_some() && l.client_ca_tls_container_ref.is_none() {
        return Err(ApiError::validation(
            "A client authentication CA reference is required to specify a client authentication revocation list.",
        ));
    }
    if !tls && (l.tls_ciphers.is_some() || l.tls_versions.is_some() || l.alpn_protocols.is_some()) {
        return Err(ApiError::validation(format!(
            "TLS cipher, version and ALPN options are only valid for TERMINATED_HTTPS listeners, not {p}."
        )));
    }
    for v in l.tls_versions.iter().flatten() {
        if !TLS_VERSIONS.contains(&v.as_str()) {
            return Err(ApiError::invalid_field(
                "tls_versions",
                v,
                format!("Value should be one of: {}", TLS_VERSIONS.join(", ")),
            ));
        }
    }
    for v in l.alpn_protocols.iter().flatten() {
        if !ALPN.contains(&v.as_str()) {
            return Err(ApiError::invalid_field(
                "alpn_protocols",
                v,
                format!("Value should be one of: {}", ALPN.join(", ")),
            ));
        }
    }
    if l.hsts_max_age.is_some() && !tls {
        return Err(ApiError::validation(
            "HSTS can only be enabled on TERMINATED_HTTPS listeners.",
        ));
    }
    if (l.hsts_include_subdomains || l.hsts_preload) && l.hsts_max_age.is_none() {
        return Err(ApiError::validation(
            "HSTS configuration options hsts_include_subdomains and hsts_preload only make sense if hsts_max_age is set as well.",
        ));
    }
    for k in l.insert_headers.keys() {
        let ok = (p.is_http() && HTTP_HEADERS.contains(&k.as_str()))
            || (tls && TLS_HEADERS.contains(&k.as_str()));
        if !ok {
            return Err(ApiError::bad_request(format!(
                "Provider 'amphora' does not support a requested option: the {k} header is not supported for {p} listeners."
            )));
        }
    }
    if p == ListenerProtocol::Prometheus && l.default_pool_id.is_some() {
        return Err(ApiError::validation(
            "PROMETHEUS listeners cannot have a default pool.",
        ));
    }
    let vip_v4 = vip
        .and_then(|v| v.parse::<std::net::IpAddr>().ok())
        .map(|ip| ip.is_ipv4());
    for c in l.allowed_cidrs.iter().flatten() {
        let net: ipnet::IpNet = c.parse().map_err(|_| {
            ApiError::invalid_field("allowed_cidrs", c, "Value should be a valid CIDR.")
        })?;
        if vip_v4.is_some_and(|v4| v4 != matches!(net, ipnet::IpNet::V4(_))) {
            return Err(ApiError::validation(format!(
                "CIDR {c} IP version incompatible with all VIPs ['{}'] IP version.",
                vip.unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// A default pool must be on the same load balancer, compatible, and not used by another listener.
fn check_default_pool(tx: &Tx<'_>, l: &Listener) -> ApiResult<()> {
    let Some(pid) = l.default_pool_id else {
        return Ok(());
    };
    let pool = match tx.get::<Pool>(pid)? {
        Some(p) if p.lb_id == l.lb_id => p,
        _ => return Err(ApiError::not_found("Pool", pid)),
    };
    if !rules::listener_accepts_pool(l.protocol, pool.protocol) {
        return Err(ApiError::validation(format!(
            "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
            pool.protocol, l.protocol
        )));
    }
    let f = Filter {
        lb_id: Some(l.lb_id),
        ..Default::default()
    };
    if tx
        .list::<Listener>(&f)?
        .iter()
        .any(|o| o.id != l.id && o.default_pool_id == Some(pid))
    {
        return Err(ApiError::conflict(format!(
            "Pool {pid} is already used by another listener."
        )));
    }
    Ok(())
}

/// UDP and SCTP listeners are forwarded by the amphora's kernel (nftables in its own network
/// namespace): refused (Octavia's 501 for what a provider cannot do) where amphorae share the
/// host's network (the loopback network driver).
pub(crate) fn check_forwarding(s: &AppState, l: &Listener) -> ApiResult<()> {
    if l.protocol.is_lvs() && !s.network.supports_udp() {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_IMPLEMENTED,
            format!(
                "Provider 'amphora' does not support a requested option: {} listeners are \
                 forwarded in the amphora's own network namespace, which this deployment's \
                 amphorae do not have (use the netns drivers).",
                l.protocol
            ),
        ));
    }
    Ok(())
}

/// A new listener of `lb_id` from a validated body (defaults, then the body), `PENDING_CREATE`.
/// The project is set by the caller.
pub(crate) fn new_listener(
    lb_id: Id,
    m: &Map<String, Value>,
    cfg: &rocta_config::Config,
) -> ApiResult<Listener> {
    let protocol = m
        .parse("protocol", ListenerProtocol::parse)
        .ok_or_else(|| ApiError::invalid_field("protocol", "Unset", "Mandatory field missing."))?;
    let h = &cfg.haproxy_amphora;
    let tls = protocol == ListenerProtocol::TerminatedHttps;
    let mut l = Listener {
        id: new_id(),
        lb_id,
        name: String::new(),
        description: String::new(),
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        admin_state_up: true,
        protocol,
        protocol_port: m.i("protocol_port").unwrap_or(0) as u16,
        connection_limit: -1,
        default_tls_container_ref: None,
        sni_container_refs: vec![],
        project_id: String::new(),
        default_pool_id: None,
        insert_headers: BTreeMap::new(),
        created_at: now(),
        updated_at: None,
        timeout_client_data: h.timeout_client_data,
        timeout_member_connect: h.timeout_member_connect,
        timeout_member_data: h.timeout_member_data,
        timeout_tcp_inspect: h.timeout_tcp_inspect,
        tags: vec![],
        client_ca_tls_container_ref: None,
        client_authentication: ClientAuthentication::None,
        client_crl_container_ref: None,
        allowed_cidrs: None,
        tls_ciphers: tls.then(|| DEFAULT_CIPHERS.to_string()),
        tls_versions: tls.then(default_tls_versions),
        alpn_protocols: tls.then(default_alpn),
        hsts_max_age: None,
        hsts_include_subdomains: false,
        hsts_preload: false,
    };
    apply(&mut l, m, cfg);
    Ok(l)
}

pub(crate) async fn create(
    State(s): State<AppState>,
    ctx: Context,
    body: Body,
) -> ApiResult<Response> {
    let v = read_json(&s, body).await?;
    let m = envelope(&v, "listener_", "listener", POST, true)?;
    reject_graph_only(&m, &["default_pool", "l7policies"])?;
    let lb_id = m.id("loadbalancer_id").ok_or_else(ApiError::internal)?;
    let mut l = new_listener(lb_id, &m, &s.cfg)?;
    check_forwarding(&s, &l)?;
    if !listener_refs(&l).is_empty() {
        // Refused requests grant nothing: the references are checked once the rest is.
        let lb = s.store.read(|tx| visible_lb(tx, &ctx, lb_id)).await?;
        check(&l, lb.vip_address.as_deref())?;
        check_tls_refs(&s, &ctx, &listener_refs(&l)).await?;
    }
    let l = s
        .store
        .write(|tx| -> ApiResult<_> {
            let lb = visible_lb(tx, &ctx, lb_id)?;
            l.project_id = lb.project_id.clone();
            check(&l, lb.vip_address.as_deref())?;
            check_quota::<Listener>(tx, &s, &lb.project_id, QuotaResource::Listener, 1)?;
            lock_lb_for_child(tx, &ctx, lb_id)?;
            let f = Filter { lb_id: Some(lb_id), ..Default::default() };
            if let Some(o) = tx.list::<Listener>(&f)?.iter().find(|o| o.protocol.l4() == l.protocol.l4() && o.protocol_port == l.protocol_port) {
                return Err(ApiError::conflict(format!(
                    "Another Listener on this Load Balancer is already using protocol {} and protocol_port {}",
                    o.protocol, o.protocol_port
                )));
            }
            check_default_pool(tx, &l)?;
            tx.insert(&l)?;
            post_job(tx, &Job::Child { kind: ChildKind::Listener, op: Op::Create, id: l.id, lb_id })?;
            Ok(l)
        })
        .await?;
    s.wake.notify_one();
    tls_consumers(&s, &ctx, "listeners", l.id, &listener_refs(&l), &[]).await;
    Ok(created(respond_one(
        &wire::listener(&l, vec![]),
        "listener",
        None,
    )))
}

/// The fields naming TLS material (what an update must check before its transaction).
const TLS_FIELDS: [&str; 4] = [
    "default_tls_container_ref",
    "sni_container_refs",
    "client_ca_tls_container_ref",
    "client_crl_container_ref",
];

pub(crate) async fn update(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let id = path_id(&id, "Listener")?;
    let v = read_json(&s, body).await?;
    let m = envelope(&v, "listener_", "listener", PUT, false)?;
    // The references the update brings are checked (and granted) before its transaction.
    let (before, after) = check_update_refs(
        &s,
        &ctx,
        TLS_FIELDS.iter().any(|k| m.has(k)),
        id,
        "Listener",
        listener_refs,
        |l: &mut Listener| apply(l, &m, &s.cfg),
    )
    .await?;
    let (l, p) = s
        .store
        .write(|tx| -> ApiResult<_> {
            let mut l: Listener = visible(tx, &ctx, id, "Listener")?;
            let lb = lock_lb_for_child(tx, &ctx, l.lb_id)?;
            apply(&mut l, &m, &s.cfg);
            check(&l, lb.vip_address.as_deref())?;
            check_default_pool(tx, &l)?;
            l.provisioning_status = ProvisioningStatus::PendingUpdate;
            l.updated_at = Some(now());
            tx.update(&l)?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::Listener,
                    op: Op::Update,
                    id,
                    lb_id: l.lb_id,
                },
            )?;
            let p = tx.links(
                L7Policy::TABLE,
                &Filter {
                    parent_id: Some(id),
                    ..Default::default()
                },
            )?;
            Ok::<_, ApiError>((l, p.into_iter().map(|(_, c)| c).collect::<Vec<_>>()))
        })
        .await?;
    s.wake.notify_one();
    let (after, before): (Vec<&String>, Vec<&String>) =
        (after.iter().collect(), before.iter().collect());
    tls_consumers(&s, &ctx, "listeners", id, &after, &before).await;
    Ok(respond_one(&wire::listener(&l, refs(p)), "listener", None))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "Listener")?;
    let l = s
        .store
        .write(|tx| -> ApiResult<_> {
            let l: Listener = visible(tx, &ctx, id, "Listener")?;
            lock_lb_for_child(tx, &ctx, l.lb_id)?;
            tx.set_status(
                Listener::TABLE,
                &[id],
                Some(ProvisioningStatus::PendingDelete),
                None,
            )?;
            post_job(
                tx,
                &Job::Child {
                    kind: ChildKind::Listener,
                    op: Op::Delete,
                    id,
                    lb_id: l.lb_id,
                },
            )?;
            Ok(l)
        })
        .await?;
    s.wake.notify_one();
    tls_consumers(&s, &ctx, "listeners", id, &[], &listener_refs(&l)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
