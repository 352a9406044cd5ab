//! EndTxn: commits or aborts a producer's ongoing transaction. The
//! coordinator persists PrepareCommit/PrepareAbort, answers, and writes the
//! markers; v5 (transaction version 2, KIP-890 part 2) bumps the producer
//! epoch on every end and returns the id and epoch to use next.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId as WireProducerId};
use samsa_coordinator::codes;
use samsa_coordinator::txn::{self, TxnResponse};
use samsa_model::{ProducerEpoch, ProducerId};

use crate::broker::Broker;

/// The version from which PRODUCER_FENCED is answered as itself.
const FENCED_SINCE: i16 = 2;
/// The first version of transaction version 2 clients.
const TV2_SINCE: i16 = 5;

/// Answers EndTxn.
pub async fn handle(broker: &Arc<Broker>, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let transactional_id = request.transactional_id.0.to_string();
    let req = txn::EndTxnRequest {
        transactional_id: transactional_id.clone(),
        producer_id: ProducerId(request.producer_id.0),
        producer_epoch: ProducerEpoch(request.producer_epoch),
        commit: request.committed,
        client_transaction_version: if version >= TV2_SINCE { 2 } else { 0 },
    };
    let answer = broker
        .transactions
        .call(broker, &transactional_id, |c, now, token| {
            c.end_txn(now, &req, token)
        })
        .await;
    let (code, id, epoch) = match answer {
        Some(TxnResponse::EndTxn(r)) => (r.error_code, r.producer_id.get(), r.producer_epoch.get()),
        _ => (codes::COORDINATOR_NOT_AVAILABLE, -1, -1),
    };
    let response = EndTxnResponse::default().with_error_code(crate::transactions::fenced_code(
        code,
        version,
        FENCED_SINCE,
    ));
    if version >= TV2_SINCE {
        response
            .with_producer_id(WireProducerId(id))
            .with_producer_epoch(epoch)
    } else {
        response
    }
}
