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
//! that was acknowledged survives a crash. A crash mid-write leaves a torn frame at
//! the tail: on open, the log is read frame by frame and truncated at the first
//! frame that is short, oversized, fails its CRC or does not parse.

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
        let (records, good_len) = decode_frames(&bytes);
        if good_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                kept = good_len,
                dropped = bytes.len() - good_len,
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

/// Decodes frames from the start of `bytes`; returns the records and the length of
/// the intact prefix.
fn decode_frames(bytes: &[u8]) -> (Vec<MetadataRecord>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while let Some(header) = bytes.get(pos..pos + FRAME_HEADER_BYTES) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len > RECORD_BYTES_MAX {
            break;
        }
        let start = pos + FRAME_HEADER_BYTES;
        let Some(payload) = bytes.get(start..start + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<MetadataRecord>(payload) else {
            break;
        };
        records.push(record);
        pos = start + len;
    }
    (records, pos)
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
        let (_, first_two_len) = decode_frames(&full);
        assert_eq!(first_two_len, full.len());
        // Length of the first two frames.
        let two = {
            let (recs, _) = decode_frames(&full);
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
}
