//! DescribeProducers (API 61, KIP-664): the producers a partition's replica
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

/// Answers DescribeProducers from this broker's replica, leader or follower,
/// as Kafka does (a follower's producer state is rebuilt from the batches it
/// replicates, markers included); KAFKA_STORAGE_ERROR when the replica's log
/// directory failed, NOT_LEADER_OR_FOLLOWER when this broker holds no replica.
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
                        // Kafka: a partition the cluster has but this broker
                        // holds no replica of is NOT_LEADER_OR_FOLLOWER.
                        let known = image
                            .topic(&t.name.0)
                            .is_some_and(|t| t.partitions.iter().any(|p| p.index.0 == index));
                        let error = if known {
                            ResponseError::NotLeaderOrFollower
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        return answer.with_error_code(error.code());
                    };
                    if part.is_offline() {
                        return answer.with_error_code(ResponseError::KafkaStorageError.code());
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
