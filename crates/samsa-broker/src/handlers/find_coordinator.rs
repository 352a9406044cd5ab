//! FindCoordinator: this broker coordinates every group (single node); the
//! `__consumer_offsets` topic is created on first use, as in Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::s;
use crate::broker::Broker;

const KEY_GROUP: i8 = 0;

/// Answers FindCoordinator (v0-3: one key; v4+: a batch of keys).
pub fn handle(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let answer = |key: StrBytes| -> Coordinator {
        let c = Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(-1));
        if request.key_type != KEY_GROUP {
            return c
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(s(
                    "transaction coordinator is not available on this broker",
                )));
        }
        if !broker.groups.ensure_offsets_topic(broker) || !broker.groups.status_ok() {
            return c
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(s("the group coordinator is not available yet")));
        }
        c.with_node_id(BrokerId(broker.settings.node_id.get()))
            .with_host(s(broker.settings.advertised_host.clone()))
            .with_port(broker.settings.advertised_port as i32)
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .cloned()
            .map(answer)
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let c = answer(request.key.clone());
        let mut r = FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port);
        if version >= 1 {
            r = r.with_error_message(c.error_message);
        }
        r
    }
}
