//! The records of Kafka's `__transaction_state` topic: one per transactional id, keyed by
//! the id, each value a full snapshot of the id's transaction metadata (the topic is
//! compacted, so the last value of a key is the id's state; a tombstone removes an id
//! whose `transactional.id.expiration.ms` passed).
//!
//! # Byte layout (big-endian, Kafka's message encoding)
//!
//! Key (`TransactionLogKey` v0, not flexible):
//! ```text
//! version          int16  = 0
//! transactional_id int16 length + UTF-8 bytes
//! ```
//!
//! Value (`TransactionLogValue`), prefixed by its version:
//! ```text
//! version                          int16  (0, or 1 = flexible)
//! producer_id                      int64
//! producer_epoch                   int16
//! transaction_timeout_ms           int32
//! transaction_status               int8   (TxnState id)
//! transaction_partitions           array (null for Empty) of
//!     topic                        string
//!     partition_ids                array of int32
//!     [v1: tagged fields]
//! transaction_last_update_ms       int64
//! transaction_start_ms             int64
//! [v1: tagged fields: 0 previous_producer_id int64 (default -1),
//!                     1 next_producer_id int64 (default -1),
//!                     2 client_transaction_version int16 (default 0)]
//! ```
//! v0 uses `int16`-length strings and `int32` array counts (-1 = null); v1 uses compact
//! (unsigned varint `n + 1`) lengths and ends every struct with a tagged-field section.
//! Unknown tags are skipped on read.
//!
//! # Crash behaviour
//!
//! A record is the coordinator's promise: it answers a request only after the record is
//! replicated. A crash before that loses the record and the answer together; replaying the
//! partition rebuilds exactly the state the records describe (see
//! [`crate::txn::TxnCoordinator::replay`]). Decoding checks every length against the
//! bytes present first and never panics; a corrupt record is a typed error.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use samsa_model::{PartitionIndex, ProducerEpoch, ProducerId, TimestampMs, TopicPartition};

use crate::codec::{DecodeError, Reader, Writer};
use crate::txn::state::TxnState;

/// The only key version (Kafka's `CoordinatorRecordType.TRANSACTION_LOG`).
pub const TXN_KEY_VERSION: i16 = 0;
/// The highest value version samsa reads and writes.
pub const TXN_VALUE_VERSION_MAX: i16 = 1;

/// Why a `__transaction_state` record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnRecordError {
    /// Malformed bytes or an unknown key/value version.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The status byte is not one of Kafka's transaction states.
    #[error("unknown transaction state id {0}")]
    UnknownState(i8),
    /// Bytes left over after the value.
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
}

/// Encodes the key of `transactional_id`.
pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut w = Writer::new();
    w.i16(TXN_KEY_VERSION);
    w.string(transactional_id);
    w.finish()
}

/// Decodes a key into its transactional id.
pub fn decode_key(bytes: &[u8]) -> Result<String, TxnRecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if version != TXN_KEY_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            what: "TransactionLogKey",
            version,
        }
        .into());
    }
    let id = r.string()?;
    if r.remaining() > 0 {
        return Err(TxnRecordError::Trailing(r.remaining()));
    }
    Ok(id)
}

/// One transactional id's metadata as `__transaction_state` stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnLogValue {
    /// The producer id in use.
    pub producer_id: ProducerId,
    /// The producer id before the last rotation (-1: none; v1 only).
    pub previous_producer_id: ProducerId,
    /// The producer id the transaction moves to when it completes (TV2 epoch
    /// exhaustion; -1: none; v1 only).
    pub next_producer_id: ProducerId,
    /// The producer epoch.
    pub producer_epoch: ProducerEpoch,
    /// `transaction.timeout.ms` the producer asked for.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// The partitions of the transaction (empty for Empty and Complete*).
    pub partitions: BTreeSet<TopicPartition>,
    /// Last change.
    pub last_update_ms: TimestampMs,
    /// When the transaction started (first partition added), -1 when none.
    pub start_ms: TimestampMs,
    /// The transaction version the client used (0, 1 or 2; v1 only).
    pub client_transaction_version: i16,
}

