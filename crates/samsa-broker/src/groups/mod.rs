//! The group coordinator service: runs `samsa-coordinator`'s state machine for
//! the groups of this broker, persists its records in `__consumer_offsets`,
//! parks JoinGroup/SyncGroup requests until their answer is ready, and drives
//! its timers.
//!
//! Hosted by the shared coordinator runtime ([`crate::coordinator_runtime`]),
//! as the transaction coordinator is: one [`Coordinator`] per
//! `__consumer_offsets` partition this broker leads, loaded in the background
//! (its groups answered COORDINATOR_LOAD_IN_PROGRESS meanwhile), appends
//! before replies, replies only once the appends are replicated. Committed
//! offsets become visible to OffsetFetch only once their batch is replicated
//! (`Coordinator::commit_replicated`). TxnOffsetCommit batches are the
//! producer's transactional batches; their offsets stay pending until the
//! transaction's marker (`txn.rs`).

mod txn;

use std::collections::BTreeMap;
use std::sync::Arc;

use samsa_coordinator::{
    CommitId, Coordinator, CoordinatorConfig, GroupConfigLookup, GroupOverrides, Output,
    ReplyToken, Response, TopicInfo, TopicMetadata,
};
use samsa_metadata::MetadataImage;
use samsa_model::batch::BatchHeader;
use samsa_model::{LeaderEpoch, TimestampMs, TopicId};

use crate::broker::Broker;
use crate::coordinator_runtime::log::{ensure_topic, InternalTopic};
use crate::coordinator_runtime::{CoordinatorKind, CoordinatorRuntime, ShardMachine, Step};
use crate::handlers::produce::now_ms;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How `__consumer_offsets` is created on first use (Kafka's
/// `offsets.topic.*` configs).
const OFFSETS_TOPIC_SPEC: InternalTopic = InternalTopic {
    name: OFFSETS_TOPIC,
    partitions_key: "offsets.topic.num.partitions",
    partitions_default: 50,
    replication_key: "offsets.topic.replication.factor",
    replication_default: 3,
    min_isr_key: None,
    segment_bytes_key: None,
    segment_bytes_default: 104_857_600,
};

/// Topic metadata for the server-side assignors, read from an image.
struct ImageTopics(Arc<MetadataImage>);

impl TopicMetadata for ImageTopics {
    fn topic_by_name(&self, name: &str) -> Option<TopicInfo> {
        self.0.topic(name).map(|t| TopicInfo {
            name: t.name.clone(),
            id: t.id,
            partitions: t.partitions.len() as u32,
        })
    }

    fn topic_by_id(&self, id: TopicId) -> Option<TopicInfo> {
        self.0.topic_by_id(id).map(|t| TopicInfo {
            name: t.name.clone(),
            id: t.id,
            partitions: t.partitions.len() as u32,
        })
    }
    fn topic_names(&self) -> Vec<String> {
        self.0.topics.keys().cloned().collect()
    }

    /// The image's count of applied records: it moves with every metadata change,
    /// topic creations and deletions included, and is the same on every node.
    fn topics_version(&self) -> i64 {
        i64::try_from(self.0.records_applied).unwrap_or(i64::MAX)
    }
}

/// The per-group overrides (the `GROUP` config resource) as the broker's
/// current metadata image holds them. Holds the broker weakly (the broker owns
/// the coordinator); reads only the published image, never blocks.
pub(crate) fn image_group_configs(broker: std::sync::Weak<Broker>) -> GroupConfigLookup {
    use samsa_metadata::group_config::{
        CONSUMER_HEARTBEAT_INTERVAL_MS, CONSUMER_SESSION_TIMEOUT_MS,
    };
    GroupConfigLookup::new(Arc::new(move |group: &str| {
        let Some(broker) = broker.upgrade() else {
            return GroupOverrides::default();
        };
        let image = broker.image();
        let Some(map) = image.group_configs.get(group) else {
            return GroupOverrides::default();
        };
        let int = |k: &str| map.get(k).and_then(|v| v.trim().parse::<i32>().ok());
        GroupOverrides {
            session_timeout_ms: int(CONSUMER_SESSION_TIMEOUT_MS),
            heartbeat_interval_ms: int(CONSUMER_HEARTBEAT_INTERVAL_MS),
        }
    }))
}

impl ShardMachine for Coordinator {
    type Output = Output;
    type Response = Response;
    type Effect = std::convert::Infallible;

    fn step(output: Output) -> Step<Response, std::convert::Infallible> {
        match output {
            // One coordinator per shard: its appends go to the shard's partition.
            Output::Append {
                records,
                commit,
                transaction,
                ..
            } => Step::Append {
                records,
                commit,
                producer: transaction,
            },
            Output::Reply { token, response } => Step::Reply { token, response },
        }
    }

    fn with_error(response: Response, code: i16) -> Response {
        response.with_error(code)
    }

    /// Plain batches replay as records, a producer's transactional batch
    /// (TxnOffsetCommit) as its pending offsets, and a COMMIT/ABORT control
    /// batch as the end of that producer's transaction.
    fn replay(
        &mut self,
        partition: u32,
        batch: &BatchHeader,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        use samsa_model::control::{parse_control_key, ControlRecordType};
        let producer = batch.producer_id.get();
        let applied = if batch.is_control() {
            match parse_control_key(Some(&bytes::Bytes::copy_from_slice(key))) {
                Ok(ControlRecordType::Commit) => {
                    self.replay_end_transaction(partition, producer, true)
                }
                Ok(ControlRecordType::Abort) => {
                    self.replay_end_transaction(partition, producer, false)
                }
                // Not a transaction marker, or damaged: skipped.
                _ => Ok(()),
            }
        } else if batch.is_transactional() {
            self.replay_transactional(producer, key, value)
        } else {
            Coordinator::replay(self, key, value)
        };
        applied.map_err(|e| e.to_string())
    }

    fn finish_loading(&mut self, now: TimestampMs) -> Vec<Output> {
        Coordinator::finish_loading(self, now)
    }

    fn unload(&mut self) -> Vec<Output> {
        Coordinator::unload(self)
    }

    fn tick(&mut self, now: TimestampMs) -> Vec<Output> {
        Coordinator::tick(self, now)
    }

    fn next_deadline(&self) -> Option<TimestampMs> {
        Coordinator::next_deadline(self)
    }

    fn commit_replicated(&mut self, commit: CommitId) {
        Coordinator::commit_replicated(self, commit)
    }
}

/// The group coordinator as the runtime hosts it.
pub(crate) struct Groups {
    config: CoordinatorConfig,
}

impl CoordinatorKind for Groups {
    type Machine = Coordinator;

    fn topic(&self) -> &'static str {
        OFFSETS_TOPIC
    }

    /// A loading coordinator owning only `partition`: the replay skips
    /// records of other partitions' groups.
    fn loading(&self, partition: u32, _epoch: LeaderEpoch) -> Coordinator {
        let mut c = fresh_coordinator(&self.config);
        c.set_owned_partitions(Some([partition].into_iter().collect()));
        c
    }

    fn unloaded(&self) -> Coordinator {
        unloaded_coordinator(&self.config)
    }
}

