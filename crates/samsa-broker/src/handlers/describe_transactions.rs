//! DescribeTransactions (KIP-664): the state of transactional ids whose
//! coordinator is this broker; others are answered NOT_COORDINATOR (the
//! admin client asks each id's coordinator).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId as WireProducerId,
    TopicName, TransactionalId,
};

use super::s;
use crate::broker::Broker;

/// Answers DescribeTransactions, in request order.
pub async fn handle(
    broker: &Arc<Broker>,
    request: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let ids: Vec<String> = request
        .transactional_ids
        .iter()
        .map(|t| t.0.to_string())
        .collect();
    let mut by_partition: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for id in &ids {
        by_partition
            .entry(broker.transactions.partition_for(id))
            .or_default()
            .push(id.clone());
    }
    let mut described = Vec::with_capacity(ids.len());
    for (p, group) in by_partition {
        let answers = broker
            .transactions
            .read(broker, p, |c| c.describe_transactions(&group))
            .await;
        described.extend(answers);
    }
    super::in_request_order(&mut described, &ids, |d| &d.transactional_id);
    let states: Vec<TransactionState> = described
        .into_iter()
        .map(|d| {
            TransactionState::default()
                .with_error_code(d.error_code)
                .with_transactional_id(TransactionalId(s(d.transactional_id)))
                .with_transaction_state(s(d.state))
                .with_transaction_timeout_ms(d.timeout_ms)
                .with_transaction_start_time_ms(d.start_time_ms.get())
                .with_producer_id(WireProducerId(d.producer_id.get()))
                .with_producer_epoch(d.producer_epoch.get())
                .with_topics(
                    d.topics
                        .into_iter()
                        .map(|(t, parts)| {
                            TopicData::default()
                                .with_topic(TopicName(s(t)))
                                .with_partitions(parts)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
