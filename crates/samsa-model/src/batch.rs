//! Kafka record batch, magic 2: parsing, validation, in-place patching, iteration, building.
//!
//! # Batch layout
//!
//! Every integer is big endian. Offsets are byte positions from the start of the batch.
//!
//! | at | size | field                  | notes                                               |
//! |----|------|------------------------|-----------------------------------------------------|
//! |  0 | 8    | `baseOffset` i64       | assigned by the broker on append                    |
//! |  8 | 4    | `batchLength` i32      | bytes *after* this field: total size = it + 12      |
//! | 12 | 4    | `partitionLeaderEpoch` | stamped by the broker on append                     |
//! | 16 | 1    | `magic` i8             | always 2 here                                       |
//! | 17 | 4    | `crc` u32              | CRC-32C (Castagnoli) of bytes `21..end`             |
//! | 21 | 2    | `attributes` i16       | see below                                           |
//! | 23 | 4    | `lastOffsetDelta` i32  | last record's offset minus `baseOffset`             |
//! | 27 | 8    | `baseTimestamp` i64    | first record's timestamp                            |
//! | 35 | 8    | `maxTimestamp` i64     | largest record timestamp, or the LogAppendTime      |
//! | 43 | 8    | `producerId` i64       | -1 when not idempotent                              |
//! | 51 | 2    | `producerEpoch` i16    |                                                     |
//! | 53 | 4    | `baseSequence` i32     |                                                     |
//! | 57 | 4    | `recordsCount` i32     |                                                     |
//! | 61 | ...  | records                | compressed as one blob when attributes say so       |
//!
//! The CRC covers everything from `attributes` to the end of the batch, so the
//! broker can rewrite `baseOffset` and `partitionLeaderEpoch` without
//! recomputing it; changing the timestamp type or `maxTimestamp` does require a
//! new CRC ([`set_log_append_time`], [`set_max_timestamp`]).
//!
//! Attributes: bits 0-2 compression codec ([`Compression`]), bit 3 timestamp
//! type (1 = LogAppendTime), bit 4 transactional, bit 5 control batch, bit 6
//! has delete horizon (then `baseTimestamp` is the delete horizon).
//!
//! # Record layout
//!
//! Each record (inside the possibly-decompressed records section) is:
//! `length` varint (bytes after this field), `attributes` i8 (unused),
//! `timestampDelta` varlong (from `baseTimestamp`), `offsetDelta` varint (from
//! `baseOffset`), `keyLength` varint (-1 = null key), key bytes, `valueLength`
//! varint (-1 = null value), value bytes, `headersCount` varint, then per header
//! `keyLength` varint (>= 0), key bytes, `valueLength` varint (-1 = null), value
//! bytes. Varints are zigzag encoded (see the `varint` module).
//!
//! # Crash behaviour
//!
//! This module does no I/O. A batch torn by a crash shows up as a buffer
//! shorter than `batchLength + 12` ([`BatchIter`] stops before it) or as a CRC
//! mismatch ([`verify_crc`]); callers that recover files use those two checks.

use bytes::Bytes;

use crate::compression::{self, Compression, CompressionError};
use crate::ids::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, TimestampMs};
use crate::varint::{self, VarintError};

/// Bytes before `batchLength`'s coverage starts: `baseOffset` + `batchLength`.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Size of the fixed v2 batch header (everything before the first record).
pub const BATCH_HEADER_BYTES: usize = 61;
/// The smallest legal `batchLength`: a header with no records.
pub const BATCH_LENGTH_MIN: i32 = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
/// The only batch format this crate understands.
pub const MAGIC_V2: i8 = 2;

/// Byte position of each header field.
pub mod field {
    pub const BASE_OFFSET: usize = 0;
    pub const BATCH_LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORDS_COUNT: usize = 57;
    /// First byte covered by the CRC.
    pub const CRC_COVERED_START: usize = ATTRIBUTES;
}

const _: () = assert!(field::BATCH_LENGTH + 4 == LOG_OVERHEAD_BYTES);
const _: () = assert!(field::CRC + 4 == field::ATTRIBUTES);
const _: () = assert!(field::PRODUCER_ID + 8 == field::PRODUCER_EPOCH);
const _: () = assert!(field::RECORDS_COUNT + 4 == BATCH_HEADER_BYTES);
const _: () = assert!(BATCH_LENGTH_MIN == 49);

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;
const ATTR_DELETE_HORIZON: i16 = 1 << 6;

/// Kafka's "no timestamp" value.
pub const NO_TIMESTAMP: TimestampMs = TimestampMs(-1);

/// How a broker should report a [`BatchError`] to a producer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BatchErrorKind {
    /// Kafka `CORRUPT_MESSAGE`: the bytes were damaged (CRC, impossible length).
    Corrupt,
    /// Kafka `MESSAGE_TOO_LARGE`: over a size limit.
    TooLarge,
    /// Kafka `INVALID_RECORD`: well-formed bytes breaking a rule.
    Invalid,
}

