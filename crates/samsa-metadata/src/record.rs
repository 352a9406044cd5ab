//! The typed records of the metadata log.
//!
//! Records are stored as JSON (see [`crate::log`]). Fields added after a record
//! type was first written carry `#[serde(default)]`, so logs and snapshots
//! written before them still parse: an old `RegisterBroker` reads as an
//! unfenced broker at epoch 0 with no incarnation, no named listeners and no
//! log directories (nothing cordoned), an old `Partition` as one with no
//! reassignment in progress and no known replica directories, an old
//! `BrokerRegistrationChange` as one leaving the offline directories as
//! they were. That is the whole versioning scheme: a field is
//! only ever added (with a default meaning "as before it existed"), never
//! renamed or retyped; a record type is only ever added, and a log holding a
//! type an older binary does not know fails to parse there (no downgrade
//! past a new record type).

use samsa_model::{BrokerId, DirectoryId, LeaderEpoch, PartitionIndex, TopicId};
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
    /// A consumer group's configs (Kafka's `GROUP` resource), by group id; the
    /// group need not exist. Serialized as `{"Group":"<id>"}`.
    Group(String),
}

/// One named listener a broker advertises (Kafka's `advertised.listeners`
/// entry `NAME://host:port`), e.g. the client listener and the listener other
/// brokers replicate from (`inter.broker.listener.name`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT`, `REPLICATION`, ...), compared exactly.
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// One change to cluster state. Records are applied in log order to the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// The first record of a cluster's log: its id, never changed afterwards.
    InitCluster { cluster_id: String },
    /// A broker registered: it joined, restarted (a new `incarnation`), or
    /// re-registered with new endpoints. Replaces the whole registration.
    RegisterBroker {
        broker_id: BrokerId,
        /// The endpoint clients are given (kept for images and tools that
        /// know no listener names; see `listeners`).
        host: String,
        port: u16,
        rack: Option<String>,
        /// The broker epoch: assigned by the controller, strictly increasing
        /// per broker with every registration (0 in logs written before
        /// broker epochs existed). Fence/unfence records and heartbeats name
        /// the epoch they apply to.
        #[serde(default)]
        epoch: i64,
        /// An id the broker process picks at start-up: the same value means
        /// the same process registering again; a new one means a restart.
        #[serde(default)]
        incarnation: String,
        /// Every named listener the broker advertises (may be empty: then
        /// `host`/`port` serve every name).
        #[serde(default)]
        listeners: Vec<Endpoint>,
        /// Whether the broker starts out fenced: a fenced broker leads no
        /// partition, joins no ISR and receives no new replicas.
        #[serde(default)]
        fenced: bool,
        /// The ids of the broker's log directories (Kafka's
        /// `BrokerRegistrationRecord.LogDirs`, KIP-858), in `log.dirs` order.
        /// Empty in logs written before samsa recorded them: the controller
        /// then treats the broker as having no cordoned directory.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        log_dirs: Vec<DirectoryId>,
        /// The subset of `log_dirs` listed in `cordoned.log.dirs` when the
        /// broker registered (KIP-1066). Later changes arrive as
        /// [`MetadataRecord::BrokerRegistrationChange`].
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cordoned_log_dirs: Vec<DirectoryId>,
    },
    /// The broker at `epoch` changed its cordoned log directories (KIP-1066;
    /// the cordoning part of Kafka's `BrokerRegistrationChangeRecord`)
    /// without registering again: a dynamic `cordoned.log.dirs` change.
    /// Replaces the set. Ignored when the broker's registered epoch differs.
    BrokerRegistrationChange {
        broker_id: BrokerId,
        epoch: i64,
        cordoned_log_dirs: Vec<DirectoryId>,
        /// The broker's log directories that failed (KIP-858: an I/O error
        /// took them offline; Kafka's heartbeat `OfflineLogDirs`), replacing
        /// the set; `None` (and records written before it existed) leaves
        /// it as it was. A new registration starts with none offline.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offline_log_dirs: Option<Vec<DirectoryId>>,
    },
    /// The broker at `epoch` was fenced (Kafka's `FenceBrokerRecord`). Ignored
    /// when the broker's registered epoch differs (the record is stale).
    FenceBroker { broker_id: BrokerId, epoch: i64 },
    /// The broker at `epoch` was unfenced (Kafka's `UnfenceBrokerRecord`).
    /// Ignored when the broker's registered epoch differs.
    UnfenceBroker { broker_id: BrokerId, epoch: i64 },
    /// A topic was created. Its partitions follow as [`MetadataRecord::Partition`].
    Topic { name: String, topic_id: TopicId },
    /// A partition was created, or its leadership/replica set changed. A
    /// change is written as the full new state: `partition_epoch` is one more
    /// than before; `leader_epoch` is one more exactly when the leader changed
    /// or the change removed replicas from the replica set (as in Kafka 3.6+,
    /// where an ISR shrink alone no longer bumps it).
    Partition {
        topic_id: TopicId,
        partition: PartitionIndex,
        /// Every replica, preferred leader first. During a reassignment this is
        /// the target replicas followed by the ones being removed.
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        /// The leader, or -1 (Kafka's NO_LEADER) while no eligible replica is
        /// available.
        leader: BrokerId,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        /// Replicas a reassignment in progress adds (also in `replicas`).
        #[serde(default)]
        adding_replicas: Vec<BrokerId>,
        /// Replicas a reassignment in progress removes (also in `replicas`).
        #[serde(default)]
        removing_replicas: Vec<BrokerId>,
        /// The log directory holding each replica on its broker, in
        /// `replicas` order (Kafka's `PartitionRecord.Directories`, set by
        /// AssignReplicasToDirs); [`DirectoryId::UNASSIGNED`] for a replica
        /// whose broker has not reported one yet. Empty (and in records
        /// written before it existed): unknown for every replica.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        directories: Vec<DirectoryId>,
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
    /// A finalized feature's level changed (Kafka's `FeatureLevelRecord`);
    /// level 0 disables the feature. The image's `features_epoch` becomes this
    /// record's metadata offset, or `at_offset` when set: a snapshot keeps the
    /// offset the level was first written at there (a snapshot's records are
    /// not at their original offsets). Logs written before features existed
    /// have none: the controller writes the bootstrap levels at startup.
    FeatureLevel {
        name: String,
        level: i16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_offset: Option<i64>,
    },
    /// An ACL was created (Kafka's `AccessControlEntryRecord`), under an id
    /// the controller picked. An id already present is replaced.
    AccessControlEntry {
        id: uuid::Uuid,
        acl: crate::acl::AclBinding,
    },
    /// The ACL `id` was deleted (Kafka's `RemoveAccessControlEntryRecord`);
    /// an unknown id changes nothing.
    RemoveAccessControlEntry { id: uuid::Uuid },
    /// User `name`'s SCRAM credential for `mechanism` was set (Kafka's
    /// `UserScramCredentialRecord`): salt, stored key, server key and
    /// iterations, never the password. Replaces any earlier one.
    UserScramCredential {
        name: String,
        mechanism: crate::scram::ScramMechanism,
        credential: crate::scram::ScramCredential,
    },
    /// User `name`'s SCRAM credential for `mechanism` was deleted (Kafka's
    /// `RemoveUserScramCredentialRecord`).
    RemoveUserScramCredential {
        name: String,
        mechanism: crate::scram::ScramMechanism,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_the_replication_fields_still_parse() {
        let old = r#"{"type":"RegisterBroker","broker_id":3,"host":"h","port":9092,"rack":"r1"}"#;
        let parsed: MetadataRecord = serde_json::from_str(old).unwrap();
        assert_eq!(
            parsed,
            MetadataRecord::RegisterBroker {
                broker_id: BrokerId(3),
                host: "h".into(),
                port: 9092,
                rack: Some("r1".into()),
                epoch: 0,
                incarnation: String::new(),
                listeners: Vec::new(),
                fenced: false,
                log_dirs: Vec::new(),
                cordoned_log_dirs: Vec::new(),
            }
        );
        let old = r#"{"type":"Partition","topic_id":"00000000-0000-0000-0000-000000000001",
            "partition":2,"replicas":[1,2],"isr":[2],"leader":2,"leader_epoch":4,
            "partition_epoch":7}"#;
        let parsed: MetadataRecord = serde_json::from_str(old).unwrap();
        assert_eq!(
            parsed,
            MetadataRecord::Partition {
                topic_id: TopicId(uuid::Uuid::from_u128(1)),
                partition: PartitionIndex(2),
                replicas: vec![BrokerId(1), BrokerId(2)],
                isr: vec![BrokerId(2)],
                leader: BrokerId(2),
                leader_epoch: LeaderEpoch(4),
                partition_epoch: 7,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
                directories: Vec::new(),
            }
        );
    }

    #[test]
    fn new_records_round_trip() {
        let records = [
            MetadataRecord::RegisterBroker {
                broker_id: BrokerId(1),
                host: "h".into(),
                port: 1,
                rack: None,
                epoch: 5,
                incarnation: "abc".into(),
                listeners: vec![Endpoint {
                    name: "REPLICATION".into(),
                    host: "10.0.0.1".into(),
                    port: 9093,
                }],
                fenced: true,
                log_dirs: vec![
                    DirectoryId(uuid::Uuid::from_u128(7)),
                    DirectoryId(uuid::Uuid::from_u128(8)),
                ],
                cordoned_log_dirs: vec![DirectoryId(uuid::Uuid::from_u128(8))],
            },
            MetadataRecord::BrokerRegistrationChange {
                broker_id: BrokerId(1),
                epoch: 5,
                cordoned_log_dirs: Vec::new(),
                offline_log_dirs: None,
            },
            MetadataRecord::BrokerRegistrationChange {
                broker_id: BrokerId(1),
                epoch: 5,
                cordoned_log_dirs: Vec::new(),
                offline_log_dirs: Some(vec![DirectoryId(uuid::Uuid::from_u128(7))]),
            },
            MetadataRecord::Partition {
                topic_id: TopicId(uuid::Uuid::from_u128(1)),
                partition: PartitionIndex(0),
                replicas: vec![BrokerId(1), BrokerId(2)],
                isr: vec![BrokerId(1)],
                leader: BrokerId(1),
                leader_epoch: LeaderEpoch(0),
                partition_epoch: 0,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
                directories: vec![
                    DirectoryId(uuid::Uuid::from_u128(7)),
                    DirectoryId::UNASSIGNED,
                ],
            },
            MetadataRecord::FenceBroker {
                broker_id: BrokerId(1),
                epoch: 5,
            },
            MetadataRecord::UnfenceBroker {
                broker_id: BrokerId(1),
                epoch: 5,
            },
            MetadataRecord::FeatureLevel {
                name: "group.version".into(),
                level: 1,
                at_offset: None,
            },
            MetadataRecord::FeatureLevel {
                name: "metadata.version".into(),
                level: 27,
                at_offset: Some(3),
            },
        ];
        for r in records {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<MetadataRecord>(&json).unwrap(), r);
        }
    }
}
