//! Decompression bombs: 1 GiB of zeros (64 MiB for snappy, whose best ratio is
//! about 20:1) compressed by streaming into the encoder, so the test itself
//! stays small, must be rejected quickly and with bounded memory.

use std::io::Write;
use std::time::{Duration, Instant};

use samsa_model::batch::{self, field, BatchBuilder, BatchError, NewRecord, ValidationLimits};
use samsa_model::compression::{self, Compression, CompressionError, XERIAL_MAGIC};
use samsa_model::TimestampMs;

const GIB: u64 = 1 << 30;
const LIMIT_BYTES: usize = 4 << 20;
static CHUNK: [u8; 1 << 20] = [0u8; 1 << 20];

fn feed(w: &mut impl Write, total: u64) {
    let mut left = total;
    while left > 0 {
        let n = left.min(CHUNK.len() as u64) as usize;
        w.write_all(&CHUNK[..n]).expect("write");
        left -= n as u64;
    }
}

fn gzip_bomb() -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    feed(&mut enc, GIB);
    enc.finish().expect("gzip")
}

fn zstd_bomb() -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd");
    feed(&mut enc, GIB);
    enc.finish().expect("zstd")
}

fn lz4_bomb() -> Vec<u8> {
    let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
    feed(&mut enc, GIB);
    enc.finish().expect("lz4")
}

fn snappy_xerial_bomb() -> Vec<u8> {
    // 64 blocks, each 1 MiB of zeros, in xerial framing.
    let block = snap::raw::Encoder::new()
        .compress_vec(&CHUNK)
        .expect("snappy");
    let mut out = XERIAL_MAGIC.to_vec();
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    for _ in 0..64 {
        out.extend_from_slice(&(block.len() as i32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    out
}

fn snappy_raw_header_bomb() -> Vec<u8> {
    // A raw block declaring ~4 GiB of output; must be refused before allocating.
    let mut out = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x0F];
    out.extend_from_slice(&[0u8; 64]);
    out
}

/// A batch whose records section is `section`, claiming one record, with a valid CRC.
fn batch_around(codec: Compression, section: &[u8]) -> Vec<u8> {
    let template = BatchBuilder::new()
        .compression(codec)
        .record(NewRecord::new(TimestampMs(1), None, Some(b"x")))
        .build()
        .expect("build");
    let mut b = template[..batch::BATCH_HEADER_BYTES].to_vec();
    b.extend_from_slice(section);
    let batch_length = (b.len() - batch::LOG_OVERHEAD_BYTES) as i32;
    b[field::BATCH_LENGTH..field::BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
    let crc = batch::compute_crc(&b).expect("crc");
    b[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

// One test function so the peak-RSS reading is not disturbed by parallel tests.
#[test]
fn bombs_are_rejected_fast_with_bounded_memory() {
    let bombs = [
        (Compression::Gzip, gzip_bomb()),
        (Compression::Zstd, zstd_bomb()),
        (Compression::Lz4, lz4_bomb()),
        (Compression::Snappy, snappy_xerial_bomb()),
        (Compression::Snappy, snappy_raw_header_bomb()),
    ];
    for (codec, bomb) in &bombs {
        assert!(
            bomb.len() < 64 << 20,
            "{codec} bomb is {} bytes",
            bomb.len()
        );
        let started = Instant::now();
        let err = compression::decompress(*codec, bomb, LIMIT_BYTES).expect_err("bomb");
        assert!(
            matches!(
                err,
                CompressionError::TooLarge {
                    limit_bytes: LIMIT_BYTES,
                    ..
                }
            ),
            "{codec}: {err}"
        );
        let b = batch_around(*codec, bomb);
        let limits = ValidationLimits {
            batch_bytes_max: usize::MAX,
            decompressed_bytes_max: LIMIT_BYTES,
            require_keys: false,
            timestamp_range: None,
        };
        let err = batch::validate_produced_batch(&b, &limits).expect_err("bomb batch");
        assert!(
            matches!(err, BatchError::DecompressedTooLarge { .. }),
            "{codec}: {err}"
        );
        assert_eq!(err.kind(), batch::BatchErrorKind::TooLarge);
        let err = batch::records(&b, LIMIT_BYTES).expect_err("records of bomb");
        assert!(
            matches!(err, BatchError::DecompressedTooLarge { .. }),
            "{codec}: {err}"
        );
        // Generous bound for unoptimised builds on a slow machine; the work is
        // proportional to LIMIT_BYTES, not to the bomb's 1 GiB.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{codec} took {:?}",
            started.elapsed()
        );
    }
    if let Some(peak) = peak_rss_bytes() {
        eprintln!("peak RSS {} MiB", peak >> 20);
        assert!(peak < 128 << 20, "peak RSS {peak} bytes");
    }
}
