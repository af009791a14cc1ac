//! What the OpenStack drivers (Nova, Neutron, Glance, Barbican) share: a Keystone session
//! authenticated as the service (Octavia's `[service_auth]`, keystoneauth's password plugin),
//! the catalog it brings, and calls with its token.
//!
//! The token is fetched on first use, renewed a minute before it expires, and once more when
//! a service answers 401 (revoked meanwhile). A call that cannot reach its service, or that
//! the service answers with 502, 503 or 504, is retried `retries` times with exponential
//! backoff (from `backoff`, doubling, at most 30 s apart); then the caller gets
//! [`OsError::Unavailable`], which drivers report as a transient failure (the flow retries,
//! then reverts).

pub mod barbican;
pub mod neutron;
pub mod nova;

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

/// How to authenticate (`[service_auth]`) and how patient to be.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Keystone's identity endpoint (`http://HOST:5000` or `…/v3`).
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    /// CA bundle (PEM) for https endpoints; empty = the system's roots.
    pub cafile: String,
    /// Do not verify certificates (tests only).
    pub insecure: bool,
    /// One HTTP exchange at most.
    pub timeout: Duration,
    /// Attempts after the first, for a service that cannot be reached or is unavailable.
    pub retries: u32,
    /// The first wait between attempts.
    pub backoff: Duration,
}

/// Where a service is: its catalog type, the interfaces to take in order, the region, or an
/// operator's fixed URL (`endpoint_override`) instead of the catalog.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    pub service_type: String,
    /// `public`, `internal`, `admin` (Octavia's `publicURL` spellings are accepted).
    pub interfaces: Vec<String>,
    /// Empty: any region.
    pub region: String,
    /// Empty: from the catalog.
    pub endpoint_override: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OsError {
    /// The service (or Keystone) could not be reached or was unavailable, after the retries.
    #[error("{0}")]
    Unavailable(String),
    /// Keystone refused the service's credentials, or the catalog has no such endpoint.
    #[error("{0}")]
    Config(String),
    /// The service answered this status (not 2xx) with this body.
    #[error("{service} answered {status}: {body}")]
    Status {
        service: String,
        status: u16,
        body: Value,
    },
}

/// A service's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// JSON (`Null` when the body was empty or not JSON).
    pub body: Value,
}

#[derive(Debug, Clone, Deserialize)]
struct CatalogService {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Clone, Deserialize)]
struct CatalogEndpoint {
    interface: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    url: String,
}

struct Auth {
    token: String,
    /// The service user's id (Barbican ACLs name users by id).
    user_id: String,
    renew_at: Instant,
    catalog: Vec<CatalogService>,
}

