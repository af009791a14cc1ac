//! List queries as Octavia serves them: filters on any top-level attribute, tag filters,
//! sorting (`sort=` or `sort_key`/`sort_dir`), pagination (`limit`, `marker`, `page_reverse`,
//! `*_links`) and `fields=` selection. Plain lists skip the generic path and serialize directly.

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use rocta_model::Id;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// A listed item: serializable, with an id for markers.
pub trait Item: Serialize {
    fn item_id(&self) -> Id;

    /// Attributes that are not in the body but may be filtered on, as Octavia filters on its
    /// database columns (a listener's `loadbalancer_id`, a member's `pool_id`, ...).
    fn hidden(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Appends the item's JSON to `buf` (raw items copy their stored document).
    fn write_json(&self, buf: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(buf, self)
    }
}

/// An item whose wire JSON is its stored document plus a few extra members, spliced as text:
/// the fast path of plain lists (no decode, no re-encode).
pub struct RawItem {
    pub id: Id,
    pub json: String,
}

impl RawItem {
    /// `body` is a JSON object; `extras` are `(key, JSON value)` members appended to it.
    pub fn splice(id: Id, body: &str, extras: &[(&str, &str)]) -> Option<RawItem> {
        let inner = body.trim_end().strip_suffix('}')?;
        let mut json = String::with_capacity(body.len() + 128);
        json.push_str(inner);
        for (k, v) in extras {
            json.push_str(",\"");
            json.push_str(k);
            json.push_str("\":");
            json.push_str(v);
        }
        json.push('}');
        Some(RawItem { id, json })
    }
}

impl Serialize for RawItem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v: Value = serde_json::from_str(&self.json).map_err(serde::ser::Error::custom)?;
        v.serialize(s)
    }
}

impl Item for RawItem {
    fn item_id(&self) -> Id {
        self.id
    }

    fn write_json(&self, buf: &mut Vec<u8>) -> serde_json::Result<()> {
        buf.extend_from_slice(self.json.as_bytes());
        Ok(())
    }
}

/// The parsed query string of a list call.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub marker: Option<String>,
    pub page_reverse: bool,
    pub sort: Vec<(String, bool)>,
    pub fields: Vec<String>,
    pub filters: Vec<(String, String)>,
    pub tags: Vec<String>,
    pub tags_any: Vec<String>,
    pub not_tags: Vec<String>,
    pub not_tags_any: Vec<String>,
    /// The sort/limit part of the query, echoed in pagination links.
    link_params: Vec<(String, String)>,
}

fn split(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl ListQuery {
    /// Parses a raw query string; `max_limit` is `[api_settings] pagination_max_limit`.
    pub fn parse(raw: Option<&str>, max_limit: usize) -> ApiResult<ListQuery> {
        let mut q = ListQuery {
            limit: Some(max_limit),
            ..Default::default()
        };
        let mut sort_keys = Vec::new();
        let mut sort_dirs = Vec::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let (k, v) = (k.into_owned(), v.into_owned());
            match k.as_str() {
                "limit" => {
                    q.limit = if v == "infinite" {
                        None
                    } else {
                        let n: i64 = v.parse().map_err(|_| {
                            ApiError::bad_request(format!("Invalid value for limit: {v}"))
                        })?;
                        if n < 1 {
                            None
                        } else {
                            Some((n as usize).min(max_limit))
                        }
                    };
                    q.link_params.push((k, v));
                }
                "marker" => q.marker = Some(v),
                "page_reverse" => q.page_reverse = v.eq_ignore_ascii_case("true"),
                "sort" => {
                    for part in split(&v) {
                        let (key, dir) = match part.split_once(':') {
                            Some((a, b)) => (a.to_string(), b.to_string()),
                            None => (part.clone(), "asc".to_string()),
                        };
                        sort_keys.push(key);
                        sort_dirs.push(dir);
                    }
                    q.link_params.push((k, v));
                }
                "sort_key" => {
                    sort_keys.extend(split(&v));
                    q.link_params.push((k, v));
                }
                "sort_dir" => {
                    sort_dirs.extend(split(&v));
                    q.link_params.push((k, v));
                }
                "fields" => q.fields.extend(split(&v)),
                "tags" => q.tags.extend(split(&v)),
                "tags-any" => q.tags_any.extend(split(&v)),
                "not-tags" => q.not_tags.extend(split(&v)),
                "not-tags-any" => q.not_tags_any.extend(split(&v)),
                _ => q.filters.push((k, v)),
            }
        }
        for (i, key) in sort_keys.into_iter().enumerate() {
            let dir = sort_dirs.get(i).map(String::as_str).unwrap_or("asc");
            let asc = match dir {
                "asc" => true,
                "desc" => false,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid sort direction specified: {other}"
                    )))
                }
            };
            q.sort.push((key, asc));
        }
        Ok(q)
    }

    fn is_plain(&self, len: usize) -> bool {
        self.marker.is_none()
            && self.sort.is_empty()
            && self.fields.is_empty()
            && self.filters.is_empty()
            && self.tags.is_empty()
            && self.tags_any.is_empty()
            && self.not_tags.is_empty()
            && self.not_tags_any.is_empty()
            && !self.page_reverse
            && self.limit.is_none_or(|l| len < l)
    }
}

