//! Kafka's `TransactionState`: the states of a transactional id, their ids in
//! `__transaction_state` and their names in DescribeTransactions / ListTransactions.

/// The state of a transactional id's current (or last) transaction.
///
/// ```text
/// Empty ──AddPartitions/AddOffsets──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
///   ▲                                  │  ├──EndTxn(abort), timeout, fencing──▶ PrepareAbort ──markers──▶ CompleteAbort
///   └──InitProducerId (Empty/Complete*)┘  (TV2: EndTxn(abort) also from Empty/Complete*)
/// Empty/Complete* ──transactional.id.expiration.ms──▶ Dead (tombstone)
/// ```
/// `PrepareEpochFence` is Kafka's transient state while fencing; samsa goes from Ongoing
/// straight to PrepareAbort with the fenced epoch, so it never holds it (it is accepted on
/// replay, as Kafka's log format allows it).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    /// No transaction (after InitProducerId).
    Empty,
    /// Partitions were added; the transaction runs.
    Ongoing,
    /// Commit decided; markers being written.
    PrepareCommit,
    /// Abort decided; markers being written.
    PrepareAbort,
    /// Committed: every marker is written.
    CompleteCommit,
    /// Aborted: every marker is written.
    CompleteAbort,
    /// Expired; being removed.
    Dead,
    /// Bumping the epoch to fence a producer (transient).
    PrepareEpochFence,
}

impl TxnState {
    /// Every state, in id order.
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The id stored in `__transaction_state` (`TransactionStatus`).
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state with id `id`.
    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.iter().copied().find(|s| s.id() == id)
    }

    /// Kafka's name (DescribeTransactions, ListTransactions filters).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state named `name` (exact, as Kafka matches it).
    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// Whether `transactional.id.expiration.ms` may remove an id in this state.
    pub fn expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// Whether markers are being written (PrepareCommit / PrepareAbort).
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// Whether the previous transaction is over (Empty / Complete*).
    pub fn is_idle(self) -> bool {
        self.expiration_allowed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_round_trip() {
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_id(s.id()), Some(s));
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(TxnState::from_name("ongoing"), None);
    }
}
