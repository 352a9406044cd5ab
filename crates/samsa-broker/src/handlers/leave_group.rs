//! LeaveGroup: one member (v0-2) or a batch of members (v3+).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use samsa_coordinator as gc;

use super::s;
use crate::broker::Broker;

/// Answers LeaveGroup.
pub async fn handle(
    broker: &Broker,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let members = if version >= 3 {
        request
            .members
            .into_iter()
            .map(|m| gc::LeaveGroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|v| v.to_string()),
                reason: m.reason.map(|v| v.to_string()),
            })
            .collect()
    } else {
        vec![gc::LeaveGroupMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
            reason: None,
        }]
    };
    let req = gc::LeaveGroupRequest {
        api_version: version,
        group_id: request.group_id.0.to_string(),
        members,
    };
    let r = match broker
        .groups
        .call(broker, &req.group_id.clone(), move |c, _, now, token| {
            c.leave_group(req, now, token)
        })
        .await
    {
        Some(gc::Response::LeaveGroup(r)) => r,
        Some(other) => gc::LeaveGroupResponse {
            error_code: other.error_code(),
            members: vec![],
        },
        None => gc::LeaveGroupResponse {
            error_code: gc::codes::NOT_COORDINATOR,
            members: vec![],
        },
    };
    let mut out = LeaveGroupResponse::default().with_error_code(r.error_code);
    if version >= 3 {
        out = out.with_members(
            r.members
                .into_iter()
                .map(|m| {
                    MemberResponse::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(s))
                        .with_error_code(m.error_code)
                })
                .collect(),
        );
    }
    out
}
