//! The durable metadata log: an append-only file of framed records.
//!
//! File `metadata.log` in the metadata directory. Byte layout, repeated per record:
//!
//! ```text
//! offset  size  field
//! 0       4     payload length N (u32, big endian), N <= RECORD_BYTES_MAX
//! 4       4     CRC-32C of the payload (u32, big endian)
//! 8       N     payload: one `MetadataRecord` as UTF-8 JSON
//! ```
//!
//! Records are appended in batches; each batch is written with one `write` and
//! made durable with `fsync` before [`MetadataLog::append`] returns, so a record
//! that was acknowledged survives a crash. A crash mid-write leaves a torn tail:
//! the last append's frames cut short, or (after a power loss) read back as
//! zeros or stale bytes. On open the log is read frame by frame; at the first
//! frame that is short, oversized, empty or fails its CRC, the rest of the file
//! is searched for an intact frame ([`intact_frame_after`]). None: the damage is
//! a torn tail, and the file is truncated there. One found: the damage sits in
//! the middle of fsynced records, which truncation would destroy, so open fails
//! ([`LogError::Damaged`], naming the file and byte offset). A frame whose CRC
//! matches but whose payload is not a record this version knows is never a torn
//! write either: open fails the same way.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::record::MetadataRecord;

/// The largest payload a metadata record may have.
pub const RECORD_BYTES_MAX: usize = 1 << 20;
const FRAME_HEADER_BYTES: usize = 8;

/// Errors of the metadata log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("metadata log I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata record too large: {0} bytes")]
    RecordTooLarge(usize),
    #[error("metadata record does not serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    /// Damage that is not a torn tail: records after it would be lost by a
    /// truncation, so nothing is truncated and startup stops.
    #[error(
        "metadata log {path} is damaged at byte offset {offset}: {reason}; intact records \
         follow it, so this is not a torn write and samsa will not truncate it. Restore the \
         metadata directory from a backup or another node; to drop byte {offset} and everything \
         after it (losing those records), truncate the file to {offset} bytes yourself"
    )]
    Damaged {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

/// An open metadata log.
pub struct MetadataLog {
    path: PathBuf,
    file: File,
    records: u64,
}

impl MetadataLog {
    /// Opens (creating if needed) the log in `dir`, returning it with every intact
    /// record, after truncating a torn tail.
    pub fn open(dir: &Path) -> Result<(MetadataLog, Vec<MetadataRecord>), LogError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LogError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join("metadata.log");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path))?;
        let (records, good_len, stop) = decode_frames(&bytes);
        if let Some(stop) = stop {
            if stop.intact || intact_frame_after(&bytes, good_len, RECORD_BYTES_MAX).is_some() {
                return Err(LogError::Damaged {
                    path,
                    offset: good_len as u64,
                    reason: stop.reason,
                });
            }
            tracing::warn!(
                path = %path.display(),
                kept = good_len,
                dropped = bytes.len() - good_len,
                reason = %stop.reason,
                "truncating torn tail of the metadata log"
            );
            file.set_len(good_len as u64).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        let count = records.len() as u64;
        Ok((
            MetadataLog {
                path,
                file,
                records: count,
            },
            records,
        ))
    }

    /// Appends `records` durably (written and fsynced) and returns how many
    /// records the log holds afterwards.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<u64, LogError> {
        let mut buf = Vec::new();
        for record in records {
            let payload = serde_json::to_vec(record)?;
            if payload.len() > RECORD_BYTES_MAX {
                return Err(LogError::RecordTooLarge(payload.len()));
            }
            buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
            buf.extend_from_slice(&payload);
        }
        let io = |source| LogError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.records += records.len() as u64;
        Ok(self.records)
    }
}

/// Where and why decoding stopped before the end of the file.
struct Stop {
    reason: String,
    /// The frame there is intact (its CRC matches): damage no crash makes.
    intact: bool,
}

/// The payload of the intact frame at the start of `bytes`, or why there is
/// none. A frame is intact when its header is complete, its length is
/// non-zero (every frame samsa writes holds a JSON value; a zero-filled
/// region would otherwise read as empty frames with a matching CRC) and at
/// most `payload_bytes_max`, its payload is present and matches its CRC.
fn intact_frame(bytes: &[u8], payload_bytes_max: usize) -> Result<&[u8], &'static str> {
    let Some(header) = bytes.get(..FRAME_HEADER_BYTES) else {
        return Err("frame header cut short");
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return Err("empty frame");
    }
    if len > payload_bytes_max {
        return Err("frame length over the limit");
    }
    let Some(payload) = bytes.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
        return Err("frame cut short");
    };
    if crc32c::crc32c(payload) != crc {
        return Err("frame CRC mismatch");
    }
    Ok(payload)
}

/// The position of the first intact frame (see `intact_frame`) that starts
/// after `damaged`, searching every byte position up to the end of `bytes`.
///
/// This is what tells a torn tail from damage in the middle: a crash during
/// an append damages only that append's bytes, at the end of the file, so no
/// intact frame can follow them; an intact frame after the damage means the
/// damage hit records that were already durable. (Random bytes pass as a frame
/// with a chance of about 2^-32 per position.) Shared with the Raft log
/// (`samsa-quorum`), which uses the same framing.
pub fn intact_frame_after(bytes: &[u8], damaged: usize, payload_bytes_max: usize) -> Option<usize> {
    (damaged + 1..bytes.len().saturating_sub(FRAME_HEADER_BYTES))
        .find(|&pos| intact_frame(&bytes[pos..], payload_bytes_max).is_ok())
}

