//! The group coordinator service: runs `samsa-coordinator`'s state machine for
//! every group of this broker, persists its records in `__consumer_offsets`,
//! parks JoinGroup/SyncGroup requests until their answer is ready, and drives
//! its timers.
//!
//! Contract kept (see `samsa_coordinator`): every `Append` output is durably in
//! the log before any later output is acted on — appends happen while the
//! coordinator mutex is held, and replies are sent only after the appends
//! before them succeeded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use samsa_coordinator::{
    codes, Coordinator, CoordinatorConfig, Output, ReplyToken, Response, TopicInfo, TopicMetadata,
};
use samsa_metadata::{MetadataImage, NewTopic};
use samsa_model::batch::{self, BatchBuilder, NewRecord};
use samsa_model::{LeaderEpoch, TopicId};
use tokio::sync::{oneshot, Notify};

use crate::broker::Broker;
use crate::handlers::produce::now_ms;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Bytes read per step while replaying `__consumer_offsets` at startup.
const REPLAY_READ_BYTES_MAX: usize = 1 << 20;
/// Largest decompressed batch accepted while replaying.
const REPLAY_DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

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
}

/// The coordinator plus its plumbing.
pub struct GroupService {
    /// Kept to build a fresh coordinator when one must be reloaded.
    config: CoordinatorConfig,
    coordinator: Mutex<Coordinator>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    next_token: AtomicU64,
    /// Wakes the timer task when a call may have moved the next deadline.
    timer_wake: Notify,
    /// The `__consumer_offsets` partitions the coordinator is loaded with
    /// (those this broker led at the time) and the leader epoch each was
    /// loaded in; updated partition by partition when leadership moves.
    loaded: Mutex<BTreeMap<u32, LeaderEpoch>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl GroupService {
    /// A coordinator configured from the broker's config, not yet loaded.
    pub fn new(config: &samsa_metadata::config::StaticConfig) -> GroupService {
        let mut cc = CoordinatorConfig::default();
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
        GroupService {
            coordinator: Mutex::new(fresh_coordinator(&cc)),
            config: cc,
            pending: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            timer_wake: Notify::new(),
            loaded: Mutex::new(BTreeMap::new()),
        }
    }

    /// Replays `__consumer_offsets` (if it exists) and opens for requests.
    pub fn load(&self, broker: &Broker) {
        let mut c = lock(&self.coordinator);
        if self.load_into(broker, &mut c) {
            self.reload(broker, &mut c);
        }
    }

    /// After a failed append the in-memory state may be ahead of the log: start
    /// over from the log (Kafka's coordinator unload + load). A reload that fails
    /// again leaves the coordinator unloaded; the timer task retries it.
    fn reload(&self, broker: &Broker, c: &mut Coordinator) {
        // Parked JoinGroup/SyncGroup requests must be answered, not dropped:
        // their clients wait up to the rebalance timeout for an answer.
        self.answer_parked(c.unload());
        *c = fresh_coordinator(&self.config);
        if self.load_into(broker, c) {
            tracing::error!("reloading the group coordinator failed; retrying shortly");
        } else {
            tracing::info!("group coordinator reloaded from __consumer_offsets");
        }
    }

    /// Wakes the timer task (after a role change: it loads and unloads the
    /// `__consumer_offsets` partitions whose leadership moved).
    pub fn wake(&self) {
        self.timer_wake.notify_one();
    }

    /// The `__consumer_offsets` partition of `group`.
    pub fn partition_for(&self, group: &str) -> u32 {
        samsa_coordinator::partition_for(group, self.config.offsets_topic_num_partitions)
    }

    /// Whether this broker's coordinator is loaded with `group`'s partition.
    pub fn owns(&self, group: &str) -> bool {
        lock(&self.loaded).contains_key(&self.partition_for(group))
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

    /// Replays the log into `c` (a coordinator in its Loading state) and opens
    /// it. Returns whether an append failed on the way. Only the partitions
    /// this broker leads are loaded; groups of the others get NOT_COORDINATOR.
    fn load_into(&self, broker: &Broker, c: &mut Coordinator) -> bool {
        let led = Self::led_partitions(broker);
        for &p in led.keys() {
            replay_partition(broker, c, p);
        }
        let mut outputs = c.set_owned_partitions(Some(led.keys().copied().collect()));
        outputs.extend(c.finish_loading(now_ms()));
        *lock(&self.loaded) = led;
        self.execute(broker, c, outputs)
    }

    /// Follows a change in the `__consumer_offsets` partitions this broker
    /// leads one partition at a time, as Kafka loads and unloads coordinator
    /// partitions, leaving the groups of the other partitions undisturbed:
    /// the groups of partitions lost are dropped (their parked JoinGroup and
    /// SyncGroup requests answered NOT_COORDINATOR); partitions gained are
    /// replayed from their logs and then served. A partition led again in a
    /// new leader epoch counts as lost and gained: another leader may have
    /// appended to it in between. Returns whether an append failed (the
    /// caller then reloads).
    fn move_partitions(
        &self,
        broker: &Broker,
        c: &mut Coordinator,
        led: BTreeMap<u32, LeaderEpoch>,
    ) -> bool {
        let before = std::mem::replace(&mut *lock(&self.loaded), led.clone());
        let kept: BTreeSet<u32> = before
            .iter()
            .filter(|(p, epoch)| led.get(p) == Some(epoch))
            .map(|(p, _)| *p)
            .collect();
        let gained: Vec<u32> = led.keys().filter(|p| !kept.contains(p)).copied().collect();
        let lost = before.keys().filter(|p| !kept.contains(p)).count();
        // Drop what is not kept first, so that a partition led again in a new
        // epoch is reloaded from its log rather than kept from memory.
        let mut outputs = c.set_owned_partitions(Some(kept));
        outputs.extend(c.set_owned_partitions(Some(led.keys().copied().collect())));
        for &p in &gained {
            replay_partition(broker, c, p);
            outputs.extend(c.finish_loading_partition(p, now_ms()));
        }
        tracing::info!(
            ?gained,
            lost,
            "__consumer_offsets leadership moved; coordinator partitions updated"
        );
        self.execute(broker, c, outputs)
    }

    fn token(&self) -> (ReplyToken, oneshot::Receiver<Response>) {
        let id = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        (ReplyToken(id), rx)
    }

    /// Runs one state-changing call and waits for its reply (which may come from
    /// a later call or a timer).
    pub async fn call<F>(&self, broker: &Broker, f: F) -> Option<Response>
    where
        F: FnOnce(
            &mut Coordinator,
            &dyn TopicMetadata,
            samsa_model::TimestampMs,
            ReplyToken,
        ) -> Vec<Output>,
    {
        let (token, rx) = self.token();
        {
            let mut c = lock(&self.coordinator);
            let topics = ImageTopics(broker.image());
            let outputs = f(&mut c, &topics, now_ms(), token);
            if self.execute(broker, &mut c, outputs) {
                self.reload(broker, &mut c);
            }
        }
        self.timer_wake.notify_one();
        rx.await.ok()
    }

    /// Runs a read-only call.
    pub fn read<R>(
        &self,
        broker: &Broker,
        f: impl FnOnce(&Coordinator, &dyn TopicMetadata) -> R,
    ) -> R {
        let c = lock(&self.coordinator);
        let topics = ImageTopics(broker.image());
        f(&c, &topics)
    }

    /// Acts on outputs in order: appends (under the coordinator lock), then
    /// replies. A reply that follows appends is sent only once every in-sync
    /// replica has them (the high watermark passed them, as Kafka's
    /// coordinator waits for acks=all), from a task, so the coordinator lock
    /// is never held while waiting for replication. Returns whether an
    /// append failed (the coordinator is then unloaded and must be reloaded).
    fn execute(&self, broker: &Broker, c: &mut Coordinator, outputs: Vec<Output>) -> bool {
        let mut failed = false;
        // Appends so far that are not yet known to be replicated.
        let mut unreplicated: Vec<(Arc<crate::partition::Partition>, i64, usize)> = Vec::new();
        for output in outputs {
            match output {
                Output::Append { partition, records } => {
                    if failed {
                        continue;
                    }
                    match append(broker, partition, &records) {
                        Ok((part, last)) => {
                            if part.high_watermark().get() <= last {
                                let min_isr = part.settings().min_insync_replicas;
                                unreplicated.push((part, last, min_isr));
                            }
                        }
                        Err(e) => {
                            tracing::error!(partition, error = %e, "appending to __consumer_offsets failed; reloading the coordinator");
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
                    match tokio::runtime::Handle::try_current() {
                        Ok(handle) if !unreplicated.is_empty() && !failed => {
                            let waits = unreplicated.clone();
                            let rx = broker.hw_watch();
                            handle.spawn(async move {
                                let outcome = crate::replica::wait_replicated_on(
                                    rx,
                                    &waits,
                                    COMMIT_REPLICATION_WAIT,
                                )
                                .await;
                                let response = if outcome.iter().all(Option::is_none) {
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
            self.answer_parked(c.unload());
        }
        failed
    }

    /// Answers the requests an unloaded coordinator still held with
    /// NOT_COORDINATOR: their clients find the coordinator again and retry.
    fn answer_parked(&self, parked: Vec<Output>) {
        for o in parked {
            if let Output::Reply { token, response } = o {
                if let Some(tx) = lock(&self.pending).remove(&token.0) {
                    let _ = tx.send(response.with_error(codes::NOT_COORDINATOR));
                }
            }
        }
    }

    /// Fires the coordinator's timers until `shutdown`.
    pub async fn run_timers(
        self: Arc<Self>,
        broker: Arc<Broker>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let deadline = lock(&self.coordinator).next_deadline();
            let sleep_ms = deadline
                .map(|d| (d.get() - now_ms().get()).clamp(0, 1000))
                .unwrap_or(1000) as u64;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = self.timer_wake.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)) => {}
            }
            let mut c = lock(&self.coordinator);
            if matches!(c.status(), samsa_coordinator::CoordinatorStatus::Unloaded) {
                self.reload(&broker, &mut c);
                continue;
            }
            let led = Self::led_partitions(&broker);
            if *lock(&self.loaded) != led {
                if self.move_partitions(&broker, &mut c, led) {
                    self.reload(&broker, &mut c);
                }
                continue;
            }
            let outputs = c.tick(now_ms());
            if self.execute(&broker, &mut c, outputs) {
                self.reload(&broker, &mut c);
            }
        }
    }

    /// Creates `__consumer_offsets` if it does not exist yet (as Kafka does on
    /// the first FindCoordinator). Returns whether it exists now.
    pub fn ensure_offsets_topic(&self, broker: &Broker) -> bool {
        if broker.image().topic(OFFSETS_TOPIC).is_some() {
            // Another request may have created it and still be opening its
            // partitions; wait for that (reconcile is serialized) and report
            // ready only when every partition is hosted here.
            return offsets_partitions_hosted(broker) || {
                if let Err(e) = broker.reconcile() {
                    tracing::error!(error = %e, "reconciling __consumer_offsets");
                }
                offsets_partitions_hosted(broker)
            };
        }
        let config = broker.config();
        let partitions = config.get_i64("offsets.topic.num.partitions").unwrap_or(50) as i32;
        let brokers = broker.image().live_brokers().count().max(1) as i64;
        // Kafka refuses until enough brokers exist; a single node (or a smaller
        // cluster) uses what it has so groups work out of the box.
        let rf = config
            .get_i64("offsets.topic.replication.factor")
            .unwrap_or(3)
            .min(brokers) as i16;
        let results = broker.admin(|c| {
            c.create_topics(
                vec![NewTopic {
                    name: OFFSETS_TOPIC.into(),
                    num_partitions: partitions,
                    replication_factor: rf,
                    assignments: vec![],
                    configs: vec![
                        ("cleanup.policy".into(), Some("compact".into())),
                        ("compression.type".into(), Some("producer".into())),
                        ("segment.bytes".into(), Some("104857600".into())),
                    ],
                }],
                false,
            )
        });
        if let Err(e) = broker.reconcile() {
            tracing::error!(error = %e, "reconciling after creating __consumer_offsets");
        }
        if let Some(Err(e)) = results.into_iter().next() {
            tracing::warn!(error = %e, "creating __consumer_offsets");
        }
        offsets_partitions_hosted(broker)
    }

    /// Whether the coordinator is loaded and serving.
    pub fn status_ok(&self) -> bool {
        matches!(
            lock(&self.coordinator).status(),
            samsa_coordinator::CoordinatorStatus::Active
        )
    }
}

/// Feeds every record of `__consumer_offsets` partition `partition` (led
/// here) to `c`, which must be loading it. A new leader's log is the truth:
/// all of it is replayed, from the log start offset to the log end offset.
fn replay_partition(broker: &Broker, c: &mut Coordinator, partition: u32) {
    let image = broker.image();
    let Some(part) = image
        .topic(OFFSETS_TOPIC)
        .and_then(|t| broker.partition(t.id, partition as i32))
    else {
        return;
    };
    let end = part.log.log_end_offset();
    let mut offset = part.log.log_start_offset();
    while offset < end {
        let read = match part.log.read(offset, REPLAY_READ_BYTES_MAX, end, true) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(partition, error = %e, "replaying __consumer_offsets");
                break;
            }
        };
        if read.bytes.is_empty() {
            break;
        }
        for item in batch::BatchIter::new(&read.bytes) {
            let Ok((header, bytes)) = item else { break };
            if header.is_control() {
                continue;
            }
            let records = match batch::records(bytes, REPLAY_DECOMPRESSED_BYTES_MAX) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "undecodable __consumer_offsets batch");
                    continue;
                }
            };
            for r in records {
                if header.record_offset(&r) < offset {
                    continue;
                }
                let Some(key) = r.key.as_deref() else {
                    continue;
                };
                if let Err(e) = c.replay(key, r.value.as_deref()) {
                    tracing::warn!(error = %e, "skipping an unreadable __consumer_offsets record");
                }
            }
        }
        offset = read.next_offset;
    }
}

/// Whether every partition of `__consumer_offsets` with a replica here has
/// its log open.
fn offsets_partitions_hosted(broker: &Broker) -> bool {
    let image = broker.image();
    let me = broker.settings.node_id;
    image.topic(OFFSETS_TOPIC).is_some_and(|t| {
        t.partitions
            .iter()
            .filter(|p| p.replicas.contains(&me))
            .all(|p| broker.partition(t.id, p.index.get()).is_some())
    })
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

#[derive(Debug, thiserror::Error)]
enum AppendError {
    #[error("__consumer_offsets partition {0} is not led by this broker")]
    NoPartition(u32),
    #[error("building the batch: {0}")]
    Batch(#[from] samsa_model::batch::BatchError),
    #[error("storage: {0}")]
    Storage(#[from] samsa_storage::StorageError),
}

/// Appends one coordinator batch as the partition's leader; returns the
/// partition and the batch's last offset.
fn append(
    broker: &Broker,
    partition: u32,
    records: &[samsa_coordinator::Record],
) -> Result<(Arc<crate::partition::Partition>, i64), AppendError> {
    let image = broker.image();
    let part = image
        .topic(OFFSETS_TOPIC)
        .and_then(|t| broker.partition(t.id, partition as i32))
        .filter(|p| p.is_leader())
        .ok_or(AppendError::NoPartition(partition))?;
    let now = now_ms();
    let mut builder = BatchBuilder::new();
    for r in records {
        builder.push(NewRecord::new(now, Some(&r.key), r.value.as_deref()));
    }
    let mut bytes = builder.build()?;
    // Leadership check, epoch and append under the partition's state lock.
    let leadership = part
        .lock_for_append(1, 1)
        .map_err(|_| AppendError::NoPartition(partition))?;
    let info = part.log.append(&mut bytes, leadership.epoch(), now)?;
    drop(leadership);
    broker.notify_data();
    if part.after_leader_append() {
        broker.notify_hw();
    }
    Ok((part, info.last_offset.get()))
}

/// How long a coordinator reply waits for its records to be replicated.
const COMMIT_REPLICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
