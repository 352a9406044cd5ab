//! Cluster mode: the metadata log as a Raft quorum (samsa-quorum) instead of
//! the single node's [`LocalQuorum`](samsa_metadata::quorum::LocalQuorum).
//!
//! Enabled when `controller.quorum.voters` is set. A node whose
//! `process.roles` contains `controller` is a voter ([`RaftQuorum`] on its
//! CONTROLLER listener, state in `<data>/__cluster_metadata-0/raft`); a
//! broker-only node follows the log as an [`Observer`].
//!
//! * **Apply.** Every node feeds its controller's image only from the
//!   committed stream (a voter's [`RaftQuorum::subscribe`], an observer's
//!   [`Observer::next`]) in one task ([`follow`]), which then reconciles the
//!   partition logs.
//! * **Write.** The controller's synchronous [`MetadataQuorum`] seam is
//!   bridged by [`ClusterQuorum`]: `append_after` runs the async append on
//!   the runtime (through `block_in_place` + `Handle::block_on`, so the worker
//!   thread hands its other tasks away while it waits), on the local voter if
//!   it leads, else forwarded to the leader through an [`Observer`]; it returns
//!   only once the committed stream has applied that batch here, so the
//!   controller's own apply is a no-op and answers come from the image. A
//!   fenced append first waits until this node caught up with the batch that
//!   fenced it (the controller then re-plans). No leader → `NoLeader`
//!   (NOT_CONTROLLER), no answer in time → `Timeout` (REQUEST_TIMED_OUT).
//!   Callers that may write go through [`crate::Broker::admin`], which also
//!   runs the whole controller call (including waiting for its write mutex) in
//!   `block_in_place`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use samsa_metadata::config::StaticConfig;
use samsa_metadata::quorum::{MetadataQuorum, QuorumError as MetaError};
use samsa_metadata::{Controller, MetadataRecord, Step};
use samsa_model::BrokerId;
use samsa_quorum::{
    parse_voters, Committed, Observer, ObserverConfig, QuorumConfig, QuorumError, RaftQuorum,
    Subscription,
};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::watch;

use crate::broker::Broker;
use crate::settings::{parse_listener, SettingsError};

/// Directory (under the metadata dir) of a voter's Raft state.
pub const RAFT_DIR: &str = "raft";

/// How long a write waits for this node's image to reach its batch.
const APPLY_WAIT: Duration = Duration::from_secs(15);

/// The cluster part of the config (`controller.quorum.voters` and friends).
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub node_id: u64,
    /// `controller.quorum.voters`.
    pub voters: BTreeMap<u64, SocketAddr>,
    /// The CONTROLLER listener, when this node is a voter.
    pub controller_listen: Option<SocketAddr>,
    /// Whether `process.roles` contains `broker`.
    pub broker_role: bool,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
}

