//! Idempotent-producer state of one partition: each producer id's epoch and the
//! sequence ranges of its last five batches, to reject gaps and answer retried
//! batches with their original offsets.
//!
//! Rules (Kafka's): an older epoch is fenced (INVALID_PRODUCER_EPOCH); a newer
//! epoch must start at sequence 0 unless the producer is unknown; within an epoch
//! a batch must continue at `last_sequence + 1` (wrapping after `i32::MAX`); a
//! batch equal to one of the last five is a duplicate and gets its original base
//! offset. State is rebuilt from stored batch headers when a partition opens.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::error::ResponseError;
use samsa_model::batch::BatchHeader;

/// Batches remembered per producer for duplicate detection (Kafka keeps 5, the
/// largest `max.in.flight.requests.per.connection` idempotence allows).
pub const BATCHES_PER_PRODUCER_MAX: usize = 5;
/// Producers tracked per partition; the least recently used is forgotten first.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Clone, Debug)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    last_used: u64,
}

/// What to do with an incoming idempotent batch.
#[derive(Debug, PartialEq, Eq)]
pub enum SeqCheck {
    /// Append it.
    Append,
    /// Already stored: answer with this base offset, append nothing.
    Duplicate { base_offset: i64 },
    /// Refuse it.
    Reject(ResponseError, String),
}

/// The producer table of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, Entry>,
    clock: u64,
}

fn last_seq(header: &BatchHeader) -> i32 {
    header.base_sequence.wrapping_add(header.last_offset_delta) & i32::MAX
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (next == 0 && last == i32::MAX)
}

impl ProducerStates {
    /// Decides what to do with `header` (whose producer id is >= 0).
    pub fn check(&self, header: &BatchHeader) -> SeqCheck {
        let pid = header.producer_id.get();
        let epoch = header.producer_epoch.get();
        let first = header.base_sequence;
        let Some(entry) = self.producers.get(&pid) else {
            return SeqCheck::Append;
        };
        if epoch < entry.epoch {
            return SeqCheck::Reject(
                ResponseError::InvalidProducerEpoch,
                format!(
                    "Epoch {epoch} of producer {pid} is older than the current epoch {}",
                    entry.epoch
                ),
            );
        }
        if epoch > entry.epoch {
            if first != 0 {
                return SeqCheck::Reject(
                    ResponseError::OutOfOrderSequenceNumber,
                    format!("Invalid sequence number for new epoch of producer {pid}: {first} (expected 0)"),
                );
            }
            return SeqCheck::Append;
        }
        let last = last_seq(header);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return SeqCheck::Duplicate {
                base_offset: dup.base_offset,
            };
        }
        match entry.batches.back() {
            Some(prev) if !in_sequence(prev.last_seq, first) => SeqCheck::Reject(
                ResponseError::OutOfOrderSequenceNumber,
                format!(
                    "Out of order sequence number for producer {pid}: {first} (incoming), {} (current end)",
                    prev.last_seq
                ),
            ),
            _ => SeqCheck::Append,
        }
    }

    /// Records a stored batch (after an append, or while rebuilding).
    pub fn record(&mut self, header: &BatchHeader, base_offset: i64) {
        let pid = header.producer_id.get();
        if pid < 0 {
            return;
        }
        self.clock += 1;
        let clock = self.clock;
        let epoch = header.producer_epoch.get();
        let entry = self.producers.entry(pid).or_insert(Entry {
            epoch,
            batches: VecDeque::new(),
            last_used: clock,
        });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_used = clock;
        if entry.batches.len() == BATCHES_PER_PRODUCER_MAX {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: header.base_sequence,
            last_seq: last_seq(header),
            base_offset,
        });
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

    /// Forgets everything (after a truncation).
    pub fn clear(&mut self) {
        self.producers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use samsa_model::batch::{BatchBuilder, NewRecord};
    use samsa_model::{ProducerEpoch, ProducerId, TimestampMs};

    fn header(pid: i64, epoch: i16, seq: i32, records: usize) -> BatchHeader {
        let mut builder = BatchBuilder::new().producer(ProducerId(pid), ProducerEpoch(epoch), seq);
        for _ in 0..records {
            builder.push(NewRecord::new(TimestampMs(1), None, Some(b"v")));
        }
        let bytes = builder.build().unwrap();
        BatchHeader::parse(&bytes).unwrap()
    }

    #[test]
    fn sequences_continue_duplicates_return_original_offsets() {
        let mut s = ProducerStates::default();
        let a = header(7, 0, 0, 3);
        assert_eq!(s.check(&a), SeqCheck::Append);
        s.record(&a, 100);
        let b = header(7, 0, 3, 2);
        assert_eq!(s.check(&b), SeqCheck::Append);
        s.record(&b, 103);
        assert_eq!(s.check(&a), SeqCheck::Duplicate { base_offset: 100 });
        assert_eq!(s.check(&b), SeqCheck::Duplicate { base_offset: 103 });
        let gap = header(7, 0, 9, 1);
        assert!(matches!(
            s.check(&gap),
            SeqCheck::Reject(ResponseError::OutOfOrderSequenceNumber, _)
        ));
    }

    #[test]
    fn epochs_fence_and_reset() {
        let mut s = ProducerStates::default();
        s.record(&header(7, 3, 0, 1), 0);
        assert!(matches!(
            s.check(&header(7, 2, 1, 1)),
            SeqCheck::Reject(ResponseError::InvalidProducerEpoch, _)
        ));
        assert!(matches!(
            s.check(&header(7, 4, 5, 1)),
            SeqCheck::Reject(ResponseError::OutOfOrderSequenceNumber, _)
        ));
        assert_eq!(s.check(&header(7, 4, 0, 1)), SeqCheck::Append);
        // An unknown producer may continue anywhere (its state may predate a restart).
        assert_eq!(s.check(&header(8, 0, 42, 1)), SeqCheck::Append);
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..6 {
            s.record(&header(1, 0, i, 1), i as i64);
        }
        // The first batch fell out of the window: it now looks out of order.
        assert!(matches!(s.check(&header(1, 0, 0, 1)), SeqCheck::Reject(..)));
        assert_eq!(
            s.check(&header(1, 0, 5, 1)),
            SeqCheck::Duplicate { base_offset: 5 }
        );
    }
}
