//! Octavia's policy as oslo.policy evaluates it: named rules written in oslo.policy's check
//! language (`role:admin or (role:member and project_id:%(project_id)s)`, `rule:<name>`,
//! `is_admin:True`, `@`, `!`, `not`, parentheses), Octavia 19's in-code defaults, and an
//! operator's `[oslo_policy] policy_file` (YAML or JSON: rule name → check string) overriding
//! any of them. With `enforce_new_defaults = false`, a rule the operator did not override
//! also accepts its deprecated form (Octavia's `load-balancer_*` roles), as oslo.policy ORs
//! a deprecated rule in.
//!
//! The API asks for Octavia's base rules (`load-balancer:read`, `read-global`, `write`,
//! `read-quota`, `read-quota-global`, `write-quota`, `admin`) through `Context`, each with
//! the owner's project as the target. Octavia's per-API rules
//! (`os_load-balancer_api:loadbalancer:get_one` …) default to those base rules; when the
//! operator's file sets the rule of a request's action (`action_of`: from its method and
//! route), that rule decides the request's checks instead (a list's global check: its
//! `get_all-global` rule).

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

/// One parsed check.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `@` (or an empty string): always.
    Always,
    /// `!`: never.
    Never,
    /// `role:<name>` (case-insensitive, as oslo.policy).
    Role(String),
    /// `rule:<name>`: another rule; an unknown one is false.
    Rule(String),
    /// `is_admin:True|False`.
    IsAdmin(bool),
    /// `<credential>:<match>`: the credential's value equals the match, in which
    /// `%(<target key>)s` is replaced by the target's value (a missing key is false).
    Generic(String, String),
    Not(Box<Check>),
    And(Vec<Check>),
    Or(Vec<Check>),
}

/// Who calls: what oslo.context's `to_policy_values` gives a check.
#[derive(Debug, Clone, Default)]
pub struct Creds {
    /// Lowercased.
    pub roles: Vec<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub is_admin: bool,
    /// A system-scoped token (`system_scope: all`).
    pub system_scope: bool,
    /// A domain-scoped token.
    pub domain_scope: bool,
}

impl Creds {
    fn get(&self, key: &str) -> Option<String> {
        match key {
            "project_id" | "tenant" | "tenant_id" => self.project_id.clone(),
            "user_id" | "user" => self.user_id.clone(),
            "is_admin" => Some(if self.is_admin { "True" } else { "False" }.into()),
            "system_scope" => self.system_scope.then(|| "all".to_string()),
            _ => None,
        }
    }
}

/// The object a rule is checked against: Octavia passes `{"project_id": <owner>}`.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub project_id: &'a str,
}

/// The rules in force.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: HashMap<String, Check>,
    /// The rules the operator's file set.
    overridden: std::collections::HashSet<String>,
    enforce_scope: bool,
}

/// The prefix of Octavia's per-API rules (`os_load-balancer_api:loadbalancer:get_one`).
pub const API_RULE_PREFIX: &str = "os_load-balancer_api:";

/// Octavia's per-API action of a request (`loadbalancer:get_one`, `member:get_all`,
/// `amphora:put_failover` …) from its method and route (`/v2/lbaas/pools/{id}/members`);
/// `None` for routes without one (version documents, the Neutron view).
pub fn action_of(method: &str, route: &str) -> Option<String> {
    let rest = [
        "/v2/lbaas",
        "/v2.0/lbaas",
        "/v2/octavia",
        "/v2.0/octavia",
        "/v2.0",
        "/v2",
    ]
    .iter()
    .find_map(|p| route.strip_prefix(p))?;
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let resource = |plural: &str| -> Option<&'static str> {
        Some(match plural {
            "loadbalancers" => "loadbalancer",
            "listeners" => "listener",
            "pools" => "pool",
            "members" => "member",
            "healthmonitors" => "healthmonitor",
            "l7policies" => "l7policy",
            "rules" => "l7rule",
            "quotas" => "quota",
            "amphorae" => "amphora",
            "providers" => "provider",
            "flavors" => "flavor",
            "flavorprofiles" => "flavor-profile",
            "availabilityzones" => "availability-zone",
            "availabilityzoneprofiles" => "availability-zone-profile",
            _ => return None,
        })
    };
    let is_id = |s: &str| s.starts_with('{');
    let (res, action) = match (segs.as_slice(), method) {
        (["providers", p, "flavor_capabilities"], _) if is_id(p) => ("provider-flavor", "get_all"),
        (["providers", p, "availability_zone_capabilities"], _) if is_id(p) => {
            ("provider-availability-zone", "get_all")
        }
        // Children under their parent: members of a pool, rules of an L7 policy.
        ([_, p, child], m) if is_id(p) && matches!(*child, "members" | "rules") => (
            resource(child)?,
            match m {
                "GET" => "get_all",
                "POST" => "post",
                _ => "put",
            },
        ),
        ([_, p, child, c], m) if is_id(p) && is_id(c) && matches!(*child, "members" | "rules") => {
            (resource(child)?, one(m)?)
        }
        ([r], m) => (
            resource(r)?,
            match m {
                "GET" => "get_all",
                "POST" => "post",
                _ => return None,
            },
        ),
        ([r, id], m) if is_id(id) => (resource(r)?, one(m)?),
        ([r, id, sub], _) if is_id(id) => (
            resource(r)?,
            match *sub {
                "stats" => "get_stats",
                "status" => "get_status",
                "failover" => "put_failover",
                "config" => "put_config",
                "default" => "get_defaults",
                _ => return None,
            },
        ),
        _ => return None,
    };
    Some(format!("{res}:{action}"))
}

