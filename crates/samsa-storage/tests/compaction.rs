//! Log compaction: latest value per key, tombstones, lags and ratios, crashes
//! at every step of a segment replacement, concurrent readers and appenders,
//! every codec, and a model-based property test.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{batches, copy_dir, Key, Value};
use proptest::prelude::*;
use samsa_model::batch::{self, BatchBuilder, NewRecord};
use samsa_model::compression::Compression;
use samsa_model::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, TimestampMs};
use samsa_storage::cleaner::SwapCrashPoint;
use samsa_storage::{CompactionConfig, LogConfig, PartitionLog, StorageError};

const HOUR_MS: i64 = 60 * 60 * 1000;
/// The wall clock of every append (the `segment_ms` clock).
const T0: i64 = 1_000_000_000;

/// One record as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    offset: i64,
    key: Option<Key>,
    value: Value,
}

/// Everything appended: offset → (key, value), and each key's latest offset.
#[derive(Default, Clone, Debug)]
struct Model {
    by_offset: BTreeMap<i64, (Key, Value)>,
    latest: HashMap<Key, i64>,
}

impl Model {
    fn note(&mut self, base: Offset, records: &[(Key, Value)]) {
        for (i, (k, v)) in records.iter().enumerate() {
            let o = base.get() + i as i64;
            self.by_offset.insert(o, (k.clone(), v.clone()));
            self.latest.insert(k.clone(), o);
        }
    }

    /// The live keys' latest records, in offset order.
    fn live(&self) -> Vec<Rec> {
        let mut out: Vec<Rec> = self
            .latest
            .iter()
            .filter_map(|(k, &o)| {
                let (_, v) = self.by_offset.get(&o)?;
                v.as_ref().map(|v| Rec {
                    offset: o,
                    key: Some(k.clone()),
                    value: Some(v.clone()),
                })
            })
            .collect();
        out.sort_by_key(|r| r.offset);
        out
    }

    /// What a full read must satisfy whatever was compacted: every record is
    /// one that was appended at that offset, each live key's last record is
    /// its latest value, and a deleted key's last record (if any) is its
    /// tombstone — an older value never reappears.
    fn check(&self, read: &[Rec]) {
        let mut last: HashMap<&Key, &Rec> = HashMap::new();
        for r in read {
            let (k, v) = self
                .by_offset
                .get(&r.offset)
                .unwrap_or_else(|| panic!("offset {} was never appended", r.offset));
            assert_eq!(r.key.as_ref(), Some(k), "key at {}", r.offset);
            assert_eq!(&r.value, v, "value at {}", r.offset);
            last.insert(k, r);
        }
        for (k, &o) in &self.latest {
            let deleted = self.by_offset.get(&o).is_some_and(|(_, v)| v.is_none());
            match last.get(k) {
                Some(r) => assert_eq!(r.offset, o, "last record of key {k:?}"),
                None => assert!(deleted, "live key {k:?} vanished"),
            }
        }
    }
}

fn key(i: usize) -> Key {
    format!("key-{i}").into_bytes()
}

/// A batch of `records` with timestamp `ts`, values padded by `pad` bytes.
fn kv_batch(records: &[(Key, Value)], ts: i64, codec: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new().compression(codec);
    for (k, v) in records {
        b.push(NewRecord::new(TimestampMs(ts), Some(k), v.as_deref()));
    }
    b.build().expect("build")
}

fn append_kv(
    log: &PartitionLog,
    model: &mut Model,
    records: &[(Key, Value)],
    ts: i64,
    now: i64,
    codec: Compression,
) -> Offset {
    let mut b = kv_batch(records, ts, codec);
    let info = log
        .append(&mut b, LeaderEpoch(3), TimestampMs(now))
        .expect("append");
    model.note(info.base_offset, records);
    info.base_offset
}

fn value(k: usize, v: usize, pad: usize) -> Value {
    let mut s = format!("k{k}-v{v}-").into_bytes();
    s.resize(s.len() + pad, b'.');
    Some(s)
}

