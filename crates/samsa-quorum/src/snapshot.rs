//! Snapshots: the metadata image compacted into the fewest records that rebuild
//! it, and their byte format.
//!
//! # Byte layout (file `snapshot` in the quorum directory, and the bytes sent to
//! a follower or observer)
//!
//! Frames as described in [`crate::frame`]:
//!
//! ```text
//! frame 0          header JSON: {"format":1,
//!                   "meta":{"last_log_id":..,"last_membership":..,"snapshot_id":".."},
//!                   "last_batch":<index or null>, "records_applied":<u64>,
//!                   "record_count":<u64>}
//! frame 1..=count  one MetadataRecord each (the same JSON as metadata.log)
//! ```
//!
//! Nothing may follow the last record frame. `records_applied` is the image's
//! `records_applied` at the snapshot (the count of all records ever applied,
//! which compaction would otherwise lose).
//!
//! # Crash behaviour
//!
//! The file is replaced atomically (written to `snapshot.tmp`, fsynced, renamed,
//! directory fsynced) before openraft is told the snapshot exists and before any
//! log entry it covers is purged. A snapshot that does not decode is refused
//! (the node does not start): the entries it covers may already be purged.
//!
//! # Compaction
//!
//! [`compact`] emits, in this order: `InitCluster`; a `FeatureLevel` per
//! finalized feature (each with `at_offset` = the image's `features_epoch`); a `RegisterBroker` per broker
//! (carrying its epoch, incarnation, listeners and fenced flag, so no
//! `FenceBroker`/`UnfenceBroker` is needed); the cluster-wide then per-broker
//! dynamic configs; every ACL (`AccessControlEntry`, by id); per topic (by name) its `Topic`, its `Partition`s in index
//! order (with any reassignment in progress) and its configs; a
//! `UserScramCredential` per user and mechanism; and one
//! `ProducerIds` with the next producer id. Applying them to an empty image gives
//! an image equal to the compacted one (checked by a property test), except for
//! per-broker config maps left empty by removals, which carry no meaning.

use samsa_metadata::{ConfigResource, MetadataImage, MetadataRecord};
use samsa_model::BrokerId;
use serde::{Deserialize, Serialize};

use crate::frame::{parse_frame, put_frame, FRAME_HEADER_BYTES, STATE_BYTES_MAX};
use crate::types::SnapshotMeta;

/// The format number written in every snapshot header.
pub(crate) const SNAPSHOT_FORMAT: u32 = 1;

/// The first frame of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotHeader {
    pub format: u32,
    pub meta: SnapshotMeta,
    pub last_batch: Option<u64>,
    pub records_applied: u64,
    pub record_count: u64,
}

/// A decoded snapshot.
#[derive(Clone, Debug)]
pub(crate) struct DecodedSnapshot {
    pub header: SnapshotHeader,
    pub records: Vec<MetadataRecord>,
}

impl DecodedSnapshot {
    /// The image the snapshot describes.
    pub(crate) fn image(&self) -> MetadataImage {
        rebuild(&self.records, self.header.records_applied)
    }
}

