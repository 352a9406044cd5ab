//! The group coordinator's side of `__consumer_offsets`: creating the topic on
//! first use, appending a shard's record batches as the partition leader, and
//! replaying a partition's log into a coordinator (on a blocking thread).

use std::sync::Arc;

use samsa_coordinator::Coordinator;
use samsa_metadata::NewTopic;
use samsa_model::batch::{self, BatchBuilder, NewRecord};

use crate::broker::Broker;
use crate::handlers::produce::now_ms;
use crate::partition::Partition;

use super::OFFSETS_TOPIC;

/// Bytes read per step while replaying a `__consumer_offsets` partition.
const REPLAY_READ_BYTES_MAX: usize = 1 << 20;
/// Largest decompressed batch accepted while replaying.
const REPLAY_DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// The log of `__consumer_offsets` partition `partition`, if hosted here.
pub(super) fn offsets_partition(broker: &Broker, partition: u32) -> Option<Arc<Partition>> {
    let image = broker.image();
    let topic = image.topic(OFFSETS_TOPIC)?;
    broker.partition(topic.id, i32::try_from(partition).ok()?)
}

/// Why a partition could not be replayed (the shard stays loading and retries).
#[derive(Debug, thiserror::Error)]
pub(super) enum ReplayFailed {
    #[error("__consumer_offsets partition {0} is not hosted here")]
    NotHosted(u32),
    #[error("reading __consumer_offsets partition {0}: {1}")]
    Read(u32, samsa_storage::StorageError),
}

/// Feeds every record of `__consumer_offsets` partition `partition` (led
/// here) to `c`, which must be loading it; returns how many records it read.
/// A new leader's log is the truth: all of it is replayed, from the log start
/// offset to the log end offset. Runs on a blocking thread: a large partition
/// takes seconds.
pub(super) fn replay_partition(
    broker: &Broker,
    c: &mut Coordinator,
    partition: u32,
) -> Result<u64, ReplayFailed> {
    let part = offsets_partition(broker, partition).ok_or(ReplayFailed::NotHosted(partition))?;
    let end = part.log().log_end_offset();
    let mut offset = part.log().log_start_offset();
    let mut replayed = 0u64;
    while offset < end {
        let read = part
            .log()
            .read(offset, REPLAY_READ_BYTES_MAX, end, true)
            .map_err(|e| ReplayFailed::Read(partition, e))?;
        if read.bytes.is_empty() {
            break;
        }
        for item in batch::BatchIter::new(&read.bytes) {
            let Ok((header, bytes)) = item else { break };
            let records = match batch::records(bytes, REPLAY_DECOMPRESSED_BYTES_MAX) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(partition, error = %e, "undecodable __consumer_offsets batch");
                    continue;
                }
            };
            let producer = header.producer_id.get();
            for r in records {
                if header.record_offset(&r) < offset {
                    continue;
                }
                let Some(key) = r.key.as_deref() else {
                    continue;
                };
                replayed += 1;
                let applied = if header.is_control() {
                    use samsa_model::control::{parse_control_key, ControlRecordType};
                    match parse_control_key(r.key.as_ref()) {
                        Ok(ControlRecordType::Commit) => {
                            c.replay_end_transaction(partition, producer, true)
                        }
                        Ok(ControlRecordType::Abort) => {
                            c.replay_end_transaction(partition, producer, false)
                        }
                        // Not a transaction marker, or damaged: skipped.
                        _ => Ok(()),
                    }
                } else if header.is_transactional() {
                    c.replay_transactional(producer, key, r.value.as_deref())
                } else {
                    c.replay(key, r.value.as_deref())
                };
                if let Err(e) = applied {
                    tracing::warn!(partition, error = %e, "skipping an unreadable __consumer_offsets record");
                }
            }
        }
        offset = read.next_offset;
    }
    Ok(replayed)
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

/// Creates `__consumer_offsets` if it does not exist yet (as Kafka does on
/// the first FindCoordinator). Returns whether it exists now.
pub(super) fn ensure_offsets_topic(broker: &Broker) -> bool {
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

#[derive(Debug, thiserror::Error)]
pub(super) enum AppendError {
    #[error("__consumer_offsets partition {0} is not led by this broker in the shard's epoch")]
    NoPartition(u32),
    #[error("building the batch: {0}")]
    Batch(#[from] samsa_model::batch::BatchError),
    #[error("storage: {0}")]
    Storage(#[from] samsa_storage::StorageError),
}

/// Appends one coordinator batch as the partition's leader in `epoch` (the
/// shard's: a shard whose partition was lost and led again must not write
/// state from before); returns the partition and the batch's last offset.
pub(super) fn append(
    broker: &Broker,
    partition: u32,
    epoch: samsa_model::LeaderEpoch,
    records: &[samsa_coordinator::Record],
    transaction: Option<samsa_coordinator::TxnProducer>,
) -> Result<(Arc<Partition>, i64), AppendError> {
    let part = offsets_partition(broker, partition).ok_or(AppendError::NoPartition(partition))?;
    let now = now_ms();
    let mut builder = match transaction {
        // TxnOffsetCommit: the producer's transactional batch, without a
        // sequence (Kafka's group coordinator writes RecordBatch.NO_SEQUENCE).
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
        .ok_or(AppendError::NoPartition(partition))?;
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
