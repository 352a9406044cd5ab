//! Plain request and response structs mirroring the Kafka fields the coordinator needs
//! (error codes are `i16` with Kafka's numbers, see [`crate::codes`]), and the
//! [`Output`]s the coordinator hands back to the broker.
//!
//! The broker fills requests from the decoded Kafka requests (any supported version) and
//! encodes responses for the version asked; fields a version lacks are dropped or take
//! the Kafka default on the way in (`group_instance_id: None`, `rebalance_timeout_ms =
//! session_timeout_ms` for JoinGroup v0, `retention_time_ms: -1`, ...).

use bytes::Bytes;
use samsa_model::TopicId;

use crate::error::codes;

/// Opaque handle the broker gives each request that may be answered later (JoinGroup and
/// SyncGroup park until the rebalance moves on). Every token passed in is answered by
/// exactly one [`Output::Reply`], possibly from a later call or from
/// [`crate::Coordinator::unload`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyToken(pub u64);

/// Names the offsets of one committing [`Output::Append`] until they are replicated.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(pub u64);

/// The transactional producer a TxnOffsetCommit's batch is written for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnProducer {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
}

/// One `__consumer_offsets` record in Kafka's byte format (see [`crate::records`]);
/// `value: None` is a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Key bytes.
    pub key: Bytes,
    /// Value bytes, or `None` for a tombstone.
    pub value: Option<Bytes>,
}

/// What the broker must do after a call, **in order**.
///
/// Contract: an `Append` must be durable in `__consumer_offsets` (written as one record
/// batch to `partition`) before any later output of the same call — or of any later call
/// — is acted on. The simplest way is to append while still holding the coordinator
/// (e.g. under its mutex). If an append fails, the in-memory state is ahead of the log:
/// answer the remaining replies of that call with [`Response::with_error`]`(NOT_COORDINATOR)`,
/// call [`crate::Coordinator::unload`] and rebuild the coordinator by replaying the
/// partition log, as Kafka does when it loses a coordinator partition.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Append these records, as one batch, to `__consumer_offsets` partition `partition`.
    Append {
        /// The `__consumer_offsets` partition ([`crate::partition_for`] of the group).
        partition: u32,
        /// The records, in order.
        records: Vec<Record>,
        /// Set when the batch carries committed offsets: OffsetFetch does not show them
        /// until the broker reports the batch replicated with
        /// [`crate::Coordinator::commit_replicated`] (Kafka's pending offsets). An
        /// append that fails is handled as any failed append (unload and reload), which
        /// drops them.
        commit: Option<CommitId>,
        /// Set for TxnOffsetCommit: the batch is transactional, written with the
        /// producer's id and epoch (and no sequence, as Kafka's group coordinator
        /// writes it). Its offsets stay pending until a COMMIT marker of that producer
        /// in the partition (see [`crate::Coordinator::complete_transaction`]).
        transaction: Option<TxnProducer>,
    },
    /// Send `response` for the request that carried `token`.
    Reply {
        /// The request's token.
        token: ReplyToken,
        /// The answer.
        response: Response,
    },
}

/// A response to a request that changes state.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// JoinGroup.
    JoinGroup(JoinGroupResponse),
    /// SyncGroup.
    SyncGroup(SyncGroupResponse),
    /// Heartbeat.
    Heartbeat(HeartbeatResponse),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupResponse),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitResponse),
    /// DeleteGroups.
    DeleteGroups(DeleteGroupsResponse),
    /// OffsetDelete.
    OffsetDelete(OffsetDeleteResponse),
    /// ConsumerGroupHeartbeat.
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatResponse),
}

impl Response {
    /// The same kind of response, failed with `code` everywhere it carries an error code
    /// (used when an append fails, see [`Output`]).
    pub fn with_error(self, code: i16) -> Response {
        match self {
            Response::JoinGroup(r) => {
                Response::JoinGroup(JoinGroupResponse::error(code, r.member_id))
            }
            Response::SyncGroup(_) => Response::SyncGroup(SyncGroupResponse::error(code)),
            Response::Heartbeat(_) => Response::Heartbeat(HeartbeatResponse { error_code: code }),
            Response::LeaveGroup(r) => Response::LeaveGroup(LeaveGroupResponse {
                error_code: code,
                members: r.members,
            }),
            Response::OffsetCommit(mut r) => {
                for t in &mut r.topics {
                    for p in &mut t.partitions {
                        p.error_code = code;
                    }
                }
                Response::OffsetCommit(r)
            }
            Response::DeleteGroups(mut r) => {
                for g in &mut r.results {
                    g.error_code = code;
                }
                Response::DeleteGroups(r)
            }
            Response::OffsetDelete(_) => Response::OffsetDelete(OffsetDeleteResponse {
                error_code: code,
                topics: Vec::new(),
            }),
            Response::ConsumerGroupHeartbeat(_) => {
                Response::ConsumerGroupHeartbeat(ConsumerGroupHeartbeatResponse::error(code, None))
            }
        }
    }