/// Read the whole log in 64 KiB chunks, checking CRCs, that offsets strictly
/// increase (batches and records) and that every batch decodes.
fn read_all(log: &PartitionLog) -> Vec<Rec> {
    let mut out: Vec<Rec> = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    let mut prev_batch_last = -1i64;
    while next < end {
        let r = log.read(next, 64 << 10, end, true).expect("read");
        assert!(!r.bytes.is_empty(), "no progress at {next}");
        for (h, b) in batches(&r.bytes) {
            assert!(
                h.base_offset.get() > prev_batch_last,
                "batch at {} after {}",
                h.base_offset,
                prev_batch_last
            );
            assert!(h.records_count <= h.last_offset_delta + 1);
            prev_batch_last = h.last_offset().get();
            for rec in batch::records(&b, 1 << 24).expect("records") {
                let o = h.record_offset(&rec).get();
                assert!(o <= h.last_offset().get());
                if let Some(p) = out.last() {
                    assert!(o > p.offset, "record offsets must increase");
                }
                if o >= next.get() {
                    out.push(Rec {
                        offset: o,
                        key: rec.key.map(|k| k.to_vec()),
                        value: rec.value.map(|v| v.to_vec()),
                    });
                }
            }
        }
        assert!(r.next_offset > next);
        next = r.next_offset;
    }
    out
}

fn compact_all(log: &PartitionLog, now: i64) -> CompactionConfig {
    let config = CompactionConfig {
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag_ms: 0,
        delete_retention_ms: 0,
        ..CompactionConfig::default()
    };
    for _ in 0..10 {
        let stats = log
            .compact(&config, TimestampMs(now))
            .expect("compact")
            .expect("due");
        if stats.segments_cleaned == 0 {
            return config;
        }
    }
    panic!("compaction did not become stable");
}

fn staged_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.expect("entry").file_name().into_string().ok())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect();
    v.sort();
    v
}

fn big_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 4096,
        segment_ms: HOUR_MS,
        ..LogConfig::default()
    }
}

/// 10 keys × 1,000 versions in batches of 5 (interleaved), tombstones for
/// keys 7-9, a few more versions of the live keys, then the very last
/// version of key 0 in a segment rolled on time, which is then sealed too
/// (the active segment is empty).
fn build_versions(log: &PartitionLog, model: &mut Model) {
    let mut pending = Vec::new();
    for v in 0..1000 {
        for k in 0..10 {
            pending.push((key(k), value(k, v, 24)));
            if pending.len() == 5 {
                append_kv(
                    log,
                    model,
                    &pending,
                    T0 - 5 * HOUR_MS,
                    T0,
                    Compression::None,
                );
                pending.clear();
            }
        }
    }
    let tombstones: Vec<_> = (7..10).map(|k| (key(k), None)).collect();
    append_kv(
        log,
        model,
        &tombstones,
        T0 - 5 * HOUR_MS,
        T0,
        Compression::None,
    );
    for v in 1000..1100 {
        let recs: Vec<_> = (0..7).map(|k| (key(k), value(k, v, 24))).collect();
        append_kv(log, model, &recs, T0 - 5 * HOUR_MS, T0, Compression::None);
    }
    // Past segment_ms: rolls, so this lands alone in the active segment.
    append_kv(
        log,
        model,
        &[(key(0), value(0, 9999, 0))],
        T0 - 5 * HOUR_MS,
        T0 + 2 * HOUR_MS,
        Compression::None,
    );
    log.roll().expect("roll");
}

