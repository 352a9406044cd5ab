//! SyncGroup: followers wait for the leader's assignments.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use samsa_coordinator as gc;

use super::s;
use crate::broker::Broker;

/// Answers SyncGroup.
pub async fn handle(broker: &Broker, request: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let req = gc::SyncGroupRequest {
        api_version: version,
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|v| v.to_string()),
        protocol_type: request.protocol_type.map(|v| v.to_string()),
        protocol_name: request.protocol_name.map(|v| v.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| gc::SyncGroupAssignment {
                member_id: a.member_id.to_string(),
                assignment: a.assignment,
            })
            .collect(),
    };
    let r = match broker
        .groups
        .call(broker, &req.group_id.clone(), move |c, _, now, token| {
            c.sync_group(req, now, token)
        })
        .await
    {
        Some(gc::Response::SyncGroup(r)) => r,
        Some(other) => gc::SyncGroupResponse::error(other.error_code()),
        None => gc::SyncGroupResponse::error(gc::codes::NOT_COORDINATOR),
    };
    let mut out = SyncGroupResponse::default()
        .with_error_code(r.error_code)
        .with_assignment(r.assignment);
    if version >= 5 {
        out = out
            .with_protocol_type(r.protocol_type.map(s))
            .with_protocol_name(r.protocol_name.map(s));
    }
    out
}