/// What is wrong inside a record (see [`BatchError::MalformedRecord`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MalformedReason {
    /// The data ended inside this field.
    #[error("truncated inside {field}")]
    Truncated { field: &'static str },
    /// A varint longer than its integer width allows.
    #[error("overlong varint in {field}")]
    VarintTooLong { field: &'static str },
    /// A length below -1 (or below 0 where null is not allowed).
    #[error("invalid {field} length {length}")]
    InvalidLength { field: &'static str, length: i32 },
    /// The record's `length` prefix disagrees with the bytes its fields used.
    #[error("record declares {declared_bytes} bytes but its fields use {consumed_bytes}")]
    LengthMismatch {
        declared_bytes: i32,
        consumed_bytes: usize,
    },
    /// A negative `headersCount`.
    #[error("negative header count {count}")]
    NegativeHeaderCount { count: i32 },
    /// `offsetDelta` is not the record's position in the batch.
    #[error("offsetDelta {found}, expected {expected}")]
    OffsetDeltaMismatch { expected: i32, found: i32 },
    /// The records section ended before `recordsCount` records.
    #[error("batch declares {declared} records but only {found} are present")]
    MissingRecords { declared: i32, found: usize },
    /// Bytes are left after `recordsCount` records.
    #[error("{bytes} bytes left after the last record")]
    TrailingBytes { bytes: usize },
}

/// Why a batch was rejected or could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than the header or `batchLength` requires.
    #[error("record batch truncated: {needed_bytes} bytes needed, {available_bytes} available")]
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    /// `batchLength` is too small to hold even the header.
    #[error("batchLength {batch_length} is smaller than the header ({BATCH_LENGTH_MIN})")]
    BatchLengthTooSmall { batch_length: i32 },
    /// The buffer holds more than the one batch it should.
    #[error("batch is {batch_bytes} bytes but {buffer_bytes} bytes were supplied")]
    LengthMismatch {
        batch_bytes: usize,
        buffer_bytes: usize,
    },
    /// The batch is larger than allowed.
    #[error("batch of {batch_bytes} bytes exceeds the limit of {limit_bytes}")]
    BatchTooLarge {
        batch_bytes: usize,
        limit_bytes: usize,
    },
    /// Not a magic-2 batch.
    #[error("unsupported record batch magic {magic}")]
    BadMagic { magic: i8 },
    /// The stored CRC does not match the bytes.
    #[error("batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    /// `recordsCount` disagrees with `lastOffsetDelta + 1`.
    #[error("recordsCount {records_count} does not match lastOffsetDelta {last_offset_delta} + 1")]
    RecordCountMismatch {
        records_count: i32,
        last_offset_delta: i32,
    },
    /// A produced batch with no records.
    #[error("batch has no records")]
    EmptyBatch,
    /// A produced batch must carry baseOffset 0.
    #[error("produced batch has baseOffset {base_offset}, expected 0")]
    NonZeroBaseOffset { base_offset: Offset },
    /// Clients may not write control batches.
    #[error("clients may not produce control batches")]
    ControlBatchFromClient,
    /// A record inside the batch is malformed.
    #[error("malformed record {index}: {reason}")]
    MalformedRecord {
        index: usize,
        reason: MalformedReason,
    },
    /// A keyless record where keys are required (compacted topics).
    #[error("record {index} has no key, which a compacted topic requires")]
    MissingKey { index: usize },
    /// A record timestamp outside the accepted range.
    #[error("record {index} has timestamp {timestamp}, outside the accepted range")]
    TimestampOutOfRange {
        index: usize,
        timestamp: TimestampMs,
    },
    /// Attributes name a codec id that does not exist.
    #[error("unknown compression codec id {codec}")]
    UnknownCompression { codec: u8 },
    /// The decompressed records would exceed the limit.
    #[error("decompressed records exceed the limit of {limit_bytes} bytes")]
    DecompressedTooLarge { limit_bytes: usize },
    /// The compressed records are not valid for their codec.
    #[error("cannot decompress {codec} records")]
    Decompression {
        codec: Compression,
        #[source]
        source: CompressionError,
    },
    /// Compressing records while building a batch failed.
    #[error("cannot compress records with {codec}")]
    Compression {
        codec: Compression,
        #[source]
        source: CompressionError,
    },
}

impl BatchError {
    /// How to report this error (`CORRUPT_MESSAGE`, `MESSAGE_TOO_LARGE` or
    /// `INVALID_RECORD`). Following Kafka: a CRC mismatch or a `batchLength`
    /// too small for the header is corruption; size limits are "too large";
    /// everything else (including a truncated or over-long buffer, which Kafka
    /// reports as "not exactly one batch") is an invalid record.
    pub fn kind(&self) -> BatchErrorKind {
        match self {
            BatchError::CrcMismatch { .. } | BatchError::BatchLengthTooSmall { .. } => {
                BatchErrorKind::Corrupt
            }
            BatchError::BatchTooLarge { .. } | BatchError::DecompressedTooLarge { .. } => {
                BatchErrorKind::TooLarge
            }
            _ => BatchErrorKind::Invalid,
        }
    }
}

impl From<CompressionError> for BatchError {
    fn from(e: CompressionError) -> Self {
        match e {
            CompressionError::TooLarge { limit_bytes, .. } => {
                BatchError::DecompressedTooLarge { limit_bytes }
            }
            CompressionError::Corrupt { codec, .. } => {
                BatchError::Decompression { codec, source: e }
            }
            CompressionError::Compress { codec, .. } => {
                BatchError::Compression { codec, source: e }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Big-endian field access (bounds-checked, never panics).

fn truncated(needed: usize, available: usize) -> BatchError {
    BatchError::Truncated {
        needed_bytes: needed,
        available_bytes: available,
    }
}

fn get_array<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], BatchError> {
    buf.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| truncated(at + N, buf.len()))
}

fn be_i16(buf: &[u8], at: usize) -> Result<i16, BatchError> {
    get_array(buf, at).map(i16::from_be_bytes)
}
fn be_i32(buf: &[u8], at: usize) -> Result<i32, BatchError> {
    get_array(buf, at).map(i32::from_be_bytes)
}
fn be_u32(buf: &[u8], at: usize) -> Result<u32, BatchError> {
    get_array(buf, at).map(u32::from_be_bytes)
}
fn be_i64(buf: &[u8], at: usize) -> Result<i64, BatchError> {
    get_array(buf, at).map(i64::from_be_bytes)
}

fn put<const N: usize>(buf: &mut [u8], at: usize, bytes: [u8; N]) -> Result<(), BatchError> {
    let len = buf.len();
    buf.get_mut(at..at + N)
        .ok_or_else(|| truncated(at + N, len))?
        .copy_from_slice(&bytes);
    Ok(())
}

// ---------------------------------------------------------------------------
// Header

/// The decoded 61-byte header of a magic-2 record batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    /// Bytes after the `batchLength` field (so the batch is `batch_length + 12` bytes).
    pub batch_length: i32,
    pub partition_leader_epoch: LeaderEpoch,
    pub magic: i8,
    pub crc: u32,
    /// Raw attributes; use the accessors.
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: TimestampMs,
    pub max_timestamp: TimestampMs,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Decode the header at the start of `buf`. Checks the magic, that
    /// `batchLength` can hold the header and that the codec id is known; does
    /// *not* require the whole batch to be present nor check the CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let magic = *buf
            .get(field::MAGIC)
            .ok_or_else(|| truncated(BATCH_HEADER_BYTES, buf.len()))? as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic { magic });
        }
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(truncated(BATCH_HEADER_BYTES, buf.len()));
        }
        let batch_length = be_i32(buf, field::BATCH_LENGTH)?;
        if batch_length < BATCH_LENGTH_MIN {
            return Err(BatchError::BatchLengthTooSmall { batch_length });
        }
        let attributes = be_i16(buf, field::ATTRIBUTES)?;
        let codec = (attributes & ATTR_COMPRESSION_MASK) as u8;
        if Compression::from_id(codec).is_none() {
            return Err(BatchError::UnknownCompression { codec });
        }
        Ok(BatchHeader {
            base_offset: Offset(be_i64(buf, field::BASE_OFFSET)?),
            batch_length,
            partition_leader_epoch: LeaderEpoch(be_i32(buf, field::PARTITION_LEADER_EPOCH)?),
            magic,
            crc: be_u32(buf, field::CRC)?,
            attributes,
            last_offset_delta: be_i32(buf, field::LAST_OFFSET_DELTA)?,
            base_timestamp: TimestampMs(be_i64(buf, field::BASE_TIMESTAMP)?),
            max_timestamp: TimestampMs(be_i64(buf, field::MAX_TIMESTAMP)?),
            producer_id: ProducerId(be_i64(buf, field::PRODUCER_ID)?),
            producer_epoch: ProducerEpoch(be_i16(buf, field::PRODUCER_EPOCH)?),
            base_sequence: be_i32(buf, field::BASE_SEQUENCE)?,
            records_count: be_i32(buf, field::RECORDS_COUNT)?,
        })
    }

    /// The records' codec. Fails only for a header built by hand with an
    /// unknown codec id ([`BatchHeader::parse`] rejects those).
    pub fn compression(&self) -> Result<Compression, BatchError> {
        let codec = (self.attributes & ATTR_COMPRESSION_MASK) as u8;
        Compression::from_id(codec).ok_or(BatchError::UnknownCompression { codec })
    }

    /// Attributes bit 4.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Attributes bit 5: the batch holds transaction markers.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Attributes bit 3: timestamps are the broker's append time (`maxTimestamp`).
    pub fn log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// Attributes bit 6: `baseTimestamp` holds the delete horizon.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & ATTR_DELETE_HORIZON != 0
    }

    /// Offset of the batch's last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> Offset {
        Offset(
            self.base_offset
                .get()
                .saturating_add(i64::from(self.last_offset_delta)),
        )
    }

    /// The offset just after this batch.
    pub fn next_offset(&self) -> Offset {
        Offset(self.last_offset().get().saturating_add(1))
    }

    /// Total size of the batch in bytes (`batchLength + 12`).
    pub fn size_bytes(&self) -> usize {
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD_BYTES
    }

    /// The timestamp of a record of this batch: `maxTimestamp` for
    /// LogAppendTime batches, else `baseTimestamp + timestampDelta`.
    pub fn record_timestamp(&self, record: &Record) -> TimestampMs {
        if self.log_append_time() {
            self.max_timestamp
        } else {
            TimestampMs(
                self.base_timestamp
                    .get()
                    .saturating_add(record.timestamp_delta),
            )
        }
    }

    /// The offset of a record of this batch (`baseOffset + offsetDelta`).
    pub fn record_offset(&self, record: &Record) -> Offset {
        Offset(
            self.base_offset
                .get()
                .saturating_add(i64::from(record.offset_delta)),
        )
    }
}

/// The CRC-32C a batch should carry: over bytes `21..batchLength+12`.
/// `batch` must hold at least the whole declared batch (trailing bytes beyond
/// it are ignored).
pub fn compute_crc(batch: &[u8]) -> Result<u32, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let end = header.size_bytes();
    let covered = batch
        .get(field::CRC_COVERED_START..end)
        .ok_or_else(|| truncated(end, batch.len()))?;
    Ok(crc32c::crc32c(covered))
}

/// Check the batch's stored CRC against its bytes (see [`compute_crc`]).
pub fn verify_crc(batch: &[u8]) -> Result<(), BatchError> {
    let computed = compute_crc(batch)?;
    let stored = be_u32(batch, field::CRC)?;
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    Ok(())
}

fn rewrite_crc(batch: &mut [u8]) -> Result<(), BatchError> {
    let crc = compute_crc(batch)?;
    put(batch, field::CRC, crc.to_be_bytes())
}

/// Overwrite `baseOffset` (outside the CRC; no recompute).
pub fn set_base_offset(batch: &mut [u8], offset: Offset) -> Result<(), BatchError> {
    if batch.len() < BATCH_HEADER_BYTES {
        return Err(truncated(BATCH_HEADER_BYTES, batch.len()));
    }
    put(batch, field::BASE_OFFSET, offset.get().to_be_bytes())
}

/// Overwrite `partitionLeaderEpoch` (outside the CRC; no recompute).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: LeaderEpoch) -> Result<(), BatchError> {
    if batch.len() < BATCH_HEADER_BYTES {
        return Err(truncated(BATCH_HEADER_BYTES, batch.len()));
    }
    put(
        batch,
        field::PARTITION_LEADER_EPOCH,
        epoch.get().to_be_bytes(),
    )
}

/// Mark the batch as LogAppendTime with time `now`: sets attributes bit 3 and
/// `maxTimestamp`, then recomputes the CRC. `batch` must hold the whole batch.
pub fn set_log_append_time(batch: &mut [u8], now: TimestampMs) -> Result<(), BatchError> {
    let header = BatchHeader::parse(batch)?;
    let attributes = header.attributes | ATTR_LOG_APPEND_TIME;
    put(batch, field::ATTRIBUTES, attributes.to_be_bytes())?;
    put(batch, field::MAX_TIMESTAMP, now.get().to_be_bytes())?;
    rewrite_crc(batch)
}

/// Overwrite `maxTimestamp`, keeping the timestamp type, and recompute the CRC
/// (for a broker that corrects a producer's wrong `maxTimestamp`).
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: TimestampMs) -> Result<(), BatchError> {
    BatchHeader::parse(batch)?;
    put(
        batch,
        field::MAX_TIMESTAMP,
        max_timestamp.get().to_be_bytes(),
    )?;
    rewrite_crc(batch)
}

// ---------------------------------------------------------------------------
// Records

/// One header of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Header key (UTF-8 in practice; never null).
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// One decoded record of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Record attributes (unused by Kafka so far).
    pub attributes: i8,
    /// Timestamp minus the batch's `baseTimestamp`.
    pub timestamp_delta: i64,
    /// Offset minus the batch's `baseOffset`.
    pub offset_delta: i32,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

