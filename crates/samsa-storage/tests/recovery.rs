//! Crash recovery: torn tails at every byte, flipped bits, damaged or missing
//! index files, leftovers of interrupted operations.

mod common;

use std::fs::{self, OpenOptions};
use std::path::Path;

use common::*;
use samsa_model::batch::field;
use samsa_model::{Offset, TimestampMs};
use samsa_storage::{LogConfig, PartitionLog};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

/// What [`build`] made.
type Built = (Records, Records, std::path::PathBuf, u64);
type Records = Vec<(Offset, Vec<u8>)>;

/// Builds a log of several segments; returns (records before the last batch,
/// all records, active log file, its size before the last batch).
fn build(dir: &Path) -> Built {
    let log = PartitionLog::open(dir, config()).expect("open");
    for i in 0..20 {
        append(&log, batch(1 + i % 3, 1000 + i as i64, &format!("b{i}")), 0);
    }
    let before = all_records(&log);
    let active = log_files(dir).pop().expect("active");
    let len_before = fs::metadata(&active).expect("stat").len();
    append(&log, batch(3, 5000, "last"), 0);
    let after = all_records(&log);
    assert_eq!(
        log_files(dir).pop().expect("active"),
        active,
        "the last batch must land in the same segment"
    );
    drop(log); // no close: unclean
    (before, after, active, len_before)
}

/// A copy of `reference` whose file `name` is cut to `len` bytes.
fn copy_truncated(reference: &Path, name: &std::ffi::OsStr, len: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(reference, dir.path());
    OpenOptions::new()
        .write(true)
        .open(dir.path().join(name))
        .and_then(|f| f.set_len(len))
        .expect("truncate");
    dir
}

fn check_reopened(dir: &Path, expected: &[(Offset, Vec<u8>)]) {
    let log = PartitionLog::open(dir, config()).expect("reopen");
    let end = expected.last().map_or(Offset(0), |r| r.0.plus(1));
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(all_records(&log), expected);
    // Appending continues right after the recovered end and survives reopen.
    assert_eq!(append(&log, batch(1, 9, "again"), 0), end);
    drop(log);
    let log = PartitionLog::open(dir, config()).expect("reopen again");
    assert_eq!(log.log_end_offset(), end.plus(1));
    let mut want = expected.to_vec();
    want.push((end, b"again:0".to_vec()));
    assert_eq!(all_records(&log), want);
}

#[test]
fn torn_write_at_every_byte_of_the_last_batch() {
    let reference = tempfile::tempdir().expect("tempdir");
    let (before, after, active, len_before) = build(reference.path());
    let len_after = fs::metadata(&active).expect("stat").len();
    let name = active.file_name().expect("name").to_owned();
    for cut in len_before..=len_after {
        for clean_marker in [false, true] {
            let dir = copy_truncated(reference.path(), &name, cut);
            if clean_marker {
                // A marker that lies (e.g. written by a buggy shutdown) must
                // not stop recovery of a torn tail.
                fs::write(dir.path().join("clean-shutdown"), b"").expect("marker");
            }
            let expected = if cut == len_after { &after } else { &before };
            check_reopened(dir.path(), expected);
        }
    }
}

#[test]
fn torn_tail_with_garbage_instead_of_zeros() {
    let reference = tempfile::tempdir().expect("tempdir");
    let (before, _, active, len_before) = build(reference.path());
    let name = active.file_name().expect("name").to_owned();
    for fill in [0x00u8, 0xFF, 0x02] {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(reference.path(), dir.path());
        let path = dir.path().join(&name);
        let mut bytes = fs::read(&path).expect("read");
        for b in &mut bytes[len_before as usize + 12..] {
            *b = fill;
        }
        fs::write(&path, &bytes).expect("write");
        check_reopened(dir.path(), &before);
    }
}

