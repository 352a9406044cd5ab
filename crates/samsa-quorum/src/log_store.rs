//! The durable Raft log, vote and committed pointer of one voter.
//!
//! # Files (in the quorum directory)
//!
//! `raft.log`, frames as described in [`crate::frame`]:
//!
//! ```text
//! frame 0      header: {"format":1,"purged":<LogId or null>}
//!              `purged` is the id of the last entry removed from the front
//!              (covered by the snapshot); the first entry that follows has
//!              index purged.index + 1, or 0 when nothing was purged.
//! frame 1..    one openraft `Entry` each, as JSON: {"log_id":{"leader_id":{"term":T},
//!              "index":I},"payload":"Blank" | {"Normal":<Proposal>} |
//!              {"Membership":...}}; indexes are consecutive (openraft never
//!              leaves a hole; only an empty log may start above purged + 1).
//! ```
//!
//! `vote` and `committed`: one-frame state files, replaced atomically
//! ([`crate::frame::write_state`]).
//!
//! # Durability and crash behaviour
//!
//! * `append` writes every entry of a batch with one `write` and fsyncs before
//!   it reports the entries flushed to openraft, which only then counts them
//!   toward a commit or acknowledges them to the leader.
//! * `save_vote` replaces the vote file (fsync + rename + directory fsync)
//!   before returning, so a vote is never forgotten.
//! * `truncate` (a follower dropping a conflicting suffix) cuts the file and
//!   fsyncs. A crash before the cut leaves the old suffix, which the leader
//!   truncates again.
//! * `purge` (after a snapshot) writes a new file with the new header and the
//!   kept entries, fsyncs it and renames it over `raft.log`: the log is either
//!   wholly old or wholly new.
//! * On open, frames are read in order up to the first one that is short,
//!   empty, over `entry_bytes_max` or fails its CRC. That is a torn tail (an
//!   append that never finished its fsync, so it was never acknowledged, and
//!   dropping it is safe) only if no intact frame follows it anywhere in the
//!   file (`samsa_metadata::log::intact_frame_after`); then the file is
//!   truncated there. An intact frame after the damage means acknowledged
//!   entries would be cut — a voter that forgets entries it acknowledged can
//!   let a leader without them be elected and lose committed records — so open
//!   fails instead ([`QuorumError::Corrupt`], naming the file and byte offset).
//!   So does an intact frame that does not decode or breaks index continuity:
//!   no crash writes one. A damaged header, vote file or snapshot is refused
//!   too: those are written atomically, so damage means lost data.
//! * The `committed` pointer is an optimisation (it lets a restarted node
//!   re-apply committed entries before hearing from a leader), written without
//!   fsync; if it is damaged or points past the log it is ignored, and a stale
//!   one only means the leader re-announces the commit index.
//!
//! Entries are not kept in memory: an index of (log id, file position) per entry
//! is, and entries are read back from the file (the page cache) on demand. All
//! file I/O, and every read of the log's state, runs on the log's own disk
//! thread ([`crate::disk`]), one operation at a time: never on tokio's
//! blocking pool (which callers waiting for a commit may fill) and never
//! under a lock an async task could wait on.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use samsa_metadata::log::intact_frame_after;
use serde::{Deserialize, Serialize};

use crate::disk::DiskThread;
use crate::error::QuorumError;
use crate::frame::{
    parse_frame, put_frame, read_state, write_atomic, write_state, Fsync, FRAME_HEADER_BYTES,
    STATE_BYTES_MAX,
};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

pub(crate) const LOG_FILE: &str = "raft.log";
pub(crate) const VOTE_FILE: &str = "vote";
pub(crate) const COMMITTED_FILE: &str = "committed";
const LOG_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct LogHeader {
    format: u32,
    purged: Option<LogId>,
}

fn header_bytes(purged: Option<LogId>) -> Result<Vec<u8>, QuorumError> {
    let payload = serde_json::to_vec(&LogHeader {
        format: LOG_FORMAT,
        purged,
    })?;
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    put_frame(&mut out, &payload);
    Ok(out)
}

