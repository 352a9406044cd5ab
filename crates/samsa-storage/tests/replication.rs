//! Replication support: the leader epoch cache (appends, truncation,
//! retention, reopen, crashes, rebuilds), follower appends of leader batches
//! (`append_replicated`) and the high watermark checkpoint.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::batch::{BatchError, BatchHeader};
use samsa_model::{LeaderEpoch, Offset, TimestampMs};
use samsa_storage::{LogConfig, PartitionLog, StorageError};

const EPOCH_FILE: &str = "leader-epoch-checkpoint";
const HW_FILE: &str = "high-watermark";

fn epochs(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.epoch_entries()
        .iter()
        .map(|(e, o)| (e.get(), o.get()))
        .collect()
}

fn epoch_file(dir: &Path) -> String {
    fs::read_to_string(dir.join(EPOCH_FILE)).expect("epoch file")
}

fn end_for(log: &PartitionLog, epoch: i32) -> (i32, i64) {
    let (e, o) = log.end_offset_for_epoch(LeaderEpoch(epoch));
    (e.get(), o.get())
}

fn append_epoch(log: &PartitionLog, n: usize, epoch: i32) -> Offset {
    let mut b = batch(n, 1000, "e");
    log.append(&mut b, LeaderEpoch(epoch), TimestampMs(0))
        .expect("append")
        .base_offset
}

/// A log holding five 3-record batches of epochs 0, 0, 2, 2, 5: entries
/// (0, 0), (2, 6), (5, 12), log end 15.
fn five_batches(dir: &Path, config: LogConfig) -> PartitionLog {
    let log = PartitionLog::open(dir, config).expect("open");
    for epoch in [0, 0, 2, 2, 5] {
        append_epoch(&log, 3, epoch);
    }
    assert_eq!(log.log_end_offset(), Offset(15));
    log
}

/// A batch as a leader would have stored it.
fn leader_batch(base: i64, n: usize, epoch: i32, tag: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new()
        .base_offset(Offset(base))
        .partition_leader_epoch(LeaderEpoch(epoch));
    for i in 0..n {
        b.push(NewRecord::new(
            TimestampMs(1000 + i as i64),
            Some(format!("k{i}").as_bytes()),
            Some(format!("{tag}:{i}").as_bytes()),
        ));
    }
    b.build().expect("build")
}

/// Everything from the log start, as stored.
fn all_bytes(log: &PartitionLog) -> Vec<u8> {
    let r = log
        .read(log.log_start_offset(), 1 << 30, Offset(i64::MAX), true)
        .expect("read");
    r.bytes.to_vec()
}

