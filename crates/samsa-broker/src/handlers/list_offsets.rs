//! ListOffsets: earliest, latest, by timestamp, max timestamp, earliest local
//! (v8) and latest tiered (v9). v10's `timeout_ms` bounds waits for remote
//! storage, which samsa does not have: every answer is local and immediate.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use samsa_model::TimestampMs;

use crate::broker::Broker;
use crate::errors::storage_error;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
/// v9+ (KIP-1005): the highest offset in tiered storage. samsa has no tiered
/// storage, so, as Kafka for a topic without remote storage, the answer is
/// offset -1 with leader epoch -1.
const LATEST_TIERED: i64 = -5;

/// Answers ListOffsets.
pub fn handle(broker: &Broker, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let image = broker.image();
    let read_committed = request.isolation_level == 1;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let Some(part) = broker.partition_named(&image, &t.name.0, p.partition_index)
                    else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let epoch = match crate::errors::check_leader(&part, p.current_leader_epoch) {
                        Ok(epoch) => epoch,
                        Err(code) => return r.with_error_code(code.code()),
                    };
                    let r = if version >= 4 {
                        r.with_leader_epoch(epoch)
                    } else {
                        r
                    };
                    if p.timestamp == LATEST_TIERED {
                        return r.with_leader_epoch(-1);
                    }
                    let found = match p.timestamp {
                        // read_committed (isolation level 1, v2+): the last
                        // stable offset, as Kafka answers.
                        LATEST if read_committed => {
                            let hw = part.high_watermark();
                            Ok(Some((-1, part.log().last_stable_offset(hw).get())))
                        }
                        LATEST => Ok(Some((-1, part.high_watermark().get()))),
                        EARLIEST | EARLIEST_LOCAL => {
                            Ok(Some((-1, part.log().log_start_offset().get())))
                        }
                        MAX_TIMESTAMP => part
                            .log()
                            .max_timestamp()
                            .map(|m| m.map(|(ts, off)| (ts.get(), off.get()))),
                        ts if ts >= 0 => part
                            .log()
                            .offset_for_timestamp(TimestampMs(ts))
                            .map(|m| m.map(|(off, ts)| (ts.get(), off.get()))),
                        _ => {
                            return r.with_error_code(ResponseError::InvalidRequest.code());
                        }
                    };
                    match found {
                        Ok(Some((ts, off))) => r.with_timestamp(ts).with_offset(off),
                        Ok(None) => r,
                        Err(e) => r.with_error_code(storage_error(&e).code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
