//! Append/read round trips, read semantics, timestamps, log start moves,
//! retention, truncation and reopening of a `PartitionLog`.

mod common;

use std::sync::Arc;

use common::*;
use samsa_model::batch::{self, BatchBuilder, NewRecord};
use samsa_model::compression::Compression;
use samsa_model::{LeaderEpoch, Offset, TimestampMs};
use samsa_storage::{LogConfig, PartitionLog, StorageError};

#[test]
fn append_assigns_offsets_and_patches_the_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    assert_eq!(log.log_start_offset(), Offset(0));
    assert_eq!(log.log_end_offset(), Offset(0));
    let mut b = batch(3, 1000, "a");
    let info = log
        .append(&mut b, LeaderEpoch(7), TimestampMs(5))
        .expect("append");
    assert_eq!(info.base_offset, Offset(0));
    assert_eq!(info.last_offset, Offset(2));
    assert_eq!(info.log_start_offset, Offset(0));
    let mut b2 = batch(2, 2000, "b");
    let info = log
        .append(&mut b2, LeaderEpoch(8), TimestampMs(6))
        .expect("append");
    assert_eq!((info.base_offset, info.last_offset), (Offset(3), Offset(4)));
    assert_eq!(log.log_end_offset(), Offset(5));

    let r = log
        .read(Offset(0), 1 << 20, Offset(5), false)
        .expect("read");
    let got = batches(&r.bytes);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0.base_offset, Offset(0));
    assert_eq!(got[0].0.partition_leader_epoch, LeaderEpoch(7));
    assert_eq!(got[1].0.base_offset, Offset(3));
    assert_eq!(got[1].0.partition_leader_epoch, LeaderEpoch(8));
    // The caller's buffer was patched in place and is what got stored.
    assert_eq!(got[1].1, b2);
    assert_eq!(r.first_offset, Some(Offset(0)));
    assert_eq!(r.next_offset, Offset(5));
    assert_eq!(r.log_end_offset, Offset(5));
    assert_eq!(log.size_bytes(), (b.len() + b2.len()) as u64);
}

#[test]
fn append_rejects_bad_framing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    let mut b = batch(1, 1, "x");
    b.push(0);
    assert!(matches!(
        log.append(&mut b, LeaderEpoch(0), TimestampMs(0)),
        Err(StorageError::InvalidBatch(_))
    ));
    let mut short = batch(1, 1, "x");
    short.pop();
    assert!(matches!(
        log.append(&mut short, LeaderEpoch(0), TimestampMs(0)),
        Err(StorageError::InvalidBatch(_))
    ));
    assert_eq!(log.log_end_offset(), Offset(0));
}

#[test]
fn many_segments_round_trip_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected = Vec::new();
    {
        let log = PartitionLog::open(dir.path(), tiny_config()).expect("open");
        for i in 0..120usize {
            let n = 1 + i % 4;
            let codec = Compression::ALL[i % 5];
            let base = append(
                &log,
                batch_with(n, 1000 + i as i64, &format!("b{i}"), codec, i % 50),
                0,
            );
            for j in 0..n {
                let mut v = format!("b{i}:{j}").into_bytes();
                v.resize(v.len() + i % 50, b'.');
                expected.push((base.plus(j as i64), v));
            }
        }
        assert!(
            log.segments_info().len() > 10,
            "{}",
            log.segments_info().len()
        );
        assert_eq!(all_records(&log), expected);
        // Every offset is readable and the first batch returned contains it.
        for (o, _) in &expected {
            let r = log.read(*o, 1, log.log_end_offset(), true).expect("read");
            let got = batches(&r.bytes);
            assert_eq!(got.len(), 1);
            assert!(got[0].0.base_offset <= *o && got[0].0.last_offset() >= *o);
        }
        log.close().expect("close");
    }
    let end = Offset(expected.len() as i64);
    for clean in [true, false] {
        let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(all_records(&log), expected);
        if clean {
            // Dropped without close: the next open runs recovery.
            drop(log);
        } else {
            let base = append(&log, batch(2, 5000, "after"), 0);
            assert_eq!(base, end);
            assert_eq!(log.log_end_offset(), end.plus(2));
            log.close().expect("close");
        }
    }
}