fn headers(bytes: &[u8]) -> Vec<(i64, i64, i32)> {
    batches(bytes)
        .iter()
        .map(|(h, _)| {
            (
                h.base_offset.get(),
                h.last_offset().get(),
                h.partition_leader_epoch.get(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Leader epoch cache

#[test]
fn epochs_recorded_by_appends_answer_end_offset_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(end_for(&log, 0), (-1, -1), "empty cache");
    assert_eq!(epoch_file(dir.path()), "0\n0\n", "written on open");
    for epoch in [0, 0, 2, 2, 5] {
        append_epoch(&log, 3, epoch);
    }
    assert_eq!(epochs(&log), [(0, 0), (2, 6), (5, 12)]);
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(5)));
    assert_eq!(epoch_file(dir.path()), "0\n3\n0 0\n2 6\n5 12\n");
    let table = [
        (-1, (-1, -1)),
        (0, (0, 6)),
        (1, (0, 6)),
        (2, (2, 12)),
        (3, (2, 12)),
        (4, (2, 12)),
        (5, (5, 15)),
        (6, (-1, -1)),
    ];
    for (requested, expected) in table {
        assert_eq!(end_for(&log, requested), expected, "epoch {requested}");
    }
    // A stale (lower) epoch is stored but not recorded.
    append_epoch(&log, 1, 3);
    assert_eq!(epochs(&log), [(0, 0), (2, 6), (5, 12)]);
    assert_eq!(
        end_for(&log, 5),
        (5, 16),
        "latest epoch ends at the log end"
    );
}

#[test]
fn assign_epoch_records_the_log_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = five_batches(dir.path(), LogConfig::default());
    log.assign_epoch(LeaderEpoch(7)).expect("assign");
    assert_eq!(epochs(&log), [(0, 0), (2, 6), (5, 12), (7, 15)]);
    assert_eq!(end_for(&log, 5), (5, 15));
    assert_eq!(end_for(&log, 7), (7, 15));
    // Not greater than the latest: nothing.
    log.assign_epoch(LeaderEpoch(7)).expect("same");
    log.assign_epoch(LeaderEpoch(6)).expect("lower");
    log.assign_epoch(LeaderEpoch::NONE).expect("none");
    assert_eq!(epochs(&log), [(0, 0), (2, 6), (5, 12), (7, 15)]);
    // Epoch 7 got no batch: epoch 8 at the same offset replaces it.
    log.assign_epoch(LeaderEpoch(8)).expect("assign");
    assert_eq!(epochs(&log), [(0, 0), (2, 6), (5, 12), (8, 15)]);
    assert_eq!(end_for(&log, 7), (5, 15));
    assert_eq!(epoch_file(dir.path()), "0\n4\n0 0\n2 6\n5 12\n8 15\n");
    // Appending in the assigned epoch adds nothing.
    append_epoch(&log, 2, 8);
    assert_eq!(epochs(&log), [(0, 0), (2, 6), (5, 12), (8, 15)]);
    assert_eq!(end_for(&log, 8), (8, 17));
    log.close().expect("close");
    assert!(matches!(
        log.assign_epoch(LeaderEpoch(9)),
        Err(StorageError::Closed { .. })
    ));
}

#[test]
fn truncation_trims_the_epoch_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = five_batches(dir.path(), LogConfig::default());
    log.truncate_to(Offset(12)).expect("truncate");
    assert_eq!(epochs(&log), [(0, 0), (2, 6)]);
    assert_eq!(end_for(&log, 5), (-1, -1));
    assert_eq!(end_for(&log, 2), (2, 12));
    // Mid-batch: the batch 6..=8 goes, and with it epoch 2.
    log.truncate_to(Offset(7)).expect("truncate");
    assert_eq!(log.log_end_offset(), Offset(6));
    assert_eq!(epochs(&log), [(0, 0)]);
    assert_eq!(epoch_file(dir.path()), "0\n1\n0 0\n");
    // A new epoch after the truncation.
    append_epoch(&log, 3, 9);
    assert_eq!(epochs(&log), [(0, 0), (9, 6)]);
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(epochs(&log), [(0, 0), (9, 6)]);
    // Below the log start: the log restarts and the cache is emptied.
    log.delete_records_before(Offset(4)).expect("start");
    log.truncate_to(Offset(2)).expect("restart");
    assert_eq!(log.log_end_offset(), Offset(2));
    assert_eq!(epochs(&log), []);
    assert_eq!(epoch_file(dir.path()), "0\n0\n");
    append_epoch(&log, 1, 10);
    assert_eq!(epochs(&log), [(10, 2)]);
}

#[test]
fn log_start_moves_trim_the_epoch_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 1,
        ..LogConfig::default()
    };
    // One batch per segment.
    let log = five_batches(dir.path(), config);
    assert_eq!(log.segments_info().len(), 5);
    log.delete_records_before(Offset(4)).expect("start");
    assert_eq!(epochs(&log), [(0, 4), (2, 6), (5, 12)]);
    log.delete_records_before(Offset(7)).expect("start");
    assert_eq!(epochs(&log), [(2, 7), (5, 12)]);
    // An epoch older than every cached one (its batches are gone below the
    // log start): Kafka answers that epoch ending where the first cached
    // epoch starts, so a follower truncates to it and fetches from there.
    assert_eq!(end_for(&log, 0), (0, 7), "below the first epoch");
    assert_eq!(end_for(&log, 1), (1, 7), "below the first epoch");
    assert_eq!(end_for(&log, -1), (-1, -1), "undefined epoch");
    assert_eq!(end_for(&log, 2), (2, 12));
    // Retention: the segment of 6..=8 goes, the log start becomes 9.
    log.delete_oldest_segment()
        .expect("retention")
        .expect("deleted");
    assert_eq!(log.log_start_offset(), Offset(9));
    assert_eq!(epochs(&log), [(2, 9), (5, 12)]);
    log.delete_oldest_segment()
        .expect("retention")
        .expect("deleted");
    assert_eq!(epochs(&log), [(5, 12)]);
    assert_eq!(epoch_file(dir.path()), "0\n1\n5 12\n");
    // Everything deleted: the latest epoch stays, starting at the log end.
    log.delete_records_before(Offset(15)).expect("start");
    assert_eq!(epochs(&log), [(5, 15)]);
    assert_eq!(end_for(&log, 5), (5, 15));
}

