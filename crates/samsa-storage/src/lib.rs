//! Segmented partition logs on disk: segments, sparse indexes, crash recovery.
//!
//! A [`PartitionLog`] stores one partition's record batches (Kafka record
//! batch v2, see `samsa_model::batch`) in a directory of segment files. The
//! broker validates produced batches first; this crate assigns offsets, keeps
//! the offset and time indexes, serves reads of whole batches, answers
//! timestamp lookups, moves the log start (DeleteRecords, retention),
//! truncates (replication), compacts (`cleanup.policy=compact`, keeping the
//! latest record per key at its original offset), and after a crash recovers
//! to a prefix of what was appended in which every batch passed its CRC check.
//! For replication it also stores batches fetched from a leader unchanged
//! (`append_replicated`), keeps the leader epoch cache (KIP-101/279) and
//! checkpoints the high watermark. It owns idempotent producers' state
//! ([`producer_state`]: checked by the leader's append, recorded by every
//! append, snapshotted beside the segments by [`producer_snapshot`]).
//!
//! File formats and crash behaviour are documented in [`log`] (directory),
//! [`segment`] (`.log` files and recovery), [`index`] (`.index`,
//! `.timeindex`), [`checkpoint`] (`log-start-offset`,
//! `recovery-point`), [`cleaner`]
//! (`cleaner-checkpoint`, `.cleaned`/`.swap` files, compaction),
//! [`epoch_cache`] (`leader-epoch-checkpoint`), [`high_watermark`]
//! (`high-watermark`), [`producer_snapshot`] (`.snapshot`), [`txn_index`] (`.txnindex`) and [`deleter`]
//! (`.deleted` files).

pub mod checkpoint;
pub mod cleaner;
pub mod config;
pub mod deleter;
pub mod epoch_cache;
pub mod error;
pub mod high_watermark;
pub mod index;
pub mod log;
pub mod producer_snapshot;
pub mod producer_state;
pub mod segment;
pub mod txn_index;
pub mod verification;

pub use cleaner::{CompactionConfig, CompactionStats};
pub use config::LogConfig;
pub use error::StorageError;
pub use log::{
    delete_log_dir, AppendInfo, LogSlice, PartitionLog, ReadResult, SegmentInfo, SliceRead,
};
pub use producer_state::{CompletedTxn, ProducerEntry, SeqCheck};
pub use txn_index::AbortedTxn;
pub use verification::{TxnVerification, VerificationGuard};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_log_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PartitionLog>();
    }
}
