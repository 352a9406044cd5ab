//! The coordinator runtime (Kafka's `CoordinatorRuntime`): hosts a sans-I/O
//! coordinator state machine per partition of an internal topic this broker
//! leads — the group coordinator on `__consumer_offsets`, the transaction
//! coordinator on `__transaction_state` — generic over [`ShardMachine`].
//!
//! One [`Shard`] per led partition, each with its own machine behind its own
//! async lock and its own task (timers, loading). A partition gained (or led
//! again in a new leader epoch) is replayed from its log on a blocking thread
//! while its requests are answered COORDINATOR_LOAD_IN_PROGRESS; a partition
//! lost is unloaded (its parked requests answered NOT_COORDINATOR).
//!
//! Contract kept for every machine: every `Append` output is in the log
//! before any later output of that shard is acted on — appends happen while
//! the shard's lock is held (a `tokio` mutex: never a std mutex across an
//! append, a replay or a wait), and replies (and effects, e.g. transaction
//! markers) are acted on only after the appends before them are replicated.
//! After a failed append the shard alone is unloaded and replayed again.

pub(crate) mod log;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use samsa_coordinator::{codes, CommitId, Record, ReplyToken, TxnProducer};
use samsa_model::batch::BatchHeader;
use samsa_model::{LeaderEpoch, TimestampMs};
use tokio::sync::{oneshot, Notify};

use crate::broker::Broker;
use crate::handlers::produce::now_ms;
use crate::partition::Partition;

/// How long a coordinator reply waits for its records to be replicated.
const COMMIT_REPLICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest sleep of a shard's task and of the leadership follower between checks.
const IDLE_CHECK_MS: i64 = 1000;
/// Partitions of one runtime replayed at the same time (each on a blocking
/// thread); the others wait their turn, still answering
/// COORDINATOR_LOAD_IN_PROGRESS (as Kafka's `group.coordinator.threads`
/// bounds its loads).
const LOADS_CONCURRENT_MAX: usize = 4;

/// One output of a machine, as the runtime acts on it.
pub(crate) enum Step<R, E> {
    /// Append `records` as one batch to the shard's partition; `commit`, if
    /// any, is reported back through [`ShardMachine::commit_replicated`] once
    /// the batch is replicated. With `producer` the batch is that
    /// producer's transactional batch (TxnOffsetCommit), written with its id
    /// and epoch and no sequence, as Kafka's group coordinator writes it.
    Append {
        records: Vec<Record>,
        commit: Option<CommitId>,
        producer: Option<TxnProducer>,
    },
    /// Answer the request that carried `token`.
    Reply { token: ReplyToken, response: R },
    /// Something the machine asks of the broker (after the appends before it
    /// are replicated), carried out by [`CoordinatorKind::effect`].
    Effect(E),
}

/// A coordinator state machine for one partition of an internal topic.
pub(crate) trait ShardMachine: Send + 'static {
    type Output: Send;
    type Response: Send + 'static;
    type Effect: Send + 'static;
    /// How the runtime acts on `output`.
    fn step(output: Self::Output) -> Step<Self::Response, Self::Effect>;
    /// `response` failed with `code` (an append failed, the shard was lost).
    fn with_error(response: Self::Response, code: i16) -> Self::Response;
    /// Feeds one record of `partition`, in log order, while loading, with the
    /// header of its batch (producer id and epoch, transactional and control
    /// flags: a control batch's record is a transaction marker).
    fn replay(
        &mut self,
        partition: u32,
        batch: &BatchHeader,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), String>;
    /// The replay is done: serve.
    fn finish_loading(&mut self, now: TimestampMs) -> Vec<Self::Output>;
    /// Stops serving; returns the answers of parked requests.
    fn unload(&mut self) -> Vec<Self::Output>;
    /// Fires what is due at `now`.
    fn tick(&mut self, now: TimestampMs) -> Vec<Self::Output>;
    /// When [`ShardMachine::tick`] should run next.
    fn next_deadline(&self) -> Option<TimestampMs>;
    /// The batch carrying `commit` is replicated.
    fn commit_replicated(&mut self, _commit: CommitId) {}
}

