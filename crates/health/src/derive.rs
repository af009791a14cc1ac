//! Operating statuses from a heartbeat, as Octavia's health manager derives them
//! (reference/octavia.md §1.3): listener OPEN → ONLINE, FULL → DEGRADED, missing while enabled →
//! ERROR; pool UP → ONLINE, DOWN → ERROR, absent → OFFLINE; member UP → ONLINE, DOWN → ERROR
//! (its pool DEGRADED), DRAIN → DRAINING, MAINT → OFFLINE, `no check` → NO_MONITOR, absent →
//! OFFLINE (unless NO_MONITOR); the load balancer takes the worst of its children, OFFLINE
//! when disabled.

use std::collections::HashMap;

use rocta_model::*;
use rocta_proto::heartbeat::Heartbeat;

/// The statuses a heartbeat implies.
#[derive(Debug, PartialEq)]
pub struct Derived {
    pub loadbalancer: OperatingStatus,
    pub listeners: HashMap<Id, OperatingStatus>,
    pub pools: HashMap<Id, OperatingStatus>,
    pub members: HashMap<Id, OperatingStatus>,
}

fn member_status(s: &str) -> Option<OperatingStatus> {
    let s = s.trim();
    Some(if s.starts_with("UP") {
        OperatingStatus::Online
    } else if s.starts_with("DOWN") {
        OperatingStatus::Error
    } else if s == "DRAIN" {
        OperatingStatus::Draining
    } else if s == "MAINT" {
        OperatingStatus::Offline
    } else if s == "no check" {
        OperatingStatus::NoMonitor
    } else {
        // RESTARTING and the like: keep what we had.
        return None;
    })
}

/// Derives the statuses of `tree` from `hb`.
pub fn derive(tree: &LbTree, hb: &Heartbeat) -> Derived {
    let mut d = Derived {
        loadbalancer: OperatingStatus::Online,
        listeners: HashMap::new(),
        pools: HashMap::new(),
        members: HashMap::new(),
    };
    let Some(lb) = &tree.loadbalancer else {
        return d;
    };
    if !lb.admin_state_up {
        d.loadbalancer = OperatingStatus::Offline;
        return d;
    }
    let mut worst = OperatingStatus::Online;
    let mut worsen = |s: OperatingStatus| {
        let rank = |s: OperatingStatus| match s {
            OperatingStatus::Error => 2,
            OperatingStatus::Degraded => 1,
            _ => 0,
        };
        if rank(s) > rank(worst) {
            worst = s;
        }
    };
    for l in &tree.listeners {
        // UDP and SCTP listeners are reported like HAProxy's (the agent's nftables counters).
        if !l.admin_state_up {
            d.listeners.insert(l.id, OperatingStatus::Offline);
            continue;
        }
        let report = hb
            .listeners
            .0
            .iter()
            .find(|(id, _)| *id == l.id.to_string());
        let s = match report.map(|(_, r)| r.status.as_str()) {
            Some("OPEN") => OperatingStatus::Online,
            Some("FULL") => OperatingStatus::Degraded,
            Some(_) => OperatingStatus::Offline,
            None if lb.provisioning_status == ProvisioningStatus::Active => OperatingStatus::Error,
            None => continue,
        };
        worsen(s);
        d.listeners.insert(l.id, s);
    }
    for p in &tree.pools {
        let prefix = format!("{}:", p.id);
        let report = hb
            .pools
            .0
            .iter()
            .find(|(k, _)| k.starts_with(&prefix))
            .map(|(_, r)| r);
        let Some(r) = report else {
            d.pools.insert(p.id, OperatingStatus::Offline);
            continue;
        };
        let mut ps = if r.status == "UP" {
            OperatingStatus::Online
        } else {
            OperatingStatus::Error
        };
        for m in tree.members.iter().filter(|m| m.pool_id == p.id) {
            let reported = r.members.0.iter().find(|(id, _)| *id == m.id.to_string());
            let ms = match reported {
                Some((_, s)) => match member_status(s) {
                    Some(x) => x,
                    None => continue,
                },
                None if m.operating_status == OperatingStatus::NoMonitor => continue,
                None => OperatingStatus::Offline,
            };
            if ms == OperatingStatus::Error && ps == OperatingStatus::Online {
                ps = OperatingStatus::Degraded;
            }
            d.members.insert(m.id, ms);
        }
        worsen(ps);
        d.pools.insert(p.id, ps);
    }
    d.loadbalancer = worst;
    d
}
