//! FindCoordinator: a group's coordinator is the leader of its
//! `__consumer_offsets` partition, a transactional id's the leader of its
//! `__transaction_state` partition; the topic is created on first use, as in
//! Kafka. As in Kafka the leader is named while it still loads the
//! partition (the coordinator's requests then answer
//! COORDINATOR_LOAD_IN_PROGRESS, which clients retry against the same
//! coordinator).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{s, Ctx};
use crate::broker::Broker;

const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// Answers FindCoordinator (v0-3: one key; v4+: a batch of keys).
pub fn handle(
    broker: &Broker,
    ctx: &Ctx,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let answer = |key: StrBytes| -> Coordinator {
        let c = Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1));
        let transaction = match request.key_type {
            KEY_GROUP => false,
            KEY_TRANSACTION => true,
            _ => {
                return c
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(s(format!(
                        "unknown coordinator key type {}",
                        request.key_type
                    ))))
            }
        };
        let unavailable = |c: Coordinator| {
            c.with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(s("the coordinator is not available yet")))
        };
        let (ready, topic, partition) = if transaction {
            (
                broker.transactions.ensure_topic(broker),
                crate::transactions::TRANSACTION_STATE_TOPIC,
                broker.transactions.partition_for(key.as_str()),
            )
        } else {
            (
                broker.groups.ensure_offsets_topic(broker),
                crate::groups::OFFSETS_TOPIC,
                broker.groups.partition_for(key.as_str()),
            )
        };
        if !ready {
            return unavailable(c);
        }
        let image = broker.image();
        let leader = image
            .topic(topic)
            .and_then(|t| t.partitions.get(partition as usize))
            .map(|p| p.leader);
        let Some(info) = leader
            .and_then(|l| image.brokers.get(&l))
            .filter(|b| !b.fenced)
        else {
            return unavailable(c);
        };
        if info.id == broker.settings.node_id {
            // Leading the partition but maybe not loaded yet: named anyway,
            // as Kafka names the partition leader; the coordinator's
            // requests answer COORDINATOR_LOAD_IN_PROGRESS until the load
            // is done.
            if transaction && !broker.transactions.serves(key.as_str()) {
                broker.transactions.wake();
            } else if !transaction && !broker.groups.serves(key.as_str()) {
                broker.groups.wake();
            }
        }
        let (host, port) = super::metadata::endpoint_on(info, &ctx.listener);
        c.with_node_id(BrokerId(info.id.get()))
            .with_host(s(host))
            .with_port(port as i32)
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
