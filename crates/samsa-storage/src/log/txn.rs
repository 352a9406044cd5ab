//! The log's side of transactions (KIP-98): the leader's marker append,
//! recording stored batches in the producer state (which opens and closes
//! transactions), the first unstable offset (for the last stable offset),
//! and the aborted-transaction index ([`crate::txn_index`]: its format,
//! crash behaviour and how open rebuilds it).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use samsa_model::batch::{self, BatchHeader};
use samsa_model::control::{self, TxnMarker};
use samsa_model::{CoordinatorEpoch, LeaderEpoch, Offset, ProducerEpoch, ProducerId, TimestampMs};

use super::{
    lock, read_lock, write_lock, AppendInfo, Frame, LogState, PartitionLog, Pending, ProducerCheck,
    Writer,
};
use crate::error::StorageError;
use crate::producer_state::ProducerEntry;
use crate::segment::SegmentFiles;
use crate::txn_index::{self, AbortedTxn};
use crate::verification::{TxnVerification, VerificationGuard};

/// Aborted transactions one [`PartitionLog::aborted_transactions`] call
/// returns at most (a fetch response's list is bounded by it).
pub const ABORTED_TXNS_PER_READ_MAX: usize = 10_000;

impl PartitionLog {
    /// Append a transaction marker (a control batch, [`samsa_model::control`])
    /// for `producer_id` as leader in `leader_epoch`: COMMIT when `commit`,
    /// else ABORT. Under the writer lock the marker is checked against the
    /// producer's state first (an older producer epoch is
    /// [`StorageError::InvalidProducerEpoch`], an older coordinator epoch
    /// [`StorageError::CoordinatorFenced`]), then written at the log end;
    /// the producer's open transaction closes, and an ABORT adds an entry to
    /// the aborted-transaction index. Returns the marker's offset. Followers
    /// store the same bytes through [`Self::append_replicated`], which
    /// records them the same way.
    pub fn append_marker(
        &self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        commit: bool,
        coordinator_epoch: CoordinatorEpoch,
        leader_epoch: LeaderEpoch,
        now: TimestampMs,
    ) -> Result<Offset, StorageError> {
        let marker = TxnMarker {
            commit,
            coordinator_epoch,
        };
        let mut bytes = control::build_marker_batch(producer_id, producer_epoch, marker, now)?;
        let cfg = self.config();
        let mut w = lock(&self.writer);
        self.check_writable(&w)?;
        w.producers
            .check_marker(producer_id, producer_epoch, coordinator_epoch)?;
        let offset = read_lock(&self.state).log_end();
        batch::set_base_offset(&mut bytes, offset)?;
        batch::set_partition_leader_epoch(&mut bytes, leader_epoch)?;
        let header = BatchHeader::parse(&bytes)?;
        let pending = [Pending {
            header,
            range: 0..bytes.len(),
        }];
        self.append_locked(
            &mut w,
            &cfg,
            now,
            Frame {
                buf: &bytes,
                head: None,
            },
            &pending,
        )?;
        Ok(offset)
    }

    /// KIP-890, step 1 of [`crate::verification`]: whether `producer_id`'s
    /// transactional batch may be appended without asking the transaction
    /// coordinator (its transaction is open here), else a new guard to
    /// append with once the coordinator confirmed the transaction.
    pub fn start_txn_verification(&self, producer_id: ProducerId) -> TxnVerification {
        let mut w = lock(&self.writer);
        let open = w
            .producers
            .get(producer_id)
            .is_some_and(|e| e.current_txn_first_offset.is_some());
        if open {
            TxnVerification::Ongoing
        } else {
            TxnVerification::Needed(w.verifications.start(producer_id))
        }
    }

    /// [`Self::append_unmodified`] for a client's batch that went through
    /// [`Self::start_txn_verification`]: a transactional batch of a producer
    /// with no open transaction here is refused with
    /// [`StorageError::TxnNotVerified`] unless `guard` is the producer's
    /// current guard (a marker since the verification started spent it).
    pub fn append_guarded(
        &self,
        batch: &[u8],
        leader_epoch: LeaderEpoch,
        now: TimestampMs,
        guard: Option<VerificationGuard>,
    ) -> Result<AppendInfo, StorageError> {
        self.append_checked(batch, leader_epoch, now, ProducerCheck::Guarded(guard))
    }

