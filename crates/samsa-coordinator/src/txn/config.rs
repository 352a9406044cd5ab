//! The transaction coordinator's settings (Kafka's names and defaults).

/// Kafka's `transaction.max.timeout.ms` default (15 minutes).
pub const TRANSACTION_MAX_TIMEOUT_MS_DEFAULT: i32 = 900_000;
/// Kafka's `transactional.id.expiration.ms` default (7 days).
pub const TRANSACTIONAL_ID_EXPIRATION_MS_DEFAULT: i64 = 604_800_000;
/// Kafka's `transaction.abort.timed.out.transaction.cleanup.interval.ms` default.
pub const ABORT_TIMED_OUT_INTERVAL_MS_DEFAULT: i64 = 10_000;
/// Kafka's `transaction.remove.expired.transaction.cleanup.interval.ms` default (1 hour).
pub const REMOVE_EXPIRED_INTERVAL_MS_DEFAULT: i64 = 3_600_000;
/// Kafka's `transaction.state.log.num.partitions` default.
pub const TRANSACTION_STATE_PARTITIONS_DEFAULT: u32 = 50;
/// Kafka's `offsets.topic.num.partitions` default.
pub const OFFSETS_PARTITIONS_DEFAULT: u32 = 50;
/// Partitions one transaction may hold (bounds the memory and the record size a
/// producer can make the coordinator take; Kafka has no limit).
pub const TXN_PARTITIONS_MAX: usize = 100_000;

/// Settings of a [`super::TxnCoordinator`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: InitProducerId above it gets INVALID_TRANSACTION_TIMEOUT.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: idle ids (Empty/Complete*) older than this are
    /// removed (tombstone).
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often
    /// transactions past their timeout are looked for (and aborted).
    pub abort_timed_out_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often expired
    /// ids are looked for.
    pub remove_expired_interval_ms: i64,
    /// `transaction.state.log.num.partitions`.
    pub transaction_state_partitions: u32,
    /// `offsets.topic.num.partitions` (AddOffsetsToTxn adds the group's partition).
    pub offsets_partitions: u32,
    /// The finalized `transaction.version` feature level (0–2): the version of the
    /// records written (2: TransactionLogValue v1) and of coordinator-initiated aborts.
    pub transaction_version: i16,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            transaction_max_timeout_ms: TRANSACTION_MAX_TIMEOUT_MS_DEFAULT,
            transactional_id_expiration_ms: TRANSACTIONAL_ID_EXPIRATION_MS_DEFAULT,
            abort_timed_out_interval_ms: ABORT_TIMED_OUT_INTERVAL_MS_DEFAULT,
            remove_expired_interval_ms: REMOVE_EXPIRED_INTERVAL_MS_DEFAULT,
            transaction_state_partitions: TRANSACTION_STATE_PARTITIONS_DEFAULT,
            offsets_partitions: OFFSETS_PARTITIONS_DEFAULT,
            transaction_version: 2,
        }
    }
}
