//! The seam between the controller and the replicated metadata log.
//!
//! The controller plans a change against the image it has applied up to some
//! committed batch, then hands the records to a [`MetadataQuorum`] with that
//! batch's index as a fence: [`MetadataQuorum::append_after`] commits them as
//! one batch only if no other batch committed in between, and returns the new
//! batch's index. Once it returns, the batch is committed (durable on a
//! majority of voters) and the controller applies it.
//!
//! A single node is a one-voter quorum: [`LocalQuorum`], whose commit is an
//! fsync of the local metadata log. Its batch indexes are positions in that
//! log: a batch's index is the number of records the log holds once the batch
//! is appended (so they increase strictly, and the log's byte format carries no
//! batch boundaries and is unchanged).

use std::path::Path;

use crate::log::{LogError, MetadataLog};
use crate::record::MetadataRecord;

/// Errors committing metadata.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error(transparent)]
    Log(#[from] LogError),
    /// The fence did not hold: the last committed batch is not the one the
    /// caller planned against. Nothing was committed; re-plan against a newer
    /// image.
    #[error("metadata append fenced: planned after batch {expected:?}, last committed batch is {actual:?}")]
    Fenced {
        expected: Option<u64>,
        actual: Option<u64>,
    },
    /// No quorum leader is known or reachable right now (retriable: Kafka's
    /// NOT_CONTROLLER). Nothing was committed.
    #[error("no metadata quorum leader: {0}")]
    NoLeader(String),
    /// The append was not acknowledged in time; it may still commit later
    /// (retriable: Kafka's REQUEST_TIMED_OUT).
    #[error("metadata append timed out: {0}")]
    Timeout(String),
    /// The quorum refused the batch or failed for another reason.
    #[error("metadata quorum: {0}")]
    Failed(String),
}

/// A replicated, ordered, durable log of metadata records, written in batches.
pub trait MetadataQuorum: Send {
    /// The index of the last committed batch this quorum knows of (`None`: the
    /// log is empty).
    fn last_batch(&self) -> Option<u64>;

    /// Commits `records` as one batch, in order, if the last committed batch is
    /// `after` (otherwise [`QuorumError::Fenced`] and nothing is committed);
    /// returns the new batch's index, which is greater than `after`. An empty
    /// `records` commits nothing (the controller never asks for that).
    fn append_after(
        &mut self,
        after: Option<u64>,
        records: &[MetadataRecord],
    ) -> Result<u64, QuorumError>;
}

/// A quorum of one voter: this node's local metadata log.
pub struct LocalQuorum {
    log: MetadataLog,
    last_batch: Option<u64>,
}

impl LocalQuorum {
    /// Opens the log in `dir`, returning the quorum and every committed record
    /// (all of them up to [`MetadataQuorum::last_batch`]).
    pub fn open(dir: &Path) -> Result<(LocalQuorum, Vec<MetadataRecord>), QuorumError> {
        let (log, records) = MetadataLog::open(dir)?;
        let last_batch = (!records.is_empty()).then_some(records.len() as u64);
        Ok((LocalQuorum { log, last_batch }, records))
    }
}

impl MetadataQuorum for LocalQuorum {
    fn last_batch(&self) -> Option<u64> {
        self.last_batch
    }

    fn append_after(
        &mut self,
        after: Option<u64>,
        records: &[MetadataRecord],
    ) -> Result<u64, QuorumError> {
        if after != self.last_batch {
            return Err(QuorumError::Fenced {
                expected: after,
                actual: self.last_batch,
            });
        }
        if records.is_empty() {
            return Ok(self.last_batch.unwrap_or(0));
        }
        let index = self.log.append(records)?;
        self.last_batch = Some(index);
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(id: &str) -> MetadataRecord {
        MetadataRecord::InitCluster {
            cluster_id: id.into(),
        }
    }

    #[test]
    fn batch_indexes_are_record_positions_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut q, records) = LocalQuorum::open(dir.path()).unwrap();
            assert!(records.is_empty());
            assert_eq!(q.last_batch(), None);
            assert_eq!(q.append_after(None, &[init("a")]).unwrap(), 1);
            assert_eq!(q.append_after(Some(1), &[init("b"), init("c")]).unwrap(), 3);
        }
        let (q, records) = LocalQuorum::open(dir.path()).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(q.last_batch(), Some(3));
    }

    #[test]
    fn a_stale_fence_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = LocalQuorum::open(dir.path()).unwrap();
        q.append_after(None, &[init("a")]).unwrap();
        assert!(matches!(
            q.append_after(None, &[init("b")]),
            Err(QuorumError::Fenced {
                expected: None,
                actual: Some(1)
            })
        ));
        drop(q);
        let (_, records) = LocalQuorum::open(dir.path()).unwrap();
        assert_eq!(records, vec![init("a")]);
    }
}