/// Decodes frames from the start of `bytes`; returns the records, the length
/// of the decoded prefix and, if that is not the whole file, why decoding stopped.
fn decode_frames(bytes: &[u8]) -> (Vec<MetadataRecord>, usize, Option<Stop>) {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let payload = match intact_frame(&bytes[pos..], RECORD_BYTES_MAX) {
            Ok(p) => p,
            Err(reason) => {
                let reason = reason.to_owned();
                return (
                    records,
                    pos,
                    Some(Stop {
                        reason,
                        intact: false,
                    }),
                );
            }
        };
        match serde_json::from_slice::<MetadataRecord>(payload) {
            Ok(record) => records.push(record),
            Err(e) => {
                let reason = format!("intact record that this version does not know: {e}");
                return (
                    records,
                    pos,
                    Some(Stop {
                        reason,
                        intact: true,
                    }),
                );
            }
        }
        pos += FRAME_HEADER_BYTES + payload.len();
    }
    (records, pos, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use samsa_model::TopicId;

    fn topic(i: u32) -> MetadataRecord {
        MetadataRecord::Topic {
            name: format!("t{i}"),
            topic_id: TopicId::random(),
        }
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let written: Vec<_> = (0..5).map(topic).collect();
        {
            let (mut log, existing) = MetadataLog::open(dir.path()).unwrap();
            assert!(existing.is_empty());
            log.append(&written[..2]).unwrap();
            log.append(&written[2..]).unwrap();
        }
        let (_, read) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(read, written);
    }

    #[test]
    fn torn_tail_is_truncated_at_every_length() {
        let dir = tempfile::tempdir().unwrap();
        let written: Vec<_> = (0..3).map(topic).collect();
        {
            let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
            log.append(&written).unwrap();
        }
        let path = dir.path().join("metadata.log");
        let full = std::fs::read(&path).unwrap();
        let (_, first_two_len, _) = decode_frames(&full);
        assert_eq!(first_two_len, full.len());
        // Length of the first two frames.
        let two = {
            let (recs, _, _) = decode_frames(&full);
            assert_eq!(recs.len(), 3);
            let mut p = 0;
            for _ in 0..2 {
                let len = u32::from_be_bytes(full[p..p + 4].try_into().unwrap()) as usize;
                p += 8 + len;
            }
            p
        };
        for cut in two..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (mut log, read) = MetadataLog::open(dir.path()).unwrap();
            assert_eq!(read, written[..2], "cut at {cut}");
            assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, two);
            log.append(&written[2..]).unwrap();
            drop(log);
            let (_, read) = MetadataLog::open(dir.path()).unwrap();
            assert_eq!(read, written, "append after recovery from cut at {cut}");
        }
    }

    #[test]
    fn flipped_bit_stops_replay_at_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let written: Vec<_> = (0..3).map(topic).collect();
        {
            let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
            log.append(&written).unwrap();
        }
        let path = dir.path().join("metadata.log");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let (_, read) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(read, written[..2]);
    }

    /// Writes three records and returns the log file's path, bytes and the
    /// start of each frame.
    fn three_records(dir: &Path) -> (PathBuf, Vec<u8>, Vec<usize>) {
        let written: Vec<_> = (0..3).map(topic).collect();
        {
            let (mut log, _) = MetadataLog::open(dir).unwrap();
            log.append(&written).unwrap();
        }
        let path = dir.join("metadata.log");
        let bytes = std::fs::read(&path).unwrap();
        let mut starts = vec![0];
        for _ in 0..2 {
            let p = *starts.last().unwrap();
            let len = u32::from_be_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
            starts.push(p + 8 + len);
        }
        (path, bytes, starts)
    }

    #[test]
    fn damage_in_the_middle_stops_open_and_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut bytes, starts) = three_records(dir.path());
        // A flipped bit in the second record's payload, then its length.
        for at in [starts[1] + 12, starts[1] + 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            std::fs::write(&path, &damaged).unwrap();
            let err = MetadataLog::open(dir.path()).err().expect("open must fail");
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("offset {}", starts[1])), "{msg}");
            assert!(msg.contains("Restore"), "{msg}");
            assert_eq!(std::fs::read(&path).unwrap(), damaged, "nothing truncated");
        }
        // A zeroed region in the first record.
        bytes[starts[0]..starts[0] + 8].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            MetadataLog::open(dir.path()),
            Err(LogError::Damaged { offset: 0, .. })
        ));
    }

    #[test]
    fn intact_record_of_an_unknown_kind_stops_open_even_at_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut bytes, _) = three_records(dir.path());
        let end = bytes.len();
        let payload = br#"{"FutureRecord":{"x":1}}"#;
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
        bytes.extend_from_slice(payload);
        std::fs::write(&path, &bytes).unwrap();
        let err = MetadataLog::open(dir.path()).err().expect("open must fail");
        assert!(
            matches!(&err, LogError::Damaged { offset, .. } if *offset == end as u64),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap().len(), bytes.len());
    }

    #[test]
    fn zero_filled_tail_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut bytes, _) = three_records(dir.path());
        let end = bytes.len();
        bytes.extend_from_slice(&[0u8; 4096]);
        std::fs::write(&path, &bytes).unwrap();
        let (_, read) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(std::fs::read(&path).unwrap().len(), end);
    }
}
