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
    // Each coordinator shard deletes the groups of its partition (empty ids,
    // refused without a partition, on their own).
    let mut by_partition: std::collections::BTreeMap<Option<u32>, Vec<String>> = Default::default();
    for id in &ids {
        let p = (!id.is_empty()).then(|| broker.groups.partition_for(id));
        by_partition.entry(p).or_default().push(id.clone());
    }
    let mut results = Vec::with_capacity(ids.len());
    for (_, part) in by_partition {
        let fallback = part.clone();
        let first = part[0].clone();
        match broker
            .groups
            .call(broker, &first, move |c, _, now, token| {
                c.delete_groups(part, now, token)
            })
            .await
        {
            Some(gc::Response::DeleteGroups(r)) => results.extend(r.results),
            other => {
                let code = other.map_or(gc::codes::NOT_COORDINATOR, |o| o.error_code());
                results.extend(
                    fallback
                        .into_iter()
                        .map(|group_id| gc::DeletableGroupResult {
                            group_id,
                            error_code: code,
                        }),
                );
            }
        }
    }
    super::in_request_order(&mut results, &ids, |r| &r.group_id);
    DeleteGroupsResponse::default().with_results(
        results
            .into_iter()
            .map(|g| {
                DeletableGroupResult::default()
                    .with_group_id(GroupId(s(g.group_id)))
                    .with_error_code(g.error_code)
            })
            .collect(),
    )
}
