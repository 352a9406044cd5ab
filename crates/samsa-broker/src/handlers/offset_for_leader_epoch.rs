//! OffsetForLeaderEpoch (KIP-101/279): where a leader epoch ends in the
//! leader's log. Followers use it to find a divergent suffix to truncate;
//! consumers use it to validate their position after a leader change.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use samsa_model::LeaderEpoch;

use crate::broker::Broker;

/// Answers OffsetForLeaderEpoch from the leader's epoch cache.
pub fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let image = broker.image();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(part) = broker.partition_named(&image, &t.topic.0, p.partition) else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Err(code) = crate::errors::check_leader(&part, p.current_leader_epoch) {
                        return r.with_error_code(code.code());
                    }
                    let (found, end) = part.log().end_offset_for_epoch(LeaderEpoch(p.leader_epoch));
                    r.with_leader_epoch(found.get()).with_end_offset(end.get())
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