#[test]
fn read_semantics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    let mut sizes = Vec::new();
    for i in 0..5 {
        let b = batch(3, 100 * i, "r");
        sizes.push(b.len());
        append(&log, b, 0);
    }
    let end = log.log_end_offset();
    assert_eq!(end, Offset(15));
    // Starts mid-batch: the containing batch comes first.
    let r = log.read(Offset(4), 1 << 20, end, false).expect("read");
    assert_eq!(r.first_offset, Some(Offset(3)));
    assert_eq!(batches(&r.bytes).len(), 4);
    // max_bytes: stop before exceeding it.
    let two = sizes[0] + sizes[1];
    let r = log
        .read(Offset(0), two + sizes[2] - 1, end, false)
        .expect("read");
    assert_eq!(r.bytes.len(), two);
    assert_eq!(r.next_offset, Offset(6));
    // Too small for one batch: nothing, unless min_one_batch.
    let r = log.read(Offset(0), 10, end, false).expect("read");
    assert!(r.bytes.is_empty());
    assert_eq!(r.next_offset, Offset(0));
    let r = log.read(Offset(0), 10, end, true).expect("read");
    assert_eq!(r.bytes.len(), sizes[0]);
    let r = log.read(Offset(0), 0, end, true).expect("read");
    assert_eq!(batches(&r.bytes).len(), 1);
    // Upper bound (exclusive) on base offsets.
    let r = log.read(Offset(0), 1 << 20, Offset(6), true).expect("read");
    assert_eq!(batches(&r.bytes).len(), 2);
    let r = log.read(Offset(0), 1 << 20, Offset(7), true).expect("read");
    assert_eq!(batches(&r.bytes).len(), 3, "batch 6..8 starts below 7");
    let r = log.read(Offset(6), 1 << 20, Offset(6), true).expect("read");
    assert!(r.bytes.is_empty(), "nothing at or above the upper bound");
    // At the log end: empty. Beyond or below: out of range.
    let r = log.read(end, 1 << 20, end, true).expect("read");
    assert!(r.bytes.is_empty());
    assert_eq!(r.next_offset, end);
    assert!(matches!(
        log.read(end.plus(1), 100, end, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    log.delete_records_before(Offset(4)).expect("delete");
    assert!(matches!(
        log.read(Offset(3), 100, end, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    let r = log.read(Offset(4), 1 << 20, end, true).expect("read");
    assert_eq!(
        r.first_offset,
        Some(Offset(3)),
        "may start before the log start"
    );
}

#[test]
fn reads_cross_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("open");
    for i in 0..40 {
        append(&log, batch(2, i, "x"), 0);
    }
    assert!(log.segments_info().len() > 3);
    let r = log
        .read(Offset(0), 1 << 20, log.log_end_offset(), false)
        .expect("read");
    assert_eq!(batches(&r.bytes).len(), 40);
    assert_eq!(r.next_offset, Offset(80));
}

#[test]
fn timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(
        dir.path(),
        LogConfig {
            segment_bytes: 200,
            index_interval_bytes: 0,
            ..LogConfig::default()
        },
    )
    .expect("open");
    assert_eq!(log.max_timestamp().expect("max"), None);
    assert_eq!(
        log.offset_for_timestamp(TimestampMs(0)).expect("lookup"),
        None
    );
    // Non-monotonic timestamps across batches and inside them.
    let stamps: Vec<Vec<i64>> = vec![
        vec![100, 90, 105],
        vec![50],
        vec![200, 300, 250],
        vec![300, 120],
        vec![150],
        vec![400, 10],
        vec![399],
    ];
    let mut all = Vec::new();
    for s in &stamps {
        let mut b = BatchBuilder::new();
        for &t in s {
            b.push(NewRecord::new(TimestampMs(t), Some(b"k"), Some(b"v")));
        }
        let base = append(&log, b.build().expect("build"), 0);
        for (i, &t) in s.iter().enumerate() {
            all.push((base.plus(i as i64), t));
        }
    }
    assert!(log.segments_info().len() > 2);
    let check = |log: &PartitionLog, start: Offset| {
        for target in [
            0, 10, 50, 91, 100, 101, 106, 200, 251, 300, 301, 399, 400, 401,
        ] {
            let want = all
                .iter()
                .find(|(o, t)| *o >= start && *t >= target)
                .map(|&(o, t)| (o, TimestampMs(t)));
            assert_eq!(
                log.offset_for_timestamp(TimestampMs(target))
                    .expect("lookup"),
                want,
                "target {target} from {start}"
            );
        }
        let max = all
            .iter()
            .filter(|(o, _)| *o >= start)
            .map(|&(_, t)| t)
            .max()
            .expect("non-empty");
        let first = all
            .iter()
            .find(|(o, t)| *o >= start && *t == max)
            .map(|&(o, _)| o)
            .expect("present");
        assert_eq!(
            log.max_timestamp().expect("max"),
            Some((TimestampMs(max), first))
        );
    };
    check(&log, Offset(0));
    log.close().expect("close");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
    check(&log, Offset(0));
    // Moving the log start into the middle of the batch holding 400 changes the max.
    let at_400 = all
        .iter()
        .find(|(_, t)| *t == 400)
        .map(|&(o, _)| o)
        .expect("400");
    log.delete_records_before(at_400.plus(1)).expect("delete");
    check(&log, at_400.plus(1));
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen unclean");
    check(&log, at_400.plus(1));
}

#[test]
fn log_append_time_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    let mut b = batch(3, 10, "lat");
    batch::set_log_append_time(&mut b, TimestampMs(5000)).expect("lat");
    append(&log, batch(1, 20, "ct"), 0);
    append(&log, b, 0);
    assert_eq!(
        log.offset_for_timestamp(TimestampMs(21)).expect("lookup"),
        Some((Offset(1), TimestampMs(5000)))
    );
    assert_eq!(
        log.max_timestamp().expect("max"),
        Some((TimestampMs(5000), Offset(1)))
    );
}

#[test]
fn delete_records_before_moves_start_and_deletes_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("open");
    for i in 0..60 {
        append(&log, batch(2, i, "d"), 0);
    }
    let end = log.log_end_offset();
    let before = log.segments_info();
    assert!(matches!(
        log.delete_records_before(end.plus(1)),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    let target = Offset(51);
    assert_eq!(log.delete_records_before(target).expect("delete"), target);
    assert_eq!(log.log_start_offset(), target);
    let after = log.segments_info();
    assert!(after.len() < before.len());
    assert!(after[0].base_offset <= target && after[0].next_offset > target);
    assert_eq!(log_files(dir.path()).len(), after.len());
    // Moving backwards is a no-op.
    assert_eq!(log.delete_records_before(Offset(3)).expect("noop"), target);
    let recs = all_records(&log);
    assert_eq!(recs.first().map(|r| r.0), Some(target));
    drop(log);
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.segments_info(), after);
    // Up to the log end: everything is logically gone, appends continue.
    log.delete_records_before(end).expect("all");
    assert!(log
        .read(end, 100, end, true)
        .expect("read")
        .bytes
        .is_empty());
    assert_eq!(append(&log, batch(1, 0, "z"), 0), end);
    log.close().expect("close");
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    assert_eq!(log.log_start_offset(), end);
    assert_eq!(log.log_end_offset(), end.plus(1));
}

#[test]
fn retention_deletes_oldest_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("open");
    assert_eq!(log.delete_oldest_segment().expect("empty"), None);
    for i in 0..30 {
        append(&log, batch(2, 1000 + i, "t"), 0);
    }
    let infos = log.segments_info();
    assert!(infos.len() > 2);
    assert!(infos.last().is_some_and(|s| s.active));
    assert!(infos.iter().all(|s| s.max_timestamp.is_some()));
    let oldest = log.delete_oldest_segment().expect("delete").expect("some");
    assert_eq!(oldest, SegmentInfoEq::strip(infos[0]));
    assert_eq!(log.log_start_offset(), infos[1].base_offset);
    while log.delete_oldest_segment().expect("delete").is_some() {}
    let end = log.log_end_offset();
    assert_eq!(end, Offset(60));
    assert_eq!(log.log_start_offset(), end);
    assert_eq!(log.segments_info().len(), 1);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(append(&log, batch(1, 0, "n"), 0), end);
    drop(log);
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    assert_eq!(log.log_start_offset(), end);
    assert_eq!(log.log_end_offset(), end.plus(1));
}

/// `delete_oldest_segment` reports the segment as it was (not active).
struct SegmentInfoEq;
impl SegmentInfoEq {
    fn strip(mut s: samsa_storage::SegmentInfo) -> samsa_storage::SegmentInfo {
        s.active = false;
        s
    }
}

#[test]
fn truncate_to_drops_whole_batches_and_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("open");
    for i in 0..50 {
        append(&log, batch(3, i * 10, "t"), 0);
    }
    let records = all_records(&log);
    // Mid-batch: the batch containing 100 (99..101) goes entirely.
    log.truncate_to(Offset(100)).expect("truncate");
    assert_eq!(log.log_end_offset(), Offset(99));
    assert_eq!(all_records(&log), records[..99].to_vec());
    assert!(log
        .segments_info()
        .iter()
        .all(|s| s.next_offset <= Offset(99)));
    assert_eq!(log_files(dir.path()).len(), log.segments_info().len());
    // Beyond the end: nothing happens.
    log.truncate_to(Offset(500)).expect("noop");
    assert_eq!(log.log_end_offset(), Offset(99));
    // On a segment boundary.
    let boundary = log.segments_info()[3].base_offset;
    log.truncate_to(boundary).expect("truncate");
    assert_eq!(log.log_end_offset(), boundary);
    assert_eq!(
        log.max_timestamp().expect("max").map(|m| m.1),
        Some(boundary.plus(-1))
    );
    assert_eq!(append(&log, batch(2, 7, "new"), 0), boundary);
    let mut expected = records[..boundary.get() as usize].to_vec();
    expected.push((boundary, b"new:0".to_vec()));
    expected.push((boundary.plus(1), b"new:1".to_vec()));
    assert_eq!(all_records(&log), expected);
    drop(log);
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    assert_eq!(all_records(&log), expected);
    // Below the log start: restart empty there.
    log.delete_records_before(Offset(20)).expect("start");
    log.truncate_to(Offset(10)).expect("truncate below start");
    assert_eq!(log.log_start_offset(), Offset(10));
    assert_eq!(log.log_end_offset(), Offset(10));
    assert_eq!(append(&log, batch(1, 7, "again"), 0), Offset(10));
    drop(log);
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    assert_eq!(log.log_start_offset(), Offset(10));
    assert_eq!(all_records(&log), vec![(Offset(10), b"again:0".to_vec())]);
}

