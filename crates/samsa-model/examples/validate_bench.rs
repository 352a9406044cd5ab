//! Throughput of `batch::validate_produced_batch_detailed` on realistic
//! produced batches: about 1 MiB of records (1 KiB or 100-byte values, either
//! `bench/loadgen.c`-like text or a harder mix of phrases and random printable
//! runs), compressed the way Kafka clients do it (LZ4 frames with 64 KiB
//! blocks, independent or linked, with or without a content checksum; zstd
//! level 3; gzip; xerial and raw snappy).
//!
//! Run with `cargo run --release -p samsa-model --example validate_bench [FILTER...]`;
//! a case runs when its name contains one of the filters (all when none).
//! `VALIDATE_BENCH_RUNS` (default 9) and `VALIDATE_BENCH_MIB` (values
//! validated per run, default 128) tune the effort.
//!
//! Reported per case: the median over the runs of GB (10^9 bytes) of record
//! values validated per second of this thread's CPU time, and of wall time.
//! CPU time (`CLOCK_THREAD_CPUTIME_ID`) is the stable figure on a busy machine.
//! In this loop the allocator recycles freed memory; to see the cost of fresh
//! pages per batch (a process whose heap is returned to the OS, as the
//! broker's is), pin glibc's mmap threshold: `MALLOC_MMAP_THRESHOLD_=131072`.

use std::io::Write;
use std::time::Instant;

use samsa_model::batch::{self, field, BatchBuilder, NewRecord, ValidationLimits};
use samsa_model::compression::{self, Compression, XERIAL_MAGIC};
use samsa_model::TimestampMs;

/// Records section size (uncompressed) aimed at per batch.
const SECTION_BYTES: usize = 1 << 20;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const PHRASES: [&[u8]; 6] = [
    b"{\"user_id\":",
    b",\"event\":\"page_view\",\"path\":\"/products/",
    b"\",\"referrer\":\"https://www.example.com/search?q=",
    b",\"session\":\"",
    b"\",\"ua\":\"Mozilla/5.0 (X11; Linux x86_64)\"}",
    b"\"status\":200,\"bytes\":",
];

/// How record values look.
#[derive(Copy, Clone)]
enum Style {
    /// Known phrases interleaved with random printable runs (lz4 packs it to
    /// about half), with a key per record.
    Mixed,
    /// Like `bench/loadgen.c`: a slice of Zipf-ish text from a 1,000-word
    /// vocabulary with an 8-byte timestamp in front; no key.
    Text,
}

impl Style {
    fn name(self) -> &'static str {
        match self {
            Style::Mixed => "mixed",
            Style::Text => "text",
        }
    }
}

fn mixed_value(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    while v.len() < len {
        let r = rng.next();
        if r & 1 == 0 {
            v.extend_from_slice(PHRASES[(r >> 8) as usize % PHRASES.len()]);
        } else {
            let run = 4 + (r >> 16) as usize % 24;
            for _ in 0..run {
                v.push(b'!' + (rng.next() % 94) as u8);
            }
        }
    }
    v.truncate(len);
    v
}

/// `bench/loadgen.c`'s value pool: 4 MiB of words.
fn text_pool() -> Vec<u8> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let words: Vec<Vec<u8>> = (0..1000)
        .map(|_| {
            let len = 2 + (rng.next() % 9) as usize;
            (0..len).map(|_| b'a' + (rng.next() % 26) as u8).collect()
        })
        .collect();
    let mut pool = Vec::with_capacity((4 << 20) + 64);
    while pool.len() < 4 << 20 {
        let r = rng.next() % 1000;
        let r = (r * r) / 1000;
        pool.extend_from_slice(&words[r as usize]);
        pool.push(b' ');
    }
    pool
}

/// An uncompressed batch of `value_bytes`-byte values filling about
/// `SECTION_BYTES`, and the total value bytes in it.
fn plain_batch(style: Style, value_bytes: usize) -> (Vec<u8>, usize) {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ value_bytes as u64);
    let pool = text_pool();
    let mut b = BatchBuilder::new();
    let per_record = value_bytes + 30;
    let n = SECTION_BYTES / per_record;
    for i in 0..n {
        let ts = 1_700_000_000_000 + i as i64;
        let record = match style {
            Style::Mixed => {
                let key = format!("key-{:08}", rng.next() % 100_000);
                let v = mixed_value(&mut rng, value_bytes);
                NewRecord::new(TimestampMs(ts), Some(key.as_bytes()), Some(&v))
            }
            Style::Text => {
                let off = (rng.next() % (pool.len() - value_bytes) as u64) as usize;
                let mut v = pool[off..off + value_bytes].to_vec();
                v[..8].copy_from_slice(&(ts * 1_000_000).to_le_bytes());
                NewRecord::new(TimestampMs(ts), None, Some(&v))
            }
        };
        b.push(record);
    }
    (b.build().expect("build"), n * value_bytes)
}

