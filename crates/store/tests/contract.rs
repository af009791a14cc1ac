//! The store contract: one suite, run against every backend (SQLite in a temporary file, and a
//! database of its own on the PostgreSQL and MySQL/MariaDB servers, see `rocta_store::testing`).
//! Each test is written once as an `async fn(Db)`; `contract!` instantiates it per backend.

use std::collections::HashSet;
use std::sync::Arc;

use rocta_model::*;
use rocta_store::testing::TempDb;
use rocta_store::*;

#[path = "contract/jobs.rs"]
mod jobs;
#[path = "contract/schema.rs"]
mod schema;
use {jobs::*, schema::*};

/// A store on one backend, and what keeps its database alive.
struct Db {
    store: Store,
    _keep: Keep,
}

enum Keep {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Server(#[allow(dead_code)] TempDb),
}

impl Db {
    fn sqlite() -> Db {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&d.path().join("db"), "normal").unwrap();
        Db {
            store,
            _keep: Keep::Dir(d),
        }
    }

    fn server(t: TempDb) -> Db {
        let store = Store::open(&t.target, &Options::default()).unwrap();
        Db {
            store,
            _keep: Keep::Server(t),
        }
    }

    fn postgres() -> Db {
        Db::server(TempDb::postgres().expect("PostgreSQL for the contract suite"))
    }

    fn mysql() -> Db {
        Db::server(TempDb::mysql().expect("MySQL/MariaDB for the contract suite"))
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Db::sqlite()).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Db::postgres()).await })*
        }
        mod mysql {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Db::mysql()).await })*
        }
    };
}

contract!(
    entity_round_trip_keeps_statuses_in_their_columns,
    failed_write_rolls_back,
    filters_counts_links_and_creation_order,
    update_and_delete,
    conditional_transitions_have_one_winner_under_concurrency,
    amphora_spare_is_taken_once,
    jobs_are_claimed_once_and_reclaimed_after_the_lease,
    ended_jobs_go_into_the_history_with_their_steps,
    jobs_of_one_load_balancer_run_in_order_and_the_lock_passes_on,
    jobs_that_do_not_lock_leave_the_lock_where_it_is,
    concurrent_claimers_never_run_one_job_twice,
    quota_is_never_exceeded_by_parallel_creates,
    duty_rounds_in_parallel_post_once,
    quotas_stats_and_health,
    heartbeat_batches_of_two_health_managers_count_each_sequence_once,
    status_moves_sent_together_each_count_their_rows,
    a_vip_intent_ends_once,
    purge_removes_only_old_deleted_records,
    schema_is_current_and_a_newer_one_is_refused,
    catalog_objects_and_their_references,
    a_version_5_schema_is_upgraded_to_the_catalog,
);

