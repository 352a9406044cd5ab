//! ConsumerGroupHeartbeat (KIP-848): joins, heartbeats and leaves of
//! consumer-protocol groups, with server-side assignment.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use samsa_coordinator as gc;
use samsa_model::TopicId;

use super::{s, Ctx};
use crate::broker::Broker;

/// Answers ConsumerGroupHeartbeat.
pub async fn handle(
    broker: &Broker,
    ctx: &Ctx,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    let req = gc::ConsumerGroupHeartbeatRequest {
        api_version: version,
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|v| v.to_string()),
        rack_id: request.rack_id.map(|v| v.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.map(|v| v.to_string()),
        server_assignor: request.server_assignor.map(|v| v.to_string()),
        topic_partitions: request.topic_partitions.map(|tps| {
            tps.into_iter()
                .map(|tp| gc::TopicPartitions {
                    topic_id: TopicId(tp.topic_id),
                    partitions: tp.partitions,
                })
                .collect()
        }),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host(),
    };
    let r = match broker
        .groups
        .call(
            broker,
            &req.group_id.clone(),
            move |c, topics, now, token| c.consumer_group_heartbeat(req, topics, now, token),
        )
        .await
    {
        Some(gc::Response::ConsumerGroupHeartbeat(r)) => r,
        other => gc::ConsumerGroupHeartbeatResponse::error(
            other.map_or(gc::codes::NOT_COORDINATOR, |o| o.error_code()),
            None,
        ),
    };
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(r.error_code)
        .with_error_message(r.error_message.map(s))
        .with_member_id(r.member_id.map(s))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
        .with_assignment(r.assignment.map(|tps| {
            Assignment::default().with_topic_partitions(
                tps.into_iter()
                    .map(|tp| {
                        TopicPartitions::default()
                            .with_topic_id(tp.topic_id.0)
                            .with_partitions(tp.partitions)
                    })
                    .collect(),
            )
        }))
}