/// Damage at byte `pos` of the raft log that is not a torn tail.
fn not_torn(path: &Path, pos: usize, reason: String) -> QuorumError {
    QuorumError::corrupt(
        path,
        format!(
            "byte offset {pos}: {reason}. This is not a torn write, so the log is not \
             truncated (that would drop entries this voter acknowledged). Remove this \
             node's quorum directory to have it rejoin and copy the log from the leader \
             (only while a majority of the other voters is healthy), or restore it from a backup"
        ),
    )
}

/// Where one entry's frame is in the file.
#[derive(Clone, Copy, Debug)]
struct Slot {
    log_id: LogId,
    pos: u64,
    len: u64,
}

/// The open log file and its in-memory index.
pub(crate) struct LogFile {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    purged: Option<LogId>,
    header_len: u64,
    /// One slot per entry, `slots[k]` has index `first_index() + k`.
    slots: VecDeque<Slot>,
    /// Length of the intact file content (where the next frame goes).
    end: u64,
    vote: Option<Vote>,
    committed: Option<LogId>,
    entry_bytes_max: usize,
}

impl LogFile {
    /// Opens (creating if needed) the log in `dir`, truncating a torn tail.
    pub(crate) fn open(dir: &Path, entry_bytes_max: usize) -> Result<LogFile, QuorumError> {
        std::fs::create_dir_all(dir).map_err(QuorumError::io(dir))?;
        let path = dir.join(LOG_FILE);
        let fresh = match std::fs::metadata(&path) {
            Ok(m) => m.len() == 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(QuorumError::io(&path)(e)),
        };
        if fresh {
            write_atomic(dir, LOG_FILE, &header_bytes(None)?)?;
        }
        let bytes = std::fs::read(&path).map_err(QuorumError::io(&path))?;
        let (payload, header_len) = parse_frame(&bytes, STATE_BYTES_MAX)
            .map_err(|e| QuorumError::corrupt(&path, format!("log header: {e}")))?;
        let header: LogHeader = serde_json::from_slice(payload)
            .map_err(|e| QuorumError::corrupt(&path, format!("log header: {e}")))?;
        if header.format != LOG_FORMAT {
            return Err(QuorumError::corrupt(
                &path,
                format!("unknown log format {}", header.format),
            ));
        }
        let mut slots = VecDeque::new();
        let mut pos = header_len;
        let mut expected = header.purged.map_or(0, |p| p.index + 1);
        let mut prev = header.purged;
        let mut stop = None;
        while pos < bytes.len() {
            let (payload, n) = match parse_frame(&bytes[pos..], entry_bytes_max) {
                // Every entry is a JSON value: an empty frame is zeroed bytes.
                Ok(([], _)) => {
                    stop = Some("empty frame".to_owned());
                    break;
                }
                Ok(x) => x,
                Err(e) => {
                    stop = Some(e.to_string());
                    break;
                }
            };
            let entry: Entry = match serde_json::from_slice(payload) {
                Ok(e) => e,
                Err(e) => {
                    return Err(not_torn(&path, pos, format!("entry does not decode: {e}")));
                }
            };
            let continues = if slots.is_empty() {
                entry.log_id.index >= expected
            } else {
                entry.log_id.index == expected
            };
            if !continues || Some(entry.log_id) < prev {
                let reason = format!(
                    "entry {} breaks continuity (expected index {expected})",
                    entry.log_id
                );
                return Err(not_torn(&path, pos, reason));
            }
            slots.push_back(Slot {
                log_id: entry.log_id,
                pos: pos as u64,
                len: n as u64,
            });
            prev = Some(entry.log_id);
            expected = entry.log_id.index + 1;
            pos += n;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(QuorumError::io(&path))?;
        if pos < bytes.len() {
            if let Some(next) = intact_frame_after(&bytes, pos, entry_bytes_max) {
                let reason = format!(
                    "{}, and an intact frame follows at byte {next}",
                    stop.as_deref().unwrap_or("damaged frame")
                );
                return Err(not_torn(&path, pos, reason));
            }
            tracing::warn!(
                path = %path.display(),
                kept = pos,
                dropped = bytes.len() - pos,
                reason = stop.as_deref().unwrap_or(""),
                "truncating torn tail of the raft log"
            );
            file.set_len(pos as u64).map_err(QuorumError::io(&path))?;
            file.sync_all().map_err(QuorumError::io(&path))?;
        }
        let vote = read_state(&dir.join(VOTE_FILE))?;
        let last = slots.back().map(|s| s.log_id).or(header.purged);
        let committed = match read_state::<Option<LogId>>(&dir.join(COMMITTED_FILE)) {
            Ok(c) => c.flatten(),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring unreadable committed pointer");
                None
            }
        };
        let committed = if committed > last {
            tracing::warn!("committed pointer is past the log end; ignoring it");
            None
        } else {
            committed
        };
        Ok(LogFile {
            dir: dir.to_path_buf(),
            path,
            file,
            purged: header.purged,
            header_len: header_len as u64,
            slots,
            end: pos as u64,
            vote,
            committed,
            entry_bytes_max,
        })
    }

