//! Producer-state snapshots: `<offset, 20 digits>.snapshot` files beside the
//! segments (Kafka's naming), each holding the idempotent-producer table
//! ([`crate::producer_state`]) as of `offset`, i.e. after every batch below
//! it. Opening or truncating the log loads the newest usable one and replays
//! only the batch headers after it.
//!
//! # Byte layout (all integers big-endian)
//!
//! ```text
//! offset  size  field
//!      0     2  version = 2 (u16)
//!      2     4  CRC-32C (Castagnoli) of every byte from offset 6 to the end (u32)
//!      6     8  snapshot offset (i64), equal to the one in the file name
//!     14     4  producer count N (u32), at most PRODUCERS_PER_PARTITION_MAX
//!     18        N producer entries, least recently used first:
//!                 producer id (i64), epoch (i16), last batch timestamp (i64),
//!                 coordinator epoch (i32, -1 = no marker yet),
//!                 open transaction's first offset (i64, -1 = none),
//!                 batch count B (u8, 0..=BATCHES_PER_PRODUCER_MAX), then B batches,
//!                 oldest first: first sequence (i32), last sequence (i32),
//!                 base offset (i64), last offset delta (i32)
//! ```
//!
//! Version 1 (written before transactions) is still read: its entries lack
//! the coordinator epoch and first offset fields (no marker, no open
//! transaction) and have 1..=5 batches. The file must end exactly after the
//! last entry. Unlike Kafka's format
//! (one batch per producer) all remembered batches are kept, so a retried
//! batch is recognised after a restart as it was before.
//!
//! # When they are written
//!
//! - At each segment roll, the table as of the new segment's base offset is
//!   encoded in memory (under the writer lock, no I/O) and written later by
//!   [`crate::PartitionLog::sync_rolled`], the broker's background log
//!   flusher, after the segments below it were fsynced: a roll adds no file
//!   write or fsync to the append path.
//! - By the same background pass, at the log end, once
//!   [`SNAPSHOT_INTERVAL_BYTES`] were appended since the last snapshot, after
//!   an open that had to replay headers, or when the log start passed every
//!   snapshot. This bounds the headers a restart replays, whatever the
//!   segment size.
//! - On clean shutdown ([`crate::PartitionLog::close`]), at the log end, so
//!   the next open replays nothing.
//!
//! Each is written to `<name>.tmp`, fsynced, renamed into place and the
//! directory fsynced. At most [`SNAPSHOT_FILES_MAX`] are kept (the oldest go
//! first), and those below the log start are deleted once a newer one
//! exists.
//!
//! # Crash behaviour
//!
//! A snapshot is a cache of what the log's batch headers say, never the only
//! copy, except for producers whose batches retention has deleted (those are
//! kept in snapshots until they expire, as in Kafka). A crash leaves at worst
//! a `.tmp` file (deleted on open) or no new snapshot (the previous one plus
//! a longer replay). A snapshot that is damaged (short, bad CRC, unknown
//! version, offset not matching its name) is skipped with a warning and
//! deleted; the next older one is used, or the replay starts at the log start.
//! Snapshots above the log end (the tail they describe was lost, or
//! truncated away) are deleted on open and by truncation before anything is
//! appended again, so a snapshot never describes batches the log does not
//! hold. A snapshot is renamed into place only if no truncation happened
//! since it was taken.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use samsa_model::batch::BatchHeader;
use samsa_model::control::{self, TxnMarker};
use samsa_model::{CoordinatorEpoch, Offset, ProducerEpoch, ProducerId};

use crate::checkpoint;
use crate::error::StorageError;
use crate::producer_state::{
    BatchMeta, ProducerStateTable, BATCHES_PER_PRODUCER_MAX, PRODUCERS_PER_PARTITION_MAX,
};
use crate::segment::{self, SegmentFiles, SegmentMeta};
use crate::txn_index::AbortedTxn;