    /// Record written batches in the producer state (opening transactions),
    /// apply their markers (closing them; an ABORT's entry goes to the
    /// aborted-transaction index of `files`, the segment they were written
    /// to) and publish the first unstable offset. `buf` holds the batches at
    /// their `range`s. Caller holds the writer lock.
    pub(super) fn record_written(
        &self,
        w: &mut Writer,
        group: &[Pending],
        buf: &[u8],
        files: &SegmentFiles,
    ) -> Result<(), StorageError> {
        let mut aborted = Vec::new();
        for p in group {
            if p.header.is_transactional() {
                // The transaction opened or ended: its verification is spent.
                w.verifications.clear(p.header.producer_id);
            }
            if !p.header.is_control() {
                w.producers.record(&p.header);
                continue;
            }
            if p.header.producer_id.get() < 0 {
                continue;
            }
            let bytes = buf.get(p.range.clone()).unwrap_or_default();
            match control::parse_marker(&p.header, bytes) {
                Ok(Some(marker)) => {
                    let txn = w.producers.complete_txn(&p.header, marker);
                    if txn.aborted {
                        aborted.push(AbortedTxn::of(&txn, w.producers.first_unstable_offset()));
                    }
                }
                Ok(None) => {}
                // Only a leader's bytes get here (our own markers are
                // valid); Kafka's follower would fail the same way forever.
                Err(e) => tracing::warn!(
                    path = %files.log_path.display(),
                    offset = p.header.base_offset.get(),
                    error = %e,
                    "ignoring an unreadable control batch"
                ),
            }
        }
        let mut written = Ok(());
        for entry in &aborted {
            written = written.and_then(|()| txn_index::append(&files.txn_index_path, entry));
        }
        let first_unstable = w.producers.first_unstable_offset();
        {
            let mut st = write_lock(&self.state);
            st.aborted.entries.extend(aborted);
            let base = st.active.base();
            st.aborted.evict(self.aborted_max(), base);
            st.first_unstable = first_unstable;
        }
        if written.is_err() {
            // The index on disk misses an entry the log's markers imply; a
            // reopen rebuilds it (see `txn_index`).
            self.fail_writer(w);
        }
        written
    }

    /// The first offset of the oldest open transaction (Kafka's first
    /// unstable offset), at least the log start (as Kafka's
    /// `updateFirstUnstableOffset`: retention may have deleted the
    /// transaction's first batches), `None` when none is open.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        let st = read_lock(&self.state);
        st.first_unstable.map(|f| f.max(st.log_start))
    }

    /// The last stable offset for the high watermark `hw`: read_committed
    /// consumers read below it. Kafka's rule: the first unstable offset if
    /// below `hw`, else `hw`.
    pub fn last_stable_offset(&self, hw: Offset) -> Offset {
        self.first_unstable_offset().map_or(hw, |f| f.min(hw))
    }

    /// The aborted transactions a read_committed fetch of `[from, upper)`
    /// must report (Kafka's `collectAbortedTxns`): those whose ABORT marker
    /// is at or after `from` and whose first offset is below `upper`, at
    /// most [`ABORTED_TXNS_PER_READ_MAX`], ascending marker offset. Older
    /// ones are read from the `.txnindex` files (see [`super::aborted`]).
    pub fn aborted_transactions(
        &self,
        from: Offset,
        upper: Offset,
    ) -> Result<Vec<AbortedTxn>, StorageError> {
        self.collect_aborted(from, upper, ABORTED_TXNS_PER_READ_MAX)
    }

    /// Every producer the log tracks, with its state (for DescribeProducers).
    pub fn producer_entries(&self) -> Vec<(ProducerId, ProducerEntry)> {
        lock(&self.writer)
            .producers
            .entries_by_recency()
            .into_iter()
            .map(|(id, e)| (id, e.clone()))
            .collect()
    }

    /// After a truncation to the log end `end` reloaded the producer state:
    /// forget the aborted transactions whose markers were cut (rewriting the
    /// active segment's index) and publish the first unstable offset.
    /// Caller holds the writer lock.
    pub(super) fn txns_after_truncation(&self, w: &Writer) -> Result<(), StorageError> {
        let first_unstable = w.producers.first_unstable_offset();
        // The new active segment's entries memory no longer holds (the cut
        // reached below the watermark): read back before its file is rewritten.
        let (base, below, path) = {
            let st = read_lock(&self.state);
            (
                st.active.base(),
                st.aborted.from,
                st.active.files.txn_index_path.clone(),
            )
        };
        let reloaded = if base < below {
            txn_index::read(&path)?
        } else {
            Vec::new()
        };
        let mut st = write_lock(&self.state);
        st.first_unstable = first_unstable;
        let end = st.log_end();
        if base < below {
            let mut merged: Vec<AbortedTxn> = reloaded
                .into_iter()
                .filter(|e| e.last_offset >= base && e.last_offset < below)
                .collect();
            merged.append(&mut st.aborted.entries);
            st.aborted.entries = merged;
            st.aborted.from = base;
        }
        let kept = st.aborted.entries.partition_point(|e| e.last_offset < end);
        if kept < st.aborted.entries.len() {
            st.aborted.entries.truncate(kept);
            let in_active: Vec<AbortedTxn> = st
                .aborted
                .entries
                .iter()
                .filter(|e| e.last_offset >= base)
                .copied()
                .collect();
            txn_index::rewrite(&st.active.files.txn_index_path, &in_active)?;
        }
        Ok(())
    }

    /// After the log start moved: forget the aborted transactions whose
    /// markers were in deleted segments. Caller holds the state write lock.
    pub(super) fn txns_after_start_moved(st: &mut LogState) {
        let first_base = st.sealed.first().map_or(st.active.base(), |s| s.base());
        let gone = st
            .aborted
            .entries
            .partition_point(|e| e.last_offset < first_base);
        st.aborted.entries.drain(..gone);
    }

    /// After a compaction replaced segments by `merged` (ending at `end`):
    /// its index holds every entry of its range, and the indexes of the
    /// other originals (`replaced`) are removed. Caller holds the writer lock.
    pub(super) fn txns_after_swap(
        &self,
        merged: &SegmentFiles,
        end: Offset,
        replaced: &[Arc<SegmentFiles>],
        removed_aborts: &std::collections::BTreeSet<Offset>,
    ) -> Result<(), StorageError> {
        let in_range = |e: &AbortedTxn| e.last_offset >= merged.base && e.last_offset < end;
        let below = read_lock(&self.state).aborted.from;
        // Entries below memory's watermark are only in the originals' files.
        let mut entries = Vec::new();
        if merged.base < below {
            let mut paths = vec![merged.txn_index_path.clone()];
            paths.extend(replaced.iter().map(|o| o.txn_index_path.clone()));
            for path in paths {
                entries.extend(
                    txn_index::read(&path)?
                        .into_iter()
                        .filter(|e| in_range(e) && e.last_offset < below),
                );
            }
            entries.sort_by_key(|e| e.last_offset);
            entries.dedup_by_key(|e| e.last_offset);
        }
        entries.retain(|e| !removed_aborts.contains(&e.last_offset));
        {
            let mut st = write_lock(&self.state);
            st.aborted
                .entries
                .retain(|e| !(in_range(e) && removed_aborts.contains(&e.last_offset)));
            entries.extend(st.aborted.entries.iter().filter(|e| in_range(e)).copied());
        }
        txn_index::rewrite(&merged.txn_index_path, &entries)?;
        for orig in replaced.iter().filter(|o| o.base != merged.base) {
            txn_index::rewrite(&orig.txn_index_path, &[])?;
        }
        Ok(())
    }
}

