//! Committed offsets: OffsetCommit (v2–v9), OffsetFetch (v1–v9, multi-group),
//! OffsetDelete (v0) and expiry after `offsets.retention.minutes` (Kafka's
//! `OffsetMetadataManager`).

use std::collections::BTreeMap;

use samsa_model::TimestampMs;

use crate::api::{
    CommitId, OffsetCommitPartition, OffsetCommitRequest, OffsetCommitResponse, OffsetCommitTopic,
    OffsetCommitTopicResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetDeleteTopicResponse, OffsetFetchGroupResponse, OffsetFetchPartitionResponse,
    OffsetFetchRequest, OffsetFetchResponse, OffsetFetchTopicResponse, Output, PartitionResult,
    ReplyToken, Response,
};
use crate::classic::{ClassicGroup, ClassicState, ExpiryBase};
use crate::config::STRING_BYTES_MAX;
use crate::coordinator::{check_str, Coordinator, Ctx, Group};
use crate::error::{codes, GroupError};
use crate::records::{CoordinatorRecord, OffsetCommitValue};

/// What OffsetFetch shows for one partition with unreplicated commits (`None`: no
/// offset), and how many unreplicated commits wrote it since.
type Shown = (Option<OffsetCommitValue>, u32);

/// Offsets committed but not yet replicated (Kafka's pending offsets): a commit updates
/// the coordinator's latest state at once (later writes build on it), but OffsetFetch
/// keeps answering the last replicated value of each such partition until the broker
/// reports the commit's append replicated. So a client never reads back an offset that
/// a failover could still lose.
#[derive(Default)]
pub(crate) struct PendingOffsets {
    /// Per group, per (topic, partition) with unreplicated commits: what OffsetFetch
    /// shows (`None`: no offset) and how many unreplicated commits wrote it.
    visible: BTreeMap<String, BTreeMap<(String, i32), Shown>>,
    /// The offsets each unreplicated append commits.
    appends: BTreeMap<CommitId, Vec<(String, String, i32, OffsetCommitValue)>>,
    next_id: u64,
}

impl PendingOffsets {
    /// Keeps only the groups `keep` selects (ownership moved).
    pub(crate) fn retain_groups(&mut self, keep: impl Fn(&str) -> bool) {
        self.visible.retain(|g, _| keep(g));
        self.appends.retain(|_, offsets| {
            offsets.retain(|(g, ..)| keep(g));
            !offsets.is_empty()
        });
    }

    /// Records an unreplicated commit of `value`, whose replicated predecessor is
    /// `before`.
    fn add(
        &mut self,
        id: CommitId,
        key: (&str, &str, i32),
        before: Option<&OffsetCommitValue>,
        value: OffsetCommitValue,
    ) {
        let (group, topic, partition) = key;
        let entry = self
            .visible
            .entry(group.to_owned())
            .or_default()
            .entry((topic.to_owned(), partition))
            .or_insert_with(|| (before.cloned(), 0));
        entry.1 += 1;
        self.appends.entry(id).or_default().push((
            group.to_owned(),
            topic.to_owned(),
            partition,
            value,
        ));
    }

