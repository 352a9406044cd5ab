//! The partition side of transactions through the handlers: a transactional
//! Produce opens a transaction, WriteTxnMarkers closes it (with Kafka's
//! per-partition errors), DescribeProducers shows the producer.

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, ProduceRequest, ProducerId as WireProducerId, TopicName,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::{Offset, ProducerEpoch, ProducerId};

use crate::broker::Broker;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const TRANSACTION_COORDINATOR_FENCED: i16 = 52;

fn name(n: &str) -> TopicName {
    TopicName(StrBytes::from_string(n.to_owned()))
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, records: usize) -> bytes::Bytes {
    let mut b = BatchBuilder::new()
        .producer(ProducerId(pid), ProducerEpoch(epoch), seq)
        .transactional(true);
    for _ in 0..records {
        b.push(NewRecord::new(super::produce::now_ms(), None, Some(b"v")));
    }
    bytes::Bytes::from(b.build().expect("batch"))
}

async fn produce(broker: &Broker, records: bytes::Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(
            StrBytes::from_static_str("tx"),
        )))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("t"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let r = super::produce::handle(broker, request, 11).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn markers(
    broker: &Broker,
    pid: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    topics: &[(&str, Vec<i32>)],
) -> WriteTxnMarkersResponse {
    let marker = WritableTxnMarker::default()
        .with_producer_id(WireProducerId(pid))
        .with_producer_epoch(epoch)
        .with_transaction_result(commit)
        .with_coordinator_epoch(coordinator_epoch)
        .with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(name(t))
                        .with_partition_indexes(ps.clone())
                })
                .collect(),
        );
    super::write_txn_markers::handle(
        broker,
        WriteTxnMarkersRequest::default().with_markers(vec![marker]),
        1,
    )
    .await
}

fn codes(r: &WriteTxnMarkersResponse) -> Vec<Vec<i16>> {
    r.markers[0]
        .topics
        .iter()
        .map(|t| t.partitions.iter().map(|p| p.error_code).collect())
        .collect()
}

#[test]
fn markers_close_transactions_and_fence_old_epochs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, topic) = super::version_tests::cluster(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let log = broker.partition(topic.id, 0).expect("partition").log();
        assert_eq!(produce(&broker, txn_batch(7, 0, 0, 3)).await, (0, 0));
        assert_eq!(log.first_unstable_offset(), Some(Offset(0)));
        assert_eq!(log.last_stable_offset(log.log_end_offset()), Offset(0));

        let r = markers(
            &broker,
            7,
            0,
            false,
            4,
            &[("t", vec![0, 5]), ("nope", vec![0])],
        )
        .await;
        assert_eq!(
            codes(&r),
            vec![
                vec![0, UNKNOWN_TOPIC_OR_PARTITION],
                vec![UNKNOWN_TOPIC_OR_PARTITION]
            ]
        );
        assert_eq!(r.markers[0].producer_id.0, 7);
        assert_eq!(log.log_end_offset(), Offset(4), "the marker took offset 3");
        assert_eq!(log.first_unstable_offset(), None);
        let aborted = log
            .aborted_transactions(Offset(0), log.log_end_offset())
            .expect("aborted transactions");
        assert_eq!(aborted.len(), 1);
        assert_eq!(
            (
                aborted[0].producer_id,
                aborted[0].first_offset,
                aborted[0].last_offset
            ),
            (ProducerId(7), Offset(0), Offset(3))
        );

        // The next transaction at a bumped epoch; a zombie coordinator's
        // marker (older producer epoch, or older coordinator epoch) is refused.
        assert_eq!(produce(&broker, txn_batch(7, 1, 0, 2)).await, (0, 4));
        let r = markers(&broker, 7, 0, true, 4, &[("t", vec![0])]).await;
        assert_eq!(codes(&r), vec![vec![INVALID_PRODUCER_EPOCH]]);
        let r = markers(&broker, 7, 1, true, 3, &[("t", vec![0])]).await;
        assert_eq!(codes(&r), vec![vec![TRANSACTION_COORDINATOR_FENCED]]);
        assert_eq!(log.first_unstable_offset(), Some(Offset(4)));

        let described = super::describe_producers::handle(
            &broker,
            DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                .with_name(name("t"))
                .with_partition_indexes(vec![0, 9])]),
            0,
        );
        let parts = &described.topics[0].partitions;
        assert_eq!(parts[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
        let p = &parts[0].active_producers[0];
        assert_eq!(
            (
                p.producer_id.0,
                p.producer_epoch,
                p.last_sequence,
                p.coordinator_epoch
            ),
            (7, 1, 1, 4)
        );
        assert_eq!(p.current_txn_start_offset, 4);

        let r = markers(&broker, 7, 1, true, 4, &[("t", vec![0])]).await;
        assert_eq!(codes(&r), vec![vec![0]]);
        assert_eq!(log.first_unstable_offset(), None);
        assert_eq!(
            log.aborted_transactions(Offset(4), log.log_end_offset())
                .expect("aborted transactions")
                .len(),
            0
        );
    });
}

async fn fetch(
    broker: &std::sync::Arc<Broker>,
    isolation: i8,
) -> (i64, i64, Option<Vec<(i64, i64)>>, usize) {
    fetch_waiting(broker, isolation, 0).await
}

