//! Heartbeat: keeps a classic group member's session alive.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use samsa_coordinator as gc;

use crate::broker::Broker;

/// Answers Heartbeat.
pub async fn handle(
    broker: &Broker,
    request: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let req = gc::HeartbeatRequest {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|v| v.to_string()),
    };
    let code = match broker
        .groups
        .call(broker, &req.group_id.clone(), move |c, _, now, token| {
            c.heartbeat(req, now, token)
        })
        .await
    {
        Some(r) => r.error_code(),
        None => gc::codes::NOT_COORDINATOR,
    };
    HeartbeatResponse::default().with_error_code(code)
}
