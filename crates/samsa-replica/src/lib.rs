//! A partition's replication state machine, Kafka's `cluster/Partition`
//! core, without I/O.
//!
//! [`ReplicaState`] holds one partition's role (leader, follower of a broker,
//! offline), leader epoch and partition epoch, the committed ISR and the
//! *maximal* ISR (KIP-497), each follower's progress and the high watermark,
//! and makes every replication decision over them:
//!
//! * may a produce append here, and with which leader epoch
//!   ([`ReplicaState::check_append`]);
//! * a follower fetched: its progress, the high watermark, an ISR expansion
//!   ([`ReplicaState::follower_fetched`]); an ISR member lagging for too
//!   long: an ISR shrink ([`ReplicaState::lagging_isr`]);
//! * a new assignment from the metadata image: become leader or follower
//!   with its epoch ([`ReplicaState::apply_assignment`]);
//! * on a follower: whether a fetcher response built for `(leader, epoch)` is
//!   still current ([`ReplicaState::is_current_fetch`]), KIP-279 truncation
//!   from OffsetForLeaderEpoch answers ([`ReplicaState::apply_epoch_answer`]),
//!   the leader's high watermark;
//! * how far retention and DeleteRecords may delete
//!   ([`ReplicaState::deletable_below`]: never at or above the high
//!   watermark).
//!
//! The log is reached through [`ReplicaLog`] (log end, epoch lookups, epoch
//! assignment, truncation); the broker implements it over
//! `samsa_storage::PartitionLog`, the deterministic simulation
//! (`tests/simulation.rs`) over an in-memory log.
//!
//! *Invariants:* no I/O, no async, no clocks, no randomness (time comes in as
//! milliseconds in arguments); depends only on `samsa-model`. The caller
//! owns the locking: the broker keeps a `ReplicaState` behind one lock per
//! partition and holds it across the decision and the log operation it
//! allows (see `samsa-broker/src/partition.rs`).

mod state;

pub use state::{
    AppendWait, Assignment, EpochAnswer, FollowerFetch, FollowerProgress, IsrProposal, LeaderState,
    NotLeader, ReplicaState, Role, RoleChange, TruncationStep,
};

use samsa_model::{LeaderEpoch, Offset};

/// What the state machine needs of a partition's log.
pub trait ReplicaLog {
    /// The log's error type.
    type Error;
    /// The first offset kept.
    fn log_start(&self) -> Offset;
    /// The offset the next batch gets.
    fn log_end(&self) -> Offset;
    /// The latest leader epoch in the epoch cache, `None` when it is empty.
    fn latest_epoch(&self) -> Option<LeaderEpoch>;
    /// Kafka's `OffsetForLeaderEpoch` answer for `epoch` on this log: the
    /// largest cached epoch `<= epoch` and where its data ends (the log end
    /// for the latest epoch); `(LeaderEpoch(-1), Offset(-1))` when none.
    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset);
    /// Records that this replica leads from `epoch` on (epoch cache entry at
    /// the log end).
    fn assign_epoch(&mut self, epoch: LeaderEpoch) -> Result<(), Self::Error>;
    /// Removes every record at or above `offset` (whole batches).
    fn truncate_to(&mut self, offset: Offset) -> Result<(), Self::Error>;
}
