//! Keystone authentication, as keystonemiddleware's `auth_token` does it for Octavia
//! (`[api_settings] auth_strategy = "keystone"`, options in `[keystone_authtoken]`).
//!
//! Every request but the version documents (`/`, the Neutron view's `/networking/`) needs
//! `X-Auth-Token`. The token is validated
//! with `GET /v3/auth/tokens` (`X-Subject-Token`), authenticated by the service's own token
//! (password auth with `username`/`password`/`project_name`, renewed a minute before it
//! expires, and once more when Keystone refuses it). Answers are cached by the token's
//! SHA-256 for `token_cache_time` seconds, valid ones never past their expiry. The request
//! context (project, user, roles — Keystone lists implied roles in the token —, domains,
//! system scope) comes from the token only: the identity headers a client sends are removed.
//! Missing or invalid token: 401 with `WWW-Authenticate: Keystone uri="…"`; Keystone
//! unreachable or answering errors: 503, never an open door.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rocta_config::KeystoneAuthtoken;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;

use crate::policy::Creds;

/// Headers that carry an identity under noauth; never taken from a client here.
const IDENTITY_HEADERS: &[&str] = &[
    "x-project-id",
    "x-tenant-id",
    "x-tenant",
    "x-roles",
    "x-user-id",
    "x-user",
    "x-domain-id",
    "x-project-domain-id",
    "x-user-domain-id",
    "x-identity-status",
    "x-service-roles",
    "openstack-system-scope",
];

/// Validations by the token's SHA-256: the context (`None`: not valid) and until when.
type Cache = HashMap<[u8; 32], (Option<Creds>, Instant)>;

/// Cached validations at most (expired ones go first when it is full).
const CACHE_MAX: usize = 10_000;

/// What a validated token says (the part rocta uses).
#[derive(Debug, Clone, Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenInfo {
    pub expires_at: String,
    #[serde(default)]
    pub roles: Vec<Named>,
    pub project: Option<Scoped>,
    pub domain: Option<Named>,
    pub user: Option<Scoped>,
    #[serde(default)]
    pub system: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Named {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Scoped {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub domain: Option<Named>,
}

/// Why a request is not let in.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// No token, or Keystone says it is not valid: 401.
    Unauthenticated,
    /// Keystone cannot be asked (down, refusing the service's credentials, answering errors).
    Unavailable(String),
}

/// The validator (one per API process).
pub struct Keystone {
    cfg: KeystoneAuthtoken,
    tokens_url: String,
    http: reqwest::Client,
    /// The service's own token (password auth; the drivers' Keystone session, without
    /// retries: a caller waits for no backoff, it gets a 503).
    service: rocta_drivers::openstack::Session,
    cache: Mutex<Cache>,
}

