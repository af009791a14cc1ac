//! The load-balancer graph create: one POST carrying listeners (with default pools, L7 policies
//! and rules) and pools (with members and a monitor). Everything is validated as the
//! single-object creates do, inserted `PENDING_CREATE` in the load balancer's transaction, and
//! provisioned by the create flow. Pools are referenced by name (`{"name": "x"}`) or defined
//! inline; top-level pools must be named, names unique, as Octavia.

use std::collections::HashMap;

use rocta_model::*;
use serde_json::{json, Map, Value};

use super::{healthmonitors, l7policies, l7rules, listeners, members, pools};
use crate::error::{ApiError, ApiResult};
use crate::validate::{check_object, opt, Get, F, T};
use crate::wire;

/// `base` without the parent references a graph member does not carry, plus `nested`.
fn single(base: &[F], drop: &[&str], nested: &[&'static str]) -> Vec<F> {
    let mut v: Vec<F> = base
        .iter()
        .filter(|f| !drop.contains(&f.name))
        .copied()
        .collect();
    v.extend(nested.iter().map(|n| opt(n, T::Any)));
    v
}

fn objects<'a>(v: Option<&'a Value>, what: &str) -> ApiResult<Vec<&'a Map<String, Value>>> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|o| {
                o.as_object().ok_or_else(|| {
                    ApiError::invalid_field(what, &crate::validate::show(o), "Wrong type.")
                })
            })
            .collect(),
        Some(other) => Err(ApiError::invalid_field(
            what,
            &crate::validate::show(other),
            "Wrong type.",
        )),
    }
}

struct Builder<'a> {
    lb: &'a LoadBalancer,
    cfg: &'a rocta_config::Config,
    tree: LbTree,
    named: HashMap<String, Id>,
}

impl Builder<'_> {
    /// Builds a pool (with members and monitor) from its body.
    fn pool(&mut self, m: &Map<String, Value>) -> ApiResult<Id> {
        let spec = single(
            pools::POST,
            &["loadbalancer_id", "listener_id", "project_id", "tenant_id"],
            &[],
        );
        let m = &check_object(m, "load_balancer.pools", &spec, true)?;
        let mut p = pools::new_pool(m)?;
        p.lb_id = self.lb.id;
        p.project_id = self.lb.project_id.clone();
        let hm = match m.get("healthmonitor") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let o = v.as_object().ok_or_else(|| {
                    ApiError::invalid_field(
                        "healthmonitor",
                        &crate::validate::show(v),
                        "Wrong type.",
                    )
                })?;
                let spec = single(
                    healthmonitors::POST,
                    &["pool_id", "project_id", "tenant_id"],
                    &[],
                );
                let o = check_object(o, "load_balancer.pools.healthmonitor", &spec, true)?;
                Some(healthmonitors::new_hm(&p, &o)?)
            }
        };
        for mm in objects(m.get("members"), "members")? {
            let mm = check_object(mm, "load_balancer.pools.members", members::POST, true)?;
            let member = members::new_member(&p, &mm, hm.is_some())?;
            if self.tree.members.iter().any(|o| {
                o.pool_id == p.id
                    && o.address == member.address
                    && o.protocol_port == member.protocol_port
            }) {
                return Err(ApiError::conflict(format!(
                    "Another member on this pool is already using ip {} on protocol_port {}",
                    member.address, member.protocol_port
                )));
            }
            self.tree.members.push(member);
        }
        self.tree.health_monitors.extend(hm);
        let id = p.id;
        self.tree.pools.push(p);
        Ok(id)
    }

    /// Resolves `{"name": X}` to a top-level pool, or builds an inline one.
    fn pool_ref(&mut self, v: &Value, what: &str) -> ApiResult<Id> {
        let o = v.as_object().ok_or_else(|| {
            ApiError::invalid_field(what, &crate::validate::show(v), "Wrong type.")
        })?;
        if o.len() == 1 {
            if let Some(name) = o.s("name") {
                return self.named.get(&name).copied().ok_or_else(|| {
                    ApiError::validation(format!("Pool {name} was referenced but not defined in the pools of the load balancer."))
                });
            }
        }
        self.pool(o)
    }
}

