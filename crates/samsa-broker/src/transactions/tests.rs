//! The transaction coordinator service on a real broker: FindCoordinator for
//! transactional ids, InitProducerId through the handler, and reload of
//! `__transaction_state` after a restart.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{FindCoordinatorRequest, InitProducerIdRequest, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use samsa_metadata::config::StaticConfig;

use super::*;
use crate::settings::BrokerSettings;
use kafka_protocol::error::ResponseError;

/// How long a test waits for something the broker does in the background.
const BACKGROUND_WAIT: Duration = Duration::from_secs(20);

fn open(dir: &std::path::Path) -> Arc<Broker> {
    let mut cfg = StaticConfig::default();
    cfg.set("log.dirs", &dir.display().to_string()).unwrap();
    cfg.set("listeners", "PLAINTEXT://127.0.0.1:0").unwrap();
    cfg.set("transaction.state.log.num.partitions", "3")
        .unwrap();
    let cfg = Arc::new(cfg);
    Broker::open(BrokerSettings::from_config(&cfg).unwrap(), cfg).unwrap()
}

fn start(broker: &Arc<Broker>) -> tokio::sync::watch::Sender<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(broker.transactions.clone().run(broker.clone(), rx));
    tx
}

/// FindCoordinator v4 with key type 1 (TRANSACTION): (node id, error code).
pub(crate) fn find_coordinator(broker: &Arc<Broker>, id: &str) -> (i32, i16) {
    let ctx = crate::handlers::Ctx {
        peer: "127.0.0.1:1".parse().unwrap(),
        client_id: "test".into(),
        listener: "PLAINTEXT".into(),
        principal: std::sync::Arc::new(samsa_security::KafkaPrincipal::anonymous()),
    };
    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_string(id.to_string())]);
    let r = crate::handlers::find_coordinator::handle(broker, &ctx, request, 4);
    (r.coordinators[0].node_id.0, r.coordinators[0].error_code)
}

pub(crate) async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + BACKGROUND_WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// InitProducerId v5 for `id`: (error code, producer id, epoch).
pub(crate) async fn init(broker: &Arc<Broker>, id: &str) -> (i16, i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.into()))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    let r = crate::handlers::init_producer_id::handle(broker, request, 5).await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// A transactional producer gets its id from the coordinator named by
/// FindCoordinator (which creates `__transaction_state`); a second
/// initialization of the same transactional id keeps the id and bumps the
/// epoch (fencing the first), and a restarted broker reloads the
/// coordinator's state from `__transaction_state`, so the next
/// initialization continues from there instead of handing out a new id.
/// (Before: InitProducerId with a transactional id was INVALID_REQUEST and
/// FindCoordinator refused key type 1.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_ids_keep_their_producer_id_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (first_id, first_epoch) = {
        let broker = open(dir.path());
        let stop = start(&broker);
        let me = broker.settings.node_id.get();
        assert_eq!(find_coordinator(&broker, "tx-a"), (me, 0));
        assert!(broker
            .image()
            .topic(TRANSACTION_STATE_TOPIC)
            .is_some_and(|t| t.partitions.len() == 3));
        until("the coordinator to load", || {
            broker.transactions.serves("tx-a")
        })
        .await;
        let (code, id, epoch) = init(&broker, "tx-a").await;
        assert_eq!(code, 0);
        assert!(id >= 0);
        let (code, id2, epoch2) = init(&broker, "tx-a").await;
        assert_eq!(
            (code, id2),
            (0, id),
            "same transactional id, same producer id"
        );
        assert_eq!(epoch2, epoch + 1, "the epoch is bumped (fencing)");
        let (_, other, _) = init(&broker, "tx-b").await;
        assert_ne!(
            other, id,
            "another transactional id gets another producer id"
        );
        let _ = stop.send(true);
        // The shards' tasks end once the runtime closed them; then the data
        // directory's lock goes with the broker.
        until("the coordinator tasks to end", || {
            Arc::strong_count(&broker) == 1
        })
        .await;
        drop(broker);
        (id, epoch2)
    };
    let broker = open(dir.path());
    let stop = start(&broker);
    until("the coordinator to reload", || {
        broker.transactions.serves("tx-a")
    })
    .await;
    let (code, id, epoch) = init(&broker, "tx-a").await;
    assert_eq!(code, 0);
    assert_eq!(id, first_id, "reloaded from __transaction_state");
    assert_eq!(epoch, first_epoch + 1);
    let _ = stop.send(true);
}

