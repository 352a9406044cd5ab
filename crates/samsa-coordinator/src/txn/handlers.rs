//! The state-changing requests: InitProducerId, AddPartitionsToTxn (and its verify-only
//! form), AddOffsetsToTxn and EndTxn, with Kafka's checks in Kafka's order.

use std::collections::BTreeSet;

use samsa_model::{PartitionIndex, ProducerEpoch, ProducerId, TimestampMs, TopicPartition};

use super::api::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, TxnOutput, TxnResponse, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};
use super::config::TXN_PARTITIONS_MAX;
use super::coordinator::{Txn, TxnCoordinator};
use super::error::TxnError;
use super::records::TxnLogValue;
use super::state::TxnState;
use crate::api::ReplyToken;
use crate::config::STRING_BYTES_MAX;
use crate::coordinator::partition_for;
use crate::error::codes;

/// The internal topic AddOffsetsToTxn adds a partition of.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's `isEpochExhausted`: epochs at `i16::MAX - 1` or above are not handed out, so
/// the coordinator can always fence with one more bump.
fn exhausted(epoch: ProducerEpoch) -> bool {
    epoch.0 >= i16::MAX - 1
}

/// What EndTxn decided before anything is written.
enum EndDecision {
    /// A retry of an end already done: answer with this id and epoch.
    Done(ProducerId, ProducerEpoch),
    /// Write this Prepare transition.
    Prepare(Txn),
}

impl TxnCoordinator {
    /// The transaction of `id`, checked as every request naming one is first:
    /// INVALID_REQUEST for an empty id, then the coordinator's own state
    /// (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS), then
    /// INVALID_PRODUCER_ID_MAPPING for an id it does not know.
    fn txn_of(&self, id: &str) -> Result<&Txn, TxnError> {
        if id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        self.check_serving(id)?;
        self.txns.get(id).ok_or(TxnError::InvalidProducerIdMapping)
    }

    /// [`TxnCoordinator::txn_of`], and the request's producer must be the
    /// transaction's: another producer id is INVALID_PRODUCER_ID_MAPPING,
    /// another epoch PRODUCER_FENCED (AddPartitionsToTxn, its verify-only
    /// form, AddOffsetsToTxn).
    fn check_producer(
        &self,
        id: &str,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
    ) -> Result<&Txn, TxnError> {
        let txn = self.txn_of(id)?;
        if txn.value.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if txn.value.producer_epoch != producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(txn)
    }

    /// InitProducerId for a transactional id: a new producer id for a new id, otherwise an
    /// epoch bump that fences older producers (an Ongoing transaction is aborted first and
    /// the request answered CONCURRENT_TRANSACTIONS: the client retries), a new producer id
    /// once the epoch is exhausted, and KIP-360 re-initialization with the producer's
    /// current id and epoch.
    pub fn init_producer_id(
        &mut self,
        now: TimestampMs,
        req: &InitProducerIdRequest,
        token: ReplyToken,
    ) -> Vec<TxnOutput> {
        let mut out = Vec::new();
        let result = self.init_producer_id_inner(now, req, &mut out);
        let response = match result {
            Ok((producer_id, producer_epoch)) => InitProducerIdResponse {
                error_code: codes::NONE,
                producer_id,
                producer_epoch,
            },
            Err(e) => InitProducerIdResponse {
                error_code: e.code(),
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
            },
        };
        // The reply goes after the append (fencing: before the markers, as Kafka answers
        // once the PrepareAbort record is written).
        let at = out
            .iter()
            .position(|o| matches!(o, TxnOutput::WriteMarkers(_)))
            .unwrap_or(out.len());
        out.insert(
            at,
            TxnOutput::Reply {
                token,
                response: TxnResponse::InitProducerId(response),
            },
        );
        out
    }