#[test]
fn reopen_keeps_the_epoch_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = five_batches(dir.path(), tiny_config());
    log.close().expect("close");
    drop(log);
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("clean reopen");
    assert_eq!(epochs(&log), [(0, 0), (2, 6), (5, 12)]);
    append_epoch(&log, 1, 6);
    drop(log); // no clean-shutdown marker: full recovery of the active segment
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("unclean reopen");
    assert_eq!(epochs(&log), [(0, 0), (2, 6), (5, 12), (6, 15)]);
    assert_eq!(end_for(&log, 6), (6, 16));
    assert_eq!(end_for(&log, 5), (5, 15));
}

#[test]
fn crash_after_recording_an_epoch_before_its_batch_trims_it_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    append_epoch(&log, 3, 0);
    append_epoch(&log, 3, 0);
    let size_before = log.size_bytes();
    append_epoch(&log, 3, 4);
    append_epoch(&log, 3, 7);
    assert_eq!(epochs(&log), [(0, 0), (4, 6), (7, 9)]);
    drop(log);
    // The process died with the epoch entries durable but the batches of
    // epochs 4 and 7 not: the first torn halfway, the second lost.
    let files = log_files(dir.path());
    let [file] = files.as_slice() else {
        panic!("one segment expected: {files:?}")
    };
    let f = fs::OpenOptions::new()
        .write(true)
        .open(file)
        .expect("open segment");
    f.set_len(size_before + 30).expect("tear");
    drop(f);
    assert_eq!(epoch_file(dir.path()), "0\n3\n0 0\n4 6\n7 9\n");

    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(log.log_end_offset(), Offset(6));
    assert_eq!(epochs(&log), [(0, 0)], "entries at or after the log end");
    assert_eq!(epoch_file(dir.path()), "0\n1\n0 0\n", "written back");
    assert_eq!(end_for(&log, 4), (-1, -1));
    // A lower epoch than the lost ones is recorded again.
    append_epoch(&log, 3, 2);
    assert_eq!(epochs(&log), [(0, 0), (2, 6)]);
}

#[test]
fn stale_entries_after_a_crash_during_truncation_or_retention_are_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 1,
        ..LogConfig::default()
    };
    let log = five_batches(dir.path(), config);
    let saved = epoch_file(dir.path());
    // Truncate to 12 and move the log start to 7, then put the old file back,
    // as if both crashed before the cache was rewritten.
    log.truncate_to(Offset(12)).expect("truncate");
    log.delete_records_before(Offset(7)).expect("start");
    drop(log);
    fs::write(dir.path().join(EPOCH_FILE), &saved).expect("stale file");
    let log = PartitionLog::open(dir.path(), config).expect("reopen");
    assert_eq!(epochs(&log), [(2, 7)]);
    assert_eq!(epoch_file(dir.path()), "0\n1\n2 7\n");
}