#[test]
fn ten_keys_compact_to_the_latest_values_at_their_original_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), big_config()).expect("open");
    let mut model = Model::default();
    build_versions(&log, &mut model);
    let end = log.log_end_offset();
    let start = log.log_start_offset();
    let segments_before = log.segments_info().len();
    assert!(segments_before > 10, "{segments_before} segments");
    let active_before = *log.segments_info().last().expect("active");
    let before = read_all(&log);
    model.check(&before);
    assert_eq!(log.dirty_ratio(), 1.0);

    let now = T0 + 3 * HOUR_MS;
    let config = CompactionConfig {
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag_ms: 0,
        delete_retention_ms: 0,
        ..CompactionConfig::default()
    };
    let first = log
        .compact(&config, TimestampMs(now))
        .expect("compact")
        .expect("due");
    assert_eq!(first.dirty_ratio, 1.0);
    assert_eq!(
        first.tombstones_dropped, 0,
        "tombstones survive their first clean"
    );
    assert!(first.bytes_after < first.bytes_before / 10, "{first:?}");
    assert_eq!(first.first_dirty_offset, active_before.base_offset);
    assert_eq!(log.first_dirty_offset(), active_before.base_offset);
    assert_eq!(log.dirty_ratio(), 0.0);
    // The tombstones are still there after one clean.
    let after_first = read_all(&log);
    model.check(&after_first);
    assert!(after_first.iter().any(|r| r.value.is_none()));

    let second = log
        .compact(&config, TimestampMs(now))
        .expect("compact")
        .expect("due");
    assert_eq!(second.tombstones_dropped, 3, "{second:?}");
    compact_all(&log, now);

    let after = read_all(&log);
    assert_eq!(
        after,
        model.live(),
        "exactly the latest value of each live key"
    );
    assert_eq!(after.len(), 7);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.log_start_offset(), start);
    let segs = log.segments_info();
    assert!(
        segs.len() < segments_before,
        "small cleaned segments were merged"
    );
    assert_eq!(segs.first().expect("first").base_offset, start);
    assert_eq!(
        *segs.last().expect("active"),
        active_before,
        "active untouched"
    );

    // Reads starting anywhere (also inside removed ranges) land on the next
    // surviving batch.
    for o in (start.get()..end.get()).step_by(97) {
        let r = log.read(Offset(o), 1 << 20, end, true).expect("read");
        let bs = batches(&r.bytes);
        let first = bs.first().expect("a batch");
        assert!(first.0.last_offset().get() >= o);
    }
    // Timestamp lookups skip emptied batches.
    let (o, ts) = log
        .offset_for_timestamp(TimestampMs(0))
        .expect("lookup")
        .expect("found");
    assert_eq!(o.get(), after[0].offset);
    assert_eq!(ts, TimestampMs(T0 - 5 * HOUR_MS));

    // Both reopen paths (clean and unclean) see the same log.
    log.close().expect("close");
    drop(log);
    let log = PartitionLog::open(dir.path(), big_config()).expect("reopen");
    assert_eq!(read_all(&log), after);
    assert_eq!(log.first_dirty_offset(), active_before.base_offset);
    drop(log);
    let log = PartitionLog::open(dir.path(), big_config()).expect("reopen unclean");
    assert_eq!(read_all(&log), after);
    assert_eq!(log.log_end_offset(), end);
    let mut b = kv_batch(&[(key(1), value(1, 5000, 0))], T0, Compression::None);
    assert_eq!(
        log.append(&mut b, LeaderEpoch(3), TimestampMs(T0 + 2 * HOUR_MS))
            .expect("append")
            .base_offset,
        end
    );
}

