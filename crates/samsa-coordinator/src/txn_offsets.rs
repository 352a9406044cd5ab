//! Transactional offset commits: TxnOffsetCommit (v0–v5; KIP-98, KIP-447) and the
//! pending transactional offsets of Kafka's `OffsetMetadataManager`.
//!
//! A TxnOffsetCommit writes ordinary OffsetCommit records, in one *transactional*
//! batch carrying the producer's id and epoch ([`Output::Append`] with
//! `transaction`). Until the transaction ends its offsets are *pending*: kept per
//! producer id, invisible to OffsetFetch, and a `require_stable` OffsetFetch answers
//! UNSTABLE_OFFSET_COMMIT for their partitions. A COMMIT marker of that producer in the
//! group's `__consumer_offsets` partition makes them the committed offsets — unless a
//! plain commit of the same partition was written *after* the transactional record
//! (Kafka keeps the most recent record, so compaction cannot resurrect an older
//! offset); an ABORT marker drops them. A tombstone of a partition (OffsetDelete, group
//! deletion) drops its pending offsets too, and offset expiry neither expires a
//! partition with pending offsets nor deletes a group that has any.
//!
//! Replay sees the same thing in the same order: the broker passes each record of a
//! transactional batch to [`Coordinator::replay_transactional`] and each control
//! record to [`Coordinator::replay_end_transaction`], so replaying the log rebuilds the
//! live state (committed and pending). "Most recent" is the order records were applied
//! in (a counter both paths advance at every offset record), which is log order.

use std::collections::{BTreeMap, BTreeSet};

use samsa_model::TimestampMs;

use crate::api::{
    OffsetCommitResponse, Output, ReplyToken, Response, TxnOffsetCommitRequest, TxnProducer,
};
use crate::classic::ClassicGroup;
use crate::coordinator::{partition_for, Coordinator, Group};
use crate::error::ReplayError;
use crate::offsets::{uniform_commit_response, CommitCheck};
use crate::records::{CoordinatorRecord, OffsetCommitValue};

/// (group, topic, partition).
pub(crate) type OffsetKey = (String, String, i32);

/// Pending transactional offsets, and the log order of every offset record.
#[derive(Default)]
pub(crate) struct TxnOffsets {
    /// Per producer id: the offsets its open transaction commits, each with the order
    /// of its record.
    pending: BTreeMap<i64, BTreeMap<OffsetKey, (OffsetCommitValue, u64)>>,
    /// The producers with pending offsets, per partition.
    open: BTreeMap<OffsetKey, BTreeSet<i64>>,
    /// The order of the record behind each committed offset.
    committed_order: BTreeMap<OffsetKey, u64>,
    next_order: u64,
}

impl TxnOffsets {
    fn next(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }

    /// A plain (non-transactional) commit of `key` was applied.
    pub(crate) fn note_committed(&mut self, group: &str, topic: &str, partition: i32) {
        let order = self.next();
        self.committed_order
            .insert((group.to_owned(), topic.to_owned(), partition), order);
    }

    fn add_pending(&mut self, producer_id: i64, key: OffsetKey, value: OffsetCommitValue) {
        let order = self.next();
        self.open
            .entry(key.clone())
            .or_default()
            .insert(producer_id);
        self.pending
            .entry(producer_id)
            .or_default()
            .insert(key, (value, order));
    }

    /// A tombstone of `key` was applied: its committed order and every producer's
    /// pending offset for it go.
    pub(crate) fn clear(&mut self, group: &str, topic: &str, partition: i32) {
        let key = (group.to_owned(), topic.to_owned(), partition);
        self.committed_order.remove(&key);
        for pid in self.open.remove(&key).unwrap_or_default() {
            if let Some(offsets) = self.pending.get_mut(&pid) {
                offsets.remove(&key);
                if offsets.is_empty() {
                    self.pending.remove(&pid);
                }
            }
        }
    }

