//! Transactions in the log: markers close transactions, the first unstable
//! offset and the aborted-transaction index (`.txnindex`) follow appends,
//! replication, segment rolls, truncations, retention, compaction and
//! restarts (clean and crashed), checked against a simple model.

use std::path::Path;

use proptest::prelude::*;
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::{CoordinatorEpoch, LeaderEpoch, Offset, ProducerEpoch, ProducerId, TimestampMs};
use samsa_storage::txn_index::TXN_INDEX_SUFFIX;
use samsa_storage::{AbortedTxn, LogConfig, PartitionLog, StorageError};

const NOW: i64 = 1_700_000_000_000;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

fn data(pid: i64, epoch: i16, seq: i32, n: usize, txn: bool) -> Vec<u8> {
    let mut b = BatchBuilder::new().transactional(txn);
    if pid >= 0 {
        b = b.producer(ProducerId(pid), ProducerEpoch(epoch), seq);
    }
    for i in 0..n {
        b.push(NewRecord::new(
            TimestampMs(NOW),
            None,
            Some(format!("{pid}:{seq}:{i}").as_bytes()),
        ));
    }
    b.build().unwrap()
}

fn marker(log: &PartitionLog, pid: i64, epoch: i16, commit: bool) -> Result<Offset, StorageError> {
    log.append_marker(
        ProducerId(pid),
        ProducerEpoch(epoch),
        commit,
        CoordinatorEpoch(0),
        LeaderEpoch(1),
        TimestampMs(NOW),
    )
}

fn all_aborted(log: &PartitionLog) -> Vec<(i64, i64, i64)> {
    log.aborted_transactions(Offset(0), log.log_end_offset())
        .expect("aborted transactions")
        .iter()
        .map(|a| {
            (
                a.producer_id.get(),
                a.first_offset.get(),
                a.last_offset.get(),
            )
        })
        .collect()
}

fn txn_index_files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(TXN_INDEX_SUFFIX))
        .collect();
    out.sort();
    out
}

fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".snapshot")?.parse().ok()
        })
        .collect()
}

/// What the model keeps of each stored batch.
#[derive(Clone, Copy, Debug)]
enum Stored {
    Data {
        pid: i64,
        epoch: i16,
        last_seq: i32,
        txn: bool,
    },
    Marker {
        pid: i64,
        epoch: i16,
        commit: bool,
    },
}

#[derive(Default)]
struct Model {
    /// (base, last, what), ascending.
    batches: Vec<(i64, i64, Stored)>,
    log_start: i64,
}

impl Model {
    fn end(&self) -> i64 {
        self.batches
            .last()
            .map_or(self.log_start, |b| b.1 + 1)
            .max(self.log_start)
    }

    /// (open transactions' first offsets, aborted (pid, first, last) with
    /// markers at or after the first kept segment).
    fn txns(&self, first_base: i64) -> (Vec<i64>, Vec<(i64, i64, i64)>) {
        let mut open: std::collections::BTreeMap<i64, i64> = Default::default();
        let mut aborted = Vec::new();
        for &(base, _, what) in &self.batches {
            match what {
                Stored::Data { pid, txn: true, .. } => {
                    open.entry(pid).or_insert(base);
                }
                Stored::Marker { pid, commit, .. } => {
                    let first = open.remove(&pid).unwrap_or(base);
                    if !commit && base >= first_base {
                        aborted.push((pid, first, base));
                    }
                }
                Stored::Data { .. } => {}
            }
        }
        let mut firsts: Vec<i64> = open.into_values().collect();
        firsts.sort();
        (firsts, aborted)
    }

    /// The producer's epoch and next sequence as the log's state has them.
    fn next(&self, pid: i64) -> (i16, i32) {
        let mut epoch = 0;
        let mut seq = 0;
        for &(_, _, what) in &self.batches {
            match what {
                Stored::Data {
                    pid: p,
                    epoch: e,
                    last_seq,
                    ..
                } if p == pid => {
                    epoch = e;
                    seq = last_seq + 1;
                }
                Stored::Marker {
                    pid: p, epoch: e, ..
                } if p == pid && e != epoch => {
                    epoch = e;
                    seq = 0;
                }
                _ => {}
            }
        }
        (epoch, seq)
    }

