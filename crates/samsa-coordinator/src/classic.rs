//! The classic group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup): Kafka's
//! `ClassicGroup` state machine with generations, leader election, protocol selection,
//! KIP-394 pending members, KIP-345 static members, the initial rebalance delay and the
//! join/sync/session deadlines.
//!
//! States: `Empty → PreparingRebalance → CompletingRebalance → Stable`, back to
//! `PreparingRebalance` on any membership or metadata change; `Dead` only for groups being
//! removed. JoinGroups park in `PreparingRebalance` until every known member rejoined (or
//! the rebalance timeout passed); SyncGroups park in `CompletingRebalance` until the
//! leader's assignment is persisted.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::api::{
    JoinGroupProtocol, JoinGroupRequest, JoinGroupResponse, JoinGroupResponseMember,
    LeaveGroupMemberResponse, LeaveGroupRequest, LeaveGroupResponse, ReplyToken, Response,
    SyncGroupRequest, SyncGroupResponse,
};
use crate::config::GROUP_MEMBERS_MAX;
use crate::coordinator::Ctx;
use crate::embedded::subscription_topics;
use crate::error::{codes, GroupError};
use crate::records::{CoordinatorRecord, GroupMemberValue, GroupMetadataValue};
use crate::timer::{TimerKey, TimerPayload};

/// The protocol type of Kafka consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// A classic group's state.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClassicState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Members have their assignments.
    Stable,
    /// Being removed.
    Dead,
}

impl ClassicState {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ClassicMember {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    /// The parked JoinGroup.
    pub(crate) join_waiter: Option<ReplyToken>,
    /// The parked SyncGroup.
    pub(crate) sync_waiter: Option<ReplyToken>,
    /// Joined but never completed a join phase (Kafka's `isNew`).
    pub(crate) is_new: bool,
}

impl ClassicMember {
    pub(crate) fn metadata(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(n, _)| n == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn matches(&self, protocols: &[JoinGroupProtocol]) -> bool {
        self.protocols.len() == protocols.len()
            && self
                .protocols
                .iter()
                .zip(protocols)
                .all(|((n, m), p)| *n == p.name && *m == p.metadata)
    }

    fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.join_waiter.is_some() || self.sync_waiter.is_some())
    }
}

fn protocols_of(req: &JoinGroupRequest) -> Vec<(String, Bytes)> {
    req.protocols
        .iter()
        .map(|p| (p.name.clone(), p.metadata.clone()))
        .collect()
}

/// Where offset expiry of a classic group counts retention from.
pub(crate) enum ExpiryBase {
    /// From each offset's commit time.
    CommitTimestamp,
    /// From when the group became Empty (or the commit time if unknown).
    EmptySince(Option<i64>),
}

pub(crate) struct ClassicGroup {
    pub(crate) id: String,
    pub(crate) state: ClassicState,
    pub(crate) previous_state: ClassicState,
    pub(crate) state_timestamp: Option<i64>,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) generation: i32,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, ClassicMember>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pub(crate) pending_members: BTreeSet<String>,
    /// `group.instance.id` → member id.
    pub(crate) static_members: BTreeMap<String, String>,
    /// Members that have not sent SyncGroup for the current generation.
    pub(crate) pending_sync: BTreeSet<String>,
    /// A member joined during the initial delayed rebalance (extends the delay).
    pub(crate) new_member_added: bool,
    /// The last GroupMetadataValue written (or replayed).
    pub(crate) persisted: Option<GroupMetadataValue>,
}

impl ClassicGroup {
    pub(crate) fn new(id: String, now: Option<i64>) -> Self {
        ClassicGroup {
            id,
            state: ClassicState::Empty,
            previous_state: ClassicState::Empty,
            state_timestamp: now,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending_members: BTreeSet::new(),
            static_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            new_member_added: false,
            persisted: None,
        }
    }