    /// The top-level error code (for OffsetCommit / DeleteGroups: the first non-zero
    /// per-item code).
    pub fn error_code(&self) -> i16 {
        match self {
            Response::JoinGroup(r) => r.error_code,
            Response::SyncGroup(r) => r.error_code,
            Response::Heartbeat(r) => r.error_code,
            Response::LeaveGroup(r) => r.error_code,
            Response::OffsetCommit(r) => r
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code)
                .find(|c| *c != codes::NONE)
                .unwrap_or(codes::NONE),
            Response::DeleteGroups(r) => r
                .results
                .iter()
                .map(|g| g.error_code)
                .find(|c| *c != codes::NONE)
                .unwrap_or(codes::NONE),
            Response::OffsetDelete(r) => r.error_code,
            Response::ConsumerGroupHeartbeat(r) => r.error_code,
        }
    }
}

// ---------------------------------------------------------------------------------------
// JoinGroup

/// One protocol a joining member supports, in preference order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JoinGroupProtocol {
    /// The protocol name (e.g. an assignor name).
    pub name: String,
    /// Opaque protocol metadata (the consumer's subscription).
    pub metadata: Bytes,
}

/// JoinGroup v0–v9.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JoinGroupRequest {
    /// The request's API version (KIP-394 needs v4+, skip-assignment v9+).
    pub api_version: i16,
    /// The group id.
    pub group_id: String,
    /// The member's session timeout.
    pub session_timeout_ms: i32,
    /// The member's rebalance timeout (v0: the session timeout).
    pub rebalance_timeout_ms: i32,
    /// The member id ("" when joining for the first time).
    pub member_id: String,
    /// `group.instance.id` (v5+).
    pub group_instance_id: Option<String>,
    /// The protocol type (e.g. "consumer").
    pub protocol_type: String,
    /// The supported protocols, preferred first.
    pub protocols: Vec<JoinGroupProtocol>,
    /// The client's reason (v8+), informational.
    pub reason: Option<String>,
    /// The request header's client id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
}

/// One member as the leader sees it in its JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JoinGroupResponseMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JoinGroupResponse {
    /// Kafka error code.
    pub error_code: i16,
    /// The generation id (-1 on errors).
    pub generation_id: i32,
    /// The protocol type (v7+).
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id ("" on errors).
    pub leader: String,
    /// v9+: the leader must not compute an assignment (static leader rejoin).
    pub skip_assignment: bool,
    /// The member's id (the new id with MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// All members, for the leader only.
    pub members: Vec<JoinGroupResponseMember>,
}

impl JoinGroupResponse {
    /// A failed JoinGroup.
    pub fn error(code: i16, member_id: String) -> Self {
        JoinGroupResponse {
            error_code: code,
            generation_id: -1,
            member_id,
            ..Default::default()
        }
    }
}

// ---------------------------------------------------------------------------------------
// SyncGroup

/// One member's assignment in the leader's SyncGroup.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SyncGroupAssignment {
    /// Member id.
    pub member_id: String,
    /// Opaque assignment.
    pub assignment: Bytes,
}

/// SyncGroup v0–v5.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SyncGroupRequest {
    /// API version.
    pub api_version: i16,
    /// Group id.
    pub group_id: String,
    /// Generation id.
    pub generation_id: i32,
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` (v3+).
    pub group_instance_id: Option<String>,
    /// Protocol type (v5+).
    pub protocol_type: Option<String>,
    /// Protocol name (v5+).
    pub protocol_name: Option<String>,
    /// Assignments (leader only).
    pub assignments: Vec<SyncGroupAssignment>,
}

/// SyncGroup response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SyncGroupResponse {
    /// Kafka error code.
    pub error_code: i16,
    /// Protocol type (v5+).
    pub protocol_type: Option<String>,
    /// Protocol name (v5+).
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncGroupResponse {
    /// A failed SyncGroup.
    pub fn error(code: i16) -> Self {
        SyncGroupResponse {
            error_code: code,
            ..Default::default()
        }
    }
}

// ---------------------------------------------------------------------------------------
// Heartbeat / LeaveGroup

/// Heartbeat v0–v4.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HeartbeatRequest {
    /// Group id.
    pub group_id: String,
    /// Generation id.
    pub generation_id: i32,
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` (v3+).
    pub group_instance_id: Option<String>,
}

