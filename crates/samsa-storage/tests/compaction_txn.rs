//! Compaction of transactional data (Kafka's rules): aborted records go,
//! committed ones are cleaned like any other, markers go only after their
//! data and their delete horizon, open transactions are never touched, and
//! the `.txnindex` follows. Checked against a model, the way a read_committed
//! consumer (Kafka's client algorithm) and a read_uncommitted one read.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::{batches, Key, Value};
use proptest::prelude::*;
use samsa_model::batch::{self, BatchBuilder, BatchHeader, NewRecord};
use samsa_model::control;
use samsa_model::{CoordinatorEpoch, LeaderEpoch, Offset, ProducerEpoch, ProducerId, TimestampMs};
use samsa_storage::{CompactionConfig, LogConfig, PartitionLog};

const T0: i64 = 1_000_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    offset: i64,
    key: Key,
    value: Value,
}

/// What was appended: each record with the transaction it belongs to
/// (`None`: not transactional), each transaction's outcome and marker.
#[derive(Default, Debug)]
struct Model {
    records: BTreeMap<i64, (Key, Value, Option<usize>)>,
    /// Transaction id → (producer, committed?, marker offset); absent while open.
    ended: HashMap<usize, (i64, bool, i64)>,
    /// Producer → (its open transaction id, its first offset if it wrote).
    open: HashMap<i64, (usize, Option<i64>)>,
    txns: usize,
}

impl Model {
    fn committed(&self, txn: Option<usize>) -> bool {
        txn.is_none_or(|t| self.ended.get(&t).is_some_and(|e| e.1))
    }

    fn aborted(&self, txn: Option<usize>) -> bool {
        txn.is_some_and(|t| self.ended.get(&t).is_some_and(|e| !e.1))
    }

    fn first_unstable(&self) -> Option<i64> {
        self.open.values().filter_map(|(_, f)| *f).min()
    }
}

/// Every batch of the log with its records (offset, key, value).
fn read_batches(log: &PartitionLog, upper: Offset) -> Vec<(BatchHeader, Vec<u8>)> {
    let start = log.log_start_offset();
    if upper <= start {
        return Vec::new();
    }
    let r = log.read(start, usize::MAX, upper, true).expect("read");
    batches(&r.bytes)
}

fn records_of(b: &[u8]) -> Vec<(i64, Key, Value)> {
    let h = BatchHeader::parse(b).expect("header");
    batch::records(b, 1 << 24)
        .expect("records")
        .into_iter()
        .map(|r| {
            (
                h.record_offset(&r).get(),
                r.key.as_deref().unwrap_or_default().to_vec(),
                r.value.map(|v| v.to_vec()),
            )
        })
        .collect()
}

/// What a read_committed consumer returns (Kafka's client: stop at the LSO,
/// skip a producer's transactional batches from an aborted transaction's
/// first offset until its ABORT marker).
fn read_committed(log: &PartitionLog) -> Vec<Rec> {
    let lso = log.last_stable_offset(log.log_end_offset());
    let mut aborted = log
        .aborted_transactions(log.log_start_offset(), lso)
        .expect("aborted transactions");
    aborted.sort_by_key(|a| a.first_offset);
    let mut aborted = aborted.into_iter().peekable();
    let mut skipping = BTreeSet::new();
    let mut out = Vec::new();
    for (h, b) in read_batches(log, lso) {
        while let Some(a) = aborted.next_if(|a| a.first_offset <= h.last_offset()) {
            skipping.insert(a.producer_id.get());
        }
        if h.is_control() {
            if let Ok(Some(m)) = control::parse_marker(&h, &b) {
                if !m.commit {
                    skipping.remove(&h.producer_id.get());
                }
            }
            continue;
        }
        if h.is_transactional() && skipping.contains(&h.producer_id.get()) {
            continue;
        }
        for (offset, key, value) in records_of(&b) {
            if offset < lso.get() {
                out.push(Rec { offset, key, value });
            }
        }
    }
    out
}

