//! Record batch payload codecs: bounded, streaming decompression and compression.
//!
//! A record batch's attributes (bits 0-2) name the codec of everything after the
//! 61-byte header. Decompression here is always *bounded*: the decoders are
//! streaming, and [`decompress_chunks`] hands their output on piece by piece —
//! one LZ4 block (64 KiB as Kafka clients write them; at most the frame's
//! declared block size, 4 MiB), up to four 16 KiB reads of gzip or zstd, one
//! snappy block (32 KiB in the Java client's xerial framing; a raw block is one
//! piece) — counting every byte against the caller's `limit_bytes` *before* the
//! piece is passed on, and fails with [`CompressionError::TooLarge`] as soon as
//! the total would exceed it. A caller that consumes the pieces as they come
//! (batch validation) holds one piece at a time; [`decompress`] collects them
//! into one buffer. Either way a "zip bomb" costs at most `limit_bytes` of
//! memory (plus the decoder's own state, fixed by the format's block or window
//! size) and time proportional to that limit. Per thread, one output buffer
//! and one zstd context are kept for reuse between calls (up to 4 MiB each;
//! larger ones are freed after use).
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
//!   any output is allocated. A raw block is decoded whole (the format cannot
//!   be decoded in pieces), so it is handed on as one piece.
//! - **lz4**: the LZ4 frame format (magic `04 22 4D 18`), with blocks of at
//!   most 64 KiB, 256 KiB, 1 MiB or 4 MiB as the frame header says, independent
//!   or linked (a block may refer back into the previous 64 KiB of output; the
//!   decoder keeps that window). Only the first frame is
//!   decoded: the output ends at its end mark (or at an empty block), and
//!   anything after it is ignored. The header checksum, and the block and
//!   content checksums when the frame carries them, are verified.
//! - **zstd**: one or more zstd frames; the decoder's window is capped (see
//!   [`zstd_window_log_max`]) so a frame cannot make us allocate a huge window.

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead, Read, Write};

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
/// Bytes asked of a `Read` decoder (gzip, zstd) per call. Every path asks in
/// pieces of exactly this size, so where a damaged stream fails relative to the
/// limit (corrupt vs too large) does not depend on who is reading.
const DECODE_CHUNK_BYTES: usize = 16 * 1024;
/// Bytes of `Read` decoder output gathered before they are handed on by
/// [`decompress_chunks`] (a whole number of [`DECODE_CHUNK_BYTES`] reads).
const SINK_CHUNK_BYTES: usize = 4 * DECODE_CHUNK_BYTES;

/// Decompress `input` (the records section of a batch) with `codec`, failing
/// with [`CompressionError::TooLarge`] once the output would exceed
/// `limit_bytes`. `Compression::None` returns a copy of the input (subject to
/// the same limit).
pub fn decompress(
    codec: Compression,
    input: &[u8],
    limit_bytes: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    match codec {
        Compression::Snappy => {
            // Decode straight into `out`, each block appended after the last.
            let mut budget = Budget::new(codec, limit_bytes);
            snappy_for_each_block(input, |block| {
                snappy_decode_block(block, &mut out, None, &mut budget).map(drop)
            })?;
        }
        _ => {
            decompress_chunks(codec, input, limit_bytes, |piece| {
                out.extend_from_slice(piece);
            })?;
        }
    }
    Ok(out)
}

