//! The [`TxnCoordinator`]: the transactional ids of one `__transaction_state`
//! partition, loading and replay, timers, marker completion and the read-only APIs. The
//! request handlers that change state are in `handlers.rs`.

use std::collections::{BTreeMap, BTreeSet};

use samsa_model::{LeaderEpoch, ProducerEpoch, ProducerId, TimestampMs, TopicPartition};

use super::api::{
    DescribedTransaction, ListTransactionsRequest, ListTransactionsResponse, ListedTransaction,
    TxnMarkers, TxnOutput, NO_PRODUCER_ID,
};
use super::config::TxnConfig;
use super::error::{TxnError, TxnReplayError};
use super::records::{decode_key, encode_key, TxnLogValue};
use super::state::TxnState;
use crate::api::Record;
use crate::config::STRING_BYTES_MAX;
use crate::coordinator::{partition_for, CoordinatorStatus};
use crate::error::codes;

/// One transactional id: its persisted metadata and what only lives in memory.
#[derive(Clone, Debug)]
pub(crate) struct Txn {
    /// The last record written (or replayed) for the id.
    pub(crate) value: TxnLogValue,
    /// Kafka's `lastProducerEpoch` (KIP-360 retries, TV2 retries): not in the record,
    /// -1 after a load, as in Kafka.
    pub(crate) last_epoch: ProducerEpoch,
    /// PrepareCommit/PrepareAbort: partitions whose marker is not written yet.
    pub(crate) pending: BTreeSet<TopicPartition>,
}

impl Txn {
    pub(crate) fn new(value: TxnLogValue) -> Txn {
        Txn {
            value,
            last_epoch: ProducerEpoch(-1),
            pending: BTreeSet::new(),
        }
    }
}

/// The transaction coordinator of one `__transaction_state` partition. See the module
/// docs for the calling contract.
pub struct TxnCoordinator {
    pub(crate) config: TxnConfig,
    partition: u32,
    coordinator_epoch: LeaderEpoch,
    pub(crate) producer_ids: Box<dyn FnMut() -> Option<ProducerId> + Send>,
    pub(crate) status: CoordinatorStatus,
    pub(crate) txns: BTreeMap<String, Txn>,
    next_abort_scan: i64,
    next_expire_scan: i64,
}

impl TxnCoordinator {
    /// A `Loading` coordinator of `__transaction_state` partition `partition`, led in
    /// `coordinator_epoch`. `producer_ids` hands out a fresh producer id, or `None` when
    /// none is available yet (the request then gets COORDINATOR_LOAD_IN_PROGRESS, as
    /// Kafka answers while it fetches a new block of ids).
    pub fn new(
        config: TxnConfig,
        partition: u32,
        coordinator_epoch: LeaderEpoch,
        producer_ids: Box<dyn FnMut() -> Option<ProducerId> + Send>,
    ) -> Self {
        TxnCoordinator {
            config,
            partition,
            coordinator_epoch,
            producer_ids,
            status: CoordinatorStatus::Loading,
            txns: BTreeMap::new(),
            next_abort_scan: i64::MAX,
            next_expire_scan: i64::MAX,
        }
    }

    /// The settings.
    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// Follows a change of the finalized `transaction.version` feature.
    pub fn set_transaction_version(&mut self, level: i16) {
        self.config.transaction_version = level;
    }

    /// The `__transaction_state` partition served.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The coordinator epoch (the partition's leader epoch).
    pub fn coordinator_epoch(&self) -> LeaderEpoch {
        self.coordinator_epoch
    }

    /// Loading, Active or Unloaded.
    pub fn status(&self) -> CoordinatorStatus {
        self.status
    }

    /// The `__transaction_state` partition of `transactional_id` (Kafka's
    /// `abs(hashCode) % transaction.state.log.num.partitions`).
    pub fn partition_for(&self, transactional_id: &str) -> u32 {
        partition_for(transactional_id, self.config.transaction_state_partitions)
    }

    /// Whether `transactional_id` belongs to this coordinator's partition.
    pub fn owns(&self, transactional_id: &str) -> bool {
        self.partition_for(transactional_id) == self.partition
    }

