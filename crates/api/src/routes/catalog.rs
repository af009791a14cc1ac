//! The operator's catalog, as Octavia's API serves it: flavor profiles and flavors
//! (`/flavorprofiles`, `/flavors`), availability zone profiles and zones
//! (`/availabilityzoneprofiles`, `/availabilityzones`, keyed by name), and what a provider
//! can be asked for in them (`/providers/{provider}/flavor_capabilities`,
//! `/availability_zone_capabilities`). Profiles and capabilities are for administrators;
//! flavors and zones are read by every reader and written by administrators. A profile's
//! data is a JSON object checked against what rocta's amphora provider takes.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rocta_model::Id;
use rocta_store::{CatalogKind, CatalogRow};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::common::{base_url, read_json};
use crate::context::Context;
use crate::error::{ApiError, ApiResult};
use crate::query::{respond, respond_all, respond_one, Item, ListQuery};
use crate::validate::{envelope, opt, req, Get, F, T};
use crate::AppState;

/// One catalog resource of the API.
pub(crate) struct Res {
    kind: CatalogKind,
    /// The name in messages ("Flavor profile").
    resource: &'static str,
    /// WSME's argument name and the body's key ("flavor_", "flavor").
    arg: &'static str,
    pub key: &'static str,
    pub plural: &'static str,
    links: &'static str,
    /// Where it is listed (for links).
    path: &'static str,
    /// Only administrators read it (profiles); otherwise any reader.
    admin_reads: bool,
    post: &'static [F],
    put: &'static [F],
}

pub(crate) const FLAVOR_PROFILE_POST: &[F] = &[
    req("name", T::Str(255)),
    req("provider_name", T::Str(255)),
    req("flavor_data", T::Str(4096)),
];
pub(crate) const FLAVOR_PROFILE_PUT: &[F] = &[
    opt("name", T::Str(255)),
    opt("provider_name", T::Str(255)),
    opt("flavor_data", T::Str(4096)),
];
pub(crate) const FLAVOR_POST: &[F] = &[
    req("name", T::Str(255)),
    opt("description", T::Str(255)),
    opt("enabled", T::Bool),
    req("flavor_profile_id", T::Uuid),
];
pub(crate) const FLAVOR_PUT: &[F] = &[
    opt("name", T::Str(255)),
    opt("description", T::Str(255)),
    opt("enabled", T::Bool),
];
pub(crate) const AZ_PROFILE_POST: &[F] = &[
    req("name", T::Str(255)),
    req("provider_name", T::Str(255)),
    req("availability_zone_data", T::Str(4096)),
];
pub(crate) const AZ_PROFILE_PUT: &[F] = &[
    opt("name", T::Str(255)),
    opt("provider_name", T::Str(255)),
    opt("availability_zone_data", T::Str(4096)),
];
pub(crate) const AZ_POST: &[F] = &[
    req("name", T::Str(255)),
    opt("description", T::Str(255)),
    opt("enabled", T::Bool),
    req("availability_zone_profile_id", T::Uuid),
];
pub(crate) const AZ_PUT: &[F] = &[opt("description", T::Str(255)), opt("enabled", T::Bool)];