/// Suffix of snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Current layout version.
const VERSION: u16 = 2;
/// The layout before transactions, still read.
const VERSION_1: u16 = 1;
/// Bytes before the first entry.
const HEADER_BYTES: usize = 18;
/// Bytes of an entry before its batches.
const ENTRY_HEAD_BYTES: usize = 31;
/// Bytes of one batch.
const BATCH_BYTES: usize = 20;
/// Largest valid snapshot file.
const SNAPSHOT_BYTES_MAX: u64 = (HEADER_BYTES
    + PRODUCERS_PER_PARTITION_MAX * (ENTRY_HEAD_BYTES + BATCHES_PER_PRODUCER_MAX * BATCH_BYTES))
    as u64;
/// Snapshot files kept per partition.
pub const SNAPSHOT_FILES_MAX: usize = 4;
/// Bytes appended after which the background pass takes a snapshot at the
/// log end (so a restart after a crash replays at most about this much).
pub const SNAPSHOT_INTERVAL_BYTES: u64 = 16 << 20;

/// The file name of the snapshot at `offset`.
pub fn file_name(offset: Offset) -> String {
    format!("{}{SNAPSHOT_SUFFIX}", segment::file_stem(offset))
}

fn path(dir: &Path, offset: Offset) -> PathBuf {
    dir.join(file_name(offset))
}

fn tmp_path(dir: &Path, offset: Offset) -> PathBuf {
    dir.join(format!("{}.tmp", file_name(offset)))
}

/// Encodes `table` as the snapshot at `offset`.
pub fn encode(offset: Offset, table: &ProducerStateTable) -> Vec<u8> {
    let entries = table.entries_by_recency();
    let mut out = Vec::with_capacity(
        HEADER_BYTES + entries.len() * (ENTRY_HEAD_BYTES + BATCH_BYTES * BATCHES_PER_PRODUCER_MAX),
    );
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.get().to_be_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (id, e) in &entries {
        out.extend_from_slice(&id.get().to_be_bytes());
        out.extend_from_slice(&e.epoch.get().to_be_bytes());
        out.extend_from_slice(&e.last_timestamp.to_be_bytes());
        out.extend_from_slice(&e.coordinator_epoch.get().to_be_bytes());
        let first = e.current_txn_first_offset.map_or(-1, Offset::get);
        out.extend_from_slice(&first.to_be_bytes());
        let n = e.batches.len().min(BATCHES_PER_PRODUCER_MAX);
        out.push(n as u8);
        for b in e.batches.iter().skip(e.batches.len() - n) {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.base_offset.get().to_be_bytes());
            out.extend_from_slice(&b.last_offset_delta.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(out.get(6..).unwrap_or_default());
    if let Some(field) = out.get_mut(2..6) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
    out
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or_else(|| format!("ends early at byte {}", self.pos))?;
        self.pos += N;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }
    fn i16(&mut self) -> Result<i16, String> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Result<i64, String> {
        self.take().map(i64::from_be_bytes)
    }
}

/// Decodes a snapshot that must be the one at `offset`; the error says why not.
pub fn decode(bytes: &[u8], offset: Offset) -> Result<ProducerStateTable, String> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = u16::from_be_bytes(r.take()?);
    if version != VERSION && version != VERSION_1 {
        return Err(format!("unknown version {version}"));
    }
    let crc = u32::from_be_bytes(r.take()?);
    let computed = crc32c::crc32c(bytes.get(6..).unwrap_or_default());
    if crc != computed {
        return Err(format!(
            "CRC mismatch (stored {crc:#010x}, computed {computed:#010x})"
        ));
    }
    let stored_offset = r.i64()?;
    if stored_offset != offset.get() {
        return Err(format!(
            "holds offset {stored_offset}, not the one in its name"
        ));
    }
    let count = u32::from_be_bytes(r.take()?) as usize;
    if count > PRODUCERS_PER_PARTITION_MAX {
        return Err(format!(
            "{count} producers (at most {PRODUCERS_PER_PARTITION_MAX})"
        ));
    }
    let mut table = ProducerStateTable::default();
    for _ in 0..count {
        let producer_id = ProducerId(r.i64()?);
        let epoch = ProducerEpoch(r.i16()?);
        let timestamp = r.i64()?;
        let (coordinator_epoch, txn_first) = if version == VERSION_1 {
            (CoordinatorEpoch(-1), -1)
        } else {
            (CoordinatorEpoch(r.i32()?), r.i64()?)
        };
        let [batches] = r.take::<1>()?;
        let batches = usize::from(batches);
        let batches_min = usize::from(version == VERSION_1);
        if producer_id.get() < 0
            || batches < batches_min
            || batches > BATCHES_PER_PRODUCER_MAX
            || txn_first < -1
            || table.get(producer_id).is_some()
        {
            return Err(format!(
                "invalid entry for producer {producer_id} ({batches} batches)"
            ));
        }
        for _ in 0..batches {
            let batch = BatchMeta {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                base_offset: Offset(r.i64()?),
                last_offset_delta: r.i32()?,
            };
            table.insert_batch(producer_id, epoch, batch, timestamp);
        }
        let txn_first = (txn_first >= 0).then_some(Offset(txn_first));
        if txn_first.is_some_and(|o| o >= offset) {
            return Err(format!(
                "producer {producer_id}'s transaction starts at or after the snapshot"
            ));
        }
        table.restore_entry(producer_id, epoch, timestamp, coordinator_epoch, txn_first);
    }
    if r.pos != bytes.len() {
        return Err(format!(
            "{} bytes after the last entry",
            bytes.len() - r.pos
        ));
    }
    Ok(table)
}

