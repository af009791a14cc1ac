//! The wire shapes: each entity (already named with Octavia's fields) plus the wire-only parts
//! (`tenant_id`, child id lists).

use rocta_model::*;
use schemars::JsonSchema;
use serde::Serialize;

use crate::query::Item;

/// `{"id": ...}` in child lists.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct IdRef {
    pub id: Id,
}

/// A pagination or version link.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Link {
    pub href: String,
    pub rel: &'static str,
}

pub fn refs(ids: impl IntoIterator<Item = Id>) -> Vec<IdRef> {
    ids.into_iter().map(|id| IdRef { id }).collect()
}

macro_rules! wire {
    ($name:ident $schema:literal, $field:ident: $ty:ty { $($extra:ident: $xty:ty),* } $(hidden $hk:literal => |$hs:ident| $hv:expr)?) => {
        #[derive(Serialize, JsonSchema)]
        #[schemars(rename = $schema)]
        pub struct $name<'a> {
            #[serde(flatten)]
            pub $field: &'a $ty,
            $(pub $extra: $xty,)*
            pub tenant_id: &'a str,
        }
        impl Item for $name<'_> {
            fn item_id(&self) -> Id {
                self.$field.id
            }
            $(fn hidden(&self) -> Vec<(&'static str, String)> {
                let $hs = &self.$field;
                vec![($hk, $hv.to_string())]
            })?
        }
    };
}

wire!(LbWire "LoadBalancer", lb: LoadBalancer { listeners: Vec<IdRef>, pools: Vec<IdRef> });
wire!(ListenerWire "Listener", listener: Listener { l7policies: Vec<IdRef>, loadbalancers: Vec<IdRef> } hidden "loadbalancer_id" => |l| l.lb_id);
wire!(MemberWire "Member", member: Member {} hidden "pool_id" => |m| m.pool_id);
wire!(HmWire "HealthMonitor", hm: HealthMonitor { pools: Vec<IdRef> } hidden "pool_id" => |h| h.pool_id);
wire!(L7PolicyWire "L7Policy", policy: L7Policy { rules: Vec<IdRef> });
wire!(L7RuleWire "L7Rule", rule: L7Rule {} hidden "l7policy_id" => |r| r.l7policy_id);

/// A pool; `healthmonitor_id` is left out when the pool has none, as Octavia.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Pool")]
pub struct PoolWire<'a> {
    #[serde(flatten)]
    pub pool: &'a Pool,
    pub loadbalancers: Vec<IdRef>,
    pub listeners: Vec<IdRef>,
    pub members: Vec<IdRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthmonitor_id: Option<Id>,
    pub tenant_id: &'a str,
}

impl Item for PoolWire<'_> {
    fn item_id(&self) -> Id {
        self.pool.id
    }
    fn hidden(&self) -> Vec<(&'static str, String)> {
        vec![("loadbalancer_id", self.pool.lb_id.to_string())]
    }
}

/// An amphora (admin API).
#[derive(Serialize, JsonSchema)]
#[serde(transparent)]
pub struct AmphoraWire<'a>(pub &'a Amphora);

impl Item for AmphoraWire<'_> {
    fn item_id(&self) -> Id {
        self.0.id
    }
}

pub fn listener(l: &Listener, policies: Vec<IdRef>) -> ListenerWire<'_> {
    ListenerWire {
        listener: l,
        l7policies: policies,
        loadbalancers: refs([l.lb_id]),
        tenant_id: &l.project_id,
    }
}

pub fn member(m: &Member) -> MemberWire<'_> {
    MemberWire {
        member: m,
        tenant_id: &m.project_id,
    }
}

pub fn hm(h: &HealthMonitor) -> HmWire<'_> {
    HmWire {
        hm: h,
        pools: refs([h.pool_id]),
        tenant_id: &h.project_id,
    }
}

pub fn rule(r: &L7Rule) -> L7RuleWire<'_> {
    L7RuleWire {
        rule: r,
        tenant_id: &r.project_id,
    }
}
