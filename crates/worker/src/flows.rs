//! One flow per job: the ordered steps, Octavia's flows reduced to what rocta's drivers need.

use rocta_flow::{Flow, Task};
use rocta_model::{AmphoraRole, Id, Job, Op};

use crate::tasks::*;
use crate::Ctx;

/// The slot of the amphora a create or failover builds (see `tasks::amphora_id`).
const NEW_AMPHORA: &str = "amphora-0";
/// The slot of an ACTIVE_STANDBY load balancer's BACKUP (builds nothing for SINGLE).
const SECOND_AMPHORA: &str = "amphora-1";
const BOTH: &[&str] = &[NEW_AMPHORA, SECOND_AMPHORA];
const FIRST: &[&str] = &[NEW_AMPHORA];
const SECOND: &[&str] = &[SECOND_AMPHORA];

pub(crate) fn build(job: &Job, _job_id: Id) -> Flow<Ctx> {
    let t = |x: Box<dyn Task<Ctx>>| x;
    match job.clone() {
        Job::CreateLoadBalancer { lb_id } => Flow {
            name: "create_loadbalancer",
            tasks: {
                let mut v = vec![t(Box::new(LbErrorOnRevert { lb_id }))];
                v.extend(build_amphorae(
                    lb_id,
                    &[SlotRole::Primary, SlotRole::Secondary],
                ));
                v.push(t(Box::new(ApplyConfig {
                    lb_id,
                    only_slots: None,
                })));
                v.push(t(Box::new(ConfigureVrrp {
                    lb_id,
                    with_config: false,
                })));
                v.push(t(Box::new(MarkLbActive { lb_id })));
                v
            },
        },
        Job::UpdateLoadBalancer { lb_id } => Flow {
            name: "update_loadbalancer",
            tasks: vec![
                t(Box::new(LbErrorOnRevert { lb_id })),
                t(Box::new(ApplyConfig {
                    lb_id,
                    only_slots: None,
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
                    keep_slots: &[],
                    only_role: None,
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
                    role: SlotRole::Spare,
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
                    only_slots: None,
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
                        only_slots: None,
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

/// Create, wait for and plug the amphorae of `roles` (slot `amphora-<k>` for the k-th), each
/// step for every slot before the next step, so two amphorae boot at once.
fn build_amphorae(lb_id: Id, roles: &[SlotRole]) -> Vec<Box<dyn Task<Ctx>>> {
    let slots = &BOTH[..roles.len()];
    let mut v: Vec<Box<dyn Task<Ctx>>> = Vec::new();
    for (slot, role) in slots.iter().zip(roles) {
        v.push(Box::new(CreateAmphora {
            lb_id: Some(lb_id),
            slot,
            use_spare: true,
            spare_zone: None,
            role: role.clone(),
        }));
    }
    for slot in slots {
        v.push(Box::new(WaitAmphora { slot }));
    }
    for slot in slots {
        v.push(Box::new(PlugVip { lb_id, slot }));
    }
    v
}

/// Build the replacement first, then delete the old amphora (Octavia: compute services are
/// unreliable, so the old one goes only once the new one serves). One amphora (`only`): its
/// replacement takes its role, and in an ACTIVE_STANDBY pair the survivor keeps the VIP and
/// learns its new peer. The whole load balancer: one amphora after the other, the standby
/// first (as Octavia), so the VIP always has a holder (for SINGLE: the one amphora).
fn failover(lb_id: Id, only: Option<Id>) -> Flow<Ctx> {
    let mut tasks: Vec<Box<dyn Task<Ctx>>> = vec![Box::new(LbErrorOnRevert { lb_id })];
    let steps: Vec<(SlotRole, &'static [&'static str], Option<AmphoraRole>)> = match only {
        Some(id) => vec![(SlotRole::Like(id), FIRST, None)],
        None => vec![
            (
                SlotRole::Replacing(AmphoraRole::Backup),
                FIRST,
                Some(AmphoraRole::Backup),
            ),
            (
                SlotRole::Replacing(AmphoraRole::Master),
                SECOND,
                Some(AmphoraRole::Master),
            ),
        ],
    };
    for (role, slots, only_role) in steps {
        let slot = slots[0];
        tasks.push(Box::new(CreateAmphora {
            lb_id: Some(lb_id),
            slot,
            use_spare: true,
            spare_zone: None,
            role,
        }));
        tasks.push(Box::new(WaitAmphora { slot }));
        tasks.push(Box::new(PlugVip { lb_id, slot }));
        tasks.push(Box::new(ApplyConfig {
            lb_id,
            only_slots: Some(slots),
        }));
        tasks.push(Box::new(DeleteAmphorae {
            lb_id,
            only,
            keep_slots: BOTH,
            only_role,
        }));
        tasks.push(Box::new(ConfigureVrrp {
            lb_id,
            with_config: true,
        }));
    }
    tasks.push(Box::new(MarkLbActive { lb_id }));
    Flow {
        name: "failover",
        tasks,
    }
}
