//! Control batches: the transaction markers a transaction coordinator has
//! written into each partition of a transaction (Kafka's `EndTransactionMarker`,
//! KIP-98).
//!
//! # Byte layout
//!
//! A marker is a record batch v2 ([`crate::batch`]) with
//!
//! - attributes: bit 4 (transactional) and bit 5 (control) set, no
//!   compression, CreateTime;
//! - the producer id and epoch of the transaction, base sequence -1;
//! - exactly one record (offset delta 0, the coordinator's timestamp) whose
//!   key is the *control record key* and whose value the *end transaction
//!   marker*, both big-endian:
//!
//! ```text
//! key    offset  size  field
//!             0     2  version (i16) = 0
//!             2     2  type (i16): 0 = ABORT, 1 = COMMIT
//!                      (2..=6 are KRaft's own control records)
//! value  offset  size  field
//!             0     2  version (i16) = 0
//!             2     4  coordinator epoch (i32)
//! ```
//!
//! As in Kafka, a reader accepts keys and values of a newer version (longer
//! than shown: the extra bytes are ignored) and refuses a negative version or
//! fewer bytes than the fields above. Clients may not produce control
//! batches ([`crate::batch::validate_produced_batch`] refuses them); only the
//! broker writes them, through the partition log's marker append.

use bytes::Bytes;

use crate::batch::{self, BatchBuilder, BatchError, BatchHeader, NewRecord};
use crate::{CoordinatorEpoch, ProducerEpoch, ProducerId, TimestampMs};

/// `ControlRecordType` of a control record's key.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ControlRecordType {
    Abort,
    Commit,
    /// Any other type (KRaft's LEADER_CHANGE, SNAPSHOT_HEADER, …, or one
    /// unknown): not a transaction marker.
    Other(i16),
}

impl ControlRecordType {
    /// The wire value.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Other(t) => t,
        }
    }

    fn from_id(id: i16) -> Self {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            t => ControlRecordType::Other(t),
        }
    }
}

/// A transaction marker: how the producer's transaction ended, and the epoch
/// of the coordinator that decided it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    pub commit: bool,
    pub coordinator_epoch: CoordinatorEpoch,
}

/// Why a control batch could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("not a control batch")]
    NotControl,
    #[error("a control batch holds {count} records, not 1")]
    RecordCount { count: usize },
    #[error("invalid control record {part}: {reason}")]
    Invalid {
        part: &'static str,
        reason: &'static str,
    },
}

/// Control batches are tiny; decoding one never needs more.
const CONTROL_DECOMPRESSED_BYTES_MAX: usize = 64 << 10;

/// Builds the marker batch Kafka's `MemoryRecords.withEndTransactionMarker`
/// builds (base offset 0 and leader epoch -1: the log patches both).
pub fn build_marker_batch(
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    marker: TxnMarker,
    timestamp: TimestampMs,
) -> Result<Vec<u8>, BatchError> {
    let kind = if marker.commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.id().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.get().to_be_bytes());
    BatchBuilder::new()
        .producer(producer_id, producer_epoch, -1)
        .transactional(true)
        .control(true)
        .record(NewRecord::new(timestamp, Some(&key), Some(&value)))
        .build()
}

fn be_i16(bytes: &[u8], at: usize) -> Option<i16> {
    let b = bytes.get(at..at + 2)?;
    Some(i16::from_be_bytes([b[0], b[1]]))
}

fn be_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let b = bytes.get(at..at + 4)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The control record type of a control record key.
pub fn parse_control_key(key: Option<&Bytes>) -> Result<ControlRecordType, ControlError> {
    let invalid = |reason| ControlError::Invalid {
        part: "key",
        reason,
    };
    let key = key.ok_or(invalid("null"))?;
    let version = be_i16(key, 0).ok_or(invalid("shorter than 4 bytes"))?;
    let kind = be_i16(key, 2).ok_or(invalid("shorter than 4 bytes"))?;
    if version < 0 {
        return Err(invalid("negative version"));
    }
    Ok(ControlRecordType::from_id(kind))
}

