//! ACLs through the dispatcher, as clients see them: CreateAcls /
//! DescribeAcls / DeleteAcls, the cluster rule of the authorization matrix,
//! and the per-topic checks of Metadata and Produce.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use samsa_metadata::NewTopic;
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::BrokerId;
use samsa_security::KafkaPrincipal;

use super::{handle, Reply};
use crate::broker::Broker;

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

fn st(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// A broker with the standard authorizer, `User:admin` a super user, and
/// topics `orders` and `secret`.
fn secured(dir: &std::path::Path) -> Arc<Broker> {
    let broker = crate::test_support::broker_with(
        dir,
        |q| Box::new(q),
        &[
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            ("super.users", "User:admin"),
            ("samsa.authorizer.unchecked.apis.allow", "true"),
        ],
    );
    for name in ["orders", "secret"] {
        broker
            .controller
            .create_topics(
                vec![NewTopic {
                    name: name.into(),
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: vec![vec![BrokerId(1)]],
                    ..Default::default()
                }],
                false,
            )
            .into_iter()
            .for_each(|r| {
                r.expect("topic");
            });
    }
    broker.reconcile().expect("reconcile");
    broker
}

/// Sends `request` as `principal` through the dispatcher; the decoded
/// response.
async fn call<Q: Encodable, R: Decodable>(
    broker: &Arc<Broker>,
    principal: &str,
    api: ApiKey,
    version: i16,
    request: Q,
) -> R {
    let mut frame = BytesMut::new();
    let header_version = api.request_header_version(version);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(st("acl-test")))
        .encode(&mut frame, header_version)
        .expect("header");
    request.encode(&mut frame, version).expect("body");
    let request = samsa_protocol::codec::parse_request(frame.freeze()).expect("parses");
    let principal = Arc::new(KafkaPrincipal::parse(principal).expect("principal"));
    let peer = "127.0.0.1:1".parse().expect("peer");
    let Reply::Send(response) =
        handle(broker, peer, &"PLAINTEXT".into(), &principal, request).await
    else {
        panic!("no response");
    };
    let mut bytes = response.to_bytes().expect("bytes").freeze();
    bytes.advance(4);
    let _ = ResponseHeader::decode(&mut bytes, api.response_header_version(version))
        .expect("response header");
    R::decode(&mut bytes, version).expect("response")
}

/// A filter for User:bob's literal ACLs on topic orders with `operation`
/// and `permission` (1: any).
fn bobs_orders_acls(operation: i8, permission: i8) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(2)
        .with_resource_name_filter(Some(st("orders")))
        .with_pattern_type_filter(3)
        .with_principal_filter(Some(st("User:bob")))
        .with_host_filter(None)
        .with_operation(operation)
        .with_permission_type(permission)
}

fn creation(principal: &str, op: i8, topic: &str) -> AclCreation {
    AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(st(topic))
        .with_resource_pattern_type(3)
        .with_principal(st(principal))
        .with_host(st("*"))
        .with_operation(op)
        .with_permission_type(3)
}

async fn create(broker: &Arc<Broker>, who: &str, c: Vec<AclCreation>) -> CreateAclsResponse {
    call(
        broker,
        who,
        ApiKey::CreateAcls,
        3,
        CreateAclsRequest::default().with_creations(c),
    )
    .await
}

