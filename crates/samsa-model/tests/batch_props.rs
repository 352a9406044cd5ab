//! Property and exhaustive tests of the record batch v2 codec: round trips,
//! CRC coverage, truncation and garbage input.

use proptest::prelude::*;
use samsa_model::batch::{
    self, field, BatchBuilder, BatchError, BatchHeader, BatchIter, NewRecord, ValidationLimits,
    BATCH_HEADER_BYTES,
};
use samsa_model::compression::{self, Compression};
use samsa_model::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, TimestampMs};

fn limits() -> ValidationLimits {
    ValidationLimits::default()
}

fn codec_strategy() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

fn bytes_strategy(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..max))
}

fn record_strategy() -> impl Strategy<Value = NewRecord> {
    (
        0i64..4_000_000_000_000,
        bytes_strategy(40),
        bytes_strategy(300),
        prop::collection::vec(
            (
                prop::collection::vec(any::<u8>(), 0..10),
                bytes_strategy(20),
            ),
            0..3,
        ),
    )
        .prop_map(|(ts, key, value, headers)| {
            let mut r = NewRecord::new(TimestampMs(ts), key.as_deref(), value.as_deref());
            for (k, v) in headers {
                r = r.with_header(&k, v.as_deref());
            }
            r
        })
}

/// A few fixed batches, one per codec, for the exhaustive tests.
fn fixed_batches() -> Vec<(Compression, Vec<u8>)> {
    Compression::ALL
        .iter()
        .map(|&codec| {
            let mut b = BatchBuilder::new().compression(codec).producer(
                ProducerId(77),
                ProducerEpoch(3),
                10,
            );
            for i in 0..4u8 {
                b.push(
                    NewRecord::new(
                        TimestampMs(1_700_000_000_000 + i64::from(i)),
                        Some(&[b'k', i]),
                        Some(&[i; 20]),
                    )
                    .with_header(b"trace", Some(&[i])),
                );
            }
            (codec, b.build().expect("build"))
        })
        .collect()
}