#[test]
fn lag_ratio_and_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 512,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    let mut model = Model::default();
    let now = T0;
    // Old records (10 hours ago), then recent ones (1 minute ago).
    for v in 0..200 {
        let recs: Vec<_> = (0..4).map(|k| (key(k), value(k, v, 20))).collect();
        append_kv(
            &log,
            &mut model,
            &recs,
            now - 10 * HOUR_MS,
            now,
            Compression::None,
        );
    }
    let old_end = log.log_end_offset();
    for v in 200..400 {
        let recs: Vec<_> = (0..4).map(|k| (key(k), value(k, v, 20))).collect();
        append_kv(
            &log,
            &mut model,
            &recs,
            now - 60_000,
            now,
            Compression::None,
        );
    }
    let active = *log.segments_info().last().expect("active");
    assert!(active.size_bytes > 0);
    let active_file = dir
        .path()
        .join(format!("{:020}.log", active.base_offset.get()));
    let active_bytes = fs::read(&active_file).expect("active bytes");
    let before = read_all(&log);

    let lagged = CompactionConfig {
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag_ms: HOUR_MS,
        delete_retention_ms: 0,
        ..CompactionConfig::default()
    };
    let stats = log
        .compact(&lagged, TimestampMs(now))
        .expect("compact")
        .expect("due");
    assert!(stats.segments_cleaned > 0);
    // The checkpoint stops at the first segment holding recent records.
    let boundary = log.first_dirty_offset();
    assert!(boundary <= old_end, "{boundary} vs {old_end}");
    assert!(boundary.get() > 0);
    let after = read_all(&log);
    model.check(&after);
    let recent_before: Vec<_> = before
        .iter()
        .filter(|r| r.offset >= boundary.get())
        .collect();
    let recent_after: Vec<_> = after
        .iter()
        .filter(|r| r.offset >= boundary.get())
        .collect();
    assert_eq!(
        recent_before, recent_after,
        "recent records are not cleaned"
    );
    assert!(after.len() < before.len());
    assert_eq!(fs::read(&active_file).expect("active"), active_bytes);
    assert_eq!(*log.segments_info().last().expect("active"), active);

    // Under the lag, a second clean only rewrites (merges) the clean part.
    log.compact(&lagged, TimestampMs(now))
        .expect("compact")
        .expect("ratio 0 is always due");
    assert_eq!(read_all(&log), after);
    assert_eq!(log.first_dirty_offset(), boundary);
    assert_eq!(fs::read(&active_file).expect("active"), active_bytes);

    // While the recent segments are within the lag, the cleanable range has
    // (almost) no dirty bytes, whatever the log's overall dirty ratio.
    let ratio = log.dirty_ratio();
    assert!(ratio > 0.5 && ratio < 1.0, "{ratio}");
    let strict = CompactionConfig {
        min_cleanable_dirty_ratio: 0.5,
        min_compaction_lag_ms: HOUR_MS,
        ..CompactionConfig::default()
    };
    assert_eq!(
        log.compact(&strict, TimestampMs(now)).expect("compact"),
        None
    );
    // Later, with the lag passed, every sealed segment is cleanable: the
    // clean happens exactly when the ratio reaches the minimum.
    let later = TimestampMs(now + 2 * HOUR_MS);
    let above = CompactionConfig {
        min_cleanable_dirty_ratio: ratio + 0.001,
        ..strict
    };
    assert_eq!(log.compact(&above, later).expect("compact"), None);
    let at = CompactionConfig {
        min_cleanable_dirty_ratio: ratio,
        ..strict
    };
    let s = log.compact(&at, later).expect("compact").expect("due");
    assert_eq!(s.dirty_ratio, ratio);
    model.check(&read_all(&log));
    assert_eq!(log.dirty_ratio(), 0.0);

    // max.compaction.lag.ms forces a clean whatever the ratio.
    for v in 400..420 {
        let recs: Vec<_> = (0..4).map(|k| (key(k), value(k, v, 20))).collect();
        append_kv(
            &log,
            &mut model,
            &recs,
            now - 10 * HOUR_MS,
            now,
            Compression::None,
        );
    }
    // Big enough for a segment of its own: seals the records above.
    append_kv(
        &log,
        &mut model,
        &[(key(9), value(9, 0, 4000))],
        now,
        now,
        Compression::None,
    );
    let never_by_ratio = CompactionConfig {
        min_cleanable_dirty_ratio: 1.1,
        max_compaction_lag_ms: HOUR_MS,
        ..CompactionConfig::default()
    };
    assert!(log
        .compact(&never_by_ratio, later)
        .expect("compact")
        .is_some());
    model.check(&read_all(&log));
    let not_yet = CompactionConfig {
        max_compaction_lag_ms: 100 * HOUR_MS,
        ..never_by_ratio
    };
    assert_eq!(log.compact(&not_yet, later).expect("compact"), None);
}