/// A fetch from offset 0 that waits up to `max_wait_ms` for one byte.
async fn fetch_waiting(
    broker: &std::sync::Arc<Broker>,
    isolation: i8,
    max_wait_ms: i32,
) -> (i64, i64, Option<Vec<(i64, i64)>>, usize) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let request = kafka_protocol::messages::FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(i32::from(max_wait_ms > 0))
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name("t"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let (r, _) = super::fetch::handle(broker, &super::Ctx::anonymous(), request, 12).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let aborted = p.aborted_transactions.as_ref().map(|a| {
        a.iter()
            .map(|t| (t.producer_id.0, t.first_offset))
            .collect()
    });
    let bytes = p.records.as_ref().map_or(0, |b| b.len());
    (p.high_watermark, p.last_stable_offset, aborted, bytes)
}

fn latest(broker: &Broker, isolation: i8) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let request = kafka_protocol::messages::ListOffsetsRequest::default()
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    super::list_offsets::handle(broker, request, 9).topics[0].partitions[0].offset
}

/// read_committed Fetch stops at the last stable offset and lists the aborted
/// transactions of what it returns; ListOffsets LATEST answers the LSO.
#[test]
fn read_committed_stops_at_the_lso_and_reports_aborted_transactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, _) = super::version_tests::cluster(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        assert_eq!(produce(&broker, txn_batch(7, 0, 0, 3)).await, (0, 0));
        let mut plain = BatchBuilder::new();
        plain.push(NewRecord::new(super::produce::now_ms(), None, Some(b"p")));
        let plain = bytes::Bytes::from(plain.build().expect("batch"));
        assert_eq!(produce(&broker, plain).await, (0, 3));

        // The open transaction holds read_committed at offset 0.
        assert_eq!(fetch(&broker, 1).await, (4, 0, Some(vec![]), 0));
        let (hw, lso, aborted, bytes) = fetch(&broker, 0).await;
        assert_eq!((hw, lso, aborted), (4, 0, None));
        assert!(bytes > 0, "read_uncommitted sees the open transaction");
        assert_eq!((latest(&broker, 1), latest(&broker, 0)), (0, 4));

        let r = markers(&broker, 7, 0, false, 0, &[("t", vec![0])]).await;
        assert_eq!(codes(&r), vec![vec![0]]);
        let (hw, lso, aborted, bytes) = fetch(&broker, 1).await;
        assert_eq!((hw, lso, aborted), (5, 5, Some(vec![(7, 0)])));
        assert!(bytes > 0);
        assert_eq!(latest(&broker, 1), 5);
    });
}

/// A parked read_committed fetch waits on the last stable offset: records
/// below the high watermark but inside an open transaction do not answer it;
/// the marker that closes the transaction does.
#[test]
fn a_parked_read_committed_fetch_wakes_when_the_marker_moves_the_lso() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, _) = super::version_tests::cluster(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        assert_eq!(produce(&broker, txn_batch(7, 0, 0, 2)).await, (0, 0));
        let started = std::time::Instant::now();
        let (_, (hw, lso, aborted, bytes)) = tokio::join!(
            async {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                let r = markers(&broker, 7, 0, true, 0, &[("t", vec![0])]).await;
                assert_eq!(codes(&r), vec![vec![0]]);
            },
            fetch_waiting(&broker, 1, 10_000)
        );
        let waited = started.elapsed();
        assert!(
            waited >= std::time::Duration::from_millis(300),
            "answered before the marker"
        );
        assert!(
            waited < std::time::Duration::from_secs(5),
            "woken by the marker"
        );
        assert_eq!((hw, lso, aborted), (3, 3, Some(vec![])));
        assert!(bytes > 0);
    });
}

/// Kafka answers DescribeProducers from every replica that hosts the log,
/// follower or leader (`kafka-transactions.sh find-hanging --broker-id N`
/// asks broker N about every partition it holds a replica of); only a broker
/// without the replica answers NOT_LEADER_OR_FOLLOWER.
#[test]
fn a_follower_describes_its_producers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, topic) = super::version_tests::cluster(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        assert_eq!(produce(&broker, txn_batch(7, 0, 0, 3)).await, (0, 0));
    });
    let part = broker.partition(topic.id, 0).expect("partition");
    let me = samsa_model::BrokerId(1);
    let other = samsa_model::BrokerId(2);
    part.apply_image(
        &samsa_metadata::PartitionImage {
            index: samsa_model::PartitionIndex(0),
            replicas: vec![other, me],
            isr: vec![other, me],
            leader: other,
            leader_epoch: samsa_model::LeaderEpoch(5),
            partition_epoch: 5,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            directories: Vec::new(),
        },
        0,
    );
    assert!(!part.is_leader());

    let described = super::describe_producers::handle(
        &broker,
        DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(name("t"))
            .with_partition_indexes(vec![0])]),
        0,
    );
    let p = &described.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "a follower refused DescribeProducers");
    let producers: Vec<(i64, i32, i64)> = p
        .active_producers
        .iter()
        .map(|s| {
            (
                s.producer_id.0,
                s.producer_epoch,
                s.current_txn_start_offset,
            )
        })
        .collect();
    assert_eq!(producers, vec![(7, 0, 0)]);
}