/// The group coordinator service.
pub struct GroupService {
    runtime: Arc<CoordinatorRuntime<Groups>>,
}

impl GroupService {
    /// A coordinator service configured from the broker's config, with no
    /// shard yet (they follow leadership once [`GroupService::run_timers`] runs).
    pub fn new(
        config: &samsa_metadata::config::StaticConfig,
        group_configs: GroupConfigLookup,
    ) -> GroupService {
        let mut cc = CoordinatorConfig {
            group_configs,
            ..CoordinatorConfig::default()
        };
        let int = |k: &str| config.get_i64(k);
        if let Some(v) = int("group.initial.rebalance.delay.ms") {
            cc.group_initial_rebalance_delay_ms = v as i32;
        }
        if let Some(v) = int("group.min.session.timeout.ms") {
            cc.group_min_session_timeout_ms = v as i32;
        }
        if let Some(v) = int("group.max.session.timeout.ms") {
            cc.group_max_session_timeout_ms = v as i32;
        }
        if let Some(v) = int("offsets.retention.minutes") {
            cc.offsets_retention_minutes = v;
        }
        if let Some(v) = int("offsets.topic.num.partitions") {
            cc.offsets_topic_num_partitions = v.max(1) as u32;
        }
        if let Some(v) = int("group.consumer.session.timeout.ms") {
            cc.group_consumer_session_timeout_ms = v as i32;
        }
        if let Some(v) = int("group.consumer.heartbeat.interval.ms") {
            cc.group_consumer_heartbeat_interval_ms = v as i32;
        }
        if let Some(v) = int("group.consumer.regex.refresh.interval.ms") {
            cc.group_consumer_regex_refresh_interval_ms = v;
        }
        GroupService {
            runtime: Arc::new(CoordinatorRuntime::new(Groups { config: cc })),
        }
    }

    fn config(&self) -> &CoordinatorConfig {
        &self.runtime.kind().config
    }

    /// Starts following `__consumer_offsets` leadership: shards are created
    /// and replayed in the background by [`GroupService::run_timers`].
    pub fn load(&self, _broker: &Broker) {
        self.wake();
    }

    /// Wakes the leadership follower (after a role change: it loads and
    /// unloads the shards whose leadership moved).
    pub fn wake(&self) {
        self.runtime.wake();
    }

