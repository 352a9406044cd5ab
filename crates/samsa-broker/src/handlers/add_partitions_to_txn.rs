//! AddPartitionsToTxn: adds partitions to a producer's ongoing transaction
//! (v0-3: one transaction, sent by clients), or — v4+, batched by
//! transaction, sent by partition leaders (KIP-890) — adds them or, with
//! `verify_only`, answers whether they already are in it (the leader's
//! check before a transactional batch's first append). Answered by the
//! transaction coordinator of each transactional id.

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
};
use samsa_coordinator::codes;
use samsa_coordinator::txn::{self, TxnResponse};
use samsa_model::{PartitionIndex, ProducerEpoch, ProducerId, TopicPartition};

use super::s;
use crate::broker::Broker;

/// The version from which PRODUCER_FENCED is answered as itself.
const FENCED_SINCE: i16 = 2;

/// Answers AddPartitionsToTxn.
pub async fn handle(
    broker: &Arc<Broker>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let one = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(request.v3_and_below_transactional_id)
            .with_producer_id(request.v3_and_below_producer_id)
            .with_producer_epoch(request.v3_and_below_producer_epoch)
            .with_topics(request.v3_and_below_topics);
        let result = transaction(broker, one, version).await;
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(result.topic_results);
    }
    let mut results = Vec::with_capacity(request.transactions.len());
    for t in request.transactions {
        results.push(transaction(broker, t, version).await);
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// Adds (or verifies) the partitions of one transaction.
async fn transaction(
    broker: &Arc<Broker>,
    t: AddPartitionsToTxnTransaction,
    version: i16,
) -> AddPartitionsToTxnResult {
    let transactional_id = t.transactional_id.0.to_string();
    let partitions = partitions_of(&t.topics);
    let req = txn::AddPartitionsToTxnRequest {
        transactional_id: transactional_id.clone(),
        producer_id: ProducerId(t.producer_id.0),
        producer_epoch: ProducerEpoch(t.producer_epoch),
        partitions: partitions.clone(),
        // Clients send v0-3; a v5 add (not a verification) comes from a
        // partition leader adding the partition for a transaction version 2
        // producer (KIP-890 part 2).
        client_transaction_version: if version >= 5 && !t.verify_only { 2 } else { 0 },
    };
    let results = if t.verify_only {
        let p = broker.transactions.partition_for(&transactional_id);
        let r = broker
            .transactions
            .read(broker, p, |c| c.verify_partitions_in_txn(&req))
            .await;
        r.results
    } else {
        let answer = broker
            .transactions
            .call(broker, &transactional_id, |c, now, token| {
                c.add_partitions_to_txn(now, &req, token)
            })
            .await;
        match answer {
            Some(TxnResponse::AddPartitionsToTxn(r)) => r.results,
            _ => {
                txn::AddPartitionsToTxnResponse::all(
                    &transactional_id,
                    &partitions,
                    codes::COORDINATOR_NOT_AVAILABLE,
                )
                .results
            }
        }
    };
    AddPartitionsToTxnResult::default()
        .with_transactional_id(TransactionalId(s(transactional_id)))
        .with_topic_results(by_topic(results, version))
}

/// The request's partitions, in request order.
fn partitions_of(topics: &[AddPartitionsToTxnTopic]) -> Vec<TopicPartition> {
    topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| TopicPartition {
                topic: t.name.0.to_string(),
                partition: PartitionIndex(*p),
            })
        })
        .collect()
}

/// Per-partition codes grouped by topic (first appearance order).
fn by_topic(
    results: Vec<(TopicPartition, i16)>,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (tp, code) in results {
        let code = crate::transactions::fenced_code(code, version, FENCED_SINCE);
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(tp.partition.get())
            .with_partition_error_code(code);
        match out.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(t) => t.results_by_partition.push(result),
            None => out.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(s(tp.topic)))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    out
}
