//! samsa's consumer group coordinator, as a sans-I/O state machine: Kafka 4.x semantics
//! for the classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), committed
//! offsets (OffsetCommit, TxnOffsetCommit, OffsetFetch, OffsetDelete, expiry), group administration
//! (ListGroups, DescribeGroups, DeleteGroups) and the KIP-848 consumer protocol
//! (ConsumerGroupHeartbeat, ConsumerGroupDescribe), persisted as Kafka's
//! `__consumer_offsets` records; and the transaction coordinator ([`txn`]), persisted as
//! Kafka's `__transaction_state` records.
//!
//! No sockets, no clocks, no randomness: time comes in as `now` arguments, the random part
//! of member ids from the generator given to [`Coordinator::new`], so a seeded simulation
//! replays exactly.
//!
//! # Calling contract (for the broker)
//!
//! 1. **Load.** [`Coordinator::new`] starts `Loading` (requests get
//!    `COORDINATOR_LOAD_IN_PROGRESS`). Feed every `__consumer_offsets` record, in log order,
//!    to [`Coordinator::replay`] (every partition it owns: one coordinator may serve all
//!    groups of a broker, or — as samsa's broker runs it — one `__consumer_offsets`
//!    partition each), then call [`Coordinator::finish_loading`].
//! 2. **Ownership (clusters).** By default the coordinator owns every partition of
//!    `__consumer_offsets`. A broker of a replicated cluster calls
//!    [`Coordinator::set_owned_partitions`] with the partitions it leads, and again
//!    whenever that changes: groups of other partitions get `NOT_COORDINATOR` (lost
//!    partitions are unloaded, their parked requests answered); partitions gained while
//!    `Active` answer `COORDINATOR_LOAD_IN_PROGRESS` until their records have been
//!    replayed and [`Coordinator::finish_loading_partition`] called.
//! 3. **Requests.** Translate each Kafka request into its struct, call the method with the
//!    current time and a [`ReplyToken`]. State-changing calls return `Vec<`[`Output`]`>`;
//!    read-only ones (`offset_fetch`, `list_groups`, `describe_groups`,
//!    `consumer_group_describe`) return their response directly.
//! 4. **Outputs, in order.** An [`Output::Append`] must be durable in
//!    `__consumer_offsets` (as one record batch, in the given partition) before any later
//!    output — of this call or a later one — is acted upon; [`Output::Reply`] answers the
//!    request holding that token. JoinGroup and SyncGroup replies may come from later
//!    calls (another member's request, or `tick`). Every token is answered exactly once.
//!    If an append fails, answer the remaining replies of the call with
//!    [`Response::with_error`]`(NOT_COORDINATOR)`, call [`Coordinator::unload`] (it
//!    answers parked requests) and rebuild the coordinator from the log.
//!    An append with `commit: Some(id)` carries committed offsets that OffsetFetch does
//!    not show until the broker calls [`Coordinator::commit_replicated`]`(id)` once the
//!    batch is replicated (Kafka's pending offsets; report one partition's appends in log
//!    order).
//!    An append with `transaction: Some(producer)` (TxnOffsetCommit) must be written as
//!    that producer's transactional batch; when the producer's COMMIT/ABORT marker is
//!    replicated in that partition, call [`Coordinator::complete_transaction`]. While
//!    loading, feed records of transactional batches to
//!    [`Coordinator::replay_transactional`] and control records to
//!    [`Coordinator::replay_end_transaction`].
//! 5. **Time.** Call [`Coordinator::tick`] at (or after) [`Coordinator::next_deadline`];
//!    every call also fires what is due at its `now` first.
//!
//! # Persistence
//!
//! See [`records`] for the byte layouts and crash behaviour. Replaying the records a
//! coordinator emitted rebuilds its [`DurableState`]; classic groups come back as Kafka
//! loads them after a failover (`Stable` with their members, whose sessions restart).
//!
//! # Not implemented
//!
//! Online migration between classic and KIP-848 protocols for non-empty groups (empty
//! groups are converted), classic-protocol members inside KIP-848 groups, rack-aware
//! assignment, per-group dynamic configs, share/streams groups, and OffsetCommit v10
//! (topic ids).

mod api;
mod assignor;
mod classic;
mod codec;
mod config;
mod consumer;
mod consumer_regex;
mod coordinator;
mod embedded;
mod error;
mod offsets;
pub mod records;
mod timer;
mod topic_regex;
pub mod txn;
mod txn_offsets;

pub use api::*;
pub use assignor::{TopicInfo, TopicMetadata, TopicMetadataMap, BALANCE_MOVES_MAX};
pub use classic::{ClassicState, CONSUMER_PROTOCOL_TYPE};
pub use codec::DecodeError;
pub use config::*;
pub use consumer::{MemberState, LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH};
pub use coordinator::{
    partition_for, ConsumerGroupDurable, Coordinator, CoordinatorStatus, DurableState,
};
pub use error::{codes, GroupError, ReplayError};
pub use topic_regex::{
    whole_match, REGEX_COMPILED_BYTES_MAX, REGEX_NEST_MAX, REGEX_REFRESH_MIN_INTERVAL_MS,
};
pub use txn::{TxnConfig, TxnCoordinator, TxnOutput, TxnResponse};
