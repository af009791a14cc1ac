//! The OpenAPI 3.0 document, generated from the code: paths and methods from the route table
//! (`routes::ops`, the same table the router is built from), request bodies from the
//! validation field tables the handlers check bodies against, responses from the serialized
//! types (schemars). Served at `/v2/openapi.json`; `docs/openapi.json` is the checked-in copy
//! (a test fails when it differs from what the code generates).

use std::collections::BTreeSet;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::routes::{documented_path, ops};
use crate::validate::{F, T};

/// A request body.
#[derive(Clone, Copy)]
pub(crate) enum Body {
    /// `{"<key>": {fields}}`; `create` makes the mandatory fields required.
    Envelope {
        key: &'static str,
        spec: &'static [F],
        create: bool,
    },
    /// `{"<key>": [{fields}, ...]}` (batch member update).
    List {
        key: &'static str,
        spec: &'static [F],
    },
}

/// Query parameters an operation takes.
#[derive(Clone, Copy)]
pub(crate) enum Query {
    None,
    /// Pagination, sorting, `fields`.
    List,
    /// `fields` only.
    Fields,
    /// `cascade` (load balancer delete).
    Cascade,
    /// `additive_only` (batch member update).
    Additive,
}

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// A success response body.
#[derive(Clone)]
pub(crate) enum Resp {
    Empty,
    /// `{"<key>": T}`.
    One(&'static str, SchemaFn),
    /// `{"<key>": [T], "<key>_links": [Link]}`.
    List(&'static str, SchemaFn),
    /// T itself.
    Raw(SchemaFn),
}

fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

impl Resp {
    pub(crate) fn one<T: JsonSchema>(key: &'static str) -> Resp {
        Resp::One(key, schema_of::<T>)
    }
    pub(crate) fn list<T: JsonSchema>(key: &'static str) -> Resp {
        Resp::List(key, schema_of::<T>)
    }
    pub(crate) fn raw<T: JsonSchema>() -> Resp {
        Resp::Raw(schema_of::<T>)
    }
}

/// What the document says of an operation.
pub(crate) struct Doc {
    tag: &'static str,
    summary: &'static str,
    query: Query,
    body: Option<Body>,
    status: u16,
    resp: Resp,
}

impl Doc {
    pub(crate) fn new(
        tag: &'static str,
        summary: &'static str,
        query: Query,
        body: Option<Body>,
        status: u16,
        resp: Resp,
    ) -> Doc {
        Doc {
            tag,
            summary,
            query,
            body,
            status,
            resp,
        }
    }
}

/// The schema of one validated field type.
fn field_schema(ty: T) -> Value {
    match ty {
        T::Str(max) => json!({"type": "string", "maxLength": max}),
        T::Uuid => json!({"type": "string", "format": "uuid"}),
        T::Bool => json!({"type": "boolean"}),
        T::Int(min, max) => json!({"type": "integer", "minimum": min, "maximum": max}),
        T::Enum(_, _, values) => json!({"type": "string", "enum": values()}),
        T::Ip => json!({"type": "string", "description": "An IPv4 or IPv6 address"}),
        T::StrList(max) => json!({"type": "array", "items": {"type": "string", "maxLength": max}}),
        T::UuidList => json!({"type": "array", "items": {"type": "string", "format": "uuid"}}),
        T::StrDict => json!({"type": "object", "additionalProperties": {"type": "string"}}),
        T::Obj(spec) => object_schema(spec, true),
        T::ObjList(spec) => json!({"type": "array", "items": object_schema(spec, true)}),
        T::Num(allowed) => json!({"type": "number", "enum": allowed}),
        T::Any => json!({}),
    }
}

/// An object checked against a field table: unknown attributes are refused.
fn object_schema(spec: &[F], create: bool) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in spec {
        props.insert(f.name.into(), field_schema(f.ty));
        if f.required && create {
            required.push(f.name);
        }
    }
    let mut o = json!({"type": "object", "properties": props, "additionalProperties": false});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

fn body_schema(b: Body) -> Value {
    let (key, inner) = match b {
        Body::Envelope { key, spec, create } => (key, object_schema(spec, create)),
        Body::List { key, spec } => (
            key,
            json!({"type": "array", "items": object_schema(spec, true)}),
        ),
    };
    json!({
        "type": "object",
        "properties": { key: inner },
        "required": [key],
        "additionalProperties": false,
    })
}

fn query_params(q: Query) -> Vec<Value> {
    let p = |name: &str, schema: Value, description: &str| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description});
    let fields = || {
        p(
            "fields",
            json!({"type": "string"}),
            "Comma-separated attributes to return",
        )
    };
    let flag = json!({"type": "string", "enum": ["true", "false"]});
    match q {
        Query::None => vec![],
        Query::Fields => vec![fields()],
        Query::List => vec![
            p("limit", json!({"type": "integer"}), "Page size"),
            p(
                "marker",
                json!({"type": "string", "format": "uuid"}),
                "Id of the last item of the previous page",
            ),
            p("page_reverse", flag, "Page backwards from the marker"),
            p("sort", json!({"type": "string"}), "key[:asc|desc],..."),
            fields(),
        ],
        Query::Cascade => vec![p("cascade", flag, "Delete the children too")],
        Query::Additive => vec![p("additive_only", flag, "Keep members not listed")],
    }
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = if name == "project_id" {
                json!({"type": "string"})
            } else {
                json!({"type": "string", "format": "uuid"})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

fn response_schema(r: &Resp, g: &mut SchemaGenerator) -> Option<Value> {
    let v = match r {
        Resp::Empty => return None,
        Resp::One(key, f) => json!({
            "type": "object",
            "properties": { *key: f(g).to_value() },
        }),
        Resp::List(key, f) => json!({
            "type": "object",
            "properties": {
                *key: {"type": "array", "items": f(g).to_value()},
                format!("{key}_links"): {"type": "array", "items": {"$ref": "#/components/schemas/Link"}},
            },
        }),
        Resp::Raw(f) => f(g).to_value(),
    };
    Some(v)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "Deleted",
        400 => "Bad request (validation failed)",
        401 => "Unauthorized",
        403 => "Forbidden by policy",
        404 => "Not found",
        409 => "Conflict (immutable object or duplicate)",
        _ => "Error",
    }
}

/// Response schemas describe every attribute without requiring any: `fields=` may select some.
fn relax(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("required");
            m.values_mut().for_each(relax);
        }
        Value::Array(a) => a.iter_mut().for_each(relax),
        _ => {}
    }
}

