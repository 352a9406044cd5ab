//! The coordinator's configuration — Kafka's `group.*` and `offsets.*` broker configs
//! with Kafka's names and defaults — and the hard limits samsa adds on top.

use std::sync::Arc;

/// Bytes of one member's protocol metadata (JoinGroup) or assignment (SyncGroup).
/// Larger values are refused with `INVALID_REQUEST`.
pub const MEMBER_METADATA_BYTES_MAX: usize = 1 << 20;

/// Protocols one JoinGroup may offer. More are refused with `INVALID_REQUEST`.
pub const MEMBER_PROTOCOLS_MAX: usize = 64;

/// Members (plus KIP-394 pending members) of one group, whatever `group.max.size`
/// says (Kafka's default is `Integer.MAX_VALUE`).
pub const GROUP_MEMBERS_MAX: usize = 10_000;

/// Groups one coordinator holds. A request that would create one more is answered with
/// `COORDINATOR_NOT_AVAILABLE` (Kafka has no such limit, so no better code exists).
pub const COORDINATOR_GROUPS_MAX: usize = 100_000;

/// Topic names one KIP-848 member may subscribe to. More are refused with
/// `INVALID_REQUEST`.
pub const MEMBER_SUBSCRIBED_TOPICS_MAX: usize = 10_000;

/// Bytes of any string the coordinator stores: the `__consumer_offsets` record schemas
/// use `int16` string lengths. Longer ids are refused with `INVALID_REQUEST`.
pub const STRING_BYTES_MAX: usize = i16::MAX as usize;

/// The assignors samsa implements for KIP-848 groups.
pub const SUPPORTED_ASSIGNORS: &[&str] = &["uniform", "range"];

/// One group's overrides of the KIP-848 settings (Kafka's `GROUP` config
/// resource: `consumer.session.timeout.ms`, `consumer.heartbeat.interval.ms`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupOverrides {
    pub session_timeout_ms: Option<i32>,
    pub heartbeat_interval_ms: Option<i32>,
}

/// Looks up a group's current overrides by group id. Called on every
/// KIP-848 heartbeat, so a change applies from the member's next heartbeat;
/// it must not block (no I/O, no lock held across anything slow).
pub type GroupOverridesFn = dyn Fn(&str) -> GroupOverrides + Send + Sync;

/// The source of per-group overrides; none by default.
#[derive(Clone, Default)]
pub struct GroupConfigLookup(Option<Arc<GroupOverridesFn>>);

impl GroupConfigLookup {
    /// A lookup answered by `f`.
    pub fn new(f: Arc<GroupOverridesFn>) -> GroupConfigLookup {
        GroupConfigLookup(Some(f))
    }

    fn get(&self, group: &str) -> GroupOverrides {
        self.0.as_ref().map(|f| f(group)).unwrap_or_default()
    }
}

impl std::fmt::Debug for GroupConfigLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "GroupConfigLookup(set)"
        } else {
            "GroupConfigLookup(none)"
        })
    }
}