/// A record borrowed from a records section; headers left encoded.
struct RecordView<'a> {
    attributes: i8,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    header_count: usize,
    headers: &'a [u8],
}

/// Bounds-checked cursor over a records section.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The unsigned value of a varint of one or two bytes at the cursor,
    /// advancing past it; `None` (cursor unmoved) for anything else, which
    /// the strict decoder in `varint` then handles. Such short encodings
    /// cannot be over-long, so the result is what that decoder would give.
    #[inline(always)]
    fn short_varint(&mut self) -> Option<u32> {
        let b0 = *self.buf.get(self.pos)?;
        if b0 < 0x80 {
            self.pos += 1;
            return Some(u32::from(b0));
        }
        let b1 = *self.buf.get(self.pos + 1)?;
        if b1 < 0x80 {
            self.pos += 2;
            return Some(u32::from(b0 & 0x7F) | (u32::from(b1) << 7));
        }
        None
    }

    #[inline]
    fn varint(&mut self, field: &'static str) -> Result<i32, MalformedReason> {
        if let Some(raw) = self.short_varint() {
            return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
        varint::read_varint(self.buf, &mut self.pos).map_err(|e| varint_error(e, field))
    }

    #[inline]
    fn varlong(&mut self, field: &'static str) -> Result<i64, MalformedReason> {
        if let Some(raw) = self.short_varint() {
            let raw = i64::from(raw);
            return Ok((raw >> 1) ^ -(raw & 1));
        }
        varint::read_varlong(self.buf, &mut self.pos).map_err(|e| varint_error(e, field))
    }

    #[inline]
    fn i8(&mut self, field: &'static str) -> Result<i8, MalformedReason> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(MalformedReason::Truncated { field })?;
        self.pos += 1;
        Ok(b as i8)
    }

    #[inline]
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], MalformedReason> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(MalformedReason::Truncated { field })?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(MalformedReason::Truncated { field })?;
        self.pos = end;
        Ok(s)
    }

    /// A varint length (`-1` = null) followed by that many bytes.
    #[inline]
    fn nullable_bytes(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, MalformedReason> {
        let length = self.varint(field)?;
        match length {
            -1 => Ok(None),
            n if n < -1 => Err(MalformedReason::InvalidLength { field, length }),
            n => self.take(n as usize, field).map(Some),
        }
    }

    /// A varint length (must be `>= 0`) followed by that many bytes.
    #[inline]
    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], MalformedReason> {
        let length = self.varint(field)?;
        if length < 0 {
            return Err(MalformedReason::InvalidLength { field, length });
        }
        self.take(length as usize, field)
    }
}

fn varint_error(e: VarintError, field: &'static str) -> MalformedReason {
    match e {
        VarintError::Truncated => MalformedReason::Truncated { field },
        VarintError::TooLong => MalformedReason::VarintTooLong { field },
    }
}

/// Parse one record at the cursor, checking its length framing exactly.
fn parse_record<'a>(cur: &mut Cursor<'a>) -> Result<RecordView<'a>, MalformedReason> {
    let length = cur.varint("record length")?;
    if length < 0 {
        return Err(MalformedReason::InvalidLength {
            field: "record",
            length,
        });
    }
    let body = cur.take(length as usize, "record body")?;
    let mut r = Cursor::new(body);
    let attributes = r.i8("record attributes")?;
    let timestamp_delta = r.varlong("timestampDelta")?;
    let offset_delta = r.varint("offsetDelta")?;
    let key = r.nullable_bytes("key")?;
    let value = r.nullable_bytes("value")?;
    let count = r.varint("headersCount")?;
    if count < 0 {
        return Err(MalformedReason::NegativeHeaderCount { count });
    }
    let headers_start = r.pos;
    for _ in 0..count {
        r.bytes("header key")?;
        r.nullable_bytes("header value")?;
    }
    let headers = body.get(headers_start..r.pos).unwrap_or_default();
    if r.remaining() != 0 {
        return Err(MalformedReason::LengthMismatch {
            declared_bytes: length,
            consumed_bytes: r.pos,
        });
    }
    Ok(RecordView {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        header_count: count as usize,
        headers,
    })
}

/// Walk exactly `count` records of `data`, which must contain nothing else.
/// With `sequential_offsets`, record `i` must have `offsetDelta == i`.
fn walk_records<'a>(
    data: &'a [u8],
    count: i32,
    sequential_offsets: bool,
    mut on_record: impl FnMut(usize, RecordView<'a>) -> Result<(), BatchError>,
) -> Result<(), BatchError> {
    let declared = count;
    let count = usize::try_from(count).unwrap_or(0);
    let mut cur = Cursor::new(data);
    for index in 0..count {
        if cur.remaining() == 0 {
            return Err(BatchError::MalformedRecord {
                index,
                reason: MalformedReason::MissingRecords {
                    declared,
                    found: index,
                },
            });
        }
        let view = parse_record(&mut cur)
            .map_err(|reason| BatchError::MalformedRecord { index, reason })?;
        if sequential_offsets && i64::from(view.offset_delta) != index as i64 {
            return Err(BatchError::MalformedRecord {
                index,
                reason: MalformedReason::OffsetDeltaMismatch {
                    expected: i32::try_from(index).unwrap_or(i32::MAX),
                    found: view.offset_delta,
                },
            });
        }
        on_record(index, view)?;
    }
    if cur.remaining() != 0 {
        return Err(BatchError::MalformedRecord {
            index: count,
            reason: MalformedReason::TrailingBytes {
                bytes: cur.remaining(),
            },
        });
    }
    Ok(())
}

/// Whether `rest`, which starts at a record boundary, holds enough bytes for
/// [`parse_record`] to decide that record: its whole `length` varint and then
/// `length` bytes (or a varint or length that is already invalid). When it
/// does, parsing `rest` gives the same result as parsing `rest` followed by
/// any further bytes, because [`parse_record`] reads nothing past the record.
#[inline]
fn record_decidable(rest: &[u8]) -> bool {
    let mut cur = Cursor::new(rest);
    match cur.varint("record length") {
        Err(MalformedReason::Truncated { .. }) => false,
        Err(_) => true,
        Ok(length) => match usize::try_from(length) {
            Err(_) => true,
            Ok(length) => cur.remaining() >= length,
        },
    }
}

/// Bytes of a `length` varint: a record whose `length` is still incomplete
/// needs at most this many more bytes to learn its size.
const RECORD_LENGTH_BYTES_MAX: usize = 5;

/// [`walk_records`] for a records section that arrives in pieces (from
/// [`compression::decompress_chunks`]): every piece is fed in order with
/// [`RecordStream::feed`], then [`RecordStream::finish`] gives the result
/// `walk_records` would have given on the concatenation.
///
/// Records are parsed in place in each piece; only a record that straddles two
/// pieces is copied (into `carry`, which thus holds at most one record plus the
/// few bytes fed to learn its length). After the first error the stream only
/// counts what it is fed, so that the caller can still finish decompressing and
/// report a decompression error, which takes precedence as it does when the
/// whole section is decompressed before walking.
struct RecordStream<F> {
    /// `recordsCount` as declared.
    declared: i32,
    /// Records to walk (`declared`, or 0 if negative).
    count: usize,
    sequential_offsets: bool,
    on_record: F,
    /// Index of the next record.
    index: usize,
    /// The start of an incomplete record at the end of the pieces so far.
    carry: Vec<u8>,
    /// Bytes after the last record.
    trailing: usize,
    /// The first error met; once set, pieces are ignored.
    failed: Option<BatchError>,
}

impl<F> RecordStream<F>
where
    F: FnMut(usize, RecordView<'_>) -> Result<(), BatchError>,
{
    fn new(count: i32, sequential_offsets: bool, on_record: F) -> Self {
        RecordStream {
            declared: count,
            count: usize::try_from(count).unwrap_or(0),
            sequential_offsets,
            on_record,
            index: 0,
            carry: Vec::new(),
            trailing: 0,
            failed: None,
        }
    }

    /// Take the next piece of the section.
    fn feed(&mut self, piece: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.feed_inner(piece) {
            self.failed = Some(e);
            self.carry = Vec::new();
        }
    }

    fn feed_inner(&mut self, mut piece: &[u8]) -> Result<(), BatchError> {
        // First complete the record straddling from the previous piece, moving
        // over only the bytes it needs (and a few to learn its length).
        while !self.carry.is_empty() && !piece.is_empty() {
            let mut pos = 0;
            let wanted = match varint::read_varint(&self.carry, &mut pos) {
                Ok(length) => pos
                    .saturating_add(usize::try_from(length).unwrap_or(0))
                    .saturating_sub(self.carry.len())
                    .max(1),
                Err(_) => RECORD_LENGTH_BYTES_MAX,
            };
            let (head, tail) = piece.split_at(wanted.min(piece.len()));
            self.carry.extend_from_slice(head);
            piece = tail;
            let carry = std::mem::take(&mut self.carry);
            let consumed = self.walk(&carry, false);
            self.carry = carry;
            self.carry.drain(..consumed?);
        }
        if piece.is_empty() {
            return Ok(());
        }
        let consumed = self.walk(piece, false)?;
        if let Some(rest) = piece.get(consumed..) {
            self.carry.extend_from_slice(rest);
        }
        Ok(())
    }

    /// Walk the records of `buf` that can be decided (all of them when `eof`:
    /// then `buf` must be the rest of the section); returns the bytes consumed.
    /// Bytes after the last record are counted and consumed.
    fn walk(&mut self, buf: &[u8], eof: bool) -> Result<usize, BatchError> {
        let mut pos = 0;
        while self.index < self.count {
            let index = self.index;
            let rest = buf.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                if !eof {
                    return Ok(pos);
                }
                return Err(BatchError::MalformedRecord {
                    index,
                    reason: MalformedReason::MissingRecords {
                        declared: self.declared,
                        found: index,
                    },
                });
            }
            if !eof && !record_decidable(rest) {
                return Ok(pos);
            }
            let mut cur = Cursor::new(rest);
            let view = parse_record(&mut cur)
                .map_err(|reason| BatchError::MalformedRecord { index, reason })?;
            if self.sequential_offsets && i64::from(view.offset_delta) != index as i64 {
                return Err(BatchError::MalformedRecord {
                    index,
                    reason: MalformedReason::OffsetDeltaMismatch {
                        expected: i32::try_from(index).unwrap_or(i32::MAX),
                        found: view.offset_delta,
                    },
                });
            }
            (self.on_record)(index, view)?;
            pos += cur.pos;
            self.index += 1;
        }
        self.trailing = self.trailing.saturating_add(buf.len().saturating_sub(pos));
        Ok(buf.len())
    }

    /// The end of the section: the result [`walk_records`] gives on all of it.
    fn finish(mut self) -> Result<(), BatchError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let carry = std::mem::take(&mut self.carry);
        self.walk(&carry, true)?;
        if self.trailing != 0 {
            return Err(BatchError::MalformedRecord {
                index: self.count,
                reason: MalformedReason::TrailingBytes {
                    bytes: self.trailing,
                },
            });
        }
        Ok(())
    }
}