    /// The index of the first entry present (or that would be, if none is).
    pub(crate) fn first_index(&self) -> u64 {
        match self.slots.front() {
            Some(s) => s.log_id.index,
            None => self.purged.map_or(0, |p| p.index + 1),
        }
    }

    /// The index the next appended entry must have.
    pub(crate) fn next_index(&self) -> u64 {
        self.first_index() + self.slots.len() as u64
    }

    fn last_log_id(&self) -> Option<LogId> {
        self.slots.back().map(|s| s.log_id).or(self.purged)
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> QuorumError {
        QuorumError::io(&self.path)
    }

    /// Appends and fsyncs `entries`, which must continue the log.
    pub(crate) fn append(&mut self, entries: Vec<Entry>) -> Result<(), QuorumError> {
        let mut buf = Vec::new();
        let mut new_slots = Vec::with_capacity(entries.len());
        let mut expected = self.next_index();
        for (i, entry) in entries.iter().enumerate() {
            // An empty log may start above `purged + 1` (openraft never does
            // this, its storage test suite does); after that, no holes.
            let continues = if i == 0 && self.slots.is_empty() {
                entry.log_id.index >= expected
            } else {
                entry.log_id.index == expected
            };
            if !continues {
                return Err(QuorumError::Internal(format!(
                    "append of {} would leave a hole (next index {expected})",
                    entry.log_id
                )));
            }
            let payload = serde_json::to_vec(entry)?;
            if payload.len() > self.entry_bytes_max {
                return Err(QuorumError::BatchTooLarge {
                    bytes: payload.len(),
                    max: self.entry_bytes_max,
                });
            }
            let pos = self.end + buf.len() as u64;
            put_frame(&mut buf, &payload);
            new_slots.push(Slot {
                log_id: entry.log_id,
                pos,
                len: (FRAME_HEADER_BYTES + payload.len()) as u64,
            });
            expected = entry.log_id.index + 1;
        }
        if buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data())
        {
            // Roll back a partial write so the next append starts at a frame
            // boundary; if even that fails the tail is cut on the next open.
            let _ = self.file.set_len(self.end);
            return Err(self.io()(e));
        }
        self.end += buf.len() as u64;
        self.slots.extend(new_slots);
        Ok(())
    }

    /// Removes every entry with index >= `since.index`.
    pub(crate) fn truncate(&mut self, since: LogId) -> Result<(), QuorumError> {
        if since.index >= self.next_index() {
            return Ok(());
        }
        let first = self.first_index();
        let (new_end, keep) = if since.index <= first {
            (self.header_len, 0)
        } else {
            let k = (since.index - first) as usize;
            (self.slots[k].pos, k)
        };
        self.file.set_len(new_end).map_err(self.io())?;
        self.file.sync_all().map_err(self.io())?;
        self.slots.truncate(keep);
        self.end = new_end;
        Ok(())
    }

