//! One segment: its three files, positioned reads, batch-by-batch scanning, index upkeep and recovery.
//!
//! # Files
//!
//! A segment whose first offset is `B` is stored as `<B as 20 zero-padded
//! digits>.log`, `.index` and `.timeindex` in the partition directory
//! (`00000000000000000042.log`, ...). The `.log` file is the concatenation of
//! the record batches appended to the segment, byte for byte as appended
//! (after the broker patched `baseOffset` and `partitionLeaderEpoch`); there is
//! no file header and no padding. See [`crate::index`] for the index layouts.
//!
//! A segment rewritten by the cleaner ([`crate::cleaner`]) holds the same
//! kind of batches, but with offset gaps: a batch may start after the
//! previous one's last offset + 1 (whole batches removed), a batch may hold
//! fewer records than `lastOffsetDelta + 1` with gaps between their offset
//! deltas, and a batch may hold no records at all (`recordsCount` 0). Batch
//! offsets still strictly increase, and a batch's `lastOffsetDelta` is never
//! changed, so its next offset is still `baseOffset + lastOffsetDelta + 1`.
//!
//! # Crash behaviour
//!
//! Bytes are written with positioned writes at the end of the file; a crash can
//! leave a torn batch (a prefix of a batch, or a batch whose unflushed pages
//! were lost and read back as zeros or stale data) in any segment not yet
//! fsynced: the active one, and sealed ones rolled since the last sync (at or
//! above the log's recovery point, see [`crate::log`]). `recover` scans a
//! segment batch by batch — header sanity, `batchLength` within the file,
//! CRC-32C, offsets increasing (for segments that were appended to since the
//! last sync: contiguous, except for gaps the cleaner made, see
//! `Continuity`) — truncates the file at the first batch that fails, and
//! rebuilds both indexes. `load_fast` is the cheap path for segments that are
//! known to be complete (synced ones, or any after a clean shutdown): it
//! trusts the CRCs, sanity-checks the index files and walks only the headers
//! after the last offset index entry; when anything looks wrong the caller
//! falls back to `recover` for segments that may hold unsynced bytes, and to
//! `rebuild_keeping` (which never truncates) for segments fsynced whole.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use samsa_model::batch::{self, BatchHeader, BATCH_HEADER_BYTES};
use samsa_model::Offset;

use crate::config::SEGMENT_BYTES_MAX;
use crate::error::StorageError;
use crate::index::{
    self, OffsetIndexEntry, TimeIndexEntry, OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES,
};

/// Suffix of a segment's log file.
pub const LOG_SUFFIX: &str = ".log";
/// Suffix of a segment's offset index.
pub const INDEX_SUFFIX: &str = ".index";
/// Suffix of a segment's time index.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Digits in a segment file name's base offset.
const FILE_NAME_DIGITS: usize = 20;
/// Read-ahead for whole-segment scans (recovery).
pub(crate) const SCAN_BUFFER_BYTES: usize = 1 << 20;
/// Read-ahead for short header walks (lookups, tail checks).
const WALK_BUFFER_BYTES: usize = 64 << 10;
/// Largest relative offset an index entry can hold.
pub(crate) const RELATIVE_OFFSET_MAX: i64 = u32::MAX as i64;

/// Damaged batches found so far in segments that were fsynced whole (see
/// [`damaged_batches_found`]), across every log of the process.
static DAMAGED_BATCHES: AtomicU64 = AtomicU64::new(0);

/// How many damaged batches opens have found in segments that were fsynced
/// whole (below the recovery point, or any after a clean shutdown) since the
/// process started: bytes the disk changed after they were durable. Each is
/// also logged at ERROR. For the broker's metrics.
pub fn damaged_batches_found() -> u64 {
    DAMAGED_BATCHES.load(Ordering::Relaxed)
}

/// The file name stem of a segment (`{base:020}`).
pub fn file_stem(base: Offset) -> String {
    format!("{:0width$}", base.get(), width = FILE_NAME_DIGITS)
}

/// The base offset named by a segment file name with `suffix`, if it is one.
pub fn parse_file_name(name: &str, suffix: &str) -> Option<Offset> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != FILE_NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse::<i64>().ok().map(Offset)
}

