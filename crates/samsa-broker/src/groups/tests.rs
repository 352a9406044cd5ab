//! The sharded coordinator service on a single-node broker: background loads
//! answered COORDINATOR_LOAD_IN_PROGRESS, shards independent of each other,
//! and committed offsets readable only once replicated.

use std::sync::Arc;
use std::time::Duration;

use samsa_coordinator as gc;
use samsa_metadata::config::StaticConfig;
use samsa_metadata::{BrokerRegistration, NewTopic};
use samsa_model::BrokerId;

use samsa_coordinator::codes;

use super::*;
use crate::settings::BrokerSettings;

/// How long a test waits for something the broker does in the background.
const BACKGROUND_WAIT: Duration = Duration::from_secs(20);

pub(super) fn open(dir: &std::path::Path, partitions: u32) -> Arc<Broker> {
    let mut cfg = StaticConfig::default();
    cfg.set("log.dirs", &dir.display().to_string()).unwrap();
    cfg.set("listeners", "PLAINTEXT://127.0.0.1:0").unwrap();
    cfg.set("offsets.topic.num.partitions", &partitions.to_string())
        .unwrap();
    cfg.set("group.initial.rebalance.delay.ms", "0").unwrap();
    let cfg = Arc::new(cfg);
    Broker::open(BrokerSettings::from_config(&cfg).unwrap(), cfg).unwrap()
}

/// A group id whose `__consumer_offsets` partition is `partition`.
fn group_on(broker: &Broker, partition: u32) -> String {
    (0..)
        .map(|i| format!("group-{i}"))
        .find(|g| broker.groups.partition_for(g) == partition)
        .unwrap()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + BACKGROUND_WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A simple (generation -1) commit of `offset` for partition 0 of topic "t".
async fn commit(broker: &Broker, group: &str, offset: i64) -> i16 {
    let req = gc::OffsetCommitRequest {
        api_version: 8,
        group_id: group.into(),
        generation_id_or_member_epoch: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_time_ms: -1,
        topics: vec![gc::OffsetCommitTopic {
            name: "t".into(),
            topic_id: None,
            partitions: vec![gc::OffsetCommitPartition {
                partition_index: 0,
                committed_offset: offset,
                committed_leader_epoch: -1,
                committed_metadata: None,
            }],
        }],
    };
    match broker
        .groups
        .call(broker, group, move |c, _, now, token| {
            c.offset_commit(req, now, token)
        })
        .await
    {
        Some(gc::Response::OffsetCommit(r)) => r.topics[0].partitions[0].error_code,
        other => panic!("{other:?}"),
    }
}

/// OffsetFetch of partition 0 of "t": (offset, error).
async fn fetch(broker: &Broker, group: &str) -> (i64, i16) {
    let ids = vec![group.to_string()];
    let r = broker
        .groups
        .read_groups(broker, &ids, |c, _, part| {
            c.offset_fetch(&gc::OffsetFetchRequest {
                api_version: 8,
                groups: vec![gc::OffsetFetchGroup {
                    group_id: part[0].clone(),
                    member_id: None,
                    member_epoch: -1,
                    topics: Some(vec![gc::OffsetFetchTopic {
                        name: "t".into(),
                        partition_indexes: vec![0],
                    }]),
                }],
                require_stable: false,
            })
        })
        .await;
    let g = &r[0].groups[0];
    if g.error_code != gc::codes::NONE {
        return (-1, g.error_code);
    }
    (g.topics[0].partitions[0].committed_offset, codes::NONE)
}

/// FindCoordinator v4 for `group`: (node id, error code).
fn find_coordinator(broker: &Arc<Broker>, group: &str) -> (i32, i16) {
    use kafka_protocol::messages::FindCoordinatorRequest;
    let ctx = crate::handlers::Ctx {
        peer: "127.0.0.1:1".parse().unwrap(),
        client_id: "test".into(),
        listener: "PLAINTEXT".into(),
        principal: std::sync::Arc::new(samsa_security::KafkaPrincipal::anonymous()),
    };
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![kafka_protocol::protocol::StrBytes::from_string(
            group.to_string(),
        )]);
    let r = crate::handlers::find_coordinator::handle(broker, &ctx, request, 4);
    let c = &r.coordinators[0];
    (c.node_id.0, c.error_code)
}

fn start(broker: &Arc<Broker>) -> tokio::sync::watch::Sender<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(broker.groups.clone().run_timers(broker.clone(), rx));
    tx
}