/// How a filter value compares with an attribute (Octavia compares the API value as text).
fn matches(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => want.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Number(n) => n.to_string() == want,
        Value::Null => want.is_empty() || want == "None",
        _ => false,
    }
}

fn cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Value::Null, Value::Null) => Equal,
        (Value::Null, _) => Less,
        (_, Value::Null) => Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn tags_of(o: &Map<String, Value>) -> Vec<&str> {
    o.get("tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Builds the list response `{"<key>": [...], "<key>_links": [...]}`.
pub fn respond<I: Item>(
    items: Vec<I>,
    q: &ListQuery,
    key: &str,
    links_key: &str,
    base: &str,
    path: &str,
) -> ApiResult<Response> {
    if q.is_plain(items.len()) {
        // The common case: serialize the items straight into the envelope.
        let mut buf = Vec::with_capacity(64 + items.len() * 768);
        buf.extend_from_slice(format!("{{\"{key}\":[").as_bytes());
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            it.write_json(&mut buf).map_err(|_| ApiError::internal())?;
        }
        buf.push(b']');
        buf.extend_from_slice(format!(",\"{links_key}\":[]}}").as_bytes());
        return Ok(bytes_response(buf));
    }
    let mut rows: Vec<Map<String, Value>> = Vec::with_capacity(items.len());
    let mut hidden_keys: Vec<&'static str> = Vec::new();
    for it in &items {
        match serde_json::to_value(it) {
            Ok(Value::Object(mut m)) => {
                for (k, v) in it.hidden() {
                    if !m.contains_key(k) {
                        m.insert(k.to_string(), Value::String(v));
                        if !hidden_keys.contains(&k) {
                            hidden_keys.push(k);
                        }
                    }
                }
                rows.push(m)
            }
            _ => return Err(ApiError::internal()),
        }
    }
    // Filters: every key must be an attribute.
    for (k, _) in &q.filters {
        let known = rows.first().map(|r| r.contains_key(k)).unwrap_or(true);
        if !known || k == "tags" {
            return Err(ApiError::bad_request(
                "One or more arguments are either duplicate or invalid.",
            ));
        }
    }
    rows.retain(|r| {
        q.filters
            .iter()
            .all(|(k, want)| r.get(k).is_some_and(|v| matches(v, want)))
    });
    rows.retain(|r| {
        let t = tags_of(r);
        let has = |x: &String| t.contains(&x.as_str());
        let all_tags = q.tags.iter().all(has);
        let any_tag = q.tags_any.is_empty() || q.tags_any.iter().any(has);
        let not_all = q.not_tags.is_empty() || !q.not_tags.iter().all(has);
        let not_any = !q.not_tags_any.iter().any(has);
        all_tags && any_tag && not_all && not_any
    });
    for (k, _) in &q.sort {
        let ok = rows.first().map(|r| r.contains_key(k)).unwrap_or(true);
        if !ok {
            return Err(ApiError::bad_request(format!("Invalid sort key: {k}")));
        }
    }
    // Stable sort: the store's creation order is the final tie-breaker (Octavia: created_at, id).
    if !q.sort.is_empty() {
        rows.sort_by(|a, b| {
            for (k, asc) in &q.sort {
                let o = cmp(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                let o = if *asc { o } else { o.reverse() };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    if q.page_reverse {
        rows.reverse();
    }
    // A marker is an object's id; objects without one (availability zones) go by name.
    let key_of = |r: &Map<String, Value>| {
        r.get("id")
            .or_else(|| r.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let start = match &q.marker {
        Some(m) => {
            let pos = rows
                .iter()
                .position(|r| key_of(r).as_deref() == Some(m.as_str()))
                .ok_or_else(|| ApiError::bad_request(format!("Marker {m} could not be found.")))?;
            pos + 1
        }
        None => 0,
    };
    let mut page: Vec<Map<String, Value>> = rows.into_iter().skip(start).collect();
    let full = q.limit.is_some_and(|l| page.len() >= l);
    if let Some(l) = q.limit {
        page.truncate(l);
    }
    if q.page_reverse {
        page.reverse();
    }
    let id_of = |r: Option<&Map<String, Value>>| r.and_then(key_of).unwrap_or_default();
    let mut links = Vec::new();
    let params: String = q
        .link_params
        .iter()
        .map(|(k, v)| format!("{k}={v}&"))
        .collect();
    let limit_param = if q.link_params.iter().any(|(k, _)| k == "limit") {
        String::new()
    } else {
        format!("limit={}&", q.limit.unwrap_or(0))
    };
    if full && !page.is_empty() {
        links.push(serde_json::json!({
            "rel": "next",
            "href": format!("{base}{path}?{limit_param}{params}marker={}", id_of(page.last())),
        }));
    }
    if q.marker.is_some() && !page.is_empty() {
        links.push(serde_json::json!({
            "rel": "previous",
            "href": format!("{base}{path}?{limit_param}{params}marker={}&page_reverse=True", id_of(page.first())),
        }));
    }
    for r in &mut page {
        for k in &hidden_keys {
            r.remove(*k);
        }
    }
    if !q.fields.is_empty() {
        for r in &mut page {
            r.retain(|k, _| q.fields.iter().any(|f| f == k));
        }
    }
    let mut body = Map::new();
    body.insert(
        key.into(),
        Value::Array(page.into_iter().map(Value::Object).collect()),
    );
    body.insert(links_key.into(), Value::Array(links));
    Ok(json_response(&body))
}

/// A single raw item (see `RawItem`) with `fields=` selection applied.
pub fn respond_one_raw(item: &RawItem, key: &str, raw_query: Option<&str>) -> Response {
    if raw_query.is_some_and(|q| q.contains("fields")) {
        return respond_one(item, key, raw_query);
    }
    bytes_response(format!("{{\"{key}\":{}}}", item.json).into_bytes())
}

/// The `fields=` of a query (repeated or comma-separated).
fn fields_of(raw_query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(raw_query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| split(&v).collect::<Vec<_>>())
        .collect()
}

/// `item` as JSON keeping only `fields` (all when empty).
fn selected<I: Serialize>(item: &I, fields: &[String]) -> Value {
    let mut v = serde_json::to_value(item).unwrap_or(Value::Null);
    if let (Value::Object(m), false) = (&mut v, fields.is_empty()) {
        m.retain(|k, _| fields.iter().any(|f| f == k));
    }
    v
}

/// A single object with `fields=` selection applied.
pub fn respond_one<I: Serialize>(item: &I, key: &str, raw_query: Option<&str>) -> Response {
    let fields = fields_of(raw_query);
    if fields.is_empty() {
        let mut m = std::collections::HashMap::new();
        m.insert(key, item);
        return json_response(&m);
    }
    json_response(&serde_json::json!({ key: selected(item, &fields) }))
}

/// An unpaginated list (providers, capabilities) with `fields=` selection applied.
pub fn respond_all<I: Serialize>(items: &[I], key: &str, raw_query: Option<&str>) -> Response {
    let fields = fields_of(raw_query);
    let list: Vec<Value> = items.iter().map(|i| selected(i, &fields)).collect();
    json_response(&serde_json::json!({ key: list }))
}

/// `respond_all` with an empty `links_key` list beside it (quotas).
pub fn respond_all_linked<I: Serialize>(
    items: &[I],
    key: &str,
    links_key: &str,
    raw_query: Option<&str>,
) -> Response {
    let fields = fields_of(raw_query);
    let list: Vec<Value> = items.iter().map(|i| selected(i, &fields)).collect();
    json_response(&serde_json::json!({ key: list, links_key: [] }))
}

/// Serializes `body` as an `application/json` 200 response.
pub fn json_response<B: Serialize + ?Sized>(body: &B) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => bytes_response(bytes),
        Err(_) => ApiError::internal().into_response(),
    }
}

/// A 200 `application/json` response of already-serialized bytes.
pub fn bytes_response(bytes: Vec<u8>) -> Response {
    let mut h = HeaderMap::new();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    (h, bytes).into_response()
}
