//! OffsetCommit: committed offsets, checked against the member's generation.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use samsa_coordinator as gc;

use super::s;
use crate::broker::Broker;

/// Answers OffsetCommit.
pub async fn handle(
    broker: &Broker,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    // Partitions the cluster does not have are refused here, as Kafka does,
    // and never reach the coordinator (nothing is stored for them).
    let image = broker.image();
    let exists = |topic: &str, partition: i32| {
        image
            .topic(topic)
            .is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions.len())
    };
    let mut unknown: Vec<(String, i32)> = Vec::new();
    let topics: Vec<gc::OffsetCommitTopic> = request
        .topics
        .iter()
        .map(|t| gc::OffsetCommitTopic {
            name: t.name.0.to_string(),
            topic_id: image.topic(&t.name.0).map(|t| t.id),
            partitions: t
                .partitions
                .iter()
                .filter(|p| {
                    let ok = exists(&t.name.0, p.partition_index);
                    if !ok {
                        unknown.push((t.name.0.to_string(), p.partition_index));
                    }
                    ok
                })
                .map(|p| gc::OffsetCommitPartition {
                    partition_index: p.partition_index,
                    committed_offset: p.committed_offset,
                    committed_leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    committed_metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                })
                .collect(),
        })
        .collect();
    let req = gc::OffsetCommitRequest {
        api_version: version,
        group_id: request.group_id.0.to_string(),
        generation_id_or_member_epoch: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|v| v.to_string()),
        retention_time_ms: if (2..=4).contains(&version) {
            request.retention_time_ms
        } else {
            -1
        },
        topics: topics
            .iter()
            .filter(|t| !t.partitions.is_empty())
            .cloned()
            .collect(),
    };
    let response = if req.topics.is_empty() {
        Some(gc::Response::OffsetCommit(
            gc::OffsetCommitResponse::default(),
        ))
    } else {
        broker
            .groups
            .call(broker, &req.group_id.clone(), move |c, _, now, token| {
                c.offset_commit(req, now, token)
            })
            .await
    };
    let mut r = match response {
        Some(gc::Response::OffsetCommit(r)) => r,
        other => {
            let code = other.map_or(gc::codes::NOT_COORDINATOR, |o| o.error_code());
            gc::OffsetCommitResponse {
                topics: topics
                    .iter()
                    .map(|t| gc::OffsetCommitTopicResponse {
                        name: t.name.clone(),
                        partitions: t
                            .partitions
                            .iter()
                            .map(|p| gc::PartitionResult {
                                partition_index: p.partition_index,
                                error_code: code,
                            })
                            .collect(),
                    })
                    .collect(),
            }
        }
    };
    for (name, partition) in unknown {
        let result = gc::PartitionResult {
            partition_index: partition,
            error_code: gc::codes::UNKNOWN_TOPIC_OR_PARTITION,
        };
        match r.topics.iter_mut().find(|t| t.name == name) {
            Some(t) => t.partitions.push(result),
            None => r.topics.push(gc::OffsetCommitTopicResponse {
                name,
                partitions: vec![result],
            }),
        }
    }
    OffsetCommitResponse::default().with_topics(
        r.topics
            .into_iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(s(t.name)))
                    .with_partitions(
                        t.partitions
                            .into_iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(p.error_code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
