//! Keystone password authentication for the client, as the `openstack` CLI does it: the
//! `OS_*` variables (or their `--os-*` flags), or a cloud of `clouds.yaml` (`--os-cloud` /
//! `OS_CLOUD`), give Keystone's URL and the user's credentials; one `POST /v3/auth/tokens`
//! returns the token and the service catalog, from which the `load-balancer` endpoint of the
//! region and interface is taken (unless `--os-endpoint` names one).
//!
//! `clouds.yaml` is looked for where openstacksdk looks: `OS_CLIENT_CONFIG_FILE`, then
//! `./clouds.yaml`, `$XDG_CONFIG_HOME/openstack/clouds.yaml` (`~/.config/...`) and
//! `/etc/openstack/clouds.yaml`. Values given as flags or `OS_*` variables override the cloud's.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::http::{Failure, Result};

/// The credentials and where to use them, merged from the cloud, the environment and flags.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Credentials {
    pub auth_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub project_name: Option<String>,
    pub project_id: Option<String>,
    pub user_domain_name: Option<String>,
    pub project_domain_name: Option<String>,
    pub region_name: Option<String>,
    pub interface: Option<String>,
}

impl Credentials {
    /// Fills what is unset from `cloud` (an entry of `clouds.yaml`).
    pub fn or_cloud(mut self, cloud: &Value) -> Credentials {
        let auth = &cloud["auth"];
        let get = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let fill = |slot: &mut Option<String>, v: Option<String>| {
            if slot.is_none() {
                *slot = v;
            }
        };
        fill(&mut self.auth_url, get(auth, "auth_url"));
        fill(&mut self.username, get(auth, "username"));
        fill(&mut self.password, get(auth, "password"));
        fill(&mut self.project_name, get(auth, "project_name"));
        fill(&mut self.project_id, get(auth, "project_id"));
        fill(
            &mut self.user_domain_name,
            get(auth, "user_domain_name").or_else(|| get(auth, "domain_name")),
        );
        fill(
            &mut self.project_domain_name,
            get(auth, "project_domain_name").or_else(|| get(auth, "domain_name")),
        );
        fill(&mut self.region_name, get(cloud, "region_name"));
        fill(
            &mut self.interface,
            get(cloud, "interface").or_else(|| get(cloud, "endpoint_type")),
        );
        self
    }

    /// Whether these ask for password authentication at all.
    pub fn wanted(&self) -> bool {
        self.auth_url.is_some()
    }
}

/// The `clouds.yaml` files, in the order openstacksdk reads them.
fn cloud_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(f) = std::env::var_os("OS_CLIENT_CONFIG_FILE") {
        v.push(PathBuf::from(f));
    }
    v.push(PathBuf::from("clouds.yaml"));
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(c) = config {
        v.push(c.join("openstack/clouds.yaml"));
    }
    v.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    v
}