/// The records that rebuild `image` (see the module doc).
pub(crate) fn compact(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    if !image.cluster_id.is_empty() {
        out.push(MetadataRecord::InitCluster {
            cluster_id: image.cluster_id.clone(),
        });
    }
    for (name, level) in &image.features {
        // Each carries the offset of the last feature change, so the rebuilt
        // image has the same `features_epoch`.
        out.push(MetadataRecord::FeatureLevel {
            name: name.clone(),
            level: *level,
            at_offset: Some(image.features_epoch),
        });
    }
    for b in image.brokers.values() {
        out.push(MetadataRecord::RegisterBroker {
            broker_id: b.id,
            host: b.host.clone(),
            port: b.port,
            rack: b.rack.clone(),
            epoch: b.epoch,
            incarnation: b.incarnation.clone(),
            listeners: b.listeners.clone(),
            fenced: b.fenced,
            log_dirs: b.log_dirs.clone(),
            cordoned_log_dirs: b.cordoned_log_dirs.clone(),
        });
        if !b.offline_log_dirs.is_empty() {
            out.push(MetadataRecord::BrokerRegistrationChange {
                broker_id: b.id,
                epoch: b.epoch,
                cordoned_log_dirs: b.cordoned_log_dirs.clone(),
                offline_log_dirs: Some(b.offline_log_dirs.clone()),
            });
        }
    }
    let config = |resource: ConfigResource, name: &String, value: &String| MetadataRecord::Config {
        resource,
        name: name.clone(),
        value: Some(value.clone()),
    };
    for (k, v) in &image.default_broker_configs {
        out.push(config(ConfigResource::BrokerDefault, k, v));
    }
    for (id, map) in &image.broker_configs {
        for (k, v) in map {
            out.push(config(ConfigResource::Broker(*id), k, v));
        }
    }
    for (group, map) in &image.group_configs {
        for (k, v) in map {
            out.push(config(ConfigResource::Group(group.clone()), k, v));
        }
    }
    for (id, acl) in image.acls.iter() {
        out.push(MetadataRecord::AccessControlEntry {
            id: *id,
            acl: acl.clone(),
        });
    }
    for topic in image.topics.values() {
        out.push(MetadataRecord::Topic {
            name: topic.name.clone(),
            topic_id: topic.id,
        });
        for p in &topic.partitions {
            out.push(MetadataRecord::Partition {
                topic_id: topic.id,
                partition: p.index,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                adding_replicas: p.adding_replicas.clone(),
                removing_replicas: p.removing_replicas.clone(),
                directories: p.directories.clone(),
            });
        }
        for (k, v) in &topic.configs {
            out.push(config(ConfigResource::Topic(topic.name.clone()), k, v));
        }
    }
    for (user, credentials) in image.scram_credentials.iter() {
        for (mechanism, credential) in credentials {
            out.push(MetadataRecord::UserScramCredential {
                name: user.clone(),
                mechanism: *mechanism,
                credential: credential.clone(),
            });
        }
    }
    if image.next_producer_id != 0 {
        out.push(MetadataRecord::ProducerIds {
            // The image keeps only the next id; the block's owner is history.
            broker_id: BrokerId(-1),
            next_producer_id: image.next_producer_id,
        });
    }
    out
}

/// Applies `records` to an empty image and restores `records_applied`.
pub(crate) fn rebuild(records: &[MetadataRecord], records_applied: u64) -> MetadataImage {
    let mut image = MetadataImage::default();
    for r in records {
        image.apply(r);
    }
    image.records_applied = records_applied;
    image
}

/// Encodes a snapshot of `image`.
pub(crate) fn encode(
    meta: &SnapshotMeta,
    last_batch: Option<u64>,
    image: &MetadataImage,
) -> Result<Vec<u8>, serde_json::Error> {
    let records = compact(image);
    let header = SnapshotHeader {
        format: SNAPSHOT_FORMAT,
        meta: meta.clone(),
        last_batch,
        records_applied: image.records_applied,
        record_count: records.len() as u64,
    };
    let mut out = Vec::new();
    put_frame(&mut out, &serde_json::to_vec(&header)?);
    for r in &records {
        put_frame(&mut out, &serde_json::to_vec(r)?);
    }
    Ok(out)
}

/// Decodes only the header frame; returns it and its frame length.
pub(crate) fn decode_header(bytes: &[u8]) -> Result<(SnapshotHeader, usize), String> {
    let (payload, len) =
        parse_frame(bytes, STATE_BYTES_MAX).map_err(|e| format!("snapshot header: {e}"))?;
    let header: SnapshotHeader =
        serde_json::from_slice(payload).map_err(|e| format!("snapshot header: {e}"))?;
    if header.format != SNAPSHOT_FORMAT {
        return Err(format!("unknown snapshot format {}", header.format));
    }
    Ok((header, len))
}

