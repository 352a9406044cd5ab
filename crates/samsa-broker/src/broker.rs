//! The broker's shared state: the controller and its published image, the
//! partitions hosted here, and the signal that wakes parked fetches.
//!
//! Metadata drives storage: after every committed metadata change the broker
//! reconciles its partition logs with the new image (open logs for new
//! partitions, delete logs of removed topics, push config changes to open logs).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, Mutex, RwLock};

use samsa_metadata::config::StaticConfig;
use samsa_metadata::quorum::LocalQuorum;
use samsa_metadata::{
    BrokerRegistration, Controller, ControllerError, Endpoint, MetadataImage, NewTopic,
    PartitionImage, TopicImage,
};
use samsa_model::{BrokerId, PartitionIndex, TopicId};
use samsa_storage::PartitionLog;

use crate::cluster::{ClusterQuorum, ClusterSettings, ClusterState};
use crate::fetch_session::FetchSessionCache;
use crate::image_diff::ImageDiff;
use crate::partition::{Partition, RoleChange, TopicSettings};
use crate::purgatory::{PartitionKey, Purgatory, Watch};
use crate::settings::BrokerSettings;

/// Directory (under the data dir) of the metadata log.
pub const METADATA_DIR: &str = "__cluster_metadata-0";
/// File in each partition directory naming its topic id (Kafka's layout:
/// `version: 0` and `topic_id: <base64 uuid>` lines; samsa writes the UUID in its
/// hyphenated form). Written once when the directory is created.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// Startup failures.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata: {0}")]
    Metadata(#[from] ControllerError),
    #[error("metadata log: {0}")]
    Quorum(#[from] samsa_metadata::quorum::QuorumError),
    #[error("metadata quorum: {0}")]
    Raft(#[from] samsa_quorum::QuorumError),
    /// Another process (or broker) holds the data directory's `.lock`.
    #[error("data directory {} is in use by another samsa process (it holds {}/.lock); stop that process or give this one another directory", dir.display(), dir.display())]
    Locked { dir: PathBuf },
    /// The log directories cannot be used as configured.
    #[error("log.dirs: {0}")]
    LogDirs(String),
    #[error("partition {dir}: {source}")]
    Storage {
        dir: PathBuf,
        #[source]
        source: samsa_storage::StorageError,
    },
}

/// Everything request handlers share.
pub struct Broker {
    pub settings: BrokerSettings,
    /// `server.properties` + `--set`, as started.
    static_config: Arc<StaticConfig>,
    /// The static config with the dynamic broker configs of the image laid over
    /// it; recomputed on every reconcile.
    effective_config: RwLock<Arc<StaticConfig>>,
    pub controller: Controller,
    partitions: RwLock<HashMap<PartitionKey, Arc<Partition>>>,
    /// Serializes reconciles; holds the image last reconciled.
    reconcile_lock: Mutex<Option<Arc<MetadataImage>>>,
    /// Fetches parked for `min_bytes`, by partition.
    delayed_fetches: Arc<Purgatory>,
    pub fetch_sessions: FetchSessionCache,
    /// The group coordinator.
    pub groups: Arc<crate::groups::GroupService>,
    /// The transaction coordinator.
    pub transactions: Arc<crate::transactions::TxnService>,
    /// This broker's current block of producer ids: (next, end). Held only
    /// to take an id or install a new block, never across the allocation.
    producer_ids: Mutex<(i64, i64)>,
    /// Serializes block allocations (an async lock: waiters park, they do
    /// not block a runtime worker).
    producer_id_allocation: tokio::sync::Mutex<()>,
    /// The Raft metadata quorum, in cluster mode (`controller.quorum.voters`).
    pub cluster: Option<Arc<ClusterState>>,
    /// acks=all produces and coordinator replies waiting for a high
    /// watermark, by partition.
    delayed_produces: Arc<Purgatory>,
    /// Replicas moving to another log directory (AlterReplicaLogDirs).
    pub moves: Arc<crate::log_mover::Moves>,
    /// Wakes the replica manager after a role change.
    pub roles_changed: tokio::sync::Notify,
    /// Counts role changes; each replica fetcher watches it (a `watch`, not
    /// the `Notify` above, so that fetchers never take the permit that the
    /// replica manager's loop relies on).
    pub roles_version: tokio::sync::watch::Sender<u64>,
    /// Leaders a replica fetcher task is running for.
    fetchers: Mutex<HashSet<BrokerId>>,
    /// ISR changes waiting to be sent to the controller, in batches.
    pub alter_isr: crate::alter_isr::AlterIsr,
    /// This broker's epoch from its registration (cluster mode).
    pub broker_epoch: AtomicI64,
    /// Set by a controlled shutdown: heartbeats stop so the broker stays fenced.
    pub shutting_down: AtomicBool,
    /// The log directories (locked while the broker lives) and which one
    /// holds each partition.
    pub log_dirs: crate::log_dirs::LogDirs,
    /// A background registration of the cordoned log directories is
    /// running ([`crate::cordon::sync_in_background`]): at most one at a time.
    pub(crate) cordon_sync_running: AtomicBool,
    /// A background report of the log directories to the controller is
    /// running ([`crate::dir_report::report_in_background`]).
    pub(crate) dir_report_running: AtomicBool,
    /// The Prometheus metrics (`/metrics` on the HTTP listener).
    pub metrics: Arc<samsa_metrics::Metrics>,
    /// `authorizer.class.name`: `None` lets every request through (as Kafka
    /// without an authorizer). A configuration `samsa serve` would refuse
    /// gives an authorizer that allows nothing (fail closed).
    pub authorizer: Option<samsa_security::Authorizer>,
}

/// Producer ids taken from the controller at a time.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

impl Broker {
    /// Opens the data directory: replays the metadata log, registers this broker,
    /// opens (and recovers) every partition log, and removes stale directories.
    pub fn open(
        settings: BrokerSettings,
        config: Arc<StaticConfig>,
    ) -> Result<Arc<Broker>, BrokerError> {
        let dir = settings.data_dir.clone();
        let log_dirs = crate::log_dirs::LogDirs::open(&settings.log_dirs, &dir, settings.node_id)?;
        crate::log_mover::recover_swaps(&settings.log_dirs);
        let (quorum, records) = LocalQuorum::open(&dir.join(METADATA_DIR))?;
        let controller = Controller::open(Box::new(quorum), records, config.clone())?;
        let effective =
            config.with_dynamic(&controller.image().dynamic_broker_configs(settings.node_id));
        let reg = registration_of(&settings, &log_dirs, &effective, false);
        let epoch = controller.register_broker(reg)?;
        let broker = Broker::new(settings, config, controller, None, log_dirs);
        broker
            .broker_epoch
            .store(epoch, std::sync::atomic::Ordering::Relaxed);
        broker.remove_stale_dirs()?;
        broker.reconcile()?;
        broker.groups.load(&broker);
        broker.moves.ensure_thread(&broker);
        Ok(broker)
    }

    pub(crate) fn new(
        settings: BrokerSettings,
        config: Arc<StaticConfig>,
        controller: Controller,
        cluster: Option<Arc<ClusterState>>,
        log_dirs: crate::log_dirs::LogDirs,
    ) -> Arc<Broker> {
        let config_for_groups = config.clone();
        let authorizer = samsa_security::Authorizer::from_config(&config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "bad authorizer settings: every request is denied");
            Some(samsa_security::Authorizer::new(&[], false))
        });
        Arc::new_cyclic(|me: &std::sync::Weak<Broker>| Broker {
            settings,
            effective_config: RwLock::new(config.clone()),
            static_config: config,
            controller,
            partitions: RwLock::new(HashMap::new()),
            reconcile_lock: Mutex::new(None),
            delayed_fetches: Arc::new(Purgatory::default()),
            fetch_sessions: FetchSessionCache::new(1000),
            producer_ids: Mutex::new((0, 0)),
            producer_id_allocation: tokio::sync::Mutex::new(()),
            groups: Arc::new(crate::groups::GroupService::new(
                &config_for_groups,
                crate::groups::image_group_configs(me.clone()),
            )),
            transactions: Arc::new(crate::transactions::TxnService::new(
                &config_for_groups,
                me.clone(),
            )),
            cluster,
            delayed_produces: Arc::new(Purgatory::default()),
            roles_changed: tokio::sync::Notify::new(),
            roles_version: tokio::sync::watch::Sender::new(0),
            fetchers: Mutex::new(HashSet::new()),
            alter_isr: Default::default(),
            broker_epoch: AtomicI64::new(0),
            shutting_down: AtomicBool::new(false),
            log_dirs,
            cordon_sync_running: AtomicBool::new(false),
            dir_report_running: AtomicBool::new(false),
            metrics: Arc::new(samsa_metrics::Metrics::new()),
            moves: Default::default(),
            authorizer,
        })
    }

    /// Opens one node of a cluster whose metadata is a Raft quorum (see
    /// [`crate::cluster`]): starts the voter (or observer), follows the
    /// committed log, and waits until this broker has registered itself
    /// through the quorum leader (retrying while there is none). Only then —
    /// the image having caught up with the log — are stale partition
    /// directories removed and the group coordinator loaded.
    pub async fn open_cluster(
        settings: BrokerSettings,
        config: Arc<StaticConfig>,
        cluster: ClusterSettings,
    ) -> Result<Arc<Broker>, BrokerError> {
        let dir = settings.data_dir.clone();
        let log_dirs = crate::log_dirs::LogDirs::open(&settings.log_dirs, &dir, settings.node_id)?;
        crate::log_mover::recover_swaps(&settings.log_dirs);
        let (state, source, applied) = ClusterState::start(cluster, &dir).await?;
        let controller = Controller::new(Box::new(ClusterQuorum(state.clone())), config.clone());
        let broker = Broker::new(settings, config, controller, Some(state.clone()), log_dirs);
        tokio::spawn(crate::cluster::follow(broker.clone(), source, applied));
        let mut attempt = 0u32;
        // Cordoned directories from dynamic configs the image does not hold
        // yet are registered later ([`crate::cordon`]), once it does.
        let reg = registration(&broker, true);
        loop {
            attempt += 1;
            let b = broker.clone();
            let reg = reg.clone();
            let result = tokio::task::spawn_blocking(move || {
                b.controller.init_cluster()?;
                b.controller.register_broker(reg)
            })
            .await;
            match result {
                Ok(Ok(epoch)) => {
                    broker
                        .broker_epoch
                        .store(epoch, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
                Ok(Err(e)) => {
                    if attempt % 10 == 1 {
                        tracing::info!(error = %e, leader = ?state.leader(), "waiting for the metadata quorum to register this broker");
                    }
                }
                Err(e) => tracing::error!(error = %e, "registration task failed"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        tracing::info!(leader = ?state.leader(), last_batch = ?broker.controller.last_batch(), "registered with the metadata quorum");
        broker.remove_stale_dirs()?;
        broker.reconcile()?;
        broker.groups.load(&broker);
        broker.moves.ensure_thread(&broker);
        Ok(broker)
    }

    /// Runs a controller operation that may write metadata. In cluster mode
    /// the write waits on the Raft quorum, so the call runs where it may block
    /// (see [`crate::cluster`]); a single node commits locally.
    pub fn admin<T>(&self, f: impl FnOnce(&Controller) -> T) -> T {
        // A single node's controller writes (and fsyncs) its local metadata
        // log under the controller's lock: never on a runtime worker.
        match &self.cluster {
            Some(c) => c.blocking(|| f(&self.controller)),
            None => crate::cluster::off_worker(|| f(&self.controller)),
        }
    }

    /// The controller id given to clients: the Raft leader in cluster mode
    /// when it is also a live broker (-1 while there is no leader); when the
    /// active controller is a controller-only node, which clients cannot
    /// reach, this broker (it forwards admin writes, as KRaft brokers do).
    pub fn controller_id(&self) -> i32 {
        match &self.cluster {
            Some(c) => match c.leader().and_then(|l| i32::try_from(l).ok()) {
                None => -1,
                Some(l) if self.image().is_live(BrokerId(l)) => l,
                Some(_) => self.settings.node_id.get(),
            },
            None => self.settings.node_id.get(),
        }
    }

    /// A producer id never handed out before. Ids come from blocks of
    /// [`PRODUCER_ID_BLOCK`] the controller allocates through the metadata
    /// log (as Kafka's brokers take blocks from the controller); a new block
    /// is allocated on a blocking thread, one allocation at a time, while
    /// other callers wait without holding a lock or a runtime worker.
    pub async fn next_producer_id(self: &Arc<Self>) -> Result<i64, ControllerError> {
        loop {
            if let Some(id) = self.take_producer_id() {
                return Ok(id);
            }
            let _allocating = self.producer_id_allocation.lock().await;
            // Another caller may have installed a block meanwhile.
            if let Some(id) = self.take_producer_id() {
                return Ok(id);
            }
            let broker = self.clone();
            let start = tokio::task::spawn_blocking(move || {
                broker
                    .admin(|c| c.allocate_producer_ids(broker.settings.node_id, PRODUCER_ID_BLOCK))
            })
            .await
            .map_err(|e| {
                ControllerError::Quorum(samsa_metadata::quorum::QuorumError::Failed(format!(
                    "producer id allocation task failed: {e}"
                )))
            })??;
            *lock(&self.producer_ids) = (start, start + PRODUCER_ID_BLOCK);
        }
    }

    fn take_producer_id(&self) -> Option<i64> {
        let mut block = lock(&self.producer_ids);
        (block.0 < block.1).then(|| {
            block.0 += 1;
            block.0 - 1
        })
    }

    /// The broker config in force: static values with dynamic ones over them.
    pub fn config(&self) -> Arc<StaticConfig> {
        match self.effective_config.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.controller.image()
    }

    /// The partition `index` of topic `topic_id`, if hosted here.
    pub fn partition(&self, topic_id: TopicId, index: i32) -> Option<Arc<Partition>> {
        let map = match self.partitions.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        map.get(&(topic_id, index)).cloned()
    }

    /// Partition `index` of the topic named `topic` in `image`, if hosted here.
    pub fn partition_named(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
    ) -> Option<Arc<Partition>> {
        image.topic(topic).and_then(|t| self.partition(t.id, index))
    }

    /// Every hosted partition.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        let map = match self.partitions.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        map.values().cloned().collect()
    }

    /// Wakes the fetches parked on `part` after an append to it.
    pub fn notify_data(&self, part: &Partition) {
        self.delayed_fetches.wake((part.topic_id, part.index.get()));
    }

    /// Wakes what waits on `part`'s replication: its high watermark moved,
    /// or its role or ISR changed. Parked fetches are woken too (consumers
    /// read up to the high watermark).
    pub fn notify_hw(&self, part: &Partition) {
        let key = (part.topic_id, part.index.get());
        self.delayed_produces.wake(key);
        self.delayed_fetches.wake(key);
    }

    /// A watch for a fetch parked on `partitions` (see [`crate::purgatory`]).
    pub fn fetch_watch(&self, partitions: impl IntoIterator<Item = PartitionKey>) -> Watch {
        self.delayed_fetches.watch(partitions)
    }

    /// A watch for waiters on the replication of `partitions`: woken by
    /// [`Broker::notify_hw`] on any of them. Take it before checking.
    pub fn hw_watch<'a>(&self, partitions: impl IntoIterator<Item = &'a Arc<Partition>>) -> Watch {
        self.delayed_produces
            .watch(partitions.into_iter().map(|p| (p.topic_id, p.index.get())))
    }

    /// The purgatories of parked fetches and of replication waiters.
    pub fn purgatories(&self) -> (&Purgatory, &Purgatory) {
        (&self.delayed_fetches, &self.delayed_produces)
    }

    /// The set of leaders with a running replica fetcher.
    pub(crate) fn fetchers(&self) -> std::sync::MutexGuard<'_, HashSet<BrokerId>> {
        match self.fetchers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The directory of a hosted partition (in whichever log directory
    /// holds it).
    pub fn partition_dir(&self, part: &Partition) -> Option<PathBuf> {
        self.log_dirs
            .partition_dir((part.topic_id, part.index.get()), &part.topic)
    }

    /// Creates topics with broker defaults (auto-creation), returning those that
    /// now exist.
    pub fn auto_create(&self, names: &[String]) -> Vec<Result<Arc<TopicImage>, ControllerError>> {
        // Internal topics are created by their coordinators with their own
        // settings, never by auto-creation (as in Kafka).
        let topics = names
            .iter()
            .filter(|n| !is_internal_topic(n))
            .map(|n| NewTopic {
                name: n.clone(),
                num_partitions: -1,
                replication_factor: -1,
                ..Default::default()
            })
            .collect();
        let mut results = self.admin(|c| c.create_topics(topics, false)).into_iter();
        if let Err(e) = self.reconcile() {
            tracing::error!(error = %e, "reconciling logs after auto-creation failed");
        }
        names
            .iter()
            .map(|n| {
                if is_internal_topic(n) {
                    Err(ControllerError::UnknownTopic)
                } else {
                    results.next().unwrap_or(Err(ControllerError::UnknownTopic))
                }
            })
            .collect()
    }

    /// Brings hosted partition logs in line with the current image: only
    /// the partitions that changed since the last reconcile
    /// ([`crate::image_diff`]). It opens logs (recovery) and renames
    /// directories, so on a multi-threaded runtime's worker it runs in
    /// `block_in_place`: the worker's other tasks move to another thread
    /// instead of waiting behind it.
    pub fn reconcile(&self) -> Result<(), BrokerError> {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.reconcile_changes())
            }
            _ => self.reconcile_changes(),
        }
    }

    fn reconcile_changes(&self) -> Result<(), BrokerError> {
        let mut last = lock(&self.reconcile_lock);
        let image = self.image();
        if last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &image)) {
            return Ok(());
        }
        let me = self.settings.node_id;
        let config = Arc::new(
            self.static_config
                .with_dynamic(&image.dynamic_broker_configs(me)),
        );
        match self.effective_config.write() {
            Ok(mut g) => *g = config.clone(),
            Err(p) => *p.into_inner() = config.clone(),
        }
        let diff = ImageDiff::new(last.as_deref(), &image, me);
        let existing: Vec<(PartitionKey, Arc<Partition>)> = {
            let map = match self.partitions.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            map.iter().map(|(k, v)| (*k, v.clone())).collect()
        };
        // Remove partitions whose topic is gone: their directories are renamed
        // out of the way now and removed by a background thread.
        let mut doomed = Vec::new();
        for (key, partition) in &existing {
            if diff.removes(&image, me, *key) {
                {
                    let mut map = match self.partitions.write() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    map.remove(key);
                }
                let dir = self
                    .log_dirs
                    .forget(*key, &partition.topic)
                    .unwrap_or_else(|| partition.log().dir().to_path_buf());
                if let Err(e) = partition.log().close() {
                    tracing::warn!(error = %e, dir = %dir.display(), "closing deleted partition");
                }
                doomed.extend(mark_for_deletion(&dir));
                if let Some(future) = self.moves.cancel(*key) {
                    doomed.extend(mark_for_deletion(&future));
                }
                self.notify_hw(partition);
                tracing::info!(topic = %partition.topic, partition = partition.index.get(), "deleted partition");
            }
        }
        samsa_storage::deleter::remove_in_background(doomed);
        // Open new partitions; refresh settings and roles of existing ones.
        // Directories of earlier topics of the same name are collected in
        // `stale` and handed to the background deleter at the end (on an early error
        // return they stay renamed, and the next startup removes them).
        let mut stale = Vec::new();
        let now = crate::handlers::produce::now_ms().get();
        let mut roles_changed = false;
        let mut touched: Vec<Arc<Partition>> = Vec::new();
        let mut retry = false;
        for (key, topic, i) in diff.apply {
            let settings = TopicSettings::resolve(&config, &topic.configs);
            let leader_epoch = topic.partitions[i].leader_epoch;
            if let Some(p) = self.partition(key.0, key.1) {
                p.set_settings(settings);
                let change = p.apply_image(&topic.partitions[i], now);
                retry |= failed_to_apply(change, &topic.partitions[i], me);
                if change != RoleChange::Unchanged {
                    tracing::info!(topic = %topic.name, partition = key.1, ?change, epoch = leader_epoch.get(), "partition role changed");
                    roles_changed = true;
                }
                touched.push(p);
                continue;
            }
            let cordoned = config.get("cordoned.log.dirs").unwrap_or("");
            let Some(log) = self.create_replica(key, &topic, &settings, cordoned, &mut stale)
            else {
                retry = true;
                continue;
            };
            let partition = Arc::new(Partition::new(
                topic.name.clone(),
                topic.id,
                PartitionIndex(key.1),
                log,
                settings,
                me,
                leader_epoch,
            ));
            partition.load_high_watermark();
            // A move to another log directory a restart interrupted.
            for (target, future) in crate::log_mover::find_futures(self, &partition) {
                crate::log_mover::resume(self, &partition, target, &future);
            }
            let change = partition.apply_image(&topic.partitions[i], now);
            retry |= failed_to_apply(change, &topic.partitions[i], me);
            roles_changed = true;
            let mut map = match self.partitions.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            map.insert(key, partition);
        }
        samsa_storage::deleter::remove_in_background(stale);
        if roles_changed {
            self.roles_changed.notify_waiters();
            self.roles_changed.notify_one();
            self.roles_version.send_modify(|v| *v = v.wrapping_add(1));
            self.groups.wake();
            self.transactions.wake();
        }
        // Waiters re-check the partitions whose role, ISR or high watermark
        // this may have changed.
        for p in &touched {
            self.notify_hw(p);
        }
        // A partition that could not take its role (its leader epoch could
        // not be recorded) is applied again by the next reconcile: the
        // image it is diffed against stays the one before this change.
        if !retry {
            *last = Some(image);
        }
        Ok(())
    }

    /// Places a new replica of `topic` (partition `key`) in a log directory
    /// and opens its log there. A directory where that fails with an I/O
    /// error is taken offline (KIP-858) and the next one tried, so one
    /// failed directory never stops replicas elsewhere. `None` (logged)
    /// when no directory can take it.
    fn create_replica(
        &self,
        key: PartitionKey,
        topic: &TopicImage,
        settings: &TopicSettings,
        cordoned: &str,
        stale: &mut Vec<PathBuf>,
    ) -> Option<PartitionLog> {
        for _ in 0..=self.log_dirs.dirs().len() {
            let placement = match self.log_dirs.locate_or_place(
                key,
                &topic.name,
                topic.id,
                cordoned,
            ) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = key.1, error = %e, "cannot create the replica");
                    return None;
                }
            };
            for old in &placement.stale {
                // Left over from an earlier topic of the same name (deleted
                // while this broker was not following the log).
                tracing::info!(dir = %old.display(), "removing the directory of an earlier topic with this name");
                stale.extend(mark_for_deletion(old));
            }
            let dir = placement.dir;
            match create_log(&dir, topic.id, settings.log) {
                Ok(log) => return Some(log),
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = key.1, dir = %dir.display(), error = %e, "cannot create the replica");
                    self.log_dirs.forget(key, &topic.name);
                    let failed = dir.parent().and_then(|d| self.log_dirs.index_of(d));
                    match failed {
                        Some(index) if crate::dir_failure::is_dir_failure(&e) => {
                            crate::dir_failure::fail_dir(self, index, &e);
                        }
                        _ => return None,
                    }
                }
            }
        }
        None
    }

    /// Deletes the directories of partitions whose topic the image no longer
    /// has (deleted, or deleted and recreated, while the broker was down) and
    /// those renamed for deletion before a restart; only directories samsa
    /// provably made (see [`crate::data_dir`]). Anything else that looks like
    /// a partition directory is reported and left alone.
    fn remove_stale_dirs(&self) -> Result<(), BrokerError> {
        // Serialized with reconcile, so a directory it is creating for a newer
        // image is never taken for a stale one.
        let _guard = lock(&self.reconcile_lock);
        let image = self.image();
        let mut doomed = Vec::new();
        let mut found = Vec::new();
        for d in self.log_dirs.dirs() {
            found.extend(crate::data_dir::scan(&d.path, &image)?);
        }
        for (path, verdict) in found {
            match verdict {
                crate::data_dir::Verdict::Marked => doomed.push(path),
                crate::data_dir::Verdict::Stale => {
                    tracing::info!(dir = %path.display(), "removing the directory of a deleted topic");
                    doomed.extend(mark_for_deletion(&path));
                }
                crate::data_dir::Verdict::Foreign(why) => {
                    tracing::warn!(dir = %path.display(), reason = why, "leaving alone a directory samsa did not create");
                }
                crate::data_dir::Verdict::Keep => {}
            }
        }
        samsa_storage::deleter::remove_in_background(doomed);
        Ok(())
    }

    /// Flushes and closes every log (clean shutdown).
    pub fn shutdown(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.log().close() {
                tracing::error!(topic = %p.topic, partition = p.index.get(), error = %e, "closing log");
            }
        }
    }
}