#[test]
fn truncate_into_batch_holding_the_log_start_restarts_at_the_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    append(&log, batch(5, 0, "a"), 0);
    append(&log, batch(5, 0, "b"), 0);
    log.delete_records_before(Offset(7)).expect("start");
    log.truncate_to(Offset(8)).expect("truncate");
    assert_eq!(log.log_start_offset(), Offset(7));
    assert_eq!(log.log_end_offset(), Offset(7));
    assert_eq!(append(&log, batch(1, 0, "c"), 0), Offset(7));
}

#[test]
fn rolls_on_time_and_full_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(
        dir.path(),
        LogConfig {
            segment_ms: 1000,
            ..LogConfig::default()
        },
    )
    .expect("open");
    append(&log, batch(1, 0, "a"), 10_000);
    append(&log, batch(1, 0, "b"), 10_500);
    assert_eq!(log.segments_info().len(), 1);
    append(&log, batch(1, 0, "c"), 11_001);
    assert_eq!(log.segments_info().len(), 2);
    assert_eq!(log.segments_info()[1].base_offset, Offset(2));
    log.set_config(LogConfig {
        index_interval_bytes: 0,
        segment_index_bytes: 24,
        ..LogConfig::default()
    });
    for _ in 0..9 {
        append(&log, batch(1, 0, "d"), 11_002);
    }
    // Three offset index entries (24 bytes) fill the index. Segment 2.. got
    // "c" without an entry (old interval) plus three entries; later ones three.
    let infos = log.segments_info();
    assert_eq!(infos.len(), 4, "{infos:?}");
    assert_eq!(infos[1].next_offset.get() - infos[1].base_offset.get(), 4);
    assert_eq!(infos[2].next_offset.get() - infos[2].base_offset.get(), 3);
}

