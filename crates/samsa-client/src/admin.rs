//! Admin operations: topics, partitions, configs, records, cluster, consumer
//! groups and their offsets, offset lookups (ListOffsets), and partition
//! placement (ElectLeaders, Alter/ListPartitionReassignments).

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    alter_configs_request, alter_partition_reassignments_request, alter_replica_log_dirs_request,
    create_partitions_request, create_topics_request, delete_records_request,
    delete_topics_request, describe_configs_request, elect_leaders_request,
    incremental_alter_configs_request, list_offsets_request, list_partition_reassignments_request,
    AlterConfigsRequest, AlterPartitionReassignmentsRequest, AlterReplicaLogDirsRequest, ApiKey,
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeLogDirsRequest,
    ElectLeadersRequest, IncrementalAlterConfigsRequest, ListOffsetsRequest,
    ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::client::{codes, BrokerInfo, Client, TopicInfo};
use crate::error::{is_retriable_code, ClientError};
use crate::group_protocol::Assignment;

mod consumer_group;
mod groups;
mod placement;
pub(crate) use groups::{commit_offsets, fetch_committed};
mod features;
pub use features::{FeatureInfo, FeatureMetadata, FeatureUpgradeType};

/// Kafka's ConfigResource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// Kafka 4.x's group config resource (`ConfigResource.Type.GROUP`).
pub const RESOURCE_GROUP: i8 = 32;

/// Kafka's ConfigSource values.
mod topic_partitions;
pub use topic_partitions::{DESCRIBED_PARTITIONS_MAX, PARTITION_LIMIT_DEFAULT};
#[cfg(test)]
pub(crate) mod fake_broker;
mod quorum;
mod scram;
pub use quorum::{QuorumEndpoint, QuorumInfo, QuorumReplica};
pub use scram::{ScramResults, ScramUpsertion, ScramUser};
mod transactions;
pub use transactions::{
    AbortTransactionSpec, ListTransactionsFilter, PartitionProducers, ProducerState,
    TransactionDescription, TransactionListing,
};

pub mod config_source {
    pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
    pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    pub const DEFAULT_CONFIG: i8 = 5;
    pub const GROUP_CONFIG: i8 = 8;

    /// The name Kafka's tools print for a source.
    pub fn name(source: i8) -> &'static str {
        match source {
            1 => "DYNAMIC_TOPIC_CONFIG",
            2 => "DYNAMIC_BROKER_CONFIG",
            3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            4 => "STATIC_BROKER_CONFIG",
            5 => "DEFAULT_CONFIG",
            6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
            7 => "CLIENT_METRICS_CONFIG",
            8 => "GROUP_CONFIG",
            _ => "UNKNOWN",
        }
    }
}

/// A topic to create.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    /// -1 = the broker's `num.partitions`.
    pub partitions: i32,
    /// -1 = the broker's `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// What CreateTopics reported for a created topic.
#[derive(Clone, Debug)]
pub struct CreatedTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
}

/// A config resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    /// A broker id; `None` = the cluster-wide broker default.
    Broker(Option<i32>),
    /// A consumer group's configs, by group id (the group need not exist).
    Group(String),
}

impl ConfigResource {
    fn kind_and_name(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (RESOURCE_TOPIC, t.clone()),
            ConfigResource::Broker(id) => (
                RESOURCE_BROKER,
                id.map(|i| i.to_string()).unwrap_or_default(),
            ),
            ConfigResource::Group(g) => (RESOURCE_GROUP, g.clone()),
        }
    }

    fn describe(&self) -> String {
        match self {
            ConfigResource::Topic(t) => format!("topic {t}"),
            ConfigResource::Broker(Some(id)) => format!("broker {id}"),
            ConfigResource::Broker(None) => "the broker defaults".to_string(),
            ConfigResource::Group(g) => format!("group {g}"),
        }
    }
}

/// One config as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
}

impl ConfigEntry {
    /// Whether the value is the built-in default (Kafka's `isDefault`).
    pub fn is_default(&self) -> bool {
        self.source == config_source::DEFAULT_CONFIG
    }
}

