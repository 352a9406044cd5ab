//! The cleaner's view of transactions (Kafka's `CleanedTransactionMetadata`):
//! which data batches belong to aborted transactions, and when a
//! transaction's marker may go.
//!
//! A clean only covers segments below the last stable offset, so every
//! transaction with data there is decided: it is aborted when the log's
//! aborted-transaction index ([`crate::txn_index`]) holds an entry for its
//! producer whose `[first offset, marker offset)` covers the batch (a
//! producer has at most one transaction open at a time), else committed.
//!
//! - Records of aborted transactions are dropped by every clean that reads
//!   them; they are never entered into the offset map (so they never hide an
//!   older committed value of their key).
//! - Records of committed transactions are cleaned like any other record.
//! - A COMMIT or ABORT marker is kept while the same pass read a batch of its
//!   transaction (a producer's batches since its previous marker), so a
//!   marker never goes before its data does. A marker with no data left
//!   behind it is *discardable*: the first clean that finds it so rewrites
//!   its batch with the delete horizon (attributes bit 6, `baseTimestamp` =
//!   clean time + `delete.retention.ms`, record timestamp deltas re-based so
//!   record timestamps do not change, KIP-534), and a clean at or after that
//!   horizon removes it — so a consumer that read the data had
//!   `delete.retention.ms` to read the marker too. A discardable marker that
//!   is its producer's last batch of the cleaned range stays (it carries the
//!   producer's latest epoch).
//! - Control batches of other types are kept.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use samsa_model::batch::BatchHeader;
use samsa_model::control::TxnMarker;
use samsa_model::Offset;

use crate::txn_index::AbortedTxn;

/// The aborted transactions a clean knows, by producer id and first offset.
#[derive(Debug, Default)]
pub(crate) struct AbortedRanges {
    by_producer: BTreeMap<(i64, i64), i64>,
}

impl AbortedRanges {
    pub fn new(entries: &[AbortedTxn]) -> Self {
        AbortedRanges {
            by_producer: entries
                .iter()
                .map(|e| {
                    (
                        (e.producer_id.get(), e.first_offset.get()),
                        e.last_offset.get(),
                    )
                })
                .collect(),
        }
    }

    /// Whether a transactional data batch `h` belongs to an aborted
    /// transaction.
    pub fn is_aborted(&self, h: &BatchHeader) -> bool {
        if !h.is_transactional() || h.is_control() {
            return false;
        }
        let pid = h.producer_id.get();
        let at = h.base_offset.get();
        self.by_producer
            .range((pid, i64::MIN)..=(pid, at))
            .next_back()
            .is_some_and(|(_, &marker)| at < marker)
    }
}

/// What becomes of a control batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MarkerFate {
    /// Copied as it is.
    Keep,
    /// Rewritten with this delete horizon.
    SetHorizon(i64),
    /// Removed from the log.
    Remove,
}

/// Pass 2's transaction state, carried across the groups of one clean.
#[derive(Debug)]
pub(crate) struct TxnCleaning {
    pub aborted: AbortedRanges,
    /// Producers with a transactional batch read since their last marker.
    open: HashSet<i64>,
    now: i64,
    delete_retention_ms: i64,
    /// The earliest delete horizon of a discardable marker this clean kept:
    /// a clean is due then even without new data.
    pub horizon_deadline: Option<i64>,
    /// ABORT markers this clean removed (their index entries go too).
    pub removed_aborts: BTreeSet<Offset>,
    /// Markers removed by this clean.
    pub markers_removed: u64,
}

impl TxnCleaning {
    pub fn new(aborted: AbortedRanges, now: i64, delete_retention_ms: i64) -> Self {
        TxnCleaning {
            aborted,
            open: HashSet::new(),
            now,
            delete_retention_ms: delete_retention_ms.max(0),
            horizon_deadline: None,
            removed_aborts: BTreeSet::new(),
            markers_removed: 0,
        }
    }