/// While one `__consumer_offsets` partition is still being replayed (held
/// here by a gate, as a large partition would be), its groups are answered
/// COORDINATOR_LOAD_IN_PROGRESS — commits, fetches, joins — while FindCoordinator
/// already names this broker (Kafka names the partition leader), and the
/// groups of another partition are served meanwhile. (Before sharding one mutex covered every replay: all
/// groups waited for the slowest partition.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loading_partition_answers_load_in_progress_and_blocks_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 4);
    assert!(broker.groups.ensure_offsets_topic(&broker));
    let slow = group_on(&broker, 0);
    let fast = group_on(&broker, 2);
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    broker
        .groups
        .runtime
        .load_gate
        .lock()
        .unwrap()
        .insert(0, gate.clone());
    let stop = start(&broker);

    until("the other partitions to load", || {
        broker.groups.serves(&fast)
    })
    .await;
    assert!(!broker.groups.serves(&slow));
    // Kafka names the partition leader while it loads.
    assert_eq!(
        find_coordinator(&broker, &slow),
        (broker.settings.node_id.get(), codes::NONE)
    );
    assert_eq!(commit(&broker, &fast, 7).await, codes::NONE);
    assert_eq!(fetch(&broker, &fast).await, (7, codes::NONE));
    assert_eq!(
        commit(&broker, &slow, 5).await,
        codes::COORDINATOR_LOAD_IN_PROGRESS
    );
    assert_eq!(
        fetch(&broker, &slow).await.1,
        codes::COORDINATOR_LOAD_IN_PROGRESS
    );
    let join = gc::JoinGroupRequest {
        api_version: 5,
        group_id: slow.clone(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![gc::JoinGroupProtocol {
            name: "range".into(),
            metadata: bytes::Bytes::new(),
        }],
        ..Default::default()
    };
    let r = broker
        .groups
        .call(&broker, &slow, move |c, _, now, token| {
            c.join_group(join, now, token)
        })
        .await
        .unwrap();
    assert_eq!(r.error_code(), codes::COORDINATOR_LOAD_IN_PROGRESS);
    // The empty group id hashes to the loading partition but is refused
    // before any partition is involved, as in Kafka.
    assert_eq!(broker.groups.partition_for(""), 0);
    assert_eq!(commit(&broker, "", 5).await, codes::INVALID_GROUP_ID);
    assert_eq!(fetch(&broker, "").await.1, codes::INVALID_GROUP_ID);

    gate.add_permits(1);
    until("the gated partition to load", || {
        broker.groups.serves(&slow)
    })
    .await;
    assert_eq!(commit(&broker, &slow, 5).await, codes::NONE);
    assert_eq!(fetch(&broker, &slow).await, (5, codes::NONE));
    let _ = stop.send(true);
}

/// Kafka's pending offsets: with `__consumer_offsets` replicated to a second
/// broker that has not fetched yet, a commit is not visible to OffsetFetch
/// (another client reading it back could otherwise see an offset that a
/// failover loses) and its reply waits; once the follower has the record, the
/// commit is answered and visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_visible_only_once_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 1);
    let me = broker.settings.node_id;
    let follower = BrokerId(me.get() + 1);
    broker
        .controller
        .register_broker(BrokerRegistration {
            id: follower,
            host: "127.0.0.1".into(),
            port: 1,
            rack: None,
            listeners: vec![],
            incarnation: "follower".into(),
            fenced: false,
            ..Default::default()
        })
        .unwrap();
    let created = broker.controller.create_topics(
        vec![NewTopic {
            name: OFFSETS_TOPIC.into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: vec![vec![me, follower]],
            configs: vec![("cleanup.policy".into(), Some("compact".into()))],
        }],
        false,
    );
    assert!(created[0].is_ok(), "{created:?}");
    broker.reconcile().unwrap();
    let stop = start(&broker);
    let group = group_on(&broker, 0);
    until("the partition to load", || broker.groups.serves(&group)).await;

    let b = broker.clone();
    let g = group.clone();
    let committing = tokio::spawn(async move { commit(&b, &g, 42).await });
    let part =
        crate::coordinator_runtime::log::internal_partition(&broker, OFFSETS_TOPIC, 0).unwrap();
    until("the commit's append", || {
        part.log().log_end_offset().get() > 0
    })
    .await;
    assert_eq!(
        fetch(&broker, &group).await,
        (-1, codes::NONE),
        "an unreplicated commit is not read back"
    );
    assert!(!committing.is_finished(), "answered before replication");

    let end = part.log().log_end_offset().get();
    part.follower_fetched(follower, -1, None, end, now_ms().get())
        .unwrap();
    broker.notify_hw(&part);
    assert_eq!(committing.await.unwrap(), codes::NONE);
    assert_eq!(fetch(&broker, &group).await, (42, codes::NONE));
    let _ = stop.send(true);
}
