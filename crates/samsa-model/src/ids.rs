//! Newtypes for every id, offset and epoch that crosses a crate boundary.
//!
//! Glossary of overloaded words:
//! - *leader epoch*: the generation of a partition's leadership ([`LeaderEpoch`]);
//!   stamped into every stored batch.
//! - *producer epoch*: the generation of an idempotent/transactional producer id
//!   ([`ProducerEpoch`]).
//! - *metadata offset*: a position in the metadata log ([`MetadataOffset`]), a
//!   different offset space from a partition's record offsets ([`Offset`]).

use std::fmt;

macro_rules! newtype {
    ($(#[$m:meta])* $name:ident($inner:ty)) => {
        $(#[$m])*
        #[derive(
            Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            /// The raw value, for the wire or a file.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

newtype!(
    /// A record offset inside one partition (dense, strictly increasing).
    Offset(i64)
);
newtype!(
    /// The leader epoch of a partition.
    LeaderEpoch(i32)
);
newtype!(
    /// A broker's (node's) id, Kafka's `node.id` / `broker.id`.
    BrokerId(i32)
);
newtype!(
    /// The index of a partition inside its topic.
    PartitionIndex(i32)
);
newtype!(
    /// An idempotent or transactional producer's id.
    ProducerId(i64)
);
newtype!(
    /// An idempotent or transactional producer's epoch.
    ProducerEpoch(i16)
);
newtype!(
    /// The epoch of a transaction coordinator (the leader epoch of its
    /// `__transaction_state` partition), carried by transaction markers.
    CoordinatorEpoch(i32)
);
newtype!(
    /// Milliseconds since the Unix epoch.
    TimestampMs(i64)
);
newtype!(
    /// A position in the metadata log.
    MetadataOffset(u64)
);

impl Offset {
    /// The offset `n` records after this one.
    pub const fn plus(self, n: i64) -> Offset {
        Offset(self.0 + n)
    }
}

impl LeaderEpoch {
    /// Kafka's "no epoch" marker (-1).
    pub const NONE: LeaderEpoch = LeaderEpoch(-1);
}

/// A topic's unique id (Kafka's topic UUID, assigned at creation, never reused).
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct TopicId(pub uuid::Uuid);

impl TopicId {
    /// Kafka's all-zero "no topic id" value.
    pub const ZERO: TopicId = TopicId(uuid::Uuid::nil());

    /// A fresh random id (never the nil UUID).
    pub fn random() -> TopicId {
        TopicId(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A log directory's id (Kafka's `directory.id`, KIP-858): a UUID written
/// into the directory's `meta.properties` when it is first used, so it stays
/// the same across restarts and path changes.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct DirectoryId(pub uuid::Uuid);

impl DirectoryId {
    /// Kafka's `DirectoryId.UNASSIGNED` (the nil UUID): the replica's
    /// directory is not known yet.
    pub const UNASSIGNED: DirectoryId = DirectoryId(uuid::Uuid::nil());
}

impl fmt::Display for DirectoryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A (topic name, partition) pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: PartitionIndex,
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}