    /// The group as Kafka loads it from a GroupMetadataValue: Stable with its members
    /// (who must heartbeat within their session timeout) or Empty.
    pub(crate) fn from_record(id: String, v: GroupMetadataValue) -> Self {
        let mut g = ClassicGroup::new(id, Some(v.current_state_timestamp).filter(|t| *t >= 0));
        g.generation = v.generation;
        g.protocol_type = Some(v.protocol_type.clone()).filter(|p| !p.is_empty());
        g.protocol_name = v.protocol.clone();
        g.leader = v.leader.clone();
        for m in &v.members {
            if let Some(inst) = &m.group_instance_id {
                g.static_members.insert(inst.clone(), m.member_id.clone());
            }
            g.members.insert(
                m.member_id.clone(),
                ClassicMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout,
                    session_timeout_ms: m.session_timeout,
                    protocols: vec![(
                        v.protocol.clone().unwrap_or_default(),
                        m.subscription.clone(),
                    )],
                    assignment: m.assignment.clone(),
                    join_waiter: None,
                    sync_waiter: None,
                    is_new: false,
                },
            );
        }
        if g.leader.as_ref().is_none_or(|l| !g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        g.state = if g.members.is_empty() {
            ClassicState::Empty
        } else {
            ClassicState::Stable
        };
        g.previous_state = g.state;
        g.persisted = Some(v);
        g
    }

    fn transition(&mut self, to: ClassicState, now: i64) {
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp = Some(now);
    }