/// Validates and builds the children of a graph create (empty when the body has none).
pub(crate) fn build(
    lb: &LoadBalancer,
    m: &Map<String, Value>,
    state: &crate::AppState,
) -> ApiResult<LbTree> {
    let cfg = &*state.cfg;
    let mut b = Builder {
        lb,
        cfg,
        tree: LbTree::default(),
        named: HashMap::new(),
    };
    for p in objects(m.get("pools"), "pools")? {
        let name = p.s("name").filter(|n| !n.is_empty()).ok_or_else(|| {
            ApiError::validation(
                "Pools must be named when creating a fully populated loadbalancer.",
            )
        })?;
        if b.named.contains_key(&name) {
            return Err(ApiError::validation(
                "Pool names must be unique when creating a fully populated loadbalancer.",
            ));
        }
        let id = b.pool(p)?;
        b.named.insert(name, id);
    }
    for lm in objects(m.get("listeners"), "listeners")? {
        let spec = single(
            listeners::POST,
            &["loadbalancer_id", "project_id", "tenant_id"],
            &[],
        );
        let mut lm = check_object(lm, "load_balancer.listeners", &spec, true)?;
        if let Some(dp) = lm.remove("default_pool").filter(|v| !v.is_null()) {
            let id = b.pool_ref(&dp, "default_pool")?;
            lm.insert("default_pool_id".into(), json!(id));
        }
        let policies = lm.remove("l7policies");
        let mut l = listeners::new_listener(lb.id, &lm, b.cfg)?;
        listeners::check_forwarding(state, &l)?;
        l.project_id = lb.project_id.clone();
        listeners::check(&l, lb.vip_address.as_deref())?;
        if let Some(o) = b
            .tree
            .listeners
            .iter()
            .find(|o| o.protocol.l4() == l.protocol.l4() && o.protocol_port == l.protocol_port)
        {
            return Err(ApiError::conflict(format!(
                "Another Listener on this Load Balancer is already using protocol {} and protocol_port {}",
                o.protocol, o.protocol_port
            )));
        }
        if let Some(pid) = l.default_pool_id {
            if b.tree
                .listeners
                .iter()
                .any(|o| o.default_pool_id == Some(pid))
            {
                return Err(ApiError::conflict(format!(
                    "Pool {pid} is already used by another listener."
                )));
            }
            check_protocols(&b.tree, &l, pid)?;
        }
        for (i, pm) in objects(policies.as_ref(), "l7policies")?
            .into_iter()
            .enumerate()
        {
            let spec = single(
                l7policies::POST,
                &["listener_id", "project_id", "tenant_id"],
                &[],
            );
            let mut pm = check_object(pm, "load_balancer.listeners.l7policies", &spec, true)?;
            if let Some(rp) = pm.remove("redirect_pool").filter(|v| !v.is_null()) {
                let id = b.pool_ref(&rp, "redirect_pool")?;
                pm.insert("redirect_pool_id".into(), json!(id));
            }
            let rules = pm.remove("rules");
            let mut p = l7policies::new_policy(&l, &pm)?;
            p.position = i as i64 + 1;
            if let Some(pid) = p.redirect_pool_id {
                check_protocols(&b.tree, &l, pid)?;
            }
            let rules = objects(rules.as_ref(), "rules")?;
            if rules.len() > 50 {
                return Err(ApiError::conflict(format!(
                    "Too many rules on L7 policy {}",
                    p.id
                )));
            }
            for rm in rules {
                let spec = single(l7rules::POST, &["project_id", "tenant_id"], &[]);
                let rm = check_object(rm, "load_balancer.listeners.l7policies.rules", &spec, true)?;
                b.tree.l7rules.push(l7rules::new_rule(&p, &rm)?);
            }
            b.tree.l7policies.push(p);
        }
        b.tree.listeners.push(l);
    }
    for p in &b.tree.pools {
        pools::check_algorithm(state, p)?;
    }
    Ok(b.tree)
}

