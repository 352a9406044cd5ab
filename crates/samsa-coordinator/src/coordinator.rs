//! The [`Coordinator`]: every group this broker coordinates, their committed offsets and
//! deadlines, and the entry points the broker calls (one per API, plus `tick`, `replay`
//! and loading/unloading).

use std::collections::{BTreeMap, BTreeSet};

use samsa_model::TimestampMs;

use crate::api::{
    ConsumerDescribedGroup, ConsumerDescribedMember, ConsumerGroupDescribeRequest,
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DeletableGroupResult, DeleteGroupsResponse, DescribeGroupsResponse, DescribedGroup,
    DescribedGroupMember, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, ListedGroup,
    NamedTopicPartitions, Output, ReplyToken, Response, SyncGroupRequest, SyncGroupResponse,
};
use crate::assignor::TopicMetadata;
use crate::classic::{ClassicGroup, ClassicState, CONSUMER_PROTOCOL_TYPE};
use crate::config::{
    CoordinatorConfig, MEMBER_METADATA_BYTES_MAX, MEMBER_PROTOCOLS_MAX,
    MEMBER_SUBSCRIBED_TOPICS_MAX, STRING_BYTES_MAX, SUPPORTED_ASSIGNORS,
};
use crate::consumer::{ConsumerGroup, LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH};
use crate::error::{codes, GroupError, ReplayError};
use crate::records::{
    Assignment, ConsumerCurrentAssignmentValue, ConsumerMemberMetadataValue, ConsumerRegexValue,
    CoordinatorRecord, GroupMetadataValue, OffsetCommitValue,
};
use crate::timer::{TimerKey, TimerPayload, Timers};

/// Kafka's `__consumer_offsets` partition for `group_id`:
/// `Utils.abs(groupId.hashCode()) % partitions`, where `hashCode` is Java's
/// `String.hashCode` over UTF-16 code units and `Utils.abs(x)` is `x & 0x7fffffff`.
pub fn partition_for(group_id: &str, partitions: u32) -> u32 {
    let mut h: i32 = 0;
    for unit in group_id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    ((h & 0x7fff_ffff) as u32) % partitions.max(1)
}

/// Passes over the due timers per call (see `Coordinator::fire_due`).
const TIMER_PASSES_MAX: usize = 16;

/// Whether the coordinator serves requests.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CoordinatorStatus {
    /// Replaying `__consumer_offsets`: requests get COORDINATOR_LOAD_IN_PROGRESS.
    Loading,
    /// Serving.
    Active,
    /// Unloaded: requests get NOT_COORDINATOR.
    Unloaded,
}

pub(crate) enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

/// Committed offsets of one group: topic → partition → commit.
pub(crate) type GroupOffsets = BTreeMap<String, BTreeMap<i32, OffsetCommitValue>>;

/// What the handlers of one call share: configuration, deadlines, the outputs being
/// collected and the call's time.
pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a CoordinatorConfig,
    pub(crate) timers: &'a mut Timers,
    pub(crate) out: &'a mut Vec<Output>,
    pub(crate) now: i64,
}

impl Ctx<'_> {
    pub(crate) fn reply(&mut self, token: ReplyToken, response: Response) {
        self.out.push(Output::Reply { token, response });
    }

    /// Adds an Append of `records` (all of `group`) unless there are none.
    pub(crate) fn append(&mut self, group: &str, records: Vec<CoordinatorRecord>) {
        if records.is_empty() {
            return;
        }
        self.out.push(Output::Append {
            partition: partition_for(group, self.cfg.partitions()),
            records: records.iter().map(CoordinatorRecord::encode).collect(),
            commit: None,
            transaction: None,
        });
    }
}

/// The persistent part of the coordinator's state: what replaying the emitted records
/// rebuilds. For classic groups this is the last GroupMetadataValue written (`None` for
/// groups that only hold offsets).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DurableState {
    /// Committed offsets per group, by (topic, partition).
    pub offsets: BTreeMap<String, BTreeMap<(String, i32), OffsetCommitValue>>,
    /// Classic groups.
    pub classic_groups: BTreeMap<String, Option<GroupMetadataValue>>,
    /// KIP-848 groups.
    pub consumer_groups: BTreeMap<String, ConsumerGroupDurable>,
    /// Pending transactional offsets per producer id, by (group, topic, partition).
    pub pending_transactional_offsets:
        BTreeMap<i64, BTreeMap<(String, String, i32), OffsetCommitValue>>,
}

/// The persistent part of a KIP-848 group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupDurable {
    /// Group epoch.
    pub group_epoch: i32,
    /// Target assignment epoch.
    pub assignment_epoch: i32,
    /// Subscribed-topics metadata hash.
    pub metadata_hash: i64,
    /// Members: subscription and current assignment.
    pub members: BTreeMap<String, (ConsumerMemberMetadataValue, ConsumerCurrentAssignmentValue)>,
    /// Target assignment per member.
    pub target: BTreeMap<String, Assignment>,
    /// What each subscribed regex resolved to.
    pub resolved_regexes: BTreeMap<String, ConsumerRegexValue>,
}

/// A group coordinator: the groups of the `__consumer_offsets` partitions it owns (all of
/// them by default; samsa's broker runs one per partition it leads) and their committed
/// offsets.
///
/// See the crate docs for the calling contract.
pub struct Coordinator {
    pub(crate) config: CoordinatorConfig,
    pub(crate) id_gen: Box<dyn FnMut() -> String + Send>,
    pub(crate) status: CoordinatorStatus,
    pub(crate) groups: BTreeMap<String, Group>,
    pub(crate) offsets: BTreeMap<String, GroupOffsets>,
    pub(crate) timers: Timers,
    pub(crate) now: i64,
    /// The `__consumer_offsets` partitions this coordinator leads (`None`: all).
    pub(crate) owned: Option<BTreeSet<u32>>,
    /// Owned partitions gained while `Active` whose records are still being replayed.
    pub(crate) loading: BTreeSet<u32>,
    /// Offsets committed but not yet replicated (see [`crate::offsets`]).
    pub(crate) pending: crate::offsets::PendingOffsets,
    /// Pending transactional offsets (see [`crate::txn_offsets`]).
    pub(crate) txn: crate::txn_offsets::TxnOffsets,
}

/// Whether `partition` is among `owned` (`None` owns every partition).
fn owned_contains(owned: &Option<BTreeSet<u32>>, partition: u32) -> bool {
    owned.as_ref().is_none_or(|s| s.contains(&partition))
}