pub(crate) static FLAVOR_PROFILES: Res = Res {
    kind: CatalogKind::FlavorProfile,
    resource: "Flavor profile",
    arg: "flavor_profile_",
    key: "flavorprofile",
    plural: "flavorprofiles",
    links: "flavorprofile_links",
    path: "/v2/lbaas/flavorprofiles",
    admin_reads: true,
    post: FLAVOR_PROFILE_POST,
    put: FLAVOR_PROFILE_PUT,
};
pub(crate) static FLAVORS: Res = Res {
    kind: CatalogKind::Flavor,
    resource: "Flavor",
    arg: "flavor_",
    key: "flavor",
    plural: "flavors",
    links: "flavors_links",
    path: "/v2/lbaas/flavors",
    admin_reads: false,
    post: FLAVOR_POST,
    put: FLAVOR_PUT,
};
pub(crate) static AZ_PROFILES: Res = Res {
    kind: CatalogKind::AvailabilityZoneProfile,
    resource: "Availability Zone Profile",
    arg: "availability_zone_profile_",
    key: "availability_zone_profile",
    plural: "availability_zone_profiles",
    links: "availability_zone_profile_links",
    path: "/v2/lbaas/availabilityzoneprofiles",
    admin_reads: true,
    post: AZ_PROFILE_POST,
    put: AZ_PROFILE_PUT,
};
pub(crate) static AZS: Res = Res {
    kind: CatalogKind::AvailabilityZone,
    resource: "Availability Zone",
    arg: "availability_zone_",
    key: "availability_zone",
    plural: "availability_zones",
    links: "availability_zones_links",
    path: "/v2/lbaas/availabilityzones",
    admin_reads: false,
    post: AZ_POST,
    put: AZ_PUT,
};

/// What a profile of rocta's provider may set: (key, description, the value's check).
type Capability = (&'static str, &'static str, fn(&Value) -> bool);

fn is_str(v: &Value) -> bool {
    v.is_string()
}

pub(crate) const FLAVOR_CAPABILITIES: &[Capability] = &[
    (
        "loadbalancer_topology",
        "The load balancer topology. One of: SINGLE - One amphora per load balancer. \
         ACTIVE_STANDBY - Two amphora per load balancer.",
        |v| matches!(v.as_str(), Some("SINGLE" | "ACTIVE_STANDBY")),
    ),
    ("compute_flavor", "The compute driver flavor ID.", is_str),
    ("amp_image_tag", "The amphora image tag.", is_str),
    (
        "sriov_vip",
        "When true, the VIP port will be created using an SR-IOV VF port.",
        Value::is_boolean,
    ),
];

pub(crate) const AZ_CAPABILITIES: &[Capability] = &[
    ("compute_zone", "The compute availability zone.", is_str),
    ("volume_zone", "The volume availability zone.", is_str),
    (
        "management_network",
        "The management network ID for the amphora.",
        is_str,
    ),
    (
        "valid_vip_networks",
        "List of network IDs that are allowed for VIP use. This overrides/replaces the list \
         of allowed networks configured in `octavia.conf`.",
        |v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
    ),
];

