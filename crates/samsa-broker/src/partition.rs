//! A partition this broker hosts: its log plus the topic settings that govern
//! appends to it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use samsa_metadata::config::StaticConfig;
use samsa_model::{LeaderEpoch, Offset, PartitionIndex, TopicId};
use samsa_storage::{CompactionConfig, LogConfig, PartitionLog};

use crate::producer_state::ProducerStates;

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
            },
        }
    }
}

/// The most log bytes read at startup to rebuild a partition's producer table.
pub const PRODUCER_SCAN_BYTES_MAX: usize = 256 << 20;

/// A hosted partition.
pub struct Partition {
    pub topic: String,
    pub topic_id: TopicId,
    pub index: PartitionIndex,
    pub log: PartitionLog,
    settings: RwLock<Arc<TopicSettings>>,
    leader_epoch: RwLock<LeaderEpoch>,
    /// Idempotent producers' sequence state. Held across check-and-append, so it
    /// also serializes appends to this partition.
    producers: Mutex<ProducerStates>,
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
            producers: Mutex::new(ProducerStates::default()),
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

    /// The producer table, locked for a check-and-append.
    pub fn producers(&self) -> MutexGuard<'_, ProducerStates> {
        match self.producers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Rebuilds the producer table from the batch headers of the active
    /// segment (idempotent producers' recent sequences), reading at most
    /// `PRODUCER_SCAN_BYTES_MAX` from its end.
    pub fn rebuild_producer_state(&self) -> Result<(), samsa_storage::StorageError> {
        let end = self.log.log_end_offset();
        let Some(active) = self.log.segments_info().into_iter().find(|s| s.active) else {
            return Ok(());
        };
        let mut offset = active.base_offset.max(self.log.log_start_offset());
        let mut producers = self.producers();
        let mut scanned = 0usize;
        while offset < end && scanned < PRODUCER_SCAN_BYTES_MAX {
            let read = self.log.read(offset, 1 << 20, end, true)?;
            if read.bytes.is_empty() {
                break;
            }
            scanned += read.bytes.len();
            for item in samsa_model::batch::BatchIter::new(&read.bytes) {
                let Ok((header, _)) = item else { break };
                producers.record(&header, header.base_offset.get());
            }
            offset = read.next_offset;
        }
        Ok(())
    }

    /// The high watermark: on a single node every appended record is committed.
    pub fn high_watermark(&self) -> Offset {
        self.log.log_end_offset()
    }
}
