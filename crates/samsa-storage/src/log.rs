//! [`PartitionLog`]: one partition's segmented log on disk, shared by one writer and many readers.
//!
//! # Directory layout
//!
//! The broker picks one directory per partition and passes it to
//! [`PartitionLog::open`]. Inside it:
//!
//! - `<base offset, 20 digits>.log` / `.index` / `.timeindex` per segment
//!   ([`crate::segment`], [`crate::index`]); the segment with the highest base
//!   offset is the *active* one, the only one appended to.
//! - `log-start-offset`: the checkpointed log start offset
//!   ([`crate::checkpoint`]), moved by [`PartitionLog::delete_records_before`]
//!   and retention.
//! - `recovery-point`: the base offset of the first segment that may hold
//!   bytes not yet fsynced (same layout, [`crate::checkpoint`]); see below.
//! - `clean-shutdown`: an empty marker written by [`PartitionLog::close`] after
//!   everything was fsynced, and removed (durably) on open before any write.
//! - `cleaner-checkpoint`: the compaction checkpoint (first dirty offset and
//!   compacted end), and `*.cleaned` / `*.swap`: segments being written or
//!   committed by a compaction; see [`crate::cleaner`] for their layouts and
//!   how open finishes or undoes an interrupted segment replacement.
//! - `leader-epoch-checkpoint`: the leader epoch cache, Kafka's text format
//!   (`0`, the entry count, then one `<epoch> <start offset>` line per epoch;
//!   see [`crate::epoch_cache`] for the layout and how open trims or rebuilds
//!   it after a crash). Maintained by appends (a batch of a new epoch records
//!   it durably before the batch is written), [`PartitionLog::assign_epoch`],
//!   truncation and log start moves.
//! - `high-watermark`: the last high watermark the broker checkpointed, one
//!   decimal line ([`crate::high_watermark`]); written by
//!   [`PartitionLog::write_high_watermark`], never read by the log itself.
//! - `<offset, 20 digits>.snapshot`: idempotent producers' state as of that
//!   offset ([`crate::producer_snapshot`] has the layout, when they are
//!   written and their crash behaviour); the state itself lives with the
//!   writer ([`crate::producer_state`]).
//! - `<base offset, 20 digits>.txnindex`: the aborted transactions whose
//!   ABORT markers the segment holds ([`crate::txn_index`] has the layout,
//!   crash behaviour and how open rebuilds it).
//! - `*.tmp`: leftovers of an interrupted checkpoint write, deleted on open.
//! - `*.deleted`: files of segments deleted by retention or a log start move,
//!   renamed under the writer lock and unlinked by a background thread
//!   ([`crate::deleter`]); leftovers are deleted on open.
//!
//! # Concurrency
//!
//! All methods take `&self`; the type is `Send + Sync`. Mutations (append,
//! roll, truncation, deletion, flush, close) are serialised by a writer mutex.
//! The in-memory view of the segments sits behind a read-write lock that is
//! held only for short bookkeeping, never across file I/O: readers copy what
//! they need (an `Arc` of the segment's file, positions, sizes) and then read
//! with positioned reads (`read_at`), so they never wait for the writer's
//! `write`/`fsync`. The writer makes appended bytes visible only after they
//! are completely written. Truncation, the one operation that rewrites bytes
//! readers may be looking at, additionally takes an I/O guard that readers
//! hold (shared) during their file reads. A segment deleted while a reader
//! still holds its file keeps being readable through the open descriptor.
//! Compaction ([`PartitionLog::compact`]) runs its passes outside the writer
//! lock and takes it only to replace cleaned segments (see [`crate::cleaner`]).
//!
//! # Crash behaviour
//!
//! A roll does not wait for the sealed segment to reach the disk (as in
//! Kafka, whose roll schedules that flush in the background): the segment is
//! listed as unsynced, and [`PartitionLog::sync_rolled`] (the broker calls it
//! from a background thread about once a second) fsyncs its log and indexes
//! and the directory, then moves the *recovery point* past it. The recovery
//! point is the base offset of the first segment that may hold bytes not yet
//! on disk; it is persisted in `recovery-point`, never above the active
//! segment. It is written before the first roll (an absent file stands for
//! the active segment: true of a log never rolled, and of directories written
//! when every roll fsynced), lowered durably by a truncation that makes an
//! older segment active, and raised only after the fsyncs it vouches for.
//! An explicit flush ([`PartitionLog::flush`], `flush.messages`, `flush.ms`,
//! close) fsyncs the unsynced sealed segments as well as the active one.
//!
//! So after a crash only segments at or above the recovery point can be torn.
//! Opening without the clean-shutdown marker (and not in the same boot, see
//! [`BOOT_ID_FILE`]) runs full recovery on each of them in offset order
//! ([`crate::segment`] `recover`: verify each batch's header and CRC, offsets
//! contiguous, truncate at the first bad one, rebuild its indexes); once one
//! is cut short, or a segment does not start where the previous one ended
//! (outside ranges the cleaner rewrote), every later segment is deleted: its
//! bytes follow a hole. Segments below the recovery point have their index
//! files checked and, if missing or damaged, rebuilt without ever cutting
//! the segment ([`crate::segment`] `rebuild_keeping`: they were fsynced
//! whole, so damage there is the disk's, reported at ERROR and counted, and
//! kept so that reads stop at it instead of skipping its offsets). With the
//! marker, every segment is loaded that way (indexes checked, tail headers
//! walked), sealed ones rebuilt the same way and the active one recovered
//! only if that check fails. Data not yet fsynced (see
//! `flush_messages`/`flush_ms`) may be lost, but what remains is always a
//! prefix of what was appended, and every batch it holds passed a CRC check.
//! A damaged or unreadable `recovery-point` file puts the recovery point at
//! the first segment (everything is verified).
//! Before any of this, open completes or undoes a segment replacement a
//! compaction left half done ([`crate::cleaner`]).
//!
//! Replicated appends ([`PartitionLog::append_replicated`]) may leave offset
//! gaps between batches (the leader's log was compacted). Before such a gap is
//! written the cleaner checkpoint's compacted end is raised (durably) to the
//! base offset of the batch after it, so the active segment's recovery, which
//! otherwise requires contiguous batches, accepts it (see [`crate::cleaner`]).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::{Bytes, BytesMut};
use samsa_model::batch::{self, BatchError, BatchHeader, BatchIter, BATCH_HEADER_BYTES};
use samsa_model::{LeaderEpoch, Offset, TimestampMs};

use crate::checkpoint;
use crate::cleaner::{
    self, CleanedGroup, CleanerCheckpoint, CompactionConfig, CompactionStats, ProducerLastBatches,
    Rewriter, SegmentSnapshot, SwapCrashPoint,
};
use crate::config::LogConfig;
use crate::deleter;
use crate::epoch_cache::EpochCache;
use crate::error::StorageError;
use crate::high_watermark;
use crate::index::{self, OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES};
use crate::producer_snapshot::{self, ReplaySegment};
use crate::producer_state::{ProducerStateTable, SeqCheck};
use crate::segment::{
    self, Continuity, SegmentFiles, SegmentMeta, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use std::os::unix::fs::FileExt;

mod aborted;
mod producers;
mod txn;

pub use aborted::ABORTED_TXNS_IN_MEMORY_MAX;

pub use txn::ABORTED_TXNS_PER_READ_MAX;

/// Name of the clean-shutdown marker file.
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
/// Name of the file recording the OS boot during which the log was last
/// opened ([`LogConfig::boot_id`]).
///
/// Layout: 32 lowercase hex digits (the boot id as a u128) and a newline.
/// Written after every open whose boot id differs from the recorded one,
/// without fsync. Crash behaviour: a lost, stale or torn file never matches
/// the running boot unless this boot wrote it, so the worst case is the full
/// recovery an unknown shutdown gets anyway. Only a matching file lets an
/// unclean shutdown skip the CRC scan of the active segment, and it can only
/// match while the kernel that buffered the log's writes is still running.
/// A failed write or fsync removes the file (the page cache may no longer
/// hold what was written), so the next open runs the full scan.
pub const BOOT_ID_FILE: &str = "boot-id";
/// Decompressed bytes allowed when decoding one stored batch for a timestamp lookup.
pub const DECODE_BYTES_MAX: usize = 256 << 20;
/// Largest relative offset an index entry can hold.
const RELATIVE_OFFSET_MAX: i64 = u32::MAX as i64;

/// Where an appended batch landed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub log_start_offset: Offset,
    /// The batch was a retry of one already stored (an idempotent
    /// producer's duplicate): nothing was appended, and the offsets are
    /// those of the original.
    pub duplicate: bool,
}

/// Whole batches returned by [`PartitionLog::read`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// Concatenated complete batches, byte for byte as stored.
    pub bytes: Bytes,
    /// Base offset of the first returned batch (may be below the requested start).
    pub first_offset: Option<Offset>,
    /// Offset just after the last returned batch, or the requested start if none.
    pub next_offset: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

/// Where [`PartitionLog::read_slices`] found whole batches.
#[derive(Clone, Debug)]
pub struct SliceRead {
    /// File ranges of complete batches, in offset order.
    pub slices: Vec<LogSlice>,
    /// Total bytes of `slices`.
    pub len: usize,
    /// Base offset of the first batch (may be below the requested start).
    pub first_offset: Option<Offset>,
    /// Offset just after the last batch, or the requested start if none.
    pub next_offset: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

/// A range of one segment's `.log` file holding complete batches, byte for
/// byte as stored. Keeps the file open while it exists.
#[derive(Clone, Debug)]
pub struct LogSlice {
    files: Arc<SegmentFiles>,
    position: u64,
    len: usize,
}

impl LogSlice {
    /// The open log file the bytes are in.
    pub fn file(&self) -> &std::fs::File {
        &self.files.log
    }

    /// Byte position of the first batch in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Length of the range in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty (never true for a slice returned by a read).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the range's bytes to `out`.
    pub fn read_append(&self, out: &mut BytesMut) -> Result<(), StorageError> {
        self.files.read_append_at(out, self.len, self.position)
    }
}

/// A segment as seen by retention and tools.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: Offset,
    /// Last offset + 1 (the base offset when empty).
    pub next_offset: Offset,
    pub size_bytes: u64,
    /// Largest batch `maxTimestamp`, `None` if no batch carried one.
    pub max_timestamp: Option<TimestampMs>,
    /// Whether this is the active (last) segment.
    pub active: bool,
}

struct Segment {
    files: Arc<SegmentFiles>,
    meta: SegmentMeta,
}

impl Segment {
    fn base(&self) -> Offset {
        self.files.base
    }

    fn info(&self, active: bool) -> SegmentInfo {
        SegmentInfo {
            base_offset: self.base(),
            next_offset: self.meta.next_offset,
            size_bytes: self.meta.size,
            max_timestamp: (self.meta.max_timestamp >= 0)
                .then_some(TimestampMs(self.meta.max_timestamp)),
            active,
        }
    }
}

/// A batch about to be written: its header as it will be stored, and where
/// its bytes are in the caller's buffer.
struct Pending {
    header: BatchHeader,
    range: Range<usize>,
}

/// What the roll decision needs to know about the active segment.
#[derive(Copy, Clone, Debug)]
struct ActiveView {
    base: Offset,
    size: u64,
    index_entries: usize,
    time_entries: usize,
    roll_clock_start: Option<i64>,
}

impl ActiveView {
    fn of(active: &Segment) -> Self {
        ActiveView {
            base: active.base(),
            size: active.meta.size,
            index_entries: active.meta.index.len(),
            time_entries: active.meta.time_index.len(),
            roll_clock_start: active.meta.roll_clock_start,
        }
    }

    /// Whether the batch with `header` must go to a new segment: the segment
    /// is not empty and would exceed `segment_bytes`, is older than
    /// `segment_ms`, has a full index, or cannot address the batch's last
    /// offset relative to its base.
    fn roll_due(&self, header: &BatchHeader, cfg: &LogConfig, now: TimestampMs) -> bool {
        let last_relative = header.last_offset().get().saturating_sub(self.base.get());
        self.size > 0
            && (self.size + header.size_bytes() as u64 > cfg.effective_segment_bytes()
                || self
                    .roll_clock_start
                    .is_some_and(|t| now.get().saturating_sub(t) > cfg.segment_ms)
                || segment::indexes_full(
                    self.index_entries,
                    self.time_entries,
                    cfg.segment_index_bytes,
                )
                || last_relative > RELATIVE_OFFSET_MAX)
    }
}