/// A log whose first clean replaces single segments and whose second clean
/// merges many small cleaned segments (several originals per group).
fn crash_reference(dir: &Path, stage: usize) -> (Model, i64) {
    let config = crash_config();
    let log = PartitionLog::open(dir, config).expect("open");
    let mut model = Model::default();
    let now = T0;
    for v in 0..120 {
        let recs: Vec<_> = (0..6).map(|k| (key(k), value(k, v, 30))).collect();
        append_kv(
            &log,
            &mut model,
            &recs,
            now - HOUR_MS,
            now,
            Compression::None,
        );
        if v == 60 {
            append_kv(
                &log,
                &mut model,
                &[(key(5), None)],
                now - HOUR_MS,
                now,
                Compression::None,
            );
        }
    }
    if stage == 1 {
        log.compact(&crash_compaction_config(), TimestampMs(now))
            .expect("compact")
            .expect("due");
        for v in 120..200 {
            let recs: Vec<_> = (0..3).map(|k| (key(k), value(k, v, 30))).collect();
            append_kv(
                &log,
                &mut model,
                &recs,
                now - HOUR_MS,
                now,
                Compression::None,
            );
        }
    }
    append_kv(
        &log,
        &mut model,
        &[(key(0), value(0, 999, 0))],
        now - HOUR_MS,
        now + 2 * HOUR_MS,
        Compression::None,
    );
    log.close().expect("close");
    (model, now + 3 * HOUR_MS)
}

fn crash_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        segment_ms: HOUR_MS,
        ..LogConfig::default()
    }
}

fn crash_compaction_config() -> CompactionConfig {
    CompactionConfig {
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 0,
        ..CompactionConfig::default()
    }
}

#[test]
fn crash_at_every_step_of_a_replacement() {
    use SwapCrashPoint::*;
    for stage in [0, 1] {
        let reference = tempfile::tempdir().expect("tempdir");
        let (model, now) = crash_reference(reference.path(), stage);
        let pre = {
            let log = PartitionLog::open(reference.path(), crash_config()).expect("open");
            read_all(&log)
        };
        // The outcome of the same clean without a crash, and its segments.
        let post_dir = tempfile::tempdir().expect("tempdir");
        copy_dir(reference.path(), post_dir.path());
        let (post, post_segments, pre_segments) = {
            let log = PartitionLog::open(post_dir.path(), crash_config()).expect("open");
            let pre_segments = log.segments_info();
            let stats = log
                .compact(&crash_compaction_config(), TimestampMs(now))
                .expect("compact")
                .expect("due");
            assert!(stats.segments_cleaned > 1);
            if stage == 1 {
                assert!(
                    log.segments_info().len() + 2 < pre_segments.len(),
                    "second clean merges segments"
                );
            }
            (read_all(&log), log.segments_info(), pre_segments)
        };
        model.check(&post);
        assert_ne!(pre, post);
        for group in [0usize, 1] {
            // Where the replaced range ends once group `group` is done.
            let done_end = post_segments[group].next_offset.get();
            let not_done_end = if group == 0 {
                pre_segments[0].base_offset.get()
            } else {
                post_segments[group - 1].next_offset.get()
            };
            for point in [
                Cleaned,
                IndexesStaged,
                Swapped,
                OriginalsDeleted,
                IndexesInstalled,
                Installed,
            ] {
                let dir = tempfile::tempdir().expect("tempdir");
                copy_dir(reference.path(), dir.path());
                {
                    let log = PartitionLog::open(dir.path(), crash_config()).expect("open");
                    let err = log
                        .compact_crashing_at(
                            &crash_compaction_config(),
                            TimestampMs(now),
                            group,
                            point,
                        )
                        .expect_err("simulated crash");
                    assert!(matches!(err, StorageError::Failed { .. }), "{err}");
                    // Readers keep working on the last published state.
                    model.check(&read_all(&log));
                }
                let staged = staged_files(dir.path());
                match point {
                    Cleaned => {
                        assert!(staged.iter().all(|n| n.ends_with(".cleaned")) && staged.len() == 3)
                    }
                    IndexesStaged => assert_eq!(staged.len(), 3, "{staged:?}"),
                    Swapped | OriginalsDeleted => {
                        assert!(staged.iter().all(|n| n.ends_with(".swap")) && staged.len() == 3)
                    }
                    IndexesInstalled => assert_eq!(staged.len(), 1, "{staged:?}"),
                    Installed => assert!(staged.is_empty()),
                }
                let committed = !matches!(point, Cleaned | IndexesStaged);
                let boundary = if committed { done_end } else { not_done_end };
                let expected: Vec<Rec> = post
                    .iter()
                    .filter(|r| r.offset < boundary)
                    .chain(pre.iter().filter(|r| r.offset >= boundary))
                    .cloned()
                    .collect();

                let log = PartitionLog::open(dir.path(), crash_config()).expect("reopen");
                assert!(
                    staged_files(dir.path()).is_empty(),
                    "{stage}/{group}/{point:?}"
                );
                let got = read_all(&log);
                assert_eq!(got, expected, "stage {stage} group {group} {point:?}");
                model.check(&got);
                assert_eq!(
                    log.log_end_offset(),
                    pre_segments.last().expect("a").next_offset
                );
                // Finishing the clean reaches the crash-free outcome.
                log.compact(&crash_compaction_config(), TimestampMs(now))
                    .expect("compact")
                    .expect("due");
                assert_eq!(
                    read_all(&log),
                    post,
                    "stage {stage} group {group} {point:?}"
                );
                drop(log);
                let log = PartitionLog::open(dir.path(), crash_config()).expect("reopen");
                assert_eq!(read_all(&log), post);
            }
        }
    }
}