fn one(method: &str) -> Option<&'static str> {
    Some(match method {
        "GET" => "get_one",
        "PUT" => "put",
        "DELETE" => "delete",
        _ => return None,
    })
}

/// Octavia 19's base rules and Keystone-default-role rules (`octavia/policies/base.py`,
/// `keystone_default_roles.py`, `advanced_rbac.py`), with the deprecated forms they replace.
const DEFAULTS: &[(&str, &str, Option<&str>)] = &[
    (
        "project-member",
        "role:member and project_id:%(project_id)s",
        None,
    ),
    (
        "project-reader",
        "role:reader and project_id:%(project_id)s",
        None,
    ),
    (
        "context_is_admin",
        "role:admin",
        Some("role:admin or role:load-balancer_admin"),
    ),
    (
        "load-balancer:admin",
        "is_admin:True or role:admin",
        Some("is_admin:True or role:admin or role:load-balancer_admin"),
    ),
    ("service", "role:service", None),
    (
        "load-balancer:global_observer",
        "role:admin",
        Some("role:load-balancer_global_observer"),
    ),
    (
        "load-balancer:member_and_owner",
        "rule:project-member",
        Some("role:load-balancer_member and rule:load-balancer:owner"),
    ),
    (
        "load-balancer:observer_and_owner",
        "rule:project-reader",
        Some("role:load-balancer_observer and rule:load-balancer:owner"),
    ),
    (
        "load-balancer:quota-admin",
        "role:admin",
        Some("role:load-balancer_quota_admin"),
    ),
    ("load-balancer:owner", "project_id:%(project_id)s", None),
    (
        "load-balancer:read",
        "rule:load-balancer:observer_and_owner or rule:load-balancer:global_observer or \
         rule:load-balancer:member_and_owner or rule:load-balancer:admin",
        None,
    ),
    (
        "load-balancer:read-global",
        "rule:load-balancer:global_observer or rule:load-balancer:admin",
        None,
    ),
    (
        "load-balancer:write",
        "rule:load-balancer:member_and_owner or rule:load-balancer:admin",
        None,
    ),
    (
        "load-balancer:read-quota",
        "rule:load-balancer:observer_and_owner or rule:load-balancer:global_observer or \
         rule:load-balancer:member_and_owner or rule:load-balancer:quota-admin or \
         rule:load-balancer:admin",
        None,
    ),
    (
        "load-balancer:read-quota-global",
        "rule:load-balancer:global_observer or rule:load-balancer:quota-admin or \
         rule:load-balancer:admin",
        None,
    ),
    (
        "load-balancer:write-quota",
        "rule:load-balancer:quota-admin or rule:load-balancer:admin",
        None,
    ),
];

impl Policy {
    /// Octavia's in-code defaults.
    pub fn defaults(enforce_new_defaults: bool) -> Policy {
        Policy::with_overrides(&HashMap::new(), enforce_new_defaults, true)
            .expect("the defaults parse")
    }

    /// The defaults with `overrides` (rule name → check string) applied.
    pub fn with_overrides(
        overrides: &HashMap<String, String>,
        enforce_new_defaults: bool,
        enforce_scope: bool,
    ) -> Result<Policy, String> {
        let mut rules = HashMap::new();
        for (name, new, old) in DEFAULTS {
            let text = match old {
                Some(old) if !enforce_new_defaults => format!("({new}) or ({old})"),
                _ => new.to_string(),
            };
            rules.insert(name.to_string(), parse(&text).expect("a default parses"));
        }
        for (name, text) in overrides {
            let check = parse(text).map_err(|e| format!("rule {name:?}: {e}"))?;
            rules.insert(name.clone(), check);
        }
        Ok(Policy {
            rules,
            overridden: overrides.keys().cloned().collect(),
            enforce_scope,
        })
    }

