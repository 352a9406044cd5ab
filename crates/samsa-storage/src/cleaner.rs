//! Log compaction (`cleanup.policy=compact`): the cleaner's passes, its
//! checkpoint file, and the crash-safe replacement of cleaned segments.
//!
//! [`crate::PartitionLog::compact`] keeps, for every key, at least its latest
//! record, and eventually drops deleted keys' tombstones. Offsets never change:
//! a kept record keeps the offset, timestamp, headers, producer fields and
//! codec it was appended with; the log start and log end offsets never move
//! because of compaction.
//!
//! # What is cleaned
//!
//! The *cleaner checkpoint* ("first dirty offset") splits the log: records
//! below it were deduplicated by an earlier clean (the *clean* part), records
//! at or after it were not (the *dirty* part). A clean considers the sealed
//! segments only (never the active one), from the first one up to, but not
//! including, the first segment that holds dirty records and whose largest
//! batch `maxTimestamp` is newer than `now - min_compaction_lag_ms` (the
//! *cleanable* range). It runs when the cleanable range's dirty bytes are at
//! least `min_cleanable_dirty_ratio` of its bytes, or when the first dirty
//! batch's `maxTimestamp` is older than `now - max_compaction_lag_ms`.
//!
//! 1. **Offset map.** The dirty part of the cleanable range is decoded and
//!    every keyed record of a data batch not of an aborted transaction is entered into a
//!    map *key → latest offset*. Keys are stored as 128-bit hashes keyed with
//!    per-clean random keys (`RandomState`), so the map's memory is bounded by
//!    `map_entries_max` whatever the key sizes; two distinct keys colliding is
//!    a 2^-128-scale event per pair that an outsider cannot aim for. When the
//!    map is full, the clean stops at the first record that did not fit: the
//!    *dirty end* is that record's offset (otherwise it is the end of the
//!    cleanable range), and only records below it count as cleaned.
//! 2. **Rewrite.** Every cleanable segment whose base offset is below the
//!    dirty end is rewritten, from the first segment on. Adjacent segments are
//!    merged while their original sizes add up to at most `segment.bytes` (and
//!    their offsets and index entries fit one segment); the result is named
//!    after the first one's base offset. Per record of a data batch not of an
//!    aborted transaction, below the dirty end:
//!    - a record without a key is dropped (compacted topics refuse them at
//!      produce time);
//!    - a record whose key maps to a larger offset is dropped (superseded);
//!    - a tombstone (null value) is dropped when it lies in the clean part
//!      (below the checkpoint this clean started from, so it survived at least
//!      one clean and everything older for its key is gone), its batch's
//!      `maxTimestamp` is older than `now - delete_retention_ms`;
//!    - everything else is kept. Records at or after the dirty end are kept.
//!
//! A batch whose records all survive is copied byte for byte. Otherwise the
//! kept records are written as a new batch with the same `baseOffset`,
//! `lastOffsetDelta` (so offsets are never reused), `baseTimestamp`, record
//! offset and timestamp deltas, attributes (codec, timestamp type),
//! `partitionLeaderEpoch` and producer id/epoch/base sequence; its
//! `maxTimestamp` becomes the largest kept record's timestamp (CreateTime) or
//! stays the append time (LogAppendTime), and its records are compressed again
//! with the source batch's codec. A batch left with no records is dropped,
//! except that an *empty batch* (`recordsCount` 0, no records section, no
//! compression bits, the original header otherwise) is kept
//! - for the last batch of each merged segment, so a cleaned segment ends at
//!   exactly the offset its originals ended at (recovery relies on this to
//!   know which originals a `.swap` file replaces), and
//! - for the last batch of each producer id in the rewritten range (Kafka
//!   keeps it so the producer's last sequence number survives; when more than
//!   `producer_entries_max` producers appear, every such batch is kept).
//!
//! Readers, recovery and index rebuilding accept such batches, and gaps both
//! between batches and between record offset deltas.
//!
//! **Transactions** (Kafka's rules; details in [`txn`]). A clean never
//! reaches the last stable offset: only sealed segments wholly below the
//! first unstable offset (and, for replicas, the high watermark) are
//! cleanable, so every transaction it sees is decided. Records of aborted
//! transactions (found through the aborted-transaction index) are dropped
//! and never enter the offset map; records of committed transactions are
//! cleaned like any other. A COMMIT/ABORT marker stays while the pass read a
//! batch of its transaction; once none is left it gets a delete horizon
//! (attributes bit 6, `baseTimestamp` = clean time + `delete.retention.ms`)
//! and a clean at or after the horizon removes it, with its `.txnindex`
//! entry. A crash after a replacement was committed but before the merged
//! index was rewritten can leave entries of removed markers behind (a reopen
//! keeps them); their transactions have no data left, so a read_committed
//! consumer filters nothing with them.
//!
//! # Concurrency
//!
//! Both passes read sealed segments through their shared file handles without
//! holding the writer lock, so appends (and reads) go on. Each merged segment
//! is written to new files; only the replacement itself (checks, renames,
//! deletions, directory fsyncs and the in-memory swap) runs under the writer
//! lock. The originals must still be in the log, unchanged, at that moment
//! (retention may have deleted them: the group is skipped), and no truncation
//! may have happened since the clean started (it would invalidate the map: the
//! clean is abandoned). Readers that already hold an original's file keep
//! reading it through the open descriptor after it is unlinked, so a reader
//! sees either the old or the new segment, never a partly written one.
//! Callers with replication must not compact above the high watermark, as in
//! Kafka: a clean trusts that the records it deduplicated against stay.
//!
//! # Files
//!
//! - `<base>.log.cleaned`, `.index.cleaned`, `.timeindex.cleaned`: a merged
//!   segment being written (same formats as `.log`/`.index`/`.timeindex`, see
//!   [`crate::segment`] and [`crate::index`]).
//! - `<base>.log.swap`, `.index.swap`, `.timeindex.swap`: the same files once
//!   complete and fsynced; the existence of `<base>.log.swap` is the commit
//!   point of a replacement.
//! - `cleaner-checkpoint` (+ `cleaner-checkpoint.tmp` while written), 24
//!   bytes, big endian, written atomically like `log-start-offset`
//!   ([`crate::checkpoint`]):
//!
//! | at | size | field                                                  |
//! |----|------|--------------------------------------------------------|
//! | 0  | 4    | format version, u32 (= 1)                              |
//! | 4  | 8    | first dirty offset, i64                                |
//! | 12 | 8    | compacted end, i64: offset gaps between batches exist only at or below it |
//! | 20 | 4    | CRC-32C of bytes 0..20, u32                            |
//!
//! # Crash behaviour
//!
//! Replacing originals `S1..Sn` (bases `B1 < .. < Bn`, `Sn` ending at offset
//! `E`) by a merged segment `M` named `B1`:
//!
//! 1. write `M`'s three `.cleaned` files and fsync them;
//! 2. raise the checkpoint's compacted end to at least `E` (see below);
//! 3. rename the two index files, then the log file, `.cleaned` → `.swap`,
//!    and fsync the directory — **committed**;
//! 4. delete the originals' files, fsync the directory;
//! 5. rename the index files, then the log file, `.swap` → final names, fsync
//!    the directory;
//! 6. after all groups, write the new first dirty offset.
//!
//! On open, before segments are loaded, every `*.cleaned` file is deleted (an
//! uncommitted replacement: the originals are intact), and every
//! `<B>.log.swap` completes its replacement: its batches are CRC-checked to
//! find its end offset `E` (the last batch always ends where the last original
//! did), every segment whose base offset is in `[B, E)` is deleted (including
//! any index already renamed into place), the index `.swap` files present are
//! renamed (missing indexes are rebuilt from the log), then the log. Index
//! `.swap` files without a log `.swap` belong to an uncommitted replacement and
//! are deleted. So after a crash each segment is either all-original or
//! all-cleaned. A crash before step 6 only leaves the checkpoint behind: the
//! next clean redoes that work, which is idempotent.
//!
//! A truncation that cuts into a compacted segment makes it the active one,
//! whose recovery otherwise requires contiguous batches; recovery accepts a
//! gap there only when it lies below the compacted end (step 2 makes that
//! durable before any gap can be committed). Truncation lowers both
//! checkpoint offsets to the new log end before removing anything. A
//! follower replicating a compacted leader also writes gaps
//! ([`crate::PartitionLog::append_replicated`]): it raises the compacted end
//! to the base offset of a batch following a gap before writing it.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use samsa_model::batch::{
    self, field, BatchHeader, Record, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2,
};
use samsa_model::{compression, control};
use samsa_model::{Offset, TimestampMs};

