//! OffsetDelete: drops committed offsets of partitions a group no longer reads.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use samsa_coordinator as gc;

use super::s;
use crate::broker::Broker;

/// Answers OffsetDelete.
pub async fn handle(
    broker: &Broker,
    request: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let req = gc::OffsetDeleteRequest {
        group_id: request.group_id.0.to_string(),
        topics: request
            .topics
            .iter()
            .map(|t| gc::OffsetDeleteTopic {
                name: t.name.0.to_string(),
                partitions: t.partitions.iter().map(|p| p.partition_index).collect(),
            })
            .collect(),
    };
    let r = match broker
        .groups
        .call(broker, &req.group_id.clone(), move |c, _, now, token| {
            c.offset_delete(req, now, token)
        })
        .await
    {
        Some(gc::Response::OffsetDelete(r)) => r,
        other => gc::OffsetDeleteResponse {
            error_code: other.map_or(gc::codes::NOT_COORDINATOR, |o| o.error_code()),
            topics: vec![],
        },
    };
    OffsetDeleteResponse::default()
        .with_error_code(r.error_code)
        .with_topics(
            r.topics
                .into_iter()
                .map(|t| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(s(t.name)))
                        .with_partitions(
                            t.partitions
                                .into_iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(p.error_code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}
