//! [`RaftQuorum`]: one controller voter — its durable state, its CONTROLLER
//! listener, and the openraft node that replicates the metadata log.
//!
//! # Forming the voter set
//!
//! The voters are static (`controller.quorum.voters`). A node whose log is
//! empty does not elect itself: only the voter with the lowest id initializes
//! the cluster, by writing the voter set as log entry 0 and starting an
//! election; the others wait until it (or, later, any leader) replicates to
//! them. Once any entry exists a node never initializes again, so nodes may
//! start in any order and restart at will. On restart the voter set in the log
//! must equal the configured one, or [`RaftQuorum::start`] refuses with
//! [`QuorumError::VoterMismatch`] (a voter joining a formed cluster for the
//! first time is checked against the leader's set only by openraft itself).
//!
//! The first formation needs the lowest-id voter up (and a majority). A voter
//! whose directory was lost must not simply be restarted empty: it would
//! count as a fresh voter; restore its directory or replace it by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Raft, SnapshotPolicy};
use samsa_metadata::log::RECORD_BYTES_MAX;
use samsa_metadata::MetadataRecord;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::committed::{CommittedReader, Subscription};
use crate::config::{QuorumConfig, FRAME_OVERHEAD_BYTES};
use crate::error::QuorumError;
use crate::log_store::{LogFile, LogStore};
use crate::network::NetworkFactory;
use crate::server::{self, ServerCtx, ServerHandle};
use crate::state_machine::{SmShared, StateMachineStore};
use crate::types::{Precondition, Proposal, TypeConfig};

/// A point-in-time view of this voter, for logs, metrics and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: u64,
    /// The leader this node follows (itself when it leads).
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    /// The voter set in force (empty before this node joined).
    pub voters: Vec<u64>,
}

/// One running controller voter.
pub struct RaftQuorum {
    id: u64,
    raft: Raft<TypeConfig>,
    reader: CommittedReader,
    server: Option<ServerHandle>,
    local_addr: SocketAddr,
    limits: ProposeLimits,
    read_bytes_max: usize,
    stopped: bool,
}

/// The bounds every append is checked against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProposeLimits {
    pub proposal_bytes_max: usize,
    pub append_timeout: Duration,
}

/// Commits a proposal through `raft` (which must lead): the one append path,
/// for local callers and for appends forwarded over the wire.
pub(crate) async fn propose(
    raft: &Raft<TypeConfig>,
    limits: ProposeLimits,
    precondition: Precondition,
    records: Vec<MetadataRecord>,
) -> Result<u64, QuorumError> {
    if records.is_empty() {
        return Err(QuorumError::EmptyBatch);
    }
    let mut total = 0;
    for r in &records {
        let n = serde_json::to_vec(r)?.len();
        if n > RECORD_BYTES_MAX {
            return Err(QuorumError::RecordTooLarge {
                bytes: n,
                max: RECORD_BYTES_MAX,
            });
        }
        total += n + 1;
    }
    if total > limits.proposal_bytes_max {
        return Err(QuorumError::BatchTooLarge {
            bytes: total,
            max: limits.proposal_bytes_max,
        });
    }
    let proposal = Proposal {
        precondition,
        records,
    };
    match tokio::time::timeout(limits.append_timeout, raft.client_write(proposal)).await {
        Err(_) => Err(QuorumError::Timeout {
            waited_ms: limits.append_timeout.as_millis() as u64,
        }),
        Ok(Ok(resp)) if resp.data.accepted => Ok(resp.log_id.index),
        Ok(Ok(resp)) => Err(QuorumError::Fenced {
            last_batch: resp.data.last_batch,
        }),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            Err(QuorumError::NotLeader {
                leader: f.leader_id,
            })
        }
        Ok(Err(RaftError::APIError(e))) => Err(QuorumError::Internal(e.to_string())),
        Ok(Err(RaftError::Fatal(e))) => Err(fatal(e)),
    }
}

fn fatal(e: impl std::fmt::Display) -> QuorumError {
    QuorumError::Shutdown(e.to_string())
}