#[test]
fn flipped_bit_in_the_last_batch_is_truncated() {
    let reference = tempfile::tempdir().expect("tempdir");
    let (before, _, active, len_before) = build(reference.path());
    let name = active.file_name().expect("name").to_owned();
    let bytes = fs::read(&active).expect("read");
    for at in len_before as usize..bytes.len() {
        let rel = at - len_before as usize;
        if (field::PARTITION_LEADER_EPOCH..field::MAGIC).contains(&rel) {
            continue; // the leader epoch is outside the CRC, by design
        }
        for bit in [0u8, 7] {
            let dir = tempfile::tempdir().expect("tempdir");
            copy_dir(reference.path(), dir.path());
            let mut m = bytes.clone();
            m[at] ^= 1 << bit;
            fs::write(dir.path().join(&name), &m).expect("write");
            let log = PartitionLog::open(dir.path(), config()).expect("reopen");
            assert_eq!(all_records(&log), before, "flip at byte {rel} bit {bit}");
        }
    }
}

#[test]
fn missing_and_garbage_index_files_are_rebuilt() {
    let reference = tempfile::tempdir().expect("tempdir");
    let (_, after, _, _) = build(reference.path());
    let expected_ts = |log: &PartitionLog| {
        (
            log.offset_for_timestamp(TimestampMs(1010)).expect("lookup"),
            log.max_timestamp().expect("max"),
        )
    };
    let want_ts = {
        let log = PartitionLog::open(reference.path(), config()).expect("open");
        let t = expected_ts(&log);
        log.close().expect("close");
        t
    };
    // Batch 8 (offsets 15..=17) holds timestamps 1008, 1009, 1010.
    assert_eq!(want_ts.0, Some((Offset(17), TimestampMs(1010))));
    let index_snapshot: Vec<(std::ffi::OsString, Vec<u8>)> = fs::read_dir(reference.path())
        .expect("list")
        .map(|e| e.expect("entry"))
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.ends_with(".index") || n.ends_with(".timeindex")
        })
        .map(|e| (e.file_name(), fs::read(e.path()).expect("read")))
        .collect();
    assert!(index_snapshot.iter().any(|(_, b)| !b.is_empty()));

    type Damage = fn(&Path, &[u8]);
    let damages: [(&str, Damage); 5] = [
        ("deleted", |p, _| fs::remove_file(p).expect("rm")),
        ("emptied", |p, _| fs::write(p, b"").expect("write")),
        ("partial entry", |p, b| {
            let mut b = b.to_vec();
            b.push(1);
            fs::write(p, b).expect("write")
        }),
        ("garbage", |p, b| {
            fs::write(p, vec![0xA5; b.len().max(24)]).expect("write")
        }),
        ("past the end", |p, b| {
            let mut b = b.to_vec();
            b.extend_from_slice(&[0x7F; 24]);
            fs::write(p, b).expect("write")
        }),
    ];
    for (what, damage) in damages {
        for clean in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            copy_dir(reference.path(), dir.path());
            if !clean {
                fs::remove_file(dir.path().join("clean-shutdown")).expect("unmark");
            }
            for (name, bytes) in &index_snapshot {
                damage(&dir.path().join(name), bytes);
            }
            let log = PartitionLog::open(dir.path(), config()).expect("reopen");
            assert_eq!(all_records(&log), after, "{what} clean={clean}");
            assert_eq!(expected_ts(&log), want_ts, "{what} clean={clean}");
            log.close().expect("close");
            // Emptied indexes are indistinguishable from "no entries yet" only
            // when the segment has none; everything else is rebuilt exactly.
            if what != "emptied" {
                for (name, bytes) in &index_snapshot {
                    let now = fs::read(dir.path().join(name)).expect("rebuilt");
                    assert_eq!(&now, bytes, "{what}: {name:?} clean={clean}");
                }
            }
        }
    }
}

#[test]
fn crash_leftovers_are_cleaned_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = PartitionLog::open(dir.path(), config()).expect("open");
        for i in 0..10 {
            append(&log, batch(2, i, "x"), 0);
        }
    }
    fs::write(dir.path().join("log-start-offset.tmp"), b"junk").expect("tmp");
    fs::write(dir.path().join("00000000000000099999.index"), b"orphan").expect("orphan");
    fs::write(dir.path().join("00000000000000099999.timeindex"), b"").expect("orphan");
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert!(!dir.path().join("log-start-offset.tmp").exists());
    assert!(!dir.path().join("00000000000000099999.index").exists());
    assert!(!dir.path().join("00000000000000099999.timeindex").exists());
    assert_eq!(log.log_end_offset(), Offset(20));
}