impl TxnLogValue {
    /// Encodes the value in `version` (0 or 1; anything above 1 is written as 1).
    pub fn encode(&self, version: i16) -> Bytes {
        let flexible = version >= 1;
        let mut w = Writer::new();
        w.i16(if flexible { 1 } else { 0 });
        w.i64(self.producer_id.0);
        w.i16(self.producer_epoch.0);
        w.i32(self.timeout_ms);
        w.i8(self.state.id());
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in &self.partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition.0);
        }
        let null = self.state == TxnState::Empty;
        match (null, flexible) {
            (true, true) => w.uvarint(0),
            (true, false) => w.i32(-1),
            (false, true) => w.compact_array_len(by_topic.len()),
            (false, false) => w.array_len(by_topic.len()),
        }
        if !null {
            for (topic, parts) in &by_topic {
                if flexible {
                    w.compact_string(topic);
                    w.compact_array_len(parts.len());
                } else {
                    w.string(topic);
                    w.array_len(parts.len());
                }
                for p in parts {
                    w.i32(*p);
                }
                if flexible {
                    w.tagged_fields(&[]);
                }
            }
        }
        w.i64(self.last_update_ms.0);
        w.i64(self.start_ms.0);
        if flexible {
            let prev = self.previous_producer_id.0.to_be_bytes();
            let next = self.next_producer_id.0.to_be_bytes();
            let tv = self.client_transaction_version.to_be_bytes();
            let mut tags: Vec<(u32, &[u8])> = Vec::new();
            if self.previous_producer_id.0 != -1 {
                tags.push((0, &prev));
            }
            if self.next_producer_id.0 != -1 {
                tags.push((1, &next));
            }
            if self.client_transaction_version != 0 {
                tags.push((2, &tv));
            }
            w.tagged_fields(&tags);
        }
        w.finish()
    }

    /// Decodes a value (version 0 or 1).
    pub fn decode(bytes: &[u8]) -> Result<TxnLogValue, TxnRecordError> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        if !(0..=TXN_VALUE_VERSION_MAX).contains(&version) {
            return Err(DecodeError::UnsupportedVersion {
                what: "TransactionLogValue",
                version,
            }
            .into());
        }
        let flexible = version >= 1;
        let producer_id = ProducerId(r.i64()?);
        let producer_epoch = ProducerEpoch(r.i16()?);
        let timeout_ms = r.i32()?;
        let raw_state = r.i8()?;
        let state = TxnState::from_id(raw_state).ok_or(TxnRecordError::UnknownState(raw_state))?;
        // A topic entry is at least a length and a count.
        let topics = if flexible {
            r.compact_array_len(2)?
        } else {
            r.array_len(6)?
        };
        let mut partitions = BTreeSet::new();
        for _ in 0..topics {
            let topic = if flexible {
                r.compact_string()?
            } else {
                r.string()?
            };
            let n = if flexible {
                r.compact_array_len(4)?
            } else {
                r.array_len(4)?
            };
            for _ in 0..n {
                partitions.insert(TopicPartition {
                    topic: topic.clone(),
                    partition: PartitionIndex(r.i32()?),
                });
            }
            if flexible {
                r.skip_tagged_fields()?;
            }
        }
        let last_update_ms = TimestampMs(r.i64()?);
        let start_ms = TimestampMs(r.i64()?);
        let mut previous_producer_id = ProducerId(-1);
        let mut next_producer_id = ProducerId(-1);
        let mut client_transaction_version = 0i16;
        if flexible {
            r.tagged_fields(|tag, data| {
                let mut f = Reader::new(data);
                match tag {
                    0 => previous_producer_id = ProducerId(f.i64()?),
                    1 => next_producer_id = ProducerId(f.i64()?),
                    2 => client_transaction_version = f.i16()?,
                    _ => {}
                }
                Ok(())
            })?;
        }
        if r.remaining() > 0 {
            return Err(TxnRecordError::Trailing(r.remaining()));
        }
        // Kafka ignores the partitions of an Empty record.
        if state == TxnState::Empty {
            partitions.clear();
        }
        Ok(TxnLogValue {
            producer_id,
            previous_producer_id,
            next_producer_id,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            last_update_ms,
            start_ms,
            client_transaction_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state_strategy() -> impl Strategy<Value = TxnState> {
        (0i8..=7).prop_map(|i| TxnState::from_id(i).unwrap_or(TxnState::Empty))
    }

    fn value_strategy() -> impl Strategy<Value = TxnLogValue> {
        (
            (
                any::<i64>(),
                any::<i64>(),
                any::<i64>(),
                any::<i16>(),
                any::<i32>(),
            ),
            state_strategy(),
            proptest::collection::btree_set(("[a-z.é_-]{0,12}", any::<i32>()), 0..8),
            (any::<i64>(), any::<i64>(), any::<i16>()),
        )
            .prop_map(
                |((pid, prev, next, epoch, timeout), state, parts, (last, start, tv))| {
                    TxnLogValue {
                        producer_id: ProducerId(pid),
                        previous_producer_id: ProducerId(prev),
                        next_producer_id: ProducerId(next),
                        producer_epoch: ProducerEpoch(epoch),
                        timeout_ms: timeout,
                        state,
                        partitions: if state == TxnState::Empty {
                            BTreeSet::new()
                        } else {
                            parts
                                .into_iter()
                                .map(|(topic, p)| TopicPartition {
                                    topic,
                                    partition: PartitionIndex(p),
                                })
                                .collect()
                        },
                        last_update_ms: TimestampMs(last),
                        start_ms: TimestampMs(start),
                        client_transaction_version: tv,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn v1_round_trips(v in value_strategy()) {
            prop_assert_eq!(TxnLogValue::decode(&v.encode(1)), Ok(v));
        }

        #[test]
        fn v0_round_trips_the_fields_it_has(v in value_strategy()) {
            let expected = TxnLogValue {
                previous_producer_id: ProducerId(-1),
                next_producer_id: ProducerId(-1),
                client_transaction_version: 0,
                ..v.clone()
            };
            prop_assert_eq!(TxnLogValue::decode(&v.encode(0)), Ok(expected));
        }

        #[test]
        fn keys_round_trip(id in "\\PC{0,40}") {
            prop_assert_eq!(decode_key(&encode_key(&id)), Ok(id));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = TxnLogValue::decode(&bytes);
            let _ = decode_key(&bytes);
        }

        #[test]
        fn truncated_values_are_errors(v in value_strategy(), cut in 0usize..1000) {
            for version in [0, 1] {
                let b = v.encode(version);
                let cut = cut % b.len();
                prop_assert!(TxnLogValue::decode(&b[..cut]).is_err());
            }
        }
    }

    /// Producer 7 at epoch 2, timeout 60 s, partition t-3, updated at 5, started at 4.
    fn sample(state: TxnState, previous: i64, tv: i16) -> TxnLogValue {
        TxnLogValue {
            producer_id: ProducerId(7),
            previous_producer_id: ProducerId(previous),
            next_producer_id: ProducerId(-1),
            producer_epoch: ProducerEpoch(2),
            timeout_ms: 60_000,
            state,
            partitions: [TopicPartition {
                topic: "t".into(),
                partition: PartitionIndex(3),
            }]
            .into_iter()
            .collect(),
            last_update_ms: TimestampMs(5),
            start_ms: TimestampMs(4),
            client_transaction_version: tv,
        }
    }

    #[test]
    fn v0_layout_matches_kafka() {
        let v = sample(TxnState::Ongoing, -1, 0);
        let mut want = vec![0u8, 0];
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&2i16.to_be_bytes());
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.push(1);
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&[0, 1, b't']);
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&3i32.to_be_bytes());
        want.extend_from_slice(&5i64.to_be_bytes());
        want.extend_from_slice(&4i64.to_be_bytes());
        assert_eq!(&v.encode(0)[..], &want[..]);
        assert_eq!(&encode_key("ab")[..], &[0, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn v1_layout_is_flexible_with_tagged_fields() {
        let v = sample(TxnState::PrepareCommit, 6, 2);
        let mut want = vec![0u8, 1];
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&2i16.to_be_bytes());
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.push(2);
        // One topic (compact count 2), "t" (compact length 2), one partition, no tags.
        want.extend_from_slice(&[2, 2, b't', 2]);
        want.extend_from_slice(&3i32.to_be_bytes());
        want.push(0);
        want.extend_from_slice(&5i64.to_be_bytes());
        want.extend_from_slice(&4i64.to_be_bytes());
        // Two tagged fields: 0 (previous producer id, 8 bytes), 2 (client version, 2 bytes);
        // the next producer id is at its default and left out.
        want.extend_from_slice(&[2, 0, 8]);
        want.extend_from_slice(&6i64.to_be_bytes());
        want.extend_from_slice(&[2, 2, 0, 2]);
        assert_eq!(&v.encode(1)[..], &want[..]);
    }

    #[test]
    fn unknown_state_and_version_are_typed_errors() {
        let mut b = TxnLogValue {
            producer_id: ProducerId(1),
            previous_producer_id: ProducerId(-1),
            next_producer_id: ProducerId(-1),
            producer_epoch: ProducerEpoch(0),
            timeout_ms: 1,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: TimestampMs(0),
            start_ms: TimestampMs(-1),
            client_transaction_version: 0,
        }
        .encode(1)
        .to_vec();
        b[16] = 9;
        assert_eq!(
            TxnLogValue::decode(&b),
            Err(TxnRecordError::UnknownState(9))
        );
        b[1] = 5;
        assert!(matches!(
            TxnLogValue::decode(&b),
            Err(TxnRecordError::Decode(DecodeError::UnsupportedVersion {
                version: 5,
                ..
            }))
        ));
    }
}