#[test]
fn truncating_into_a_compacted_segment_survives_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, now) = crash_reference(dir.path(), 0);
    let log = PartitionLog::open(dir.path(), crash_config()).expect("open");
    compact_all(&log, now);
    let compacted = read_all(&log);
    // Cut in the middle of the cleaned range: the segment holding the cut
    // (with gaps between its batches) becomes the active one.
    let cut = compacted[compacted.len() / 2].offset;
    log.truncate_to(Offset(cut)).expect("truncate");
    let end = log.log_end_offset();
    assert!(end.get() <= cut);
    let kept: Vec<Rec> = compacted
        .iter()
        .filter(|r| r.offset < end.get())
        .cloned()
        .collect();
    assert_eq!(read_all(&log), kept);
    assert!(log.first_dirty_offset() <= end);
    // The cut lies in a compacted segment (with gaps between its batches),
    // which is now the active one.
    assert!(
        log.segments_info()
            .last()
            .expect("active")
            .base_offset
            .get()
            < cut
    );
    let r = log
        .read(log.log_start_offset(), usize::MAX, end, true)
        .expect("read");
    let bs = batches(&r.bytes);
    assert!(
        bs.windows(2)
            .any(|w| w[1].0.base_offset > w[0].0.next_offset()),
        "gaps between batches"
    );
    // Within segment_ms of the segment's first batch: no roll, the append
    // lands behind the gaps in the same (active) segment.
    let segments = log.segments_info().len();
    let mut b = kv_batch(&[(key(1), value(1, 7777, 0))], now, Compression::None);
    log.append(&mut b, LeaderEpoch(3), TimestampMs(T0 - HOUR_MS))
        .expect("append");
    assert_eq!(log.segments_info().len(), segments);
    drop(log); // unclean: the active segment is fully recovered
    let log = PartitionLog::open(dir.path(), crash_config()).expect("reopen");
    let mut want = kept;
    want.push(Rec {
        offset: end.get(),
        key: Some(key(1)),
        value: value(1, 7777, 0),
    });
    assert_eq!(read_all(&log), want);
}

