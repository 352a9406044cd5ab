//! The openraft type configuration and the application data carried by the log.
//!
//! A log entry's application payload is a [`Proposal`]: one batch of metadata
//! records plus an optional fencing precondition. Whether a proposal is accepted
//! depends only on the log before it ([`admit`]), so the state machine, local
//! subscribers and remote observers all decide identically.

use std::io::Cursor;

use openraft::BasicNode;
use samsa_metadata::MetadataRecord;
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// The types openraft is instantiated with.
    pub(crate) TypeConfig:
        D = Proposal,
        R = ProposalOutcome,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub(crate) type LogId = openraft::LogId<u64>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type Vote = openraft::Vote<u64>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<u64, BasicNode>;
pub(crate) type StoredMembership = openraft::StoredMembership<u64, BasicNode>;
pub(crate) type StorageError = openraft::StorageError<u64>;

/// When a proposal may take effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Precondition {
    /// Always.
    Always,
    /// Only if the last accepted batch is at this log index (`None`: no batch
    /// was accepted yet). Lets a controller commit only what it validated
    /// against an up-to-date image.
    LastBatch(Option<u64>),
}

/// One batch of metadata records, the payload of a normal log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Proposal {
    pub precondition: Precondition,
    pub records: Vec<MetadataRecord>,
}

/// What applying an entry did, returned to the appender on the leader.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProposalOutcome {
    /// The proposal's records took effect.
    pub accepted: bool,
    /// The last accepted batch after this entry.
    pub last_batch: Option<u64>,
}

/// Decides whether the proposal at `index` takes effect, given the last accepted
/// batch before it; advances `last_batch` if it does.
pub(crate) fn admit(last_batch: &mut Option<u64>, index: u64, precondition: &Precondition) -> bool {
    let ok = match precondition {
        Precondition::Always => true,
        Precondition::LastBatch(expected) => *expected == *last_batch,
    };
    if ok {
        *last_batch = Some(index);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_rule() {
        let mut last = None;
        assert!(admit(&mut last, 3, &Precondition::LastBatch(None)));
        assert_eq!(last, Some(3));
        assert!(!admit(&mut last, 4, &Precondition::LastBatch(None)));
        assert_eq!(last, Some(3));
        assert!(admit(&mut last, 5, &Precondition::LastBatch(Some(3))));
        assert!(admit(&mut last, 6, &Precondition::Always));
        assert_eq!(last, Some(6));
    }
}
