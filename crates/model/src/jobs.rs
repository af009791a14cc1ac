//! Job messages: what the API asks the worker to do. Posted in the same database transaction as
//! the desired-state change, so an accepted request always has its job and vice versa.

use serde::{Deserialize, Serialize};

use crate::entities::*;
use crate::Id;

/// The child resources of a load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    Listener,
    Pool,
    Member,
    HealthMonitor,
    L7Policy,
    L7Rule,
}

/// What a job does to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Create,
    Update,
    Delete,
}

/// A unit of work for the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// Build the amphora, plug the VIP, push the configuration of any listeners created with it.
    CreateLoadBalancer {
        lb_id: Id,
    },
    UpdateLoadBalancer {
        lb_id: Id,
    },
    /// Tear down amphorae and VIP; with `cascade` the children go too.
    DeleteLoadBalancer {
        lb_id: Id,
        cascade: bool,
    },
    /// Replace every amphora of the load balancer.
    FailoverLoadBalancer {
        lb_id: Id,
    },
    /// Replace one amphora.
    FailoverAmphora {
        lb_id: Id,
        amphora_id: Id,
    },
    /// Create, update or delete one child object, then push the new configuration.
    Child {
        kind: ChildKind,
        op: Op,
        id: Id,
        lb_id: Id,
    },
    /// Boot a spare amphora (no load balancer) and leave it `READY` for a create to claim: one
    /// of the pool of an availability zone (`None`: of load balancers without one).
    CreateSpareAmphora {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        availability_zone: Option<String>,
    },
    /// Give an amphora a new server certificate before the old one expires.
    RotateAmphoraCert {
        /// Its load balancer (nil for a spare): jobs of one load balancer run one at a time.
        lb_id: Id,
        amphora_id: Id,
    },
    /// Push the agent configuration the controller now has (health managers, heartbeat key,
    /// interval) to one amphora (Octavia's `PUT /v2/octavia/amphorae/{id}/config`).
    UpdateAmphoraConfig {
        /// Its load balancer (nil for a spare): jobs of one load balancer run one at a time.
        lb_id: Id,
        amphora_id: Id,
    },
    /// Tear down an amphora in `ERROR` (Octavia's `DELETE /v2/octavia/amphorae/{id}`); the API
    /// moved it to `PENDING_DELETE`.
    DeleteAmphora {
        /// Its load balancer (nil for a spare): jobs of one load balancer run one at a time.
        lb_id: Id,
        amphora_id: Id,
    },
    /// Release whatever VIP was allocated for a load balancer that was never recorded (its API
    /// process died between the allocation and the commit; housekeeping posts this).
    ReleaseVip {
        lb_id: Id,
    },
    /// The batch member update of one pool.
    BatchMembers {
        lb_id: Id,
        pool_id: Id,
        created: Vec<Id>,
        updated: Vec<Id>,
        deleted: Vec<Id>,
    },
}

impl Job {
    /// The load balancer the job works on.
    pub fn lb_id(&self) -> Id {
        match self {
            Job::CreateLoadBalancer { lb_id }
            | Job::UpdateLoadBalancer { lb_id }
            | Job::DeleteLoadBalancer { lb_id, .. }
            | Job::FailoverLoadBalancer { lb_id }
            | Job::FailoverAmphora { lb_id, .. }
            | Job::Child { lb_id, .. }
            | Job::RotateAmphoraCert { lb_id, .. }
            | Job::UpdateAmphoraConfig { lb_id, .. }
            | Job::DeleteAmphora { lb_id, .. }
            | Job::ReleaseVip { lb_id }
            | Job::BatchMembers { lb_id, .. } => *lb_id,
            Job::CreateSpareAmphora { .. } => Id::nil(),
        }
    }

    /// Whether the job holds its load balancer's lock: whoever posts it has set the load
    /// balancer `PENDING_*` in the same transaction, and the job's last status step unlocks it.
    /// Jobs that do not (rotation, spares, VIP release) never change the load balancer's status.
    pub fn locks_lb(&self) -> bool {
        !matches!(
            self,
            Job::RotateAmphoraCert { .. }
                | Job::UpdateAmphoraConfig { .. }
                | Job::DeleteAmphora { .. }
                | Job::CreateSpareAmphora { .. }
                | Job::ReleaseVip { .. }
        )
    }

    /// A short name for logs and the jobs table.
    pub fn name(&self) -> &'static str {
        match self {
            Job::CreateLoadBalancer { .. } => "create_loadbalancer",
            Job::UpdateLoadBalancer { .. } => "update_loadbalancer",
            Job::DeleteLoadBalancer { .. } => "delete_loadbalancer",
            Job::FailoverLoadBalancer { .. } => "failover_loadbalancer",
            Job::FailoverAmphora { .. } => "failover_amphora",
            Job::Child { .. } => "child",
            Job::BatchMembers { .. } => "batch_members",
            Job::CreateSpareAmphora { .. } => "create_spare_amphora",
            Job::RotateAmphoraCert { .. } => "rotate_amphora_cert",
            Job::UpdateAmphoraConfig { .. } => "update_amphora_config",
            Job::DeleteAmphora { .. } => "delete_amphora",
            Job::ReleaseVip { .. } => "release_vip",
        }
    }
}

/// The whole desired state of one load balancer: what an amphora must serve.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LbTree {
    pub loadbalancer: Option<LoadBalancer>,
    pub listeners: Vec<Listener>,
    pub pools: Vec<Pool>,
    pub members: Vec<Member>,
    pub health_monitors: Vec<HealthMonitor>,
    pub l7policies: Vec<L7Policy>,
    pub l7rules: Vec<L7Rule>,
}

impl LbTree {
    /// The tree without objects on their way out (`PENDING_DELETE`) and without anything that
    /// hangs from them: what an amphora must serve while deletions are in flight.
    pub fn without_pending_deletes(mut self) -> LbTree {
        use crate::enums::ProvisioningStatus::PendingDelete;
        self.listeners
            .retain(|l| l.provisioning_status != PendingDelete);
        self.pools
            .retain(|p| p.provisioning_status != PendingDelete);
        let listeners: Vec<Id> = self.listeners.iter().map(|l| l.id).collect();
        let pools: Vec<Id> = self.pools.iter().map(|p| p.id).collect();
        self.members
            .retain(|m| m.provisioning_status != PendingDelete && pools.contains(&m.pool_id));
        self.health_monitors
            .retain(|h| h.provisioning_status != PendingDelete && pools.contains(&h.pool_id));
        self.l7policies.retain(|p| {
            p.provisioning_status != PendingDelete && listeners.contains(&p.listener_id)
        });
        let policies: Vec<Id> = self.l7policies.iter().map(|p| p.id).collect();
        self.l7rules.retain(|r| {
            r.provisioning_status != PendingDelete && policies.contains(&r.l7policy_id)
        });
        for l in &mut self.listeners {
            if l.default_pool_id.is_some_and(|p| !pools.contains(&p)) {
                l.default_pool_id = None;
            }
        }
        self
    }
}