#[test]
fn missing_or_damaged_epoch_file_is_rebuilt_from_batch_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("open");
    let mut expected = Vec::new();
    for i in 0..40i64 {
        let epoch = (i / 7) as i32 * 2;
        let base = append_epoch(&log, 2, epoch);
        if expected.last().is_none_or(|&(e, _)| e != epoch) {
            expected.push((epoch, base.get()));
        }
    }
    assert!(log.segments_info().len() > 2, "spans segments");
    assert_eq!(epochs(&log), expected);
    log.close().expect("close");
    drop(log);

    fs::remove_file(dir.path().join(EPOCH_FILE)).expect("remove");
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    assert_eq!(epochs(&log), expected, "rebuilt");
    assert_eq!(
        epoch_file(dir.path()).lines().nth(1),
        Some(expected.len().to_string().as_str()),
        "rebuilt file written"
    );
    drop(log);

    for garbage in ["", "0\n2\n0 0\n", "0\n2\n0 0\n0 4\n", "nonsense"] {
        fs::write(dir.path().join(EPOCH_FILE), garbage).expect("damage");
        let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
        assert_eq!(epochs(&log), expected, "{garbage:?}");
    }

    // Rebuilt with the log start inside the log: trimmed to it.
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    log.delete_records_before(Offset(30)).expect("start");
    drop(log);
    fs::remove_file(dir.path().join(EPOCH_FILE)).expect("remove");
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    let mut trimmed: Vec<(i32, i64)> = expected.iter().copied().filter(|&(_, s)| s > 30).collect();
    let floor = expected
        .iter()
        .rev()
        .find(|&&(_, s)| s <= 30)
        .expect("an epoch at or below 30");
    trimmed.insert(0, (floor.0, 30));
    assert_eq!(epochs(&log), trimmed);
}

#[test]
fn interrupted_checkpoint_writes_are_cleaned_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = five_batches(dir.path(), LogConfig::default());
    drop(log);
    for tmp in ["leader-epoch-checkpoint.tmp", "high-watermark.tmp"] {
        fs::write(dir.path().join(tmp), b"0\n1\n99 0\n").expect("leftover");
    }
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
    assert!(!dir.path().join("leader-epoch-checkpoint.tmp").exists());
    assert!(!dir.path().join("high-watermark.tmp").exists());
    assert_eq!(epochs(&log), [(0, 0), (2, 6), (5, 12)]);
    assert_eq!(log.read_high_watermark(), None);
}

// ---------------------------------------------------------------------------
// Follower appends

/// A leader log of 40 batches over several epochs, spanning segments.
fn leader_log(dir: &Path) -> PartitionLog {
    let log = PartitionLog::open(dir, tiny_config()).expect("open leader");
    for i in 0..40 {
        let epoch = [0, 0, 1, 3, 3, 3, 4][i % 7] + 5 * (i / 7) as i32;
        let mut b = batch_with(
            1 + i % 4,
            2000 + i as i64,
            &format!("b{i}"),
            samsa_model::compression::Compression::None,
            i * 3,
        );
        log.append(&mut b, LeaderEpoch(epoch), TimestampMs(0))
            .expect("append");
    }
    log
}

