//! The typed errors of the quorum: what a caller of [`crate::RaftQuorum`] or
//! [`crate::Observer`] can be told, and what the storage layer reports to openraft.

use std::path::{Path, PathBuf};

/// Why a quorum operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// The configuration is unusable (the message says which setting and why).
    #[error("invalid quorum config: {0}")]
    Config(String),
    /// A file or directory operation failed.
    #[error("quorum I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file that was written atomically (vote, snapshot, log header) does not
    /// decode: the disk lost or damaged fsynced data. The node refuses to start
    /// rather than forget a vote or a snapshot.
    #[error("corrupt quorum file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// Binding the controller listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Only the leader appends. `leader` is the leader this node knows of, if any.
    #[error("not the quorum leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// The append was not acknowledged in time (no majority reachable, or a
    /// leader change). Its outcome is unknown: it may still commit later, so a
    /// caller learns the truth from the committed stream, never by retrying blindly.
    #[error("append not committed within {waited_ms} ms (outcome unknown)")]
    Timeout { waited_ms: u64 },
    /// A conditional append was refused because another batch was committed after
    /// the one the caller validated against.
    #[error("append fenced: the last committed batch is {last_batch:?}")]
    Fenced { last_batch: Option<u64> },
    /// An append must carry at least one record.
    #[error("an append must carry at least one record")]
    EmptyBatch,
    /// One record serializes larger than a metadata record may be.
    #[error("metadata record of {bytes} bytes exceeds {max} bytes")]
    RecordTooLarge { bytes: usize, max: usize },
    /// The whole batch serializes larger than `proposal_bytes_max`.
    #[error("metadata batch of {bytes} bytes exceeds proposal_bytes_max = {max}")]
    BatchTooLarge { bytes: usize, max: usize },
    /// A record could not be serialized.
    #[error("metadata record does not serialize: {0}")]
    Encode(#[from] serde_json::Error),
    /// The configured voters differ from the voter set stored in the log.
    #[error("configured voters {configured:?} differ from the voters in the log {stored:?}")]
    VoterMismatch {
        configured: Vec<u64>,
        stored: Vec<u64>,
    },
    /// The Raft core stopped (shutdown, or a fatal storage error); see the log.
    #[error("the quorum is shut down: {0}")]
    Shutdown(String),
    /// No voter answered a fetch (observers), or a peer answered nonsense.
    #[error("quorum network: {0}")]
    Network(String),
    /// An internal invariant did not hold (a bug); the message says which.
    #[error("quorum internal error: {0}")]
    Internal(String),
}

impl QuorumError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QuorumError {
        let path = path.to_path_buf();
        move |source| QuorumError::Io { path, source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> QuorumError {
        QuorumError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