#[derive(Copy, Clone)]
enum Variant {
    Lz4 {
        linked: bool,
        content_checksum: bool,
    },
    Zstd,
    Gzip,
    SnappyXerial,
    SnappyRaw,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Lz4 {
                linked: false,
                content_checksum: false,
            } => "lz4",
            Variant::Lz4 {
                linked: true,
                content_checksum: false,
            } => "lz4-linked",
            Variant::Lz4 {
                linked: false,
                content_checksum: true,
            } => "lz4-cksum",
            Variant::Lz4 {
                linked: true,
                content_checksum: true,
            } => "lz4-linked-cksum",
            Variant::Zstd => "zstd",
            Variant::Gzip => "gzip",
            Variant::SnappyXerial => "snappy-xerial",
            Variant::SnappyRaw => "snappy-raw",
        }
    }

    fn codec(self) -> Compression {
        match self {
            Variant::Lz4 { .. } => Compression::Lz4,
            Variant::Zstd => Compression::Zstd,
            Variant::Gzip => Compression::Gzip,
            Variant::SnappyXerial | Variant::SnappyRaw => Compression::Snappy,
        }
    }

    fn compress(self, section: &[u8]) -> Vec<u8> {
        match self {
            Variant::Lz4 {
                linked,
                content_checksum,
            } => {
                // librdkafka: LZ4F frame, 64 KiB blocks.
                let mode = if linked {
                    lz4_flex::frame::BlockMode::Linked
                } else {
                    lz4_flex::frame::BlockMode::Independent
                };
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(mode)
                    .content_checksum(content_checksum);
                let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
                enc.write_all(section).expect("lz4");
                enc.finish().expect("lz4")
            }
            Variant::SnappyRaw => snap::raw::Encoder::new()
                .compress_vec(section)
                .expect("snappy"),
            other => compression::compress(other.codec(), section).expect("compress"),
        }
    }
}

/// `plain` re-encoded with `variant`, header patched, CRC fixed.
fn compressed_batch(plain: &[u8], variant: Variant) -> Vec<u8> {
    let section = &plain[batch::BATCH_HEADER_BYTES..];
    let packed = variant.compress(section);
    if matches!(variant, Variant::SnappyXerial) {
        assert!(packed.starts_with(&XERIAL_MAGIC));
    }
    let mut b = plain[..batch::BATCH_HEADER_BYTES].to_vec();
    b.extend_from_slice(&packed);
    let batch_length = (b.len() - batch::LOG_OVERHEAD_BYTES) as i32;
    b[field::BATCH_LENGTH..field::BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
    let attrs = i16::from_be_bytes([b[field::ATTRIBUTES], b[field::ATTRIBUTES + 1]]);
    let attrs = (attrs & !0x07) | i16::from(variant.codec().id());
    b[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    let crc = batch::compute_crc(&b).expect("crc");
    b[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let filters: Vec<String> = std::env::args().skip(1).collect();
    let runs = env_usize("VALIDATE_BENCH_RUNS", 9).max(1);
    let mib_per_run = env_usize("VALIDATE_BENCH_MIB", 128).max(1);
    let limits = ValidationLimits {
        batch_bytes_max: usize::MAX,
        ..ValidationLimits::default()
    };
    let variants = [
        Variant::Lz4 {
            linked: false,
            content_checksum: false,
        },
        Variant::Lz4 {
            linked: true,
            content_checksum: false,
        },
        Variant::Lz4 {
            linked: false,
            content_checksum: true,
        },
        Variant::Lz4 {
            linked: true,
            content_checksum: true,
        },
        Variant::Zstd,
        Variant::Gzip,
        Variant::SnappyXerial,
        Variant::SnappyRaw,
    ];
    println!(
        "{:<30} {:>9} {:>8} {:>11} {:>11} {:>11}",
        "case", "batch KiB", "records", "CPU GB/s", "wall GB/s", "CPU us/batch"
    );
    for (style, value_bytes) in [
        (Style::Text, 1024usize),
        (Style::Text, 100),
        (Style::Mixed, 1024),
        (Style::Mixed, 100),
    ] {
        let (plain, values) = plain_batch(style, value_bytes);
        let records = batch::BatchHeader::parse(&plain)
            .expect("header")
            .records_count;
        for variant in variants {
            let name = format!("{}/{}/{}B", variant.name(), style.name(), value_bytes);
            if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            let b = compressed_batch(&plain, variant);
            let check = batch::validate_produced_batch_detailed(&b, &limits).expect("valid");
            assert_eq!(check.header.records_count, records);
            let iterations = (mib_per_run << 20).div_ceil(values).max(1);
            let mut cpu_rates = Vec::with_capacity(runs);
            let mut wall_rates = Vec::with_capacity(runs);
            let mut cpu_per_batch = Vec::with_capacity(runs);
            // One untimed warm-up run, then the timed ones.
            for run in 0..=runs {
                let cpu0 = thread_cpu_ns();
                let wall0 = Instant::now();
                for _ in 0..iterations {
                    let v =
                        batch::validate_produced_batch_detailed(std::hint::black_box(&b), &limits);
                    std::hint::black_box(v.is_ok());
                }
                let wall = wall0.elapsed().as_nanos() as f64;
                let cpu = (thread_cpu_ns() - cpu0) as f64;
                if run == 0 {
                    continue;
                }
                let bytes = (values * iterations) as f64;
                cpu_rates.push(bytes / cpu);
                wall_rates.push(bytes / wall);
                cpu_per_batch.push(cpu / iterations as f64 / 1000.0);
            }
            println!(
                "{:<30} {:>9} {:>8} {:>11.3} {:>11.3} {:>11.1}",
                name,
                b.len() / 1024,
                records,
                median(&mut cpu_rates),
                median(&mut wall_rates),
                median(&mut cpu_per_batch),
            );
        }
    }
}