    fn is_open(&self, pid: i64) -> bool {
        let mut open = false;
        for &(_, _, what) in &self.batches {
            match what {
                Stored::Data { pid: p, txn, .. } if p == pid => open |= txn,
                Stored::Marker { pid: p, .. } if p == pid => open = false,
                _ => {}
            }
        }
        open
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A transactional batch of producer 0..3 with n records.
    Txn(u8, u8),
    /// A marker for producer 0..3: commit?, bump the epoch?
    Marker(u8, bool, bool),
    /// A plain (no producer) batch.
    Plain(u8),
    /// Truncate to this fraction (per mille) of the log end.
    Truncate(u16),
    Roll,
    Sync,
    DeleteOldest,
    /// Reopen: after a clean close (true) or as after a crash.
    Restart(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..3, 1u8..4).prop_map(|(p, n)| Op::Txn(p, n)),
        3 => (0u8..3, any::<bool>(), prop::bool::weighted(0.2)).prop_map(|(p, c, b)| Op::Marker(p, c, b)),
        2 => (1u8..4).prop_map(Op::Plain),
        1 => (0u16..1000).prop_map(Op::Truncate),
        1 => Just(Op::Roll),
        1 => Just(Op::Sync),
        1 => Just(Op::DeleteOldest),
        1 => any::<bool>().prop_map(Op::Restart),
    ]
}

