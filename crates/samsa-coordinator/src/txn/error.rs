//! Typed refusals of the transaction coordinator and the Kafka codes they map to.

use super::api::txn_codes;
use super::records::TxnRecordError;
use crate::error::codes;

/// A refusal of a transaction request; [`TxnError::code`] is its Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// Empty transactional id or a request beyond a limit.
    #[error("invalid request")]
    InvalidRequest,
    /// The `__transaction_state` partition is still being replayed.
    #[error("the coordinator is loading")]
    CoordinatorLoadInProgress,
    /// This coordinator does not own the id's `__transaction_state` partition.
    #[error("this broker is not the transaction coordinator")]
    NotCoordinator,
    /// `transaction.timeout.ms` is not in (0, `transaction.max.timeout.ms`].
    #[error("invalid transaction timeout")]
    InvalidTransactionTimeout,
    /// Markers of the previous transaction are still being written; retry.
    #[error("concurrent transactions")]
    ConcurrentTransactions,
    /// The request does not fit the transaction's state.
    #[error("invalid transaction state")]
    InvalidTxnState,
    /// The producer id is not the transactional id's.
    #[error("invalid producer id mapping")]
    InvalidProducerIdMapping,
    /// A newer producer with the same transactional id exists.
    #[error("producer fenced")]
    ProducerFenced,
    /// DescribeTransactions of an unknown id.
    #[error("transactional id not found")]
    TransactionalIdNotFound,
    /// KIP-890: the partition is not in the transaction; the producer must abort.
    #[error("transaction abortable")]
    TransactionAbortable,
}

impl TxnError {
    /// The Kafka error code.
    pub fn code(self) -> i16 {
        match self {
            TxnError::InvalidRequest => codes::INVALID_REQUEST,
            TxnError::CoordinatorLoadInProgress => codes::COORDINATOR_LOAD_IN_PROGRESS,
            TxnError::NotCoordinator => codes::NOT_COORDINATOR,
            TxnError::InvalidTransactionTimeout => txn_codes::INVALID_TRANSACTION_TIMEOUT,
            TxnError::ConcurrentTransactions => txn_codes::CONCURRENT_TRANSACTIONS,
            TxnError::InvalidTxnState => txn_codes::INVALID_TXN_STATE,
            TxnError::InvalidProducerIdMapping => txn_codes::INVALID_PRODUCER_ID_MAPPING,
            TxnError::ProducerFenced => txn_codes::PRODUCER_FENCED,
            TxnError::TransactionalIdNotFound => txn_codes::TRANSACTIONAL_ID_NOT_FOUND,
            TxnError::TransactionAbortable => txn_codes::TRANSACTION_ABORTABLE,
        }
    }
}

/// Why [`super::TxnCoordinator::replay`] refused a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnReplayError {
    /// Undecodable key or value (the broker may log and skip it).
    #[error("undecodable __transaction_state record: {0}")]
    Record(#[from] TxnRecordError),
    /// Records are replayed only while loading.
    #[error("replay is only allowed while the coordinator is loading")]
    NotLoading,
}
