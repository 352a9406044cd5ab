//! KIP-890's verification guards (Kafka's `VerificationGuard` /
//! `VerificationStateEntry`): the leader's proof, checked at the append, that
//! the transaction coordinator confirmed a producer's transaction in this
//! partition *after* the producer's last marker here.
//!
//! Before a producer's first transactional batch of a transaction is
//! appended, the leader asks the coordinator whether the partition is in the
//! producer's ongoing transaction. Between that answer and the append, a
//! marker may end the transaction (a client abort without an epoch bump,
//! transaction version 1); the late batch would then open a transaction the
//! coordinator no longer knows about, and nothing would ever end it (a
//! hanging transaction holding the last stable offset back). So:
//!
//! 1. [`crate::PartitionLog::start_txn_verification`], under the writer
//!    lock, answers [`TxnVerification::Ongoing`] when the producer already
//!    has an open transaction here (no question needed), else records a new
//!    guard for the producer — a token never handed out before — replacing
//!    any earlier one, and returns it.
//! 2. The leader asks the coordinator; on a yes it appends with the guard
//!    ([`crate::PartitionLog::append_guarded`]).
//! 3. Under the writer lock, a transactional batch of a producer with no open
//!    transaction here is refused ([`crate::StorageError::TxnNotVerified`],
//!    Kafka's INVALID_TXN_STATE) unless its guard is the producer's current
//!    one. A batch that opens the transaction, and any marker for the
//!    producer, clear the producer's guard: a marker written between the
//!    coordinator's answer and the append makes that append fail, and so
//!    does a stale answer arriving after a later verification started past
//!    such a marker (the ABA case: the tokens differ). Verifications
//!    started while one is in flight share its guard, so a retry does not
//!    cancel the first append.
//!
//! Guards live in memory only (a restart makes in-flight verifications fail,
//! and the producer retries). At most [`VERIFICATION_GUARDS_MAX`] are kept;
//! beyond it the oldest is dropped, and its append fails the same way.

use std::collections::{BTreeMap, HashMap};

use samsa_model::ProducerId;

/// Guards kept per partition at most.
pub const VERIFICATION_GUARDS_MAX: usize = 65_536;

/// One verification's token (unique per log).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct VerificationGuard(u64);

/// What a produce of a transactional batch needs before its append.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TxnVerification {
    /// The producer's transaction is open here: append without asking
    /// (with no guard; the append still fails if a marker ended it since).
    Ongoing,
    /// Ask the coordinator, then append with this guard.
    Needed(VerificationGuard),
}

/// The current guard of each producer verifying a transaction.
#[derive(Debug, Default)]
pub(crate) struct VerificationGuards {
    by_producer: HashMap<i64, u64>,
    by_token: BTreeMap<u64, i64>,
    next: u64,
}

impl VerificationGuards {
    /// `producer_id`'s guard: its current one if a verification is already
    /// in flight (a retry on another connection must not cancel it, as
    /// Kafka reuses its verification entry), else a new one. Only a marker
    /// or the transaction's first batch ends a guard.
    pub fn start(&mut self, producer_id: ProducerId) -> VerificationGuard {
        if let Some(&token) = self.by_producer.get(&producer_id.get()) {
            return VerificationGuard(token);
        }
        while self.by_producer.len() >= VERIFICATION_GUARDS_MAX {
            let Some((_, pid)) = self.by_token.pop_first() else {
                break;
            };
            self.by_producer.remove(&pid);
        }
        self.next += 1;
        let token = self.next;
        self.by_producer.insert(producer_id.get(), token);
        self.by_token.insert(token, producer_id.get());
        VerificationGuard(token)
    }

    /// Whether `guard` is `producer_id`'s current guard.
    pub fn verifies(&self, producer_id: ProducerId, guard: Option<VerificationGuard>) -> bool {
        guard.is_some_and(|g| self.by_producer.get(&producer_id.get()) == Some(&g.0))
    }

    /// Forget `producer_id`'s guard (its transaction opened or ended).
    pub fn clear(&mut self, producer_id: ProducerId) {
        if let Some(token) = self.by_producer.remove(&producer_id.get()) {
            self.by_token.remove(&token);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_producer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_lasts_until_cleared_is_shared_while_in_flight_and_the_table_is_bounded() {
        let mut g = VerificationGuards::default();
        let first = g.start(ProducerId(1));
        let second = g.start(ProducerId(1));
        assert_eq!(first, second, "a verification in flight is shared");
        assert!(g.verifies(ProducerId(1), Some(first)));
        g.clear(ProducerId(1));
        let second = g.start(ProducerId(1));
        assert!(!g.verifies(ProducerId(1), Some(first)), "a stale guard");
        assert!(g.verifies(ProducerId(1), Some(second)));
        assert!(!g.verifies(ProducerId(1), None));
        assert!(
            !g.verifies(ProducerId(2), Some(second)),
            "another producer's"
        );
        g.clear(ProducerId(1));
        assert!(!g.verifies(ProducerId(1), Some(second)));
        for pid in 0..(VERIFICATION_GUARDS_MAX as i64 + 10) {
            g.start(ProducerId(pid));
        }
        assert_eq!(g.len(), VERIFICATION_GUARDS_MAX);
    }
}
