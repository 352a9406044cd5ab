//! Tests for the pre-decode request guard against kafka-protocol itself: every covered
//! (api, version) round-trips through kafka-protocol's encoder and the guard's walker,
//! adversarial bodies are refused, and every mutated body the guard accepts decodes
//! under a counting allocator without any single allocation beyond a fixed bound.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;
use samsa_protocol::guard::{check_request_body, covered_versions, request_body_len, GuardError};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Counting allocator: records the largest single allocation on the current thread while
// tracking is switched on.
// ---------------------------------------------------------------------------------------

struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation(size: usize) {
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

// SAFETY: every call forwards to the system allocator unchanged; the bookkeeping only
// touches const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns the largest single allocation it made on this thread.
fn largest_allocation_during(f: impl FnOnce()) -> usize {
    LARGEST.with(|largest| largest.set(0));
    TRACKING.with(|tracking| tracking.set(true));
    f();
    TRACKING.with(|tracking| tracking.set(false));
    LARGEST.with(|largest| largest.get())
}

/// The allocation bound the guard promises for an accepted body of `len` bytes.
fn allocation_bound(len: usize) -> usize {
    64 * len + 64 * 1024
}

// ---------------------------------------------------------------------------------------
// The covered requests
// ---------------------------------------------------------------------------------------

/// (api, first version, last version, first flexible version or i16::MAX).
const COVERED: &[(ApiKey, i16, i16, i16)] = &[
    (ApiKey::Produce, 3, 13, 9),
    (ApiKey::Fetch, 4, 18, 12),
    (ApiKey::ListOffsets, 1, 10, 6),
    (ApiKey::Metadata, 0, 13, 9),
    (ApiKey::ApiVersions, 0, 4, 3),
    (ApiKey::CreateTopics, 2, 7, 5),
    (ApiKey::DeleteTopics, 1, 6, 4),
    (ApiKey::DeleteRecords, 0, 2, 2),
    (ApiKey::DescribeConfigs, 1, 4, 4),
    (ApiKey::CreatePartitions, 0, 3, 2),
    (ApiKey::DescribeCluster, 0, 2, 0),
    (ApiKey::InitProducerId, 0, 5, 2),
    (ApiKey::FindCoordinator, 0, 6, 3),
    (ApiKey::JoinGroup, 0, 9, 6),
    (ApiKey::SyncGroup, 0, 5, 4),
    (ApiKey::Heartbeat, 0, 4, 4),
    (ApiKey::LeaveGroup, 0, 5, 4),
    (ApiKey::OffsetCommit, 2, 9, 8),
    (ApiKey::OffsetFetch, 1, 9, 6),
    (ApiKey::TxnOffsetCommit, 0, 5, 3),
    (ApiKey::ListGroups, 0, 5, 3),
    (ApiKey::DescribeGroups, 0, 6, 5),
    (ApiKey::DeleteGroups, 0, 2, 2),
    (ApiKey::OffsetDelete, 0, 0, i16::MAX),
    (ApiKey::AlterConfigs, 0, 2, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1, 1),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1, 0),
    (ApiKey::ConsumerGroupDescribe, 0, 1, 0),
    (ApiKey::DescribeTopicPartitions, 0, 0, 0),
    (ApiKey::ListConfigResources, 0, 1, 0),
    (ApiKey::DescribeQuorum, 0, 2, 0),
    (ApiKey::UpdateFeatures, 0, 2, 0),
    (ApiKey::OffsetForLeaderEpoch, 2, 4, 4),
    (ApiKey::ElectLeaders, 0, 2, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1, 0),
    (ApiKey::ListPartitionReassignments, 0, 0, 0),
    (ApiKey::SaslHandshake, 0, 1, i16::MAX),
    (ApiKey::SaslAuthenticate, 0, 2, 2),
    (ApiKey::AddPartitionsToTxn, 0, 5, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4, 3),
    (ApiKey::EndTxn, 0, 5, 3),
    (ApiKey::DescribeTransactions, 0, 0, 0),
    (ApiKey::ListTransactions, 0, 2, 0),
    (ApiKey::DescribeAcls, 1, 3, 2),
    (ApiKey::CreateAcls, 1, 3, 2),
    (ApiKey::DeleteAcls, 1, 3, 2),
];

/// Every covered (api, version, flexible) triple.
fn covered_pairs() -> impl Iterator<Item = (ApiKey, i16, bool)> {
    COVERED
        .iter()
        .flat_map(|&(api, min, max, flex)| (min..=max).map(move |v| (api, v, v >= flex)))
}

/// Runs `$body` with `$t` bound to the request type of `$api`.
macro_rules! with_request_type {
    ($api:expr, $t:ident => $body:expr) => {
        match $api {
            ApiKey::Produce => {
                type $t = ProduceRequest;
                $body
            }
            ApiKey::Fetch => {
                type $t = FetchRequest;
                $body
            }
            ApiKey::ListOffsets => {
                type $t = ListOffsetsRequest;
                $body
            }
            ApiKey::Metadata => {
                type $t = MetadataRequest;
                $body
            }
            ApiKey::ApiVersions => {
                type $t = ApiVersionsRequest;
                $body
            }
            ApiKey::CreateTopics => {
                type $t = CreateTopicsRequest;
                $body
            }
            ApiKey::DeleteTopics => {
                type $t = DeleteTopicsRequest;
                $body
            }
            ApiKey::DeleteRecords => {
                type $t = DeleteRecordsRequest;
                $body
            }
            ApiKey::DescribeConfigs => {
                type $t = DescribeConfigsRequest;
                $body
            }
            ApiKey::CreatePartitions => {
                type $t = CreatePartitionsRequest;
                $body
            }
            ApiKey::DescribeCluster => {
                type $t = DescribeClusterRequest;
                $body
            }
            ApiKey::AddPartitionsToTxn => {
                type $t = AddPartitionsToTxnRequest;
                $body
            }
            ApiKey::AddOffsetsToTxn => {
                type $t = AddOffsetsToTxnRequest;
                $body
            }
            ApiKey::EndTxn => {
                type $t = EndTxnRequest;
                $body
            }
            ApiKey::DescribeTransactions => {
                type $t = DescribeTransactionsRequest;
                $body
            }
            ApiKey::ListTransactions => {
                type $t = ListTransactionsRequest;
                $body
            }
            ApiKey::InitProducerId => {
                type $t = InitProducerIdRequest;
                $body
            }
            ApiKey::FindCoordinator => {
                type $t = FindCoordinatorRequest;
                $body
            }
            ApiKey::JoinGroup => {
                type $t = JoinGroupRequest;
                $body
            }
            ApiKey::SyncGroup => {
                type $t = SyncGroupRequest;
                $body
            }
            ApiKey::Heartbeat => {
                type $t = HeartbeatRequest;
                $body
            }
            ApiKey::LeaveGroup => {
                type $t = LeaveGroupRequest;
                $body
            }
            ApiKey::OffsetCommit => {
                type $t = OffsetCommitRequest;
                $body
            }
            ApiKey::OffsetFetch => {
                type $t = OffsetFetchRequest;
                $body
            }
            ApiKey::TxnOffsetCommit => {
                type $t = TxnOffsetCommitRequest;
                $body
            }
            ApiKey::ListGroups => {
                type $t = ListGroupsRequest;
                $body
            }
            ApiKey::DescribeGroups => {
                type $t = DescribeGroupsRequest;
                $body
            }
            ApiKey::DeleteGroups => {
                type $t = DeleteGroupsRequest;
                $body
            }
            ApiKey::OffsetDelete => {
                type $t = OffsetDeleteRequest;
                $body
            }
            ApiKey::AlterConfigs => {
                type $t = AlterConfigsRequest;
                $body
            }
            ApiKey::IncrementalAlterConfigs => {
                type $t = IncrementalAlterConfigsRequest;
                $body
            }
            ApiKey::ConsumerGroupHeartbeat => {
                type $t = ConsumerGroupHeartbeatRequest;
                $body
            }
            ApiKey::ConsumerGroupDescribe => {
                type $t = ConsumerGroupDescribeRequest;
                $body
            }
            ApiKey::DescribeTopicPartitions => {
                type $t = DescribeTopicPartitionsRequest;
                $body
            }
            ApiKey::DescribeQuorum => {
                type $t = DescribeQuorumRequest;
                $body
            }
            ApiKey::UpdateFeatures => {
                type $t = UpdateFeaturesRequest;
                $body
            }
            ApiKey::ListConfigResources => {
                type $t = ListConfigResourcesRequest;
                $body
            }
            ApiKey::OffsetForLeaderEpoch => {
                type $t = OffsetForLeaderEpochRequest;
                $body
            }
            ApiKey::ElectLeaders => {
                type $t = ElectLeadersRequest;
                $body
            }
            ApiKey::AlterPartitionReassignments => {
                type $t = AlterPartitionReassignmentsRequest;
                $body
            }
            ApiKey::ListPartitionReassignments => {
                type $t = ListPartitionReassignmentsRequest;
                $body
            }
            ApiKey::SaslHandshake => {
                type $t = SaslHandshakeRequest;
                $body
            }
            ApiKey::DescribeAcls => {
                type $t = DescribeAclsRequest;
                $body
            }
            ApiKey::CreateAcls => {
                type $t = CreateAclsRequest;
                $body
            }
            ApiKey::DeleteAcls => {
                type $t = DeleteAclsRequest;
                $body
            }
            ApiKey::SaslAuthenticate => {
                type $t = SaslAuthenticateRequest;
                $body
            }
            other => panic!("no request type for {other:?}"),
        }
    };
}

