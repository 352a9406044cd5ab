//! ListTransactions (KIP-664; v1 adds KIP-994's duration filter, v2 a
//! transactional id pattern, matched against whole ids): the transactions of
//! every `__transaction_state` partition this broker coordinates (the admin
//! client asks every broker).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId as WireProducerId,
    TransactionalId,
};
use samsa_coordinator::txn;
use samsa_model::ProducerId;

use super::s;
use crate::broker::Broker;
use crate::handlers::produce::now_ms;

/// Answers ListTransactions: the first shard error wins (as Kafka answers
/// for all its partitions at once, e.g. COORDINATOR_LOAD_IN_PROGRESS).
pub async fn handle(
    broker: &Arc<Broker>,
    request: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let req = txn::ListTransactionsRequest {
        state_filters: request
            .state_filters
            .iter()
            .map(|f| f.to_string())
            .collect(),
        producer_id_filters: request
            .producer_id_filters
            .iter()
            .map(|p| ProducerId(p.0))
            .collect(),
        duration_filter_ms: if version >= 1 {
            request.duration_filter
        } else {
            -1
        },
    };
    let pattern = match request
        .transactional_id_pattern
        .as_ref()
        .filter(|p| version >= 2 && !p.is_empty())
        .map(|p| samsa_coordinator::whole_match(p))
    {
        None => None,
        Some(Ok(re)) => Some(re),
        Some(Err(_)) => {
            return ListTransactionsResponse::default()
                .with_error_code(ResponseError::InvalidRegularExpression.code())
        }
    };
    let now = now_ms();
    let answers = broker
        .transactions
        .read_all(|c| c.list_transactions(now, &req))
        .await;
    let mut error_code = 0;
    let mut listed = Vec::new();
    for a in answers {
        if error_code == 0 {
            error_code = a.error_code;
        }
        listed.extend(a.transactions.into_iter().filter(|t| {
            pattern
                .as_ref()
                .is_none_or(|re| re.is_match(&t.transactional_id))
        }));
    }
    listed.sort();
    // Named whether or not this broker coordinates any partition.
    let unknown: Vec<String> = req
        .state_filters
        .iter()
        .filter(|f| txn::TxnState::from_name(f).is_none())
        .cloned()
        .collect();
    ListTransactionsResponse::default()
        .with_error_code(error_code)
        .with_unknown_state_filters(unknown.into_iter().map(s).collect())
        .with_transaction_states(
            listed
                .into_iter()
                .map(|t| {
                    TransactionState::default()
                        .with_transactional_id(TransactionalId(s(t.transactional_id)))
                        .with_producer_id(WireProducerId(t.producer_id.get()))
                        .with_transaction_state(s(t.state))
                })
                .collect(),
        )
}