use crate::checkpoint;
use crate::config::{LogConfig, SEGMENT_BYTES_MAX};
use crate::error::StorageError;
use crate::index::{self, OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES};
mod txn;

use txn::MarkerFate;
pub(crate) use txn::{AbortedRanges, TxnCleaning};

use crate::segment::{
    self, SegmentFiles, SegmentMeta, Step, Walker, LOG_SUFFIX, RELATIVE_OFFSET_MAX,
    SCAN_BUFFER_BYTES,
};

/// File name of the cleaner checkpoint inside the partition directory.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-checkpoint";
/// Temporary name used while writing it.
pub const CLEANER_CHECKPOINT_TMP_FILE: &str = "cleaner-checkpoint.tmp";
/// Suffix added to a segment file name while a cleaned copy is being written.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix added to a segment file name once a cleaned copy is committed.
pub const SWAP_SUFFIX: &str = ".swap";

const CHECKPOINT_BYTES: usize = 24;
const CHECKPOINT_VERSION: u32 = 1;
const _: () = assert!(CHECKPOINT_BYTES == 4 + 8 + 8 + 4);

/// Producers tracked per clean to find each one's last batch; beyond it every
/// emptied producer batch is kept.
pub const PRODUCER_ENTRIES_MAX: usize = 1 << 20;
/// Write buffer for cleaned log files.
const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Attributes bits 0-2: the codec (see `samsa_model::batch`).
const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attributes bit 4: the batch belongs to a transaction.
const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attributes bit 6: `baseTimestamp` is the delete horizon (KIP-534).
const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Kafka's per-topic compaction settings, plus the cleaner's memory bounds.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct CompactionConfig {
    /// Clean when dirty bytes / cleanable bytes reaches this
    /// (`min.cleanable.dirty.ratio`, default 0.5).
    pub min_cleanable_dirty_ratio: f64,
    /// Records whose batch `maxTimestamp` is newer than `now - this` are not
    /// cleaned (`min.compaction.lag.ms`, default 0).
    pub min_compaction_lag_ms: i64,
    /// Clean regardless of the ratio once a dirty record is older than this
    /// (`max.compaction.lag.ms`, default `i64::MAX`).
    pub max_compaction_lag_ms: i64,
    /// How long a tombstone stays after it was first cleaned, measured from
    /// its batch's `maxTimestamp` (`delete.retention.ms`, default 1 day).
    pub delete_retention_ms: i64,
    /// Entries of the key → offset map (about 40 bytes each); a clean covers
    /// at most this many distinct keys of dirty records (default 4 Mi,
    /// Kafka's 128 MiB dedupe buffer in spirit). Values below 1 count as 1.
    pub map_entries_max: usize,
    /// Largest decompressed records section decoded for one batch (default
    /// 128 MiB); a larger stored batch fails the clean with
    /// [`StorageError::Corrupt`].
    pub decompressed_bytes_max: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            map_entries_max: 4 << 20,
            decompressed_bytes_max: 128 << 20,
        }
    }
}

/// What one [`crate::PartitionLog::compact`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactionStats {
    /// Original segments replaced by cleaned ones.
    pub segments_cleaned: usize,
    /// Records in the rewritten range (segments left unchanged included).
    pub records_read: u64,
    /// Of those, records kept.
    pub records_kept: u64,
    /// Tombstones dropped past the delete horizon.
    pub tombstones_dropped: u64,
    /// Records of aborted transactions dropped.
    pub aborted_records_dropped: u64,
    /// Transaction markers removed past their delete horizon.
    pub markers_removed: u64,
    /// Bytes of the rewritten range before the clean.
    pub bytes_before: u64,
    /// Bytes of the rewritten range after the clean.
    pub bytes_after: u64,
    /// Dirty ratio of the cleanable range that was measured.
    pub dirty_ratio: f64,
    /// The cleaner checkpoint after the clean (unchanged when a truncation
    /// during the clean made it stop early).
    pub first_dirty_offset: Offset,
}

/// Test hook: where a simulated crash stops a segment replacement.
#[doc(hidden)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SwapCrashPoint {
    /// The `.cleaned` files are written and fsynced; nothing renamed.
    Cleaned,
    /// The index files were renamed to `.swap`, the log is still `.cleaned`.
    IndexesStaged,
    /// All three renamed to `.swap` (committed); originals present.
    Swapped,
    /// Originals deleted; the `.swap` files not yet renamed.
    OriginalsDeleted,
    /// The index files have their final names; the log is still `.swap`.
    IndexesInstalled,
    /// Everything renamed; the first dirty offset not yet written.
    Installed,
}

