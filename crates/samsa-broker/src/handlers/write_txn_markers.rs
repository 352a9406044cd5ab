//! WriteTxnMarkers (API 27, KIP-98): a transaction coordinator asks the
//! leaders of a transaction's partitions to write its COMMIT or ABORT marker.
//!
//! For each marker and partition led here, a control batch
//! ([`samsa_model::control`]) is appended with this broker's leader epoch
//! ([`samsa_storage::PartitionLog::append_marker`]: the producer's epoch and
//! the coordinator's epoch are checked under the log's writer lock), and the
//! answer waits until the ISR has it, as Kafka's ReplicaManager appends
//! markers with required acks -1. Errors per partition as Kafka's:
//! UNKNOWN_TOPIC_OR_PARTITION (topic or partition not hosted),
//! NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS(_AFTER_APPEND),
//! INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED, KAFKA_STORAGE_ERROR,
//! REQUEST_TIMED_OUT.
//!
//! Only brokers send it. Kafka requires CLUSTER_ACTION on the cluster; samsa
//! has no authorizer (it refuses to start with one configured, see
//! `samsa_metadata::security`), so, as Kafka without an authorizer, any
//! connection may send it. [`handle`] is public so the transaction
//! coordinator can call it for partitions this broker leads without a
//! network round trip.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use samsa_model::{CoordinatorEpoch, LeaderEpoch, ProducerEpoch, ProducerId};

use super::produce::now_ms;
use crate::broker::Broker;
use crate::errors::storage_error;
use crate::partition::NotLeader;
use crate::replica::ReplicationWait;

/// How long the answer waits for the markers to be replicated (Kafka uses
/// its `request.timeout.ms`, 30 s by default).
pub const MARKER_REPLICATION_WAIT_MS: u64 = 30_000;

/// Answers WriteTxnMarkers (see the module docs).
pub async fn handle(
    broker: &Broker,
    request: WriteTxnMarkersRequest,
    _version: i16,
) -> WriteTxnMarkersResponse {
    let image = broker.image();
    let now = now_ms();
    // (marker, topic, partition) index of each answer waiting for replication.
    let mut waits: Vec<((usize, usize, usize), ReplicationWait)> = Vec::new();
    let mut markers: Vec<WritableTxnMarkerResult> = Vec::with_capacity(request.markers.len());
    for (mi, marker) in request.markers.iter().enumerate() {
        let producer_id = ProducerId(marker.producer_id.0);
        let mut topics = Vec::with_capacity(marker.topics.len());
        for (ti, topic) in marker.topics.iter().enumerate() {
            let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
            for (pi, &index) in topic.partition_indexes.iter().enumerate() {
                let answer =
                    WritableTxnMarkerPartitionResult::default().with_partition_index(index);
                let Some(part) = broker.partition_named(&image, &topic.name.0, index) else {
                    partitions.push(
                        answer.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                    );
                    continue;
                };
                let min_isr = part.settings().min_insync_replicas;
                let appended = match part.lock_for_append(-1, min_isr) {
                    Err(NotLeader::NotLeader) => Err(ResponseError::NotLeaderOrFollower),
                    Err(NotLeader::NotEnoughReplicas { .. }) => {
                        Err(ResponseError::NotEnoughReplicas)
                    }
                    Ok(leadership) => {
                        let epoch: LeaderEpoch = leadership.epoch();
                        part.log()
                            .append_marker(
                                producer_id,
                                ProducerEpoch(marker.producer_epoch),
                                marker.transaction_result,
                                CoordinatorEpoch(marker.coordinator_epoch),
                                epoch,
                                now,
                            )
                            .map(|offset| (offset, epoch))
                            .map_err(|e| {
                                tracing::debug!(
                                    topic = %part.topic,
                                    partition = index,
                                    producer_id = producer_id.get(),
                                    error = %e,
                                    "transaction marker refused"
                                );
                                storage_error(&e)
                            })
                    }
                };
                match appended {
                    Ok((offset, epoch)) => {
                        if part.after_leader_append() {
                            broker.notify_hw(&part);
                        } else {
                            broker.notify_data(&part);
                        }
                        waits.push(((mi, ti, pi), (part, offset.get(), min_isr, epoch)));
                        partitions.push(answer);
                    }
                    Err(code) => partitions.push(answer.with_error_code(code.code())),
                }
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    if !waits.is_empty() {
        let list: Vec<ReplicationWait> = waits.iter().map(|(_, w)| w.clone()).collect();
        let outcomes = crate::replica::wait_replicated(
            broker,
            &list,
            Duration::from_millis(MARKER_REPLICATION_WAIT_MS),
        )
        .await;
        for (((mi, ti, pi), _), outcome) in waits.iter().zip(outcomes) {
            if let Some(code) = outcome {
                if let Some(p) = markers
                    .get_mut(*mi)
                    .and_then(|m| m.topics.get_mut(*ti))
                    .and_then(|t| t.partitions.get_mut(*pi))
                {
                    p.error_code = code.code();
                }
            }
        }
    }
    for (mi, marker) in request.markers.iter().enumerate() {
        let done: Vec<i32> = marker
            .topics
            .iter()
            .enumerate()
            .filter(|(_, t)| t.name.0.as_str() == crate::groups::OFFSETS_TOPIC)
            .flat_map(|(ti, t)| {
                let answers = markers.get(mi).and_then(|m| m.topics.get(ti));
                t.partition_indexes
                    .iter()
                    .enumerate()
                    .filter(move |(pi, _)| {
                        answers
                            .and_then(|a| a.partitions.get(*pi))
                            .is_some_and(|p| p.error_code == 0)
                    })
                    .map(|(_, index)| *index)
            })
            .collect();
        if !done.is_empty() {
            offsets_txn_completed(
                broker,
                ProducerId(marker.producer_id.0),
                marker.transaction_result,
                &done,
            )
            .await;
        }
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}

/// The group side's hook (Kafka's `GroupCoordinator.onTransactionCompleted`):
/// called once the marker of `producer_id`'s transaction (COMMIT when
/// `commit`) is written and replicated in the `__consumer_offsets`
/// partitions `partitions` this broker leads, so the group coordinator
/// makes the transaction's pending offsets (TxnOffsetCommit) visible or
/// drops them (`GroupService::txn_marker_written`).
pub async fn offsets_txn_completed(
    broker: &Broker,
    producer_id: ProducerId,
    commit: bool,
    partitions: &[i32],
) {
    for p in partitions {
        if let Ok(p) = u32::try_from(*p) {
            broker
                .groups
                .txn_marker_written(broker, p, producer_id.get(), commit)
                .await;
        }
    }
}