/// A change to one config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterOp {
    Set(String, String),
    Delete(String),
}

/// DescribeCluster's answer.
#[derive(Clone, Debug)]
pub struct ClusterDescription {
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
}

/// A group as ListGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty if the broker does not report states (ListGroups < v4).
    pub state: String,
    pub coordinator: i32,
}

/// A member of a described group.
#[derive(Clone, Debug)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Decoded from the consumer protocol's assignment bytes (classic), or
    /// the member's current assignment (consumer protocol).
    pub assignment: Assignment,
    /// What ConsumerGroupDescribe adds for a consumer-protocol group.
    pub consumer: Option<ConsumerMember>,
}

/// A member of a consumer-protocol (KIP-848) group.
#[derive(Clone, Debug)]
pub struct ConsumerMember {
    pub member_epoch: i32,
    pub target_assignment: Assignment,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// `Some(false)`: a classic member of a consumer group (migration);
    /// `None` when the broker does not say (ConsumerGroupDescribe v0).
    pub upgraded: Option<bool>,
}

/// A group as DescribeGroups or ConsumerGroupDescribe reports it.
#[derive(Clone, Debug)]
pub struct GroupDescription {
    pub group_id: String,
    pub error_code: i16,
    pub state: String,
    pub protocol_type: String,
    /// The classic protocol chosen, or a consumer group's server assignor.
    pub protocol: String,
    pub members: Vec<GroupMember>,
    pub coordinator: i32,
    /// (group epoch, target assignment epoch) of a consumer-protocol group.
    pub epochs: Option<(i32, i32)>,
}

/// Which offset ListOffsets looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetQuery {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at least this (ms since epoch).
    Timestamp(i64),
}

impl OffsetQuery {
    fn wire(self) -> i64 {
        match self {
            OffsetQuery::Earliest => -2,
            OffsetQuery::Latest => -1,
            OffsetQuery::Timestamp(t) => t,
        }
    }
}

/// A ListOffsets answer for one partition. `offset` is -1 when no record has a
/// timestamp at or after the one asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: i64,
    pub timestamp: i64,
}

/// A committed offset of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub metadata: Option<String>,
    /// The leader epoch the committer saw at this offset, if it said.
    pub leader_epoch: Option<i32>,
}

/// Topic-partition key used in results.
pub type Tp = (String, i32);

/// Kafka error codes the partition placement operations answer with.
pub mod placement_codes {
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const NOT_CONTROLLER: i16 = 41;
    pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
    pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
    pub const ELECTION_NOT_NEEDED: i16 = 84;
    pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
}

/// Kafka's leader election types (ElectLeaders v1+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the first replica of each partition, if it is a live
    /// in-sync replica.
    Preferred,
    /// Elect a leader for partitions that have none, from outside the ISR if
    /// need be (may lose acknowledged records).
    Unclean,
}

impl ElectionType {
    /// The value sent on the wire.
    pub fn wire(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }

    /// The name Kafka's tools print (`PREFERRED`, `UNCLEAN`).
    pub fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }
}

impl std::fmt::Display for ElectionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ElectionType {
    type Err = String;

    /// `preferred` or `unclean`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "preferred" => Ok(ElectionType::Preferred),
            "unclean" => Ok(ElectionType::Unclean),
            other => Err(format!(
                "unknown election type {other:?}: use PREFERRED or UNCLEAN"
            )),
        }
    }
}

/// The broker's answer for each partition of a per-partition admin request:
/// `Ok(())` or the partition's Kafka error (e.g. `ELECTION_NOT_NEEDED`).
pub type PartitionResults = BTreeMap<Tp, Result<(), ClientError>>;

/// One log directory of a broker (DescribeLogDirs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDirDescription {
    pub dir: String,
    /// Non-zero when the directory is offline (KAFKA_STORAGE_ERROR).
    pub error_code: i16,
    pub total_bytes: i64,
    pub usable_bytes: i64,
    pub replicas: Vec<LogDirReplica>,
}

/// One replica in a log directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDirReplica {
    pub topic: String,
    pub partition: i32,
    pub size: i64,
    pub offset_lag: i64,
    /// A future replica: the target of a move between log directories.
    pub is_future: bool,
}