/// Heartbeat response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HeartbeatResponse {
    /// Kafka error code.
    pub error_code: i16,
}

/// One member leaving (v0–v2 requests carry exactly one, with no instance id).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LeaveGroupMember {
    /// Member id ("" to remove a static member by instance id, v3+).
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Reason (v5+), informational.
    pub reason: Option<String>,
}

/// LeaveGroup v0–v5.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LeaveGroupRequest {
    /// API version (v0–v2: the top-level error is the member's error).
    pub api_version: i16,
    /// Group id.
    pub group_id: String,
    /// The leaving members.
    pub members: Vec<LeaveGroupMember>,
}

/// Per-member LeaveGroup result (v3+).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LeaveGroupMemberResponse {
    /// Member id as sent.
    pub member_id: String,
    /// Instance id as sent.
    pub group_instance_id: Option<String>,
    /// Kafka error code.
    pub error_code: i16,
}

/// LeaveGroup response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LeaveGroupResponse {
    /// Top-level Kafka error code.
    pub error_code: i16,
    /// Per-member results (v3+).
    pub members: Vec<LeaveGroupMemberResponse>,
}

// ---------------------------------------------------------------------------------------
// OffsetCommit / OffsetFetch / OffsetDelete

/// One committed partition.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetCommitPartition {
    /// Partition index.
    pub partition_index: i32,
    /// Offset to commit.
    pub committed_offset: i64,
    /// Leader epoch (v6+, else -1).
    pub committed_leader_epoch: i32,
    /// Metadata (null = "").
    pub committed_metadata: Option<String>,
}

/// One committed topic.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetCommitTopic {
    /// Topic name (the broker answers UNKNOWN_TOPIC_OR_PARTITION for unknown ones itself).
    pub name: String,
    /// The topic's id when the broker knows it (KIP-848 members' commits at an older
    /// member epoch are checked against per-partition assignment epochs, KIP-1251,
    /// which are kept by topic id; without it only the current epoch is accepted).
    pub topic_id: Option<samsa_model::TopicId>,
    /// Partitions.
    pub partitions: Vec<OffsetCommitPartition>,
}

/// OffsetCommit v2–v9.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetCommitRequest {
    /// API version.
    pub api_version: i16,
    /// Group id.
    pub group_id: String,
    /// Generation (classic) or member epoch (KIP-848); -1 for simple/admin commits.
    pub generation_id_or_member_epoch: i32,
    /// Member id ("" for simple commits).
    pub member_id: String,
    /// `group.instance.id` (v7+).
    pub group_instance_id: Option<String>,
    /// Retention time (v2–v4; -1 = broker default).
    pub retention_time_ms: i64,
    /// Topics.
    pub topics: Vec<OffsetCommitTopic>,
}

/// TxnOffsetCommit v0–v5 (KIP-98; KIP-447 adds the group fields in v3). Fields a
/// version lacks take Kafka's defaults (`generation_id: -1`, `member_id: ""`,
/// `group_instance_id: None`). The broker answers UNKNOWN_TOPIC_OR_PARTITION for
/// partitions that do not exist before calling the coordinator; the response is an
/// [`OffsetCommitResponse`] (same shape).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TxnOffsetCommitRequest {
    /// API version.
    pub api_version: i16,
    /// The producer's `transactional.id`.
    pub transactional_id: String,
    /// Group id.
    pub group_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// Generation (classic) or member epoch (KIP-848); -1 if not given.
    pub generation_id: i32,
    /// Member id ("" if not given).
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Topics (`committed_metadata` as in OffsetCommit).
    pub topics: Vec<OffsetCommitTopic>,
}

/// A partition's error code.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PartitionResult {
    /// Partition index.
    pub partition_index: i32,
    /// Kafka error code.
    pub error_code: i16,
}

