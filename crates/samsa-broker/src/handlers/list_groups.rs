//! ListGroups, with state (v4+) and type (v5+) filters.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use samsa_coordinator as gc;

use super::s;
use crate::broker::Broker;

/// Answers ListGroups.
pub async fn handle(
    broker: &Broker,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let req = gc::ListGroupsRequest {
        states_filter: request
            .states_filter
            .iter()
            .map(|v| v.to_string())
            .collect(),
        types_filter: request.types_filter.iter().map(|v| v.to_string()).collect(),
    };
    // Every coordinator shard lists its groups; one still loading fails the
    // whole answer with COORDINATOR_LOAD_IN_PROGRESS, as in Kafka.
    let parts = broker
        .groups
        .read_all(broker, |c, _| c.list_groups(&req))
        .await;
    let error_code = parts
        .iter()
        .map(|r| r.error_code)
        .find(|c| *c != gc::codes::NONE)
        .unwrap_or(gc::codes::NONE);
    let groups: Vec<gc::ListedGroup> = if error_code == gc::codes::NONE {
        parts.into_iter().flat_map(|r| r.groups).collect()
    } else {
        Vec::new()
    };
    ListGroupsResponse::default()
        .with_error_code(error_code)
        .with_groups(
            groups
                .into_iter()
                .map(|g| {
                    let mut out = ListedGroup::default()
                        .with_group_id(GroupId(s(g.group_id)))
                        .with_protocol_type(s(g.protocol_type));
                    if version >= 4 {
                        out = out.with_group_state(s(g.group_state));
                    }
                    if version >= 5 {
                        out = out.with_group_type(s(g.group_type));
                    }
                    out
                })
                .collect(),
        )
}
