//! Who is calling, and what they may do: the credentials (noauth's headers, or the Keystone
//! middleware's token) checked against Octavia's policy (`policy`: its in-code defaults and the
//! operator's `[oslo_policy] policy_file`), with the owner's project as the target.
//!
//! Under noauth, a caller without `X-Roles` is an administrator (Octavia forces `is_admin`
//! under noauth); with `X-Roles`, the roles decide as they would in a token.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::policy::{action_of, Creds, Policy, Target, API_RULE_PREFIX};
use crate::AppState;

/// The caller.
#[derive(Debug, Clone)]
pub struct Context {
    pub project_id: Option<String>,
    creds: Creds,
    policy: Arc<Policy>,
    /// Octavia's per-API action of the request (`loadbalancer:get_one`): when the operator's
    /// policy file sets its rule (`os_load-balancer_api:loadbalancer:get_one`), that rule
    /// decides instead of the base rule it defaults to.
    action: Option<String>,
    /// The caller's `X-Auth-Token`: Barbican's ACLs of the caller's secrets are changed with
    /// it (Octavia's `barbican_acl_auth`).
    pub auth_token: Option<String>,
    /// The API's base URL as the caller sees it (`common::base_url`).
    pub base_url: String,
}

impl Context {
    /// The credentials noauth's headers give.
    pub fn creds_from_headers(h: &axum::http::HeaderMap) -> Creds {
        let get = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let project_id = get("x-project-id")
            .or_else(|| get("x-tenant-id"))
            .or_else(|| get("x-tenant"));
        let user_id = get("x-user-id").or_else(|| get("x-user"));
        match h.get("x-roles") {
            None => Creds {
                project_id,
                user_id,
                is_admin: true,
                ..Default::default()
            },
            Some(_) => Creds {
                roles: split_roles(&get("x-roles").unwrap_or_default()),
                project_id,
                user_id,
                ..Default::default()
            },
        }
    }

    /// The context of `creds` under `policy`: `is_admin` is already set (noauth) or is
    /// Octavia's `context_is_admin` rule.
    pub fn new(mut creds: Creds, policy: Arc<Policy>) -> Context {
        if !creds.is_admin {
            let own = creds.project_id.clone().unwrap_or_default();
            creds.is_admin = policy.enforce(
                "context_is_admin",
                &creds,
                Target {
                    project_id: own.as_str(),
                },
            );
        }
        Context {
            project_id: creds.project_id.clone(),
            creds,
            policy,
            action: None,
            auth_token: None,
            base_url: String::new(),
        }
    }

    /// The context for a request of Octavia's per-API `action`.
    pub fn for_action(mut self, action: Option<String>) -> Context {
        self.action = action;
        self
    }

    fn allows(&self, base: &str, project: &str) -> bool {
        let api_rule = self.api_rule(base);
        self.policy.enforce(
            api_rule.as_deref().unwrap_or(base),
            &self.creds,
            Target {
                project_id: project,
            },
        )
    }

    /// The operator's rule for this request's action, if the file sets one: a list's global
    /// check is its `get_all-global` rule, every other check the action's own.
    fn api_rule(&self, base: &str) -> Option<String> {
        let action = self.action.as_deref()?;
        let global = matches!(
            base,
            "load-balancer:read-global" | "load-balancer:read-quota-global"
        );
        let name = match (global, action.strip_suffix(":get_all")) {
            (true, Some(res)) => format!("{API_RULE_PREFIX}{res}:get_all-global"),
            (true, None) => return None,
            (false, _) => format!("{API_RULE_PREFIX}{action}"),
        };
        self.policy.sets(&name).then_some(name)
    }

    fn own(&self) -> &str {
        self.project_id.as_deref().unwrap_or_default()
    }

    /// May see objects of `project` (`load-balancer:read`).
    pub fn can_read(&self, project: &str) -> bool {
        self.allows("load-balancer:read", project)
    }

    /// Octavia's answer for an object that exists: policy is enforced against its owner's
    /// project, so an object of another project is 403, never 404 (only a missing one is).
    pub fn check_read(&self, project: &str) -> Result<(), ApiError> {
        if self.can_read(project) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// May change objects of `project` (`load-balancer:write`).
    pub fn can_write(&self, project: &str) -> bool {
        self.allows("load-balancer:write", project)
    }

    /// Lists every project (`load-balancer:read-global`; otherwise lists are scoped to the
    /// caller's project).
    pub fn is_global_reader(&self) -> bool {
        self.allows("load-balancer:read-global", self.own())
    }

    /// `load-balancer:admin`.
    pub fn is_admin(&self) -> bool {
        self.allows("load-balancer:admin", self.own())
    }

    /// Requires reading the caller's own project (list calls, provider list).
    pub fn require_reader(&self) -> Result<(), ApiError> {
        if self.can_read(self.own()) || self.is_global_reader() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// Octavia's `read-quota` for one project.
    pub fn can_read_quota(&self, project: &str) -> bool {
        self.allows("load-balancer:read-quota", project)
    }

    /// `read-quota-global`.
    pub fn can_read_quota_global(&self) -> bool {
        self.allows("load-balancer:read-quota-global", self.own())
    }

    /// `write-quota`.
    pub fn can_write_quota(&self) -> bool {
        self.allows("load-balancer:write-quota", self.own())
    }

    /// The list scope: `None` = every project.
    pub fn list_scope(&self) -> Result<Option<String>, ApiError> {
        self.require_reader()?;
        if self.is_global_reader() {
            Ok(None)
        } else {
            Ok(Some(self.project_id.clone().unwrap_or_default()))
        }
    }
}

/// Lowercased roles of a comma-separated list.
fn split_roles(s: &str) -> Vec<String> {
    s.split(',')
        .map(|r| r.trim().to_ascii_lowercase())
        .filter(|r| !r.is_empty())
        .collect()
}

impl FromRequestParts<AppState> for Context {
    type Rejection = ApiError;

    /// The credentials the Keystone middleware found in the caller's token, else (noauth) the
    /// headers', under the API's policy.
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let creds = match parts.extensions.get::<Creds>() {
            Some(c) => c.clone(),
            None => Context::creds_from_headers(&parts.headers),
        };
        let action = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .and_then(|p| action_of(parts.method.as_str(), p.as_str()));
        let mut ctx = Context::new(creds, s.policy.clone()).for_action(action);
        ctx.auth_token = parts
            .headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from);
        ctx.base_url = crate::common::base_url(s, &parts.headers);
        Ok(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(project: &str, roles: Option<&str>) -> Context {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-project-id", project.parse().unwrap());
        if let Some(r) = roles {
            h.insert("x-roles", r.parse().unwrap());
        }
        Context::new(
            Context::creds_from_headers(&h),
            Arc::new(Policy::defaults(false)),
        )
    }

    #[test]
    fn noauth_without_roles_is_admin() {
        let c = ctx("p1", None);
        assert!(c.can_write("p2") && c.is_global_reader());
    }

    #[test]
    fn roles_scope_to_the_project() {
        let m = ctx("p1", Some("member"));
        assert!(m.can_write("p1") && !m.can_write("p2") && !m.can_read("p2"));
        let r = ctx("p1", Some("reader"));
        assert!(r.can_read("p1") && !r.can_write("p1"));
        let g = ctx("p1", Some("load-balancer_global_observer"));
        assert!(g.can_read("p2") && !g.can_write("p2"));
        let none = ctx("p1", Some(""));
        assert!(!none.can_read("p1") && none.require_reader().is_err());
    }
}
