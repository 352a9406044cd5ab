//! The leader epoch cache (Kafka's `LeaderEpochFileCache`, KIP-101/279) and
//! its `leader-epoch-checkpoint` file.
//!
//! The cache maps each leader epoch seen in the log to the first offset
//! written in it. Followers use it to find where their log diverged from the
//! leader's (`OffsetForLeaderEpoch`) instead of trusting the high watermark.
//! Entries are strictly increasing in both epoch and start offset, every start
//! offset is `<= log end`, and epochs are `>= 0` (batches stamped with
//! [`LeaderEpoch::NONE`] are not recorded).
//!
//! # File layout
//!
//! `leader-epoch-checkpoint` in the partition directory, Kafka's text format
//! (ASCII, lines ended by `\n`):
//!
//! ```text
//! 0                      <- format version
//! N                      <- number of entries
//! <epoch> <start offset> <- N lines, ascending, separated by one space
//! ```
//!
//! e.g. `0\n2\n0 0\n5 120\n`. A file that does not parse exactly (wrong
//! version, count not matching the lines, non-numeric or negative fields,
//! entries not strictly increasing in both columns, anything after the last
//! entry) is treated as missing.
//!
//! # Crash behaviour
//!
//! The file is replaced atomically (`leader-epoch-checkpoint.tmp`, fsync,
//! rename, directory fsync; see [`crate::checkpoint`]), so a crash leaves the
//! old or the new version, and a stray `.tmp` that open deletes. A new entry
//! is made durable *before* the first batch of its epoch is written, so every
//! epoch present in the log is in the file; the reverse may not hold after a
//! crash, and the log's open repairs it:
//!
//! - entries whose start offset is `>= log end` after recovery are dropped:
//!   the batch they were recorded for never reached the disk (or was torn),
//!   or a truncation removed the log's tail but crashed before trimming the
//!   file. An epoch assigned with no batch written yet is therefore forgotten
//!   by a restart, as in Kafka; a leader assigns it again.
//! - entries wholly below the log start are dropped, the last one at or below
//!   it starting at the log start (a crash between moving the log start and
//!   trimming the file);
//! - a missing or unparsable file is rebuilt by walking the batch headers of
//!   every segment (no CRC or record decoding), recording each epoch that
//!   exceeds the previous one at its first batch's base offset.
//!
//! Whenever open changed the entries it writes the file back.

use std::fs;
use std::io;
use std::path::Path;

use samsa_model::{LeaderEpoch, Offset};

use crate::checkpoint;
use crate::error::StorageError;

/// File name of the leader epoch checkpoint inside the partition directory.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// Temporary name used while writing it.
pub const LEADER_EPOCH_TMP_FILE: &str = "leader-epoch-checkpoint.tmp";
/// The only file format version (Kafka's).
const FORMAT_VERSION: u32 = 0;

/// `(epoch, first offset of the epoch)` pairs, ascending in both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<(LeaderEpoch, Offset)>,
}

