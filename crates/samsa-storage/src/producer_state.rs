//! Idempotent-producer state of one partition (Kafka's `ProducerStateManager`):
//! for each producer id its epoch, the sequence ranges and offsets of its
//! last five batches, and the timestamp of its last batch.
//!
//! The table belongs to the log ([`crate::PartitionLog`]) and changes only
//! under its writer lock, with the batches it describes:
//!
//! - a leader's append ([`crate::PartitionLog::append`]) first *checks* a
//!   batch with a producer id (Kafka's client-origin rules, below) and then
//!   *records* it once it is written;
//! - a follower's [`crate::PartitionLog::append_replicated`] records every
//!   batch it stores without checking (Kafka's replication origin: the leader
//!   already decided), so the table is current on every replica and a
//!   promoted follower needs no rebuild;
//! - opening and truncating the log load the newest usable snapshot
//!   ([`crate::producer_snapshot`]) and replay the batch headers after it.
//!
//! Rules (Kafka's, for a batch from a client):
//! - an epoch older than the producer's current one is fenced
//!   (INVALID_PRODUCER_EPOCH, [`StorageError::InvalidProducerEpoch`]);
//! - a batch equal (epoch, first and last sequence) to one of the last five
//!   is a duplicate: nothing is appended, and it is answered with the
//!   original batch's base and last offset;
//! - a newer epoch must start at sequence 0; within an epoch a batch must
//!   continue at `last sequence + 1` (wrapping to 0 after `i32::MAX`);
//!   otherwise OUT_OF_ORDER_SEQUENCE_NUMBER
//!   ([`StorageError::OutOfOrderSequence`]);
//! - an unknown producer (never seen, expired, or whose state was lost) may
//!   start at any sequence; a known one whose epoch a transaction marker
//!   started (no batch of it yet) starts at 0;
//! - transactional batches get the same checks; a non-transactional batch
//!   from a producer with an open transaction here is INVALID_TXN_STATE.
//!
//! Transactions (KIP-98, Kafka's `ProducerAppendInfo`): the first
//! transactional batch of a producer opens its transaction at its base
//! offset (the *first offset*); a transaction marker
//! ([`samsa_model::control`]) closes it ([`ProducerStateTable::complete_txn`]),
//! returning the [`CompletedTxn`] the log's aborted-transaction index needs.
//! The smallest first offset of the open transactions is the log's *first
//! unstable offset* (the last stable offset is the smaller of it and the high
//! watermark). A leader's marker is checked first
//! ([`ProducerStateTable::check_marker`]): an epoch older than the
//! producer's is INVALID_PRODUCER_EPOCH, a coordinator epoch older than the
//! last marker's TRANSACTION_COORDINATOR_FENCED; a newer producer epoch
//! (KIP-890's bump at every commit/abort) becomes the producer's epoch, and
//! its next batch starts at sequence 0. A producer with an open transaction
//! is never expired nor evicted.
//!
//! Producers whose last batch is older than `producer.id.expiration.ms` are
//! forgotten by [`ProducerStateTable::expire`] (the broker calls it every
//! `producer.id.expiration.check.interval.ms`). `transactional.id.expiration.ms`
//! is the (future) transaction coordinator's business, not the log's.

use std::collections::{BTreeMap, HashMap, VecDeque};

use samsa_model::batch::BatchHeader;
use samsa_model::control::TxnMarker;
use samsa_model::{CoordinatorEpoch, Offset, ProducerEpoch, ProducerId};

use crate::error::StorageError;

/// Batches remembered per producer for duplicate detection (Kafka keeps 5, the
/// largest `max.in.flight.requests.per.connection` idempotence allows).
pub const BATCHES_PER_PRODUCER_MAX: usize = 5;
/// Producers tracked per partition; the least recently used is forgotten first.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

/// One stored batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: Offset,
    /// `lastOffsetDelta` of the batch (its last offset is `base + delta`).
    pub last_offset_delta: i32,
}

impl BatchMeta {
    /// The batch's last offset.
    pub fn last_offset(&self) -> Offset {
        Offset(
            self.base_offset
                .get()
                .saturating_add(i64::from(self.last_offset_delta)),
        )
    }
}