fn check(log: &PartitionLog, model: &Model, when: &str) {
    let first_base = log
        .segments_info()
        .first()
        .map_or(0, |s| s.base_offset.get());
    let (mut open, aborted) = model.txns(first_base);
    for o in &mut open {
        *o = (*o).max(model.log_start);
    }
    assert_eq!(log.log_end_offset().get(), model.end(), "{when}: log end");
    assert_eq!(
        log.first_unstable_offset().map(Offset::get),
        open.first().copied(),
        "{when}: first unstable offset"
    );
    let end = log.log_end_offset();
    assert_eq!(
        log.last_stable_offset(end).get(),
        open.first().copied().unwrap_or(end.get()).min(end.get()),
        "{when}: LSO"
    );
    assert_eq!(all_aborted(log), aborted, "{when}: aborted transactions");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lso_and_aborted_index_follow_a_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(300);
        let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
        let mut model = Model::default();
        for (i, op) in ops.iter().enumerate() {
            let when = format!("op {i} {op:?}");
            match *op {
                Op::Txn(p, n) => {
                    let pid = i64::from(p);
                    let (epoch, seq) = model.next(pid);
                    let mut b = data(pid, epoch, seq, usize::from(n), true);
                    let info = log.append(&mut b, LeaderEpoch(1), TimestampMs(NOW)).unwrap();
                    model.batches.push((info.base_offset.get(), info.last_offset.get(),
                        Stored::Data { pid, epoch, last_seq: seq + i32::from(n) - 1, txn: true }));
                }
                Op::Marker(p, commit, bump) => {
                    let pid = i64::from(p);
                    let (epoch, _) = model.next(pid);
                    let known = model.batches.iter().any(|b| matches!(b.2,
                        Stored::Data { pid: q, .. } | Stored::Marker { pid: q, .. } if q == pid));
                    if known && epoch > 0 && !bump {
                        // A zombie coordinator's marker at an older epoch.
                        let refused = marker(&log, pid, epoch - 1, commit);
                        prop_assert!(matches!(refused, Err(StorageError::InvalidProducerEpoch { .. })), "{when}");
                    }
                    let epoch = epoch + i16::from(bump);
                    let offset = marker(&log, pid, epoch, commit).unwrap();
                    model.batches.push((offset.get(), offset.get(), Stored::Marker { pid, epoch, commit }));
                }
                Op::Plain(n) => {
                    let mut b = data(-1, -1, -1, usize::from(n), false);
                    let info = log.append(&mut b, LeaderEpoch(1), TimestampMs(NOW)).unwrap();
                    model.batches.push((info.base_offset.get(), info.last_offset.get(),
                        Stored::Data { pid: -1, epoch: -1, last_seq: -1, txn: false }));
                }
                Op::Truncate(per_mille) => {
                    let start = log.log_start_offset().get();
                    let end = log.log_end_offset().get();
                    let mut to = start + (end - start) * i64::from(per_mille) / 1000;
                    if model.log_start > 0 {
                        // Once retention deleted segments, the state of the
                        // transactions begun in them lives only in snapshots:
                        // a truncation below every snapshot forgets it, in
                        // Kafka as here (`truncateAndReload`). Followers
                        // truncate divergent tails, above their snapshots.
                        let newest = snapshot_offsets(dir.path()).into_iter().filter(|o| *o <= end).max();
                        to = to.max(newest.unwrap_or(end));
                    }
                    log.truncate_to(Offset(to)).unwrap();
                    model.batches.retain(|b| b.1 < to);
                }
                Op::Roll => log.roll().unwrap(),
                Op::Sync => {
                    log.sync_rolled().unwrap();
                }
                Op::DeleteOldest => {
                    if log.delete_oldest_segment().unwrap().is_some() {
                        model.log_start = log.log_start_offset().get();
                        // The background sync writes the snapshot a moved log
                        // start asks for (the state of deleted segments).
                        log.sync_rolled().unwrap();
                    }
                }
                Op::Restart(clean) => {
                    if clean {
                        log.close().unwrap();
                    }
                    drop(log);
                    log = PartitionLog::open(dir.path(), cfg).unwrap();
                }
            }
            check(&log, &model, &when);
            // A non-transactional batch inside an open transaction is refused.
            if let Op::Txn(p, _) = op {
                let pid = i64::from(*p);
                if model.is_open(pid) {
                    let (epoch, seq) = model.next(pid);
                    let mut b = data(pid, epoch, seq, 1, false);
                    prop_assert!(matches!(
                        log.append(&mut b, LeaderEpoch(1), TimestampMs(NOW)),
                        Err(StorageError::InvalidTxnState { .. })
                    ), "{when}");
                }
            }
        }
        // A follower storing the leader's bytes ends up with the same state.
        let follower_dir = tempfile::tempdir().unwrap();
        let start = log.log_start_offset();
        let follower = PartitionLog::open(follower_dir.path(), cfg).unwrap();
        follower.reset_to(start).unwrap();
        let read = log.read(start, 64 << 20, Offset(i64::MAX), true).unwrap();
        follower.append_replicated(&read.bytes, TimestampMs(NOW)).unwrap();
        let (open, _) = model.txns(0);
        // The follower only saw the batches from the log start on.
        let visible = |o: &i64| *o >= start.get();
        if open.iter().all(visible) {
            prop_assert_eq!(follower.first_unstable_offset().map(Offset::get), open.first().copied());
        }
        // Same markers; a transaction begun below the follower's log start
        // starts at its first batch the follower holds.
        let leader_aborted = all_aborted(&log);
        let follower_aborted = all_aborted(&follower);
        prop_assert_eq!(follower_aborted.len(), leader_aborted.len());
        for (f, l) in follower_aborted.iter().zip(&leader_aborted) {
            prop_assert_eq!((f.0, f.2), (l.0, l.2));
            prop_assert!(f.1 >= l.1 && (l.1 < start.get() || f.1 == l.1));
        }
    }
}