    /// Removes every entry with index <= `upto.index` (possibly all, and
    /// possibly past the last entry, after a snapshot install) and records
    /// `upto` as the last purged id.
    pub(crate) fn purge(&mut self, upto: LogId) -> Result<(), QuorumError> {
        if self.purged.is_some_and(|p| p.index >= upto.index) {
            return Ok(());
        }
        let first = self.first_index();
        let drop_n = ((upto.index + 1).saturating_sub(first) as usize).min(self.slots.len());
        let kept_start = self.slots.get(drop_n).map_or(self.end, |s| s.pos);
        let mut contents = header_bytes(Some(upto))?;
        let new_header_len = contents.len() as u64;
        let kept_len = (self.end - kept_start) as usize;
        let mut kept = vec![0u8; kept_len];
        self.file
            .seek(SeekFrom::Start(kept_start))
            .and_then(|_| self.file.read_exact(&mut kept))
            .map_err(self.io())?;
        contents.extend_from_slice(&kept);
        write_atomic(&self.dir, LOG_FILE, &contents)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(self.io())?;
        self.slots.drain(..drop_n);
        for s in &mut self.slots {
            s.pos = s.pos - kept_start + new_header_len;
        }
        self.header_len = new_header_len;
        self.end = new_header_len + kept_len as u64;
        self.purged = Some(upto);
        Ok(())
    }

    fn read_slot(&mut self, slot: Slot) -> Result<Entry, QuorumError> {
        let mut buf = vec![0u8; slot.len as usize];
        self.file
            .seek(SeekFrom::Start(slot.pos))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(QuorumError::io(&self.path))?;
        let (payload, _) = parse_frame(&buf, self.entry_bytes_max)
            .map_err(|e| QuorumError::corrupt(&self.path, format!("entry {}: {e}", slot.log_id)))?;
        let entry: Entry = serde_json::from_slice(payload)
            .map_err(|e| QuorumError::corrupt(&self.path, format!("entry {}: {e}", slot.log_id)))?;
        if entry.log_id != slot.log_id {
            return Err(QuorumError::corrupt(
                &self.path,
                format!("entry at {} has id {}", slot.log_id, entry.log_id),
            ));
        }
        Ok(entry)
    }

    /// Reads the present entries with index in `[start, end)`, stopping before
    /// `bytes_max` bytes of frames (but returning at least one entry if any is
    /// in range).
    pub(crate) fn read(
        &mut self,
        start: u64,
        end: u64,
        bytes_max: usize,
    ) -> Result<Vec<Entry>, QuorumError> {
        let first = self.first_index();
        let start = start.max(first);
        let end = end.min(self.next_index());
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for i in start..end {
            let slot = self.slots[(i - first) as usize];
            if !out.is_empty() && bytes + slot.len > bytes_max as u64 {
                break;
            }
            out.push(self.read_slot(slot)?);
            bytes += slot.len;
        }
        Ok(out)
    }

    pub(crate) fn save_vote(&mut self, vote: &Vote) -> Result<(), QuorumError> {
        write_state(&self.dir, VOTE_FILE, vote, Fsync::Durable)?;
        self.vote = Some(*vote);
        Ok(())
    }

    pub(crate) fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), QuorumError> {
        if committed == self.committed {
            return Ok(());
        }
        // A hint only (see the module doc): not fsynced.
        write_state(&self.dir, COMMITTED_FILE, &committed, Fsync::Lazy)?;
        self.committed = committed;
        Ok(())
    }
}

/// A shared handle to the log; also its own [`RaftLogReader`].
#[derive(Clone)]
pub(crate) struct LogStore {
    /// Locked only on `disk`.
    inner: Arc<Mutex<LogFile>>,
    disk: DiskThread,
    /// Byte budget of one `limited_get_log_entries` read (one AppendEntries).
    replication_bytes_max: usize,
}

