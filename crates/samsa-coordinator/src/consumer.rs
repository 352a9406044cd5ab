//! KIP-848 consumer groups (ConsumerGroupHeartbeat): group epoch, target assignment
//! computed by a server-side assignor, and per-member reconciliation in which a
//! partition reaches its new owner only after the previous owner reported (in a
//! heartbeat) that it no longer holds it.
//!
//! Every change is recorded as Kafka's consumer-group records (see [`crate::records`]);
//! the state is exactly what replaying those records yields, plus the derived
//! partition-owner index and the session / revocation deadlines.

use std::collections::{BTreeMap, BTreeSet};

use samsa_model::TopicId;

use crate::api::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, TopicPartitions};
use crate::assignor::{assign, MemberSpec, TopicInfo, TopicMetadata};
use crate::consumer_regex::regex_of;
use crate::coordinator::Ctx;
use crate::error::{codes, GroupError};
use crate::records::{
    Assignment, AssignmentEpochs, ConsumerCurrentAssignmentValue, ConsumerGroupMetadataValue,
    ConsumerMemberMetadataValue, ConsumerRegexValue, CoordinatorRecord,
};
use crate::timer::{TimerKey, TimerPayload};

/// Member epoch of a member leaving the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member leaving temporarily.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// A member's reconciliation state (Kafka's `MemberState`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Reconciled with the target assignment of its epoch.
    Stable,
    /// Must revoke partitions before moving to the next epoch.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still hold.
    UnreleasedPartitions,
    /// A state written by a newer version.
    Unknown,
}

impl MemberState {
    fn to_i8(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }

