//! `/` (the versions document), `/v2`, and the provider list.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::common::base_url;
use crate::context::Context;
use crate::error::ApiResult;
use crate::query::{json_response, respond_all};
use crate::wire::Link;
use crate::AppState;

/// Octavia's API versions (informational: every id points at the same `/v2`).
const VERSIONS: &[(&str, &str)] = &[
    ("v2.0", "2016-12-11T00:00:00Z"),
    ("v2.1", "2018-04-20T00:00:00Z"),
    ("v2.2", "2018-07-31T00:00:00Z"),
    ("v2.3", "2018-12-18T00:00:00Z"),
    ("v2.4", "2018-12-19T00:00:00Z"),
    ("v2.5", "2019-01-21T00:00:00Z"),
    ("v2.6", "2019-01-25T00:00:00Z"),
    ("v2.7", "2018-01-25T12:00:00Z"),
    ("v2.8", "2019-02-12T00:00:00Z"),
    ("v2.9", "2019-03-04T00:00:00Z"),
    ("v2.10", "2019-03-05T00:00:00Z"),
    ("v2.11", "2019-06-24T00:00:00Z"),
    ("v2.12", "2019-09-11T00:00:00Z"),
    ("v2.13", "2019-09-13T00:00:00Z"),
    ("v2.14", "2019-11-10T00:00:00Z"),
    ("v2.15", "2020-03-10T00:00:00Z"),
    ("v2.16", "2020-03-15T00:00:00Z"),
    ("v2.17", "2020-04-29T00:00:00Z"),
    ("v2.18", "2020-04-29T01:00:00Z"),
    ("v2.19", "2020-05-12T00:00:00Z"),
    ("v2.20", "2020-08-02T00:00:00Z"),
    ("v2.21", "2020-09-03T00:00:00Z"),
    ("v2.22", "2020-09-04T00:00:00Z"),
    ("v2.23", "2020-09-07T00:00:00Z"),
    ("v2.24", "2020-10-15T00:00:00Z"),
    ("v2.25", "2021-10-02T00:00:00Z"),
    ("v2.26", "2022-08-29T00:00:00Z"),
    ("v2.27", "2023-05-05T00:00:00Z"),
    ("v2.28", "2023-11-08T00:00:00Z"),
    ("v2.29", "2024-10-15T00:00:00Z"),
    ("v2.30", "2025-02-26T00:00:00Z"),
];

/// An API version.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Version {
    id: &'static str,
    status: &'static str,
    updated: &'static str,
    links: Vec<Link>,
}

pub(crate) async fn root(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let href = format!("{}/v2", base_url(&s, &headers));
    let last = VERSIONS.len() - 1;
    let versions: Vec<_> = VERSIONS
        .iter()
        .enumerate()
        .map(|(i, (id, updated))| Version {
            id,
            status: if i == last { "CURRENT" } else { "SUPPORTED" },
            updated,
            links: vec![Link {
                href: href.clone(),
                rel: "self",
            }],
        })
        .collect();
    json_response(&json!({ "versions": versions }))
}

pub(crate) async fn v2() -> Response {
    json_response(&"v2")
}

/// A provider driver.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Provider {
    name: String,
    description: String,
}

pub(crate) async fn providers(
    State(s): State<AppState>,
    ctx: Context,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    ctx.require_reader()?;
    let list: Vec<_> = s
        .cfg
        .api_settings
        .enabled_provider_drivers
        .iter()
        .map(|(name, description)| Provider {
            name: name.clone(),
            description: description.clone(),
        })
        .collect();
    Ok(respond_all(&list, "providers", raw.as_deref()))
}
