//! The aborted-transaction index: `<base offset, 20 digits>.txnindex` beside
//! each segment that holds ABORT markers (Kafka's `TransactionIndex`). A
//! read_committed Fetch returns, with its batches, the aborted transactions
//! overlapping them, so the consumer can drop their records.
//!
//! # Byte layout
//!
//! A sequence of 34-byte entries, one per ABORT marker written into the
//! segment, in marker offset order (Kafka's `AbortedTxn`; big-endian):
//!
//! ```text
//! offset  size  field
//!      0     2  version (i16) = 0
//!      2     8  producer id (i64)
//!     10     8  first offset (i64): the transaction's first offset in this
//!               partition (the marker's own offset if it wrote nothing here)
//!     18     8  last offset (i64): the ABORT marker's offset
//!     26     8  last stable offset (i64): the first unstable offset once the
//!               transaction ended (the marker's offset + 1 if no other
//!               transaction was open); a reader collecting the aborted
//!               transactions below an offset `u` stops after an entry whose
//!               value is `>= u`: every later transaction starts after it
//! ```
//!
//! The file is created by the first ABORT marker of its segment; a segment
//! without one has no file.
//!
//! # When it is written, crash behaviour
//!
//! An entry is appended (no fsync) under the log's writer lock right after
//! its marker is written, by the leader's marker append and by a follower's
//! replicated append alike. It is fsynced with its segment (a flush, the
//! background sync of rolled segments) and before any producer snapshot is
//! installed, so every marker below a snapshot has its entry on disk.
//!
//! The index is derived data: opening the log reads every `.txnindex` file
//! (a torn last entry, or a damaged one and everything after it, is ignored
//! with a warning), keeps the entries whose markers lie below the offset the
//! producer state replay starts at, and takes the others from that replay
//! (which sees every marker at or after it, with the open transactions'
//! first offsets from the snapshot; where the replay saw no record of a
//! transaction — the cleaner removed them — the stored entry of the same
//! producer and marker keeps its first offset). Entries are then filed under the
//! segment holding their marker, and each file that differs from what it
//! should hold is rewritten (write to `.tmp`, fsync, rename) — this also
//! merges the files of segments a compaction merged, whose `.txnindex`
//! files the segment replacement leaves behind — and files of segments that
//! no longer exist are deleted. A truncation drops the entries of the markers
//! it cuts (rewriting the active segment's file); a deleted segment's file
//! goes with it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use samsa_model::{Offset, ProducerId};

use crate::error::StorageError;
use crate::producer_state::CompletedTxn;
use crate::segment;

/// Suffix of aborted-transaction index files.
pub const TXN_INDEX_SUFFIX: &str = ".txnindex";
/// Bytes of one entry.
pub const ENTRY_BYTES: usize = 34;
/// Entry layout version.
const VERSION: i16 = 0;
/// Largest `.txnindex` file read (a segment holds at most 2^31 offsets, but
/// far fewer markers in practice): 1 M entries.
const TXN_INDEX_BYTES_MAX: u64 = (ENTRY_BYTES as u64) << 20;

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: ProducerId,
    pub first_offset: Offset,
    pub last_offset: Offset,
    pub last_stable_offset: Offset,
}

impl AbortedTxn {
    /// The entry of an aborted `txn`, `first_unstable` being the first
    /// unstable offset once it ended.
    pub fn of(txn: &CompletedTxn, first_unstable: Option<Offset>) -> AbortedTxn {
        AbortedTxn {
            producer_id: txn.producer_id,
            first_offset: txn.first_offset,
            last_offset: txn.last_offset,
            last_stable_offset: first_unstable.unwrap_or(txn.last_offset.plus(1)),
        }
    }

    /// The entry's bytes.
    pub fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut out = [0u8; ENTRY_BYTES];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.get().to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.get().to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.get().to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.get().to_be_bytes());
        out
    }

    /// Decodes one entry; the error says why it is not one.
    pub fn decode(bytes: &[u8]) -> Result<AbortedTxn, &'static str> {
        let field = |at: usize| -> Result<i64, &'static str> {
            let b = bytes.get(at..at + 8).ok_or("short entry")?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(i64::from_be_bytes(a))
        };
        let version = bytes.get(0..2).ok_or("short entry")?;
        if i16::from_be_bytes([version[0], version[1]]) != VERSION {
            return Err("unknown version");
        }
        let entry = AbortedTxn {
            producer_id: ProducerId(field(2)?),
            first_offset: Offset(field(10)?),
            last_offset: Offset(field(18)?),
            last_stable_offset: Offset(field(26)?),
        };
        if entry.producer_id.get() < 0
            || entry.first_offset.get() < 0
            || entry.first_offset > entry.last_offset
        {
            return Err("invalid offsets or producer id");
        }
        Ok(entry)
    }
}

/// The path of the index of the segment at `base`.
pub fn path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{}{TXN_INDEX_SUFFIX}", segment::file_stem(base)))
}

/// Appends `entry` to the index at `path` (created if missing), no fsync.
pub(crate) fn append(path: &Path, entry: &AbortedTxn) -> Result<(), StorageError> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&entry.encode()))
        .map_err(|e| StorageError::io("append", path, e))
}

