//! Sparse offset and time indexes of one segment: entry formats, sanity checks, lookups.
//!
//! # `.index` (offset index)
//!
//! A flat array of 8-byte entries, no header:
//!
//! | at | size | field                                                     |
//! |----|------|-----------------------------------------------------------|
//! | 0  | 4    | relative offset, u32 BE: a batch's base offset minus the segment's base offset |
//! | 4  | 4    | file position, u32 BE: where that batch starts in the `.log` file |
//!
//! An entry is appended for a batch when at least `index_interval_bytes` of
//! log were written since the previous entry (so the first batch of a segment
//! gets none unless the interval is 0). Entries are strictly increasing in both
//! fields. Lookup: the last entry whose relative offset is `<=` the target
//! gives a batch boundary at or before the target's batch; scan forward from it.
//!
//! # `.timeindex` (time index)
//!
//! A flat array of 12-byte entries, no header:
//!
//! | at | size | field                                                     |
//! |----|------|-----------------------------------------------------------|
//! | 0  | 8    | timestamp, i64 BE: the segment's largest batch `maxTimestamp` so far |
//! | 8  | 4    | relative offset, u32 BE: last offset of the first batch that reached it |
//!
//! An entry is appended together with an offset-index entry when the segment's
//! max timestamp rose since the last time entry, and once more when the
//! segment is rolled, so a sealed segment's last time entry is its max
//! timestamp. Timestamps are strictly increasing. Lookup for the earliest
//! record at or after `ts`: every record up to the last entry with timestamp
//! `< ts` is older than `ts`, so scanning may start at that entry's batch.
//!
//! # Crash behaviour
//!
//! Index files are written after the log bytes they describe and are only
//! fsynced with their segment's log: by the background sync of a rolled
//! segment, a flush, or close. After a crash they may be short, hold a torn
//! entry or point past the log; the indexes of segments at or above the
//! recovery point are rebuilt by recovery, and older segments' indexes are
//! checked with [`parse_offset_index`]/[`parse_time_index`] and rebuilt from
//! the log when they fail.

/// Bytes per offset index entry.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
/// Bytes per time index entry.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

/// One offset index entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OffsetIndexEntry {
    /// Batch base offset minus the segment base offset.
    pub relative_offset: u32,
    /// Byte position of that batch in the segment's log file.
    pub position: u32,
}

/// One time index entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TimeIndexEntry {
    /// The segment's largest batch max timestamp up to `relative_offset`.
    pub timestamp: i64,
    /// Last offset (relative) of the first batch that carried `timestamp`.
    pub relative_offset: u32,
}

const _: () = assert!(OFFSET_INDEX_ENTRY_BYTES == 4 + 4);
const _: () = assert!(TIME_INDEX_ENTRY_BYTES == 8 + 4);

impl OffsetIndexEntry {
    /// The on-disk bytes of this entry.
    pub fn encode(&self) -> [u8; OFFSET_INDEX_ENTRY_BYTES] {
        let mut out = [0u8; OFFSET_INDEX_ENTRY_BYTES];
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..].copy_from_slice(&self.position.to_be_bytes());
        out
    }

    fn decode(b: &[u8; OFFSET_INDEX_ENTRY_BYTES]) -> Self {
        let [r0, r1, r2, r3, p0, p1, p2, p3] = *b;
        OffsetIndexEntry {
            relative_offset: u32::from_be_bytes([r0, r1, r2, r3]),
            position: u32::from_be_bytes([p0, p1, p2, p3]),
        }
    }
}

impl TimeIndexEntry {
    /// The on-disk bytes of this entry.
    pub fn encode(&self) -> [u8; TIME_INDEX_ENTRY_BYTES] {
        let mut out = [0u8; TIME_INDEX_ENTRY_BYTES];
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..].copy_from_slice(&self.relative_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8; TIME_INDEX_ENTRY_BYTES]) -> Self {
        let [t0, t1, t2, t3, t4, t5, t6, t7, r0, r1, r2, r3] = *b;
        TimeIndexEntry {
            timestamp: i64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
            relative_offset: u32::from_be_bytes([r0, r1, r2, r3]),
        }
    }
}

/// Why an index file was judged damaged.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndexDamage {
    #[error("size {0} is not a multiple of the entry size")]
    PartialEntry(usize),
    #[error("entry {0} is not after the previous one")]
    NotMonotonic(usize),
    #[error("entry {0} points past the end of the log")]
    PastEnd(usize),
}