/// Reads the transaction marker of a complete control batch `bytes` (its
/// header `header`): `None` for a control batch of another type.
pub fn parse_marker(header: &BatchHeader, bytes: &[u8]) -> Result<Option<TxnMarker>, ControlError> {
    if !header.is_control() {
        return Err(ControlError::NotControl);
    }
    let records = batch::records(bytes, CONTROL_DECOMPRESSED_BYTES_MAX)?;
    let [record] = records.as_slice() else {
        return Err(ControlError::RecordCount {
            count: records.len(),
        });
    };
    let commit = match parse_control_key(record.key.as_ref())? {
        ControlRecordType::Abort => false,
        ControlRecordType::Commit => true,
        ControlRecordType::Other(_) => return Ok(None),
    };
    let invalid = |reason| ControlError::Invalid {
        part: "value",
        reason,
    };
    let value = record.value.as_ref().ok_or(invalid("null"))?;
    let version = be_i16(value, 0).ok_or(invalid("shorter than 6 bytes"))?;
    let epoch = be_i32(value, 2).ok_or(invalid("shorter than 6 bytes"))?;
    if version < 0 {
        return Err(invalid("negative version"));
    }
    Ok(Some(TxnMarker {
        commit,
        coordinator_epoch: CoordinatorEpoch(epoch),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{validate_produced_batch, ValidationLimits};

    fn marker(commit: bool) -> TxnMarker {
        TxnMarker {
            commit,
            coordinator_epoch: CoordinatorEpoch(7),
        }
    }

    #[test]
    fn markers_round_trip_with_kafkas_bytes() {
        for commit in [false, true] {
            let bytes = build_marker_batch(
                ProducerId(42),
                ProducerEpoch(3),
                marker(commit),
                TimestampMs(9),
            )
            .unwrap();
            let h = BatchHeader::parse(&bytes).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch),
                (ProducerId(42), ProducerEpoch(3))
            );
            assert_eq!((h.base_sequence, h.records_count), (-1, 1));
            batch::verify_crc(&bytes).unwrap();
            let records = batch::records(&bytes, 1 << 20).unwrap();
            let type_id = u8::from(commit);
            assert_eq!(records[0].key.as_deref(), Some(&[0, 0, 0, type_id][..]));
            assert_eq!(records[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 7][..]));
            assert_eq!(parse_marker(&h, &bytes).unwrap(), Some(marker(commit)));
            // Clients still cannot produce one.
            assert!(validate_produced_batch(&bytes, &ValidationLimits::default()).is_err());
        }
    }

    fn control_batch(key: &[u8], value: Option<&[u8]>) -> (BatchHeader, Vec<u8>) {
        let bytes = BatchBuilder::new()
            .producer(ProducerId(1), ProducerEpoch(0), -1)
            .transactional(true)
            .control(true)
            .record(NewRecord::new(TimestampMs(1), Some(key), value))
            .build()
            .unwrap();
        (BatchHeader::parse(&bytes).unwrap(), bytes)
    }

    #[test]
    fn newer_versions_are_read_and_damage_refused() {
        let (h, b) = control_batch(&[0, 1, 0, 1, 9, 9], Some(&[0, 1, 0, 0, 0, 2, 5]));
        assert_eq!(
            parse_marker(&h, &b).unwrap(),
            Some(TxnMarker {
                commit: true,
                coordinator_epoch: CoordinatorEpoch(2)
            })
        );
        let (h, b) = control_batch(&[0, 0, 0, 2], Some(&[1, 2, 3]));
        assert_eq!(parse_marker(&h, &b).unwrap(), None, "KRaft LEADER_CHANGE");
        for (key, value) in [
            (&[0, 0, 0][..], Some(&[0, 0, 0, 0, 0, 1][..])),
            (&[0xff, 0xff, 0, 0][..], Some(&[0, 0, 0, 0, 0, 1][..])),
            (&[0, 0, 0, 0][..], Some(&[0, 0, 0, 0, 0][..])),
            (&[0, 0, 0, 0][..], None),
        ] {
            let (h, b) = control_batch(key, value);
            assert!(parse_marker(&h, &b).is_err(), "{key:?} {value:?}");
        }
        let data = BatchBuilder::new()
            .record(NewRecord::new(TimestampMs(1), None, Some(b"v")))
            .build()
            .unwrap();
        let h = BatchHeader::parse(&data).unwrap();
        assert!(matches!(
            parse_marker(&h, &data),
            Err(ControlError::NotControl)
        ));
    }
}
