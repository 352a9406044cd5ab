//! Cluster metadata for samsa: typed metadata records, the durable metadata log,
//! the immutable in-memory [`MetadataImage`] they build, the controller that turns
//! admin requests into records, and the topic/broker config definitions.
//!
//! Every change to cluster state (topic created, partitions added, config altered,
//! broker registered, leader changed) is planned against the published image
//! ([`plan`]: pure, no side effects), committed as a batch of [`MetadataRecord`]s
//! to the metadata log through a [`quorum::MetadataQuorum`] (fenced on the batch
//! the image was built up to), and only then applied to the image by the
//! [`Controller`]. A single node is a one-voter quorum whose log is a local file.
//!
//! Replication follows Kafka's KRaft controller: brokers register with an
//! epoch and may be fenced; fencing, unfencing, ISR changes proposed by
//! leaders (`AlterPartition`), leader elections and reassignments are planned
//! as full `Partition` records (see [`plan`]).
//!
//! Invariant: this crate knows nothing about the Kafka wire format, sockets or
//! partition data files. The image is changed only by applying records.

pub mod acl;
pub mod config;
pub mod controller;
pub mod features;
pub mod group_config;
pub mod image;
pub mod log;
pub mod log_dirs;
pub mod plan;
pub mod quorum;
pub mod record;
pub mod scram;
pub mod security;

pub use controller::{
    AlterPartition, BrokerRegistration, Controller, ControllerError, ElectionType, NewTopic,
    OngoingReassignment, PartitionResult, Step,
};
pub use image::{BrokerInfo, MetadataImage, PartitionImage, TopicImage, NO_LEADER};
pub use plan::Planned;
pub use record::{ConfigResource, Endpoint, MetadataRecord};