fn params_of(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// OpenAPI links from each create to the operations on what it created: the new object's id
/// (and the create's own path parameters) fill the next operation's path, so a client or a
/// fuzzer can walk from a new load balancer to its status, stats, update and delete.
fn add_links(paths: &mut Map<String, Value>) {
    let mut ops: Vec<(String, String, String)> = Vec::new(); // (path, method, operationId)
    for (path, item) in paths.iter() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            ops.push((path.clone(), method.clone(), id));
        }
    }
    for (path, item) in paths.iter_mut() {
        let Some(post) = item.get_mut("post") else {
            continue;
        };
        let Some(key) = post["responses"]["201"]["content"]["application/json"]["schema"]
            ["properties"]
            .as_object()
            .and_then(|p| p.keys().next().cloned())
        else {
            continue;
        };
        let own = params_of(path);
        let mut links = Map::new();
        for (q, _, op_id) in &ops {
            let Some(rest) = q.strip_prefix(path.as_str()) else {
                continue;
            };
            let Some(next) = rest.strip_prefix("/{").and_then(|r| r.split('}').next()) else {
                continue;
            };
            let mut parameters = Map::new();
            for p in &own {
                parameters.insert((*p).into(), json!(format!("$request.path.{p}")));
            }
            parameters.insert(next.into(), json!(format!("$response.body#/{key}/id")));
            links.insert(
                op_id.clone(),
                json!({"operationId": op_id, "parameters": parameters}),
            );
        }
        if !links.is_empty() {
            post["responses"]["201"]["links"] = Value::Object(links);
        }
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut g = SchemaSettings::openapi3().into_generator();
    g.subschema_for::<crate::wire::Link>();
    let mut paths = Map::new();
    let mut tags = BTreeSet::new();
    for o in ops() {
        let path = documented_path(&o);
        let d = &o.doc;
        tags.insert(d.tag);
        let mut params = path_params(o.path);
        params.extend(query_params(d.query));
        let method = o.method.as_str().to_ascii_lowercase();
        let mut responses = Map::new();
        let mut ok = json!({"description": reason(d.status)});
        if let Some(s) = response_schema(&d.resp, &mut g) {
            ok["content"] = json!({"application/json": {"schema": s}});
        }
        responses.insert(d.status.to_string(), ok);
        let mut errors = vec![400, 401, 403];
        if o.path.contains('{') || d.body.is_some() {
            errors.push(404);
        }
        if o.method != axum::http::Method::GET {
            errors.push(409);
        }
        for e in errors {
            responses.insert(
                e.to_string(),
                json!({"description": reason(e), "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Fault"}}}}),
            );
        }
        let mut operation = json!({
            "operationId": format!("{method}{}", path.replace(['/', '{', '}'], "_")),
            "summary": d.summary,
            "tags": [d.tag],
            "parameters": params,
            "responses": responses,
        });
        if let Some(b) = d.body {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": body_schema(b)}},
            });
        }
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    let mut schemas: Map<String, Value> = g
        .take_definitions(true)
        .into_iter()
        .map(|(k, mut v)| {
            relax(&mut v);
            (k, v)
        })
        .collect();
    schemas.insert(
        "Fault".into(),
        json!({
            "type": "object",
            "description": "Octavia's fault body",
            "properties": {
                "faultcode": {"type": "string"},
                "faultstring": {"type": "string"},
                "debuginfo": {"type": "string", "nullable": true},
            },
            "required": ["faultcode", "faultstring"],
        }),
    );
    add_links(&mut paths);
    let mut paths_sorted: Vec<(String, Value)> = paths.into_iter().collect();
    paths_sorted.sort_by(|a, b| a.0.cmp(&b.0));
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "rocta: the OpenStack Octavia v2 load-balancer API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Generated from rocta's route table, validation tables and wire types.",
        },
        "tags": tags.into_iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": Map::from_iter(paths_sorted),
        "components": {"schemas": schemas},
    })
}