#[test]
fn log_start_beyond_recovered_end_restarts_there() {
    // DeleteRecords moved the start to the end, then the unflushed tail was lost.
    let reference = tempfile::tempdir().expect("tempdir");
    let (before, _, active, len_before) = build(reference.path());
    let end_before = before.last().expect("records").0.plus(1);
    {
        let log = PartitionLog::open(reference.path(), config()).expect("open");
        let end = log.log_end_offset();
        log.delete_records_before(end).expect("delete");
    }
    OpenOptions::new()
        .write(true)
        .open(&active)
        .and_then(|f| f.set_len(len_before))
        .expect("lose tail");
    let log = PartitionLog::open(reference.path(), config()).expect("reopen");
    let start = log.log_start_offset();
    assert!(start > end_before);
    assert_eq!(log.log_end_offset(), start);
    assert_eq!(append(&log, batch(1, 0, "n"), 0), start);
    assert_eq!(log.segments_info().len(), 1);
}

#[test]
fn empty_directory_and_damaged_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("not-yet-created");
    let log = PartitionLog::open(&path, config()).expect("open creates");
    assert_eq!(log.log_end_offset(), Offset(0));
    for i in 0..30 {
        append(&log, batch(1, i, "c"), 0);
    }
    log.delete_oldest_segment().expect("retention");
    let start = log.log_start_offset();
    assert!(start > Offset(0));
    drop(log);
    fs::write(path.join("log-start-offset"), b"garbage!garbage!").expect("damage");
    let log = PartitionLog::open(&path, config()).expect("reopen");
    // Falls back to the first segment's base, which is the same here.
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.log_end_offset(), Offset(30));
}

// --- unclean shutdown within the same OS boot (LogConfig::boot_id) ---

const BOOT: u128 = 0x1234_5678_9abc_def0_0fed_cba9_8765_4321;

fn boot_config(boot: Option<u128>) -> LogConfig {
    LogConfig {
        index_interval_bytes: 64,
        boot_id: boot,
        ..LogConfig::default()
    }
}

/// Ten batches in one (active) segment, closed uncleanly during boot `BOOT`.
/// Returns the log file, the byte range of batch 5 and its base offset.
fn build_one_segment(dir: &Path) -> (std::path::PathBuf, std::ops::Range<usize>, Offset) {
    let log = PartitionLog::open(dir, boot_config(Some(BOOT))).expect("open");
    let mut fifth = None;
    for i in 0..10 {
        let active = log_files(dir).pop().expect("active");
        let start = fs::metadata(&active).expect("stat").len() as usize;
        let base = append(&log, batch(4, 100 + i, &format!("b{i}")), 0);
        let end = fs::metadata(&active).expect("stat").len() as usize;
        if i == 5 {
            fifth = Some((start..end, base));
        }
    }
    drop(log); // no close: unclean
    let (range, base) = fifth.expect("batch 5");
    (log_files(dir).pop().expect("active"), range, base)
}

/// A copy of `reference` with one bit flipped in file `name` at `at`.
fn copy_damaged(reference: &Path, name: &std::ffi::OsStr, at: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(reference, dir.path());
    let path = dir.path().join(name);
    let mut bytes = fs::read(&path).expect("read");
    bytes[at] ^= 0x40;
    fs::write(&path, &bytes).expect("write");
    dir
}

fn reopened_end(dir: &Path, boot: Option<u128>) -> Offset {
    PartitionLog::open(dir, boot_config(boot))
        .expect("reopen")
        .log_end_offset()
}

