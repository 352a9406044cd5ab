//! Shared helpers for the storage integration tests.
#![allow(dead_code)]

use std::path::Path;

use samsa_model::batch::{self, BatchBuilder, BatchHeader, BatchIter, NewRecord};
use samsa_model::compression::Compression;
use samsa_model::{LeaderEpoch, Offset, TimestampMs};
use samsa_storage::{LogConfig, PartitionLog};

/// A record key and value (`None`: a tombstone) as the compaction tests use them.
pub type Key = Vec<u8>;
pub type Value = Option<Vec<u8>>;

/// A tiny configuration so tests cross many segments and index entries.
pub fn tiny_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

/// A batch of `n` records with values `tag:i`, timestamps `ts + i`.
pub fn batch(n: usize, ts: i64, tag: &str) -> Vec<u8> {
    batch_with(n, ts, tag, Compression::None, 0)
}

/// A batch of `n` records with values `tag:i` padded to `pad` extra bytes.
pub fn batch_with(n: usize, ts: i64, tag: &str, codec: Compression, pad: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new().compression(codec);
    for i in 0..n {
        let mut value = format!("{tag}:{i}").into_bytes();
        value.resize(value.len() + pad, b'.');
        b.push(NewRecord::new(
            TimestampMs(ts + i as i64),
            Some(format!("k{i}").as_bytes()),
            Some(&value),
        ));
    }
    b.build().expect("build")
}

/// Append a batch and return its base offset.
pub fn append(log: &PartitionLog, mut b: Vec<u8>, now: i64) -> Offset {
    log.append(&mut b, LeaderEpoch(1), TimestampMs(now))
        .expect("append")
        .base_offset
}

/// Split concatenated batches, checking each CRC.
pub fn batches(bytes: &[u8]) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut it = BatchIter::new(bytes);
    let out: Vec<_> = it
        .by_ref()
        .map(|r| {
            let (h, b) = r.expect("batch");
            batch::verify_crc(b).expect("crc");
            (h, b.to_vec())
        })
        .collect();
    assert_eq!(it.consumed_bytes(), bytes.len(), "partial batch returned");
    out
}

/// Every (offset, value) in the log from its start, read in small chunks.
pub fn all_records(log: &PartitionLog) -> Vec<(Offset, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let r = log.read(next, 700, end, true).expect("read");
        assert!(!r.bytes.is_empty(), "no progress at {next}");
        for (h, b) in batches(&r.bytes) {
            for rec in batch::records(&b, 1 << 20).expect("records") {
                let o = h.record_offset(&rec);
                if o >= next {
                    out.push((o, rec.value.map(|v| v.to_vec()).unwrap_or_default()));
                }
            }
        }
        next = r.next_offset;
    }
    out
}

/// Copy a partition directory (flat) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// Log files of a partition directory, sorted.
pub fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}