impl ClusterSettings {
    /// The cluster settings, or `None` for a single node (no
    /// `controller.quorum.voters`).
    pub fn from_config(cfg: &StaticConfig) -> Result<Option<ClusterSettings>, SettingsError> {
        let invalid = |key, reason: String| SettingsError::Invalid { key, reason };
        let Some(voters) = cfg
            .get("controller.quorum.voters")
            .filter(|v| !v.trim().is_empty())
        else {
            return Ok(None);
        };
        let voters =
            parse_voters(voters).map_err(|e| invalid("controller.quorum.voters", e.to_string()))?;
        let node_id: u64 = cfg
            .explicit("node.id")
            .or_else(|| cfg.explicit("broker.id"))
            .or_else(|| cfg.get("node.id"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| invalid("node.id", "not a non-negative number".into()))?;
        let roles: Vec<String> = cfg
            .get("process.roles")
            .unwrap_or("broker,controller")
            .split(',')
            .map(|r| r.trim().to_ascii_lowercase())
            .filter(|r| !r.is_empty())
            .collect();
        let broker_role = roles.iter().any(|r| r == "broker");
        let controller_role = roles.iter().any(|r| r == "controller");
        if !broker_role && !controller_role {
            return Err(invalid("process.roles", "names no role".into()));
        }
        let controller_listen = if controller_role {
            if !voters.contains_key(&node_id) {
                return Err(invalid(
                    "controller.quorum.voters",
                    format!("this controller (node.id {node_id}) is not one of the voters"),
                ));
            }
            let names = controller_listener_names(cfg);
            let listeners = cfg.get("listeners").unwrap_or_default();
            let mut found = None;
            for l in listeners.split(',').filter(|l| !l.trim().is_empty()) {
                let (name, host, port) = parse_listener(l).map_err(|r| invalid("listeners", r))?;
                if names.contains(&name) {
                    let host = if host.is_empty() {
                        "0.0.0.0".into()
                    } else {
                        host
                    };
                    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                        .ok()
                        .and_then(|mut a| a.next())
                        .ok_or_else(|| invalid("listeners", format!("cannot resolve {host}")))?;
                    found = Some(addr);
                    break;
                }
            }
            Some(found.ok_or_else(|| {
                invalid(
                    "listeners",
                    format!("a controller needs a listener named one of {names:?}"),
                )
            })?)
        } else {
            None
        };
        let election_timeout_ms = cfg
            .get_i64("controller.quorum.election.timeout.ms")
            .unwrap_or(1000)
            .clamp(10, 600_000) as u64;
        Ok(Some(ClusterSettings {
            node_id,
            voters,
            controller_listen,
            broker_role,
            election_timeout_ms,
        }))
    }

    /// The Raft configuration of this voter (`None` for a broker-only node).
    pub fn quorum_config(&self, data_dir: &std::path::Path) -> Option<QuorumConfig> {
        let listen = self.controller_listen?;
        let mut config = QuorumConfig::new(
            self.node_id,
            self.voters.clone(),
            listen,
            data_dir.join(crate::broker::METADATA_DIR).join(RAFT_DIR),
        );
        // Kafka's election timeout, randomized up to twice as long; leaders
        // heartbeat five times per timeout.
        let min = self.election_timeout_ms.max(50);
        config.election_timeout_ms_min = min;
        config.election_timeout_ms_max = min * 2;
        config.heartbeat_interval_ms = (min / 5).max(10);
        Some(config)
    }
}

/// `controller.listener.names`, `CONTROLLER` when unset.
pub fn controller_listener_names(cfg: &StaticConfig) -> Vec<String> {
    let names: Vec<String> = cfg
        .get("controller.listener.names")
        .unwrap_or_default()
        .split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        vec!["CONTROLLER".into()]
    } else {
        names
    }
}

/// What the broker keeps of the running quorum.
pub struct ClusterState {
    pub settings: ClusterSettings,
    handle: Handle,
    /// This node's voter, if it is one.
    pub raft: Option<Arc<RaftQuorum>>,
    /// Forwards appends to the leader.
    forwarder: tokio::sync::Mutex<Observer>,
    /// The last batch the committed stream applied to this node's image.
    applied: watch::Receiver<Option<u64>>,
    /// The leader an observer last heard of (-1: none).
    observed_leader: AtomicI64,
    /// Set once this node is shutting down: metadata writes still waiting
    /// (for the leader, for the commit or for the local apply) give up at
    /// once instead of holding the write path until their own timeouts.
    closing: watch::Sender<bool>,
}