/// The documents as the API shows them (for the OpenAPI document).
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct FlavorProfileWire {
    pub id: String,
    pub name: String,
    pub provider_name: String,
    /// A JSON object, as text.
    pub flavor_data: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct FlavorWire {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub flavor_profile_id: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct AzProfileWire {
    pub id: String,
    pub name: String,
    pub provider_name: String,
    /// A JSON object, as text.
    pub availability_zone_data: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct AzWire {
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub availability_zone_profile_id: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct CapabilityWire {
    pub name: String,
    pub description: String,
}

/// A catalog document as a list item (an availability zone, keyed by name, gets an id
/// derived from it).
struct Doc(Value);

impl Serialize for Doc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Item for Doc {
    fn item_id(&self) -> Id {
        match self.0.get("id").and_then(Value::as_str) {
            Some(id) => Id::parse_str(id).unwrap_or_default(),
            None => {
                let name = self.0.get("name").and_then(Value::as_str).unwrap_or("");
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes())
            }
        }
    }
}

fn can_read(res: &Res, ctx: &Context) -> ApiResult<()> {
    if res.admin_reads {
        ctx.require_admin()
    } else {
        ctx.require_reader()
    }
}

fn not_found(res: &Res, key: &str) -> ApiError {
    ApiError::not_found(res.resource, key)
}

fn in_use(res: &Res, key: &str) -> ApiError {
    ApiError::conflict(format!(
        "{} {key} is in use and cannot be modified.",
        res.resource
    ))
}

fn invalid_option(value: impl std::fmt::Display, option: &str) -> ApiError {
    ApiError::bad_request(format!("{value} is not a valid option for {option}"))
}

/// The provider must be enabled, a profile's data a JSON object of what it can honour, and
/// what it names must exist where the drivers look (Nova, Glance, Neutron...).
async fn check_profile(
    s: &AppState,
    provider: &str,
    data: &str,
    field: &str,
    caps: &[Capability],
) -> ApiResult<()> {
    let parsed = check_profile_schema(s, provider, data, field, caps)?;
    if field == "availability_zone_data" {
        check_zone_placement(s, &parsed).await
    } else {
        check_flavor_build(s, &parsed).await
    }
}

/// The part of [`check_profile`] that needs no driver: provider and schema; the parsed data.
fn check_profile_schema(
    s: &AppState,
    provider: &str,
    data: &str,
    field: &str,
    caps: &[Capability],
) -> ApiResult<Map<String, Value>> {
    crate::common::require_provider(s, provider)?;
    let parsed: Map<String, Value> =
        serde_json::from_str(data).map_err(|_| invalid_option(data, field))?;
    let what = if field == "flavor_data" {
        "flavor"
    } else {
        "availability zone"
    };
    for (k, v) in &parsed {
        let why = match caps.iter().find(|c| c.0 == k) {
            None => format!("Additional properties are not allowed ('{k}' was unexpected)"),
            Some(c) if !(c.2)(v) => format!("{v} is not valid for '{k}'"),
            Some(_) => continue,
        };
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "Provider '{provider}' does not support a requested option: Failed to \
                 validate the {what} metadata against the schema: {why}"
            ),
        ));
    }
    Ok(parsed)
}

/// A flavor's settings are what the drivers can build (Octavia's amphora provider driver's
/// `validate_flavor`: the compute flavor and the image tag exist), and an SR-IOV VIP only
/// where the network driver makes one: 400 otherwise.
async fn check_flavor_build(s: &AppState, data: &Map<String, Value>) -> ApiResult<()> {
    let text = |k: &str| data.get(k).and_then(Value::as_str);
    let bad = |why: String| ApiError::bad_request(format!("Invalid flavor data: {why}"));
    s.compute
        .check_flavor(text("compute_flavor"), text("amp_image_tag"))
        .await
        .map_err(bad)?;
    if data.get("sriov_vip") == Some(&Value::Bool(true)) && !s.network.supports_sriov_vip() {
        return Err(bad(
            "sriov_vip: the network driver cannot make SR-IOV VIP ports.".into(),
        ));
    }
    Ok(())
}

/// An availability zone's settings name what exists (Octavia's amphora provider driver's
/// `validate_availability_zone`): the compute zone and management network amphorae are
/// placed in and booted on, as the compute driver can honour them, and the VIP networks.
/// Octavia answers these with a 500 of the provider; they are the caller's mistake: 400.
async fn check_zone_placement(s: &AppState, data: &Map<String, Value>) -> ApiResult<()> {
    let text = |k: &str| data.get(k).and_then(Value::as_str);
    let bad = |why: String| ApiError::bad_request(format!("Invalid availability zone data: {why}"));
    s.compute
        .check_placement(text("compute_zone"), text("management_network"))
        .await
        .map_err(bad)?;
    let vip_networks = data.get("valid_vip_networks").and_then(Value::as_array);
    for id in vip_networks.into_iter().flatten().filter_map(Value::as_str) {
        if !s.network.has_network(id).await {
            return Err(bad(format!("Network {id} not found.")));
        }
    }
    Ok(())
}