/// What the table knows of one producer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: ProducerEpoch,
    /// The last batches of `epoch`, oldest first, at most
    /// [`BATCHES_PER_PRODUCER_MAX`].
    pub batches: VecDeque<BatchMeta>,
    /// `maxTimestamp` of the producer's last batch (for expiration).
    pub last_timestamp: i64,
    /// Epoch of the coordinator that wrote the producer's last marker (-1:
    /// none yet).
    pub coordinator_epoch: CoordinatorEpoch,
    /// First offset of the producer's open transaction in this partition.
    pub current_txn_first_offset: Option<Offset>,
    /// Recency for eviction beyond [`PRODUCERS_PER_PARTITION_MAX`].
    last_used: u64,
}

impl ProducerEntry {
    /// The last sequence number stored for the producer (-1 if none).
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }
}

/// A transaction a marker closed: Kafka's `CompletedTxn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: ProducerId,
    /// The transaction's first offset here (the marker's own offset when it
    /// wrote nothing to this partition).
    pub first_offset: Offset,
    /// The marker's offset.
    pub last_offset: Offset,
    pub aborted: bool,
}

/// What a leader does with a batch that carries a producer id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqCheck {
    /// Append it (then [`ProducerStateTable::record`] it).
    Append,
    /// Already stored at these offsets: append nothing.
    Duplicate { base: Offset, last: Offset },
}

/// The producer table of one partition.
#[derive(Clone, Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset → producer id.
    ongoing: BTreeMap<Offset, ProducerId>,
    clock: u64,
}

fn last_seq(header: &BatchHeader) -> i32 {
    header.base_sequence.wrapping_add(header.last_offset_delta) & i32::MAX
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (next == 0 && last == i32::MAX)
}

