//! Big-endian primitives of Kafka's message encoding, as used by the `__consumer_offsets`
//! records: the classic encoding (`int16`-length strings, `int32`-length bytes and arrays)
//! and the flexible one (unsigned-varint "compact" lengths stored as `length + 1`, and a
//! tagged-field section at the end of every struct).
//!
//! Every length read from a record is checked against the bytes present before anything
//! is allocated, so a corrupt record can cost at most a copy of its own size.

use bytes::{BufMut, Bytes, BytesMut};
use samsa_model::TopicId;

use crate::config::STRING_BYTES_MAX;

/// Why a record key or value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before the field does.
    #[error("record truncated: {needed} more bytes needed at offset {at}")]
    Truncated {
        /// Offset of the field inside the key or value.
        at: usize,
        /// Bytes missing.
        needed: usize,
    },
    /// A length prefix is negative (where null is not allowed) or larger than the bytes left.
    #[error("invalid length {0}")]
    InvalidLength(i64),
    /// A string is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// An unsigned varint has more than 5 bytes.
    #[error("unsigned varint longer than 5 bytes")]
    VarintOverflow,
    /// A non-nullable field is null.
    #[error("null where a value is required")]
    UnexpectedNull,
    /// The value's version is not one samsa can read.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// Which record value.
        what: &'static str,
        /// The version found.
        version: i16,
    },
    /// The key's record type is not one samsa knows.
    #[error("unknown record type {0}")]
    UnknownRecordType(i16),
}

/// Appends big-endian fields to a buffer.
#[derive(Default)]
pub(crate) struct Writer {
    buf: BytesMut,
}

/// The longest prefix of `s` that fits `max` bytes and ends on a character boundary.
/// Callers validate lengths at the request boundary (see `STRING_BYTES_MAX`), so this
/// only guards against writing a length that does not match the bytes.
fn clamp_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn finish(self) -> Bytes {
        self.buf.freeze()
    }

    pub(crate) fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    pub(crate) fn uuid(&mut self, id: TopicId) {
        self.buf.put_slice(id.0.as_bytes());
    }

    /// `int16` length + UTF-8 bytes.
    pub(crate) fn string(&mut self, s: &str) {
        let s = clamp_str(s, STRING_BYTES_MAX);
        self.i16(s.len() as i16);
        self.buf.put_slice(s.as_bytes());
    }

    /// Like [`Writer::string`], with length -1 for null.
    pub(crate) fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }

    /// `int32` length + bytes.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        let len = b.len().min(i32::MAX as usize);
        self.i32(len as i32);
        self.buf.put_slice(&b[..len]);
    }

    /// `int32` element count.
    pub(crate) fn array_len(&mut self, n: usize) {
        self.i32(n.min(i32::MAX as usize) as i32);
    }

    pub(crate) fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// Unsigned varint `length + 1` + UTF-8 bytes.
    pub(crate) fn compact_string(&mut self, s: &str) {
        let s = clamp_str(s, STRING_BYTES_MAX);
        self.uvarint(s.len() as u32 + 1);
        self.buf.put_slice(s.as_bytes());
    }

    /// Like [`Writer::compact_string`], with length byte 0 for null.
    pub(crate) fn compact_nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.compact_string(s),
            None => self.uvarint(0),
        }
    }

    /// Unsigned varint `count + 1`.
    pub(crate) fn compact_array_len(&mut self, n: usize) {
        self.uvarint(n.min(u32::MAX as usize - 1) as u32 + 1);
    }

    /// A tagged-field section: count, then per field its tag, size and bytes.
    pub(crate) fn tagged_fields(&mut self, fields: &[(u32, &[u8])]) {
        self.uvarint(fields.len() as u32);
        for (tag, data) in fields {
            self.uvarint(*tag);
            self.uvarint(data.len() as u32);
            self.buf.put_slice(data);
        }
    }
}

/// Reads big-endian fields from a key or value, checking every length first.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                at: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn uuid(&mut self) -> Result<TopicId, DecodeError> {
        Ok(TopicId(uuid::Uuid::from_bytes(self.array()?)))
    }

    fn utf8(&mut self, len: usize) -> Result<String, DecodeError> {
        let raw = self.take(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, DecodeError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        self.utf8(len as usize).map(Some)
    }

    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        self.nullable_string()?.ok_or(DecodeError::UnexpectedNull)
    }

    /// `int32`-length bytes; null (-1) reads as empty.
    pub(crate) fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }

    /// Checks that `n` elements of at least `min_size` bytes each can be present.
    fn check_count(&self, n: usize, min_size: usize) -> Result<usize, DecodeError> {
        if n.saturating_mul(min_size.max(1)) > self.remaining() {
            return Err(DecodeError::InvalidLength(n as i64));
        }
        Ok(n)
    }

    /// `int32` element count; null (-1) reads as zero elements.
    pub(crate) fn array_len(&mut self, min_size: usize) -> Result<usize, DecodeError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        self.check_count(n as usize, min_size)
    }

    pub(crate) fn uvarint(&mut self) -> Result<u32, DecodeError> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.array::<1>()?[0];
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    pub(crate) fn compact_nullable_string(&mut self) -> Result<Option<String>, DecodeError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        self.utf8(n as usize - 1).map(Some)
    }

    pub(crate) fn compact_string(&mut self) -> Result<String, DecodeError> {
        self.compact_nullable_string()?
            .ok_or(DecodeError::UnexpectedNull)
    }

    /// Unsigned varint (length + 1) + bytes; null reads as empty.
    pub(crate) fn compact_bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(n as usize - 1)?))
    }

    /// Compact element count; null reads as zero elements.
    pub(crate) fn compact_array_len(&mut self, min_size: usize) -> Result<usize, DecodeError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(0);
        }
        self.check_count(n as usize - 1, min_size)
    }

    /// Reads a tagged-field section, handing each field to `f` (unknown tags are skipped
    /// by `f` returning `Ok`).
    pub(crate) fn tagged_fields(
        &mut self,
        mut f: impl FnMut(u32, &'a [u8]) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let n = self.uvarint()?;
        for _ in 0..n {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let data = self.take(size)?;
            f(tag, data)?;
        }
        Ok(())
    }

    pub(crate) fn skip_tagged_fields(&mut self) -> Result<(), DecodeError> {
        self.tagged_fields(|_, _| Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_round_trip() {
        for v in [0u32, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut w = Writer::new();
            w.uvarint(v);
            let b = w.finish();
            assert_eq!(Reader::new(&b).uvarint(), Ok(v));
        }
    }

    #[test]
    fn lengths_are_checked_before_allocation() {
        let mut w = Writer::new();
        w.i32(i32::MAX);
        let b = w.finish();
        assert!(Reader::new(&b).bytes().is_err());
        assert!(Reader::new(&b).array_len(4).is_err());
    }

    #[test]
    fn clamped_strings_end_on_char_boundaries() {
        assert_eq!(clamp_str("héllo", 2), "h");
        assert_eq!(clamp_str("abc", 5), "abc");
    }
}