pub(crate) async fn list(
    res: &'static Res,
    s: AppState,
    ctx: Context,
    headers: HeaderMap,
    raw: Option<String>,
) -> ApiResult<Response> {
    can_read(res, &ctx)?;
    let q = ListQuery::parse(raw.as_deref(), s.cfg.api_settings.pagination_max_limit)?;
    let mut rows = s.store.read(|tx| tx.catalog_list(res.kind)).await?;
    // Octavia's default order: by id (availability zones: by name, their key).
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    let items: Vec<Doc> = rows.into_iter().map(|r| Doc(r.doc)).collect();
    respond(
        items,
        &q,
        res.plural,
        res.links,
        &base_url(&s, &headers),
        res.path,
    )
}

pub(crate) async fn show(
    res: &'static Res,
    s: AppState,
    ctx: Context,
    key: String,
    raw: Option<String>,
) -> ApiResult<Response> {
    can_read(res, &ctx)?;
    let row = s
        .store
        .read(|tx| tx.catalog_get(res.kind, &key))
        .await?
        .ok_or_else(|| not_found(res, &key))?;
    Ok(respond_one(&row.doc, res.key, raw.as_deref()))
}

pub(crate) async fn create(
    res: &'static Res,
    s: AppState,
    ctx: Context,
    body: Body,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    let v = read_json(&s, body).await?;
    let m = envelope(&v, res.arg, res.key, res.post, true)?;
    let name = m.s("name").unwrap_or_default();
    let id = rocta_model::new_id().to_string();
    let text = |k: &str| m.s(k).map_or(Value::Null, Value::String);
    let (key, refers_to, doc) = match res.kind {
        CatalogKind::FlavorProfile | CatalogKind::AvailabilityZoneProfile => {
            let (field, caps) = profile_field(res.kind);
            let provider = m.s("provider_name").unwrap_or_default();
            check_profile(&s, &provider, &m.s(field).unwrap_or_default(), field, caps).await?;
            let doc =
                json!({"id": id, "name": name, "provider_name": provider, field: text(field)});
            (id, String::new(), doc)
        }
        CatalogKind::Flavor => {
            let profile = m.s("flavor_profile_id").unwrap_or_default();
            let doc = json!({"id": id, "name": name, "description": text("description"),
                "enabled": m.b("enabled").unwrap_or(true), "flavor_profile_id": profile});
            (id, profile, doc)
        }
        CatalogKind::AvailabilityZone => {
            let profile = m.s("availability_zone_profile_id").unwrap_or_default();
            let doc = json!({"name": name, "description": text("description"),
                "enabled": m.b("enabled").unwrap_or(true),
                "availability_zone_profile_id": profile});
            (name.clone(), profile, doc)
        }
    };
    let row = CatalogRow {
        key,
        name: name.clone(),
        refers_to,
        doc,
    };
    s.store
        .write(|tx| -> ApiResult<()> {
            if let Some(profile_kind) = profile_of(res.kind) {
                if tx.catalog_get(profile_kind, &row.refers_to)?.is_none() {
                    let field = if res.kind == CatalogKind::Flavor {
                        "flavor_profile_id"
                    } else {
                        "availability_zone_profile_id"
                    };
                    return Err(ApiError::validation(format!(
                        "Invalid {field}: {} {} not found.",
                        if res.kind == CatalogKind::Flavor {
                            FLAVOR_PROFILES.resource
                        } else {
                            AZ_PROFILES.resource
                        },
                        row.refers_to
                    )));
                }
                if tx.catalog_name_taken(res.kind, &name)? {
                    return Err(already_exists(res, &name));
                }
            }
            if !tx.catalog_insert(res.kind, &row)? {
                return Err(already_exists(res, &name));
            }
            Ok(())
        })
        .await?;
    let body =
        serde_json::to_vec(&json!({ res.key: row.doc })).map_err(|_| ApiError::internal())?;
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

fn already_exists(res: &Res, name: &str) -> ApiError {
    let field = match res.kind {
        CatalogKind::Flavor => "flavor",
        CatalogKind::AvailabilityZone => "availability zone",
        _ => return ApiError::conflict("Record already exists."),
    };
    ApiError::conflict(format!("A {field} of {name} already exists."))
}

/// The data field and capabilities of a profile kind.
fn profile_field(kind: CatalogKind) -> (&'static str, &'static [Capability]) {
    if kind == CatalogKind::FlavorProfile {
        ("flavor_data", FLAVOR_CAPABILITIES)
    } else {
        ("availability_zone_data", AZ_CAPABILITIES)
    }
}

/// The kind of profile a kind refers to.
fn profile_of(kind: CatalogKind) -> Option<CatalogKind> {
    match kind {
        CatalogKind::Flavor => Some(CatalogKind::FlavorProfile),
        CatalogKind::AvailabilityZone => Some(CatalogKind::AvailabilityZoneProfile),
        _ => None,
    }
}

/// The kind that refers to a profile kind.
fn referrer_of(kind: CatalogKind) -> Option<CatalogKind> {
    match kind {
        CatalogKind::FlavorProfile => Some(CatalogKind::Flavor),
        CatalogKind::AvailabilityZoneProfile => Some(CatalogKind::AvailabilityZone),
        _ => None,
    }
}

pub(crate) async fn update(
    res: &'static Res,
    s: AppState,
    ctx: Context,
    key: String,
    body: Body,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    let v = read_json(&s, body).await?;
    let m = envelope(&v, res.arg, res.key, res.put, false)?;
    // Octavia refuses a null where the object needs a value.
    if let Some(f) = res
        .put
        .iter()
        .find(|f| f.name != "description" && m.is_null(f.name))
    {
        return Err(invalid_option("None", f.name));
    }
    let profile = referrer_of(res.kind).map(|_| profile_field(res.kind));
    // The provider and data the profile will have, checked against the drivers before the
    // transaction (which checks them again against the row it changes).
    let effective = |row: &CatalogRow, field: &str| {
        let provider = m
            .s("provider_name")
            .or_else(|| row.doc["provider_name"].as_str().map(String::from))
            .unwrap_or_default();
        let data = m
            .s(field)
            .or_else(|| row.doc[field].as_str().map(String::from))
            .unwrap_or_default();
        (provider, data)
    };
    if let Some((field, caps)) = profile.filter(|(f, _)| m.has(f) || m.has("provider_name")) {
        let row = s
            .store
            .read(|tx| tx.catalog_get(res.kind, &key))
            .await?
            .ok_or_else(|| not_found(res, &key))?;
        let (provider, data) = effective(&row, field);
        check_profile(&s, &provider, &data, field, caps).await?;
    }
    let row = s
        .store
        .write(|tx| -> ApiResult<CatalogRow> {
            let mut row = tx
                .catalog_get(res.kind, &key)?
                .ok_or_else(|| not_found(res, &key))?;
            if let (Some((field, caps)), Some(referrer)) = (profile, referrer_of(res.kind)) {
                if m.has(field) || m.has("provider_name") {
                    if tx.catalog_referrers(referrer, &key)? > 0 {
                        return Err(in_use(res, &key));
                    }
                    let (provider, data) = effective(&row, field);
                    check_profile_schema(&s, &provider, &data, field, caps)?;
                }
            }
            if let Some(name) = m.s("name").filter(|n| *n != row.name) {
                if profile_of(res.kind).is_some() && tx.catalog_name_taken(res.kind, &name)? {
                    return Err(already_exists(res, &name));
                }
                row.name = name;
            }
            for (k, v) in &m {
                if k == "description" || !v.is_null() {
                    row.doc[k.as_str()] = v.clone();
                }
            }
            tx.catalog_update(res.kind, &row)?;
            Ok(row)
        })
        .await?;
    Ok(respond_one(&row.doc, res.key, None))
}

pub(crate) async fn delete(
    res: &'static Res,
    s: AppState,
    ctx: Context,
    key: String,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    s.store
        .write(|tx| -> ApiResult<()> {
            if tx.catalog_get(res.kind, &key)?.is_none() {
                return Err(not_found(res, &key));
            }
            let used = match res.kind {
                CatalogKind::Flavor => tx.load_balancers_using("flavor_id", &key)?,
                CatalogKind::AvailabilityZone => {
                    tx.load_balancers_using("availability_zone", &key)?
                }
                k => tx.catalog_referrers(referrer_of(k).unwrap_or(k), &key)?,
            };
            if used > 0 {
                return Err(in_use(res, &key));
            }
            tx.catalog_delete(res.kind, &key)?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `/providers/{provider}/flavor_capabilities` and `/availability_zone_capabilities`.
pub(crate) async fn capabilities(
    flavor: bool,
    s: AppState,
    ctx: Context,
    provider: String,
    raw: Option<String>,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    crate::common::require_provider(&s, &provider)?;
    let (key, caps) = if flavor {
        ("flavor_capabilities", FLAVOR_CAPABILITIES)
    } else {
        ("availability_zone_capabilities", AZ_CAPABILITIES)
    };
    // Octavia filters capabilities by name and description given in the query.
    let want: Vec<(String, String)> =
        form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "name" || k == "description")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let list: Vec<Value> = caps
        .iter()
        .map(|(n, d, _)| json!({"name": n, "description": d}))
        .filter(|c| want.iter().all(|(k, v)| c[k.as_str()] == v.as_str()))
        .collect();
    Ok(respond_all(&list, key, raw.as_deref()))
}

/// Routes' extractors in one place (each resource's handlers are the functions above with
/// their `Res`).
pub(crate) mod handlers {
    use super::*;

    macro_rules! resource {
        ($modname:ident, $res:expr) => {
            pub(crate) mod $modname {
                use super::*;
                pub(crate) async fn list(
                    State(s): State<AppState>,
                    ctx: Context,
                    headers: HeaderMap,
                    RawQuery(raw): RawQuery,
                ) -> ApiResult<Response> {
                    super::super::list(&$res, s, ctx, headers, raw).await
                }
                pub(crate) async fn create(
                    State(s): State<AppState>,
                    ctx: Context,
                    body: Body,
                ) -> ApiResult<Response> {
                    super::super::create(&$res, s, ctx, body).await
                }
                pub(crate) async fn show(
                    State(s): State<AppState>,
                    ctx: Context,
                    Path(key): Path<String>,
                    RawQuery(raw): RawQuery,
                ) -> ApiResult<Response> {
                    super::super::show(&$res, s, ctx, key, raw).await
                }
                pub(crate) async fn update(
                    State(s): State<AppState>,
                    ctx: Context,
                    Path(key): Path<String>,
                    body: Body,
                ) -> ApiResult<Response> {
                    super::super::update(&$res, s, ctx, key, body).await
                }
                pub(crate) async fn delete(
                    State(s): State<AppState>,
                    ctx: Context,
                    Path(key): Path<String>,
                ) -> ApiResult<Response> {
                    super::super::delete(&$res, s, ctx, key).await
                }
            }
        };
    }
    resource!(flavor_profiles, FLAVOR_PROFILES);
    resource!(flavors, FLAVORS);
    resource!(az_profiles, AZ_PROFILES);
    resource!(azs, AZS);

    pub(crate) async fn flavor_capabilities(
        State(s): State<AppState>,
        ctx: Context,
        Path(provider): Path<String>,
        RawQuery(raw): RawQuery,
    ) -> ApiResult<Response> {
        capabilities(true, s, ctx, provider, raw).await
    }

    pub(crate) async fn az_capabilities(
        State(s): State<AppState>,
        ctx: Context,
        Path(provider): Path<String>,
        RawQuery(raw): RawQuery,
    ) -> ApiResult<Response> {
        capabilities(false, s, ctx, provider, raw).await
    }
}