/// Decompress `input` with `codec`, handing the output to `sink` in order, in
/// pieces (see the module documentation for their sizes), without ever holding
/// all of it. Every piece is counted against `limit_bytes` before `sink` sees
/// it; once the total would exceed the limit the call fails with
/// [`CompressionError::TooLarge`]. On an error, the pieces already handed on
/// are a prefix of the output and the rest is never produced. Returns the total
/// number of bytes handed on. `Compression::None` hands on `input` itself
/// (subject to the same limit).
pub fn decompress_chunks(
    codec: Compression,
    input: &[u8],
    limit_bytes: usize,
    mut sink: impl FnMut(&[u8]),
) -> Result<usize, CompressionError> {
    let mut budget = Budget::new(codec, limit_bytes);
    match codec {
        Compression::None => {
            budget.take(input.len())?;
            if !input.is_empty() {
                sink(input);
            }
        }
        Compression::Gzip => read_chunks(
            flate2::read::MultiGzDecoder::new(input),
            &mut budget,
            &mut sink,
        )?,
        Compression::Snappy => with_scratch(|scratch| {
            // Every block is decoded into the same scratch buffer.
            snappy_for_each_block(input, |block| {
                let n = snappy_decode_block(block, scratch, Some(0), &mut budget)?;
                if let Some(piece) = scratch.get(..n).filter(|p| !p.is_empty()) {
                    sink(piece);
                }
                Ok(())
            })
        })?,
        Compression::Lz4 => lz4_chunks(input, &mut budget, &mut sink)?,
        Compression::Zstd => with_zstd_context(|context| {
            let corrupt = |source| CompressionError::Corrupt { codec, source };
            // `&[u8]` is already a `BufRead`: no intermediate input buffer.
            // Resets the context's session (not its parameters, set below).
            let mut decoder = zstd::stream::read::Decoder::with_context(input, context);
            decoder
                .window_log_max(zstd_window_log_max(limit_bytes))
                .map_err(corrupt)?;
            read_chunks(decoder, &mut budget, &mut sink)
        })?,
    }
    Ok(budget.used)
}

/// Capacity of the per-thread scratch buffer kept between calls; a larger one
/// (a raw snappy block of more than this) is freed after use.
const SCRATCH_KEEP_BYTES: usize = 4 << 20;
/// Size of a per-thread zstd context kept between calls. Its buffers follow
/// the frames' window: about 2.5 MiB for frames of Kafka's default level 3
/// (window 2 MiB), 9 MiB at level 19. A larger context is freed after use.
const ZSTD_CONTEXT_KEEP_BYTES: usize = 4 << 20;

thread_local! {
    /// Output buffer reused by [`decompress_chunks`] across calls, so that
    /// decompressing a batch does not allocate (and fault in) fresh pages.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// zstd decoding context reused across calls (it keeps its window buffer).
    static ZSTD_CONTEXT: Cell<Option<zstd::zstd_safe::DCtx<'static>>> = const { Cell::new(None) };
}

/// Run `f` with this thread's scratch buffer (contents unspecified), taken out
/// for the duration (a nested call gets a fresh one), and put back afterwards
/// unless it grew beyond [`SCRATCH_KEEP_BYTES`].
fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    let mut buf = SCRATCH.try_with(Cell::take).unwrap_or_default();
    let out = f(&mut buf);
    if buf.capacity() <= SCRATCH_KEEP_BYTES {
        // Fails only during thread exit; the buffer is then simply dropped.
        let _ = SCRATCH.try_with(|cell| cell.set(buf));
    }
    out
}