#[test]
fn replicated_batches_are_stored_byte_for_byte_across_segments() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let leader = leader_log(leader_dir.path());
    let leader_bytes = all_bytes(&leader);
    let leader_end = leader.log_end_offset();

    let dir = tempfile::tempdir().expect("tempdir");
    let follower = PartitionLog::open(dir.path(), tiny_config()).expect("open follower");
    // Fetch like a follower: chunks of at most 700 bytes, cut mid-batch.
    let mut next = Offset(0);
    let mut calls = 0;
    while next < leader_end {
        let r = leader
            .read(next, 700, leader_end, true)
            .expect("leader read");
        let mut chunk = r.bytes.to_vec();
        // Add a partial copy of the following batch, as Fetch may.
        let more = leader
            .read(r.next_offset, 1 << 20, leader_end, true)
            .expect("more");
        chunk.extend_from_slice(&more.bytes[..more.bytes.len().min(40)]);
        let info = follower
            .append_replicated(&chunk, TimestampMs(0))
            .expect("replicate")
            .expect("something new");
        assert_eq!(info.base_offset, next);
        assert_eq!(info.last_offset.plus(1), r.next_offset);
        assert_eq!(follower.log_end_offset(), r.next_offset);
        next = r.next_offset;
        calls += 1;
    }
    assert!(calls > 3);
    assert!(follower.segments_info().len() > 3, "rolled");
    assert!(follower
        .segments_info()
        .iter()
        .all(|s| s.size_bytes <= 1024));
    assert_eq!(all_bytes(&follower), leader_bytes, "identical bytes");
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(all_records(&follower), all_records(&leader));

    // Unclean reopen: recovery, indexes and the epoch cache agree.
    drop(follower);
    let follower = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    assert_eq!(follower.log_end_offset(), leader_end);
    assert_eq!(all_bytes(&follower), leader_bytes);
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    for ts in [2000, 2013, 2039] {
        assert_eq!(
            follower
                .offset_for_timestamp(TimestampMs(ts))
                .expect("lookup"),
            leader
                .offset_for_timestamp(TimestampMs(ts))
                .expect("lookup"),
        );
    }
    // Reads starting at every offset find the same batch on both.
    for o in 0..leader_end.get() {
        let a = leader.read(Offset(o), 1, leader_end, true).expect("read");
        let b = follower.read(Offset(o), 1, leader_end, true).expect("read");
        assert_eq!(
            (a.first_offset, a.bytes),
            (b.first_offset, b.bytes),
            "at {o}"
        );
    }
    // The whole log again in one call: nothing new.
    assert_eq!(
        follower
            .append_replicated(&leader_bytes, TimestampMs(0))
            .expect("again"),
        None
    );
    assert_eq!(follower.log_end_offset(), leader_end);

    // The index entries written while replicating are the ones recovery
    // rebuilds from the log.
    follower.close().expect("close");
    drop(follower);
    assert_indexes_rebuild_identically(dir.path(), tiny_config());
}

/// Index files of a closed log, sorted by name.
fn index_files(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry"))
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.ends_with(".index") || n.ends_with(".timeindex")
        })
        .map(|e| (e.file_name(), fs::read(e.path()).expect("read")))
        .collect();
    v.sort();
    v
}

/// The index files of the closed log in `dir` are exactly what recovery
/// rebuilds from its `.log` files.
fn assert_indexes_rebuild_identically(dir: &Path, config: LogConfig) {
    let live = index_files(dir);
    assert!(live.iter().filter(|(_, b)| !b.is_empty()).count() > 2);
    for (name, _) in &live {
        fs::remove_file(dir.join(name)).expect("remove index");
    }
    let log = PartitionLog::open(dir, config).expect("rebuild");
    log.close().expect("close");
    assert_eq!(index_files(dir), live);
}

#[test]
fn index_entries_of_multi_batch_writes_match_a_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    let mut next = 0i64;
    for call in 0..8 {
        let fetched: Vec<u8> = (0..5)
            .flat_map(|i| {
                let n = 1 + (call + i) % 3;
                let mut b = BatchBuilder::new()
                    .base_offset(Offset(next))
                    .partition_leader_epoch(LeaderEpoch(call));
                for r in 0..n {
                    b.push(NewRecord::new(
                        TimestampMs(5000 + next + r as i64),
                        Some(b"k"),
                        Some(format!("{call}/{i}/{r}").as_bytes()),
                    ));
                }
                next += n as i64;
                b.build().expect("build")
            })
            .collect();
        log.append_replicated(&fetched, TimestampMs(0))
            .expect("replicate")
            .expect("new");
        if call % 3 == 2 {
            append_epoch(&log, 2, 100 + call);
            next += 2;
        }
    }
    assert_eq!(log.log_end_offset(), Offset(next));
    assert!(log.segments_info().len() > 2);
    log.close().expect("close");
    drop(log);
    assert_indexes_rebuild_identically(dir.path(), config);
}

