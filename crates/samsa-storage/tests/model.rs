//! Model-based property test: random appends, reads, timestamp lookups, log
//! start moves, retention, truncations, syncs of rolled segments and reopens
//! (clean, unclean, and after losing bytes that were never fsynced) must agree
//! with a simple in-memory model of the log.

mod common;

use common::batch_with;
use proptest::prelude::*;
use samsa_model::batch::{self, BatchHeader};
use samsa_model::compression::Compression;
use samsa_model::{LeaderEpoch, Offset, TimestampMs};
use samsa_storage::{LogConfig, PartitionLog, StorageError};

#[derive(Clone, Debug)]
enum Op {
    Append {
        records: usize,
        ts: i64,
        pad: usize,
        codec: usize,
    },
    Read {
        start: u16,
        max_bytes: usize,
        upper: u16,
        min_one: bool,
    },
    Reopen {
        clean: bool,
    },
    /// Crash, losing the last `1 + cut % size` bytes of the last batch.
    TornTail {
        cut: u16,
    },
    DeleteRecords {
        at: u16,
    },
    DeleteOldest,
    Truncate {
        at: u16,
    },
    Timestamp {
        ts: i64,
    },
    MaxTimestamp,
    /// fsync rolled segments and move the recovery point.
    SyncRolled,
    /// A machine crash: one segment at or above the recovery point (which
    /// may hold bytes never fsynced) loses its bytes from a point on, while
    /// later segments keep theirs.
    PowerLoss {
        segment: u16,
        cut: u16,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..5, 0i64..1000, 0usize..80, 0usize..5).prop_map(|(records, ts, pad, codec)| Op::Append { records, ts, pad, codec }),
        4 => (any::<u16>(), 0usize..900, any::<u16>(), any::<bool>()).prop_map(|(start, max_bytes, upper, min_one)| Op::Read { start, max_bytes, upper, min_one }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => any::<u16>().prop_map(|cut| Op::TornTail { cut }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        1 => Just(Op::DeleteOldest),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        2 => (0i64..1100).prop_map(|ts| Op::Timestamp { ts }),
        1 => Just(Op::MaxTimestamp),
        1 => Just(Op::SyncRolled),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(segment, cut)| Op::PowerLoss { segment, cut }),
    ]
}

struct ModelBatch {
    header: BatchHeader,
    bytes: Vec<u8>,
    /// (offset, timestamp) of each record.
    records: Vec<(Offset, TimestampMs)>,
}

#[derive(Default)]
struct Model {
    batches: Vec<ModelBatch>,
    log_start: i64,
    log_end: i64,
}

impl Model {
    /// Pick an offset in `[lo, hi]` from a selector.
    fn pick(sel: u16, lo: i64, hi: i64) -> Offset {
        Offset(lo + i64::from(sel) % (hi - lo + 1))
    }

    fn live_records(&self) -> impl Iterator<Item = (Offset, TimestampMs)> + '_ {
        let start = Offset(self.log_start);
        self.batches
            .iter()
            .flat_map(|b| b.records.iter().copied())
            .filter(move |(o, _)| *o >= start)
    }

    fn expected_read(
        &self,
        start: Offset,
        max_bytes: usize,
        upper: Offset,
        min_one: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        if start.get() >= self.log_end || start >= upper {
            return out;
        }
        let Some(first) = self
            .batches
            .iter()
            .position(|b| b.header.last_offset() >= start)
        else {
            return out;
        };
        for b in &self.batches[first..] {
            if b.header.base_offset >= upper || out.len() + b.bytes.len() > max_bytes {
                break;
            }
            out.extend_from_slice(&b.bytes);
        }
        if out.is_empty() && min_one && self.batches[first].header.base_offset < upper {
            out.extend_from_slice(&self.batches[first].bytes);
        }
        out
    }
}