fn check_protocols(t: &LbTree, l: &Listener, pool: Id) -> ApiResult<()> {
    let p = t
        .pools
        .iter()
        .find(|p| p.id == pool)
        .ok_or_else(|| ApiError::not_found("Pool", pool))?;
    if !rules::listener_accepts_pool(l.protocol, p.protocol) {
        return Err(ApiError::validation(format!(
            "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
            p.protocol, l.protocol
        )));
    }
    Ok(())
}

/// Counts of a graph for the quota checks.
/// Every TLS reference of a graph's listeners and pools (checked after [`build`]).
pub(crate) fn tls_refs(t: &LbTree) -> Vec<(&'static str, Id, Vec<&String>)> {
    let listeners = t
        .listeners
        .iter()
        .map(|l| ("listeners", l.id, crate::common::listener_refs(l)));
    let pools = t
        .pools
        .iter()
        .map(|p| ("pools", p.id, crate::common::pool_refs(p)));
    listeners.chain(pools).collect()
}

pub(crate) fn counts(t: &LbTree) -> [(QuotaResource, i64); 6] {
    [
        (QuotaResource::Listener, t.listeners.len() as i64),
        (QuotaResource::Pool, t.pools.len() as i64),
        (QuotaResource::Member, t.members.len() as i64),
        (QuotaResource::HealthMonitor, t.health_monitors.len() as i64),
        (QuotaResource::L7Policy, t.l7policies.len() as i64),
        (QuotaResource::L7Rule, t.l7rules.len() as i64),
    ]
}

fn val<T: serde::Serialize>(x: &T) -> Value {
    serde_json::to_value(x).unwrap_or(Value::Null)
}

/// Octavia's "full" create response: children expanded rather than listed by id.
pub(crate) fn render_full(lb: &LoadBalancer, t: &LbTree) -> Value {
    let rules_of = |p: &L7Policy| -> Vec<Value> {
        t.l7rules
            .iter()
            .filter(|r| r.l7policy_id == p.id)
            .map(|r| val(&wire::rule(r)))
            .collect()
    };
    let listeners: Vec<Value> = t
        .listeners
        .iter()
        .map(|l| {
            let pols: Vec<Value> = t
                .l7policies
                .iter()
                .filter(|p| p.listener_id == l.id)
                .map(|p| {
                    let mut v = val(&wire::L7PolicyWire {
                        policy: p,
                        rules: vec![],
                        tenant_id: &p.project_id,
                    });
                    v["rules"] = Value::Array(rules_of(p));
                    v
                })
                .collect();
            let mut v = val(&wire::listener(l, vec![]));
            v["l7policies"] = Value::Array(pols);
            v
        })
        .collect();
    let pools: Vec<Value> = t
        .pools
        .iter()
        .map(|p| {
            let users: Vec<Id> = t
                .listeners
                .iter()
                .filter(|l| l.default_pool_id == Some(p.id))
                .map(|l| l.id)
                .collect();
            let hm = t.health_monitors.iter().find(|h| h.pool_id == p.id);
            let mut v = val(&wire::PoolWire {
                pool: p,
                loadbalancers: wire::refs([lb.id]),
                listeners: wire::refs(users),
                members: vec![],
                healthmonitor_id: hm.map(|h| h.id),
                tenant_id: &p.project_id,
            });
            v["members"] = Value::Array(
                t.members
                    .iter()
                    .filter(|m| m.pool_id == p.id)
                    .map(|m| val(&wire::member(m)))
                    .collect(),
            );
            v["healthmonitor"] = hm.map(|h| val(&wire::hm(h))).unwrap_or(Value::Null);
            v
        })
        .collect();
    let mut v = val(&wire::LbWire {
        lb,
        listeners: vec![],
        pools: vec![],
        tenant_id: &lb.project_id,
    });
    v["listeners"] = Value::Array(listeners);
    v["pools"] = Value::Array(pools);
    v
}
