//! JoinGroup: parked until the group's rebalance completes.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use samsa_coordinator as gc;

use super::{s, Ctx};
use crate::broker::Broker;

/// Answers JoinGroup.
pub async fn handle(
    broker: &Broker,
    ctx: &Ctx,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let req = gc::JoinGroupRequest {
        api_version: version,
        group_id: request.group_id.0.to_string(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|v| v.to_string()),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| gc::JoinGroupProtocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        reason: request.reason.map(|v| v.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host(),
    };
    let member_id = req.member_id.clone();
    let response = broker
        .groups
        .call(broker, &req.group_id.clone(), move |c, _, now, token| {
            c.join_group(req, now, token)
        })
        .await;
    let r = match response {
        Some(gc::Response::JoinGroup(r)) => r,
        Some(other) => gc::JoinGroupResponse::error(other.error_code(), member_id),
        None => gc::JoinGroupResponse::error(gc::codes::NOT_COORDINATOR, member_id),
    };
    let mut out = JoinGroupResponse::default()
        .with_error_code(r.error_code)
        .with_generation_id(r.generation_id)
        .with_protocol_name(r.protocol_name.map(s))
        .with_leader(s(r.leader))
        .with_member_id(s(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(s))
                        .with_metadata(m.metadata)
                })
                .collect(),
        );
    if version >= 7 {
        out = out.with_protocol_type(r.protocol_type.map(s));
    }
    if version >= 9 {
        out = out.with_skip_assignment(r.skip_assignment);
    }
    out
}
