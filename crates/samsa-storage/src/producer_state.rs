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
//!   start at any sequence.
//!
//! Producers whose last batch is older than `producer.id.expiration.ms` are
//! forgotten by [`ProducerStateTable::expire`] (the broker calls it every
//! `producer.id.expiration.check.interval.ms`). `transactional.id.expiration.ms`
//! is the (future) transaction coordinator's business, not the log's.

use std::collections::{HashMap, VecDeque};

use samsa_model::batch::BatchHeader;
use samsa_model::{Offset, ProducerEpoch, ProducerId};

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
    /// Recency for eviction beyond [`PRODUCERS_PER_PARTITION_MAX`].
    last_used: u64,
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
            _ => Ok(SeqCheck::Append),
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
        self.clock += 1;
        let clock = self.clock;
        let entry = self
            .producers
            .entry(producer_id.get())
            .or_insert(ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp: timestamp,
                last_used: clock,
            });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_used = clock;
        entry.last_timestamp = timestamp;
        if entry.batches.len() == BATCHES_PER_PRODUCER_MAX {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
        if self.producers.len() > PRODUCERS_PER_PARTITION_MAX {
            if let Some(oldest) = self
                .producers
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k)
            {
                self.producers.remove(&oldest);
            }
        }
    }

    /// Forgets producers whose last batch timestamp is `expiration_ms` or
    /// more before `now_ms` (Kafka's `producer.id.expiration.ms` rule).
    /// Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.producers.clear();
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