#[test]
fn flush_policies_and_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(
        dir.path(),
        LogConfig {
            flush_messages: 2,
            flush_ms: 10,
            ..LogConfig::default()
        },
    )
    .expect("open");
    for i in 0..10 {
        append(&log, batch(1, 0, "f"), i * 7);
    }
    log.flush().expect("flush");
    log.close().expect("close");
    log.close().expect("close twice");
    assert!(matches!(
        log.append(&mut batch(1, 0, "x"), LeaderEpoch(0), TimestampMs(0)),
        Err(StorageError::Closed { .. })
    ));
    assert_eq!(all_records(&log).len(), 10, "reads still work after close");
    assert!(dir.path().join("clean-shutdown").exists());
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
    assert!(!dir.path().join("clean-shutdown").exists());
    assert_eq!(log.log_end_offset(), Offset(10));
    let path = dir.path().to_path_buf();
    log.delete().expect("delete");
    assert!(!path.exists());
    samsa_storage::delete_log_dir(&path).expect("missing is fine");
}

#[test]
fn concurrent_readers_see_complete_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(PartitionLog::open(dir.path(), tiny_config()).expect("open"));
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for i in 0..400 {
                append(&log, batch(1 + i % 3, i as i64, "c"), 0);
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < 200 {
                    let end = log.log_end_offset();
                    let start = log.log_start_offset();
                    let r = log.read(start, 4096, end, true).expect("read");
                    let got = batches(&r.bytes);
                    if let Some((h, _)) = got.last() {
                        assert!(h.last_offset() < end);
                    }
                    seen += 1;
                }
            })
        })
        .collect();
    writer.join().expect("writer");
    for r in readers {
        r.join().expect("reader");
    }
    assert_eq!(
        all_records(&log).len(),
        (0..400).map(|i| 1 + i % 3).sum::<usize>()
    );
}