/// A transaction spanning segment rolls: its ABORT entry is in the index of
/// the marker's segment, a read from the first segment still reports it, and
/// recovery rebuilds the `.txnindex` files from the log when they are lost.
#[test]
fn recovery_rebuilds_the_index_of_a_transaction_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(200);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    let mut seq = 0;
    for _ in 0..6 {
        let mut b = data(5, 0, seq, 2, true);
        seq += 2;
        log.append(&mut b, LeaderEpoch(1), TimestampMs(NOW))
            .unwrap();
        let mut plain = data(-1, -1, -1, 1, false);
        log.append(&mut plain, LeaderEpoch(1), TimestampMs(NOW))
            .unwrap();
    }
    assert!(
        log.segments_info().len() >= 3,
        "the transaction spans segments"
    );
    assert_eq!(log.first_unstable_offset(), Some(Offset(0)));
    assert_eq!(log.last_stable_offset(Offset(10)), Offset(0));
    let abort_at = marker(&log, 5, 0, false).unwrap();
    assert_eq!(log.first_unstable_offset(), None);
    let expected = vec![AbortedTxn {
        producer_id: ProducerId(5),
        first_offset: Offset(0),
        last_offset: abort_at,
        last_stable_offset: abort_at.plus(1),
    }];
    // A fetch from inside the first segment, up to the end.
    assert_eq!(
        log.aborted_transactions(Offset(1), log.log_end_offset())
            .expect("aborted transactions"),
        expected
    );
    // A fetch ending before the transaction began reports nothing.
    assert!(log
        .aborted_transactions(Offset(0), Offset(0))
        .expect("aborted transactions")
        .is_empty());
    let files = txn_index_files(dir.path());
    let marker_segment = log
        .segments_info()
        .iter()
        .rev()
        .find(|s| s.base_offset <= abort_at)
        .unwrap()
        .base_offset;
    assert_eq!(
        files,
        vec![format!("{:020}{TXN_INDEX_SUFFIX}", marker_segment.get())]
    );
    let bytes = std::fs::read(dir.path().join(&files[0])).unwrap();
    assert_eq!(bytes.len(), 34);
    // A second transaction stays open over a crash.
    let mut b = data(6, 0, 0, 1, true);
    let open_at = log
        .append(&mut b, LeaderEpoch(1), TimestampMs(NOW))
        .unwrap()
        .base_offset;
    drop(log);
    // Lose every index and snapshot: recovery replays the markers.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(TXN_INDEX_SUFFIX) || name.ends_with(".snapshot") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(
        log.aborted_transactions(Offset(0), log.log_end_offset())
            .expect("aborted transactions"),
        expected
    );
    assert_eq!(log.first_unstable_offset(), Some(open_at));
    assert_eq!(
        txn_index_files(dir.path()),
        files,
        "the index file is written again"
    );
    assert_eq!(std::fs::read(dir.path().join(&files[0])).unwrap(), bytes);
    // Retention of the marker's segment takes its entry and file along.
    while log.segments_info().first().unwrap().base_offset <= abort_at {
        log.delete_oldest_segment().unwrap();
    }
    assert!(log
        .aborted_transactions(Offset(0), log.log_end_offset())
        .expect("aborted transactions")
        .is_empty());
    // The open transaction stays open, from the log start on at least.
    assert_eq!(
        log.first_unstable_offset(),
        Some(open_at.max(log.log_start_offset()))
    );
}

/// Snapshots written before transactions (layout version 1) still load.
#[test]
fn a_version_1_snapshot_still_loads() {
    use samsa_storage::producer_snapshot::decode;
    // One producer (id 9, epoch 2, timestamp 5) with one batch (seq 0..=1 at offset 0).
    let mut body = Vec::new();
    body.extend_from_slice(&3i64.to_be_bytes());
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&9i64.to_be_bytes());
    body.extend_from_slice(&2i16.to_be_bytes());
    body.extend_from_slice(&5i64.to_be_bytes());
    body.push(1);
    for v in [0i32, 1] {
        body.extend_from_slice(&v.to_be_bytes());
    }
    body.extend_from_slice(&0i64.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    let mut file = 1u16.to_be_bytes().to_vec();
    file.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    file.extend_from_slice(&body);
    let table = decode(&file, Offset(3)).unwrap();
    let entry = table.get(ProducerId(9)).unwrap();
    assert_eq!((entry.epoch, entry.last_sequence()), (ProducerEpoch(2), 1));
    assert_eq!(entry.current_txn_first_offset, None);
}

