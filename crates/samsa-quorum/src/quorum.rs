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
//!
//! # Broker heartbeats
//!
//! Brokers report that they are alive with a heartbeat RPC
//! ([`crate::Observer::heartbeat`], KRaft's BrokerHeartbeat role), sent to
//! every voter. Every voter records them, in memory: node id -> (when it was
//! heard, broker epoch); only the leader acts on them, and a non-leader
//! answers NotLeader after recording. Nothing is replicated or persisted;
//! because followers keep hearing brokers too, a newly elected leader
//! already knows which brokers went silent before the election (a broker it
//! never heard from gets a grace period from [`RaftQuorum::leader_since`],
//! the instant the current leadership began). The
//! table holds at most `voters + HEARTBEAT_NODES_MAX` nodes; a heartbeat from
//! a new node when it is full evicts the node heard from least recently.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Raft, ServerState, SnapshotPolicy};
use samsa_metadata::log::RECORD_BYTES_MAX;
use samsa_metadata::MetadataRecord;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::committed::{CommittedReader, Subscription};
use crate::config::{QuorumConfig, FRAME_OVERHEAD_BYTES};
use crate::error::QuorumError;
use crate::log_store::{LogFile, LogStore};
use crate::network::NetworkFactory;
use crate::server::{self, ServerCtx, ServerHandle};
use crate::state_machine::{SmShared, StateMachineStore};
use crate::types::{Precondition, Proposal, TypeConfig};
use crate::wire::HeartbeatResult;

/// Most nodes besides the voters whose heartbeats the leader tracks at once.
pub const HEARTBEAT_NODES_MAX: usize = 10_000;

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
    liveness: Arc<Liveness>,
    /// Follows leadership changes so `leader_since` is the moment they happen.
    liveness_task: Option<JoinHandle<()>>,
    stopped: bool,
}

/// The leader's in-memory broker heartbeat table (see the module doc).
pub(crate) struct Liveness {
    id: u64,
    /// Most nodes in the table: voters + [`HEARTBEAT_NODES_MAX`].
    nodes_max: usize,
    state: Mutex<LivenessState>,
}

#[derive(Debug, Default)]
struct LivenessState {
    /// The term this node leads in and when it was first seen leading it;
    /// `None` while it does not lead.
    led: Option<(u64, Instant)>,
    /// node -> (when heard, broker epoch), kept across leadership changes.
    beats: HashMap<u64, (Instant, i64)>,
}

impl LivenessState {
    /// Follows this node's leadership: `leading` is `Some(term)` while it
    /// leads; a new term (or leading again) restarts `leader_since`.
    fn follow(&mut self, leading: Option<u64>, now: Instant) {
        match (leading, self.led) {
            (Some(term), Some((led, _))) if term == led => {}
            (Some(term), _) => self.led = Some((term, now)),
            (None, _) => self.led = None,
        }
    }

    /// Records a heartbeat, evicting the stalest node if `node` is new and the
    /// table holds `nodes_max` nodes already.
    fn record(&mut self, node: u64, broker_epoch: i64, now: Instant, nodes_max: usize) {
        if !self.beats.contains_key(&node) && self.beats.len() >= nodes_max {
            let stalest = self
                .beats
                .iter()
                .min_by_key(|(_, (heard, _))| *heard)
                .map(|(id, _)| *id);
            if let Some(stalest) = stalest {
                self.beats.remove(&stalest);
            }
        }
        self.beats.insert(node, (now, broker_epoch));
    }
}

impl Liveness {
    pub(crate) fn new(id: u64, voters: usize) -> Liveness {
        Liveness {
            id,
            nodes_max: voters.saturating_add(HEARTBEAT_NODES_MAX),
            state: Mutex::new(LivenessState::default()),
        }
    }

    /// Brings the table up to date with `raft`'s current role and returns it
    /// locked, with the leader `raft` knows of.
    fn sync(&self, raft: &Raft<TypeConfig>) -> (MutexGuard<'_, LivenessState>, Option<u64>) {
        let (leading, leader) = {
            let metrics = raft.server_metrics();
            let m = metrics.borrow();
            let leading = (m.state == ServerState::Leader && m.current_leader == Some(self.id))
                .then_some(m.vote.leader_id.term);
            (leading, m.current_leader)
        };
        // The table is plain data; a panic elsewhere cannot leave it half-updated.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.follow(leading, Instant::now());
        (state, leader)
    }

    /// Serves a heartbeat: recorded on every voter; `NotLeader` (with the
    /// leader's id) from a voter that does not lead.
    pub(crate) fn heartbeat(
        &self,
        raft: &Raft<TypeConfig>,
        node: u64,
        broker_epoch: i64,
    ) -> HeartbeatResult {
        let (mut state, leader) = self.sync(raft);
        state.record(node, broker_epoch, Instant::now(), self.nodes_max);
        if state.led.is_none() {
            return HeartbeatResult::NotLeader {
                leader: leader.filter(|l| *l != self.id),
            };
        }
        HeartbeatResult::Recorded
    }