#[test]
fn an_unclean_shutdown_in_another_boot_verifies_the_whole_active_segment() {
    let reference = tempfile::tempdir().expect("tempdir");
    let (active, fifth, fifth_base) = build_one_segment(reference.path());
    assert!(
        reference.path().join("boot-id").exists(),
        "the boot is recorded"
    );
    let name = active.file_name().expect("name").to_owned();
    // A damaged record byte in batch 5 of 10 (inside the CRC, not a header
    // field the header walk would notice), as an OS crash can leave it.
    for boot in [Some(BOOT ^ 1), None] {
        let dir = copy_damaged(reference.path(), &name, fifth.end - 3);
        assert_eq!(reopened_end(dir.path(), boot), fifth_base, "boot {boot:?}");
    }
    // A torn or unreadable boot-id file is another boot too.
    let dir = copy_damaged(reference.path(), &name, fifth.end - 3);
    fs::write(dir.path().join("boot-id"), b"12345678").expect("torn boot id");
    assert_eq!(reopened_end(dir.path(), Some(BOOT)), fifth_base);
}

#[test]
fn an_unclean_shutdown_in_the_same_boot_trusts_the_page_cache_but_cuts_a_torn_tail() {
    let reference = tempfile::tempdir().expect("tempdir");
    let (active, fifth, _) = build_one_segment(reference.path());
    let name = active.file_name().expect("name").to_owned();
    let intact = tempfile::tempdir().expect("tempdir");
    copy_dir(reference.path(), intact.path());
    let full = reopened_end(intact.path(), Some(BOOT));
    assert_eq!(full, Offset(40));

    // Same boot: a process crash. The bytes in the page cache are the ones
    // written, so the active segment is not re-read and CRC-checked (the
    // damage planted here, which only a disk could cause, goes unnoticed:
    // that is the point of the fast path).
    let dir = copy_damaged(reference.path(), &name, fifth.end - 3);
    assert_eq!(reopened_end(dir.path(), Some(BOOT)), full);

    // A write cut short by the kill (a partial last batch) is still removed,
    // and appends continue after the last whole batch.
    let len = fs::metadata(&active).expect("stat").len();
    for cut in [len - 1, len - 40] {
        let dir = copy_truncated(reference.path(), &name, cut);
        let log = PartitionLog::open(dir.path(), boot_config(Some(BOOT))).expect("reopen");
        assert_eq!(log.log_end_offset(), Offset(36));
        assert_eq!(append(&log, batch(1, 9, "again"), 0), Offset(36));
        let values: Vec<_> = all_records(&log).into_iter().map(|(_, v)| v).collect();
        assert_eq!(values.len(), 37);
        assert_eq!(values.last().map(Vec::as_slice), Some(&b"again:0"[..]));
    }
}

#[test]
fn without_a_boot_id_nothing_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), boot_config(None)).expect("open");
    append(&log, batch(2, 1, "x"), 0);
    drop(log);
    assert!(!dir.path().join("boot-id").exists());
}

// --- segments rolled but not yet synced (the recovery point) ---

/// Where each batch of a log directory sits: (segment file, byte range in
/// it, base offset), in offset order.
fn batch_map(dir: &Path) -> Vec<(std::path::PathBuf, std::ops::Range<usize>, Offset)> {
    let mut out = Vec::new();
    for file in log_files(dir) {
        let bytes = fs::read(&file).expect("read");
        let mut at = 0;
        for (h, b) in batches(&bytes) {
            out.push((file.clone(), at..at + b.len(), h.base_offset));
            at += b.len();
        }
    }
    out
}

/// A copy of `reference` with a damaged record byte in the batch of `file`
/// picked by `pick` from its batches (file, byte range, base offset); returns
/// the copy, the batch's byte range and its base offset.
fn damage_batch_of(
    reference: &Path,
    file: &Path,
    pick: impl FnOnce(
        Vec<(std::path::PathBuf, std::ops::Range<usize>, Offset)>,
    ) -> Option<(std::path::PathBuf, std::ops::Range<usize>, Offset)>,
) -> (tempfile::TempDir, std::ops::Range<usize>, Offset) {
    let in_file = batch_map(reference)
        .into_iter()
        .filter(|(f, _, _)| f == file)
        .collect();
    let (_, range, base) = pick(in_file).expect("a batch in the file");
    let name = file.file_name().expect("name");
    (copy_damaged(reference, name, range.end - 3), range, base)
}