fn parse_expiry(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// How long from now until `expires_at` (zero if past or unreadable).
fn until(expires_at: &str) -> Duration {
    parse_expiry(expires_at)
        .and_then(|e| (e - chrono::Utc::now()).to_std().ok())
        .unwrap_or_default()
}

impl Keystone {
    pub fn new(cfg: &KeystoneAuthtoken) -> Result<Keystone, String> {
        let base = cfg.auth_url.trim_end_matches('/');
        let base = base.strip_suffix("/v3").unwrap_or(base);
        let timeout = Duration::from_secs_f64(cfg.http_connect_timeout.max(0.1));
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .danger_accept_invalid_certs(cfg.insecure);
        if !cfg.cafile.is_empty() {
            let pem = std::fs::read(&cfg.cafile)
                .map_err(|e| format!("[keystone_authtoken] cafile {}: {e}", cfg.cafile))?;
            for c in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("[keystone_authtoken] cafile {}: {e}", cfg.cafile))?
            {
                b = b.add_root_certificate(c);
            }
        }
        let service =
            rocta_drivers::openstack::Session::new(rocta_drivers::openstack::SessionConfig {
                auth_url: cfg.auth_url.clone(),
                username: cfg.username.clone(),
                password: cfg.password.clone(),
                project_name: cfg.project_name.clone(),
                user_domain_name: cfg.user_domain_name.clone(),
                project_domain_name: cfg.project_domain_name.clone(),
                cafile: cfg.cafile.clone(),
                insecure: cfg.insecure,
                timeout,
                retries: 0,
                backoff: Duration::ZERO,
            })
            .map_err(|e| e.to_string())?;
        Ok(Keystone {
            cfg: cfg.clone(),
            tokens_url: format!("{base}/v3/auth/tokens"),
            http: b.build().map_err(|e| e.to_string())?,
            service,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// `WWW-Authenticate` of a 401.
    fn www_authenticate(&self) -> String {
        let uri = if self.cfg.www_authenticate_uri.is_empty() {
            &self.cfg.auth_url
        } else {
            &self.cfg.www_authenticate_uri
        };
        format!("Keystone uri=\"{uri}\"")
    }

    /// The service's own token (fetched when missing, about to expire, or `fresh`).
    async fn service_token(&self, fresh: bool) -> Result<String, Refused> {
        self.service.token(fresh).await.map_err(|e| match e {
            rocta_drivers::openstack::OsError::Config(m) => Refused::Unavailable(m),
            other => Refused::Unavailable(format!("Keystone: {other}")),
        })
    }

    /// Asks Keystone about `token` (the service token renewed once if Keystone refuses it).
    async fn fetch(&self, token: &str) -> Result<Option<TokenInfo>, Refused> {
        for fresh in [false, true] {
            let service = self.service_token(fresh).await?;
            let resp = self
                .http
                .get(&self.tokens_url)
                .header("X-Auth-Token", &service)
                .header("X-Subject-Token", token)
                .send()
                .await
                .map_err(|e| Refused::Unavailable(format!("Keystone unreachable: {e}")))?;
            match resp.status().as_u16() {
                200 => {
                    let body: TokenBody = resp.json().await.map_err(|e| {
                        Refused::Unavailable(format!("Keystone's answer is unreadable: {e}"))
                    })?;
                    return Ok(Some(body.token));
                }
                // Not a valid token (unknown, expired, revoked, malformed).
                404 | 400 => return Ok(None),
                // The service token expired or was revoked: once more with a new one.
                401 if !fresh => continue,
                s => {
                    return Err(Refused::Unavailable(format!(
                        "Keystone answered {s} to a token validation"
                    )))
                }
            }
        }
        Err(Refused::Unavailable(
            "Keystone refuses the service's token".into(),
        ))
    }

    /// The credentials `token` stands for, from the cache or from Keystone.
    pub async fn authenticate(&self, token: &str) -> Result<Creds, Refused> {
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some((ctx, until)) = self.lock_cache().get(&key) {
            if now < *until {
                return ctx.clone().ok_or(Refused::Unauthenticated);
            }
        }
        let cache_time = Duration::from_secs(self.cfg.token_cache_time);
        let (ctx, keep) = match self.fetch(token).await? {
            None => (None, cache_time),
            Some(info) => {
                let life = until(&info.expires_at);
                if life.is_zero() {
                    (None, cache_time)
                } else {
                    (Some(creds_of(&info)), life.min(cache_time))
                }
            }
        };
        let mut cache = self.lock_cache();
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, until)| now < *until);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (ctx.clone(), now + keep));
        ctx.ok_or(Refused::Unauthenticated)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The credentials of a validated token: its project, user and roles (Keystone lists implied
/// roles too). A token scoped to the system or a domain is marked so: Octavia's rules are
/// project-scoped and refuse it.
pub fn creds_of(info: &TokenInfo) -> Creds {
    Creds {
        roles: info
            .roles
            .iter()
            .map(|r| r.name.to_ascii_lowercase())
            .collect(),
        project_id: info.project.as_ref().map(|p| p.id.clone()),
        user_id: info.user.as_ref().map(|u| u.id.clone()),
        is_admin: false,
        system_scope: info.system.is_some(),
        domain_scope: info.project.is_none() && info.domain.is_some(),
    }
}

fn unauthorized(k: &Keystone) -> Response {
    let body = json!({"error": {"code": 401, "title": "Unauthorized",
        "message": "The request you have made requires authentication."}});
    let mut r = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&k.www_authenticate()) {
        r.headers_mut().insert("www-authenticate", v);
    }
    r
}

/// The middleware: lets the version document, `/metrics` and the dashboard's assets through,
/// otherwise puts the token's context in the request (for the `Context` extractor) or answers
/// 401 / 503.
pub async fn authenticate(
    State(k): State<std::sync::Arc<Keystone>>,
    mut req: Request,
    next: Next,
) -> Response {
    for h in IDENTITY_HEADERS {
        req.headers_mut().remove(*h);
    }
    if matches!(
        req.uri().path(),
        "/" | "/networking" | "/networking/" | "/metrics"
    ) || crate::dashboard::is_asset(req.uri().path())
    {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from);
    let Some(token) = token else {
        return unauthorized(&k);
    };
    match k.authenticate(&token).await {
        Ok(creds) => {
            req.extensions_mut().insert(creds);
            next.run(req).await
        }
        Err(Refused::Unauthenticated) => unauthorized(&k),
        Err(Refused::Unavailable(why)) => {
            tracing::error!(error = %why, "cannot validate a token");
            crate::error::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is currently unavailable. Please try again at a later time.",
            )
            .into_response()
        }
    }
}
