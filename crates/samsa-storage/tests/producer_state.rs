//! Idempotent producers' state is owned by the log: checked by the leader's
//! append, recorded by the follower's, kept across segment rolls, crashes,
//! restarts and truncations through `.snapshot` files.

mod common;

use std::path::Path;

use common::batch;
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::compression::Compression;
use samsa_model::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, TimestampMs};
use samsa_storage::producer_snapshot::{SNAPSHOT_FILES_MAX, SNAPSHOT_SUFFIX};
use samsa_storage::{AppendInfo, LogConfig, PartitionLog, StorageError};

const NOW: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        boot_id: Some(7),
        ..LogConfig::default()
    }
}

/// A batch of producer `pid` (epoch `epoch`) with `n` records from sequence `seq`.
fn idem(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new().producer(ProducerId(pid), ProducerEpoch(epoch), seq);
    for i in 0..n {
        b.push(NewRecord::new(
            TimestampMs(NOW),
            None,
            Some(format!("p{pid}:{}", seq as usize + i).as_bytes()),
        ));
    }
    b.build().unwrap()
}

fn send(log: &PartitionLog, mut bytes: Vec<u8>) -> Result<AppendInfo, StorageError> {
    log.append(&mut bytes, LeaderEpoch(1), TimestampMs(NOW))
}

/// Non-idempotent records: `batches` batches of 100 KiB.
fn fill(log: &PartitionLog, batches: usize) {
    for _ in 0..batches {
        let mut b = common::batch_with(100, NOW, "fill", Compression::None, 1000);
        log.append(&mut b, LeaderEpoch(1), TimestampMs(NOW))
            .unwrap();
    }
}

fn snapshot_files(dir: &Path) -> Vec<Offset> {
    let mut out: Vec<Offset> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
            Some(Offset(stem.parse().unwrap()))
        })
        .collect();
    out.sort();
    out
}

fn assert_duplicate(info: Result<AppendInfo, StorageError>, base: i64, last: i64) {
    let info = info.unwrap();
    assert!(info.duplicate, "{info:?} should be a duplicate");
    assert_eq!(
        (info.base_offset, info.last_offset),
        (Offset(base), Offset(last))
    );
}

/// The reproduction at the storage level: the original sits in a
/// segment that is no longer active; after a crash (no close) and a reopen
/// the retry is still a duplicate. With and without the background pass
/// having written the roll snapshots before the crash.
#[test]
fn a_retry_of_a_batch_in_an_older_segment_is_a_duplicate_after_a_crash() {
    for background_ran in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = PartitionLog::open(dir.path(), config()).unwrap();
            assert!(!send(&log, idem(9, 0, 0, 3)).unwrap().duplicate);
            fill(&log, 30);
            assert!(log.segments_info().len() >= 3);
            if background_ran {
                log.sync_rolled().unwrap();
                assert!(!snapshot_files(dir.path()).is_empty());
            }
        }
        let log = PartitionLog::open(dir.path(), config()).unwrap();
        let end = log.log_end_offset();
        assert_duplicate(send(&log, idem(9, 0, 0, 3)), 0, 2);
        assert_eq!(log.log_end_offset(), end, "nothing stored twice");
        assert!(matches!(
            send(&log, idem(9, 0, 4, 1)),
            Err(StorageError::OutOfOrderSequence { expected: 3, .. })
        ));
        assert_eq!(send(&log, idem(9, 0, 3, 1)).unwrap().base_offset, end);
    }
}

#[test]
fn sequence_rules_at_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    send(&log, idem(1, 2, 0, 2)).unwrap();
    assert!(matches!(
        send(&log, idem(1, 1, 2, 1)),
        Err(StorageError::InvalidProducerEpoch { .. })
    ));
    assert!(matches!(
        send(&log, idem(1, 3, 5, 1)),
        Err(StorageError::OutOfOrderSequence { expected: 0, .. })
    ));
    assert_eq!(
        log.log_end_offset(),
        Offset(2),
        "refused batches are not stored"
    );
    assert_eq!(send(&log, idem(1, 3, 0, 1)).unwrap().base_offset, Offset(2));
    // A retry passed to `append` leaves the caller's bytes alone.
    let mut retry = idem(1, 3, 0, 1);
    let before = retry.clone();
    let info = log
        .append(&mut retry, LeaderEpoch(1), TimestampMs(NOW))
        .unwrap();
    assert!(info.duplicate);
    assert_eq!(retry, before);
}