/// The aborted-transaction entries of a log being opened, per the rule in
/// [`crate::txn_index`]: entries of every `.txnindex` file in `dir` whose
/// markers lie in `[first segment base, replayed_from)`, then `rebuilt` (the
/// replay's, at or after `replayed_from`). Files are rewritten where they
/// differ from the entries of their segment (`bases`, ascending; the last
/// one ending at `log_end`), and removed where no segment is. The caller
/// fsyncs the directory.
pub(super) fn load_index(
    dir: &Path,
    bases: &[Offset],
    log_end: Offset,
    replayed_from: Offset,
    rebuilt: Vec<AbortedTxn>,
) -> Result<Vec<AbortedTxn>, StorageError> {
    let first_base = bases.first().copied().unwrap_or(log_end);
    let mut on_disk: BTreeMap<Offset, Vec<AbortedTxn>> = BTreeMap::new();
    let mut by_marker: BTreeMap<Offset, AbortedTxn> = BTreeMap::new();
    let mut stored: BTreeMap<Offset, AbortedTxn> = BTreeMap::new();
    for base in txn_index::list(dir)? {
        let entries = txn_index::read(&txn_index::path(dir, base))?;
        for e in &entries {
            if e.last_offset >= first_base && e.last_offset < replayed_from.min(log_end) {
                by_marker.insert(e.last_offset, *e);
            }
            stored.insert(e.last_offset, *e);
        }
        on_disk.insert(base, entries);
    }
    for e in rebuilt {
        // A replay that saw no data of the transaction files it from its
        // marker on; the stored entry of the same marker knows where it
        // began before the cleaner removed its records.
        let e = match stored.get(&e.last_offset) {
            Some(s) if e.first_offset == e.last_offset && s.producer_id == e.producer_id => *s,
            _ => e,
        };
        by_marker.insert(e.last_offset, e);
    }
    let all: Vec<AbortedTxn> = by_marker.into_values().collect();
    for (i, base) in bases.iter().enumerate() {
        let end = bases.get(i + 1).copied().unwrap_or(log_end);
        let mine: Vec<AbortedTxn> = all
            .iter()
            .filter(|e| e.last_offset >= *base && e.last_offset < end)
            .copied()
            .collect();
        let stored = on_disk.remove(base).unwrap_or_default();
        if stored != mine {
            txn_index::rewrite(&txn_index::path(dir, *base), &mine)?;
        }
    }
    for base in on_disk.keys() {
        txn_index::rewrite(&txn_index::path(dir, *base), &[])?;
    }
    Ok(all)
}