/// A Keystone session of the service user, shared by the drivers of a process.
pub struct Session {
    cfg: SessionConfig,
    tokens_url: String,
    http: reqwest::Client,
    auth: tokio::sync::Mutex<Option<Auth>>,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Result<Session, OsError> {
        let base = cfg.auth_url.trim_end_matches('/');
        let base = base.strip_suffix("/v3").unwrap_or(base);
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .danger_accept_invalid_certs(cfg.insecure);
        if !cfg.cafile.is_empty() {
            let pem = std::fs::read(&cfg.cafile).map_err(|e| {
                OsError::Config(format!("[service_auth] cafile {}: {e}", cfg.cafile))
            })?;
            for c in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                OsError::Config(format!("[service_auth] cafile {}: {e}", cfg.cafile))
            })? {
                b = b.add_root_certificate(c);
            }
        }
        Ok(Session {
            tokens_url: format!("{base}/v3/auth/tokens"),
            http: b.build().map_err(|e| OsError::Config(e.to_string()))?,
            cfg,
            auth: tokio::sync::Mutex::new(None),
        })
    }

    /// The service's token (fetched when missing, about to expire, or `fresh`).
    pub async fn token(&self, fresh: bool) -> Result<String, OsError> {
        Ok(self.authenticated(fresh).await?.0)
    }

    /// The service user's id.
    pub async fn user_id(&self) -> Result<String, OsError> {
        self.authenticated(false).await?;
        let held = self.auth.lock().await;
        Ok(held.as_ref().map(|a| a.user_id.clone()).unwrap_or_default())
    }

    /// The token and the catalog, authenticating (with retries) when needed.
    async fn authenticated(&self, fresh: bool) -> Result<(String, Vec<CatalogService>), OsError> {
        let mut held = self.auth.lock().await;
        if let Some(a) = held
            .as_ref()
            .filter(|a| !fresh && Instant::now() < a.renew_at)
        {
            return Ok((a.token.clone(), a.catalog.clone()));
        }
        let c = &self.cfg;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username, "domain": {"name": c.user_domain_name}, "password": c.password}}},
            "scope": {"project": {"name": c.project_name, "domain": {"name": c.project_domain_name}}}
        }});
        let resp = self
            .retrying("Keystone", || self.http.post(&self.tokens_url).json(&body))
            .await?;
        if resp.status() != reqwest::StatusCode::CREATED {
            return Err(OsError::Config(format!(
                "Keystone refused the service's credentials ([service_auth] username {}): {}",
                c.username,
                resp.status()
            )));
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| OsError::Unavailable("Keystone sent no X-Subject-Token".into()))?;
        #[derive(Deserialize)]
        struct Body {
            token: Token,
        }
        #[derive(Deserialize)]
        struct Token {
            expires_at: String,
            user: User,
            #[serde(default)]
            catalog: Vec<CatalogService>,
        }
        #[derive(Deserialize)]
        struct User {
            id: String,
        }
        let b: Body = resp
            .json()
            .await
            .map_err(|e| OsError::Unavailable(format!("Keystone's token is unreadable: {e}")))?;
        let life = chrono::DateTime::parse_from_rfc3339(&b.token.expires_at)
            .ok()
            .and_then(|e| {
                (e.with_timezone(&chrono::Utc) - chrono::Utc::now())
                    .to_std()
                    .ok()
            })
            .unwrap_or_default();
        let auth = Auth {
            token,
            user_id: b.token.user.id,
            renew_at: Instant::now() + life.saturating_sub(Duration::from_secs(60)),
            catalog: b.token.catalog,
        };
        let out = (auth.token.clone(), auth.catalog.clone());
        *held = Some(auth);
        Ok(out)
    }

    /// The URL of `e`'s service: the override, else the catalog's endpoint of the first of
    /// its interfaces that has one in its region.
    pub async fn endpoint(&self, e: &Endpoint) -> Result<String, OsError> {
        if !e.endpoint_override.is_empty() {
            return Ok(e.endpoint_override.trim_end_matches('/').to_string());
        }
        let (_, catalog) = self.authenticated(false).await?;
        let interfaces: Vec<String> = if e.interfaces.is_empty() {
            vec!["public".into()]
        } else {
            e.interfaces
                .iter()
                .map(|i| i.trim_end_matches("URL").to_ascii_lowercase())
                .collect()
        };
        let endpoints: Vec<&CatalogEndpoint> = catalog
            .iter()
            .filter(|s| s.kind == e.service_type)
            .flat_map(|s| &s.endpoints)
            .filter(|p| {
                e.region.is_empty()
                    || p.region_id.as_deref() == Some(&e.region)
                    || p.region.as_deref() == Some(&e.region)
            })
            .collect();
        interfaces
            .iter()
            .find_map(|i| endpoints.iter().find(|p| &p.interface == i))
            .map(|p| p.url.trim_end_matches('/').to_string())
            .ok_or_else(|| {
                OsError::Config(format!(
                    "the catalog has no {} endpoint of service type {}{}",
                    interfaces.join(" or "),
                    e.service_type,
                    if e.region.is_empty() {
                        String::new()
                    } else {
                        format!(" in region {}", e.region)
                    }
                ))
            })
    }

    /// `method url` with the service's token (and `body` as JSON): renewed and sent once more
    /// on a 401; retried while the service cannot be reached or is unavailable. Any other
    /// non-2xx status is [`OsError::Status`].
    pub async fn call(
        &self,
        service: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, OsError> {
        self.call_with(service, method, url, body, &[]).await
    }

    /// [`Session::call`] with extra headers (a microversion).
    pub async fn call_with(
        &self,
        service: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, OsError> {
        let (status, bytes) = self
            .exchange(service, None, method, url, body, headers)
            .await?;
        Ok(Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// [`Session::call`] with the caller's own token instead of the service's (Barbican's ACL
    /// of a tenant's secret is the tenant's to change): never renewed, a 401 is an error.
    pub async fn call_as(
        &self,
        token: &str,
        service: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, OsError> {
        let (status, bytes) = self
            .exchange(service, Some(token), method, url, body, &[])
            .await?;
        Ok(Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// GET `url`'s body as bytes (a Barbican payload, which may be binary), as the service.
    pub async fn get_bytes(
        &self,
        service: &str,
        url: &str,
        accept: &str,
    ) -> Result<Vec<u8>, OsError> {
        let (_, bytes) = self
            .exchange(
                service,
                None,
                reqwest::Method::GET,
                url,
                None,
                &[("Accept", accept)],
            )
            .await?;
        Ok(bytes)
    }

    /// One call: with `token`, or the service's (renewed and sent again once on a 401).
    async fn exchange(
        &self,
        service: &str,
        token: Option<&str>,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Vec<u8>), OsError> {
        let caller = token;
        let accept_json = !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"));
        for fresh in [false, true] {
            let token = match caller {
                Some(t) => t.to_string(),
                None => self.token(fresh).await?,
            };
            let resp = self
                .retrying(service, || {
                    let mut r = self
                        .http
                        .request(method.clone(), url)
                        .header("X-Auth-Token", &token);
                    if accept_json {
                        r = r.header("Accept", "application/json");
                    }
                    for (k, v) in headers {
                        r = r.header(*k, *v);
                    }
                    if let Some(b) = body {
                        r = r.json(b);
                    }
                    r
                })
                .await?;
            let status = resp.status().as_u16();
            if status == 401 && !fresh && caller.is_none() {
                continue;
            }
            let bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            if !(200..300).contains(&status) {
                return Err(OsError::Status {
                    service: service.to_string(),
                    status,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                });
            }
            return Ok((status, bytes));
        }
        Err(OsError::Config(format!(
            "{service} refuses the service's token"
        )))
    }

    /// Sends the request `make` builds, again after a backoff while the peer cannot be
    /// reached or answers 502/503/504.
    async fn retrying(
        &self,
        service: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OsError> {
        let mut wait = self.cfg.backoff;
        let mut attempt = 0;
        loop {
            let why = match make().send().await {
                Ok(r) if matches!(r.status().as_u16(), 502..=504) => {
                    format!("{service} answered {}", r.status())
                }
                Ok(r) => return Ok(r),
                Err(e) => format!("{service} unreachable: {e}"),
            };
            if attempt >= self.cfg.retries {
                return Err(OsError::Unavailable(format!(
                    "{why} (after {} attempts)",
                    attempt + 1
                )));
            }
            attempt += 1;
            tracing::warn!(service, attempt, error = %why, "retrying an OpenStack call");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }
}