/// A reassignment in progress (ListPartitionReassignments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OngoingReassignment {
    /// The current replica set: the target followed by the replicas being removed.
    pub replicas: Vec<i32>,
    /// Replicas still catching up to join the ISR.
    pub adding_replicas: Vec<i32>,
    /// Replicas that leave once the added ones are in sync.
    pub removing_replicas: Vec<i32>,
}

/// Groups `(topic, partition, x)` by topic, keeping the order of first appearance.
fn by_topic<T>(items: impl IntoIterator<Item = (String, i32, T)>) -> Vec<(String, Vec<(i32, T)>)> {
    let mut out: Vec<(String, Vec<(i32, T)>)> = Vec::new();
    for (t, p, x) in items {
        match out.iter_mut().find(|(name, _)| *name == t) {
            Some((_, ps)) => ps.push((p, x)),
            None => out.push((t, vec![(p, x)])),
        }
    }
    out
}

fn partition_result(
    topic: &str,
    partition: i32,
    code: i16,
    message: Option<String>,
) -> Result<(), ClientError> {
    ClientError::check(code, message, format!("partition {topic}-{partition}"))
}

/// Admin operations over a [`Client`].
#[derive(Clone)]
pub struct Admin {
    client: Client,
    /// Timeout passed to the broker in CreateTopics/DeleteTopics/...
    pub operation_timeout_ms: i32,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(sb(s))
}