impl ClusterState {
    /// Starts the quorum side of this node: the voter (if any) and the
    /// forwarder. Returns the state, the committed stream to follow and the
    /// sender [`follow`] publishes applied batches on.
    pub async fn start(
        settings: ClusterSettings,
        data_dir: &std::path::Path,
    ) -> Result<(Arc<ClusterState>, Source, watch::Sender<Option<u64>>), QuorumError> {
        let raft = match settings.quorum_config(data_dir) {
            Some(config) => Some(Arc::new(RaftQuorum::start(config).await?)),
            None => None,
        };
        let source = match &raft {
            Some(r) => Source::Voter(r.subscribe()),
            None => Source::Observer(Box::new(Observer::new(ObserverConfig::new(
                settings.voters.clone(),
            ))?)),
        };
        let forwarder = Observer::new(ObserverConfig::new(settings.voters.clone()))?;
        let (applied_tx, applied) = watch::channel(None);
        let state = Arc::new(ClusterState {
            settings,
            handle: Handle::current(),
            raft,
            forwarder: tokio::sync::Mutex::new(forwarder),
            applied,
            observed_leader: AtomicI64::new(-1),
            closing: watch::Sender::new(false),
        });
        Ok((state, source, applied_tx))
    }

    /// The current quorum leader, if known.
    pub fn leader(&self) -> Option<u64> {
        match &self.raft {
            Some(r) => r.leader(),
            None => u64::try_from(self.observed_leader.load(Ordering::Relaxed)).ok(),
        }
    }

    /// Runs `fut` to completion from synchronous code without stalling the
    /// runtime's worker threads. A current-thread runtime cannot do that (its
    /// one thread would wait for itself): refused.
    fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, MetaError> {
        match Handle::try_current() {
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
                Ok(tokio::task::block_in_place(|| self.handle.block_on(fut)))
            }
            Ok(_) => Err(MetaError::Failed(
                "cluster metadata writes need the multi-threaded runtime".into(),
            )),
            Err(_) => Ok(self.handle.block_on(fut)),
        }
    }

    /// Runs `f` (which may block on a metadata write) so that it does not
    /// stall a runtime worker.
    pub(crate) fn blocking<T>(&self, f: impl FnOnce() -> T) -> T {
        off_worker(f)
    }

    /// Makes every metadata write of this node that is still waiting, and
    /// every later one, fail at once with a timeout (the write may still
    /// commit; this node just stops waiting for it). Called when the node
    /// shuts down, after its controlled shutdown.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    async fn wait_applied(&self, index: u64) -> Result<(), MetaError> {
        let mut rx = self.applied.clone();
        let reached = tokio::time::timeout(APPLY_WAIT, async {
            rx.wait_for(|a| a.is_some_and(|a| a >= index)).await.is_ok()
        })
        .await;
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => Err(MetaError::Failed("the metadata follower stopped".into())),
            Err(_) => Err(MetaError::Timeout(format!(
                "batch {index} was committed but not applied here within {} ms",
                APPLY_WAIT.as_millis()
            ))),
        }
    }

    async fn append_after(
        &self,
        after: Option<u64>,
        records: Vec<MetadataRecord>,
    ) -> Result<u64, MetaError> {
        let mut closing = self.closing.subscribe();
        tokio::select! {
            result = self.append_and_apply(after, records) => result,
            _ = closing.wait_for(|c| *c) => Err(MetaError::Timeout(
                "this node is shutting down; the write may still commit".into(),
            )),
        }
    }

    async fn append_and_apply(
        &self,
        after: Option<u64>,
        records: Vec<MetadataRecord>,
    ) -> Result<u64, MetaError> {
        let local = match &self.raft {
            Some(r) if r.is_leader() => Some(r.append_after(after, records.clone()).await),
            _ => None,
        };
        let result = match local {
            Some(Err(QuorumError::NotLeader { .. })) | None => {
                self.forwarder
                    .lock()
                    .await
                    .append_after(after, records)
                    .await
            }
            Some(other) => other,
        };
        match result {
            Ok(index) => {
                self.wait_applied(index).await?;
                Ok(index)
            }
            Err(QuorumError::Fenced { last_batch }) => {
                if let Some(actual) = last_batch {
                    self.wait_applied(actual).await?;
                }
                Err(MetaError::Fenced {
                    expected: after,
                    actual: last_batch,
                })
            }
            Err(e @ (QuorumError::NotLeader { .. } | QuorumError::Network(_))) => {
                Err(MetaError::NoLeader(e.to_string()))
            }
            Err(e @ QuorumError::Timeout { .. }) => Err(MetaError::Timeout(e.to_string())),
            Err(e) => Err(MetaError::Failed(e.to_string())),
        }
    }
}

