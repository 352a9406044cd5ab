//! Metadata apply (`Broker::reconcile`) touches only the partitions a
//! metadata change concerns, and does its disk work without stalling the
//! runtime worker it was called on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{create, open};

/// A change to one topic re-applies that topic's partitions only: the
/// partitions of other topics keep their settings object (before, every
/// reconcile re-resolved and replaced the settings and re-applied the role
/// of every hosted partition).
#[test]
fn a_change_to_one_topic_leaves_the_others_alone() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    create(&broker, "quiet", 50);
    create(&broker, "busy", 2);
    broker.reconcile().unwrap();
    let image = broker.image();
    let quiet = image.topic("quiet").unwrap().id;
    let busy = image.topic("busy").unwrap().id;
    let before: Vec<_> = (0..50)
        .map(|p| broker.partition(quiet, p).unwrap().settings())
        .collect();
    let busy_before = broker.partition(busy, 0).unwrap().settings();

    broker
        .controller
        .alter_topic_configs(
            "busy",
            &[("retention.ms".into(), Some("1000".into()))],
            false,
        )
        .unwrap();
    create(&broker, "new", 3);
    broker.reconcile().unwrap();

    for (p, settings) in before.iter().enumerate() {
        let now = broker.partition(quiet, p as i32).unwrap().settings();
        assert!(
            Arc::ptr_eq(settings, &now),
            "partition quiet-{p} was re-applied by a change to another topic"
        );
    }
    let busy_now = broker.partition(busy, 0).unwrap().settings();
    assert!(
        !Arc::ptr_eq(&busy_before, &busy_now),
        "the changed topic is applied"
    );
    assert_eq!(busy_now.retention_ms, 1000);
    assert!(broker
        .partition(broker.image().topic("new").unwrap().id, 2)
        .is_some());

    // A deleted topic's partitions go; the others stay untouched.
    broker.controller.delete_topic(Some("busy"), None).unwrap();
    broker.reconcile().unwrap();
    assert!(broker.partition(busy, 0).is_none());
    assert!(Arc::ptr_eq(
        &before[0],
        &broker.partition(quiet, 0).unwrap().settings()
    ));
}

/// Opening a few hundred partition logs in a reconcile does not hold the
/// runtime worker it was called on: with a one-worker runtime, another task
/// keeps running meanwhile (before, it waited until the reconcile ended).
#[test]
fn reconcile_does_not_stall_the_runtime_worker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    // The topic exists in the image only: its logs are opened below.
    broker
        .controller
        .create_topics(
            vec![samsa_metadata::NewTopic {
                name: "many".into(),
                num_partitions: 300,
                replication_factor: 1,
                ..Default::default()
            }],
            false,
        )
        .remove(0)
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let reconciling = Arc::new(AtomicBool::new(false));
    let ticks_while_reconciling = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let (r, t) = (reconciling.clone(), ticks_while_reconciling.clone());
        let ticker = tokio::spawn(async move {
            for _ in 0..20_000 {
                if r.load(Ordering::Acquire) {
                    t.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let (b, r) = (broker.clone(), reconciling.clone());
        let reconcile = tokio::spawn(async move {
            r.store(true, Ordering::Release);
            let result = b.reconcile();
            r.store(false, Ordering::Release);
            result
        });
        reconcile.await.unwrap().unwrap();
        ticker.abort();
    });
    let image = broker.image();
    let many = image.topic("many").unwrap().id;
    assert!((0..300).all(|p| broker.partition(many, p).is_some()));
    assert!(
        ticks_while_reconciling.load(Ordering::Relaxed) > 0,
        "no other task ran on the runtime while the reconcile opened 300 logs"
    );
}
