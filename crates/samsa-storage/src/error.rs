//! The storage crate's error type.

use std::io;
use std::path::PathBuf;

use samsa_model::batch::BatchError;
use samsa_model::{CoordinatorEpoch, Offset, ProducerEpoch, ProducerId};

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The requested offset is outside `[log_start, log_end]`.
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    /// The bytes handed to `append` are not one well-formed batch (or, for
    /// `append_replicated`, a complete batch is malformed or fails its CRC).
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// Stored bytes that recovery did not vouch for turned out to be damaged
    /// (e.g. a bad batch header inside an old segment).
    #[error("corrupt data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// A replicated batch starts below the log end but ends at or after it
    /// ([`crate::PartitionLog::append_replicated`]): the follower's log and
    /// the leader's disagree on batch boundaries.
    #[error("replicated batch [{base_offset}, {last_offset}] overlaps the log end {log_end}")]
    OverlappingBatch {
        base_offset: Offset,
        last_offset: Offset,
        log_end: Offset,
    },
    /// Replicated batches whose offsets do not strictly increase.
    #[error("replicated batch at offset {base_offset} does not follow the previous one ending at {previous_last}")]
    BatchesOutOfOrder {
        base_offset: Offset,
        previous_last: Offset,
    },
    /// A replicated batch lies more than 2^32 - 1 offsets above the base of
    /// the (empty) segment it would go to, beyond what index entries address.
    #[error("replicated batch ending at offset {last_offset} is too far above segment base {segment_base}")]
    OffsetGapTooLarge {
        last_offset: Offset,
        segment_base: Offset,
    },
    /// A client's batch does not continue its producer's sequence (Kafka's
    /// OUT_OF_ORDER_SEQUENCE_NUMBER): a gap within an epoch, or a new epoch
    /// that does not start at 0. See [`crate::producer_state`].
    #[error("out of order sequence number for producer {producer_id} (epoch {epoch}): {sequence} (incoming), {expected} (expected)")]
    OutOfOrderSequence {
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        sequence: i32,
        expected: i32,
    },
    /// A client's batch carries an epoch older than its producer's current
    /// one (Kafka's INVALID_PRODUCER_EPOCH): a fenced, zombie producer.
    #[error("epoch {epoch} of producer {producer_id} is older than its current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        current: ProducerEpoch,
    },
    /// A transaction marker from a coordinator whose epoch is older than the
    /// one of the last marker for this producer (Kafka's
    /// TRANSACTION_COORDINATOR_FENCED).
    #[error("coordinator epoch {coordinator_epoch} of a marker for producer {producer_id} is older than {current}")]
    CoordinatorFenced {
        producer_id: ProducerId,
        coordinator_epoch: CoordinatorEpoch,
        current: CoordinatorEpoch,
    },
    /// A non-transactional batch from a producer with an open transaction in
    /// this partition (Kafka's INVALID_TXN_STATE).
    #[error("producer {producer_id} wrote a non-transactional batch inside its open transaction")]
    InvalidTxnState { producer_id: ProducerId },
    /// A transactional batch of a producer with no open transaction in this
    /// partition, appended without the producer's current verification guard
    /// (KIP-890, [`crate::verification`]; Kafka's INVALID_TXN_STATE).
    #[error("producer {producer_id}'s transactional batch is not part of a verified ongoing transaction")]
    TxnNotVerified { producer_id: ProducerId },
    /// A marker was asked for with bytes that are not one (a bug in the caller).
    #[error("invalid transaction marker: {0}")]
    InvalidMarker(#[from] samsa_model::control::ControlError),
    /// The log was closed; reopen it to write again.
    #[error("log {} is closed", dir.display())]
    Closed { dir: PathBuf },
    /// An earlier write or fsync failed in a way that leaves the files in an
    /// unknown state; the log must be reopened (which runs recovery).
    #[error("log {} failed after an I/O error and must be reopened", dir.display())]
    Failed { dir: PathBuf },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