    /// Applies one record of the partition, in log order (`value: None` is a tombstone).
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), TxnReplayError> {
        if self.status != CoordinatorStatus::Loading {
            return Err(TxnReplayError::NotLoading);
        }
        let id = decode_key(key)?;
        match value {
            None => {
                self.txns.remove(&id);
            }
            Some(v) => {
                let value = TxnLogValue::decode(v)?;
                if value.state == TxnState::Dead {
                    self.txns.remove(&id);
                } else {
                    self.txns.insert(id, Txn::new(value));
                }
            }
        }
        Ok(())
    }

    /// Ends the load: the coordinator serves requests, and every transaction left in
    /// PrepareCommit/PrepareAbort gets its markers asked for again (or, without
    /// partitions, its Complete record written).
    pub fn finish_loading(&mut self, now: TimestampMs) -> Vec<TxnOutput> {
        let mut out = Vec::new();
        if self.status != CoordinatorStatus::Loading {
            return out;
        }
        self.status = CoordinatorStatus::Active;
        self.next_abort_scan = now
            .0
            .saturating_add(self.config.abort_timed_out_interval_ms);
        self.next_expire_scan = now.0.saturating_add(self.config.remove_expired_interval_ms);
        let preparing: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, t)| t.value.state.is_prepare())
            .map(|(id, _)| id.clone())
            .collect();
        for id in preparing {
            self.send_markers_or_complete(&id, now, &mut out);
        }
        out
    }

    /// Stops serving (leadership lost): requests get NOT_COORDINATOR. Nothing is parked,
    /// so nothing is answered here.
    pub fn unload(&mut self) -> Vec<TxnOutput> {
        self.status = CoordinatorStatus::Unloaded;
        self.txns.clear();
        self.next_abort_scan = i64::MAX;
        self.next_expire_scan = i64::MAX;
        Vec::new()
    }

    /// The next time [`TxnCoordinator::tick`] has work (None when not serving).
    pub fn next_deadline(&self) -> Option<TimestampMs> {
        if self.status != CoordinatorStatus::Active {
            return None;
        }
        Some(TimestampMs(self.next_abort_scan.min(self.next_expire_scan)))
    }

    /// Runs what is due at `now`: aborts transactions past their timeout (Kafka's
    /// `abortTimedOutTransactions`, with an epoch bump) and removes ids idle for
    /// `transactional.id.expiration.ms`.
    pub fn tick(&mut self, now: TimestampMs) -> Vec<TxnOutput> {
        let mut out = Vec::new();
        if self.status != CoordinatorStatus::Active {
            return out;
        }
        if now.0 >= self.next_abort_scan {
            self.next_abort_scan = now
                .0
                .saturating_add(self.config.abort_timed_out_interval_ms.max(1));
            let timed_out: Vec<String> = self
                .txns
                .iter()
                .filter(|(_, t)| {
                    let v = &t.value;
                    v.state == TxnState::Ongoing
                        && v.timeout_ms != i32::MAX
                        && v.start_ms.0.saturating_add(i64::from(v.timeout_ms)) < now.0
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in timed_out {
                let tv = self.config.transaction_version;
                self.fence_and_abort(&id, tv, now, &mut out);
                self.send_markers_or_complete(&id, now, &mut out);
            }
        }
        if now.0 >= self.next_expire_scan {
            self.next_expire_scan = now
                .0
                .saturating_add(self.config.remove_expired_interval_ms.max(1));
            let horizon = now
                .0
                .saturating_sub(self.config.transactional_id_expiration_ms);
            let expired: Vec<String> = self
                .txns
                .iter()
                .filter(|(_, t)| {
                    t.value.state.expiration_allowed() && t.value.last_update_ms.0 <= horizon
                })
                .map(|(id, _)| id.clone())
                .collect();
            if !expired.is_empty() {
                let records = expired
                    .iter()
                    .map(|id| Record {
                        key: encode_key(id),
                        value: None,
                    })
                    .collect();
                for id in &expired {
                    self.txns.remove(id);
                }
                out.push(TxnOutput::Append {
                    partition: self.partition,
                    records,
                });
            }
        }
        out
    }

    /// Reports markers written for `partitions` of the transaction of `transactional_id`
    /// with `producer_id`/`producer_epoch` (or given up, for a deleted topic). When no
    /// partition is left, the CompleteCommit/CompleteAbort record is appended. Reports
    /// that match no transaction in PrepareCommit/PrepareAbort are ignored.
    pub fn markers_written(
        &mut self,
        now: TimestampMs,
        transactional_id: &str,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        partitions: &[TopicPartition],
    ) -> Vec<TxnOutput> {
        let mut out = Vec::new();
        if self.status != CoordinatorStatus::Active {
            return out;
        }
        let Some(txn) = self.txns.get_mut(transactional_id) else {
            return out;
        };
        if !txn.value.state.is_prepare()
            || txn.value.producer_id != producer_id
            || txn.value.producer_epoch != producer_epoch
        {
            return out;
        }
        for tp in partitions {
            txn.pending.remove(tp);
        }
        if txn.pending.is_empty() {
            self.complete(transactional_id, now, &mut out);
        }
        out
    }

    /// The markers still being written, one entry per transaction in
    /// PrepareCommit/PrepareAbort (e.g. to resend them after the broker's sender lost them).
    pub fn pending_markers(&self) -> Vec<TxnMarkers> {
        self.txns
            .iter()
            .filter(|(_, t)| t.value.state.is_prepare() && !t.pending.is_empty())
            .map(|(id, t)| self.markers_of(id, t))
            .collect()
    }

    /// DescribeTransactions for the ids of this partition.
    pub fn describe_transactions(&self, transactional_ids: &[String]) -> Vec<DescribedTransaction> {
        transactional_ids
            .iter()
            .map(|id| match self.describe_one(id) {
                Ok(d) => d,
                Err(e) => DescribedTransaction {
                    error_code: e.code(),
                    transactional_id: id.clone(),
                    state: String::new(),
                    timeout_ms: 0,
                    start_time_ms: TimestampMs(-1),
                    producer_id: NO_PRODUCER_ID,
                    producer_epoch: ProducerEpoch(-1),
                    topics: Vec::new(),
                },
            })
            .collect()
    }

    fn describe_one(&self, id: &str) -> Result<DescribedTransaction, TxnError> {
        if id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        self.check_serving(id)?;
        let txn = self.txns.get(id).ok_or(TxnError::TransactionalIdNotFound)?;
        let v = &txn.value;
        if v.state == TxnState::Dead {
            return Err(TxnError::TransactionalIdNotFound);
        }
        // Kafka shows the partitions whose markers are still to be written while preparing.
        let parts = if v.state.is_prepare() {
            &txn.pending
        } else {
            &v.partitions
        };
        let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
        for tp in parts {
            match topics.last_mut() {
                Some((t, ps)) if *t == tp.topic => ps.push(tp.partition.0),
                _ => topics.push((tp.topic.clone(), vec![tp.partition.0])),
            }
        }
        Ok(DescribedTransaction {
            error_code: codes::NONE,
            transactional_id: id.to_owned(),
            state: v.state.name().to_owned(),
            timeout_ms: v.timeout_ms,
            start_time_ms: v.start_ms,
            producer_id: v.producer_id,
            producer_epoch: v.producer_epoch,
            topics,
        })
    }

    /// ListTransactions over this partition's ids (Kafka's `listTransactionStates`).
    pub fn list_transactions(
        &self,
        now: TimestampMs,
        req: &ListTransactionsRequest,
    ) -> ListTransactionsResponse {
        let mut resp = ListTransactionsResponse::default();
        match self.status {
            CoordinatorStatus::Loading => {
                resp.error_code = codes::COORDINATOR_LOAD_IN_PROGRESS;
                return resp;
            }
            CoordinatorStatus::Unloaded => {
                resp.error_code = codes::NOT_COORDINATOR;
                return resp;
            }
            CoordinatorStatus::Active => {}
        }
        let mut states = BTreeSet::new();
        for name in &req.state_filters {
            match TxnState::from_name(name) {
                Some(s) => {
                    states.insert(s);
                }
                None => resp.unknown_state_filters.push(name.clone()),
            }
        }
        let pids: BTreeSet<ProducerId> = req.producer_id_filters.iter().copied().collect();
        for (id, t) in &self.txns {
            let v = &t.value;
            let keep = v.state != TxnState::Dead
                && (pids.is_empty() || pids.contains(&v.producer_id))
                && (req.state_filters.is_empty() || states.contains(&v.state))
                && (req.duration_filter_ms < 0
                    || now.0.saturating_sub(v.start_ms.0) > req.duration_filter_ms);
            if keep {
                resp.transactions.push(ListedTransaction {
                    transactional_id: id.clone(),
                    producer_id: v.producer_id,
                    state: v.state.name().to_owned(),
                });
            }
        }
        resp
    }

    /// What replaying this coordinator's records rebuilds: the last record of every id.
    pub fn durable_state(&self) -> BTreeMap<String, TxnLogValue> {
        self.txns
            .iter()
            .map(|(id, t)| (id.clone(), t.value.clone()))
            .collect()
    }

    /// The persisted metadata of `transactional_id`.
    pub fn transaction(&self, transactional_id: &str) -> Option<&TxnLogValue> {
        self.txns.get(transactional_id).map(|t| &t.value)
    }

    // ---- shared by the handlers ----

    /// Whether requests for `id` are served here.
    pub(crate) fn check_serving(&self, id: &str) -> Result<(), TxnError> {
        if id.len() > STRING_BYTES_MAX {
            return Err(TxnError::InvalidRequest);
        }
        match self.status {
            CoordinatorStatus::Loading => Err(TxnError::CoordinatorLoadInProgress),
            CoordinatorStatus::Unloaded => Err(TxnError::NotCoordinator),
            CoordinatorStatus::Active if !self.owns(id) => Err(TxnError::NotCoordinator),
            CoordinatorStatus::Active => Ok(()),
        }
    }

    /// Records `value` for `id` (Kafka's transition, applied now and persisted by the
    /// Append pushed to `out`). The record version follows the transaction version
    /// (TV2: v1); a v0 record cannot hold the TV2 fields, so they are dropped here too
    /// and the state stays what a replay rebuilds.
    pub(crate) fn persist(&mut self, id: &str, mut txn: Txn, out: &mut Vec<TxnOutput>) {
        let version =
            if self.config.transaction_version >= 2 || txn.value.client_transaction_version >= 2 {
                1
            } else {
                0
            };
        if version == 0 {
            txn.value.previous_producer_id = NO_PRODUCER_ID;
            txn.value.next_producer_id = NO_PRODUCER_ID;
            txn.value.client_transaction_version = 0;
        }
        if txn.value.state == TxnState::Empty {
            txn.value.partitions.clear();
        }
        out.push(TxnOutput::Append {
            partition: self.partition,
            records: vec![Record {
                key: encode_key(id),
                value: Some(txn.value.encode(version)),
            }],
        });
        self.txns.insert(id.to_owned(), txn);
    }

    /// Fences the producer of the Ongoing transaction of `id` and moves it to PrepareAbort
    /// (Kafka's PrepareEpochFence followed by the abort it triggers): the epoch is bumped
    /// once to fence, and once more under transaction version 2 (`tv`: the server's).
    pub(crate) fn fence_and_abort(
        &mut self,
        id: &str,
        tv: i16,
        now: TimestampMs,
        out: &mut Vec<TxnOutput>,
    ) {
        let Some(old) = self.txns.get(id) else {
            return;
        };
        if old.value.state != TxnState::Ongoing {
            return;
        }
        let mut txn = old.clone();
        let cur = old.value.producer_epoch.0;
        let fenced = if cur == i16::MAX { cur } else { cur + 1 };
        let (epoch, last) = if tv >= 2 {
            (
                if fenced == i16::MAX {
                    fenced
                } else {
                    fenced + 1
                },
                fenced,
            )
        } else {
            (fenced, -1)
        };
        txn.value.previous_producer_id = old.value.producer_id;
        txn.value.next_producer_id = NO_PRODUCER_ID;
        txn.value.producer_epoch = ProducerEpoch(epoch);
        txn.last_epoch = ProducerEpoch(last);
        txn.value.state = TxnState::PrepareAbort;
        txn.value.last_update_ms = now;
        txn.value.client_transaction_version = tv;
        self.persist(id, txn, out);
    }

    /// After a Prepare record: asks for the markers, or completes at once when the
    /// transaction has no partition (a TV2 abort of nothing).
    pub(crate) fn send_markers_or_complete(
        &mut self,
        id: &str,
        now: TimestampMs,
        out: &mut Vec<TxnOutput>,
    ) {
        let Some(txn) = self.txns.get_mut(id) else {
            return;
        };
        if !txn.value.state.is_prepare() {
            return;
        }
        txn.pending = txn.value.partitions.clone();
        if txn.pending.is_empty() {
            self.complete(id, now, out);
        } else {
            let m = self.markers_of(id, &self.txns[id]);
            out.push(TxnOutput::WriteMarkers(m));
        }
    }

    fn markers_of(&self, id: &str, txn: &Txn) -> TxnMarkers {
        TxnMarkers {
            transactional_id: id.to_owned(),
            producer_id: txn.value.producer_id,
            producer_epoch: txn.value.producer_epoch,
            commit: txn.value.state == TxnState::PrepareCommit,
            coordinator_epoch: self.coordinator_epoch,
            partitions: txn.value.partitions.iter().cloned().collect(),
        }
    }

    /// Kafka's `prepareComplete`: every marker is written. Under TV2 with a new producer
    /// id waiting (epoch exhaustion), the id moves to it with epoch 0.
    fn complete(&mut self, id: &str, now: TimestampMs, out: &mut Vec<TxnOutput>) {
        let Some(old) = self.txns.get(id) else {
            return;
        };
        let mut txn = old.clone();
        let v = &mut txn.value;
        v.state = match old.value.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        v.previous_producer_id = old.value.producer_id;
        if old.value.client_transaction_version >= 2 && old.value.next_producer_id != NO_PRODUCER_ID
        {
            v.producer_id = old.value.next_producer_id;
            v.producer_epoch = ProducerEpoch(0);
        }
        v.next_producer_id = NO_PRODUCER_ID;
        v.partitions.clear();
        v.last_update_ms = now;
        txn.pending.clear();
        self.persist(id, txn, out);
    }
}