fn lb(project: &str) -> LoadBalancer {
    LoadBalancer {
        id: new_id(),
        name: "x".into(),
        description: "ü \"quoted\"".into(),
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

fn amphora(status: AmphoraStatus) -> Amphora {
    Amphora {
        id: new_id(),
        loadbalancer_id: None,
        compute_id: None,
        lb_network_ip: None,
        vrrp_ip: None,
        ha_ip: None,
        vrrp_port_id: None,
        ha_port_id: None,
        cert_expiration: None,
        cert_busy: false,
        role: None,
        status,
        vrrp_interface: None,
        vrrp_id: None,
        vrrp_priority: None,
        cached_zone: None,
        created_at: time::now(),
        updated_at: None,
        image_id: None,
        compute_flavor: None,
    }
}

fn by_project(p: &str) -> Filter<'_> {
    Filter {
        project: Some(p),
        ..Default::default()
    }
}

async fn entity_round_trip_keeps_statuses_in_their_columns(db: Db) {
    let s = &db.store;
    let a = lb("p1");
    let rt = s
        .write(|tx| -> Result<_, StoreError> {
            tx.insert(&a)?;
            tx.set_status(
                Table::LoadBalancers,
                &[a.id],
                Some(ProvisioningStatus::Active),
                Some(OperatingStatus::Online),
            )?;
            tx.get::<LoadBalancer>(a.id)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rt.provisioning_status, ProvisioningStatus::Active);
    assert_eq!(rt.operating_status, OperatingStatus::Online);
    assert!(rt.updated_at.is_some());
    assert_eq!((rt.tags, rt.description), (a.tags, a.description));
    // The wire document carries the columns' statuses, once each.
    let raw = s
        .read(|tx| tx.list_raw::<LoadBalancer>(&by_project("p1")))
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&raw[0].3).unwrap();
    assert_eq!(doc["provisioning_status"], "ACTIVE");
    assert_eq!(doc["operating_status"], "ONLINE");
    assert_eq!(raw[0].3.matches("provisioning_status").count(), 1);
    let amp = amphora(AmphoraStatus::Ready);
    s.write(|tx| tx.insert(&amp)).await.unwrap();
    assert!(s
        .write(|tx| tx.amphora_transition(
            amp.id,
            &[AmphoraStatus::Ready],
            AmphoraStatus::Allocated
        ))
        .await
        .unwrap());
    let got = s
        .read(|tx| tx.get::<Amphora>(amp.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.status, AmphoraStatus::Allocated);
}

async fn failed_write_rolls_back(db: Db) {
    let s = &db.store;
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
    // The connection is fit for the next transaction.
    s.write(|tx| tx.insert(&a)).await.unwrap();
}

async fn filters_counts_links_and_creation_order(db: Db) {
    let s = &db.store;
    let lbs: Vec<LoadBalancer> = (0..5)
        .map(|i| lb(if i % 2 == 0 { "even" } else { "odd" }))
        .collect();
    s.write(|tx| -> Result<(), StoreError> {
        for l in &lbs {
            tx.insert(l)?;
        }
        tx.set_status(
            Table::LoadBalancers,
            &[lbs[4].id],
            Some(ProvisioningStatus::Deleted),
            None,
        )?;
        Ok(())
    })
    .await
    .unwrap();
    let (even, even_live, odd, all, links, upper) = s
        .read(|tx| -> Result<_, StoreError> {
            Ok((
                tx.list::<LoadBalancer>(&by_project("even"))?,
                tx.count::<LoadBalancer>(&Filter {
                    project: Some("even"),
                    live_only: true,
                    ..Default::default()
                })?,
                tx.count::<LoadBalancer>(&by_project("odd"))?,
                tx.list::<LoadBalancer>(&Filter::default())?,
                tx.links(
                    Table::LoadBalancers,
                    &Filter {
                        lb_id: Some(lbs[1].id),
                        ..Default::default()
                    },
                )?,
                tx.count::<LoadBalancer>(&by_project("EVEN"))?,
            ))
        })
        .await
        .unwrap();
    let ids = |v: &[LoadBalancer]| v.iter().map(|l| l.id).collect::<Vec<_>>();
    assert_eq!(ids(&even), vec![lbs[0].id, lbs[2].id, lbs[4].id]);
    assert_eq!((even_live, odd), (2, 2));
    // Creation order is the order pages are cut in.
    assert_eq!(ids(&all), ids(&lbs));
    assert_eq!(links, vec![(lbs[1].id, lbs[1].id)]);
    // Comparisons are exact, as on every backend (MySQL's default collation would say 3).
    assert_eq!(upper, 0);

    // Documents and the links of other rows in one statement, outside a transaction.
    let live_even = Filter {
        project: Some("even"),
        live_only: true,
        ..Default::default()
    };
    let odd = by_project("odd");
    let (docs, links) = s
        .read_single(|tx| {
            tx.list_raw_linked::<LoadBalancer>(&live_even, &[(Table::LoadBalancers, &odd)])
        })
        .await
        .unwrap();
    let doc_ids: Vec<Id> = docs.iter().map(|d| d.0).collect();
    assert_eq!(doc_ids, vec![lbs[0].id, lbs[2].id]);
    let doc: serde_json::Value = serde_json::from_str(&docs[0].3).unwrap();
    assert_eq!(doc["provisioning_status"], "PENDING_CREATE");
    assert_eq!(docs[0].1, "even");
    assert_eq!(
        links,
        vec![vec![(lbs[1].id, lbs[1].id), (lbs[3].id, lbs[3].id)]]
    );
    let tree = s.read_single(|tx| tx.lb_tree(lbs[1].id)).await.unwrap();
    assert_eq!(tree.loadbalancer.map(|l| l.id), Some(lbs[1].id));
    assert!(tree.listeners.is_empty() && tree.members.is_empty());
    let none = s.read_single(|tx| tx.lb_tree(new_id())).await.unwrap();
    assert!(none.loadbalancer.is_none());
    let two = s
        .read_single(|tx| -> Result<_, StoreError> {
            tx.count::<LoadBalancer>(&odd)?;
            tx.count::<LoadBalancer>(&odd)
        })
        .await;
    assert!(two.is_err(), "a second statement in a one-statement read");
}

async fn update_and_delete(db: Db) {
    let s = &db.store;
    let mut a = lb("p");
    s.write(|tx| tx.insert(&a)).await.unwrap();
    a.name = "renamed".into();
    a.provisioning_status = ProvisioningStatus::Active;
    assert!(s.write(|tx| tx.update(&a)).await.unwrap());
    let got = s
        .read(|tx| tx.get::<LoadBalancer>(a.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.name.as_str(), got.provisioning_status),
        ("renamed", ProvisioningStatus::Active)
    );
    assert!(s
        .read(|tx| tx.exists(Table::LoadBalancers, a.id))
        .await
        .unwrap());
    assert_eq!(
        s.write(|tx| tx.delete(Table::LoadBalancers, &[a.id]))
            .await
            .unwrap(),
        1
    );
    assert!(!s
        .read(|tx| tx.exists(Table::LoadBalancers, a.id))
        .await
        .unwrap());
    assert!(!s.write(|tx| tx.update(&a)).await.unwrap());
}

/// Retries a write the backend refused for contention (as a client retries a 503).
async fn write_retrying<T>(s: &Store, f: impl Fn(&Tx<'_>) -> Result<T, StoreError>) -> T {
    for _ in 0..50 {
        match s.write(&f).await {
            Err(e) if e.is_busy() => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            r => return r.unwrap(),
        }
    }
    panic!("still busy after 50 tries");
}

async fn conditional_transitions_have_one_winner_under_concurrency(db: Db) {
    let s = db.store.clone();
    let a = lb("p");
    s.write(|tx| tx.insert(&a)).await.unwrap();
    s.write(|tx| {
        tx.transition(
            Table::LoadBalancers,
            &[a.id],
            &[ProvisioningStatus::PendingCreate],
            ProvisioningStatus::Active,
        )
    })
    .await
    .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, b, id) = (s.clone(), barrier.clone(), a.id);
            tokio::spawn(async move {
                b.wait().await;
                write_retrying(&s, |tx| {
                    tx.transition(
                        Table::LoadBalancers,
                        &[id],
                        &[ProvisioningStatus::Active],
                        ProvisioningStatus::PendingUpdate,
                    )
                })
                .await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += t.await.unwrap();
    }
    assert_eq!(won, 1, "exactly one request locks the load balancer");
}

async fn amphora_spare_is_taken_once(db: Db) {
    let s = db.store.clone();
    let spare = amphora(AmphoraStatus::Ready);
    s.write(|tx| tx.insert(&spare)).await.unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                write_retrying(&s, |tx| {
                    let mut got = 0;
                    for id in tx.amphorae_in(AmphoraStatus::Ready, 4)? {
                        if tx.amphora_transition(
                            id,
                            &[AmphoraStatus::Ready],
                            AmphoraStatus::Allocated,
                        )? {
                            got += 1;
                        }
                    }
                    Ok(got)
                })
                .await
            })
        })
        .collect();
    let mut taken = 0;
    for t in tasks {
        taken += t.await.unwrap();
    }
    assert_eq!(taken, 1);
}