fn enc<T: Encodable>(request: &T, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    if let Err(err) = request.encode(&mut buf, version) {
        panic!("kafka-protocol refused to encode at v{version}: {err}");
    }
    buf.to_vec()
}

fn encode_default(api: ApiKey, version: i16) -> Vec<u8> {
    with_request_type!(api, R => enc(&R::default(), version))
}

/// Decodes `body` as the request type of `api`; true when kafka-protocol accepts it.
fn decodes(api: ApiKey, version: i16, mut body: Bytes) -> bool {
    with_request_type!(api, R => R::decode(&mut body, version).is_ok())
}

// ---------------------------------------------------------------------------------------
// Populated requests: every array has two elements (nested arrays too), strings and
// bytes are non-empty, and flexible versions carry an unknown tagged field per struct.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Fill {
    /// Nullable strings, bytes and structs are null.
    nulls: bool,
    /// Nullable arrays are null.
    null_arrays: bool,
    /// The version is flexible (adds an unknown tagged field to every struct).
    flex: bool,
}

const FILLS: [(bool, bool); 3] = [(false, false), (true, false), (true, true)];

fn st(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn topic(s: &str) -> TopicName {
    TopicName(st(s))
}

fn group(s: &str) -> GroupId {
    GroupId(st(s))
}

fn id(n: i32) -> Uuid {
    Uuid::from_bytes([n.to_le_bytes()[0].wrapping_add(1); 16])
}

fn two<T>(make: impl FnMut(i32) -> T) -> Vec<T> {
    (0..2).map(make).collect()
}

fn brokers() -> Vec<BrokerId> {
    vec![BrokerId(1), BrokerId(2)]
}

impl Fill {
    fn opt<T>(self, value: T) -> Option<T> {
        (!self.nulls).then_some(value)
    }
    fn opt_vec<T>(self, value: Vec<T>) -> Option<Vec<T>> {
        (!self.null_arrays).then_some(value)
    }
    fn tags(self) -> BTreeMap<i32, Bytes> {
        let mut tags = BTreeMap::new();
        if self.flex {
            tags.insert(1000, Bytes::from_static(b"tag!"));
        }
        tags
    }
}

fn encode_populated(api: ApiKey, v: i16, f: Fill) -> Vec<u8> {
    match api {
        ApiKey::Produce => enc(&produce(v, f), v),
        ApiKey::Fetch => enc(&fetch(v, f), v),
        ApiKey::ListOffsets => enc(&list_offsets(v, f), v),
        ApiKey::Metadata => enc(&metadata(v, f), v),
        ApiKey::ApiVersions => enc(&api_versions(v, f), v),
        ApiKey::CreateTopics => enc(&create_topics(f), v),
        ApiKey::DeleteTopics => enc(&delete_topics(v, f), v),
        ApiKey::DeleteRecords => enc(&delete_records(f), v),
        ApiKey::DescribeConfigs => enc(&describe_configs(v, f), v),
        ApiKey::CreatePartitions => enc(&create_partitions(f), v),
        ApiKey::DescribeCluster => enc(&describe_cluster(v, f), v),
        ApiKey::InitProducerId => enc(&init_producer_id(v, f), v),
        ApiKey::AddPartitionsToTxn => enc(&add_partitions_to_txn(v, f), v),
        ApiKey::AddOffsetsToTxn => enc(
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(st("txn")))
                .with_producer_id(ProducerId(77))
                .with_producer_epoch(3)
                .with_group_id(group("group-a"))
                .with_unknown_tagged_fields(f.tags()),
            v,
        ),
        ApiKey::EndTxn => enc(
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(st("txn")))
                .with_producer_id(ProducerId(77))
                .with_producer_epoch(3)
                .with_committed(true)
                .with_unknown_tagged_fields(f.tags()),
            v,
        ),
        ApiKey::DescribeTransactions => enc(
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(two(|i| TransactionalId(st(&format!("txn-{i}")))))
                .with_unknown_tagged_fields(f.tags()),
            v,
        ),
        ApiKey::ListTransactions => enc(&list_transactions(v, f), v),
        ApiKey::DescribeAcls => enc(&describe_acls(f), v),
        ApiKey::CreateAcls => enc(&create_acls(f), v),
        ApiKey::DeleteAcls => enc(&delete_acls(f), v),
        ApiKey::FindCoordinator => enc(&find_coordinator(v, f), v),
        ApiKey::JoinGroup => enc(&join_group(v, f), v),
        ApiKey::SyncGroup => enc(&sync_group(v, f), v),
        ApiKey::Heartbeat => enc(&heartbeat(v, f), v),
        ApiKey::LeaveGroup => enc(&leave_group(v, f), v),
        ApiKey::OffsetCommit => enc(&offset_commit(v, f), v),
        ApiKey::OffsetFetch => enc(&offset_fetch(v, f), v),
        ApiKey::TxnOffsetCommit => enc(&txn_offset_commit(v, f), v),
        ApiKey::ListGroups => enc(&list_groups(v, f), v),
        ApiKey::DescribeGroups => enc(&describe_groups(v, f), v),
        ApiKey::DeleteGroups => enc(&delete_groups(f), v),
        ApiKey::OffsetDelete => enc(&offset_delete(), v),
        ApiKey::AlterConfigs => enc(&alter_configs(f), v),
        ApiKey::IncrementalAlterConfigs => enc(&incremental_alter_configs(f), v),
        ApiKey::ConsumerGroupHeartbeat => enc(&consumer_group_heartbeat(v, f), v),
        ApiKey::ConsumerGroupDescribe => enc(&consumer_group_describe(f), v),
        ApiKey::DescribeTopicPartitions => enc(&describe_topic_partitions(f), v),
        ApiKey::DescribeQuorum => enc(&describe_quorum(f), v),
        ApiKey::UpdateFeatures => enc(&update_features(v, f), v),
        ApiKey::ListConfigResources => enc(
            &ListConfigResourcesRequest::default()
                .with_resource_types(if v >= 1 { vec![2, 32] } else { Vec::new() })
                .with_unknown_tagged_fields(f.tags()),
            v,
        ),
        ApiKey::OffsetForLeaderEpoch => enc(&offset_for_leader_epoch(v, f), v),
        ApiKey::ElectLeaders => enc(&elect_leaders(v, f), v),
        ApiKey::AlterPartitionReassignments => enc(&alter_partition_reassignments(v, f), v),
        ApiKey::ListPartitionReassignments => enc(&list_partition_reassignments(f), v),
        ApiKey::SaslHandshake => enc(
            &SaslHandshakeRequest::default().with_mechanism(st("PLAIN")),
            v,
        ),
        ApiKey::SaslAuthenticate => enc(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0user\0secret"))
                .with_unknown_tagged_fields(f.tags()),
            v,
        ),
        other => panic!("no builder for {other:?}"),
    }
}