/// The open files of one segment. Only the log file stays open; readers share
/// it through positioned reads, the single writer appends with positioned
/// writes.
#[derive(Debug)]
pub(crate) struct SegmentFiles {
    pub base: Offset,
    pub log_path: PathBuf,
    pub index_path: PathBuf,
    pub time_index_path: PathBuf,
    /// The aborted-transaction index ([`crate::txn_index`]), created by the
    /// segment's first ABORT marker.
    pub txn_index_path: PathBuf,
    pub log: File,
}

impl SegmentFiles {
    pub(crate) fn paths(dir: &Path, base: Offset) -> (PathBuf, PathBuf, PathBuf) {
        let stem = file_stem(base);
        (
            dir.join(format!("{stem}{LOG_SUFFIX}")),
            dir.join(format!("{stem}{INDEX_SUFFIX}")),
            dir.join(format!("{stem}{TIME_INDEX_SUFFIX}")),
        )
    }

    /// Open an existing segment's log file.
    pub fn open(dir: &Path, base: Offset) -> Result<SegmentFiles, StorageError> {
        let (log_path, index_path, time_index_path) = Self::paths(dir, base);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| StorageError::io("open", &log_path, e))?;
        Ok(SegmentFiles {
            base,
            log_path,
            index_path,
            time_index_path,
            txn_index_path: crate::txn_index::path(dir, base),
            log,
        })
    }

    /// Create a new, empty segment (all three files, replacing leftovers; a
    /// leftover `.txnindex` is removed).
    /// The caller fsyncs the directory.
    pub fn create(dir: &Path, base: Offset) -> Result<SegmentFiles, StorageError> {
        let (log_path, index_path, time_index_path) = Self::paths(dir, base);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| StorageError::io("create", &log_path, e))?;
        for path in [&index_path, &time_index_path] {
            File::create(path).map_err(|e| StorageError::io("create", path, e))?;
        }
        crate::txn_index::rewrite(&crate::txn_index::path(dir, base), &[])?;
        Ok(SegmentFiles {
            base,
            log_path,
            index_path,
            time_index_path,
            txn_index_path: crate::txn_index::path(dir, base),
            log,
        })
    }

    /// Size of the log file on disk.
    pub fn log_file_bytes(&self) -> Result<u64, StorageError> {
        self.log
            .metadata()
            .map(|m| m.len())
            .map_err(|e| StorageError::io("stat", &self.log_path, e))
    }

    /// Fill `buf` from the log at `position`.
    pub fn read_exact_at(&self, buf: &mut [u8], position: u64) -> Result<(), StorageError> {
        self.log
            .read_exact_at(buf, position)
            .map_err(|e| StorageError::io("read", &self.log_path, e))
    }

    /// Append `len` bytes of the log at `position` to `out`, reading straight
    /// into its spare capacity (no zero-fill of memory about to be
    /// overwritten). On an error `out` keeps its length.
    pub fn read_append_at(
        &self,
        out: &mut BytesMut,
        len: usize,
        position: u64,
    ) -> Result<(), StorageError> {
        let fail = |e: std::io::Error| StorageError::io("read", &self.log_path, e);
        out.reserve(len);
        let fd = self.log.as_raw_fd();
        let mut filled = 0usize;
        while filled < len {
            let Some(dst) = out.spare_capacity_mut().get_mut(filled..len) else {
                break;
            };
            let at = libc::off_t::try_from(position + filled as u64)
                .map_err(|_| fail(std::io::ErrorKind::InvalidInput.into()))?;
            // SAFETY: `dst` is writable memory of `dst.len()` bytes owned by
            // `out`; pread(2) writes at most that many bytes into it and
            // never reads it.
            let n = unsafe { libc::pread(fd, dst.as_mut_ptr().cast(), dst.len(), at) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(fail(e));
            }
            if n == 0 {
                return Err(fail(std::io::ErrorKind::UnexpectedEof.into()));
            }
            filled += n.unsigned_abs();
        }
        if filled < len {
            return Err(fail(std::io::ErrorKind::UnexpectedEof.into()));
        }
        // SAFETY: the `len` bytes after the current length were initialised
        // by pread above (`filled == len`), and `reserve` made room for them.
        unsafe { out.set_len(out.len() + len) };
        Ok(())
    }

    /// The header of the batch at `position`, which must lie before `end`.
    pub fn read_header(&self, position: u64, end: u64) -> Result<BatchHeader, StorageError> {
        if end.saturating_sub(position) < BATCH_HEADER_BYTES as u64 {
            return Err(self.corrupt(position, "batch header runs past the segment end"));
        }
        let mut buf = [0u8; BATCH_HEADER_BYTES];
        self.read_exact_at(&mut buf, position)?;
        let header =
            BatchHeader::parse(&buf).map_err(|e| self.corrupt(position, &e.to_string()))?;
        if position + header.size_bytes() as u64 > end {
            return Err(self.corrupt(position, "batch runs past the segment end"));
        }
        Ok(header)
    }

    /// A scanner over the batch headers of this log file below `end`.
    pub fn header_scanner(&self, end: u64) -> HeaderScanner<'_> {
        HeaderScanner {
            files: self,
            end,
            buf: Vec::new(),
            buf_position: 0,
        }
    }

    pub fn corrupt(&self, position: u64, reason: &str) -> StorageError {
        StorageError::Corrupt {
            path: self.log_path.clone(),
            position,
            reason: reason.to_owned(),
        }
    }

    /// Open the index files for appending entries (the writer's handles).
    pub fn open_index_writers(&self) -> Result<(File, File), StorageError> {
        let open = |path: &Path| {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| StorageError::io("open", path, e))
        };
        Ok((open(&self.index_path)?, open(&self.time_index_path)?))
    }

    /// Replace both index files with `meta`'s entries and fsync them.
    pub fn write_indexes(&self, meta: &SegmentMeta) -> Result<(), StorageError> {
        write_file_synced(&self.index_path, &index::encode_offset_index(&meta.index))?;
        write_file_synced(
            &self.time_index_path,
            &index::encode_time_index(&meta.time_index),
        )
    }

    /// Rename the segment's files to `<name>.deleted` (missing files are
    /// skipped) and return the new paths, for [`crate::deleter`] to unlink.
    pub fn rename_for_deletion(&self) -> Result<Vec<PathBuf>, StorageError> {
        let mut renamed = Vec::with_capacity(4);
        for path in [
            &self.log_path,
            &self.index_path,
            &self.time_index_path,
            &self.txn_index_path,
        ] {
            let mut name = path.as_os_str().to_owned();
            name.push(crate::deleter::DELETED_SUFFIX);
            let to = PathBuf::from(name);
            match fs::rename(path, &to) {
                Ok(()) => renamed.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("rename", path, e)),
            }
        }
        Ok(renamed)
    }

    /// Unlink the segment's files (missing files are fine).
    pub fn remove_files(&self) -> Result<(), StorageError> {
        for path in [
            &self.log_path,
            &self.index_path,
            &self.time_index_path,
            &self.txn_index_path,
        ] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove", path, e)),
            }
        }
        Ok(())
    }
}

