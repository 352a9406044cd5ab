//! DeleteRecords: moves a partition's log start offset forward.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use samsa_model::Offset;

use crate::broker::Broker;
use crate::errors::storage_error;

/// Answers DeleteRecords.
pub fn handle(
    broker: &Broker,
    request: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let image = broker.image();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let Some(part) = broker.partition_named(&image, &t.name.0, p.partition_index)
                    else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    // The state lock's read side from the leadership check
                    // through the delete, as for a produce: no role change
                    // falls in between.
                    let state = part.state();
                    if !state.is_leader() {
                        return r.with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    let hw = part.high_watermark();
                    let target = if p.offset == -1 { hw } else { Offset(p.offset) };
                    if target.get() < 0 || target > hw {
                        return r.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    let deleted = part.log().delete_records_before(target);
                    drop(state);
                    match deleted {
                        Ok(low) => r.with_low_watermark(low.get()),
                        Err(e) => r.with_error_code(storage_error(&e).code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