#[test]
fn already_present_batches_are_skipped_and_new_ones_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    let b1 = leader_batch(0, 3, 1, "a");
    let b2 = leader_batch(3, 2, 1, "b");
    let b3 = leader_batch(5, 4, 2, "c");
    let info = log
        .append_replicated(&b1, TimestampMs(0))
        .expect("first")
        .expect("new");
    assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(2)));
    let all = [b1.clone(), b2.clone(), b3.clone()].concat();
    let info = log
        .append_replicated(&all, TimestampMs(0))
        .expect("overlapping fetch")
        .expect("new");
    assert_eq!((info.base_offset, info.last_offset), (Offset(3), Offset(8)));
    assert_eq!(info.log_start_offset, Offset(0));
    assert_eq!(all_bytes(&log), all);
    assert_eq!(epochs(&log), [(1, 0), (2, 5)]);
    assert_eq!(
        log.append_replicated(&all, TimestampMs(0)).expect("dup"),
        None
    );
    assert_eq!(
        log.append_replicated(&[], TimestampMs(0)).expect("empty"),
        None
    );
    assert_eq!(all_bytes(&log), all);
}

#[test]
fn invalid_input_is_rejected_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    let b1 = leader_batch(0, 3, 1, "a");
    log.append_replicated(&b1, TimestampMs(0))
        .expect("first")
        .expect("new");
    let state = |log: &PartitionLog| (log.log_end_offset(), log.size_bytes(), epochs(log));
    let before = state(&log);
    let epoch_file_before = epoch_file(dir.path());

    // Overlap: starts below the log end (3), ends after it.
    let overlap = [leader_batch(2, 3, 4, "x")].concat();
    match log.append_replicated(&overlap, TimestampMs(0)) {
        Err(StorageError::OverlappingBatch {
            base_offset,
            last_offset,
            log_end,
        }) => assert_eq!(
            (base_offset, last_offset, log_end),
            (Offset(2), Offset(4), Offset(3))
        ),
        other => panic!("expected an overlap error, got {other:?}"),
    }
    // A good batch of a new epoch, then one with a flipped bit.
    let good = leader_batch(3, 2, 5, "good");
    let mut bad = leader_batch(5, 2, 6, "bad");
    let at = bad.len() - 3;
    bad[at] ^= 0x10;
    let input = [good.clone(), bad].concat();
    match log.append_replicated(&input, TimestampMs(0)) {
        Err(StorageError::InvalidBatch(BatchError::CrcMismatch { .. })) => {}
        other => panic!("expected a CRC error, got {other:?}"),
    }
    // Offsets going backwards inside one fetch.
    let backwards = [good.clone(), leader_batch(4, 1, 5, "back")].concat();
    assert!(matches!(
        log.append_replicated(&backwards, TimestampMs(0)),
        Err(StorageError::BatchesOutOfOrder { .. })
    ));
    // A malformed header (batchLength too small) in a complete batch.
    let mut short = good.clone();
    short[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert!(matches!(
        log.append_replicated(&short, TimestampMs(0)),
        Err(StorageError::InvalidBatch(
            BatchError::BatchLengthTooSmall { .. }
        ))
    ));
    assert_eq!(state(&log), before, "nothing written");
    assert_eq!(
        epoch_file(dir.path()),
        epoch_file_before,
        "no epoch recorded"
    );

    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(state(&log), before);
    assert_eq!(all_bytes(&log), b1);
    // The good batch alone still goes in.
    log.append_replicated(&good, TimestampMs(0))
        .expect("good")
        .expect("new");
    assert_eq!(epochs(&log), [(1, 0), (5, 3)]);
}

#[test]
fn an_incomplete_trailing_batch_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    let b1 = leader_batch(0, 2, 0, "a");
    let b2 = leader_batch(2, 3, 1, "b");
    for cut in [1, 11, 12, 60, 61, b2.len() - 1] {
        let input = [b1.as_slice(), &b2[..cut]].concat();
        let got = log
            .append_replicated(&input, TimestampMs(0))
            .expect("append");
        if cut == 1 {
            let info = got.expect("b1 appended");
            assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(1)));
        } else {
            assert_eq!(got, None, "cut at {cut}");
        }
        assert_eq!(log.log_end_offset(), Offset(2));
        assert_eq!(epochs(&log), [(0, 0)], "the tail's epoch is not recorded");
    }
    // Only a partial batch.
    assert_eq!(
        log.append_replicated(&b2[..30], TimestampMs(0))
            .expect("partial"),
        None
    );
    let info = log
        .append_replicated(&b2, TimestampMs(0))
        .expect("rest")
        .expect("new");
    assert_eq!((info.base_offset, info.last_offset), (Offset(2), Offset(4)));
    assert_eq!(all_bytes(&log), [b1, b2].concat());
}