/// What one coordinator (groups, transactions) tells the runtime about itself.
pub(crate) trait CoordinatorKind: Send + Sync + 'static {
    type Machine: ShardMachine;
    /// The internal topic.
    fn topic(&self) -> &'static str;
    /// A machine for `partition`, led here in `epoch`, in its loading state.
    fn loading(&self, partition: u32, epoch: LeaderEpoch) -> Self::Machine;
    /// A machine answering NOT_COORDINATOR to everything.
    fn unloaded(&self) -> Self::Machine;
    /// Carries out an effect of the shard of `partition` (led in `epoch`).
    fn effect(
        &self,
        _partition: u32,
        _epoch: LeaderEpoch,
        _effect: <Self::Machine as ShardMachine>::Effect,
    ) {
    }
}

type Response<K> = <<K as CoordinatorKind>::Machine as ShardMachine>::Response;
type Output<K> = <<K as CoordinatorKind>::Machine as ShardMachine>::Output;
/// A report to a machine kept while its shard loads (see
/// [`CoordinatorRuntime::notify_or_defer`]).
type Deferred<M> = Box<dyn FnOnce(&mut M, TimestampMs) -> Vec<<M as ShardMachine>::Output> + Send>;

/// Reports kept while a shard loads, to apply once it is loaded; beyond this
/// the shard replays its log again instead (the reports are in it).
const DEFERRED_CALLS_MAX: usize = 65_536;

/// The machine of one partition, led here in `epoch`.
pub(crate) struct Shard<M: ShardMachine> {
    partition: u32,
    epoch: LeaderEpoch,
    state: tokio::sync::Mutex<ShardState<M>>,
    /// Replayed and serving (read without the lock by FindCoordinator).
    loaded: AtomicBool,
    /// Leadership moved away (or shutdown): the shard's task ends.
    closed: AtomicBool,
    /// Wakes the shard's task (a call may have moved its next deadline).
    wake: Notify,
}

struct ShardState<M: ShardMachine> {
    /// A loading machine (requests get COORDINATOR_LOAD_IN_PROGRESS) until
    /// the replay finishes and the replayed one takes its place.
    machine: M,
    /// Whether the shard's task must (re)load the partition from its log.
    load_wanted: bool,
    /// Appended commits not yet replicated, in log order: (commit, last offset).
    unreplicated: VecDeque<(CommitId, i64)>,
    /// Reports made while the shard loads (at most [`DEFERRED_CALLS_MAX`]),
    /// applied in order once it is loaded.
    deferred: Vec<Deferred<M>>,
    /// More reports than [`DEFERRED_CALLS_MAX`] came: the loaded machine is
    /// replayed again instead.
    deferred_overflowed: bool,
}

impl<M: ShardMachine> Shard<M> {
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
    fn led_partition(&self, broker: &Broker, topic: &str) -> Option<Arc<Partition>> {
        log::internal_partition(broker, topic, self.partition)
            .filter(|p| p.led_epoch() == Some(self.epoch))
    }

