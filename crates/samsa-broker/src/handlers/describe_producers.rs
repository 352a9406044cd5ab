//! DescribeProducers (API 61, KIP-664): the producers a partition's leader
//! tracks ([`samsa_storage::producer_state`]): id, epoch, last sequence,
//! last timestamp, the epoch of the coordinator of its last marker and the
//! first offset of its open transaction (-1 when none), as `kafka-transactions.sh
//! describe-producers` and `find-hanging` read them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use crate::broker::Broker;

/// Answers DescribeProducers; only the leader answers for a partition.
pub fn handle(
    broker: &Broker,
    request: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let image = broker.image();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let answer = PartitionResponse::default().with_partition_index(index);
                    let Some(part) = broker.partition_named(&image, &t.name.0, index) else {
                        return answer
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if !part.is_leader() {
                        return answer.with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    let producers = part
                        .log()
                        .producer_entries()
                        .into_iter()
                        .map(|(id, e)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(id.get()))
                                .with_producer_epoch(i32::from(e.epoch.get()))
                                .with_last_sequence(e.last_sequence())
                                .with_last_timestamp(e.last_timestamp)
                                .with_coordinator_epoch(e.coordinator_epoch.get())
                                .with_current_txn_start_offset(
                                    e.current_txn_first_offset.map_or(-1, |o| o.get()),
                                )
                        })
                        .collect();
                    answer.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