#[test]
fn offset_gaps_are_kept_and_survive_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    // Compacted leader data: the follower starts at 0, the first batch at 5.
    let input = [
        leader_batch(5, 3, 1, "a"),
        leader_batch(10, 2, 1, "b"),
        leader_batch(20, 1, 2, "c"),
        leader_batch(21, 2, 2, "d"),
        leader_batch(40, 2, 3, "e"),
        leader_batch(100, 1, 3, "f"),
    ]
    .concat();
    let info = log
        .append_replicated(&input, TimestampMs(0))
        .expect("gaps")
        .expect("new");
    assert_eq!(
        (info.base_offset, info.last_offset),
        (Offset(5), Offset(100))
    );
    assert_eq!(log.log_end_offset(), Offset(101));
    assert!(log.segments_info().len() > 1, "rolled");
    let expected = vec![
        (5, 7, 1),
        (10, 11, 1),
        (20, 20, 2),
        (21, 22, 2),
        (40, 41, 3),
        (100, 100, 3),
    ];
    assert_eq!(headers(&all_bytes(&log)), expected);
    assert_eq!(all_bytes(&log), input);
    assert_eq!(epochs(&log), [(1, 5), (2, 20), (3, 40)]);
    assert_eq!(end_for(&log, 1), (1, 20));
    // Reads inside a gap start at the next batch.
    let r = log
        .read(Offset(12), 1 << 20, Offset(101), true)
        .expect("read");
    assert_eq!(r.first_offset, Some(Offset(20)));
    // Another gap into the active segment, then an unclean reopen: recovery
    // of the active segment keeps the gapped batches.
    let more = [leader_batch(150, 2, 3, "g"), leader_batch(170, 1, 4, "h")].concat();
    log.append_replicated(&more, TimestampMs(0))
        .expect("more")
        .expect("new");
    let all = [input.clone(), more].concat();
    drop(log);
    let log = PartitionLog::open(dir.path(), config).expect("unclean reopen");
    assert_eq!(log.log_end_offset(), Offset(171));
    assert_eq!(all_bytes(&log), all);
    assert_eq!(epochs(&log), [(1, 5), (2, 20), (3, 40), (4, 170)]);
    log.close().expect("close");
    drop(log);
    let log = PartitionLog::open(dir.path(), config).expect("clean reopen");
    assert_eq!(all_bytes(&log), all);
    // Leader appends continue contiguously after the last replicated batch.
    assert_eq!(append_epoch(&log, 1, 4), Offset(171));
}

#[test]
fn replicated_and_leader_appends_mix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("open");
    // Follower first, then this replica becomes leader in epoch 3.
    let fetched = [leader_batch(0, 2, 1, "a"), leader_batch(2, 2, 2, "b")].concat();
    log.append_replicated(&fetched, TimestampMs(0))
        .expect("replicate")
        .expect("new");
    log.assign_epoch(LeaderEpoch(3)).expect("lead");
    assert_eq!(append_epoch(&log, 2, 3), Offset(4));
    assert_eq!(epochs(&log), [(1, 0), (2, 2), (3, 4)]);
    // Back to follower: divergent tail truncated, new leader's data fetched.
    let (epoch, end) = (LeaderEpoch(2), Offset(4));
    assert_eq!(log.end_offset_for_epoch(epoch), (epoch, end));
    log.truncate_to(Offset(4)).expect("truncate");
    assert_eq!(epochs(&log), [(1, 0), (2, 2)]);
    let next = leader_batch(4, 3, 4, "c");
    log.append_replicated(&next, TimestampMs(0))
        .expect("replicate")
        .expect("new");
    assert_eq!(epochs(&log), [(1, 0), (2, 2), (4, 4)]);
    let stored = headers(&all_bytes(&log));
    assert_eq!(stored, [(0, 1, 1), (2, 3, 2), (4, 6, 4)]);
    log.close().expect("close");
    assert!(matches!(
        log.append_replicated(&next, TimestampMs(0)),
        Err(StorageError::Closed { .. })
    ));
}