#[test]
fn readers_and_appenders_run_during_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    let mut model = Model::default();
    for v in 0..300 {
        let recs: Vec<_> = (0..5).map(|k| (key(k), value(k, v, 16))).collect();
        append_kv(&log, &mut model, &recs, T0, T0, Compression::None);
    }
    let done = AtomicBool::new(false);
    let compactions = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut rounds = 0u32;
            while !done.load(Ordering::Relaxed) || rounds < 3 {
                let recs = read_all(&log);
                assert!(!recs.is_empty());
                rounds += 1;
            }
            rounds
        });
        let appender = s.spawn(|| {
            let mut appended = Model::default();
            for v in 300..1300 {
                let recs: Vec<_> = (0..5).map(|k| (key(k), value(k, v, 16))).collect();
                let mut b = kv_batch(&recs, T0, Compression::None);
                let info = log
                    .append(&mut b, LeaderEpoch(3), TimestampMs(T0))
                    .expect("append during compaction");
                appended.note(info.base_offset, &recs);
            }
            appended
        });
        let config = CompactionConfig {
            min_cleanable_dirty_ratio: 0.0,
            ..CompactionConfig::default()
        };
        let mut n = 0;
        while !appender.is_finished() || n < 3 {
            if log
                .compact(&config, TimestampMs(T0 + HOUR_MS))
                .expect("compact")
                .is_some()
            {
                n += 1;
            }
        }
        let appended = appender.join().expect("appender");
        done.store(true, Ordering::Relaxed);
        let rounds = reader.join().expect("reader");
        assert!(rounds >= 3);
        for (o, kv) in appended.by_offset {
            model.by_offset.insert(o, kv.clone());
            model.latest.insert(kv.0, o);
        }
        n
    });
    assert!(compactions >= 3);
    let all = read_all(&log);
    model.check(&all);
    assert_eq!(log.log_end_offset().get(), 1300 * 5);
}

#[test]
fn every_codec_is_compacted_and_stays_readable() {
    for codec in Compression::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), big_config()).expect("open");
        let mut model = Model::default();
        for v in 0..150 {
            // Several versions of the same keys inside one batch, too.
            let recs: Vec<_> = (0..12)
                .map(|i| {
                    let k = (i * 7 + v) % 5;
                    let val = if v % 40 == 39 && k == 4 {
                        None
                    } else {
                        value(k, v * 100 + i, 200)
                    };
                    (key(k), val)
                })
                .collect();
            append_kv(&log, &mut model, &recs, T0 - HOUR_MS, T0, codec);
        }
        let pid_batch: Vec<_> = vec![(key(3), value(3, 99_999, 10))];
        let mut b = BatchBuilder::new()
            .compression(codec)
            .producer(ProducerId(42), ProducerEpoch(0), 0)
            .record(NewRecord::new(
                TimestampMs(T0 - HOUR_MS),
                Some(&key(3)),
                value(3, 99_999, 10).as_deref(),
            ))
            .build()
            .expect("build");
        let info = log
            .append(&mut b, LeaderEpoch(3), TimestampMs(T0))
            .expect("append");
        model.note(info.base_offset, &pid_batch);
        append_kv(
            &log,
            &mut model,
            &[(key(3), value(3, 100_000, 0))],
            T0 - HOUR_MS,
            T0 + 2 * HOUR_MS,
            codec,
        );
        log.roll().expect("roll");
        compact_all(&log, T0 + 3 * HOUR_MS);
        let got = read_all(&log);
        model.check(&got);
        assert_eq!(got, model.live(), "{codec}");
        // Rebuilt batches keep the codec; the emptied idempotent batch stays
        // as an empty batch with its producer fields.
        let end = log.log_end_offset();
        let r = log
            .read(log.log_start_offset(), usize::MAX, end, true)
            .expect("read");
        let mut saw_pid = false;
        for (h, _) in batches(&r.bytes) {
            if h.records_count > 0 {
                assert_eq!(h.compression().expect("codec"), codec);
            }
            if h.producer_id == ProducerId(42) {
                assert_eq!(h.records_count, 0);
                assert_eq!(h.base_offset, info.base_offset);
                saw_pid = true;
            }
        }
        assert!(saw_pid, "{codec}");
    }
}

// ---------------------------------------------------------------------------
// Property test