impl EpochCache {
    /// The entries, oldest first.
    pub fn entries(&self) -> &[(LeaderEpoch, Offset)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// Whether a batch of `epoch` would add an entry (a non-negative epoch
    /// greater than the latest).
    pub fn is_new(&self, epoch: LeaderEpoch) -> bool {
        epoch.get() >= 0 && self.latest_epoch().is_none_or(|l| epoch > l)
    }

    /// Record that `epoch` starts at `start`, if [`EpochCache::is_new`].
    /// Entries starting at or after `start` are replaced (an epoch that never
    /// got a batch, as in Kafka). Returns whether anything changed.
    pub fn record(&mut self, epoch: LeaderEpoch, start: Offset) -> bool {
        if !self.is_new(epoch) || start.get() < 0 {
            return false;
        }
        while self.entries.last().is_some_and(|&(_, s)| s >= start) {
            self.entries.pop();
        }
        self.entries.push((epoch, start));
        true
    }

    /// Drop entries starting at or after `end` (Kafka's `truncateFromEnd`).
    pub fn truncate_from_end(&mut self, end: Offset) -> bool {
        let keep = self.entries.partition_point(|&(_, s)| s < end);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Drop entries wholly below `start` except the last one at or below it,
    /// which then starts at `start` (Kafka's `truncateFromStart`).
    pub fn truncate_from_start(&mut self, start: Offset) -> bool {
        let at_or_below = self.entries.partition_point(|&(_, s)| s <= start);
        let Some(last) = at_or_below.checked_sub(1) else {
            return false;
        };
        let before = self.entries.clone();
        self.entries.drain(..last);
        if let Some(first) = self.entries.first_mut() {
            first.1 = start;
        }
        self.entries != before
    }

    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// Kafka's `endOffsetFor`: `(NONE, -1)` when the cache is empty,
    /// `requested` is [`LeaderEpoch::NONE`] or above the latest epoch;
    /// `(latest, log_end)` for the latest epoch; `(requested, start of the
    /// first entry)` for an epoch older than every entry (its batches are
    /// gone below the log start, so a follower truncates to where the
    /// leader's history begins); otherwise the largest epoch `<= requested`
    /// and the start offset of the first epoch `> requested`.
    pub fn end_offset_for(&self, requested: LeaderEpoch, log_end: Offset) -> (LeaderEpoch, Offset) {
        const UNDEFINED: (LeaderEpoch, Offset) = (LeaderEpoch::NONE, Offset(-1));
        let Some(&(latest, _)) = self.entries.last() else {
            return UNDEFINED;
        };
        if requested == LeaderEpoch::NONE || requested > latest {
            return UNDEFINED;
        }
        if requested == latest {
            return (latest, log_end);
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= requested);
        match (
            higher.checked_sub(1).and_then(|i| self.entries.get(i)),
            self.entries.get(higher),
        ) {
            (Some(&(floor, _)), Some(&(_, end))) => (floor, end),
            (None, Some(&(_, first_start))) => (requested, first_start),
            _ => UNDEFINED,
        }
    }

    /// The file's text (see the module docs).
    pub fn encode(&self) -> String {
        let mut out = format!("{FORMAT_VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            out.push_str(&format!("{epoch} {start}\n"));
        }
        out
    }

    /// Parse the file's text; `Err` says what is wrong.
    pub fn decode(text: &str) -> Result<EpochCache, String> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| "missing final newline".to_owned())?;
        let mut lines = body.split('\n');
        let version = lines.next().unwrap_or_default();
        if version.parse::<u32>().ok() != Some(FORMAT_VERSION) {
            return Err(format!("unsupported version line {version:?}"));
        }
        let count_line = lines.next().unwrap_or_default();
        let count: usize = count_line
            .parse()
            .map_err(|_| format!("bad entry count {count_line:?}"))?;
        let mut cache = EpochCache::default();
        for line in lines.by_ref().take(count) {
            let (epoch, start) = line
                .split_once(' ')
                .ok_or_else(|| format!("bad entry {line:?}"))?;
            let epoch: i32 = epoch
                .parse()
                .map_err(|_| format!("bad epoch in {line:?}"))?;
            let start: i64 = start
                .parse()
                .map_err(|_| format!("bad start offset in {line:?}"))?;
            if epoch < 0 || start < 0 {
                return Err(format!("negative field in {line:?}"));
            }
            if let Some(&(e, s)) = cache.entries.last() {
                if epoch <= e.get() || start <= s.get() {
                    return Err(format!("entry {line:?} does not increase"));
                }
            }
            cache.entries.push((LeaderEpoch(epoch), Offset(start)));
        }
        if cache.entries.len() != count {
            return Err(format!(
                "{count} entries declared, {} present",
                cache.entries.len()
            ));
        }
        if lines.next().is_some() {
            return Err("data after the last entry".to_owned());
        }
        Ok(cache)
    }

