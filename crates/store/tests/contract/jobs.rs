//! The contract of the durable job queue: claims and leases, the order of one load
//! balancer's jobs and its lock, concurrent claimers and duties, the history of ended jobs.

use std::collections::HashSet;
use std::sync::Arc;

use rocta_model::*;
use rocta_store::*;

use super::{write_retrying, Db};

pub(super) async fn jobs_are_claimed_once_and_reclaimed_after_the_lease(db: Db) {
    let s = &db.store;
    let job = Job::UpdateLoadBalancer { lb_id: new_id() };
    let id = s.write(|tx| tx.job_post(&job)).await.unwrap();
    let a = s.write(|tx| tx.job_claim("w1", 1000, 100)).await.unwrap();
    assert_eq!(a.unwrap().attempts, 1);
    assert!(s
        .write(|tx| tx.job_claim("w2", 1050, 100))
        .await
        .unwrap()
        .is_none());
    let b = s
        .write(|tx| tx.job_claim("w2", 1200, 100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.attempts, 2);
    assert!(!s.write(|tx| tx.job_renew(id, "w1", 5000)).await.unwrap());
    assert!(s.write(|tx| tx.job_renew(id, "w2", 5000)).await.unwrap());
    // w1 lost the job: its journal writes are refused.
    let lost = s
        .write(|tx| tx.job_step_done(id, "w1", 0, "s", &serde_json::Value::Null))
        .await;
    assert!(matches!(lost, Err(StoreError::LeaseLost(_))));
    s.write(|tx| tx.job_step_done(id, "w2", 0, "s", &serde_json::json!(7)))
        .await
        .unwrap();
    // A step done again (a resumed job) replaces its record.
    s.write(|tx| tx.job_step_done(id, "w2", 0, "s", &serde_json::json!(8)))
        .await
        .unwrap();
    s.write(|tx| tx.job_step_done(id, "w2", 1, "t", &serde_json::json!({"a": 1})))
        .await
        .unwrap();
    s.write(|tx| tx.job_begin_revert(id, "w2", 1, "boom"))
        .await
        .unwrap();
    s.write(|tx| tx.job_step_reverted(id, "w2", 1))
        .await
        .unwrap();
    let steps = s.read(|tx| tx.job_steps(id)).await.unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].output, serde_json::json!(8));
    assert!(steps[1].reverted && !steps[0].reverted);
    assert_eq!(
        s.read(|tx| tx.job_failure(id)).await.unwrap(),
        Some((1, "boom".to_string()))
    );
    assert_eq!(s.write(|tx| tx.jobs_release("w2")).await.unwrap(), 1);
    let c = s
        .write(|tx| tx.job_claim("w3", 1300, 100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.state, c.attempts), (JobState::Reverting, 3));
    s.write(|tx| tx.job_finish(id, "w3", Some("reverted"), &[]))
        .await
        .unwrap();
    assert_eq!(s.read(|tx| tx.jobs_unfinished()).await.unwrap(), 0);
}

