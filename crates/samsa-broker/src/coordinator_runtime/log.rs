//! A coordinator's side of its internal topic (`__consumer_offsets`,
//! `__transaction_state`): creating the topic on first use, appending a
//! shard's record batches as the partition leader, and replaying a
//! partition's log into a machine (on a blocking thread).

use std::collections::BTreeMap;
use std::sync::Arc;

use samsa_metadata::NewTopic;
use samsa_model::batch::{self, BatchBuilder, NewRecord};
use samsa_model::LeaderEpoch;

use crate::broker::Broker;
use crate::handlers::produce::now_ms;
use crate::partition::Partition;

/// Bytes read per step while replaying a coordinator partition.
const REPLAY_READ_BYTES_MAX: usize = 1 << 20;
/// Largest decompressed batch accepted while replaying.
const REPLAY_DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// The log of partition `partition` of internal topic `topic`, if hosted here.
pub(crate) fn internal_partition(
    broker: &Broker,
    topic: &str,
    partition: u32,
) -> Option<Arc<Partition>> {
    let image = broker.image();
    let topic = image.topic(topic)?;
    broker.partition(topic.id, i32::try_from(partition).ok()?)
}

/// The partitions of `topic` this broker leads now, with their leader epochs.
pub(crate) fn led_partitions(broker: &Broker, topic: &str) -> BTreeMap<u32, LeaderEpoch> {
    let image = broker.image();
    let Some(topic) = image.topic(topic) else {
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

/// Why a partition could not be replayed (the shard stays loading and retries).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReplayFailed {
    #[error("{0} partition {1} is not hosted here")]
    NotHosted(&'static str, u32),
    #[error("reading {0} partition {1}: {2}")]
    Read(&'static str, u32, samsa_storage::StorageError),
}

/// Takes one record (its batch's header, key, value; `None` is a
/// tombstone) of a replay.
pub(crate) type ReplayRecord<'a> =
    dyn FnMut(&batch::BatchHeader, &[u8], Option<&[u8]>) -> Result<(), String> + 'a;

/// Feeds every record of partition `partition` of `topic` (led here) to
/// `replay`, in log order; returns how many records it read. A new leader's
/// log is the truth: all of it is replayed, from the log start offset to the
/// log end offset. Control batches (transaction markers) are fed too, with
/// their header: a machine that has no use for them skips them. Runs
/// on a blocking thread: a large partition takes seconds.
pub(crate) fn replay_partition(
    broker: &Broker,
    topic: &'static str,
    partition: u32,
    replay: &mut ReplayRecord<'_>,
) -> Result<u64, ReplayFailed> {
    let part = internal_partition(broker, topic, partition)
        .ok_or(ReplayFailed::NotHosted(topic, partition))?;
    let end = part.log().log_end_offset();
    let mut offset = part.log().log_start_offset();
    let mut replayed = 0u64;
    while offset < end {
        let read = part
            .log()
            .read(offset, REPLAY_READ_BYTES_MAX, end, true)
            .map_err(|e| ReplayFailed::Read(topic, partition, e))?;
        if read.bytes.is_empty() {
            break;
        }
        for item in batch::BatchIter::new(&read.bytes) {
            let Ok((header, bytes)) = item else { break };
            let records = match batch::records(bytes, REPLAY_DECOMPRESSED_BYTES_MAX) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(topic, partition, error = %e, "undecodable coordinator batch");
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
                replayed += 1;
                if let Err(e) = replay(&header, key, r.value.as_deref()) {
                    tracing::warn!(topic, partition, error = %e, "skipping an unreadable coordinator record");
                }
            }
        }
        offset = read.next_offset;
    }
    Ok(replayed)
}

/// How an internal topic is created on first use.
pub(crate) struct InternalTopic {
    pub name: &'static str,
    /// The broker config naming its partition count, and its default.
    pub partitions_key: &'static str,
    pub partitions_default: i64,
    /// The broker config naming its replication factor, and its default
    /// (capped by the live brokers).
    pub replication_key: &'static str,
    pub replication_default: i64,
    /// The broker config naming its `min.insync.replicas`, if any, and its
    /// default (capped by the replication factor).
    pub min_isr_key: Option<(&'static str, i64)>,
    /// The broker config naming its `segment.bytes`, and its default.
    pub segment_bytes_key: Option<&'static str>,
    pub segment_bytes_default: i64,
}

/// Whether every partition of `topic` with a replica here has its log open.
fn partitions_hosted(broker: &Broker, topic: &str) -> bool {
    let image = broker.image();
    let me = broker.settings.node_id;
    image.topic(topic).is_some_and(|t| {
        t.partitions
            .iter()
            .filter(|p| p.replicas.contains(&me))
            .all(|p| broker.partition(t.id, p.index.get()).is_some())
    })
}

/// Creates internal topic `spec` if it does not exist yet (as Kafka does on
/// the first FindCoordinator). Returns whether it exists now.
pub(crate) fn ensure_topic(broker: &Broker, spec: &InternalTopic) -> bool {
    let name = spec.name;
    if broker.image().topic(name).is_some() {
        // Another request may have created it and still be opening its
        // partitions; wait for that (reconcile is serialized) and report
        // ready only when every partition is hosted here.
        return partitions_hosted(broker, name) || {
            if let Err(e) = broker.reconcile() {
                tracing::error!(topic = name, error = %e, "reconciling an internal topic");
            }
            partitions_hosted(broker, name)
        };
    }
    let config = broker.config();
    let partitions = config
        .get_i64(spec.partitions_key)
        .unwrap_or(spec.partitions_default)
        .clamp(1, i32::MAX as i64) as i32;
    let brokers = broker.image().live_brokers().count().max(1) as i64;
    // Kafka refuses until enough brokers exist; a single node (or a smaller
    // cluster) uses what it has so coordinators work out of the box.
    let rf = config
        .get_i64(spec.replication_key)
        .unwrap_or(spec.replication_default)
        .clamp(1, brokers) as i16;
    let segment_bytes = spec
        .segment_bytes_key
        .and_then(|k| config.get_i64(k))
        .unwrap_or(spec.segment_bytes_default);
    let mut configs = vec![
        ("cleanup.policy".into(), Some("compact".into())),
        ("compression.type".into(), Some("producer".into())),
        ("segment.bytes".into(), Some(segment_bytes.to_string())),
    ];
    if let Some((key, default)) = spec.min_isr_key {
        // Capped by the replication factor, so a smaller cluster can write.
        let min_isr = config.get_i64(key).unwrap_or(default).clamp(1, rf as i64);
        configs.push(("min.insync.replicas".into(), Some(min_isr.to_string())));
    }
    let results = broker.admin(|c| {
        c.create_topics(
            vec![NewTopic {
                name: name.into(),
                num_partitions: partitions,
                replication_factor: rf,
                assignments: vec![],
                configs,
            }],
            false,
        )
    });
    if let Err(e) = broker.reconcile() {
        tracing::error!(topic = name, error = %e, "reconciling after creating an internal topic");
    }
    if let Some(Err(e)) = results.into_iter().next() {
        tracing::warn!(topic = name, error = %e, "creating an internal topic");
    }
    partitions_hosted(broker, name)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AppendError {
    #[error("{0} partition {1} is not led by this broker in the shard's epoch")]
    NoPartition(&'static str, u32),
    #[error("building the batch: {0}")]
    Batch(#[from] samsa_model::batch::BatchError),
    #[error("storage: {0}")]
    Storage(#[from] samsa_storage::StorageError),
}

/// Appends one coordinator batch as the partition's leader in `epoch` (the
/// shard's: a shard whose partition was lost and led again must not write
/// state from before); returns the partition and the batch's last offset.
/// With `transaction` the batch is that producer's transactional batch
/// (TxnOffsetCommit), written with its id and epoch and no sequence
/// (Kafka's group coordinator writes `RecordBatch.NO_SEQUENCE`).
pub(crate) fn append(
    broker: &Broker,
    topic: &'static str,
    partition: u32,
    epoch: samsa_model::LeaderEpoch,
    records: &[samsa_coordinator::Record],
    transaction: Option<samsa_coordinator::TxnProducer>,
) -> Result<(Arc<Partition>, i64), AppendError> {
    let part = internal_partition(broker, topic, partition)
        .ok_or(AppendError::NoPartition(topic, partition))?;
    let now = now_ms();
    let mut builder = match transaction {
        Some(p) => BatchBuilder::new()
            .producer(
                samsa_model::ProducerId(p.producer_id),
                samsa_model::ProducerEpoch(p.producer_epoch),
                -1,
            )
            .transactional(true),
        None => BatchBuilder::new(),
    };
    for r in records {
        builder.push(NewRecord::new(now, Some(&r.key), r.value.as_deref()));
    }
    let mut bytes = builder.build()?;
    // Leadership in the shard's epoch, and the append, under the partition's
    // state lock: a role change cannot slip in between.
    let leadership = part
        .lock_for_append(1, 1)
        .ok()
        .filter(|l| l.epoch() == epoch)
        .ok_or(AppendError::NoPartition(topic, partition))?;
    let info = if transaction.is_some() {
        part.log()
            .append_from_coordinator(&mut bytes, leadership.epoch(), now)?
    } else {
        part.log().append(&mut bytes, leadership.epoch(), now)?
    };
    drop(leadership);
    if part.after_leader_append() {
        broker.notify_hw(&part);
    } else {
        broker.notify_data(&part);
    }
    Ok((part, info.last_offset.get()))
}