/// Decodes a whole snapshot; any defect is an error.
pub(crate) fn decode(bytes: &[u8], record_bytes_max: usize) -> Result<DecodedSnapshot, String> {
    let (header, mut pos) = decode_header(bytes)?;
    // Never trust the count for an allocation: every record takes a frame header.
    let cap = (header.record_count as usize).min((bytes.len() - pos) / FRAME_HEADER_BYTES);
    let mut records = Vec::with_capacity(cap);
    for i in 0..header.record_count {
        let (payload, len) = parse_frame(&bytes[pos..], record_bytes_max)
            .map_err(|e| format!("snapshot record {i}: {e}"))?;
        records.push(
            serde_json::from_slice(payload).map_err(|e| format!("snapshot record {i}: {e}"))?,
        );
        pos += len;
    }
    if pos != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the last record",
            bytes.len() - pos
        ));
    }
    Ok(DecodedSnapshot { header, records })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use samsa_metadata::log::RECORD_BYTES_MAX;
    use samsa_metadata::Endpoint;
    use samsa_model::{DirectoryId, LeaderEpoch, PartitionIndex, TopicId};

    use super::*;

    /// The parts of an image that carry meaning, for comparison.
    fn view(i: &MetadataImage) -> String {
        let brokers: Vec<_> = i.brokers.values().collect();
        let topics: Vec<_> = i.topics.values().map(|t| (**t).clone()).collect();
        let ids: std::collections::BTreeMap<_, _> =
            i.topic_names.iter().map(|(k, v)| (k.0, v)).collect();
        let broker_configs: Vec<_> = i
            .broker_configs
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .collect();
        format!(
            "{:?}|{brokers:?}|{topics:?}|{ids:?}|{broker_configs:?}|{:?}|{:?}|{}|{}|{:?}|{}|{:?}|{:?}",
            i.cluster_id,
            i.default_broker_configs,
            i.group_configs,
            i.next_producer_id,
            i.records_applied,
            i.features,
            i.features_epoch,
            i.acls,
            i.scram_credentials
        )
    }

    fn record_strategy() -> impl Strategy<Value = MetadataRecord> {
        let topic = 0u8..4;
        let broker = 0i32..3;
        prop_oneof![
            "[a-z]{1,4}".prop_map(|c| MetadataRecord::InitCluster { cluster_id: c }),
            (
                broker.clone(),
                1u16..3,
                proptest::option::of("[r-s]"),
                0i64..3,
                "[a-b]{0,2}",
                proptest::collection::vec(("[A-B]", 1u16..3), 0..3),
                any::<bool>(),
                0u8..8,
            )
                .prop_map(
                    |(b, port, rack, epoch, incarnation, listeners, fenced, dirs)| {
                        MetadataRecord::RegisterBroker {
                            broker_id: BrokerId(b),
                            host: "h".into(),
                            port,
                            rack,
                            epoch,
                            incarnation,
                            listeners: listeners
                                .into_iter()
                                .map(|(name, port)| Endpoint {
                                    name,
                                    host: "l".into(),
                                    port,
                                })
                                .collect(),
                            fenced,
                            log_dirs: if dirs > 0 { dir_set(3) } else { Vec::new() },
                            cordoned_log_dirs: dir_set(dirs & 3),
                        }
                    }
                ),
            (
                broker.clone(),
                0i64..3,
                0u8..4,
                proptest::option::of(0u8..4)
            )
                .prop_map(|(b, epoch, cordoned, offline)| {
                    MetadataRecord::BrokerRegistrationChange {
                        broker_id: BrokerId(b),
                        epoch,
                        cordoned_log_dirs: dir_set(cordoned),
                        offline_log_dirs: offline.map(dir_set),
                    }
                }),
            (broker.clone(), 0i64..3, any::<bool>()).prop_map(|(b, epoch, fence)| {
                if fence {
                    MetadataRecord::FenceBroker {
                        broker_id: BrokerId(b),
                        epoch,
                    }
                } else {
                    MetadataRecord::UnfenceBroker {
                        broker_id: BrokerId(b),
                        epoch,
                    }
                }
            }),
            topic.clone().prop_map(|t| MetadataRecord::Topic {
                name: format!("t{t}"),
                topic_id: TopicId(uuid_for(t)),
            }),
            (
                topic.clone(),
                0i32..3,
                0i32..5,
                proptest::collection::vec(0i32..4, 1..4),
                proptest::collection::vec(0i32..4, 0..2),
                proptest::collection::vec(0i32..4, 0..2),
                any::<bool>(),
            )
                .prop_map(|(t, p, e, replicas, adding, removing, dirs)| {
                    let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
                    let replicas = ids(replicas);
                    let directories = if dirs {
                        (0..replicas.len())
                            .map(|i| DirectoryId(uuid::Uuid::from_u128(i as u128)))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    MetadataRecord::Partition {
                        topic_id: TopicId(uuid_for(t)),
                        partition: PartitionIndex(p),
                        isr: replicas[..1].to_vec(),
                        leader: replicas[0],
                        replicas,
                        leader_epoch: LeaderEpoch(e),
                        partition_epoch: e,
                        adding_replicas: ids(adding),
                        removing_replicas: ids(removing),
                        directories,
                    }
                }),
            (0u8..4, broker, "[a-c]", proptest::option::of("[x-z]")).prop_map(
                |(kind, b, name, value)| {
                    let resource = match kind {
                        0 => ConfigResource::BrokerDefault,
                        1 => ConfigResource::Broker(BrokerId(b)),
                        2 => ConfigResource::Group(format!("g{b}")),
                        _ => ConfigResource::Topic(format!("t{b}")),
                    };
                    MetadataRecord::Config {
                        resource,
                        name,
                        value,
                    }
                }
            ),
            topic.prop_map(|t| MetadataRecord::RemoveTopic {
                topic_id: TopicId(uuid_for(t)),
            }),
            (0i64..1000).prop_map(|n| MetadataRecord::ProducerIds {
                broker_id: BrokerId(0),
                next_producer_id: n,
            }),
            ("[a-b]", 0i16..3).prop_map(|(name, level)| MetadataRecord::FeatureLevel {
                name,
                level,
                at_offset: None,
            }),
            (0u8..3, "[a-b]").prop_map(|(id, name)| MetadataRecord::AccessControlEntry {
                id: uuid_for(200 + id),
                acl: samsa_metadata::acl::AclBinding {
                    resource_type: samsa_metadata::acl::ResourceType::Topic,
                    resource_name: name,
                    pattern_type: samsa_metadata::acl::PatternType::Literal,
                    principal: "User:alice".into(),
                    host: "*".into(),
                    operation: samsa_metadata::security::AclOperation::Read,
                    permission: samsa_metadata::acl::Permission::Allow,
                },
            }),
            (0u8..3).prop_map(|id| MetadataRecord::RemoveAccessControlEntry {
                id: uuid_for(200 + id),
            }),
            ("[a-b]", any::<bool>(), 4096i32..4100).prop_map(|(name, sha512, iterations)| {
                MetadataRecord::UserScramCredential {
                    name,
                    mechanism: scram_mechanism(sha512),
                    credential: samsa_metadata::scram::ScramCredential {
                        salt: vec![1],
                        stored_key: vec![2],
                        server_key: vec![3],
                        iterations,
                    },
                }
            }),
            ("[a-b]", any::<bool>()).prop_map(|(name, sha512)| {
                MetadataRecord::RemoveUserScramCredential {
                    name,
                    mechanism: scram_mechanism(sha512),
                }
            }),
        ]
    }

    fn scram_mechanism(sha512: bool) -> samsa_metadata::scram::ScramMechanism {
        if sha512 {
            samsa_metadata::scram::ScramMechanism::Sha512
        } else {
            samsa_metadata::scram::ScramMechanism::Sha256
        }
    }

    /// Directories 1 and 2, each present when its bit of `mask` is set.
    fn dir_set(mask: u8) -> Vec<DirectoryId> {
        (0..2u8)
            .filter(|bit| mask & (1 << bit) != 0)
            .map(|bit| DirectoryId(uuid_for(100 + bit)))
            .collect()
    }

    fn uuid_for(t: u8) -> uuid::Uuid {
        uuid::Uuid::from_u128(u128::from(t) + 1)
    }

    fn empty_meta() -> SnapshotMeta {
        SnapshotMeta::default()
    }

    proptest! {
        #[test]
        fn compaction_rebuilds_the_same_image(records in proptest::collection::vec(record_strategy(), 0..60)) {
            let mut image = MetadataImage::default();
            for r in &records {
                image.apply(r);
            }
            let meta = empty_meta();
            let bytes = encode(&meta, Some(7), &image).unwrap();
            let decoded = decode(&bytes, RECORD_BYTES_MAX).unwrap();
            prop_assert_eq!(decoded.header.last_batch, Some(7));
            prop_assert_eq!(view(&decoded.image()), view(&image));
            // Compaction is idempotent.
            prop_assert_eq!(compact(&decoded.image()), compact(&image));
        }
    }

    #[test]
    fn replication_state_survives_compaction() {
        use samsa_metadata::config::StaticConfig;
        use samsa_metadata::plan;
        use samsa_metadata::{BrokerRegistration, NewTopic};

        fn run(image: &mut MetadataImage, records: Vec<MetadataRecord>) {
            for r in &records {
                image.apply(r);
            }
        }

        let config = StaticConfig::default();
        let mut image = MetadataImage::default();
        let records = plan::plan_init_cluster(&image).records;
        run(&mut image, records);
        for id in 1..=3 {
            let reg = BrokerRegistration {
                id: BrokerId(id),
                host: "h".into(),
                port: 9092,
                rack: Some(format!("r{id}")),
                listeners: vec![Endpoint {
                    name: "REPLICATION".into(),
                    host: "10.0.0.1".into(),
                    port: 9100 + id as u16,
                }],
                incarnation: format!("i{id}"),
                fenced: false,
                log_dirs: vec![DirectoryId(uuid_for(50 + id as u8))],
                cordoned_log_dirs: if id == 2 {
                    vec![DirectoryId(uuid_for(52))]
                } else {
                    Vec::new()
                },
            };
            let records = plan::plan_register_broker(&image, &config, &reg)
                .unwrap()
                .records;
            run(&mut image, records);
        }
        let topic = NewTopic {
            name: "t".into(),
            num_partitions: 2,
            replication_factor: 2,
            ..Default::default()
        };
        let records = plan::plan_create_topic(&image, &config, &topic)
            .unwrap()
            .records;
        run(&mut image, records);
        let target = vec![BrokerId(3), BrokerId(2)];
        let records =
            plan::plan_alter_reassignments(&image, &config, &[("t".into(), 0, Some(target))])
                .records;
        run(&mut image, records);
        let records = plan::plan_fence_broker(&image, &config, BrokerId(1))
            .unwrap()
            .records;
        run(&mut image, records);
        assert!(image.brokers[&BrokerId(1)].fenced);
        assert!(image.topic("t").unwrap().partitions[0].is_reassigning());

        let bytes = encode(&empty_meta(), Some(3), &image).unwrap();
        let rebuilt = decode(&bytes, RECORD_BYTES_MAX).unwrap().image();
        assert_eq!(view(&rebuilt), view(&image));
        assert_eq!(rebuilt.brokers, image.brokers);
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::InitCluster {
            cluster_id: "c".into(),
        });
        let bytes = encode(&empty_meta(), None, &image).unwrap();
        assert!(decode(&bytes, RECORD_BYTES_MAX).is_ok());
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut], RECORD_BYTES_MAX).is_err(),
                "cut {cut}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra, RECORD_BYTES_MAX).is_err());
    }
}
