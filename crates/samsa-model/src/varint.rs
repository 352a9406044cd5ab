//! Zigzag variable-length integers as used inside Kafka records.
//!
//! Encoding: the value is zigzag-mapped (`(n << 1) ^ (n >> bits-1)`, so small
//! negative numbers stay short), then written 7 bits at a time, least
//! significant group first, with the high bit of each byte set when another
//! byte follows. A 32-bit varint takes at most 5 bytes, a 64-bit varlong at most
//! 10. Decoding here is strict: an encoding longer than that, or one whose last
//! byte carries bits beyond the integer's width, is rejected.

/// Why a varint could not be decoded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// More bytes (or bits) than the integer's width allows.
    TooLong,
}

const VARINT_BYTES_MAX: usize = 5;
const VARLONG_BYTES_MAX: usize = 10;

/// Decode an unsigned LEB128 value of at most `bits` bits from `buf[*pos..]`,
/// advancing `pos`.
fn read_unsigned(buf: &[u8], pos: &mut usize, bits: u32) -> Result<u64, VarintError> {
    let bytes_max = if bits == 32 {
        VARINT_BYTES_MAX
    } else {
        VARLONG_BYTES_MAX
    };
    let mut value: u64 = 0;
    for i in 0..bytes_max {
        let at = pos.checked_add(i).ok_or(VarintError::Truncated)?;
        let byte = *buf.get(at).ok_or(VarintError::Truncated)?;
        let shift = 7 * i as u32;
        let group = u64::from(byte & 0x7F);
        // Bits of this group that would land at or beyond `bits` must be zero.
        if shift + 7 > bits && (group >> (bits - shift)) != 0 {
            return Err(VarintError::TooLong);
        }
        value |= group << shift;
        if byte & 0x80 == 0 {
            *pos = at + 1;
            return Ok(value);
        }
    }
    Err(VarintError::TooLong)
}

/// Decode a zigzag 32-bit varint at `buf[*pos..]`, advancing `pos`.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, VarintError> {
    let raw = read_unsigned(buf, pos, 32)? as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Decode a zigzag 64-bit varlong at `buf[*pos..]`, advancing `pos`.
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, VarintError> {
    let raw = read_unsigned(buf, pos, 64)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn write_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Append the zigzag varint encoding of `v`.
pub(crate) fn write_varint(out: &mut Vec<u8>, v: i32) {
    write_unsigned(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

/// Append the zigzag varlong encoding of `v`.
pub(crate) fn write_varlong(out: &mut Vec<u8>, v: i64) {
    write_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7F]),
            (64, &[0x80, 0x01]),
            (i32::MAX, &[0xFE, 0xFF, 0xFF, 0xFF, 0x0F]),
            (i32::MIN, &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        ];
        for (v, bytes) in cases {
            let mut out = Vec::new();
            write_varint(&mut out, *v);
            assert_eq!(&out, bytes, "{v}");
            let mut pos = 0;
            assert_eq!(read_varint(bytes, &mut pos), Ok(*v));
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        let mut pos = 0;
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], &mut pos),
            Err(VarintError::TooLong)
        );
        assert_eq!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x1F], &mut pos),
            Err(VarintError::TooLong)
        );
        assert_eq!(
            read_varint(&[0x80, 0x80], &mut pos),
            Err(VarintError::Truncated)
        );
        assert_eq!(read_varint(&[], &mut pos), Err(VarintError::Truncated));
        assert_eq!(pos, 0);
        let eleven = [0x80u8; 11];
        assert_eq!(read_varlong(&eleven, &mut pos), Err(VarintError::TooLong));
        let max = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        assert_eq!(read_varlong(&max, &mut pos), Ok(i64::MIN));
    }

    proptest! {
        #[test]
        fn varint_round_trip(v in any::<i32>()) {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            let mut pos = 0;
            prop_assert_eq!(read_varint(&out, &mut pos), Ok(v));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn varlong_round_trip(v in any::<i64>()) {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            let mut pos = 0;
            prop_assert_eq!(read_varlong(&out, &mut pos), Ok(v));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let mut pos = 0;
            let _ = read_varint(&bytes, &mut pos);
            let mut pos = 0;
            let _ = read_varlong(&bytes, &mut pos);
        }
    }
}