/// The records section of a whole batch, decompressed (bounded) if needed.
/// Returns borrowed bytes when uncompressed, owned bytes otherwise.
fn records_section<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    decompressed_bytes_max: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, BatchError> {
    let end = header.size_bytes();
    let raw = batch
        .get(BATCH_HEADER_BYTES..end)
        .ok_or_else(|| truncated(end, batch.len()))?;
    match header.compression()? {
        Compression::None => Ok(std::borrow::Cow::Borrowed(raw)),
        codec => Ok(std::borrow::Cow::Owned(compression::decompress(
            codec,
            raw,
            decompressed_bytes_max,
        )?)),
    }
}

/// Decode every record of one batch (the batch must be complete; trailing bytes
/// after it are ignored). Decompressed data is bounded by
/// `decompressed_bytes_max`. Off the hot path: allocates per record.
pub fn records(batch: &[u8], decompressed_bytes_max: usize) -> Result<Vec<Record>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let section = records_section(batch, &header, decompressed_bytes_max)?;
    // One copy of the section; every key/value/header is a zero-copy slice of it.
    let shared = Bytes::copy_from_slice(&section);
    let mut out = Vec::with_capacity(usize::try_from(header.records_count).unwrap_or(0).min(4096));
    let slice_of = |part: &[u8]| -> Bytes { shared.slice_ref(part) };
    walk_records(&shared, header.records_count, false, |index, view| {
        let mut headers = Vec::with_capacity(view.header_count.min(1024));
        let mut hc = Cursor::new(view.headers);
        for _ in 0..view.header_count {
            let parsed = hc
                .bytes("header key")
                .and_then(|k| Ok((k, hc.nullable_bytes("header value")?)));
            let (k, v) = parsed.map_err(|reason| BatchError::MalformedRecord { index, reason })?;
            headers.push(RecordHeader {
                key: slice_of(k),
                value: v.map(slice_of),
            });
        }
        out.push(Record {
            attributes: view.attributes,
            timestamp_delta: view.timestamp_delta,
            offset_delta: view.offset_delta,
            key: view.key.map(slice_of),
            value: view.value.map(slice_of),
            headers,
        });
        Ok(())
    })?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// Validation of produced batches

/// Limits applied by [`validate_produced_batch`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ValidationLimits {
    /// Largest accepted batch on the wire (Kafka's `max.message.bytes`).
    pub batch_bytes_max: usize,
    /// Largest accepted decompressed records section.
    pub decompressed_bytes_max: usize,
    /// Reject keyless records (compacted topics).
    pub require_keys: bool,
    /// The inclusive range a record's CreateTime timestamp must fall in
    /// (Kafka's `message.timestamp.before/after.max.ms` around now); `None`
    /// checks nothing (LogAppendTime topics). Records without a timestamp
    /// (-1) are not checked, as in Kafka.
    pub timestamp_range: Option<(TimestampMs, TimestampMs)>,
}

impl Default for ValidationLimits {
    /// Kafka's default `max.message.bytes` (1 MiB + 12), 128 MiB decompressed, keys optional.
    fn default() -> Self {
        ValidationLimits {
            batch_bytes_max: 1024 * 1024 + 12,
            decompressed_bytes_max: 128 * 1024 * 1024,
            require_keys: false,
            timestamp_range: None,
        }
    }
}

/// Most [`RecordError`]s a [`ValidatedBatch`] lists; the count of those
/// beyond is still kept ([`ValidatedBatch::record_errors_total`]). Bounds
/// the list a compressed batch of tiny bad records could otherwise grow.
pub const RECORD_ERRORS_MAX: usize = 100_000;

/// What is wrong with one well-formed record (KIP-467's per-record errors).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RecordProblem {
    /// Keyless, where [`ValidationLimits::require_keys`].
    MissingKey,
    /// A timestamp outside [`ValidationLimits::timestamp_range`].
    TimestampOutOfRange { timestamp: TimestampMs },
}

/// One offending record: its index in the batch and the problem.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub index: usize,
    pub problem: RecordProblem,
}

/// A batch that passed [`validate_produced_batch_detailed`], with facts found
/// while walking its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedBatch {
    pub header: BatchHeader,
    /// Smallest record timestamp (`baseTimestamp + timestampDelta`).
    pub min_record_timestamp: TimestampMs,
    /// Largest record timestamp; may differ from `header.max_timestamp` if the
    /// producer lied (see [`set_max_timestamp`]).
    pub max_record_timestamp: TimestampMs,
    /// The well-formed records that break a per-record rule, in batch order
    /// (at most [`RECORD_ERRORS_MAX`]). A batch with any is refused whole.
    pub record_errors: Vec<RecordError>,
    /// How many records broke a per-record rule (may exceed the list).
    pub record_errors_total: usize,
}