impl RaftQuorum {
    /// Opens the durable state in `config.dir`, binds `config.listen`, starts
    /// the Raft node and joins (or, as the lowest-id voter of an empty log,
    /// initializes) the voter set. Returns without waiting for a leader.
    pub async fn start(config: QuorumConfig) -> Result<RaftQuorum, QuorumError> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| QuorumError::Listen {
                    addr: config.listen,
                    source,
                })?;
        RaftQuorum::start_with_listener(config, listener).await
    }

    /// [`RaftQuorum::start`] on an already bound listener (`config.listen` is
    /// then not used).
    pub async fn start_with_listener(
        config: QuorumConfig,
        listener: TcpListener,
    ) -> Result<RaftQuorum, QuorumError> {
        config.validate()?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| QuorumError::Listen {
                addr: config.listen,
                source,
            })?;
        let dir = config.dir.clone();
        let entry_bytes_max = config.proposal_bytes_max + FRAME_OVERHEAD_BYTES;
        let snapshot_bytes_max = config.snapshot_bytes_max;
        let (log, sm) = tokio::task::spawn_blocking(move || {
            let log = LogFile::open(&dir, entry_bytes_max)?;
            let sm = SmShared::open(&dir, snapshot_bytes_max)?;
            Ok::<_, QuorumError>((log, sm))
        })
        .await
        .map_err(|e| QuorumError::Internal(format!("open task failed: {e}")))??;
        let log = LogStore::new(log, config.frame_bytes_max / 2);

        let raft_config = openraft::Config {
            cluster_name: "samsa-metadata".into(),
            election_timeout_min: config.election_timeout_ms_min,
            election_timeout_max: config.election_timeout_ms_max,
            heartbeat_interval: config.heartbeat_interval_ms,
            install_snapshot_timeout: config.rpc_timeout_ms,
            max_payload_entries: config.append_entries_max,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_log_entries),
            snapshot_max_chunk_size: config.snapshot_chunk_bytes_max as u64,
            max_in_snapshot_log_to_keep: config.snapshot_kept_log_entries,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;
        let network = NetworkFactory {
            local: config.node_id,
            addrs: Arc::new(config.voters.clone()),
            frame_bytes_max: config.frame_bytes_max,
            backoff: Duration::from_millis(config.heartbeat_interval_ms),
        };
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            log.clone(),
            StateMachineStore(sm.clone()),
        )
        .await
        .map_err(fatal)?;
        let reader = CommittedReader { log, sm };
        let limits = ProposeLimits {
            proposal_bytes_max: config.proposal_bytes_max,
            append_timeout: Duration::from_millis(config.append_timeout_ms),
        };
        let ctx = Arc::new(ServerCtx {
            limits,
            id: config.node_id,
            raft: raft.clone(),
            reader: reader.clone(),
            frame_bytes_max: config.frame_bytes_max,
            snapshot_bytes_max: config.snapshot_bytes_max,
            fetch_wait_ms_max: config.fetch_wait_ms_max,
            fetch_bytes_max: config.fetch_bytes_max,
            rpc_timeout: Duration::from_millis(config.rpc_timeout_ms),
            idle_timeout: Duration::from_millis(config.connection_idle_ms_max),
            connections_max: config.connections_max,
        });
        let server = server::spawn(listener, ctx);
        let quorum = RaftQuorum {
            id: config.node_id,
            raft,
            reader,
            server: Some(server),
            local_addr,
            limits,
            read_bytes_max: config.fetch_bytes_max,
            stopped: false,
        };
        if let Err(e) = quorum.join_voters(&config).await {
            quorum.shutdown().await;
            return Err(e);
        }
        Ok(quorum)
    }

    async fn join_voters(&self, config: &QuorumConfig) -> Result<(), QuorumError> {
        let configured: BTreeSet<u64> = config.voters.keys().copied().collect();
        // Read from the Raft core itself (metrics may lag behind an entry
        // that just arrived from a leader).
        let stored: BTreeSet<u64> = self
            .raft
            .with_raft_state(|st| {
                st.membership_state
                    .effective()
                    .membership()
                    .voter_ids()
                    .collect()
            })
            .await
            .map_err(fatal)?;
        if !stored.is_empty() {
            if stored != configured {
                return Err(QuorumError::VoterMismatch {
                    configured: configured.into_iter().collect(),
                    stored: stored.into_iter().collect(),
                });
            }
            return Ok(());
        }
        let lowest = configured.first().copied();
        if lowest != Some(self.id) {
            tracing::info!(
                node = self.id,
                ?lowest,
                "empty log: waiting for the lowest voter to form the quorum"
            );
            return Ok(());
        }
        let members: BTreeMap<u64, BasicNode> = config
            .voters
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(node = self.id, voters = ?configured, "initialized the metadata quorum");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(QuorumError::Internal(format!("initialize: {e}"))),
        }
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address the CONTROLLER listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The leader this node knows of (itself when it leads). May be stale for
    /// up to an election timeout after the leader died.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this node believes it is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.id)
    }

    /// Waits until this node knows a leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, QuorumError> {
        let mut metrics = self.raft.metrics();
        let wait = async {
            loop {
                if let Some(l) = metrics.borrow_and_update().current_leader {
                    return Ok(l);
                }
                metrics.changed().await.map_err(fatal)?;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| QuorumError::Timeout {
                waited_ms: timeout.as_millis() as u64,
            })?
    }

    /// Commits `records` as one batch and returns its log index. Only the
    /// leader appends; elsewhere this is [`QuorumError::NotLeader`]. Returns
    /// once the batch is committed (fsynced on a majority) and applied here, so
    /// a [`Subscription`] on this node has it or will yield it next.
    pub async fn append(&self, records: Vec<MetadataRecord>) -> Result<u64, QuorumError> {
        self.propose(Precondition::Always, records).await
    }

    /// Like [`RaftQuorum::append`], but the batch takes effect only if the
    /// last committed batch is `last_batch` (the batch the caller's image was
    /// built up to, see [`crate::Committed::last_batch`]); otherwise
    /// [`QuorumError::Fenced`]. This is how a controller makes sure that what
    /// it validated against is still current when the batch commits.
    pub async fn append_after(
        &self,
        last_batch: Option<u64>,
        records: Vec<MetadataRecord>,
    ) -> Result<u64, QuorumError> {
        self.propose(Precondition::LastBatch(last_batch), records)
            .await
    }

    async fn propose(
        &self,
        precondition: Precondition,
        records: Vec<MetadataRecord>,
    ) -> Result<u64, QuorumError> {
        propose(&self.raft, self.limits, precondition, records).await
    }

    /// A reader of every committed batch, in order, from the start of the log
    /// (or from a snapshot when the start was compacted away).
    pub fn subscribe(&self) -> Subscription {
        Subscription::new(self.reader.clone(), self.read_bytes_max)
    }

    /// The index after the last entry applied on this node (0 before any):
    /// changes whenever something new is committed here.
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.reader.sm.applied()
    }

    /// The log index of the last committed batch that took effect.
    pub fn last_batch(&self) -> Option<u64> {
        self.reader.sm.last_batch()
    }

    /// A snapshot of this node's Raft state.
    pub fn status(&self) -> QuorumStatus {
        let m = self.raft.metrics().borrow().clone();
        QuorumStatus {
            node_id: self.id,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            voters: m.membership_config.membership().voter_ids().collect(),
        }
    }

    /// Stops serving, stops the Raft node and waits for both. Everything
    /// acknowledged is already on disk; nothing more is flushed here.
    pub async fn shutdown(mut self) {
        self.stopped = true;
        self.reader.sm.close();
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let _ = self.raft.shutdown().await;
    }
}

impl Drop for RaftQuorum {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        // Dropped without `shutdown`: stop serving now and the Raft node in
        // the background.
        self.reader.sm.close();
        self.server.take();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let raft = self.raft.clone();
            rt.spawn(async move {
                let _ = raft.shutdown().await;
            });
        }
    }
}