    /// Whether some open transaction commits an offset of `key`.
    pub(crate) fn has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.open
            .contains_key(&(group.to_owned(), topic.to_owned(), partition))
    }

    /// The partitions of `group` with pending offsets.
    pub(crate) fn pending_of_group(&self, group: &str) -> Vec<(String, i32)> {
        self.open
            .range((group.to_owned(), String::new(), i32::MIN)..)
            .take_while(|((g, ..), _)| g == group)
            .map(|((_, t, p), _)| (t.clone(), *p))
            .collect()
    }

    /// Keeps only the groups `keep` selects (ownership moved).
    pub(crate) fn retain_groups(&mut self, keep: impl Fn(&str) -> bool) {
        self.open.retain(|(g, ..), _| keep(g));
        self.committed_order.retain(|(g, ..), _| keep(g));
        self.pending.retain(|_, offsets| {
            offsets.retain(|(g, ..), _| keep(g));
            !offsets.is_empty()
        });
    }

    /// Removes producer `producer_id`'s pending offsets of the groups `of_partition`
    /// selects, with their record order.
    fn take(
        &mut self,
        producer_id: i64,
        of_partition: impl Fn(&str) -> bool,
    ) -> Vec<(OffsetKey, OffsetCommitValue, u64)> {
        let Some(offsets) = self.pending.get_mut(&producer_id) else {
            return Vec::new();
        };
        let keys: Vec<OffsetKey> = offsets
            .keys()
            .filter(|(g, ..)| of_partition(g))
            .cloned()
            .collect();
        let mut taken = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some((value, order)) = offsets.remove(&key) {
                if let Some(pids) = self.open.get_mut(&key) {
                    pids.remove(&producer_id);
                    if pids.is_empty() {
                        self.open.remove(&key);
                    }
                }
                taken.push((key, value, order));
            }
        }
        if offsets.is_empty() {
            self.pending.remove(&producer_id);
        }
        taken
    }

    /// Every pending offset, by producer id (for [`crate::DurableState`]).
    pub(crate) fn snapshot(&self) -> BTreeMap<i64, BTreeMap<OffsetKey, OffsetCommitValue>> {
        self.pending
            .iter()
            .map(|(pid, offsets)| {
                let offsets = offsets
                    .iter()
                    .map(|(k, (v, _))| (k.clone(), v.clone()))
                    .collect();
                (*pid, offsets)
            })
            .collect()
    }
}

impl Coordinator {
    /// TxnOffsetCommit (v0–v5): validated as OffsetCommit is (v3+ carry generation,
    /// member id and instance id; a KIP-848 member's stale epoch is answered
    /// ILLEGAL_GENERATION, a missing group with a generation too), written as one
    /// transactional batch of the producer, and pending until the producer's
    /// transaction ends ([`Coordinator::complete_transaction`]).
    pub fn txn_offset_commit(
        &mut self,
        req: TxnOffsetCommitRequest,
        now: TimestampMs,
        token: ReplyToken,
    ) -> Vec<Output> {
        self.call(now, |c, out| {
            let resp = c.txn_commit_inner(&req, out);
            out.push(Output::Reply {
                token,
                response: Response::OffsetCommit(resp),
            });
        })
    }

    fn txn_commit_inner(
        &mut self,
        req: &TxnOffsetCommitRequest,
        out: &mut Vec<Output>,
    ) -> OffsetCommitResponse {
        let check = CommitCheck {
            group_id: &req.group_id,
            member_id: &req.member_id,
            group_instance_id: req.group_instance_id.as_deref(),
            generation: req.generation_id,
            api_version: req.api_version,
            topics: &req.topics,
            transactional_id: Some(&req.transactional_id),
        };
        if let Err(e) = self.validate_commit(&check) {
            return uniform_commit_response(&req.topics, e.code());
        }
        let group = req.group_id.as_str();
        let (resp, records) =
            self.commit_records(group, &req.topics, None, |c, topic, partition, value| {
                let key = (group.to_owned(), topic.to_owned(), partition);
                c.txn.add_pending(req.producer_id, key, value.clone());
            });
        if !records.is_empty() {
            out.push(Output::Append {
                partition: self.partition_for(&req.group_id),
                records: records.iter().map(CoordinatorRecord::encode).collect(),
                commit: None,
                transaction: Some(TxnProducer {
                    producer_id: req.producer_id,
                    producer_epoch: req.producer_epoch,
                }),
            });
        }
        resp
    }

