//! A partition this broker hosts: its log, the topic settings that govern
//! appends to it, and its replication state.
//!
//! # Lock discipline (Kafka's `leaderIsrUpdateLock`)
//!
//! The replication state ([`samsa_replica::ReplicaState`]: role, leader
//! epoch, committed and maximal ISR, follower progress, high watermark)
//! sits behind ONE `RwLock` per partition:
//!
//! * a leader append holds the **read** side across the leadership check,
//!   the leader epoch it stamps and the append itself
//!   ([`Partition::lock_for_append`]), so no role change can fall between
//!   them: a former leader can never append a batch stamped with a newer
//!   epoch;
//! * role changes (become leader/follower), ISR and high-watermark changes,
//!   follower progress, truncation and every follower-side application of a
//!   fetcher response take the **write** side; a fetcher response is applied
//!   only while the partition still follows the leader, in the epoch, the
//!   request was built for ([`Partition::follower_apply`]).
//!
//! Lock order: state, then the producer table, then the log's own locks.
//! Nothing that holds the state lock waits on replication, the metadata
//! quorum or another partition. The high watermark is also published in an
//! atomic, updated whenever a write guard is dropped, for lock-free reads
//! on the fetch path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use samsa_metadata::config::StaticConfig;
use samsa_metadata::PartitionImage;
use samsa_model::{BrokerId, LeaderEpoch, Offset, PartitionIndex, TopicId};
pub use samsa_replica::{
    AppendWait, EpochAnswer, FollowerFetch, IsrProposal, NotLeader, ReplicaState, Role, RoleChange,
    TruncationStep,
};
use samsa_replica::{Assignment, ReplicaLog};
use samsa_storage::{CompactionConfig, LogConfig, PartitionLog, StorageError};