    /// The value OffsetFetch shows for a partition with unreplicated commits (outer
    /// `None`: it has none, the latest value is the visible one).
    fn shown(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<Option<&OffsetCommitValue>> {
        self.visible
            .get(group)?
            .get(&(topic.to_owned(), partition))
            .map(|(v, _)| v.as_ref())
    }
}

impl Coordinator {
    /// The append carrying commit `id` is replicated: its offsets become visible to
    /// OffsetFetch. Report the appends of one partition in log order. Unknown ids (the
    /// group's partition was unloaded since) are ignored.
    pub fn commit_replicated(&mut self, id: CommitId) {
        let Some(offsets) = self.pending.appends.remove(&id) else {
            return;
        };
        for (group, topic, partition, value) in offsets {
            let Some(parts) = self.pending.visible.get_mut(&group) else {
                continue;
            };
            let key = (topic, partition);
            if let Some((shown, count)) = parts.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    // Nothing newer is pending: the latest state is the visible one.
                    parts.remove(&key);
                } else {
                    *shown = Some(value);
                }
            }
            if parts.is_empty() {
                self.pending.visible.remove(&group);
            }
        }
    }

    /// Whether any committed offset still waits for its append to be replicated.
    pub fn has_unreplicated_commits(&self) -> bool {
        !self.pending.appends.is_empty()
    }

    /// The committed offset OffsetFetch shows (replicated commits only).
    fn visible_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<&OffsetCommitValue> {
        match self.pending.shown(group, topic, partition) {
            Some(shown) => shown,
            None => self
                .offsets
                .get(group)
                .and_then(|o| o.get(topic))
                .and_then(|ps| ps.get(&partition)),
        }
    }

    /// Every visible committed offset of `group`, by topic and partition.
    fn visible_offsets(&self, group: &str) -> BTreeMap<&str, BTreeMap<i32, &OffsetCommitValue>> {
        let mut all: BTreeMap<&str, BTreeMap<i32, &OffsetCommitValue>> = BTreeMap::new();
        for (topic, parts) in self.offsets.get(group).into_iter().flatten() {
            for p in parts.keys() {
                if let Some(v) = self.visible_offset(group, topic, *p) {
                    all.entry(topic.as_str()).or_default().insert(*p, v);
                }
            }
        }
        // Deleted since, but the deletion's predecessor is still what is shown.
        for ((topic, p), (shown, _)) in self.pending.visible.get(group).into_iter().flatten() {
            if let Some(v) = shown {
                all.entry(topic.as_str())
                    .or_default()
                    .entry(*p)
                    .or_insert(v);
            }
        }
        all.retain(|_, ps| !ps.is_empty());
        all
    }

    /// OffsetCommit (v2–v9). Classic groups check member id and generation (generation
    /// -1 with an empty member id is a "simple" commit, accepted only while the group is
    /// Empty, and creates the group if needed); KIP-848 groups check the member epoch.
    /// The broker answers UNKNOWN_TOPIC_OR_PARTITION for partitions that do not exist
    /// before calling this.
    pub fn offset_commit(
        &mut self,
        req: OffsetCommitRequest,
        now: TimestampMs,
        token: ReplyToken,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        self.begin(now, &mut out);
        let resp = self.commit_inner(&req, &mut out);
        out.push(Output::Reply {
            token,
            response: Response::OffsetCommit(resp),
        });
        self.run_timers(&mut out);
        out
    }

    /// The checks OffsetCommit and TxnOffsetCommit share: the coordinator
    /// serves the group, the ids are valid strings, and the member may commit
    /// (classic groups: member id and generation, generation -1 with an empty
    /// member id being a "simple" commit that creates the group if needed;
    /// KIP-848 groups: the member epoch, which TxnOffsetCommit answers
    /// ILLEGAL_GENERATION when stale, as Kafka does).
    pub(crate) fn validate_commit(&mut self, c: &CommitCheck<'_>) -> Result<(), GroupError> {
        if let Some(e) = self.group_error(c.group_id) {
            return Err(e);
        }
        if c.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        check_str(c.group_id, "group id")?;
        check_str(c.member_id, "member id")?;
        let transactional = c.transactional_id.is_some();
        if let Some(id) = c.transactional_id {
            check_str(id, "transactional id")?;
        }
        match self.groups.get(c.group_id) {
            None => {
                if c.generation >= 0 {
                    // OffsetCommit v9+ names the missing group.
                    return Err(if !transactional && c.api_version >= 9 {
                        GroupError::GroupIdNotFound
                    } else {
                        GroupError::IllegalGeneration
                    });
                }
                self.create_simple_group(c.group_id)
            }
            Some(Group::Classic(g)) => g.validate_offset_commit(
                c.member_id,
                c.group_instance_id,
                c.generation,
                transactional,
            ),
            Some(Group::Consumer(g)) => {
                let partitions: Vec<_> = c
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, p.partition_index)))
                    .collect();
                g.validate_offset_commit(
                    c.member_id,
                    c.generation,
                    c.api_version,
                    &partitions,
                    transactional,
                )
                .map_err(|e| match e {
                    GroupError::StaleMemberEpoch if transactional => GroupError::IllegalGeneration,
                    e => e,
                })
            }
        }
    }

    /// The records of a validated commit of `group`'s `topics` (expiring at
    /// `expire`, if set), with the response: each partition that can be
    /// stored is handed to `apply` (topic, partition, value), the others are
    /// answered with their error code.
    pub(crate) fn commit_records(
        &mut self,
        group: &str,
        topics: &[OffsetCommitTopic],
        expire: Option<i64>,
        mut apply: impl FnMut(&mut Self, &str, i32, &OffsetCommitValue),
    ) -> (OffsetCommitResponse, Vec<CoordinatorRecord>) {
        let mut records = Vec::new();
        let mut resp = uniform_commit_response(topics, codes::NONE);
        for (t, rt) in topics.iter().zip(resp.topics.iter_mut()) {
            for (p, rp) in t.partitions.iter().zip(rt.partitions.iter_mut()) {
                let value = match self.commit_value(&t.name, p, expire) {
                    Ok(v) => v,
                    Err(code) => {
                        rp.error_code = code;
                        continue;
                    }
                };
                apply(self, &t.name, p.partition_index, &value);
                records.push(CoordinatorRecord::OffsetCommit {
                    group: group.to_owned(),
                    topic: t.name.clone(),
                    partition: p.partition_index,
                    value: Some(value),
                });
            }
        }
        (resp, records)
    }

    /// Creates a "simple" group to hold offsets (a commit with generation -1 to a
    /// group that does not exist), if the coordinator has room for one.
    pub(crate) fn create_simple_group(&mut self, group_id: &str) -> Result<(), GroupError> {
        if self.groups.len() >= self.config.max_groups() {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.groups.insert(
            group_id.to_owned(),
            Group::Classic(ClassicGroup::new(group_id.to_owned(), Some(self.now))),
        );
        Ok(())
    }

    /// What one committed partition stores, or the error code it is answered with
    /// (a topic name too long: UNKNOWN_TOPIC_OR_PARTITION; metadata above
    /// `offset.metadata.max.bytes`: OFFSET_METADATA_TOO_LARGE).
    pub(crate) fn commit_value(
        &self,
        topic: &str,
        p: &OffsetCommitPartition,
        expire_timestamp: Option<i64>,
    ) -> Result<OffsetCommitValue, i16> {
        let metadata = p.committed_metadata.clone().unwrap_or_default();
        if topic.len() > STRING_BYTES_MAX {
            return Err(codes::UNKNOWN_TOPIC_OR_PARTITION);
        }
        if metadata.len() > self.config.metadata_max_bytes() {
            return Err(codes::OFFSET_METADATA_TOO_LARGE);
        }
        Ok(OffsetCommitValue {
            offset: p.committed_offset,
            leader_epoch: p.committed_leader_epoch,
            metadata,
            commit_timestamp: self.now,
            expire_timestamp,
        })
    }

    fn commit_inner(
        &mut self,
        req: &OffsetCommitRequest,
        out: &mut Vec<Output>,
    ) -> OffsetCommitResponse {
        let check = CommitCheck {
            group_id: &req.group_id,
            member_id: &req.member_id,
            group_instance_id: req.group_instance_id.as_deref(),
            generation: req.generation_id_or_member_epoch,
            api_version: req.api_version,
            topics: &req.topics,
            transactional_id: None,
        };
        if let Err(e) = self.validate_commit(&check) {
            return uniform_commit_response(&req.topics, e.code());
        }
        let now = self.now;
        let expire =
            (req.retention_time_ms != -1).then(|| now.saturating_add(req.retention_time_ms));
        let id = CommitId(self.pending.next_id);
        let group = req.group_id.as_str();
        let (resp, records) =
            self.commit_records(group, &req.topics, expire, |c, topic, partition, value| {
                let partitions = c
                    .offsets
                    .entry(group.to_owned())
                    .or_default()
                    .entry(topic.to_owned())
                    .or_default();
                c.pending.add(
                    id,
                    (group, topic, partition),
                    partitions.get(&partition),
                    value.clone(),
                );
                partitions.insert(partition, value.clone());
                c.txn.note_committed(group, topic, partition);
            });
        if !records.is_empty() {
            self.pending.next_id += 1;
            out.push(Output::Append {
                partition: self.partition_for(&req.group_id),
                records: records.iter().map(CoordinatorRecord::encode).collect(),
                commit: Some(id),
                transaction: None,
            });
        }
        resp
    }

    /// OffsetFetch (v1–v9; v8+ several groups). Unknown groups and partitions read as
    /// offset -1; `topics: None` returns every committed partition. v9 KIP-848 members
    /// have their member epoch checked (STALE_MEMBER_EPOCH / UNKNOWN_MEMBER_ID).
    /// With `require_stable` (v7+, KIP-447) a partition with pending transactional
    /// offsets is answered UNSTABLE_OFFSET_COMMIT (offset -1), so the client retries.
    pub fn offset_fetch(&self, req: &OffsetFetchRequest) -> OffsetFetchResponse {
        let groups = req
            .groups
            .iter()
            .map(|g| {
                let error = |code: i16| OffsetFetchGroupResponse {
                    group_id: g.group_id.clone(),
                    error_code: code,
                    topics: Vec::new(),
                };
                if let Some(e) = self.group_error(&g.group_id) {
                    return error(e.code());
                }
                if g.group_id.is_empty() {
                    return error(codes::INVALID_GROUP_ID);
                }
                if let Some(Group::Consumer(cg)) = self.groups.get(&g.group_id) {
                    if let Err(e) = cg.validate_offset_fetch(g.member_id.as_deref(), g.member_epoch)
                    {
                        return error(e.code());
                    }
                }
                let unstable = |topic: &str, p: i32| {
                    req.require_stable && self.txn.has_pending(&g.group_id, topic, p)
                };
                let topics = match &g.topics {
                    None => self
                        .visible_offsets(&g.group_id)
                        .into_iter()
                        .map(|(t, ps)| OffsetFetchTopicResponse {
                            name: t.to_owned(),
                            partitions: ps
                                .into_iter()
                                .map(|(p, v)| {
                                    if unstable(t, p) {
                                        unstable_partition(p)
                                    } else {
                                        OffsetFetchPartitionResponse {
                                            partition_index: p,
                                            committed_offset: v.offset,
                                            committed_leader_epoch: v.leader_epoch,
                                            metadata: Some(v.metadata.clone()),
                                            error_code: codes::NONE,
                                        }
                                    }
                                })
                                .collect(),
                        })
                        .collect(),
                    Some(topics) => topics
                        .iter()
                        .map(|t| OffsetFetchTopicResponse {
                            name: t.name.clone(),
                            partitions: t
                                .partition_indexes
                                .iter()
                                .map(|p| {
                                    if unstable(&t.name, *p) {
                                        return unstable_partition(*p);
                                    }
                                    let v = self.visible_offset(&g.group_id, &t.name, *p);
                                    OffsetFetchPartitionResponse {
                                        partition_index: *p,
                                        committed_offset: v.map_or(-1, |v| v.offset),
                                        committed_leader_epoch: v.map_or(-1, |v| v.leader_epoch),
                                        metadata: Some(
                                            v.map(|v| v.metadata.clone()).unwrap_or_default(),
                                        ),
                                        error_code: codes::NONE,
                                    }
                                })
                                .collect(),
                        })
                        .collect(),
                };
                OffsetFetchGroupResponse {
                    group_id: g.group_id.clone(),
                    error_code: codes::NONE,
                    topics,
                }
            })
            .collect();
        OffsetFetchResponse { groups }
    }
}