/// Reads the entries of the index at `path` (none if missing). A torn or
/// damaged entry ends the read with a warning.
pub(crate) fn read(path: &Path) -> Result<Vec<AbortedTxn>, StorageError> {
    let bytes = match fs::metadata(path) {
        Ok(m) if m.len() > TXN_INDEX_BYTES_MAX => {
            tracing::warn!(path = %path.display(), bytes = m.len(), "ignoring an oversized transaction index");
            return Ok(Vec::new());
        }
        Ok(_) => fs::read(path).map_err(|e| StorageError::io("read", path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io("stat", path, e)),
    };
    let mut out = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
    for (i, chunk) in bytes.chunks(ENTRY_BYTES).enumerate() {
        let decoded = if chunk.len() < ENTRY_BYTES {
            Err("torn last entry")
        } else {
            AbortedTxn::decode(chunk)
        };
        match decoded {
            Ok(e)
                if out
                    .last()
                    .is_none_or(|p: &AbortedTxn| p.last_offset < e.last_offset) =>
            {
                out.push(e)
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), entry = i, "transaction index entries out of order; ignoring the rest");
                break;
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), entry = i, reason, "damaged transaction index entry; ignoring the rest");
                break;
            }
        }
    }
    Ok(out)
}

/// Replaces the index at `path` with `entries` durably (tmp, fsync, rename;
/// the caller fsyncs the directory); removes it when `entries` is empty.
pub(crate) fn rewrite(path: &Path, entries: &[AbortedTxn]) -> Result<(), StorageError> {
    if entries.is_empty() {
        return match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("remove", path, e)),
        };
    }
    let bytes: Vec<u8> = entries.iter().flat_map(AbortedTxn::encode).collect();
    segment::write_file_synced(path, &bytes)
}

/// fsyncs the index at `path` if it exists.
pub(crate) fn sync(path: &Path) -> Result<(), StorageError> {
    match fs::File::open(path) {
        Ok(f) => f
            .sync_data()
            .map_err(|e| StorageError::io("fsync", path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("open", path, e)),
    }
}

/// The base offsets of the `.txnindex` files in `dir`.
pub(crate) fn list(dir: &Path) -> Result<std::collections::BTreeSet<Offset>, StorageError> {
    segment::list_named(dir, TXN_INDEX_SUFFIX)
}

/// Kafka's `collectAbortedTxns`: of `entries` (ascending last offset), those
/// whose marker is at or after `from` and whose first offset is below
/// `upper`, stopping after the first entry whose last stable offset is
/// `>= upper`, at most `count_max`.
pub fn collect(
    entries: &[AbortedTxn],
    from: Offset,
    upper: Offset,
    count_max: usize,
) -> Vec<AbortedTxn> {
    let start = entries.partition_point(|e| e.last_offset < from);
    let mut out = Vec::new();
    for e in entries.get(start..).unwrap_or_default() {
        if out.len() >= count_max {
            break;
        }
        if e.first_offset < upper {
            out.push(*e);
        }
        if e.last_stable_offset >= upper {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(pid),
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(lso),
        }
    }

    #[test]
    fn layout_is_kafkas_and_damage_stops_the_read() {
        let bytes = e(1, 2, 3, 4).encode();
        assert_eq!(
            bytes.to_vec(),
            [
                vec![0, 0],
                1i64.to_be_bytes().to_vec(),
                2i64.to_be_bytes().to_vec(),
                3i64.to_be_bytes().to_vec(),
                4i64.to_be_bytes().to_vec()
            ]
            .concat()
        );
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), Offset(0));
        append(&p, &e(1, 2, 3, 4)).unwrap();
        append(&p, &e(2, 5, 9, 10)).unwrap();
        assert_eq!(read(&p).unwrap(), vec![e(1, 2, 3, 4), e(2, 5, 9, 10)]);
        // A torn tail.
        let mut f = fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[0, 0, 1]).unwrap();
        assert_eq!(read(&p).unwrap().len(), 2);
        // A damaged first entry hides the rest.
        let mut bytes = fs::read(&p).unwrap();
        bytes[0] = 7;
        fs::write(&p, &bytes).unwrap();
        assert!(read(&p).unwrap().is_empty());
        rewrite(&p, &[]).unwrap();
        assert!(!p.exists());
    }

    #[test]
    fn collect_stops_at_the_first_entry_stable_past_the_range() {
        let all = [
            e(1, 0, 5, 3),
            e(2, 3, 8, 9),
            e(3, 9, 12, 13),
            e(4, 14, 20, 21),
        ];
        assert_eq!(
            collect(&all, Offset(0), Offset(4), 10),
            vec![e(1, 0, 5, 3), e(2, 3, 8, 9)]
        );
        assert_eq!(
            collect(&all, Offset(6), Offset(10), 10),
            vec![e(2, 3, 8, 9), e(3, 9, 12, 13)]
        );
        assert_eq!(
            collect(&all, Offset(13), Offset(30), 10),
            vec![e(4, 14, 20, 21)]
        );
        assert_eq!(collect(&all, Offset(0), Offset(30), 1).len(), 1);
    }
}