fn config(segment_bytes: u64, index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(
        segment_bytes in 150u64..1500,
        index_interval_bytes in 0u32..300,
        ops in prop::collection::vec(op_strategy(), 1..80),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(segment_bytes, index_interval_bytes);
        let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Append { records, ts, pad, codec } => {
                    let mut b = batch_with(records, ts, "m", Compression::ALL[codec], pad);
                    let info = log.append(&mut b, LeaderEpoch(3), TimestampMs(0)).expect("append");
                    prop_assert_eq!(info.base_offset, Offset(model.log_end));
                    let header = BatchHeader::parse(&b).expect("header");
                    let recs = batch::records(&b, 1 << 20).expect("records");
                    let records = recs.iter().map(|r| (header.record_offset(r), header.record_timestamp(r))).collect();
                    model.log_end = header.next_offset().get();
                    model.batches.push(ModelBatch { header, bytes: b, records });
                }
                Op::Read { start, max_bytes, upper, min_one } => {
                    // Mostly in range, sometimes just outside it.
                    let start = Model::pick(start, model.log_start - 1, model.log_end + 1);
                    let upper = Model::pick(upper, model.log_start, model.log_end + 1);
                    let got = log.read(start, max_bytes, upper, min_one);
                    if start.get() < model.log_start || start.get() > model.log_end {
                        let out_of_range = matches!(got, Err(StorageError::OffsetOutOfRange { .. }));
                        prop_assert!(out_of_range);
                    } else {
                        let got = got.expect("read");
                        let want = model.expected_read(start, max_bytes, upper, min_one);
                        prop_assert_eq!(got.bytes.len(), want.len());
                        prop_assert!(got.bytes[..] == want[..]);
                        // The same batches found as file ranges: at most one
                        // per segment, read back byte for byte with pread.
                        let found = log.read_slices(start, max_bytes, upper, min_one).expect("read_slices");
                        prop_assert_eq!(found.len, want.len());
                        prop_assert_eq!(found.next_offset, got.next_offset);
                        prop_assert_eq!(found.first_offset, got.first_offset);
                        let mut sent = Vec::new();
                        for slice in &found.slices {
                            prop_assert!(!slice.is_empty());
                            let mut piece = vec![0u8; slice.len()];
                            std::os::unix::fs::FileExt::read_exact_at(slice.file(), &mut piece, slice.position()).expect("pread");
                            sent.extend_from_slice(&piece);
                        }
                        prop_assert!(sent[..] == want[..]);
                    }
                }
                Op::Reopen { clean } => {
                    if clean {
                        log.close().expect("close");
                    }
                    drop(log);
                    log = PartitionLog::open(dir.path(), cfg).expect("reopen");
                }
                Op::TornTail { cut } => {
                    let active_has_data = log.segments_info().last().is_some_and(|s| s.size_bytes > 0);
                    drop(log);
                    if active_has_data {
                        let last = model.batches.pop().expect("active segment data is in the model");
                        let path = common::log_files(dir.path()).pop().expect("active");
                        let len = std::fs::metadata(&path).expect("stat").len();
                        let lost = 1 + u64::from(cut) % last.bytes.len() as u64;
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .and_then(|f| f.set_len(len - lost))
                            .expect("tear");
                        model.log_end = last.header.base_offset.get();
                        if model.log_end < model.log_start {
                            model.batches.clear();
                            model.log_end = model.log_start;
                        }
                    }
                    log = PartitionLog::open(dir.path(), cfg).expect("recover");
                }
                Op::SyncRolled => {
                    log.sync_rolled().expect("sync");
                    prop_assert!(!log.needs_sync());
                }
                Op::PowerLoss { segment, cut } => {
                    let rp = log.recovery_point();
                    let exposed: Vec<_> = log
                        .segments_info()
                        .into_iter()
                        .filter(|s| s.base_offset >= rp)
                        .collect();
                    drop(log);
                    let hit = &exposed[usize::from(segment) % exposed.len()];
                    let path = dir.path().join(format!("{:020}.log", hit.base_offset.get()));
                    let bytes = std::fs::read(&path).expect("read segment");
                    let keep = if bytes.is_empty() { 0 } else { usize::from(cut) % bytes.len() };
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(keep as u64))
                        .expect("lose the tail");
                    // Everything from the first batch not wholly kept is gone,
                    // later segments included.
                    let mut it = batch::BatchIter::new(&bytes);
                    let mut lost_from = None;
                    let mut at = 0;
                    for item in it.by_ref() {
                        let (h, b) = item.expect("stored batch");
                        if at + b.len() > keep {
                            lost_from = Some(h.base_offset);
                            break;
                        }
                        at += b.len();
                    }
                    if let Some(lost_from) = lost_from {
                        model.batches.retain(|b| b.header.base_offset < lost_from);
                        model.log_end = lost_from.get();
                        if model.log_end < model.log_start {
                            model.batches.clear();
                            model.log_end = model.log_start;
                        }
                    }
                    log = PartitionLog::open(dir.path(), cfg).expect("recover");
                    prop_assert_eq!(log.log_end_offset(), Offset(model.log_end));
                    prop_assert_eq!(log.log_start_offset(), Offset(model.log_start));
                }
                Op::DeleteRecords { at } => {
                    let target = Model::pick(at, model.log_start, model.log_end + 1);
                    let got = log.delete_records_before(target);
                    if target.get() > model.log_end {
                        let out_of_range = matches!(got, Err(StorageError::OffsetOutOfRange { .. }));
                        prop_assert!(out_of_range);
                    } else {
                        model.log_start = model.log_start.max(target.get());
                        prop_assert_eq!(got.expect("delete"), Offset(model.log_start));
                    }
                }
                Op::DeleteOldest => {
                    let infos = log.segments_info();
                    let deleted = log.delete_oldest_segment().expect("retention");
                    let non_empty = infos.iter().any(|s| s.size_bytes > 0);
                    prop_assert_eq!(deleted.is_some(), infos.len() > 1 || non_empty);
                    if deleted.is_some() {
                        let next = infos.get(1).map_or(model.log_end, |s| s.base_offset.get());
                        model.log_start = model.log_start.max(next);
                    }
                }
                Op::Truncate { at } => {
                    let target = Model::pick(at, 0, model.log_end + 2);
                    log.truncate_to(target).expect("truncate");
                    if target.get() >= model.log_end {
                        // no-op
                    } else if target.get() < model.log_start {
                        model.batches.clear();
                        model.log_start = target.get();
                        model.log_end = target.get();
                    } else {
                        let keep = model.batches.iter().take_while(|b| b.header.last_offset() < target).count();
                        model.log_end = model.batches.get(keep).map_or(model.log_end, |b| b.header.base_offset.get());
                        model.batches.truncate(keep);
                        if model.log_end < model.log_start {
                            model.batches.clear();
                            model.log_end = model.log_start;
                        }
                    }
                }
                Op::Timestamp { ts } => {
                    let want = model.live_records().find(|(_, t)| t.get() >= ts);
                    let got = log.offset_for_timestamp(TimestampMs(ts)).expect("lookup");
                    prop_assert_eq!(got, want);
                }
                Op::MaxTimestamp => {
                    let mut want: Option<(TimestampMs, Offset)> = None;
                    for (o, t) in model.live_records() {
                        if want.is_none_or(|(b, _)| t > b) {
                            want = Some((t, o));
                        }
                    }
                    prop_assert_eq!(log.max_timestamp().expect("max"), want);
                }
            }
            prop_assert_eq!(log.log_start_offset(), Offset(model.log_start));
            prop_assert_eq!(log.log_end_offset(), Offset(model.log_end));
        }
    }
}