    /// The group's rebalance timeout: the largest of its members'.
    pub(crate) fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms.max(0)))
            .max()
            .unwrap_or(0)
    }

    fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.join_waiter.is_some())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            ClassicState::Stable | ClassicState::CompletingRebalance | ClassicState::Empty
        )
    }

    pub(crate) fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Kafka's `supportsProtocols`: an Empty group takes any non-empty type and protocol
    /// list; otherwise the type must match and one protocol must be supported by every
    /// current member.
    pub(crate) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[JoinGroupProtocol],
    ) -> bool {
        if self.state == ClassicState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| *n == p.name))
            })
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member
    /// votes for its most preferred; most votes wins (ties: the smallest name, where Kafka
    /// picks an arbitrary one).
    fn select_protocol(&self) -> Option<String> {
        let mut candidates: Option<BTreeSet<&str>> = None;
        for m in self.members.values() {
            let mine: BTreeSet<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
            candidates = Some(match candidates {
                None => mine,
                Some(c) => c.intersection(&mine).copied().collect(),
            });
        }
        let candidates = candidates?;
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(n.as_str()))
            {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, v)| *v == best)
            .map(|(n, _)| n.to_owned())
    }

    fn add_member(&mut self, member: ClassicMember, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_owned());
        }
        if let Some(inst) = &member.instance_id {
            self.static_members
                .insert(inst.clone(), member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        if self.leader.is_none() {
            self.leader = Some(member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member (Kafka's `ClassicGroup.remove`), answering any request it still
    /// has parked with `UNKNOWN_MEMBER_ID` and cancelling its session.
    fn remove_member(&mut self, cx: &mut Ctx<'_>, member_id: &str) {
        if let Some(mut m) = self.members.remove(member_id) {
            if let Some(inst) = &m.instance_id {
                if self.static_members.get(inst).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(inst);
                }
            }
            if let Some(t) = m.join_waiter.take() {
                cx.reply(
                    t,
                    Response::JoinGroup(JoinGroupResponse::error(
                        codes::UNKNOWN_MEMBER_ID,
                        String::new(),
                    )),
                );
            }
            if let Some(t) = m.sync_waiter.take() {
                cx.reply(
                    t,
                    Response::SyncGroup(SyncGroupResponse::error(codes::UNKNOWN_MEMBER_ID)),
                );
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        cx.timers.cancel(&self.heartbeat_key(member_id));
    }

    /// Kafka's `validateMember`.
    pub(crate) fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(inst) = instance_id {
            match self.static_members.get(inst) {
                None => return Err(GroupError::UnknownMemberId),
                Some(id) if id != member_id => return Err(GroupError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(GroupError::UnknownMemberId)
        }
    }

    /// The topics the members' consumer-protocol subscriptions name (`None` if the group
    /// does not use the consumer protocol or a subscription does not parse).
    pub(crate) fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(subscription_topics(&m.metadata(Some(protocol)))?);
        }
        Some(topics)
    }

    /// Kafka's `offsetExpirationCondition` for classic groups (`None` = nothing expires).
    pub(crate) fn expiry_base(&self) -> Option<ExpiryBase> {
        match self.protocol_type.as_deref() {
            Some(pt) if !pt.is_empty() => {
                if self.state == ClassicState::Empty {
                    Some(ExpiryBase::EmptySince(self.state_timestamp))
                } else if pt == CONSUMER_PROTOCOL_TYPE
                    && self.state == ClassicState::Stable
                    && self.subscribed_topics().is_some()
                {
                    Some(ExpiryBase::CommitTimestamp)
                } else {
                    None
                }
            }
            _ => Some(ExpiryBase::CommitTimestamp),
        }
    }

    /// Kafka's `ClassicGroup.validateOffsetCommit` (non-transactional).
    pub(crate) fn validate_offset_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        transactional: bool,
    ) -> Result<(), GroupError> {
        if self.state == ClassicState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation < 0 && self.state == ClassicState::Empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(GroupError::IllegalGeneration);
            }
        } else if !transactional && self.state != ClassicState::Empty {
            // TxnOffsetCommit before v3 carries no member id or generation: such
            // commits are accepted whatever the group's state (Kafka).
            return Err(GroupError::UnknownMemberId);
        }
        if !transactional && self.state == ClassicState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// The group as a GroupMetadataValue; `assignments` overrides the members'.
    pub(crate) fn metadata_value(
        &self,
        assignments: Option<&BTreeMap<String, Bytes>>,
    ) -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp.unwrap_or(-1),
            members: self
                .members
                .values()
                .map(|m| GroupMemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: m.metadata(self.protocol_name.as_deref()),
                    assignment: match assignments {
                        Some(a) => a.get(&m.member_id).cloned().unwrap_or_default(),
                        None => m.assignment.clone(),
                    },
                })
                .collect(),
        }
    }

    /// Kafka's `newEmptyGroupMetadataRecord`, written when a JoinGroup creates a group.
    pub(crate) fn empty_metadata_value(&self) -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: 0,
            protocol: None,
            leader: None,
            current_state_timestamp: self.state_timestamp.unwrap_or(-1),
            members: Vec::new(),
        }
    }

    fn persist(&mut self, cx: &mut Ctx<'_>, assignments: Option<&BTreeMap<String, Bytes>>) {
        let value = self.metadata_value(assignments);
        cx.append(
            &self.id,
            vec![CoordinatorRecord::GroupMetadata {
                group: self.id.clone(),
                value: Some(value.clone()),
            }],
        );
        self.persisted = Some(value);
    }

    fn heartbeat_key(&self, member_id: &str) -> TimerKey {
        TimerKey::ClassicHeartbeat {
            group: self.id.clone(),
            member: member_id.to_owned(),
        }
    }

    fn schedule_heartbeat(&self, cx: &mut Ctx<'_>, member_id: &str, timeout_ms: i32) {
        let deadline = cx.now + i64::from(timeout_ms.max(0));
        cx.timers
            .schedule(self.heartbeat_key(member_id), deadline, TimerPayload::None);
    }

    fn reschedule_session(&self, cx: &mut Ctx<'_>, member_id: &str) {
        if let Some(m) = self.members.get(member_id) {
            self.schedule_heartbeat(cx, member_id, m.session_timeout_ms);
        }
    }

    /// Schedules every member's session deadline (after loading).
    pub(crate) fn schedule_all_sessions(&self, cx: &mut Ctx<'_>) {
        for id in self.members.keys() {
            self.reschedule_session(cx, id);
        }
    }

    fn leader_members(&self) -> Vec<JoinGroupResponseMember> {
        self.members
            .values()
            .map(|m| JoinGroupResponseMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(self.protocol_name.as_deref()),
            })
            .collect()
    }

    fn generation_response(
        &self,
        member_id: &str,
        members: Vec<JoinGroupResponseMember>,
    ) -> JoinGroupResponse {
        JoinGroupResponse {
            error_code: codes::NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members,
        }
    }

    fn complete_join_waiter(&mut self, cx: &mut Ctx<'_>, member_id: &str, resp: JoinGroupResponse) {
        if let Some(t) = self
            .members
            .get_mut(member_id)
            .and_then(|m| m.join_waiter.take())
        {
            cx.reply(t, Response::JoinGroup(resp));
        }
    }

    /// Parks `token` as the member's JoinGroup; an older parked one is answered with
    /// REBALANCE_IN_PROGRESS (samsa answers it rather than dropping it, so the broker
    /// never keeps an orphaned request).
    fn set_join_waiter(&mut self, cx: &mut Ctx<'_>, member_id: &str, token: ReplyToken) {
        if let Some(m) = self.members.get_mut(member_id) {
            if let Some(old) = m.join_waiter.replace(token) {
                if old != token {
                    cx.reply(
                        old,
                        Response::JoinGroup(JoinGroupResponse::error(
                            codes::REBALANCE_IN_PROGRESS,
                            member_id.to_owned(),
                        )),
                    );
                }
            }
        }
    }

    // ----------------------------------------------------------------------- JoinGroup

    /// Kafka's `acceptJoiningMember`.
    fn accept_joining_member(&self, member_id: &str, max: usize) -> bool {
        match self.state {
            ClassicState::Empty | ClassicState::Dead => true,
            ClassicState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(|m| m.join_waiter.is_some())
                    || self.num_awaiting_join() < max
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max
            }
        }
    }

    pub(crate) fn join(
        &mut self,
        cx: &mut Ctx<'_>,
        req: &JoinGroupRequest,
        token: ReplyToken,
        id_gen: &mut dyn FnMut() -> String,
    ) {
        if !self.accept_joining_member(&req.member_id, cx.cfg.classic_max_size()) {
            self.remove_member(cx, &req.member_id);
            cx.reply(
                token,
                Response::JoinGroup(JoinGroupResponse::error(
                    codes::GROUP_MAX_SIZE_REACHED,
                    String::new(),
                )),
            );
        } else if req.member_id.is_empty() {
            self.join_new_member(cx, req, token, id_gen);
        } else {
            self.join_existing_member(cx, req, token);
        }
    }

    fn join_new_member(
        &mut self,
        cx: &mut Ctx<'_>,
        req: &JoinGroupRequest,
        token: ReplyToken,
        id_gen: &mut dyn FnMut() -> String,
    ) {
        let fail = |cx: &mut Ctx<'_>, code| {
            cx.reply(
                token,
                Response::JoinGroup(JoinGroupResponse::error(code, String::new())),
            );
        };
        if self.state == ClassicState::Dead {
            return fail(cx, codes::COORDINATOR_NOT_AVAILABLE);
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return fail(cx, codes::INCONSISTENT_GROUP_PROTOCOL);
        }
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let mut new_id = format!("{prefix}-{}", id_gen());
        // The generator is expected to be unique; never hand out a taken id anyway.
        let mut attempts = 0;
        while (self.members.contains_key(&new_id) || self.pending_members.contains(&new_id))
            && attempts < 8
        {
            new_id = format!("{prefix}-{}", id_gen());
            attempts += 1;
        }
        if self.members.contains_key(&new_id) || self.pending_members.contains(&new_id) {
            return fail(cx, codes::UNKNOWN_SERVER_ERROR);
        }
        if let Some(inst) = &req.group_instance_id {
            match self.static_members.get(inst).cloned() {
                Some(old) => self.replace_static_member_and_rebalance(cx, req, token, &old, new_id),
                None => self.add_member_and_rebalance(cx, req, token, new_id),
            }
        } else if req.api_version >= 4 {
            if self.pending_members.len() >= GROUP_MEMBERS_MAX {
                return fail(cx, codes::GROUP_MAX_SIZE_REACHED);
            }
            // KIP-394: hand out the id; the member rejoins with it.
            self.pending_members.insert(new_id.clone());
            self.schedule_heartbeat(cx, &new_id, req.session_timeout_ms);
            cx.reply(
                token,
                Response::JoinGroup(JoinGroupResponse::error(codes::MEMBER_ID_REQUIRED, new_id)),
            );
        } else {
            self.add_member_and_rebalance(cx, req, token, new_id);
        }
    }

    fn join_existing_member(
        &mut self,
        cx: &mut Ctx<'_>,
        req: &JoinGroupRequest,
        token: ReplyToken,
    ) {
        let member_id = req.member_id.as_str();
        let fail = |cx: &mut Ctx<'_>, code| {
            cx.reply(
                token,
                Response::JoinGroup(JoinGroupResponse::error(code, member_id.to_owned())),
            );
        };
        if self.state == ClassicState::Dead {
            return fail(cx, codes::COORDINATOR_NOT_AVAILABLE);
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return fail(cx, codes::INCONSISTENT_GROUP_PROTOCOL);
        }
        if self.pending_members.contains(member_id) {
            if req.group_instance_id.is_some() {
                // Static members never get MEMBER_ID_REQUIRED (Kafka: IllegalStateException).
                return fail(cx, codes::UNKNOWN_SERVER_ERROR);
            }
            return self.add_member_and_rebalance(cx, req, token, member_id.to_owned());
        }
        if let Err(e) = self.validate_member(member_id, req.group_instance_id.as_deref()) {
            return fail(cx, e.code());
        }
        let (is_leader, matches) = match self.members.get(member_id) {
            Some(m) => (self.is_leader(member_id), m.matches(&req.protocols)),
            None => return fail(cx, codes::UNKNOWN_MEMBER_ID),
        };
        match self.state {
            ClassicState::PreparingRebalance => self.update_member_and_rebalance(cx, req, token),
            ClassicState::CompletingRebalance => {
                if matches {
                    // The member lost its JoinGroup response: send it again.
                    let members = if is_leader {
                        self.leader_members()
                    } else {
                        Vec::new()
                    };
                    let resp = self.generation_response(member_id, members);
                    cx.reply(token, Response::JoinGroup(resp));
                } else {
                    self.update_member_and_rebalance(cx, req, token);
                }
            }
            ClassicState::Stable => {
                if is_leader || !matches {
                    // A rejoining leader forces a rebalance (e.g. topic metadata changed).
                    self.update_member_and_rebalance(cx, req, token);
                } else {
                    let resp = self.generation_response(member_id, Vec::new());
                    cx.reply(token, Response::JoinGroup(resp));
                }
            }
            ClassicState::Empty | ClassicState::Dead => fail(cx, codes::UNKNOWN_MEMBER_ID),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        cx: &mut Ctx<'_>,
        req: &JoinGroupRequest,
        token: ReplyToken,
        member_id: String,
    ) {
        let member = ClassicMember {
            member_id: member_id.clone(),
            instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocols: protocols_of(req),
            assignment: Bytes::new(),
            join_waiter: Some(token),
            sync_waiter: None,
            is_new: true,
        };
        if self.state == ClassicState::PreparingRebalance
            && self.previous_state == ClassicState::Empty
        {
            self.new_member_added = true;
        }
        self.add_member(member, &req.protocol_type);
        // A parked new member cannot heartbeat; drop it if the join never completes.
        self.schedule_heartbeat(cx, &member_id, cx.cfg.group_new_member_join_timeout_ms);
        self.maybe_prepare_rebalance_or_complete_join(cx);
    }

    fn update_member(
        &mut self,
        cx: &mut Ctx<'_>,
        req: &JoinGroupRequest,
        member_id: &str,
        token: ReplyToken,
    ) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.protocols = protocols_of(req);
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.session_timeout_ms = req.session_timeout_ms;
        }
        self.set_join_waiter(cx, member_id, token);
    }

    fn update_member_and_rebalance(
        &mut self,
        cx: &mut Ctx<'_>,
        req: &JoinGroupRequest,
        token: ReplyToken,
    ) {
        self.update_member(cx, req, &req.member_id, token);
        self.maybe_prepare_rebalance_or_complete_join(cx);
    }

    /// KIP-345: a static member rejoining with an unknown member id takes over the old
    /// member id's place, fencing it.
    fn replace_static_member_and_rebalance(
        &mut self,
        cx: &mut Ctx<'_>,
        req: &JoinGroupRequest,
        token: ReplyToken,
        old_id: &str,
        new_id: String,
    ) {
        let current_leader = self.leader.clone();
        let Some(mut m) = self.members.remove(old_id) else {
            return self.add_member_and_rebalance(cx, req, token, new_id);
        };
        if let Some(t) = m.join_waiter.take() {
            cx.reply(
                t,
                Response::JoinGroup(JoinGroupResponse::error(
                    codes::FENCED_INSTANCE_ID,
                    old_id.to_owned(),
                )),
            );
        }
        if let Some(t) = m.sync_waiter.take() {
            cx.reply(
                t,
                Response::SyncGroup(SyncGroupResponse::error(codes::FENCED_INSTANCE_ID)),
            );
        }
        cx.timers.cancel(&self.heartbeat_key(old_id));
        m.member_id = new_id.clone();
        m.is_new = false;
        if self.is_leader(old_id) {
            self.leader = Some(new_id.clone());
        }
        if let Some(inst) = &m.instance_id {
            self.static_members.insert(inst.clone(), new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        let session = m.session_timeout_ms;
        self.members.insert(new_id.clone(), m);
        self.schedule_heartbeat(cx, &new_id, session);
        self.update_member(cx, req, &new_id, token);

        match self.state {
            ClassicState::Stable => {
                let selected = self.select_protocol();
                if self.protocol_name.as_deref().unwrap_or("") == selected.as_deref().unwrap_or("")
                {
                    // Same protocol: no rebalance. Persist the new member id, then answer
                    // with the current generation.
                    self.persist(cx, None);
                    let is_leader = self.is_leader(&new_id);
                    let resp = if req.api_version >= 9 {
                        let members = if is_leader {
                            self.leader_members()
                        } else {
                            Vec::new()
                        };
                        JoinGroupResponse {
                            skip_assignment: is_leader,
                            ..self.generation_response(&new_id, members)
                        }
                    } else {
                        // Older clients must not think they lead (they would compute an
                        // assignment): report the leader as it was before the swap.
                        JoinGroupResponse {
                            leader: current_leader.unwrap_or_default(),
                            ..self.generation_response(&new_id, Vec::new())
                        }
                    };
                    self.complete_join_waiter(cx, &new_id, resp);
                } else {
                    self.maybe_prepare_rebalance_or_complete_join(cx);
                }
            }
            ClassicState::CompletingRebalance => self.prepare_rebalance(cx),
            _ => self.maybe_complete_join_phase(cx),
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(&mut self, cx: &mut Ctx<'_>) {
        if self.can_rebalance() {
            self.prepare_rebalance(cx);
        } else {
            self.maybe_complete_join_phase(cx);
        }
    }

    fn join_key(&self) -> TimerKey {
        TimerKey::ClassicJoin {
            group: self.id.clone(),
        }
    }

    fn sync_key(&self) -> TimerKey {
        TimerKey::ClassicSync {
            group: self.id.clone(),
        }
    }

    pub(crate) fn prepare_rebalance(&mut self, cx: &mut Ctx<'_>) {
        if self.state == ClassicState::CompletingRebalance {
            self.reset_and_propagate_assignment_with_error(cx, codes::REBALANCE_IN_PROGRESS);
        }
        self.pending_sync.clear();
        cx.timers.cancel(&self.sync_key());
        let initial = self.state == ClassicState::Empty;
        if initial {
            // Kafka's InitialDelayedJoin: give other members of a new group time to join.
            let delay = i64::from(cx.cfg.group_initial_rebalance_delay_ms.max(0));
            let remaining = (self.rebalance_timeout_ms() - delay).max(0);
            cx.timers.schedule(
                self.join_key(),
                cx.now + delay,
                TimerPayload::InitialJoin {
                    delay_ms: delay,
                    remaining_ms: remaining,
                },
            );
        }
        self.transition(ClassicState::PreparingRebalance, cx.now);
        if !initial {
            if self.has_all_members_joined() {
                self.complete_join(cx);
            } else {
                let deadline = cx.now + self.rebalance_timeout_ms();
                cx.timers
                    .schedule(self.join_key(), deadline, TimerPayload::None);
            }
        }
    }

    fn maybe_complete_join_phase(&mut self, cx: &mut Ctx<'_>) {
        if self.state == ClassicState::PreparingRebalance
            && self.previous_state != ClassicState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(cx);
        }
    }

    /// Kafka's `maybeElectNewJoinedLeader`: keep the leader if it rejoined, else pick a
    /// member that did.
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(|m| m.join_waiter.is_some())
        {
            return true;
        }
        match self.members.values().find(|m| m.join_waiter.is_some()) {
            Some(m) => {
                self.leader = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Ends the join phase: drops dynamic members that did not rejoin, starts the next
    /// generation and answers every parked JoinGroup (the leader gets all members).
    fn complete_join(&mut self, cx: &mut Ctx<'_>) {
        cx.timers.cancel(&self.join_key());
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &not_rejoined {
            self.remove_member(cx, id);
        }
        if self.state == ClassicState::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that did not rejoin remain: wait for them or for their
            // sessions to expire.
            let deadline = cx.now + self.rebalance_timeout_ms();
            cx.timers
                .schedule(self.join_key(), deadline, TimerPayload::None);
            return;
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(ClassicState::Empty, cx.now);
        } else {
            self.protocol_name = self.select_protocol();
            self.transition(ClassicState::CompletingRebalance, cx.now);
        }
        self.pending_sync.clear();
        if self.state == ClassicState::Empty {
            self.persist(cx, None);
            return;
        }
        let leader_members = self.leader_members();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in &ids {
            let members = if self.is_leader(id) {
                leader_members.clone()
            } else {
                Vec::new()
            };
            let resp = self.generation_response(id, members);
            self.complete_join_waiter(cx, id, resp);
            self.reschedule_session(cx, id);
            if let Some(m) = self.members.get_mut(id) {
                m.is_new = false;
            }
            self.pending_sync.insert(id.clone());
        }
        let deadline = cx.now + self.rebalance_timeout_ms();
        cx.timers.schedule(
            self.sync_key(),
            deadline,
            TimerPayload::Epoch(self.generation),
        );
    }

    fn reset_and_propagate_assignment_with_error(&mut self, cx: &mut Ctx<'_>, code: i16) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        self.propagate_assignment(cx, code);
    }

    fn propagate_assignment(&mut self, cx: &mut Ctx<'_>, code: i16) {
        let ok = code == codes::NONE;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            if let Some(t) = m.sync_waiter.take() {
                let resp = SyncGroupResponse {
                    error_code: code,
                    protocol_type: if ok { self.protocol_type.clone() } else { None },
                    protocol_name: if ok { self.protocol_name.clone() } else { None },
                    assignment: m.assignment.clone(),
                };
                cx.reply(t, Response::SyncGroup(resp));
                self.reschedule_session(cx, &id);
            }
        }
    }

    // ------------------------------------------------------------------------ Timers

    pub(crate) fn on_heartbeat_expired(&mut self, cx: &mut Ctx<'_>, member_id: &str) {
        if self.state == ClassicState::Dead {
            return;
        }
        if self.pending_members.remove(member_id) {
            if self.state == ClassicState::PreparingRebalance && self.has_all_members_joined() {
                self.complete_join(cx);
            }
            return;
        }
        match self.members.get(member_id) {
            Some(m) if !m.has_satisfied_heartbeat() => self.remove_member_and_update(cx, member_id),
            _ => {}
        }
    }

    fn remove_member_and_update(&mut self, cx: &mut Ctx<'_>, member_id: &str) {
        self.remove_member(cx, member_id);
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(cx)
            }
            ClassicState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(cx)
            }
            _ => {}
        }
    }

    pub(crate) fn on_join_timer(&mut self, cx: &mut Ctx<'_>, payload: TimerPayload) {
        if self.state != ClassicState::PreparingRebalance {
            return;
        }
        match payload {
            TimerPayload::InitialJoin {
                delay_ms,
                remaining_ms,
            } if self.new_member_added && remaining_ms != 0 => {
                self.new_member_added = false;
                let cfg_delay = i64::from(cx.cfg.group_initial_rebalance_delay_ms.max(0));
                let new_delay = cfg_delay.min(remaining_ms);
                let new_remaining = (remaining_ms - delay_ms).max(0);
                cx.timers.schedule(
                    self.join_key(),
                    cx.now + new_delay,
                    TimerPayload::InitialJoin {
                        delay_ms: new_delay,
                        remaining_ms: new_remaining,
                    },
                );
            }
            _ => self.complete_join(cx),
        }
    }

    pub(crate) fn on_sync_timer(&mut self, cx: &mut Ctx<'_>, generation: i32) {
        if generation != self.generation
            || !matches!(
                self.state,
                ClassicState::CompletingRebalance | ClassicState::Stable
            )
            || self.pending_sync.is_empty()
        {
            return;
        }
        let missing: Vec<String> = self.pending_sync.iter().cloned().collect();
        for id in &missing {
            self.remove_member(cx, id);
        }
        self.prepare_rebalance(cx);
    }

    // ----------------------------------------------------------------------- SyncGroup

    fn remove_pending_sync(&mut self, cx: &mut Ctx<'_>, member_id: &str) {
        self.pending_sync.remove(member_id);
        let cancel = match self.state {
            ClassicState::Dead | ClassicState::Empty | ClassicState::PreparingRebalance => true,
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.pending_sync.is_empty()
            }
        };
        if cancel {
            cx.timers.cancel(&self.sync_key());
        }
    }

    fn validate_sync(&self, req: &SyncGroupRequest) -> Result<(), GroupError> {
        if self.state == ClassicState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let inconsistent = |asked: &Option<String>, ours: &Option<String>| matches!((asked, ours), (Some(a), Some(o)) if a != o);
        if inconsistent(&req.protocol_type, &self.protocol_type)
            || inconsistent(&req.protocol_name, &self.protocol_name)
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    pub(crate) fn sync(&mut self, cx: &mut Ctx<'_>, req: &SyncGroupRequest, token: ReplyToken) {
        let fail = |cx: &mut Ctx<'_>, code| {
            cx.reply(token, Response::SyncGroup(SyncGroupResponse::error(code)))
        };
        if self.state == ClassicState::Empty {
            return fail(cx, codes::UNKNOWN_MEMBER_ID);
        }
        if let Err(e) = self.validate_sync(req) {
            return fail(cx, e.code());
        }
        let member_id = req.member_id.as_str();
        match self.state {
            ClassicState::PreparingRebalance => fail(cx, codes::REBALANCE_IN_PROGRESS),
            ClassicState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    if let Some(old) = m.sync_waiter.replace(token) {
                        if old != token {
                            cx.reply(
                                old,
                                Response::SyncGroup(SyncGroupResponse::error(
                                    codes::REBALANCE_IN_PROGRESS,
                                )),
                            );
                        }
                    }
                }
                self.remove_pending_sync(cx, member_id);
                if self.is_leader(member_id) {
                    let mut assignment: BTreeMap<String, Bytes> = BTreeMap::new();
                    for a in &req.assignments {
                        if self.members.contains_key(&a.member_id) {
                            assignment.insert(a.member_id.clone(), a.assignment.clone());
                        }
                    }
                    for id in self.members.keys() {
                        assignment.entry(id.clone()).or_default();
                    }
                    // Persist first: the replies below follow the Append.
                    self.persist(cx, Some(&assignment));
                    for (id, a) in assignment {
                        if let Some(m) = self.members.get_mut(&id) {
                            m.assignment = a;
                        }
                    }
                    self.propagate_assignment(cx, codes::NONE);
                    self.transition(ClassicState::Stable, cx.now);
                }
            }
            ClassicState::Stable => {
                self.remove_pending_sync(cx, member_id);
                let assignment = self
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                cx.reply(
                    token,
                    Response::SyncGroup(SyncGroupResponse {
                        error_code: codes::NONE,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment,
                    }),
                );
            }
            ClassicState::Empty | ClassicState::Dead => fail(cx, codes::UNKNOWN_MEMBER_ID),
        }
    }

    // ---------------------------------------------------------------- Heartbeat/Leave

    pub(crate) fn heartbeat(
        &mut self,
        cx: &mut Ctx<'_>,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if self.state == ClassicState::Dead {
            return codes::COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(e) = self.validate_member(member_id, instance_id) {
            return e.code();
        }
        if generation != self.generation {
            return codes::ILLEGAL_GENERATION;
        }
        match self.state {
            ClassicState::Empty => codes::UNKNOWN_MEMBER_ID,
            ClassicState::PreparingRebalance => {
                self.reschedule_session(cx, member_id);
                codes::REBALANCE_IN_PROGRESS
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.reschedule_session(cx, member_id);
                codes::NONE
            }
            ClassicState::Dead => codes::COORDINATOR_NOT_AVAILABLE,
        }
    }

    pub(crate) fn leave(
        &mut self,
        cx: &mut Ctx<'_>,
        req: &LeaveGroupRequest,
    ) -> LeaveGroupResponse {
        if self.state == ClassicState::Dead {
            return LeaveGroupResponse {
                error_code: codes::COORDINATOR_NOT_AVAILABLE,
                members: Vec::new(),
            };
        }
        let mut results = Vec::with_capacity(req.members.len());
        let mut any_left = false;
        for who in &req.members {
            let code = if who.member_id.is_empty() {
                // Administrative removal of a static member by instance id (v3+).
                match who
                    .group_instance_id
                    .as_ref()
                    .and_then(|inst| self.static_members.get(inst).cloned())
                {
                    Some(id) => {
                        self.remove_member(cx, &id);
                        codes::NONE
                    }
                    None => codes::UNKNOWN_MEMBER_ID,
                }
            } else if self.pending_members.contains(&who.member_id) {
                self.remove_member(cx, &who.member_id);
                codes::NONE
            } else {
                match self.validate_member(&who.member_id, who.group_instance_id.as_deref()) {
                    Ok(()) => {
                        self.remove_member(cx, &who.member_id);
                        codes::NONE
                    }
                    Err(e) => e.code(),
                }
            };
            any_left |= code == codes::NONE;
            results.push(LeaveGroupMemberResponse {
                member_id: who.member_id.clone(),
                group_instance_id: who.group_instance_id.clone(),
                error_code: code,
            });
        }
        if any_left {
            match self.state {
                ClassicState::Stable | ClassicState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(cx)
                }
                ClassicState::PreparingRebalance => self.maybe_complete_join_phase(cx),
                _ => {}
            }
        }
        LeaveGroupResponse {
            error_code: codes::NONE,
            members: results,
        }
    }

    /// Answers every parked request with `code` (unloading).
    pub(crate) fn fail_all_waiters(&mut self, cx: &mut Ctx<'_>, code: i16) {
        for m in self.members.values_mut() {
            if let Some(t) = m.join_waiter.take() {
                cx.reply(
                    t,
                    Response::JoinGroup(JoinGroupResponse::error(code, m.member_id.clone())),
                );
            }
            if let Some(t) = m.sync_waiter.take() {
                cx.reply(t, Response::SyncGroup(SyncGroupResponse::error(code)));
            }
        }
    }
}
