//! The Raft quorum of controller voters that replicates samsa's metadata log
//! (Kafka KRaft's role), built on openraft 0.9.
//!
//! samsa's cluster state is a log of [`samsa_metadata::MetadataRecord`]s
//! applied to a [`samsa_metadata::MetadataImage`]. A single node keeps that log
//! in a local file (`samsa_metadata::quorum::LocalQuorum`); this crate replaces
//! only the log's transport with a Raft quorum:
//!
//! * [`RaftQuorum`] is one voter: [`RaftQuorum::start`] opens its durable state
//!   (Raft log, vote, snapshot under [`QuorumConfig::dir`]), binds its
//!   CONTROLLER listener and joins the static voter set
//!   (`controller.quorum.voters`, see [`parse_voters`]).
//!   [`RaftQuorum::append`] commits a batch on the leader;
//!   [`RaftQuorum::subscribe`] yields every committed batch, in order, exactly
//!   once, from the start of the log or from a snapshot ([`Committed`]).
//!   The leader also keeps the brokers' liveness heartbeats in memory
//!   ([`RaftQuorum::heartbeats`], [`RaftQuorum::leader_since`]).
//! * [`Observer`] is how a broker that is not a voter follows the committed log:
//!   it fetches from any voter's CONTROLLER listener, and sends its appends
//!   and heartbeats ([`Observer::heartbeat`]) to the leader.
//!
//! Module map: `types` (openraft type config, proposals, the fencing rule),
//! `frame` (checksummed frames, atomic files), `disk` (the dedicated threads
//! all of the quorum's disk I/O runs on), `log_store` (the durable log
//! and vote: byte layout and crash behaviour), `snapshot` (compaction and the
//! snapshot byte layout), `state_machine`, `committed` (the committed stream),
//! `wire` (the RPC frame layout and messages), `network` (RPC client),
//! `server` (the listener), `quorum` (the voter), `observer`.
//!
//! Invariants: everything acknowledged was fsynced first, by Raft's rules; a
//! reader never sees an uncommitted record, a gap, a repeat or a reordering;
//! every length read from disk or the wire is checked against a limit and the
//! bytes present before anything is allocated.

pub mod committed;
pub mod config;
pub mod describe;
mod disk;
pub mod error;
mod frame;
mod log_store;
mod network;
pub mod observer;
pub mod quorum;
mod server;
mod snapshot;
mod state_machine;
mod types;
mod wire;

pub use committed::{Batch, Committed, SnapshotView, Subscription};
pub use config::{parse_voters, ObserverConfig, QuorumConfig};
pub use describe::{QuorumDescription, ReplicaProgress};
pub use error::QuorumError;
pub use observer::{Observer, HEARTBEAT_TIMEOUT_MS_MAX};
pub use quorum::{QuorumStatus, RaftQuorum, HEARTBEAT_NODES_MAX};