/// The offsets named by the files `<offset, 20 digits><suffix>` in `dir`.
pub(crate) fn list_named(
    dir: &Path,
    suffix: &str,
) -> Result<std::collections::BTreeSet<Offset>, StorageError> {
    let mut out = std::collections::BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))? {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        if let Some(offset) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_file_name(n, suffix))
        {
            out.insert(offset);
        }
    }
    Ok(out)
}

pub(crate) fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| StorageError::io("create", path, e))?;
    f.write_all_at(bytes, 0)
        .and_then(|()| f.sync_data())
        .map_err(|e| StorageError::io("write", path, e))
}

/// Bytes one [`HeaderScanner`] read fetches at most.
const HEADER_SCAN_BYTES_MAX: usize = 16 * 1024;

/// Reads batch headers front to back without reading the records: headers
/// of small batches come out of one buffered read of up to
/// [`HEADER_SCAN_BYTES_MAX`]; a batch larger than that costs one positioned
/// read of its header. Used to find batch boundaries for reads that send the
/// bytes straight from the file.
#[derive(Debug)]
pub(crate) struct HeaderScanner<'f> {
    files: &'f SegmentFiles,
    end: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_position: u64,
}

impl HeaderScanner<'_> {
    /// The header of the batch at `position`, which must end at or before
    /// the scanner's `end`.
    pub fn header_at(&mut self, position: u64) -> Result<BatchHeader, StorageError> {
        let left = self.end.saturating_sub(position);
        if left < BATCH_HEADER_BYTES as u64 {
            return Err(self
                .files
                .corrupt(position, "batch header runs past the segment end"));
        }
        let cached = position
            .checked_sub(self.buf_position)
            .and_then(|from| usize::try_from(from).ok())
            .filter(|&from| from + BATCH_HEADER_BYTES <= self.buf.len());
        let from = match cached {
            Some(from) => from,
            None => {
                let want = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(HEADER_SCAN_BYTES_MAX);
                self.buf.resize(want, 0);
                self.buf_position = position;
                if let Err(e) = self.files.read_exact_at(&mut self.buf, position) {
                    self.buf.clear();
                    return Err(e);
                }
                0
            }
        };
        let bytes = self.buf.get(from..).unwrap_or_default();
        let header =
            BatchHeader::parse(bytes).map_err(|e| self.files.corrupt(position, &e.to_string()))?;
        if header.size_bytes() as u64 > left {
            return Err(self
                .files
                .corrupt(position, "batch runs past the segment end"));
        }
        Ok(header)
    }
}

