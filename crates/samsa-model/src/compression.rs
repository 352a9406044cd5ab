//! Record batch payload codecs: bounded, streaming decompression and compression.
//!
//! A record batch's attributes (bits 0-2) name the codec of everything after the
//! 61-byte header. Decompression here is always *bounded*: the decoders are
//! streaming, output is pulled in small chunks and the call fails with
//! [`CompressionError::TooLarge`] as soon as the output would exceed the caller's
//! `limit_bytes`, so a "zip bomb" costs at most `limit_bytes` of memory (plus the
//! decoder's own fixed-size state) and time proportional to that limit.
//!
//! Formats, as Kafka producers send them:
//! - **gzip**: one or more concatenated gzip members (RFC 1952).
//! - **snappy**: either the *xerial* framing used by the Java client's
//!   `SnappyOutputStream`, or one plain raw snappy block (librdkafka and others).
//!   Xerial layout: a 16-byte header — 8 magic bytes `82 53 4E 41 50 50 59 00`
//!   (`\x82SNAPPY\0`), then version `i32` BE and compatible-version `i32` BE —
//!   followed by zero or more blocks of `[length: i32 BE][raw snappy block of
//!   that many bytes]`. A raw snappy block starts with a varint holding its
//!   decompressed length; that length is checked against the limit *before*
//!   any output is allocated.
//! - **lz4**: the LZ4 frame format (magic `04 22 4D 18`), possibly several
//!   concatenated frames.
//! - **zstd**: one or more zstd frames; the decoder's window is capped (see
//!   [`zstd_window_log_max`]) so a frame cannot make us allocate a huge window.

use std::fmt;
use std::io::{self, Read, Write};

/// The compression codec of a record batch (attributes bits 0-2).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Codec id 0: records are stored as is.
    #[default]
    None,
    /// Codec id 1: gzip.
    Gzip,
    /// Codec id 2: snappy (xerial-framed or raw).
    Snappy,
    /// Codec id 3: LZ4 frame format.
    Lz4,
    /// Codec id 4: zstd.
    Zstd,
}

impl Compression {
    /// Every codec, in codec-id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec with this 3-bit id (attributes bits 0-2), if it is one of the five.
    pub const fn from_id(id: u8) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The codec's id as stored in the attributes bits 0-2.
    pub const fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec's name as Kafka's `compression.type` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a payload could not be decompressed or compressed.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// The decompressed output would exceed the caller's limit.
    #[error("decompressed {codec} data exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        codec: Compression,
        limit_bytes: usize,
    },
    /// The compressed input is not valid for its codec (or is truncated).
    #[error("{codec} data is corrupt: {source}")]
    Corrupt {
        codec: Compression,
        #[source]
        source: io::Error,
    },
    /// The compressor itself failed (input too large for the format, or an
    /// internal codec error).
    #[error("{codec} compression failed: {source}")]
    Compress {
        codec: Compression,
        #[source]
        source: io::Error,
    },
}

/// The 8 magic bytes that open a xerial-framed snappy stream (`\x82SNAPPY\0`).
pub const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Size of the xerial header: magic, version `i32`, compatible version `i32`.
pub const XERIAL_HEADER_BYTES: usize = 16;
const _: () = assert!(XERIAL_HEADER_BYTES == XERIAL_MAGIC.len() + 4 + 4);
/// Uncompressed bytes per xerial block we write (the Java client's default).
const XERIAL_BLOCK_BYTES_MAX: usize = 32 * 1024;
/// Version and compatible version we write in a xerial header.
const XERIAL_VERSION: i32 = 1;
/// zstd level used by [`compress`] (Kafka's default level).
const ZSTD_LEVEL: i32 = 3;
/// Bytes pulled from a streaming decoder per read call.
const DECODE_CHUNK_BYTES: usize = 16 * 1024;