/// Compaction merges segments: the merged segment's `.txnindex` holds the
/// entries of its originals, whether the replacement completes or a crash
/// interrupts it at any step (the reopen merges the leftover files).
#[test]
fn compaction_keeps_the_aborted_index_of_merged_segments() {
    use samsa_storage::cleaner::SwapCrashPoint;
    use samsa_storage::CompactionConfig;
    let points = [
        None,
        Some(SwapCrashPoint::Cleaned),
        Some(SwapCrashPoint::IndexesStaged),
        Some(SwapCrashPoint::Swapped),
        Some(SwapCrashPoint::OriginalsDeleted),
        Some(SwapCrashPoint::IndexesInstalled),
        Some(SwapCrashPoint::Installed),
    ];
    for point in points {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(160);
        let log = PartitionLog::open(dir.path(), cfg).unwrap();
        let keyed = |log: &PartitionLog, pid: i64, seq: i32, txn: bool, key: &str| {
            let mut b = BatchBuilder::new().transactional(txn);
            if pid >= 0 {
                b = b.producer(ProducerId(pid), ProducerEpoch(0), seq);
            }
            b.push(NewRecord::new(
                TimestampMs(NOW),
                Some(key.as_bytes()),
                Some(b"v"),
            ));
            let mut bytes = b.build().unwrap();
            log.append(&mut bytes, LeaderEpoch(1), TimestampMs(NOW))
                .unwrap();
        };
        // Two aborted transactions in different segments, with keys
        // overwritten afterwards so the clean has work.
        for (pid, seqs) in [(1, 0..3), (2, 0..3)] {
            for seq in seqs {
                keyed(&log, pid, seq, true, &format!("k{seq}"));
            }
            marker(&log, pid, 0, false).unwrap();
            for i in 0..3 {
                keyed(&log, -1, -1, false, &format!("k{i}"));
            }
        }
        keyed(&log, -1, -1, false, "last");
        log.roll().unwrap();
        let before = all_aborted(&log);
        assert_eq!(before.len(), 2);
        assert!(
            txn_index_files(dir.path()).len() == 2,
            "{:?}",
            txn_index_files(dir.path())
        );
        let compaction = CompactionConfig {
            min_cleanable_dirty_ratio: 0.0,
            delete_retention_ms: 0,
            ..CompactionConfig::default()
        };
        let segments_before = log.segments_info().len();
        // Larger segments from now on: the clean merges the small ones.
        log.set_config(config(1 << 20));
        let log = match point {
            None => {
                log.compact(&compaction, TimestampMs(NOW)).unwrap();
                log
            }
            Some(p) => {
                assert!(log
                    .compact_crashing_at(&compaction, TimestampMs(NOW), 0, p)
                    .is_err());
                drop(log);
                PartitionLog::open(dir.path(), config(1 << 20)).unwrap()
            }
        };
        let infos = log.segments_info();
        if point.is_none() {
            assert!(infos.len() < segments_before, "segments were merged");
        }
        assert_eq!(all_aborted(&log), before, "{point:?}");
        // Each entry's file is its marker's segment's.
        let mut expected: Vec<String> = before
            .iter()
            .map(|(_, _, last)| {
                let base = infos
                    .iter()
                    .rev()
                    .find(|s| s.base_offset.get() <= *last)
                    .unwrap()
                    .base_offset;
                format!("{:020}{TXN_INDEX_SUFFIX}", base.get())
            })
            .collect();
        expected.dedup();
        assert_eq!(txn_index_files(dir.path()), expected, "{point:?}");
        drop(log);
        let log = PartitionLog::open(dir.path(), cfg).unwrap();
        assert_eq!(all_aborted(&log), before, "{point:?} after a reopen");
    }
}

