//! The one place where samsa's typed errors become Kafka error codes.

use kafka_protocol::error::ResponseError;
use samsa_metadata::quorum::QuorumError;
use samsa_metadata::ControllerError;
use samsa_model::batch::{BatchError, BatchErrorKind};
use samsa_storage::StorageError;

/// Kafka's wire code for `e`.
pub fn code(e: ResponseError) -> i16 {
    e.code()
}

/// The Kafka error a controller refusal is reported as.
pub fn controller_error(e: &ControllerError) -> ResponseError {
    match e {
        ControllerError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        ControllerError::InvalidTopic(_) => ResponseError::InvalidTopicException,
        ControllerError::UnknownTopic => ResponseError::UnknownTopicOrPartition,
        ControllerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        ControllerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        ControllerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ControllerError::InvalidConfig(_) => ResponseError::InvalidConfig,
        ControllerError::TopicDeletionDisabled => ResponseError::TopicDeletionDisabled,
        ControllerError::InvalidRequest(_) => ResponseError::InvalidRequest,
        ControllerError::BrokerIdNotRegistered(_) => ResponseError::BrokerIdNotRegistered,
        ControllerError::StaleBrokerEpoch(_) => ResponseError::StaleBrokerEpoch,
        ControllerError::FencedLeaderEpoch(_) => ResponseError::FencedLeaderEpoch,
        ControllerError::NotLeaderOrFollower(_) => ResponseError::NotLeaderOrFollower,
        ControllerError::InvalidUpdateVersion(_) => ResponseError::InvalidUpdateVersion,
        ControllerError::IneligibleReplica(_) => ResponseError::IneligibleReplica,
        ControllerError::NotController(_) => ResponseError::NotController,
        ControllerError::ElectionNotNeeded => ResponseError::ElectionNotNeeded,
        ControllerError::PreferredLeaderNotAvailable(_) => {
            ResponseError::PreferredLeaderNotAvailable
        }
        ControllerError::EligibleLeadersNotAvailable(_) => {
            ResponseError::EligibleLeadersNotAvailable
        }
        ControllerError::NoReassignmentInProgress => ResponseError::NoReassignmentInProgress,
        ControllerError::Quorum(QuorumError::NoLeader(_)) => ResponseError::NotController,
        ControllerError::Quorum(QuorumError::Timeout(_) | QuorumError::Fenced { .. }) => {
            ResponseError::RequestTimedOut
        }
        ControllerError::Quorum(_) => ResponseError::KafkaStorageError,
    }
}

/// The Kafka error a refused produced batch is reported as.
pub fn batch_error(e: &BatchError) -> ResponseError {
    match e.kind() {
        BatchErrorKind::Corrupt => ResponseError::CorruptMessage,
        BatchErrorKind::TooLarge => ResponseError::MessageTooLarge,
        BatchErrorKind::Invalid => ResponseError::InvalidRecord,
    }
}

/// The Kafka error a storage failure is reported as. A full disk is also
/// logged here (rate-limited, [`crate::disk::note_storage_error`]).
pub fn storage_error(e: &StorageError) -> ResponseError {
    crate::disk::note_storage_error(e);
    match e {
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        StorageError::CoordinatorFenced { .. } => ResponseError::TransactionCoordinatorFenced,
        StorageError::InvalidTxnState { .. } | StorageError::TxnNotVerified { .. } => {
            ResponseError::InvalidTxnState
        }
        StorageError::InvalidMarker(_) => ResponseError::CorruptMessage,
        // Stored bytes the disk damaged (a read reached a batch that cannot
        // be walked): the client is told so, as Kafka's clients are when
        // they find a bad batch, instead of retrying an "offline" log.
        StorageError::Corrupt { .. } => ResponseError::CorruptMessage,
        _ => ResponseError::KafkaStorageError,
    }
}

/// The checks Kafka applies before serving a partition to a client that may
/// name the leader epoch it knows (`current`, -1 = unchecked): this broker
/// must lead (NOT_LEADER_OR_FOLLOWER), and a named epoch must be the current
/// one (older: FENCED_LEADER_EPOCH, newer: UNKNOWN_LEADER_EPOCH). Returns the
/// current leader epoch.
pub fn check_leader(
    part: &crate::partition::Partition,
    current: i32,
) -> Result<i32, ResponseError> {
    // A partition whose log directory failed (KIP-858) is offline here,
    // whatever its role: Kafka answers KAFKA_STORAGE_ERROR for it.
    if part.is_offline() {
        return Err(ResponseError::KafkaStorageError);
    }
    let Some(epoch) = part.led_epoch().map(|e| e.get()) else {
        return Err(ResponseError::NotLeaderOrFollower);
    };
    if current >= 0 && current != epoch {
        return Err(if current < epoch {
            ResponseError::FencedLeaderEpoch
        } else {
            ResponseError::UnknownLeaderEpoch
        });
    }
    Ok(epoch)
}