/// Read an index file, `None` if it is missing or unreadable.
fn read_optional(path: &Path) -> Option<Vec<u8>> {
    match fs::read(path) {
        Ok(b) => Some(b),
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot read index");
            }
            None
        }
    }
}

// ---------------------------------------------------------------------------
// In-memory state of a segment

/// What the log knows about a segment in memory.
#[derive(Clone, Debug)]
pub(crate) struct SegmentMeta {
    /// Bytes of complete batches in the log file.
    pub size: u64,
    /// Last offset + 1 of the last batch, or the base offset when empty.
    pub next_offset: Offset,
    pub index: Vec<OffsetIndexEntry>,
    pub time_index: Vec<TimeIndexEntry>,
    /// Largest batch `maxTimestamp` seen, `-1` when none (or all were `-1`).
    pub max_timestamp: i64,
    /// Last offset of the first batch that carried `max_timestamp`.
    pub offset_of_max: Offset,
    /// Log bytes written since the last offset index entry.
    pub bytes_since_index: u64,
    /// Start of the `segment_ms` clock: the time of the first append (or, after
    /// a restart, the first batch's `maxTimestamp`).
    pub roll_clock_start: Option<i64>,
}

/// The index entries and counters an append of one batch produces.
#[derive(Clone, Debug)]
pub(crate) struct AppendPlan {
    pub offset_entry: Option<OffsetIndexEntry>,
    pub time_entry: Option<TimeIndexEntry>,
    size: u64,
    next_offset: Offset,
    max_timestamp: i64,
    offset_of_max: Offset,
    bytes_since_index: u64,
}

impl SegmentMeta {
    pub fn empty(base: Offset) -> Self {
        SegmentMeta {
            size: 0,
            next_offset: base,
            index: Vec::new(),
            time_index: Vec::new(),
            max_timestamp: -1,
            offset_of_max: base,
            bytes_since_index: 0,
            roll_clock_start: None,
        }
    }

    fn last_time_entry_timestamp(&self) -> i64 {
        self.time_index.last().map_or(-1, |e| e.timestamp)
    }

    /// Plan the append of `header`'s batch at `position` of a segment based at
    /// `base`. Shared by live appends and index rebuilds so both produce the
    /// same entries.
    pub fn plan_append(
        &self,
        base: Offset,
        position: u64,
        header: &BatchHeader,
        index_interval_bytes: u32,
    ) -> AppendPlan {
        let relative = |o: Offset| {
            o.get()
                .saturating_sub(base.get())
                .clamp(0, RELATIVE_OFFSET_MAX) as u32
        };
        let (max_timestamp, offset_of_max) = if header.max_timestamp.get() > self.max_timestamp {
            (header.max_timestamp.get(), header.last_offset())
        } else {
            (self.max_timestamp, self.offset_of_max)
        };
        let mut offset_entry = None;
        let mut time_entry = None;
        let mut bytes_since_index = self.bytes_since_index;
        if bytes_since_index >= u64::from(index_interval_bytes) {
            offset_entry = Some(OffsetIndexEntry {
                relative_offset: relative(header.base_offset),
                position: position.min(SEGMENT_BYTES_MAX) as u32,
            });
            bytes_since_index = 0;
            if max_timestamp > self.last_time_entry_timestamp() {
                time_entry = Some(TimeIndexEntry {
                    timestamp: max_timestamp,
                    relative_offset: relative(offset_of_max),
                });
            }
        }
        let size_bytes = header.size_bytes() as u64;
        AppendPlan {
            offset_entry,
            time_entry,
            size: position + size_bytes,
            next_offset: header.next_offset(),
            max_timestamp,
            offset_of_max,
            bytes_since_index: bytes_since_index + size_bytes,
        }
    }

