//! The seam between the controller and the replicated metadata log.
//!
//! The controller hands batches of records to a [`MetadataQuorum`]; once `append`
//! returns they are committed (durable on a majority of voters) and may be applied
//! to the image. A single node is a one-voter quorum: [`LocalQuorum`], whose commit
//! is an fsync of the local metadata log.

use std::path::Path;

use crate::log::{LogError, MetadataLog};
use crate::record::MetadataRecord;

/// Errors committing metadata.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A replicated, ordered, durable log of metadata records.
pub trait MetadataQuorum: Send {
    /// Commits `records` as one batch, in order.
    fn append(&mut self, records: &[MetadataRecord]) -> Result<(), QuorumError>;
}

/// A quorum of one voter: this node's local metadata log.
pub struct LocalQuorum {
    log: MetadataLog,
}

impl LocalQuorum {
    /// Opens the log in `dir`, returning the quorum and every committed record.
    pub fn open(dir: &Path) -> Result<(LocalQuorum, Vec<MetadataRecord>), QuorumError> {
        let (log, records) = MetadataLog::open(dir)?;
        Ok((LocalQuorum { log }, records))
    }
}

impl MetadataQuorum for LocalQuorum {
    fn append(&mut self, records: &[MetadataRecord]) -> Result<(), QuorumError> {
        self.log.append(records)?;
        Ok(())
    }
}