    /// Reports commits whose batch the high watermark has passed, in log order.
    fn promote(&self, part: Option<&Partition>, st: &mut ShardState<M>) {
        let Some(part) = part else { return };
        if part.led_epoch() != Some(self.epoch) {
            return;
        }
        let hw = part.high_watermark().get();
        while let Some(&(id, last)) = st.unreplicated.front() {
            if last >= hw {
                break;
            }
            st.unreplicated.pop_front();
            st.machine.commit_replicated(id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The runtime of one coordinator: its shards plus the reply plumbing.
pub(crate) struct CoordinatorRuntime<K: CoordinatorKind> {
    kind: Arc<K>,
    /// The shards by partition (held only to look up or swap an `Arc`, never
    /// across a call).
    shards: RwLock<BTreeMap<u32, Arc<Shard<K::Machine>>>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Response<K>>>>,
    next_token: AtomicU64,
    /// Wakes the leadership follower ([`CoordinatorRuntime::run`]).
    leadership_wake: Notify,
    /// Permits to replay a partition ([`LOADS_CONCURRENT_MAX`]).
    load_permits: tokio::sync::Semaphore,
    /// Test hook: partitions whose replay waits until released.
    #[cfg(test)]
    pub(crate) load_gate: Mutex<BTreeMap<u32, Arc<tokio::sync::Semaphore>>>,
}

impl<K: CoordinatorKind> CoordinatorRuntime<K> {
    /// A runtime with no shard yet (they follow leadership once
    /// [`CoordinatorRuntime::run`] runs).
    pub(crate) fn new(kind: K) -> Self {
        CoordinatorRuntime {
            kind: Arc::new(kind),
            shards: RwLock::new(BTreeMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            leadership_wake: Notify::new(),
            load_permits: tokio::sync::Semaphore::new(LOADS_CONCURRENT_MAX),
            #[cfg(test)]
            load_gate: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn kind(&self) -> &K {
        &self.kind
    }

    /// Wakes the leadership follower (after a role change: it loads and
    /// unloads the shards whose leadership moved).
    pub(crate) fn wake(&self) {
        self.leadership_wake.notify_one();
    }

    fn shards(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u32, Arc<Shard<K::Machine>>>> {
        match self.shards.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn shards_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u32, Arc<Shard<K::Machine>>>> {
        match self.shards.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The shard of `partition`, if this broker leads it.
    pub(crate) fn shard(&self, partition: u32) -> Option<Arc<Shard<K::Machine>>> {
        self.shards().get(&partition).cloned()
    }

    /// The shards (partitions led here), in partition order.
    pub(crate) fn all_shards(&self) -> Vec<Arc<Shard<K::Machine>>> {
        self.shards().values().cloned().collect()
    }

    /// Whether this broker still has the shard of `partition` led in `epoch`.
    pub(crate) fn leads(&self, partition: u32, epoch: LeaderEpoch) -> bool {
        self.shard(partition)
            .is_some_and(|s| !s.is_closed() && s.epoch == epoch)
    }

    /// Whether the shard of `partition` is loaded and serving here.
    pub(crate) fn serves(&self, partition: u32) -> bool {
        self.shard(partition)
            .is_some_and(|s| s.loaded.load(Ordering::Acquire))
    }

    /// A reply token and the receiver of its answer.
    pub(crate) fn token(&self) -> (ReplyToken, oneshot::Receiver<Response<K>>) {
        let id = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        (ReplyToken(id), rx)
    }

    /// Runs one state-changing call on the shard of `partition` and waits for
    /// its reply (which may come from a later call or a timer). A partition
    /// not led here is answered by an unloaded machine (NOT_COORDINATOR), one
    /// still loading by its loading machine (COORDINATOR_LOAD_IN_PROGRESS).
    pub(crate) async fn call<F>(&self, broker: &Broker, partition: u32, f: F) -> Option<Response<K>>
    where
        F: FnOnce(&mut K::Machine, TimestampMs, ReplyToken) -> Vec<Output<K>>,
    {
        let (token, rx) = self.token();
        match self.shard(partition).filter(|s| !s.is_closed()) {
            Some(shard) => {
                let mut st = shard.state.lock().await;
                shard.promote(
                    shard.led_partition(broker, self.kind.topic()).as_deref(),
                    &mut st,
                );
                let outputs = f(&mut st.machine, now_ms(), token);
                self.execute(broker, &shard, &mut st, outputs);
                drop(st);
                shard.wake.notify_one();
            }
            None => {
                let mut m = self.kind.unloaded();
                let outputs = f(&mut m, now_ms(), token);
                self.answer_detached(outputs, None);
            }
        }
        rx.await.ok()
    }

    /// Runs a call that answers no request (a report to the machine, e.g.
    /// markers written) on the shard of `partition`, if it is still the one
    /// led in `epoch`.
    pub(crate) async fn notify<F>(&self, broker: &Broker, partition: u32, epoch: LeaderEpoch, f: F)
    where
        F: FnOnce(&mut K::Machine, TimestampMs) -> Vec<Output<K>>,
    {
        let Some(shard) = self
            .shard(partition)
            .filter(|s| !s.is_closed() && s.epoch == epoch)
        else {
            return;
        };
        let mut st = shard.state.lock().await;
        if st.load_wanted {
            return;
        }
        let outputs = f(&mut st.machine, now_ms());
        self.execute(broker, &shard, &mut st, outputs);
        drop(st);
        shard.wake.notify_one();
    }

    /// Runs a call that answers no request on the shard of `partition`,
    /// whatever its leader epoch; a shard still loading keeps the call (at
    /// most [`DEFERRED_CALLS_MAX`], then it replays again) and applies it
    /// once loaded. For reports of something already in the partition's log
    /// (a transaction marker written there): applying one the replay has
    /// also read must be harmless. A partition not led here has no shard,
    /// and its next leader replays the log.
    pub(crate) async fn notify_or_defer<F>(&self, broker: &Broker, partition: u32, f: F)
    where
        F: FnOnce(&mut K::Machine, TimestampMs) -> Vec<Output<K>> + Send + 'static,
    {
        let Some(shard) = self.shard(partition).filter(|s| !s.is_closed()) else {
            return;
        };
        let mut st = shard.state.lock().await;
        if st.load_wanted {
            if st.deferred.len() < DEFERRED_CALLS_MAX {
                st.deferred.push(Box::new(f));
            } else {
                st.deferred_overflowed = true;
            }
            return;
        }
        shard.promote(
            shard.led_partition(broker, self.kind.topic()).as_deref(),
            &mut st,
        );
        let outputs = f(&mut st.machine, now_ms());
        self.execute(broker, &shard, &mut st, outputs);
        drop(st);
        shard.wake.notify_one();
    }

    /// Runs a read-only call on the shard of `partition` (or on an unloaded
    /// machine when it is not led here).
    pub(crate) async fn read<R>(
        &self,
        broker: &Broker,
        partition: u32,
        f: impl FnOnce(&K::Machine) -> R,
    ) -> R {
        match self.shard(partition) {
            Some(shard) => {
                let mut st = shard.state.lock().await;
                shard.promote(
                    shard.led_partition(broker, self.kind.topic()).as_deref(),
                    &mut st,
                );
                f(&st.machine)
            }
            None => f(&self.kind.unloaded()),
        }
    }

    /// Runs a read-only call on every shard.
    pub(crate) async fn read_all<R>(&self, f: impl Fn(&K::Machine) -> R) -> Vec<R> {
        let shards = self.all_shards();
        let mut out = Vec::with_capacity(shards.len());
        for shard in shards {
            let st = shard.state.lock().await;
            out.push(f(&st.machine));
        }
        out
    }

    /// Acts on a shard's outputs in order: appends (under the shard's lock),
    /// then replies and effects. A reply or effect that follows appends is
    /// acted on only once every in-sync replica has them (the high watermark
    /// passed them, as Kafka's coordinator waits for acks=all), from a task,
    /// so no lock is held while waiting for replication; that task first
    /// reports the replicated commits, so a client that got its commit
    /// acknowledged reads it back. After a failed append the shard is
    /// unloaded and reloaded from its log.
    fn execute(
        &self,
        broker: &Broker,
        shard: &Arc<Shard<K::Machine>>,
        st: &mut ShardState<K::Machine>,
        outputs: Vec<Output<K>>,
    ) {
        let mut failed = false;
        // The last append so far that is not yet known to be replicated.
        let mut wait: Option<crate::replica::ReplicationWait> = None;
        for output in outputs {
            match K::Machine::step(output) {
                Step::Append {
                    records,
                    commit,
                    producer,
                } => {
                    if failed {
                        continue;
                    }
                    let topic = self.kind.topic();
                    let appended = log::append(
                        broker,
                        topic,
                        shard.partition,
                        shard.epoch,
                        &records,
                        producer,
                    );
                    match appended {
                        Ok((part, last)) => {
                            if let Some(id) = commit {
                                st.unreplicated.push_back((id, last));
                            }
                            shard.promote(Some(&part), st);
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
                            // retry, and appends work again once space is
                            // freed.
                            crate::disk::note_storage_error(&e);
                            failed = true;
                        }
                        Err(e) => {
                            tracing::error!(topic, partition = shard.partition, error = %e, "appending to a coordinator partition failed; reloading it");
                            failed = true;
                        }
                    }
                }
                Step::Reply { token, response } => {
                    let response = if failed {
                        K::Machine::with_error(response, codes::NOT_COORDINATOR)
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
                                    shard.promote(Some(&part), &mut st);
                                    response
                                } else {
                                    K::Machine::with_error(
                                        response,
                                        codes::COORDINATOR_NOT_AVAILABLE,
                                    )
                                };
                                let _ = tx.send(response);
                            });
                        }
                        _ => {
                            let _ = tx.send(response);
                        }
                    }
                }
                Step::Effect(effect) => {
                    if failed {
                        continue;
                    }
                    match (&wait, tokio::runtime::Handle::try_current()) {
                        (Some((part, last, min_isr, epoch)), Ok(handle)) => {
                            let replicated =
                                replication_wait(broker, part.clone(), *last, *min_isr, *epoch);
                            let kind = self.kind.clone();
                            let (p, e) = (shard.partition, shard.epoch);
                            handle.spawn(async move {
                                // Not replicated in time: the shard is lost or
                                // reloads; the new shard re-issues the effect.
                                if replicated.await {
                                    kind.effect(p, e, effect);
                                }
                            });
                        }
                        _ => self.kind.effect(shard.partition, shard.epoch, effect),
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
    fn reload(&self, shard: &Shard<K::Machine>, st: &mut ShardState<K::Machine>) {
        shard.loaded.store(false, Ordering::Release);
        let parked = st.machine.unload();
        self.answer_detached(parked, Some(codes::NOT_COORDINATOR));
        st.machine = self.kind.loading(shard.partition, shard.epoch);
        st.unreplicated.clear();
        st.load_wanted = true;
        shard.wake.notify_one();
    }

    /// Sends the replies among `outputs` (with `error`, if given). Used for
    /// machines that cannot append: unloaded ones answering requests for
    /// partitions not served here, and the parked requests of an unloaded
    /// shard (their clients find the coordinator again and retry).
    pub(crate) fn answer_detached(&self, outputs: Vec<Output<K>>, error: Option<i16>) {
        for o in outputs {
            if let Step::Reply { token, response } = K::Machine::step(o) {
                if let Some(tx) = lock(&self.pending).remove(&token.0) {
                    let response = match error {
                        Some(code) => K::Machine::with_error(response, code),
                        None => response,
                    };
                    let _ = tx.send(response);
                }
            }
        }
    }

    /// Follows the internal topic's leadership until `shutdown`: creates a
    /// shard (and its task) for each partition gained, closes and unloads the
    /// shards of partitions lost. A partition led again in a new leader epoch
    /// is lost and gained: another leader may have appended to it meanwhile.
    pub(crate) async fn run(
        self: Arc<Self>,
        broker: Arc<Broker>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let lost = self.follow_leadership(&broker);
            for shard in lost {
                let mut st = shard.state.lock().await;
                let parked = st.machine.unload();
                self.answer_detached(parked, Some(codes::NOT_COORDINATOR));
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = self.leadership_wake.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(IDLE_CHECK_MS as u64)) => {}
            }
        }
        let all: Vec<_> = std::mem::take(&mut *self.shards_mut())
            .into_values()
            .collect();
        for shard in all {
            shard.close();
        }
    }

    /// Updates the shard map to the partitions led now; returns the shards
    /// removed (closed, still to be unloaded).
    fn follow_leadership(self: &Arc<Self>, broker: &Arc<Broker>) -> Vec<Arc<Shard<K::Machine>>> {
        let topic = self.kind.topic();
        let led = log::led_partitions(broker, topic);
        let mut shards = self.shards_mut();
        let lost: Vec<u32> = shards
            .iter()
            .filter(|(p, s)| led.get(p) != Some(&s.epoch))
            .map(|(p, _)| *p)
            .collect();
        let removed: Vec<_> = lost.iter().filter_map(|p| shards.remove(p)).collect();
        let mut gained = BTreeSet::new();
        for (p, epoch) in led {
            if shards.contains_key(&p) {
                continue;
            }
            let shard = Arc::new(Shard {
                partition: p,
                epoch,
                state: tokio::sync::Mutex::new(ShardState {
                    machine: self.kind.loading(p, epoch),
                    load_wanted: true,
                    unreplicated: VecDeque::new(),
                    deferred: Vec::new(),
                    deferred_overflowed: false,
                }),
                loaded: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                wake: Notify::new(),
            });
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
                topic,
                ?gained,
                lost = ?lost,
                "coordinator partition leadership moved; shards updated"
            );
        }
        removed
    }

    /// A shard's task: loads the partition (and reloads it after a failed
    /// append), then fires the shard's timers, until the shard is closed.
    async fn run_shard(self: Arc<Self>, broker: Arc<Broker>, shard: Arc<Shard<K::Machine>>) {
        loop {
            if shard.is_closed() {
                return;
            }
            let (load_wanted, deadline) = {
                let st = shard.state.lock().await;
                (st.load_wanted, st.machine.next_deadline())
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
            shard.promote(
                shard.led_partition(&broker, self.kind.topic()).as_deref(),
                &mut st,
            );
            let outputs = st.machine.tick(now_ms());
            self.execute(&broker, &shard, &mut st, outputs);
        }
    }

    /// Replays the shard's partition on a blocking thread (the shard answers
    /// COORDINATOR_LOAD_IN_PROGRESS meanwhile; other shards are untouched),
    /// then swaps the replayed machine in. Returns false if the replay
    /// failed (the task retries).
    async fn load_shard(&self, broker: &Arc<Broker>, shard: &Arc<Shard<K::Machine>>) -> bool {
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
        let topic = self.kind.topic();
        let mut m = self.kind.loading(p, shard.epoch);
        let started = std::time::Instant::now();
        let replayed = tokio::task::spawn_blocking(move || {
            log::replay_partition(&b, topic, p, &mut |h, k, v| m.replay(p, h, k, v)).map(|n| (m, n))
        })
        .await;
        let (mut m, records) = match replayed {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::error!(topic, partition = p, error = %e, "loading coordinator partition; retrying");
                return false;
            }
            Err(e) => {
                tracing::error!(topic, partition = p, error = %e, "coordinator load task failed; retrying");
                return false;
            }
        };
        let mut st = shard.state.lock().await;
        if shard.is_closed() {
            return true;
        }
        let now = now_ms();
        let mut outputs = m.finish_loading(now);
        // The loading machine answered every request with an error and holds
        // nothing.
        st.machine = m;
        st.load_wanted = false;
        // Reports made during the replay, which may or may not have read
        // what they report: applying one twice must be harmless (see
        // `notify_or_defer`).
        let deferred = std::mem::take(&mut st.deferred);
        if std::mem::take(&mut st.deferred_overflowed) {
            self.answer_detached(outputs, Some(codes::NOT_COORDINATOR));
            self.reload(shard, &mut st);
            return true;
        }
        for f in deferred {
            outputs.extend(f(&mut st.machine, now));
        }
        shard.loaded.store(true, Ordering::Release);
        tracing::info!(
            topic,
            partition = p,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "coordinator partition loaded"
        );
        self.execute(broker, shard, &mut st, outputs);
        true
    }
}

/// Waits (for at most [`COMMIT_REPLICATION_WAIT`]) until the high watermark
/// of `part` passes `last` with at least `min_isr` in-sync replicas; true if
/// it did. The one place the coordinators wait on replication.
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