/// Creates (or opens) a new replica's log in `dir`: the directory, its
/// `partition.metadata`, the log.
fn create_log(
    dir: &Path,
    topic_id: TopicId,
    config: samsa_storage::LogConfig,
) -> Result<PartitionLog, samsa_storage::StorageError> {
    let io = |op, source| samsa_storage::StorageError::Io {
        op,
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io("create", e))?;
    write_partition_metadata(dir, topic_id).map_err(|e| io("write", e))?;
    PartitionLog::open(dir, config)
}

/// Whether applying `p` left the partition offline although it has a
/// leader and this broker is a replica (the role change failed).
fn failed_to_apply(change: RoleChange, p: &PartitionImage, me: BrokerId) -> bool {
    change == RoleChange::WentOffline && p.leader.get() >= 0 && p.replicas.contains(&me)
}

/// Ending of a partition directory being deleted, as in Kafka
/// (`<topic>-<partition>.<unique id>-delete`). A partition directory's name
/// ends in `-<digits>`, so such a name is never taken for one.
pub const DELETE_SUFFIX: &str = "-delete";

/// Renames the directory `dir` of a deleted partition out of the way (to
/// `<name>.<unique id>-delete`), so that its name is free at once and its
/// removal, which takes long for a large log, can run in the background.
/// Returns the new path; `None` (logged) when `dir` is missing or cannot be
/// renamed. A crash before the removal leaves the renamed directory, which
/// the next startup removes.
pub(crate) fn mark_for_deletion(dir: &Path) -> Option<PathBuf> {
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let to = dir.with_file_name(format!(
        "{name}.{}{DELETE_SUFFIX}",
        uuid::Uuid::new_v4().simple()
    ));
    match std::fs::rename(dir, &to) {
        Ok(()) => Some(to),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "could not rename a deleted partition directory; removing it in place");
            if let Err(e) = std::fs::remove_dir_all(dir) {
                tracing::warn!(error = %e, dir = %dir.display(), "could not remove a deleted partition directory");
            }
            None
        }
    }
}