/// The records of `all` below `offset`.
fn below(all: &[(Offset, Vec<u8>)], offset: Offset) -> Records {
    all.iter().filter(|(o, _)| *o < offset).cloned().collect()
}

/// A log of many small segments, each batch `b{i}` three records.
fn append_rolling(log: &PartitionLog, from: usize, to: usize) {
    for i in from..to {
        append(log, batch(3, 1000 + i as i64, &format!("b{i}")), 0);
    }
}

#[test]
fn a_crash_before_rolled_segments_are_synced_keeps_a_prefix_of_the_log() {
    let reference = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(reference.path(), config()).expect("open");
    append_rolling(&log, 0, 30);
    assert!(log.needs_sync(), "rolled segments wait for a sync");
    let all = all_records(&log);
    drop(log); // no close, no sync: a machine crash could lose any of it
    let files = log_files(reference.path());
    assert!(files.len() >= 5, "several segments: {files:?}");
    // Damage (a torn page, read back as garbage) in the middle of the second
    // segment: everything from that batch on is gone, including the later
    // segments, which would otherwise leave a hole in the log.
    let (dir, range, base) = damage_batch_of(reference.path(), &files[1], |b| b.into_iter().next());
    let expected = below(&all, base);
    check_reopened(dir.path(), &expected);
    assert_eq!(
        log_files(dir.path()).len(),
        2,
        "the segments after the damaged one are deleted"
    );
    // The same for a segment cut short (its last pages never written).
    let name = files[1].file_name().expect("name");
    let dir = copy_truncated(reference.path(), name, range.start as u64 + 5);
    check_reopened(dir.path(), &expected);
}

#[test]
fn synced_segments_are_trusted_and_only_later_ones_are_verified() {
    let reference = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(reference.path(), config()).expect("open");
    append_rolling(&log, 0, 20);
    assert!(log.needs_sync());
    assert!(log.sync_rolled().expect("sync"));
    assert!(!log.needs_sync(), "nothing left to sync");
    assert!(!log.sync_rolled().expect("sync again"));
    let synced_files = log_files(reference.path()).len();
    append_rolling(&log, 20, 40);
    assert!(log.needs_sync(), "new rolls wait for the next sync");
    let all = all_records(&log);
    drop(log);
    let files = log_files(reference.path());
    let first = |b: Vec<_>| b.into_iter().next();

    // A flipped bit in a synced segment is not looked for (no full scan of
    // what is known to be on disk)...
    let (dir, _, _) = damage_batch_of(reference.path(), &files[0], first);
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert_eq!(log.log_end_offset(), all.last().expect("records").0.plus(1));
    drop(log);

    // ...while the same damage in a segment rolled after the sync cuts the log there.
    let (dir, _, base) = damage_batch_of(reference.path(), &files[synced_files], first);
    check_reopened(dir.path(), &below(&all, base));
}

#[test]
fn a_truncation_below_the_recovery_point_moves_it_back() {
    let reference = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(reference.path(), config()).expect("open");
    append_rolling(&log, 0, 20);
    assert!(log.sync_rolled().expect("sync"));
    // A follower truncating into the second segment, then taking new records
    // that roll it and more segments, none synced.
    let cut = batch_map(reference.path())
        .into_iter()
        .filter(|(f, _, _)| *f == log_files(reference.path())[1])
        .map(|(_, _, base)| base)
        .nth(1)
        .expect("second batch of segment 1");
    log.truncate_to(cut).expect("truncate");
    append_rolling(&log, 100, 115);
    let all = all_records(&log);
    drop(log);
    // The segment truncated into lost a later batch: it must be verified
    // even though it lies below where the recovery point was before.
    let segment_1 = log_files(reference.path())[1].clone();
    let (dir, _, base) = damage_batch_of(reference.path(), &segment_1, |b| b.into_iter().last());
    assert!(
        base > cut,
        "the damaged batch was appended after the truncation"
    );
    check_reopened(dir.path(), &below(&all, base));
}