fn lock(m: &Mutex<LogFile>) -> MutexGuard<'_, LogFile> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Where a committed-stream reader must look for index `next`.
pub(crate) enum LogRead {
    /// The entries from `next` on (possibly none yet).
    Entries(Vec<Entry>),
    /// `next` was purged: read the snapshot.
    Purged,
}

impl LogStore {
    /// Wraps `log` and starts its disk thread.
    pub(crate) fn new(log: LogFile, replication_bytes_max: usize) -> Result<LogStore, QuorumError> {
        Ok(LogStore {
            inner: Arc::new(Mutex::new(log)),
            disk: DiskThread::spawn("samsa-raft-log")?,
            replication_bytes_max,
        })
    }

    /// Runs `f` on the log on its disk thread.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, QuorumError>
    where
        T: Send + 'static,
        F: FnOnce(&mut LogFile) -> Result<T, QuorumError> + Send + 'static,
    {
        let inner = self.inner.clone();
        self.disk.run(move || f(&mut lock(&inner))).await?
    }

    /// Reads entries `[next, end)` for a committed-stream reader, or says that
    /// `next` was purged.
    pub(crate) async fn read_from(
        &self,
        next: u64,
        end: u64,
        bytes_max: usize,
    ) -> Result<LogRead, QuorumError> {
        self.run(move |log| {
            if next < log.first_index() {
                return Ok(LogRead::Purged);
            }
            Ok(LogRead::Entries(log.read(next, end, bytes_max)?))
        })
        .await
    }
}

fn read_err(e: QuorumError) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: QuorumError) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