    /// Applies one record of a *transactional* `__consumer_offsets` batch of producer
    /// `producer_id` while loading (same gating as [`Coordinator::replay`]): an offset
    /// commit becomes a pending transactional offset; anything else applies as usual.
    pub fn replay_transactional(
        &mut self,
        producer_id: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), ReplayError> {
        self.replay_accepts(None)?;
        let record = CoordinatorRecord::decode(key, value)?;
        if !self.replay_accepts(Some(self.partition_for(record.group())))? {
            return Ok(());
        }
        match record {
            CoordinatorRecord::OffsetCommit {
                group,
                topic,
                partition,
                value: Some(v),
            } => {
                self.groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::Classic(ClassicGroup::new(group.clone(), None)));
                self.txn
                    .add_pending(producer_id, (group, topic, partition), v);
            }
            other => self.apply(other),
        }
        Ok(())
    }

    /// Applies a transaction marker (control record) of producer `producer_id` found in
    /// `__consumer_offsets` partition `partition` while loading (same gating as
    /// [`Coordinator::replay`]): see [`Coordinator::complete_transaction`].
    pub fn replay_end_transaction(
        &mut self,
        partition: u32,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), ReplayError> {
        if self.replay_accepts(Some(partition))? {
            self.end_transaction(partition, producer_id, commit);
        }
        Ok(())
    }

    /// A COMMIT (`commit`) or ABORT marker of producer `producer_id` is in
    /// `__consumer_offsets` partition `partition` (Kafka's
    /// `replayEndTransactionMarker`). Call it once the marker is replicated (as
    /// WriteTxnMarkers appends it with acks=all): a commit makes the producer's pending
    /// offsets of that partition's groups the committed ones (each unless a plain commit
    /// of the partition was written after it), an abort drops them. Ignored unless the
    /// coordinator is active and the partition loaded (a loading partition replays the
    /// marker from the log).
    pub fn complete_transaction(&mut self, partition: u32, producer_id: i64, commit: bool) {
        let loaded = self.status_error().is_none() && !self.loading.contains(&partition);
        if loaded && self.owned.as_ref().is_none_or(|o| o.contains(&partition)) {
            self.end_transaction(partition, producer_id, commit);
        }
    }

    fn end_transaction(&mut self, partition: u32, producer_id: i64, commit: bool) {
        let partitions = self.config.partitions();
        let taken = self
            .txn
            .take(producer_id, |g| partition_for(g, partitions) == partition);
        if !commit {
            return;
        }
        for ((group, topic, p), value, order) in taken {
            let current = self
                .offsets
                .get(&group)
                .and_then(|o| o.get(&topic))
                .and_then(|ps| ps.get(&p));
            let newer = match (
                current,
                self.txn
                    .committed_order
                    .get(&(group.clone(), topic.clone(), p)),
            ) {
                (None, _) | (Some(_), None) => true,
                (Some(_), Some(existing)) => order > *existing,
            };
            if newer {
                self.txn
                    .committed_order
                    .insert((group.clone(), topic.clone(), p), order);
                self.offsets
                    .entry(group)
                    .or_default()
                    .entry(topic)
                    .or_default()
                    .insert(p, value);
            }
        }
    }

    /// Whether an open transaction commits an offset of `group`'s `topic`-`partition`
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for it).
    pub fn has_pending_transactional_offsets(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> bool {
        self.txn.has_pending(group, topic, partition)
    }
}