/// The document as pretty JSON with a trailing newline (the checked-in form).
pub fn document_text() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

pub(crate) async fn serve() -> Response {
    ([(CONTENT_TYPE, "application/json")], document_text()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

    /// `docs/openapi.json` is what the code generates; `ROCTA_BLESS=1` rewrites it.
    #[test]
    fn checked_in_copy_is_current() {
        let now = document_text();
        if std::env::var_os("ROCTA_BLESS").is_some() {
            std::fs::write(CHECKED_IN, &now).expect("write docs/openapi.json");
            return;
        }
        let old = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            old == now,
            "docs/openapi.json differs from the generated document; \
             regenerate it with `ROCTA_BLESS=1 cargo test -p rocta-api openapi` and commit it"
        );
    }

    #[test]
    fn bodies_follow_the_validation_tables() {
        let d = document();
        let post = &d["paths"]["/v2/lbaas/listeners"]["post"];
        let body = &post["requestBody"]["content"]["application/json"]["schema"];
        let listener = &body["properties"]["listener"];
        assert_eq!(listener["additionalProperties"], false);
        let required = listener["required"].as_array().expect("required");
        assert!(required.contains(&json!("protocol")));
        assert!(required.contains(&json!("protocol_port")));
        assert_eq!(listener["properties"]["protocol_port"]["maximum"], 65535);
        let put = &d["paths"]["/v2/lbaas/listeners/{id}"]["put"];
        let b = &put["requestBody"]["content"]["application/json"]["schema"];
        assert!(b["properties"]["listener"]["required"].is_null());
        let lb = &d["components"]["schemas"]["LoadBalancer"];
        assert_eq!(
            lb["properties"]["provisioning_status"]["$ref"],
            "#/components/schemas/ProvisioningStatus"
        );
        assert!(d["paths"]["/v2/octavia/amphorae/{id}/failover"]["put"].is_object());
    }
}
