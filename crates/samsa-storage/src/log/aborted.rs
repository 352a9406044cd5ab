//! The aborted transactions a log keeps in memory: the newest ones only.
//!
//! Every aborted transaction is in the `.txnindex` file of the segment
//! holding its ABORT marker ([`crate::txn_index`]). Memory holds the entries
//! whose marker is at or after a watermark `from` — all of them on open — and
//! when more than [`ABORTED_TXNS_IN_MEMORY_MAX`] are held, the oldest are
//! dropped from memory (raising `from`), never those of the active segment
//! (whose file a truncation rewrites from memory). So memory is bounded by
//! the limit plus the active segment's aborts, whatever the log's length (a
//! compacted topic keeps its segments for ever).
//!
//! A read that starts below `from` (a read_committed consumer far behind, or
//! the cleaner, which rewrites from the first segment) reads the files of
//! the segments from the one holding its start offset up to `from`, outside
//! the log's locks, and stops as soon as Kafka's `collectAbortedTxns` would
//! (an entry stable past the read's upper offset, or the count limit). A
//! segment deleted meanwhile has no file any more: its records are gone too.

use std::path::PathBuf;

use samsa_model::Offset;

use super::{read_lock, PartitionLog};
use crate::error::StorageError;
use crate::txn_index::{self, AbortedTxn};

/// Aborted transactions kept in memory per log, besides the active
/// segment's (about 32 bytes each).
pub const ABORTED_TXNS_IN_MEMORY_MAX: usize = 10_000;

/// The in-memory tail of the log's aborted transactions.
#[derive(Debug, Default)]
pub(crate) struct AbortedCache {
    /// Ascending marker offset: every entry whose marker is at or after
    /// `from`.
    pub entries: Vec<AbortedTxn>,
    pub from: Offset,
}

impl AbortedCache {
    pub fn new(entries: Vec<AbortedTxn>) -> Self {
        AbortedCache {
            entries,
            from: Offset(0),
        }
    }

    /// Drop the oldest entries beyond `max`, keeping those at or after
    /// `active_base`.
    pub fn evict(&mut self, max: usize, active_base: Offset) {
        if self.entries.len() <= max {
            return;
        }
        let keep = (max / 2).max(1);
        let cut = (self.entries.len() - keep).min(
            self.entries
                .partition_point(|e| e.last_offset < active_base),
        );
        if cut == 0 {
            return;
        }
        if let Some(last) = self.entries.get(cut - 1) {
            self.from = self.from.max(last.last_offset.plus(1));
        }
        self.entries.drain(..cut);
    }
}

impl PartitionLog {
    /// Test hook: lower the in-memory limit (default
    /// [`ABORTED_TXNS_IN_MEMORY_MAX`]).
    #[doc(hidden)]
    pub fn set_aborted_in_memory_max(&self, max: usize) {
        self.aborted_max
            .store(max.max(1), std::sync::atomic::Ordering::Relaxed);
        let mut st = super::write_lock(&self.state);
        let base = st.active.base();
        st.aborted.evict(max.max(1), base);
    }

    /// Test hook: how many aborted transactions memory holds.
    #[doc(hidden)]
    pub fn aborted_in_memory(&self) -> usize {
        read_lock(&self.state).aborted.entries.len()
    }

    pub(super) fn aborted_max(&self) -> usize {
        self.aborted_max.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Kafka's `collectAbortedTxns` over the whole log: the aborted
    /// transactions whose marker is at or after `from` and whose first
    /// offset is below `upper`, at most `count_max`, ascending marker offset;
    /// from memory, and from the `.txnindex` files below the memory's
    /// watermark.
    pub(super) fn collect_aborted(
        &self,
        from: Offset,
        upper: Offset,
        count_max: usize,
    ) -> Result<Vec<AbortedTxn>, StorageError> {
        let (files, below, memory) = {
            let st = read_lock(&self.state);
            if from >= st.aborted.from {
                return Ok(txn_index::collect(
                    &st.aborted.entries,
                    from,
                    upper,
                    count_max,
                ));
            }
            let below = st.aborted.from;
            let files: Vec<PathBuf> = st
                .sealed
                .iter()
                .chain(std::iter::once(&st.active))
                .filter(|s| s.meta.next_offset > from && s.base() < below)
                .map(|s| s.files.txn_index_path.clone())
                .collect();
            (files, below, st.aborted.entries.clone())
        };
        let mut all = Vec::new();
        for path in files {
            let entries = txn_index::read(&path)?;
            let mut done = false;
            for e in entries
                .into_iter()
                .filter(|e| e.last_offset >= from && e.last_offset < below)
            {
                done |= e.last_stable_offset >= upper;
                all.push(e);
            }
            if done || all.len() >= count_max.saturating_add(1) {
                break;
            }
        }
        all.extend(memory);
        Ok(txn_index::collect(&all, from, upper, count_max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use samsa_model::ProducerId;

    fn e(last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(1),
            first_offset: Offset(last - 1),
            last_offset: Offset(last),
            last_stable_offset: Offset(last + 1),
        }
    }

    #[test]
    fn eviction_keeps_the_newest_and_the_active_segments_entries() {
        let mut c = AbortedCache::new((1..=10).map(|i| e(i * 10)).collect());
        c.evict(4, Offset(1000));
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.from, Offset(81));
        let mut c = AbortedCache::new((1..=10).map(|i| e(i * 10)).collect());
        c.evict(4, Offset(35));
        assert_eq!(c.entries.first().map(|x| x.last_offset), Some(Offset(40)));
        assert_eq!(c.from, Offset(31));
    }
}
