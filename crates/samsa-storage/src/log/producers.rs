//! The log's side of idempotent producers' state: snapshots taken at rolls
//! and written in the background, reloads after truncation, and the
//! read/expire API. The rules live in [`crate::producer_state`], the file
//! format and crash behaviour in [`crate::producer_snapshot`].

use std::sync::Arc;

use samsa_model::{Offset, ProducerId, TimestampMs};

use super::{lock, read_lock, PartitionLog, Writer};
use crate::checkpoint;
use crate::error::StorageError;
use crate::producer_snapshot::{self, ReplaySegment, SNAPSHOT_FILES_MAX, SNAPSHOT_INTERVAL_BYTES};
use crate::producer_state::ProducerEntry;
use crate::segment::{SegmentFiles, SegmentMeta};

impl PartitionLog {
    /// Encode the producer table as the snapshot at `offset` (the log end)
    /// for [`Self::sync_rolled`] to write. Caller holds the writer lock.
    pub(super) fn queue_snapshot(w: &mut Writer, offset: Offset) {
        w.bytes_since_snapshot = 0;
        w.snapshot_wanted = false;
        if w.snapshots.contains(&offset) || w.pending_snapshots.iter().any(|(o, _)| *o == offset) {
            return;
        }
        let bytes = producer_snapshot::encode(offset, &w.producers);
        if w.pending_snapshots.len() >= SNAPSHOT_FILES_MAX {
            w.pending_snapshots.remove(0);
        }
        w.pending_snapshots.push((offset, bytes));
    }

    /// Snapshots that may go: those below the log start once a newer one
    /// exists, and the oldest beyond [`SNAPSHOT_FILES_MAX`].
    pub(super) fn prunable_snapshots(w: &Writer, log_start: Offset) -> Vec<Offset> {
        producer_snapshot::prunable(&w.snapshots, log_start)
    }

    /// Whether the background pass has producer snapshots to write or delete.
    pub(super) fn snapshot_work(&self, w: &Writer) -> bool {
        !w.pending_snapshots.is_empty()
            || w.snapshot_wanted
            || w.bytes_since_snapshot >= SNAPSHOT_INTERVAL_BYTES
            || !Self::prunable_snapshots(w, read_lock(&self.state).log_start).is_empty()
    }

    /// The background half of producer snapshots ([`crate::producer_snapshot`]):
    /// take one at the log end if due, write the pending ones (fsync, rename
    /// under the writer lock unless a truncation happened since they were
    /// taken, directory fsync), then delete those no longer needed. Returns
    /// whether it did anything.
    pub(super) fn write_snapshots(&self) -> Result<bool, StorageError> {
        let (pending, truncations, active) = {
            let mut w = lock(&self.writer);
            if w.failed || w.closed {
                return Ok(false);
            }
            if w.snapshot_wanted || w.bytes_since_snapshot >= SNAPSHOT_INTERVAL_BYTES {
                let end = read_lock(&self.state).log_end();
                Self::queue_snapshot(&mut w, end);
            }
            let st = read_lock(&self.state);
            (
                std::mem::take(&mut w.pending_snapshots),
                st.truncations,
                Arc::clone(&st.active.files),
            )
        };
        // Every marker below a snapshot has its index entry on disk (the
        // sealed segments' indexes were synced with them).
        if !pending.is_empty() {
            if let Err(e) = crate::txn_index::sync(&active.txn_index_path) {
                let mut w = lock(&self.writer);
                w.snapshot_wanted = true;
                w.pending_snapshots = pending;
                return Err(e);
            }
        }
        let mut installed = false;
        for (offset, bytes) in &pending {
            if let Err(e) = producer_snapshot::write_tmp(&self.dir, *offset, bytes) {
                producer_snapshot::discard_tmp(&self.dir, *offset);
                lock(&self.writer).snapshot_wanted = true;
                return Err(e);
            }
            let mut w = lock(&self.writer);
            if read_lock(&self.state).truncations != truncations {
                // The state it describes may have been truncated away.
                producer_snapshot::discard_tmp(&self.dir, *offset);
                continue;
            }
            producer_snapshot::install(&self.dir, *offset)?;
            w.snapshots.insert(*offset);
            installed = true;
        }
        if installed {
            checkpoint::sync_dir(&self.dir)?;
        }
        let doomed = {
            let mut w = lock(&self.writer);
            let doomed = Self::prunable_snapshots(&w, read_lock(&self.state).log_start);
            for o in &doomed {
                w.snapshots.remove(o);
            }
            doomed
        };
        for o in &doomed {
            producer_snapshot::remove(&self.dir, *o)?;
        }
        Ok(!pending.is_empty() || !doomed.is_empty())
    }