    fn from_i8(v: i8) -> Self {
        match v {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConsumerMember {
    pub(crate) member_id: String,
    pub(crate) meta: ConsumerMemberMetadataValue,
    pub(crate) member_epoch: i32,
    pub(crate) previous_member_epoch: i32,
    pub(crate) state: MemberState,
    pub(crate) assigned: Assignment,
    pub(crate) pending_revocation: Assignment,
    /// KIP-1251: the member epoch at which each held partition (assigned or pending
    /// revocation) was given to the member; exactly the held partitions.
    pub(crate) assignment_epochs: AssignmentEpochs,
}

impl ConsumerMember {
    fn new(member_id: String) -> Self {
        ConsumerMember {
            member_id,
            meta: ConsumerMemberMetadataValue {
                rebalance_timeout_ms: -1,
                ..Default::default()
            },
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            assignment_epochs: AssignmentEpochs::new(),
        }
    }

    pub(crate) fn current_value(&self) -> ConsumerCurrentAssignmentValue {
        ConsumerCurrentAssignmentValue {
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state.to_i8(),
            assigned: self.assigned.clone(),
            pending_revocation: self.pending_revocation.clone(),
            assignment_epochs: self.assignment_epochs.clone(),
        }
    }

    fn apply_current(&mut self, v: ConsumerCurrentAssignmentValue) {
        self.member_epoch = v.member_epoch;
        self.previous_member_epoch = v.previous_member_epoch;
        self.state = MemberState::from_i8(v.state);
        self.assigned = v.assigned;
        self.pending_revocation = v.pending_revocation;
        self.assignment_epochs = v.assignment_epochs;
        // Records written without assignment epochs: the strict pre-KIP-1251 check.
        self.settle_epochs(self.member_epoch);
    }

    /// Keeps assignment epochs for exactly the held partitions, giving `epoch` to the
    /// ones that have none (newly assigned).
    fn settle_epochs(&mut self, epoch: i32) {
        let held: Vec<(TopicId, i32)> = self.held().collect();
        self.assignment_epochs.retain(|tp, _| held.contains(tp));
        for tp in held {
            self.assignment_epochs.entry(tp).or_insert(epoch);
        }
    }

    fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.member_epoch == epoch && self.state == MemberState::Stable
    }

    /// Whether the member holds `partition` of `topic` (assigned or pending revocation).
    fn holds(&self, topic: TopicId, partition: i32) -> bool {
        [&self.assigned, &self.pending_revocation]
            .iter()
            .any(|a| a.get(&topic).is_some_and(|ps| ps.contains(&partition)))
    }

    /// Partitions the member may still hold: assigned plus pending revocation.
    pub(crate) fn held(&self) -> impl Iterator<Item = (TopicId, i32)> + '_ {
        self.assigned
            .iter()
            .chain(self.pending_revocation.iter())
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
    }
}

fn to_wire(a: &Assignment) -> Vec<TopicPartitions> {
    a.iter()
        .map(|(t, ps)| TopicPartitions {
            topic_id: *t,
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

fn owned_contains(owned: &[TopicPartitions], a: &Assignment) -> bool {
    owned.iter().any(|tp| {
        a.get(&tp.topic_id)
            .is_some_and(|ps| tp.partitions.iter().any(|p| ps.contains(p)))
    })
}

/// Kafka's `isSubset`: every owned partition is assigned (`None` is not a subset).
fn is_subset(owned: Option<&[TopicPartitions]>, assigned: &Assignment) -> bool {
    let Some(owned) = owned else { return false };
    owned.iter().all(|tp| {
        assigned
            .get(&tp.topic_id)
            .is_some_and(|ps| tp.partitions.iter().all(|p| ps.contains(p)))
    })
}

/// Kafka's member epoch check: ahead is fenced; behind is accepted only for the previous
/// epoch with no partitions beyond the current assignment (a lost response).
fn validate_epoch(
    m: &ConsumerMember,
    received: i32,
    owned: Option<&[TopicPartitions]>,
) -> Result<(), GroupError> {
    if received > m.member_epoch
        || (received < m.member_epoch
            && (received != m.previous_member_epoch || !is_subset(owned, &m.assigned)))
    {
        return Err(GroupError::FencedMemberEpoch);
    }
    Ok(())
}

/// Kafka's `CurrentAssignmentBuilder`: moves `m` one step towards `target` at
/// `target_epoch`. `owner` names the member (if any) currently holding a partition.
fn reconcile(
    m: &ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    subscribed: &BTreeSet<TopicId>,
    owned: Option<&[TopicPartitions]>,
    owner: &dyn Fn(TopicId, i32) -> Option<String>,
) -> ConsumerMember {
    if m.is_reconciled_to(target_epoch) {
        return m.clone();
    }
    let owns = |a: &Assignment| owned.is_none_or(|o| owned_contains(o, a));
    match m.state {
        MemberState::Stable if m.member_epoch == target_epoch => m.clone(),
        MemberState::UnrevokedPartitions if owns(&m.pending_revocation) => m.clone(),
        MemberState::Unknown => m.clone(),
        _ => next_assignment(m, target_epoch, target, subscribed, owned, owner),
    }
}

fn next_assignment(
    m: &ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    subscribed: &BTreeSet<TopicId>,
    owned: Option<&[TopicPartitions]>,
    owner: &dyn Fn(TopicId, i32) -> Option<String>,
) -> ConsumerMember {
    let mut assigned = Assignment::new();
    let mut revoke = Assignment::new();
    let mut to_assign = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<TopicId> = target.keys().chain(m.assigned.keys()).copied().collect();
    let empty = BTreeSet::new();
    for t in topics {
        let tgt = if subscribed.contains(&t) {
            target.get(&t).unwrap_or(&empty)
        } else {
            &empty
        };
        let cur = m.assigned.get(&t).unwrap_or(&empty);
        let kept: BTreeSet<i32> = cur.intersection(tgt).copied().collect();
        let gone: BTreeSet<i32> = cur.difference(&kept).copied().collect();
        let mut wanted: BTreeSet<i32> = tgt.difference(&kept).copied().collect();
        let before = wanted.len();
        wanted.retain(|p| match owner(t, *p) {
            None => true,
            Some(o) => o == m.member_id,
        });
        unreleased |= wanted.len() != before;
        if !kept.is_empty() {
            assigned.insert(t, kept);
        }
        if !gone.is_empty() {
            revoke.insert(t, gone);
        }
        if !wanted.is_empty() {
            to_assign.insert(t, wanted);
        }
    }
    let mut next = m.clone();
    let owns_revoked = !revoke.is_empty() && owned.is_none_or(|o| owned_contains(o, &revoke));
    if owns_revoked {
        // Revoke first; the member stays in its epoch until it acknowledges.
        next.state = MemberState::UnrevokedPartitions;
        next.previous_member_epoch = m.member_epoch;
        next.member_epoch = m.member_epoch;
        next.assigned = assigned;
        next.pending_revocation = revoke;
        next.settle_epochs(m.member_epoch);
        return next;
    }
    for (t, ps) in to_assign {
        for p in &ps {
            // Newly assigned at the target epoch (also a partition it revoked before).
            next.assignment_epochs.insert((t, *p), target_epoch);
        }
        assigned.entry(t).or_default().extend(ps);
    }
    next.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
    next.previous_member_epoch = m.member_epoch;
    next.member_epoch = target_epoch;
    next.assigned = assigned;
    next.pending_revocation = Assignment::new();
    next.settle_epochs(target_epoch);
    next
}

/// samsa's hash of the subscribed topics' metadata (FNV-1a 64), persisted so that a
/// failover does not look like a metadata change.
fn metadata_hash(topics: &BTreeMap<String, TopicInfo>) -> i64 {
    if topics.is_empty() {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, info) in topics {
        eat(name.as_bytes());
        eat(&[0]);
        eat(info.id.0.as_bytes());
        eat(&info.partitions.to_be_bytes());
    }
    h as i64
}

pub(crate) struct ConsumerGroup {
    pub(crate) id: String,
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) metadata_hash: i64,
    pub(crate) members: BTreeMap<String, ConsumerMember>,
    pub(crate) static_members: BTreeMap<String, String>,
    pub(crate) target: BTreeMap<String, Assignment>,
    /// Who holds each partition (assigned or pending revocation); at most one member.
    pub(crate) owners: BTreeMap<(TopicId, i32), String>,
    /// What each subscribed regex resolved to (see [`crate::consumer_regex`]).
    pub(crate) resolved_regexes: BTreeMap<String, ConsumerRegexValue>,
}

impl ConsumerGroup {
    pub(crate) fn new(id: String) -> Self {
        ConsumerGroup {
            id,
            group_epoch: 0,
            assignment_epoch: 0,
            metadata_hash: 0,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            target: BTreeMap::new(),
            owners: BTreeMap::new(),
            resolved_regexes: BTreeMap::new(),
        }
    }

    /// Kafka's consumer group state name.
    pub(crate) fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| !m.is_reconciled_to(self.assignment_epoch))
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Inserts or replaces a member, keeping the owner index and static map in step.
    pub(crate) fn set_member(&mut self, m: ConsumerMember) {
        self.drop_ownership(&m.member_id);
        for tp in m.held() {
            self.owners.insert(tp, m.member_id.clone());
        }
        if let Some(inst) = &m.meta.instance_id {
            self.static_members
                .insert(inst.clone(), m.member_id.clone());
        }
        self.members.insert(m.member_id.clone(), m);
    }

    fn drop_ownership(&mut self, member_id: &str) {
        if let Some(old) = self.members.get(member_id) {
            for tp in old.held() {
                if self.owners.get(&tp).map(String::as_str) == Some(member_id) {
                    self.owners.remove(&tp);
                }
            }
        }
    }

    /// Removes a member (not its target assignment).
    pub(crate) fn remove_member(&mut self, member_id: &str) {
        self.drop_ownership(member_id);
        if let Some(m) = self.members.remove(member_id) {
            if let Some(inst) = &m.meta.instance_id {
                if self.static_members.get(inst).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(inst);
                }
            }
        }
    }

    /// Replays a ConsumerGroupMemberMetadata value.
    pub(crate) fn replay_member_metadata(
        &mut self,
        member_id: &str,
        v: Option<ConsumerMemberMetadataValue>,
    ) {
        match v {
            Some(v) => {
                let mut m = self
                    .members
                    .get(member_id)
                    .cloned()
                    .unwrap_or_else(|| ConsumerMember::new(member_id.to_owned()));
                m.meta = v;
                self.set_member(m);
            }
            None => self.remove_member(member_id),
        }
    }

    /// Replays a ConsumerGroupCurrentMemberAssignment value.
    pub(crate) fn replay_current(
        &mut self,
        member_id: &str,
        v: Option<ConsumerCurrentAssignmentValue>,
    ) {
        let mut m = match (self.members.get(member_id), &v) {
            (Some(m), _) => m.clone(),
            (None, Some(_)) => ConsumerMember::new(member_id.to_owned()),
            (None, None) => return,
        };
        match v {
            Some(v) => m.apply_current(v),
            None => {
                m.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                m.previous_member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                m.assigned.clear();
                m.pending_revocation.clear();
                m.assignment_epochs.clear();
            }
        }
        self.set_member(m);
    }

    fn session_key(&self, member_id: &str) -> TimerKey {
        TimerKey::ConsumerSession {
            group: self.id.clone(),
            member: member_id.to_owned(),
        }
    }

    fn rebalance_key(&self, member_id: &str) -> TimerKey {
        TimerKey::ConsumerRebalance {
            group: self.id.clone(),
            member: member_id.to_owned(),
        }
    }

    fn schedule_session(&self, cx: &mut Ctx<'_>, member_id: &str) {
        let deadline = cx.now + i64::from(cx.cfg.consumer_session_timeout_ms(&self.id).max(0));
        cx.timers
            .schedule(self.session_key(member_id), deadline, TimerPayload::None);
    }

    fn schedule_rebalance_timeout(&self, cx: &mut Ctx<'_>, m: &ConsumerMember) {
        if m.state == MemberState::UnrevokedPartitions {
            let deadline = cx.now + i64::from(m.meta.rebalance_timeout_ms.max(0));
            cx.timers.schedule(
                self.rebalance_key(&m.member_id),
                deadline,
                TimerPayload::Epoch(m.member_epoch),
            );
        } else {
            cx.timers.cancel(&self.rebalance_key(&m.member_id));
        }
    }

    /// Schedules every member's deadlines (after loading).
    pub(crate) fn schedule_all(&self, cx: &mut Ctx<'_>) {
        for m in self.members.values() {
            self.schedule_session(cx, &m.member_id);
            self.schedule_rebalance_timeout(cx, m);
        }
    }

    /// The assignor the members asked for most often, else the configured default.
    pub(crate) fn preferred_assignor(&self, configured: &[&str]) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.meta.server_assignor.as_deref() {
                if configured.contains(&a) {
                    *votes.entry(a).or_default() += 1;
                }
            }
        }
        let best = votes.values().copied().max();
        votes
            .into_iter()
            .find(|(_, v)| Some(*v) == best)
            .map(|(a, _)| a.to_owned())
            .unwrap_or_else(|| configured.first().copied().unwrap_or("uniform").to_owned())
    }

    /// All topic names the members subscribe to, by name or through their regex.
    pub(crate) fn subscribed_topic_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| self.member_topic_names(m).cloned())
            .collect()
    }

    /// The ids of the existing topics `m` subscribes to.
    fn member_topic_ids(
        &self,
        m: &ConsumerMember,
        subscription: &BTreeMap<String, TopicInfo>,
    ) -> BTreeSet<TopicId> {
        self.member_topic_names(m)
            .filter_map(|n| subscription.get(n).map(|t| t.id))
            .collect()
    }

    fn subscription_metadata(&self, topics: &dyn TopicMetadata) -> BTreeMap<String, TopicInfo> {
        self.subscribed_topic_names()
            .into_iter()
            .filter_map(|n| topics.topic_by_name(&n).map(|t| (n, t)))
            .collect()
    }

    /// Kafka's `ConsumerGroup.validateOffsetCommit` (non-transactional) with KIP-1251
    /// assignment epochs: a commit at the member's current epoch is accepted; one at an
    /// older epoch is accepted when every committed partition (`partitions`, by topic id
    /// when the broker knows it) is held by the member and was assigned to it at or
    /// before that epoch — `assignment epoch <= request epoch <= member epoch` — so a
    /// commit pipelined behind the heartbeat that bumped the epoch is not fenced. Anything
    /// else is STALE_MEMBER_EPOCH.
    pub(crate) fn validate_offset_commit(
        &self,
        member_id: &str,
        epoch: i32,
        api_version: i16,
        partitions: &[(Option<TopicId>, i32)],
        transactional: bool,
    ) -> Result<(), GroupError> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        if transactional && epoch == -1 && member_id.is_empty() {
            // TxnOffsetCommit need not name a member (Kafka checks the member only
            // when one of member id, epoch or instance id is given).
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if !transactional && api_version < 9 {
            return Err(GroupError::UnsupportedVersion(
                "OffsetCommit v9+ must be used by members of consumer-protocol groups".into(),
            ));
        }
        if epoch == m.member_epoch {
            return Ok(());
        }
        let assigned_by = |(topic, partition): &(Option<TopicId>, i32)| {
            topic.is_some_and(|t| {
                m.holds(t, *partition)
                    && m.assignment_epochs
                        .get(&(t, *partition))
                        .is_some_and(|assigned_at| *assigned_at <= epoch)
            })
        };
        if epoch > m.member_epoch || !partitions.iter().all(assigned_by) {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Kafka's `ConsumerGroup.validateOffsetFetch`.
    pub(crate) fn validate_offset_fetch(
        &self,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(member_id) = member_id else {
            return Ok(());
        };
        if epoch < 0 && member_id.is_empty() {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if epoch != m.member_epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Records deleting the (empty) group, as Kafka writes them.
    pub(crate) fn tombstones(&self) -> Vec<CoordinatorRecord> {
        let group = self.id.clone();
        let mut records: Vec<CoordinatorRecord> = self.regex_tombstones().collect();
        for id in self.members.keys() {
            records.push(CoordinatorRecord::ConsumerCurrentAssignment {
                group: group.clone(),
                member: id.clone(),
                value: None,
            });
        }
        for id in self.target.keys() {
            records.push(CoordinatorRecord::ConsumerTargetAssignmentMember {
                group: group.clone(),
                member: id.clone(),
                value: None,
            });
        }
        for id in self.members.keys() {
            records.push(CoordinatorRecord::ConsumerMemberMetadata {
                group: group.clone(),
                member: id.clone(),
                value: None,
            });
        }
        records.push(CoordinatorRecord::ConsumerTargetAssignmentMetadata {
            group: group.clone(),
            value: None,
        });
        records.push(CoordinatorRecord::ConsumerGroupPartitionMetadata {
            group: group.clone(),
        });
        records.push(CoordinatorRecord::ConsumerGroupMetadata { group, value: None });
        records
    }

    fn member_removal_records(&self, member_id: &str) -> Vec<CoordinatorRecord> {
        vec![
            CoordinatorRecord::ConsumerCurrentAssignment {
                group: self.id.clone(),
                member: member_id.to_owned(),
                value: None,
            },
            CoordinatorRecord::ConsumerTargetAssignmentMember {
                group: self.id.clone(),
                member: member_id.to_owned(),
                value: None,
            },
            CoordinatorRecord::ConsumerMemberMetadata {
                group: self.id.clone(),
                member: member_id.to_owned(),
                value: None,
            },
        ]
    }

    /// Removes a member and bumps the group epoch (leave, session or rebalance timeout).
    pub(crate) fn fence_member(&mut self, cx: &mut Ctx<'_>, member_id: &str) {
        if !self.members.contains_key(member_id) {
            return;
        }
        let mut records = self.member_removal_records(member_id);
        let regex = self
            .members
            .get(member_id)
            .and_then(regex_of)
            .map(str::to_owned);
        self.remove_member(member_id);
        self.drop_unsubscribed_regex(regex.as_deref(), &mut records);
        self.target.remove(member_id);
        self.group_epoch += 1;
        records.push(CoordinatorRecord::ConsumerGroupMetadata {
            group: self.id.clone(),
            value: Some(ConsumerGroupMetadataValue {
                epoch: self.group_epoch,
                metadata_hash: self.metadata_hash,
            }),
        });
        cx.timers.cancel(&self.session_key(member_id));
        cx.timers.cancel(&self.rebalance_key(member_id));
        cx.append(&self.id, records);
    }

    pub(crate) fn on_session_expired(&mut self, cx: &mut Ctx<'_>, member_id: &str) {
        self.fence_member(cx, member_id);
    }

    pub(crate) fn on_rebalance_expired(&mut self, cx: &mut Ctx<'_>, member_id: &str, epoch: i32) {
        if self
            .members
            .get(member_id)
            .is_some_and(|m| m.member_epoch == epoch)
        {
            self.fence_member(cx, member_id);
        }
    }

    /// A leave (-1) or static leave (-2) heartbeat.
    pub(crate) fn leave(
        &mut self,
        cx: &mut Ctx<'_>,
        req: &ConsumerGroupHeartbeatRequest,
    ) -> Result<ConsumerGroupHeartbeatResponse, GroupError> {
        let member_id = match &req.instance_id {
            None => {
                if !self.members.contains_key(&req.member_id) {
                    return Err(GroupError::UnknownMemberId);
                }
                req.member_id.clone()
            }
            Some(inst) => {
                let id = self
                    .static_members
                    .get(inst)
                    .ok_or(GroupError::UnknownMemberId)?;
                if *id != req.member_id {
                    return Err(GroupError::FencedInstanceId);
                }
                id.clone()
            }
        };
        if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            // The static member keeps its assignment until its session expires or it
            // rejoins under a new member id.
            let Some(mut m) = self.members.get(&member_id).cloned() else {
                return Err(GroupError::UnknownMemberId);
            };
            m.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            m.pending_revocation.clear();
            m.settle_epochs(LEAVE_GROUP_STATIC_MEMBER_EPOCH);
            let record = CoordinatorRecord::ConsumerCurrentAssignment {
                group: self.id.clone(),
                member: member_id.clone(),
                value: Some(m.current_value()),
            };
            self.set_member(m);
            cx.append(&self.id, vec![record]);
        } else {
            self.fence_member(cx, &member_id);
        }
        Ok(ConsumerGroupHeartbeatResponse {
            member_id: Some(member_id),
            member_epoch: req.member_epoch,
            ..Default::default()
        })
    }

    /// A joining (epoch 0) or regular heartbeat. Nothing changes unless it returns `Ok`;
    /// `prefix` records (converting a classic group) are appended before the group's own.
    pub(crate) fn heartbeat(
        &mut self,
        cx: &mut Ctx<'_>,
        req: &ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicMetadata,
        id_gen: &mut dyn FnMut() -> String,
        prefix: Vec<CoordinatorRecord>,
    ) -> Result<ConsumerGroupHeartbeatResponse, GroupError> {
        let joining = req.member_epoch == 0;
        let owned = req.topic_partitions.as_deref();
        if self.members.len() >= cx.cfg.consumer_max_size()
            && (req.member_id.is_empty() || !self.members.contains_key(&req.member_id))
        {
            return Err(GroupError::GroupMaxSizeReached);
        }
        let member_id = if req.member_id.is_empty() {
            let mut id = id_gen();
            let mut attempts = 0;
            while self.members.contains_key(&id) && attempts < 8 {
                id = id_gen();
                attempts += 1;
            }
            if self.members.contains_key(&id) {
                return Err(GroupError::UnknownMemberId);
            }
            id
        } else {
            req.member_id.clone()
        };

        // 0. Find (or create) the member; validation only, nothing changes yet.
        self.check_new_regex(req.subscribed_topic_regex.as_deref())?;
        let mut replaced: Option<String> = None;
        let member = match &req.instance_id {
            None => match self.members.get(&member_id) {
                Some(m) => {
                    validate_epoch(m, req.member_epoch, owned)?;
                    m.clone()
                }
                None if joining => ConsumerMember::new(member_id.clone()),
                None => return Err(GroupError::UnknownMemberId),
            },
            Some(inst) => match self
                .static_members
                .get(inst)
                .and_then(|id| self.members.get(id))
            {
                None if joining => self
                    .members
                    .get(&member_id)
                    .cloned()
                    .unwrap_or_else(|| ConsumerMember::new(member_id.clone())),
                None => return Err(GroupError::UnknownMemberId),
                Some(existing) if joining => {
                    if existing.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                        return Err(GroupError::UnreleasedInstanceId);
                    }
                    replaced = Some(existing.member_id.clone());
                    let mut m = existing.clone();
                    m.member_id = member_id.clone();
                    m.member_epoch = 0;
                    m.previous_member_epoch = 0;
                    m
                }
                Some(existing) => {
                    if existing.member_id != member_id {
                        return Err(GroupError::FencedInstanceId);
                    }
                    validate_epoch(existing, req.member_epoch, owned)?;
                    existing.clone()
                }
            },
        };

        let mut records = prefix;
        let is_new = !self.members.contains_key(&member_id);

        // KIP-345 replacement: the new member id inherits the old one's assignment.
        if let Some(old_id) = &replaced {
            records.extend(self.member_removal_records(old_id));
            records.push(CoordinatorRecord::ConsumerMemberMetadata {
                group: self.id.clone(),
                member: member_id.clone(),
                value: Some(member.meta.clone()),
            });
            let old_target = self.target.remove(old_id).unwrap_or_default();
            records.push(CoordinatorRecord::ConsumerTargetAssignmentMember {
                group: self.id.clone(),
                member: member_id.clone(),
                value: Some(old_target.clone()),
            });
            records.push(CoordinatorRecord::ConsumerCurrentAssignment {
                group: self.id.clone(),
                member: member_id.clone(),
                value: Some(member.current_value()),
            });
            self.remove_member(old_id);
            cx.timers.cancel(&self.session_key(old_id));
            cx.timers.cancel(&self.rebalance_key(old_id));
            self.target.insert(member_id.clone(), old_target);
            self.set_member(member.clone());
        }

        // 1. Update the member's subscription; bump the group epoch if it changed.
        let mut updated = member.clone();
        if let Some(inst) = &req.instance_id {
            updated.meta.instance_id = Some(inst.clone());
        }
        if let Some(rack) = &req.rack_id {
            updated.meta.rack_id = Some(rack.clone());
        }
        if req.rebalance_timeout_ms != -1 {
            updated.meta.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(a) = &req.server_assignor {
            updated.meta.server_assignor = Some(a.clone());
        }
        if let Some(names) = &req.subscribed_topic_names {
            let set: BTreeSet<String> = names.iter().cloned().collect();
            updated.meta.subscribed_topic_names = set.into_iter().collect();
        }
        if let Some(re) = &req.subscribed_topic_regex {
            updated.meta.subscribed_topic_regex = Some(re.clone());
        }
        updated.meta.client_id = req.client_id.clone();
        updated.meta.client_host = req.client_host.clone();

        let mut bump = false;
        if is_new || updated.meta != member.meta {
            records.push(CoordinatorRecord::ConsumerMemberMetadata {
                group: self.id.clone(),
                member: member_id.clone(),
                value: Some(updated.meta.clone()),
            });
            bump = updated.meta.subscribed_topic_names != member.meta.subscribed_topic_names
                || updated.meta.subscribed_topic_regex != member.meta.subscribed_topic_regex;
        }
        self.set_member(updated.clone());
        let old_regex = member.meta.subscribed_topic_regex.as_deref();
        bump |= self.update_regexes(cx, &member_id, old_regex, topics, &mut records);
        let subscription = self.subscription_metadata(topics);
        let hash = metadata_hash(&subscription);
        if hash != self.metadata_hash {
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
            self.metadata_hash = hash;
            records.push(CoordinatorRecord::ConsumerGroupMetadata {
                group: self.id.clone(),
                value: Some(ConsumerGroupMetadataValue {
                    epoch: self.group_epoch,
                    metadata_hash: hash,
                }),
            });
        }

        // 2. Recompute the target assignment if the group epoch moved past it.
        if self.group_epoch > self.assignment_epoch {
            let assignor = self.preferred_assignor(&cx.cfg.assignors());
            let topic_counts: BTreeMap<TopicId, u32> = subscription
                .values()
                .map(|t| (t.id, t.partitions))
                .collect();
            let specs: Vec<MemberSpec<'_>> = self
                .members
                .values()
                .map(|m| MemberSpec {
                    id: &m.member_id,
                    subscribed: self.member_topic_ids(m, &subscription),
                    current: self.target.get(&m.member_id),
                })
                .collect();
            let new_target = assign(&assignor, &specs, &topic_counts);
            for (id, a) in &new_target {
                if self.target.get(id) != Some(a) {
                    records.push(CoordinatorRecord::ConsumerTargetAssignmentMember {
                        group: self.id.clone(),
                        member: id.clone(),
                        value: Some(a.clone()),
                    });
                }
            }
            self.target = new_target;
            self.assignment_epoch = self.group_epoch;
            records.push(CoordinatorRecord::ConsumerTargetAssignmentMetadata {
                group: self.id.clone(),
                value: Some(self.assignment_epoch),
            });
        }

        // 3. Reconcile the member towards its target.
        let subscribed = self.member_topic_ids(&updated, &subscription);
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let owners = &self.owners;
        let owner = |t: TopicId, p: i32| owners.get(&(t, p)).cloned();
        let reconciled = reconcile(
            &updated,
            self.assignment_epoch,
            &target,
            &subscribed,
            owned,
            &owner,
        );
        if reconciled != updated {
            records.push(CoordinatorRecord::ConsumerCurrentAssignment {
                group: self.id.clone(),
                member: member_id.clone(),
                value: Some(reconciled.current_value()),
            });
            self.schedule_rebalance_timeout(cx, &reconciled);
            self.set_member(reconciled.clone());
        }
        self.schedule_session(cx, &member_id);
        cx.append(&self.id, records);

        let full = joining
            || (req.rebalance_timeout_ms != -1
                && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
                && owned.is_some());
        Ok(ConsumerGroupHeartbeatResponse {
            error_code: codes::NONE,
            error_message: None,
            member_id: Some(member_id),
            member_epoch: reconciled.member_epoch,
            heartbeat_interval_ms: cx.cfg.consumer_heartbeat_interval_ms(&self.id),
            assignment: (full || reconciled.assigned != member.assigned)
                .then(|| to_wire(&reconciled.assigned)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(n: u8) -> TopicId {
        TopicId(uuid::Uuid::from_bytes([n; 16]))
    }

    fn a(t: TopicId, ps: &[i32]) -> Assignment {
        [(t, ps.iter().copied().collect())].into_iter().collect()
    }

    #[test]
    fn revocation_comes_before_assignment() {
        let t = tid(1);
        let mut m = ConsumerMember::new("m".into());
        m.member_epoch = 1;
        m.assigned = a(t, &[0, 1]);
        let subscribed: BTreeSet<TopicId> = [t].into_iter().collect();
        let nobody = |_: TopicId, _: i32| None;
        // Target moves partition 1 away and brings partition 2.
        let next = reconcile(&m, 2, &a(t, &[0, 2]), &subscribed, None, &nobody);
        assert_eq!(next.state, MemberState::UnrevokedPartitions);
        assert_eq!(next.member_epoch, 1);
        assert_eq!(next.assigned, a(t, &[0]));
        assert_eq!(next.pending_revocation, a(t, &[1]));
        // Still owning partition 1: no progress.
        let owned = vec![TopicPartitions {
            topic_id: t,
            partitions: vec![0, 1],
        }];
        let same = reconcile(&next, 2, &a(t, &[0, 2]), &subscribed, Some(&owned), &nobody);
        assert_eq!(same, next);
        // Acknowledged: moves to epoch 2 with partition 2.
        let owned = vec![TopicPartitions {
            topic_id: t,
            partitions: vec![0],
        }];
        let done = reconcile(&next, 2, &a(t, &[0, 2]), &subscribed, Some(&owned), &nobody);
        assert_eq!(done.state, MemberState::Stable);
        assert_eq!(done.member_epoch, 2);
        assert_eq!(done.assigned, a(t, &[0, 2]));
    }

    #[test]
    fn partitions_held_elsewhere_are_unreleased() {
        let t = tid(1);
        let m = ConsumerMember::new("m".into());
        let subscribed: BTreeSet<TopicId> = [t].into_iter().collect();
        let other = |_: TopicId, p: i32| (p == 1).then(|| "x".to_owned());
        let next = reconcile(&m, 3, &a(t, &[0, 1]), &subscribed, Some(&[]), &other);
        assert_eq!(next.state, MemberState::UnreleasedPartitions);
        assert_eq!(next.member_epoch, 3);
        assert_eq!(next.assigned, a(t, &[0]));
    }
}