/// Decompress `input` (the records section of a batch) with `codec`, failing
/// with [`CompressionError::TooLarge`] once the output would exceed
/// `limit_bytes`. `Compression::None` returns a copy of the input (subject to
/// the same limit).
pub fn decompress(
    codec: Compression,
    input: &[u8],
    limit_bytes: usize,
) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => {
            if input.len() > limit_bytes {
                return Err(CompressionError::TooLarge { codec, limit_bytes });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => {
            read_bounded(codec, flate2::read::MultiGzDecoder::new(input), limit_bytes)
        }
        Compression::Snappy => snappy_decompress(input, limit_bytes),
        Compression::Lz4 => read_bounded(
            codec,
            lz4_flex::frame::FrameDecoder::new(input),
            limit_bytes,
        ),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(input)
                .map_err(|source| CompressionError::Corrupt { codec, source })?;
            decoder
                .window_log_max(zstd_window_log_max(limit_bytes))
                .map_err(|source| CompressionError::Corrupt { codec, source })?;
            read_bounded(codec, decoder, limit_bytes)
        }
    }
}

/// The largest zstd window (as log2 bytes) we let a frame demand: enough for
/// the limit itself, but never less than 8 MiB — streaming encoders that do not
/// know the input size pick their window from the level alone (2 MiB at Kafka's
/// default level 3, 8 MiB at level 19) — and never more than 128 MiB (zstd's own
/// default cap, needed only by levels 20-22).
pub fn zstd_window_log_max(limit_bytes: usize) -> u32 {
    const WINDOW_LOG_MIN: u32 = 23;
    const WINDOW_LOG_MAX: u32 = 27;
    let needed = usize::BITS - limit_bytes.saturating_sub(1).leading_zeros();
    needed.clamp(WINDOW_LOG_MIN, WINDOW_LOG_MAX)
}

/// Compress `input` with `codec` in the format Kafka's Java client writes
/// (gzip member, xerial-framed snappy, LZ4 frame with independent 64 KiB
/// blocks, zstd frame at level 3). `Compression::None` returns a copy.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let err = |source: io::Error| CompressionError::Compress { codec, source };
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(input).map_err(err)?;
            enc.finish().map_err(err)
        }
        Compression::Snappy => snappy_compress_xerial(input),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            enc.write_all(input).map_err(err)?;
            enc.finish().map_err(|e| err(io::Error::other(e)))
        }
        Compression::Zstd => zstd::stream::encode_all(input, ZSTD_LEVEL).map_err(err),
    }
}

/// Pull everything out of a streaming decoder, at most `limit_bytes` of it.
fn read_bounded(
    codec: Compression,
    mut reader: impl Read,
    limit_bytes: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; DECODE_CHUNK_BYTES];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(CompressionError::Corrupt { codec, source }),
        };
        // Invariant: out.len() <= limit_bytes, so the subtraction cannot underflow.
        if n > limit_bytes - out.len() {
            return Err(CompressionError::TooLarge { codec, limit_bytes });
        }
        let Some(got) = chunk.get(..n) else {
            // A reader claiming more bytes than the buffer holds is broken.
            return Err(CompressionError::Corrupt {
                codec,
                source: io::Error::other("decoder returned more bytes than requested"),
            });
        };
        out.extend_from_slice(got);
    }
}

fn snappy_corrupt(message: &str) -> CompressionError {
    CompressionError::Corrupt {
        codec: Compression::Snappy,
        source: io::Error::new(io::ErrorKind::InvalidData, message.to_owned()),
    }
}

fn snappy_decompress(input: &[u8], limit_bytes: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    if !input.starts_with(&XERIAL_MAGIC) {
        snappy_decode_block(input, &mut out, limit_bytes)?;
        return Ok(out);
    }
    let mut rest = input
        .get(XERIAL_HEADER_BYTES..)
        .ok_or_else(|| snappy_corrupt("xerial header truncated"))?;
    while !rest.is_empty() {
        let (len_bytes, after) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| snappy_corrupt("xerial block length truncated"))?;
        let len = usize::try_from(i32::from_be_bytes(*len_bytes))
            .map_err(|_| snappy_corrupt("negative xerial block length"))?;
        if len > after.len() {
            return Err(snappy_corrupt("xerial block truncated"));
        }
        let (block, next) = after.split_at(len);
        snappy_decode_block(block, &mut out, limit_bytes)?;
        rest = next;
    }
    Ok(out)
}