/// This broker's registration with its config in force ([`registration_of`]).
pub(crate) fn registration(broker: &Broker, fenced: bool) -> BrokerRegistration {
    registration_of(&broker.settings, &broker.log_dirs, &broker.config(), fenced)
}

/// This broker's registration: its listeners' advertised endpoints, a
/// fresh incarnation id (a restart is a new incarnation), its log directory
/// ids and those `cordoned.log.dirs` in `config` lists. `fenced`: register
/// fenced until heartbeats show it is alive (cluster mode).
fn registration_of(
    settings: &BrokerSettings,
    log_dirs: &crate::log_dirs::LogDirs,
    config: &StaticConfig,
    fenced: bool,
) -> BrokerRegistration {
    BrokerRegistration {
        id: settings.node_id,
        host: settings.advertised_host.clone(),
        port: settings.advertised_port,
        rack: settings.rack.clone(),
        listeners: settings
            .listeners
            .iter()
            .map(|l| Endpoint {
                name: l.name.clone(),
                host: l.advertised_host.clone(),
                port: l.advertised_port,
            })
            .collect(),
        incarnation: INCARNATION
            .get_or_init(|| uuid::Uuid::new_v4().to_string())
            .clone(),
        fenced,
        log_dirs: log_dirs.ids(),
        cordoned_log_dirs: log_dirs.cordoned_ids(config.get("cordoned.log.dirs").unwrap_or("")),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// This process's incarnation id.
static INCARNATION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Topics that only their coordinators create.
pub fn is_internal_topic(name: &str) -> bool {
    name == crate::groups::OFFSETS_TOPIC || name == crate::transactions::TRANSACTION_STATE_TOPIC
}

pub(crate) fn write_partition_metadata(dir: &Path, id: TopicId) -> std::io::Result<()> {
    let path = dir.join(PARTITION_METADATA_FILE);
    if path.exists() {
        return Ok(());
    }
    let tmp = dir.join(format!("{PARTITION_METADATA_FILE}.tmp"));
    std::fs::write(&tmp, format!("version: 0\ntopic_id: {id}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)
}