// --- damage in segments that were fsynced whole (below the recovery point,
// or any segment after a clean shutdown): reported, never cut ---

/// A copy of `reference` with the `batchLength` of the batch at `range` in
/// `file` overwritten with a length far past the end of the segment.
fn copy_with_bad_length(
    reference: &Path,
    file: &Path,
    range: &std::ops::Range<usize>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(reference, dir.path());
    let path = dir.path().join(file.file_name().expect("name"));
    let mut bytes = fs::read(&path).expect("read");
    let at = range.start + field::BATCH_LENGTH;
    bytes[at..at + 4].copy_from_slice(&0x00F0_0000u32.to_be_bytes());
    fs::write(&path, &bytes).expect("write");
    dir
}

/// Sizes of every segment file of `dir`.
fn segment_sizes(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    log_files(dir)
        .into_iter()
        .map(|f| {
            let len = fs::metadata(&f).expect("stat").len();
            (f.file_name().expect("name").into(), len)
        })
        .collect()
}

/// Reads from `from` until the log end or an error; returns the offsets of
/// the records read and the error that stopped it, if any.
fn read_until_error(log: &PartitionLog, from: Offset) -> (Vec<Offset>, Option<String>) {
    let mut out = Vec::new();
    let mut next = from;
    let end = log.log_end_offset();
    while next < end {
        let r = match log.read(next, 700, end, true) {
            Ok(r) => r,
            Err(e) => return (out, Some(e.to_string())),
        };
        assert!(!r.bytes.is_empty(), "no progress at {next}");
        for (h, _) in batches(&r.bytes) {
            out.extend((h.base_offset.get()..=h.last_offset().get()).map(Offset));
        }
        next = r.next_offset;
    }
    (out, None)
}

#[test]
fn a_damaged_batch_in_a_closed_segment_is_reported_and_nothing_is_cut() {
    let reference = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(reference.path(), config()).expect("open");
    append_rolling(&log, 0, 40);
    let all = all_records(&log);
    log.close().expect("close");
    let files = log_files(reference.path());
    assert!(files.len() >= 6, "several segments: {files:?}");
    let end = all.last().expect("records").0.plus(1);
    let old = &files[1];
    let in_old: Vec<_> = batch_map(reference.path())
        .into_iter()
        .filter(|(f, _, _)| f == old)
        .collect();
    // The last batch of an old segment (found by the tail walk after the last
    // index entry), and its first batch with the index files gone (found by
    // the index rebuild).
    let last = in_old.last().expect("batch").clone();
    let first = in_old.first().expect("batch").clone();
    let very_first = batch_map(reference.path()).remove(0);
    for ((file, range, base), drop_indexes) in [(last, false), (first, true), (very_first, false)] {
        let dir = copy_with_bad_length(reference.path(), &file, &range);
        if drop_indexes {
            let stem = file
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            fs::remove_file(dir.path().join(format!("{stem}.index"))).expect("rm index");
        }
        let sizes = segment_sizes(dir.path());
        let reported = samsa_storage::segment::damaged_batches_found();
        let log = PartitionLog::open(dir.path(), config()).expect("reopen");
        assert_eq!(log.log_end_offset(), end, "no offsets vanished");
        assert_eq!(
            segment_sizes(dir.path()),
            sizes,
            "no segment was cut or deleted"
        );
        assert!(
            samsa_storage::segment::damaged_batches_found() > reported,
            "the damage is counted"
        );
        // Reading up to the damage returns what is intact before it, then
        // stops with an error: it never jumps over the damaged offsets.
        let (read, err) = read_until_error(&log, Offset(0));
        assert_eq!(read, (0..base.get()).map(Offset).collect::<Vec<_>>());
        assert!(
            err.is_some_and(|e| e.contains("corrupt")),
            "stops at the damage"
        );
        let (read, err) = read_until_error(&log, base);
        assert!(read.is_empty(), "a fetch at {base} returned {read:?}");
        assert!(err.is_some());
        // The segments after it are intact and served.
        let next_file = files.iter().position(|f| *f == file).expect("file") + 1;
        let next_segment = batch_map(reference.path())
            .into_iter()
            .find(|(f, _, _)| f == &files[next_file])
            .expect("next segment")
            .2;
        let (read, err) = read_until_error(&log, next_segment);
        assert_eq!(err, None);
        assert_eq!(
            read,
            (next_segment.get()..end.get())
                .map(Offset)
                .collect::<Vec<_>>()
        );
        // Appends go on after the end.
        assert_eq!(append(&log, batch(1, 9, "again"), 0), end);
        log.close().expect("close");
        let log = PartitionLog::open(dir.path(), config()).expect("reopen again");
        assert_eq!(log.log_end_offset(), end.plus(1));
    }
}

