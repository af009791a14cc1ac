//! One flow per job: the ordered steps, Octavia's flows reduced to what rocta's drivers need.

use rocta_flow::{Flow, Task};
use rocta_model::{Id, Job, Op};

use crate::tasks::*;
use crate::Ctx;

/// The slot of the amphora a create or failover builds (see `tasks::amphora_id`).
const NEW_AMPHORA: &str = "amphora-0";

pub(crate) fn build(job: &Job, _job_id: Id) -> Flow<Ctx> {
    let t = |x: Box<dyn Task<Ctx>>| x;
    match job.clone() {
        Job::CreateLoadBalancer { lb_id } => Flow {
            name: "create_loadbalancer",
            tasks: vec![
                t(Box::new(LbErrorOnRevert { lb_id })),
                t(Box::new(CreateAmphora {
                    lb_id: Some(lb_id),
                    slot: NEW_AMPHORA,
                    use_spare: true,
                    spare_zone: None,
                })),
                t(Box::new(WaitAmphora { slot: NEW_AMPHORA })),
                t(Box::new(PlugVip {
                    lb_id,
                    slot: NEW_AMPHORA,
                })),
                t(Box::new(ApplyConfig {
                    lb_id,
                    only_slot: None,
                })),
                t(Box::new(MarkLbActive { lb_id })),
            ],
        },
        Job::UpdateLoadBalancer { lb_id } => Flow {
            name: "update_loadbalancer",
            tasks: vec![
                t(Box::new(LbErrorOnRevert { lb_id })),
                t(Box::new(ApplyConfig {
                    lb_id,
                    only_slot: None,
                })),
                t(Box::new(MarkLbActive { lb_id })),
            ],
        },
        Job::DeleteLoadBalancer { lb_id, .. } => Flow {
            name: "delete_loadbalancer",
            tasks: vec![
                t(Box::new(LbErrorOnRevert { lb_id })),
                t(Box::new(DeleteAmphorae {
                    lb_id,
                    only: None,
                    keep_slot: None,
                })),
                t(Box::new(DeallocateVip { lb_id })),
                t(Box::new(MarkLbDeleted { lb_id })),
            ],
        },
        Job::CreateSpareAmphora { availability_zone } => Flow {
            name: "create_spare_amphora",
            tasks: vec![
                t(Box::new(CreateAmphora {
                    lb_id: None,
                    slot: NEW_AMPHORA,
                    use_spare: false,
                    spare_zone: availability_zone,
                })),
                t(Box::new(WaitAmphora { slot: NEW_AMPHORA })),
                t(Box::new(MarkAmphoraReady { slot: NEW_AMPHORA })),
            ],
        },
        Job::RotateAmphoraCert { amphora_id, .. } => Flow {
            name: "rotate_amphora_cert",
            tasks: vec![t(Box::new(RotateCert { amphora_id }))],
        },
        Job::UpdateAmphoraConfig { amphora_id, .. } => Flow {
            name: "update_amphora_config",
            tasks: vec![t(Box::new(UpdateAgentConfig { amphora_id }))],
        },
        Job::DeleteAmphora { amphora_id, .. } => Flow {
            name: "delete_amphora",
            tasks: vec![t(Box::new(DeleteErroredAmphora { amphora_id }))],
        },
        Job::ReleaseVip { lb_id } => Flow {
            name: "release_vip",
            tasks: vec![t(Box::new(ReleaseVipsOf { lb_id }))],
        },
        Job::FailoverLoadBalancer { lb_id } => failover(lb_id, None),
        Job::FailoverAmphora { lb_id, amphora_id } => failover(lb_id, Some(amphora_id)),
        Job::Child {
            kind,
            op,
            id,
            lb_id,
        } => Flow {
            name: "child",
            tasks: vec![
                t(Box::new(ChildErrorOnRevert {
                    lb_id,
                    kind,
                    ids: vec![id],
                })),
                t(Box::new(ApplyConfig {
                    lb_id,
                    only_slot: None,
                })),
                t(Box::new(Finalize {
                    lb_id,
                    kind,
                    delete: if op == Op::Delete { vec![id] } else { vec![] },
                })),
            ],
        },
        Job::BatchMembers {
            lb_id,
            created,
            updated,
            deleted,
            ..
        } => {
            let ids = created
                .iter()
                .chain(&updated)
                .chain(&deleted)
                .copied()
                .collect();
            Flow {
                name: "batch_members",
                tasks: vec![
                    t(Box::new(ChildErrorOnRevert {
                        lb_id,
                        kind: rocta_model::ChildKind::Member,
                        ids,
                    })),
                    t(Box::new(ApplyConfig {
                        lb_id,
                        only_slot: None,
                    })),
                    t(Box::new(Finalize {
                        lb_id,
                        kind: rocta_model::ChildKind::Member,
                        delete: deleted,
                    })),
                ],
            }
        }
    }
}

/// Build the replacement first, then delete the old amphorae (Octavia: compute services are
/// unreliable, so the old one goes only once the new one serves).
fn failover(lb_id: Id, only: Option<Id>) -> Flow<Ctx> {
    Flow {
        name: "failover",
        tasks: vec![
            Box::new(LbErrorOnRevert { lb_id }),
            Box::new(CreateAmphora {
                lb_id: Some(lb_id),
                slot: NEW_AMPHORA,
                use_spare: true,
                spare_zone: None,
            }),
            Box::new(WaitAmphora { slot: NEW_AMPHORA }),
            Box::new(PlugVip {
                lb_id,
                slot: NEW_AMPHORA,
            }),
            Box::new(ApplyConfig {
                lb_id,
                only_slot: Some(NEW_AMPHORA),
            }),
            Box::new(DeleteAmphorae {
                lb_id,
                only,
                keep_slot: Some(NEW_AMPHORA),
            }),
            Box::new(MarkLbActive { lb_id }),
        ],
    }
}
