//! TxnOffsetCommit (v0–v5): a transactional producer's offsets for a group,
//! written to `__consumer_offsets` as the producer's transactional batch and
//! pending until its transaction's marker (see `samsa_coordinator`'s
//! `txn_offsets`).

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use samsa_coordinator as gc;

use super::offset_commit::{complete, known_partitions, non_empty};
use super::s;
use crate::broker::Broker;

/// Answers TxnOffsetCommit.
pub async fn handle(
    broker: &Broker,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let (topics, unknown) = known_partitions(
        broker,
        request.topics.iter().map(|t| {
            let partitions = t.partitions.iter().map(|p| gc::OffsetCommitPartition {
                partition_index: p.partition_index,
                committed_offset: p.committed_offset,
                committed_leader_epoch: if version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                committed_metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
            (t.name.0.to_string(), partitions.collect())
        }),
    );
    // v0–v2 carry no group fields: Kafka's defaults.
    let (generation_id, member_id, group_instance_id) = if version >= 3 {
        (
            request.generation_id,
            request.member_id.to_string(),
            request.group_instance_id.map(|v| v.to_string()),
        )
    } else {
        (-1, String::new(), None)
    };
    let req = gc::TxnOffsetCommitRequest {
        api_version: version,
        transactional_id: request.transactional_id.0.to_string(),
        group_id: request.group_id.0.to_string(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        generation_id,
        member_id,
        group_instance_id,
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
                c.txn_offset_commit(req, now, token)
            })
            .await
    };
    let r = complete(response, &topics, unknown);
    TxnOffsetCommitResponse::default().with_topics(
        r.topics
            .into_iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(TopicName(s(t.name)))
                    .with_partitions(
                        t.partitions
                            .into_iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(p.error_code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