fn produce(v: i16, f: Fill) -> ProduceRequest {
    use produce_request::{PartitionProduceData, TopicProduceData};
    ProduceRequest::default()
        .with_transactional_id(f.opt(TransactionalId(st("txn"))))
        .with_acks(-1)
        .with_timeout_ms(1500)
        .with_topic_data(two(|t| {
            let mut data = TopicProduceData::default()
                .with_partition_data(two(|p| {
                    PartitionProduceData::default()
                        .with_index(p)
                        .with_records(f.opt(Bytes::from_static(b"record-batch")))
                        .with_unknown_tagged_fields(f.tags())
                }))
                .with_unknown_tagged_fields(f.tags());
            if v <= 12 {
                data.name = topic("orders");
            } else {
                data.topic_id = id(t);
            }
            data
        }))
        .with_unknown_tagged_fields(f.tags())
}

fn fetch(v: i16, f: Fill) -> FetchRequest {
    use fetch_request::{FetchPartition, FetchTopic, ForgottenTopic, ReplicaState};
    let mut request = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(two(|t| {
            let mut fetch_topic = FetchTopic::default()
                .with_partitions(two(|p| {
                    let mut partition = FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(42)
                        .with_partition_max_bytes(1024)
                        .with_unknown_tagged_fields(f.tags());
                    if v >= 9 {
                        partition.current_leader_epoch = 3;
                    }
                    if v >= 12 {
                        partition.last_fetched_epoch = 2;
                    }
                    if v >= 5 {
                        partition.log_start_offset = 7;
                    }
                    if v >= 17 && !f.nulls {
                        partition.replica_directory_id = id(p);
                    }
                    if v >= 18 && !f.nulls {
                        partition.high_watermark = 99;
                    }
                    partition
                }))
                .with_unknown_tagged_fields(f.tags());
            if v <= 12 {
                fetch_topic.topic = topic("orders");
            } else {
                fetch_topic.topic_id = id(t);
            }
            fetch_topic
        }))
        .with_unknown_tagged_fields(f.tags());
    if v <= 14 {
        request.replica_id = BrokerId(5);
    }
    if v >= 7 {
        request.session_id = 11;
        request.session_epoch = 2;
        request.forgotten_topics_data = two(|t| {
            let mut forgotten = ForgottenTopic::default()
                .with_partitions(vec![0, 1])
                .with_unknown_tagged_fields(f.tags());
            if v <= 12 {
                forgotten.topic = topic("gone");
            } else {
                forgotten.topic_id = id(t);
            }
            forgotten
        });
    }
    if v >= 11 {
        request.rack_id = st("rack-a");
    }
    if v >= 12 {
        request.cluster_id = f.opt(st("cluster"));
    }
    if v >= 15 && !f.nulls {
        request.replica_state = ReplicaState::default()
            .with_replica_id(BrokerId(3))
            .with_replica_epoch(9)
            .with_unknown_tagged_fields(f.tags());
    }
    request
}

