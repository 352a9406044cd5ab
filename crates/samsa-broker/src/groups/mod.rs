//! The group coordinator service: runs `samsa-coordinator`'s state machine for
//! the groups of this broker, persists its records in `__consumer_offsets`,
//! parks JoinGroup/SyncGroup requests until their answer is ready, and drives
//! its timers.
//!
//! Sharded as Kafka's coordinator runtime is: one [`Shard`] per
//! `__consumer_offsets` partition this broker leads, each with its own
//! coordinator behind its own async lock and its own task (timers, loading).
//! A partition gained is replayed on a blocking thread while its groups are
//! answered COORDINATOR_LOAD_IN_PROGRESS; the other shards keep serving.
//!
//! Contract kept (see `samsa_coordinator`): every `Append` output is in the
//! log before any later output of that shard is acted on — appends happen
//! while the shard's lock is held (a `tokio` mutex: never a std mutex across
//! an append, a replay or a wait), and replies are sent only after the appends
//! before them are replicated. Committed offsets become visible to OffsetFetch
//! only once their batch is replicated (`Coordinator::commit_replicated`).

mod log;
mod txn;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use samsa_coordinator::{
    codes, CommitId, Coordinator, CoordinatorConfig, GroupConfigLookup, GroupOverrides, Output,
    ReplyToken, Response, TopicInfo, TopicMetadata,
};
use samsa_metadata::MetadataImage;
use samsa_model::{LeaderEpoch, TopicId};
use tokio::sync::{oneshot, Notify};

use crate::broker::Broker;
use crate::handlers::produce::now_ms;
use crate::partition::Partition;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How long a coordinator reply waits for its records to be replicated.
const COMMIT_REPLICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest sleep of a shard's task and of the leadership follower between checks.
const IDLE_CHECK_MS: i64 = 1000;
/// Partitions replayed at the same time (each on a blocking thread); the
/// others wait their turn, still answering COORDINATOR_LOAD_IN_PROGRESS (as
/// Kafka's `group.coordinator.threads` bounds its loads).
const LOADS_CONCURRENT_MAX: usize = 4;

/// Topic metadata for the server-side assignors, read from an image.
struct ImageTopics(Arc<MetadataImage>);

impl TopicMetadata for ImageTopics {
    fn topic_by_name(&self, name: &str) -> Option<TopicInfo> {
        self.0.topic(name).map(|t| TopicInfo {
            name: t.name.clone(),
            id: t.id,
            partitions: t.partitions.len() as u32,
        })
    }

    fn topic_by_id(&self, id: TopicId) -> Option<TopicInfo> {
        self.0.topic_by_id(id).map(|t| TopicInfo {
            name: t.name.clone(),
            id: t.id,
            partitions: t.partitions.len() as u32,
        })
    }
    fn topic_names(&self) -> Vec<String> {
        self.0.topics.keys().cloned().collect()
    }

    /// The image's count of applied records: it moves with every metadata change,
    /// topic creations and deletions included, and is the same on every node.
    fn topics_version(&self) -> i64 {
        i64::try_from(self.0.records_applied).unwrap_or(i64::MAX)
    }
}

/// The groups of one `__consumer_offsets` partition, led here in `epoch`.
struct Shard {
    partition: u32,
    epoch: LeaderEpoch,
    state: tokio::sync::Mutex<ShardState>,
    /// Replayed and serving (read without the lock by FindCoordinator).
    loaded: AtomicBool,
    /// Leadership moved away (or shutdown): the shard's task ends.
    closed: AtomicBool,
    /// Wakes the shard's task (a call may have moved its next deadline).
    wake: Notify,
}

struct ShardState {
    /// A `Loading` coordinator (requests get COORDINATOR_LOAD_IN_PROGRESS)
    /// until the replay finishes and the replayed one takes its place.
    coordinator: Coordinator,
    /// Whether the shard's task must (re)load the partition from its log.
    load_wanted: bool,
    /// Appended commits not yet replicated, in log order: (commit, last offset).
    unreplicated: VecDeque<(CommitId, i64)>,
    /// Transaction markers reported while the partition loads (see `txn.rs`).
    markers: txn::LoadingMarkers,
}