async fn quota_is_never_exceeded_by_parallel_creates(db: Db) {
    let s = db.store.clone();
    const QUOTA: i64 = 3;
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (s, b) = (s.clone(), barrier.clone());
            tokio::spawn(async move {
                b.wait().await;
                // What the API does for a create: lock the project, count, insert.
                write_retrying(&s, |tx| {
                    tx.quota_lock("q")?;
                    if tx.count::<LoadBalancer>(&by_project("q"))? >= QUOTA {
                        return Ok(false);
                    }
                    tx.insert(&lb("q"))?;
                    Ok(true)
                })
                .await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        created += t.await.unwrap() as i64;
    }
    let n = s
        .read(|tx| tx.count::<LoadBalancer>(&by_project("q")))
        .await
        .unwrap();
    assert_eq!((created, n), (QUOTA, QUOTA));
}

async fn quotas_stats_and_health(db: Db) {
    let s = &db.store;
    let q = Quota {
        loadbalancer: Some(5),
        member: Some(-1),
        ..Default::default()
    };
    s.write(|tx| tx.quota_set("p", &q)).await.unwrap();
    s.write(|tx| {
        tx.quota_set(
            "p",
            &Quota {
                listener: Some(2),
                ..q.clone()
            },
        )
    })
    .await
    .unwrap();
    let got = s.read(|tx| tx.quota_get("p")).await.unwrap().unwrap();
    assert_eq!(got.listener, Some(2));
    assert_eq!(s.read(|tx| tx.quota_list()).await.unwrap().len(), 1);
    s.write(|tx| tx.quota_delete("p")).await.unwrap();
    assert!(s.read(|tx| tx.quota_get("p")).await.unwrap().is_none());

    let (l, a1, a2) = (new_id(), new_id(), new_id());
    let d = Stats {
        bytes_in: 10,
        bytes_out: 20,
        active_connections: 3,
        total_connections: 4,
        request_errors: 1,
    };
    for a in [a1, a1, a2] {
        s.write(|tx| tx.listener_stats_add(l, a, &d)).await.unwrap();
    }
    let sum = s.read(|tx| tx.listener_stats(l)).await.unwrap();
    assert_eq!(
        (
            sum.bytes_in,
            sum.bytes_out,
            sum.active_connections,
            sum.total_connections,
            sum.request_errors
        ),
        (30, 60, 6, 12, 3)
    );
    assert_eq!(
        s.read(|tx| tx.amphora_stats(a1)).await.unwrap()[0]
            .1
            .bytes_in,
        20
    );
    assert_eq!(
        s.read(|tx| tx.listener_stats(new_id())).await.unwrap(),
        Stats::default()
    );
    s.write(|tx| tx.listener_stats_delete(&[l])).await.unwrap();
    assert!(s.read(|tx| tx.amphora_stats(a1)).await.unwrap().is_empty());

    // Heartbeats: only allocated amphorae of load balancers are judged stale.
    let mut amp = amphora(AmphoraStatus::Allocated);
    let lb_id = new_id();
    amp.loadbalancer_id = Some(lb_id);
    let spare = amphora(AmphoraStatus::Ready);
    s.write(|tx| -> Result<(), StoreError> {
        tx.insert(&amp)?;
        tx.insert(&spare)?;
        assert!(tx.health_seen(amp.id, 1000, 7)?);
        assert!(tx.health_seen(amp.id, 2000, 8)?);
        // A replay, and an older heartbeat, count for nothing (on any health manager).
        assert!(!tx.health_seen(amp.id, 9000, 8)?);
        assert!(!tx.health_seen(amp.id, 9000, 5)?);
        assert!(tx.health_seen(spare.id, 1000, 1)?);
        Ok(())
    })
    .await
    .unwrap();
    let mut seqs = s.read(|tx| tx.health_sequences()).await.unwrap();
    seqs.sort();
    let mut want = vec![(amp.id, 8), (spare.id, 1)];
    want.sort();
    assert_eq!(seqs, want);
    assert!(s
        .read(|tx| tx.stale_amphorae(1500))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.read(|tx| tx.stale_amphorae(2500)).await.unwrap(),
        vec![(amp.id, lb_id)]
    );
    let job = new_id();
    s.write(|tx| tx.claim_put(job, "master", amp.id))
        .await
        .unwrap();
    s.write(|tx| tx.claim_put(job, "master", spare.id))
        .await
        .unwrap();
    assert_eq!(
        s.read(|tx| tx.claim_get(job, "master")).await.unwrap(),
        Some(spare.id)
    );
}

async fn a_vip_intent_ends_once(db: Db) {
    let s = &db.store;
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

async fn purge_removes_only_old_deleted_records(db: Db) {
    let s = &db.store;
    let old = time::now() - chrono::Duration::days(10);
    let mut gone = lb("p");
    gone.provisioning_status = ProvisioningStatus::Deleted;
    gone.updated_at = Some(old);
    let mut recent = lb("p");
    recent.provisioning_status = ProvisioningStatus::Deleted;
    let live = lb("p");
    let mut dead_amp = amphora(AmphoraStatus::Deleted);
    dead_amp.updated_at = Some(old);
    s.write(|tx| -> Result<(), StoreError> {
        for l in [&gone, &recent, &live] {
            tx.insert(l)?;
        }
        tx.insert(&dead_amp)?;
        tx.set_status(
            Table::LoadBalancers,
            &[recent.id],
            Some(ProvisioningStatus::Deleted),
            None,
        )?;
        tx.health_seen(dead_amp.id, 1, 1).map(drop)
    })
    .await
    .unwrap();
    let cutoff = time::now() - chrono::Duration::days(1);
    let (amps, lbs) = s
        .write(|tx| tx.purge_deleted(cutoff, cutoff))
        .await
        .unwrap();
    assert_eq!((amps, lbs), (1, 1));
    let left: HashSet<Id> = s
        .read(|tx| tx.list::<LoadBalancer>(&Filter::default()))
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(left, HashSet::from([recent.id, live.id]));
    assert!(s.read(|tx| tx.health_sequences()).await.unwrap().is_empty());
}

/// Two health managers counting batches of heartbeats of the same 600 amphorae (more than one
/// statement's worth) at once: every sequence number counts on one of them at most, no batch
/// fails (no deadlock between the row locks of the two), the newest wins, and counters of many
/// listeners add up in one call.
async fn heartbeat_batches_of_two_health_managers_count_each_sequence_once(db: Db) {
    let s = db.store.clone();
    let amps: Vec<Id> = (0..600).map(|_| new_id()).collect();
    let hm = |mut order: Vec<Id>, reverse: bool| {
        let s = s.clone();
        if reverse {
            order.reverse();
        }
        tokio::spawn(async move {
            let mut counted = Vec::new();
            for seq in 1..=12i64 {
                let beats: Vec<(Id, i64)> = order.iter().map(|a| (*a, seq)).collect();
                let got = write_retrying(&s, |tx| tx.health_seen_many(&beats, 1000 + seq)).await;
                counted.extend(got.into_iter().map(|a| (a, seq)));
            }
            counted
        })
    };
    let (a, b) = (hm(amps.clone(), false), hm(amps.clone(), true));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let a: HashSet<(Id, i64)> = a.into_iter().collect();
    let b: HashSet<(Id, i64)> = b.into_iter().collect();
    assert!(a.is_disjoint(&b), "a heartbeat counted on both");
    assert!(
        a.len() + b.len() >= 600,
        "each amphora counted at least once"
    );
    let seqs: std::collections::HashMap<Id, i64> = s
        .read(|tx| tx.health_sequences())
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(amps.iter().all(|x| seqs.get(x) == Some(&12)));
    // An older batch afterwards counts nothing.
    let old: Vec<(Id, i64)> = amps.iter().map(|x| (*x, 11)).collect();
    assert!(s
        .write(|tx| tx.health_seen_many(&old, 5000))
        .await
        .unwrap()
        .is_empty());

    let d = Stats {
        bytes_in: 1,
        bytes_out: 2,
        active_connections: 3,
        total_connections: 4,
        request_errors: 0,
    };
    let (l1, l2) = (new_id(), new_id());
    let rows: Vec<(Id, Id, Stats)> = amps
        .iter()
        .flat_map(|x| [(l1, *x, d), (l2, *x, d)])
        .collect();
    for _ in 0..2 {
        s.write(|tx| tx.listener_stats_add_many(&rows))
            .await
            .unwrap();
    }
    let sum = s.read(|tx| tx.listener_stats(l1)).await.unwrap();
    assert_eq!(
        (
            sum.bytes_in,
            sum.bytes_out,
            sum.active_connections,
            sum.total_connections
        ),
        (1200, 2400, 1800, 4800)
    );
}

/// The server closes every connection of the store (a restart): the next write and the next
/// one-statement read succeed on new connections, without an error to the caller.
async fn connections_closed_by_the_server_are_replaced(t: TempDb) {
    let s = Store::open(&t.target, &Options::default()).unwrap();
    let count = |s: &Store| {
        let s = s.clone();
        async move {
            s.read_single(|tx| tx.count::<LoadBalancer>(&by_project("p")))
                .await
                .unwrap()
        }
    };
    // Several connections in the pool.
    let writes: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.write(|tx| tx.insert(&lb("p"))).await.unwrap() })
        })
        .collect();
    for w in writes {
        w.await.unwrap();
    }
    assert_eq!(count(&s).await, 4);
    t.disconnect_all().unwrap();
    // The client side learns of a PostgreSQL termination from its connection task.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(count(&s).await, 4);
    s.write(|tx| tx.insert(&lb("p"))).await.unwrap();
    t.disconnect_all().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.write(|tx| tx.insert(&lb("p"))).await.unwrap();
    assert_eq!(count(&s).await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_connections_closed_by_the_server_are_replaced() {
    connections_closed_by_the_server_are_replaced(TempDb::postgres().expect("PostgreSQL")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_connections_closed_by_the_server_are_replaced() {
    connections_closed_by_the_server_are_replaced(TempDb::mysql().expect("MySQL/MariaDB")).await
}

/// `Tx::transitions` (pipelined on PostgreSQL): each move changes only the rows in its `from`
/// states and reports its own count; an operating status is set only on the rows moved.
async fn status_moves_sent_together_each_count_their_rows(db: Db) {
    let s = &db.store;
    let (mut a, mut b) = (lb("p"), lb("p"));
    a.provisioning_status = ProvisioningStatus::PendingUpdate;
    b.provisioning_status = ProvisioningStatus::Active;
    s.write(|tx| -> Result<(), StoreError> {
        tx.insert(&a)?;
        tx.insert(&b)
    })
    .await
    .unwrap();
    let pending = [ProvisioningStatus::PendingUpdate];
    let mut c = lb("p");
    c.provisioning_status = ProvisioningStatus::PendingUpdate;
    c.admin_state_up = false;
    s.write(|tx| tx.insert(&c)).await.unwrap();
    let mv = |key: Id| Move {
        table: Table::LoadBalancers,
        by_lb: false,
        key,
        from: &pending,
        to: ProvisioningStatus::Active,
        op: Some(OperatingStatus::Online),
        offline_if_disabled: true,
    };
    let counts = s
        .write(|tx| tx.transitions(&[mv(a.id), mv(b.id), mv(new_id()), mv(c.id)]))
        .await
        .unwrap();
    assert_eq!(counts, vec![1, 0, 0, 1]);
    let gc = s
        .read(|tx| tx.get::<LoadBalancer>(c.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (gc.provisioning_status, gc.operating_status),
        (ProvisioningStatus::Active, OperatingStatus::Offline),
        "a disabled object goes OFFLINE"
    );
    let got = |id| async move {
        s.read(|tx| tx.get::<LoadBalancer>(id))
            .await
            .unwrap()
            .unwrap()
    };
    let (ga, gb) = (got(a.id).await, got(b.id).await);
    assert_eq!(
        (ga.provisioning_status, ga.operating_status),
        (ProvisioningStatus::Active, OperatingStatus::Online)
    );
    assert_eq!(
        gb.operating_status, b.operating_status,
        "not moved, not touched"
    );
    assert_eq!(gb.updated_at, None);
}