/// Two lookups are equal when they are the same function (or both absent).
impl PartialEq for GroupConfigLookup {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for GroupConfigLookup {}

/// Kafka's group coordinator configs. Field docs name the Kafka config and its default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `group.min.session.timeout.ms` (6000): the smallest classic session timeout.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000): the largest classic session timeout.
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (3000): how long the first rebalance of an
    /// empty classic group waits for more members (extended as they join).
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.max.size` (Kafka: `Integer.MAX_VALUE`; capped at [`GROUP_MEMBERS_MAX`]).
    pub group_max_size: usize,
    /// How long a new classic member's JoinGroup may stay parked before the member is
    /// dropped (Kafka's internal 5 minute `classicGroupNewMemberJoinTimeoutMs`).
    pub group_new_member_join_timeout_ms: i32,
    /// `offset.metadata.max.bytes` (4096): longest committed metadata string.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes` (10080 = 7 days).
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms` (600000): how often expired offsets are
    /// removed by [`crate::Coordinator::tick`].
    pub offsets_retention_check_interval_ms: i64,
    /// `offsets.topic.num.partitions` (50): partitions of `__consumer_offsets`.
    pub offsets_topic_num_partitions: u32,
    /// `group.consumer.session.timeout.ms` (45000): KIP-848 member session timeout.
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (5000): returned to KIP-848 members.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size` (Kafka: `Integer.MAX_VALUE`; capped at
    /// [`GROUP_MEMBERS_MAX`]).
    pub group_consumer_max_size: usize,
    /// `group.consumer.assignors` (`uniform`, `range`): the first one is the default.
    /// Names outside [`SUPPORTED_ASSIGNORS`] are ignored.
    pub group_consumer_assignors: Vec<String>,
    /// Whether `group.coordinator.rebalance.protocols` contains `consumer` (Kafka 4.0
    /// default: yes). When false, ConsumerGroupHeartbeat gets `UNSUPPORTED_VERSION`.
    pub consumer_protocol_enabled: bool,
    /// Groups this coordinator may hold (capped at [`COORDINATOR_GROUPS_MAX`]).
    pub groups_max: usize,
    /// How long a resolution of a subscribed regex stands before a heartbeat resolves
    /// it again even if no topic was created or deleted (Kafka's periodic regex
    /// refresh, 600000 = 10 minutes; the broker's
    /// `group.consumer.regex.refresh.interval.ms`).
    pub group_consumer_regex_refresh_interval_ms: i64,
    /// Per-group overrides of the two settings above them (the `GROUP`
    /// config resource); see [`CoordinatorConfig::consumer_session_timeout_ms`].
    pub group_configs: GroupConfigLookup,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            group_max_size: GROUP_MEMBERS_MAX,
            group_new_member_join_timeout_ms: 300_000,
            offset_metadata_max_bytes: 4_096,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            offsets_topic_num_partitions: 50,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            group_consumer_max_size: GROUP_MEMBERS_MAX,
            group_consumer_assignors: vec!["uniform".to_owned(), "range".to_owned()],
            consumer_protocol_enabled: true,
            groups_max: COORDINATOR_GROUPS_MAX,
            group_consumer_regex_refresh_interval_ms: 600_000,
            group_configs: GroupConfigLookup::default(),
        }
    }
}

impl CoordinatorConfig {
    /// The KIP-848 session timeout of `group`'s members: the group's
    /// `consumer.session.timeout.ms`, else `group.consumer.session.timeout.ms`.
    pub fn consumer_session_timeout_ms(&self, group: &str) -> i32 {
        self.group_configs
            .get(group)
            .session_timeout_ms
            .unwrap_or(self.group_consumer_session_timeout_ms)
    }

    /// The heartbeat interval given to `group`'s KIP-848 members: the group's
    /// `consumer.heartbeat.interval.ms`, else `group.consumer.heartbeat.interval.ms`.
    pub fn consumer_heartbeat_interval_ms(&self, group: &str) -> i32 {
        self.group_configs
            .get(group)
            .heartbeat_interval_ms
            .unwrap_or(self.group_consumer_heartbeat_interval_ms)
    }

    pub(crate) fn classic_max_size(&self) -> usize {
        self.group_max_size.min(GROUP_MEMBERS_MAX)
    }

    pub(crate) fn consumer_max_size(&self) -> usize {
        self.group_consumer_max_size.min(GROUP_MEMBERS_MAX)
    }

    pub(crate) fn max_groups(&self) -> usize {
        self.groups_max.min(COORDINATOR_GROUPS_MAX)
    }

    pub(crate) fn retention_ms(&self) -> i64 {
        self.offsets_retention_minutes.saturating_mul(60_000)
    }

    pub(crate) fn metadata_max_bytes(&self) -> usize {
        self.offset_metadata_max_bytes.min(STRING_BYTES_MAX)
    }

    pub(crate) fn partitions(&self) -> u32 {
        self.offsets_topic_num_partitions.max(1)
    }

    /// The configured assignors samsa implements, default first.
    pub(crate) fn assignors(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .group_consumer_assignors
            .iter()
            .map(String::as_str)
            .filter(|a| SUPPORTED_ASSIGNORS.contains(a))
            .collect();
        if v.is_empty() {
            v.push(SUPPORTED_ASSIGNORS[0]);
        }
        v
    }
}