#[test]
fn a_damaged_batch_below_the_recovery_point_is_not_cut_after_a_crash() {
    let reference = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(reference.path(), config()).expect("open");
    append_rolling(&log, 0, 30);
    assert!(log.sync_rolled().expect("sync"));
    let end = log.log_end_offset();
    drop(log); // unclean, but every sealed segment is below the recovery point
    let files = log_files(reference.path());
    // The segment just before the active one, whose successor (verified
    // after a crash in another boot) must not be taken to follow a hole.
    let damaged = &files[files.len() - 2];
    let (_, range, base) = batch_map(reference.path())
        .into_iter()
        .find(|(f, _, _)| f == damaged)
        .expect("batch");
    let dir = copy_with_bad_length(reference.path(), damaged, &range);
    let stem = damaged
        .file_stem()
        .expect("stem")
        .to_string_lossy()
        .into_owned();
    fs::remove_file(dir.path().join(format!("{stem}.index"))).expect("rm index");
    let sizes = segment_sizes(dir.path());
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(segment_sizes(dir.path()), sizes);
    let (read, err) = read_until_error(&log, base);
    assert!(read.is_empty() && err.is_some(), "{read:?}");
}

#[test]
fn after_a_failed_sync_the_next_open_in_the_same_boot_verifies_everything() {
    let config = LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 64,
        boot_id: Some(BOOT),
        ..LogConfig::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), config).expect("open");
    append_rolling(&log, 0, 20);
    assert!(log.needs_sync());
    // Make the background sync of a rolled segment fail: its offset index
    // cannot be opened (a symlink loop) for its fsync.
    let files = log_files(dir.path());
    let stem = files[1]
        .file_stem()
        .expect("stem")
        .to_string_lossy()
        .into_owned();
    let index = dir.path().join(format!("{stem}.index"));
    let index_bytes = fs::read(&index).expect("index");
    fs::remove_file(&index).expect("rm");
    std::os::unix::fs::symlink(&index, &index).expect("symlink loop");
    assert!(log.sync_rolled().is_err(), "the sync fails");
    assert!(
        log.append(
            &mut batch(1, 1, "x"),
            samsa_model::LeaderEpoch(1),
            TimestampMs(0)
        )
        .is_err(),
        "the writer is failed"
    );
    fs::remove_file(&index).expect("rm");
    fs::write(&index, index_bytes).expect("restore");
    drop(log); // the process dies without a clean shutdown
               // The disk did not keep what the failed sync was writing: a damaged
               // record byte in the active segment, which the same-boot fast path
               // (trusting the page cache) would not look for.
    let active = log_files(dir.path()).pop().expect("active");
    let (range, base) = batch_map(dir.path())
        .into_iter()
        .find(|(f, _, _)| *f == active)
        .map(|(_, r, b)| (r, b))
        .expect("a batch in the active segment");
    let mut bytes = fs::read(&active).expect("read");
    bytes[range.end - 3] ^= 0x40;
    fs::write(&active, &bytes).expect("write");
    let log = PartitionLog::open(dir.path(), config).expect("reopen in the same boot");
    assert_eq!(
        log.log_end_offset(),
        base,
        "the damaged batch was found and cut"
    );
}