/// Writes and fsyncs `<name>.tmp` for the snapshot at `offset` (to be
/// [`install`]ed).
pub(crate) fn write_tmp(dir: &Path, offset: Offset, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = tmp_path(dir, offset);
    let mut f = fs::File::create(&tmp).map_err(|e| StorageError::io("create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| StorageError::io("write", &tmp, e))
}

/// Renames a written `.tmp` into place (the caller fsyncs the directory).
pub(crate) fn install(dir: &Path, offset: Offset) -> Result<(), StorageError> {
    let dst = path(dir, offset);
    fs::rename(tmp_path(dir, offset), &dst).map_err(|e| StorageError::io("rename", &dst, e))
}

/// Deletes the `.tmp` of an abandoned snapshot (missing is fine).
pub(crate) fn discard_tmp(dir: &Path, offset: Offset) {
    let _ = fs::remove_file(tmp_path(dir, offset));
}

/// Writes the snapshot at `offset` atomically and durably (tmp, fsync,
/// rename, directory fsync).
pub(crate) fn write_synced(dir: &Path, offset: Offset, bytes: &[u8]) -> Result<(), StorageError> {
    write_tmp(dir, offset, bytes)?;
    install(dir, offset)?;
    checkpoint::sync_dir(dir)
}

/// Deletes the snapshot at `offset` (missing is fine). The caller fsyncs the
/// directory when the deletion must be durable.
pub(crate) fn remove(dir: &Path, offset: Offset) -> Result<(), StorageError> {
    let p = path(dir, offset);
    match fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", &p, e)),
    }
}

/// The offsets of the snapshot files in `dir`.
pub(crate) fn list(dir: &Path) -> Result<BTreeSet<Offset>, StorageError> {
    segment::list_named(dir, SNAPSHOT_SUFFIX)
}

/// Reads the snapshot at `offset`; `Err` with the reason when it is unusable.
fn read(dir: &Path, offset: Offset) -> Result<ProducerStateTable, String> {
    let p = path(dir, offset);
    let len = fs::metadata(&p).map_err(|e| e.to_string())?.len();
    if len > SNAPSHOT_BYTES_MAX {
        return Err(format!("{len} bytes (at most {SNAPSHOT_BYTES_MAX})"));
    }
    let bytes = fs::read(&p).map_err(|e| e.to_string())?;
    decode(&bytes, offset)
}

/// One segment as the replay sees it.
pub(crate) struct ReplaySegment<'a> {
    pub files: &'a SegmentFiles,
    pub meta: &'a SegmentMeta,
}

/// What a rebuild of the producer table starts from: the table of the chosen
/// snapshot (empty if none), the offset the replay of batch headers starts
/// at, and the snapshots the caller must delete.
#[derive(Debug)]
pub struct RebuildStart {
    pub table: ProducerStateTable,
    pub from: Offset,
    /// Snapshots to delete: above the log end (`None`), or unreadable (the
    /// reason).
    pub dropped: Vec<(Offset, Option<String>)>,
}