fn opt_string(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

impl Admin {
    pub fn new(client: Client) -> Admin {
        Admin {
            client,
            operation_timeout_ms: 30_000,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    // ---------------------------------------------------------------- topics

    /// CreateTopics for one topic.
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<CreatedTopic, ClientError> {
        let conn = self.client.admin_connection().await?;
        let v = conn.version(ApiKey::CreateTopics)?;
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(self.operation_timeout_ms)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(topic_name(&topic.name))
                .with_num_partitions(topic.partitions)
                .with_replication_factor(topic.replication_factor)
                .with_configs(
                    topic
                        .configs
                        .iter()
                        .map(|(k, val)| {
                            create_topics_request::CreatableTopicConfig::default()
                                .with_name(sb(k))
                                .with_value(Some(sb(val)))
                        })
                        .collect(),
                )]);
        let resp = conn.send_version(&req, v).await?;
        let r = resp
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic.name)
            .ok_or_else(|| {
                ClientError::Invalid(format!("CreateTopics did not answer for {}", topic.name))
            })?;
        ClientError::check(
            r.error_code,
            opt_string(&r.error_message),
            format!("topic {}", topic.name),
        )?;
        self.client.invalidate_topic(&topic.name);
        Ok(CreatedTopic {
            name: topic.name.clone(),
            partitions: r.num_partitions,
            replication_factor: r.replication_factor,
        })
    }

    /// DeleteTopics for one topic (by name).
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let conn = self.client.admin_connection().await?;
        let v = conn.version(ApiKey::DeleteTopics)?;
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(self.operation_timeout_ms);
        if v >= 6 {
            req = req.with_topics(vec![delete_topics_request::DeleteTopicState::default()
                .with_name(Some(topic_name(name)))]);
        } else {
            req = req.with_topic_names(vec![topic_name(name)]);
        }
        let resp = conn.send_version(&req, v).await?;
        let r = resp.responses.first().ok_or_else(|| {
            ClientError::Invalid(format!("DeleteTopics did not answer for {name}"))
        })?;
        ClientError::check(
            r.error_code,
            opt_string(&r.error_message),
            format!("topic {name}"),
        )?;
        self.client.invalidate_topic(name);
        Ok(())
    }

    /// Every topic (sorted by name); internal ones only if asked.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<TopicInfo>, ClientError> {
        let mut topics = self.client.fetch_metadata(None, false).await?;
        topics.retain(|t| t.error_code == 0 && (include_internal || !t.is_internal));
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Metadata of the named topics (each must exist) or of all topics.
    pub async fn describe_topics(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<TopicInfo>, ClientError> {
        match names {
            None => self.list_topics(false).await,
            Some(names) => {
                let infos = self.client.fetch_metadata(Some(names), false).await?;
                topic_partitions::named_topics(names, |name| {
                    infos.iter().find(|t| t.name == name).cloned()
                })
            }
        }
    }

    /// CreatePartitions: grow `topic` to `total` partitions.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<(), ClientError> {
        let conn = self.client.admin_connection().await?;
        let v = conn.version(ApiKey::CreatePartitions)?;
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(self.operation_timeout_ms)
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic_name(topic))
                    .with_count(total)
                    .with_assignments(None),
            ]);
        let resp = conn.send_version(&req, v).await?;
        let r = resp.results.first().ok_or_else(|| {
            ClientError::Invalid(format!("CreatePartitions did not answer for {topic}"))
        })?;
        ClientError::check(
            r.error_code,
            opt_string(&r.error_message),
            format!("topic {topic}"),
        )?;
        self.client.invalidate_topic(topic);
        Ok(())
    }

    // --------------------------------------------------------------- configs

    /// Every config of a resource (DescribeConfigs), sorted by name.
    pub async fn describe_configs(
        &self,
        resource: &ConfigResource,
    ) -> Result<Vec<ConfigEntry>, ClientError> {
        let (kind, name) = resource.kind_and_name();
        let conn = match resource {
            ConfigResource::Broker(Some(id)) => self.client.broker_connection(*id).await?,
            _ => self.client.any_connection().await?,
        };
        let v = conn.version(ApiKey::DescribeConfigs)?;
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(false)
            .with_include_documentation(false)
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(kind)
                    .with_resource_name(sb(&name))
                    .with_configuration_keys(None),
            ]);
        let resp = conn.send_version(&req, v).await?;
        let r = resp.results.first().ok_or_else(|| {
            ClientError::Invalid(format!(
                "DescribeConfigs did not answer for {}",
                resource.describe()
            ))
        })?;
        ClientError::check(
            r.error_code,
            opt_string(&r.error_message),
            resource.describe(),
        )?;
        let mut entries: Vec<ConfigEntry> = r
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: opt_string(&c.value),
                source: c.config_source,
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Applies config changes: IncrementalAlterConfigs when the broker has it,
    /// else AlterConfigs with the resource's current dynamic configs merged.
    pub async fn alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterOp],
    ) -> Result<(), ClientError> {
        let (kind, name) = resource.kind_and_name();
        let conn = match resource {
            ConfigResource::Broker(Some(id)) => self.client.broker_connection(*id).await?,
            _ => self.client.admin_connection().await?,
        };
        if let Some(v) = conn.versions().version(ApiKey::IncrementalAlterConfigs) {
            let configs = ops
                .iter()
                .map(|op| match op {
                    AlterOp::Set(k, val) => {
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(sb(k))
                            .with_config_operation(0)
                            .with_value(Some(sb(val)))
                    }
                    AlterOp::Delete(k) => {
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(sb(k))
                            .with_config_operation(1)
                            .with_value(None)
                    }
                })
                .collect();
            let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(kind)
                    .with_resource_name(sb(&name))
                    .with_configs(configs),
            ]);
            let resp = conn.send_version(&req, v).await?;
            let r = resp.responses.first().ok_or_else(|| {
                ClientError::Invalid("IncrementalAlterConfigs returned no result".into())
            })?;
            return ClientError::check(
                r.error_code,
                opt_string(&r.error_message),
                resource.describe(),
            );
        }
        let v = conn.version(ApiKey::AlterConfigs)?;
        // AlterConfigs replaces the whole dynamic set: start from what is set now.
        let dynamic_source = match resource {
            ConfigResource::Topic(_) => config_source::DYNAMIC_TOPIC_CONFIG,
            ConfigResource::Broker(Some(_)) => config_source::DYNAMIC_BROKER_CONFIG,
            ConfigResource::Broker(None) => config_source::DYNAMIC_DEFAULT_BROKER_CONFIG,
            ConfigResource::Group(_) => config_source::GROUP_CONFIG,
        };
        let mut set: BTreeMap<String, String> = self
            .describe_configs(resource)
            .await?
            .into_iter()
            .filter(|e| e.source == dynamic_source)
            .filter_map(|e| e.value.map(|v| (e.name, v)))
            .collect();
        for op in ops {
            match op {
                AlterOp::Set(k, val) => {
                    set.insert(k.clone(), val.clone());
                }
                AlterOp::Delete(k) => {
                    set.remove(k);
                }
            }
        }
        let req = AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(sb(&name))
                .with_configs(
                    set.iter()
                        .map(|(k, val)| {
                            alter_configs_request::AlterableConfig::default()
                                .with_name(sb(k))
                                .with_value(Some(sb(val)))
                        })
                        .collect(),
                ),
        ]);
        let resp = conn.send_version(&req, v).await?;
        let r = resp
            .responses
            .first()
            .ok_or_else(|| ClientError::Invalid("AlterConfigs returned no result".into()))?;
        ClientError::check(
            r.error_code,
            opt_string(&r.error_message),
            resource.describe(),
        )
    }

    // --------------------------------------------------------------- records

    /// DeleteRecords: moves each partition's log start offset up to the given
    /// offset (-1 = the high watermark). Returns the new low watermarks.
    pub async fn delete_records(
        &self,
        targets: &[(String, i32, i64)],
    ) -> Result<BTreeMap<Tp, i64>, ClientError> {
        let by_leader = self
            .group_by_leader(targets.iter().map(|(t, p, o)| (t.clone(), *p, *o)))
            .await?;
        let mut out = BTreeMap::new();
        for (leader, items) in by_leader {
            let mut topics: BTreeMap<String, Vec<delete_records_request::DeleteRecordsPartition>> =
                BTreeMap::new();
            for (t, p, o) in &items {
                topics.entry(t.clone()).or_default().push(
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(*p)
                        .with_offset(*o),
                );
            }
            let (resp, _) = self
                .client
                .send_to(leader, ApiKey::DeleteRecords, |_| {
                    DeleteRecordsRequest::default()
                        .with_timeout_ms(self.operation_timeout_ms)
                        .with_topics(
                            topics
                                .iter()
                                .map(|(t, ps)| {
                                    delete_records_request::DeleteRecordsTopic::default()
                                        .with_name(topic_name(t))
                                        .with_partitions(ps.clone())
                                })
                                .collect(),
                        )
                })
                .await?;
            for t in &resp.topics {
                for p in &t.partitions {
                    ClientError::check(
                        p.error_code,
                        None,
                        format!("partition {}-{}", t.name.0, p.partition_index),
                    )?;
                    out.insert((t.name.0.to_string(), p.partition_index), p.low_watermark);
                }
            }
        }
        Ok(out)
    }

    /// ListOffsets for the given partitions, routed to their leaders (retried
    /// after a metadata refresh when leadership moved).
    pub async fn list_offsets(
        &self,
        partitions: &[Tp],
        query: OffsetQuery,
        isolation_level: i8,
    ) -> Result<BTreeMap<Tp, ListedOffset>, ClientError> {
        let mut out = BTreeMap::new();
        let mut todo: Vec<Tp> = partitions.to_vec();
        let mut attempt = 0;
        while !todo.is_empty() {
            let by_leader = self
                .group_by_leader(todo.iter().map(|(t, p)| (t.clone(), *p, ())))
                .await?;
            let mut retry = Vec::new();
            for (leader, items) in by_leader {
                let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (t, p, ()) in &items {
                    topics.entry(t.clone()).or_default().push(*p);
                }
                let (resp, _) = self
                    .client
                    .send_to(leader, ApiKey::ListOffsets, |_| {
                        ListOffsetsRequest::default()
                            .with_replica_id(BrokerId(-1))
                            .with_isolation_level(isolation_level)
                            .with_topics(
                                topics
                                    .iter()
                                    .map(|(t, ps)| {
                                        list_offsets_request::ListOffsetsTopic::default()
                                            .with_name(topic_name(t))
                                            .with_partitions(
                                                ps.iter()
                                                    .map(|p| {
                                                        list_offsets_request::ListOffsetsPartition::default()
                                                            .with_partition_index(*p)
                                                            .with_current_leader_epoch(-1)
                                                            .with_timestamp(query.wire())
                                                    })
                                                    .collect(),
                                            )
                                    })
                                    .collect(),
                            )
                    })
                    .await?;
                for t in &resp.topics {
                    for p in &t.partitions {
                        let tp = (t.name.0.to_string(), p.partition_index);
                        let retriable = matches!(
                            p.error_code,
                            codes::NOT_LEADER_OR_FOLLOWER
                                | codes::LEADER_NOT_AVAILABLE
                                | codes::UNKNOWN_LEADER_EPOCH
                                | codes::FENCED_LEADER_EPOCH
                                | codes::OFFSET_NOT_AVAILABLE
                        );
                        if retriable && attempt < self.client.config().retries {
                            self.client.invalidate_topic(&tp.0);
                            retry.push(tp);
                            continue;
                        }
                        ClientError::check(
                            p.error_code,
                            None,
                            format!("partition {}-{}", tp.0, tp.1),
                        )?;
                        out.insert(
                            tp,
                            ListedOffset {
                                offset: p.offset,
                                timestamp: p.timestamp,
                            },
                        );
                    }
                }
            }
            if !retry.is_empty() {
                attempt += 1;
                tokio::time::sleep(self.client.config().retry_backoff).await;
            }
            todo = retry;
        }
        Ok(out)
    }

    async fn group_by_leader<T>(
        &self,
        items: impl Iterator<Item = (String, i32, T)>,
    ) -> Result<BTreeMap<i32, Vec<(String, i32, T)>>, ClientError> {
        let mut by_leader: BTreeMap<i32, Vec<(String, i32, T)>> = BTreeMap::new();
        for (t, p, x) in items {
            let leader = self.client.leader(&t, p).await?;
            by_leader.entry(leader).or_default().push((t, p, x));
        }
        Ok(by_leader)
    }

    // --------------------------------------------------------------- cluster

    /// DescribeCluster.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, ClientError> {
        let (resp, _) = self
            .client
            .send_any(ApiKey::DescribeCluster, |_| {
                DescribeClusterRequest::default()
            })
            .await?;
        ClientError::check(
            resp.error_code,
            opt_string(&resp.error_message),
            "DescribeCluster",
        )?;
        Ok(ClusterDescription {
            cluster_id: resp.cluster_id.to_string(),
            controller_id: resp.controller_id.0,
            brokers: resp
                .brokers
                .iter()
                .map(|b| BrokerInfo {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: opt_string(&b.rack),
                })
                .collect(),
        })
    }
}