/// One topic of an OffsetCommit response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetCommitTopicResponse {
    /// Topic name.
    pub name: String,
    /// Partitions.
    pub partitions: Vec<PartitionResult>,
}

/// OffsetCommit response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetCommitResponse {
    /// Topics, in request order.
    pub topics: Vec<OffsetCommitTopicResponse>,
}

/// Partitions of one topic to fetch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetFetchTopic {
    /// Topic name.
    pub name: String,
    /// Partitions.
    pub partition_indexes: Vec<i32>,
}

/// One group of an OffsetFetch (v1–v7 carry exactly one).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetFetchGroup {
    /// Group id.
    pub group_id: String,
    /// v9+: the KIP-848 member asking (None for admin/classic clients).
    pub member_id: Option<String>,
    /// v9+: its member epoch (-1 if none).
    pub member_epoch: i32,
    /// Topics; `None` = all committed partitions.
    pub topics: Option<Vec<OffsetFetchTopic>>,
}

/// OffsetFetch v1–v9.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetFetchRequest {
    /// API version.
    pub api_version: i16,
    /// Groups.
    pub groups: Vec<OffsetFetchGroup>,
    /// v7+: only return stable offsets (no transactions exist yet, so always stable).
    pub require_stable: bool,
}

/// One fetched partition.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetFetchPartitionResponse {
    /// Partition index.
    pub partition_index: i32,
    /// Committed offset, -1 if none.
    pub committed_offset: i64,
    /// Committed leader epoch, -1 if none.
    pub committed_leader_epoch: i32,
    /// Metadata ("" if none).
    pub metadata: Option<String>,
    /// Kafka error code.
    pub error_code: i16,
}

/// One fetched topic.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetFetchTopicResponse {
    /// Topic name.
    pub name: String,
    /// Partitions.
    pub partitions: Vec<OffsetFetchPartitionResponse>,
}

/// One group's fetch result (for v1–v7 the broker flattens the single group: its
/// `error_code` is the top-level error).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetFetchGroupResponse {
    /// Group id.
    pub group_id: String,
    /// Kafka error code.
    pub error_code: i16,
    /// Topics.
    pub topics: Vec<OffsetFetchTopicResponse>,
}

/// OffsetFetch response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetFetchResponse {
    /// Groups, in request order.
    pub groups: Vec<OffsetFetchGroupResponse>,
}

/// Partitions of one topic whose offsets to delete.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetDeleteTopic {
    /// Topic name.
    pub name: String,
    /// Partitions.
    pub partitions: Vec<i32>,
}

/// OffsetDelete v0.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetDeleteRequest {
    /// Group id.
    pub group_id: String,
    /// Topics.
    pub topics: Vec<OffsetDeleteTopic>,
}

/// One topic of an OffsetDelete response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetDeleteTopicResponse {
    /// Topic name.
    pub name: String,
    /// Partitions.
    pub partitions: Vec<PartitionResult>,
}

/// OffsetDelete response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetDeleteResponse {
    /// Top-level Kafka error code.
    pub error_code: i16,
    /// Topics.
    pub topics: Vec<OffsetDeleteTopicResponse>,
}

// ---------------------------------------------------------------------------------------
// ListGroups / DescribeGroups / DeleteGroups

/// ListGroups v0–v5.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ListGroupsRequest {
    /// v4+: only groups in these states (case-insensitive; empty = all).
    pub states_filter: Vec<String>,
    /// v5+: only groups of these types (`classic`, `consumer`; case-insensitive).
    pub types_filter: Vec<String>,
}

/// One listed group.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ListedGroup {
    /// Group id.
    pub group_id: String,
    /// Protocol type ("" for simple groups, "consumer" for KIP-848 groups).
    pub protocol_type: String,
    /// State name (v4+).
    pub group_state: String,
    /// `classic` or `consumer` (v5+).
    pub group_type: String,
}

/// ListGroups response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ListGroupsResponse {
    /// Kafka error code.
    pub error_code: i16,
    /// Groups, sorted by id.
    pub groups: Vec<ListedGroup>,
}

/// One described classic member.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DescribedGroupMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` (v4+).
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the selected protocol (Stable groups only).
    pub member_metadata: Bytes,
    /// Assignment (Stable groups only).
    pub member_assignment: Bytes,
}

