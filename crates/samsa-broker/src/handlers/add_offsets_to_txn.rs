//! AddOffsetsToTxn: adds a consumer group's `__consumer_offsets` partition
//! to a producer's ongoing transaction (before its TxnOffsetCommit), so the
//! transaction's end writes a marker there too. Answered by the transaction
//! coordinator of the transactional id.

use std::sync::Arc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use samsa_coordinator::codes;
use samsa_coordinator::txn::{self, TxnResponse};
use samsa_model::{ProducerEpoch, ProducerId};

use crate::broker::Broker;

/// The version from which PRODUCER_FENCED is answered as itself.
const FENCED_SINCE: i16 = 2;

/// Answers AddOffsetsToTxn.
pub async fn handle(
    broker: &Arc<Broker>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let transactional_id = request.transactional_id.0.to_string();
    let req = txn::AddOffsetsToTxnRequest {
        transactional_id: transactional_id.clone(),
        producer_id: ProducerId(request.producer_id.0),
        producer_epoch: ProducerEpoch(request.producer_epoch),
        group_id: request.group_id.0.to_string(),
        client_transaction_version: 0,
    };
    let answer = broker
        .transactions
        .call(broker, &transactional_id, |c, now, token| {
            c.add_offsets_to_txn(now, &req, token)
        })
        .await;
    let code = match answer {
        Some(TxnResponse::AddOffsetsToTxn(r)) => r.error_code,
        _ => codes::COORDINATOR_NOT_AVAILABLE,
    };
    AddOffsetsToTxnResponse::default().with_error_code(crate::transactions::fenced_code(
        code,
        version,
        FENCED_SINCE,
    ))
}