/// Whether a controller request that failed this way is worth another try:
/// a retriable top-level Kafka error (NOT_CONTROLLER, ...) or a lost
/// connection. Timeouts are not retried (the request timeout is long already).
fn retry_controller(e: &ClientError) -> bool {
    match e {
        ClientError::Kafka { code, .. } => is_retriable_code(*code),
        ClientError::Io { .. } | ClientError::Disconnected { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use kafka_protocol::messages::{
        alter_partition_reassignments_response, elect_leaders_response,
        list_partition_reassignments_response, AlterPartitionReassignmentsResponse,
        ElectLeadersResponse, ListPartitionReassignmentsResponse, MetadataRequest,
    };
    use kafka_protocol::protocol::Decodable;

    use super::fake_broker::{self, Reply};
    use super::*;
    use crate::ClientConfig;

    /// What the fake controller saw.
    #[derive(Default)]
    struct Seen {
        elect: Vec<ElectLeadersRequest>,
        alter: Vec<AlterPartitionReassignmentsRequest>,
        list: Vec<ListPartitionReassignmentsRequest>,
    }

    /// A one-broker cluster (node 1, also the controller) that answers the
    /// partition placement APIs. The first ElectLeaders is refused with
    /// NOT_CONTROLLER (a controller election in progress).
    async fn fake_controller() -> (String, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = seen.clone();
        let apis = vec![
            (ApiKey::ApiVersions, 0, 3),
            (ApiKey::Metadata, 0, 12),
            (ApiKey::ElectLeaders, 0, 2),
            (ApiKey::AlterPartitionReassignments, 0, 0),
            (ApiKey::ListPartitionReassignments, 0, 0),
        ];
        let addr = fake_broker::spawn(apis, move |port, api, version, b| {
            answer(&state, port, api, version, b)
        })
        .await;
        (addr, seen)
    }

    fn answer(seen: &Mutex<Seen>, port: u16, api: ApiKey, version: i16, b: &mut Bytes) -> Reply {
        match api {
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(b, version).expect("metadata request");
                Reply::encode(&fake_broker::metadata(port, &[], &req), version)
            }
            ApiKey::ElectLeaders => {
                let req = ElectLeadersRequest::decode(b, version).expect("request");
                let first = {
                    let mut seen = seen.lock().unwrap();
                    seen.elect.push(req.clone());
                    seen.elect.len() == 1
                };
                let mut resp = ElectLeadersResponse::default();
                if first {
                    resp.error_code = placement_codes::NOT_CONTROLLER;
                } else {
                    // t-0 elected, t-1 already led by its preferred replica.
                    resp.replica_election_results =
                        vec![elect_leaders_response::ReplicaElectionResult::default()
                            .with_topic(topic_name("t"))
                            .with_partition_result(vec![
                                elect_leaders_response::PartitionResult::default()
                                    .with_partition_id(0),
                                elect_leaders_response::PartitionResult::default()
                                    .with_partition_id(1)
                                    .with_error_code(placement_codes::ELECTION_NOT_NEEDED)
                                    .with_error_message(Some(sb("not needed"))),
                            ])];
                }
                Reply::encode(&resp, version)
            }
            ApiKey::AlterPartitionReassignments => {
                let req = AlterPartitionReassignmentsRequest::decode(b, version).expect("request");
                let topics = req
                        .topics
                        .iter()
                        .map(|t| {
                            alter_partition_reassignments_response::ReassignableTopicResponse::default()
                                .with_name(t.name.clone())
                                .with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            // Cancelling answers "none in progress"; broker 9 does not exist.
                                            let code = match &p.replicas {
                                                None => placement_codes::NO_REASSIGNMENT_IN_PROGRESS,
                                                Some(r) if r.contains(&BrokerId(9)) => {
                                                    placement_codes::INVALID_REPLICA_ASSIGNMENT
                                                }
                                                Some(_) => 0,
                                            };
                                            alter_partition_reassignments_response::ReassignablePartitionResponse::default()
                                                .with_partition_index(p.partition_index)
                                                .with_error_code(code)
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                seen.lock().unwrap().alter.push(req);
                Reply::encode(
                    &AlterPartitionReassignmentsResponse::default().with_responses(topics),
                    version,
                )
            }
            ApiKey::ListPartitionReassignments => {
                let req = ListPartitionReassignmentsRequest::decode(b, version).expect("request");
                seen.lock().unwrap().list.push(req);
                let resp = ListPartitionReassignmentsResponse::default()
                        .with_topics(vec![
                            list_partition_reassignments_response::OngoingTopicReassignment::default()
                                .with_name(topic_name("t"))
                                .with_partitions(vec![
                                    list_partition_reassignments_response::OngoingPartitionReassignment::default()
                                        .with_partition_index(0)
                                        .with_replicas(vec![BrokerId(2), BrokerId(3), BrokerId(1)])
                                        .with_adding_replicas(vec![BrokerId(3)])
                                        .with_removing_replicas(vec![BrokerId(1)]),
                                ]),
                        ]);
                Reply::encode(&resp, version)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn admin(addr: &str) -> Admin {
        let mut config = ClientConfig::new(addr);
        config.retry_backoff = std::time::Duration::from_millis(1);
        Admin::new(Client::connect(config).await.expect("connect"))
    }

    #[test]
    fn election_types_parse_in_any_case() {
        assert_eq!("PREFERRED".parse(), Ok(ElectionType::Preferred));
        assert_eq!("unclean".parse(), Ok(ElectionType::Unclean));
        assert_eq!(" Preferred ".parse(), Ok(ElectionType::Preferred));
        assert!("dirty".parse::<ElectionType>().is_err());
        assert_eq!(ElectionType::Unclean.wire(), 1);
        assert_eq!(ElectionType::Preferred.to_string(), "PREFERRED");
    }

    #[tokio::test]
    async fn elect_leaders_retries_not_controller_and_reports_each_partition() {
        let (addr, seen) = fake_controller().await;
        let admin = admin(&addr).await;
        let results = admin
            .elect_leaders(
                ElectionType::Unclean,
                Some(vec![("t".into(), 0), ("t".into(), 1)]),
            )
            .await
            .expect("elect");
        assert!(results[&("t".to_string(), 0)].is_ok());
        let e = results[&("t".to_string(), 1)].as_ref().unwrap_err();
        assert_eq!(e.code(), Some(placement_codes::ELECTION_NOT_NEEDED));
        assert!(
            e.to_string().contains("partition t-1: ELECTION_NOT_NEEDED"),
            "{e}"
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.elect.len(), 2, "NOT_CONTROLLER is retried once");
        let req = &seen.elect[1];
        assert_eq!(req.election_type, 1);
        let tps = req.topic_partitions.as_ref().expect("partitions sent");
        assert_eq!(tps.len(), 1, "grouped by topic");
        assert_eq!(tps[0].topic.0.as_str(), "t");
        assert_eq!(tps[0].partitions, vec![0, 1]);
    }

    #[tokio::test]
    async fn elect_leaders_for_all_partitions_sends_null() {
        let (addr, seen) = fake_controller().await;
        let admin = admin(&addr).await;
        admin
            .elect_leaders(ElectionType::Preferred, None)
            .await
            .expect("elect");
        let seen = seen.lock().unwrap();
        assert!(seen.elect.iter().all(|r| r.topic_partitions.is_none()));
        assert_eq!(seen.elect[1].election_type, 0);
    }

    #[tokio::test]
    async fn reassignments_start_cancel_and_list() {
        let (addr, seen) = fake_controller().await;
        let admin = admin(&addr).await;
        let results = admin
            .alter_partition_reassignments(vec![
                ("t".into(), 0, Some(vec![2, 3, 1])),
                ("u".into(), 0, Some(vec![9])),
                ("t".into(), 1, None),
            ])
            .await
            .expect("alter");
        assert!(results[&("t".to_string(), 0)].is_ok());
        assert_eq!(
            results[&("u".to_string(), 0)].as_ref().unwrap_err().code(),
            Some(placement_codes::INVALID_REPLICA_ASSIGNMENT)
        );
        assert_eq!(
            results[&("t".to_string(), 1)].as_ref().unwrap_err().code(),
            Some(placement_codes::NO_REASSIGNMENT_IN_PROGRESS)
        );
        {
            let seen = seen.lock().unwrap();
            let req = &seen.alter[0];
            let names: Vec<&str> = req.topics.iter().map(|t| t.name.0.as_str()).collect();
            assert_eq!(names, vec!["t", "u"]);
            assert_eq!(
                req.topics[0].partitions[0].replicas,
                Some(vec![BrokerId(2), BrokerId(3), BrokerId(1)])
            );
            assert_eq!(req.topics[0].partitions[1].partition_index, 1);
            assert_eq!(req.topics[0].partitions[1].replicas, None, "null = cancel");
        }

        let ongoing = admin
            .list_partition_reassignments(None)
            .await
            .expect("list");
        assert_eq!(
            ongoing[&("t".to_string(), 0)],
            OngoingReassignment {
                replicas: vec![2, 3, 1],
                adding_replicas: vec![3],
                removing_replicas: vec![1],
            }
        );
        admin
            .list_partition_reassignments(Some(vec![("t".into(), 0), ("t".into(), 2)]))
            .await
            .expect("list");
        let seen = seen.lock().unwrap();
        assert!(seen.list[0].topics.is_none());
        let topics = seen.list[1].topics.as_ref().expect("filter sent");
        assert_eq!(topics[0].partition_indexes, vec![0, 2]);
    }
}