/// Decode and sanity-check an offset index against its log file's size.
pub fn parse_offset_index(
    bytes: &[u8],
    log_bytes: u64,
) -> Result<Vec<OffsetIndexEntry>, IndexDamage> {
    if !bytes.len().is_multiple_of(OFFSET_INDEX_ENTRY_BYTES) {
        return Err(IndexDamage::PartialEntry(bytes.len()));
    }
    let chunks = bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES);
    let mut out: Vec<OffsetIndexEntry> = Vec::with_capacity(chunks.len());
    for (i, c) in chunks.enumerate() {
        let c = c
            .try_into()
            .map_err(|_| IndexDamage::PartialEntry(bytes.len()))?;
        let e = OffsetIndexEntry::decode(c);
        if u64::from(e.position) >= log_bytes {
            return Err(IndexDamage::PastEnd(i));
        }
        if let Some(prev) = out.last() {
            if e.relative_offset <= prev.relative_offset || e.position <= prev.position {
                return Err(IndexDamage::NotMonotonic(i));
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// Decode and sanity-check a time index (its offsets are checked against the
/// log later, once the segment's last offset is known).
pub fn parse_time_index(bytes: &[u8]) -> Result<Vec<TimeIndexEntry>, IndexDamage> {
    if !bytes.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
        return Err(IndexDamage::PartialEntry(bytes.len()));
    }
    let chunks = bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES);
    let mut out: Vec<TimeIndexEntry> = Vec::with_capacity(chunks.len());
    for (i, c) in chunks.enumerate() {
        let c = c
            .try_into()
            .map_err(|_| IndexDamage::PartialEntry(bytes.len()))?;
        let e = TimeIndexEntry::decode(c);
        if let Some(prev) = out.last() {
            if e.timestamp <= prev.timestamp || e.relative_offset < prev.relative_offset {
                return Err(IndexDamage::NotMonotonic(i));
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// The last entry whose relative offset is `<= relative_offset`.
pub fn lookup_offset(
    entries: &[OffsetIndexEntry],
    relative_offset: u64,
) -> Option<OffsetIndexEntry> {
    let n = entries.partition_point(|e| u64::from(e.relative_offset) <= relative_offset);
    n.checked_sub(1).and_then(|i| entries.get(i)).copied()
}

/// The last entry whose timestamp is `< timestamp`.
pub fn lookup_time_before(entries: &[TimeIndexEntry], timestamp: i64) -> Option<TimeIndexEntry> {
    let n = entries.partition_point(|e| e.timestamp < timestamp);
    n.checked_sub(1).and_then(|i| entries.get(i)).copied()
}

/// Encode a whole offset index.
pub fn encode_offset_index(entries: &[OffsetIndexEntry]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.encode()).collect()
}

/// Encode a whole time index.
pub fn encode_time_index(entries: &[TimeIndexEntry]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.encode()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_round_trip_and_checks() {
        let entries = vec![
            OffsetIndexEntry {
                relative_offset: 3,
                position: 100,
            },
            OffsetIndexEntry {
                relative_offset: 9,
                position: 4200,
            },
        ];
        let bytes = encode_offset_index(&entries);
        assert_eq!(bytes.len(), 16);
        assert_eq!(parse_offset_index(&bytes, 5000), Ok(entries.clone()));
        assert_eq!(
            parse_offset_index(&bytes, 4200),
            Err(IndexDamage::PastEnd(1))
        );
        assert_eq!(
            parse_offset_index(&bytes[..15], 5000),
            Err(IndexDamage::PartialEntry(15))
        );
        let mut swapped = encode_offset_index(&[entries[1], entries[0]]);
        assert_eq!(
            parse_offset_index(&swapped, 5000),
            Err(IndexDamage::NotMonotonic(1))
        );
        swapped.clear();
        assert_eq!(parse_offset_index(&swapped, 0), Ok(vec![]));
        assert_eq!(lookup_offset(&entries, 2), None);
        assert_eq!(lookup_offset(&entries, 3), Some(entries[0]));
        assert_eq!(lookup_offset(&entries, 8), Some(entries[0]));
        assert_eq!(lookup_offset(&entries, 100), Some(entries[1]));
    }

    #[test]
    fn time_index_round_trip_and_checks() {
        let entries = vec![
            TimeIndexEntry {
                timestamp: 10,
                relative_offset: 0,
            },
            TimeIndexEntry {
                timestamp: 20,
                relative_offset: 5,
            },
        ];
        let bytes = encode_time_index(&entries);
        assert_eq!(parse_time_index(&bytes), Ok(entries.clone()));
        assert_eq!(
            parse_time_index(&bytes[..13]),
            Err(IndexDamage::PartialEntry(13))
        );
        let dup = encode_time_index(&[entries[0], entries[0]]);
        assert_eq!(parse_time_index(&dup), Err(IndexDamage::NotMonotonic(1)));
        assert_eq!(lookup_time_before(&entries, 10), None);
        assert_eq!(lookup_time_before(&entries, 11), Some(entries[0]));
        assert_eq!(lookup_time_before(&entries, 21), Some(entries[1]));
    }
}