/// A batch's `lastOffsetDelta` must not be negative (its offsets would run
/// backwards).
/// Bytes to append: `buf`, except that `head`, when given, is written in
/// place of its first bytes (the produced batch's patched header).
#[derive(Clone, Copy)]
struct Frame<'a> {
    buf: &'a [u8],
    head: Option<&'a [u8]>,
}

fn check_last_offset_delta(header: &BatchHeader) -> Result<(), StorageError> {
    if header.last_offset_delta < 0 {
        return Err(BatchError::RecordCountMismatch {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        }
        .into());
    }
    Ok(())
}

/// The in-memory view of the log.
struct LogState {
    /// Older segments, ascending base offset.
    sealed: Vec<Segment>,
    active: Segment,
    log_start: Offset,
    /// The persisted cleaner checkpoint (changed under the writer lock).
    cleaner: CleanerCheckpoint,
    /// Truncations so far; a clean that sees it change gives up.
    truncations: u64,
    /// The leader epoch cache, as persisted (changed under the writer lock).
    epochs: EpochCache,
    /// Aborted transactions of the log's segments, ascending marker offset
    /// (changed under the writer lock; [`crate::txn_index`]); the newest
    /// only ([`aborted`]).
    aborted: aborted::AbortedCache,
    /// The producer state's first unstable offset, as of the last append,
    /// truncation or open (changed under the writer lock).
    first_unstable: Option<Offset>,
}

impl LogState {
    fn log_end(&self) -> Offset {
        self.active.meta.next_offset
    }

    fn len(&self) -> usize {
        self.sealed.len() + 1
    }

    fn get(&self, i: usize) -> Option<&Segment> {
        match i.cmp(&self.sealed.len()) {
            std::cmp::Ordering::Less => self.sealed.get(i),
            std::cmp::Ordering::Equal => Some(&self.active),
            std::cmp::Ordering::Greater => None,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Segment> {
        self.sealed.iter().chain(std::iter::once(&self.active))
    }

    /// Index of the last segment whose base offset is `<= offset` (0 if none).
    fn locate(&self, offset: Offset) -> usize {
        if self.active.base() <= offset {
            return self.sealed.len();
        }
        self.sealed
            .partition_point(|s| s.base() <= offset)
            .saturating_sub(1)
    }

    fn out_of_range(&self, requested: Offset) -> StorageError {
        StorageError::OffsetOutOfRange {
            requested,
            log_start: self.log_start,
            log_end: self.log_end(),
        }
    }
}

/// State owned by the single writer.
struct Writer {
    closed: bool,
    failed: bool,
    unflushed_records: u64,
    last_flush_ms: i64,
    /// Append handles of the active segment's index files.
    index_file: fs::File,
    time_index_file: fs::File,
    /// Sealed segments not yet fsynced (rolled since the last sync, or found
    /// above the recovery point by an unclean open), ascending base offset.
    unsynced: Vec<Arc<SegmentFiles>>,
    /// Segments created so far, and how many of them were created before
    /// the directory was last fsynced (equal: nothing to sync).
    rolls: u64,
    dir_synced_rolls: u64,
    /// Idempotent producers' state, current up to the log end
    /// ([`crate::producer_state`]).
    producers: ProducerStateTable,
    /// Offsets of the snapshot files on disk ([`crate::producer_snapshot`]).
    snapshots: BTreeSet<Offset>,
    /// Snapshots taken at rolls and not yet written: offset and encoded
    /// bytes, at most [`SNAPSHOT_FILES_MAX`].
    pending_snapshots: Vec<(Offset, Vec<u8>)>,
    /// Bytes appended since the last snapshot was taken.
    bytes_since_snapshot: u64,
    /// A snapshot at the log end is wanted soon (after a replay on open, or
    /// when the log start passed every snapshot).
    snapshot_wanted: bool,
    /// KIP-890 verification guards ([`crate::verification`]).
    verifications: crate::verification::VerificationGuards,
}

/// Which producer checks an append makes.
#[derive(Copy, Clone, Debug)]
pub(crate) enum ProducerCheck {
    /// A client's batch: epoch and sequence.
    Sequence,
    /// A client's batch that must carry its producer's verification guard
    /// when it is transactional and no transaction of its producer is open.
    Guarded(Option<crate::verification::VerificationGuard>),
    /// A coordinator's batch on a producer's behalf: the epoch only.
    EpochOnly,
}

/// The recovery point: the base offset of the first segment that may hold
/// bytes not yet fsynced. Every segment below it was fsynced whole; the
/// active segment is never below it. See the module docs.
#[derive(Copy, Clone, Debug)]
struct RecoveryPoint {
    /// The value the `recovery-point` file holds (or stands for, when absent).
    offset: Offset,
    /// Whether the file holds `offset`. An absent file means "the active
    /// segment": true of logs never rolled and of directories written by
    /// versions that fsynced every segment when rolling it. It is written
    /// before the first roll, after which that meaning would be wrong.
    on_disk: bool,
    /// Bumped by every truncation, so that a sync that computed its new value
    /// before the truncation does not write it afterwards.
    generation: u64,
}

/// One partition's log. See the module docs for layout, locking and crash behaviour.
pub struct PartitionLog {
    dir: PathBuf,
    config: Mutex<LogConfig>,
    writer: Mutex<Writer>,
    io_guard: RwLock<()>,
    state: RwLock<LogState>,
    /// Serialises compactions (held for a whole clean, never by appends).
    /// Holds when a tombstone kept by the last clean may be removed (not
    /// persisted: after a restart tombstones wait for the next dirty clean).
    cleaning: Mutex<Option<i64>>,
    /// Aborted transactions kept in memory at most ([`aborted`]).
    aborted_max: std::sync::atomic::AtomicUsize,
    /// The high watermark last written to its checkpoint by this instance
    /// (the lock also serialises those writes).
    high_watermark: Mutex<Option<Offset>>,
    /// The recovery point (the lock also serialises writes of its file).
    /// Taken after the writer lock when both are held.
    recovery_point: Mutex<RecoveryPoint>,
    /// Serialises [`PartitionLog::sync_rolled`] calls (held across their fsyncs).
    sync_serial: Mutex<()>,
}

/// How the replacement of one cleaned group ended.
enum SwapOutcome {
    /// Replaced this many original segments.
    Replaced(usize),
    /// The originals are no longer in the log (retention deleted them).
    Skipped,
    /// A truncation happened since the clean started.
    Truncated,
}

// Poisoning only follows a panic in our own code, which already aborted that
// operation; the state it protects is still the last consistent one we published.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
fn read_lock<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}
fn write_lock<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", path, e)),
    }
}

/// Delete the segments `bases` (found after a hole by an unclean open).
fn drop_after_hole(dir: &Path, bases: &[Offset], why: &str) -> Result<(), StorageError> {
    for &base in bases.iter().rev() {
        let files = SegmentFiles::open(dir, base)?;
        tracing::warn!(
            path = %files.log_path.display(),
            reason = why,
            "deleting a segment that does not continue the recovered log"
        );
        files.remove_files()?;
    }
    Ok(())
}

/// Remove a partition directory and everything in it (missing is fine).
pub fn delete_log_dir(dir: &Path) -> Result<(), StorageError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove directory", dir, e)),
    }
}