#[derive(Clone, Debug)]
enum Op {
    /// Records as (key index, value or tombstone), codec, transactional, idempotent.
    Append(Vec<(u8, bool)>, u8, bool, bool),
    Compact {
        map_entries_max: usize,
    },
    Reopen {
        clean: bool,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::collection::vec((0u8..6, prop::bool::weighted(0.8)), 1..6),
            0u8..5,
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(r, c, t, p)| Op::Append(r, c, t, p)),
        2 => (1usize..8).prop_map(|m| Op::Compact { map_entries_max: m }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

fn prop_config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn compaction_keeps_the_latest_value_of_every_key(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), prop_config()).expect("open");
        let mut model = Model::default();
        let mut seq = 0i32;
        let mut txn_seq = 0i32;
        let mut counter = 0usize;
        for op in ops {
            match op {
                Op::Append(recs, codec, txn, idempotent) => {
                    let codec = Compression::ALL[usize::from(codec) % 5];
                    let recs: Vec<(Key, Value)> = recs
                        .into_iter()
                        .map(|(k, live)| {
                            counter += 1;
                            (key(usize::from(k)), live.then(|| format!("v{counter}").into_bytes()))
                        })
                        .collect();
                    let mut b = BatchBuilder::new().compression(codec).transactional(txn);
                    // A transactional producer never writes outside its
                    // transaction (INVALID_TXN_STATE): one id for each kind.
                    if txn || idempotent {
                        let (pid, seq) = if txn { (2, &mut txn_seq) } else { (1, &mut seq) };
                        b = b.producer(ProducerId(pid), ProducerEpoch(0), *seq);
                        *seq += recs.len() as i32;
                    }
                    for (k, v) in &recs {
                        b.push(NewRecord::new(TimestampMs(T0), Some(k), v.as_deref()));
                    }
                    let mut bytes = b.build().expect("build");
                    let info = log.append(&mut bytes, LeaderEpoch(1), TimestampMs(T0)).expect("append");
                    model.note(info.base_offset, &recs);
                }
                Op::Compact { map_entries_max } => {
                    let end = log.log_end_offset();
                    let start = log.log_start_offset();
                    let config = CompactionConfig {
                        min_cleanable_dirty_ratio: 0.0,
                        delete_retention_ms: 0,
                        map_entries_max,
                        ..CompactionConfig::default()
                    };
                    log.compact(&config, TimestampMs(T0 + 1)).expect("compact");
                    prop_assert_eq!(log.log_end_offset(), end);
                    prop_assert_eq!(log.log_start_offset(), start);
                }
                Op::Reopen { clean } => {
                    if clean {
                        log.close().expect("close");
                    }
                    drop(log);
                    log = PartitionLog::open(dir.path(), prop_config()).expect("reopen");
                }
            }
            model.check(&read_all(&log));
        }
    }
}

/// A tombstone kept by one clean is removed by a later clean once
/// `delete.retention.ms` has passed, even when nothing new was written (the
/// dirty ratio is then 0): the pending tombstone makes the clean due.
#[test]
fn kept_tombstones_are_removed_after_delete_retention_without_new_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), big_config()).expect("open");
    let mut model = Model::default();
    let t0 = 1_000_000;
    append_kv(
        &log,
        &mut model,
        &[(key(0), value(0, 0, 8)), (key(1), value(1, 0, 8))],
        t0,
        t0,
        Compression::None,
    );
    append_kv(
        &log,
        &mut model,
        &[(key(1), None)],
        t0,
        t0,
        Compression::None,
    );
    log.roll().expect("roll");
    let config = CompactionConfig {
        min_cleanable_dirty_ratio: 0.5,
        min_compaction_lag_ms: 0,
        delete_retention_ms: 1_000,
        ..CompactionConfig::default()
    };
    // First clean: the old value of key 1 goes, its tombstone stays.
    log.compact(&config, TimestampMs(t0 + 10))
        .expect("compact")
        .expect("due");
    let keys = |log: &PartitionLog| {
        read_all(log)
            .into_iter()
            .map(|r| (r.key, r.value.is_none()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&log),
        vec![(Some(key(0)), false), (Some(key(1)), true)]
    );
    // Nothing dirty and the tombstone is still within delete.retention.ms: not due.
    assert!(log
        .compact(&config, TimestampMs(t0 + 500))
        .expect("compact")
        .is_none());
    // Past it: due without new data, and the tombstone is gone.
    let stats = log
        .compact(&config, TimestampMs(t0 + 2_000))
        .expect("compact")
        .expect("due");
    assert_eq!(stats.tombstones_dropped, 1);
    assert_eq!(keys(&log), vec![(Some(key(0)), false)]);
}