/// The controller's [`MetadataQuorum`] in cluster mode.
pub struct ClusterQuorum(pub Arc<ClusterState>);

impl MetadataQuorum for ClusterQuorum {
    fn last_batch(&self) -> Option<u64> {
        *self.0.applied.borrow()
    }

    fn append_after(
        &mut self,
        after: Option<u64>,
        records: &[MetadataRecord],
    ) -> Result<u64, MetaError> {
        let state = self.0.clone();
        let records = records.to_vec();
        self.0.block_on(state.append_after(after, records))?
    }
}

/// Where this node reads the committed metadata log from.
pub enum Source {
    Voter(Subscription),
    Observer(Box<Observer>),
}

/// Applies the committed stream to `broker`'s image, publishes the applied
/// batch on `applied`, and reconciles the partition logs after each step.
/// Runs until the quorum shuts down.
pub async fn follow(broker: Arc<Broker>, mut source: Source, applied: watch::Sender<Option<u64>>) {
    loop {
        let Some(step) = next_step(&mut source).await else {
            return;
        };
        if let (Some(state), Source::Observer(o)) = (&broker.cluster, &source) {
            if let Some(l) = o.leader() {
                state.observed_leader.store(l as i64, Ordering::Relaxed);
            }
        }
        broker.controller.apply(step);
        applied.send_replace(broker.controller.last_batch());
        if let Err(e) = broker.reconcile() {
            tracing::error!(error = %e, "reconciling logs with the committed metadata");
        }
        crate::cordon::sync_in_background(&broker);
    }
}

fn config_ms(broker: &Broker, key: &str, default: i64) -> u64 {
    broker
        .config()
        .get_i64(key)
        .unwrap_or(default)
        .clamp(1, 86_400_000) as u64
}

/// Sends this broker's heartbeat to every voter every
/// `broker.heartbeat.interval.ms` (KRaft's BrokerHeartbeat), until shutdown
/// or a controlled shutdown began. Every voter records it, so a newly
/// elected controller already knows which brokers fell silent.
pub async fn heartbeat(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    let Some(state) = broker.cluster.clone() else {
        return;
    };
    for (id, addr) in state.settings.voters.clone() {
        let one = BTreeMap::from([(id, addr)]);
        match Observer::new(ObserverConfig::new(one)) {
            Ok(o) => {
                tokio::spawn(heartbeat_to(
                    broker.clone(),
                    state.clone(),
                    o,
                    shutdown.clone(),
                ));
            }
            Err(e) => tracing::error!(voter = id, error = %e, "cannot start a heartbeat sender"),
        }
    }
}

async fn heartbeat_to(
    broker: Arc<Broker>,
    state: Arc<ClusterState>,
    mut observer: Observer,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let every = Duration::from_millis(config_ms(&broker, "broker.heartbeat.interval.ms", 2000));
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if broker.shutting_down.load(Ordering::Relaxed) {
            continue;
        }
        let node = state.settings.node_id;
        let epoch = broker.broker_epoch.load(Ordering::Relaxed);
        match tokio::time::timeout(
            every.max(Duration::from_millis(500)),
            observer.heartbeat(node, epoch),
        )
        .await
        {
            // A voter that does not lead answers NotLeader after recording it.
            Ok(Ok(()) | Err(QuorumError::NotLeader { .. })) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "heartbeat not delivered"),
            Err(_) => tracing::debug!("heartbeat timed out"),
        }
    }
}