impl PartitionLog {
    /// Open (creating if missing) the log in `dir` and recover it.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, StorageError> {
        let existed = dir
            .try_exists()
            .map_err(|e| StorageError::io("stat", dir, e))?;
        fs::create_dir_all(dir).map_err(|e| StorageError::io("create directory", dir, e))?;
        cleaner::complete_interrupted_swaps(dir)?;
        if !existed {
            // Make the new directory's own entry durable.
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            checkpoint::sync_dir(parent.unwrap_or(Path::new(".")))?;
        }
        let clean_path = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = clean_path
            .try_exists()
            .map_err(|e| StorageError::io("stat", &clean_path, e))?;
        let boot_path = dir.join(BOOT_ID_FILE);
        let recorded_boot = fs::read_to_string(&boot_path)
            .ok()
            .and_then(|t| u128::from_str_radix(t.trim(), 16).ok());
        // An unclean shutdown during this boot: a process crash, the page
        // cache holds every completed write (see BOOT_ID_FILE).
        let same_boot = config.boot_id.is_some() && recorded_boot == config.boot_id;

        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        let entries = fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") || name.ends_with(deleter::DELETED_SUFFIX) {
                remove_if_exists(&entry.path())?;
            } else if let Some(base) = segment::parse_file_name(name, LOG_SUFFIX) {
                bases.push(base);
            } else if let Some(base) = segment::parse_file_name(name, INDEX_SUFFIX)
                .or_else(|| segment::parse_file_name(name, TIME_INDEX_SUFFIX))
            {
                index_files.push((base, entry.path()));
            }
        }
        bases.sort();
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                tracing::info!(path = %path.display(), "removing index without a log file");
                remove_if_exists(&path)?;
            }
        }

        let checkpointed = checkpoint::read(dir)?;
        let cleaner_checkpoint = CleanerCheckpoint::read(dir)?;
        let gaps_end = cleaner_checkpoint.map_or(Offset(0), |c| c.compacted_end);
        let last_base = bases.last().copied().unwrap_or(Offset(0));
        let first_base = bases.first().copied().unwrap_or(Offset(0));
        let stored_recovery_point = checkpoint::read_recovery_point(dir)?;
        // Segments at or above this may hold bytes that never reached the disk.
        let recovery_point = match stored_recovery_point {
            checkpoint::Stored::Offset(rp) => rp.min(last_base),
            checkpoint::Stored::Absent => last_base,
            checkpoint::Stored::Damaged => first_base,
        };
        // Whether those segments get full recovery (a crash of the machine,
        // or not known to be otherwise), rather than trusting the page cache.
        let verify_unsynced = !clean && !same_boot;
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
        for (i, &base) in bases.iter().enumerate() {
            let files = SegmentFiles::open(dir, base)?;
            let unsynced = base >= recovery_point;
            if unsynced && verify_unsynced {
                let prev_end = segments.last().map(|s| s.meta.next_offset);
                if prev_end.is_some_and(|end| base > end && base > gaps_end) {
                    // A hole before this segment: the end of the previous
                    // one never reached the disk. What follows is not part
                    // of a prefix of the log.
                    drop_after_hole(dir, &bases[i..], "it follows a hole")?;
                    break;
                }
                let file_bytes = files.log_file_bytes()?;
                let meta = segment::recover(
                    &files,
                    config.index_interval_bytes,
                    Continuity::ContiguousAbove(gaps_end),
                )?;
                let cut = meta.size < file_bytes;
                segments.push(Segment {
                    files: Arc::new(files),
                    meta,
                });
                if cut {
                    if let Some(rest) = bases.get(i + 1..).filter(|r| !r.is_empty()) {
                        drop_after_hole(dir, rest, "an earlier segment lost its tail")?;
                    }
                    break;
                }
                continue;
            }
            let meta = match segment::load_fast(&files)? {
                Some(meta) => meta,
                // Fsynced whole (below the recovery point, or sealed before
                // a clean shutdown): damage is never cut, see
                // `segment::rebuild_keeping`. (The active segment is always
                // at or above the recovery point; a clean-shutdown marker
                // alone does not spare its tail, the marker could lie.)
                None if !unsynced || (clean && i + 1 < bases.len()) => {
                    let (mut meta, unwalkable) =
                        segment::rebuild_keeping(&files, config.index_interval_bytes)?;
                    // Its offsets still run up to the next segment's base
                    // (always there: this is never the active segment), so
                    // reads of them reach the damage and fail, and neither
                    // the hole check nor the log start takes them for gone.
                    if let Some(&next) = bases.get(i + 1).filter(|_| unwalkable) {
                        meta.next_offset = meta.next_offset.max(next);
                    }
                    meta
                }
                // Not yet synced: a torn tail is cut.
                None => segment::recover(
                    &files,
                    config.index_interval_bytes,
                    Continuity::ContiguousAbove(gaps_end),
                )?,
            };
            segments.push(Segment {
                files: Arc::new(files),
                meta,
            });
        }
        for pair in segments.windows(2) {
            if let [a, b] = pair {
                if a.meta.next_offset > b.base() {
                    return Err(a.files.corrupt(
                        a.meta.size,
                        &format!("segment overlaps the next one at offset {}", b.base()),
                    ));
                }
            }
        }

        let first_base = segments.first().map(|s| s.base());
        let log_start = match (checkpointed, first_base) {
            (Some(c), Some(f)) => c.max(f),
            (Some(c), None) => c,
            (None, Some(f)) => f,
            (None, None) => Offset(0),
        }
        .max(Offset(0));
        let log_end = segments.last().map(|s| s.meta.next_offset);
        let mut removed = Vec::new();
        if log_end.is_none_or(|end| log_start > end) {
            // Nothing usable (new log, or all data below the log start, e.g. an
            // unflushed tail lost after DeleteRecords): start empty at log_start.
            removed.append(&mut segments);
            for s in &removed {
                s.files.remove_files()?;
            }
            segments.push(Segment {
                files: Arc::new(SegmentFiles::create(dir, log_start)?),
                meta: SegmentMeta::empty(log_start),
            });
        } else {
            // Segments wholly below the log start (a crash between the
            // checkpoint and their deletion).
            let below = segments
                .iter()
                .take(segments.len() - 1)
                .take_while(|s| s.meta.next_offset <= log_start)
                .count();
            removed.extend(segments.drain(..below));
            for s in &removed {
                s.files.remove_files()?;
            }
        }
        let mut snapshots = producer_snapshot::list(dir)?;
        let log_end = segments.last().map_or(log_start, |s| s.meta.next_offset);
        let replay: Vec<ReplaySegment<'_>> = segments
            .iter()
            .map(|s| ReplaySegment {
                files: &s.files,
                meta: &s.meta,
            })
            .collect();
        let loaded = producer_snapshot::load(dir, &mut snapshots, &replay, log_start, log_end)?;
        drop(replay);
        let (producers, replayed_from) = (loaded.table, loaded.from);
        let bases: Vec<Offset> = segments.iter().map(Segment::base).collect();
        let aborted = txn::load_index(dir, &bases, log_end, replayed_from, loaded.aborted)?;
        let mut aborted = aborted::AbortedCache::new(aborted);
        aborted.evict(
            ABORTED_TXNS_IN_MEMORY_MAX,
            bases.last().copied().unwrap_or(log_end),
        );
        let first_unstable = producers.first_unstable_offset();
        remove_if_exists(&clean_path)?;
        if let Some(boot) = config.boot_id.filter(|b| recorded_boot != Some(*b)) {
            fs::write(&boot_path, format!("{boot:032x}\n"))
                .map_err(|e| StorageError::io("write", &boot_path, e))?;
        }
        checkpoint::sync_dir(dir)?;

        let Some(active) = segments.pop() else {
            // Unreachable: both branches above leave at least one segment.
            return Err(StorageError::Corrupt {
                path: dir.to_path_buf(),
                position: 0,
                reason: "no active segment".to_owned(),
            });
        };
        let (index_file, time_index_file) = active.files.open_index_writers()?;
        let log_end = active.meta.next_offset;
        // After an unclean shutdown the sealed segments above the recovery
        // point are synced again before it moves past them (their pages may
        // still be dirty when the page cache survived the crash).
        let unsynced = if clean {
            Vec::new()
        } else {
            segments
                .iter()
                .filter(|s| s.base() >= recovery_point)
                .map(|s| Arc::clone(&s.files))
                .collect()
        };
        let recovery_point = RecoveryPoint {
            offset: recovery_point.min(active.base()),
            on_disk: matches!(stored_recovery_point, checkpoint::Stored::Offset(_)),
            generation: 0,
        };
        let cleaner = match cleaner_checkpoint {
            Some(c) => {
                let clamped = CleanerCheckpoint {
                    first_dirty: c.first_dirty.min(log_end),
                    compacted_end: c.compacted_end.min(log_end),
                };
                if clamped != c {
                    clamped.write(dir)?;
                }
                clamped
            }
            None => CleanerCheckpoint::initial(log_start),
        };
        let epochs = load_epoch_cache(dir, &segments, &active, log_start, log_end)?;
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            config: Mutex::new(config),
            writer: Mutex::new(Writer {
                closed: false,
                failed: false,
                unflushed_records: 0,
                last_flush_ms: now_ms(),
                index_file,
                time_index_file,
                unsynced,
                rolls: 0,
                dir_synced_rolls: 0,
                producers,
                snapshots,
                pending_snapshots: Vec::new(),
                bytes_since_snapshot: 0,
                // Replayed headers: a snapshot at the log end spares the next open.
                snapshot_wanted: replayed_from < log_end,
                verifications: Default::default(),
            }),
            io_guard: RwLock::new(()),
            state: RwLock::new(LogState {
                sealed: segments,
                active,
                log_start,
                cleaner,
                truncations: 0,
                epochs,
                aborted,
                first_unstable,
            }),
            cleaning: Mutex::new(None),
            aborted_max: std::sync::atomic::AtomicUsize::new(ABORTED_TXNS_IN_MEMORY_MAX),
            high_watermark: Mutex::new(None),
            recovery_point: Mutex::new(recovery_point),
            sync_serial: Mutex::new(()),
        })
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replace the configuration; applies from the next append.
    pub fn set_config(&self, config: LogConfig) {
        *lock(&self.config) = config;
    }

    /// The current configuration.
    pub fn config(&self) -> LogConfig {
        *lock(&self.config)
    }

    /// The first offset that may be read.
    pub fn log_start_offset(&self) -> Offset {
        read_lock(&self.state).log_start
    }

    /// The next offset to be written.
    pub fn log_end_offset(&self) -> Offset {
        read_lock(&self.state).log_end()
    }

    /// Bytes of all segments' log files.
    pub fn size_bytes(&self) -> u64 {
        read_lock(&self.state).iter().map(|s| s.meta.size).sum()
    }

    /// Every segment, oldest first (the last is the active one).
    pub fn segments_info(&self) -> Vec<SegmentInfo> {
        let st = read_lock(&self.state);
        let mut out: Vec<SegmentInfo> = st.sealed.iter().map(|s| s.info(false)).collect();
        out.push(st.active.info(true));
        out
    }

    /// The latest leader epoch in the epoch cache, `None` when it is empty.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        read_lock(&self.state).epochs.latest_epoch()
    }

    /// The epoch cache's `(epoch, start offset)` entries, oldest first
    /// (strictly increasing in both).
    pub fn epoch_entries(&self) -> Vec<(LeaderEpoch, Offset)> {
        read_lock(&self.state).epochs.entries().to_vec()
    }

    /// Record that this replica leads from `epoch` on: `(epoch, log end)` is
    /// added to the epoch cache (persisted) when `epoch` is greater than the
    /// latest cached epoch; otherwise (and for negative epochs) nothing
    /// happens. An epoch assigned while the log end has not moved since the
    /// previous assignment replaces that one (it has no batches). Not kept
    /// across a reopen until a batch of the epoch is written (see
    /// [`crate::epoch_cache`]).
    pub fn assign_epoch(&self, epoch: LeaderEpoch) -> Result<(), StorageError> {
        let w = lock(&self.writer);
        self.check_writable(&w)?;
        self.update_epochs(|cache, log_end| cache.record(epoch, log_end))
    }

    /// Kafka's `OffsetForLeaderEpoch` answer for `requested`: `(NONE, -1)`
    /// when the cache is empty or `requested` is below its first epoch or
    /// above its latest; `(latest, log end)` for the latest epoch; otherwise
    /// the largest cached epoch `<= requested` and the start offset of the
    /// first cached epoch `> requested` (where `requested`'s data ends).
    pub fn end_offset_for_epoch(&self, requested: LeaderEpoch) -> (LeaderEpoch, Offset) {
        let st = read_lock(&self.state);
        st.epochs.end_offset_for(requested, st.log_end())
    }

    /// Apply `f` (given the log end) to a copy of the epoch cache and, if it
    /// reports a change, persist and publish the copy. Caller holds the writer
    /// lock and not the state lock.
    fn update_epochs(
        &self,
        f: impl FnOnce(&mut EpochCache, Offset) -> bool,
    ) -> Result<(), StorageError> {
        let (mut cache, log_end) = {
            let st = read_lock(&self.state);
            (st.epochs.clone(), st.log_end())
        };
        if f(&mut cache, log_end) {
            cache.write(&self.dir)?;
            write_lock(&self.state).epochs = cache;
        }
        Ok(())
    }

    /// [`Self::update_epochs`] for a caller holding the state write lock.
    fn update_epochs_in(
        &self,
        st: &mut LogState,
        f: impl FnOnce(&mut EpochCache) -> bool,
    ) -> Result<(), StorageError> {
        let mut cache = st.epochs.clone();
        if f(&mut cache) {
            cache.write(&self.dir)?;
            st.epochs = cache;
        }
        Ok(())
    }

    /// Checkpoint the high watermark `hw` to the `high-watermark` file
    /// (atomically, see [`crate::high_watermark`]). Skipped when `hw` equals
    /// the value this instance wrote last.
    pub fn write_high_watermark(&self, hw: Offset) -> Result<(), StorageError> {
        let mut last = lock(&self.high_watermark);
        if *last == Some(hw) {
            return Ok(());
        }
        high_watermark::write(&self.dir, hw)?;
        *last = Some(hw);
        Ok(())
    }

    /// The checkpointed high watermark clamped to `[log start, log end]`;
    /// `None` when the file is missing or does not hold a number.
    pub fn read_high_watermark(&self) -> Option<Offset> {
        let hw = high_watermark::read(&self.dir)?;
        let st = read_lock(&self.state);
        Some(hw.max(st.log_start).min(st.log_end()))
    }

    /// Stops the writer after a write or fsync failure, and makes that
    /// survive a restart: `boot-id` is removed, so the next open — even in
    /// this boot, where it would otherwise trust the page cache — runs full
    /// CRC recovery on every segment not yet known synced. After a failed
    /// fsync the kernel may have dropped the dirty pages (and marked them
    /// clean), so the page cache no longer holds what was written. Not
    /// fsynced: a process restart in the same boot sees the unlink, and a
    /// new boot gets full recovery anyway.
    fn fail_writer(&self, w: &mut Writer) {
        w.failed = true;
        let path = self.dir.join(BOOT_ID_FILE);
        if let Err(e) = remove_if_exists(&path) {
            tracing::error!(
                path = %path.display(),
                error = %e,
                "could not forget the boot id after an I/O error; a restart in this boot may trust the page cache"
            );
        }
    }

    /// Stops the writer because the log's directory failed (KIP-858: an
    /// I/O error elsewhere in the same log directory), as a failed write of
    /// its own does: later writes fail with [`StorageError::Failed`] and the
    /// next open runs full recovery.
    pub fn mark_failed(&self) {
        let mut w = lock(&self.writer);
        if !w.failed {
            self.fail_writer(&mut w);
        }
    }

    /// Whether a write or fsync failed (or [`Self::mark_failed`] was
    /// called): the writer is stopped until the log is opened again.
    pub fn has_failed(&self) -> bool {
        lock(&self.writer).failed
    }

    fn check_writable(&self, w: &Writer) -> Result<(), StorageError> {
        if w.failed {
            return Err(StorageError::Failed {
                dir: self.dir.clone(),
            });
        }
        if w.closed {
            return Err(StorageError::Closed {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Append one already-validated batch: its base offset becomes the log end
    /// offset and its leader epoch `leader_epoch` (both patched in place in
    /// `batch`, outside the CRC), then the bytes are written. Rolls first when
    /// the active segment would exceed `segment_bytes`, is older than
    /// `segment_ms`, has a full index, or the batch's offsets would not fit the
    /// index's relative offsets. Flushes per `flush_messages`/`flush_ms`.
    /// When `leader_epoch` is greater than the latest cached epoch, `(epoch,
    /// base offset)` is made durable in the leader epoch cache before the
    /// batch is written.
    ///
    /// A batch with a producer id (not a control batch) is first checked
    /// against the producer's state, as Kafka's leader checks a client's
    /// batch ([`crate::producer_state`]): a retry of one of its last five
    /// batches appends nothing and returns the original offsets with
    /// [`AppendInfo::duplicate`] set; a sequence gap or a new epoch not
    /// starting at 0 is [`StorageError::OutOfOrderSequence`], an old epoch
    /// [`StorageError::InvalidProducerEpoch`]. Check and append happen under
    /// the writer lock, so concurrent retries cannot both be stored.
    pub fn append(
        &self,
        batch: &mut [u8],
        leader_epoch: LeaderEpoch,
        now: TimestampMs,
    ) -> Result<AppendInfo, StorageError> {
        let info = self.append_unmodified(batch, leader_epoch, now)?;
        if info.duplicate {
            return Ok(info);
        }
        batch::set_base_offset(batch, info.base_offset)?;
        batch::set_partition_leader_epoch(batch, leader_epoch)?;
        Ok(info)
    }

    /// [`Self::append`] without modifying `batch`: its header, with the base
    /// offset and leader epoch patched, is written in front of the rest of
    /// its bytes, so the stored batch is the one `append` stores, and the
    /// batch is never copied.
    pub fn append_unmodified(
        &self,
        batch: &[u8],
        leader_epoch: LeaderEpoch,
        now: TimestampMs,
    ) -> Result<AppendInfo, StorageError> {
        self.append_checked(batch, leader_epoch, now, ProducerCheck::Sequence)
    }

    /// [`Self::append`] for a batch a coordinator writes on behalf of a
    /// producer (Kafka's `AppendOrigin.COORDINATOR`: the group coordinator's
    /// TxnOffsetCommit batch carries the producer's id and epoch and no
    /// sequence, `-1`): the producer's epoch is checked and recorded, its
    /// sequence is not.
    pub fn append_from_coordinator(
        &self,
        batch: &mut [u8],
        leader_epoch: LeaderEpoch,
        now: TimestampMs,
    ) -> Result<AppendInfo, StorageError> {
        let info = self.append_checked(batch, leader_epoch, now, ProducerCheck::EpochOnly)?;
        batch::set_base_offset(batch, info.base_offset)?;
        batch::set_partition_leader_epoch(batch, leader_epoch)?;
        Ok(info)
    }

    pub(crate) fn append_checked(
        &self,
        batch: &[u8],
        leader_epoch: LeaderEpoch,
        now: TimestampMs,
        check: ProducerCheck,
    ) -> Result<AppendInfo, StorageError> {
        let header = BatchHeader::parse(batch)?;
        let batch_bytes = header.size_bytes();
        if batch_bytes > batch.len() {
            return Err(BatchError::Truncated {
                needed_bytes: batch_bytes,
                available_bytes: batch.len(),
            }
            .into());
        }
        if batch_bytes < batch.len() {
            return Err(BatchError::LengthMismatch {
                batch_bytes,
                buffer_bytes: batch.len(),
            }
            .into());
        }
        check_last_offset_delta(&header)?;
        let mut head = [0u8; BATCH_HEADER_BYTES];
        head.copy_from_slice(
            batch
                .get(..BATCH_HEADER_BYTES)
                .ok_or(BatchError::Truncated {
                    needed_bytes: BATCH_HEADER_BYTES,
                    available_bytes: batch.len(),
                })?,
        );
        let cfg = self.config();
        let mut w = lock(&self.writer);
        self.check_writable(&w)?;

        let base_offset = read_lock(&self.state).log_end();
        let pid = header.producer_id;
        if pid.get() >= 0 && !header.is_control() {
            if let ProducerCheck::EpochOnly = check {
                w.producers.check_epoch(&header)?;
            } else if let SeqCheck::Duplicate { base, last } = w.producers.check(&header)? {
                return Ok(AppendInfo {
                    base_offset: base,
                    last_offset: last,
                    log_start_offset: read_lock(&self.state).log_start,
                    duplicate: true,
                });
            }
            if let ProducerCheck::Guarded(guard) = check {
                let open = w
                    .producers
                    .get(pid)
                    .is_some_and(|e| e.current_txn_first_offset.is_some());
                if header.is_transactional() && !open && !w.verifications.verifies(pid, guard) {
                    return Err(StorageError::TxnNotVerified { producer_id: pid });
                }
            }
        }
        batch::set_base_offset(&mut head, base_offset)?;
        batch::set_partition_leader_epoch(&mut head, leader_epoch)?;
        let pending = [Pending {
            header: BatchHeader {
                base_offset,
                partition_leader_epoch: leader_epoch,
                ..header
            },
            range: 0..batch.len(),
        }];
        self.append_locked(
            &mut w,
            &cfg,
            now,
            Frame {
                buf: batch,
                head: Some(&head),
            },
            &pending,
        )?;
        let last_offset = pending
            .first()
            .map_or(base_offset, |p| p.header.last_offset());
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_start_offset: read_lock(&self.state).log_start,
            duplicate: false,
        })
    }

    /// Append batches fetched from the leader (the follower's path). `batches`
    /// holds zero or more complete record batches, possibly followed by an
    /// incomplete one, which is ignored. Batches are stored byte for byte:
    /// their base offsets and leader epochs are kept as the leader assigned
    /// them.
    ///
    /// Every complete batch is checked (header, `lastOffsetDelta >= 0`, CRC,
    /// offsets increasing from batch to batch) before anything is written; a
    /// failure rejects the whole call. Batches wholly below the log end are
    /// skipped (already present); a batch starting below the log end but
    /// ending at or after it is [`StorageError::OverlappingBatch`]. A batch may
    /// start after the log end or after the previous batch's end (offset gaps
    /// of a compacted log). Rolls, indexes and flushes as [`Self::append`];
    /// each batch whose leader epoch exceeds the latest cached one is recorded
    /// in the leader epoch cache (durably, before any batch is written).
    /// Every stored batch with a producer id is recorded in the producer
    /// state without being checked (the leader decided), so a follower's
    /// state is current when it is promoted. Returns the offsets appended
    /// and the log start, `None` when nothing new was given.
    pub fn append_replicated(
        &self,
        batches: &[u8],
        now: TimestampMs,
    ) -> Result<Option<AppendInfo>, StorageError> {
        let mut parsed: Vec<Pending> = Vec::new();
        let mut position = 0usize;
        for item in BatchIter::new(batches) {
            let (header, bytes) = item?;
            batch::verify_crc(bytes)?;
            check_last_offset_delta(&header)?;
            if let Some(prev) = parsed.last() {
                if header.base_offset <= prev.header.last_offset() {
                    return Err(StorageError::BatchesOutOfOrder {
                        base_offset: header.base_offset,
                        previous_last: prev.header.last_offset(),
                    });
                }
            }
            let range = position..position + bytes.len();
            position = range.end;
            parsed.push(Pending { header, range });
        }

        let cfg = self.config();
        let mut w = lock(&self.writer);
        self.check_writable(&w)?;
        let log_end = read_lock(&self.state).log_end();
        let skip = parsed
            .iter()
            .take_while(|p| p.header.last_offset() < log_end)
            .count();
        let accepted = parsed.get(skip..).unwrap_or_default();
        let (Some(first), Some(last)) = (accepted.first(), accepted.last()) else {
            return Ok(None);
        };
        if first.header.base_offset < log_end {
            return Err(StorageError::OverlappingBatch {
                base_offset: first.header.base_offset,
                last_offset: first.header.last_offset(),
                log_end,
            });
        }
        // The base offset of the last batch that follows a gap.
        let mut expected = log_end;
        let mut last_gap = None;
        for p in accepted {
            if p.header.base_offset > expected {
                last_gap = Some(p.header.base_offset);
            }
            expected = p.header.next_offset();
        }
        if let Some(gap_end) = last_gap {
            self.allow_gaps_up_to(gap_end)?;
        }
        self.append_locked(
            &mut w,
            &cfg,
            now,
            Frame {
                buf: batches,
                head: None,
            },
            accepted,
        )?;
        Ok(Some(AppendInfo {
            base_offset: first.header.base_offset,
            last_offset: last.header.last_offset(),
            log_start_offset: read_lock(&self.state).log_start,
            duplicate: false,
        }))
    }

    /// Raise the cleaner checkpoint's compacted end to `offset` (persisted),
    /// so recovery accepts offset gaps in the active segment up to a batch
    /// starting there. Caller holds the writer lock.
    fn allow_gaps_up_to(&self, offset: Offset) -> Result<(), StorageError> {
        let cur = read_lock(&self.state).cleaner;
        if cur.compacted_end >= offset {
            return Ok(());
        }
        let raised = CleanerCheckpoint {
            compacted_end: offset,
            ..cur
        };
        raised.write(&self.dir)?;
        write_lock(&self.state).cleaner = raised;
        Ok(())
    }

    /// Record the new leader epochs of `batches` in the epoch cache (durably),
    /// then write the batches ([`Self::write_batches_locked`]). If writing
    /// fails, the cache goes back to its old entries plus those of the batches
    /// that did get written. Caller holds the writer lock.
    fn append_locked(
        &self,
        w: &mut Writer,
        cfg: &LogConfig,
        now: TimestampMs,
        buf: Frame<'_>,
        batches: &[Pending],
    ) -> Result<(), StorageError> {
        let old = {
            let st = read_lock(&self.state);
            batches
                .iter()
                .any(|p| st.epochs.is_new(p.header.partition_leader_epoch))
                .then(|| st.epochs.clone())
        };
        let with_epochs_below = |old: &EpochCache, end: Offset| {
            let mut cache = old.clone();
            for p in batches.iter().filter(|p| p.header.base_offset < end) {
                cache.record(p.header.partition_leader_epoch, p.header.base_offset);
            }
            cache
        };
        if let Some(old) = &old {
            let updated = with_epochs_below(old, Offset(i64::MAX));
            updated.write(&self.dir)?;
            write_lock(&self.state).epochs = updated;
        }
        let result = self.write_batches_locked(w, cfg, now, buf, batches);
        if let (Err(_), Some(old)) = (&result, &old) {
            let end = read_lock(&self.state).log_end();
            let kept = with_epochs_below(old, end);
            if kept != read_lock(&self.state).epochs {
                if kept.write(&self.dir).is_err() {
                    // The file may name epochs the log does not hold; a reopen
                    // trims them.
                    self.fail_writer(w);
                }
                write_lock(&self.state).epochs = kept;
            }
        }
        result
    }

    /// Write `batches` (laid out back to back in `buf` at their `range`s,
    /// offsets increasing, the first at or after the log end) to the active
    /// segment, rolling before any batch that meets a roll condition. The
    /// batches that go to the same segment are written with one write per
    /// file. Each written batch is recorded in the producer state. Then
    /// flushes per `flush_messages`/`flush_ms`. On an error, the batches
    /// already written stay (the log end tells how far it got).
    /// Caller holds the writer lock.
    fn write_batches_locked(
        &self,
        w: &mut Writer,
        cfg: &LogConfig,
        now: TimestampMs,
        frame: Frame<'_>,
        batches: &[Pending],
    ) -> Result<(), StorageError> {
        let buf = frame.buf;
        let mut rest = batches;
        while let Some(first) = rest.first() {
            let due = {
                let st = read_lock(&self.state);
                ActiveView::of(&st.active).roll_due(&first.header, cfg, now)
            };
            if due {
                self.roll_locked(w)?;
            }
            let (files, view, mut planned) = {
                let st = read_lock(&self.state);
                let a = &st.active;
                (
                    Arc::clone(&a.files),
                    ActiveView::of(a),
                    a.meta.planning_copy(),
                )
            };
            if first
                .header
                .last_offset()
                .get()
                .saturating_sub(view.base.get())
                > RELATIVE_OFFSET_MAX
            {
                // Only an empty segment gets here (a non-empty one was rolled).
                return Err(StorageError::OffsetGapTooLarge {
                    last_offset: first.header.last_offset(),
                    segment_base: view.base,
                });
            }
            let seeded_time_entries = planned.time_index.len();
            let mut plans = Vec::new();
            for p in rest {
                if !plans.is_empty() {
                    let next = ActiveView {
                        size: planned.size,
                        index_entries: view.index_entries + planned.index.len(),
                        time_entries: view.time_entries + planned.time_index.len()
                            - seeded_time_entries,
                        roll_clock_start: Some(view.roll_clock_start.unwrap_or(now.get())),
                        ..view
                    };
                    if next.roll_due(&p.header, cfg, now) {
                        break;
                    }
                }
                let plan = planned.plan_append(
                    view.base,
                    planned.size,
                    &p.header,
                    cfg.index_interval_bytes,
                );
                planned.apply(&plan);
                plans.push(plan);
            }
            let (group, tail) = rest.split_at(plans.len().min(rest.len()));
            rest = tail;
            let bytes_range =
                group.first().map_or(0, |p| p.range.start)..group.last().map_or(0, |p| p.range.end);
            let bytes = buf.get(bytes_range.clone()).unwrap_or_default();
            let offset_entries: Vec<u8> = planned.index.iter().flat_map(|e| e.encode()).collect();
            let time_entries: Vec<u8> = planned
                .time_index
                .get(seeded_time_entries..)
                .unwrap_or_default()
                .iter()
                .flat_map(|e| e.encode())
                .collect();
            let index_at = (view.index_entries * OFFSET_INDEX_ENTRY_BYTES) as u64;
            let time_at = (view.time_entries * TIME_INDEX_ENTRY_BYTES) as u64;
            // The patched header replaces the first bytes of `buf`.
            let head = frame
                .head
                .filter(|h| bytes_range.start == 0 && h.len() <= bytes.len());
            let written = match head {
                Some(h) => files.log.write_all_at(h, view.size).and_then(|()| {
                    files.log.write_all_at(
                        bytes.get(h.len()..).unwrap_or_default(),
                        view.size + h.len() as u64,
                    )
                }),
                None => files.log.write_all_at(bytes, view.size),
            }
            .map_err(|e| StorageError::io("write", &files.log_path, e))
            .and_then(|()| {
                w.index_file
                    .write_all_at(&offset_entries, index_at)
                    .map_err(|err| StorageError::io("write", &files.index_path, err))
            })
            .and_then(|()| {
                w.time_index_file
                    .write_all_at(&time_entries, time_at)
                    .map_err(|err| StorageError::io("write", &files.time_index_path, err))
            });
            if let Err(e) = written {
                // Undo the partial write so the files match the published
                // state; if even that fails, only a reopen (recovery) can fix them.
                let undone = files.log.set_len(view.size).is_ok()
                    && w.index_file.set_len(index_at).is_ok()
                    && w.time_index_file.set_len(time_at).is_ok();
                if !undone {
                    self.fail_writer(w);
                }
                return Err(e);
            }
            {
                let mut st = write_lock(&self.state);
                for plan in &plans {
                    st.active.meta.apply(plan);
                }
                st.active.meta.roll_clock_start.get_or_insert(now.get());
            }
            let records: u64 = group
                .iter()
                .map(|p| u64::try_from(p.header.records_count).unwrap_or(0))
                .sum();
            w.unflushed_records = w.unflushed_records.saturating_add(records);
            // Before a later group can roll (a roll snapshots the table).
            self.record_written(w, group, buf, &files)?;
            w.bytes_since_snapshot = w.bytes_since_snapshot.saturating_add(bytes.len() as u64);
        }

        let since_flush = u64::try_from(now.get().saturating_sub(w.last_flush_ms)).unwrap_or(0);
        if w.unflushed_records >= cfg.flush_messages || since_flush >= cfg.flush_ms {
            self.flush_locked(w, now.get())?;
        }
        Ok(())
    }

    /// fsync everything appended so far: the sealed segments not yet synced,
    /// the directory if a segment was created, and the active segment's log
    /// and indexes. The recovery point file is left to [`Self::sync_rolled`].
    fn flush_locked(&self, w: &mut Writer, now: i64) -> Result<(), StorageError> {
        // Also those a concurrent `sync_rolled` is syncing: this fsync then
        // waits for that writeback, so the flush still covers them.
        let unsynced = std::mem::take(&mut w.unsynced);
        if let Err(e) = self.sync_segments(&unsynced, w.rolls != w.dir_synced_rolls) {
            // After a failed fsync the kernel may have dropped the dirty pages;
            // retrying could report success for lost data. Stop writing.
            self.fail_writer(w);
            return Err(e);
        }
        w.dir_synced_rolls = w.rolls;
        let files = Arc::clone(&read_lock(&self.state).active.files);
        let synced = files
            .log
            .sync_data()
            .and_then(|()| w.index_file.sync_data())
            .and_then(|()| w.time_index_file.sync_data())
            .map_err(|e| StorageError::io("fsync", &files.log_path, e))
            .and_then(|()| crate::txn_index::sync(&files.txn_index_path));
        if let Err(e) = synced {
            self.fail_writer(w);
            return Err(e);
        }
        w.unflushed_records = 0;
        w.last_flush_ms = now;
        Ok(())
    }

    /// fsync the log and index files of `segments` (index files already
    /// replaced or deleted are skipped), then the directory if `dir`.
    fn sync_segments(&self, segments: &[Arc<SegmentFiles>], dir: bool) -> Result<(), StorageError> {
        for files in segments {
            files
                .log
                .sync_data()
                .map_err(|e| StorageError::io("fsync", &files.log_path, e))?;
            for path in [&files.index_path, &files.time_index_path] {
                match fs::File::open(path) {
                    Ok(f) => f
                        .sync_data()
                        .map_err(|e| StorageError::io("fsync", path, e))?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StorageError::io("open", path, e)),
                }
            }
            crate::txn_index::sync(&files.txn_index_path)?;
        }
        if dir {
            checkpoint::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// The recovery point as persisted: the base offset of the first segment
    /// that may hold bytes not yet fsynced (segments below it were synced whole).
    pub fn recovery_point(&self) -> Offset {
        lock(&self.recovery_point).offset
    }

    /// Whether [`Self::sync_rolled`] has work: rolled segments not yet
    /// synced, a recovery point behind the active segment, or producer
    /// snapshots to write or delete.
    pub fn needs_sync(&self) -> bool {
        let w = lock(&self.writer);
        if w.failed || w.closed {
            return false;
        }
        if !w.unsynced.is_empty() || w.rolls != w.dir_synced_rolls || self.snapshot_work(&w) {
            return true;
        }
        let active = read_lock(&self.state).active.base();
        lock(&self.recovery_point).offset < active
    }

    /// fsync the segments rolled since the last sync (Kafka flushes a rolled
    /// segment in the background, not on the append that rolled it), then
    /// move the recovery point past them. Appends go on meanwhile: only the
    /// bookkeeping takes the writer lock, not the fsyncs. Returns whether
    /// there was anything to do. A failed fsync stops the log's writer, as a
    /// failed flush does. Also writes the producer snapshots taken at rolls
    /// (and one at the log end when due) and deletes those no longer needed
    /// ([`crate::producer_snapshot`]); a failure there is returned but does
    /// not stop the writer (snapshots are a cache).
    pub fn sync_rolled(&self) -> Result<bool, StorageError> {
        let _serial = lock(&self.sync_serial);
        let (taken, rolls, dir) = {
            let mut w = lock(&self.writer);
            if w.failed || w.closed {
                return Ok(false);
            }
            let st = read_lock(&self.state);
            // Segments deleted since they were rolled need no sync.
            w.unsynced
                .retain(|f| st.sealed.iter().any(|s| Arc::ptr_eq(&s.files, f)));
            // They stay listed until synced, so a flush meanwhile covers them.
            (w.unsynced.clone(), w.rolls, w.dir_synced_rolls < w.rolls)
        };
        if let Err(e) = self.sync_segments(&taken, dir) {
            self.fail_writer(&mut lock(&self.writer));
            return Err(e);
        }
        let snapshots = self.write_snapshots()?;
        let (target, generation) = {
            let mut w = lock(&self.writer);
            w.unsynced
                .retain(|f| !taken.iter().any(|t| Arc::ptr_eq(t, f)));
            w.dir_synced_rolls = w.dir_synced_rolls.max(rolls);
            let st = read_lock(&self.state);
            let pending = w.unsynced.iter().map(|f| f.base).min();
            let target = pending.map_or(st.active.base(), |p| p.min(st.active.base()));
            (target, lock(&self.recovery_point).generation)
        };
        let mut rp = lock(&self.recovery_point);
        if rp.generation != generation || (target <= rp.offset && rp.on_disk) {
            return Ok(!taken.is_empty() || dir || snapshots);
        }
        let target = target.max(rp.offset);
        checkpoint::write_recovery_point(&self.dir, target)?;
        rp.offset = target;
        rp.on_disk = true;
        Ok(true)
    }

    /// After a truncation or restart made `active_base` the active segment:
    /// forget pending syncs of segments at or above it, lower the recovery
    /// point to it (durably, before anything is appended), and make any
    /// [`Self::sync_rolled`] computed before now discard its value.
    fn recovery_point_after_truncation(
        &self,
        w: &mut Writer,
        active_base: Offset,
    ) -> Result<(), StorageError> {
        w.unsynced.retain(|f| f.base < active_base);
        let mut rp = lock(&self.recovery_point);
        rp.generation += 1;
        if rp.offset > active_base || !rp.on_disk {
            let lowered = rp.offset.min(active_base);
            checkpoint::write_recovery_point(&self.dir, lowered)?;
            rp.offset = lowered;
            rp.on_disk = true;
        }
        Ok(())
    }

    /// Seal the active segment (final time index entry) and start a new one
    /// at the log end offset. The sealed segment is fsynced later, by
    /// [`Self::sync_rolled`] or the next flush.
    fn roll_locked(&self, w: &mut Writer) -> Result<(), StorageError> {
        {
            // The recovery point must be on disk before a segment is sealed
            // unsynced: an absent file would stand for the new active segment.
            let mut rp = lock(&self.recovery_point);
            if !rp.on_disk {
                checkpoint::write_recovery_point(&self.dir, rp.offset)?;
                rp.on_disk = true;
            }
        }
        let (old_files, final_entry, time_len, new_base) = {
            let st = read_lock(&self.state);
            let a = &st.active;
            (
                Arc::clone(&a.files),
                a.meta.final_time_entry(a.base()),
                a.meta.time_index.len(),
                st.log_end(),
            )
        };
        if let Some(e) = final_entry {
            w.time_index_file
                .write_all_at(&e.encode(), (time_len * TIME_INDEX_ENTRY_BYTES) as u64)
                .map_err(|err| StorageError::io("write", &old_files.time_index_path, err))?;
        }
        let new_files = SegmentFiles::create(&self.dir, new_base)?;
        let (index_file, time_index_file) = new_files.open_index_writers()?;
        {
            let mut st = write_lock(&self.state);
            if let Some(e) = final_entry {
                st.active.meta.time_index.push(e);
            }
            let old = std::mem::replace(
                &mut st.active,
                Segment {
                    files: Arc::new(new_files),
                    meta: SegmentMeta::empty(new_base),
                },
            );
            w.unsynced.push(Arc::clone(&old.files));
            st.sealed.push(old);
        }
        w.rolls += 1;
        w.index_file = index_file;
        w.time_index_file = time_index_file;
        // Kafka snapshots producer state at each roll; the file is written
        // by the background `sync_rolled`, not here on the append path.
        Self::queue_snapshot(w, new_base);
        Ok(())
    }

    /// Whole batches starting with the one containing `start`, in offset
    /// order (crossing segments), while their total stays within `max_bytes`;
    /// with `min_one_batch` the first batch is returned even if larger. No
    /// batch whose base offset is `>= upper` is returned, and nothing at all
    /// when `start >= upper`. `start` equal to the log end gives an empty
    /// result; below the log start or above the log end is
    /// [`StorageError::OffsetOutOfRange`]. The result's bytes are one
    /// allocation of at most `max_bytes` (or the one oversized batch).
    pub fn read(
        &self,
        start: Offset,
        max_bytes: usize,
        upper: Offset,
        min_one_batch: bool,
    ) -> Result<ReadResult, StorageError> {
        let _io = read_lock(&self.io_guard);
        let found = self.read_slices_locked(start, max_bytes, upper, min_one_batch)?;
        let mut out = BytesMut::with_capacity(found.len);
        for slice in &found.slices {
            slice.read_append(&mut out)?;
        }
        Ok(ReadResult {
            bytes: out.freeze(),
            first_offset: found.first_offset,
            next_offset: found.next_offset,
            log_start_offset: found.log_start_offset,
            log_end_offset: found.log_end_offset,
        })
    }

    /// Like [`PartitionLog::read`], but instead of reading the batches it
    /// returns where they are: ranges of segment files (at most one per
    /// segment) that the caller sends or reads later. Only batch headers are
    /// read here.
    ///
    /// The ranges stay readable after the segment is deleted (the file stays
    /// open), but are not protected from truncation ([`PartitionLog::reset_to`]
    /// on a replica that became a follower): a range that runs past the end
    /// of a truncated file reads short, and bytes appended after a
    /// truncation can take the place of the ones found here. Readers of
    /// ranges at or below the high watermark are unaffected, because
    /// truncation never goes below it on a replica that had those records
    /// committed, and replicated batches are byte-identical; replica fetches
    /// check batch CRCs on the follower.
    pub fn read_slices(
        &self,
        start: Offset,
        max_bytes: usize,
        upper: Offset,
        min_one_batch: bool,
    ) -> Result<SliceRead, StorageError> {
        let _io = read_lock(&self.io_guard);
        self.read_slices_locked(start, max_bytes, upper, min_one_batch)
    }

    fn read_slices_locked(
        &self,
        start: Offset,
        max_bytes: usize,
        upper: Offset,
        min_one_batch: bool,
    ) -> Result<SliceRead, StorageError> {
        let (plan, log_start_offset, log_end_offset) = {
            let st = read_lock(&self.state);
            if start < st.log_start || start > st.log_end() {
                return Err(st.out_of_range(start));
            }
            let mut plan = Vec::new();
            if start < st.log_end() && start < upper {
                let first = st.locate(start);
                // Bytes in the segments after the first: once they alone
                // exceed `max_bytes`, later segments cannot be reached.
                let mut after_first = 0u64;
                for i in first..st.len() {
                    let Some(s) = st.get(i) else { break };
                    if i == first {
                        let pos = s.meta.position_for(s.base(), start);
                        plan.push((Arc::clone(&s.files), pos, s.meta.size));
                        continue;
                    }
                    plan.push((Arc::clone(&s.files), 0, s.meta.size));
                    after_first += s.meta.size;
                    if after_first >= max_bytes as u64 {
                        break;
                    }
                }
            }
            (plan, st.log_start, st.log_end())
        };

        let mut slices: Vec<LogSlice> = Vec::new();
        let mut total = 0usize;
        let mut first_offset = None;
        let mut next_offset = start;
        'segments: for (files, mut pos, end) in plan {
            let mut scan = files.header_scanner(end);
            if first_offset.is_none() {
                // Skip the batches wholly before `start`.
                loop {
                    if pos >= end {
                        continue 'segments;
                    }
                    let h = scan.header_at(pos)?;
                    if h.last_offset() >= start {
                        break;
                    }
                    pos += h.size_bytes() as u64;
                }
            }
            let from = pos;
            let mut reached_segment_end = true;
            while pos < end {
                let h = match scan.header_at(pos) {
                    Ok(h) => h,
                    // Damage in a segment that was on disk (see
                    // `segment::rebuild_keeping`): serve what comes before
                    // it; the next read, starting there, fails.
                    Err(StorageError::Corrupt { .. }) if first_offset.is_some() => {
                        reached_segment_end = false;
                        break;
                    }
                    Err(e) => return Err(e),
                };
                if h.base_offset >= upper {
                    reached_segment_end = false;
                    break;
                }
                let taken = total + usize::try_from(pos - from).unwrap_or(usize::MAX);
                if h.size_bytes() > max_bytes.saturating_sub(taken) {
                    if taken == 0 && min_one_batch {
                        first_offset = Some(h.base_offset);
                        next_offset = h.next_offset();
                        pos += h.size_bytes() as u64;
                    }
                    reached_segment_end = false;
                    break;
                }
                first_offset.get_or_insert(h.base_offset);
                next_offset = h.next_offset();
                pos += h.size_bytes() as u64;
            }
            drop(scan);
            if pos > from {
                let len = usize::try_from(pos - from).unwrap_or(usize::MAX);
                total = total.saturating_add(len);
                slices.push(LogSlice {
                    files,
                    position: from,
                    len,
                });
            }
            if !reached_segment_end {
                break;
            }
        }
        Ok(SliceRead {
            slices,
            len: total,
            first_offset,
            next_offset,
            log_start_offset,
            log_end_offset,
        })
    }

    /// The earliest record (by offset, at or after the log start) whose
    /// timestamp is `>= ts`, as (offset, timestamp). Uses segment max
    /// timestamps and the time index to find where to look, then decodes
    /// candidate batches.
    pub fn offset_for_timestamp(
        &self,
        ts: TimestampMs,
    ) -> Result<Option<(Offset, TimestampMs)>, StorageError> {
        let _io = read_lock(&self.io_guard);
        let (log_start, candidates) = {
            let st = read_lock(&self.state);
            let log_start = st.log_start;
            let candidates: Vec<_> = st
                .iter()
                .filter(|s| s.meta.max_timestamp >= ts.get() && s.meta.next_offset > log_start)
                .map(|s| {
                    let mut from = s.base().max(log_start);
                    if let Some(e) = index::lookup_time_before(&s.meta.time_index, ts.get()) {
                        from = from.max(Offset(
                            s.base().get().saturating_add(i64::from(e.relative_offset)),
                        ));
                    }
                    (
                        Arc::clone(&s.files),
                        s.meta.position_for(s.base(), from),
                        s.meta.size,
                    )
                })
                .collect();
            (log_start, candidates)
        };
        for (files, pos, end) in candidates {
            let found = segment::find_batch(&files, pos, end, |p, h| {
                if h.max_timestamp < ts || h.last_offset() < log_start {
                    return Ok(None);
                }
                let records = decode_at(&files, p, h)?;
                Ok(records
                    .iter()
                    .map(|r| (h.record_offset(r), h.record_timestamp(r)))
                    .find(|&(o, t)| o >= log_start && t >= ts))
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp at or after the log start (the
    /// earliest such record on ties), as (timestamp, offset); `None` when no
    /// batch carries a timestamp.
    pub fn max_timestamp(&self) -> Result<Option<(TimestampMs, Offset)>, StorageError> {
        let _io = read_lock(&self.io_guard);
        struct Candidate {
            files: Arc<SegmentFiles>,
            end: u64,
            /// Walk every batch from here (segment straddling the log start).
            walk_from: Option<u64>,
            /// Else: the segment's max and where its batch is.
            max_timestamp: i64,
            offset_of_max: Offset,
            position: u64,
        }
        let (log_start, candidates) = {
            let st = read_lock(&self.state);
            let log_start = st.log_start;
            let candidates: Vec<Candidate> = st
                .iter()
                .filter(|s| s.meta.next_offset > log_start && s.meta.max_timestamp >= 0)
                .map(|s| Candidate {
                    files: Arc::clone(&s.files),
                    end: s.meta.size,
                    walk_from: (s.base() < log_start)
                        .then(|| s.meta.position_for(s.base(), log_start)),
                    max_timestamp: s.meta.max_timestamp,
                    offset_of_max: s.meta.offset_of_max,
                    position: s.meta.position_for(s.base(), s.meta.offset_of_max),
                })
                .collect();
            (log_start, candidates)
        };
        let mut best: Option<(TimestampMs, Offset)> = None;
        let beats = |best: &Option<(TimestampMs, Offset)>, ts: TimestampMs| {
            best.is_none_or(|(b, _)| ts > b)
        };
        for c in candidates {
            if let Some(from) = c.walk_from {
                segment::find_batch(&c.files, from, c.end, |p, h| {
                    if h.last_offset() < log_start {
                        return Ok(None::<()>);
                    }
                    if h.base_offset < log_start || beats(&best, h.max_timestamp) {
                        if let Some(found) = live_max(&c.files, p, h, log_start)? {
                            if beats(&best, found.0) {
                                best = Some(found);
                            }
                        }
                    }
                    Ok(None)
                })?;
                continue;
            }
            if !beats(&best, TimestampMs(c.max_timestamp)) {
                continue;
            }
            let target = c.offset_of_max;
            let found = segment::find_batch(&c.files, c.position, c.end, |p, h| {
                if h.last_offset() < target {
                    return Ok(None);
                }
                Ok(Some(live_max(&c.files, p, h, log_start)?))
            })?;
            if let Some(Some(found)) = found {
                if beats(&best, found.0) {
                    best = Some(found);
                }
            }
        }
        Ok(best)
    }

    /// Move the log start to `offset` (persisted) and delete the segments
    /// wholly below it. `offset` must be `<= log end`; a value at or below the
    /// current log start changes nothing. Returns the new log start.
    pub fn delete_records_before(&self, offset: Offset) -> Result<Offset, StorageError> {
        let mut w = lock(&self.writer);
        self.check_writable(&w)?;
        {
            let st = read_lock(&self.state);
            if offset > st.log_end() {
                return Err(st.out_of_range(offset));
            }
            if offset <= st.log_start {
                return Ok(st.log_start);
            }
        }
        checkpoint::write(&self.dir, offset)?;
        let removed: Vec<Segment> = {
            let mut st = write_lock(&self.state);
            st.log_start = offset;
            let below = st
                .sealed
                .iter()
                .take_while(|s| s.meta.next_offset <= offset)
                .count();
            let removed = st.sealed.drain(..below).collect();
            Self::txns_after_start_moved(&mut st);
            removed
        };
        self.update_epochs(|cache, _| cache.truncate_from_start(offset))?;
        Self::want_snapshot_from(&mut w, offset);
        self.remove_segments(&removed)?;
        Ok(offset)
    }

    /// Delete segments below the log start (which the caller has already
    /// checkpointed past them): their files are renamed to `.deleted` now and
    /// unlinked in the background ([`crate::deleter`]).
    fn remove_segments(&self, removed: &[Segment]) -> Result<(), StorageError> {
        let mut doomed = Vec::with_capacity(removed.len() * 3);
        for s in removed {
            doomed.extend(s.files.rename_for_deletion()?);
        }
        deleter::remove_in_background(doomed);
        Ok(())
    }

    /// Delete the oldest segment (for retention), moving the log start past
    /// it. When only the active segment holds data it is rolled first, so the
    /// log ends up empty at its log end offset. `None` if the log is empty.
    pub fn delete_oldest_segment(&self) -> Result<Option<SegmentInfo>, StorageError> {
        let mut w = lock(&self.writer);
        self.check_writable(&w)?;
        let needs_roll = {
            let st = read_lock(&self.state);
            if st.sealed.is_empty() && st.active.meta.size == 0 {
                return Ok(None);
            }
            st.sealed.is_empty()
        };
        if needs_roll {
            self.roll_locked(&mut w)?;
        }
        let (old_start, new_start) = {
            let st = read_lock(&self.state);
            let next_base = st.get(1).map_or(st.log_end(), Segment::base);
            (st.log_start, st.log_start.max(next_base))
        };
        if new_start > old_start {
            checkpoint::write(&self.dir, new_start)?;
        }
        let removed = {
            let mut st = write_lock(&self.state);
            st.log_start = new_start;
            let removed = (!st.sealed.is_empty()).then(|| st.sealed.remove(0));
            Self::txns_after_start_moved(&mut st);
            removed
        };
        let info = removed.as_ref().map(|s| s.info(false));
        // Checkpoints first: an fsync after the files are handed to the
        // deleter would wait for the journal commit freeing their blocks.
        self.update_epochs(|cache, _| cache.truncate_from_start(new_start))?;
        Self::want_snapshot_from(&mut w, new_start);
        if let Some(removed) = &removed {
            self.remove_segments(std::slice::from_ref(removed))?;
        }
        Ok(info)
    }

    /// Remove every record at offset `>= offset` (for replica reconciliation).
    /// Whole batches are dropped: the batch containing `offset` goes too, so
    /// the new log end may be below `offset`. `offset >= log end` changes
    /// nothing; `offset` below the log start empties the log and restarts it
    /// at `offset`. Later segments are deleted newest first and the file is
    /// truncated and fsynced, so a crash midway leaves a prefix of the log.
    /// Producer snapshots above the new end are deleted (durably, with the
    /// cut) and the producer state is reloaded from the newest remaining one
    /// plus the headers after it (Kafka's `truncateAndReload`).
    pub fn truncate_to(&self, offset: Offset) -> Result<(), StorageError> {
        let cfg = self.config();
        let mut w = lock(&self.writer);
        self.check_writable(&w)?;
        let _io = write_lock(&self.io_guard);
        let end_before = read_lock(&self.state).log_end();
        let result = self
            .truncate_locked(&mut w, offset, cfg.index_interval_bytes)
            .and_then(|()| {
                if read_lock(&self.state).log_end() < end_before {
                    self.reload_producers(&mut w)?;
                    self.txns_after_truncation(&w)?;
                }
                Ok(())
            });
        if result.is_err() {
            // The files may no longer match the in-memory view.
            self.fail_writer(&mut w);
        }
        result
    }

    /// Delete every record and restart the log empty at `offset`, which
    /// becomes both the log start and the log end, whether it is above or
    /// below the current range (Kafka's `truncateFullyAndStartAt`: a follower
    /// whose log end fell below the leader's log start). The leader epoch
    /// cache and the producer state (and its snapshots) are emptied.
    /// Segments are deleted newest first, then the new
    /// log start is checkpointed, so a crash midway leaves a prefix of the old
    /// log, or an empty log at the old log start or at `offset`. A negative
    /// `offset` is [`StorageError::OffsetOutOfRange`].
    pub fn reset_to(&self, offset: Offset) -> Result<(), StorageError> {
        let mut w = lock(&self.writer);
        self.check_writable(&w)?;
        let _io = write_lock(&self.io_guard);
        let mut st = write_lock(&self.state);
        if offset.get() < 0 {
            return Err(st.out_of_range(offset));
        }
        let result = self.restart_at(&mut w, &mut st, offset);
        if result.is_err() {
            // The files may no longer match the in-memory view.
            self.fail_writer(&mut w);
        }
        result
    }

    fn truncate_locked(
        &self,
        w: &mut Writer,
        offset: Offset,
        index_interval_bytes: u32,
    ) -> Result<(), StorageError> {
        let mut st = write_lock(&self.state);
        if offset >= st.log_end() {
            return Ok(());
        }
        st.truncations += 1;
        // Before any record goes: nothing at or above the cut may count as
        // clean, and only compacted ranges below it may have gaps.
        self.lower_cleaner_checkpoint(&mut st, offset)?;
        if offset < st.log_start {
            return self.restart_at(w, &mut st, offset);
        }
        while st.active.base() > offset {
            let Some(prev) = st.sealed.pop() else { break };
            let dropped = std::mem::replace(&mut st.active, prev);
            dropped.files.remove_files()?;
        }
        let files = Arc::clone(&st.active.files);
        let size = st.active.meta.size;
        let from = st.active.meta.position_for(files.base, offset);
        let cut = segment::find_batch(&files, from, size, |p, h| {
            Ok((h.last_offset() >= offset).then_some(p))
        })?
        .unwrap_or(size);
        files
            .log
            .set_len(cut)
            .and_then(|()| files.log.sync_data())
            .map_err(|e| StorageError::io("truncate", &files.log_path, e))?;
        st.active.meta = segment::rebuild_from_headers(&files, cut, index_interval_bytes)?;
        self.drop_snapshots_above(w, st.log_end())?;
        checkpoint::sync_dir(&self.dir)?;
        let (index_file, time_index_file) = files.open_index_writers()?;
        w.index_file = index_file;
        w.time_index_file = time_index_file;
        w.unflushed_records = 0;
        self.recovery_point_after_truncation(w, st.active.base())?;
        let end = st.log_end();
        self.lower_cleaner_checkpoint(&mut st, end)?;
        self.update_epochs_in(&mut st, |cache| cache.truncate_from_end(end))?;
        if st.log_end() < st.log_start {
            // Only records below the log start were left: continue at the log start.
            let start = st.log_start;
            return self.restart_at(w, &mut st, start);
        }
        Ok(())
    }

    /// Delete every segment and start empty at `offset`, which becomes the log start.
    fn restart_at(
        &self,
        w: &mut Writer,
        st: &mut LogState,
        offset: Offset,
    ) -> Result<(), StorageError> {
        st.active.files.remove_files()?;
        while let Some(s) = st.sealed.pop() {
            s.files.remove_files()?;
        }
        // Kafka's `truncateFullyAndStartAt`: no producer state survives.
        self.drop_snapshots_above(w, Offset(-1))?;
        w.producers.clear();
        w.bytes_since_snapshot = 0;
        w.snapshot_wanted = false;
        let files = SegmentFiles::create(&self.dir, offset)?;
        let (index_file, time_index_file) = files.open_index_writers()?;
        checkpoint::sync_dir(&self.dir)?;
        w.unsynced.clear();
        self.recovery_point_after_truncation(w, offset)?;
        checkpoint::write(&self.dir, offset)?;
        let restarted = CleanerCheckpoint {
            first_dirty: offset,
            compacted_end: offset,
        };
        restarted.write(&self.dir)?;
        st.cleaner = restarted;
        self.update_epochs_in(st, EpochCache::clear)?;
        st.aborted = aborted::AbortedCache {
            entries: Vec::new(),
            from: offset,
        };
        st.first_unstable = None;
        st.truncations += 1;
        st.active = Segment {
            files: Arc::new(files),
            meta: SegmentMeta::empty(offset),
        };
        st.log_start = offset;
        w.index_file = index_file;
        w.time_index_file = time_index_file;
        w.unflushed_records = 0;
        Ok(())
    }

    /// Seal the active segment now (final time index entry; synced later) and start
    /// a new one at the log end, as if a roll condition had been met (Kafka's
    /// `Log.roll`; e.g. so a compaction can reach the latest records). Does
    /// nothing when the active segment is empty.
    pub fn roll(&self) -> Result<(), StorageError> {
        let mut w = lock(&self.writer);
        self.check_writable(&w)?;
        if read_lock(&self.state).active.meta.size == 0 {
            return Ok(());
        }
        self.roll_locked(&mut w)
    }

    /// Lower the cleaner checkpoint's offsets to at most `to` (persisted
    /// first). Caller holds the writer lock.
    fn lower_cleaner_checkpoint(&self, st: &mut LogState, to: Offset) -> Result<(), StorageError> {
        let cur = st.cleaner;
        let lowered = CleanerCheckpoint {
            first_dirty: cur.first_dirty.min(to),
            compacted_end: cur.compacted_end.min(to),
        };
        if lowered != cur {
            lowered.write(&self.dir)?;
            st.cleaner = lowered;
        }
        Ok(())
    }

    /// The sealed segments as the cleaner sees them, and the first dirty
    /// offset (the cleaner checkpoint, at least the log start).
    fn cleaner_snapshot(st: &LogState) -> (Vec<SegmentSnapshot>, Offset) {
        let first_dirty = st.cleaner.first_dirty.max(st.log_start);
        let segments = st
            .sealed
            .iter()
            .map(|s| SegmentSnapshot {
                files: Arc::clone(&s.files),
                next_offset: s.meta.next_offset,
                size: s.meta.size,
                max_timestamp: s.meta.max_timestamp,
                index_entries: s.meta.index.len(),
                time_entries: s.meta.time_index.len(),
                dirty_position: if s.meta.next_offset <= first_dirty {
                    s.meta.size
                } else if s.base() >= first_dirty {
                    0
                } else {
                    s.meta.position_for(s.base(), first_dirty)
                },
            })
            .collect();
        (segments, first_dirty)
    }

    /// The cleaner checkpoint: records below it were deduplicated by a
    /// completed clean.
    pub fn first_dirty_offset(&self) -> Offset {
        let st = read_lock(&self.state);
        st.cleaner.first_dirty.max(st.log_start)
    }

    /// The fraction of the sealed segments' bytes past the cleaner
    /// checkpoint ("dirty"); 0 when there are no sealed bytes. The segment
    /// holding the checkpoint counts from the offset index entry at or before
    /// it, so the ratio may slightly overstate the dirty part.
    pub fn dirty_ratio(&self) -> f64 {
        let (segments, _) = Self::cleaner_snapshot(&read_lock(&self.state));
        cleaner::dirty_ratio(&segments)
    }

    /// Compact the log (Kafka's `cleanup.policy=compact`) if a clean is due:
    /// the dirty ratio of the cleanable range is at least
    /// `min_cleanable_dirty_ratio`, or a dirty record is older than
    /// `max_compaction_lag_ms`. Never touches the active segment nor segments
    /// holding dirty records newer than `min_compaction_lag_ms`. Offsets, the
    /// log start and the log end never change. `None` when nothing was due.
    /// See [`crate::cleaner`] for the rules, concurrency and crash behaviour.
    pub fn compact(
        &self,
        config: &CompactionConfig,
        now: TimestampMs,
    ) -> Result<Option<CompactionStats>, StorageError> {
        self.compact_inner(config, now, Offset(i64::MAX), None)
    }

    /// [`Self::compact`] for a replica whose records at or above
    /// `high_watermark` may still be truncated: as Kafka, a clean never
    /// reaches the last stable offset (the smaller of the first unstable
    /// offset and the high watermark); only sealed segments wholly below it
    /// are cleaned.
    pub fn compact_below(
        &self,
        config: &CompactionConfig,
        now: TimestampMs,
        high_watermark: Offset,
    ) -> Result<Option<CompactionStats>, StorageError> {
        self.compact_inner(config, now, high_watermark, None)
    }

    /// Test hook: [`PartitionLog::compact`], but the replacement of the
    /// `group`-th merged segment stops at `point` as if the process died
    /// there; the log then fails with [`StorageError::Failed`] and must be
    /// reopened (which runs recovery).
    #[doc(hidden)]
    pub fn compact_crashing_at(
        &self,
        config: &CompactionConfig,
        now: TimestampMs,
        group: usize,
        point: SwapCrashPoint,
    ) -> Result<Option<CompactionStats>, StorageError> {
        self.compact_inner(config, now, Offset(i64::MAX), Some((group, point)))
    }

    fn truncated_since(&self, epoch: u64) -> bool {
        read_lock(&self.state).truncations != epoch
    }

    /// A pass failed: if a truncation pulled the data away meanwhile, the
    /// clean is simply abandoned.
    fn abandon<T>(&self, epoch: u64, e: StorageError) -> Result<Option<T>, StorageError> {
        if self.truncated_since(epoch) {
            tracing::info!(dir = %self.dir.display(), error = %e, "compaction abandoned after a truncation");
            Ok(None)
        } else {
            Err(e)
        }
    }

    fn compact_inner(
        &self,
        config: &CompactionConfig,
        now: TimestampMs,
        high_watermark: Offset,
        crash: Option<(usize, SwapCrashPoint)>,
    ) -> Result<Option<CompactionStats>, StorageError> {
        let mut cleaning = lock(&self.cleaning);
        let tombstones_due = cleaning.is_some_and(|deadline| now.get() >= deadline);
        self.check_writable(&lock(&self.writer))?;
        let log_config = self.config();
        let (segments, first_dirty, epoch, range) = {
            let st = read_lock(&self.state);
            let (mut segments, first_dirty) = Self::cleaner_snapshot(&st);
            // Never past the last stable offset (Kafka's
            // `firstUncleanableDirtyOffset`): open transactions stay whole.
            let stable_end = st
                .first_unstable
                .map_or(high_watermark, |f| f.max(st.log_start).min(high_watermark));
            let stable = segments.partition_point(|s| s.next_offset <= stable_end);
            segments.truncate(stable);
            let from = segments.first().map_or(st.log_start, SegmentSnapshot::base);
            let upper = segments.last().map_or(from, |s| s.next_offset);
            (segments, first_dirty, st.truncations, (from, upper))
        };
        let aborted = match self.collect_aborted(range.0, range.1, usize::MAX) {
            Ok(a) => cleaner::AbortedRanges::new(&a),
            Err(e) => return self.abandon(epoch, e),
        };
        let plan = match cleaner::plan(&segments, first_dirty, config, now, tombstones_due) {
            Ok(Some(plan)) => plan,
            Ok(None) => return Ok(None),
            Err(e) => return self.abandon(epoch, e),
        };
        let cleanable = segments.get(..plan.cleanable).unwrap_or_default();
        let (map, dirty_end) =
            match cleaner::build_offset_map(cleanable, first_dirty, config, &aborted) {
                Ok(r) => r,
                Err(e) => return self.abandon(epoch, e),
            };
        let rewrite: Vec<SegmentSnapshot> = cleanable
            .iter()
            .take_while(|s| s.base() < dirty_end)
            .cloned()
            .collect();
        let producers = match ProducerLastBatches::scan(&rewrite) {
            Ok(p) => p,
            Err(e) => return self.abandon(epoch, e),
        };
        tracing::debug!(
            dir = %self.dir.display(),
            first_dirty = first_dirty.get(),
            dirty_end = dirty_end.get(),
            keys = map.len(),
            segments = rewrite.len(),
            "compacting"
        );
        let groups = cleaner::group_segments(&rewrite, &log_config);
        let compacted_end = rewrite.last().map_or(Offset(0), |s| s.next_offset);
        let mut rewriter = Rewriter::new(
            map,
            producers,
            aborted,
            (first_dirty, dirty_end),
            config,
            &log_config,
            now,
        );
        let mut stats = CompactionStats {
            segments_cleaned: 0,
            records_read: 0,
            records_kept: 0,
            tombstones_dropped: 0,
            aborted_records_dropped: 0,
            markers_removed: 0,
            bytes_before: 0,
            bytes_after: 0,
            dirty_ratio: plan.dirty_ratio,
            first_dirty_offset: first_dirty,
        };
        for (i, range) in groups.into_iter().enumerate() {
            let group = rewrite.get(range).unwrap_or_default();
            let cleaned = match rewriter.clean_group(&self.dir, group) {
                Ok(c) => c,
                Err(e) => return self.abandon(epoch, e).map(|_: Option<()>| Some(stats)),
            };
            stats.records_read += cleaned.stats.records_read;
            stats.records_kept += cleaned.stats.records_kept;
            stats.tombstones_dropped += cleaned.stats.tombstones_dropped;
            stats.aborted_records_dropped += cleaned.stats.aborted_dropped;
            stats.bytes_before += cleaned.stats.bytes_before;
            stats.bytes_after += cleaned.stats.bytes_after;
            if !cleaned.changed {
                cleaned.discard();
                continue;
            }
            let crash_here = crash.filter(|&(g, _)| g == i).map(|(_, p)| p);
            let removed = &rewriter.txns.removed_aborts;
            match self.swap_in(cleaned, compacted_end, epoch, removed, crash_here)? {
                SwapOutcome::Replaced(n) => stats.segments_cleaned += n,
                SwapOutcome::Skipped => {}
                SwapOutcome::Truncated => return Ok(Some(stats)),
            }
        }
        stats.markers_removed = rewriter.txns.markers_removed;
        *cleaning = match (rewriter.tombstone_deadline, rewriter.txns.horizon_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let w = lock(&self.writer);
        self.check_writable(&w)?;
        let cur = {
            let st = read_lock(&self.state);
            if st.truncations != epoch {
                return Ok(Some(stats));
            }
            st.cleaner
        };
        let advanced = CleanerCheckpoint {
            first_dirty: cur.first_dirty.max(dirty_end),
            ..cur
        };
        if advanced != cur {
            advanced.write(&self.dir)?;
            write_lock(&self.state).cleaner = advanced;
        }
        stats.first_dirty_offset = advanced.first_dirty;
        drop(w);
        Ok(Some(stats))
    }

    /// Replace a cleaned group's originals (under the writer lock).
    fn swap_in(
        &self,
        cleaned: CleanedGroup,
        compacted_end: Offset,
        epoch: u64,
        removed_aborts: &std::collections::BTreeSet<Offset>,
        crash: Option<SwapCrashPoint>,
    ) -> Result<SwapOutcome, StorageError> {
        let mut w = lock(&self.writer);
        if let Err(e) = self.check_writable(&w) {
            cleaned.discard();
            return Err(e);
        }
        let (at, cur) = {
            let st = read_lock(&self.state);
            if st.truncations != epoch {
                cleaned.discard();
                return Ok(SwapOutcome::Truncated);
            }
            let at = st.sealed.iter().position(|s| {
                cleaned
                    .originals
                    .first()
                    .is_some_and(|o| Arc::ptr_eq(o, &s.files))
            });
            let whole_run = at.is_some_and(|at| {
                st.sealed
                    .get(at..at + cleaned.originals.len())
                    .is_some_and(|run| {
                        run.iter()
                            .zip(&cleaned.originals)
                            .all(|(s, o)| Arc::ptr_eq(&s.files, o))
                    })
            });
            (at.filter(|_| whole_run), st.cleaner)
        };
        let Some(at) = at else {
            cleaned.discard();
            return Ok(SwapOutcome::Skipped);
        };
        if cur.compacted_end < compacted_end {
            // Durable before any gap is committed (see `cleaner`).
            let raised = CleanerCheckpoint {
                compacted_end,
                ..cur
            };
            if let Err(e) = raised.write(&self.dir) {
                cleaned.discard();
                return Err(e);
            }
            write_lock(&self.state).cleaner = raised;
        }
        let crashed = |w: &mut Writer| {
            w.failed = true;
            Err(StorageError::Failed {
                dir: self.dir.clone(),
            })
        };
        if crash == Some(SwapCrashPoint::Cleaned) {
            return crashed(&mut w);
        }
        let mut committed = false;
        match cleaned.replace_originals(&self.dir, crash, &mut committed) {
            Ok(true) => {}
            Ok(false) => return crashed(&mut w),
            Err(e) => {
                if committed {
                    // The files no longer match the in-memory view; a reopen
                    // completes the replacement.
                    self.fail_writer(&mut w);
                } else {
                    cleaned.discard();
                }
                return Err(e);
            }
        }
        let replaced = cleaned.originals.len();
        if let Err(e) = self.txns_after_swap(
            &cleaned.files,
            cleaned.meta.next_offset,
            &cleaned.originals,
            removed_aborts,
        ) {
            // The merged segment's index may miss entries; a reopen merges
            // the originals' leftover files (see `txn_index`).
            self.fail_writer(&mut w);
            return Err(e);
        }
        {
            let mut st = write_lock(&self.state);
            let end = (at + replaced).min(st.sealed.len());
            st.sealed.splice(
                at..end,
                std::iter::once(Segment {
                    files: Arc::new(cleaned.files),
                    meta: cleaned.meta,
                }),
            );
        }
        if crash == Some(SwapCrashPoint::Installed) {
            return crashed(&mut w);
        }
        Ok(SwapOutcome::Replaced(replaced))
    }

    /// fsync everything appended so far: rolled segments not yet synced and
    /// the active segment.
    pub fn flush(&self) -> Result<(), StorageError> {
        let mut w = lock(&self.writer);
        if w.failed {
            return Err(StorageError::Failed {
                dir: self.dir.clone(),
            });
        }
        self.flush_locked(&mut w, now_ms())
    }

    /// fsync the active segment if it holds unflushed records and `flush_ms`
    /// has passed since the last flush (the periodic half of Kafka's
    /// `flush.ms`; appends check it too). Returns whether it flushed.
    pub fn flush_if_due(&self, now: TimestampMs) -> Result<bool, StorageError> {
        let cfg = self.config();
        let mut w = lock(&self.writer);
        if w.failed || w.closed || w.unflushed_records == 0 {
            return Ok(false);
        }
        let since = u64::try_from(now.get().saturating_sub(w.last_flush_ms)).unwrap_or(0);
        if since < cfg.flush_ms {
            return Ok(false);
        }
        self.flush_locked(&mut w, now.get())?;
        Ok(true)
    }

    /// Flush, snapshot the producer state at the log end, and write the
    /// clean-shutdown marker, so the next open skips full recovery and
    /// producer-state replay. Later writes fail with [`StorageError::Closed`]; reads still work.
    pub fn close(&self) -> Result<(), StorageError> {
        let mut w = lock(&self.writer);
        if w.closed {
            return Ok(());
        }
        self.check_writable(&w)?;
        self.flush_locked(&mut w, now_ms())?;
        let end = read_lock(&self.state).log_end();
        if !w.snapshots.contains(&end) {
            let bytes = producer_snapshot::encode(end, &w.producers);
            match producer_snapshot::write_synced(&self.dir, end, &bytes) {
                Ok(()) => {
                    w.snapshots.insert(end);
                }
                // A cache: the next open replays headers instead.
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "writing the producer snapshot at shutdown")
                }
            }
        }
        w.pending_snapshots.clear();
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| StorageError::io("create", &marker, e))?;
        checkpoint::sync_dir(&self.dir)?;
        w.closed = true;
        Ok(())
    }

    /// Delete the whole partition directory.
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        delete_log_dir(&dir)
    }
}

/// The leader epoch cache for a log just opened: the checkpoint file, or when
/// it is missing or unparsable, one rebuilt from the segments' batch headers;
/// then trimmed to the log (`[log_start, log_end)`, see
/// [`crate::epoch_cache`]) and written back if that changed anything.
fn load_epoch_cache(
    dir: &Path,
    sealed: &[Segment],
    active: &Segment,
    log_start: Offset,
    log_end: Offset,
) -> Result<EpochCache, StorageError> {
    let (mut cache, mut dirty) = match EpochCache::read(dir)? {
        Some(cache) => (cache, false),
        None => {
            let mut cache = EpochCache::default();
            for s in sealed.iter().chain(std::iter::once(active)) {
                segment::find_batch(&s.files, 0, s.meta.size, |_, h| {
                    cache.record(h.partition_leader_epoch, h.base_offset);
                    Ok(None::<()>)
                })?;
            }
            // A new partition has no checkpoint yet: only a rebuild that
            // found epochs (a lost or damaged checkpoint) is news.
            if cache.entries().is_empty() {
                tracing::debug!(dir = %dir.display(), "no leader epoch cache; the log is empty");
            } else {
                tracing::info!(
                    dir = %dir.display(),
                    entries = cache.entries().len(),
                    "rebuilt the leader epoch cache from the log"
                );
            }
            (cache, true)
        }
    };
    dirty |= cache.truncate_from_start(log_start);
    dirty |= cache.truncate_from_end(log_end);
    if dirty {
        cache.write(dir)?;
    }
    Ok(cache)
}

/// Read and decode the batch at `position`.
fn decode_at(
    files: &SegmentFiles,
    position: u64,
    header: &BatchHeader,
) -> Result<Vec<batch::Record>, StorageError> {
    let mut bytes = vec![0u8; header.size_bytes()];
    files.read_exact_at(&mut bytes, position)?;
    batch::records(&bytes, DECODE_BYTES_MAX).map_err(|e| files.corrupt(position, &e.to_string()))
}

/// The largest record timestamp among the batch's records at or after
/// `log_start`, with the earliest offset carrying it.
fn live_max(
    files: &SegmentFiles,
    position: u64,
    header: &BatchHeader,
    log_start: Offset,
) -> Result<Option<(TimestampMs, Offset)>, StorageError> {
    let records = decode_at(files, position, header)?;
    let mut best: Option<(TimestampMs, Offset)> = None;
    for r in &records {
        let (o, t) = (header.record_offset(r), header.record_timestamp(r));
        if o >= log_start && best.is_none_or(|(b, _)| t > b) {
            best = Some((t, o));
        }
    }
    Ok(best)
}