/// Per-topic settings the produce path needs, resolved from topic overrides and
/// broker defaults.
#[derive(Clone, Debug)]
pub struct TopicSettings {
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub compact: bool,
    pub min_insync_replicas: usize,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` includes `delete`: retention applies.
    pub delete_retention: bool,
    /// `retention.ms`; -1 = unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 = unlimited.
    pub retention_bytes: i64,
    /// The cleaner's settings (used when `compact` is set).
    pub compaction: CompactionConfig,
    pub log: LogConfig,
}

impl TopicSettings {
    /// Resolves the settings of a topic with `overrides`.
    pub fn resolve(cfg: &StaticConfig, overrides: &BTreeMap<String, String>) -> TopicSettings {
        let get = |k: &str| cfg.topic_value(overrides, k).unwrap_or_default();
        let num = |k: &str, d: i64| get(k).trim().parse::<i64>().unwrap_or(d);
        let defaults = LogConfig::default();
        let segment_ms = num("segment.ms", defaults.segment_ms);
        let jitter = num("segment.jitter.ms", 0).clamp(0, segment_ms.max(1) - 1);
        TopicSettings {
            max_message_bytes: num("max.message.bytes", 1_048_588).max(0) as usize,
            log_append_time: get("message.timestamp.type").eq_ignore_ascii_case("LogAppendTime"),
            compact: get("cleanup.policy")
                .split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("compact")),
            min_insync_replicas: num("min.insync.replicas", 1).max(1) as usize,
            timestamp_before_max_ms: num("message.timestamp.before.max.ms", i64::MAX),
            timestamp_after_max_ms: num("message.timestamp.after.max.ms", 3_600_000),
            delete_retention: get("cleanup.policy")
                .split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("delete")),
            retention_ms: num("retention.ms", 604_800_000),
            retention_bytes: num("retention.bytes", -1),
            compaction: CompactionConfig {
                min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
                    .trim()
                    .parse()
                    .unwrap_or(0.5),
                min_compaction_lag_ms: num("min.compaction.lag.ms", 0),
                max_compaction_lag_ms: num("max.compaction.lag.ms", i64::MAX),
                delete_retention_ms: num("delete.retention.ms", 86_400_000),
                ..CompactionConfig::default()
            },
            log: LogConfig {
                segment_bytes: num("segment.bytes", defaults.segment_bytes as i64).max(1) as u64,
                segment_ms: segment_ms - jitter,
                index_interval_bytes: num("index.interval.bytes", 4096).clamp(0, u32::MAX as i64)
                    as u32,
                segment_index_bytes: num("segment.index.bytes", defaults.segment_index_bytes as i64)
                    .max(8) as u64,
                flush_messages: num("flush.messages", i64::MAX).max(1) as u64,
                flush_ms: num("flush.ms", i64::MAX).max(0) as u64,
                boot_id: boot_id(),
            },
        }
    }
}

/// This OS boot's identity, read once per process
/// ([`samsa_storage::LogConfig::boot_id`]).
fn boot_id() -> Option<u128> {
    static BOOT: std::sync::OnceLock<Option<u128>> = std::sync::OnceLock::new();
    *BOOT.get_or_init(samsa_storage::config::current_boot_id)
}

/// The partition log as the replication state machine sees it.
pub struct LogRef<'a>(pub &'a PartitionLog);

impl ReplicaLog for LogRef<'_> {
    type Error = StorageError;
    fn log_start(&self) -> Offset {
        self.0.log_start_offset()
    }
    fn log_end(&self) -> Offset {
        self.0.log_end_offset()
    }
    fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.0.latest_epoch()
    }
    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        self.0.end_offset_for_epoch(epoch)
    }
    fn assign_epoch(&mut self, epoch: LeaderEpoch) -> Result<(), StorageError> {
        self.0.assign_epoch(epoch)
    }
    fn truncate_to(&mut self, offset: Offset) -> Result<(), StorageError> {
        self.0.truncate_to(offset)
    }
}

/// The write side of a partition's state lock; publishes the high
/// watermark when dropped.
pub struct StateWrite<'a> {
    guard: RwLockWriteGuard<'a, ReplicaState>,
    hw: &'a AtomicI64,
}

impl std::ops::Deref for StateWrite<'_> {
    type Target = ReplicaState;
    fn deref(&self) -> &ReplicaState {
        &self.guard
    }
}

impl std::ops::DerefMut for StateWrite<'_> {
    fn deref_mut(&mut self) -> &mut ReplicaState {
        &mut self.guard
    }
}

impl Drop for StateWrite<'_> {
    fn drop(&mut self) {
        self.hw
            .store(self.guard.high_watermark().get(), Ordering::Release);
    }
}

/// The read side of a partition's state lock, taken by a leader append
/// after the leadership check: hold it until the append is done.
pub struct AppendGuard<'a> {
    _guard: RwLockReadGuard<'a, ReplicaState>,
    epoch: LeaderEpoch,
}

impl AppendGuard<'_> {
    /// The leader epoch to stamp the batch with.
    pub fn epoch(&self) -> LeaderEpoch {
        self.epoch
    }
}

/// A hosted partition.
pub struct Partition {
    pub topic: String,
    pub topic_id: TopicId,
    pub index: PartitionIndex,
    /// The log. Replaced only when a replica moves to another log directory
    /// (AlterReplicaLogDirs), under the write side of `state`, so a leader
    /// append (read side) always reaches the log it checked leadership on.
    log: RwLock<Arc<PartitionLog>>,
    settings: RwLock<Arc<TopicSettings>>,
    /// The replication state: the one lock (see the module docs).
    state: RwLock<ReplicaState>,
    /// The high watermark as of the last write to `state`.
    hw: AtomicI64,
    /// Its log directory failed (KIP-858): the log's writer is stopped,
    /// reads are refused with KAFKA_STORAGE_ERROR and it fetches nothing
    /// as a follower, until the process restarts.
    offline: AtomicBool,
    /// This topic's traffic counters (`/metrics`), taken on first use.
    counters: std::sync::OnceLock<samsa_metrics::TopicCounters>,
}

impl Partition {
    /// Wraps an open log; `me` is this broker.
    pub fn new(
        topic: String,
        topic_id: TopicId,
        index: PartitionIndex,
        log: PartitionLog,
        settings: TopicSettings,
        me: BrokerId,
        leader_epoch: LeaderEpoch,
    ) -> Partition {
        Partition {
            topic,
            topic_id,
            index,
            log: RwLock::new(Arc::new(log)),
            settings: RwLock::new(Arc::new(settings)),
            state: RwLock::new(ReplicaState::new(me, leader_epoch, Offset(0))),
            hw: AtomicI64::new(0),
            offline: AtomicBool::new(false),
            counters: std::sync::OnceLock::new(),
        }
    }

    /// The topic's traffic counters in `metrics`: looked up once, then
    /// only atomics on the produce and fetch paths.
    pub fn counters(&self, metrics: &samsa_metrics::Metrics) -> &samsa_metrics::TopicCounters {
        self.counters
            .get_or_init(|| metrics.topic_counters(&self.topic))
    }

    /// Takes the partition offline because its log directory failed: its
    /// log's writer stops (produce answers KAFKA_STORAGE_ERROR), reads are
    /// refused ([`crate::errors::check_leader`]) and no fetcher serves it.
    /// True when it was online.
    pub fn take_offline(&self) -> bool {
        // Under the write side of the state lock: no append is between its
        // leadership check and its write, and a fetcher response being
        // applied finishes first.
        let _state = self.state_mut();
        if self.offline.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.log().mark_failed();
        true
    }

    /// Whether its log directory failed ([`Self::take_offline`]).
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    /// The partition's log. Take it after the state lock when the two go
    /// together (an append): a move to another log directory swaps it under
    /// the write side of that lock.
    pub fn log(&self) -> Arc<PartitionLog> {
        match self.log.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Puts `log` in place of the current log (a finished move to another
    /// log directory); the caller holds the write side of the state lock
    /// (`_state`), so no append or follower write is in progress. Returns
    /// the log replaced.
    pub fn replace_log(
        &self,
        _state: &mut StateWrite<'_>,
        log: Arc<PartitionLog>,
    ) -> Arc<PartitionLog> {
        let mut g = match self.log.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        std::mem::replace(&mut *g, log)
    }

    /// The current topic settings.
    pub fn settings(&self) -> Arc<TopicSettings> {
        match self.settings.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the topic settings (a config change at run time).
    pub fn set_settings(&self, settings: TopicSettings) {
        self.log().set_config(settings.log);
        match self.settings.write() {
            Ok(mut g) => *g = Arc::new(settings),
            Err(p) => *p.into_inner() = Arc::new(settings),
        }
    }

    /// The replication state, read side.
    pub fn state(&self) -> RwLockReadGuard<'_, ReplicaState> {
        match self.state.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The replication state, write side.
    pub fn state_mut(&self) -> StateWrite<'_> {
        let guard = match self.state.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        StateWrite {
            guard,
            hw: &self.hw,
        }
    }

    /// The leader epoch of the partition's current assignment.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.state().leader_epoch()
    }

    /// The leader epoch, if this broker leads the partition.
    pub fn led_epoch(&self) -> Option<LeaderEpoch> {
        let st = self.state();
        st.is_leader().then(|| st.leader_epoch())
    }

    /// Where an append made as leader in `epoch`, ending at `last_offset`,
    /// stands ([`ReplicaState::append_wait`], under one read of the lock).
    pub fn append_wait(&self, epoch: LeaderEpoch, last_offset: i64, min_isr: usize) -> AppendWait {
        self.state()
            .append_wait(epoch, last_offset, min_isr, self.log().log_end_offset())
    }

    /// The high watermark (never above the log end).
    pub fn high_watermark(&self) -> Offset {
        let end = self.log().log_end_offset().get();
        Offset(self.hw.load(Ordering::Acquire).min(end))
    }

    /// A copy of the current role.
    pub fn role(&self) -> Role {
        self.state().role().clone()
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        self.state().is_leader()
    }

    /// Starts from the persisted high watermark (clamped to the log).
    pub fn load_high_watermark(&self) {
        let start = self.log().log_start_offset().get();
        let hw = self
            .log()
            .read_high_watermark()
            .map_or(start, |o| o.get())
            .max(start);
        self.state_mut().set_high_watermark(Offset(hw));
    }

    /// Persists the high watermark (Kafka's replication-offset checkpoint).
    pub fn checkpoint_high_watermark(&self) -> Result<(), samsa_storage::StorageError> {
        self.log().write_high_watermark(self.high_watermark())
    }

    /// Brings the role in line with the partition's image (write lock).
    pub fn apply_image(&self, p: &PartitionImage, now_ms: i64) -> RoleChange {
        let assignment = Assignment {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
        };
        let mut st = self.state_mut();
        match st.apply_assignment(&assignment, &mut LogRef(&self.log()), now_ms) {
            Ok(RoleChange::BecameLeader) => {
                // Producer state needs no rebuild: the log kept it current
                // from the batches this replica stored.
                RoleChange::BecameLeader
            }
            Ok(change) => change,
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.index.get(), error = %e, "recording the leader epoch; the partition stays offline");
                RoleChange::WentOffline
            }
        }
    }

    /// Checks that a produce may append here (this broker leads; with
    /// acks=all the ISR is at least `min.insync.replicas`) and returns the
    /// read side of the state lock with the epoch to stamp: hold it across
    /// the append, then call [`Self::after_leader_append`].
    pub fn lock_for_append(
        &self,
        acks: i16,
        min_insync: usize,
    ) -> Result<AppendGuard<'_>, NotLeader> {
        let guard = self.state();
        let epoch = guard.check_append(acks, min_insync)?;
        Ok(AppendGuard {
            _guard: guard,
            epoch,
        })
    }

    /// The committed ISR size while this broker leads (None otherwise).
    pub fn isr_len(&self) -> Option<usize> {
        self.state().isr_len()
    }

    /// After a leader append: advances the high watermark (at once when the
    /// ISR is this broker alone). Returns whether it moved.
    pub fn after_leader_append(&self) -> bool {
        self.state_mut().advance_hw(self.log().log_end_offset())
    }

    /// A follower fetched from `fetch_offset` naming `fetch_epoch` (None =
    /// unchecked) with its broker epoch (-1 = unknown): records its
    /// progress, advances the high watermark. A fetch for another leader
    /// epoch changes nothing.
    pub fn follower_fetched(
        &self,
        follower: BrokerId,
        follower_broker_epoch: i64,
        fetch_epoch: Option<LeaderEpoch>,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Result<FollowerFetch, NotLeader> {
        let mut st = self.state_mut();
        if fetch_epoch.is_some_and(|e| e != st.leader_epoch()) {
            return Ok(FollowerFetch {
                hw_moved: false,
                expand: None,
            });
        }
        st.follower_fetched(
            follower,
            follower_broker_epoch,
            Offset(fetch_offset),
            self.log().log_end_offset(),
            now_ms,
        )
    }

    /// ISR members that have not caught up for `lag_max_ms`: the ISR without
    /// them, if any fell behind (and no ISR change is in flight).
    pub fn lagging_isr(&self, now_ms: i64, lag_max_ms: i64) -> Option<Vec<BrokerId>> {
        self.state()
            .lagging_isr(self.log().log_end_offset(), now_ms, lag_max_ms)
    }

    /// Records `isr` as the ISR change in flight (it counts for the high
    /// watermark from now on, KIP-497); `None` when not leading or another
    /// change is in flight.
    pub fn propose_isr(&self, isr: Vec<BrokerId>) -> Option<IsrProposal> {
        self.state_mut().propose_isr(isr)
    }

    /// The controller answered `proposal`.
    pub fn isr_change_done(&self, proposal: &IsrProposal) {
        let mut st = self.state_mut();
        st.isr_change_done(proposal);
        st.advance_hw(self.log().log_end_offset());
    }

    /// The follower's leader and epoch, with whether it has truncated.
    /// None while the partition is offline (its directory failed).
    pub fn follower_of(&self) -> Option<(BrokerId, LeaderEpoch, bool)> {
        if self.is_offline() {
            return None;
        }
        self.state().follower_of()
    }

    /// Applies a fetcher response built as follower of `(leader, epoch)`:
    /// runs `f` under the write lock if the partition still follows that
    /// leader in that epoch (and has truncated for it); otherwise drops the
    /// response and returns `None`.
    pub fn follower_apply<R>(
        &self,
        leader: BrokerId,
        epoch: LeaderEpoch,
        f: impl FnOnce(&mut ReplicaState, &PartitionLog) -> R,
    ) -> Option<R> {
        let mut st = self.state_mut();
        if !st.is_current_fetch(leader, epoch) {
            return None;
        }
        Some(f(&mut st, &self.log()))
    }

    /// Starts KIP-279 truncation as follower of `(leader, epoch)`.
    pub fn start_truncation(&self, leader: BrokerId, epoch: LeaderEpoch) -> TruncationStep {
        self.state_mut()
            .start_truncation(leader, epoch, &LogRef(&self.log()))
    }

    /// Applies an OffsetForLeaderEpoch answer to a request built as follower
    /// of `(leader, epoch)` (dropped when no longer current).
    pub fn apply_epoch_answer(
        &self,
        leader: BrokerId,
        epoch: LeaderEpoch,
        answer: EpochAnswer,
    ) -> Result<TruncationStep, StorageError> {
        // A cut also takes the log's producer state back to it.
        self.state_mut()
            .apply_epoch_answer(leader, epoch, answer, &mut LogRef(&self.log()))
    }

    /// The offset below which retention and DeleteRecords may delete: never
    /// at or above the high watermark.
    pub fn deletable_below(&self) -> Offset {
        self.high_watermark()
    }
}

#[cfg(test)]
mod tests;