/// The rule a log rebuilds its producer table by (on open and after a
/// truncation), without I/O so that the replication simulation runs it too:
/// snapshots above `log_end` describe batches the log no longer holds and
/// are dropped; of those in `[log_start, log_end]` the newest one `read`
/// decodes is used (unreadable ones are dropped); with none the replay
/// starts at `log_start` with an empty table. `snapshots` loses every dropped
/// offset. The caller then replays the batches from `from` with
/// [`ProducerStateTable::replay`].
pub fn rebuild_start(
    snapshots: &mut BTreeSet<Offset>,
    log_start: Offset,
    log_end: Offset,
    mut read: impl FnMut(Offset) -> Result<ProducerStateTable, String>,
) -> RebuildStart {
    let mut dropped: Vec<(Offset, Option<String>)> = snapshots
        .range(Offset(log_end.get().saturating_add(1))..)
        .map(|o| (*o, None))
        .collect();
    let mut chosen = None;
    let candidates: Vec<Offset> = snapshots
        .range(log_start..=log_end.max(log_start))
        .rev()
        .copied()
        .collect();
    for offset in candidates {
        match read(offset) {
            Ok(t) => {
                chosen = Some((t, offset));
                break;
            }
            Err(reason) => dropped.push((offset, Some(reason))),
        }
    }
    for (offset, _) in &dropped {
        snapshots.remove(offset);
    }
    let (table, from) = chosen.unwrap_or_else(|| (ProducerStateTable::default(), log_start));
    RebuildStart {
        table,
        from,
        dropped,
    }
}

/// Snapshots that may be deleted once the log starts at `log_start`: those
/// below it once a newer one exists, and the oldest beyond
/// [`SNAPSHOT_FILES_MAX`].
pub fn prunable(snapshots: &BTreeSet<Offset>, log_start: Offset) -> Vec<Offset> {
    let usable = snapshots.range(log_start..).count();
    let mut out: Vec<Offset> = if usable > 0 {
        snapshots.range(..log_start).copied().collect()
    } else {
        Vec::new()
    };
    let excess = usable.saturating_sub(SNAPSHOT_FILES_MAX);
    out.extend(snapshots.range(log_start..).take(excess).copied());
    out
}

/// What [`load`] rebuilt.
pub(crate) struct Loaded {
    pub table: ProducerStateTable,
    /// The offset the replay of batch headers started at.
    pub from: Offset,
    /// The transactions aborted by the markers replayed (at or after `from`).
    pub aborted: Vec<AbortedTxn>,
}