/// On the active controller: fences brokers whose heartbeats stopped for
/// `broker.session.timeout.ms` (their partitions get new leaders from the
/// ISR), unfences fenced brokers that heartbeat again with their current
/// broker epoch, and moves leadership back to preferred replicas every
/// `leader.imbalance.check.interval.seconds` when
/// `auto.leader.rebalance.enable` is set.
pub async fn liveness<H: ControllerHost>(host: Arc<H>, mut shutdown: watch::Receiver<bool>) {
    let Some(raft) = host.cluster().and_then(|c| c.raft.clone()) else {
        return;
    };
    // When this controller first saw each broker fenced: only heartbeats
    // sent after that unfence it (a broker in controlled shutdown stopped
    // heartbeating before it asked to be fenced).
    let mut fenced_seen: HashMap<BrokerId, std::time::Instant> = HashMap::new();
    let mut last_rebalance = std::time::Instant::now();
    let mut last_tick = std::time::Instant::now();
    // When this controller last resumed from a stall of its own.
    let mut resumed = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(LIVENESS_CHECK) => {}
        }
        let session = Duration::from_millis(
            host.config()
                .get_i64("broker.session.timeout.ms")
                .unwrap_or(9000)
                .clamp(1, 86_400_000) as u64,
        );
        // A tick far later than scheduled means this process itself stood
        // still (SIGSTOP, a VM pause, swapping): heartbeats look old only
        // because nobody was here to receive them, and this node may not even
        // lead any more. Every broker gets a whole session from now.
        let tick = std::time::Instant::now();
        if tick.duration_since(last_tick) > LIVENESS_CHECK + session / 2 {
            resumed = tick;
        }
        last_tick = tick;
        let (true, Some(since)) = (raft.is_leader(), raft.leader_since()) else {
            fenced_seen.clear();
            last_rebalance = std::time::Instant::now();
            continue;
        };
        let beats = raft.heartbeats();
        let image = host.controller().image();
        let now = std::time::Instant::now();
        for b in image.brokers.values() {
            let Ok(node) = u64::try_from(b.id.get()) else {
                continue;
            };
            let beat = beats
                .get(&node)
                .filter(|(_, epoch)| *epoch == b.epoch)
                .map(|(t, _)| *t);
            let action = if b.fenced {
                let seen = *fenced_seen.entry(b.id).or_insert(now);
                beat.filter(|t| *t > seen && now.duration_since(*t) < session)
                    .map(|_| Liveness::Unfence(b.epoch))
            } else {
                fenced_seen.remove(&b.id);
                // Never heard by this voter: a grace period from its election.
                let last = beat.unwrap_or(since).max(resumed);
                (now.duration_since(last) > session && raft.is_leader()).then_some(Liveness::Fence)
            };
            let Some(action) = action else { continue };
            let id = b.id;
            let bk = host.clone();
            let result = tokio::task::spawn_blocking(move || match action {
                Liveness::Fence => bk.admin(|c: &Controller| c.fence_broker(id)),
                Liveness::Unfence(epoch) => bk.admin(|c: &Controller| c.unfence_broker(id, epoch)),
            })
            .await;
            match result {
                Ok(Ok(partitions)) => {
                    tracing::info!(
                        broker = id.get(),
                        ?action,
                        partitions = partitions.len(),
                        "broker liveness changed"
                    )
                }
                Ok(Err(e)) => {
                    tracing::info!(broker = id.get(), ?action, error = %e, "liveness change refused")
                }
                Err(e) => tracing::error!(error = %e, "liveness task failed"),
            }
        }
        let cfg = host.config();
        let every = Duration::from_secs(
            cfg.get_i64("leader.imbalance.check.interval.seconds")
                .unwrap_or(300)
                .clamp(1, 86_400) as u64,
        );
        if cfg.get_bool("auto.leader.rebalance.enable") && last_rebalance.elapsed() >= every {
            last_rebalance = std::time::Instant::now();
            if !samsa_metadata::plan::imbalanced_partitions(&image).is_empty() {
                let bk = host.clone();
                let result = tokio::task::spawn_blocking(move || {
                    bk.admin(|c: &Controller| {
                        c.elect_leaders(samsa_metadata::ElectionType::Preferred, None)
                    })
                })
                .await;
                if let Ok(Ok(results)) = result {
                    let moved = results.iter().filter(|r| r.result.is_ok()).count();
                    tracing::info!(moved, "automatic preferred leader election");
                }
            }
        }
    }
}