/// ListTransactions v2 matches its transactional id pattern against whole
/// ids (as Kafka does) and refuses an invalid one with
/// INVALID_REGULAR_EXPRESSION; DescribeTransactions answers in request
/// order, an unknown id with TRANSACTIONAL_ID_NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_describe_transactions() {
    use kafka_protocol::messages::{DescribeTransactionsRequest, ListTransactionsRequest};
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let stop = start(&broker);
    assert_eq!(find_coordinator(&broker, "tx-a").1, 0);
    for id in ["tx-a", "tx-ab", "other"] {
        until("the coordinator to load", || broker.transactions.serves(id)).await;
        assert_eq!(init(&broker, id).await.0, 0);
    }
    let list = |pattern: Option<&str>| {
        ListTransactionsRequest::default()
            .with_duration_filter(-1)
            .with_transactional_id_pattern(pattern.map(|p| StrBytes::from_string(p.into())))
    };
    let ids = |r: &kafka_protocol::messages::ListTransactionsResponse| {
        r.transaction_states
            .iter()
            .map(|t| t.transactional_id.0.to_string())
            .collect::<Vec<_>>()
    };
    let all = crate::handlers::list_transactions::handle(&broker, list(None), 2).await;
    assert_eq!(ids(&all), ["other", "tx-a", "tx-ab"]);
    let some = crate::handlers::list_transactions::handle(&broker, list(Some("tx-a")), 2).await;
    assert_eq!((some.error_code, ids(&some)), (0, vec!["tx-a".to_string()]));
    let bad = crate::handlers::list_transactions::handle(&broker, list(Some("tx-(")), 2).await;
    assert_eq!(bad.error_code, 128, "INVALID_REGULAR_EXPRESSION");
    let described = crate::handlers::describe_transactions::handle(
        &broker,
        DescribeTransactionsRequest::default().with_transactional_ids(
            ["tx-ab", "nope", "tx-a"]
                .into_iter()
                .map(|i| TransactionalId(StrBytes::from_string(i.into())))
                .collect(),
        ),
        0,
    )
    .await;
    let got: Vec<(String, i16, String)> = described
        .transaction_states
        .iter()
        .map(|t| {
            (
                t.transactional_id.0.to_string(),
                t.error_code,
                t.transaction_state.to_string(),
            )
        })
        .collect();
    assert_eq!(got[0], ("tx-ab".into(), 0, "Empty".into()));
    assert_eq!((got[1].0.as_str(), got[1].1), ("nope", 105));
    assert_eq!(got[2], ("tx-a".into(), 0, "Empty".into()));
    let _ = stop.send(true);
}

/// Creates topic `t` (one partition).
pub(crate) fn create_topic_t(broker: &Broker) {
    let created = broker.controller.create_topics(
        vec![samsa_metadata::NewTopic {
            name: "t".into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        }],
        false,
    );
    assert!(created[0].is_ok(), "{created:?}");
    broker.reconcile().unwrap();
}

/// A Produce of one transactional batch of `pid`/`epoch` to partition 0 of `t`.
fn txn_produce(
    id: &str,
    pid: i64,
    epoch: i16,
    seq: i32,
) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use samsa_model::batch::{BatchBuilder, NewRecord};
    let mut b = BatchBuilder::new()
        .producer(ProducerId(pid), samsa_model::ProducerEpoch(epoch), seq)
        .transactional(true);
    b.push(NewRecord::new(
        crate::handlers::produce::now_ms(),
        Some(b"k"),
        Some(b"v"),
    ));
    let records = bytes::Bytes::from(b.build().unwrap());
    kafka_protocol::messages::ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.into()))))
        .with_acks(1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(kafka_protocol::messages::TopicName(
                StrBytes::from_static_str("t"),
            ))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

/// KIP-890: the leader asks the coordinator before a transaction's first
/// batch in a partition. A transaction version 1 producer that never added
/// the partition is refused (INVALID_TXN_STATE for Produce v10,
/// TRANSACTION_ABORTABLE for v11) and nothing is appended (no hanging
/// transaction); with Produce v12 and
/// `transaction.version` 2 the leader adds the partition to the
/// transaction itself, so the batch is appended and the transaction is
/// Ongoing with that partition (its markers will cover it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactions_first_batch_is_verified_with_its_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let stop = start(&broker);
    create_topic_t(&broker);
    assert_eq!(find_coordinator(&broker, "tx").1, 0);
    until("the coordinator to load", || {
        broker.transactions.serves("tx")
    })
    .await;
    let (code, pid, epoch) = init(&broker, "tx").await;
    assert_eq!(code, 0);
    let part = broker
        .partition_named(&broker.image(), "t", 0)
        .expect("partition t-0");

    for (version, error) in [
        (10, ResponseError::InvalidTxnState),
        (11, ResponseError::TransactionAbortable),
    ] {
        let req = txn_produce("tx", pid, epoch, 0);
        let refused = verify::verify_produce(&broker, &req, version, &Default::default()).await;
        let r = crate::handlers::produce::handle_verified(&broker, req, version, refused).await;
        assert_eq!(
            r.responses[0].partition_responses[0].error_code,
            error.code(),
            "Produce v{version}"
        );
        assert_eq!(part.log().log_end_offset().get(), 0, "nothing appended");
    }

    let req = txn_produce("tx", pid, epoch, 0);
    let refused = verify::verify_produce(&broker, &req, 12, &Default::default()).await;
    let r = crate::handlers::produce::handle_verified(&broker, req, 12, refused).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(part.log().log_end_offset().get(), 1);
    let p = broker.transactions.partition_for("tx");
    let described = broker
        .transactions
        .read(&broker, p, |c| c.describe_transactions(&["tx".to_string()]))
        .await;
    assert_eq!(described[0].state, "Ongoing");
    assert_eq!(described[0].topics, vec![("t".to_string(), vec![0])]);
    let _ = stop.send(true);
}