/// A follower records what it replicates, so once promoted it recognises a
/// retry of a batch the old leader stored (no rebuild on promotion).
#[test]
fn a_follower_recognises_retries_of_the_batches_it_replicated() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = PartitionLog::open(leader_dir.path(), config()).unwrap();
    let follower = PartitionLog::open(follower_dir.path(), config()).unwrap();
    send(&leader, idem(4, 0, 0, 2)).unwrap();
    fill(&leader, 15);
    send(&leader, idem(4, 0, 2, 2)).unwrap();
    let mut next = Offset(0);
    while next < leader.log_end_offset() {
        let r = leader
            .read(next, 1 << 20, leader.log_end_offset(), true)
            .unwrap();
        follower
            .append_replicated(&r.bytes, TimestampMs(NOW))
            .unwrap();
        next = r.next_offset;
    }
    let end = follower.log_end_offset();
    assert_eq!(end, leader.log_end_offset());
    assert_duplicate(
        send(&follower, idem(4, 0, 2, 2)),
        end.get() - 2,
        end.get() - 1,
    );
    assert_duplicate(send(&follower, idem(4, 0, 0, 2)), 0, 1);
    assert!(matches!(
        send(&follower, idem(4, 0, 7, 1)),
        Err(StorageError::OutOfOrderSequence { expected: 4, .. })
    ));
}

/// Truncation takes the producer state back with the log: a batch cut away
/// is no longer a duplicate, and the sequence continues after what is kept.
#[test]
fn truncation_takes_the_producer_state_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    send(&log, idem(3, 0, 0, 1)).unwrap();
    fill(&log, 12);
    log.sync_rolled().unwrap(); // a snapshot at the roll, below the cut
    let kept = send(&log, idem(3, 0, 1, 1)).unwrap().base_offset;
    fill(&log, 12);
    log.sync_rolled().unwrap(); // one between the two
    let cut = send(&log, idem(3, 0, 2, 1)).unwrap().base_offset;
    send(&log, idem(3, 0, 3, 1)).unwrap();
    fill(&log, 12);
    log.sync_rolled().unwrap(); // and one above the cut
    assert!(
        snapshot_files(dir.path()).iter().any(|o| *o > cut),
        "a snapshot above the cut"
    );
    assert!(
        snapshot_files(dir.path())
            .iter()
            .any(|o| *o > kept && *o < cut),
        "a snapshot between"
    );

    log.truncate_to(cut).unwrap();
    assert!(
        snapshot_files(dir.path()).iter().all(|o| *o <= cut),
        "snapshots above the new end are deleted"
    );
    assert!(matches!(
        send(&log, idem(3, 0, 3, 1)),
        Err(StorageError::OutOfOrderSequence { expected: 2, .. })
    ));
    assert_duplicate(send(&log, idem(3, 0, 1, 1)), kept.get(), kept.get());
    let again = send(&log, idem(3, 0, 2, 1)).unwrap();
    assert!(!again.duplicate, "the cut batch is stored again");
    assert_eq!(again.base_offset, cut);

    // Emptying the log forgets every producer and snapshot.
    log.reset_to(Offset(1000)).unwrap();
    assert!(snapshot_files(dir.path()).is_empty());
    assert_eq!(log.producer_count(), 0);
    assert!(!send(&log, idem(3, 0, 9, 1)).unwrap().duplicate);
}

/// A roll only encodes the snapshot; the background pass writes it. A clean
/// close writes one at the log end.
#[test]
fn snapshots_are_written_off_the_append_path_and_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    send(&log, idem(5, 0, 0, 1)).unwrap();
    fill(&log, 25);
    assert!(log.segments_info().len() >= 2);
    assert!(
        snapshot_files(dir.path()).is_empty(),
        "no snapshot file written by a roll"
    );
    assert!(log.needs_sync());
    log.sync_rolled().unwrap();
    let rolled: Vec<Offset> = log
        .segments_info()
        .iter()
        .skip(1)
        .map(|s| s.base_offset)
        .collect();
    assert_eq!(
        snapshot_files(dir.path()),
        rolled,
        "one per roll, at the new segment's base"
    );
    send(&log, idem(5, 0, 1, 1)).unwrap();
    let end = log.log_end_offset();
    log.close().unwrap();
    assert_eq!(snapshot_files(dir.path()).last(), Some(&end));
    drop(log);
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_duplicate(send(&log, idem(5, 0, 1, 1)), end.get() - 1, end.get() - 1);
}

/// A damaged newest snapshot is skipped (and deleted); an older one plus the
/// headers after it give the same state.
#[test]
fn a_damaged_snapshot_falls_back_to_an_older_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = PartitionLog::open(dir.path(), config()).unwrap();
        send(&log, idem(6, 0, 0, 1)).unwrap();
        fill(&log, 12);
        send(&log, idem(6, 0, 1, 1)).unwrap();
        fill(&log, 12);
        send(&log, idem(6, 0, 2, 1)).unwrap();
        log.sync_rolled().unwrap();
        log.close().unwrap();
    }
    let files = snapshot_files(dir.path());
    assert!(files.len() >= 2, "{files:?}");
    let newest = dir.path().join(format!(
        "{:020}{SNAPSHOT_SUFFIX}",
        files.last().unwrap().get()
    ));
    let mut bytes = std::fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert!(!newest.exists(), "the damaged snapshot is deleted");
    let end = log.log_end_offset().get();
    assert_duplicate(send(&log, idem(6, 0, 2, 1)), end - 1, end - 1);
    assert!(matches!(
        send(&log, idem(6, 0, 5, 1)),
        Err(StorageError::OutOfOrderSequence { expected: 3, .. })
    ));
}