    /// The `__consumer_offsets` partition of `group`.
    pub fn partition_for(&self, group: &str) -> u32 {
        samsa_coordinator::partition_for(group, self.config().offsets_topic_num_partitions)
    }

    /// Whether `group`'s shard is loaded and serving here.
    pub fn serves(&self, group: &str) -> bool {
        self.runtime.serves(self.partition_for(group))
    }

    /// Runs one state-changing call for `group` on its shard and waits for
    /// its reply (which may come from a later call or a timer). A group whose
    /// partition is not led here is answered by an unloaded coordinator
    /// (NOT_COORDINATOR); one whose partition is loading by a loading one
    /// (COORDINATOR_LOAD_IN_PROGRESS).
    pub async fn call<F>(&self, broker: &Broker, group: &str, f: F) -> Option<Response>
    where
        F: FnOnce(&mut Coordinator, &dyn TopicMetadata, TimestampMs, ReplyToken) -> Vec<Output>,
    {
        let topics = ImageTopics(broker.image());
        if group.is_empty() {
            // Refused before any partition is involved, as Kafka's group
            // coordinator service checks the id before routing the request.
            let (token, rx) = self.runtime.token();
            let mut c = empty_coordinator(self.config());
            let outputs = f(&mut c, &topics, now_ms(), token);
            self.runtime.answer_detached(outputs, None);
            return rx.await.ok();
        }
        let partition = self.partition_for(group);
        self.runtime
            .call(broker, partition, move |c, now, token| {
                f(c, &topics, now, token)
            })
            .await
    }

    /// Runs a read-only call on the shard of each of `groups` (request order
    /// kept within a shard); returns one result per shard involved.
    pub async fn read_groups<R>(
        &self,
        broker: &Broker,
        groups: &[String],
        f: impl Fn(&Coordinator, &dyn TopicMetadata, &[String]) -> R,
    ) -> Vec<R> {
        // Empty group ids (`None`) are refused without a partition.
        let mut by_partition: BTreeMap<Option<u32>, Vec<String>> = BTreeMap::new();
        for g in groups {
            let p = (!g.is_empty()).then(|| self.partition_for(g));
            by_partition.entry(p).or_default().push(g.clone());
        }
        let topics = ImageTopics(broker.image());
        let mut out = Vec::with_capacity(by_partition.len());
        for (p, ids) in by_partition {
            out.push(match p {
                None => f(&empty_coordinator(self.config()), &topics, &ids),
                Some(p) => self.runtime.read(broker, p, |c| f(c, &topics, &ids)).await,
            });
        }
        out
    }

    /// Runs a read-only call on every shard (ListGroups).
    pub async fn read_all<R>(
        &self,
        broker: &Broker,
        f: impl Fn(&Coordinator, &dyn TopicMetadata) -> R,
    ) -> Vec<R> {
        let topics = ImageTopics(broker.image());
        self.runtime.read_all(|c| f(c, &topics)).await
    }

    /// Follows `__consumer_offsets` leadership until `shutdown`: loads the
    /// partitions gained, unloads those lost, fires the timers.
    pub async fn run_timers(
        self: Arc<Self>,
        broker: Arc<Broker>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        self.runtime.clone().run(broker, shutdown).await
    }

    /// Creates `__consumer_offsets` if it does not exist yet (as Kafka does on
    /// the first FindCoordinator). Returns whether it exists now.
    pub fn ensure_offsets_topic(&self, broker: &Broker) -> bool {
        ensure_topic(broker, &OFFSETS_TOPIC_SPEC)
    }
}

/// A coordinator in its Loading state with a member-id generator.
fn fresh_coordinator(config: &CoordinatorConfig) -> Coordinator {
    let mut counter: u64 = 0;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let id_gen = Box::new(move || {
        counter += 1;
        uuid::Uuid::from_u64_pair(seed, counter ^ uuid::Uuid::new_v4().as_u64_pair().0).to_string()
    });
    Coordinator::new(config.clone(), id_gen)
}

/// An active coordinator with no group: answers requests for the empty group
/// id (INVALID_GROUP_ID and the like) whatever the state of partition 0.
fn empty_coordinator(config: &CoordinatorConfig) -> Coordinator {
    let mut c = Coordinator::new(config.clone(), Box::new(String::new));
    let _ = c.finish_loading(now_ms());
    c
}

/// A coordinator that answers everything NOT_COORDINATOR (groups of
/// partitions this broker does not lead).
fn unloaded_coordinator(config: &CoordinatorConfig) -> Coordinator {
    let mut c = Coordinator::new(config.clone(), Box::new(String::new));
    c.unload();
    c
}

#[cfg(test)]
mod group_config_tests;
#[cfg(test)]
mod tests;
