//! The fields of the newest request versions samsa advertises (Kafka 4.1's
//! specs), each answered as Kafka 4.x answers it.

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId as WireBrokerId, DescribeClusterRequest,
    ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use samsa_metadata::{BrokerRegistration, NewTopic, TopicImage};
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::BrokerId;

use super::Ctx;
use crate::broker::Broker;

const INVALID_REPLICATION_FACTOR: i16 = 38;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// A one-broker cluster (node 1) with a second registered broker (node 2)
/// and topic `t` of one partition on node 1, served by this broker.
pub(super) fn cluster(dir: &std::path::Path) -> (Arc<Broker>, Arc<TopicImage>) {
    let broker = crate::test_support::broker_over(dir, |inner| Box::new(inner));
    broker
        .controller
        .register_broker(BrokerRegistration {
            id: BrokerId(2),
            host: "127.0.0.1".into(),
            port: 9093,
            incarnation: "two".into(),
            ..Default::default()
        })
        .expect("register node 2");
    let created = broker.controller.create_topics(
        vec![NewTopic {
            name: "t".into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: vec![vec![BrokerId(1)]],
            ..Default::default()
        }],
        false,
    );
    let topic = created
        .into_iter()
        .next()
        .and_then(Result::ok)
        .expect("topic t");
    broker.reconcile().expect("reconcile");
    (broker, topic)
}

fn ctx() -> Ctx {
    Ctx::anonymous()
}

fn batch(records: usize) -> bytes::Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        let key = format!("k{i}");
        b.push(NewRecord::new(
            super::produce::now_ms(),
            Some(key.as_bytes()),
            Some(b"v"),
        ));
    }
    bytes::Bytes::from(b.build().expect("batch"))
}

fn produce_to(topic: TopicProduceData) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![topic])
}

/// Produce v13 (KIP-516) names topics by id: the batch lands in the topic
/// with that id, the answer names it by id, and an unknown id is
/// UNKNOWN_TOPIC_ID (before, v13 was not advertised and the empty name
/// matched no topic).
#[test]
fn produce_v13_names_topics_by_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, topic) = cluster(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let partition = |records| {
        vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch(records)))]
    };
    let by_id = TopicProduceData::default()
        .with_topic_id(topic.id.0)
        .with_partition_data(partition(3));
    let response = rt.block_on(super::produce::handle(&broker, produce_to(by_id), 13));
    let t = &response.responses[0];
    assert_eq!(t.topic_id, topic.id.0);
    assert!(t.name.0.is_empty(), "v13 answers by id");
    assert_eq!(t.partition_responses[0].error_code, 0);
    assert_eq!(t.partition_responses[0].base_offset, 0);
    let part = broker.partition(topic.id, 0).expect("partition");
    assert_eq!(part.log().log_end_offset().get(), 3);

    let unknown = TopicProduceData::default()
        .with_topic_id(uuid::Uuid::from_u128(7))
        .with_partition_data(partition(1));
    let response = rt.block_on(super::produce::handle(&broker, produce_to(unknown), 13));
    let t = &response.responses[0];
    assert_eq!(t.topic_id, uuid::Uuid::from_u128(7));
    assert_eq!(t.partition_responses[0].error_code, UNKNOWN_TOPIC_ID);

    // v12 still names topics by name.
    let by_name = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_partition_data(partition(2));
    let response = rt.block_on(super::produce::handle(&broker, produce_to(by_name), 12));
    assert_eq!(response.responses[0].name.0.as_str(), "t");
    assert_eq!(response.responses[0].partition_responses[0].base_offset, 3);
}

/// ListOffsets v9 (KIP-1005) asks for the latest tiered offset (-5): with no
/// tiered storage Kafka answers offset -1 and leader epoch -1, no error
/// (before, samsa refused the timestamp with INVALID_REQUEST).
#[test]
fn list_offsets_latest_tiered_is_minus_one_without_tiered_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, _) = cluster(dir.path());
    let request = ListOffsetsRequest::default()
        .with_replica_id(WireBrokerId(-1))
        .with_timeout_ms(1_000)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-5)])]);
    let response = super::list_offsets::handle(&broker, request, 10);
    let p = &response.topics[0].partitions[0];
    assert_eq!((p.error_code, p.offset, p.leader_epoch), (0, -1, -1));
}

/// DescribeCluster v2 (KIP-1073) lists fenced brokers, marked, when the
/// request asks for them, and only then.
#[test]
fn describe_cluster_v2_lists_fenced_brokers_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, _) = cluster(dir.path());
    broker
        .controller
        .fence_broker(BrokerId(2))
        .expect("fence node 2");
    let listed = |version, include| {
        let request = DescribeClusterRequest::default()
            .with_endpoint_type(1)
            .with_include_fenced_brokers(include);
        super::describe_cluster::handle(&broker, &ctx(), request, version)
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.is_fenced))
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(2, true), vec![(1, false), (2, true)]);
    assert_eq!(listed(2, false), vec![(1, false)]);
    assert_eq!(listed(1, true), vec![(1, false)]);
}

/// AlterPartitionReassignments v1 (KIP-860): with
/// allow_replication_factor_change=false a reassignment that changes the
/// replica count is refused with INVALID_REPLICATION_FACTOR and nothing
/// moves; with true (v1's default) it proceeds. The answer echoes the flag.
#[test]
fn reassignment_v1_refuses_a_replication_factor_change_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, topic) = cluster(dir.path());
    let request = |allow| {
        AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_allow_replication_factor_change(allow)
            .with_topics(vec![ReassignableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(Some(vec![WireBrokerId(1), WireBrokerId(2)]))])])
    };
    let replicas = |b: &Broker| {
        b.image()
            .topic_by_id(topic.id)
            .map(|t| t.partitions[0].replicas.clone())
    };

    let refused = super::partition_admin::alter_reassignments(&broker, request(false), 1);
    assert!(!refused.allow_replication_factor_change);
    let p = &refused.responses[0].partitions[0];
    assert_eq!(p.error_code, INVALID_REPLICATION_FACTOR);
    assert_eq!(
        p.error_message.as_ref().map(|m| m.to_string()).as_deref(),
        Some("The replication factor is changed from 1 to 2")
    );
    assert_eq!(replicas(&broker), Some(vec![BrokerId(1)]), "nothing moved");

    let allowed = super::partition_admin::alter_reassignments(&broker, request(true), 1);
    assert!(allowed.allow_replication_factor_change);
    assert_eq!(allowed.responses[0].partitions[0].error_code, 0);
    assert_eq!(
        replicas(&broker).map(|r| r.len()),
        Some(2),
        "the reassignment started"
    );
}
