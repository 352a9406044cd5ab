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
    let (topics, unknown) = known_partitions(
        broker,
        request.topics.iter().map(|t| {
            let partitions = t.partitions.iter().map(|p| gc::OffsetCommitPartition {
                partition_index: p.partition_index,
                committed_offset: p.committed_offset,
                committed_leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                committed_metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
            (t.name.0.to_string(), partitions.collect())
        }),
    );
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
        topics: non_empty(&topics),
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
    let r = complete(response, &topics, unknown);
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

/// The committed partitions of a request that exist in the cluster, by
/// topic (with its id), and the (topic, partition)s that do not: Kafka
/// refuses those itself and never passes them to the coordinator (nothing is
/// stored for them). Shared by OffsetCommit and TxnOffsetCommit.
pub(super) fn known_partitions(
    broker: &Broker,
    topics: impl Iterator<Item = (String, Vec<gc::OffsetCommitPartition>)>,
) -> (Vec<gc::OffsetCommitTopic>, Vec<(String, i32)>) {
    let image = broker.image();
    let mut unknown: Vec<(String, i32)> = Vec::new();
    let known = topics
        .map(|(name, partitions)| {
            let topic = image.topic(&name);
            let count = topic.map_or(0, |t| t.partitions.len());
            let partitions = partitions
                .into_iter()
                .filter(|p| {
                    let ok = p.partition_index >= 0 && (p.partition_index as usize) < count;
                    if !ok {
                        unknown.push((name.clone(), p.partition_index));
                    }
                    ok
                })
                .collect();
            gc::OffsetCommitTopic {
                topic_id: topic.map(|t| t.id),
                name,
                partitions,
            }
        })
        .collect();
    (known, unknown)
}

/// The topics with at least one partition left to commit.
pub(super) fn non_empty(topics: &[gc::OffsetCommitTopic]) -> Vec<gc::OffsetCommitTopic> {
    topics
        .iter()
        .filter(|t| !t.partitions.is_empty())
        .cloned()
        .collect()
}

/// The coordinator's answer (or, without one, its error for every partition of
/// `topics`), with UNKNOWN_TOPIC_OR_PARTITION added for `unknown`.
pub(super) fn complete(
    response: Option<gc::Response>,
    topics: &[gc::OffsetCommitTopic],
    unknown: Vec<(String, i32)>,
) -> gc::OffsetCommitResponse {
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
    r
}