/// The producer table of a log holding `segments` (oldest first) between
/// `log_start` and `log_end` ([`rebuild_start`], then the batch headers
/// after the chosen snapshot). Dropped snapshots are deleted (damaged ones
/// with a warning); the caller fsyncs the directory.
pub(crate) fn load(
    dir: &Path,
    snapshots: &mut BTreeSet<Offset>,
    segments: &[ReplaySegment<'_>],
    log_start: Offset,
    log_end: Offset,
) -> Result<Loaded, StorageError> {
    let start = rebuild_start(snapshots, log_start, log_end, |o| read(dir, o));
    for (offset, reason) in &start.dropped {
        if let Some(reason) = reason {
            tracing::warn!(
                path = %path(dir, *offset).display(),
                reason = %reason,
                "skipping a damaged producer state snapshot"
            );
        }
        remove(dir, *offset)?;
    }
    let RebuildStart {
        mut table, from, ..
    } = start;
    let aborted = replay(segments, from, &mut table)?;
    Ok(Loaded {
        table,
        from,
        aborted,
    })
}

/// Largest control batch the replay reads (markers are about 80 bytes).
const CONTROL_BATCH_BYTES_MAX: usize = 64 << 10;

/// Records in `table` the header of every batch at or after `from`, and
/// every transaction marker (whose record the replay reads); returns the
/// transactions the ABORT markers aborted. A damaged stretch of a segment
/// is skipped with a warning, as is an unreadable control batch.
pub(crate) fn replay(
    segments: &[ReplaySegment<'_>],
    from: Offset,
    table: &mut ProducerStateTable,
) -> Result<Vec<AbortedTxn>, StorageError> {
    let mut aborted = Vec::new();
    for s in segments.iter().filter(|s| s.meta.next_offset > from) {
        let base = s.files.base;
        let position = if base < from {
            s.meta.position_for(base, from)
        } else {
            0
        };
        let walked = segment::find_batch(s.files, position, s.meta.size, |at, h| {
            if !h.is_control() {
                table.replay(from, h);
                return Ok(None::<()>);
            }
            if h.base_offset < from || h.producer_id.get() < 0 {
                return Ok(None);
            }
            let marker = read_marker(s.files, at, h);
            match marker {
                Ok(Some(m)) => {
                    if let Some(c) = table.replay_marker(from, h, m) {
                        if c.aborted {
                            aborted.push(AbortedTxn::of(&c, table.first_unstable_offset()));
                        }
                    }
                }
                Ok(None) => {}
                Err(reason) => tracing::warn!(
                    path = %s.files.log_path.display(),
                    position = at,
                    reason = %reason,
                    "producer state replay skips an unreadable control batch"
                ),
            }
            Ok(None)
        });
        match walked {
            Ok(_) => {}
            // Damage kept in a segment that was on disk (recovery reports it
            // and never cuts it): the batches after it cannot be read, so
            // their producers' state is what the earlier batches say.
            Err(StorageError::Corrupt {
                path,
                position,
                reason,
            }) => tracing::warn!(
                path = %path.display(),
                position,
                reason = %reason,
                "producer state replay skips the rest of a damaged segment"
            ),
            Err(e) => return Err(e),
        }
    }
    Ok(aborted)
}

/// The transaction marker of the control batch at `position`.
fn read_marker(
    files: &SegmentFiles,
    position: u64,
    header: &BatchHeader,
) -> Result<Option<TxnMarker>, String> {
    let len = header.size_bytes();
    if len > CONTROL_BATCH_BYTES_MAX {
        return Err(format!("{len} bytes"));
    }
    let mut buf = vec![0u8; len];
    files
        .read_exact_at(&mut buf, position)
        .map_err(|e| e.to_string())?;
    control::parse_marker(header, &buf).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use samsa_model::batch::{BatchBuilder, NewRecord};
    use samsa_model::TimestampMs;

    fn table() -> ProducerStateTable {
        let mut t = ProducerStateTable::default();
        for (pid, seq, base) in [(1, 0, 0), (2, 0, 1), (1, 1, 2), (1, 2, 3)] {
            let bytes = BatchBuilder::new()
                .producer(ProducerId(pid), ProducerEpoch(3), seq)
                .record(NewRecord::new(TimestampMs(500 + base), None, Some(b"v")))
                .build()
                .unwrap();
            let h = BatchHeader {
                base_offset: Offset(base),
                ..BatchHeader::parse(&bytes).unwrap()
            };
            t.record(&h);
        }
        t
    }

    #[test]
    fn round_trips() {
        let t = table();
        let bytes = encode(Offset(4), &t);
        assert_eq!(
            bytes.len(),
            HEADER_BYTES + 2 * ENTRY_HEAD_BYTES + 4 * BATCH_BYTES
        );
        let back = decode(&bytes, Offset(4)).unwrap();
        assert_eq!(back.len(), 2);
        for pid in [1, 2] {
            let a = back.get(ProducerId(pid)).unwrap();
            let b = t.get(ProducerId(pid)).unwrap();
            assert_eq!(
                (a.epoch, &a.batches, a.last_timestamp),
                (b.epoch, &b.batches, b.last_timestamp)
            );
        }
        // Recency survives: producer 2 is still the least recently used.
        assert_eq!(back.entries_by_recency()[0].0, ProducerId(2));
    }

    #[test]
    fn damage_is_detected() {
        let bytes = encode(Offset(4), &table());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad, Offset(4)).is_err(), "flipped byte {i}");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], Offset(4)).is_err(), "cut at {len}");
        }
        assert!(decode(&bytes, Offset(5)).is_err(), "wrong name");
    }
}