/// The operator's view of jobs: unfinished ones with the steps journaled so far, ended ones
/// (done or reverted) in the history, newest first, with their steps; a job whose lease
/// another worker took leaves no history; old history is purged.
pub(super) async fn ended_jobs_go_into_the_history_with_their_steps(db: Db) {
    let s = &db.store;
    let lb_id = new_id();
    let ok = s
        .write(|tx| tx.job_post(&Job::CreateLoadBalancer { lb_id }))
        .await
        .unwrap();
    s.write(|tx| tx.job_claim("w1", 1000, 100)).await.unwrap();
    s.write(|tx| tx.job_step_done(ok, "w1", 0, "allocate", &serde_json::json!(1)))
        .await
        .unwrap();
    let open = s.read(|tx| tx.jobs_open(10)).await.unwrap();
    let mine = open.iter().find(|j| j.id == ok).unwrap();
    assert_eq!(
        (mine.name.as_str(), mine.state.as_str()),
        ("create_loadbalancer", "running")
    );
    assert_eq!(
        mine.steps,
        vec![serde_json::json!({"step": 0, "name": "allocate", "state": "done"})]
    );
    assert_eq!(mine.job["lb_id"], serde_json::json!(lb_id.to_string()));
    // Another worker's finish (its lease lost) records nothing.
    assert!(s
        .write(|tx| tx.job_finish(ok, "w9", None, &[]))
        .await
        .is_err());
    s.write(|tx| tx.job_finish(ok, "w1", None, &["allocate", "configure"]))
        .await
        .unwrap();
    let bad = s
        .write(|tx| {
            tx.job_post(&Job::DeleteLoadBalancer {
                lb_id,
                cascade: true,
            })
        })
        .await
        .unwrap();
    s.write(|tx| tx.job_claim("w1", 2000, 100)).await.unwrap();
    s.write(|tx| tx.job_step_done(bad, "w1", 0, "a", &serde_json::Value::Null))
        .await
        .unwrap();
    s.write(|tx| tx.job_begin_revert(bad, "w1", 1, "no valid host"))
        .await
        .unwrap();
    s.write(|tx| tx.job_step_reverted(bad, "w1", 1))
        .await
        .unwrap();
    s.write(|tx| tx.job_step_reverted(bad, "w1", 0))
        .await
        .unwrap();
    s.write(|tx| tx.job_finish(bad, "w1", Some("no valid host"), &["a", "boot", "c"]))
        .await
        .unwrap();
    assert!(s
        .read(|tx| tx.jobs_open(10))
        .await
        .unwrap()
        .iter()
        .all(|j| j.id != ok && j.id != bad));
    let h = s.read(|tx| tx.job_history(&[], 10)).await.unwrap();
    let h: Vec<_> = h.iter().filter(|j| j.lb_id == lb_id).collect();
    assert_eq!(h.len(), 2);
    assert_eq!((h[0].id, h[0].state.as_str()), (bad, "reverted"));
    assert_eq!(
        (h[0].failed_step, h[0].error.as_deref()),
        (Some(1), Some("no valid host"))
    );
    let states = |j: &JobView| -> Vec<String> {
        j.steps
            .iter()
            .map(|st| {
                format!(
                    "{}:{}",
                    st["name"].as_str().unwrap(),
                    st["state"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(states(h[0]), ["a:reverted", "boot:failed", "c:not_run"]);
    assert_eq!(
        (h[1].id, h[1].state.as_str(), h[1].attempts),
        (ok, "done", 1)
    );
    assert_eq!(states(h[1]), ["allocate:done", "configure:done"]);
    assert!(h[1].created_at.is_some() && h[1].updated_at >= h[1].created_at);
    let named = s
        .read(|tx| tx.job_history(&["delete_loadbalancer", "other"], 10))
        .await
        .unwrap();
    assert!(named.iter().any(|j| j.id == bad) && named.iter().all(|j| j.id != ok));
    let past = time::now() - chrono::Duration::hours(1);
    assert_eq!(s.write(|tx| tx.job_history_purge(past)).await.unwrap(), 0);
    let future = time::now() + chrono::Duration::hours(1);
    assert!(s.write(|tx| tx.job_history_purge(future)).await.unwrap() >= 2);
    assert!(s
        .read(|tx| tx.job_history(&[], 10))
        .await
        .unwrap()
        .iter()
        .all(|j| j.lb_id != lb_id));
}

pub(super) async fn jobs_of_one_load_balancer_run_in_order_and_the_lock_passes_on(db: Db) {
    let s = &db.store;
    let (lb, other) = (new_id(), new_id());
    let first = s
        .write(|tx| tx.job_post(&Job::CreateLoadBalancer { lb_id: lb }))
        .await
        .unwrap();
    let claimed = |owner: &'static str, now: i64| {
        let s = s.clone();
        async move {
            s.write(|tx| tx.job_claim(owner, now, 100))
                .await
                .unwrap()
                .map(|j| j.id)
        }
    };
    assert_eq!(claimed("w1", 1000).await, Some(first));
    // The first job's worker dies after unlocking the load balancer; a client posts a delete,
    // and the health manager's rotation of another load balancer's amphora comes in too.
    let second = s
        .write(|tx| {
            tx.job_post(&Job::DeleteLoadBalancer {
                lb_id: lb,
                cascade: false,
            })
        })
        .await
        .unwrap();
    let rotate = s
        .write(|tx| {
            tx.job_post(&Job::RotateAmphoraCert {
                lb_id: other,
                amphora_id: new_id(),
            })
        })
        .await
        .unwrap();
    // The delete waits for the unfinished first job, even while its lease runs; others do not.
    assert_eq!(claimed("w2", 1050).await, Some(rotate));
    s.write(|tx| tx.job_finish(rotate, "w2", None, &[]))
        .await
        .unwrap();
    assert_eq!(claimed("w2", 1060).await, None);
    // The lease lapses: the first job is resumed before the delete, and no longer holds the
    // load balancer's lock (the delete does).
    assert_eq!(claimed("w2", 1200).await, Some(first));
    assert!(!s.read(|tx| tx.job_holds_lb(first, lb)).await.unwrap());
    assert!(s.read(|tx| tx.job_holds_lb(second, lb)).await.unwrap());
    assert_eq!(claimed("w3", 1210).await, None);
    s.write(|tx| tx.job_finish(first, "w2", None, &[]))
        .await
        .unwrap();
    assert_eq!(claimed("w3", 1220).await, Some(second));
}

pub(super) async fn jobs_that_do_not_lock_leave_the_lock_where_it_is(db: Db) {
    let s = &db.store;
    let lb = new_id();
    let update = s
        .write(|tx| tx.job_post(&Job::UpdateLoadBalancer { lb_id: lb }))
        .await
        .unwrap();
    s.write(|tx| {
        tx.job_post(&Job::RotateAmphoraCert {
            lb_id: lb,
            amphora_id: new_id(),
        })
    })
    .await
    .unwrap();
    assert!(s.read(|tx| tx.job_holds_lb(update, lb)).await.unwrap());
    let name = Job::UpdateLoadBalancer { lb_id: lb }.name();
    assert_eq!(s.read(|tx| tx.jobs_named(name)).await.unwrap(), 1);
    assert_eq!(s.read(|tx| tx.jobs_unfinished()).await.unwrap(), 2);
}

pub(super) async fn concurrent_claimers_never_run_one_job_twice(db: Db) {
    let s = db.store.clone();
    const JOBS: usize = 60;
    s.write(|tx| -> Result<(), StoreError> {
        for _ in 0..JOBS {
            tx.job_post(&Job::UpdateLoadBalancer { lb_id: new_id() })?;
        }
        Ok(())
    })
    .await
    .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let owner = format!("w{w}");
                let mut mine = Vec::new();
                loop {
                    let got = write_retrying(&s, |tx| tx.job_claim(&owner, 1000, 60_000)).await;
                    let Some(j) = got else { break };
                    mine.push(j.id);
                }
                mine
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        for id in t.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "job {id} claimed twice");
        }
    }
    assert_eq!(total, JOBS);
}

pub(super) async fn duty_rounds_in_parallel_post_once(db: Db) {
    let s = db.store.clone();
    const POOL: i64 = 3;
    let name = "create_spare_amphora";
    let barrier = Arc::new(tokio::sync::Barrier::new(6));
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (s, b) = (s.clone(), barrier.clone());
            tokio::spawn(async move {
                b.wait().await;
                // What housekeeping's spare duty does on each of several processes.
                write_retrying(&s, |tx| {
                    tx.duty_lock("spares")?;
                    let missing = (POOL - tx.jobs_named(name)?).max(0);
                    for _ in 0..missing {
                        tx.job_post(&Job::CreateSpareAmphora {
                            availability_zone: None,
                        })?;
                    }
                    Ok(missing)
                })
                .await
            })
        })
        .collect();
    let mut posted = 0;
    for t in tasks {
        posted += t.await.unwrap();
    }
    assert_eq!(posted, POOL);
    assert_eq!(s.read(|tx| tx.jobs_named(name)).await.unwrap(), POOL);
}
