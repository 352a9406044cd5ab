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
    let (topics, unknown) = known_partitions(broker, commit_topics!(request.topics, version >= 6));
    let group_id = request.group_id.0.to_string();
    let generation_id_or_member_epoch = request.generation_id_or_member_epoch;
    let member_id = request.member_id.to_string();
    let group_instance_id = request.group_instance_id.map(|v| v.to_string());
    let retention_time_ms = if (2..=4).contains(&version) {
        request.retention_time_ms
    } else {
        -1
    };
    let r = commit_known(broker, &group_id, &topics, unknown, None, {
        let group_id = group_id.clone();
        move |c, topics, now, token| {
            let req = gc::OffsetCommitRequest {
                api_version: version,
                group_id,
                generation_id_or_member_epoch,
                member_id,
                group_instance_id,
                retention_time_ms,
                topics,
            };
            c.offset_commit(req, now, token)
        }
    })
    .await;
    OffsetCommitResponse::default().with_topics(response_topics(
        r,
        |name, partitions| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        },
        |index, code| {
            OffsetCommitResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(code)
        },
    ))
}

/// The topics of an OffsetCommit or TxnOffsetCommit request (their
/// partitions have the same fields) as (name, partitions) for
/// [`known_partitions`]; `$epochs`: the version carries leader epochs
/// (otherwise -1).
macro_rules! commit_topics {
    ($topics:expr, $epochs:expr) => {
        $topics.iter().map(|t| {
            let partitions =
                t.partitions
                    .iter()
                    .map(|p| samsa_coordinator::OffsetCommitPartition {
                        partition_index: p.partition_index,
                        committed_offset: p.committed_offset,
                        committed_leader_epoch: if $epochs {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        committed_metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    });
            (t.name.0.to_string(), partitions.collect())
        })
    };
}
pub(super) use commit_topics;

/// Runs a commit (OffsetCommit, TxnOffsetCommit) of `group`'s known
/// partitions `topics` on its coordinator (`commit` gets the topics with at
/// least one partition left), unless none is left or the commit was
/// `refused` with an error code for all of them, and completes the answer
/// with UNKNOWN_TOPIC_OR_PARTITION for `unknown`.
pub(super) async fn commit_known<F>(
    broker: &Broker,
    group: &str,
    topics: &[gc::OffsetCommitTopic],
    unknown: Vec<(String, i32)>,
    refused: Option<i16>,
    commit: F,
) -> gc::OffsetCommitResponse
where
    F: FnOnce(
        &mut gc::Coordinator,
        Vec<gc::OffsetCommitTopic>,
        samsa_model::TimestampMs,
        gc::ReplyToken,
    ) -> Vec<gc::Output>,
{
    let known = non_empty(topics);
    let response = match refused {
        Some(code) => Err(code),
        None if known.is_empty() => Ok(gc::OffsetCommitResponse::default()),
        None => {
            let answer = broker
                .groups
                .call(broker, group, move |c, _, now, token| {
                    commit(c, known, now, token)
                })
                .await;
            match answer {
                Some(gc::Response::OffsetCommit(r)) => Ok(r),
                other => Err(other.map_or(gc::codes::NOT_COORDINATOR, |o| o.error_code())),
            }
        }
    };
    complete(response, topics, unknown)
}

/// A commit's answer in the wire shape of its API: `topic` builds a topic
/// from its name and partitions, `partition` a partition from its index and
/// error code.
pub(super) fn response_topics<T, P>(
    r: gc::OffsetCommitResponse,
    topic: impl Fn(TopicName, Vec<P>) -> T,
    partition: impl Fn(i32, i16) -> P,
) -> Vec<T> {
    r.topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| partition(p.partition_index, p.error_code))
                .collect();
            topic(TopicName(s(t.name)), partitions)
        })
        .collect()
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
fn non_empty(topics: &[gc::OffsetCommitTopic]) -> Vec<gc::OffsetCommitTopic> {
    topics
        .iter()
        .filter(|t| !t.partitions.is_empty())
        .cloned()
        .collect()
}

/// `code` for every partition of `topics`.
pub(super) fn failed(topics: &[gc::OffsetCommitTopic], code: i16) -> gc::OffsetCommitResponse {
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

/// The coordinator's answer (or, without one, the error for every partition
/// of `topics`), with UNKNOWN_TOPIC_OR_PARTITION added for `unknown`.
fn complete(
    response: Result<gc::OffsetCommitResponse, i16>,
    topics: &[gc::OffsetCommitTopic],
    unknown: Vec<(String, i32)>,
) -> gc::OffsetCommitResponse {
    let mut r = match response {
        Ok(r) => r,
        Err(code) => failed(topics, code),
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