// ---------------------------------------------------------------------------
// High watermark

#[test]
fn high_watermark_round_trip_clamp_and_skip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = five_batches(dir.path(), LogConfig::default());
    assert_eq!(log.read_high_watermark(), None);
    log.write_high_watermark(Offset(9)).expect("write");
    assert_eq!(
        fs::read_to_string(dir.path().join(HW_FILE)).expect("file"),
        "9\n"
    );
    assert_eq!(log.read_high_watermark(), Some(Offset(9)));
    // Unchanged: not written again (a removed file stays removed).
    fs::remove_file(dir.path().join(HW_FILE)).expect("remove");
    log.write_high_watermark(Offset(9)).expect("skip");
    assert_eq!(log.read_high_watermark(), None);
    log.write_high_watermark(Offset(12)).expect("write");
    assert_eq!(log.read_high_watermark(), Some(Offset(12)));
    // Clamped to the log end and the log start.
    log.write_high_watermark(Offset(1000)).expect("write");
    assert_eq!(log.read_high_watermark(), Some(Offset(15)));
    log.truncate_to(Offset(6)).expect("truncate");
    assert_eq!(log.read_high_watermark(), Some(Offset(6)));
    log.write_high_watermark(Offset(2)).expect("write");
    log.delete_records_before(Offset(4)).expect("start");
    assert_eq!(log.read_high_watermark(), Some(Offset(4)));
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(log.read_high_watermark(), Some(Offset(4)));
    // A new instance writes even an equal value (it has not written yet).
    fs::remove_file(dir.path().join(HW_FILE)).expect("remove");
    log.write_high_watermark(Offset(2)).expect("write");
    assert_eq!(log.read_high_watermark(), Some(Offset(4)));
    for garbage in ["", "x\n", "12 13\n"] {
        fs::write(dir.path().join(HW_FILE), garbage).expect("damage");
        assert_eq!(log.read_high_watermark(), None, "{garbage:?}");
    }
}

#[test]
fn header_of_a_leader_batch_is_what_append_replicated_reports() {
    // Sanity check of the test helper against the model's header parser.
    let b = leader_batch(41, 5, 9, "z");
    let h = BatchHeader::parse(&b).expect("header");
    assert_eq!(
        (h.base_offset, h.last_offset(), h.partition_leader_epoch),
        (Offset(41), Offset(45), LeaderEpoch(9))
    );
}

#[test]
fn reset_to_restarts_the_log_empty_at_any_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = five_batches(dir.path(), tiny_config());
    log.write_high_watermark(Offset(12)).expect("hw");
    // Forward, past the log end (behind the leader's log start).
    log.reset_to(Offset(100)).expect("reset");
    assert_eq!(log.log_start_offset(), Offset(100));
    assert_eq!(log.log_end_offset(), Offset(100));
    assert_eq!(epochs(&log), []);
    assert_eq!(epoch_file(dir.path()), "0\n0\n");
    assert_eq!(log_files(dir.path()).len(), 1);
    assert_eq!(log.read_high_watermark(), Some(Offset(100)));
    assert!(all_bytes(&log).is_empty());
    let next = leader_batch(100, 2, 7, "n");
    log.append_replicated(&next, TimestampMs(0))
        .expect("replicate")
        .expect("new");
    assert_eq!(epochs(&log), [(7, 100)]);
    drop(log);
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    assert_eq!(log.log_start_offset(), Offset(100));
    assert_eq!(all_bytes(&log), next);
    assert_eq!(epochs(&log), [(7, 100)]);
    // Backward, below the log start.
    log.reset_to(Offset(3)).expect("reset");
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(3), Offset(3))
    );
    assert_eq!(append_epoch(&log, 1, 8), Offset(3));
    assert!(matches!(
        log.reset_to(Offset(-1)),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    drop(log);
    let log = PartitionLog::open(dir.path(), tiny_config()).expect("reopen");
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(3), Offset(4))
    );
    assert_eq!(epochs(&log), [(8, 3)]);
}