/// Run `f` with this thread's zstd context (created on first use), taken out
/// for the duration and put back afterwards unless its buffers grew beyond
/// [`ZSTD_CONTEXT_KEEP_BYTES`].
fn with_zstd_context<T>(f: impl FnOnce(&mut zstd::zstd_safe::DCtx<'static>) -> T) -> T {
    let mut context = ZSTD_CONTEXT
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_else(zstd::zstd_safe::DCtx::create);
    let out = f(&mut context);
    if context.sizeof() <= ZSTD_CONTEXT_KEEP_BYTES {
        // Fails only during thread exit; the context is then simply dropped.
        let _ = ZSTD_CONTEXT.try_with(|cell| cell.set(Some(context)));
    }
    out
}

/// Running count of decompressed bytes against the caller's limit.
struct Budget {
    codec: Compression,
    limit_bytes: usize,
    /// Bytes produced so far; never above `limit_bytes`.
    used: usize,
}

impl Budget {
    fn new(codec: Compression, limit_bytes: usize) -> Self {
        Budget {
            codec,
            limit_bytes,
            used: 0,
        }
    }

    /// Account for `n` more output bytes, or fail if they would exceed the limit.
    fn take(&mut self, n: usize) -> Result<(), CompressionError> {
        // Invariant: used <= limit_bytes, so the subtraction cannot underflow.
        if n > self.limit_bytes - self.used {
            return Err(CompressionError::TooLarge {
                codec: self.codec,
                limit_bytes: self.limit_bytes,
            });
        }
        self.used += n;
        Ok(())
    }
}

/// LZ4: hand on each decoded block straight from the frame decoder's own
/// buffer (no copy). The output ends at the first empty read, as with
/// `io::Read` (the frame's end mark, or an empty block).
fn lz4_chunks(
    input: &[u8],
    budget: &mut Budget,
    sink: &mut impl FnMut(&[u8]),
) -> Result<(), CompressionError> {
    let codec = Compression::Lz4;
    let mut decoder = lz4_flex::frame::FrameDecoder::new(input);
    loop {
        let block = match decoder.fill_buf() {
            Ok(block) => block,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(CompressionError::Corrupt { codec, source }),
        };
        let n = block.len();
        if n == 0 {
            return Ok(());
        }
        budget.take(n)?;
        sink(block);
        decoder.consume(n);
    }
}

/// Pull everything out of a `Read` decoder in [`DECODE_CHUNK_BYTES`] reads,
/// handing it on in pieces of up to [`SINK_CHUNK_BYTES`].
fn read_chunks(
    reader: impl Read,
    budget: &mut Budget,
    sink: &mut impl FnMut(&[u8]),
) -> Result<(), CompressionError> {
    with_scratch(|buf| {
        if buf.len() < SINK_CHUNK_BYTES {
            buf.resize(SINK_CHUNK_BYTES, 0);
        }
        read_chunks_into(reader, buf, budget, sink)
    })
}

fn read_chunks_into(
    mut reader: impl Read,
    buf: &mut [u8],
    budget: &mut Budget,
    sink: &mut impl FnMut(&[u8]),
) -> Result<(), CompressionError> {
    let codec = budget.codec;
    let mut filled = 0;
    loop {
        if SINK_CHUNK_BYTES - filled < DECODE_CHUNK_BYTES {
            if let Some(piece) = buf.get(..filled) {
                sink(piece);
            }
            filled = 0;
        }
        let Some(window) = buf.get_mut(filled..filled + DECODE_CHUNK_BYTES) else {
            // Unreachable: `filled + DECODE_CHUNK_BYTES <= SINK_CHUNK_BYTES`.
            return Err(CompressionError::Corrupt {
                codec,
                source: io::Error::other("decode buffer"),
            });
        };
        let n = match reader.read(window) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(CompressionError::Corrupt { codec, source }),
        };
        if n > DECODE_CHUNK_BYTES {
            // A reader claiming more bytes than the buffer holds is broken.
            return Err(CompressionError::Corrupt {
                codec,
                source: io::Error::other("decoder returned more bytes than requested"),
            });
        }
        budget.take(n)?;
        filled += n;
    }
    if let Some(piece) = buf.get(..filled).filter(|p| !p.is_empty()) {
        sink(piece);
    }
    Ok(())
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

fn snappy_corrupt(message: &str) -> CompressionError {
    CompressionError::Corrupt {
        codec: Compression::Snappy,
        source: io::Error::new(io::ErrorKind::InvalidData, message.to_owned()),
    }
}

/// Call `on_block` with each raw snappy block of `input`, in order: the whole
/// input when it is not xerial-framed, else each framed block (the framing is
/// checked block by block, interleaved with `on_block`).
fn snappy_for_each_block(
    input: &[u8],
    mut on_block: impl FnMut(&[u8]) -> Result<(), CompressionError>,
) -> Result<(), CompressionError> {
    if !input.starts_with(&XERIAL_MAGIC) {
        return on_block(input);
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
        on_block(block)?;
        rest = next;
    }
    Ok(())
}

/// Decode one raw snappy block into `out` at `at` (`None`: appended after
/// `out`'s current contents), growing `out` as needed but never shrinking it.
/// The block's declared length is counted against `budget` before anything is
/// allocated. Returns the decoded length.
fn snappy_decode_block(
    block: &[u8],
    out: &mut Vec<u8>,
    at: Option<usize>,
    budget: &mut Budget,
) -> Result<usize, CompressionError> {
    let codec = Compression::Snappy;
    let corrupt = |e: snap::Error| CompressionError::Corrupt {
        codec,
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    };
    let declared = snap::raw::decompress_len(block).map_err(corrupt)?;
    budget.take(declared)?;
    let start = at.unwrap_or(out.len());
    let end = start
        .checked_add(declared)
        .ok_or_else(|| snappy_corrupt("output window"))?;
    if out.len() < end {
        out.resize(end, 0);
    }
    let dst = out
        .get_mut(start..end)
        .ok_or_else(|| snappy_corrupt("output window"))?;
    let written = snap::raw::Decoder::new()
        .decompress(block, dst)
        .map_err(corrupt)?;
    if written != declared {
        return Err(snappy_corrupt(
            "snappy block shorter than its declared length",
        ));
    }
    Ok(declared)
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

/// The whole-buffer decompression this module did before [`decompress_chunks`]
/// (16 KiB reads appended to one growing buffer), kept verbatim as the
/// reference the streaming paths are tested against.
#[cfg(test)]
pub(crate) mod reference {
    use super::*;

    /// An LZ4 frame of 64 KiB blocks in `mode`, with block and content
    /// checksums when `checksums` (test input in the ways clients write it).
    pub(crate) fn lz4_frame(
        data: &[u8],
        mode: lz4_flex::frame::BlockMode,
        checksums: bool,
    ) -> Vec<u8> {
        let info = lz4_flex::frame::FrameInfo::new()
            .block_size(lz4_flex::frame::BlockSize::Max64KB)
            .block_mode(mode)
            .block_checksums(checksums)
            .content_checksum(checksums);
        let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(data).expect("lz4");
        enc.finish().expect("lz4")
    }

    pub(crate) fn decompress(
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
            if n > limit_bytes - out.len() {
                return Err(CompressionError::TooLarge { codec, limit_bytes });
            }
            let Some(got) = chunk.get(..n) else {
                return Err(CompressionError::Corrupt {
                    codec,
                    source: io::Error::other("decoder returned more bytes than requested"),
                });
            };
            out.extend_from_slice(got);
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

    /// Compressible but not trivial test data.
    fn sample_data(bytes: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut data = Vec::with_capacity(bytes + SAMPLE.len());
        while data.len() < bytes {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x & 3 == 0 {
                data.extend_from_slice(SAMPLE);
            } else {
                data.extend_from_slice(&x.to_le_bytes()[..(x % 8) as usize]);
            }
        }
        data.truncate(bytes);
        data
    }

    /// Every way Kafka clients encode each codec: the writer here, plus LZ4
    /// linked blocks and checksums, and raw (unframed) snappy.
    fn encodings(data: &[u8]) -> Vec<(Compression, Vec<u8>)> {
        let lz4 = |mode, checksums: bool| reference::lz4_frame(data, mode, checksums);
        let mut out: Vec<(Compression, Vec<u8>)> = Compression::ALL
            .iter()
            .map(|&codec| (codec, compress(codec, data).expect("compress")))
            .collect();
        out.push((
            Compression::Lz4,
            lz4(lz4_flex::frame::BlockMode::Linked, false),
        ));
        out.push((
            Compression::Lz4,
            lz4(lz4_flex::frame::BlockMode::Linked, true),
        ));
        out.push((
            Compression::Lz4,
            lz4(lz4_flex::frame::BlockMode::Independent, true),
        ));
        out.push((
            Compression::Snappy,
            snap::raw::Encoder::new().compress_vec(data).expect("raw"),
        ));
        out
    }

    /// `decompress_chunks`'s output, concatenated, and its largest piece.
    fn chunked(
        codec: Compression,
        input: &[u8],
        limit_bytes: usize,
    ) -> (Result<usize, CompressionError>, Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut largest = 0;
        let result = decompress_chunks(codec, input, limit_bytes, |piece| {
            assert!(!piece.is_empty(), "empty piece");
            largest = largest.max(piece.len());
            out.extend_from_slice(piece);
        });
        (result, out, largest)
    }

    /// Same outcome, compared through `Debug` (the io::Error sources included).
    fn same<T: fmt::Debug, U: fmt::Debug>(
        a: &Result<T, CompressionError>,
        b: &Result<U, CompressionError>,
    ) -> bool {
        match (a, b) {
            (Ok(_), Ok(_)) => true,
            (Err(x), Err(y)) => format!("{x:?}") == format!("{y:?}"),
            _ => false,
        }
    }

    #[test]
    fn chunks_match_the_whole_buffer_reference() {
        let data = sample_data(300_000);
        for (codec, packed) in encodings(&data) {
            for limit in [data.len(), data.len() - 1, 70_000, 65_536, 0] {
                let (result, out, largest) = chunked(codec, &packed, limit);
                let whole = decompress(codec, &packed, limit);
                let reference = reference::decompress(codec, &packed, limit);
                assert!(
                    same(&result, &reference),
                    "{codec} limit {limit}: {result:?} vs {reference:?}"
                );
                assert!(
                    same(&whole, &reference),
                    "{codec} limit {limit}: {whole:?} vs {reference:?}"
                );
                if let Ok(n) = result {
                    assert_eq!(n, data.len());
                    assert_eq!(out, data, "{codec}");
                    assert_eq!(whole.expect("whole"), data, "{codec}");
                } else {
                    assert!(out.len() <= limit, "{codec}: {} bytes handed on", out.len());
                }
                // Pieces stay small, except uncompressed input and a raw
                // snappy block (decoded whole).
                let whole_piece = codec == Compression::None
                    || codec == Compression::Snappy && !packed.starts_with(&XERIAL_MAGIC);
                assert!(
                    whole_piece || largest <= SINK_CHUNK_BYTES,
                    "{codec}: piece of {largest}"
                );
            }
        }
    }

    #[test]
    fn damaged_input_fails_like_the_reference() {
        let data = sample_data(100_000);
        for (codec, packed) in encodings(&data) {
            let step = (packed.len() / 41).max(1);
            for at in (0..packed.len()).step_by(step) {
                let mut cases = vec![packed[..at].to_vec()];
                let mut flipped = packed.clone();
                flipped[at] ^= 0x5A;
                cases.push(flipped);
                let mut extended = packed.clone();
                extended.extend_from_slice(&packed[at..]);
                cases.push(extended);
                for input in &cases {
                    for limit in [1 << 20, data.len() - 1] {
                        let (result, out, _) = chunked(codec, input, limit);
                        let reference = reference::decompress(codec, input, limit);
                        assert!(
                            same(&result, &reference),
                            "{codec} at {at}: {result:?} vs {reference:?}"
                        );
                        match reference {
                            Ok(expected) => assert_eq!(out, expected, "{codec} at {at}"),
                            Err(_) => {
                                assert!(expected_prefix(&out, input, codec), "{codec} at {at}")
                            }
                        }
                        assert!(
                            same(&decompress(codec, input, limit), &result),
                            "{codec} at {at}"
                        );
                    }
                }
            }
        }
    }

    /// What was handed on before an error is a prefix of what the reference
    /// decodes with no limit (when that succeeds at all).
    fn expected_prefix(out: &[u8], input: &[u8], codec: Compression) -> bool {
        match reference::decompress(codec, input, usize::MAX) {
            Ok(all) => all.starts_with(out),
            Err(_) => true,
        }
    }

    #[test]
    fn bombs_stop_at_the_limit_in_small_pieces() {
        let zeros = vec![0u8; 16 << 20];
        let limit = 1 << 20;
        for (codec, packed) in encodings(&zeros) {
            let raw_snappy = codec == Compression::Snappy && !packed.starts_with(&XERIAL_MAGIC);
            let (result, out, largest) = chunked(codec, &packed, limit);
            assert!(
                matches!(result, Err(CompressionError::TooLarge { limit_bytes, .. }) if limit_bytes == limit),
                "{codec}: {result:?}"
            );
            assert!(out.len() <= limit, "{codec}: {} bytes handed on", out.len());
            // A raw snappy block declares its size, so nothing is decoded.
            assert!(
                if raw_snappy {
                    largest == 0
                } else {
                    largest <= SINK_CHUNK_BYTES
                },
                "{codec}: {largest}"
            );
        }
    }

    #[test]
    fn scratch_is_reused_and_capped() {
        // A raw snappy block larger than the kept capacity is freed after use.
        let big = sample_data(SCRATCH_KEEP_BYTES + 1);
        let packed = snap::raw::Encoder::new().compress_vec(&big).expect("raw");
        let (result, out, _) = chunked(Compression::Snappy, &packed, usize::MAX);
        assert_eq!(result.expect("decode"), big.len());
        assert_eq!(out, big);
        let kept = SCRATCH.with(|cell| {
            let buf = cell.take();
            let capacity = buf.capacity();
            cell.set(buf);
            capacity
        });
        assert!(kept <= SCRATCH_KEEP_BYTES, "{kept}");
        // A nested call (from inside a sink) works, with its own buffer.
        let small = sample_data(100_000);
        let inner = compress(Compression::Gzip, &small).expect("gzip");
        let outer = compress(Compression::Zstd, &small).expect("zstd");
        let mut nested = 0;
        decompress_chunks(Compression::Zstd, &outer, usize::MAX, |_| {
            let (r, out, _) = chunked(Compression::Gzip, &inner, usize::MAX);
            assert_eq!(r.expect("inner"), small.len());
            assert_eq!(out, small);
            nested += 1;
        })
        .expect("outer");
        assert!(nested > 0);
    }

    #[test]
    fn lz4_decodes_only_the_first_frame() {
        // As before streaming (and as Kafka's Java client reads LZ4): the
        // output ends at the first frame's end mark; what follows is ignored.
        let first = compress(Compression::Lz4, b"first frame").expect("lz4");
        let second = compress(Compression::Lz4, b"second frame").expect("lz4");
        for tail in [&second[..], b"garbage after the end mark"] {
            let mut input = first.clone();
            input.extend_from_slice(tail);
            let (result, out, _) = chunked(Compression::Lz4, &input, 1 << 20);
            assert_eq!(result.expect("decode"), b"first frame".len());
            assert_eq!(out, b"first frame");
            let reference = reference::decompress(Compression::Lz4, &input, 1 << 20);
            assert_eq!(reference.expect("reference"), b"first frame");
        }
    }

    #[test]
    fn zstd_context_is_reused_reset_and_capped() {
        let data = sample_data(1 << 20);
        let level3 = compress(Compression::Zstd, &data).expect("zstd");
        let level19 = zstd::stream::encode_all(&data[..], 19).expect("zstd");
        let kept = || {
            ZSTD_CONTEXT.with(|cell| {
                let context = cell.take();
                let size = context.as_ref().map(|c| c.sizeof());
                cell.set(context);
                size
            })
        };
        let (r, out, _) = chunked(Compression::Zstd, &level3, usize::MAX);
        assert_eq!(r.expect("decode"), data.len());
        assert_eq!(out, data);
        assert!(kept().is_some_and(|size| size <= ZSTD_CONTEXT_KEEP_BYTES));
        // A frame cut short leaves the context mid-frame; the next call
        // starts afresh.
        let (r, _, _) = chunked(Compression::Zstd, &level3[..level3.len() / 2], usize::MAX);
        assert!(matches!(r, Err(CompressionError::Corrupt { .. })), "{r:?}");
        let (r, out, _) = chunked(Compression::Zstd, &level3, usize::MAX);
        assert_eq!(r.expect("decode"), data.len());
        assert_eq!(out, data);
        // So does one that stopped at the limit.
        let (r, _, _) = chunked(Compression::Zstd, &level3, 1000);
        assert!(matches!(r, Err(CompressionError::TooLarge { .. })), "{r:?}");
        let (r, out, _) = chunked(Compression::Zstd, &level3, data.len());
        assert_eq!(r.expect("decode"), data.len());
        assert_eq!(out, data);
        // A level-19 frame (8 MiB window) makes the context too big to keep.
        let (r, out, _) = chunked(Compression::Zstd, &level19, usize::MAX);
        assert_eq!(r.expect("decode"), data.len());
        assert_eq!(out, data);
        assert_eq!(kept(), None);
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