#[test]
fn flush_if_due_follows_flush_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        flush_ms: 1000,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), cfg).expect("open");
    // Nothing unflushed yet: nothing to do.
    assert!(!log.flush_if_due(TimestampMs(i64::MAX / 2)).unwrap());
    let now = TimestampMs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    let mut b = batch(1, now.get(), "a");
    log.append(&mut b, LeaderEpoch(0), now).expect("append");
    assert!(!log.flush_if_due(now).unwrap(), "not due within flush.ms");
    assert!(
        log.flush_if_due(TimestampMs(now.get() + 5_000)).unwrap(),
        "due after flush.ms"
    );
    assert!(
        !log.flush_if_due(TimestampMs(now.get() + 10_000)).unwrap(),
        "already flushed"
    );
}

#[test]
fn append_unmodified_stores_what_append_stores() {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let a = PartitionLog::open(dir_a.path(), LogConfig::default()).expect("open");
    let b = PartitionLog::open(dir_b.path(), LogConfig::default()).expect("open");
    for (i, n) in [3usize, 1, 5].into_iter().enumerate() {
        let original = batch(n, 1000 + i as i64, "k");
        let mut patched = original.clone();
        let ia = a
            .append(&mut patched, LeaderEpoch(4), TimestampMs(5))
            .expect("append");
        let ib = b
            .append_unmodified(&original, LeaderEpoch(4), TimestampMs(5))
            .expect("append_unmodified");
        assert_eq!(
            (ia.base_offset, ia.last_offset),
            (ib.base_offset, ib.last_offset)
        );
        // The caller's batch is untouched.
        assert_eq!(original, batch(n, 1000 + i as i64, "k"));
    }
    let end = a.log_end_offset();
    let ra = a.read(Offset(0), 1 << 20, end, false).expect("read");
    let rb = b.read(Offset(0), 1 << 20, end, false).expect("read");
    assert_eq!(ra.bytes, rb.bytes);
    for (h, bytes) in batches(&rb.bytes) {
        assert_eq!(h.partition_leader_epoch, LeaderEpoch(4));
        batch::verify_crc(&bytes).expect("crc");
    }
    // Reads starting inside the log return the same bytes from both.
    let ra = a.read(Offset(5), 1 << 20, end, true).expect("read");
    let rb = b.read(Offset(5), 1 << 20, end, true).expect("read");
    assert_eq!(ra.bytes, rb.bytes);
    assert_eq!(ra.first_offset, Some(Offset(4)));
}

