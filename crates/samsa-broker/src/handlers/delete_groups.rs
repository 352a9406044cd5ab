//! DeleteGroups: removes empty groups and their offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};
use samsa_coordinator as gc;

use super::s;
use crate::broker::Broker;

/// Answers DeleteGroups.
pub async fn handle(
    broker: &Broker,
    request: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let ids: Vec<String> = request
        .groups_names
        .iter()
        .map(|g| g.0.to_string())
        .collect();
    let fallback = ids.clone();
    let r = match broker
        .groups
        .call(broker, move |c, _, now, token| {
            c.delete_groups(ids, now, token)
        })
        .await
    {
        Some(gc::Response::DeleteGroups(r)) => r,
        other => {
            let code = other.map_or(gc::codes::NOT_COORDINATOR, |o| o.error_code());
            gc::DeleteGroupsResponse {
                results: fallback
                    .into_iter()
                    .map(|group_id| gc::DeletableGroupResult {
                        group_id,
                        error_code: code,
                    })
                    .collect(),
            }
        }
    };
    DeleteGroupsResponse::default().with_results(
        r.results
            .into_iter()
            .map(|g| {
                DeletableGroupResult::default()
                    .with_group_id(GroupId(s(g.group_id)))
                    .with_error_code(g.error_code)
            })
            .collect(),
    )
}