// ---------------------------------------------------------------------------
// Checkpoint

/// The persisted cleaner state (see the module docs for the file layout).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    /// Records below this were deduplicated by a completed clean.
    pub first_dirty: Offset,
    /// Gaps between batches can only exist up to this offset: no segment
    /// whose base offset is at or above it was ever rewritten, and no batch
    /// after a gap starts above it (replicated appends raise it, see
    /// [`crate::PartitionLog::append_replicated`]).
    pub compacted_end: Offset,
}

impl CleanerCheckpoint {
    /// A log that was never cleaned.
    pub fn initial(log_start: Offset) -> Self {
        CleanerCheckpoint {
            first_dirty: log_start,
            compacted_end: Offset(0),
        }
    }

    fn encode(&self) -> [u8; CHECKPOINT_BYTES] {
        let mut out = [0u8; CHECKPOINT_BYTES];
        out[..4].copy_from_slice(&CHECKPOINT_VERSION.to_be_bytes());
        out[4..12].copy_from_slice(&self.first_dirty.get().to_be_bytes());
        out[12..20].copy_from_slice(&self.compacted_end.get().to_be_bytes());
        let crc = crc32c::crc32c(&out[..20]);
        out[20..].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; CHECKPOINT_BYTES] = bytes.try_into().ok()?;
        let (head, crc) = b.split_at(20);
        let crc: [u8; 4] = crc.try_into().ok()?;
        if crc32c::crc32c(head) != u32::from_be_bytes(crc) {
            return None;
        }
        let version: [u8; 4] = head.get(..4)?.try_into().ok()?;
        if u32::from_be_bytes(version) != CHECKPOINT_VERSION {
            return None;
        }
        let first: [u8; 8] = head.get(4..12)?.try_into().ok()?;
        let end: [u8; 8] = head.get(12..20)?.try_into().ok()?;
        Some(CleanerCheckpoint {
            first_dirty: Offset(i64::from_be_bytes(first)),
            compacted_end: Offset(i64::from_be_bytes(end)),
        })
    }

    /// Atomically replace the checkpoint file.
    pub fn write(&self, dir: &Path) -> Result<(), StorageError> {
        checkpoint::write_atomically(
            dir,
            CLEANER_CHECKPOINT_FILE,
            CLEANER_CHECKPOINT_TMP_FILE,
            &self.encode(),
        )
    }

    /// The checkpoint, `None` if absent or damaged (warned: the caller then
    /// treats the whole log as dirty and allows no gaps in the active segment).
    pub fn read(dir: &Path) -> Result<Option<Self>, StorageError> {
        let path = dir.join(CLEANER_CHECKPOINT_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("read", &path, e)),
        };
        let decoded = Self::decode(&bytes);
        if decoded.is_none() {
            tracing::warn!(path = %path.display(), "ignoring damaged cleaner checkpoint");
        }
        Ok(decoded)
    }
}

// ---------------------------------------------------------------------------
// Recovery of interrupted replacements

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove_if_exists(path: &Path) -> Result<bool, StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StorageError::io("remove", path, e)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    fs::rename(from, to).map_err(|e| StorageError::io("rename", to, e))
}

/// Rename `from` to `to` if `from` exists; whether it did.
fn rename_if_exists(from: &Path, to: &Path) -> Result<bool, StorageError> {
    match fs::rename(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StorageError::io("rename", to, e)),
    }
}

/// The end offset (last batch's next offset) of a committed `.log.swap`
/// file, checking every batch's framing and CRC. It was fsynced before being
/// renamed, so damage means the storage itself failed: reported as corrupt.
fn swap_end_offset(path: &Path, base: Offset) -> Result<Offset, StorageError> {
    let file = File::open(path).map_err(|e| StorageError::io("open", path, e))?;
    let size = file
        .metadata()
        .map_err(|e| StorageError::io("stat", path, e))?
        .len();
    let corrupt = |position: u64, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        position,
        reason,
    };
    let mut walker = Walker::new(&file, 0, size, SCAN_BUFFER_BYTES);
    let mut body = Vec::new();
    let mut end = base;
    loop {
        let step = walker
            .next(Some(&mut body))
            .map_err(|e| StorageError::io("read", path, e))?;
        match step {
            Step::End => return Ok(end),
            Step::Stop { position, reason } => return Err(corrupt(position, reason)),
            Step::Batch { position, header } => {
                batch::verify_crc(&body).map_err(|e| corrupt(position, e.to_string()))?;
                if header.base_offset < end {
                    return Err(corrupt(position, "batch offsets do not increase".into()));
                }
                end = header.next_offset();
            }
        }
    }
}