    fn init_producer_id_inner(
        &mut self,
        now: TimestampMs,
        req: &InitProducerIdRequest,
        out: &mut Vec<TxnOutput>,
    ) -> Result<(ProducerId, ProducerEpoch), TxnError> {
        let id = req.transactional_id.as_str();
        if id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        if req.transaction_timeout_ms <= 0
            || req.transaction_timeout_ms > self.config.transaction_max_timeout_ms
        {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        self.check_serving(id)?;
        let expected = match (req.producer_id.0, req.producer_epoch.0) {
            (-1, -1) => None,
            (p, e) if p >= 0 && e >= 0 => Some((req.producer_id, req.producer_epoch)),
            _ => return Err(TxnError::InvalidRequest),
        };
        let txn = match self.txns.get(id) {
            Some(t) => t.clone(),
            None => {
                let pid = (self.producer_ids)().ok_or(TxnError::CoordinatorLoadInProgress)?;
                Txn::new(TxnLogValue {
                    producer_id: pid,
                    previous_producer_id: NO_PRODUCER_ID,
                    next_producer_id: NO_PRODUCER_ID,
                    producer_epoch: NO_PRODUCER_EPOCH,
                    timeout_ms: req.transaction_timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    last_update_ms: now,
                    start_ms: TimestampMs(-1),
                    client_transaction_version: 0,
                })
            }
        };
        let v = &txn.value;
        if let Some((pid, epoch)) = expected {
            let valid = v.producer_epoch == NO_PRODUCER_EPOCH
                || pid == v.producer_id
                || (pid == v.previous_producer_id && exhausted(epoch));
            if !valid {
                return Err(TxnError::ProducerFenced);
            }
        }
        match v.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                let tv = self.config.transaction_version;
                self.fence_and_abort(id, tv, now, out);
                self.send_markers_or_complete(id, now, out);
                Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Dead | TxnState::PrepareEpochFence => Err(TxnError::ConcurrentTransactions),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut next = txn.clone();
                next.value.previous_producer_id = v.producer_id;
                if exhausted(v.producer_epoch)
                    && expected.is_none_or(|(_, e)| e == v.producer_epoch)
                {
                    // Kafka's prepareProducerIdRotation.
                    let pid = (self.producer_ids)().ok_or(TxnError::CoordinatorLoadInProgress)?;
                    next.value.producer_id = pid;
                    next.value.producer_epoch = ProducerEpoch(0);
                    next.last_epoch = if expected.is_some() {
                        v.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                } else {
                    // Kafka's prepareIncrementProducerEpoch.
                    let bumped = ProducerEpoch(v.producer_epoch.0.saturating_add(1));
                    match expected {
                        None => {
                            next.value.producer_epoch = bumped;
                            next.last_epoch = NO_PRODUCER_EPOCH;
                        }
                        Some((_, e))
                            if !exhausted(v.producer_epoch)
                                && (v.producer_epoch == NO_PRODUCER_EPOCH
                                    || e == v.producer_epoch) =>
                        {
                            next.value.producer_epoch = bumped;
                            next.last_epoch = v.producer_epoch;
                        }
                        Some((_, e)) if e == txn.last_epoch => {
                            // A retry of a bump whose answer was lost.
                        }
                        Some(_) => return Err(TxnError::ProducerFenced),
                    }
                }
                next.value.timeout_ms = req.transaction_timeout_ms;
                next.value.state = TxnState::Empty;
                next.value.partitions.clear();
                next.value.next_producer_id = NO_PRODUCER_ID;
                next.value.start_ms = TimestampMs(-1);
                next.value.last_update_ms = now;
                let answer = (next.value.producer_id, next.value.producer_epoch);
                self.persist(id, next, out);
                Ok(answer)
            }
        }
    }

    /// AddPartitionsToTxn (not verify-only) for one transaction: the partitions join the
    /// transaction (which starts, if it was not Ongoing) once the record is written.
    pub fn add_partitions_to_txn(
        &mut self,
        now: TimestampMs,
        req: &AddPartitionsToTxnRequest,
        token: ReplyToken,
    ) -> Vec<TxnOutput> {
        let mut out = Vec::new();
        let code = match self.add_partitions_inner(now, req, &mut out) {
            Ok(()) => codes::NONE,
            Err(e) => e.code(),
        };
        out.push(TxnOutput::Reply {
            token,
            response: TxnResponse::AddPartitionsToTxn(AddPartitionsToTxnResponse::all(
                &req.transactional_id,
                &req.partitions,
                code,
            )),
        });
        out
    }