fn list_offsets(v: i16, f: Fill) -> ListOffsetsRequest {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let mut request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(two(|_| {
            ListOffsetsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(two(|p| {
                    let mut partition = ListOffsetsPartition::default()
                        .with_partition_index(p)
                        .with_timestamp(-1)
                        .with_unknown_tagged_fields(f.tags());
                    if v >= 4 {
                        partition.current_leader_epoch = 5;
                    }
                    partition
                }))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags());
    if v >= 2 {
        request.isolation_level = 1;
    }
    if v >= 10 {
        request.timeout_ms = 100;
    }
    request
}

fn metadata(v: i16, f: Fill) -> MetadataRequest {
    use metadata_request::MetadataRequestTopic;
    let mut request = MetadataRequest::default()
        .with_topics(f.opt_vec(two(|t| {
            let mut entry = MetadataRequestTopic::default()
                .with_name(f.opt(topic("orders")))
                .with_unknown_tagged_fields(f.tags());
            if v >= 10 {
                entry.topic_id = id(t);
            }
            entry
        })))
        .with_unknown_tagged_fields(f.tags());
    if v >= 4 {
        request.allow_auto_topic_creation = false;
    }
    if (8..=10).contains(&v) {
        request.include_cluster_authorized_operations = true;
    }
    if v >= 8 {
        request.include_topic_authorized_operations = true;
    }
    request
}

fn api_versions(v: i16, f: Fill) -> ApiVersionsRequest {
    let mut request = ApiVersionsRequest::default().with_unknown_tagged_fields(f.tags());
    if v >= 3 {
        request.client_software_name = st("samsa-test");
        request.client_software_version = st("1.0");
    }
    request
}

fn create_topics(f: Fill) -> CreateTopicsRequest {
    use create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig};
    CreateTopicsRequest::default()
        .with_timeout_ms(100)
        .with_validate_only(true)
        .with_topics(two(|_| {
            CreatableTopic::default()
                .with_name(topic("orders"))
                .with_num_partitions(3)
                .with_replication_factor(1)
                .with_assignments(two(|a| {
                    CreatableReplicaAssignment::default()
                        .with_partition_index(a)
                        .with_broker_ids(brokers())
                        .with_unknown_tagged_fields(f.tags())
                }))
                .with_configs(two(|_| {
                    CreatableTopicConfig::default()
                        .with_name(st("cleanup.policy"))
                        .with_value(f.opt(st("compact")))
                        .with_unknown_tagged_fields(f.tags())
                }))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags())
}

fn delete_topics(v: i16, f: Fill) -> DeleteTopicsRequest {
    use delete_topics_request::DeleteTopicState;
    let mut request = DeleteTopicsRequest::default()
        .with_timeout_ms(100)
        .with_unknown_tagged_fields(f.tags());
    if v >= 6 {
        request.topics = two(|t| {
            DeleteTopicState::default()
                .with_name(f.opt(topic("orders")))
                .with_topic_id(id(t))
                .with_unknown_tagged_fields(f.tags())
        });
    } else {
        request.topic_names = two(|_| topic("orders"));
    }
    request
}

fn delete_records(f: Fill) -> DeleteRecordsRequest {
    use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    DeleteRecordsRequest::default()
        .with_timeout_ms(100)
        .with_topics(two(|_| {
            DeleteRecordsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(two(|p| {
                    DeleteRecordsPartition::default()
                        .with_partition_index(p)
                        .with_offset(99)
                        .with_unknown_tagged_fields(f.tags())
                }))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags())
}

fn describe_configs(v: i16, f: Fill) -> DescribeConfigsRequest {
    use describe_configs_request::DescribeConfigsResource;
    let mut request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(two(|_| {
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(st("orders"))
                .with_configuration_keys(f.opt_vec(two(|_| st("retention.ms"))))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags());
    if v >= 3 {
        request.include_documentation = true;
    }
    request
}

fn describe_acls(f: Fill) -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(2)
        .with_resource_name_filter(f.opt(st("orders")))
        .with_pattern_type_filter(2)
        .with_principal_filter(f.opt(st("User:alice")))
        .with_host_filter(f.opt(st("*")))
        .with_operation(3)
        .with_permission_type(3)
        .with_unknown_tagged_fields(f.tags())
}

fn create_acls(f: Fill) -> CreateAclsRequest {
    use create_acls_request::AclCreation;
    CreateAclsRequest::default()
        .with_creations(two(|_| {
            AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(st("orders"))
                .with_resource_pattern_type(3)
                .with_principal(st("User:alice"))
                .with_host(st("*"))
                .with_operation(3)
                .with_permission_type(3)
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags())
}

fn delete_acls(f: Fill) -> DeleteAclsRequest {
    use delete_acls_request::DeleteAclsFilter;
    DeleteAclsRequest::default()
        .with_filters(two(|_| {
            DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(f.opt(st("orders")))
                .with_pattern_type_filter(1)
                .with_principal_filter(f.opt(st("User:alice")))
                .with_host_filter(f.opt(st("*")))
                .with_operation(1)
                .with_permission_type(1)
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags())
}

fn create_partitions(f: Fill) -> CreatePartitionsRequest {
    use create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
    CreatePartitionsRequest::default()
        .with_timeout_ms(100)
        .with_validate_only(true)
        .with_topics(two(|_| {
            CreatePartitionsTopic::default()
                .with_name(topic("orders"))
                .with_count(4)
                .with_assignments(f.opt_vec(two(|_| {
                    CreatePartitionsAssignment::default()
                        .with_broker_ids(brokers())
                        .with_unknown_tagged_fields(f.tags())
                })))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags())
}

fn describe_cluster(v: i16, f: Fill) -> DescribeClusterRequest {
    let mut request = DescribeClusterRequest::default()
        .with_include_cluster_authorized_operations(true)
        .with_unknown_tagged_fields(f.tags());
    if v >= 1 {
        request.endpoint_type = 2;
    }
    if v >= 2 {
        request.include_fenced_brokers = true;
    }
    request
}

fn init_producer_id(v: i16, f: Fill) -> InitProducerIdRequest {
    let mut request = InitProducerIdRequest::default()
        .with_transactional_id(f.opt(TransactionalId(st("txn"))))
        .with_transaction_timeout_ms(60_000)
        .with_unknown_tagged_fields(f.tags());
    if v >= 3 {
        request.producer_id = ProducerId(77);
        request.producer_epoch = 3;
    }
    request
}

fn add_partitions_to_txn(v: i16, f: Fill) -> AddPartitionsToTxnRequest {
    use add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
    let topics = || {
        two(|i| {
            AddPartitionsToTxnTopic::default()
                .with_name(topic(&format!("orders-{i}")))
                .with_partitions(vec![0, 1])
                .with_unknown_tagged_fields(f.tags())
        })
    };
    let request = AddPartitionsToTxnRequest::default().with_unknown_tagged_fields(f.tags());
    if v >= 4 {
        request.with_transactions(two(|i| {
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(st(&format!("txn-{i}"))))
                .with_producer_id(ProducerId(77))
                .with_producer_epoch(3)
                .with_verify_only(i == 1)
                .with_topics(topics())
                .with_unknown_tagged_fields(f.tags())
        }))
    } else {
        request
            .with_v3_and_below_transactional_id(TransactionalId(st("txn")))
            .with_v3_and_below_producer_id(ProducerId(77))
            .with_v3_and_below_producer_epoch(3)
            .with_v3_and_below_topics(topics())
    }
}

fn list_transactions(v: i16, f: Fill) -> ListTransactionsRequest {
    let mut request = ListTransactionsRequest::default()
        .with_state_filters(vec![st("Ongoing"), st("PrepareCommit")])
        .with_producer_id_filters(vec![ProducerId(1), ProducerId(2)])
        .with_unknown_tagged_fields(f.tags());
    if v >= 1 {
        request.duration_filter = 60_000;
    }
    if v >= 2 {
        request.transactional_id_pattern = f.opt(st("txn-.*"));
    }
    request
}

fn find_coordinator(v: i16, f: Fill) -> FindCoordinatorRequest {
    let mut request = FindCoordinatorRequest::default().with_unknown_tagged_fields(f.tags());
    if v <= 3 {
        request.key = st("group-a");
    }
    if v >= 1 {
        request.key_type = 1;
    }
    if v >= 4 {
        request.coordinator_keys = two(|_| st("group-a"));
    }
    request
}

fn join_group(v: i16, f: Fill) -> JoinGroupRequest {
    use join_group_request::JoinGroupRequestProtocol;
    let mut request = JoinGroupRequest::default()
        .with_group_id(group("group-a"))
        .with_session_timeout_ms(30_000)
        .with_member_id(st("member-1"))
        .with_protocol_type(st("consumer"))
        .with_protocols(two(|_| {
            JoinGroupRequestProtocol::default()
                .with_name(st("range"))
                .with_metadata(Bytes::from_static(b"subscription"))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags());
    if v >= 1 {
        request.rebalance_timeout_ms = 60_000;
    }
    if v >= 5 {
        request.group_instance_id = f.opt(st("instance-1"));
    }
    if v >= 8 {
        request.reason = f.opt(st("rejoin"));
    }
    request
}

fn sync_group(v: i16, f: Fill) -> SyncGroupRequest {
    use sync_group_request::SyncGroupRequestAssignment;
    let mut request = SyncGroupRequest::default()
        .with_group_id(group("group-a"))
        .with_generation_id(4)
        .with_member_id(st("member-1"))
        .with_assignments(two(|_| {
            SyncGroupRequestAssignment::default()
                .with_member_id(st("member-1"))
                .with_assignment(Bytes::from_static(b"assignment"))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags());
    if v >= 3 {
        request.group_instance_id = f.opt(st("instance-1"));
    }
    if v >= 5 {
        request.protocol_type = f.opt(st("consumer"));
        request.protocol_name = f.opt(st("range"));
    }
    request
}

fn heartbeat(v: i16, f: Fill) -> HeartbeatRequest {
    let mut request = HeartbeatRequest::default()
        .with_group_id(group("group-a"))
        .with_generation_id(4)
        .with_member_id(st("member-1"))
        .with_unknown_tagged_fields(f.tags());
    if v >= 3 {
        request.group_instance_id = f.opt(st("instance-1"));
    }
    request
}

fn leave_group(v: i16, f: Fill) -> LeaveGroupRequest {
    use leave_group_request::MemberIdentity;
    let mut request = LeaveGroupRequest::default()
        .with_group_id(group("group-a"))
        .with_unknown_tagged_fields(f.tags());
    if v <= 2 {
        request.member_id = st("member-1");
    } else {
        request.members = two(|_| {
            let mut member = MemberIdentity::default()
                .with_member_id(st("member-1"))
                .with_group_instance_id(f.opt(st("instance-1")))
                .with_unknown_tagged_fields(f.tags());
            if v >= 5 {
                member.reason = f.opt(st("bye"));
            }
            member
        });
    }
    request
}

fn txn_offset_commit(v: i16, f: Fill) -> TxnOffsetCommitRequest {
    use txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
    let mut request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(st("txn")))
        .with_group_id(group("group-a"))
        .with_producer_id(ProducerId(77))
        .with_producer_epoch(3)
        .with_topics(two(|_| {
            TxnOffsetCommitRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(two(|p| {
                    let mut partition = TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(100)
                        .with_committed_metadata(f.opt(st("meta")))
                        .with_unknown_tagged_fields(f.tags());
                    if v >= 2 {
                        partition.committed_leader_epoch = 2;
                    }
                    partition
                }))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags());
    if v >= 3 {
        request.generation_id = 5;
        request.member_id = st("member-1");
        request.group_instance_id = f.opt(st("instance-1"));
    }
    request
}

fn offset_commit(v: i16, f: Fill) -> OffsetCommitRequest {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let mut request = OffsetCommitRequest::default()
        .with_group_id(group("group-a"))
        .with_generation_id_or_member_epoch(5)
        .with_member_id(st("member-1"))
        .with_topics(two(|_| {
            OffsetCommitRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(two(|p| {
                    let mut partition = OffsetCommitRequestPartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(100)
                        .with_committed_metadata(f.opt(st("meta")))
                        .with_unknown_tagged_fields(f.tags());
                    if v >= 6 {
                        partition.committed_leader_epoch = 2;
                    }
                    partition
                }))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags());
    if v >= 7 {
        request.group_instance_id = f.opt(st("instance-1"));
    }
    if v <= 4 {
        request.retention_time_ms = 1000;
    }
    request
}

fn offset_fetch(v: i16, f: Fill) -> OffsetFetchRequest {
    use offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    let mut request = OffsetFetchRequest::default().with_unknown_tagged_fields(f.tags());
    if v <= 7 {
        request.group_id = group("group-a");
        request.topics = f.opt_vec(two(|_| {
            OffsetFetchRequestTopic::default()
                .with_name(topic("orders"))
                .with_partition_indexes(vec![0, 1])
                .with_unknown_tagged_fields(f.tags())
        }));
    } else {
        request.groups = two(|_| {
            let mut entry = OffsetFetchRequestGroup::default()
                .with_group_id(group("group-a"))
                .with_topics(f.opt_vec(two(|_| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic("orders"))
                        .with_partition_indexes(vec![0, 1])
                        .with_unknown_tagged_fields(f.tags())
                })))
                .with_unknown_tagged_fields(f.tags());
            if v >= 9 {
                entry.member_id = f.opt(st("member-1"));
                entry.member_epoch = 3;
            }
            entry
        });
    }
    if v >= 7 {
        request.require_stable = true;
    }
    request
}

fn list_groups(v: i16, f: Fill) -> ListGroupsRequest {
    let mut request = ListGroupsRequest::default().with_unknown_tagged_fields(f.tags());
    if v >= 4 {
        request.states_filter = two(|_| st("Stable"));
    }
    if v >= 5 {
        request.types_filter = two(|_| st("classic"));
    }
    request
}

fn describe_groups(v: i16, f: Fill) -> DescribeGroupsRequest {
    let mut request = DescribeGroupsRequest::default()
        .with_groups(two(|_| group("group-a")))
        .with_unknown_tagged_fields(f.tags());
    if v >= 3 {
        request.include_authorized_operations = true;
    }
    request
}

fn delete_groups(f: Fill) -> DeleteGroupsRequest {
    DeleteGroupsRequest::default()
        .with_groups_names(two(|_| group("group-a")))
        .with_unknown_tagged_fields(f.tags())
}

fn offset_delete() -> OffsetDeleteRequest {
    use offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
    OffsetDeleteRequest::default()
        .with_group_id(group("group-a"))
        .with_topics(two(|_| {
            OffsetDeleteRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(two(|p| {
                    OffsetDeleteRequestPartition::default().with_partition_index(p)
                }))
        }))
}

fn alter_configs(f: Fill) -> AlterConfigsRequest {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    AlterConfigsRequest::default()
        .with_validate_only(true)
        .with_resources(two(|_| {
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(st("orders"))
                .with_configs(two(|_| {
                    AlterableConfig::default()
                        .with_name(st("retention.ms"))
                        .with_value(f.opt(st("1000")))
                        .with_unknown_tagged_fields(f.tags())
                }))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags())
}

fn incremental_alter_configs(f: Fill) -> IncrementalAlterConfigsRequest {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    IncrementalAlterConfigsRequest::default()
        .with_validate_only(true)
        .with_resources(two(|_| {
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(st("orders"))
                .with_configs(two(|_| {
                    AlterableConfig::default()
                        .with_name(st("retention.ms"))
                        .with_config_operation(1)
                        .with_value(f.opt(st("1000")))
                        .with_unknown_tagged_fields(f.tags())
                }))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags())
}

fn consumer_group_heartbeat(v: i16, f: Fill) -> ConsumerGroupHeartbeatRequest {
    use consumer_group_heartbeat_request::TopicPartitions;
    let mut request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group("group-a"))
        .with_member_id(st("member-1"))
        .with_member_epoch(1)
        .with_instance_id(f.opt(st("instance-1")))
        .with_rack_id(f.opt(st("rack-a")))
        .with_rebalance_timeout_ms(1000)
        .with_subscribed_topic_names(f.opt_vec(two(|_| topic("orders"))))
        .with_server_assignor(f.opt(st("uniform")))
        .with_topic_partitions(f.opt_vec(two(|t| {
            TopicPartitions::default()
                .with_topic_id(id(t))
                .with_partitions(vec![0, 1])
                .with_unknown_tagged_fields(f.tags())
        })))
        .with_unknown_tagged_fields(f.tags());
    if v >= 1 {
        request.subscribed_topic_regex = f.opt(st("ord.*"));
    }
    request
}

fn consumer_group_describe(f: Fill) -> ConsumerGroupDescribeRequest {
    ConsumerGroupDescribeRequest::default()
        .with_group_ids(two(|_| group("group-a")))
        .with_include_authorized_operations(true)
        .with_unknown_tagged_fields(f.tags())
}

fn describe_topic_partitions(f: Fill) -> DescribeTopicPartitionsRequest {
    use describe_topic_partitions_request::{Cursor, TopicRequest};
    DescribeTopicPartitionsRequest::default()
        .with_topics(two(|_| {
            TopicRequest::default()
                .with_name(topic("orders"))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_response_partition_limit(100)
        .with_cursor(
            f.opt(
                Cursor::default()
                    .with_topic_name(topic("orders"))
                    .with_partition_index(1)
                    .with_unknown_tagged_fields(f.tags()),
            ),
        )
        .with_unknown_tagged_fields(f.tags())
}

fn offset_for_leader_epoch(v: i16, f: Fill) -> OffsetForLeaderEpochRequest {
    use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let mut request = OffsetForLeaderEpochRequest::default()
        .with_topics(two(|_| {
            OffsetForLeaderTopic::default()
                .with_topic(topic("orders"))
                .with_partitions(two(|p| {
                    OffsetForLeaderPartition::default()
                        .with_partition(p)
                        .with_current_leader_epoch(4)
                        .with_leader_epoch(3)
                        .with_unknown_tagged_fields(f.tags())
                }))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags());
    if v >= 3 {
        request.replica_id = BrokerId(2);
    }
    request
}

fn elect_leaders(v: i16, f: Fill) -> ElectLeadersRequest {
    use elect_leaders_request::TopicPartitions;
    let mut request = ElectLeadersRequest::default()
        .with_topic_partitions(f.opt_vec(two(|_| {
            TopicPartitions::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![0, 1])
                .with_unknown_tagged_fields(f.tags())
        })))
        .with_timeout_ms(30_000)
        .with_unknown_tagged_fields(f.tags());
    if v >= 1 {
        request.election_type = 1;
    }
    request
}

fn alter_partition_reassignments(v: i16, f: Fill) -> AlterPartitionReassignmentsRequest {
    use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_allow_replication_factor_change(v < 1)
        .with_topics(two(|_| {
            ReassignableTopic::default()
                .with_name(topic("orders"))
                .with_partitions(two(|p| {
                    ReassignablePartition::default()
                        .with_partition_index(p)
                        .with_replicas(f.opt_vec(brokers()))
                        .with_unknown_tagged_fields(f.tags())
                }))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags())
}

fn list_partition_reassignments(f: Fill) -> ListPartitionReassignmentsRequest {
    use list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(f.opt_vec(two(|_| {
            ListPartitionReassignmentsTopics::default()
                .with_name(topic("orders"))
                .with_partition_indexes(vec![0, 1])
                .with_unknown_tagged_fields(f.tags())
        })))
        .with_unknown_tagged_fields(f.tags())
}

type Encoding = (ApiKey, i16, String, Vec<u8>);

/// Every valid encoding the tests build: populated variants and the default request.
fn valid_encodings() -> &'static [Encoding] {
    static ENCODINGS: OnceLock<Vec<Encoding>> = OnceLock::new();
    ENCODINGS.get_or_init(build_valid_encodings)
}

fn build_valid_encodings() -> Vec<Encoding> {
    let mut out = Vec::new();
    for (api, v, flex) in covered_pairs() {
        for (nulls, null_arrays) in FILLS {
            let fill = Fill {
                nulls,
                null_arrays,
                flex,
            };
            out.push((api, v, format!("{fill:?}"), encode_populated(api, v, fill)));
        }
        out.push((api, v, "default".to_owned(), encode_default(api, v)));
    }
    out
}

// ---------------------------------------------------------------------------------------
// 1. Round-trip acceptance
// ---------------------------------------------------------------------------------------

#[test]
fn guard_table_matches_covered_list() {
    for &(api, min, max, _) in COVERED {
        let key = api as i16;
        assert_eq!(covered_versions(key), Some(min..=max), "{api:?}");
        for version in [min - 1, max + 1] {
            assert_eq!(
                check_request_body(key, version, &[]),
                Err(GuardError::UnsupportedApi { key, version }),
                "{api:?} v{version}"
            );
        }
    }
    assert_eq!(covered_versions(ApiKey::CreateDelegationToken as i16), None);
    assert_eq!(
        check_request_body(-1, 0, &[]),
        Err(GuardError::UnsupportedApi {
            key: -1,
            version: 0
        })
    );
}

#[test]
fn populated_requests_round_trip_at_every_version() {
    let mut checked = 0;
    for (api, v, flex) in covered_pairs() {
        for (nulls, null_arrays) in FILLS {
            let fill = Fill {
                nulls,
                null_arrays,
                flex,
            };
            let body = encode_populated(api, v, fill);
            assert_eq!(
                request_body_len(api as i16, v, &body),
                Ok(body.len()),
                "{api:?} v{v} {fill:?}: walker must consume exactly the encoding"
            );
            assert_eq!(check_request_body(api as i16, v, &body), Ok(()));
            assert!(
                decodes(api, v, Bytes::from(body)),
                "{api:?} v{v} {fill:?}: kafka-protocol must decode its own encoding"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * covered_pairs().count());
}

#[test]
fn default_requests_round_trip_at_every_version() {
    for (api, v, _) in covered_pairs() {
        let body = encode_default(api, v);
        assert_eq!(
            request_body_len(api as i16, v, &body),
            Ok(body.len()),
            "{api:?} v{v} default"
        );
        assert_eq!(check_request_body(api as i16, v, &body), Ok(()));
    }
}

#[test]
fn populated_encodings_exercise_nested_arrays_and_tags() {
    // A populated flexible Fetch carries the known tagged fields (cluster_id, and
    // replica_state from v15) as well as unknown ones at every level.
    let fill = Fill {
        nulls: false,
        null_arrays: false,
        flex: true,
    };
    for v in 12..=16 {
        let body = encode_populated(ApiKey::Fetch, v, fill);
        let unknown = body.windows(4).filter(|w| w == b"tag!").count();
        // request + 2 topics + 4 partitions + 2 forgotten topics (+ replica_state).
        let expected = if v >= 15 { 10 } else { 9 };
        assert_eq!(unknown, expected, "Fetch v{v}");
        assert_eq!(check_request_body(ApiKey::Fetch as i16, v, &body), Ok(()));
    }
}

// ---------------------------------------------------------------------------------------
// 2. Adversarial bodies
// ---------------------------------------------------------------------------------------

#[test]
fn metadata_v1_topic_count_of_i32_max_is_refused() {
    let body = [0x7f, 0xff, 0xff, 0xff];
    assert_eq!(
        check_request_body(ApiKey::Metadata as i16, 1, &body),
        Err(GuardError::LengthTooLarge {
            at: 0,
            field: "topics",
            len: 2 * i32::MAX as u64,
            remaining: 0,
        })
    );
}

#[test]
fn produce_topic_count_of_i32_max_is_refused() {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    body.extend_from_slice(&1000i32.to_be_bytes()); // timeout_ms
    body.extend_from_slice(&i32::MAX.to_be_bytes()); // topic_data count
    body.extend_from_slice(&[0; 16]);
    let err = check_request_body(ApiKey::Produce as i16, 3, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                at: 8,
                field: "topic_data",
                remaining: 16,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn compact_array_varint_of_u32_max_is_refused() {
    // Metadata v9: topics is a compact nullable array.
    let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00, 0x00];
    let err = check_request_body(ApiKey::Metadata as i16, 9, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                at: 0,
                field: "topics",
                remaining: 3,
                ..
            }
        ),
        "{err:?}"
    );
    // DescribeGroups v5: a compact array of compact strings.
    let err = check_request_body(ApiKey::DescribeGroups as i16, 5, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                at: 0,
                field: "groups",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn bytes_length_of_i32_max_with_three_bytes_is_refused() {
    let body = [0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
    assert_eq!(
        check_request_body(ApiKey::SaslAuthenticate as i16, 0, &body),
        Err(GuardError::LengthTooLarge {
            at: 0,
            field: "auth_bytes",
            len: i32::MAX as u64,
            remaining: 3,
        })
    );
    // The same in a JoinGroup protocol's metadata (nested in an array).
    let mut body = Vec::new();
    for s in ["g", "m", "consumer"] {
        body.extend_from_slice(&(s.len() as i16).to_be_bytes());
        body.extend_from_slice(s.as_bytes());
        if s == "g" {
            body.extend_from_slice(&30_000i32.to_be_bytes()); // session_timeout_ms
        }
    }
    body.extend_from_slice(&1i32.to_be_bytes()); // one protocol
    body.extend_from_slice(&5i16.to_be_bytes());
    body.extend_from_slice(b"range");
    body.extend_from_slice(&i32::MAX.to_be_bytes()); // metadata length
    body.extend_from_slice(&[1, 2, 3]);
    let err = check_request_body(ApiKey::JoinGroup as i16, 0, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                field: "metadata",
                remaining: 3,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn compact_string_and_bytes_lengths_are_checked() {
    // SaslAuthenticate v2: compact bytes claiming 2^28 bytes.
    let body = [0x81, 0x80, 0x80, 0x80, 0x01, 0x00];
    let err = check_request_body(ApiKey::SaslAuthenticate as i16, 2, &body).unwrap_err();
    assert!(
        matches!(err, GuardError::LengthTooLarge { at: 0, .. }),
        "{err:?}"
    );
    // ApiVersions v3: compact string claiming 100 bytes with 2 present.
    let body = [101, b'a', b'b'];
    let err = check_request_body(ApiKey::ApiVersions as i16, 3, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                at: 0,
                field: "client_software_name",
                len: 100,
                remaining: 2
            }
        ),
        "{err:?}"
    );
}

#[test]
fn partition_admin_array_lengths_are_checked() {
    // OffsetForLeaderEpoch v2: topics count of i32::MAX with 8 bytes behind it.
    let mut body = i32::MAX.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 8]);
    assert_eq!(
        check_request_body(ApiKey::OffsetForLeaderEpoch as i16, 2, &body),
        Err(GuardError::LengthTooLarge {
            at: 0,
            field: "topics",
            // Topic: INT16 string length + INT32 partitions count.
            len: 6 * i32::MAX as u64,
            remaining: 8,
        })
    );
    // OffsetForLeaderEpoch v3: replica_id comes first, so the count is at byte 4.
    let mut body = 1i32.to_be_bytes().to_vec();
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    let err = check_request_body(ApiKey::OffsetForLeaderEpoch as i16, 3, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                at: 4,
                field: "topics",
                remaining: 0,
                ..
            }
        ),
        "{err:?}"
    );

    // ElectLeaders v0: a null topic_partitions array is valid (elect every partition)...
    let mut body = (-1i32).to_be_bytes().to_vec();
    body.extend_from_slice(&60_000i32.to_be_bytes());
    assert_eq!(
        check_request_body(ApiKey::ElectLeaders as i16, 0, &body),
        Ok(())
    );
    // ...but a count of i32::MAX is not.
    body[..4].copy_from_slice(&i32::MAX.to_be_bytes());
    assert_eq!(
        check_request_body(ApiKey::ElectLeaders as i16, 0, &body),
        Err(GuardError::LengthTooLarge {
            at: 0,
            field: "topic_partitions",
            len: 6 * i32::MAX as u64,
            remaining: 4,
        })
    );
    // ElectLeaders v1: one topic whose partition list claims i32::MAX entries.
    let mut body = vec![1]; // election_type
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.push(b't');
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    body.extend_from_slice(&60_000i32.to_be_bytes());
    assert_eq!(
        check_request_body(ApiKey::ElectLeaders as i16, 1, &body),
        Err(GuardError::LengthTooLarge {
            at: 8,
            field: "partitions",
            len: 4 * i32::MAX as u64,
            remaining: 4,
        })
    );
    // ElectLeaders v2: a compact array count of u32::MAX - 1.
    let body = [0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0];
    let err = check_request_body(ApiKey::ElectLeaders as i16, 2, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                at: 1,
                field: "topic_partitions",
                remaining: 5,
                ..
            }
        ),
        "{err:?}"
    );

    // AlterPartitionReassignments v0: one topic, one partition whose compact replicas
    // array claims 2^28 brokers.
    let mut body = 30_000i32.to_be_bytes().to_vec();
    body.extend_from_slice(&[2, 2, b't', 2]); // topics: 1; name "t"; partitions: 1
    body.extend_from_slice(&0i32.to_be_bytes()); // partition_index
    body.extend_from_slice(&[0x81, 0x80, 0x80, 0x80, 0x01]); // replicas: 2^28
    body.extend_from_slice(&[0, 0, 0]); // tagged fields of partition, topic, request
    assert_eq!(
        check_request_body(ApiKey::AlterPartitionReassignments as i16, 0, &body),
        Err(GuardError::LengthTooLarge {
            at: 12,
            field: "replicas",
            len: 4 << 28,
            remaining: 3,
        })
    );
    // The same body with null replicas (cancel the reassignment) is fine.
    let mut cancel = body[..12].to_vec();
    cancel.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        check_request_body(ApiKey::AlterPartitionReassignments as i16, 0, &cancel),
        Ok(())
    );
    // A null topics array is not allowed.
    let mut body = 30_000i32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0]);
    assert_eq!(
        check_request_body(ApiKey::AlterPartitionReassignments as i16, 0, &body),
        Err(GuardError::NullNotAllowed {
            at: 4,
            field: "topics",
        })
    );

    // ListPartitionReassignments v0: null topics lists everything...
    let mut body = 30_000i32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0]);
    assert_eq!(
        check_request_body(ApiKey::ListPartitionReassignments as i16, 0, &body),
        Ok(())
    );
    // ...and a topic count far beyond the body is refused.
    let mut body = 30_000i32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
    let err = check_request_body(ApiKey::ListPartitionReassignments as i16, 0, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                at: 4,
                field: "topics",
                remaining: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn malformed_lengths_are_refused() {
    // Negative classic string length below -1.
    assert_eq!(
        check_request_body(ApiKey::SaslHandshake as i16, 1, &(-2i16).to_be_bytes()),
        Err(GuardError::NegativeLength {
            at: 0,
            field: "mechanism",
            len: -2,
        })
    );
    // Null where kafka-protocol requires a value.
    assert_eq!(
        check_request_body(ApiKey::SaslHandshake as i16, 1, &(-1i16).to_be_bytes()),
        Err(GuardError::NullNotAllowed {
            at: 0,
            field: "mechanism",
        })
    );
    // A compact null where a value is required.
    assert_eq!(
        check_request_body(ApiKey::SaslAuthenticate as i16, 2, &[0, 0]),
        Err(GuardError::NullNotAllowed {
            at: 0,
            field: "auth_bytes",
        })
    );
    // A varint with a continuation bit on its fifth byte.
    assert_eq!(
        check_request_body(
            ApiKey::SaslAuthenticate as i16,
            2,
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0]
        ),
        Err(GuardError::MalformedVarint {
            at: 0,
            field: "auth_bytes",
        })
    );
    // Truncated fixed-size field.
    assert_eq!(
        check_request_body(ApiKey::Heartbeat as i16, 0, &[0, 1, b'g', 0, 0]),
        Err(GuardError::Truncated {
            at: 3,
            field: "generation_id",
        })
    );
    // Trailing bytes after a complete body.
    assert_eq!(
        check_request_body(ApiKey::ApiVersions as i16, 0, &[0]),
        Err(GuardError::TrailingBytes {
            at: 0,
            remaining: 1
        })
    );
    assert_eq!(request_body_len(ApiKey::ApiVersions as i16, 0, &[0]), Ok(0));
}

#[test]
fn tagged_fields_are_bounded() {
    // DescribeCluster v0 is flexible: bool, then the tagged-fields section.
    // A count of 2^28 with nothing behind it.
    let err = check_request_body(
        ApiKey::DescribeCluster as i16,
        0,
        &[0, 0x80, 0x80, 0x80, 0x80, 0x01],
    )
    .unwrap_err();
    assert!(
        matches!(err, GuardError::LengthTooLarge { at: 1, .. }),
        "{err:?}"
    );
    // One unknown tag claiming 100 bytes with 1 present.
    let err =
        check_request_body(ApiKey::DescribeCluster as i16, 0, &[0, 1, 5, 100, 0]).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                at: 2,
                len: 100,
                remaining: 1,
                ..
            }
        ),
        "{err:?}"
    );
    // One unknown tag with its payload present is fine.
    assert_eq!(
        check_request_body(ApiKey::DescribeCluster as i16, 0, &[0, 1, 5, 2, 9, 9]),
        Ok(())
    );
}

/// Fetch v12 with no topics, the given tagged-fields section appended.
fn fetch_v12_with_tags(tags: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica_id
    body.extend_from_slice(&0i32.to_be_bytes()); // max_wait_ms
    body.extend_from_slice(&0i32.to_be_bytes()); // min_bytes
    body.extend_from_slice(&0i32.to_be_bytes()); // max_bytes
    body.push(0); // isolation_level
    body.extend_from_slice(&0i32.to_be_bytes()); // session_id
    body.extend_from_slice(&0i32.to_be_bytes()); // session_epoch
    body.push(1); // topics: empty
    body.push(1); // forgotten_topics_data: empty
    body.push(1); // rack_id: ""
    body.extend_from_slice(tags);
    body
}

#[test]
fn known_tagged_fields_are_walked_with_their_schema() {
    let key = ApiKey::Fetch as i16;
    // cluster_id = "ab": tag 0, size 3, compact string.
    assert_eq!(
        check_request_body(key, 12, &fetch_v12_with_tags(&[1, 0, 3, 3, b'a', b'b'])),
        Ok(())
    );
    // The declared size understates the payload: kafka-protocol would decode the string
    // from the main buffer anyway, so the guard refuses the disagreement.
    let body = fetch_v12_with_tags(&[1, 0, 1, 3, b'a', b'b']);
    let err = check_request_body(key, 12, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                field: "cluster_id",
                len: 2,
                remaining: 0,
                ..
            }
        ),
        "{err:?}"
    );
    // The declared size overstates the payload.
    let body = fetch_v12_with_tags(&[1, 0, 4, 3, b'a', b'b', 0]);
    let err = check_request_body(key, 12, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::TaggedFieldSize {
                tag: 0,
                declared: 4,
                actual: 3,
                ..
            }
        ),
        "{err:?}"
    );
    // A huge compact string inside a tagged field whose size is small.
    let body = fetch_v12_with_tags(&[1, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let err = check_request_body(key, 12, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                field: "cluster_id",
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Mutation fuzz under the counting allocator
// ---------------------------------------------------------------------------------------

/// Decodes an accepted body and asserts kafka-protocol's largest single allocation is
/// within the bound. Returns whether kafka-protocol decoded it successfully.
fn assert_decode_bounded(api: ApiKey, v: i16, body: &[u8], what: &str) -> bool {
    let buf = Bytes::copy_from_slice(body);
    let mut decoded = false;
    let largest = largest_allocation_during(|| decoded = decodes(api, v, buf));
    assert!(
        largest <= allocation_bound(body.len()),
        "{api:?} v{v} {what}: guard accepted a {}-byte body but decode allocated {largest} bytes at once",
        body.len()
    );
    decoded
}

#[test]
fn counting_allocator_sees_what_the_guard_prevents() {
    // Metadata v1 claiming 2^20 topics in a 4-byte body: kafka-protocol reserves room
    // for all of them before noticing the body is empty. (2^20 keeps the reservation
    // small enough to succeed; 2^31 - 1 would abort the process.)
    let body = 0x0010_0000i32.to_be_bytes();
    let err = check_request_body(ApiKey::Metadata as i16, 1, &body).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::LengthTooLarge {
                at: 0,
                field: "topics",
                ..
            }
        ),
        "{err:?}"
    );
    let buf = Bytes::copy_from_slice(&body);
    let mut decoded = true;
    let largest = largest_allocation_during(|| decoded = decodes(ApiKey::Metadata, 1, buf));
    assert!(!decoded);
    assert!(
        largest > allocation_bound(body.len()),
        "unguarded decode allocated only {largest} bytes"
    );
}

#[test]
fn mutated_bodies_accepted_by_the_guard_decode_within_the_allocation_bound() {
    let mut mutants = 0usize;
    let mut accepted = 0usize;
    let mut decoded = 0usize;
    for (api, v, what, body) in valid_encodings() {
        let (api, v) = (*api, *v);
        let key = api as i16;
        let mut try_body = |mutant: &[u8], how: &str| {
            mutants += 1;
            if check_request_body(key, v, mutant).is_ok() {
                accepted += 1;
                if assert_decode_bounded(api, v, mutant, &format!("{what} {how}")) {
                    decoded += 1;
                }
            }
        };
        for pos in 0..body.len() {
            let mut mutant = body.clone();
            for (slot, byte) in mutant[pos..].iter_mut().zip([0x7f, 0xff, 0xff, 0xff]) {
                *slot = byte;
            }
            try_body(&mutant, &format!("7fffffff@{pos}"));

            for byte in [
                0xff,
                0x00,
                body[pos].wrapping_add(1),
                body[pos].wrapping_sub(1),
            ] {
                let mut mutant = body.clone();
                mutant[pos] = byte;
                try_body(&mutant, &format!("{byte:#04x}@{pos}"));
            }
        }
        // Truncations.
        for end in 0..body.len() {
            try_body(&body[..end], &format!("truncated@{end}"));
        }
    }
    eprintln!(
        "mutation fuzz: {mutants} mutants, {accepted} accepted by the guard, {decoded} decoded"
    );
    assert!(accepted > 0 && decoded > 0);
}

/// Bodies made of many minimal array elements: the most elements per body byte, so the
/// highest ratio of `Vec::with_capacity` bytes to body bytes kafka-protocol can reach.
#[test]
fn dense_minimal_arrays_decode_within_the_allocation_bound() {
    const ELEMENTS: usize = 20_000;
    let cases: Vec<(ApiKey, i16, Vec<u8>)> = vec![
        (
            ApiKey::DescribeGroups,
            5,
            enc(
                &DescribeGroupsRequest::default().with_groups(vec![GroupId::default(); ELEMENTS]),
                5,
            ),
        ),
        (
            ApiKey::Metadata,
            9,
            enc(
                &MetadataRequest::default().with_topics(Some(vec![
                    metadata_request::MetadataRequestTopic::default();
                    ELEMENTS
                ])),
                9,
            ),
        ),
        (
            ApiKey::OffsetFetch,
            8,
            enc(
                &OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default();
                    ELEMENTS
                ]),
                8,
            ),
        ),
        (
            ApiKey::LeaveGroup,
            4,
            enc(
                &LeaveGroupRequest::default().with_members(vec![
                    leave_group_request::MemberIdentity::default();
                    ELEMENTS
                ]),
                4,
            ),
        ),
        (
            ApiKey::JoinGroup,
            6,
            enc(
                &JoinGroupRequest::default().with_protocols(vec![
                    join_group_request::JoinGroupRequestProtocol::default();
                    ELEMENTS
                ]),
                6,
            ),
        ),
        (
            ApiKey::CreatePartitions,
            2,
            enc(
                &CreatePartitionsRequest::default().with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_assignments(Some(vec![
                            create_partitions_request::CreatePartitionsAssignment::default();
                            ELEMENTS
                        ]));
                    1
                ]),
                2,
            ),
        ),
        (
            ApiKey::DescribeTopicPartitions,
            0,
            enc(
                &DescribeTopicPartitionsRequest::default().with_topics(vec![
                    describe_topic_partitions_request::TopicRequest::default();
                    ELEMENTS
                ]),
                0,
            ),
        ),
        (
            ApiKey::Fetch,
            12,
            enc(
                &FetchRequest::default()
                    .with_topics(vec![fetch_request::FetchTopic::default(); ELEMENTS]),
                12,
            ),
        ),
        (
            ApiKey::OffsetForLeaderEpoch,
            4,
            enc(
                &OffsetForLeaderEpochRequest::default().with_topics(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
                    ELEMENTS
                ]),
                4,
            ),
        ),
        (
            ApiKey::ElectLeaders,
            2,
            enc(
                &ElectLeadersRequest::default().with_topic_partitions(Some(vec![
                    elect_leaders_request::TopicPartitions::default();
                    ELEMENTS
                ])),
                2,
            ),
        ),
        (
            ApiKey::AlterPartitionReassignments,
            0,
            enc(
                &AlterPartitionReassignmentsRequest::default().with_topics(vec![
                    alter_partition_reassignments_request::ReassignableTopic::default();
                    ELEMENTS
                ]),
                0,
            ),
        ),
        (
            ApiKey::AlterPartitionReassignments,
            0,
            enc(
                &AlterPartitionReassignmentsRequest::default().with_topics(vec![
                    alter_partition_reassignments_request::ReassignableTopic::default()
                        .with_partitions(vec![
                            alter_partition_reassignments_request::ReassignablePartition::default();
                            ELEMENTS
                        ]);
                    1
                ]),
                0,
            ),
        ),
        (
            ApiKey::ListPartitionReassignments,
            0,
            enc(
                &ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
                    list_partition_reassignments_request::ListPartitionReassignmentsTopics::default();
                    ELEMENTS
                ])),
                0,
            ),
        ),
    ];
    for (api, v, body) in cases {
        assert_eq!(
            check_request_body(api as i16, v, &body),
            Ok(()),
            "{api:?} v{v}"
        );
        assert!(
            assert_decode_bounded(api, v, &body, "dense"),
            "{api:?} v{v}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Property tests: the guard never panics, and whatever it accepts decodes within bound.
// ---------------------------------------------------------------------------------------

const PROPTEST_PAIRS: &[(ApiKey, i16)] = &[
    (ApiKey::Produce, 3),
    (ApiKey::Produce, 9),
    (ApiKey::Fetch, 4),
    (ApiKey::Fetch, 12),
    (ApiKey::Fetch, 16),
    (ApiKey::Metadata, 1),
    (ApiKey::Metadata, 12),
    (ApiKey::ApiVersions, 3),
    (ApiKey::JoinGroup, 9),
    (ApiKey::OffsetFetch, 9),
    (ApiKey::DescribeTopicPartitions, 0),
    (ApiKey::DescribeCluster, 0),
    (ApiKey::ListGroups, 5),
    (ApiKey::OffsetForLeaderEpoch, 2),
    (ApiKey::ElectLeaders, 0),
    (ApiKey::ElectLeaders, 2),
    (ApiKey::AlterPartitionReassignments, 0),
    (ApiKey::ListPartitionReassignments, 0),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bodies_never_panic(
        pair in 0..PROPTEST_PAIRS.len(),
        body in prop::collection::vec(any::<u8>(), 0..96),
    ) {
        let (api, v) = PROPTEST_PAIRS[pair];
        if check_request_body(api as i16, v, &body).is_ok() {
            assert_decode_bounded(api, v, &body, "random");
        }
    }

    #[test]
    fn random_edits_of_valid_bodies_stay_bounded(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let encodings = valid_encodings();
        let (api, v, what, mut body) = encodings[pick.index(encodings.len())].clone();
        if !body.is_empty() {
            for (at, byte) in edits {
                let at = at.index(body.len());
                body[at] = byte;
            }
        }
        if check_request_body(api as i16, v, &body).is_ok() {
            assert_decode_bounded(api, v, &body, &format!("{what} random edits"));
        }
    }
}

/// Every API samsa advertises is advertised up to the newest version
/// kafka-protocol can decode its request in and encode its response in:
/// clients infer the broker's release from these maxima (kafka-python 3.x
/// reads Produce v13 as Kafka 4.1) and use the newest version both sides
/// list. (Checked for every API the guard tests know the request type of.)
#[test]
fn every_advertised_api_reaches_the_newest_version_kafka_protocol_encodes() {
    use kafka_protocol::protocol::{Message, Request};
    for api in samsa_protocol::versions::SUPPORTED_APIS {
        if !COVERED.iter().any(|c| c.0 == api.key) {
            continue;
        }
        let newest = with_request_type!(api.key, R => {
            <R as Message>::VERSIONS
                .max
                .min(<<R as Request>::Response as Message>::VERSIONS.max)
        });
        assert_eq!(
            api.max, newest,
            "{:?} advertised up to v{}",
            api.key, api.max
        );
    }
}

fn update_features(v: i16, f: Fill) -> UpdateFeaturesRequest {
    use update_features_request::FeatureUpdateKey;
    UpdateFeaturesRequest::default()
        .with_timeout_ms(60_000)
        .with_feature_updates(two(|i| {
            FeatureUpdateKey::default()
                .with_feature(StrBytes::from_static_str("group.version"))
                .with_max_version_level(i as i16)
                .with_allow_downgrade(v == 0)
                .with_upgrade_type(if v >= 1 { 2 } else { 1 })
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_validate_only(v >= 1)
        .with_unknown_tagged_fields(f.tags())
}

fn describe_quorum(f: Fill) -> DescribeQuorumRequest {
    use describe_quorum_request::{PartitionData, TopicData};
    DescribeQuorumRequest::default()
        .with_topics(two(|_| {
            TopicData::default()
                .with_topic_name(topic("__cluster_metadata"))
                .with_partitions(two(|i| {
                    PartitionData::default()
                        .with_partition_index(i)
                        .with_unknown_tagged_fields(f.tags())
                }))
                .with_unknown_tagged_fields(f.tags())
        }))
        .with_unknown_tagged_fields(f.tags())
}