    pub fn apply(&mut self, plan: &AppendPlan) {
        if let Some(e) = plan.offset_entry {
            self.index.push(e);
        }
        if let Some(e) = plan.time_entry {
            self.time_index.push(e);
        }
        self.size = plan.size;
        self.next_offset = plan.next_offset;
        self.max_timestamp = plan.max_timestamp;
        self.offset_of_max = plan.offset_of_max;
        self.bytes_since_index = plan.bytes_since_index;
    }

    /// The time index entry to add when the segment is sealed, so that its
    /// last time entry is its max timestamp.
    pub fn final_time_entry(&self, base: Offset) -> Option<TimeIndexEntry> {
        (self.max_timestamp > self.last_time_entry_timestamp()).then(|| TimeIndexEntry {
            timestamp: self.max_timestamp,
            relative_offset: self
                .offset_of_max
                .get()
                .saturating_sub(base.get())
                .clamp(0, RELATIVE_OFFSET_MAX) as u32,
        })
    }

    /// A copy for planning several appends ahead ([`SegmentMeta::plan_append`]
    /// then [`SegmentMeta::apply`] in turn) without cloning the indexes: the
    /// same counters, no offset index entries (so after planning it holds
    /// exactly the new ones) and only the last time index entry (which
    /// planning consults), so it holds that one plus the new ones.
    pub fn planning_copy(&self) -> SegmentMeta {
        SegmentMeta {
            index: Vec::new(),
            time_index: self.time_index.last().copied().into_iter().collect(),
            ..*self
        }
    }

    /// Position to start scanning for `offset` (a batch boundary at or before
    /// the batch containing it).
    pub fn position_for(&self, base: Offset, offset: Offset) -> u64 {
        let relative = u64::try_from(offset.get().saturating_sub(base.get())).unwrap_or(0);
        index::lookup_offset(&self.index, relative).map_or(0, |e| u64::from(e.position))
    }
}

// ---------------------------------------------------------------------------
// Sequential scanning

/// `Read + Seek` over a file region using positioned reads (no shared cursor).
struct PosReader<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl Read for PosReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let Some(dst) = buf.get_mut(..want) else {
            return Ok(0);
        };
        if dst.is_empty() {
            return Ok(0);
        }
        let n = self.file.read_at(dst, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PosReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.end.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

/// One step of a [`Walker`].
pub(crate) enum Step {
    /// Reached the end of the region exactly.
    End,
    /// A batch starts at `position`.
    Batch { position: u64, header: BatchHeader },
    /// Bytes at `position` are not a complete, well-formed batch.
    Stop { position: u64, reason: String },
}

/// Walks batch headers from a position to an end, optionally reading bodies.
pub(crate) struct Walker<'f> {
    reader: BufReader<PosReader<'f>>,
    pos: u64,
    end: u64,
}

impl<'f> Walker<'f> {
    pub fn new(file: &'f File, start: u64, end: u64, buffer_bytes: usize) -> Self {
        Walker {
            reader: BufReader::with_capacity(
                buffer_bytes,
                PosReader {
                    file,
                    pos: start,
                    end,
                },
            ),
            pos: start,
            end,
        }
    }

    /// The next batch. With `body`, the whole batch's bytes are left in it.
    pub fn next(&mut self, body: Option<&mut Vec<u8>>) -> io::Result<Step> {
        let position = self.pos;
        let left = self.end.saturating_sub(position);
        if left == 0 {
            return Ok(Step::End);
        }
        let stop = |reason: &str| {
            Ok(Step::Stop {
                position,
                reason: reason.to_owned(),
            })
        };
        if left < BATCH_HEADER_BYTES as u64 {
            return stop("incomplete batch header at the end");
        }
        let mut head = [0u8; BATCH_HEADER_BYTES];
        self.reader.read_exact(&mut head)?;
        let header = match BatchHeader::parse(&head) {
            Ok(h) => h,
            Err(e) => return stop(&e.to_string()),
        };
        let size = header.size_bytes() as u64;
        if size > left {
            return stop("batch extends past the end");
        }
        let rest = (size - BATCH_HEADER_BYTES as u64) as usize;
        match body {
            Some(buf) => {
                buf.clear();
                buf.extend_from_slice(&head);
                buf.resize(size as usize, 0);
                let dst = buf.get_mut(BATCH_HEADER_BYTES..).unwrap_or_default();
                self.reader.read_exact(dst)?;
            }
            None => self.reader.seek_relative(rest as i64)?,
        }
        self.pos += size;
        Ok(Step::Batch { position, header })
    }
}