fn describe_all() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_created_described_deleted_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = secured(dir.path());
    // Not a super user, no ACL: refused, nothing created.
    let r = create(
        &broker,
        "User:alice",
        vec![creation("User:alice", 3, "orders")],
    )
    .await;
    assert_eq!(r.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(broker.image().acls.is_empty());
    let r = create(
        &broker,
        "User:admin",
        vec![
            creation("User:alice", 4, "orders"),
            creation("User:bob", 3, "orders"),
            creation("alice", 3, "orders"),
        ],
    )
    .await;
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, 0, 42], "the third principal is malformed");
    let d: DescribeAclsResponse = call(
        &broker,
        "User:admin",
        ApiKey::DescribeAcls,
        3,
        describe_all(),
    )
    .await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.resources.len(), 1);
    assert_eq!(d.resources[0].acls.len(), 2);
    let d: DescribeAclsResponse =
        call(&broker, "User:bob", ApiKey::DescribeAcls, 3, describe_all()).await;
    assert_eq!(d.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(d.resources.is_empty());

    // A restart replays them from the metadata log.
    drop(broker);
    let broker = crate::test_support::broker_with(
        dir.path(),
        |q| Box::new(q),
        &[
            ("authorizer.class.name", "samsa.StandardAuthorizer"),
            ("super.users", "User:admin"),
            ("samsa.authorizer.unchecked.apis.allow", "true"),
        ],
    );
    assert_eq!(broker.image().acls.len(), 2);

    let filter = bobs_orders_acls(1, 1);
    let r: DeleteAclsResponse = call(
        &broker,
        "User:alice",
        ApiKey::DeleteAcls,
        3,
        DeleteAclsRequest::default().with_filters(vec![filter.clone()]),
    )
    .await;
    assert_eq!(r.filter_results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(
        broker.image().acls.len(),
        2,
        "an unauthorized delete changes nothing"
    );
    let r: DeleteAclsResponse = call(
        &broker,
        "User:admin",
        ApiKey::DeleteAcls,
        3,
        DeleteAclsRequest::default().with_filters(vec![filter]),
    )
    .await;
    assert_eq!(r.filter_results[0].error_code, 0);
    assert_eq!(r.filter_results[0].matching_acls.len(), 1);
    assert_eq!(
        r.filter_results[0].matching_acls[0].principal.as_str(),
        "User:bob"
    );
    assert_eq!(broker.image().acls.len(), 1);
}

fn produce(topic: &str) -> ProduceRequest {
    let mut b = BatchBuilder::new();
    b.push(NewRecord::new(
        super::produce::now_ms(),
        Some(b"k".as_slice()),
        Some(b"v".as_slice()),
    ));
    let records = bytes::Bytes::from(b.build().expect("batch"));
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(st(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

fn metadata(topics: Option<&[&str]>) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(st(t)))))
                .collect()
        }))
        .with_allow_auto_topic_creation(true)
        .with_include_topic_authorized_operations(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_need_describe_write_and_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = secured(dir.path());
    // alice may write orders (Write implies Describe); nothing else.
    let r = create(
        &broker,
        "User:admin",
        vec![creation("User:alice", 4, "orders")],
    )
    .await;
    assert_eq!(r.results[0].error_code, 0);

    // Metadata for all topics lists only orders, with Write and Describe.
    let m: MetadataResponse =
        call(&broker, "User:alice", ApiKey::Metadata, 12, metadata(None)).await;
    let names: Vec<String> = m
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, ["orders"]);
    assert_eq!(m.topics[0].topic_authorized_operations, (1 << 4) | (1 << 8));
    // Named: secret and a missing topic are refused, and nothing is created.
    let m: MetadataResponse = call(
        &broker,
        "User:alice",
        ApiKey::Metadata,
        12,
        metadata(Some(&["orders", "secret", "newtopic"])),
    )
    .await;
    let codes: Vec<i16> = m.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        [0, TOPIC_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED]
    );
    assert!(m.topics[1].partitions.is_empty(), "nothing disclosed");
    assert!(broker.image().topic("newtopic").is_none());

    // Produce: alice to orders succeeds; to secret and as bob is refused
    // and appends nothing.
    let p: ProduceResponse =
        call(&broker, "User:alice", ApiKey::Produce, 9, produce("orders")).await;
    assert_eq!(p.responses[0].partition_responses[0].error_code, 0);
    let p: ProduceResponse =
        call(&broker, "User:alice", ApiKey::Produce, 9, produce("secret")).await;
    assert_eq!(
        p.responses[0].partition_responses[0].error_code,
        TOPIC_AUTHORIZATION_FAILED
    );
    let p: ProduceResponse = call(&broker, "User:bob", ApiKey::Produce, 9, produce("orders")).await;
    assert_eq!(
        p.responses[0].partition_responses[0].error_code,
        TOPIC_AUTHORIZATION_FAILED
    );
    let image = broker.image();
    let end = |name: &str| {
        let t = image.topic(name).expect("topic");
        broker
            .partition(t.id, 0)
            .expect("partition")
            .log()
            .log_end_offset()
    };
    assert_eq!(end("orders").get(), 1, "only alice's batch was appended");
    assert_eq!(end("secret").get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_apis_need_their_cluster_operation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = secured(dir.path());
    let r: DescribeLogDirsResponse = call(
        &broker,
        "User:alice",
        ApiKey::DescribeLogDirs,
        4,
        DescribeLogDirsRequest::default(),
    )
    .await;
    assert_eq!(r.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(r.results.is_empty());
    let r: DescribeLogDirsResponse = call(
        &broker,
        "User:admin",
        ApiKey::DescribeLogDirs,
        4,
        DescribeLogDirsRequest::default(),
    )
    .await;
    assert_eq!(r.error_code, 0);
    // Cluster Describe granted to alice.
    let c = AclCreation::default()
        .with_resource_type(4)
        .with_resource_name(st("kafka-cluster"))
        .with_resource_pattern_type(3)
        .with_principal(st("User:alice"))
        .with_host(st("*"))
        .with_operation(8)
        .with_permission_type(3);
    assert_eq!(
        create(&broker, "User:admin", vec![c]).await.results[0].error_code,
        0
    );
    let r: DescribeLogDirsResponse = call(
        &broker,
        "User:alice",
        ApiKey::DescribeLogDirs,
        4,
        DescribeLogDirsRequest::default(),
    )
    .await;
    assert_eq!(r.error_code, 0);
}

/// Every API with a cluster rule has a refusal answer, and the rule
/// table covers every API the broker serves (`authz` tests the latter).
#[test]
fn every_cluster_rule_has_a_refusal() {
    use crate::authz::{Rule, API_RULES};
    for (api, rule) in API_RULES {
        let Rule::Cluster(_) = rule else { continue };
        let request = match api {
            ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(Default::default()),
            ApiKey::AlterReplicaLogDirs => RequestKind::AlterReplicaLogDirs(Default::default()),
            ApiKey::ElectLeaders => RequestKind::ElectLeaders(Default::default()),
            ApiKey::AlterPartitionReassignments => {
                RequestKind::AlterPartitionReassignments(Default::default())
            }
            ApiKey::ListPartitionReassignments => {
                RequestKind::ListPartitionReassignments(Default::default())
            }
            ApiKey::ListConfigResources => RequestKind::ListConfigResources(Default::default()),
            ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(Default::default()),
            ApiKey::UpdateFeatures => RequestKind::UpdateFeatures(Default::default()),
            ApiKey::WriteTxnMarkers => RequestKind::WriteTxnMarkers(Default::default()),
            ApiKey::DescribeAcls => RequestKind::DescribeAcls(Default::default()),
            ApiKey::CreateAcls => RequestKind::CreateAcls(Default::default()),
            ApiKey::DeleteAcls => RequestKind::DeleteAcls(Default::default()),
            ApiKey::DeleteRecords => RequestKind::DeleteRecords(Default::default()),
            ApiKey::CreatePartitions => RequestKind::CreatePartitions(Default::default()),
            ApiKey::AlterConfigs => RequestKind::AlterConfigs(Default::default()),
            ApiKey::IncrementalAlterConfigs => {
                RequestKind::IncrementalAlterConfigs(Default::default())
            }
            ApiKey::DeleteGroups => RequestKind::DeleteGroups(Default::default()),
            ApiKey::OffsetDelete => RequestKind::OffsetDelete(Default::default()),
            ApiKey::DescribeUserScramCredentials => {
                RequestKind::DescribeUserScramCredentials(Default::default())
            }
            ApiKey::AlterUserScramCredentials => {
                RequestKind::AlterUserScramCredentials(Default::default())
            }
            other => panic!("{other:?} has a cluster rule but no refusal in this test"),
        };
        assert!(
            super::refused::cluster_refused(request).is_some(),
            "{api:?}"
        );
    }
}

fn fetch(topic: &str) -> FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    FetchRequest::default()
        .with_replica_id(BrokerId(-1).get().into())
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(st(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_groups_and_topic_admin_need_their_acls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = secured(dir.path());
    // bob may read orders; alice may only write it.
    let acls = vec![
        creation("User:bob", 3, "orders"),
        creation("User:alice", 4, "orders"),
    ];
    assert!(create(&broker, "User:admin", acls)
        .await
        .results
        .iter()
        .all(|r| r.error_code == 0));
    let code = |r: &FetchResponse| r.responses[0].partitions[0].error_code;
    let r: FetchResponse = call(&broker, "User:bob", ApiKey::Fetch, 12, fetch("orders")).await;
    assert_eq!(code(&r), 0);
    let r: FetchResponse = call(&broker, "User:alice", ApiKey::Fetch, 12, fetch("orders")).await;
    assert_eq!(code(&r), TOPIC_AUTHORIZATION_FAILED);
    let r: FetchResponse = call(&broker, "User:bob", ApiKey::Fetch, 12, fetch("secret")).await;
    assert_eq!(code(&r), TOPIC_AUTHORIZATION_FAILED);

    // Group Read: bob has none for group app.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(st("app")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(st("consumer"));
    let r: JoinGroupResponse = call(&broker, "User:bob", ApiKey::JoinGroup, 9, join).await;
    assert_eq!(r.error_code, 30, "GROUP_AUTHORIZATION_FAILED");

    // Topic admin: nothing created or deleted without Create / Delete.
    let r: DeleteTopicsResponse = call(
        &broker,
        "User:bob",
        ApiKey::DeleteTopics,
        5,
        DeleteTopicsRequest::default()
            .with_topic_names(vec![TopicName(st("orders"))])
            .with_timeout_ms(5000),
    )
    .await;
    assert_eq!(r.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert!(broker.image().topic("orders").is_some());
    let r: CreateTopicsResponse = call(
        &broker,
        "User:bob",
        ApiKey::CreateTopics,
        7,
        CreateTopicsRequest::default()
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(TopicName(st("fresh")))
                .with_num_partitions(1)
                .with_replication_factor(1)])
            .with_timeout_ms(5000),
    )
    .await;
    assert_eq!(r.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert!(broker.image().topic("fresh").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_ids_need_idempotent_write_or_the_transactional_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = secured(dir.path());
    let init = |id: Option<&str>| {
        InitProducerIdRequest::default()
            .with_transactional_id(id.map(|i| TransactionalId(st(i))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let r: InitProducerIdResponse =
        call(&broker, "User:alice", ApiKey::InitProducerId, 4, init(None)).await;
    assert_eq!(r.error_code, CLUSTER_AUTHORIZATION_FAILED);
    let r: InitProducerIdResponse = call(
        &broker,
        "User:alice",
        ApiKey::InitProducerId,
        4,
        init(Some("tx")),
    )
    .await;
    assert_eq!(r.error_code, 53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED");
    // Write on a topic is enough for an idempotent producer.
    assert_eq!(
        create(
            &broker,
            "User:admin",
            vec![creation("User:alice", 4, "orders")]
        )
        .await
        .results[0]
            .error_code,
        0
    );
    let r: InitProducerIdResponse =
        call(&broker, "User:alice", ApiKey::InitProducerId, 4, init(None)).await;
    assert_eq!(r.error_code, 0);
    assert!(r.producer_id.0 >= 0);
}

/// Admin APIs whose per-resource checks are not written yet fail closed:
/// without Cluster Alter a topic config change is refused per resource and
/// changes nothing; the super user's goes through.
#[tokio::test]
async fn unchecked_admin_apis_fail_closed() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = secured(dir.path());
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(st("orders"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(st("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(st("12345")))]),
    ]);
    let retention = |b: &Arc<Broker>| {
        b.image()
            .topic("orders")
            .and_then(|t| t.configs.get("retention.ms").cloned())
    };
    let r: IncrementalAlterConfigsResponse = call(
        &broker,
        "User:alice",
        ApiKey::IncrementalAlterConfigs,
        1,
        request.clone(),
    )
    .await;
    assert_eq!(r.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(
        retention(&broker),
        None,
        "a refused change must change nothing"
    );
    let r: IncrementalAlterConfigsResponse = call(
        &broker,
        "User:admin",
        ApiKey::IncrementalAlterConfigs,
        1,
        request,
    )
    .await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(retention(&broker).as_deref(), Some("12345"));
}

/// A transactional Produce of which the authorizer refuses one topic still
/// has its other partitions verified with the transaction coordinator
/// (KIP-890): an unverified first batch is refused, never appended as an
/// open transaction the coordinator does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_refused_transactional_produce_is_still_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = secured(dir.path());
    let txn_write = creation("User:alice", 4, "tx").with_resource_type(5);
    let r = create(
        &broker,
        "User:admin",
        vec![creation("User:alice", 4, "orders"), txn_write],
    )
    .await;
    assert!(r.results.iter().all(|c| c.error_code == 0));
    let batch = |topic: &str| {
        let mut b = BatchBuilder::new()
            .producer(
                samsa_model::ProducerId(5000),
                samsa_model::ProducerEpoch(0),
                0,
            )
            .transactional(true);
        b.push(NewRecord::new(
            super::produce::now_ms(),
            Some(b"k".as_slice()),
            Some(b"v".as_slice()),
        ));
        TopicProduceData::default()
            .with_name(TopicName(st(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(bytes::Bytes::from(b.build().expect("batch"))))])
    };
    let request = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(st("tx"))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![batch("orders"), batch("secret")]);
    let p: ProduceResponse = call(&broker, "User:alice", ApiKey::Produce, 9, request).await;
    let code = |i: usize| p.responses[i].partition_responses[0].error_code;
    assert_eq!(code(1), TOPIC_AUTHORIZATION_FAILED);
    assert_ne!(code(0), 0, "never added to a transaction: refused");
    let orders = broker
        .partition_named(&broker.image(), "orders", 0)
        .expect("orders");
    assert_eq!(orders.log().log_end_offset().get(), 0, "nothing appended");
    assert_eq!(
        orders.log().first_unstable_offset(),
        None,
        "no hanging transaction"
    );
}

/// A fetch session does not outlive the Read it was opened with: once the
/// ACL is deleted, the next incremental fetch (which names no topic) answers
/// the session's partition TOPIC_AUTHORIZATION_FAILED, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_session_stops_serving_a_topic_whose_read_was_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = secured(dir.path());
    assert_eq!(
        create(
            &broker,
            "User:admin",
            vec![creation("User:bob", 3, "orders")]
        )
        .await
        .results[0]
            .error_code,
        0
    );
    // A full fetch opens a session (id 0, epoch 0).
    let r: FetchResponse = call(
        &broker,
        "User:bob",
        ApiKey::Fetch,
        12,
        fetch("orders").with_session_id(0).with_session_epoch(0),
    )
    .await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert!(r.session_id > 0, "a session was opened");
    let filter = bobs_orders_acls(3, 3);
    let d: DeleteAclsResponse = call(
        &broker,
        "User:admin",
        ApiKey::DeleteAcls,
        3,
        DeleteAclsRequest::default().with_filters(vec![filter]),
    )
    .await;
    assert_eq!(d.filter_results[0].matching_acls.len(), 1);
    let incremental = FetchRequest::default()
        .with_replica_id(BrokerId(-1).get().into())
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_id(r.session_id)
        .with_session_epoch(1);
    let r: FetchResponse = call(&broker, "User:bob", ApiKey::Fetch, 12, incremental).await;
    let answers: Vec<(String, i16)> = r
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic.0.to_string(), p.error_code))
        })
        .collect();
    assert_eq!(
        answers,
        [("orders".to_string(), TOPIC_AUTHORIZATION_FAILED)]
    );
}