/// What the controller tasks need from the process they run in: a broker
/// (combined mode) or a controller-only node ([`ControllerNode`]).
pub trait ControllerHost: Send + Sync + 'static {
    fn controller(&self) -> &Controller;
    fn cluster(&self) -> Option<&Arc<ClusterState>>;
    fn config(&self) -> Arc<StaticConfig>;
    /// Runs a controller operation that may write metadata (blocking on the
    /// quorum without stalling the runtime).
    fn admin<T>(&self, f: impl FnOnce(&Controller) -> T) -> T {
        match self.cluster() {
            Some(c) => c.blocking(|| f(self.controller())),
            None => f(self.controller()),
        }
    }
}

/// A `process.roles=controller` node: a Raft voter with its own image of
/// the metadata (no partitions, no clients), which runs the active
/// controller's liveness task when it leads.
pub struct ControllerNode {
    cluster: Arc<ClusterState>,
    controller: Controller,
    config: Arc<StaticConfig>,
}

impl ControllerHost for ControllerNode {
    fn controller(&self) -> &Controller {
        &self.controller
    }
    fn cluster(&self) -> Option<&Arc<ClusterState>> {
        Some(&self.cluster)
    }
    fn config(&self) -> Arc<StaticConfig> {
        self.config.clone()
    }
}

impl ControllerNode {
    /// Starts the voter, follows the committed log into the image and runs
    /// the liveness task until `shutdown`.
    pub async fn start(
        settings: ClusterSettings,
        data_dir: &std::path::Path,
        config: Arc<StaticConfig>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<ControllerNode>, QuorumError> {
        let (cluster, mut source, applied) = ClusterState::start(settings, data_dir).await?;
        let controller = Controller::new(Box::new(ClusterQuorum(cluster.clone())), config.clone());
        let node = Arc::new(ControllerNode {
            cluster,
            controller,
            config,
        });
        let follower = node.clone();
        tokio::spawn(async move {
            loop {
                let Some(step) = next_step(&mut source).await else {
                    return;
                };
                follower.controller.apply(step);
                applied.send_replace(follower.controller.last_batch());
            }
        });
        let mut closing = shutdown.clone();
        let cluster = node.cluster.clone();
        tokio::spawn(async move {
            let _ = closing.wait_for(|s| *s).await;
            cluster.close();
        });
        tokio::spawn(liveness(node.clone(), shutdown));
        Ok(node)
    }

    /// The node's voter address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.cluster.raft.as_ref().map(|r| r.local_addr())
    }
}

/// The next committed step from `source` (None once the quorum shut down).
async fn next_step(source: &mut Source) -> Option<Step> {
    loop {
        let step = match source {
            Source::Voter(s) => s.next().await,
            Source::Observer(o) => o.next().await,
        };
        return match step {
            Ok(Committed::Batch(b)) => Some(Step::Batch {
                index: b.index,
                records: b.records,
            }),
            Ok(Committed::Snapshot(s)) => Some(Step::Reset {
                image: Box::new(s.to_image()),
                last_batch: s.last_batch,
            }),
            Err(QuorumError::Shutdown(_)) => None,
            Err(e) => {
                tracing::warn!(error = %e, "reading the committed metadata log");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
    }
}

impl ControllerHost for Broker {
    fn controller(&self) -> &Controller {
        &self.controller
    }
    fn cluster(&self) -> Option<&Arc<ClusterState>> {
        self.cluster.as_ref()
    }
    fn config(&self) -> Arc<StaticConfig> {
        Broker::config(self)
    }
}

/// How often the active controller checks broker liveness.
const LIVENESS_CHECK: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug)]
enum Liveness {
    Fence,
    Unfence(i64),
}

