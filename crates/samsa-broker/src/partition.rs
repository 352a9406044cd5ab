//! A partition this broker hosts: its log plus the topic settings that govern
//! appends to it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use samsa_metadata::config::StaticConfig;
use samsa_metadata::PartitionImage;
use samsa_model::{BrokerId, LeaderEpoch, Offset, PartitionIndex, TopicId};
use samsa_storage::{CompactionConfig, LogConfig, PartitionLog};

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

/// What the leader knows of one follower (Kafka's `Replica` state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset: the offset of its last fetch in this
    /// leader epoch; -1 until it fetched.
    pub log_end: i64,
    /// When the follower last was fully caught up (ms); 0 = never.
    pub caught_up_ms: i64,
    /// When it last fetched, and the leader's log end at that time.
    pub last_fetch_ms: i64,
    pub leader_end_at_last_fetch: i64,
}

/// The leader's side of replication for one partition.
#[derive(Clone, Debug)]
pub struct LeaderState {
    pub epoch: LeaderEpoch,
    pub partition_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub followers: HashMap<BrokerId, FollowerProgress>,
    /// The log end offset when this leader epoch began: a follower joins the
    /// ISR only once it reached it (Kafka's leader epoch start offset rule).
    pub epoch_start_offset: i64,
    /// An ISR change sent to the controller and not yet answered.
    pub isr_change_in_flight: bool,
}

/// This broker's role for a partition, from the metadata image.
#[derive(Clone, Debug)]
pub enum Role {
    Leader(LeaderState),
    /// Replicating from `leader`; `truncated` once the divergent tail (if any)
    /// was cut after the leader epoch began (KIP-279).
    Follower {
        leader: BrokerId,
        epoch: LeaderEpoch,
        truncated: bool,
    },
    /// No leader, or this broker is not a replica.
    Offline,
}

/// How [`Partition::apply_image`] changed the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleChange {
    Unchanged,
    BecameLeader,
    BecameFollower(BrokerId),
    WentOffline,
}

/// Why a leader-only operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotLeader {
    /// This broker does not lead the partition.
    NotLeader,
    /// acks=all and the ISR is smaller than `min.insync.replicas`.
    NotEnoughReplicas { isr: usize, min: usize },
}

/// A hosted partition.
pub struct Partition {
    pub topic: String,
    pub topic_id: TopicId,
    pub index: PartitionIndex,
    pub log: PartitionLog,
    settings: RwLock<Arc<TopicSettings>>,
    leader_epoch: RwLock<LeaderEpoch>,
    role: Mutex<Role>,
    /// The high watermark: records below it are on every ISR member.
    hw: AtomicI64,
}

impl Partition {
    /// Wraps an open log.
    pub fn new(
        topic: String,
        topic_id: TopicId,
        index: PartitionIndex,
        log: PartitionLog,
        settings: TopicSettings,
        leader_epoch: LeaderEpoch,
    ) -> Partition {
        Partition {
            topic,
            topic_id,
            index,
            log,
            settings: RwLock::new(Arc::new(settings)),
            leader_epoch: RwLock::new(leader_epoch),
            role: Mutex::new(Role::Offline),
            hw: AtomicI64::new(0),
        }
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
        self.log.set_config(settings.log);
        match self.settings.write() {
            Ok(mut g) => *g = Arc::new(settings),
            Err(p) => *p.into_inner() = Arc::new(settings),
        }
    }