/// The read_committed view is right: every record is a committed one at its
/// offset, and each key's last record below the LSO is its latest committed
/// record there (a deleted key may be gone).
fn check_committed_view(model: &Model, log: &PartitionLog) {
    let view = read_committed(log);
    let lso = log.last_stable_offset(log.log_end_offset()).get();
    let mut last: HashMap<&Key, &Rec> = HashMap::new();
    for r in &view {
        let (k, v, txn) = model
            .records
            .get(&r.offset)
            .unwrap_or_else(|| panic!("offset {} holds no record", r.offset));
        assert!(
            model.committed(*txn),
            "uncommitted record read at {}",
            r.offset
        );
        assert_eq!((&r.key, &r.value), (k, v), "record at {}", r.offset);
        last.insert(&r.key, r);
    }
    let mut latest: HashMap<&Key, (i64, &Value)> = HashMap::new();
    for (&o, (k, v, txn)) in model.records.range(..lso) {
        if model.committed(*txn) {
            latest.insert(k, (o, v));
        }
    }
    for (k, (o, v)) in latest {
        match last.get(k) {
            Some(r) => assert_eq!(r.offset, o, "latest committed record of {k:?}"),
            None => assert!(v.is_none(), "live key {k:?} vanished from read_committed"),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A producer writes keyed records in its transaction (opened if none).
    Write(u8, Vec<(u8, bool)>),
    /// A non-transactional write.
    Plain(Vec<(u8, bool)>),
    /// The coordinator ends a producer's transaction (even an empty one).
    End(u8, bool),
    Roll,
    Compact {
        delete_retention_ms: i64,
    },
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let recs = || prop::collection::vec((0u8..5, prop::bool::weighted(0.85)), 1..4);
    prop_oneof![
        5 => (0u8..3, recs()).prop_map(|(p, r)| Op::Write(p, r)),
        3 => recs().prop_map(Op::Plain),
        3 => (0u8..3, any::<bool>()).prop_map(|(p, c)| Op::End(p, c)),
        1 => Just(Op::Roll),
        3 => prop_oneof![Just(0i64), Just(3i64)].prop_map(|d| Op::Compact { delete_retention_ms: d }),
        1 => Just(Op::Reopen),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

struct Harness {
    log: PartitionLog,
    model: Model,
    seqs: HashMap<i64, i32>,
    counter: usize,
    now: i64,
}

impl Harness {
    fn keyed(&mut self, recs: Vec<(u8, bool)>) -> Vec<(Key, Value)> {
        recs.into_iter()
            .map(|(k, live)| {
                self.counter += 1;
                (
                    format!("key-{k}").into_bytes(),
                    live.then(|| format!("v{}", self.counter).into_bytes()),
                )
            })
            .collect()
    }

    fn write(&mut self, pid: Option<i64>, recs: &[(Key, Value)]) {
        let mut b = BatchBuilder::new().transactional(pid.is_some());
        if let Some(pid) = pid {
            let seq = self.seqs.entry(pid).or_insert(0);
            b = b.producer(ProducerId(pid), ProducerEpoch(0), *seq);
            *seq += recs.len() as i32;
        }
        for (k, v) in recs {
            b.push(NewRecord::new(TimestampMs(T0), Some(k), v.as_deref()));
        }
        let mut bytes = b.build().expect("build");
        let info = self
            .log
            .append(&mut bytes, LeaderEpoch(1), TimestampMs(T0))
            .expect("append");
        let txn = pid.map(|pid| {
            let next = self.model.txns;
            let entry = self.model.open.entry(pid).or_insert((next, None));
            entry.1.get_or_insert(info.base_offset.get());
            entry.0
        });
        if txn == Some(self.model.txns) {
            self.model.txns += 1;
        }
        for (i, (k, v)) in recs.iter().enumerate() {
            let o = info.base_offset.get() + i as i64;
            self.model.records.insert(o, (k.clone(), v.clone(), txn));
        }
    }

    fn end(&mut self, pid: i64, commit: bool) {
        let offset = self
            .log
            .append_marker(
                ProducerId(pid),
                ProducerEpoch(0),
                commit,
                CoordinatorEpoch(0),
                LeaderEpoch(1),
                TimestampMs(T0),
            )
            .expect("marker");
        let (txn, _) = self.model.open.remove(&pid).unwrap_or_else(|| {
            self.model.txns += 1;
            (self.model.txns - 1, None)
        });
        self.model.ended.insert(txn, (pid, commit, offset.get()));
    }

    /// After a clean: below the first segment that was not cleanable, no
    /// aborted record is left for a read_uncommitted reader.
    fn compact(&mut self, delete_retention_ms: i64) {
        let stable = self
            .log
            .first_unstable_offset()
            .unwrap_or(self.log.log_end_offset());
        let bases: Vec<Offset> = self
            .log
            .segments_info()
            .iter()
            .map(|s| s.base_offset)
            .collect();
        let boundary = bases
            .iter()
            .rev()
            .find(|&&b| b <= stable)
            .copied()
            .unwrap_or(Offset(0));
        let end = self.log.log_end_offset();
        self.now += 2;
        let config = CompactionConfig {
            min_cleanable_dirty_ratio: 0.0,
            delete_retention_ms,
            ..CompactionConfig::default()
        };
        let ran = self
            .log
            .compact(&config, TimestampMs(self.now))
            .expect("compact");
        assert_eq!(self.log.log_end_offset(), end);
        if ran.is_none() {
            return;
        }
        for (h, b) in read_batches(&self.log, boundary) {
            if h.is_control() {
                continue;
            }
            for (o, _, _) in records_of(&b) {
                let txn = self.model.records.get(&o).and_then(|r| r.2);
                assert!(
                    !self.model.aborted(txn),
                    "aborted record {o} survived a clean below {boundary}"
                );
            }
        }
    }

    /// Every transactional batch in the log has its marker (when its
    /// transaction ended), every ABORT marker in the log has its index entry
    /// and no entry lacks its marker, and the first unstable offset is the
    /// model's.
    fn check_markers_and_index(&self) {
        let end = self.log.log_end_offset();
        let all = read_batches(&self.log, end);
        let markers: BTreeSet<i64> = all
            .iter()
            .filter(|(h, _)| h.is_control())
            .map(|(h, _)| h.base_offset.get())
            .collect();
        let aborts: BTreeSet<i64> = all
            .iter()
            .filter(|(h, b)| {
                h.is_control() && matches!(control::parse_marker(h, b), Ok(Some(m)) if !m.commit)
            })
            .map(|(h, _)| h.base_offset.get())
            .collect();
        for (h, _) in all
            .iter()
            .filter(|(h, _)| h.is_transactional() && !h.is_control())
        {
            let pid = h.producer_id.get();
            let marker = self
                .model
                .ended
                .values()
                .filter(|(p, _, m)| *p == pid && *m > h.base_offset.get())
                .map(|(_, _, m)| *m)
                .min();
            if let Some(m) = marker {
                assert!(
                    markers.contains(&m),
                    "batch at {} lost its marker {m}",
                    h.base_offset
                );
            }
        }
        let indexed: BTreeSet<i64> = self
            .log
            .aborted_transactions(self.log.log_start_offset(), end)
            .expect("aborted transactions")
            .iter()
            .map(|a| a.last_offset.get())
            .collect();
        assert_eq!(
            indexed, aborts,
            "the aborted index matches the ABORT markers in the log"
        );
        assert_eq!(
            self.log.first_unstable_offset().map(Offset::get),
            self.model.first_unstable(),
            "first unstable offset"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn cleaning_transactions_keeps_the_committed_view(ops in prop::collection::vec(op_strategy(), 1..70)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), config()).expect("open");
        // Few aborted transactions in memory: the rest is read from the
        // `.txnindex` files, by fetches and by the cleaner.
        log.set_aborted_in_memory_max(3);
        let mut h = Harness { log, model: Model::default(), seqs: HashMap::new(), counter: 0, now: T0 };
        for op in ops {
            match op {
                Op::Write(p, recs) => {
                    let recs = h.keyed(recs);
                    h.write(Some(i64::from(p)), &recs);
                }
                Op::Plain(recs) => {
                    let recs = h.keyed(recs);
                    h.write(None, &recs);
                }
                Op::End(p, commit) => h.end(i64::from(p), commit),
                Op::Roll => h.log.roll().expect("roll"),
                Op::Compact { delete_retention_ms } => h.compact(delete_retention_ms),
                Op::Reopen => {
                    h.log.close().expect("close");
                    drop(h.log);
                    h.log = PartitionLog::open(dir.path(), config()).expect("reopen");
                    h.log.set_aborted_in_memory_max(3);
                }
            }
            check_committed_view(&h.model, &h.log);
            h.check_markers_and_index();
        }
        // A replay from the start (no snapshot) agrees too.
        h.log.close().expect("close");
        drop(h.log);
        for entry in std::fs::read_dir(dir.path()).expect("list") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "snapshot") {
                std::fs::remove_file(path).expect("remove snapshot");
            }
        }
        h.log = PartitionLog::open(dir.path(), config()).expect("reopen");
        check_committed_view(&h.model, &h.log);
        h.check_markers_and_index();
    }
}

fn marker_offsets(log: &PartitionLog) -> Vec<(i64, bool)> {
    read_batches(log, log.log_end_offset())
        .iter()
        .filter(|(h, _)| h.is_control())
        .map(|(h, _)| (h.base_offset.get(), h.has_delete_horizon()))
        .collect()
}

/// A committed transaction's superseded record goes like any other, and its
/// COMMIT marker goes two cleans later: the first clean still reads its data
/// (kept), the next finds none and sets the delete horizon, a clean at or
/// past the horizon removes it. An ABORT marker's data goes at once, its
/// marker and index entry on the same schedule. Open transactions stay.
#[test]
fn markers_go_after_their_data_and_their_delete_horizon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), config()).expect("open");
    let mut h = Harness {
        log,
        model: Model::default(),
        seqs: HashMap::new(),
        counter: 0,
        now: T0,
    };
    let k = |i: u8, live: bool| vec![(i, live)];
    let recs = h.keyed(k(1, true));
    h.write(Some(1), &recs); // 0: committed, superseded at 4
    h.end(1, true); // 1
    let recs = h.keyed(k(2, true));
    h.write(Some(2), &recs); // 2: aborted
    h.end(2, false); // 3
    let recs = h.keyed(k(1, true));
    h.write(None, &recs); // 4
    let recs = h.keyed(k(4, true));
    h.write(Some(1), &recs); // 5: committed, superseded at 7
    h.end(1, true); // 6: producer 1's last batch
    let recs = h.keyed(k(4, true));
    h.write(Some(2), &recs); // 7: committed, key 4's latest
    h.end(2, true); // 8
    h.log.roll().expect("roll");
    let recs = h.keyed(k(3, true));
    h.write(Some(3), &recs); // 9: open
    h.log.roll().expect("roll");
    assert_eq!(h.log.first_unstable_offset(), Some(Offset(9)));
    let cc = |d| CompactionConfig {
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: d,
        ..CompactionConfig::default()
    };
    let offsets = |log: &PartitionLog| {
        read_batches(log, log.log_end_offset())
            .iter()
            .filter(|(h, _)| !h.is_control())
            .flat_map(|(_, b)| records_of(b).into_iter().map(|r| r.0))
            .collect::<Vec<_>>()
    };
    // Everything below 9 is cleanable; the open transaction is not.
    let stats = h
        .log
        .compact(&cc(100), TimestampMs(T0))
        .expect("compact")
        .expect("due");
    assert_eq!(stats.aborted_records_dropped, 1);
    assert_eq!(offsets(&h.log), vec![4, 7, 9]);
    assert_eq!(
        marker_offsets(&h.log),
        vec![(1, false), (3, false), (6, false), (8, false)],
        "each clean read data of every transaction"
    );
    assert_eq!(
        h.log
            .aborted_transactions(Offset(0), Offset(10))
            .expect("aborted transactions")
            .len(),
        1
    );
    // No data left behind 1, 3 and 6: their horizon is set (now + 100).
    h.log
        .compact(&cc(100), TimestampMs(T0 + 1))
        .expect("compact");
    assert_eq!(
        marker_offsets(&h.log),
        vec![(1, true), (3, true), (6, true), (8, false)]
    );
    // Before the horizon they stay; at it they go, with the index entry,
    // except producer 1's last batch (it carries the producer's epoch).
    h.log
        .compact(&cc(100), TimestampMs(T0 + 50))
        .expect("compact");
    assert_eq!(marker_offsets(&h.log).len(), 4);
    let stats = h
        .log
        .compact(&cc(100), TimestampMs(T0 + 101))
        .expect("compact")
        .expect("due at the horizon without new data");
    assert_eq!(stats.markers_removed, 2);
    assert_eq!(marker_offsets(&h.log), vec![(6, true), (8, false)]);
    // Marker 6 stays for its producer's epoch with its horizon past: that
    // must not leave a past deadline behind, which made every later tick
    // clean the whole log again.
    assert!(
        h.log
            .compact(
                &CompactionConfig {
                    min_cleanable_dirty_ratio: 0.5,
                    ..cc(100)
                },
                TimestampMs(T0 + 102)
            )
            .expect("compact")
            .is_none(),
        "nothing new to clean, no horizon ahead: no clean is due"
    );
    assert!(h
        .log
        .aborted_transactions(Offset(0), Offset(10))
        .expect("aborted transactions")
        .is_empty());
    assert_eq!(offsets(&h.log), vec![4, 7, 9]);
    assert_eq!(h.log.first_unstable_offset(), Some(Offset(9)));
    h.end(3, true);
    check_committed_view(&h.model, &h.log);
    h.check_markers_and_index();
    drop(h.log);
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert_eq!(log.first_unstable_offset(), None);
}