/// Snapshots above the log end (a tail lost in a crash) are never used.
#[test]
fn a_snapshot_above_the_log_end_is_deleted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = PartitionLog::open(dir.path(), config()).unwrap();
        send(&log, idem(8, 0, 0, 1)).unwrap();
        log.close().unwrap();
    }
    // A stale snapshot claiming producer 8 reached sequence 5 at offset 50.
    let stale = {
        let dir2 = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir2.path(), config()).unwrap();
        for seq in 0..6 {
            send(&log, idem(8, 0, seq, 1)).unwrap();
        }
        fill(&log, 1);
        log.close().unwrap();
        let end = log.log_end_offset().get();
        std::fs::read(dir2.path().join(format!("{end:020}{SNAPSHOT_SUFFIX}"))).unwrap()
    };
    let stale_path = dir.path().join(format!("{:020}{SNAPSHOT_SUFFIX}", 106));
    std::fs::write(&stale_path, stale).unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert!(!stale_path.exists());
    assert_eq!(send(&log, idem(8, 0, 1, 1)).unwrap().base_offset, Offset(1));
}

/// Producer state outlives the segments holding its batches (retention,
/// DeleteRecords) until it expires, across a crash too.
#[test]
fn state_outlives_deleted_segments_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = PartitionLog::open(dir.path(), config()).unwrap();
        send(&log, idem(2, 0, 0, 1)).unwrap();
        fill(&log, 25);
        log.sync_rolled().unwrap();
        log.delete_records_before(log.log_end_offset()).unwrap();
        assert!(log.needs_sync(), "every snapshot is below the log start");
        log.sync_rolled().unwrap();
        let files = snapshot_files(dir.path());
        assert!(
            files.iter().all(|o| *o >= log.log_start_offset()),
            "older snapshots go once a newer one exists: {files:?}"
        );
    }
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert!(matches!(
        send(&log, idem(2, 0, 5, 1)),
        Err(StorageError::OutOfOrderSequence { expected: 1, .. })
    ));
    assert_eq!(log.expire_producers(TimestampMs(NOW + 999), 1000), 0);
    assert_eq!(log.expire_producers(TimestampMs(NOW + 1000), 1000), 1);
    assert!(log.producer_state(ProducerId(2)).is_none());
    assert!(!send(&log, idem(2, 0, 5, 1)).unwrap().duplicate);
}

#[test]
fn the_number_of_snapshot_files_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    for seq in 0..12 {
        send(&log, idem(1, 0, seq, 1)).unwrap();
        fill(&log, 12);
        log.sync_rolled().unwrap();
    }
    assert!(log.segments_info().len() > SNAPSHOT_FILES_MAX + 2);
    let files = snapshot_files(dir.path());
    assert_eq!(files.len(), SNAPSHOT_FILES_MAX, "{files:?}");
    assert_eq!(
        files.last(),
        log.segments_info().last().map(|s| &s.base_offset)
    );
}

/// Control batches and batches without a producer id are not checked.
#[test]
fn plain_batches_are_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    for _ in 0..3 {
        assert!(!send(&log, batch(2, NOW, "plain")).unwrap().duplicate);
    }
    assert_eq!(log.producer_count(), 0);
}

/// A coordinator's batches for a producer (TxnOffsetCommit: the producer's id
/// and epoch, no sequence) are all stored — not taken for retries of each
/// other — while an older epoch of the producer is still refused.
#[test]
fn coordinator_batches_check_the_epoch_not_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    let coordinator = |epoch: i16| {
        let mut b = BatchBuilder::new()
            .producer(ProducerId(9), ProducerEpoch(epoch), -1)
            .transactional(true);
        b.push(NewRecord::new(TimestampMs(NOW), Some(b"k"), Some(b"v")));
        b.build().unwrap()
    };
    let append = |mut bytes: Vec<u8>| {
        log.append_from_coordinator(&mut bytes, LeaderEpoch(1), TimestampMs(NOW))
    };
    let first = append(coordinator(3)).unwrap();
    let second = append(coordinator(3)).unwrap();
    assert!(!second.duplicate);
    assert_eq!(second.base_offset.get(), first.base_offset.get() + 1);
    assert_eq!(log.log_end_offset().get(), 2);
    assert!(matches!(
        append(coordinator(2)),
        Err(StorageError::InvalidProducerEpoch { .. })
    ));
    // Through the client's path the second batch is a retry of the first.
    let mut retry = coordinator(3);
    assert!(
        log.append(&mut retry, LeaderEpoch(1), TimestampMs(NOW))
            .unwrap()
            .duplicate
    );
}