    fn heartbeats(&self, raft: &Raft<TypeConfig>) -> HashMap<u64, (Instant, i64)> {
        self.sync(raft).0.beats.clone()
    }

    fn leader_since(&self, raft: &Raft<TypeConfig>) -> Option<Instant> {
        self.sync(raft).0.led.map(|(_, since)| since)
    }
}

/// Follows `raft`'s role changes into `liveness` until the Raft node stops.
async fn follow_leadership(raft: Raft<TypeConfig>, liveness: Arc<Liveness>) {
    let mut metrics = raft.server_metrics();
    loop {
        drop(liveness.sync(&raft));
        if metrics.changed().await.is_err() {
            return;
        }
        metrics.borrow_and_update();
    }
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
        let log = LogStore::new(log, config.frame_bytes_max / 2)?;

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
        let liveness = Arc::new(Liveness::new(config.node_id, config.voters.len()));
        let liveness_task = tokio::spawn(follow_leadership(raft.clone(), liveness.clone()));
        let ctx = Arc::new(ServerCtx {
            limits,
            id: config.node_id,
            raft: raft.clone(),
            liveness: liveness.clone(),
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
            liveness,
            liveness_task: Some(liveness_task),
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

    /// The broker heartbeats this node recorded as leader: node id -> (when
    /// the last heartbeat arrived, the broker epoch it carried). A copy; empty
    /// when this node does not lead, and it starts empty each time it becomes
    /// leader (see the module doc).
    pub fn heartbeats(&self) -> HashMap<u64, (Instant, i64)> {
        self.liveness.heartbeats(&self.raft)
    }

    /// When this node last became leader; `None` when it does not lead.
    /// Heartbeats are only known from this instant on, so a broker should be
    /// given a grace period from it before a missing heartbeat counts.
    pub fn leader_since(&self) -> Option<Instant> {
        self.liveness.leader_since(&self.raft)
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

    /// The quorum as DescribeQuorum reports it; `None` unless this node
    /// leads (only the leader knows its followers' progress).
    pub fn describe(&self) -> Option<crate::describe::QuorumDescription> {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(self.id) {
            return None;
        }
        let matched = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default();
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        Some(crate::describe::describe(
            (self.id, m.current_term),
            m.last_log_index,
            m.last_applied.map(|l| l.index),
            &voters,
            &matched,
            &self.heartbeats(),
            Instant::now(),
        ))
    }

    /// Stops serving, stops the Raft node and waits for both. Everything
    /// acknowledged is already on disk; nothing more is flushed here.
    pub async fn shutdown(mut self) {
        self.stopped = true;
        self.reader.sm.close();
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        if let Some(task) = self.liveness_task.take() {
            task.abort();
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
        if let Some(task) = self.liveness_task.take() {
            task.abort();
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let raft = self.raft.clone();
            rt.spawn(async move {
                let _ = raft.shutdown().await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ObserverConfig;
    use crate::Observer;

    #[test]
    fn heartbeat_table_follows_leadership_terms() {
        let t0 = Instant::now();
        let later = |ms| t0 + Duration::from_millis(ms);
        let mut st = LivenessState::default();
        st.follow(None, t0);
        assert_eq!(st.led, None);

        st.follow(Some(3), later(1));
        st.record(7, 1, later(2), 10);
        // Staying leader in the same term keeps the start and the table.
        st.follow(Some(3), later(5));
        assert_eq!(st.led, Some((3, later(1))));
        assert_eq!(st.beats.get(&7), Some(&(later(2), 1)));
        st.record(7, 2, later(6), 10);
        assert_eq!(st.beats.get(&7), Some(&(later(6), 2)));

        // Losing leadership keeps what was heard (followers record too).
        st.follow(None, later(7));
        assert_eq!(st.led, None);
        assert_eq!(st.beats.get(&7), Some(&(later(6), 2)));

        // Leading again in a later term restarts the leadership clock; so does
        // a term change that was never observed as a loss.
        st.follow(Some(5), later(8));
        st.record(7, 2, later(9), 10);
        st.follow(Some(6), later(10));
        assert_eq!(st.led, Some((6, later(10))));
        assert_eq!(st.beats.get(&7), Some(&(later(9), 2)));
    }

    #[test]
    fn a_full_heartbeat_table_evicts_the_stalest_node() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut st = LivenessState::default();
        st.follow(Some(1), t0);
        st.record(1, 0, at(3), 3);
        st.record(2, 0, at(1), 3);
        st.record(3, 0, at(2), 3);
        // A known node refreshes without evicting anyone.
        st.record(2, 1, at(4), 3);
        assert_eq!(st.beats.len(), 3);
        // A new node evicts node 3, heard least recently.
        st.record(4, 0, at(5), 3);
        let mut nodes: Vec<u64> = st.beats.keys().copied().collect();
        nodes.sort_unstable();
        assert_eq!(nodes, vec![1, 2, 4]);
        assert_eq!(Liveness::new(1, 3).nodes_max, 3 + HEARTBEAT_NODES_MAX);
    }

    const WAIT: Duration = Duration::from_secs(30);

    /// Waits until every node in `nodes` names the same leader, which leads.
    async fn agreed_leader(nodes: &BTreeMap<u64, RaftQuorum>) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen: Vec<Option<u64>> = nodes.values().map(|n| n.leader()).collect();
            if let Some(Some(l)) = seen.first() {
                if seen.iter().all(|s| *s == Some(*l))
                    && nodes.get(l).is_some_and(|n| n.is_leader())
                {
                    return *l;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heartbeats_reach_the_leader_and_start_afresh_after_failover() {
        let mut addrs = BTreeMap::new();
        let mut listeners = BTreeMap::new();
        for id in 1..=3u64 {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.insert(id, l.local_addr().unwrap());
            listeners.insert(id, l);
        }
        let dirs: BTreeMap<u64, tempfile::TempDir> = addrs
            .keys()
            .map(|id| (*id, tempfile::tempdir().unwrap()))
            .collect();
        let mut nodes = BTreeMap::new();
        for (id, listener) in listeners {
            let mut config = QuorumConfig::new(id, addrs.clone(), addrs[&id], dirs[&id].path());
            config.election_timeout_ms_min = 500;
            config.election_timeout_ms_max = 1_000;
            config.heartbeat_interval_ms = 100;
            config.rpc_timeout_ms = 1_000;
            let node = RaftQuorum::start_with_listener(config, listener)
                .await
                .unwrap();
            nodes.insert(id, node);
        }
        let mut observer_config = ObserverConfig::new(addrs.clone());
        observer_config.fetch_wait_ms = 200;
        observer_config.rpc_timeout_ms = 2_000;
        observer_config.retry_backoff_ms = 50;
        let mut broker = Observer::new(observer_config).unwrap();

        let old = agreed_leader(&nodes).await;
        for (id, node) in &nodes {
            assert_eq!(node.leader_since().is_some(), *id == old, "node {id}");
            assert!(node.heartbeats().is_empty(), "node {id}");
        }
        let since = nodes[&old].leader_since().unwrap();

        let before = Instant::now();
        broker.heartbeat(7, 42).await.unwrap();
        assert_eq!(broker.leader(), Some(old));
        let beats = nodes[&old].heartbeats();
        assert_eq!(beats.len(), 1);
        let (heard, epoch) = beats[&7];
        assert_eq!(epoch, 42);
        assert!(heard >= before && heard >= since);
        for (id, node) in &nodes {
            if *id != old {
                assert!(
                    node.heartbeats().is_empty(),
                    "follower {id} records nothing"
                );
            }
        }
        // A later heartbeat refreshes the entry in place.
        broker.heartbeat(7, 43).await.unwrap();
        let beats = nodes[&old].heartbeats();
        assert_eq!(beats.len(), 1);
        assert_eq!(beats[&7].1, 43);
        assert!(beats[&7].0 >= heard);
        assert_eq!(nodes[&old].leader_since(), Some(since), "same leadership");

        // The leader goes away; the new one knows no heartbeats until the
        // broker's next one, which the observer redirects to it.
        nodes.remove(&old).unwrap().shutdown().await;
        let new = agreed_leader(&nodes).await;
        assert_ne!(new, old);
        let new_since = nodes[&new]
            .leader_since()
            .expect("the new leader knows since when");
        assert!(new_since > since);
        for (id, node) in &nodes {
            assert_eq!(node.leader_since().is_some(), *id == new, "node {id}");
            assert!(node.heartbeats().is_empty(), "node {id} starts empty");
        }
        let deadline = Instant::now() + WAIT;
        while let Err(e) = broker.heartbeat(7, 44).await {
            assert!(Instant::now() < deadline, "heartbeat after failover: {e}");
        }
        assert_eq!(broker.leader(), Some(new));
        let beats = nodes[&new].heartbeats();
        assert_eq!(beats.len(), 1);
        assert_eq!(beats[&7].1, 44);
        assert!(beats[&7].0 >= new_since);

        // A heartbeat sent straight to a follower is refused with the hint.
        let follower = *nodes.keys().find(|id| **id != new).unwrap();
        let mut conn = crate::network::Connector::new(addrs[&follower], 1 << 20);
        let (response, _) = conn
            .call(
                follower,
                crate::wire::Request::Heartbeat {
                    node: 8,
                    broker_epoch: 1,
                },
                &[],
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert!(
            matches!(
                response,
                crate::wire::Response::Heartbeat(HeartbeatResult::NotLeader { leader: Some(l) })
                    if l == new
            ),
            "{response:?}"
        );
        // ... but recorded: a follower that becomes leader knows who it heard.
        assert_eq!(nodes[&follower].heartbeats()[&8].1, 1);

        for (_, node) in nodes {
            node.shutdown().await;
        }
    }
}