    /// A data batch was read; whether its records are to be discarded (it
    /// belongs to an aborted transaction).
    pub fn on_data(&mut self, h: &BatchHeader) -> bool {
        if !h.is_transactional() {
            return false;
        }
        self.open.insert(h.producer_id.get());
        self.aborted.is_aborted(h)
    }

    /// A control batch was read: `marker` is its COMMIT/ABORT (`None` for
    /// another control type or an unreadable one); `producers_last`: the
    /// batch is its producer's last one in the cleaned range.
    pub fn on_control(
        &mut self,
        h: &BatchHeader,
        marker: Option<TxnMarker>,
        producers_last: bool,
    ) -> MarkerFate {
        let Some(marker) = marker else {
            return MarkerFate::Keep;
        };
        if self.open.remove(&h.producer_id.get()) {
            return MarkerFate::Keep;
        }
        if !h.has_delete_horizon() {
            let horizon = self.now.saturating_add(self.delete_retention_ms);
            self.note_deadline(horizon);
            return MarkerFate::SetHorizon(horizon);
        }
        let horizon = h.base_timestamp.get();
        if horizon > self.now {
            self.note_deadline(horizon);
            return MarkerFate::Keep;
        }
        if producers_last {
            // Kept for its producer's epoch, with its horizon already past:
            // no later clean can remove it for time's sake, so it sets no
            // deadline (a past one would make every tick clean again).
            return MarkerFate::Keep;
        }
        if !marker.commit {
            self.removed_aborts.insert(h.base_offset);
        }
        self.markers_removed += 1;
        MarkerFate::Remove
    }

    fn note_deadline(&mut self, horizon: i64) {
        self.horizon_deadline = Some(self.horizon_deadline.map_or(horizon, |d| d.min(horizon)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use samsa_model::batch::{BatchBuilder, NewRecord};
    use samsa_model::{ProducerEpoch, ProducerId, TimestampMs};

    fn header(pid: i64, base: i64, txn: bool, control: bool) -> BatchHeader {
        let b = BatchBuilder::new()
            .transactional(txn)
            .control(control)
            .base_offset(Offset(base))
            .producer(
                ProducerId(pid),
                ProducerEpoch(0),
                if control { -1 } else { 0 },
            )
            .record(NewRecord::new(TimestampMs(5), Some(b"k"), Some(b"v")))
            .build()
            .expect("build");
        BatchHeader::parse(&b).expect("parse")
    }

    fn aborted(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(pid),
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(last + 1),
        }
    }

    #[test]
    fn a_batch_is_aborted_only_inside_its_producers_aborted_range() {
        let r = AbortedRanges::new(&[aborted(1, 10, 20), aborted(2, 5, 8)]);
        assert!(r.is_aborted(&header(1, 10, true, false)));
        assert!(r.is_aborted(&header(1, 19, true, false)));
        assert!(!r.is_aborted(&header(1, 9, true, false)));
        assert!(!r.is_aborted(&header(1, 21, true, false)));
        assert!(
            !r.is_aborted(&header(1, 12, false, false)),
            "not transactional"
        );
        assert!(!r.is_aborted(&header(3, 12, true, false)), "other producer");
        assert!(r.is_aborted(&header(2, 7, true, false)));
    }

    #[test]
    fn a_marker_goes_only_after_its_data_and_its_delete_horizon() {
        let marker = Some(TxnMarker {
            commit: false,
            coordinator_epoch: samsa_model::CoordinatorEpoch(0),
        });
        let mut c = TxnCleaning::new(AbortedRanges::new(&[aborted(1, 0, 1)]), 100, 50);
        assert!(c.on_data(&header(1, 0, true, false)));
        assert_eq!(
            c.on_control(&header(1, 1, true, true), marker, false),
            MarkerFate::Keep
        );
        // Next pass: no data left, so the horizon is set first.
        let mut c = TxnCleaning::new(AbortedRanges::new(&[aborted(1, 0, 1)]), 100, 50);
        assert_eq!(
            c.on_control(&header(1, 1, true, true), marker, false),
            MarkerFate::SetHorizon(150)
        );
        assert_eq!(c.horizon_deadline, Some(150));
    }
}