/// Rewrite the CRC so a deliberately altered batch still passes the CRC check.
fn fix_crc(batch: &mut [u8]) {
    if let Ok(crc) = batch::compute_crc(batch) {
        batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

#[test]
fn every_single_bit_flip_in_crc_region_is_detected() {
    for (codec, b) in fixed_batches() {
        // From the CRC field itself to the end: every bit covered or checked.
        for bit in field::CRC * 8..b.len() * 8 {
            let mut m = b.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            // batchLength is outside the CRC; the other flips are caught by the CRC.
            let crc = batch::verify_crc(&m);
            assert!(crc.is_err(), "{codec}: flip of bit {bit} not detected");
            assert!(
                batch::validate_produced_batch(&m, &limits()).is_err(),
                "{codec}: flip of bit {bit} validated"
            );
        }
    }
}

#[test]
fn flips_outside_crc_region_are_not_crc_errors_but_are_still_caught_or_harmless() {
    for (_, b) in fixed_batches() {
        for bit in 0..field::CRC * 8 {
            let mut m = b.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            // Must not panic; base offset / epoch flips are legal bytes.
            let _ = batch::validate_produced_batch(&m, &limits());
            let _ = batch::verify_crc(&m);
        }
    }
}

#[test]
fn truncation_at_every_length_is_an_error() {
    for (codec, b) in fixed_batches() {
        for n in 0..b.len() {
            let t = &b[..n];
            assert!(
                batch::validate_produced_batch(t, &limits()).is_err(),
                "{codec}: truncated to {n} validated"
            );
            assert!(batch::verify_crc(t).is_err(), "{codec}: crc of {n} bytes");
            assert!(
                batch::records(t, 1 << 20).is_err(),
                "{codec}: records of {n}"
            );
            let mut it = BatchIter::new(t);
            assert!(it.next().is_none(), "{codec}: iter yielded a partial batch");
            assert_eq!(it.consumed_bytes(), 0);
        }
        assert!(batch::validate_produced_batch(&b, &limits()).is_ok());
    }
}

#[test]
fn altered_records_with_fixed_crc_are_rejected_not_panicking() {
    // Re-CRC'd damage reaches the record walker and decompressors.
    for (codec, b) in fixed_batches() {
        for at in BATCH_HEADER_BYTES..b.len() {
            for delta in [1u8, 0x80, 0xFF] {
                let mut m = b.clone();
                m[at] = m[at].wrapping_add(delta);
                fix_crc(&mut m);
                let _ = batch::validate_produced_batch(&m, &limits());
                let _ = batch::records(&m, 1 << 20);
            }
        }
        let _ = codec;
    }
}

#[test]
fn wrong_offset_delta_and_count_are_rejected() {
    // lastOffsetDelta disagreeing with recordsCount.
    let (_, b) = &fixed_batches()[0];
    let mut m = b.clone();
    m[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut m);
    assert!(matches!(
        batch::validate_produced_batch(&m, &limits()),
        Err(BatchError::RecordCountMismatch { .. })
    ));
    // recordsCount and lastOffsetDelta both say 5 but there are 4 records.
    m[field::RECORDS_COUNT..field::RECORDS_COUNT + 4].copy_from_slice(&5i32.to_be_bytes());
    m[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4].copy_from_slice(&4i32.to_be_bytes());
    fix_crc(&mut m);
    assert!(matches!(
        batch::validate_produced_batch(&m, &limits()),
        Err(BatchError::MalformedRecord { index: 4, .. })
    ));
    // Three declared, four present: trailing bytes.
    m[field::RECORDS_COUNT..field::RECORDS_COUNT + 4].copy_from_slice(&3i32.to_be_bytes());
    m[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4].copy_from_slice(&2i32.to_be_bytes());
    fix_crc(&mut m);
    assert!(matches!(
        batch::validate_produced_batch(&m, &limits()),
        Err(BatchError::MalformedRecord { index: 3, .. })
    ));
}

#[test]
fn non_sequential_offset_delta_is_rejected() {
    // Record 1's offsetDelta (uncompressed, known layout) changed from 1 to 2.
    let b = BatchBuilder::new()
        .record(NewRecord::new(TimestampMs(5), Some(b"a"), Some(b"b")))
        .record(NewRecord::new(TimestampMs(5), Some(b"a"), Some(b"b")))
        .build()
        .expect("build");
    // Each record: len, attrs, tsDelta(0), offsetDelta, keyLen, 'a', valLen, 'b', headers.
    let rec_len = (b.len() - BATCH_HEADER_BYTES) / 2;
    let mut m = b.clone();
    let offset_delta_at = BATCH_HEADER_BYTES + rec_len + 3;
    assert_eq!(m[offset_delta_at], 2); // zigzag(1)
    m[offset_delta_at] = 4; // zigzag(2)
    fix_crc(&mut m);
    let err = batch::validate_produced_batch(&m, &limits()).expect_err("offset delta");
    assert!(
        matches!(err, BatchError::MalformedRecord { index: 1, .. }),
        "{err}"
    );
    // The lenient reader accepts it (compacted batches have gaps).
    let rs = batch::records(&m, 1 << 20).expect("records");
    assert_eq!(rs[1].offset_delta, 2);
}

#[test]
fn unknown_codec_and_bad_magic() {
    let (_, b) = &fixed_batches()[0];
    let mut m = b.clone();
    m[field::ATTRIBUTES + 1] |= 0x07;
    fix_crc(&mut m);
    assert!(matches!(
        batch::validate_produced_batch(&m, &limits()),
        Err(BatchError::UnknownCompression { codec: 7 })
    ));
    let mut m = b.clone();
    m[field::MAGIC] = 1;
    assert!(matches!(
        batch::validate_produced_batch(&m, &limits()),
        Err(BatchError::BadMagic { magic: 1 })
    ));
}

#[test]
fn transactional_and_producer_fields_round_trip() {
    let b = BatchBuilder::new()
        .transactional(true)
        .producer(ProducerId(9), ProducerEpoch(2), 41)
        .partition_leader_epoch(LeaderEpoch(6))
        .record(NewRecord::new(TimestampMs(1), None, Some(b"v")))
        .build()
        .expect("build");
    let h = batch::validate_produced_batch(&b, &limits()).expect("valid");
    assert!(h.is_transactional());
    assert_eq!(h.producer_id, ProducerId(9));
    assert_eq!(h.producer_epoch, ProducerEpoch(2));
    assert_eq!(h.base_sequence, 41);
    assert_eq!(h.partition_leader_epoch, LeaderEpoch(6));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn builder_validate_records_round_trip(
        codec in codec_strategy(),
        recs in prop::collection::vec(record_strategy(), 1..12),
        producer_id in -1i64..1000,
        base_sequence in -1i32..1000,
    ) {
        let mut builder = BatchBuilder::new()
            .compression(codec)
            .producer(ProducerId(producer_id), ProducerEpoch(0), base_sequence);
        for r in &recs {
            builder.push(r.clone());
        }
        let b = builder.build().expect("build");
        let v = batch::validate_produced_batch_detailed(&b, &limits()).expect("valid");
        prop_assert_eq!(v.header.compression().expect("codec"), codec);
        prop_assert_eq!(v.header.records_count as usize, recs.len());
        prop_assert_eq!(v.header.size_bytes(), b.len());
        let max = recs.iter().map(|r| r.timestamp).max().expect("non-empty");
        let min = recs.iter().map(|r| r.timestamp).min().expect("non-empty");
        prop_assert_eq!(v.header.max_timestamp, max);
        prop_assert_eq!(v.max_record_timestamp, max);
        prop_assert_eq!(v.min_record_timestamp, min);
        let decoded = batch::records(&b, 1 << 24).expect("records");
        prop_assert_eq!(decoded.len(), recs.len());
        for (i, (d, r)) in decoded.iter().zip(&recs).enumerate() {
            prop_assert_eq!(d.offset_delta as usize, i);
            prop_assert_eq!(v.header.record_timestamp(d), r.timestamp);
            prop_assert_eq!(&d.key, &r.key);
            prop_assert_eq!(&d.value, &r.value);
            prop_assert_eq!(&d.headers, &r.headers);
        }
        let all_keyed = recs.iter().all(|r| r.key.is_some());
        let keyed = ValidationLimits { require_keys: true, ..limits() };
        prop_assert_eq!(batch::validate_produced_batch(&b, &keyed).is_ok(), all_keyed);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = BatchHeader::parse(&bytes);
        let _ = batch::validate_produced_batch(&bytes, &limits());
        let _ = batch::verify_crc(&bytes);
        let _ = batch::records(&bytes, 1 << 20);
        for r in BatchIter::new(&bytes) {
            let _ = r;
        }
        for codec in Compression::ALL {
            let _ = compression::decompress(codec, &bytes, 1 << 20);
        }
    }

    #[test]
    fn random_records_section_with_valid_header_never_panics(
        codec in codec_strategy(),
        section in prop::collection::vec(any::<u8>(), 0..300),
        count in 0i32..6,
    ) {
        // A valid header in front of garbage, with a correct CRC, so the
        // decompressors and the record walker see the garbage.
        let template = BatchBuilder::new()
            .compression(codec)
            .record(NewRecord::new(TimestampMs(1), None, None))
            .build()
            .expect("build");
        let mut m = template[..BATCH_HEADER_BYTES].to_vec();
        m.extend_from_slice(&section);
        let batch_length = (m.len() - 12) as i32;
        m[field::BATCH_LENGTH..field::BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
        m[field::RECORDS_COUNT..field::RECORDS_COUNT + 4].copy_from_slice(&count.to_be_bytes());
        m[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&(count - 1).to_be_bytes());
        fix_crc(&mut m);
        let _ = batch::validate_produced_batch(&m, &limits());
        let _ = batch::records(&m, 1 << 20);
    }

    #[test]
    fn iter_over_concatenation_with_torn_tail(
        n in 1usize..6,
        cut in 0usize..200,
    ) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for i in 0..n {
            let mut b = BatchBuilder::new()
                .record(NewRecord::new(TimestampMs(i as i64), Some(b"k"), Some(&vec![7u8; i * 13])))
                .build()
                .expect("build");
            batch::set_base_offset(&mut b, Offset(i as i64)).expect("patch");
            buf.extend_from_slice(&b);
            ends.push(buf.len());
        }
        let cut = cut.min(buf.len());
        let t = &buf[..buf.len() - cut];
        let mut it = BatchIter::new(t);
        let mut got = 0;
        for r in it.by_ref() {
            let (h, bytes) = r.expect("complete batches parse");
            prop_assert_eq!(h.base_offset, Offset(got as i64));
            batch::verify_crc(bytes).expect("crc");
            got += 1;
        }
        let complete = ends.iter().filter(|&&e| e <= t.len()).count();
        prop_assert_eq!(got, complete);
        prop_assert_eq!(it.consumed_bytes(), if complete == 0 { 0 } else { ends[complete - 1] });
    }
}