/// After a restart the `segment_ms` clock starts at the segment's first
/// batch's max timestamp (unknown if it carries none: then at the next append).
pub(crate) fn roll_clock_from(first: &BatchHeader) -> Option<i64> {
    let ts = first.max_timestamp.get();
    (ts >= 0).then_some(ts)
}

/// Whether an offset index of `index_entries` or a time index of
/// `time_entries` has reached `segment_index_bytes`.
pub(crate) fn indexes_full(
    index_entries: usize,
    time_entries: usize,
    segment_index_bytes: u64,
) -> bool {
    let entries_max = |entry_bytes: usize| segment_index_bytes / entry_bytes as u64;
    index_entries as u64 >= entries_max(OFFSET_INDEX_ENTRY_BYTES)
        || time_entries as u64 >= entries_max(TIME_INDEX_ENTRY_BYTES)
}

/// Offsets must increase and stay addressable by a u32 relative offset and position.
fn offsets_problem(
    base: Offset,
    expected_min: Offset,
    position: u64,
    header: &BatchHeader,
) -> Option<&'static str> {
    if header.base_offset < expected_min {
        return Some("batch offsets do not increase");
    }
    if header.last_offset_delta < 0 {
        return Some("negative lastOffsetDelta");
    }
    if header.last_offset().get().saturating_sub(base.get()) > RELATIVE_OFFSET_MAX {
        return Some("offset too far from the segment base");
    }
    if position + header.size_bytes() as u64 > SEGMENT_BYTES_MAX {
        return Some("segment larger than 4 GiB");
    }
    None
}

/// How strictly [`recover`] checks the offsets of consecutive batches.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
/// (Segments below the recovery point, which were fsynced whole, are never
/// recovered, only rebuilt: [`rebuild_keeping`], where offsets need only
/// increase, as the cleaner removes whole batches.)
pub(crate) enum Continuity {
    /// Segments at or above the recovery point, which were appended to since
    /// the last sync: each batch must start exactly where the previous one
    /// ended (the first at the segment base); this also catches damage to
    /// `baseOffset`, which the CRC does not cover. The one exception is a gap
    /// made by compaction: a batch may skip offsets when its base offset is
    /// `<=` this bound (the cleaner checkpoint's compacted end), i.e. when
    /// every missing offset lies in a range the cleaner has rewritten (a
    /// compacted segment not yet behind the recovery point, or made active
    /// again by a truncation).
    ContiguousAbove(Offset),
}

/// Full recovery of a segment: verify every batch (header, length, CRC,
/// offsets per `continuity`), truncate the log file at the first bad one,
/// rebuild and fsync both indexes. Returns the rebuilt state.
pub(crate) fn recover(
    files: &SegmentFiles,
    index_interval_bytes: u32,
    continuity: Continuity,
) -> Result<SegmentMeta, StorageError> {
    let file_bytes = files.log_file_bytes()?;
    let mut meta = SegmentMeta::empty(files.base);
    let mut walker = Walker::new(&files.log, 0, file_bytes, SCAN_BUFFER_BYTES);
    let mut body = Vec::new();
    let mut first = true;
    let truncate_at = loop {
        let step = walker
            .next(Some(&mut body))
            .map_err(|e| StorageError::io("read", &files.log_path, e))?;
        let (position, header) = match step {
            Step::End => break None,
            Step::Stop { position, reason } => break Some((position, reason)),
            Step::Batch { position, header } => (position, header),
        };
        if let Err(e) = batch::verify_crc(&body) {
            break Some((position, e.to_string()));
        }
        let follows = match continuity {
            Continuity::ContiguousAbove(gaps_end) => {
                header.base_offset == meta.next_offset
                    || (header.base_offset > meta.next_offset && header.base_offset <= gaps_end)
            }
        };
        if !follows {
            break Some((
                position,
                "batch does not follow the previous one".to_owned(),
            ));
        }
        if let Some(reason) = offsets_problem(files.base, meta.next_offset, position, &header) {
            break Some((position, reason.to_owned()));
        }
        if first {
            meta.roll_clock_start = roll_clock_from(&header);
            first = false;
        }
        let plan = meta.plan_append(files.base, position, &header, index_interval_bytes);
        meta.apply(&plan);
    };
    if let Some((position, reason)) = truncate_at {
        tracing::warn!(
            path = %files.log_path.display(),
            position,
            dropped_bytes = file_bytes - position,
            %reason,
            "truncating segment at the first invalid batch"
        );
        files
            .log
            .set_len(position)
            .and_then(|()| files.log.sync_data())
            .map_err(|e| StorageError::io("truncate", &files.log_path, e))?;
    }
    files.write_indexes(&meta)?;
    Ok(meta)
}