    /// Delete the snapshots above `end` (written or pending), before a
    /// truncation to `end` is made durable. Caller holds the writer lock.
    pub(super) fn drop_snapshots_above(
        &self,
        w: &mut Writer,
        end: Offset,
    ) -> Result<(), StorageError> {
        w.pending_snapshots.retain(|(o, _)| *o <= end);
        let above: Vec<Offset> = w
            .snapshots
            .range(Offset(end.get().saturating_add(1))..)
            .copied()
            .collect();
        for o in above {
            producer_snapshot::remove(&self.dir, o)?;
            w.snapshots.remove(&o);
        }
        Ok(())
    }

    /// Rebuild the producer table after a truncation: the newest snapshot at
    /// or below the new log end, plus the batch headers after it. Caller
    /// holds the writer lock, not the state lock.
    pub(super) fn reload_producers(&self, w: &mut Writer) -> Result<(), StorageError> {
        let (segments, log_start, log_end) = {
            let st = read_lock(&self.state);
            let from = w
                .snapshots
                .range(st.log_start..=st.log_end())
                .next()
                .copied()
                .unwrap_or(st.log_start);
            let segments: Vec<(Arc<SegmentFiles>, SegmentMeta)> = st
                .iter()
                .filter(|s| s.meta.next_offset > from)
                .map(|s| (Arc::clone(&s.files), s.meta.clone()))
                .collect();
            (segments, st.log_start, st.log_end())
        };
        let replay: Vec<ReplaySegment<'_>> = segments
            .iter()
            .map(|(files, meta)| ReplaySegment { files, meta })
            .collect();
        // The aborted transactions of the markers kept are still in memory.
        let loaded =
            producer_snapshot::load(&self.dir, &mut w.snapshots, &replay, log_start, log_end)?;
        w.producers = loaded.table;
        w.bytes_since_snapshot = 0;
        Ok(())
    }

    /// The producer state of `producer_id` (its epoch and last batches), if
    /// the log tracks it ([`crate::producer_state`]).
    pub fn producer_state(&self, producer_id: ProducerId) -> Option<ProducerEntry> {
        lock(&self.writer).producers.get(producer_id).cloned()
    }

    /// Number of producers whose state the log tracks.
    pub fn producer_count(&self) -> usize {
        lock(&self.writer).producers.len()
    }

    /// Forget producers whose last batch's timestamp is `expiration_ms`
    /// (Kafka's `producer.id.expiration.ms`) or more before `now`; their
    /// next batch is accepted at any sequence. Returns how many went. Takes
    /// the writer lock, which a flush holds across its fsync: call it from
    /// a blocking thread.
    pub fn expire_producers(&self, now: TimestampMs, expiration_ms: i64) -> usize {
        lock(&self.writer)
            .producers
            .expire(now.get(), expiration_ms)
    }

    /// After the log start moved to `log_start`: when no snapshot (written or
    /// pending) is at or above it, ask for one at the log end, so producer
    /// state of deleted segments is kept (until it expires, as in Kafka).
    pub(super) fn want_snapshot_from(w: &mut Writer, log_start: Offset) {
        let covered = w.snapshots.range(log_start..).next().is_some()
            || w.pending_snapshots.iter().any(|(o, _)| *o >= log_start);
        if !covered {
            w.snapshot_wanted = true;
        }
    }
}