impl ProducerStateTable {
    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The entry of `producer_id`, if tracked.
    pub fn get(&self, producer_id: ProducerId) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id.get())
    }

    /// Every entry, least recently used first (the order snapshots keep).
    pub fn entries_by_recency(&self) -> Vec<(ProducerId, &ProducerEntry)> {
        let mut all: Vec<(ProducerId, &ProducerEntry)> = self
            .producers
            .iter()
            .map(|(id, e)| (ProducerId(*id), e))
            .collect();
        all.sort_by_key(|(_, e)| e.last_used);
        all
    }

    /// Decides what a leader does with `header` (a client's batch; producer
    /// id >= 0). See the module docs for the rules.
    pub fn check(&self, header: &BatchHeader) -> Result<SeqCheck, StorageError> {
        let producer_id = header.producer_id;
        let epoch = header.producer_epoch;
        let first = header.base_sequence;
        let Some(entry) = self.producers.get(&producer_id.get()) else {
            return Ok(SeqCheck::Append);
        };
        if epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if epoch > entry.epoch {
            if first != 0 {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id,
                    epoch,
                    sequence: first,
                    expected: 0,
                });
            }
            return Ok(SeqCheck::Append);
        }
        if !header.is_transactional() && entry.current_txn_first_offset.is_some() {
            return Err(StorageError::InvalidTxnState { producer_id });
        }
        let last = last_seq(header);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(SeqCheck::Duplicate {
                base: dup.base_offset,
                last: dup.last_offset(),
            });
        }
        match entry.batches.back() {
            Some(prev) if !in_sequence(prev.last_seq, first) => {
                Err(StorageError::OutOfOrderSequence {
                    producer_id,
                    epoch,
                    sequence: first,
                    expected: prev.last_seq.wrapping_add(1) & i32::MAX,
                })
            }
            // The epoch began with a marker: its first batch starts at 0.
            None if first != 0 => Err(StorageError::OutOfOrderSequence {
                producer_id,
                epoch,
                sequence: first,
                expected: 0,
            }),
            _ => Ok(SeqCheck::Append),
        }
    }

    /// The epoch check alone, for a batch a coordinator writes for a producer
    /// (no sequence): an epoch older than the producer's is refused.
    pub fn check_epoch(&self, header: &BatchHeader) -> Result<(), StorageError> {
        match self.producers.get(&header.producer_id.get()) {
            Some(entry) if header.producer_epoch < entry.epoch => {
                Err(StorageError::InvalidProducerEpoch {
                    producer_id: header.producer_id,
                    epoch: header.producer_epoch,
                    current: entry.epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks a marker a leader is about to write for `producer_id` (see
    /// the module docs).
    pub fn check_marker(
        &self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        coordinator_epoch: CoordinatorEpoch,
    ) -> Result<(), StorageError> {
        let Some(entry) = self.producers.get(&producer_id.get()) else {
            return Ok(());
        };
        if epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(StorageError::CoordinatorFenced {
                producer_id,
                coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records a stored marker (`header` as stored) of a transaction: the
    /// producer's open transaction here, if any, is closed. Returns what
    /// was closed (Kafka's `appendEndTxnMarker`).
    pub fn complete_txn(&mut self, header: &BatchHeader, marker: TxnMarker) -> CompletedTxn {
        let producer_id = header.producer_id;
        let entry = self.touch(
            producer_id,
            header.producer_epoch,
            header.max_timestamp.get(),
        );
        entry.coordinator_epoch = marker.coordinator_epoch;
        let first = entry.current_txn_first_offset.take();
        if let Some(first) = first {
            self.ongoing.remove(&first);
        }
        CompletedTxn {
            producer_id,
            first_offset: first.unwrap_or(header.base_offset),
            last_offset: header.base_offset,
            aborted: !marker.commit,
        }
    }

    /// [`Self::complete_txn`] while rebuilding after a snapshot at `from`:
    /// only a marker at or after `from` is applied.
    pub fn replay_marker(
        &mut self,
        from: Offset,
        header: &BatchHeader,
        marker: TxnMarker,
    ) -> Option<CompletedTxn> {
        (header.base_offset >= from).then(|| self.complete_txn(header, marker))
    }

    /// The smallest first offset of the open transactions (Kafka's first
    /// unstable offset), `None` when none is open.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        self.ongoing.keys().next().copied()
    }

    /// The open transactions: (producer id, first offset), oldest first.
    pub fn ongoing_txns(&self) -> Vec<(ProducerId, Offset)> {
        self.ongoing.iter().map(|(o, p)| (*p, *o)).collect()
    }

    /// The entry of `producer_id` made current (created, or moved to a newer
    /// `epoch`, which forgets the older epoch's batches).
    fn touch(
        &mut self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        timestamp: i64,
    ) -> &mut ProducerEntry {
        self.clock += 1;
        let clock = self.clock;
        let entry = self
            .producers
            .entry(producer_id.get())
            .or_insert(ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp: timestamp,
                coordinator_epoch: CoordinatorEpoch(-1),
                current_txn_first_offset: None,
                last_used: clock,
            });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_used = clock;
        entry.last_timestamp = timestamp;
        entry
    }

    /// Forgets the least recently used producer without an open
    /// transaction once more than [`PRODUCERS_PER_PARTITION_MAX`] are tracked.
    fn evict(&mut self) {
        if self.producers.len() <= PRODUCERS_PER_PARTITION_MAX {
            return;
        }
        if let Some(oldest) = self
            .producers
            .iter()
            .filter(|(_, e)| e.current_txn_first_offset.is_none())
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| *k)
        {
            self.producers.remove(&oldest);
        }
    }

    /// Records a stored batch (`header` as stored: its base offset is the
    /// assigned one). Batches without a producer id and control batches are
    /// ignored. A batch of another epoch than the producer's current one
    /// (newer from a client; anything from replication) starts the epoch
    /// afresh.
    pub fn record(&mut self, header: &BatchHeader) {
        if header.producer_id.get() < 0 || header.is_control() {
            return;
        }
        self.insert_batch(
            header.producer_id,
            header.producer_epoch,
            BatchMeta {
                first_seq: header.base_sequence,
                last_seq: last_seq(header),
                base_offset: header.base_offset,
                last_offset_delta: header.last_offset_delta,
            },
            header.max_timestamp.get(),
        );
        if header.is_transactional() {
            if let Some(e) = self.producers.get_mut(&header.producer_id.get()) {
                if e.current_txn_first_offset.is_none() {
                    e.current_txn_first_offset = Some(header.base_offset);
                    self.ongoing.insert(header.base_offset, header.producer_id);
                }
            }
        }
    }

    /// Replays a stored batch while rebuilding after a snapshot at `from`
    /// (which already holds every batch below `from`): recorded only if it
    /// ends at or after `from`.
    pub fn replay(&mut self, from: Offset, header: &BatchHeader) {
        if header.last_offset() >= from {
            self.record(header);
        }
    }

    /// Adds `batch` as the producer's newest (used by [`Self::record`] and by
    /// snapshot loading).
    pub(crate) fn insert_batch(
        &mut self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        batch: BatchMeta,
        timestamp: i64,
    ) {
        let entry = self.touch(producer_id, epoch, timestamp);
        if entry.batches.len() == BATCHES_PER_PRODUCER_MAX {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
        self.evict();
    }

    /// Restores a snapshot entry's transaction fields (snapshot loading,
    /// after its batches, if any, were inserted).
    pub(crate) fn restore_entry(
        &mut self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        timestamp: i64,
        coordinator_epoch: CoordinatorEpoch,
        txn_first_offset: Option<Offset>,
    ) {
        let entry = self.touch(producer_id, epoch, timestamp);
        entry.coordinator_epoch = coordinator_epoch;
        entry.current_txn_first_offset = txn_first_offset;
        if let Some(first) = txn_first_offset {
            self.ongoing.insert(first, producer_id);
        }
        self.evict();
    }

    /// Forgets producers whose last batch timestamp is `expiration_ms` or
    /// more before `now_ms` (Kafka's `producer.id.expiration.ms` rule).
    /// Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.producers.clear();
        self.ongoing.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use samsa_model::batch::{BatchBuilder, NewRecord};
    use samsa_model::TimestampMs;

    fn header(pid: i64, epoch: i16, seq: i32, records: usize, base: i64) -> BatchHeader {
        let mut builder = BatchBuilder::new().producer(ProducerId(pid), ProducerEpoch(epoch), seq);
        for _ in 0..records {
            builder.push(NewRecord::new(TimestampMs(1), None, Some(b"v")));
        }
        let bytes = builder.build().unwrap();
        BatchHeader {
            base_offset: Offset(base),
            ..BatchHeader::parse(&bytes).unwrap()
        }
    }

    fn dup(base: i64, last: i64) -> SeqCheck {
        SeqCheck::Duplicate {
            base: Offset(base),
            last: Offset(last),
        }
    }

    #[test]
    fn sequences_continue_duplicates_return_original_offsets() {
        let mut s = ProducerStateTable::default();
        let a = header(7, 0, 0, 3, 100);
        assert_eq!(s.check(&a).unwrap(), SeqCheck::Append);
        s.record(&a);
        let b = header(7, 0, 3, 2, 103);
        assert_eq!(s.check(&b).unwrap(), SeqCheck::Append);
        s.record(&b);
        assert_eq!(s.check(&a).unwrap(), dup(100, 102));
        assert_eq!(s.check(&b).unwrap(), dup(103, 104));
        let gap = header(7, 0, 9, 1, 0);
        assert!(matches!(
            s.check(&gap),
            Err(StorageError::OutOfOrderSequence { expected: 5, .. })
        ));
    }

    #[test]
    fn epochs_fence_and_reset() {
        let mut s = ProducerStateTable::default();
        s.record(&header(7, 3, 0, 1, 0));
        assert!(matches!(
            s.check(&header(7, 2, 1, 1, 0)),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            s.check(&header(7, 4, 5, 1, 0)),
            Err(StorageError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(s.check(&header(7, 4, 0, 1, 0)).unwrap(), SeqCheck::Append);
        // An unknown producer may continue anywhere (its state may have expired).
        assert_eq!(s.check(&header(8, 0, 42, 1, 0)).unwrap(), SeqCheck::Append);
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut s = ProducerStateTable::default();
        for i in 0..6 {
            s.record(&header(1, 0, i, 1, i64::from(i)));
        }
        // The first batch fell out of the window: it now looks out of order.
        assert!(s.check(&header(1, 0, 0, 1, 0)).is_err());
        assert_eq!(s.check(&header(1, 0, 5, 1, 0)).unwrap(), dup(5, 5));
    }

    #[test]
    fn sequences_wrap_after_i32_max() {
        let mut s = ProducerStateTable::default();
        s.record(&header(1, 0, i32::MAX, 1, 0));
        assert_eq!(s.check(&header(1, 0, 0, 1, 1)).unwrap(), SeqCheck::Append);
    }

    #[test]
    fn idle_producers_expire() {
        let mut s = ProducerStateTable::default();
        s.record(&header(1, 0, 0, 1, 0)); // timestamp 1
        assert_eq!(s.expire(1_000, 1_000), 0, "999 ms idle");
        assert_eq!(s.expire(1_001, 1_000), 1);
        assert!(s.is_empty());
        assert_eq!(s.check(&header(1, 0, 7, 1, 1)).unwrap(), SeqCheck::Append);
    }

    #[test]
    fn the_least_recently_used_producer_is_forgotten_first() {
        let mut s = ProducerStateTable::default();
        for pid in 0..=PRODUCERS_PER_PARTITION_MAX as i64 {
            s.record(&header(pid, 0, 0, 1, pid));
        }
        assert_eq!(s.len(), PRODUCERS_PER_PARTITION_MAX);
        assert!(s.get(ProducerId(0)).is_none());
        assert!(s.get(ProducerId(1)).is_some());
    }
}