    /// The cache in `dir`'s file; `None` when missing or unparsable (warned).
    pub fn read(dir: &Path) -> Result<Option<EpochCache>, StorageError> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("read", &path, e)),
        };
        let decoded = std::str::from_utf8(&bytes)
            .map_err(|_| "not UTF-8".to_owned())
            .and_then(EpochCache::decode);
        match decoded {
            Ok(cache) => Ok(Some(cache)),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring damaged leader epoch checkpoint");
                Ok(None)
            }
        }
    }

    /// Atomically replace `dir`'s file with these entries.
    pub fn write(&self, dir: &Path) -> Result<(), StorageError> {
        checkpoint::write_atomically(
            dir,
            LEADER_EPOCH_FILE,
            LEADER_EPOCH_TMP_FILE,
            self.encode().as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        EpochCache {
            entries: entries
                .iter()
                .map(|&(e, s)| (LeaderEpoch(e), Offset(s)))
                .collect(),
        }
    }

    fn pairs(c: &EpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|(e, s)| (e.get(), s.get()))
            .collect()
    }

    #[test]
    fn end_offset_for_table() {
        let c = cache(&[(1, 5), (3, 10), (4, 25), (8, 40)]);
        let end = Offset(57);
        let table: &[(i32, (i32, i64))] = &[
            (-1, (-1, -1)),
            // Older than the first entry: that epoch, ending where the
            // first cached epoch starts (Kafka's `endOffsetFor`).
            (0, (0, 5)),
            (1, (1, 10)),
            (2, (1, 10)),
            (3, (3, 25)),
            (4, (4, 40)),
            (5, (4, 40)),
            (7, (4, 40)),
            (8, (8, 57)),
            (9, (-1, -1)),
        ];
        for &(requested, (epoch, offset)) in table {
            assert_eq!(
                c.end_offset_for(LeaderEpoch(requested), end),
                (LeaderEpoch(epoch), Offset(offset)),
                "requested {requested}"
            );
        }
        let empty = EpochCache::default();
        for requested in [-1, 0, 5] {
            assert_eq!(
                empty.end_offset_for(LeaderEpoch(requested), end),
                (LeaderEpoch::NONE, Offset(-1))
            );
        }
    }

    #[test]
    fn record_keeps_entries_strictly_increasing() {
        let mut c = EpochCache::default();
        assert!(!c.record(LeaderEpoch::NONE, Offset(0)), "no epoch");
        assert!(c.record(LeaderEpoch(0), Offset(0)));
        assert!(!c.record(LeaderEpoch(0), Offset(5)), "same epoch");
        assert!(c.record(LeaderEpoch(2), Offset(5)));
        assert!(!c.record(LeaderEpoch(1), Offset(9)), "older epoch");
        // An epoch that never got a batch is replaced by the next one.
        assert!(c.record(LeaderEpoch(3), Offset(9)));
        assert!(c.record(LeaderEpoch(4), Offset(9)));
        assert_eq!(pairs(&c), [(0, 0), (2, 5), (4, 9)]);
        assert_eq!(c.latest_epoch(), Some(LeaderEpoch(4)));
    }

    #[test]
    fn truncation_from_either_end() {
        let base = cache(&[(0, 0), (2, 10), (5, 20)]);
        let mut c = base.clone();
        assert!(!c.truncate_from_end(Offset(21)));
        assert!(c.truncate_from_end(Offset(20)));
        assert_eq!(pairs(&c), [(0, 0), (2, 10)]);
        assert!(c.truncate_from_end(Offset(0)));
        assert_eq!(pairs(&c), []);

        let mut c = base.clone();
        assert!(!c.truncate_from_start(Offset(0)), "already starts there");
        assert!(c.truncate_from_start(Offset(4)));
        assert_eq!(pairs(&c), [(0, 4), (2, 10), (5, 20)]);
        assert!(c.truncate_from_start(Offset(10)));
        assert_eq!(pairs(&c), [(2, 10), (5, 20)]);
        assert!(c.truncate_from_start(Offset(30)));
        assert_eq!(pairs(&c), [(5, 30)]);

        let mut c = cache(&[(3, 10)]);
        assert!(!c.truncate_from_start(Offset(5)), "nothing below");
        assert!(c.clear());
        assert!(!c.clear());
    }

    #[test]
    fn text_format_round_trip_and_rejects() {
        let c = cache(&[(0, 0), (5, 120)]);
        assert_eq!(c.encode(), "0\n2\n0 0\n5 120\n");
        assert_eq!(EpochCache::decode(&c.encode()), Ok(c));
        assert_eq!(
            EpochCache::decode("0\n0\n"),
            Ok(EpochCache::default()),
            "empty"
        );
        for bad in [
            "",
            "0\n2\n0 0\n5 120",      // no final newline
            "1\n1\n0 0\n",           // version
            "0\n2\n0 0\n",           // fewer entries
            "0\n1\n0 0\n5 120\n",    // more lines
            "0\n2\n0 0\n0 5\n",      // epoch not increasing
            "0\n2\n0 5\n1 5\n",      // offset not increasing
            "0\n1\n-1 0\n",          // negative
            "0\n1\n0 x\n",           // not a number
            "0\n1\n0  0\n",          // two spaces
            "0\nx\n",                // count
            "0\n1\n99999999999 0\n", // epoch overflows i32
        ] {
            assert!(EpochCache::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_read_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(EpochCache::read(dir.path()).expect("read"), None);
        let c = cache(&[(1, 3), (4, 9)]);
        c.write(dir.path()).expect("write");
        assert_eq!(
            fs::read_to_string(dir.path().join(LEADER_EPOCH_FILE)).expect("text"),
            "0\n2\n1 3\n4 9\n"
        );
        assert_eq!(EpochCache::read(dir.path()).expect("read"), Some(c));
        assert!(!dir.path().join(LEADER_EPOCH_TMP_FILE).exists());
        fs::write(dir.path().join(LEADER_EPOCH_FILE), [0xff, 0xfe]).expect("garbage");
        assert_eq!(EpochCache::read(dir.path()).expect("read"), None);
    }
}