/// Controlled shutdown (SIGTERM): stop heartbeating, then ask the controller
/// to move this broker's leaderships to other in-sync replicas and fence it,
/// retrying for up to `CONTROLLED_SHUTDOWN_WAIT`. Returns whether the
/// controller confirmed.
pub async fn controlled_shutdown(broker: &Arc<Broker>) -> bool {
    broker.shutting_down.store(true, Ordering::Relaxed);
    if broker.cluster.is_none() || !broker.config().get_bool("controlled.shutdown.enable") {
        return false;
    }
    let deadline = tokio::time::Instant::now() + CONTROLLED_SHUTDOWN_WAIT;
    loop {
        let bk = broker.clone();
        let me = broker.settings.node_id;
        // The attempt may queue behind another metadata write of this node
        // (which waits up to its own timeouts): the deadline bounds the wait,
        // and `ClusterState::close` afterwards releases whatever still waits.
        let attempt = tokio::task::spawn_blocking(move || bk.admin(|c| c.controlled_shutdown(me)));
        let Ok(result) = tokio::time::timeout_at(deadline, attempt).await else {
            tracing::warn!("controlled shutdown did not complete in time; shutting down anyway");
            return false;
        };
        match result {
            Ok(Ok(still_led)) => {
                tracing::info!(
                    still_led = still_led.len(),
                    "controlled shutdown: leadership moved"
                );
                return true;
            }
            Ok(Err(e)) => tracing::info!(error = %e, "controlled shutdown refused; retrying"),
            Err(e) => tracing::error!(error = %e, "controlled shutdown task failed"),
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("controlled shutdown did not complete; shutting down anyway");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// How long a controlled shutdown keeps asking the controller (when the
/// whole cluster stops, the last brokers find no quorum and give up).
const CONTROLLED_SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Runs `f`, which may block on disk or on a quorum write, without stalling
/// the runtime worker it is called on: `block_in_place` on a multi-thread
/// runtime (the worker's other tasks move elsewhere meanwhile), in place
/// anywhere else.
pub(crate) fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> StaticConfig {
        let mut c = StaticConfig::default();
        for (k, v) in pairs {
            c.set(k, v).unwrap();
        }
        c
    }

    #[test]
    fn single_node_without_voters() {
        assert!(ClusterSettings::from_config(&StaticConfig::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn kraft_style_properties_resolve() {
        let base = [
            ("node.id", "2"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
            ),
            ("controller.listener.names", "CONTROLLER"),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:9093,2@127.0.0.1:19093,3@127.0.0.1:9095",
            ),
        ];
        let c = ClusterSettings::from_config(&cfg(&base)).unwrap().unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.voters.len(), 3);
        assert!(c.broker_role);
        assert_eq!(c.controller_listen.unwrap().port(), 19093);
        let q = c.quorum_config(std::path::Path::new("/data")).unwrap();
        assert_eq!(
            q.dir,
            std::path::Path::new("/data/__cluster_metadata-0/raft")
        );
        // The client listener is not the controller's.
        let s = crate::BrokerSettings::from_config(&cfg(&base)).unwrap();
        assert_eq!(s.listen.port(), 19092);

        let mut broker_only = base.to_vec();
        broker_only.push(("process.roles", "broker"));
        broker_only[0] = ("node.id", "7");
        let c = ClusterSettings::from_config(&cfg(&broker_only))
            .unwrap()
            .unwrap();
        assert!(c.controller_listen.is_none() && c.broker_role);
        assert!(c.quorum_config(std::path::Path::new("/d")).is_none());

        // A controller must be a voter and have a CONTROLLER listener.
        let mut stranger = base.to_vec();
        stranger[0] = ("node.id", "9");
        assert!(ClusterSettings::from_config(&cfg(&stranger)).is_err());
        let mut no_listener = base.to_vec();
        no_listener[1] = ("listeners", "PLAINTEXT://127.0.0.1:19092");
        assert!(ClusterSettings::from_config(&cfg(&no_listener)).is_err());
    }
}