/// The entry `name` of the first `clouds.yaml` that has it.
pub fn cloud(name: &str) -> Result<Value> {
    let files = cloud_files();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let doc: Value = serde_norway::from_str(&text)
            .map_err(|e| Failure(format!("{}: not a clouds.yaml: {e}", f.display())))?;
        if let Some(c) = doc.get("clouds").and_then(|c| c.get(name)) {
            return Ok(c.clone());
        }
    }
    Err(Failure(format!(
        "cloud {name} is not in any clouds.yaml (looked in {})",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// A token and the load-balancer endpoint the catalog gave for it.
#[derive(Debug)]
pub struct Session {
    pub token: String,
    pub endpoint: Option<String>,
}

/// Keystone's v3 base URL for an `auth_url` given with or without its version.
fn v3(auth_url: &str) -> String {
    let u = auth_url.trim_end_matches('/');
    if u.ends_with("/v3") {
        u.to_string()
    } else {
        format!("{u}/v3")
    }
}

/// Authenticates with the password and returns the token and the load-balancer endpoint.
pub fn login(c: &Credentials) -> Result<Session> {
    let auth_url = c.auth_url.as_deref().unwrap_or_default();
    let need = |v: &Option<String>, what: &str| {
        v.clone().ok_or_else(|| {
            Failure(format!(
                "Keystone authentication needs {what} (--os-{} or OS_{})",
                what.replace('_', "-"),
                what.to_uppercase()
            ))
        })
    };
    let username = need(&c.username, "username")?;
    let password = need(&c.password, "password")?;
    let user_domain = c.user_domain_name.as_deref().unwrap_or("Default");
    let project_domain = c.project_domain_name.as_deref().unwrap_or("Default");
    let scope =
        match (&c.project_id, &c.project_name) {
            (Some(id), _) => json!({"project": {"id": id}}),
            (None, Some(name)) => {
                json!({"project": {"name": name, "domain": {"name": project_domain}}})
            }
            (None, None) => return Err(Failure(
                "Keystone authentication needs a project (--os-project-name or OS_PROJECT_NAME)"
                    .into(),
            )),
        };
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": username, "domain": {"name": user_domain}, "password": password}}},
        "scope": scope}});
    let url = format!("{}/auth/tokens", v3(auth_url));
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Failure(format!("cannot set up the HTTP client: {e}")))?
        .post(&url)
        .json(&body)
        .send()
        .map_err(|e| Failure(format!("cannot reach Keystone at {url}: {e}")))?;
    let status = resp.status().as_u16();
    let token = resp
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let doc: Value = resp.json().unwrap_or(Value::Null);
    let token = match (status, token) {
        (201, Some(t)) => t,
        _ => {
            let why = doc["error"]["message"]
                .as_str()
                .unwrap_or("no details given")
                .to_string();
            return Err(Failure(format!(
                "Keystone refused the credentials: {why} (HTTP {status})"
            )));
        }
    };
    let endpoint = endpoint_of(
        &doc["token"]["catalog"],
        "load-balancer",
        c.interface.as_deref().unwrap_or("public"),
        c.region_name.as_deref(),
    );
    Ok(Session { token, endpoint })
}

/// The URL of the `kind` service's endpoint on `interface` (`public`, `internal`, `admin`;
/// also their `publicURL` spellings) in `region` (any when `None`).
pub fn endpoint_of(
    catalog: &Value,
    kind: &str,
    interface: &str,
    region: Option<&str>,
) -> Option<String> {
    let interface = interface.trim_end_matches("URL");
    catalog
        .as_array()?
        .iter()
        .filter(|s| s["type"] == kind)
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .find(|e| {
            e["interface"] == interface
                && region.is_none_or(|r| e["region_id"] == r || e["region"] == r)
        })
        .and_then(|e| e["url"].as_str())
        .map(|u| u.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_gives_the_endpoint_of_the_region_and_interface() {
        let catalog = json!([
            {"type": "identity", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "http://ks/v3"}]},
            {"type": "load-balancer", "endpoints": [
                {"interface": "internal", "region_id": "RegionOne", "url": "http://int:9876"},
                {"interface": "public", "region_id": "RegionTwo", "url": "http://two:9876/"},
                {"interface": "public", "region_id": "RegionOne", "url": "http://one:9876/"}]}
        ]);
        let e = |i, r| endpoint_of(&catalog, "load-balancer", i, r);
        assert_eq!(
            e("public", Some("RegionOne")).as_deref(),
            Some("http://one:9876")
        );
        assert_eq!(
            e("publicURL", Some("RegionTwo")).as_deref(),
            Some("http://two:9876")
        );
        assert_eq!(e("internal", None).as_deref(), Some("http://int:9876"));
        assert_eq!(e("admin", None), None);
        assert_eq!(endpoint_of(&catalog, "network", "public", None), None);
    }

    #[test]
    fn flags_and_variables_override_the_cloud() {
        let cloud: Value = serde_norway::from_str(
            "auth:\n  auth_url: http://ks:5000\n  username: u\n  password: p\n  \
             project_name: demo\n  domain_name: D\nregion_name: R\n",
        )
        .unwrap();
        let c = Credentials {
            username: Some("flag-user".into()),
            ..Default::default()
        }
        .or_cloud(&cloud);
        assert_eq!(c.username.as_deref(), Some("flag-user"));
        assert_eq!(c.password.as_deref(), Some("p"));
        assert_eq!(c.user_domain_name.as_deref(), Some("D"));
        assert_eq!(c.project_domain_name.as_deref(), Some("D"));
        assert_eq!(c.region_name.as_deref(), Some("R"));
        assert!(c.wanted());
        assert_eq!(v3("http://ks:5000/"), "http://ks:5000/v3");
        assert_eq!(v3("http://ks:5000/v3/"), "http://ks:5000/v3");
    }
}