/// Logs (ERROR) and counts a damaged batch in a segment that was fsynced whole.
fn report_damage(files: &SegmentFiles, position: u64, bytes: u64, reason: &str) {
    DAMAGED_BATCHES.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        path = %files.log_path.display(),
        position,
        bytes,
        %reason,
        "damaged batch in a segment that was already on disk; it is kept as stored \
         (reads reaching it fail) and nothing is truncated. Replace the partition from \
         a replica or a backup"
    );
}

/// Index rebuild of a segment that was fsynced whole (below the recovery
/// point, or any segment after a clean shutdown), when [`load_fast`] found
/// something off. Unlike [`recover`], it never truncates: damage there is not
/// a torn write but bytes the disk changed after they were durable, and
/// cutting the segment would make every later offset in it vanish (a fetch
/// would then silently jump to the next segment). Every batch is read and
/// CRC-checked: a batch whose CRC fails is reported and still indexed (served
/// as stored, so clients see the CRC error, as with Kafka); a batch whose
/// header cannot be walked (bad length, magic, offsets) is reported and ends
/// the index there. Returns the rebuilt state, whose `size` is still the
/// whole file, so reads reach the damage and fail rather than skip it (only
/// used for sealed segments: nothing is appended after that `size`), and
/// whether such unwalkable damage was found (then `next_offset` is only the
/// end of what precedes it; the caller extends it to the next segment).
pub(crate) fn rebuild_keeping(
    files: &SegmentFiles,
    index_interval_bytes: u32,
) -> Result<(SegmentMeta, bool), StorageError> {
    let file_bytes = files.log_file_bytes()?;
    let mut meta = SegmentMeta::empty(files.base);
    let mut walker = Walker::new(&files.log, 0, file_bytes, SCAN_BUFFER_BYTES);
    let mut body = Vec::new();
    let unwalkable = loop {
        let step = walker
            .next(Some(&mut body))
            .map_err(|e| StorageError::io("read", &files.log_path, e))?;
        let (position, header) = match step {
            Step::End => break false,
            Step::Stop { position, reason } => {
                report_damage(files, position, file_bytes - position, &reason);
                break true;
            }
            Step::Batch { position, header } => (position, header),
        };
        if let Some(reason) = offsets_problem(files.base, meta.next_offset, position, &header) {
            report_damage(files, position, file_bytes - position, reason);
            break true;
        }
        if let Err(e) = batch::verify_crc(&body) {
            report_damage(files, position, body.len() as u64, &e.to_string());
        }
        if position == 0 {
            meta.roll_clock_start = roll_clock_from(&header);
        }
        let plan = meta.plan_append(files.base, position, &header, index_interval_bytes);
        meta.apply(&plan);
    };
    files.write_indexes(&meta)?;
    meta.size = file_bytes;
    Ok((meta, unwalkable))
}