    /// Verify-only AddPartitionsToTxn (KIP-890 part 1, asked by partition leaders before
    /// a transaction's first append): NONE for partitions in the Ongoing transaction,
    /// TRANSACTION_ABORTABLE for the others. Changes nothing.
    pub fn verify_partitions_in_txn(
        &self,
        req: &AddPartitionsToTxnRequest,
    ) -> AddPartitionsToTxnResponse {
        let id = &req.transactional_id;
        let check = || -> Result<&Txn, TxnError> {
            let txn = self.check_producer(id, req.producer_id, req.producer_epoch)?;
            if txn.value.state.is_prepare() {
                return Err(TxnError::ConcurrentTransactions);
            }
            Ok(txn)
        };
        match check() {
            Err(e) => AddPartitionsToTxnResponse::all(id, &req.partitions, e.code()),
            Ok(txn) => AddPartitionsToTxnResponse {
                transactional_id: id.clone(),
                results: req
                    .partitions
                    .iter()
                    .map(|tp| {
                        let in_txn = txn.value.state == TxnState::Ongoing
                            && txn.value.partitions.contains(tp);
                        let code = if in_txn {
                            codes::NONE
                        } else {
                            TxnError::TransactionAbortable.code()
                        };
                        (tp.clone(), code)
                    })
                    .collect(),
            },
        }
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
    pub fn add_offsets_to_txn(
        &mut self,
        now: TimestampMs,
        req: &AddOffsetsToTxnRequest,
        token: ReplyToken,
    ) -> Vec<TxnOutput> {
        let mut out = Vec::new();
        let code = if req.group_id.len() > STRING_BYTES_MAX {
            TxnError::InvalidRequest.code()
        } else {
            let tp = TopicPartition {
                topic: OFFSETS_TOPIC.to_owned(),
                partition: PartitionIndex(partition_for(
                    &req.group_id,
                    self.config.offsets_partitions,
                ) as i32),
            };
            let add = AddPartitionsToTxnRequest {
                transactional_id: req.transactional_id.clone(),
                producer_id: req.producer_id,
                producer_epoch: req.producer_epoch,
                partitions: vec![tp],
                client_transaction_version: req.client_transaction_version,
            };
            match self.add_partitions_inner(now, &add, &mut out) {
                Ok(()) => codes::NONE,
                Err(e) => e.code(),
            }
        };
        out.push(TxnOutput::Reply {
            token,
            response: TxnResponse::AddOffsetsToTxn(AddOffsetsToTxnResponse { error_code: code }),
        });
        out
    }

    fn add_partitions_inner(
        &mut self,
        now: TimestampMs,
        req: &AddPartitionsToTxnRequest,
        out: &mut Vec<TxnOutput>,
    ) -> Result<(), TxnError> {
        let id = req.transactional_id.as_str();
        let partitions = &req.partitions;
        if id.is_empty()
            || partitions.len() > TXN_PARTITIONS_MAX
            || partitions
                .iter()
                .any(|tp| tp.topic.len() > STRING_BYTES_MAX)
        {
            return Err(TxnError::InvalidRequest);
        }
        let txn = self.check_producer(id, req.producer_id, req.producer_epoch)?;
        let v = &txn.value;
        match v.state {
            TxnState::PrepareCommit
            | TxnState::PrepareAbort
            | TxnState::Dead
            | TxnState::PrepareEpochFence => return Err(TxnError::ConcurrentTransactions),
            TxnState::Ongoing if partitions.iter().all(|tp| v.partitions.contains(tp)) => {
                return Ok(());
            }
            _ => {}
        }
        let mut next = txn.clone();
        next.value.partitions.extend(partitions.iter().cloned());
        if next.value.partitions.len() > TXN_PARTITIONS_MAX {
            return Err(TxnError::InvalidRequest);
        }
        if v.state != TxnState::Ongoing {
            next.value.start_ms = now;
        }
        next.value.previous_producer_id = v.producer_id;
        next.value.state = TxnState::Ongoing;
        next.value.last_update_ms = now;
        next.value.client_transaction_version = req.client_transaction_version;
        self.persist(id, next, out);
        Ok(())
    }

    /// EndTxn: commit or abort. The Prepare record is written, the client answered, then
    /// the markers asked for. Under transaction version 2 (EndTxn v5) every end bumps the
    /// epoch and the answer carries the epoch (or, once exhausted, the new producer id) to
    /// use next; a retry of an end already done is answered as Kafka does.
    pub fn end_txn(
        &mut self,
        now: TimestampMs,
        req: &EndTxnRequest,
        token: ReplyToken,
    ) -> Vec<TxnOutput> {
        let mut out = Vec::new();
        let response = match self.end_decision(now, req) {
            Err(e) => EndTxnResponse {
                error_code: e.code(),
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
            },
            Ok(EndDecision::Done(producer_id, producer_epoch)) => EndTxnResponse {
                error_code: codes::NONE,
                producer_id,
                producer_epoch,
            },
            Ok(EndDecision::Prepare(txn)) => {
                let v = &txn.value;
                let (producer_id, producer_epoch) = if req.client_transaction_version < 2 {
                    (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
                } else if v.next_producer_id != NO_PRODUCER_ID {
                    // TV2 epoch exhaustion: the client continues with the new id at epoch 0.
                    (v.next_producer_id, ProducerEpoch(0))
                } else {
                    (v.producer_id, v.producer_epoch)
                };
                self.persist(&req.transactional_id, txn, &mut out);
                out.push(TxnOutput::Reply {
                    token,
                    response: TxnResponse::EndTxn(EndTxnResponse {
                        error_code: codes::NONE,
                        producer_id,
                        producer_epoch,
                    }),
                });
                self.send_markers_or_complete(&req.transactional_id, now, &mut out);
                return out;
            }
        };
        out.push(TxnOutput::Reply {
            token,
            response: TxnResponse::EndTxn(response),
        });
        out
    }

    fn end_decision(
        &mut self,
        now: TimestampMs,
        req: &EndTxnRequest,
    ) -> Result<EndDecision, TxnError> {
        // Owned: a new producer id may be taken below.
        let txn = self.txn_of(&req.transactional_id)?.clone();
        let v = &txn.value;
        let epoch = req.producer_epoch;
        let req_v2 = req.client_transaction_version >= 2;
        let same_epoch = epoch == v.producer_epoch;
        // Transaction version 2 (Kafka chooses by the request's version): every end bumps
        // the epoch, so a retry carries the epoch before the bump — or, when that bump
        // overflowed into a new producer id, the old id at its last epoch.
        // Unlike Kafka, a retry must also find the end it retries: one of transaction
        // version 2 (which bumped). Otherwise a fenced TV2 producer one epoch behind a TV1
        // producer's commit would be answered NONE for a transaction that was not its own.
        let bumped = v.client_transaction_version >= 2;
        let retry_on_overflow = req_v2
            && bumped
            && v.previous_producer_id == req.producer_id
            && epoch.0 == i16::MAX - 1
            && v.producer_epoch.0 == 0;
        let retry_on_bump =
            req_v2 && bumped && i32::from(v.producer_epoch.0) == i32::from(epoch.0) + 1;
        let is_retry = if req_v2 {
            retry_on_bump || retry_on_overflow
        } else {
            same_epoch
        };
        let valid_epoch = match v.state {
            _ if !req_v2 => same_epoch,
            TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
            TxnState::CompleteCommit | TxnState::CompleteAbort => is_retry || same_epoch,
            _ => same_epoch,
        };
        if v.producer_id != req.producer_id && !retry_on_overflow {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(TxnError::ProducerFenced);
        }
        // TV1 answers carry no producer id or epoch (the client keeps its own).
        let done = if req_v2 {
            EndDecision::Done(v.producer_id, v.producer_epoch)
        } else {
            EndDecision::Done(NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
        };
        // TV2 may abort when the client is unsure whether a transaction runs (Kafka's
        // table: Empty/Complete* with the current epoch bump the epoch).
        let empty_abort = !req.commit && req_v2 && same_epoch;
        match (v.state, req.commit) {
            (TxnState::Ongoing, _) => {}
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if is_retry => {
                return Ok(done);
            }
            (TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Empty, false)
                if empty_abort => {}
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                return Err(TxnError::ConcurrentTransactions);
            }
            _ => return Err(TxnError::InvalidTxnState),
        }
        // Kafka's prepareAbortOrCommit.
        let next_producer_id = if req_v2 && exhausted(v.producer_epoch) {
            (self.producer_ids)().ok_or(TxnError::CoordinatorLoadInProgress)?
        } else {
            NO_PRODUCER_ID
        };
        let mut next = txn.clone();
        if req_v2 {
            let cur = v.producer_epoch.0;
            next.value.producer_epoch = ProducerEpoch(if cur == i16::MAX { cur } else { cur + 1 });
            next.last_epoch = v.producer_epoch;
        }
        if v.state != TxnState::Ongoing {
            next.value.start_ms = now;
        }
        next.value.previous_producer_id = v.producer_id;
        next.value.next_producer_id = next_producer_id;
        next.value.state = if req.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        next.value.last_update_ms = now;
        next.value.client_transaction_version = req.client_transaction_version;
        Ok(EndDecision::Prepare(next))
    }
}
