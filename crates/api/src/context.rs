//! Who is calling, and what they may do: Octavia's `noauth` request context and its default
//! policy roles.
//!
//! Without `X-Roles` the caller is an administrator (Octavia forces `is_admin` under noauth).
//! With `X-Roles`, the roles decide, as Octavia's policy defaults (Keystone's `admin`, `member`,
//! `reader`, and Octavia's advanced `load-balancer_*` roles, either set accepted): readers see
//! their project, members also write it, global observers read everything, quota admins manage
//! quotas, admins do everything. Keystone tokens will build the same `Context`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

/// The caller.
#[derive(Debug, Clone)]
pub struct Context {
    pub project_id: Option<String>,
    admin: bool,
    global_reader: bool,
    member: bool,
    reader: bool,
    quota_admin: bool,
}

impl Context {
    /// Builds the context from noauth headers.
    pub fn from_headers(h: &axum::http::HeaderMap) -> Context {
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
        match get("x-roles") {
            None if h.get("x-roles").is_none() => Context {
                project_id,
                admin: true,
                global_reader: true,
                member: true,
                reader: true,
                quota_admin: true,
            },
            roles => {
                let roles: Vec<String> = roles
                    .unwrap_or_default()
                    .split(',')
                    .map(str::to_string)
                    .collect();
                Context::from_roles(project_id, &roles)
            }
        }
    }

    /// The context of a caller of `project_id` with these roles (noauth's `X-Roles`, or a
    /// Keystone token's).
    pub fn from_roles(project_id: Option<String>, roles: &[String]) -> Context {
        let roles: Vec<String> = roles
            .iter()
            .map(|r| r.trim().to_ascii_lowercase())
            .collect();
        let has = |r: &str| roles.iter().any(|x| x == r);
        let admin = has("admin") || has("load-balancer_admin");
        let global_reader = admin || has("load-balancer_global_observer");
        let member = admin || has("member") || has("load-balancer_member");
        let reader = member || has("reader") || has("load-balancer_observer");
        Context {
            project_id,
            admin,
            global_reader,
            member,
            reader,
            quota_admin: admin || has("load-balancer_quota_admin"),
        }
    }

    fn owns(&self, project: &str) -> bool {
        self.project_id.as_deref() == Some(project)
    }

    /// May see objects of `project`.
    pub fn can_read(&self, project: &str) -> bool {
        self.global_reader || (self.reader && self.owns(project))
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

    /// May change objects of `project`.
    pub fn can_write(&self, project: &str) -> bool {
        self.admin || (self.member && self.owns(project))
    }

    /// Lists every project (otherwise lists are scoped to the caller's project).
    pub fn is_global_reader(&self) -> bool {
        self.global_reader
    }

    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Requires any read role (list calls, provider list).
    pub fn require_reader(&self) -> Result<(), ApiError> {
        if self.reader || self.global_reader {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// Octavia's `read-quota` for one project.
    pub fn can_read_quota(&self, project: &str) -> bool {
        self.can_read(project) || self.quota_admin
    }

    /// Octavia's `read-quota-global`.
    pub fn can_read_quota_global(&self) -> bool {
        self.global_reader || self.quota_admin
    }

    /// Octavia's `write-quota`.
    pub fn can_write_quota(&self) -> bool {
        self.quota_admin
    }

    /// The list scope: `None` = every project.
    pub fn list_scope(&self) -> Result<Option<String>, ApiError> {
        self.require_reader()?;
        if self.global_reader {
            Ok(None)
        } else {
            Ok(Some(self.project_id.clone().unwrap_or_default()))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = ApiError;

    /// The context the Keystone middleware found in the caller's token, else (noauth) the
    /// headers'.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(ctx) = parts.extensions.get::<Context>() {
            return Ok(ctx.clone());
        }
        Ok(Context::from_headers(&parts.headers))
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
        Context::from_headers(&h)
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