/// Finish or undo segment replacements a crash interrupted (see the module
/// docs). Runs on open before any segment is loaded.
pub(crate) fn complete_interrupted_swaps(dir: &Path) -> Result<(), StorageError> {
    let mut log_swaps = Vec::new();
    let mut index_swaps = Vec::new();
    let mut logs = Vec::new();
    let mut changed = false;
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED_SUFFIX) {
            tracing::info!(path = %entry.path().display(), "removing an unfinished cleaned segment file");
            changed |= remove_if_exists(&entry.path())?;
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            match segment::parse_file_name(stem, LOG_SUFFIX) {
                Some(base) => log_swaps.push(base),
                None => index_swaps.push(entry.path()),
            }
        } else if let Some(base) = segment::parse_file_name(name, LOG_SUFFIX) {
            logs.push(base);
        }
    }
    log_swaps.sort();
    for base in log_swaps {
        let (log, index, time_index) = SegmentFiles::paths(dir, base);
        let swap = with_suffix(&log, SWAP_SUFFIX);
        let end = swap_end_offset(&swap, base)?;
        tracing::info!(path = %swap.display(), end_offset = end.get(), "completing an interrupted segment replacement");
        for &orig in logs
            .iter()
            .filter(|&&b| b >= base && b < end.max(base.plus(1)))
        {
            let (l, i, t) = SegmentFiles::paths(dir, orig);
            for path in [&l, &i, &t] {
                remove_if_exists(path)?;
            }
        }
        checkpoint::sync_dir(dir)?;
        for path in [&index, &time_index] {
            let staged = with_suffix(path, SWAP_SUFFIX);
            rename_if_exists(&staged, path)?;
            index_swaps.retain(|p| p != &staged);
        }
        rename(&swap, &log)?;
        changed = true;
    }
    for path in index_swaps {
        tracing::info!(path = %path.display(), "removing an uncommitted cleaned index");
        changed |= remove_if_exists(&path)?;
    }
    if changed {
        checkpoint::sync_dir(dir)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Planning

/// A sealed segment as the cleaner sees it (copied under the state lock).
#[derive(Clone, Debug)]
pub(crate) struct SegmentSnapshot {
    pub files: Arc<SegmentFiles>,
    pub next_offset: Offset,
    pub size: u64,
    pub max_timestamp: i64,
    pub index_entries: usize,
    pub time_entries: usize,
    /// A batch boundary: every byte before it holds records below the first
    /// dirty offset (the segment size when all of it is clean).
    pub dirty_position: u64,
}

impl SegmentSnapshot {
    pub fn base(&self) -> Offset {
        self.files.base
    }

    fn dirty_bytes(&self) -> u64 {
        self.size.saturating_sub(self.dirty_position)
    }
}

/// Dirty bytes over all bytes of `segments` (0 when empty).
pub(crate) fn dirty_ratio(segments: &[SegmentSnapshot]) -> f64 {
    let total: u64 = segments.iter().map(|s| s.size).sum();
    let dirty: u64 = segments.iter().map(SegmentSnapshot::dirty_bytes).sum();
    if total == 0 {
        0.0
    } else {
        dirty as f64 / total as f64
    }
}

/// Whether and what to clean.
pub(crate) struct Plan {
    /// How many of the sealed segments form the cleanable range.
    pub cleanable: usize,
    pub dirty_ratio: f64,
}

/// Decide whether a clean is due (see the module docs); `None` if not.
/// `tombstones_due`: a tombstone kept by an earlier clean has passed
/// `delete.retention.ms`, so a clean is due even without new dirty data (the
/// role of Kafka's delete horizon, KIP-534).
pub(crate) fn plan(
    segments: &[SegmentSnapshot],
    first_dirty: Offset,
    config: &CompactionConfig,
    now: TimestampMs,
    tombstones_due: bool,
) -> Result<Option<Plan>, StorageError> {
    let lag_horizon = now
        .get()
        .saturating_sub(config.min_compaction_lag_ms.max(0));
    let cleanable = segments
        .iter()
        .position(|s| s.next_offset > first_dirty && s.max_timestamp > lag_horizon)
        .unwrap_or(segments.len());
    let range = segments.get(..cleanable).unwrap_or_default();
    if range.iter().all(|s| s.size == 0) {
        return Ok(None);
    }
    let ratio = dirty_ratio(range);
    let mut due = tombstones_due || ratio >= config.min_cleanable_dirty_ratio;
    if !due {
        let max_horizon = now
            .get()
            .saturating_sub(config.max_compaction_lag_ms.max(0));
        if let Some(s) = range.iter().find(|s| s.dirty_bytes() > 0) {
            let first = segment::find_batch(&s.files, s.dirty_position, s.size, |_, h| {
                Ok((h.last_offset() >= first_dirty).then_some(h.max_timestamp.get()))
            })?;
            due = first.is_some_and(|ts| ts >= 0 && ts < max_horizon);
        }
    }
    Ok(due.then_some(Plan {
        cleanable,
        dirty_ratio: ratio,
    }))
}

// ---------------------------------------------------------------------------
// Pass 1: the offset map

/// Key hash → latest offset, at most `entries_max` entries.
pub(crate) struct OffsetMap {
    hash_keys: (RandomState, RandomState),
    map: HashMap<u128, i64>,
    entries_max: usize,
}

impl OffsetMap {
    fn new(entries_max: usize) -> Self {
        OffsetMap {
            hash_keys: (RandomState::new(), RandomState::new()),
            map: HashMap::new(),
            entries_max: entries_max.max(1),
        }
    }

    fn hash(&self, key: &[u8]) -> u128 {
        let hi = self.hash_keys.0.hash_one(key);
        let lo = self.hash_keys.1.hash_one(key);
        (u128::from(hi) << 64) | u128::from(lo)
    }

    /// Record `offset` as the latest for `key`; false when the map is full
    /// and `key` is new.
    fn insert(&mut self, key: &[u8], offset: Offset) -> bool {
        let h = self.hash(key);
        if self.map.len() >= self.entries_max && !self.map.contains_key(&h) {
            return false;
        }
        self.map.insert(h, offset.get());
        true
    }

    fn latest(&self, key: &[u8]) -> Option<Offset> {
        self.map.get(&self.hash(key)).copied().map(Offset)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

fn corrupt(files: &SegmentFiles, position: u64, reason: impl std::fmt::Display) -> StorageError {
    files.corrupt(position, &reason.to_string())
}

/// Visit every CRC-checked batch (with its bytes) of `s` from `start`.
fn for_each_batch(
    s: &SegmentSnapshot,
    start: u64,
    mut visit: impl FnMut(u64, &BatchHeader, &[u8]) -> Result<bool, StorageError>,
) -> Result<(), StorageError> {
    let files = &s.files;
    let mut walker = Walker::new(&files.log, start, s.size, SCAN_BUFFER_BYTES);
    let mut body = Vec::new();
    loop {
        let step = walker
            .next(Some(&mut body))
            .map_err(|e| StorageError::io("read", &files.log_path, e))?;
        match step {
            Step::End => return Ok(()),
            Step::Stop { position, reason } => return Err(corrupt(files, position, reason)),
            Step::Batch { position, header } => {
                batch::verify_crc(&body).map_err(|e| corrupt(files, position, e))?;
                if !visit(position, &header, &body)? {
                    return Ok(());
                }
            }
        }
    }
}

/// Build the offset map over the dirty records of `cleanable`; returns it
/// and the dirty end.
pub(crate) fn build_offset_map(
    cleanable: &[SegmentSnapshot],
    first_dirty: Offset,
    config: &CompactionConfig,
    aborted: &AbortedRanges,
) -> Result<(OffsetMap, Offset), StorageError> {
    let mut map = OffsetMap::new(config.map_entries_max);
    let range_end = cleanable.last().map_or(first_dirty, |s| s.next_offset);
    let mut full_at = None;
    for s in cleanable.iter().filter(|s| s.dirty_bytes() > 0) {
        for_each_batch(s, s.dirty_position, |position, h, bytes| {
            if h.last_offset() < first_dirty || h.is_control() || aborted.is_aborted(h) {
                return Ok(true);
            }
            let records = batch::records(bytes, config.decompressed_bytes_max)
                .map_err(|e| corrupt(&s.files, position, e))?;
            for r in &records {
                let offset = h.record_offset(r);
                let Some(key) = r.key.as_deref() else {
                    continue;
                };
                if offset < first_dirty {
                    continue;
                }
                if !map.insert(key, offset) {
                    full_at = Some(offset);
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if full_at.is_some() {
            break;
        }
    }
    let dirty_end = full_at.unwrap_or(range_end.max(first_dirty));
    Ok((map, dirty_end))
}

/// The base offset of each producer's last batch in `segments` (header walk).
pub(crate) struct ProducerLastBatches {
    last: HashMap<i64, Offset>,
    overflowed: bool,
}

impl ProducerLastBatches {
    pub fn scan(segments: &[SegmentSnapshot]) -> Result<Self, StorageError> {
        let mut out = ProducerLastBatches {
            last: HashMap::new(),
            overflowed: false,
        };
        for s in segments {
            segment::find_batch(&s.files, 0, s.size, |_, h| {
                let pid = h.producer_id.get();
                if pid >= 0 {
                    if out.last.len() < PRODUCER_ENTRIES_MAX || out.last.contains_key(&pid) {
                        out.last.insert(pid, h.base_offset);
                    } else {
                        out.overflowed = true;
                    }
                }
                Ok(None::<()>)
            })?;
        }
        Ok(out)
    }

    /// Whether an emptied batch must stay for its producer's sake.
    pub(crate) fn keep_empty(&self, header: &BatchHeader) -> bool {
        let pid = header.producer_id.get();
        pid >= 0 && (self.overflowed || self.last.get(&pid) == Some(&header.base_offset))
    }
}

/// Split the rewritten segments into groups merged into one segment each:
/// consecutive non-empty segments within the size, offset-range and index
/// bounds of one segment.
pub(crate) fn group_segments(
    segments: &[SegmentSnapshot],
    log_config: &LogConfig,
) -> Vec<Range<usize>> {
    let bytes_max = log_config
        .effective_segment_bytes()
        .min(SEGMENT_BYTES_MAX / 2);
    let index_entries_max = log_config.segment_index_bytes / OFFSET_INDEX_ENTRY_BYTES as u64;
    let time_entries_max = log_config.segment_index_bytes / TIME_INDEX_ENTRY_BYTES as u64;
    let mut groups = Vec::new();
    let mut start = None::<usize>;
    let (mut bytes, mut idx, mut tidx) = (0u64, 0u64, 0u64);
    for (i, s) in segments.iter().enumerate() {
        if s.size == 0 {
            if let Some(st) = start.take() {
                groups.push(st..i);
            }
            continue;
        }
        if let Some(st) = start {
            let group_base = segments.get(st).map_or(s.base(), SegmentSnapshot::base);
            let span = s.next_offset.get().saturating_sub(1) - group_base.get();
            let fits = bytes + s.size <= bytes_max
                && span <= RELATIVE_OFFSET_MAX
                && idx + s.index_entries as u64 + 1 < index_entries_max
                && tidx + s.time_entries as u64 + 1 < time_entries_max;
            if !fits {
                groups.push(st..i);
                start = None;
            }
        }
        if start.is_none() {
            start = Some(i);
            (bytes, idx, tidx) = (0, 0, 0);
        }
        bytes += s.size;
        idx += s.index_entries as u64;
        tidx += s.time_entries as u64;
    }
    if let Some(st) = start {
        groups.push(st..segments.len());
    }
    groups
}

// ---------------------------------------------------------------------------
// Pass 2: rewriting

/// Everything pass 2 needs besides the segments.
pub(crate) struct Rewriter {
    map: OffsetMap,
    producers: ProducerLastBatches,
    /// Aborted data and markers (see [`txn`]).
    pub txns: TxnCleaning,
    dirty_end: Offset,
    /// The first dirty offset this clean started from: tombstones below it
    /// may go.
    clean_end: Offset,
    /// Tombstones in batches whose `maxTimestamp` is below this may go.
    tombstone_horizon: i64,
    /// `delete.retention.ms`.
    delete_retention_ms: i64,
    /// The earliest time a tombstone kept by this clean may be removed by a
    /// later one (its batch `maxTimestamp` + `delete.retention.ms`).
    pub tombstone_deadline: Option<i64>,
    decompressed_bytes_max: usize,
    index_interval_bytes: u32,
}

impl Rewriter {
    /// `aborted`: the aborted transactions overlapping the rewritten range.
    pub fn new(
        map: OffsetMap,
        producers: ProducerLastBatches,
        aborted: AbortedRanges,
        (first_dirty, dirty_end): (Offset, Offset),
        config: &CompactionConfig,
        log_config: &LogConfig,
        now: TimestampMs,
    ) -> Self {
        Rewriter {
            map,
            producers,
            txns: TxnCleaning::new(aborted, now.get(), config.delete_retention_ms),
            dirty_end,
            clean_end: first_dirty,
            tombstone_horizon: now.get().saturating_sub(config.delete_retention_ms.max(0)),
            delete_retention_ms: config.delete_retention_ms.max(0),
            tombstone_deadline: None,
            decompressed_bytes_max: config.decompressed_bytes_max,
            index_interval_bytes: log_config.index_interval_bytes,
        }
    }
}

/// Counters of one rewritten group.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct GroupStats {
    pub records_read: u64,
    /// Records of aborted transactions dropped.
    pub aborted_dropped: u64,
    pub records_kept: u64,
    pub tombstones_dropped: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// A merged segment written to `.cleaned` files, ready to replace `originals`.
pub(crate) struct CleanedGroup {
    pub originals: Vec<Arc<SegmentFiles>>,
    /// Final paths; `log` is the handle of the written file.
    pub files: SegmentFiles,
    pub meta: SegmentMeta,
    /// Whether the result differs from the originals (merged or rewritten).
    pub changed: bool,
    pub stats: GroupStats,
}

/// What to write for one source batch.
enum Output {
    Verbatim,
    Rebuilt(Vec<u8>),
    Drop,
}

impl Rewriter {
    fn decide(
        &mut self,
        files: &SegmentFiles,
        position: u64,
        h: &BatchHeader,
        bytes: &[u8],
        last_of_group: bool,
        stats: &mut GroupStats,
    ) -> Result<Output, StorageError> {
        let count = u64::try_from(h.records_count).unwrap_or(0);
        stats.records_read += count;
        let decode = |max| batch::records(bytes, max).map_err(|e| corrupt(files, position, e));
        let must_stay = last_of_group || self.producers.keep_empty(h);
        if h.is_control() {
            let marker = if h.producer_id.get() < 0 {
                None
            } else {
                control::parse_marker(h, bytes).ok().flatten()
            };
            return match self.txns.on_control(h, marker, must_stay) {
                MarkerFate::Keep => {
                    stats.records_kept += count;
                    Ok(Output::Verbatim)
                }
                MarkerFate::SetHorizon(horizon) => {
                    stats.records_kept += count;
                    let records = decode(self.decompressed_bytes_max)?;
                    let all: Vec<&Record> = records.iter().collect();
                    rebuild_batch(h, &all, Some(horizon))
                        .map(Output::Rebuilt)
                        .map_err(|e| corrupt(files, position, e))
                }
                MarkerFate::Remove => Ok(Output::Drop),
            };
        }
        if self.txns.on_data(h) {
            // An aborted transaction's records never stay.
            stats.aborted_dropped += count;
            return self.emptied(files, position, h, last_of_group);
        }
        if h.base_offset >= self.dirty_end {
            stats.records_kept += count;
            return Ok(Output::Verbatim);
        }
        let records = decode(self.decompressed_bytes_max)?;
        let mut kept = Vec::with_capacity(records.len());
        for r in records.iter() {
            let offset = h.record_offset(r);
            let keep = offset >= self.dirty_end
                || match r.key.as_deref() {
                    None => false,
                    Some(key) => {
                        if self.map.latest(key).is_some_and(|latest| offset < latest) {
                            false
                        } else if r.value.is_none()
                            && offset < self.clean_end
                            && h.max_timestamp.get() < self.tombstone_horizon
                        {
                            stats.tombstones_dropped += 1;
                            false
                        } else {
                            true
                        }
                    }
                };
            if keep {
                if r.value.is_none() && r.key.is_some() {
                    let deadline = h
                        .max_timestamp
                        .get()
                        .saturating_add(self.delete_retention_ms);
                    self.tombstone_deadline = Some(
                        self.tombstone_deadline
                            .map_or(deadline, |d| d.min(deadline)),
                    );
                }
                kept.push(r);
            }
        }
        stats.records_kept += kept.len() as u64;
        if kept.len() == records.len() && kept.len() as u64 == count {
            return Ok(Output::Verbatim);
        }
        if !kept.is_empty() {
            let rebuilt = rebuild_batch(h, &kept, None).map_err(|e| corrupt(files, position, e))?;
            return Ok(Output::Rebuilt(rebuilt));
        }
        self.emptied(files, position, h, last_of_group)
    }

    /// What stays of a data batch none of whose records stay: an empty
    /// batch for its producer's sake (its last batch), or only for its
    /// offsets (the last of a merged segment: then without the producer, so
    /// it no longer holds its transaction's marker back), else nothing.
    fn emptied(
        &self,
        files: &SegmentFiles,
        position: u64,
        h: &BatchHeader,
        last_of_group: bool,
    ) -> Result<Output, StorageError> {
        let empty = if self.producers.keep_empty(h) {
            empty_batch(h)
        } else if last_of_group {
            empty_batch(&anonymous(h))
        } else {
            return Ok(Output::Drop);
        };
        empty
            .map(Output::Rebuilt)
            .map_err(|e| corrupt(files, position, e))
    }

    /// Rewrite `group` (consecutive sealed segments) into `.cleaned` files
    /// named after the first one.
    pub fn clean_group(
        &mut self,
        dir: &Path,
        group: &[SegmentSnapshot],
    ) -> Result<CleanedGroup, StorageError> {
        let Some(first) = group.first() else {
            return Err(StorageError::Corrupt {
                path: dir.to_path_buf(),
                position: 0,
                reason: "empty compaction group".into(),
            });
        };
        let base = first.base();
        let group_end = group.last().map_or(base, |s| s.next_offset);
        let (log_path, index_path, time_index_path) = SegmentFiles::paths(dir, base);
        let staged_log = with_suffix(&log_path, CLEANED_SUFFIX);
        let out = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&staged_log)
            .map_err(|e| StorageError::io("create", &staged_log, e))?;
        let result = self.write_group(group, base, group_end, &out, &staged_log);
        let (meta, stats, changed) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = remove_if_exists(&staged_log);
                return Err(e);
            }
        };
        let cleaned = CleanedGroup {
            originals: group.iter().map(|s| Arc::clone(&s.files)).collect(),
            files: SegmentFiles {
                base,
                log_path,
                index_path,
                time_index_path,
                txn_index_path: crate::txn_index::path(dir, base),
                log: out,
            },
            meta,
            changed: changed || group.len() > 1,
            stats,
        };
        let written = segment::write_file_synced(
            &cleaned.staged(&cleaned.files.index_path, CLEANED_SUFFIX),
            &index::encode_offset_index(&cleaned.meta.index),
        )
        .and_then(|()| {
            segment::write_file_synced(
                &cleaned.staged(&cleaned.files.time_index_path, CLEANED_SUFFIX),
                &index::encode_time_index(&cleaned.meta.time_index),
            )
        });
        if let Err(e) = written {
            cleaned.discard();
            return Err(e);
        }
        Ok(cleaned)
    }

    fn write_group(
        &mut self,
        group: &[SegmentSnapshot],
        base: Offset,
        group_end: Offset,
        out: &File,
        out_path: &Path,
    ) -> Result<(SegmentMeta, GroupStats, bool), StorageError> {
        let mut meta = SegmentMeta::empty(base);
        let mut stats = GroupStats::default();
        let mut changed = false;
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, out);
        let write_err = |e| StorageError::io("write", out_path, e);
        for s in group {
            stats.bytes_before += s.size;
            for_each_batch(s, 0, |position, h, bytes| {
                let last = h.next_offset() >= group_end;
                let output = self.decide(&s.files, position, h, bytes, last, &mut stats)?;
                let rebuilt;
                let written: &[u8] = match output {
                    Output::Drop => {
                        changed = true;
                        return Ok(true);
                    }
                    Output::Verbatim => bytes,
                    Output::Rebuilt(b) => {
                        changed = true;
                        rebuilt = b;
                        &rebuilt
                    }
                };
                let header =
                    BatchHeader::parse(written).map_err(|e| corrupt(&s.files, position, e))?;
                if meta.size + written.len() as u64 > SEGMENT_BYTES_MAX {
                    return Err(corrupt(
                        &s.files,
                        position,
                        "cleaned segment would exceed 4 GiB",
                    ));
                }
                writer.write_all(written).map_err(write_err)?;
                if meta.size == 0 {
                    meta.roll_clock_start = segment::roll_clock_from(&header);
                }
                let plan = meta.plan_append(base, meta.size, &header, self.index_interval_bytes);
                meta.apply(&plan);
                Ok(true)
            })?;
        }
        writer.flush().map_err(write_err)?;
        drop(writer);
        out.sync_all().map_err(write_err)?;
        if let Some(e) = meta.final_time_entry(base) {
            meta.time_index.push(e);
        }
        stats.bytes_after = meta.size;
        Ok((meta, stats, changed))
    }
}

// ---------------------------------------------------------------------------
// Replacement steps

fn crashes(crash: Option<SwapCrashPoint>, here: SwapCrashPoint) -> bool {
    crash == Some(here)
}

impl CleanedGroup {
    fn staged(&self, final_path: &Path, suffix: &str) -> PathBuf {
        with_suffix(final_path, suffix)
    }

    fn final_paths(&self) -> [&Path; 3] {
        // Indexes first, the log (the commit point) last.
        [
            &self.files.index_path,
            &self.files.time_index_path,
            &self.files.log_path,
        ]
    }

    /// Remove the staged (`.cleaned` and `.swap`) files of a replacement
    /// that will not happen (best effort: open removes leftovers anyway).
    pub fn discard(&self) {
        for path in self.final_paths() {
            for suffix in [CLEANED_SUFFIX, SWAP_SUFFIX] {
                if let Err(e) = remove_if_exists(&self.staged(path, suffix)) {
                    tracing::warn!(error = %e, "cannot remove a discarded cleaned segment file");
                }
            }
        }
    }

    /// Steps 3 (commit) to 5 of the module docs. `Ok(false)` when the crash
    /// hook stopped it. An error before the commit leaves the originals in
    /// place (the caller discards the staged files); after it, only a reopen
    /// can finish the job (`committed` tells which).
    pub fn replace_originals(
        &self,
        dir: &Path,
        crash: Option<SwapCrashPoint>,
        committed: &mut bool,
    ) -> Result<bool, StorageError> {
        for (i, path) in self.final_paths().into_iter().enumerate() {
            if i == 2 && crashes(crash, SwapCrashPoint::IndexesStaged) {
                return Ok(false);
            }
            rename(
                &self.staged(path, CLEANED_SUFFIX),
                &self.staged(path, SWAP_SUFFIX),
            )?;
        }
        *committed = true;
        checkpoint::sync_dir(dir)?;
        if crashes(crash, SwapCrashPoint::Swapped) {
            return Ok(false);
        }
        for orig in &self.originals {
            let (l, i, t) = SegmentFiles::paths(dir, orig.base);
            for path in [&l, &i, &t] {
                remove_if_exists(path)?;
            }
        }
        checkpoint::sync_dir(dir)?;
        if crashes(crash, SwapCrashPoint::OriginalsDeleted) {
            return Ok(false);
        }
        for (i, path) in self.final_paths().into_iter().enumerate() {
            if i == 2 && crashes(crash, SwapCrashPoint::IndexesInstalled) {
                return Ok(false);
            }
            rename(&self.staged(path, SWAP_SUFFIX), path)?;
        }
        checkpoint::sync_dir(dir)?;
        Ok(true)
    }
}

// ---------------------------------------------------------------------------
// Batch encoding

/// Append a zigzag varint (also used for i32 values: for those the zigzag
/// encodings of the 32- and 64-bit forms are the same number).
fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn too_large(n: usize) -> batch::BatchError {
    batch::BatchError::BatchTooLarge {
        batch_bytes: n,
        limit_bytes: i32::MAX as usize,
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) -> Result<(), batch::BatchError> {
    let n = i32::try_from(n).map_err(|_| too_large(n))?;
    put_varlong(out, i64::from(n));
    Ok(())
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<(), batch::BatchError> {
    match bytes {
        None => put_varlong(out, -1),
        Some(b) => {
            put_len(out, b.len())?;
            out.extend_from_slice(b);
        }
    }
    Ok(())
}

/// Encode one record exactly as the batch format lays it out, keeping its
/// original offset and timestamp deltas.
fn encode_record(
    out: &mut Vec<u8>,
    body: &mut Vec<u8>,
    r: &Record,
) -> Result<(), batch::BatchError> {
    body.clear();
    body.push(r.attributes as u8);
    put_varlong(body, r.timestamp_delta);
    put_varlong(body, i64::from(r.offset_delta));
    put_nullable(body, r.key.as_deref())?;
    put_nullable(body, r.value.as_deref())?;
    put_len(body, r.headers.len())?;
    for h in &r.headers {
        put_nullable(body, Some(&h.key))?;
        put_nullable(body, h.value.as_deref())?;
    }
    put_len(out, body.len())?;
    out.extend_from_slice(body);
    Ok(())
}

/// A batch with `source`'s header fields and the given attributes, max
/// timestamp, record count and (already compressed) records section.
fn encode_batch(
    source: &BatchHeader,
    attributes: i16,
    max_timestamp: i64,
    records_count: usize,
    section: &[u8],
) -> Result<Vec<u8>, batch::BatchError> {
    let total = BATCH_HEADER_BYTES + section.len();
    let batch_length = i32::try_from(total - LOG_OVERHEAD_BYTES).map_err(|_| too_large(total))?;
    let records_count = i32::try_from(records_count).map_err(|_| too_large(records_count))?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&source.base_offset.get().to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&source.partition_leader_epoch.get().to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&source.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&source.base_timestamp.get().to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&source.producer_id.get().to_be_bytes());
    out.extend_from_slice(&source.producer_epoch.get().to_be_bytes());
    out.extend_from_slice(&source.base_sequence.to_be_bytes());
    out.extend_from_slice(&records_count.to_be_bytes());
    debug_assert_eq!(out.len(), BATCH_HEADER_BYTES);
    out.extend_from_slice(section);
    let crc = batch::compute_crc(&out)?;
    if let Some(dst) = out.get_mut(field::CRC..field::CRC + 4) {
        dst.copy_from_slice(&crc.to_be_bytes());
    }
    Ok(out)
}

/// `source` with only `kept` (a non-empty subset of its records, in order);
/// with `delete_horizon`, the batch carries it (attributes bit 6,
/// `baseTimestamp` = the horizon) and the records' timestamp deltas are
/// re-based on it, so their timestamps do not change.
fn rebuild_batch(
    source: &BatchHeader,
    kept: &[&Record],
    delete_horizon: Option<i64>,
) -> Result<Vec<u8>, batch::BatchError> {
    let mut section = Vec::new();
    let mut body = Vec::new();
    let mut header = source.clone();
    if let Some(horizon) = delete_horizon {
        header.base_timestamp = TimestampMs(horizon);
        header.attributes |= ATTR_DELETE_HORIZON;
    }
    for r in kept {
        if delete_horizon.is_some() {
            let mut moved = (*r).clone();
            moved.timestamp_delta = source
                .base_timestamp
                .get()
                .saturating_add(r.timestamp_delta)
                .saturating_sub(header.base_timestamp.get());
            encode_record(&mut section, &mut body, &moved)?;
        } else {
            encode_record(&mut section, &mut body, r)?;
        }
    }
    let section = compression::compress(source.compression()?, &section)?;
    let max_timestamp = if source.log_append_time() {
        source.max_timestamp
    } else {
        kept.iter()
            .map(|r| source.record_timestamp(r))
            .max()
            .unwrap_or(source.max_timestamp)
    };
    encode_batch(
        &header,
        header.attributes,
        max_timestamp.get(),
        kept.len(),
        &section,
    )
}

/// `source` without its producer and transactional flag.
fn anonymous(source: &BatchHeader) -> BatchHeader {
    let mut h = source.clone();
    h.producer_id = samsa_model::ProducerId(-1);
    h.producer_epoch = samsa_model::ProducerEpoch(-1);
    h.base_sequence = -1;
    h.attributes &= !ATTR_TRANSACTIONAL;
    h
}

/// `source` with no records: no records section, so no codec either.
fn empty_batch(source: &BatchHeader) -> Result<Vec<u8>, batch::BatchError> {
    encode_batch(
        source,
        source.attributes & !ATTR_COMPRESSION_MASK,
        source.max_timestamp.get(),
        0,
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use samsa_model::batch::{BatchBuilder, NewRecord};
    use samsa_model::compression::Compression;
    use samsa_model::{ProducerEpoch, ProducerId};

    #[test]
    fn checkpoint_round_trip_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(CleanerCheckpoint::read(dir.path()).expect("read"), None);
        let cp = CleanerCheckpoint {
            first_dirty: Offset(77),
            compacted_end: Offset(120),
        };
        cp.write(dir.path()).expect("write");
        assert_eq!(CleanerCheckpoint::read(dir.path()).expect("read"), Some(cp));
        let path = dir.path().join(CLEANER_CHECKPOINT_FILE);
        let mut bytes = fs::read(&path).expect("bytes");
        bytes[13] ^= 1;
        fs::write(&path, &bytes).expect("damage");
        assert_eq!(CleanerCheckpoint::read(dir.path()).expect("read"), None);
        fs::write(&path, b"short").expect("damage");
        assert_eq!(CleanerCheckpoint::read(dir.path()).expect("read"), None);
    }

    #[test]
    fn re_encoding_all_records_reproduces_the_batch() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::from(i32::MAX),
            i64::MIN / 4,
        ] {
            let b = BatchBuilder::new()
                .record(NewRecord::new(TimestampMs(1000), Some(b"k"), Some(b"v")))
                .record(
                    NewRecord::new(TimestampMs(1000 + v), None, None).with_header(b"h", Some(b"x")),
                )
                .record(NewRecord::new(
                    TimestampMs(1000),
                    Some(&[7; 200]),
                    Some(&[9; 70]),
                ))
                .build()
                .expect("build");
            let h = BatchHeader::parse(&b).expect("parse");
            let r = batch::records(&b, 1 << 20).expect("records");
            let all: Vec<&Record> = r.iter().collect();
            let rebuilt = rebuild_batch(&h, &all, None).expect("rebuild");
            assert_eq!(rebuilt, b, "timestamp delta {v}");
        }
    }

    #[test]
    fn rebuilt_and_empty_batches_keep_offsets_and_producer_fields() {
        for codec in Compression::ALL {
            let b = BatchBuilder::new()
                .compression(codec)
                .base_offset(Offset(100))
                .producer(ProducerId(7), ProducerEpoch(2), 40)
                .record(NewRecord::new(TimestampMs(10), Some(b"a"), Some(b"1")))
                .record(NewRecord::new(TimestampMs(30), Some(b"b"), None).with_header(b"h", None))
                .record(NewRecord::new(TimestampMs(20), Some(b"c"), Some(b"3")))
                .build()
                .expect("build");
            let h = BatchHeader::parse(&b).expect("parse");
            let r = batch::records(&b, 1 << 20).expect("records");
            let rebuilt = rebuild_batch(&h, &[&r[0], &r[2]], None).expect("rebuild");
            batch::verify_crc(&rebuilt).expect("crc");
            let nh = BatchHeader::parse(&rebuilt).expect("parse");
            assert_eq!(nh.base_offset, Offset(100));
            assert_eq!(nh.last_offset_delta, 2);
            assert_eq!(nh.records_count, 2);
            assert_eq!(nh.max_timestamp, TimestampMs(20));
            assert_eq!(nh.producer_id, ProducerId(7));
            assert_eq!(nh.base_sequence, 40);
            assert_eq!(nh.compression().expect("codec"), codec);
            let nr = batch::records(&rebuilt, 1 << 20).expect("records");
            let offsets: Vec<_> = nr.iter().map(|x| nh.record_offset(x).get()).collect();
            assert_eq!(offsets, vec![100, 102]);
            assert_eq!(nr[1].value.as_deref(), Some(&b"3"[..]));
            assert_eq!(nh.record_timestamp(&nr[1]), TimestampMs(20));

            let empty = empty_batch(&h).expect("empty");
            batch::verify_crc(&empty).expect("crc");
            let eh = BatchHeader::parse(&empty).expect("parse");
            assert_eq!(eh.size_bytes(), BATCH_HEADER_BYTES);
            assert_eq!(eh.records_count, 0);
            assert_eq!(eh.next_offset(), Offset(103));
            assert_eq!(eh.compression().expect("codec"), Compression::None);
            assert!(batch::records(&empty, 1 << 20).expect("records").is_empty());
        }
    }
}
