//! The transaction coordinator (Kafka's `TransactionCoordinator` and
//! `TransactionStateManager`) as a sans-I/O state machine, for one `__transaction_state`
//! partition: the transactional ids that hash to it, their producer ids and epochs, and
//! their transactions' states, persisted as Kafka's records (see [`records`]).
//!
//! No I/O, clocks or randomness: time comes in as `now`, producer ids from the closure
//! given to [`TxnCoordinator::new`] (the broker allocates blocks from the metadata log).
//!
//! # Calling contract (for the broker; the same shape as the group [`crate::Coordinator`])
//!
//! 1. **Load.** One coordinator per led `__transaction_state` partition, created with the
//!    partition's leader epoch (the *coordinator epoch* stamped on markers).
//!    [`TxnCoordinator::new`] starts `Loading` (requests get COORDINATOR_LOAD_IN_PROGRESS);
//!    feed the partition's records in log order to [`TxnCoordinator::replay`], then call
//!    [`TxnCoordinator::finish_loading`]: it re-issues the markers of every transaction
//!    left in PrepareCommit/PrepareAbort (failover). Losing the leadership:
//!    [`TxnCoordinator::unload`] (requests then get NOT_COORDINATOR) and drop the marker
//!    writes still in flight for it (the next leader re-issues them with its own
//!    coordinator epoch); a new leadership is a new coordinator.
//! 2. **Requests.** Call the method with the time and a [`crate::ReplyToken`]; state-changing
//!    calls return `Vec<`[`TxnOutput`]`>`, read-only ones (verify-only
//!    AddPartitionsToTxn, DescribeTransactions, ListTransactions) answer directly.
//! 3. **Outputs, in order.** An [`TxnOutput::Append`] must be replicated (acks=all, as
//!    Kafka writes `__transaction_state`) before any later output — of this call or a
//!    later one — is acted upon: replies are sent, and markers written, only after the
//!    appends before them. Every token is answered exactly once, by the call that took it.
//!    If an append fails, answer the remaining replies of the call with
//!    [`TxnResponse::with_error`]`(NOT_COORDINATOR)`, call [`TxnCoordinator::unload`] and
//!    rebuild the coordinator from the log (the state machine is ahead of the log).
//! 4. **Markers.** [`TxnOutput::WriteMarkers`] asks for a COMMIT/ABORT marker in each
//!    partition (retry until each is written or its topic is gone). Report partitions
//!    done with [`TxnCoordinator::markers_written`]; when all are, the coordinator
//!    appends the CompleteCommit/CompleteAbort record. Reports for an older producer
//!    epoch or another state are ignored.
//! 5. **Time.** Call [`TxnCoordinator::tick`] at (or after)
//!    [`TxnCoordinator::next_deadline`]: it aborts transactions older than their timeout
//!    (bumping the epoch, which fences the producer) and removes ids idle for
//!    `transactional.id.expiration.ms` (tombstones).
//!
//! Old request versions expect INVALID_PRODUCER_EPOCH where this coordinator answers
//! PRODUCER_FENCED (InitProducerId < v4, AddPartitionsToTxn/AddOffsetsToTxn/EndTxn < v2):
//! the broker's handler maps the code, as Kafka's `KafkaApis` does.

mod api;
mod config;
mod coordinator;
mod error;
mod handlers;
pub mod records;
mod state;

pub use api::*;
pub use config::*;
pub use coordinator::TxnCoordinator;
pub use error::{TxnError, TxnReplayError};
pub use records::{TxnLogValue, TxnRecordError};
pub use state::TxnState;

#[cfg(test)]
mod tests;