    /// The defaults with the rules of `[oslo_policy] policy_file` (YAML or JSON; an empty
    /// path: none).
    pub fn load(cfg: &rocta_config::OsloPolicy) -> Result<Policy, String> {
        let mut overrides = HashMap::new();
        if !cfg.policy_file.is_empty() {
            overrides = read_rules(Path::new(&cfg.policy_file))?;
        }
        Policy::with_overrides(&overrides, cfg.enforce_new_defaults, cfg.enforce_scope)
    }

    /// Whether the operator's file sets `rule` (a per-API rule left alone defaults to its base
    /// rule, which the API asks directly).
    pub fn sets(&self, rule: &str) -> bool {
        self.overridden.contains(rule)
    }

    /// Whether `rule` allows `creds` on `target`. Octavia's rules are project-scoped: with
    /// `enforce_scope`, a token scoped to the system or a domain is refused.
    pub fn enforce(&self, rule: &str, creds: &Creds, target: Target<'_>) -> bool {
        if self.enforce_scope && (creds.system_scope || creds.domain_scope) {
            return false;
        }
        self.eval(&Check::Rule(rule.to_string()), creds, target, 0)
    }

    fn eval(&self, c: &Check, creds: &Creds, t: Target<'_>, depth: usize) -> bool {
        // A rule that refers to itself, directly or not, is false rather than endless.
        if depth > 32 {
            return false;
        }
        match c {
            Check::Always => true,
            Check::Never => false,
            Check::Role(r) => creds.roles.iter().any(|x| x == r),
            Check::Rule(name) => self
                .rules
                .get(name)
                .is_some_and(|r| self.eval(r, creds, t, depth + 1)),
            Check::IsAdmin(want) => creds.is_admin == *want,
            Check::Generic(kind, pattern) => {
                let Some(want) = substitute(pattern, t) else {
                    return false;
                };
                // A literal on the left (`'member':%(role.name)s`, `True:%(…)s`) compares as is.
                if let Some(lit) = literal(kind) {
                    return lit == want;
                }
                creds.get(kind).is_some_and(|have| have == want)
            }
            Check::Not(c) => !self.eval(c, creds, t, depth + 1),
            Check::And(v) => v.iter().all(|c| self.eval(c, creds, t, depth + 1)),
            Check::Or(v) => v.iter().any(|c| self.eval(c, creds, t, depth + 1)),
        }
    }
}

/// Reads a policy file: a mapping of rule names to check strings, in YAML (JSON is YAML).
fn read_rules(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read policy file {}: {e}", path.display()))?;
    let doc: Value = serde_norway::from_str(&text)
        .map_err(|e| format!("policy file {}: not YAML: {e}", path.display()))?;
    let map = match doc {
        Value::Null => return Ok(HashMap::new()),
        Value::Object(m) => m,
        _ => {
            return Err(format!(
                "policy file {}: must map rule names to check strings",
                path.display()
            ))
        }
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(format!(
                "policy file {}: rule {k:?} is not a check string",
                path.display()
            )),
        })
        .collect()
}

