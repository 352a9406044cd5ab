//! OffsetFetch: committed offsets of one group (v1-7) or many (v8+).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use samsa_coordinator as gc;

use super::s;
use crate::broker::Broker;

/// Answers OffsetFetch.
pub async fn handle(
    broker: &Broker,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let groups = if version >= 8 {
        request
            .groups
            .into_iter()
            .map(|g| gc::OffsetFetchGroup {
                group_id: g.group_id.0.to_string(),
                member_id: g.member_id.map(|m| m.to_string()),
                member_epoch: g.member_epoch,
                topics: g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| gc::OffsetFetchTopic {
                            name: t.name.0.to_string(),
                            partition_indexes: t.partition_indexes,
                        })
                        .collect()
                }),
            })
            .collect()
    } else {
        vec![gc::OffsetFetchGroup {
            group_id: request.group_id.0.to_string(),
            member_id: None,
            member_epoch: -1,
            topics: request.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| gc::OffsetFetchTopic {
                        name: t.name.0.to_string(),
                        partition_indexes: t.partition_indexes,
                    })
                    .collect()
            }),
        }]
    };
    // Each group is read on its coordinator shard.
    let ids: Vec<String> = groups.iter().map(|g| g.group_id.clone()).collect();
    let mut answered: Vec<gc::OffsetFetchGroupResponse> = broker
        .groups
        .read_groups(broker, &ids, |c, _, part| {
            let req = gc::OffsetFetchRequest {
                api_version: version,
                groups: groups
                    .iter()
                    .filter(|g| part.contains(&g.group_id))
                    .cloned()
                    .collect(),
                require_stable: request.require_stable,
            };
            c.offset_fetch(&req).groups
        })
        .await
        .into_iter()
        .flatten()
        .collect();
    super::in_request_order(&mut answered, &ids, |g| &g.group_id);
    let r = gc::OffsetFetchResponse { groups: answered };
    if version >= 8 {
        let groups = r
            .groups
            .into_iter()
            .map(|g| {
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(s(g.group_id)))
                    .with_error_code(g.error_code)
                    .with_topics(
                        g.topics
                            .into_iter()
                            .map(|t| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(s(t.name)))
                                    .with_partitions(
                                        t.partitions
                                            .into_iter()
                                            .map(|p| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p.partition_index)
                                                    .with_committed_offset(p.committed_offset)
                                                    .with_committed_leader_epoch(
                                                        p.committed_leader_epoch,
                                                    )
                                                    .with_metadata(p.metadata.map(s))
                                                    .with_error_code(p.error_code)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let Some(g) = r.groups.into_iter().next() else {
        return OffsetFetchResponse::default().with_error_code(gc::codes::NOT_COORDINATOR);
    };
    let topics = g
        .topics
        .into_iter()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(s(t.name)))
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            let mut out = OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(p.committed_offset)
                                .with_metadata(p.metadata.map(s))
                                .with_error_code(p.error_code);
                            if version >= 5 {
                                out = out.with_committed_leader_epoch(p.committed_leader_epoch);
                            }
                            out
                        })
                        .collect(),
                )
        })
        .collect();
    let mut out = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        out = out.with_error_code(g.error_code);
    }
    out
}