    /// The leader epoch this broker leads the partition with.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        match self.leader_epoch.read() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        }
    }

    /// Updates the leader epoch.
    pub fn set_leader_epoch(&self, epoch: LeaderEpoch) {
        match self.leader_epoch.write() {
            Ok(mut g) => *g = epoch,
            Err(p) => *p.into_inner() = epoch,
        }
    }

    /// The high watermark (never above the log end).
    pub fn high_watermark(&self) -> Offset {
        let end = self.log.log_end_offset().get();
        Offset(self.hw.load(Ordering::Acquire).min(end))
    }

    fn set_hw(&self, hw: i64) {
        self.hw.store(hw, Ordering::Release);
    }

    fn role_lock(&self) -> MutexGuard<'_, Role> {
        match self.role.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A copy of the current role.
    pub fn role(&self) -> Role {
        self.role_lock().clone()
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        matches!(*self.role_lock(), Role::Leader(_))
    }

    /// Starts from the persisted high watermark (clamped to the log).
    pub fn load_high_watermark(&self) {
        let start = self.log.log_start_offset().get();
        let hw = self
            .log
            .read_high_watermark()
            .map_or(start, |o| o.get())
            .max(start);
        self.set_hw(hw);
    }

    /// Persists the high watermark (Kafka's replication-offset checkpoint).
    pub fn checkpoint_high_watermark(&self) -> Result<(), samsa_storage::StorageError> {
        self.log.write_high_watermark(self.high_watermark())
    }

    /// Brings the role in line with the partition's image. `me` is this broker.
    pub fn apply_image(&self, me: BrokerId, p: &PartitionImage, now_ms: i64) -> RoleChange {
        let mut role = self.role_lock();
        let leader_here = p.leader == me;
        let change = match (&mut *role, leader_here) {
            (Role::Leader(state), true) if state.epoch == p.leader_epoch => {
                // Same leadership: the ISR or replica set changed.
                state.partition_epoch = p.partition_epoch;
                state.isr = p.isr.clone();
                state.replicas = p.replicas.clone();
                state.followers.retain(|id, _| p.replicas.contains(id));
                for r in &p.replicas {
                    if *r != me {
                        state.followers.entry(*r).or_insert(FollowerProgress {
                            log_end: -1,
                            caught_up_ms: 0,
                            last_fetch_ms: 0,
                            leader_end_at_last_fetch: -1,
                        });
                    }
                }
                RoleChange::Unchanged
            }
            (_, true) => {
                if let Err(e) = self.log.assign_epoch(p.leader_epoch) {
                    tracing::error!(topic = %self.topic, partition = self.index.get(), error = %e, "recording the leader epoch");
                }
                let end = self.log.log_end_offset().get();
                let followers = p
                    .replicas
                    .iter()
                    .filter(|r| **r != me)
                    .map(|r| {
                        (
                            *r,
                            FollowerProgress {
                                log_end: -1,
                                caught_up_ms: if p.isr.contains(r) { now_ms } else { 0 },
                                last_fetch_ms: 0,
                                leader_end_at_last_fetch: -1,
                            },
                        )
                    })
                    .collect();
                *role = Role::Leader(LeaderState {
                    epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    followers,
                    epoch_start_offset: end,
                    isr_change_in_flight: false,
                });
                // Producer state needs no rebuild: the log kept it current
                // from the batches this replica stored.
                RoleChange::BecameLeader
            }
            (Role::Follower { leader, epoch, .. }, false)
                if *leader == p.leader && *epoch == p.leader_epoch =>
            {
                RoleChange::Unchanged
            }
            (_, false) if p.leader.get() >= 0 && p.replicas.contains(&me) => {
                *role = Role::Follower {
                    leader: p.leader,
                    epoch: p.leader_epoch,
                    truncated: false,
                };
                RoleChange::BecameFollower(p.leader)
            }
            (Role::Offline, false) => RoleChange::Unchanged,
            (_, false) => {
                *role = Role::Offline;
                RoleChange::WentOffline
            }
        };
        self.set_leader_epoch(p.leader_epoch);
        if let Role::Leader(state) = &mut *role {
            self.advance_hw(me, state);
        }
        change
    }

    /// Moves the high watermark to the smallest log end among the ISR.
    /// Returns whether it moved.
    fn advance_hw(&self, me: BrokerId, state: &LeaderState) -> bool {
        let mut candidate = self.log.log_end_offset().get();
        for r in &state.isr {
            if *r == me {
                continue;
            }
            match state.followers.get(r) {
                Some(f) if f.log_end >= 0 => candidate = candidate.min(f.log_end),
                _ => return false,
            }
        }
        let old = self.hw.load(Ordering::Acquire);
        if candidate > old {
            self.set_hw(candidate);
            true
        } else {
            false
        }
    }

    /// Checks that a produce may append here: this broker leads, and with
    /// acks=all the ISR is at least `min.insync.replicas`.
    pub fn check_produce(&self, acks: i16, min_insync: usize) -> Result<(), NotLeader> {
        match &*self.role_lock() {
            Role::Leader(state) => {
                if acks == -1 && state.isr.len() < min_insync {
                    Err(NotLeader::NotEnoughReplicas {
                        isr: state.isr.len(),
                        min: min_insync,
                    })
                } else {
                    Ok(())
                }
            }
            _ => Err(NotLeader::NotLeader),
        }
    }

    /// The ISR size while this broker leads (None otherwise).
    pub fn isr_len(&self) -> Option<usize> {
        match &*self.role_lock() {
            Role::Leader(state) => Some(state.isr.len()),
            _ => None,
        }
    }

    /// After a leader append: advances the high watermark (at once when the
    /// ISR is this broker alone). Returns whether it moved.
    pub fn after_leader_append(&self, me: BrokerId) -> bool {
        match &*self.role_lock() {
            Role::Leader(state) => self.advance_hw(me, state),
            _ => false,
        }
    }

    /// A follower fetched from `fetch_offset` in `epoch`: records its progress,
    /// advances the high watermark. Returns (hw moved, ISR expansion wanted).
    pub fn follower_fetched(
        &self,
        me: BrokerId,
        follower: BrokerId,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Result<(bool, Option<Vec<BrokerId>>), NotLeader> {
        let mut role = self.role_lock();
        let Role::Leader(state) = &mut *role else {
            return Err(NotLeader::NotLeader);
        };
        let end = self.log.log_end_offset().get();
        let Some(f) = state.followers.get_mut(&follower) else {
            return Err(NotLeader::NotLeader);
        };
        if fetch_offset >= end {
            f.caught_up_ms = now_ms;
        } else if f.leader_end_at_last_fetch >= 0 && fetch_offset >= f.leader_end_at_last_fetch {
            f.caught_up_ms = f.caught_up_ms.max(f.last_fetch_ms);
        }
        f.last_fetch_ms = now_ms;
        f.leader_end_at_last_fetch = end;
        f.log_end = fetch_offset.min(end);
        let follower_end = f.log_end;
        let moved = self.advance_hw(me, state);
        let hw = self.hw.load(Ordering::Acquire);
        let expand = (!state.isr.contains(&follower)
            && !state.isr_change_in_flight
            && follower_end >= hw
            && follower_end >= state.epoch_start_offset)
            .then(|| {
                let mut isr = state.isr.clone();
                isr.push(follower);
                isr
            });
        Ok((moved, expand))
    }

    /// ISR members that have not caught up for `lag_max_ms`: the ISR without
    /// them, if any fell behind (and no ISR change is in flight).
    pub fn lagging_isr(&self, me: BrokerId, now_ms: i64, lag_max_ms: i64) -> Option<Vec<BrokerId>> {
        let role = self.role_lock();
        let Role::Leader(state) = &*role else {
            return None;
        };
        if state.isr_change_in_flight {
            return None;
        }
        let end = self.log.log_end_offset().get();
        let keep: Vec<BrokerId> = state
            .isr
            .iter()
            .copied()
            .filter(|r| {
                *r == me
                    || state.followers.get(r).is_some_and(|f| {
                        // Caught up now, or recently enough.
                        f.log_end >= end || now_ms - f.caught_up_ms <= lag_max_ms
                    })
            })
            .collect();
        (keep.len() < state.isr.len()).then_some(keep)
    }

    /// Marks an ISR change as sent (`true`) or answered (`false`); returns the
    /// (leader epoch, partition epoch) to send it with.
    pub fn isr_change_in_flight(&self, in_flight: bool) -> Option<(LeaderEpoch, i32)> {
        let mut role = self.role_lock();
        let Role::Leader(state) = &mut *role else {
            return None;
        };
        state.isr_change_in_flight = in_flight;
        Some((state.epoch, state.partition_epoch))
    }

    /// The follower's leader and epoch, with whether it still has to truncate.
    pub fn follower_of(&self) -> Option<(BrokerId, LeaderEpoch, bool)> {
        match &*self.role_lock() {
            Role::Follower {
                leader,
                epoch,
                truncated,
            } => Some((*leader, *epoch, *truncated)),
            _ => None,
        }
    }

    /// Marks the follower as truncated for `epoch` (ignored if the role changed).
    pub fn set_truncated(&self, for_epoch: LeaderEpoch, value: bool) {
        if let Role::Follower {
            epoch, truncated, ..
        } = &mut *self.role_lock()
        {
            if *epoch == for_epoch {
                *truncated = value;
            }
        }
    }

    /// A follower learned the leader's high watermark.
    pub fn follower_hw(&self, leader_hw: i64) {
        let end = self.log.log_end_offset().get();
        self.set_hw(leader_hw.min(end).max(0));
    }
}
