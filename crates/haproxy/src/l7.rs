//! L7 policies: one ACL per rule (named by the rule id), evaluated in position order.
//!
//! HAProxy runs every `http-request` rule before `use_backend`, so to keep "first matching
//! policy wins" across action types, a matching REDIRECT_TO_POOL policy records its backend in
//! `txn.l7pool` and every later policy only acts when no pool was chosen yet.

use std::fmt::Write;

use rocta_model::*;

/// The enabled policies of a listener with at least one enabled rule, by position.
pub(crate) fn policies<'a>(t: &'a LbTree, l: &Listener) -> Vec<&'a L7Policy> {
    let mut v: Vec<&L7Policy> = t
        .l7policies
        .iter()
        .filter(|p| p.listener_id == l.id && p.admin_state_up)
        .filter(|p| rules(t, p).next().is_some())
        .collect();
    v.sort_by_key(|p| p.position);
    v
}

fn rules<'a>(t: &'a LbTree, p: &'a L7Policy) -> impl Iterator<Item = &'a L7Rule> {
    t.l7rules
        .iter()
        .filter(move |r| r.l7policy_id == p.id && r.admin_state_up)
}

/// HAProxy's escaping of an ACL pattern: backslash and spaces.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace(' ', "\\ ")
}

fn matcher(c: L7CompareType) -> &'static str {
    match c {
        L7CompareType::Regex => "-m reg",
        L7CompareType::StartsWith => "-m beg",
        L7CompareType::EndsWith => "-m end",
        L7CompareType::Contains => "-m sub",
        L7CompareType::EqualTo => "-m str",
    }
}

fn acl(r: &L7Rule) -> String {
    let v = escape(&r.value);
    let m = matcher(r.compare_type);
    let key = r.key.clone().unwrap_or_default();
    match r.kind {
        L7RuleType::HostName => format!("acl {} req.hdr(host) -i {m} {v}", r.id),
        L7RuleType::Path => format!("acl {} path {m} {v}", r.id),
        L7RuleType::FileType if r.compare_type == L7CompareType::EqualTo => {
            format!("acl {} path_end {v}", r.id)
        }
        L7RuleType::FileType => format!("acl {} path_end {m} {v}", r.id),
        L7RuleType::Header => format!("acl {} req.hdr({key}) {m} {v}", r.id),
        L7RuleType::Cookie => format!("acl {} req.cook({key}) {m} {v}", r.id),
        L7RuleType::SslConnHasCert => format!("acl {} ssl_c_used", r.id),
        L7RuleType::SslVerifyResult => format!("acl {} ssl_c_verify eq {v}", r.id),
        L7RuleType::SslDnField => format!("acl {} ssl_c_s_dn({key}) {m} {v}", r.id),
    }
}

/// Writes the ACLs and actions; `backend` names the backend of an enabled pool.
pub(crate) fn render(
    c: &mut String,
    t: &LbTree,
    l: &Listener,
    backend: impl Fn(Id) -> Option<String>,
) {
    let pols = policies(t, l);
    if pols.is_empty() {
        return;
    }
    for p in &pols {
        for r in rules(t, p) {
            let _ = writeln!(c, "    {}", acl(r));
        }
    }
    let unset = "!{ var(txn.l7pool) -m found }";
    let mut pool_seen = false;
    for p in &pols {
        let cond: Vec<String> = rules(t, p)
            .map(|r| {
                if r.invert {
                    format!("!{}", r.id)
                } else {
                    r.id.to_string()
                }
            })
            .collect();
        let mut cond = cond.join(" ");
        if pool_seen {
            cond.push(' ');
            cond.push_str(unset);
        }
        let code = p.redirect_http_code.unwrap_or(302);
        match p.action {
            L7PolicyAction::Reject => {
                let _ = writeln!(c, "    http-request deny if {cond}");
            }
            L7PolicyAction::RedirectToUrl => {
                let url = p.redirect_url.clone().unwrap_or_default();
                let _ = writeln!(
                    c,
                    "    http-request redirect code {code} location {} if {cond}",
                    escape(&url)
                );
            }
            L7PolicyAction::RedirectPrefix => {
                let pre = p.redirect_prefix.clone().unwrap_or_default();
                let _ = writeln!(
                    c,
                    "    http-request redirect code {code} prefix {} if {cond}",
                    escape(&pre)
                );
            }
            L7PolicyAction::RedirectToPool => {
                if let Some(b) = p.redirect_pool_id.and_then(&backend) {
                    let _ = writeln!(c, "    http-request set-var(txn.l7pool) str({b}) if {cond}");
                    pool_seen = true;
                }
            }
        }
    }
    if pool_seen {
        c.push_str("    use_backend %[var(txn.l7pool)] if { var(txn.l7pool) -m found }\n");
    }
}