/// Every partition of `topics` answered `code`.
/// What [`Coordinator::validate_commit`] checks of an OffsetCommit or a
/// TxnOffsetCommit.
pub(crate) struct CommitCheck<'a> {
    pub group_id: &'a str,
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
    /// Generation (classic) or member epoch (KIP-848); -1 if not given.
    pub generation: i32,
    /// The request's API version (of its own API).
    pub api_version: i16,
    pub topics: &'a [OffsetCommitTopic],
    /// The producer's `transactional.id`: set for TxnOffsetCommit.
    pub transactional_id: Option<&'a str>,
}

pub(crate) fn uniform_commit_response(
    topics: &[OffsetCommitTopic],
    code: i16,
) -> OffsetCommitResponse {
    OffsetCommitResponse {
        topics: topics
            .iter()
            .map(|t| OffsetCommitTopicResponse {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| PartitionResult {
                        partition_index: p.partition_index,
                        error_code: code,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A partition answered UNSTABLE_OFFSET_COMMIT (Kafka: offset -1, epoch -1, "").
fn unstable_partition(partition_index: i32) -> OffsetFetchPartitionResponse {
    OffsetFetchPartitionResponse {
        partition_index,
        committed_offset: -1,
        committed_leader_epoch: -1,
        metadata: Some(String::new()),
        error_code: codes::UNSTABLE_OFFSET_COMMIT,
    }
}

impl Coordinator {
    /// OffsetDelete (v0): removes committed offsets of topics the group does not consume
    /// (GROUP_SUBSCRIBED_TO_TOPIC otherwise).
    pub fn offset_delete(
        &mut self,
        req: OffsetDeleteRequest,
        now: TimestampMs,
        token: ReplyToken,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        self.begin(now, &mut out);
        let resp = self.offset_delete_inner(&req, &mut out);
        out.push(Output::Reply {
            token,
            response: Response::OffsetDelete(resp),
        });
        self.run_timers(&mut out);
        out
    }

    fn offset_delete_inner(
        &mut self,
        req: &OffsetDeleteRequest,
        out: &mut Vec<Output>,
    ) -> OffsetDeleteResponse {
        let error = |code: i16| OffsetDeleteResponse {
            error_code: code,
            topics: Vec::new(),
        };
        if let Some(e) = self.group_error(&req.group_id) {
            return error(e.code());
        }
        if req.group_id.is_empty() {
            return error(codes::INVALID_GROUP_ID);
        }
        let subscribed: Box<dyn Fn(&str) -> bool + '_> = match self.groups.get(&req.group_id) {
            None => return error(codes::GROUP_ID_NOT_FOUND),
            Some(Group::Classic(g)) => {
                match g.state {
                    ClassicState::Dead => return error(codes::GROUP_ID_NOT_FOUND),
                    ClassicState::Empty => {}
                    _ if g.protocol_type.as_deref()
                        != Some(crate::classic::CONSUMER_PROTOCOL_TYPE) =>
                    {
                        return error(codes::NON_EMPTY_GROUP)
                    }
                    _ => {}
                }
                let topics = g.subscribed_topics();
                Box::new(move |t: &str| topics.as_ref().is_some_and(|s| s.contains(t)))
            }
            Some(Group::Consumer(g)) => {
                let topics = g.subscribed_topic_names();
                Box::new(move |t: &str| topics.contains(t))
            }
        };
        let mut to_delete = Vec::new();
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let is_subscribed = subscribed(&t.name);
                OffsetDeleteTopicResponse {
                    name: t.name.clone(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| {
                            let error_code = if is_subscribed {
                                codes::GROUP_SUBSCRIBED_TO_TOPIC
                            } else {
                                to_delete.push((t.name.clone(), *p));
                                codes::NONE
                            };
                            PartitionResult {
                                partition_index: *p,
                                error_code,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        drop(subscribed);
        let mut records = Vec::new();
        for (topic, partition) in to_delete {
            let exists = self
                .offsets
                .get(&req.group_id)
                .and_then(|o| o.get(&topic))
                .is_some_and(|ps| ps.contains_key(&partition));
            if exists {
                self.remove_offset(&req.group_id, &topic, partition);
                records.push(CoordinatorRecord::OffsetCommit {
                    group: req.group_id.clone(),
                    topic,
                    partition,
                    value: None,
                });
            }
        }
        let mut cx = Ctx {
            cfg: &self.config,
            timers: &mut self.timers,
            out,
            now: self.now,
        };
        cx.append(&req.group_id, records);
        OffsetDeleteResponse {
            error_code: codes::NONE,
            topics,
        }
    }

    /// Removes offsets older than `offsets.retention.minutes` (Kafka's rules: a classic
    /// group's offsets expire counting from when it became Empty; a Stable consumer group
    /// or KIP-848 group keeps the offsets of topics it is subscribed to; explicit expire
    /// timestamps win), then deletes groups left empty with no offsets. Runs on its own
    /// every `offsets.retention.check.interval.ms` from [`Coordinator::tick`].
    pub fn expire_offsets(&mut self, now: TimestampMs) -> Vec<Output> {
        let mut out = Vec::new();
        self.begin(now, &mut out);
        if self.status_error().is_none() {
            self.expire_offsets_into(&mut out);
        }
        out
    }

    pub(crate) fn expire_offsets_into(&mut self, out: &mut Vec<Output>) {
        let now = self.now;
        let retention = self.config.retention_ms();
        let ids: Vec<String> = self
            .groups
            .keys()
            .chain(self.offsets.keys())
            .cloned()
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for gid in ids {
            if !seen.insert(gid.clone()) || !self.serves(&gid) {
                // Groups of a partition still loading are left alone until it is loaded.
                continue;
            }
            let (base, subscribed, empty) = match self.groups.get(&gid) {
                Some(Group::Classic(g)) => (
                    g.expiry_base(),
                    g.subscribed_topics().unwrap_or_default(),
                    g.state == ClassicState::Empty,
                ),
                Some(Group::Consumer(g)) => (
                    Some(ExpiryBase::CommitTimestamp),
                    g.subscribed_topic_names(),
                    g.members.is_empty(),
                ),
                None => (Some(ExpiryBase::CommitTimestamp), Default::default(), true),
            };
            let mut records = Vec::new();
            if let (Some(base), Some(offsets)) = (base, self.offsets.get(&gid)) {
                for (topic, parts) in offsets {
                    if subscribed.contains(topic) {
                        continue;
                    }
                    for (partition, v) in parts {
                        let expired = match v.expire_timestamp {
                            Some(at) => now >= at,
                            None => {
                                let from = match base {
                                    ExpiryBase::CommitTimestamp => v.commit_timestamp,
                                    ExpiryBase::EmptySince(t) => t.unwrap_or(v.commit_timestamp),
                                };
                                now.saturating_sub(from) >= retention
                            }
                        };
                        // Not while a transaction commits an offset of it (Kafka).
                        if expired && !self.txn.has_pending(&gid, topic, *partition) {
                            records.push(CoordinatorRecord::OffsetCommit {
                                group: gid.clone(),
                                topic: topic.clone(),
                                partition: *partition,
                                value: None,
                            });
                        }
                    }
                }
            }
            for r in &records {
                if let CoordinatorRecord::OffsetCommit {
                    topic, partition, ..
                } = r
                {
                    self.remove_offset(&gid, topic, *partition);
                }
            }
            if empty
                && !self.offsets.contains_key(&gid)
                && self.groups.contains_key(&gid)
                && self.txn.pending_of_group(&gid).is_empty()
            {
                records.extend(self.delete_group_records(&gid));
            }
            let mut cx = Ctx {
                cfg: &self.config,
                timers: &mut self.timers,
                out,
                now,
            };
            cx.append(&gid, records);
        }
    }
}