/// TxnOffsetCommit (version `version`) of `offset` for `t`-0 of group "g"
/// by `id`/`pid`/`epoch`, through the handler: the partition's error code.
pub(crate) async fn txn_offset_commit(
    broker: &Arc<Broker>,
    (id, pid, epoch): (&str, i64, i16),
    version: i16,
    offset: i64,
) -> i16 {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{GroupId, TopicName, TxnOffsetCommitRequest};
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id.into())))
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_producer_id(kafka_protocol::messages::ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let r = crate::handlers::txn_offset_commit::handle(broker, request, version).await;
    r.topics[0].partitions[0].error_code
}

/// KIP-890 for TxnOffsetCommit, as Kafka 4.x's group coordinator does it:
/// before a producer's offsets are appended to `__consumer_offsets`, the
/// transaction coordinator is asked whether the group's partition is in
/// the producer's ongoing transaction. A transaction version 1 producer
/// that never sent AddOffsetsToTxn is refused (INVALID_TXN_STATE for
/// TxnOffsetCommit v0–3, TRANSACTION_ABORTABLE for v4) and nothing is
/// appended, so no hanging transaction holds back the partition's last
/// stable offset; a stale epoch is INVALID_PRODUCER_EPOCH. After
/// AddOffsetsToTxn the commit goes through. TxnOffsetCommit v5 (transaction
/// version 2, where clients skip AddOffsetsToTxn) adds the partition to the
/// transaction itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_txn_offset_commit_is_verified_with_the_transaction_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let broker = {
        let mut cfg = StaticConfig::default();
        cfg.set("log.dirs", &dir.path().display().to_string())
            .unwrap();
        cfg.set("listeners", "PLAINTEXT://127.0.0.1:0").unwrap();
        cfg.set("transaction.state.log.num.partitions", "1")
            .unwrap();
        cfg.set("offsets.topic.num.partitions", "1").unwrap();
        let cfg = Arc::new(cfg);
        Broker::open(BrokerSettings::from_config(&cfg).unwrap(), cfg).unwrap()
    };
    let stop = start(&broker);
    tokio::spawn(
        broker
            .groups
            .clone()
            .run_timers(broker.clone(), stop.subscribe()),
    );
    create_topic_t(&broker);
    assert_eq!(find_coordinator(&broker, "tx").1, 0);
    assert!(broker.groups.ensure_offsets_topic(&broker));
    until("the coordinators to load", || {
        broker.transactions.serves("tx") && broker.groups.serves("g")
    })
    .await;
    let offsets = broker
        .partition_named(&broker.image(), crate::groups::OFFSETS_TOPIC, 0)
        .expect("__consumer_offsets-0");
    let (code, pid, epoch) = init(&broker, "tx").await;
    assert_eq!(code, 0);

    for (version, error) in [
        (3, ResponseError::InvalidTxnState),
        (4, ResponseError::TransactionAbortable),
    ] {
        assert_eq!(
            txn_offset_commit(&broker, ("tx", pid, epoch), version, 5).await,
            error.code(),
            "TxnOffsetCommit v{version} without AddOffsetsToTxn"
        );
        assert_eq!(offsets.log().log_end_offset().get(), 0, "nothing appended");
    }

    let add = kafka_protocol::messages::AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
        .with_producer_id(kafka_protocol::messages::ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(kafka_protocol::messages::GroupId(
            StrBytes::from_static_str("g"),
        ));
    let r = crate::handlers::add_offsets_to_txn::handle(&broker, add, 3).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        txn_offset_commit(&broker, ("tx", pid, epoch - 1), 3, 5).await,
        ResponseError::InvalidProducerEpoch.code(),
        "a stale epoch"
    );
    assert_eq!(
        txn_offset_commit(&broker, ("tx", pid, epoch), 3, 5).await,
        0
    );
    assert!(offsets.log().log_end_offset().get() > 0, "appended");

    // Transaction version 2: the group coordinator adds the partition.
    let (code, pid2, epoch2) = init(&broker, "tx2").await;
    assert_eq!(code, 0);
    assert_eq!(
        txn_offset_commit(&broker, ("tx2", pid2, epoch2), 5, 5).await,
        0
    );
    let p = broker.transactions.partition_for("tx2");
    let described = broker
        .transactions
        .read(&broker, p, |c| {
            c.describe_transactions(&["tx2".to_string()])
        })
        .await;
    assert_eq!(described[0].state, "Ongoing");
    assert_eq!(
        described[0].topics,
        vec![(crate::groups::OFFSETS_TOPIC.to_string(), vec![0])]
    );
    let _ = stop.send(true);
}