/// The checks of [`validate_produced_batch_detailed`] that need only the
/// header and the CRC: size limit, exact framing, CRC, base offset, not a
/// control batch, record count.
fn check_produced_header(
    bytes: &[u8],
    limits: &ValidationLimits,
) -> Result<BatchHeader, BatchError> {
    if bytes.len() > limits.batch_bytes_max {
        return Err(BatchError::BatchTooLarge {
            batch_bytes: bytes.len(),
            limit_bytes: limits.batch_bytes_max,
        });
    }
    let header = BatchHeader::parse(bytes)?;
    let size = header.size_bytes();
    if size > bytes.len() {
        return Err(truncated(size, bytes.len()));
    }
    if size < bytes.len() {
        return Err(BatchError::LengthMismatch {
            batch_bytes: size,
            buffer_bytes: bytes.len(),
        });
    }
    verify_crc(bytes)?;
    if header.base_offset != Offset(0) {
        return Err(BatchError::NonZeroBaseOffset {
            base_offset: header.base_offset,
        });
    }
    if header.is_control() {
        return Err(BatchError::ControlBatchFromClient);
    }
    if header.records_count < 1 {
        return Err(BatchError::EmptyBatch);
    }
    if i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1 {
        return Err(BatchError::RecordCountMismatch {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Validate a producer's `records` bytes before appending; see
/// [`validate_produced_batch_detailed`] for the checks.
///
/// A batch with a per-record error is refused with the first one (the
/// detailed form lists them all).
pub fn validate_produced_batch(
    bytes: &[u8],
    limits: &ValidationLimits,
) -> Result<BatchHeader, BatchError> {
    let validated = validate_produced_batch_detailed(bytes, limits)?;
    match validated.record_errors.first() {
        None => Ok(validated.header),
        Some(e) => Err(match e.problem {
            RecordProblem::MissingKey => BatchError::MissingKey { index: e.index },
            RecordProblem::TimestampOutOfRange { timestamp } => BatchError::TimestampOutOfRange {
                index: e.index,
                timestamp,
            },
        }),
    }
}

/// Validate a producer's `records` bytes: exactly one complete magic-2 batch
/// and nothing after it, within `limits.batch_bytes_max`, CRC correct,
/// `baseOffset == 0`, not a control batch, `recordsCount >= 1` and equal to
/// `lastOffsetDelta + 1`; then every record (decompressed, bounded by
/// `limits.decompressed_bytes_max`) is walked: exact length framing,
/// `offsetDelta` 0..n-1, lengths within bounds, nothing left over. Every
/// record that breaks a per-record rule (a key missing when
/// `limits.require_keys`, a timestamp outside `limits.timestamp_range`) is
/// listed in [`ValidatedBatch::record_errors`] rather than stopping the walk,
/// so the producer learns every offending record (KIP-467).
///
/// Compressed records are walked as they are decompressed, piece by piece
/// ([`compression::decompress_chunks`]), so the whole section is never held
/// in memory (only a record straddling two pieces is copied). The outcome is
/// the same as decompressing first: an error of the compressed data, or the
/// limit, is reported in preference to an error in the records before it.
pub fn validate_produced_batch_detailed(
    bytes: &[u8],
    limits: &ValidationLimits,
) -> Result<ValidatedBatch, BatchError> {
    let header = check_produced_header(bytes, limits)?;
    let size = header.size_bytes();
    let mut min_ts = i64::MAX;
    let mut max_ts = i64::MIN;
    let base_ts = header.base_timestamp.get();
    let mut record_errors = Vec::new();
    let mut record_errors_total = 0usize;
    let on_record = |index: usize, view: RecordView<'_>| {
        let ts = base_ts.saturating_add(view.timestamp_delta);
        if let Some(problem) = record_problem(limits, view.key.is_some(), ts) {
            record_errors_total += 1;
            if record_errors.len() < RECORD_ERRORS_MAX {
                record_errors.push(RecordError { index, problem });
            }
        }
        min_ts = min_ts.min(ts);
        max_ts = max_ts.max(ts);
        Ok(())
    };
    let raw = bytes
        .get(BATCH_HEADER_BYTES..size)
        .ok_or_else(|| truncated(size, bytes.len()))?;
    match header.compression()? {
        Compression::None => walk_records(raw, header.records_count, true, on_record)?,
        codec => {
            // Walk the records as they are decompressed, never holding the
            // whole section; a decompression error (including the limit)
            // outranks any record error, as if the section had been
            // decompressed first.
            let mut stream = RecordStream::new(header.records_count, true, on_record);
            compression::decompress_chunks(codec, raw, limits.decompressed_bytes_max, |piece| {
                stream.feed(piece)
            })?;
            stream.finish()?;
        }
    }
    Ok(ValidatedBatch {
        header,
        min_record_timestamp: TimestampMs(min_ts),
        max_record_timestamp: TimestampMs(max_ts),
        record_errors,
        record_errors_total,
    })
}

/// The per-record rule a record with a key (or not) and timestamp `ts`
/// breaks, if any (the key first, as Kafka checks it first).
fn record_problem(limits: &ValidationLimits, has_key: bool, ts: i64) -> Option<RecordProblem> {
    if limits.require_keys && !has_key {
        return Some(RecordProblem::MissingKey);
    }
    match limits.timestamp_range {
        Some((low, high)) if ts != NO_TIMESTAMP.get() && (ts < low.get() || ts > high.get()) => {
            Some(RecordProblem::TimestampOutOfRange {
                timestamp: TimestampMs(ts),
            })
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Iteration over concatenated batches

/// Iterates over concatenated batches (e.g. bytes read from a segment file),
/// yielding each complete batch's header and bytes. It stops (returns `None`)
/// at the end or at an incomplete trailing batch; after a malformed header it
/// yields that error once and then stops. [`BatchIter::consumed_bytes`] tells
/// how many bytes the yielded batches cover. CRCs are not checked.
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Iterate over the batches at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter {
            buf,
            pos: 0,
            failed: false,
        }
    }

    /// Bytes covered by the batches yielded so far.
    pub fn consumed_bytes(&self) -> usize {
        self.pos
    }

    /// The bytes not yet yielded (an incomplete tail once the iterator is done).
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.remaining();
        if rest.len() < LOG_OVERHEAD_BYTES {
            return None;
        }
        let batch_length = match be_i32(rest, field::BATCH_LENGTH) {
            Ok(n) => n,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        if batch_length < BATCH_LENGTH_MIN {
            self.failed = true;
            return Some(Err(BatchError::BatchLengthTooSmall { batch_length }));
        }
        let size = batch_length as usize + LOG_OVERHEAD_BYTES;
        // An incomplete trailing batch ends the iteration cleanly.
        let bytes = rest.get(..size)?;
        match BatchHeader::parse(bytes) {
            Ok(header) => {
                self.pos += size;
                Some(Ok((header, bytes)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Building

/// A record to put into a batch with [`BatchBuilder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecord {
    pub timestamp: TimestampMs,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

impl NewRecord {
    /// A record with no headers.
    pub fn new(timestamp: TimestampMs, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        NewRecord {
            timestamp,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: Vec::new(),
        }
    }

    /// Add a header.
    pub fn with_header(mut self, key: &[u8], value: Option<&[u8]>) -> Self {
        self.headers.push(RecordHeader {
            key: Bytes::copy_from_slice(key),
            value: value.map(Bytes::copy_from_slice),
        });
        self
    }
}

/// Builds a valid magic-2 batch. Defaults: no compression, base offset 0,
/// leader epoch -1, no producer id (-1/-1/-1), CreateTime, not transactional,
/// not control. Records get offset deltas 0..n-1; `baseTimestamp` is the first
/// record's timestamp and `maxTimestamp` the largest.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    compression: Compression,
    base_offset: Offset,
    partition_leader_epoch: LeaderEpoch,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    log_append_time: Option<TimestampMs>,
    records: Vec<NewRecord>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder::new()
    }
}

impl BatchBuilder {
    /// An empty builder with the defaults above.
    pub fn new() -> Self {
        BatchBuilder {
            compression: Compression::None,
            base_offset: Offset(0),
            partition_leader_epoch: LeaderEpoch::NONE,
            producer_id: ProducerId(-1),
            producer_epoch: ProducerEpoch(-1),
            base_sequence: -1,
            transactional: false,
            control: false,
            log_append_time: None,
            records: Vec::new(),
        }
    }

    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    pub fn base_offset(mut self, base_offset: Offset) -> Self {
        self.base_offset = base_offset;
        self
    }

    pub fn partition_leader_epoch(mut self, epoch: LeaderEpoch) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Idempotent producer identity and the first record's sequence number.
    pub fn producer(mut self, id: ProducerId, epoch: ProducerEpoch, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Stamp the batch as LogAppendTime with this time (as a broker would).
    pub fn log_append_time(mut self, now: TimestampMs) -> Self {
        self.log_append_time = Some(now);
        self
    }

    /// Add a record (builder style).
    pub fn record(mut self, record: NewRecord) -> Self {
        self.records.push(record);
        self
    }

    /// Add a record.
    pub fn push(&mut self, record: NewRecord) {
        self.records.push(record);
    }

    /// Number of records added so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encode the batch. An empty builder yields a header-only batch (which
    /// [`validate_produced_batch`] rejects as [`BatchError::EmptyBatch`]).
    pub fn build(&self) -> Result<Vec<u8>, BatchError> {
        let too_large = |n: usize| BatchError::BatchTooLarge {
            batch_bytes: n,
            limit_bytes: i32::MAX as usize,
        };
        let base_ts = self.records.first().map_or(NO_TIMESTAMP, |r| r.timestamp);
        let max_ts = self
            .records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(NO_TIMESTAMP);
        let mut section = Vec::new();
        let mut body = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            body.clear();
            body.push(0); // record attributes
            varint::write_varlong(&mut body, r.timestamp.get().wrapping_sub(base_ts.get()));
            varint::write_varint(&mut body, i32::try_from(i).map_err(|_| too_large(i))?);
            write_nullable(&mut body, r.key.as_deref()).map_err(too_large)?;
            write_nullable(&mut body, r.value.as_deref()).map_err(too_large)?;
            let header_count = r.headers.len();
            varint::write_varint(
                &mut body,
                i32::try_from(header_count).map_err(|_| too_large(header_count))?,
            );
            for h in &r.headers {
                write_nullable(&mut body, Some(&h.key)).map_err(too_large)?;
                write_nullable(&mut body, h.value.as_deref()).map_err(too_large)?;
            }
            let len = i32::try_from(body.len()).map_err(|_| too_large(body.len()))?;
            varint::write_varint(&mut section, len);
            section.extend_from_slice(&body);
        }
        let section = compression::compress(self.compression, &section)?;
        let total = BATCH_HEADER_BYTES + section.len();
        let batch_length =
            i32::try_from(total - LOG_OVERHEAD_BYTES).map_err(|_| too_large(total))?;
        let count = self.records.len();
        let records_count = i32::try_from(count).map_err(|_| too_large(count))?;
        let mut attributes = i16::from(self.compression.id());
        if self.transactional {
            attributes |= ATTR_TRANSACTIONAL;
        }
        if self.control {
            attributes |= ATTR_CONTROL;
        }
        let max_ts = match self.log_append_time {
            Some(now) => {
                attributes |= ATTR_LOG_APPEND_TIME;
                now
            }
            None => max_ts,
        };
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&self.base_offset.get().to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.get().to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&0u32.to_be_bytes()); // CRC, filled below
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&(records_count - 1).to_be_bytes());
        out.extend_from_slice(&base_ts.get().to_be_bytes());
        out.extend_from_slice(&max_ts.get().to_be_bytes());
        out.extend_from_slice(&self.producer_id.get().to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.get().to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&records_count.to_be_bytes());
        assert_eq!(out.len(), BATCH_HEADER_BYTES, "header layout");
        out.extend_from_slice(&section);
        rewrite_crc(&mut out)?;
        Ok(out)
    }
}

/// Write a varint length (-1 for `None`) and the bytes; fails with the length
/// if it does not fit an `i32`.
fn write_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<(), usize> {
    match bytes {
        None => varint::write_varint(out, -1),
        Some(b) => {
            varint::write_varint(out, i32::try_from(b.len()).map_err(|_| b.len())?);
            out.extend_from_slice(b);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(compression: Compression) -> Vec<u8> {
        BatchBuilder::new()
            .compression(compression)
            .record(NewRecord::new(TimestampMs(1000), Some(b"k1"), Some(b"v1")))
            .record(
                NewRecord::new(TimestampMs(1005), None, Some(b"value two"))
                    .with_header(b"h", Some(b"x"))
                    .with_header(b"n", None),
            )
            .record(NewRecord::new(TimestampMs(999), Some(b""), None))
            .build()
            .expect("build")
    }

    #[test]
    fn header_fields_decode() {
        let b = sample(Compression::None);
        let h = BatchHeader::parse(&b).expect("parse");
        assert_eq!(h.base_offset, Offset(0));
        assert_eq!(h.size_bytes(), b.len());
        assert_eq!(h.magic, 2);
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.last_offset(), Offset(2));
        assert_eq!(h.base_timestamp, TimestampMs(1000));
        assert_eq!(h.max_timestamp, TimestampMs(1005));
        assert_eq!(h.producer_id, ProducerId(-1));
        assert_eq!(h.compression().expect("codec"), Compression::None);
        assert!(!h.is_control() && !h.is_transactional() && !h.log_append_time());
        verify_crc(&b).expect("crc");
    }

    #[test]
    fn validate_accepts_and_reports_timestamps() {
        let b = sample(Compression::Gzip);
        let v = validate_produced_batch_detailed(&b, &ValidationLimits::default()).expect("ok");
        assert_eq!(v.min_record_timestamp, TimestampMs(999));
        assert_eq!(v.max_record_timestamp, TimestampMs(1005));
        let limits = ValidationLimits {
            require_keys: true,
            ..ValidationLimits::default()
        };
        let err = validate_produced_batch(&b, &limits).expect_err("keyless");
        assert!(matches!(err, BatchError::MissingKey { index: 1 }), "{err}");
    }

    /// Every record outside the timestamp range is listed, not just the
    /// first; records without a timestamp (-1) are not checked, as in Kafka.
    #[test]
    fn validate_lists_every_record_outside_the_timestamp_range() {
        let mut b = BatchBuilder::new();
        for ts in [-1, 10, 1_000, 5_000, 2_000, 9] {
            b.push(NewRecord::new(TimestampMs(ts), Some(b"k"), Some(b"v")));
        }
        let bytes = b.build().expect("build");
        let limits = ValidationLimits {
            timestamp_range: Some((TimestampMs(100), TimestampMs(3_000))),
            ..ValidationLimits::default()
        };
        let v = validate_produced_batch_detailed(&bytes, &limits).expect("well-formed");
        let listed: Vec<(usize, RecordProblem)> = v
            .record_errors
            .iter()
            .map(|e| (e.index, e.problem))
            .collect();
        let out = |ts| RecordProblem::TimestampOutOfRange {
            timestamp: TimestampMs(ts),
        };
        assert_eq!(listed, vec![(1, out(10)), (3, out(5_000)), (5, out(9))]);
        assert_eq!(v.record_errors_total, 3);
        let err = validate_produced_batch(&bytes, &limits).expect_err("refused");
        assert!(
            matches!(err, BatchError::TimestampOutOfRange { index: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn records_decode() {
        for codec in Compression::ALL {
            let b = sample(codec);
            let h = BatchHeader::parse(&b).expect("parse");
            let rs = records(&b, 1 << 20).expect("records");
            assert_eq!(rs.len(), 3);
            assert_eq!(rs[0].key.as_deref(), Some(&b"k1"[..]));
            assert_eq!(rs[1].key, None);
            assert_eq!(rs[1].headers.len(), 2);
            assert_eq!(rs[1].headers[1].value, None);
            assert_eq!(rs[2].value, None);
            assert_eq!(h.record_timestamp(&rs[2]), TimestampMs(999));
            assert_eq!(h.record_offset(&rs[2]), Offset(2));
        }
    }

    #[test]
    fn patching() {
        let mut b = sample(Compression::None);
        set_base_offset(&mut b, Offset(42)).expect("base");
        set_partition_leader_epoch(&mut b, LeaderEpoch(7)).expect("epoch");
        verify_crc(&b).expect("offset and epoch are outside the CRC");
        let h = BatchHeader::parse(&b).expect("parse");
        assert_eq!(h.base_offset, Offset(42));
        assert_eq!(h.last_offset(), Offset(44));
        assert_eq!(h.partition_leader_epoch, LeaderEpoch(7));
        set_log_append_time(&mut b, TimestampMs(5555)).expect("lat");
        verify_crc(&b).expect("crc recomputed");
        let h = BatchHeader::parse(&b).expect("parse");
        assert!(h.log_append_time());
        assert_eq!(h.max_timestamp, TimestampMs(5555));
        let rs = records(&b, 1 << 20).expect("records");
        assert_eq!(h.record_timestamp(&rs[0]), TimestampMs(5555));
        set_max_timestamp(&mut b, TimestampMs(6)).expect("max");
        verify_crc(&b).expect("crc recomputed");
        assert!(set_base_offset(&mut b[..60], Offset(1)).is_err());
    }

    #[test]
    fn error_kinds() {
        let mut b = sample(Compression::None);
        b[30] ^= 1;
        let e = validate_produced_batch(&b, &ValidationLimits::default()).expect_err("crc");
        assert_eq!(e.kind(), BatchErrorKind::Corrupt);
        let small = ValidationLimits {
            batch_bytes_max: 10,
            ..ValidationLimits::default()
        };
        let e = validate_produced_batch(&sample(Compression::None), &small).expect_err("size");
        assert_eq!(e.kind(), BatchErrorKind::TooLarge);
        let mut b = sample(Compression::None);
        set_base_offset(&mut b, Offset(3)).expect("patch");
        let e = validate_produced_batch(&b, &ValidationLimits::default()).expect_err("base");
        assert!(matches!(e, BatchError::NonZeroBaseOffset { .. }));
        assert_eq!(e.kind(), BatchErrorKind::Invalid);
    }

    #[test]
    fn control_and_empty_rejected() {
        let b = BatchBuilder::new()
            .control(true)
            .record(NewRecord::new(
                TimestampMs(1),
                Some(&[0, 0, 0, 0]),
                Some(b""),
            ))
            .build()
            .expect("build");
        assert!(matches!(
            validate_produced_batch(&b, &ValidationLimits::default()),
            Err(BatchError::ControlBatchFromClient)
        ));
        let b = BatchBuilder::new().build().expect("build");
        assert!(matches!(
            validate_produced_batch(&b, &ValidationLimits::default()),
            Err(BatchError::EmptyBatch)
        ));
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut b = sample(Compression::None);
        b.push(0);
        assert!(matches!(
            validate_produced_batch(&b, &ValidationLimits::default()),
            Err(BatchError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn iter_stops_at_incomplete_tail() {
        let mut buf = Vec::new();
        for i in 0..3 {
            let mut b = sample(Compression::None);
            set_base_offset(&mut b, Offset(i * 3)).expect("patch");
            buf.extend_from_slice(&b);
        }
        let full = buf.len();
        buf.extend_from_slice(&sample(Compression::None)[..20]);
        let mut it = BatchIter::new(&buf);
        let offsets: Vec<i64> = it
            .by_ref()
            .map(|r| r.expect("batch").0.base_offset.get())
            .collect();
        assert_eq!(offsets, vec![0, 3, 6]);
        assert_eq!(it.consumed_bytes(), full);
        assert_eq!(it.remaining().len(), 20);
    }
}

/// The streaming validation path against the whole-buffer one it replaced.
#[cfg(test)]
mod streaming_tests {

    use proptest::prelude::*;

    use super::*;
    use crate::compression::reference;

    /// `validate_produced_batch_detailed` as it was before streaming: the
    /// section decompressed whole (by the reference decompressor), then walked.
    fn validate_whole_buffer(
        bytes: &[u8],
        limits: &ValidationLimits,
    ) -> Result<ValidatedBatch, BatchError> {
        // The header checks are shared; what differs is how the records
        // section is decompressed and walked.
        let header = check_produced_header(bytes, limits)?;
        let size = header.size_bytes();
        let raw = bytes
            .get(BATCH_HEADER_BYTES..size)
            .ok_or_else(|| truncated(size, bytes.len()))?;
        let section = match header.compression()? {
            Compression::None => raw.to_vec(),
            codec => reference::decompress(codec, raw, limits.decompressed_bytes_max)?,
        };
        let mut min_ts = i64::MAX;
        let mut max_ts = i64::MIN;
        let mut record_errors = Vec::new();
        let base_ts = header.base_timestamp.get();
        walk_records(&section, header.records_count, true, |index, view| {
            let ts = base_ts.saturating_add(view.timestamp_delta);
            if let Some(problem) = record_problem(limits, view.key.is_some(), ts) {
                record_errors.push(RecordError { index, problem });
            }
            min_ts = min_ts.min(ts);
            max_ts = max_ts.max(ts);
            Ok(())
        })?;
        Ok(ValidatedBatch {
            header,
            min_record_timestamp: TimestampMs(min_ts),
            max_record_timestamp: TimestampMs(max_ts),
            record_errors_total: record_errors.len(),
            record_errors,
        })
    }

    /// How a records section is compressed (the ways Kafka clients do it).
    #[derive(Copy, Clone, Debug)]
    enum Encoding {
        Plain,
        Gzip,
        SnappyXerial,
        SnappyRaw,
        Lz4,
        Lz4Linked,
        Lz4Checksums,
        Zstd,
    }

    const ENCODINGS: [Encoding; 8] = [
        Encoding::Plain,
        Encoding::Gzip,
        Encoding::SnappyXerial,
        Encoding::SnappyRaw,
        Encoding::Lz4,
        Encoding::Lz4Linked,
        Encoding::Lz4Checksums,
        Encoding::Zstd,
    ];

    impl Encoding {
        fn codec(self) -> Compression {
            match self {
                Encoding::Plain => Compression::None,
                Encoding::Gzip => Compression::Gzip,
                Encoding::SnappyXerial | Encoding::SnappyRaw => Compression::Snappy,
                Encoding::Lz4 | Encoding::Lz4Linked | Encoding::Lz4Checksums => Compression::Lz4,
                Encoding::Zstd => Compression::Zstd,
            }
        }

        fn encode(self, section: &[u8]) -> Vec<u8> {
            let lz4 = |mode, checksums: bool| reference::lz4_frame(section, mode, checksums);
            match self {
                Encoding::SnappyRaw => snap::raw::Encoder::new()
                    .compress_vec(section)
                    .expect("snappy"),
                Encoding::Lz4Linked => lz4(lz4_flex::frame::BlockMode::Linked, false),
                Encoding::Lz4Checksums => lz4(lz4_flex::frame::BlockMode::Independent, true),
                other => compression::compress(other.codec(), section).expect("compress"),
            }
        }
    }

    /// A batch around an already encoded `section`: header of `plain` with the
    /// codec bits, `batchLength` and CRC made to match.
    fn assemble(plain_header: &[u8], codec: Compression, section: &[u8]) -> Vec<u8> {
        let mut b = plain_header[..BATCH_HEADER_BYTES].to_vec();
        b.extend_from_slice(section);
        let batch_length = i32::try_from(b.len() - LOG_OVERHEAD_BYTES).expect("length");
        put(&mut b, field::BATCH_LENGTH, batch_length.to_be_bytes()).expect("put");
        let attributes = be_i16(&b, field::ATTRIBUTES).expect("attributes");
        let attributes = (attributes & !ATTR_COMPRESSION_MASK) | i16::from(codec.id());
        put(&mut b, field::ATTRIBUTES, attributes.to_be_bytes()).expect("put");
        rewrite_crc(&mut b).expect("crc");
        b
    }

    /// Deterministic, somewhat compressible bytes.
    fn filler(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x & 3 == 0 {
                out.extend_from_slice(b"samsa record value ");
            } else {
                out.extend_from_slice(&x.to_le_bytes()[..1 + (x >> 61) as usize]);
            }
        }
        out.truncate(len);
        out
    }

    /// A plain batch of records with the given value sizes (every third one
    /// keyless, some with headers, timestamps going up and down).
    fn plain_batch(value_sizes: &[usize]) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for (i, &len) in value_sizes.iter().enumerate() {
            let key = format!("key-{i}");
            let ts = 1_700_000_000_000 + (i as i64 % 7) * 1000 - i as i64;
            let mut r = NewRecord::new(
                TimestampMs(ts),
                (i % 3 != 1).then_some(key.as_bytes()),
                Some(&filler(i as u64 + 1, len)),
            );
            if i % 4 == 0 {
                r = r.with_header(b"h", Some(b"v")).with_header(b"n", None);
            }
            b.push(r);
        }
        b.build().expect("build")
    }

    /// One record as a `RecordStream` or `walk_records` reports it.
    type Seen = (
        usize,
        i8,
        i64,
        i32,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        usize,
        Vec<u8>,
    );

    fn seen(index: usize, v: &RecordView<'_>) -> Seen {
        (
            index,
            v.attributes,
            v.timestamp_delta,
            v.offset_delta,
            v.key.map(<[u8]>::to_vec),
            v.value.map(<[u8]>::to_vec),
            v.header_count,
            v.headers.to_vec(),
        )
    }

    /// `walk_records` over the whole section: records seen and the outcome.
    fn walk_whole(section: &[u8], count: i32) -> (Vec<Seen>, String) {
        let mut got = Vec::new();
        let r = walk_records(section, count, true, |i, v| {
            got.push(seen(i, &v));
            Ok(())
        });
        (got, format!("{r:?}"))
    }

    /// A `RecordStream` fed `section` cut at `cuts` (ascending positions).
    fn walk_pieces(section: &[u8], count: i32, cuts: &[usize]) -> (Vec<Seen>, String) {
        let mut got = Vec::new();
        let mut stream = RecordStream::new(count, true, |i, v: RecordView<'_>| {
            got.push(seen(i, &v));
            Ok(())
        });
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&section.len())) {
            stream.feed(&section[at..cut]);
            at = cut;
        }
        let r = stream.finish();
        (got, format!("{r:?}"))
    }

    /// Sections to cut: valid ones with records of 0 B to 20 KB (length
    /// varints of 1 to 3 bytes), and damaged ones.
    fn sections() -> Vec<(Vec<u8>, i32)> {
        let plain = plain_batch(&[0, 1, 60, 62, 63, 64, 200, 5, 20_000, 3]);
        let section = plain[BATCH_HEADER_BYTES..].to_vec();
        let n = BatchHeader::parse(&plain).expect("header").records_count;
        let mut out = vec![(section.clone(), n)];
        // Fewer or more records than declared, trailing bytes, truncation.
        out.push((section.clone(), n - 1));
        out.push((section.clone(), n + 1));
        let mut trailing = section.clone();
        trailing.extend_from_slice(&[0, 1, 2]);
        out.push((trailing, n));
        for cut in [1, 2, 40, section.len() / 2, section.len() - 1] {
            out.push((section[..cut].to_vec(), n));
        }
        // Bad length varints: over-long, negative, too large, longer than the record.
        let mut bad = section.clone();
        bad[..6].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
        out.push((bad, n));
        let mut bad = section.clone();
        bad[0] = 0x03; // -2
        out.push((bad, n));
        let mut bad = section.clone();
        bad[0] = 0x7E; // 63 instead of the real length
        out.push((bad, n));
        // A damaged byte inside every few records.
        for at in (0..section.len()).step_by(997) {
            let mut bad = section.clone();
            bad[at] ^= 0x81;
            out.push((bad, n));
        }
        out
    }

    #[test]
    fn record_stream_matches_walk_records_at_every_cut() {
        for (section, count) in sections() {
            let expected = walk_whole(&section, count);
            // Two pieces, cut everywhere near the start of the section, and
            // every so often after.
            let cuts =
                (0..=section.len()).filter(|&c| c < 600 || c % 97 == 0 || c + 8 > section.len());
            for cut in cuts {
                assert_eq!(
                    walk_pieces(&section, count, &[cut]),
                    expected,
                    "cut at {cut}"
                );
            }
            // Many pieces of a fixed size (1 byte: every record straddles).
            for size in [1, 2, 3, 5, 7, 64, 1000, 16_384] {
                let cuts: Vec<usize> = (size..section.len()).step_by(size).collect();
                assert_eq!(
                    walk_pieces(&section, count, &cuts),
                    expected,
                    "pieces of {size}"
                );
            }
            // Empty pieces change nothing.
            let cuts = [0, 0, 10, 10, 10, 500, section.len()].map(|c| c.min(section.len()));
            assert_eq!(
                walk_pieces(&section, count, &cuts),
                expected,
                "empty pieces"
            );
        }
    }

    #[test]
    fn carry_holds_at_most_one_straddling_record() {
        // A 20 KB record fed in 1-byte pieces: the carry grows to that one
        // record (not to everything fed so far) and is then consumed.
        let plain = plain_batch(&[20_000, 10]);
        let section = &plain[BATCH_HEADER_BYTES..];
        let mut largest_carry = 0;
        let mut stream = RecordStream::new(2, true, |_, _: RecordView<'_>| Ok(()));
        for byte in section.chunks(1) {
            stream.feed(byte);
            largest_carry = largest_carry.max(stream.carry.len());
        }
        assert!(largest_carry <= 20_100, "{largest_carry}");
        stream.finish().expect("valid");
    }

    #[test]
    fn compressed_batches_straddling_blocks_validate_like_before() {
        // Records straddling 64 KiB LZ4 blocks, 16 KiB reads and 32 KiB
        // xerial blocks, one record spanning several blocks.
        let plain = plain_batch(&[1000, 70_000, 5, 65_536, 100, 300_000, 7, 16_000, 16_500, 0]);
        let limits = ValidationLimits {
            batch_bytes_max: usize::MAX,
            ..ValidationLimits::default()
        };
        let expected = validate_whole_buffer(&plain, &limits).expect("plain is valid");
        for encoding in ENCODINGS {
            let codec = encoding.codec();
            let b = assemble(
                &plain,
                codec,
                &encoding.encode(&plain[BATCH_HEADER_BYTES..]),
            );
            let got = validate_produced_batch_detailed(&b, &limits).expect("valid");
            assert_eq!(
                got.min_record_timestamp, expected.min_record_timestamp,
                "{encoding:?}"
            );
            assert_eq!(
                got.max_record_timestamp, expected.max_record_timestamp,
                "{encoding:?}"
            );
            assert_eq!(
                format!("{got:?}"),
                format!("{:?}", validate_whole_buffer(&b, &limits).expect("ok"))
            );
            // With keys required and a timestamp floor, every offending
            // record is listed (keyless 1, 4 and 7; 0 is too old; 7, keyless
            // too, is listed once, for its key), as the whole-buffer walk
            // lists them.
            let strict = ValidationLimits {
                require_keys: true,
                timestamp_range: Some((TimestampMs(1_700_000_000_001), TimestampMs(i64::MAX))),
                ..limits
            };
            let got = validate_produced_batch_detailed(&b, &strict).expect("well-formed");
            let listed: Vec<(usize, RecordProblem)> = got
                .record_errors
                .iter()
                .map(|e| (e.index, e.problem))
                .collect();
            let old = RecordProblem::TimestampOutOfRange {
                timestamp: TimestampMs(1_700_000_000_000),
            };
            let keyless = RecordProblem::MissingKey;
            assert_eq!(
                listed,
                vec![(0, old), (1, keyless), (4, keyless), (7, keyless)],
                "{encoding:?}"
            );
            assert_eq!(got.record_errors_total, 4);
            assert_eq!(
                format!("{got:?}"),
                format!("{:?}", validate_whole_buffer(&b, &strict).expect("ok"))
            );
            // One byte short of the decompressed size is too large.
            let section_len = plain.len() - BATCH_HEADER_BYTES;
            let tight = ValidationLimits {
                decompressed_bytes_max: section_len - 1,
                ..limits
            };
            let got = validate_produced_batch_detailed(&b, &tight);
            let want = validate_whole_buffer(&b, &tight);
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{encoding:?}");
            if codec != Compression::None {
                assert!(
                    matches!(got, Err(BatchError::DecompressedTooLarge { .. })),
                    "{encoding:?}"
                );
            }
        }
    }

    #[test]
    fn truncated_or_corrupt_compressed_sections_fail_as_before() {
        let plain = plain_batch(&[500, 70_000, 20, 3000, 64, 10_000]);
        let limits = ValidationLimits {
            batch_bytes_max: usize::MAX,
            ..ValidationLimits::default()
        };
        for encoding in ENCODINGS {
            let codec = encoding.codec();
            let packed = encoding.encode(&plain[BATCH_HEADER_BYTES..]);
            let step = (packed.len() / 61).max(1);
            for at in (0..packed.len()).step_by(step) {
                let mut flipped = packed.clone();
                flipped[at] ^= 0x24;
                for section in [&packed[..at], &flipped[..]] {
                    let b = assemble(&plain, codec, section);
                    let got = validate_produced_batch_detailed(&b, &limits);
                    let want = validate_whole_buffer(&b, &limits);
                    assert_eq!(
                        format!("{got:?}"),
                        format!("{want:?}"),
                        "{encoding:?} at {at}"
                    );
                    if let (Err(g), Err(w)) = (&got, &want) {
                        assert_eq!(g.kind(), w.kind());
                    }
                }
            }
        }
    }

    #[test]
    fn bombs_are_too_large_with_memory_bounded_by_the_limit() {
        let limit = 1 << 20;
        let limits = ValidationLimits {
            batch_bytes_max: usize::MAX,
            decompressed_bytes_max: limit,
            require_keys: false,
            timestamp_range: None,
        };
        let template = plain_batch(&[1]);
        // All zeros (every record malformed), and one record claiming 1 GiB.
        let zeros = vec![0u8; 16 << 20];
        let mut huge = Vec::new();
        varint::write_varint(&mut huge, 1 << 30);
        huge.resize(16 << 20, b'x');
        for section in [&zeros, &huge] {
            for encoding in ENCODINGS {
                let codec = encoding.codec();
                if codec == Compression::None {
                    continue;
                }
                let b = assemble(&template, codec, &encoding.encode(section));
                let got = validate_produced_batch_detailed(&b, &limits);
                assert!(
                    matches!(got, Err(BatchError::DecompressedTooLarge { limit_bytes }) if limit_bytes == limit),
                    "{encoding:?}: {got:?}"
                );
                assert_eq!(
                    format!("{got:?}"),
                    format!("{:?}", validate_whole_buffer(&b, &limits))
                );
                // What the stream holds stays within the limit.
                let mut stream = RecordStream::new(1, true, |_, _: RecordView<'_>| Ok(()));
                let mut largest_carry = 0;
                let r =
                    compression::decompress_chunks(codec, &b[BATCH_HEADER_BYTES..], limit, |p| {
                        stream.feed(p);
                        largest_carry = largest_carry.max(stream.carry.capacity());
                    });
                assert!(r.is_err(), "{encoding:?}");
                assert!(
                    largest_carry <= 2 * limit,
                    "{encoding:?}: carry of {largest_carry}"
                );
            }
        }
    }

    #[test]
    fn short_varints_decode_like_the_strict_decoder() {
        let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        inputs.push(Vec::new());
        for b0 in 0..=255u8 {
            for b1 in 0..=255u8 {
                inputs.push(vec![b0, b1]);
                if b0 >= 0x80 && b1 >= 0x80 {
                    inputs.push(vec![b0, b1, 0x01]);
                }
            }
        }
        for input in inputs {
            for start in [0usize, 1] {
                let buf: Vec<u8> = std::iter::repeat_n(0x00, start)
                    .chain(input.iter().copied())
                    .collect();
                let mut cur = Cursor {
                    buf: &buf,
                    pos: start,
                };
                let mut pos = start;
                let want = varint::read_varint(&buf, &mut pos).map_err(|e| varint_error(e, "f"));
                assert_eq!(cur.varint("f"), want, "{input:?}");
                if want.is_ok() {
                    assert_eq!(cur.pos, pos, "{input:?}");
                }
                let mut cur = Cursor {
                    buf: &buf,
                    pos: start,
                };
                let mut pos = start;
                let want = varint::read_varlong(&buf, &mut pos).map_err(|e| varint_error(e, "f"));
                assert_eq!(cur.varlong("f"), want, "{input:?}");
                if want.is_ok() {
                    assert_eq!(cur.pos, pos, "{input:?}");
                }
            }
        }
    }

    /// A change to a batch before validation.
    #[derive(Clone, Debug)]
    enum Damage {
        None,
        /// XOR a byte of the uncompressed section (record-level errors).
        Record {
            at: usize,
            mask: u8,
        },
        /// XOR one of the first bytes of a record (its length, attributes,
        /// deltas, key length).
        RecordStart {
            record: usize,
            offset: usize,
            mask: u8,
        },
        /// XOR a byte of the compressed section.
        Compressed {
            at: usize,
            mask: u8,
        },
        /// Cut the compressed section short.
        Truncate {
            at: usize,
        },
        /// Add bytes after the compressed section.
        Append {
            bytes: Vec<u8>,
        },
        /// Declare more or fewer records.
        Count {
            delta: i32,
        },
    }

    fn damage_strategy() -> impl Strategy<Value = Damage> {
        prop_oneof![
            2 => Just(Damage::None),
            // Mostly near the start, where records are dense.
            3 => (prop_oneof![0usize..64, 0usize..4096, any::<usize>()], 1..=255u8)
                .prop_map(|(at, mask)| Damage::Record { at, mask }),
            3 => (any::<usize>(), 0usize..8, 1..=255u8)
                .prop_map(|(record, offset, mask)| Damage::RecordStart { record, offset, mask }),
            2 => (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Damage::Compressed { at, mask }),
            1 => any::<usize>().prop_map(|at| Damage::Truncate { at }),
            1 => prop::collection::vec(any::<u8>(), 1..20).prop_map(|bytes| Damage::Append { bytes }),
            1 => (-2i32..=2).prop_map(|delta| Damage::Count { delta }),
        ]
    }

    fn sizes_strategy() -> impl Strategy<Value = Vec<usize>> {
        let size = prop_oneof![
            6 => 0usize..200,
            2 => 200usize..5000,
            1 => 5000usize..90_000,
        ];
        prop::collection::vec(size, 1..30)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn streaming_validation_agrees_with_the_whole_buffer_path(
            sizes in sizes_strategy(),
            encoding in prop::sample::select(ENCODINGS.to_vec()),
            damage in damage_strategy(),
            small_limit in prop::option::weighted(0.3, any::<usize>()),
            require_keys in prop::bool::weighted(0.2),
        ) {
            let plain = plain_batch(&sizes);
            let mut section = plain[BATCH_HEADER_BYTES..].to_vec();
            match damage {
                Damage::Record { at, mask } => {
                    let at = at % section.len();
                    section[at] ^= mask;
                }
                Damage::RecordStart { record, offset, mask } => {
                    let mut starts = Vec::new();
                    let mut cur = Cursor::new(&section);
                    while cur.remaining() > 0 {
                        starts.push(cur.pos);
                        parse_record(&mut cur).expect("valid record");
                    }
                    let at = (starts[record % starts.len()] + offset).min(section.len() - 1);
                    section[at] ^= mask;
                }
                _ => {}
            }
            let mut packed = encoding.encode(&section);
            match &damage {
                Damage::Compressed { at, mask } if !packed.is_empty() => {
                    let at = at % packed.len();
                    packed[at] ^= mask;
                }
                Damage::Truncate { at } => packed.truncate(at % (packed.len() + 1)),
                Damage::Append { bytes } => packed.extend_from_slice(bytes),
                _ => {}
            }
            let mut b = assemble(&plain, encoding.codec(), &packed);
            if let Damage::Count { delta } = damage {
                let n = be_i32(&b, field::RECORDS_COUNT).expect("count") + delta;
                put(&mut b, field::RECORDS_COUNT, n.to_be_bytes()).expect("put");
                put(&mut b, field::LAST_OFFSET_DELTA, (n - 1).to_be_bytes()).expect("put");
                rewrite_crc(&mut b).expect("crc");
            }
            let limits = ValidationLimits {
                batch_bytes_max: usize::MAX,
                decompressed_bytes_max: small_limit.map_or(128 << 20, |l| l % (section.len() + 100)),
                require_keys,
                timestamp_range: None,
            };
            let got = validate_produced_batch_detailed(&b, &limits);
            let want = validate_whole_buffer(&b, &limits);
            prop_assert_eq!(format!("{:?}", got), format!("{:?}", want));
        }
    }
}