fn range_to_bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = range_to_bounds(&range);
        self.run(move |log| log.read(start, end, usize::MAX))
            .await
            .map_err(read_err)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let max = self.replication_bytes_max;
        self.run(move |log| log.read(start, end, max))
            .await
            .map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.run(|log| {
            Ok(LogState {
                last_purged_log_id: log.purged,
                last_log_id: log.last_log_id(),
            })
        })
        .await
        .map_err(read_err)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.run(move |log| log.save_vote(&vote))
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.run(|log| Ok(log.vote))
            .await
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.run(move |log| log.save_committed(committed))
            .await
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.run(|log| Ok(log.committed)).await.map_err(read_err)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        match self.run(move |log| log.append(entries)).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.run(move |log| log.truncate(log_id))
            .await
            .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.run(move |log| log.purge(log_id))
            .await
            .map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};
    use samsa_metadata::{ConfigResource, MetadataRecord};

    use super::*;
    use crate::types::{Precondition, Proposal};

    const MAX: usize = 1 << 20;

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 0), index)
    }

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: id(term, index),
            payload: EntryPayload::Normal(Proposal {
                precondition: Precondition::Always,
                records: vec![MetadataRecord::Config {
                    resource: ConfigResource::BrokerDefault,
                    name: format!("k{index}"),
                    value: Some(term.to_string()),
                }],
            }),
        }
    }

    fn ids(log: &mut LogFile) -> Vec<u64> {
        log.read(0, u64::MAX, usize::MAX)
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect()
    }

    #[test]
    fn append_truncate_purge_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = LogFile::open(dir.path(), MAX).unwrap();
            log.append((0..10).map(|i| entry(1, i)).collect()).unwrap();
            assert!(log.append(vec![entry(1, 11)]).is_err(), "hole refused");
            log.truncate(id(1, 7)).unwrap();
            log.append(vec![entry(2, 7)]).unwrap();
            log.purge(id(1, 3)).unwrap();
            log.save_vote(&Vote::new(2, 1)).unwrap();
            log.save_committed(Some(id(1, 5))).unwrap();
            assert_eq!(ids(&mut log), vec![4, 5, 6, 7]);
        }
        let mut log = LogFile::open(dir.path(), MAX).unwrap();
        assert_eq!(ids(&mut log), vec![4, 5, 6, 7]);
        assert_eq!(log.purged, Some(id(1, 3)));
        assert_eq!(log.last_log_id(), Some(id(2, 7)));
        assert_eq!(log.vote, Some(Vote::new(2, 1)));
        assert_eq!(log.committed, Some(id(1, 5)));
        assert_eq!(log.read(5, 7, 1).unwrap().len(), 1, "byte budget");
        // Purge past the end (snapshot install) empties the log.
        log.purge(id(3, 20)).unwrap();
        assert_eq!(log.next_index(), 21);
        log.append(vec![entry(3, 21)]).unwrap();
        drop(log);
        let mut log = LogFile::open(dir.path(), MAX).unwrap();
        assert_eq!(ids(&mut log), vec![21]);
    }

    #[test]
    fn torn_tail_is_truncated_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        {
            let mut log = LogFile::open(dir.path(), MAX).unwrap();
            log.append((0..3).map(|i| entry(1, i)).collect()).unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        let two_end = {
            let log = LogFile::open(dir.path(), MAX).unwrap();
            log.slots[2].pos as usize
        };
        for cut in two_end..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let mut log = LogFile::open(dir.path(), MAX).unwrap();
            assert_eq!(ids(&mut log), vec![0, 1], "cut at {cut}");
            assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, two_end);
            log.append(vec![entry(1, 2)]).unwrap();
            drop(log);
            let mut log = LogFile::open(dir.path(), MAX).unwrap();
            assert_eq!(ids(&mut log), vec![0, 1, 2]);
        }
        // Garbage after intact frames is cut too.
        let mut bytes = full.clone();
        bytes.extend_from_slice(&[0, 0, 0, 50, 1, 2, 3, 4, 5]);
        std::fs::write(&path, &bytes).unwrap();
        let mut log = LogFile::open(dir.path(), MAX).unwrap();
        assert_eq!(ids(&mut log), vec![0, 1, 2]);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, full.len());
    }

    #[test]
    fn damage_before_intact_entries_is_refused_not_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        {
            let mut log = LogFile::open(dir.path(), MAX).unwrap();
            log.append((0..3).map(|i| entry(1, i)).collect()).unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        let second = {
            let log = LogFile::open(dir.path(), MAX).unwrap();
            log.slots[1].pos as usize
        };
        // A flipped bit in the second entry, and that entry zeroed.
        let mut flipped = full.clone();
        flipped[second + 12] ^= 0x04;
        let mut zeroed = full.clone();
        zeroed[second..second + 8].fill(0);
        for damaged in [flipped, zeroed] {
            std::fs::write(&path, &damaged).unwrap();
            let err = LogFile::open(dir.path(), MAX)
                .err()
                .expect("open must fail");
            let msg = err.to_string();
            assert!(msg.contains(&format!("byte offset {second}")), "{msg}");
            assert_eq!(std::fs::read(&path).unwrap(), damaged, "nothing truncated");
        }
        // Zeros after the last entry (a torn append after a power loss) are cut.
        let mut zero_tail = full.clone();
        zero_tail.extend_from_slice(&[0u8; 4096]);
        std::fs::write(&path, &zero_tail).unwrap();
        let mut log = LogFile::open(dir.path(), MAX).unwrap();
        assert_eq!(ids(&mut log), vec![0, 1, 2]);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, full.len());
    }

    #[test]
    fn damaged_header_or_vote_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(LogFile::open(dir.path(), MAX).unwrap());
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            LogFile::open(dir.path(), MAX),
            Err(QuorumError::Corrupt { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        LogFile::open(dir.path(), MAX)
            .unwrap()
            .save_vote(&Vote::new(1, 1))
            .unwrap();
        std::fs::write(dir.path().join(VOTE_FILE), b"junk").unwrap();
        assert!(matches!(
            LogFile::open(dir.path(), MAX),
            Err(QuorumError::Corrupt { .. })
        ));
    }
}