#[test]
fn large_reads_return_the_stored_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    let mut stored = Vec::new();
    for i in 0..200 {
        let mut b = batch(50, 1000 + i, "large-read-value-padding-padding-padding");
        log.append(&mut b, LeaderEpoch(1), TimestampMs(5))
            .expect("append");
        stored.extend_from_slice(&b);
    }
    assert!(stored.len() >= 256 * 1024, "{} bytes", stored.len());
    let end = log.log_end_offset();
    let r = log.read(Offset(0), 64 << 20, end, false).expect("read");
    assert_eq!(&r.bytes[..], &stored[..]);
    // A budget that ends inside a batch keeps whole batches only.
    let r = log.read(Offset(0), 300_000, end, false).expect("read");
    assert!(r.bytes.len() <= 300_000 && !r.bytes.is_empty());
    assert_eq!(&r.bytes[..], &stored[..r.bytes.len()]);
    let r = log.read(Offset(75), 64 << 20, end, true).expect("read");
    assert_eq!(r.first_offset, Some(Offset(50)));
    assert_eq!(&r.bytes[..], &stored[stored.len() - r.bytes.len()..]);
}

/// Names in `dir` ending in `.deleted`, after waiting up to 10 s for the
/// background deleter to remove them.
fn deleted_leftovers(dir: &std::path::Path) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".deleted"))
            .collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn deleted_segments_leave_the_log_at_once_and_the_disk_soon_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("open");
    for i in 0..40 {
        append(&log, batch(2, 1000 + i, "t"), 0);
    }
    // A reader holding the oldest segment keeps reading it after deletion.
    let held = log
        .read_slices(Offset(0), 1 << 20, log.log_end_offset(), true)
        .expect("slices");
    let files_before = log_files(dir.path()).len();
    log.delete_oldest_segment()
        .expect("retention")
        .expect("deleted");
    log.delete_records_before(Offset(30))
        .expect("delete records");
    let kept = log.segments_info();
    assert_eq!(log_files(dir.path()).len(), kept.len());
    assert!(kept.len() < files_before);
    assert!(
        deleted_leftovers(dir.path()).is_empty(),
        "deleted segment files are removed in the background"
    );
    let slice = held.slices.first().expect("a slice");
    let mut buf = vec![0u8; slice.len()];
    use std::os::unix::fs::FileExt;
    slice
        .file()
        .read_exact_at(&mut buf, slice.position())
        .expect("still readable");
    assert!(!batches(&buf).is_empty());
    drop(log);

    // A crash before the background removal leaves `.deleted` files: the
    // next open removes them and the log is unaffected.
    std::fs::write(dir.path().join("00000000000000000000.log.deleted"), b"x").expect("leftover");
    std::fs::write(dir.path().join("00000000000000000000.index.deleted"), b"").expect("leftover");
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    assert_eq!(log.log_start_offset(), Offset(30));
    assert!(deleted_leftovers(dir.path()).is_empty());
    assert_eq!(all_records(&log).first().map(|r| r.0), Some(Offset(30)));
}