pub(crate) fn check_str(s: &str, what: &str) -> Result<(), GroupError> {
    if s.len() > STRING_BYTES_MAX {
        return Err(GroupError::InvalidRequest(format!(
            "{what} longer than {STRING_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

fn validate_join(req: &JoinGroupRequest) -> Result<(), GroupError> {
    check_str(&req.group_id, "group id")?;
    check_str(&req.member_id, "member id")?;
    check_str(&req.client_id, "client id")?;
    check_str(&req.client_host, "client host")?;
    check_str(&req.protocol_type, "protocol type")?;
    if let Some(i) = &req.group_instance_id {
        check_str(i, "group instance id")?;
    }
    if req.protocols.len() > MEMBER_PROTOCOLS_MAX {
        return Err(GroupError::InvalidRequest(format!(
            "more than {MEMBER_PROTOCOLS_MAX} protocols"
        )));
    }
    for p in &req.protocols {
        check_str(&p.name, "protocol name")?;
        if p.metadata.len() > MEMBER_METADATA_BYTES_MAX {
            return Err(GroupError::InvalidRequest(format!(
                "protocol metadata larger than {MEMBER_METADATA_BYTES_MAX} bytes"
            )));
        }
    }
    Ok(())
}

impl Coordinator {
    /// A coordinator in the `Loading` state: replay `__consumer_offsets` with
    /// [`Coordinator::replay`], then call [`Coordinator::finish_loading`]. `id_gen` makes
    /// the random part of member ids (e.g. a UUID; seeded in simulations).
    pub fn new(config: CoordinatorConfig, id_gen: Box<dyn FnMut() -> String + Send>) -> Self {
        Coordinator {
            config,
            id_gen,
            status: CoordinatorStatus::Loading,
            groups: BTreeMap::new(),
            offsets: BTreeMap::new(),
            timers: Timers::default(),
            now: i64::MIN,
            owned: None,
            loading: BTreeSet::new(),
            pending: Default::default(),
            txn: Default::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// Loading, active or unloaded.
    pub fn status(&self) -> CoordinatorStatus {
        self.status
    }

    /// The `__consumer_offsets` partition of `group_id` under this configuration.
    pub fn partition_for(&self, group_id: &str) -> u32 {
        partition_for(group_id, self.config.partitions())
    }

    pub(crate) fn status_error(&self) -> Option<GroupError> {
        match self.status {
            CoordinatorStatus::Loading => Some(GroupError::CoordinatorLoadInProgress),
            CoordinatorStatus::Active => None,
            CoordinatorStatus::Unloaded => Some(GroupError::NotCoordinator),
        }
    }

    /// Why a request for `group_id` cannot be served, if it cannot: the coordinator's
    /// status first (loading / unloaded), then the group's partition (not owned:
    /// NOT_COORDINATOR; gained and still loading: COORDINATOR_LOAD_IN_PROGRESS).
    pub(crate) fn group_error(&self, group_id: &str) -> Option<GroupError> {
        if let Some(e) = self.status_error() {
            return Some(e);
        }
        let partition = self.partition_for(group_id);
        if !owned_contains(&self.owned, partition) {
            Some(GroupError::NotCoordinator)
        } else if self.loading.contains(&partition) {
            Some(GroupError::CoordinatorLoadInProgress)
        } else {
            None
        }
    }

    /// Whether the group's partition is owned and loaded (requests for it are served
    /// once the coordinator is `Active`).
    pub(crate) fn serves(&self, group_id: &str) -> bool {
        let partition = self.partition_for(group_id);
        owned_contains(&self.owned, partition) && !self.loading.contains(&partition)
    }

    // ------------------------------------------------------------ partition ownership

    /// Whether this coordinator owns the `__consumer_offsets` partition of `group_id`
    /// (see [`Coordinator::set_owned_partitions`]). Says nothing about the status: a
    /// `Loading` or `Unloaded` coordinator, or a partition still loading, does not serve
    /// the group even if it owns it.
    pub fn owns(&self, group_id: &str) -> bool {
        owned_contains(&self.owned, self.partition_for(group_id))
    }

    /// The owned `__consumer_offsets` partitions (`None`: all of them, the default).
    pub fn owned_partitions(&self) -> Option<&BTreeSet<u32>> {
        self.owned.as_ref()
    }

    /// Owned partitions gained while `Active` that are still loading (see
    /// [`Coordinator::set_owned_partitions`]).
    pub fn loading_partitions(&self) -> &BTreeSet<u32> {
        &self.loading
    }

    /// Sets the `__consumer_offsets` partitions this coordinator leads (`None`: all, the
    /// default, for a single node). Requests for groups of other partitions are answered
    /// NOT_COORDINATOR, and ListGroups leaves their groups out.
    ///
    /// * Partitions no longer owned are unloaded, as Kafka unloads one coordinator
    ///   partition: parked JoinGroup / SyncGroup requests of their groups are answered
    ///   NOT_COORDINATOR (the returned replies), their deadlines are cancelled and their
    ///   groups and offsets forgotten. Nothing is appended.
    /// * On an `Active` coordinator, partitions newly owned start *loading*: requests for
    ///   their groups get COORDINATOR_LOAD_IN_PROGRESS (and ListGroups fails with it, as
    ///   in Kafka) until the broker has fed the partition's records to
    ///   [`Coordinator::replay`] and called [`Coordinator::finish_loading_partition`].
    /// * On a `Loading` coordinator nothing is gated per partition: replay the owned
    ///   partitions, then [`Coordinator::finish_loading`]; records of partitions not
    ///   owned are skipped by `replay`.
    pub fn set_owned_partitions(&mut self, owned: Option<BTreeSet<u32>>) -> Vec<Output> {
        let mut out = Vec::new();
        if self.status == CoordinatorStatus::Active {
            let gained: Vec<u32> = match &owned {
                Some(s) => s
                    .iter()
                    .copied()
                    .filter(|p| *p < self.config.partitions())
                    .filter(|p| !owned_contains(&self.owned, *p))
                    .collect(),
                None => (0..self.config.partitions())
                    .filter(|p| !owned_contains(&self.owned, *p))
                    .collect(),
            };
            self.loading.extend(gained);
        }
        self.owned = owned;
        let Coordinator {
            config,
            timers,
            groups,
            offsets,
            loading,
            owned,
            now,
            pending,
            txn,
            ..
        } = self;
        loading.retain(|p| owned_contains(owned, *p));
        let partitions = config.partitions();
        let keep = |group: &str| owned_contains(owned, partition_for(group, partitions));
        let mut cx = Ctx {
            cfg: config,
            timers,
            out: &mut out,
            now: *now,
        };
        for (id, g) in groups.iter_mut() {
            if let Group::Classic(g) = g {
                if !keep(id) {
                    g.fail_all_waiters(&mut cx, codes::NOT_COORDINATOR);
                }
            }
        }
        groups.retain(|id, _| keep(id));
        offsets.retain(|id, _| keep(id));
        pending.retain_groups(keep);
        txn.retain_groups(keep);
        timers.retain(|k| k.group().is_none_or(keep));
        out
    }

    /// Ends the loading of `partition`, gained while `Active` (see
    /// [`Coordinator::set_owned_partitions`]): its groups come up as after
    /// [`Coordinator::finish_loading`] (sessions restarted at `now`) and are served from
    /// now on. Does nothing unless `partition` is loading.
    pub fn finish_loading_partition(&mut self, partition: u32, now: TimestampMs) -> Vec<Output> {
        let mut out = Vec::new();
        if self.status != CoordinatorStatus::Active || !self.loading.contains(&partition) {
            return out;
        }
        self.begin(now, &mut out);
        self.loading.remove(&partition);
        self.activate_groups(|p| p == partition, &mut out);
        self.run_timers(&mut out);
        out
    }

    /// Starts the sessions of the loaded groups whose partition `load` selects, and
    /// rebalances classic groups above `group.max.size` (Kafka's `onLoaded`).
    fn activate_groups(&mut self, load: impl Fn(u32) -> bool, out: &mut Vec<Output>) {
        let Coordinator {
            config,
            timers,
            groups,
            now,
            ..
        } = self;
        let partitions = config.partitions();
        let mut cx = Ctx {
            cfg: config,
            timers,
            out,
            now: *now,
        };
        for (id, g) in groups.iter_mut() {
            if !load(partition_for(id, partitions)) {
                continue;
            }
            match g {
                Group::Classic(g) => {
                    g.schedule_all_sessions(&mut cx);
                    if g.members.len() > cx.cfg.classic_max_size() {
                        g.prepare_rebalance(&mut cx);
                    }
                }
                Group::Consumer(g) => g.schedule_all(&mut cx),
            }
        }
    }

    // ----------------------------------------------------------------- time & timers

    /// Fires what is due by `now`, each at its own deadline (so a coarse tick behaves
    /// like timely ones), then moves the clock to `now` (never backwards).
    pub(crate) fn begin(&mut self, now: TimestampMs, out: &mut Vec<Output>) {
        let now = self.now.max(now.get());
        self.fire_due(now, out);
        self.now = now;
    }

    pub(crate) fn run_timers(&mut self, out: &mut Vec<Output>) {
        self.fire_due(self.now, out);
    }

    /// Timers scheduled while firing others run in a later pass; at most
    /// [`TIMER_PASSES_MAX`] passes per call, so a zero-delay timer that keeps
    /// rescheduling itself cannot spin.
    fn fire_due(&mut self, until: i64, out: &mut Vec<Output>) {
        if self.status != CoordinatorStatus::Active {
            return;
        }
        for _ in 0..TIMER_PASSES_MAX {
            let watermark = self.timers.watermark();
            let mut fired = false;
            while let Some((deadline, key, payload)) = self.timers.pop_expired(until, watermark) {
                self.now = self.now.max(deadline);
                self.fire(key, payload, out);
                fired = true;
            }
            if !fired {
                break;
            }
        }
    }

    fn fire(&mut self, key: TimerKey, payload: TimerPayload, out: &mut Vec<Output>) {
        if key == TimerKey::OffsetRetention {
            self.expire_offsets_into(out);
            let next = self.now + self.config.offsets_retention_check_interval_ms.max(1);
            self.timers
                .schedule(TimerKey::OffsetRetention, next, TimerPayload::None);
            return;
        }
        let Coordinator {
            config,
            timers,
            groups,
            now,
            ..
        } = self;
        let mut cx = Ctx {
            cfg: config,
            timers,
            out,
            now: *now,
        };
        match key {
            TimerKey::ClassicHeartbeat { group, member } => {
                if let Some(Group::Classic(g)) = groups.get_mut(&group) {
                    g.on_heartbeat_expired(&mut cx, &member);
                }
            }
            TimerKey::ClassicJoin { group } => {
                if let Some(Group::Classic(g)) = groups.get_mut(&group) {
                    g.on_join_timer(&mut cx, payload);
                }
            }
            TimerKey::ClassicSync { group } => {
                if let (Some(Group::Classic(g)), TimerPayload::Epoch(generation)) =
                    (groups.get_mut(&group), payload)
                {
                    g.on_sync_timer(&mut cx, generation);
                }
            }
            TimerKey::ConsumerSession { group, member } => {
                if let Some(Group::Consumer(g)) = groups.get_mut(&group) {
                    g.on_session_expired(&mut cx, &member);
                }
            }
            TimerKey::ConsumerRebalance { group, member } => {
                if let (Some(Group::Consumer(g)), TimerPayload::Epoch(epoch)) =
                    (groups.get_mut(&group), payload)
                {
                    g.on_rebalance_expired(&mut cx, &member, epoch);
                }
            }
            TimerKey::OffsetRetention => {}
        }
    }

    /// Fires every deadline due at `now`: classic session / join / sync timeouts, the
    /// initial rebalance delay, KIP-848 session and revocation timeouts, and the periodic
    /// offset expiry.
    pub fn tick(&mut self, now: TimestampMs) -> Vec<Output> {
        let mut out = Vec::new();
        self.begin(now, &mut out);
        out
    }

    /// The earliest deadline; call [`Coordinator::tick`] then (or on the next request).
    pub fn next_deadline(&self) -> Option<TimestampMs> {
        self.timers.next_deadline().map(TimestampMs)
    }

    pub(crate) fn call(
        &mut self,
        now: TimestampMs,
        f: impl FnOnce(&mut Self, &mut Vec<Output>),
    ) -> Vec<Output> {
        let mut out = Vec::new();
        self.begin(now, &mut out);
        f(self, &mut out);
        self.run_timers(&mut out);
        out
    }

    // ------------------------------------------------------------ loading/unloading

    /// Applies one `__consumer_offsets` record (in log order) while loading. Groups come
    /// back as Kafka loads them: classic groups with members as `Stable` (their members
    /// must heartbeat within their session timeout, counted from `finish_loading`),
    /// KIP-848 groups exactly as recorded.
    ///
    /// While the coordinator is `Loading`, records of partitions it does not own (see
    /// [`Coordinator::set_owned_partitions`]) are skipped. Once `Active`, only records of
    /// partitions still loading are accepted ([`ReplayError::NotLoading`] otherwise).
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), ReplayError> {
        self.replay_accepts(None)?;
        let record = CoordinatorRecord::decode(key, value)?;
        if self.replay_accepts(Some(self.partition_for(record.group())))? {
            self.apply(record);
        }
        Ok(())
    }

    /// Whether a record of `partition` is to be applied by a replay now (`Ok(false)`:
    /// skipped, the partition is not owned); `None` checks only that something loads.
    pub(crate) fn replay_accepts(&self, partition: Option<u32>) -> Result<bool, ReplayError> {
        let loading_all = self.status == CoordinatorStatus::Loading;
        let loading_some = self.status == CoordinatorStatus::Active && !self.loading.is_empty();
        if !loading_all && !loading_some {
            return Err(ReplayError::NotLoading);
        }
        let Some(partition) = partition else {
            return Ok(true);
        };
        if loading_all {
            Ok(owned_contains(&self.owned, partition))
        } else if self.loading.contains(&partition) {
            Ok(true)
        } else {
            Err(ReplayError::NotLoading)
        }
    }

    /// The consumer group a KIP-848 record belongs to, created (replacing a classic
    /// group of the same id, as Kafka does for simple groups) if needed.
    fn consumer_group_for_replay(&mut self, group: &str) -> Option<&mut ConsumerGroup> {
        if !matches!(self.groups.get(group), Some(Group::Consumer(_))) {
            self.groups.insert(
                group.to_owned(),
                Group::Consumer(ConsumerGroup::new(group.to_owned())),
            );
        }
        self.existing_consumer_group(group)
    }

    fn existing_consumer_group(&mut self, group: &str) -> Option<&mut ConsumerGroup> {
        match self.groups.get_mut(group) {
            Some(Group::Consumer(g)) => Some(g),
            _ => None,
        }
    }

    pub(crate) fn apply(&mut self, record: CoordinatorRecord) {
        match record {
            CoordinatorRecord::OffsetCommit {
                group,
                topic,
                partition,
                value,
            } => match value {
                Some(v) => {
                    // Kafka creates a "simple" classic group to hold offsets if needed.
                    self.groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::Classic(ClassicGroup::new(group.clone(), None)));
                    self.txn.note_committed(&group, &topic, partition);
                    self.offsets
                        .entry(group)
                        .or_default()
                        .entry(topic)
                        .or_default()
                        .insert(partition, v);
                }
                None => self.remove_offset(&group, &topic, partition),
            },
            CoordinatorRecord::GroupMetadata { group, value } => match value {
                Some(v) => {
                    self.groups.insert(
                        group.clone(),
                        Group::Classic(ClassicGroup::from_record(group, v)),
                    );
                }
                None => {
                    if matches!(self.groups.get(&group), Some(Group::Classic(_))) {
                        self.groups.remove(&group);
                    }
                }
            },
            CoordinatorRecord::ConsumerGroupMetadata { group, value } => match value {
                Some(v) => {
                    if let Some(g) = self.consumer_group_for_replay(&group) {
                        g.group_epoch = v.epoch;
                        g.metadata_hash = v.metadata_hash;
                    }
                }
                None => {
                    if matches!(self.groups.get(&group), Some(Group::Consumer(_))) {
                        self.groups.remove(&group);
                    }
                }
            },
            CoordinatorRecord::ConsumerGroupPartitionMetadata { .. } => {}
            CoordinatorRecord::ConsumerMemberMetadata {
                group,
                member,
                value,
            } => match value {
                Some(v) => {
                    if let Some(g) = self.consumer_group_for_replay(&group) {
                        g.replay_member_metadata(&member, Some(v));
                    }
                }
                None => {
                    if let Some(g) = self.existing_consumer_group(&group) {
                        g.replay_member_metadata(&member, None);
                    }
                }
            },
            CoordinatorRecord::ConsumerTargetAssignmentMetadata { group, value } => match value {
                Some(epoch) => {
                    if let Some(g) = self.consumer_group_for_replay(&group) {
                        g.assignment_epoch = epoch;
                    }
                }
                None => {
                    if let Some(g) = self.existing_consumer_group(&group) {
                        g.assignment_epoch = -1;
                    }
                }
            },
            CoordinatorRecord::ConsumerTargetAssignmentMember {
                group,
                member,
                value,
            } => match value {
                Some(a) => {
                    if let Some(g) = self.consumer_group_for_replay(&group) {
                        g.target.insert(member, a);
                    }
                }
                None => {
                    if let Some(g) = self.existing_consumer_group(&group) {
                        g.target.remove(&member);
                    }
                }
            },
            CoordinatorRecord::ConsumerCurrentAssignment {
                group,
                member,
                value,
            } => match value {
                Some(v) => {
                    if let Some(g) = self.consumer_group_for_replay(&group) {
                        g.replay_current(&member, Some(v));
                    }
                }
                None => {
                    if let Some(g) = self.existing_consumer_group(&group) {
                        g.replay_current(&member, None);
                    }
                }
            },
            CoordinatorRecord::ConsumerRegex {
                group,
                regex,
                value,
            } => {
                let g = match value {
                    Some(_) => self.consumer_group_for_replay(&group),
                    None => self.existing_consumer_group(&group),
                };
                if let Some(g) = g {
                    g.replay_regex(regex, value);
                }
            }
        }
    }

    /// Applies a tombstone of the offset: the committed offset and every pending
    /// transactional offset of the partition go (as Kafka's replay of a tombstone).
    pub(crate) fn remove_offset(&mut self, group: &str, topic: &str, partition: i32) {
        self.txn.clear(group, topic, partition);
        if let Some(g) = self.offsets.get_mut(group) {
            if let Some(t) = g.get_mut(topic) {
                t.remove(&partition);
                if t.is_empty() {
                    g.remove(topic);
                }
            }
            if g.is_empty() {
                self.offsets.remove(group);
            }
        }
    }

    /// Ends loading: starts every loaded member's session at `now` (as Kafka's
    /// `onLoaded`), rebalances classic groups above `group.max.size`, and starts the
    /// periodic offset expiry.
    pub fn finish_loading(&mut self, now: TimestampMs) -> Vec<Output> {
        let mut out = Vec::new();
        if self.status != CoordinatorStatus::Loading {
            return out;
        }
        self.status = CoordinatorStatus::Active;
        self.now = self.now.max(now.get());
        self.activate_groups(|_| true, &mut out);
        let next = self.now + self.config.offsets_retention_check_interval_ms.max(1);
        self.timers
            .schedule(TimerKey::OffsetRetention, next, TimerPayload::None);
        self.run_timers(&mut out);
        out
    }

    /// Stops coordinating (Kafka's `onUnloaded`): answers every parked JoinGroup and
    /// SyncGroup with NOT_COORDINATOR and drops all state. Later calls get NOT_COORDINATOR.
    pub fn unload(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        let Coordinator {
            config,
            timers,
            groups,
            now,
            ..
        } = self;
        let mut cx = Ctx {
            cfg: config,
            timers,
            out: &mut out,
            now: *now,
        };
        for g in groups.values_mut() {
            if let Group::Classic(g) = g {
                g.fail_all_waiters(&mut cx, codes::NOT_COORDINATOR);
            }
        }
        self.groups.clear();
        self.offsets.clear();
        self.pending = Default::default();
        self.txn = Default::default();
        self.timers.clear();
        self.loading.clear();
        self.status = CoordinatorStatus::Unloaded;
        out
    }

    // -------------------------------------------------------------- classic protocol

    /// JoinGroup (v0–v9). The reply is usually parked until the rebalance's join phase
    /// completes (all members rejoined, the rebalance timeout, or the initial delay).
    pub fn join_group(
        &mut self,
        req: JoinGroupRequest,
        now: TimestampMs,
        token: ReplyToken,
    ) -> Vec<Output> {
        self.call(now, |c, out| c.join_inner(&req, token, out))
    }

    fn join_inner(&mut self, req: &JoinGroupRequest, token: ReplyToken, out: &mut Vec<Output>) {
        let fail = |out: &mut Vec<Output>, code: i16| {
            out.push(Output::Reply {
                token,
                response: Response::JoinGroup(JoinGroupResponse::error(
                    code,
                    req.member_id.clone(),
                )),
            });
        };
        if let Some(e) = self.group_error(&req.group_id) {
            return fail(out, e.code());
        }
        if req.group_id.is_empty() {
            return fail(out, codes::INVALID_GROUP_ID);
        }
        if let Err(e) = validate_join(req) {
            return fail(out, e.code());
        }
        if req.session_timeout_ms < self.config.group_min_session_timeout_ms
            || req.session_timeout_ms > self.config.group_max_session_timeout_ms
        {
            return fail(out, codes::INVALID_SESSION_TIMEOUT);
        }
        let gid = req.group_id.clone();
        let unknown_member = req.member_id.is_empty();
        let mut prefix = Vec::new();
        if let Some(Group::Consumer(cg)) = self.groups.get(&gid) {
            if !cg.members.is_empty() {
                // Classic members joining a KIP-848 group (online migration): not done.
                return fail(out, codes::INCONSISTENT_GROUP_PROTOCOL);
            }
            if !unknown_member {
                return fail(out, codes::UNKNOWN_MEMBER_ID);
            }
            // An empty consumer group becomes a classic group; its offsets stay.
            prefix = cg.tombstones();
            self.groups.remove(&gid);
        }
        let is_new_group = !self.groups.contains_key(&gid);
        if is_new_group {
            if !unknown_member {
                return fail(out, codes::UNKNOWN_MEMBER_ID);
            }
            if self.groups.len() >= self.config.max_groups() {
                return fail(out, codes::COORDINATOR_NOT_AVAILABLE);
            }
            self.groups.insert(
                gid.clone(),
                Group::Classic(ClassicGroup::new(gid.clone(), Some(self.now))),
            );
        }
        let Coordinator {
            config,
            timers,
            groups,
            now,
            id_gen,
            ..
        } = self;
        let Some(Group::Classic(g)) = groups.get_mut(&gid) else {
            return;
        };
        let mut inner = Vec::new();
        let mut cx = Ctx {
            cfg: config,
            timers,
            out: &mut inner,
            now: *now,
        };
        g.join(&mut cx, req, token, &mut **id_gen);
        let wrote = inner.iter().any(|o| matches!(o, Output::Append { .. }));
        if is_new_group && !wrote {
            // Kafka commits a new group with an empty GroupMetadataValue.
            let v = g.empty_metadata_value();
            g.persisted = Some(v.clone());
            prefix.push(CoordinatorRecord::GroupMetadata {
                group: gid.clone(),
                value: Some(v),
            });
        }
        let mut cx = Ctx {
            cfg: config,
            timers,
            out,
            now: *now,
        };
        cx.append(&gid, prefix);
        out.extend(inner);
    }

    /// SyncGroup (v0–v5). Followers' replies are parked until the leader's assignment is
    /// persisted.
    pub fn sync_group(
        &mut self,
        req: SyncGroupRequest,
        now: TimestampMs,
        token: ReplyToken,
    ) -> Vec<Output> {
        self.call(now, |c, out| {
            let fail = |out: &mut Vec<Output>, code: i16| {
                out.push(Output::Reply {
                    token,
                    response: Response::SyncGroup(SyncGroupResponse::error(code)),
                });
            };
            if let Some(e) = c.group_error(&req.group_id) {
                return fail(out, e.code());
            }
            if req.group_id.is_empty() {
                return fail(out, codes::INVALID_GROUP_ID);
            }
            let too_big = req.assignments.len() > c.config.classic_max_size()
                || req.assignments.iter().any(|a| {
                    a.assignment.len() > MEMBER_METADATA_BYTES_MAX
                        || a.member_id.len() > STRING_BYTES_MAX
                });
            if too_big {
                return fail(out, codes::INVALID_REQUEST);
            }
            let Coordinator {
                config,
                timers,
                groups,
                now,
                ..
            } = c;
            match groups.get_mut(&req.group_id) {
                Some(Group::Classic(g)) => {
                    let mut cx = Ctx {
                        cfg: config,
                        timers,
                        out,
                        now: *now,
                    };
                    g.sync(&mut cx, &req, token);
                }
                _ => fail(out, codes::UNKNOWN_MEMBER_ID),
            }
        })
    }

    /// Heartbeat (v0–v4).
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        now: TimestampMs,
        token: ReplyToken,
    ) -> Vec<Output> {
        self.call(now, |c, out| {
            let code = if let Some(e) = c.group_error(&req.group_id) {
                e.code()
            } else if req.group_id.is_empty() {
                codes::INVALID_GROUP_ID
            } else {
                let Coordinator {
                    config,
                    timers,
                    groups,
                    now,
                    ..
                } = c;
                match groups.get_mut(&req.group_id) {
                    Some(Group::Classic(g)) => {
                        let mut cx = Ctx {
                            cfg: config,
                            timers,
                            out,
                            now: *now,
                        };
                        g.heartbeat(
                            &mut cx,
                            &req.member_id,
                            req.group_instance_id.as_deref(),
                            req.generation_id,
                        )
                    }
                    _ => codes::UNKNOWN_MEMBER_ID,
                }
            };
            out.push(Output::Reply {
                token,
                response: Response::Heartbeat(HeartbeatResponse { error_code: code }),
            });
        })
    }

    /// LeaveGroup (v0–v5; v3+ may remove several members, by member id or instance id).
    /// For v0–v2 the top-level error is the single member's error.
    pub fn leave_group(
        &mut self,
        req: LeaveGroupRequest,
        now: TimestampMs,
        token: ReplyToken,
    ) -> Vec<Output> {
        self.call(now, |c, out| {
            let top = |code: i16| LeaveGroupResponse {
                error_code: code,
                members: Vec::new(),
            };
            let mut resp = if let Some(e) = c.group_error(&req.group_id) {
                top(e.code())
            } else if req.group_id.is_empty() {
                top(codes::INVALID_GROUP_ID)
            } else if req.members.len() > c.config.classic_max_size() {
                top(codes::INVALID_REQUEST)
            } else {
                let Coordinator {
                    config,
                    timers,
                    groups,
                    now,
                    ..
                } = c;
                match groups.get_mut(&req.group_id) {
                    Some(Group::Classic(g)) => {
                        let mut cx = Ctx {
                            cfg: config,
                            timers,
                            out,
                            now: *now,
                        };
                        g.leave(&mut cx, &req)
                    }
                    Some(Group::Consumer(_)) => LeaveGroupResponse {
                        error_code: codes::NONE,
                        members: req
                            .members
                            .iter()
                            .map(|m| crate::api::LeaveGroupMemberResponse {
                                member_id: m.member_id.clone(),
                                group_instance_id: m.group_instance_id.clone(),
                                error_code: codes::UNKNOWN_MEMBER_ID,
                            })
                            .collect(),
                    },
                    None => top(codes::UNKNOWN_MEMBER_ID),
                }
            };
            if req.api_version <= 2 && resp.error_code == codes::NONE {
                if let Some(first) = resp.members.first() {
                    resp.error_code = first.error_code;
                }
            }
            out.push(Output::Reply {
                token,
                response: Response::LeaveGroup(resp),
            });
        })
    }

    // ------------------------------------------------------------------ KIP-848

    /// ConsumerGroupHeartbeat (v0–v1): join (epoch 0), heartbeat, leave (-1) or static
    /// leave (-2). `topics` resolves subscribed topic names for the assignor, and
    /// subscribed regexes against its topic names (see `consumer_regex`).
    pub fn consumer_group_heartbeat(
        &mut self,
        req: ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicMetadata,
        now: TimestampMs,
        token: ReplyToken,
    ) -> Vec<Output> {
        self.call(now, |c, out| {
            let resp = match c.consumer_heartbeat_inner(&req, topics, out) {
                Ok(r) => r,
                Err(e) => ConsumerGroupHeartbeatResponse::error(e.code(), Some(e.message())),
            };
            out.push(Output::Reply {
                token,
                response: Response::ConsumerGroupHeartbeat(resp),
            });
        })
    }

    fn validate_consumer_heartbeat(
        &self,
        req: &ConsumerGroupHeartbeatRequest,
    ) -> Result<(), GroupError> {
        let blank = |s: &str| s.trim().is_empty();
        if !self.config.consumer_protocol_enabled {
            return Err(GroupError::UnsupportedVersion(
                "the consumer rebalance protocol is disabled".into(),
            ));
        }
        if (req.api_version >= 1
            || req.member_epoch > 0
            || req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH)
            && blank(&req.member_id)
        {
            return Err(GroupError::InvalidRequest(
                "MemberId can't be empty.".into(),
            ));
        }
        if blank(&req.group_id) {
            return Err(GroupError::InvalidRequest("GroupId can't be empty.".into()));
        }
        if req.instance_id.as_deref().is_some_and(blank) {
            return Err(GroupError::InvalidRequest(
                "InstanceId can't be empty.".into(),
            ));
        }
        if req.rack_id.as_deref().is_some_and(blank) {
            return Err(GroupError::InvalidRequest("RackId can't be empty.".into()));
        }
        for s in [
            &req.group_id,
            &req.member_id,
            &req.client_id,
            &req.client_host,
        ] {
            check_str(s, "id")?;
        }
        for s in [&req.instance_id, &req.rack_id, &req.server_assignor]
            .into_iter()
            .flatten()
        {
            check_str(s, "id")?;
        }
        if let Some(names) = &req.subscribed_topic_names {
            if names.len() > MEMBER_SUBSCRIBED_TOPICS_MAX {
                return Err(GroupError::InvalidRequest(format!(
                    "more than {MEMBER_SUBSCRIBED_TOPICS_MAX} subscribed topics"
                )));
            }
            for n in names {
                check_str(n, "topic name")?;
            }
        }
        if let Some(r) = &req.subscribed_topic_regex {
            check_str(r, "subscribed topic regex")?;
        }
        if req.member_epoch == 0 {
            if req.rebalance_timeout_ms == -1 {
                return Err(GroupError::InvalidRequest(
                    "RebalanceTimeoutMs must be provided in first request.".into(),
                ));
            }
            if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
                return Err(GroupError::InvalidRequest(
                    "TopicPartitions must be empty when (re-)joining.".into(),
                ));
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return Err(GroupError::InvalidRequest(
                    "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.".into(),
                ));
            }
        } else if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            if req.instance_id.is_none() {
                return Err(GroupError::InvalidRequest(
                    "InstanceId can't be null.".into(),
                ));
            }
        } else if req.member_epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return Err(GroupError::InvalidRequest("MemberEpoch is invalid.".into()));
        }
        if let Some(a) = &req.server_assignor {
            let configured = self.config.assignors();
            if !configured.contains(&a.as_str()) || !SUPPORTED_ASSIGNORS.contains(&a.as_str()) {
                return Err(GroupError::UnsupportedAssignor(format!(
                    "ServerAssignor {a} is not supported. Supported assignors: {}.",
                    configured.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn consumer_heartbeat_inner(
        &mut self,
        req: &ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicMetadata,
        out: &mut Vec<Output>,
    ) -> Result<ConsumerGroupHeartbeatResponse, GroupError> {
        if let Some(e) = self.group_error(&req.group_id) {
            return Err(e);
        }
        self.validate_consumer_heartbeat(req)?;
        let gid = req.group_id.clone();
        let Coordinator {
            config,
            timers,
            groups,
            now,
            id_gen,
            ..
        } = self;
        let mut cx = Ctx {
            cfg: config,
            timers,
            out,
            now: *now,
        };
        let leaving = req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
            || req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH;
        match groups.get_mut(&gid) {
            Some(Group::Consumer(g)) => {
                if leaving {
                    g.leave(&mut cx, req)
                } else {
                    g.heartbeat(&mut cx, req, topics, &mut **id_gen, Vec::new())
                }
            }
            existing => {
                if leaving || req.member_epoch != 0 {
                    return Err(GroupError::GroupIdNotFound);
                }
                let mut prefix = Vec::new();
                match existing {
                    Some(Group::Classic(cg)) => {
                        if cg.state != ClassicState::Empty {
                            // Online upgrade of a non-empty classic group: not done.
                            return Err(GroupError::GroupIdNotFound);
                        }
                        prefix.push(CoordinatorRecord::GroupMetadata {
                            group: gid.clone(),
                            value: None,
                        });
                    }
                    _ => {
                        if groups.len() >= cx.cfg.max_groups() {
                            return Err(GroupError::CoordinatorNotAvailable);
                        }
                    }
                }
                let mut g = ConsumerGroup::new(gid.clone());
                let resp = g.heartbeat(&mut cx, req, topics, &mut **id_gen, prefix)?;
                if let Some(Group::Classic(old)) = groups.get_mut(&gid) {
                    // Cancel what the empty classic group may still have scheduled.
                    for id in old.pending_members.clone() {
                        cx.timers.cancel(&TimerKey::ClassicHeartbeat {
                            group: gid.clone(),
                            member: id,
                        });
                    }
                    cx.timers
                        .cancel(&TimerKey::ClassicJoin { group: gid.clone() });
                }
                groups.insert(gid, Group::Consumer(g));
                Ok(resp)
            }
        }
    }

    // ------------------------------------------------------------ group admin APIs

    /// ListGroups (v0–v5), with the v4 state filter and v5 type filter
    /// (case-insensitive). Only groups of owned partitions are listed; while an owned
    /// partition is loading the whole request fails with COORDINATOR_LOAD_IN_PROGRESS,
    /// as in Kafka.
    pub fn list_groups(&self, req: &ListGroupsRequest) -> ListGroupsResponse {
        let error = self.status_error().or_else(|| {
            (!self.loading.is_empty()).then_some(GroupError::CoordinatorLoadInProgress)
        });
        if let Some(e) = error {
            return ListGroupsResponse {
                error_code: e.code(),
                groups: Vec::new(),
            };
        }
        let states: BTreeSet<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
        let types: BTreeSet<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
        let groups = self
            .groups
            .iter()
            .filter(|(id, _)| self.serves(id))
            .map(|(id, g)| match g {
                Group::Classic(g) => ListedGroup {
                    group_id: id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    group_state: g.state.name().to_owned(),
                    group_type: "classic".to_owned(),
                },
                Group::Consumer(g) => ListedGroup {
                    group_id: id.clone(),
                    protocol_type: CONSUMER_PROTOCOL_TYPE.to_owned(),
                    group_state: g.state_name().to_owned(),
                    group_type: "consumer".to_owned(),
                },
            })
            .filter(|l| states.is_empty() || states.contains(&l.group_state.to_lowercase()))
            .filter(|l| types.is_empty() || types.contains(&l.group_type))
            .collect();
        ListGroupsResponse {
            error_code: codes::NONE,
            groups,
        }
    }

    /// DescribeGroups (v0–v5). Unknown groups are reported `Dead`; KIP-848 groups get
    /// GROUP_ID_NOT_FOUND (use ConsumerGroupDescribe), as in Kafka 4.
    pub fn describe_groups(&self, group_ids: &[String]) -> DescribeGroupsResponse {
        let groups = group_ids
            .iter()
            .map(|id| {
                let base = DescribedGroup {
                    group_id: id.clone(),
                    ..Default::default()
                };
                if let Some(e) = self.group_error(id) {
                    return DescribedGroup {
                        error_code: e.code(),
                        ..base
                    };
                }
                if id.is_empty() {
                    return DescribedGroup {
                        error_code: codes::INVALID_GROUP_ID,
                        ..base
                    };
                }
                match self.groups.get(id) {
                    None => DescribedGroup {
                        group_state: ClassicState::Dead.name().to_owned(),
                        ..base
                    },
                    Some(Group::Consumer(_)) => DescribedGroup {
                        error_code: codes::GROUP_ID_NOT_FOUND,
                        group_state: ClassicState::Dead.name().to_owned(),
                        ..base
                    },
                    Some(Group::Classic(g)) => {
                        let stable = g.state == ClassicState::Stable;
                        DescribedGroup {
                            error_code: codes::NONE,
                            group_id: id.clone(),
                            group_state: g.state.name().to_owned(),
                            protocol_type: g.protocol_type.clone().unwrap_or_default(),
                            protocol_data: if stable {
                                g.protocol_name.clone().unwrap_or_default()
                            } else {
                                String::new()
                            },
                            members: g
                                .members
                                .values()
                                .map(|m| DescribedGroupMember {
                                    member_id: m.member_id.clone(),
                                    group_instance_id: m.instance_id.clone(),
                                    client_id: m.client_id.clone(),
                                    client_host: m.client_host.clone(),
                                    member_metadata: if stable {
                                        m.metadata(g.protocol_name.as_deref())
                                    } else {
                                        Default::default()
                                    },
                                    member_assignment: if stable {
                                        m.assignment.clone()
                                    } else {
                                        Default::default()
                                    },
                                })
                                .collect(),
                        }
                    }
                }
            })
            .collect();
        DescribeGroupsResponse { groups }
    }

    /// ConsumerGroupDescribe (v0–v1). Unknown and classic groups get GROUP_ID_NOT_FOUND.
    pub fn consumer_group_describe(
        &self,
        req: &ConsumerGroupDescribeRequest,
        topics: &dyn TopicMetadata,
    ) -> ConsumerGroupDescribeResponse {
        let named = |a: &Assignment| -> Vec<NamedTopicPartitions> {
            a.iter()
                .map(|(t, ps)| NamedTopicPartitions {
                    topic_id: *t,
                    topic_name: topics.topic_by_id(*t).map(|i| i.name).unwrap_or_default(),
                    partitions: ps.iter().copied().collect(),
                })
                .collect()
        };
        let groups = req
            .group_ids
            .iter()
            .map(|id| {
                let base = ConsumerDescribedGroup {
                    group_id: id.clone(),
                    ..Default::default()
                };
                if let Some(e) = self.group_error(id) {
                    return ConsumerDescribedGroup {
                        error_code: e.code(),
                        ..base
                    };
                }
                match self.groups.get(id) {
                    Some(Group::Consumer(g)) => ConsumerDescribedGroup {
                        error_code: codes::NONE,
                        error_message: None,
                        group_id: id.clone(),
                        group_state: g.state_name().to_owned(),
                        group_epoch: g.group_epoch,
                        assignment_epoch: g.assignment_epoch,
                        assignor_name: g.preferred_assignor(&self.config.assignors()),
                        members: g
                            .members
                            .values()
                            .map(|m| ConsumerDescribedMember {
                                member_id: m.member_id.clone(),
                                instance_id: m.meta.instance_id.clone(),
                                rack_id: m.meta.rack_id.clone(),
                                member_epoch: m.member_epoch,
                                client_id: m.meta.client_id.clone(),
                                client_host: m.meta.client_host.clone(),
                                subscribed_topic_names: m.meta.subscribed_topic_names.clone(),
                                subscribed_topic_regex: m.meta.subscribed_topic_regex.clone(),
                                assignment: named(&m.assigned),
                                target_assignment: named(
                                    &g.target.get(&m.member_id).cloned().unwrap_or_default(),
                                ),
                                member_type: 1,
                            })
                            .collect(),
                    },
                    Some(Group::Classic(_)) => ConsumerDescribedGroup {
                        error_code: codes::GROUP_ID_NOT_FOUND,
                        error_message: Some(format!("Group {id} is not a consumer group.")),
                        ..base
                    },
                    None => ConsumerDescribedGroup {
                        error_code: codes::GROUP_ID_NOT_FOUND,
                        error_message: Some(format!("Group {id} not found.")),
                        ..base
                    },
                }
            })
            .collect();
        ConsumerGroupDescribeResponse { groups }
    }

    /// Records deleting group `id` and its offsets, and the in-memory removal.
    pub(crate) fn delete_group_records(&mut self, id: &str) -> Vec<CoordinatorRecord> {
        let mut records = Vec::new();
        // Pending transactional offsets go too (Kafka's `deleteAllOffsets`): one
        // tombstone per partition, committed or pending.
        let mut tombstoned: BTreeSet<(String, i32)> =
            self.txn.pending_of_group(id).into_iter().collect();
        if let Some(offsets) = self.offsets.get(id) {
            for (topic, parts) in offsets {
                tombstoned.extend(parts.keys().map(|p| (topic.clone(), *p)));
            }
        }
        for (topic, partition) in tombstoned {
            self.remove_offset(id, &topic, partition);
            records.push(CoordinatorRecord::OffsetCommit {
                group: id.to_owned(),
                topic,
                partition,
                value: None,
            });
        }
        match self.groups.remove(id) {
            Some(Group::Classic(g)) => {
                for m in g.pending_members.iter().chain(g.members.keys()) {
                    self.timers.cancel(&TimerKey::ClassicHeartbeat {
                        group: id.to_owned(),
                        member: m.clone(),
                    });
                }
                self.timers.cancel(&TimerKey::ClassicJoin {
                    group: id.to_owned(),
                });
                self.timers.cancel(&TimerKey::ClassicSync {
                    group: id.to_owned(),
                });
                records.push(CoordinatorRecord::GroupMetadata {
                    group: id.to_owned(),
                    value: None,
                });
            }
            Some(Group::Consumer(g)) => records.extend(g.tombstones()),
            None => {}
        }
        records
    }

    /// DeleteGroups (v0–v2): empty groups and their offsets are deleted.
    pub fn delete_groups(
        &mut self,
        group_ids: Vec<String>,
        now: TimestampMs,
        token: ReplyToken,
    ) -> Vec<Output> {
        self.call(now, |c, out| {
            let mut results = Vec::with_capacity(group_ids.len());
            for id in group_ids {
                let code = if let Some(e) = c.group_error(&id) {
                    e.code()
                } else if id.is_empty() {
                    codes::INVALID_GROUP_ID
                } else {
                    match c.groups.get(&id) {
                        None => codes::GROUP_ID_NOT_FOUND,
                        Some(Group::Classic(g)) => match g.state {
                            ClassicState::Dead => codes::GROUP_ID_NOT_FOUND,
                            ClassicState::Empty => codes::NONE,
                            _ => codes::NON_EMPTY_GROUP,
                        },
                        Some(Group::Consumer(g)) if !g.members.is_empty() => codes::NON_EMPTY_GROUP,
                        Some(Group::Consumer(_)) => codes::NONE,
                    }
                };
                if code == codes::NONE {
                    let records = c.delete_group_records(&id);
                    let mut cx = Ctx {
                        cfg: &c.config,
                        timers: &mut c.timers,
                        out,
                        now: c.now,
                    };
                    cx.append(&id, records);
                }
                results.push(DeletableGroupResult {
                    group_id: id,
                    error_code: code,
                });
            }
            out.push(Output::Reply {
                token,
                response: Response::DeleteGroups(DeleteGroupsResponse { results }),
            });
        })
    }

    // --------------------------------------------------------------- introspection

    /// The committed offsets of `group` (for lag), or `None` if it has none.
    pub fn committed_offsets(
        &self,
        group: &str,
    ) -> Option<BTreeMap<samsa_model::TopicPartition, samsa_model::Offset>> {
        let g = self.offsets.get(group)?;
        Some(
            g.iter()
                .flat_map(|(t, ps)| {
                    ps.iter().map(move |(p, v)| {
                        (
                            samsa_model::TopicPartition {
                                topic: t.clone(),
                                partition: samsa_model::PartitionIndex(*p),
                            },
                            samsa_model::Offset(v.offset),
                        )
                    })
                })
                .collect(),
        )
    }

    /// The group's state name (classic or KIP-848), if it exists.
    pub fn group_state(&self, group: &str) -> Option<&'static str> {
        match self.groups.get(group)? {
            Group::Classic(g) => Some(g.state.name()),
            Group::Consumer(g) => Some(g.state_name()),
        }
    }

    /// For a KIP-848 group: the partitions each member may still hold (assigned plus
    /// pending revocation). Used to check that no partition has two owners.
    pub fn consumer_group_holdings(&self, group: &str) -> Option<BTreeMap<String, Assignment>> {
        match self.groups.get(group)? {
            Group::Consumer(g) => Some(
                g.members
                    .values()
                    .map(|m| {
                        let mut a = m.assigned.clone();
                        for (t, ps) in &m.pending_revocation {
                            a.entry(*t).or_default().extend(ps.iter().copied());
                        }
                        (m.member_id.clone(), a)
                    })
                    .collect(),
            ),
            Group::Classic(_) => None,
        }
    }

    /// The persistent state (what replaying the emitted records rebuilds).
    pub fn durable_state(&self) -> DurableState {
        let mut d = DurableState {
            pending_transactional_offsets: self.txn.snapshot(),
            ..DurableState::default()
        };
        for (gid, offs) in &self.offsets {
            let flat = offs
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |(p, v)| ((t.clone(), *p), v.clone())))
                .collect();
            d.offsets.insert(gid.clone(), flat);
        }
        for (gid, g) in &self.groups {
            match g {
                Group::Classic(g) => {
                    d.classic_groups.insert(gid.clone(), g.persisted.clone());
                }
                Group::Consumer(g) => {
                    d.consumer_groups.insert(
                        gid.clone(),
                        ConsumerGroupDurable {
                            group_epoch: g.group_epoch,
                            assignment_epoch: g.assignment_epoch,
                            metadata_hash: g.metadata_hash,
                            members: g
                                .members
                                .values()
                                .map(|m| (m.member_id.clone(), (m.meta.clone(), m.current_value())))
                                .collect(),
                            target: g.target.clone(),
                            resolved_regexes: g.resolved_regexes.clone(),
                        },
                    );
                }
            }
        }
        d
    }

    /// A classic group as a GroupMetadataValue built from its live state. In `Stable` and
    /// `Empty` it equals what was last persisted (apart from the state timestamp).
    pub fn classic_group_snapshot(&self, group: &str) -> Option<GroupMetadataValue> {
        match self.groups.get(group)? {
            Group::Classic(g) => Some(g.metadata_value(None)),
            Group::Consumer(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_for_matches_java_hash_code() {
        // "".hashCode() == 0; "a".hashCode() == 97; "group".hashCode() == 98629247.
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("group", 50), 98_629_247 % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE; Utils.abs gives 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Negative hashes: "my-group".hashCode() == -1906497762 (partition 36 of 50),
        // "consumer-group".hashCode() == -1738392088 (partition 10 of 50).
        assert_eq!(partition_for("my-group", 50), 36);
        assert_eq!(partition_for("consumer-group", 50), 10);
        // Characters outside the BMP hash as two UTF-16 units.
        let h = "😀"
            .encode_utf16()
            .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
        assert_eq!(
            partition_for("😀", 1_000_000),
            ((h & 0x7fff_ffff) as u32) % 1_000_000
        );
    }
}
