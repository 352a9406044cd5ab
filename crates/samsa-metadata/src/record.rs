//! The typed records of the metadata log.

use samsa_model::{BrokerId, LeaderEpoch, PartitionIndex, TopicId};
use serde::{Deserialize, Serialize};

/// What a config record is attached to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// One broker's dynamic config, by id.
    Broker(BrokerId),
    /// The cluster-wide dynamic broker default (Kafka's broker resource "").
    BrokerDefault,
}

/// One change to cluster state. Records are applied in log order to the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// The first record of a cluster's log: its id, never changed afterwards.
    InitCluster { cluster_id: String },
    /// A broker joined, or re-registered with new endpoints.
    RegisterBroker {
        broker_id: BrokerId,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// A topic was created. Its partitions follow as [`MetadataRecord::Partition`].
    Topic { name: String, topic_id: TopicId },
    /// A partition was created, or its leadership/replica set changed.
    Partition {
        topic_id: TopicId,
        partition: PartitionIndex,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        leader: BrokerId,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
    },
    /// A config key was set (`value: Some`) or removed (`value: None`).
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// A topic and all its partitions and configs were deleted.
    RemoveTopic { topic_id: TopicId },
    /// A block of producer ids was handed to `broker_id`; the next block starts
    /// at `next_producer_id`.
    ProducerIds {
        broker_id: BrokerId,
        next_producer_id: i64,
    },
}
