use rocta_model::*;

use super::*;

fn lb(project: &str) -> LoadBalancer {
    LoadBalancer {
        id: new_id(),
        name: "x".into(),
        description: String::new(),
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        admin_state_up: true,
        project_id: project.into(),
        created_at: time::now(),
        updated_at: None,
        vip_address: Some("198.51.100.1".into()),
        vip_port_id: None,
        vip_subnet_id: None,
        vip_network_id: None,
        vip_sg_ids: vec![],
        additional_vips: vec![],
        provider: "amphora".into(),
        flavor_id: None,
        vip_qos_policy_id: None,
        tags: vec!["t".into()],
        availability_zone: None,
        vip_vnic_type: "normal".into(),
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open_sqlite(&d.path().join("db"), "normal").unwrap();
    (d, s)
}

#[tokio::test]
async fn entity_round_trip_and_status_columns() {
    let (_d, s) = open();
    let a = lb("p1");
    let rt = s
        .write(|tx| -> Result<_, StoreError> {
            tx.insert(&a)?;
            tx.set_status("load_balancers", &[a.id], Some("ACTIVE"), None)?;
            tx.get::<LoadBalancer>(a.id)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rt.provisioning_status, ProvisioningStatus::Active);
    assert!(rt.updated_at.is_some());
    assert_eq!(rt.tags, a.tags);
    let n = s
        .read(|tx| {
            tx.count::<LoadBalancer>(&Filter {
                project: Some("p2"),
                ..Default::default()
            })
        })
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn failed_write_rolls_back() {
    let (_d, s) = open();
    let a = lb("p1");
    let r: Result<(), StoreError> = s
        .write(|tx| {
            tx.insert(&a)?;
            tx.insert(&a) // unique id violation
        })
        .await;
    assert!(r.is_err());
    let n = s
        .read(|tx| tx.count::<LoadBalancer>(&Filter::default()))
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn jobs_are_claimed_once_and_reclaimed_after_the_lease() {
    let (_d, s) = open();
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
    // w1 lost the job: its journal writes are refused.
    let lost = s
        .write(|tx| tx.job_step_done(id, "w1", 0, "s", &serde_json::Value::Null))
        .await;
    assert!(matches!(lost, Err(StoreError::LeaseLost(_))));
    s.write(|tx| tx.job_step_done(id, "w2", 0, "s", &serde_json::json!(7)))
        .await
        .unwrap();
    let steps = s.read(|tx| tx.job_steps(id)).await.unwrap();
    assert_eq!(steps[0].output, serde_json::json!(7));
    s.write(|tx| tx.job_finish(id, "w2", None)).await.unwrap();
    assert_eq!(s.read(|tx| tx.jobs_unfinished()).await.unwrap(), 0);
}

#[tokio::test]
async fn jobs_of_one_load_balancer_run_in_order_and_the_lock_passes_on() {
    let (_d, s) = open();
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
    s.write(|tx| tx.job_finish(rotate, "w2", None))
        .await
        .unwrap();
    assert_eq!(claimed("w2", 1060).await, None);
    // The lease lapses: the first job is resumed before the delete, and no longer holds the
    // load balancer's lock (the delete does).
    assert_eq!(claimed("w2", 1200).await, Some(first));
    assert!(!s.read(|tx| tx.job_holds_lb(first, lb)).await.unwrap());
    assert!(s.read(|tx| tx.job_holds_lb(second, lb)).await.unwrap());
    assert_eq!(claimed("w3", 1210).await, None);
    s.write(|tx| tx.job_finish(first, "w2", None))
        .await
        .unwrap();
    assert_eq!(claimed("w3", 1220).await, Some(second));
}

#[tokio::test]
async fn jobs_that_do_not_lock_leave_the_lock_where_it_is() {
    let (_d, s) = open();
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
}

#[tokio::test]
async fn a_vip_intent_ends_once() {
    let (_d, s) = open();
    let (a, b) = (new_id(), new_id());
    s.write(|tx| tx.vip_intent(a, 1000)).await.unwrap();
    s.write(|tx| tx.vip_intent(b, 2000)).await.unwrap();
    assert_eq!(
        s.read(|tx| tx.vip_intents_before(1500)).await.unwrap(),
        vec![a]
    );
    assert!(s.write(|tx| tx.vip_intent_end(a)).await.unwrap());
    assert!(!s.write(|tx| tx.vip_intent_end(a)).await.unwrap());
    assert!(s
        .read(|tx| tx.vip_intents_before(1500))
        .await
        .unwrap()
        .is_empty());
}
