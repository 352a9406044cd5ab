//! An async client for Kafka-compatible brokers (Apache Kafka 4.x semantics):
//! connections with version negotiation, cluster metadata and routing, admin
//! operations, a batching producer and a consumer (assigned partitions or a
//! classic consumer group).
//!
//! Every response is checked by [`guard`] before `kafka-protocol` decodes it,
//! so a broker's bytes can never make the client allocate more than a small
//! multiple of the (size-capped) response.

pub mod admin;
pub mod client;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod group_protocol;
pub mod guard;
pub mod partitioner;
pub mod producer;
pub mod versions;

pub use admin::Admin;
pub use client::{Client, ClientConfig};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetSpec};
pub use error::ClientError;
pub use producer::{Acks, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