/// Cheap load of a segment believed complete: sanity-check the index files
/// and walk the headers after the last offset index entry (no CRC checks).
/// `None` means something is off and [`recover`] should run instead.
pub(crate) fn load_fast(files: &SegmentFiles) -> Result<Option<SegmentMeta>, StorageError> {
    let file_bytes = files.log_file_bytes()?;
    let base = files.base;
    let Some(index_bytes) = read_optional(&files.index_path) else {
        return Ok(None);
    };
    let Some(time_bytes) = read_optional(&files.time_index_path) else {
        return Ok(None);
    };
    let index = match index::parse_offset_index(&index_bytes, file_bytes) {
        Ok(i) => i,
        Err(damage) => {
            tracing::warn!(path = %files.index_path.display(), %damage, "rebuilding offset index");
            return Ok(None);
        }
    };
    let time_index = match index::parse_time_index(&time_bytes) {
        Ok(i) => i,
        Err(damage) => {
            tracing::warn!(path = %files.time_index_path.display(), %damage, "rebuilding time index");
            return Ok(None);
        }
    };
    let mut meta = SegmentMeta::empty(base);
    if let Some(last) = time_index.last() {
        meta.max_timestamp = last.timestamp;
        meta.offset_of_max = Offset(base.get().saturating_add(i64::from(last.relative_offset)));
    }
    let (start, expected_first) = match index.last() {
        Some(e) => (
            u64::from(e.position),
            Some(Offset(
                base.get().saturating_add(i64::from(e.relative_offset)),
            )),
        ),
        None => (0, None),
    };
    meta.index = index;
    meta.time_index = time_index;
    let mut walker = Walker::new(&files.log, start, file_bytes, WALK_BUFFER_BYTES);
    let mut expected_min = expected_first.unwrap_or(base);
    loop {
        let step = walker
            .next(None)
            .map_err(|e| StorageError::io("read", &files.log_path, e))?;
        let (position, header) = match step {
            Step::End => break,
            Step::Stop { position, reason } => {
                tracing::warn!(path = %files.log_path.display(), position, %reason, "segment tail needs recovery");
                return Ok(None);
            }
            Step::Batch { position, header } => (position, header),
        };
        if position == start && expected_first.is_some_and(|o| o != header.base_offset) {
            tracing::warn!(path = %files.index_path.display(), "last index entry does not match the log");
            return Ok(None);
        }
        if offsets_problem(base, expected_min, position, &header).is_some() {
            return Ok(None);
        }
        if header.max_timestamp.get() > meta.max_timestamp {
            meta.max_timestamp = header.max_timestamp.get();
            meta.offset_of_max = header.last_offset();
        }
        expected_min = header.next_offset();
        meta.next_offset = header.next_offset();
    }
    if meta.time_index.last().is_some_and(|e| {
        i64::from(e.relative_offset) >= meta.next_offset.get().saturating_sub(base.get())
    }) {
        tracing::warn!(path = %files.time_index_path.display(), "time index points past the log");
        return Ok(None);
    }
    meta.size = file_bytes;
    meta.bytes_since_index = file_bytes - start;
    if file_bytes > 0 {
        match files.read_header(0, file_bytes) {
            Ok(first) => meta.roll_clock_start = roll_clock_from(&first),
            Err(StorageError::Corrupt { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(meta))
}

/// Rebuild the in-memory state by a header-only walk of a prefix of the log
/// (after truncation), rewriting both index files.
pub(crate) fn rebuild_from_headers(
    files: &SegmentFiles,
    end: u64,
    index_interval_bytes: u32,
) -> Result<SegmentMeta, StorageError> {
    let mut meta = SegmentMeta::empty(files.base);
    let mut walker = Walker::new(&files.log, 0, end, SCAN_BUFFER_BYTES);
    loop {
        let step = walker
            .next(None)
            .map_err(|e| StorageError::io("read", &files.log_path, e))?;
        match step {
            Step::End => break,
            Step::Stop { position, reason } => return Err(files.corrupt(position, &reason)),
            Step::Batch { position, header } => {
                if position == 0 {
                    meta.roll_clock_start = roll_clock_from(&header);
                }
                let plan = meta.plan_append(files.base, position, &header, index_interval_bytes);
                meta.apply(&plan);
            }
        }
    }
    files.write_indexes(&meta)?;
    Ok(meta)
}

/// Walk headers from `start` to `end`, calling `visit` for each batch until it
/// returns `Some`. Fails on a malformed batch.
pub(crate) fn find_batch<T>(
    files: &SegmentFiles,
    start: u64,
    end: u64,
    mut visit: impl FnMut(u64, &BatchHeader) -> Result<Option<T>, StorageError>,
) -> Result<Option<T>, StorageError> {
    let mut walker = Walker::new(&files.log, start, end, WALK_BUFFER_BYTES);
    loop {
        let step = walker
            .next(None)
            .map_err(|e| StorageError::io("read", &files.log_path, e))?;
        match step {
            Step::End => return Ok(None),
            Step::Stop { position, reason } => return Err(files.corrupt(position, &reason)),
            Step::Batch { position, header } => {
                if let Some(found) = visit(position, &header)? {
                    return Ok(Some(found));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(file_stem(Offset(42)), "00000000000000000042");
        assert_eq!(
            parse_file_name("00000000000000000042.log", LOG_SUFFIX),
            Some(Offset(42))
        );
        assert_eq!(parse_file_name("42.log", LOG_SUFFIX), None);
        assert_eq!(
            parse_file_name("0000000000000000004x.log", LOG_SUFFIX),
            None
        );
        assert_eq!(
            parse_file_name("00000000000000000042.index", LOG_SUFFIX),
            None
        );
        assert_eq!(
            parse_file_name("99999999999999999999.log", LOG_SUFFIX),
            None,
            "overflowing i64"
        );
    }
}