/// KIP-890's verification guard: a transaction version 1 client aborts
/// (no epoch bump) between the coordinator's "yes, the partition is in the
/// transaction" and the append of its first batch. The late batch must not
/// open a transaction nobody will end (a hanging transaction holding the
/// last stable offset back forever); it gets INVALID_TXN_STATE instead. The
/// same holds for a stale guard after a newer verification (ABA), and for a
/// batch of a transaction that was open when the leader skipped asking.
#[test]
fn a_marker_between_verification_and_append_refuses_the_late_batch() {
    use samsa_storage::TxnVerification;
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    let append = |seq: i32, guard| {
        let b = data(7, 0, seq, 1, true);
        log.append_guarded(&b, LeaderEpoch(1), TimestampMs(NOW), guard)
    };
    let TxnVerification::Needed(first) = log.start_txn_verification(ProducerId(7)) else {
        panic!("no transaction is open: the coordinator must be asked");
    };
    // A second verification in flight (a retry on another connection)
    // shares the guard instead of cancelling the first.
    assert_eq!(
        log.start_txn_verification(ProducerId(7)),
        TxnVerification::Needed(first)
    );
    // The coordinator said yes; the client's abort marker lands first.
    marker(&log, 7, 0, false).unwrap();
    assert!(matches!(
        append(0, Some(first)),
        Err(StorageError::TxnNotVerified { .. })
    ));
    assert_eq!(log.first_unstable_offset(), None, "no hanging transaction");

    // ABA: a newer verification started; the old guard's answer is stale.
    let TxnVerification::Needed(stale) = log.start_txn_verification(ProducerId(7)) else {
        panic!("needed");
    };
    marker(&log, 7, 0, false).unwrap();
    let TxnVerification::Needed(fresh) = log.start_txn_verification(ProducerId(7)) else {
        panic!("needed");
    };
    assert!(matches!(
        append(0, Some(stale)),
        Err(StorageError::TxnNotVerified { .. })
    ));
    assert!(matches!(
        append(0, None),
        Err(StorageError::TxnNotVerified { .. })
    ));
    let opened = append(0, Some(fresh)).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(opened.base_offset));
    // A retry of that batch is still answered as a duplicate.
    assert!(append(0, Some(fresh)).unwrap().duplicate);

    // Open: no question asked, and later batches need no guard...
    assert_eq!(
        log.start_txn_verification(ProducerId(7)),
        TxnVerification::Ongoing
    );
    append(1, None).unwrap();
    // ...until a marker ends the transaction: then a late one is refused.
    marker(&log, 7, 0, false).unwrap();
    assert!(matches!(
        append(2, None),
        Err(StorageError::TxnNotVerified { .. })
    ));
    assert_eq!(log.first_unstable_offset(), None);
    // Non-transactional and coordinator paths are not guarded.
    let plain = data(-1, 0, 0, 1, false);
    log.append_guarded(&plain, LeaderEpoch(1), TimestampMs(NOW), None)
        .unwrap();
}

/// Memory holds only the newest aborted transactions (plus the active
/// segment's); older ones are read from the `.txnindex` files, so
/// read_committed answers from any offset stay right across rolls, a
/// truncation below the in-memory part and a restart.
#[test]
fn memory_holds_only_the_newest_aborted_transactions() {
    use samsa_storage::txn_index::collect;
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), config(600)).unwrap();
    log.set_aborted_in_memory_max(8);
    let mut model: Vec<AbortedTxn> = Vec::new();
    for i in 0..300i32 {
        let mut b = data(1, 0, i, 1, true);
        let first = log
            .append(&mut b, LeaderEpoch(1), TimestampMs(NOW))
            .unwrap()
            .base_offset;
        let abort = i % 3 != 0;
        let m = marker(&log, 1, 0, !abort).unwrap();
        if abort {
            model.push(AbortedTxn {
                producer_id: ProducerId(1),
                first_offset: first,
                last_offset: m,
                last_stable_offset: m.plus(1),
            });
        }
    }
    let bounded = |log: &PartitionLog, model: &[AbortedTxn]| {
        let active = log.segments_info().last().unwrap().base_offset;
        let in_active = model.iter().filter(|e| e.last_offset >= active).count();
        assert!(
            log.aborted_in_memory() <= 8 + in_active,
            "{} in memory",
            log.aborted_in_memory()
        );
    };
    let agree = |log: &PartitionLog, model: &[AbortedTxn]| {
        let end = log.log_end_offset();
        for from in (0..end.get()).step_by(37).chain([end.get() - 1]) {
            for upper in [Offset(from + 5), end] {
                assert_eq!(
                    log.aborted_transactions(Offset(from), upper).unwrap(),
                    collect(model, Offset(from), upper, usize::MAX),
                    "from {from} below {upper}"
                );
            }
        }
    };
    assert!(log.segments_info().len() > 10);
    bounded(&log, &model);
    agree(&log, &model);
    // Cut into an old segment: its entries come back from its file.
    let cut = Offset(301);
    log.truncate_to(cut).unwrap();
    model.retain(|e| e.last_offset < cut);
    bounded(&log, &model);
    agree(&log, &model);
    drop(log);
    let log = PartitionLog::open(dir.path(), config(600)).unwrap();
    agree(&log, &model);
    log.set_aborted_in_memory_max(8);
    bounded(&log, &model);
    agree(&log, &model);
}