/// One described group.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DescribedGroup {
    /// Kafka error code.
    pub error_code: i16,
    /// Group id.
    pub group_id: String,
    /// State name ("Dead" for unknown groups).
    pub group_state: String,
    /// Protocol type.
    pub protocol_type: String,
    /// Selected protocol (Stable groups only).
    pub protocol_data: String,
    /// Members.
    pub members: Vec<DescribedGroupMember>,
}

/// DescribeGroups response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DescribeGroupsResponse {
    /// Groups, in request order.
    pub groups: Vec<DescribedGroup>,
}

/// One DeleteGroups result.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeletableGroupResult {
    /// Group id.
    pub group_id: String,
    /// Kafka error code.
    pub error_code: i16,
}

/// DeleteGroups response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeleteGroupsResponse {
    /// Results, in request order.
    pub results: Vec<DeletableGroupResult>,
}

// ---------------------------------------------------------------------------------------
// KIP-848

/// Partitions of one topic, by topic id.
#[derive(Clone, Debug, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct TopicPartitions {
    /// Topic id.
    pub topic_id: TopicId,
    /// Partition indexes.
    pub partitions: Vec<i32>,
}

/// ConsumerGroupHeartbeat v0–v1. `None` / -1 fields mean "unchanged" after joining.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConsumerGroupHeartbeatRequest {
    /// API version (v1+: the client generates its member id).
    pub api_version: i16,
    /// Group id.
    pub group_id: String,
    /// Member id ("" to let the coordinator pick one, v0 joins only).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 static leave, else the current member epoch.
    pub member_epoch: i32,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Rebalance timeout (-1 unchanged).
    pub rebalance_timeout_ms: i32,
    /// Subscribed topic names.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Subscribed regex (RE2 syntax; empty means none).
    pub subscribed_topic_regex: Option<String>,
    /// Server-side assignor.
    pub server_assignor: Option<String>,
    /// Partitions the member owns.
    pub topic_partitions: Option<Vec<TopicPartitions>>,
    /// Request header client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
}

/// ConsumerGroupHeartbeat response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConsumerGroupHeartbeatResponse {
    /// Kafka error code.
    pub error_code: i16,
    /// Error message.
    pub error_message: Option<String>,
    /// The member id.
    pub member_id: Option<String>,
    /// The member epoch.
    pub member_epoch: i32,
    /// Heartbeat interval.
    pub heartbeat_interval_ms: i32,
    /// The partitions the member should own, when it must (re)learn them.
    pub assignment: Option<Vec<TopicPartitions>>,
}

impl ConsumerGroupHeartbeatResponse {
    /// A failed heartbeat.
    pub fn error(code: i16, message: Option<String>) -> Self {
        ConsumerGroupHeartbeatResponse {
            error_code: code,
            error_message: message,
            ..Default::default()
        }
    }
}

/// ConsumerGroupDescribe v0–v1.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConsumerGroupDescribeRequest {
    /// Group ids.
    pub group_ids: Vec<String>,
}

/// Partitions of one topic with its name.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NamedTopicPartitions {
    /// Topic id.
    pub topic_id: TopicId,
    /// Topic name ("" if the topic no longer exists).
    pub topic_name: String,
    /// Partitions.
    pub partitions: Vec<i32>,
}

/// One described KIP-848 member.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConsumerDescribedMember {
    /// Member id.
    pub member_id: String,
    /// Instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Member epoch.
    pub member_epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed regex.
    pub subscribed_topic_regex: Option<String>,
    /// Current assignment.
    pub assignment: Vec<NamedTopicPartitions>,
    /// Target assignment.
    pub target_assignment: Vec<NamedTopicPartitions>,
    /// v1+: 1 = consumer protocol member (samsa has no classic members in such groups).
    pub member_type: i8,
}

/// One described KIP-848 group.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConsumerDescribedGroup {
    /// Kafka error code.
    pub error_code: i16,
    /// Error message.
    pub error_message: Option<String>,
    /// Group id.
    pub group_id: String,
    /// State name (Empty / Assigning / Reconciling / Stable).
    pub group_state: String,
    /// Group epoch.
    pub group_epoch: i32,
    /// Target assignment epoch.
    pub assignment_epoch: i32,
    /// Assignor in use.
    pub assignor_name: String,
    /// Members.
    pub members: Vec<ConsumerDescribedMember>,
}

/// ConsumerGroupDescribe response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConsumerGroupDescribeResponse {
    /// Groups, in request order.
    pub groups: Vec<ConsumerDescribedGroup>,
}