impl Shard {
    fn new(partition: u32, epoch: LeaderEpoch, config: &CoordinatorConfig) -> Shard {
        Shard {
            partition,
            epoch,
            state: tokio::sync::Mutex::new(ShardState {
                coordinator: fresh_coordinator(config),
                load_wanted: true,
                unreplicated: VecDeque::new(),
                markers: Default::default(),
            }),
            loaded: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.loaded.store(false, Ordering::Release);
        self.wake.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The shard's log partition while this broker still leads it in the
    /// shard's epoch.
    fn led_partition(&self, broker: &Broker) -> Option<Arc<Partition>> {
        log::offsets_partition(broker, self.partition).filter(|p| p.led_epoch() == Some(self.epoch))
    }
}

/// Makes commits whose batch the high watermark has passed visible to
/// OffsetFetch, in log order.
fn promote(shard: &Shard, part: Option<&Partition>, st: &mut ShardState) {
    let Some(part) = part else { return };
    if part.led_epoch() != Some(shard.epoch) {
        return;
    }
    let hw = part.high_watermark().get();
    while let Some(&(id, last)) = st.unreplicated.front() {
        if last >= hw {
            break;
        }
        st.unreplicated.pop_front();
        st.coordinator.commit_replicated(id);
    }
}

/// The per-group overrides (the `GROUP` config resource) as the broker's
/// current metadata image holds them. Holds the broker weakly (the broker owns
/// the coordinator); reads only the published image, never blocks.
pub(crate) fn image_group_configs(broker: std::sync::Weak<Broker>) -> GroupConfigLookup {
    use samsa_metadata::group_config::{
        CONSUMER_HEARTBEAT_INTERVAL_MS, CONSUMER_SESSION_TIMEOUT_MS,
    };
    GroupConfigLookup::new(Arc::new(move |group: &str| {
        let Some(broker) = broker.upgrade() else {
            return GroupOverrides::default();
        };
        let image = broker.image();
        let Some(map) = image.group_configs.get(group) else {
            return GroupOverrides::default();
        };
        let int = |k: &str| map.get(k).and_then(|v| v.trim().parse::<i32>().ok());
        GroupOverrides {
            session_timeout_ms: int(CONSUMER_SESSION_TIMEOUT_MS),
            heartbeat_interval_ms: int(CONSUMER_HEARTBEAT_INTERVAL_MS),
        }
    }))
}

/// The coordinator service: the shards plus the reply plumbing.
pub struct GroupService {
    /// Kept to build a fresh coordinator per shard.
    config: CoordinatorConfig,
    /// The shards by `__consumer_offsets` partition (held only to look up or
    /// swap an `Arc`, never across a call).
    shards: RwLock<BTreeMap<u32, Arc<Shard>>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    next_token: AtomicU64,
    /// Wakes the leadership follower ([`GroupService::run_timers`]).
    timer_wake: Notify,
    /// Permits to replay a partition ([`LOADS_CONCURRENT_MAX`]).
    load_permits: tokio::sync::Semaphore,
    /// Test hook: partitions whose replay waits until released.
    #[cfg(test)]
    load_gate: Mutex<BTreeMap<u32, Arc<tokio::sync::Semaphore>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl GroupService {
    /// A coordinator service configured from the broker's config, with no
    /// shard yet (they follow leadership once [`GroupService::run_timers`] runs).
    pub fn new(
        config: &samsa_metadata::config::StaticConfig,
        group_configs: GroupConfigLookup,
    ) -> GroupService {
        let mut cc = CoordinatorConfig {
            group_configs,
            ..CoordinatorConfig::default()
        };
        let int = |k: &str| config.get_i64(k);
        if let Some(v) = int("group.initial.rebalance.delay.ms") {
            cc.group_initial_rebalance_delay_ms = v as i32;
        }
        if let Some(v) = int("group.min.session.timeout.ms") {
            cc.group_min_session_timeout_ms = v as i32;
        }
        if let Some(v) = int("group.max.session.timeout.ms") {
            cc.group_max_session_timeout_ms = v as i32;
        }
        if let Some(v) = int("offsets.retention.minutes") {
            cc.offsets_retention_minutes = v;
        }
        if let Some(v) = int("offsets.topic.num.partitions") {
            cc.offsets_topic_num_partitions = v.max(1) as u32;
        }
        if let Some(v) = int("group.consumer.session.timeout.ms") {
            cc.group_consumer_session_timeout_ms = v as i32;
        }
        if let Some(v) = int("group.consumer.heartbeat.interval.ms") {
            cc.group_consumer_heartbeat_interval_ms = v as i32;
        }
        if let Some(v) = int("group.consumer.regex.refresh.interval.ms") {
            cc.group_consumer_regex_refresh_interval_ms = v;
        }
        GroupService {
            config: cc,
            shards: RwLock::new(BTreeMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            timer_wake: Notify::new(),
            load_permits: tokio::sync::Semaphore::new(LOADS_CONCURRENT_MAX),
            #[cfg(test)]
            load_gate: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts following `__consumer_offsets` leadership: shards are created
    /// and replayed in the background by [`GroupService::run_timers`].
    pub fn load(&self, _broker: &Broker) {
        self.wake();
    }

    /// Wakes the leadership follower (after a role change: it loads and
    /// unloads the shards whose leadership moved).
    pub fn wake(&self) {
        self.timer_wake.notify_one();
    }

    /// The `__consumer_offsets` partition of `group`.
    pub fn partition_for(&self, group: &str) -> u32 {
        samsa_coordinator::partition_for(group, self.config.offsets_topic_num_partitions)
    }

    fn shards(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u32, Arc<Shard>>> {
        match self.shards.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn shard_for(&self, group: &str) -> Option<Arc<Shard>> {
        self.shards().get(&self.partition_for(group)).cloned()
    }

    /// Whether `group`'s shard is loaded and serving here.
    pub fn serves(&self, group: &str) -> bool {
        self.shard_for(group)
            .is_some_and(|s| s.loaded.load(Ordering::Acquire))
    }

    fn token(&self) -> (ReplyToken, oneshot::Receiver<Response>) {
        let id = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        (ReplyToken(id), rx)
    }

    /// Runs one state-changing call for `group` on its shard and waits for
    /// its reply (which may come from a later call or a timer). A group whose
    /// partition is not led here is answered by an unloaded coordinator
    /// (NOT_COORDINATOR); one whose partition is loading by a loading one
    /// (COORDINATOR_LOAD_IN_PROGRESS).
    pub async fn call<F>(&self, broker: &Broker, group: &str, f: F) -> Option<Response>
    where
        F: FnOnce(
            &mut Coordinator,
            &dyn TopicMetadata,
            samsa_model::TimestampMs,
            ReplyToken,
        ) -> Vec<Output>,
    {
        let (token, rx) = self.token();
        if group.is_empty() {
            // Refused before any partition is involved, as Kafka's group
            // coordinator service checks the id before routing the request.
            let mut c = empty_coordinator(&self.config);
            let topics = ImageTopics(broker.image());
            let outputs = f(&mut c, &topics, now_ms(), token);
            self.answer_parked(outputs, None);
            return rx.await.ok();
        }
        match self.shard_for(group).filter(|s| !s.is_closed()) {
            Some(shard) => {
                let mut st = shard.state.lock().await;
                promote(&shard, shard.led_partition(broker).as_deref(), &mut st);
                let topics = ImageTopics(broker.image());
                let outputs = f(&mut st.coordinator, &topics, now_ms(), token);
                self.execute(broker, &shard, &mut st, outputs);
                drop(st);
                shard.wake.notify_one();
            }
            None => {
                let mut c = unloaded_coordinator(&self.config);
                let topics = ImageTopics(broker.image());
                let outputs = f(&mut c, &topics, now_ms(), token);
                self.answer_parked(outputs, None);
            }
        }
        rx.await.ok()
    }

    /// Runs a read-only call on the shard of each of `groups` (request order
    /// kept within a shard); returns one result per shard involved.
    pub async fn read_groups<R>(
        &self,
        broker: &Broker,
        groups: &[String],
        f: impl Fn(&Coordinator, &dyn TopicMetadata, &[String]) -> R,
    ) -> Vec<R> {
        // Empty group ids (`None`) are refused without a partition.
        let mut by_partition: BTreeMap<Option<u32>, Vec<String>> = BTreeMap::new();
        for g in groups {
            let p = (!g.is_empty()).then(|| self.partition_for(g));
            by_partition.entry(p).or_default().push(g.clone());
        }
        let topics = ImageTopics(broker.image());
        let mut out = Vec::with_capacity(by_partition.len());
        for (p, ids) in by_partition {
            let Some(p) = p else {
                out.push(f(&empty_coordinator(&self.config), &topics, &ids));
                continue;
            };
            let shard = self.shards().get(&p).cloned();
            out.push(match shard {
                Some(shard) => {
                    let mut st = shard.state.lock().await;
                    promote(&shard, shard.led_partition(broker).as_deref(), &mut st);
                    f(&st.coordinator, &topics, &ids)
                }
                None => f(&unloaded_coordinator(&self.config), &topics, &ids),
            });
        }
        out
    }

    /// Runs a read-only call on every shard (ListGroups).
    pub async fn read_all<R>(
        &self,
        broker: &Broker,
        f: impl Fn(&Coordinator, &dyn TopicMetadata) -> R,
    ) -> Vec<R> {
        let shards: Vec<Arc<Shard>> = self.shards().values().cloned().collect();
        let topics = ImageTopics(broker.image());
        let mut out = Vec::with_capacity(shards.len());
        for shard in shards {
            let st = shard.state.lock().await;
            out.push(f(&st.coordinator, &topics));
        }
        out
    }

    /// Acts on a shard's outputs in order: appends (under the shard's lock),
    /// then replies. A reply that follows appends is sent only once every
    /// in-sync replica has them (the high watermark passed them, as Kafka's
    /// coordinator waits for acks=all), from a task, so no lock is held while
    /// waiting for replication; that task first makes the replicated commits
    /// visible, so a client that got its commit acknowledged reads it back.
    /// After a failed append the shard is unloaded and reloaded from its log.
    fn execute(
        &self,
        broker: &Broker,
        shard: &Arc<Shard>,
        st: &mut ShardState,
        outputs: Vec<Output>,
    ) {
        let mut failed = false;
        // The last append so far that is not yet known to be replicated.
        let mut wait: Option<crate::replica::ReplicationWait> = None;
        for output in outputs {
            match output {
                Output::Append {
                    partition,
                    records,
                    commit,
                    transaction,
                } => {
                    if failed {
                        continue;
                    }
                    match log::append(broker, partition, shard.epoch, &records, transaction) {
                        Ok((part, last)) => {
                            if let Some(id) = commit {
                                st.unreplicated.push_back((id, last));
                            }
                            promote(shard, Some(&part), st);
                            if part.high_watermark().get() <= last {
                                let min_isr = part.settings().min_insync_replicas;
                                wait = Some((part, last, min_isr, shard.epoch));
                            }
                        }
                        Err(log::AppendError::Storage(e))
                            if crate::disk::disk_full_path(&e).is_some() =>
                        {
                            // Logged (rate-limited) with the path and free
                            // space; the requests get NOT_COORDINATOR and
                            // retry, and commits work again once space is
                            // freed.
                            crate::disk::note_storage_error(&e);
                            failed = true;
                        }
                        Err(e) => {
                            tracing::error!(partition, error = %e, "appending to __consumer_offsets failed; reloading the partition's groups");
                            failed = true;
                        }
                    }
                }
                Output::Reply { token, response } => {
                    let response = if failed {
                        response.with_error(codes::NOT_COORDINATOR)
                    } else {
                        response
                    };
                    let Some(tx) = lock(&self.pending).remove(&token.0) else {
                        continue;
                    };
                    match (&wait, tokio::runtime::Handle::try_current()) {
                        (Some((part, last, min_isr, epoch)), Ok(handle)) if !failed => {
                            let replicated =
                                replication_wait(broker, part.clone(), *last, *min_isr, *epoch);
                            let part = part.clone();
                            let shard = shard.clone();
                            handle.spawn(async move {
                                let response = if replicated.await {
                                    let mut st = shard.state.lock().await;
                                    promote(&shard, Some(&part), &mut st);
                                    response
                                } else {
                                    response.with_error(codes::COORDINATOR_NOT_AVAILABLE)
                                };
                                let _ = tx.send(response);
                            });
                        }
                        _ => {
                            let _ = tx.send(response);
                        }
                    }
                }
            }
        }
        if failed {
            self.reload(shard, st);
        }
    }

    /// Unloads a shard whose log is behind its state (a failed append) and
    /// has its task replay it again.
    fn reload(&self, shard: &Shard, st: &mut ShardState) {
        shard.loaded.store(false, Ordering::Release);
        let parked = st.coordinator.unload();
        self.answer_parked(parked, Some(codes::NOT_COORDINATOR));
        st.coordinator = fresh_coordinator(&self.config);
        st.unreplicated.clear();
        st.load_wanted = true;
        shard.wake.notify_one();
    }

    /// Sends the replies among `outputs` (with `error`, if given). Used for
    /// coordinators that cannot append: unloaded ones answering requests for
    /// groups not served here, and the parked requests of an unloaded shard
    /// (their clients find the coordinator again and retry).
    fn answer_parked(&self, outputs: Vec<Output>, error: Option<i16>) {
        for o in outputs {
            if let Output::Reply { token, response } = o {
                if let Some(tx) = lock(&self.pending).remove(&token.0) {
                    let response = match error {
                        Some(code) => response.with_error(code),
                        None => response,
                    };
                    let _ = tx.send(response);
                }
            }
        }
    }

    /// Follows `__consumer_offsets` leadership until `shutdown`: creates a
    /// shard (and its task) for each partition gained, closes and unloads the
    /// shards of partitions lost. A partition led again in a new leader epoch
    /// is lost and gained: another leader may have appended to it meanwhile.
    pub async fn run_timers(
        self: Arc<Self>,
        broker: Arc<Broker>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let lost = self.follow_leadership(&broker);
            for shard in lost {
                let mut st = shard.state.lock().await;
                let parked = st.coordinator.unload();
                self.answer_parked(parked, Some(codes::NOT_COORDINATOR));
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = self.timer_wake.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(IDLE_CHECK_MS as u64)) => {}
            }
        }
        let all: Vec<Arc<Shard>> = std::mem::take(&mut *self.shards_mut())
            .into_values()
            .collect();
        for shard in all {
            shard.close();
        }
    }

    fn shards_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u32, Arc<Shard>>> {
        match self.shards.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Updates the shard map to the partitions led now; returns the shards
    /// removed (closed, still to be unloaded).
    fn follow_leadership(self: &Arc<Self>, broker: &Arc<Broker>) -> Vec<Arc<Shard>> {
        let led = led_partitions(broker);
        let mut shards = self.shards_mut();
        let lost: Vec<u32> = shards
            .iter()
            .filter(|(p, s)| led.get(p) != Some(&s.epoch))
            .map(|(p, _)| *p)
            .collect();
        let removed: Vec<Arc<Shard>> = lost.iter().filter_map(|p| shards.remove(p)).collect();
        let mut gained = BTreeSet::new();
        for (p, epoch) in led {
            if shards.contains_key(&p) {
                continue;
            }
            let shard = Arc::new(Shard::new(p, epoch, &self.config));
            shards.insert(p, shard.clone());
            gained.insert(p);
            tokio::spawn(self.clone().run_shard(broker.clone(), shard));
        }
        drop(shards);
        for s in &removed {
            s.close();
        }
        if !gained.is_empty() || !removed.is_empty() {
            tracing::info!(
                ?gained,
                lost = ?lost,
                "__consumer_offsets leadership moved; coordinator shards updated"
            );
        }
        removed
    }

    /// A shard's task: loads the partition (and reloads it after a failed
    /// append), then fires the shard's timers, until the shard is closed.
    async fn run_shard(self: Arc<Self>, broker: Arc<Broker>, shard: Arc<Shard>) {
        loop {
            if shard.is_closed() {
                return;
            }
            let (load_wanted, deadline) = {
                let st = shard.state.lock().await;
                (st.load_wanted, st.coordinator.next_deadline())
            };
            if load_wanted {
                if !self.load_shard(&broker, &shard).await {
                    tokio::time::sleep(std::time::Duration::from_millis(IDLE_CHECK_MS as u64))
                        .await;
                }
                continue;
            }
            let sleep_ms = deadline
                .map(|d| (d.get() - now_ms().get()).clamp(0, IDLE_CHECK_MS))
                .unwrap_or(IDLE_CHECK_MS) as u64;
            tokio::select! {
                _ = shard.wake.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)) => {}
            }
            if shard.is_closed() {
                return;
            }
            let mut st = shard.state.lock().await;
            if st.load_wanted {
                continue;
            }
            promote(&shard, shard.led_partition(&broker).as_deref(), &mut st);
            let outputs = st.coordinator.tick(now_ms());
            self.execute(&broker, &shard, &mut st, outputs);
        }
    }

    /// Replays the shard's partition on a blocking thread (the shard answers
    /// COORDINATOR_LOAD_IN_PROGRESS meanwhile; other shards are untouched),
    /// then swaps the replayed coordinator in. Returns false if the replay
    /// failed (the task retries).
    async fn load_shard(&self, broker: &Arc<Broker>, shard: &Arc<Shard>) -> bool {
        let p = shard.partition;
        #[cfg(test)]
        let gate = lock(&self.load_gate).get(&p).cloned();
        #[cfg(test)]
        if let Some(gate) = gate {
            let _ = gate.acquire().await;
        }
        let Ok(_permit) = self.load_permits.acquire().await else {
            return false;
        };
        if shard.is_closed() {
            return true;
        }
        let b = broker.clone();
        let config = self.config.clone();
        let started = std::time::Instant::now();
        let replayed = tokio::task::spawn_blocking(move || {
            let mut c = fresh_coordinator(&config);
            c.set_owned_partitions(Some([p].into_iter().collect()));
            log::replay_partition(&b, &mut c, p).map(|n| (c, n))
        })
        .await;
        let (mut c, records) = match replayed {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::error!(partition = p, error = %e, "loading coordinator partition; retrying");
                return false;
            }
            Err(e) => {
                tracing::error!(partition = p, error = %e, "coordinator load task failed; retrying");
                return false;
            }
        };
        let mut st = shard.state.lock().await;
        if shard.is_closed() {
            return true;
        }
        let outputs = c.finish_loading(now_ms());
        // The loading coordinator answered every request with an error and
        // holds nothing.
        st.coordinator = c;
        st.load_wanted = false;
        if !txn::apply_loading_markers(&mut st) {
            self.reload(shard, &mut st);
            return true;
        }
        shard.loaded.store(true, Ordering::Release);
        tracing::info!(
            partition = p,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "coordinator partition loaded"
        );
        self.execute(broker, shard, &mut st, outputs);
        true
    }

    /// Creates `__consumer_offsets` if it does not exist yet (as Kafka does on
    /// the first FindCoordinator). Returns whether it exists now.
    pub fn ensure_offsets_topic(&self, broker: &Broker) -> bool {
        log::ensure_offsets_topic(broker)
    }
}

/// Waits (for at most [`COMMIT_REPLICATION_WAIT`]) until the high watermark
/// of `part` passes `last` with at least `min_isr` in-sync replicas; true if
/// it did. The one place the coordinator waits on replication.
fn replication_wait(
    broker: &Broker,
    part: Arc<Partition>,
    last: i64,
    min_isr: usize,
    epoch: LeaderEpoch,
) -> impl std::future::Future<Output = bool> + Send + 'static {
    let rx = broker.hw_watch([&part]);
    async move {
        let waits = [(part, last, min_isr, epoch)];
        let outcome = crate::replica::wait_replicated_on(rx, &waits, COMMIT_REPLICATION_WAIT).await;
        outcome.iter().all(Option::is_none)
    }
}

/// The `__consumer_offsets` partitions this broker leads now, with their
/// leader epochs.
fn led_partitions(broker: &Broker) -> BTreeMap<u32, LeaderEpoch> {
    let image = broker.image();
    let Some(topic) = image.topic(OFFSETS_TOPIC) else {
        return BTreeMap::new();
    };
    topic
        .partitions
        .iter()
        .filter_map(|p| {
            let epoch = broker.partition(topic.id, p.index.get())?.led_epoch()?;
            Some((u32::try_from(p.index.get()).ok()?, epoch))
        })
        .collect()
}

/// A coordinator in its Loading state with a member-id generator.
fn fresh_coordinator(config: &CoordinatorConfig) -> Coordinator {
    let mut counter: u64 = 0;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let id_gen = Box::new(move || {
        counter += 1;
        uuid::Uuid::from_u64_pair(seed, counter ^ uuid::Uuid::new_v4().as_u64_pair().0).to_string()
    });
    Coordinator::new(config.clone(), id_gen)
}

/// An active coordinator with no group: answers requests for the empty group
/// id (INVALID_GROUP_ID and the like) whatever the state of partition 0.
fn empty_coordinator(config: &CoordinatorConfig) -> Coordinator {
    let mut c = Coordinator::new(config.clone(), Box::new(String::new));
    let _ = c.finish_loading(now_ms());
    c
}

/// A coordinator that answers everything NOT_COORDINATOR (groups of
/// partitions this broker does not lead).
fn unloaded_coordinator(config: &CoordinatorConfig) -> Coordinator {
    let mut c = Coordinator::new(config.clone(), Box::new(String::new));
    c.unload();
    c
}

#[cfg(test)]
mod group_config_tests;
#[cfg(test)]
mod tests;
