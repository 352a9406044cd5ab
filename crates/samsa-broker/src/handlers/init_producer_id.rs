//! InitProducerId: producer ids for idempotent producers.
//!
//! A non-transactional producer always gets a fresh id with epoch 0 (as Kafka
//! does). Ids are handed out from blocks the controller allocates through the
//! metadata log, so no id is ever reused, across restarts too.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;

/// Answers InitProducerId.
pub fn handle(
    broker: &Broker,
    request: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        // Transactions (a transaction coordinator) are a later milestone; clients
        // cannot reach this without FindCoordinator, which is not advertised.
        return response.with_error_code(ResponseError::InvalidRequest.code());
    }
    match broker.next_producer_id() {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id");
            response.with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}