/// Decode one raw snappy block, appending to `out`; the block's declared
/// length is checked against the remaining budget before allocating.
fn snappy_decode_block(
    block: &[u8],
    out: &mut Vec<u8>,
    limit_bytes: usize,
) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let corrupt = |e: snap::Error| CompressionError::Corrupt {
        codec,
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    };
    let declared = snap::raw::decompress_len(block).map_err(corrupt)?;
    if declared > limit_bytes.saturating_sub(out.len()) {
        return Err(CompressionError::TooLarge { codec, limit_bytes });
    }
    let start = out.len();
    out.resize(start + declared, 0);
    let dst = out
        .get_mut(start..)
        .ok_or_else(|| snappy_corrupt("output window"))?;
    let written = snap::raw::Decoder::new()
        .decompress(block, dst)
        .map_err(corrupt)?;
    if written != declared {
        return Err(snappy_corrupt(
            "snappy block shorter than its declared length",
        ));
    }
    Ok(())
}

fn snappy_compress_xerial(input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + input.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_BYTES_MAX) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| CompressionError::Compress {
                codec,
                source: io::Error::other(e),
            })?;
        let len = i32::try_from(block.len()).map_err(|_| CompressionError::Compress {
            codec,
            source: io::Error::other("snappy block over 2 GiB"),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"the quick brown fox jumps over the lazy dog, again and again and again";

    #[test]
    fn round_trip_every_codec() {
        let mut data = Vec::new();
        for i in 0..5000u32 {
            data.extend_from_slice(&i.to_le_bytes());
            data.extend_from_slice(SAMPLE);
        }
        for codec in Compression::ALL {
            let packed = compress(codec, &data).expect("compress");
            let unpacked = decompress(codec, &packed, data.len()).expect("decompress");
            assert_eq!(unpacked, data, "{codec}");
            // One byte less of budget must fail.
            let err = decompress(codec, &packed, data.len() - 1).expect_err("limit");
            assert!(
                matches!(err, CompressionError::TooLarge { .. }),
                "{codec}: {err}"
            );
        }
    }

    #[test]
    fn empty_input_round_trips() {
        for codec in Compression::ALL {
            let packed = compress(codec, b"").expect("compress");
            let unpacked = decompress(codec, &packed, 0).expect("decompress");
            assert!(unpacked.is_empty(), "{codec}");
        }
    }

    #[test]
    fn codec_ids() {
        for codec in Compression::ALL {
            assert_eq!(Compression::from_id(codec.id()), Some(codec));
        }
        for id in 5..=7 {
            assert_eq!(Compression::from_id(id), None);
        }
    }

    #[test]
    fn raw_snappy_is_accepted() {
        let raw = snap::raw::Encoder::new().compress_vec(SAMPLE).expect("raw");
        assert_eq!(
            decompress(Compression::Snappy, &raw, 1024).expect("decode"),
            SAMPLE
        );
    }

    #[test]
    fn xerial_snappy_multi_block() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let packed = compress(Compression::Snappy, &data).expect("compress");
        assert!(packed.starts_with(&XERIAL_MAGIC));
        assert_eq!(
            decompress(Compression::Snappy, &packed, data.len()).expect("decode"),
            data
        );
    }

    #[test]
    fn raw_snappy_declared_length_checked_before_allocation() {
        // varint 0xFFFFFFFF-ish declared length (4 GiB - 1), then garbage.
        let bogus = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00];
        let err = decompress(Compression::Snappy, &bogus, 1 << 20).expect_err("bomb");
        assert!(matches!(err, CompressionError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn window_log_bounds() {
        assert_eq!(zstd_window_log_max(0), 23);
        assert_eq!(zstd_window_log_max(1 << 20), 23);
        assert_eq!(zstd_window_log_max((1 << 24) + 1), 25);
        assert_eq!(zstd_window_log_max(usize::MAX), 27);
    }
}