/// `%(key)s` replaced by the target's values; `None` if a key is not in the target.
fn substitute(pattern: &str, t: Target<'_>) -> Option<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(i) = rest.find("%(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find(")s")?;
        match &after[..end] {
            "project_id" | "tenant_id" => out.push_str(t.project_id),
            _ => return None,
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// A quoted string, number or boolean literal on the left of a generic check.
fn literal(kind: &str) -> Option<String> {
    let k = kind.trim();
    if (k.starts_with('\'') && k.ends_with('\'') || k.starts_with('"') && k.ends_with('"'))
        && k.len() >= 2
    {
        return Some(k[1..k.len() - 1].to_string());
    }
    if k == "True" || k == "False" || k.parse::<f64>().is_ok() {
        return Some(k.to_string());
    }
    None
}

/// Parses oslo.policy's check language: `or` binds loosest, then `and`, then `not`.
pub fn parse(text: &str) -> Result<Check, String> {
    let tokens = tokenize(text);
    if tokens.is_empty() {
        return Ok(Check::Always);
    }
    let mut p = Parser { tokens, pos: 0 };
    let c = p.or()?;
    if p.pos != p.tokens.len() {
        return Err(format!("unexpected {:?}", p.tokens[p.pos]));
    }
    Ok(c)
}

fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        // Parentheses stick to checks (`(role:a`, `role:b)`): split them off.
        let mut w = word;
        while let Some(rest) = w.strip_prefix('(') {
            out.push("(".into());
            w = rest;
        }
        let mut closing = 0;
        while let Some(rest) = w.strip_suffix(')') {
            // `%(project_id)s` ends in `)s`, not `)`; only trailing `)`s are parentheses.
            closing += 1;
            w = rest;
        }
        if !w.is_empty() {
            out.push(w.to_string());
        }
        out.extend(std::iter::repeat_n(")".to_string(), closing));
    }
    out
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn or(&mut self) -> Result<Check, String> {
        let mut v = vec![self.and()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("or")) {
            self.pos += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Check::Or(v)
        })
    }

    fn and(&mut self) -> Result<Check, String> {
        let mut v = vec![self.not()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("and")) {
            self.pos += 1;
            v.push(self.not()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Check::And(v)
        })
    }

    fn not(&mut self) -> Result<Check, String> {
        if self.peek().is_some_and(|t| t.eq_ignore_ascii_case("not")) {
            self.pos += 1;
            return Ok(Check::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Check, String> {
        let t = self
            .peek()
            .ok_or_else(|| "a check is missing at the end".to_string())?
            .to_string();
        self.pos += 1;
        match t.as_str() {
            "(" => {
                let c = self.or()?;
                if self.peek() != Some(")") {
                    return Err("a parenthesis is not closed".into());
                }
                self.pos += 1;
                Ok(c)
            }
            ")" => Err("unexpected )".into()),
            "@" => Ok(Check::Always),
            "!" => Ok(Check::Never),
            _ => {
                let (kind, m) = t
                    .split_once(':')
                    .ok_or_else(|| format!("{t:?} is not a check (kind:match)"))?;
                Ok(match kind {
                    "role" => Check::Role(m.to_ascii_lowercase()),
                    "rule" => Check::Rule(m.to_string()),
                    "is_admin" => Check::IsAdmin(m.eq_ignore_ascii_case("true")),
                    _ => Check::Generic(kind.to_string(), m.to_string()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(project: &str, roles: &[&str]) -> Creds {
        Creds {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            project_id: Some(project.into()),
            ..Default::default()
        }
    }

    const P1: Target<'static> = Target { project_id: "p1" };

    #[test]
    fn the_check_language_parses() {
        assert_eq!(parse("").unwrap(), Check::Always);
        assert_eq!(parse("!").unwrap(), Check::Never);
        assert_eq!(
            parse("role:A or (role:b and not project_id:%(project_id)s)").unwrap(),
            Check::Or(vec![
                Check::Role("a".into()),
                Check::And(vec![
                    Check::Role("b".into()),
                    Check::Not(Box::new(Check::Generic(
                        "project_id".into(),
                        "%(project_id)s".into()
                    )))
                ])
            ])
        );
        assert_eq!(
            parse("((rule:x))").unwrap(),
            Check::Rule("x".into()),
            "nested parentheses"
        );
        for bad in ["role:a or", "(role:a", "role:a)", "nonsense", "and role:a"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn octavias_defaults_use_keystones_roles() {
        let p = Policy::defaults(true);
        let read = |c: &Creds| p.enforce("load-balancer:read", c, P1);
        let write = |c: &Creds| p.enforce("load-balancer:write", c, P1);
        assert!(read(&creds("p1", &["reader"])));
        assert!(!write(&creds("p1", &["reader"])));
        assert!(write(&creds("p1", &["member"])));
        assert!(!read(&creds("p2", &["member"])), "another project");
        assert!(read(&creds("p2", &["admin"])) && write(&creds("p2", &["admin"])));
        assert!(p.enforce("load-balancer:read-global", &creds("p2", &["admin"]), P1));
        assert!(!p.enforce("load-balancer:read-global", &creds("p1", &["member"]), P1));
        // Octavia's own roles count only with enforce_new_defaults off.
        let advanced = creds("p1", &["load-balancer_member"]);
        assert!(!write(&advanced));
        let old = Policy::defaults(false);
        assert!(old.enforce("load-balancer:write", &advanced, P1));
        assert!(!old.enforce(
            "load-balancer:write",
            &creds("p2", &["load-balancer_member"]),
            P1
        ));
        assert!(old.enforce(
            "load-balancer:read-global",
            &creds("p2", &["load-balancer_global_observer"]),
            P1
        ));
        assert!(old.enforce(
            "load-balancer:write-quota",
            &creds("p2", &["load-balancer_quota_admin"]),
            P1
        ));
        // A system-scoped token is refused on project-scoped rules.
        let mut system = creds("p1", &["admin"]);
        system.system_scope = true;
        assert!(!read(&system));
        let domain = Creds {
            roles: vec!["admin".into()],
            domain_scope: true,
            ..Default::default()
        };
        assert!(!p.enforce("load-balancer:admin", &domain, P1));
        // is_admin (noauth) passes the admin rule.
        let noauth = Creds {
            is_admin: true,
            ..Default::default()
        };
        assert!(write(&noauth));
    }

    #[test]
    fn an_operator_file_overrides_rules() {
        // Octavia's etc/policy/admin_or_owner-policy.yaml.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("policy.yaml");
        std::fs::write(
            &f,
            "\"context_is_admin\": \"role:admin or role:load-balancer_admin\"\n\
             \"admin_or_owner\": \"is_admin:True or project_id:%(project_id)s\"\n\
             \"load-balancer:read\": \"rule:admin_or_owner\"\n\
             \"load-balancer:read-global\": \"is_admin:True\"\n\
             \"load-balancer:write\": \"rule:admin_or_owner\"\n\
             \"load-balancer:read-quota\": \"rule:admin_or_owner\"\n\
             \"load-balancer:read-quota-global\": \"is_admin:True\"\n\
             \"load-balancer:write-quota\": \"is_admin:True\"\n",
        )
        .unwrap();
        let p = Policy::load(&rocta_config::OsloPolicy {
            policy_file: f.display().to_string(),
            ..Default::default()
        })
        .unwrap();
        // Any user of the owning project writes, whatever its roles.
        assert!(p.enforce("load-balancer:write", &creds("p1", &[]), P1));
        assert!(!p.enforce("load-balancer:write", &creds("p2", &["member"]), P1));
        assert!(!p.enforce("load-balancer:read-global", &creds("p2", &["admin"]), P1));
        std::fs::write(&f, "\"load-balancer:read\": \"role:a or\"\n").unwrap();
        let e = Policy::load(&rocta_config::OsloPolicy {
            policy_file: f.display().to_string(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("load-balancer:read"), "{e}");
        std::fs::write(&f, "- a list\n").unwrap();
        assert!(Policy::load(&rocta_config::OsloPolicy {
            policy_file: f.display().to_string(),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn requests_name_octavias_actions() {
        let a = |m, r| action_of(m, r);
        assert_eq!(
            a("GET", "/v2/lbaas/loadbalancers").as_deref(),
            Some("loadbalancer:get_all")
        );
        assert_eq!(
            a("POST", "/v2.0/listeners").as_deref(),
            Some("listener:post")
        );
        assert_eq!(
            a("DELETE", "/v2/lbaas/pools/{id}").as_deref(),
            Some("pool:delete")
        );
        assert_eq!(
            a("GET", "/v2/lbaas/loadbalancers/{id}/status").as_deref(),
            Some("loadbalancer:get_status")
        );
        assert_eq!(
            a("PUT", "/v2/lbaas/pools/{id}/members").as_deref(),
            Some("member:put")
        );
        assert_eq!(
            a("GET", "/v2/lbaas/l7policies/{id}/rules/{rule_id}").as_deref(),
            Some("l7rule:get_one")
        );
        assert_eq!(
            a("PUT", "/v2/octavia/amphorae/{id}/failover").as_deref(),
            Some("amphora:put_failover")
        );
        assert_eq!(
            a("GET", "/v2/lbaas/quotas/{id}/default").as_deref(),
            Some("quota:get_defaults")
        );
        assert_eq!(
            a("GET", "/v2/lbaas/providers/{id}/flavor_capabilities").as_deref(),
            Some("provider-flavor:get_all")
        );
        assert_eq!(
            a("GET", "/v2/lbaas/availabilityzoneprofiles").as_deref(),
            Some("availability-zone-profile:get_all")
        );
        assert_eq!(a("GET", "/"), None);
        assert_eq!(a("GET", "/v2.0/networks"), None);
    }

    #[test]
    fn generic_checks_substitute_the_target() {
        let p = Policy::with_overrides(
            &HashMap::from([
                ("r".to_string(), "user_id:u1".to_string()),
                ("t".to_string(), "'p1':%(project_id)s".to_string()),
                ("loop".to_string(), "rule:loop".to_string()),
            ]),
            true,
            true,
        )
        .unwrap();
        let mut c = creds("p9", &[]);
        c.user_id = Some("u1".into());
        assert!(p.enforce("r", &c, P1));
        assert!(p.enforce("t", &c, P1));
        assert!(!p.enforce("t", &c, Target { project_id: "p2" }));
        assert!(!p.enforce("loop", &c, P1));
        assert!(!p.enforce("no-such-rule", &c, P1));
    }
}
