//! TxnOffsetCommit (v0–v5): a transactional producer's offsets for a group,
//! written to `__consumer_offsets` as the producer's transactional batch and
//! pending until its transaction's marker (see `samsa_coordinator`'s
//! `txn_offsets`), once the transaction coordinator has confirmed the
//! group's partition is in the producer's transaction (KIP-890, see
//! `transactions::verify`).

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use samsa_coordinator as gc;

use samsa_coordinator::txn::txn_codes;

use super::offset_commit::{
    commit_known, commit_topics, failed, known_partitions, response_topics,
};
use crate::broker::Broker;

/// Answers TxnOffsetCommit.
pub async fn handle(
    broker: &Arc<Broker>,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let (topics, unknown) = known_partitions(broker, commit_topics!(request.topics, version >= 2));
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
    let group_id = request.group_id.0.to_string();
    let transactional_id = request.transactional_id.0.to_string();
    let (producer_id, producer_epoch) = (request.producer_id.0, request.producer_epoch);
    // KIP-890: the transaction coordinator's word first, as Kafka's group
    // coordinator asks before it appends (only when there is something to
    // commit).
    let refused = if topics.iter().any(|t| !t.partitions.is_empty()) {
        crate::transactions::verify::verify_txn_offset_commit(
            broker,
            &transactional_id,
            samsa_model::ProducerId(producer_id),
            samsa_model::ProducerEpoch(producer_epoch),
            broker.groups.partition_for(&group_id),
            version,
        )
        .await
        .err()
    } else {
        None
    };
    let r = commit_known(broker, &group_id, &topics, unknown, refused, {
        let group_id = group_id.clone();
        move |c, topics, now, token| {
            // A fenced producer (a newer epoch of its id is in the log) is
            // told so before the coordinator takes its offsets.
            if broker
                .groups
                .producer_fenced(broker, &group_id, producer_id, producer_epoch)
            {
                let response = failed(&topics, txn_codes::INVALID_PRODUCER_EPOCH);
                return vec![gc::Output::Reply {
                    token,
                    response: gc::Response::OffsetCommit(response),
                }];
            }
            let req = gc::TxnOffsetCommitRequest {
                api_version: version,
                transactional_id,
                group_id,
                producer_id,
                producer_epoch,
                generation_id,
                member_id,
                group_instance_id,
                topics,
            };
            c.txn_offset_commit(req, now, token)
        }
    })
    .await;
    TxnOffsetCommitResponse::default().with_topics(response_topics(
        r,
        |name, partitions| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        },
        |index, code| {
            TxnOffsetCommitResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(code)
        },
    ))
}
