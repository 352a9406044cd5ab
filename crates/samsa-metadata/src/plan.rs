//! Planning: the pure half of every admin operation.
//!
//! A planner validates a request against a [`MetadataImage`] (and the static
//! config) and returns the records that would carry it out, as a [`Planned`].
//! Planners never mutate the image and never touch the metadata log: committing
//! the records (through a [`crate::quorum::MetadataQuorum`], fenced on the batch
//! the image was built up to) and applying them is the [`crate::Controller`]'s
//! job. A validate-only request is a plan that is not committed.
//!
//! The only non-determinism is fresh topic ids ([`TopicId::random`]): planning
//! twice against the same image yields the same records except for those ids.

use std::collections::{BTreeMap, BTreeSet};

use samsa_model::{BrokerId, LeaderEpoch, PartitionIndex, TopicId};

use crate::config::{self, StaticConfig};
use crate::controller::{ControllerError, NewTopic};
use crate::image::MetadataImage;
use crate::record::{ConfigResource, MetadataRecord};

/// The longest legal topic name.
pub const TOPIC_NAME_CHARS_MAX: usize = 249;
/// The most partitions one request may create for one topic.
pub const TOPIC_PARTITIONS_MAX: i32 = 100_000;

/// The records that carry out one validated request, and what the request
/// answers once they are applied (`outcome`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned<T = ()> {
    /// To be committed as one batch, in order. Empty: nothing to change.
    pub records: Vec<MetadataRecord>,
    pub outcome: T,
}

impl<T> Planned<T> {
    fn new(records: Vec<MetadataRecord>, outcome: T) -> Planned<T> {
        Planned { records, outcome }
    }
}

/// Plans the first record of a brand new cluster log; nothing when `image`
/// already has a cluster id.
pub fn plan_init_cluster(image: &MetadataImage) -> Planned {
    let records = if image.cluster_id.is_empty() {
        vec![MetadataRecord::InitCluster {
            cluster_id: new_cluster_id(),
        }]
    } else {
        Vec::new()
    };
    Planned::new(records, ())
}

/// Plans registering (or re-registering) a broker's endpoint; nothing when the
/// image already has it with the same endpoint.
pub fn plan_register_broker(
    image: &MetadataImage,
    id: BrokerId,
    host: &str,
    port: u16,
    rack: Option<String>,
) -> Planned {
    let unchanged = image
        .brokers
        .get(&id)
        .is_some_and(|b| b.host == host && b.port == port && b.rack == rack);
    if unchanged {
        return Planned::new(Vec::new(), ());
    }
    Planned::new(
        vec![MetadataRecord::RegisterBroker {
            broker_id: id,
            host: host.to_string(),
            port,
            rack,
        }],
        (),
    )
}

/// Plans creating one topic; the outcome is its new id.
pub fn plan_create_topic(
    image: &MetadataImage,
    config: &StaticConfig,
    topic: &NewTopic,
) -> Result<Planned<TopicId>, ControllerError> {
    validate_topic_name(&topic.name)?;
    if image.topics.contains_key(&topic.name) {
        return Err(ControllerError::TopicAlreadyExists(topic.name.clone()));
    }
    let normalized = topic.name.replace('.', "_");
    if let Some(other) = image
        .topics
        .keys()
        .find(|n| n.replace('.', "_") == normalized)
    {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic '{}' collides with existing topic: {other}",
            topic.name
        )));
    }
    let live: Vec<BrokerId> = image.brokers.keys().copied().collect();
    let assignments: Vec<Vec<BrokerId>> = if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(ControllerError::InvalidRequest(
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        for replicas in &topic.assignments {
            validate_assignment(replicas, &live)?;
        }
        topic.assignments.clone()
    } else {
        let partitions = if topic.num_partitions == -1 {
            config.get_i64("num.partitions").unwrap_or(1) as i32
        } else {
            topic.num_partitions
        };
        if partitions <= 0 || partitions > TOPIC_PARTITIONS_MAX {
            return Err(ControllerError::InvalidPartitions(format!(
                "Number of partitions was set to an invalid non-positive value: {partitions}."
            )));
        }
        let rf = if topic.replication_factor == -1 {
            config.get_i64("default.replication.factor").unwrap_or(1) as i16
        } else {
            topic.replication_factor
        };
        if rf <= 0 {
            return Err(ControllerError::InvalidReplicationFactor(format!(
                "Replication factor must be larger than 0, or -1 to use the default value. ({rf})"
            )));
        }
        if rf as usize > live.len() {
            return Err(ControllerError::InvalidReplicationFactor(format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
                live.len()
            )));
        }
        place_replicas(&live, 0, partitions, rf as usize)
    };
    let mut configs = BTreeMap::new();
    for (key, value) in &topic.configs {
        let Some(def) = config::topic_def(key) else {
            return Err(ControllerError::InvalidConfig(format!(
                "Unknown topic config name: {key}"
            )));
        };
        match value {
            Some(v) => {
                config::validate(def, v).map_err(ControllerError::InvalidConfig)?;
                configs.insert(key.clone(), v.trim().to_string());
            }
            None => {
                return Err(ControllerError::InvalidConfig(format!(
                    "Null value not supported for topic configs: {key}"
                )))
            }
        }
    }
    let topic_id = loop {
        let id = TopicId::random();
        if !image.topic_names.contains_key(&id) {
            break id;
        }
    };
    let mut records = vec![MetadataRecord::Topic {
        name: topic.name.clone(),
        topic_id,
    }];
    for (name, value) in configs {
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(topic.name.clone()),
            name,
            value: Some(value),
        });
    }
    for (i, replicas) in assignments.into_iter().enumerate() {
        records.push(partition_record(topic_id, i as i32, replicas));
    }
    Ok(Planned::new(records, topic_id))
}

/// Plans creating several topics, one result per input, in order. Each topic is
/// planned against `image` with the earlier successful plans of the request
/// applied (so later topics see earlier ones, as when they are committed one
/// after the other); a name repeated in the request is refused.
pub fn plan_create_topics(
    image: &MetadataImage,
    config: &StaticConfig,
    topics: &[NewTopic],
) -> Vec<Result<Planned<TopicId>, ControllerError>> {
    let mut scratch: Option<MetadataImage> = None;
    let mut names_in_request = BTreeSet::new();
    let mut results = Vec::with_capacity(topics.len());
    for topic in topics {
        if !names_in_request.insert(topic.name.as_str()) {
            results.push(Err(duplicate_topic(&topic.name)));
            continue;
        }
        let result = plan_create_topic(scratch.as_ref().unwrap_or(image), config, topic);
        if let Ok(planned) = &result {
            let next = scratch.get_or_insert_with(|| image.clone());
            for r in &planned.records {
                next.apply(r);
            }
        }
        results.push(result);
    }
    results
}

/// The error for a topic name that appears twice in one CreateTopics request.
pub fn duplicate_topic(name: &str) -> ControllerError {
    ControllerError::InvalidRequest(format!("Duplicate topic name {name} in the request."))
}

/// Plans deleting the topic named `name` (or with id `id`); the outcome is the
/// deleted topic's name and id.
pub fn plan_delete_topic(
    image: &MetadataImage,
    config: &StaticConfig,
    name: Option<&str>,
    id: Option<TopicId>,
) -> Result<Planned<(String, TopicId)>, ControllerError> {
    if !config.get_bool("delete.topic.enable") {
        return Err(ControllerError::TopicDeletionDisabled);
    }
    let topic = match (name, id) {
        (Some(n), _) => image.topic(n),
        (None, Some(id)) => image.topic_by_id(id),
        (None, None) => None,
    }
    .ok_or(ControllerError::UnknownTopic)?;
    Ok(Planned::new(
        vec![MetadataRecord::RemoveTopic { topic_id: topic.id }],
        (topic.name.clone(), topic.id),
    ))
}

/// Plans growing `name` to `total` partitions.
pub fn plan_create_partitions(
    image: &MetadataImage,
    name: &str,
    total: i32,
    assignments: Option<Vec<Vec<BrokerId>>>,
) -> Result<Planned, ControllerError> {
    let topic = image.topic(name).ok_or(ControllerError::UnknownTopic)?;
    let current = topic.partitions.len() as i32;
    if total < current {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic currently has {current} partitions, which is higher than the requested {total}."
        )));
    }
    if total == current {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic already has {current} partitions."
        )));
    }
    if total > TOPIC_PARTITIONS_MAX {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic may have at most {TOPIC_PARTITIONS_MAX} partitions."
        )));
    }
    let live: Vec<BrokerId> = image.brokers.keys().copied().collect();
    let added = (total - current) as usize;
    let new_replicas = match assignments {
        Some(a) => {
            if a.len() != added {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "Increasing the number of partitions by {added} but {} assignments provided.",
                    a.len()
                )));
            }
            for replicas in &a {
                validate_assignment(replicas, &live)?;
            }
            a
        }
        None => {
            let rf = topic
                .partitions
                .first()
                .map(|p| p.replicas.len())
                .unwrap_or(1);
            if rf > live.len() {
                return Err(ControllerError::InvalidReplicationFactor(format!(
                    "Unable to replicate the partition {rf} time(s): only {} broker(s) are registered.",
                    live.len()
                )));
            }
            place_replicas(&live, current as usize, added as i32, rf)
        }
    };
    let records = new_replicas
        .into_iter()
        .enumerate()
        .map(|(i, r)| partition_record(topic.id, current + i as i32, r))
        .collect();
    Ok(Planned::new(records, ()))
}

/// Plans handing a block of `count` producer ids to `broker`; the outcome is
/// the block's first id.
pub fn plan_allocate_producer_ids(
    image: &MetadataImage,
    broker: BrokerId,
    count: i64,
) -> Result<Planned<i64>, ControllerError> {
    let start = image.next_producer_id;
    let next = start
        .checked_add(count)
        .ok_or_else(|| ControllerError::InvalidRequest("producer ids exhausted".into()))?;
    Ok(Planned::new(
        vec![MetadataRecord::ProducerIds {
            broker_id: broker,
            next_producer_id: next,
        }],
        start,
    ))
}

/// Plans setting (`Some`) or removing (`None`) dynamic broker configs of
/// `broker` (`None`: the cluster-wide default), after validating all of them.
/// Dynamic broker configs do not depend on the image; it is taken for
/// uniformity with the other planners.
pub fn plan_alter_broker_configs(
    _image: &MetadataImage,
    broker: Option<BrokerId>,
    changes: &[(String, Option<String>)],
) -> Result<Planned, ControllerError> {
    let resource = match broker {
        Some(id) => ConfigResource::Broker(id),
        None => ConfigResource::BrokerDefault,
    };
    let mut records = Vec::with_capacity(changes.len());
    for (key, value) in changes {
        if !config::is_dynamic_broker_key(key) {
            return Err(ControllerError::InvalidConfig(format!(
                "Cannot update these configs dynamically: {key}"
            )));
        }
        if let (Some(def), Some(v)) = (config::broker_def(key), value) {
            config::validate(def, v).map_err(ControllerError::InvalidConfig)?;
        }
        records.push(MetadataRecord::Config {
            resource: resource.clone(),
            name: key.clone(),
            value: value.as_ref().map(|v| v.trim().to_string()),
        });
    }
    Ok(Planned::new(records, ()))
}

/// Plans setting (`Some`) or removing (`None`) config keys of topic `name`,
/// after validating all of them.
pub fn plan_alter_topic_configs(
    image: &MetadataImage,
    name: &str,
    changes: &[(String, Option<String>)],
) -> Result<Planned, ControllerError> {
    if image.topic(name).is_none() {
        return Err(ControllerError::UnknownTopic);
    }
    let mut records = Vec::with_capacity(changes.len());
    for (key, value) in changes {
        let def = config::topic_def(key).ok_or_else(|| {
            ControllerError::InvalidConfig(format!("Unknown topic config name: {key}"))
        })?;
        if let Some(v) = value {
            config::validate(def, v).map_err(ControllerError::InvalidConfig)?;
        }
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(name.to_string()),
            name: key.clone(),
            value: value.as_ref().map(|v| v.trim().to_string()),
        });
    }
    Ok(Planned::new(records, ()))
}

fn partition_record(topic_id: TopicId, index: i32, replicas: Vec<BrokerId>) -> MetadataRecord {
    let leader = replicas.first().copied().unwrap_or(BrokerId(-1));
    MetadataRecord::Partition {
        topic_id,
        partition: PartitionIndex(index),
        isr: replicas.clone(),
        replicas,
        leader,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: 0,
    }
}

fn validate_assignment(replicas: &[BrokerId], live: &[BrokerId]) -> Result<(), ControllerError> {
    if replicas.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment(
            "Replica assignment must not be empty.".into(),
        ));
    }
    let unique: BTreeSet<_> = replicas.iter().collect();
    if unique.len() != replicas.len() {
        return Err(ControllerError::InvalidReplicaAssignment(
            "Duplicate brokers in replica assignment.".into(),
        ));
    }
    if let Some(b) = replicas.iter().find(|b| !live.contains(b)) {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "Broker {b} in replica assignment is not registered."
        )));
    }
    Ok(())
}

/// Round-robin placement: partition `p`'s first replica (its preferred leader) is
/// broker `(first + p) mod n`, the others follow it in id order.
fn place_replicas(
    live: &[BrokerId],
    first: usize,
    partitions: i32,
    rf: usize,
) -> Vec<Vec<BrokerId>> {
    let n = live.len().max(1);
    (0..partitions as usize)
        .map(|p| {
            (0..rf)
                .filter_map(|r| live.get((first + p + r) % n).copied())
                .collect()
        })
        .collect()
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    if name.is_empty() {
        return Err(ControllerError::InvalidTopic(
            "Topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(ControllerError::InvalidTopic(
            "Topic name cannot be \".\" or \"..\"".into(),
        ));
    }
    if name == "__cluster_metadata" {
        return Err(ControllerError::InvalidTopic(
            "The name __cluster_metadata is reserved for the metadata log.".into(),
        ));
    }
    if name.len() > TOPIC_NAME_CHARS_MAX {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name is illegal, it can't be longer than {TOPIC_NAME_CHARS_MAX} characters, topic name: {name}"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

fn new_cluster_id() -> String {
    // Kafka cluster ids are 22-character URL-safe base64 of a random UUID.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((bytes >> (i * 6)) & 63) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::image::TopicImage;

    fn config() -> StaticConfig {
        StaticConfig::default()
    }

    /// An image with a cluster id and brokers `1..=brokers`, built by applying
    /// the records the planners produce.
    fn image(brokers: i32) -> MetadataImage {
        let mut image = MetadataImage::default();
        let init = plan_init_cluster(&image);
        apply(&mut image, &init.records);
        for b in 1..=brokers {
            let planned = plan_register_broker(&image, BrokerId(b), "localhost", 9092, None);
            apply(&mut image, &planned.records);
        }
        image
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            image.apply(r);
        }
    }

    fn topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: -1,
            ..Default::default()
        }
    }

    /// Everything observable about an image, for before/after comparisons.
    #[allow(clippy::type_complexity)]
    fn fingerprint(
        image: &MetadataImage,
    ) -> (
        String,
        Vec<BrokerId>,
        Vec<TopicImage>,
        BTreeMap<BrokerId, BTreeMap<String, String>>,
        BTreeMap<String, String>,
        i64,
        u64,
    ) {
        (
            image.cluster_id.clone(),
            image.brokers.keys().copied().collect(),
            image
                .topics
                .values()
                .map(|t| TopicImage::clone(t))
                .collect(),
            image.broker_configs.clone(),
            image.default_broker_configs.clone(),
            image.next_producer_id,
            image.records_applied,
        )
    }

    /// Replaces topic ids (the only random part of a plan) by their order of
    /// appearance.
    fn without_topic_ids(records: &[MetadataRecord]) -> Vec<MetadataRecord> {
        let mut seen: Vec<TopicId> = Vec::new();
        let mut canon = |id: &TopicId| {
            let i = match seen.iter().position(|s| s == id) {
                Some(i) => i,
                None => {
                    seen.push(*id);
                    seen.len() - 1
                }
            };
            TopicId(uuid::Uuid::from_u128(i as u128))
        };
        records
            .iter()
            .map(|r| match r {
                MetadataRecord::Topic { name, topic_id } => MetadataRecord::Topic {
                    name: name.clone(),
                    topic_id: canon(topic_id),
                },
                MetadataRecord::Partition {
                    topic_id,
                    partition,
                    replicas,
                    isr,
                    leader,
                    leader_epoch,
                    partition_epoch,
                } => MetadataRecord::Partition {
                    topic_id: canon(topic_id),
                    partition: *partition,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                },
                other => other.clone(),
            })
            .collect()
    }

    #[test]
    fn planning_never_mutates_the_image() {
        let cfg = config();
        let mut base = image(3);
        let existing = plan_create_topic(&base, &cfg, &topic("existing", 2)).unwrap();
        apply(&mut base, &existing.records);
        let before = fingerprint(&base);

        let with_config = NewTopic {
            configs: vec![("retention.ms".into(), Some("1000".into()))],
            ..topic("new", 3)
        };
        let _ = plan_create_topics(&base, &cfg, &[with_config, topic("other", 1)]);
        let _ = plan_create_topic(&base, &cfg, &topic("existing", 1));
        let _ = plan_delete_topic(&base, &cfg, Some("existing"), None);
        let _ = plan_create_partitions(&base, "existing", 6, None);
        let _ = plan_alter_topic_configs(
            &base,
            "existing",
            &[("cleanup.policy".into(), Some("compact".into()))],
        );
        let _ = plan_alter_broker_configs(
            &base,
            Some(BrokerId(1)),
            &[("log.retention.ms".into(), Some("5".into()))],
        );
        let _ = plan_register_broker(&base, BrokerId(9), "h", 1, None);
        let _ = plan_allocate_producer_ids(&base, BrokerId(1), 1000);
        let _ = plan_init_cluster(&base);

        assert_eq!(fingerprint(&base), before);
    }

    #[test]
    fn planning_twice_gives_the_same_records_but_fresh_topic_ids() {
        let cfg = config();
        let base = image(3);
        let request = [
            NewTopic {
                configs: vec![("retention.ms".into(), Some("1000".into()))],
                replication_factor: 2,
                ..topic("a", 4)
            },
            topic("b", 1),
        ];
        let first = plan_create_topics(&base, &cfg, &request);
        let second = plan_create_topics(&base, &cfg, &request);
        assert_eq!(first.len(), 2);
        for (x, y) in first.iter().zip(&second) {
            let (x, y) = (x.as_ref().unwrap(), y.as_ref().unwrap());
            assert_ne!(x.outcome, y.outcome, "fresh topic ids");
            assert_ne!(x.records, y.records);
            assert_eq!(without_topic_ids(&x.records), without_topic_ids(&y.records));
        }
        // Everything without ids is fully deterministic.
        let p1 = plan_allocate_producer_ids(&base, BrokerId(2), 1000).unwrap();
        let p2 = plan_allocate_producer_ids(&base, BrokerId(2), 1000).unwrap();
        assert_eq!(p1, p2);
    }

    #[test]
    fn applying_a_plan_yields_the_topic() {
        let cfg = config();
        let mut img = image(3);
        let planned = plan_create_topic(
            &img,
            &cfg,
            &NewTopic {
                configs: vec![("cleanup.policy".into(), Some(" compact ".into()))],
                replication_factor: 3,
                ..topic("orders", 5)
            },
        )
        .unwrap();
        apply(&mut img, &planned.records);
        let t: &Arc<TopicImage> = img.topic("orders").unwrap();
        assert_eq!(t.id, planned.outcome);
        assert_eq!(img.topic_by_id(planned.outcome).unwrap().name, "orders");
        assert_eq!(t.partitions.len(), 5);
        assert!(t.partitions.iter().all(|p| p.replicas.len() == 3));
        assert_eq!(
            t.configs.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        // Preferred leaders are spread round-robin.
        let leaders: Vec<i32> = t.partitions.iter().map(|p| p.leader.0).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2]);

        // Growing, configuring and deleting it work the same way.
        let grow = plan_create_partitions(&img, "orders", 7, None).unwrap();
        apply(&mut img, &grow.records);
        assert_eq!(img.topic("orders").unwrap().partitions.len(), 7);
        let unset =
            plan_alter_topic_configs(&img, "orders", &[("cleanup.policy".into(), None)]).unwrap();
        apply(&mut img, &unset.records);
        assert!(img.topic("orders").unwrap().configs.is_empty());
        let deleted = plan_delete_topic(&img, &cfg, None, Some(planned.outcome)).unwrap();
        assert_eq!(deleted.outcome, ("orders".to_string(), planned.outcome));
        apply(&mut img, &deleted.records);
        assert!(img.topic("orders").is_none());
    }

    #[test]
    fn batch_planning_sees_earlier_topics_of_the_request() {
        let cfg = config();
        let base = image(1);
        let r = plan_create_topics(
            &base,
            &cfg,
            &[
                topic("a.b", 1),
                topic("a_b", 1),
                topic("a.b", 1),
                topic("c", 0),
            ],
        );
        assert!(r[0].is_ok());
        assert!(matches!(r[1], Err(ControllerError::InvalidTopic(_))));
        assert!(matches!(r[2], Err(ControllerError::InvalidRequest(_))));
        assert!(matches!(r[3], Err(ControllerError::InvalidPartitions(_))));
        // Each topic alone is fine against the base image.
        assert!(plan_create_topic(&base, &cfg, &topic("a_b", 1)).is_ok());
    }

    #[test]
    fn no_op_plans_have_no_records() {
        let img = image(1);
        assert!(plan_init_cluster(&img).records.is_empty());
        assert!(
            plan_register_broker(&img, BrokerId(1), "localhost", 9092, None)
                .records
                .is_empty()
        );
        assert_eq!(
            plan_register_broker(&img, BrokerId(1), "localhost", 9093, None)
                .records
                .len(),
            1
        );
    }

    #[test]
    fn producer_id_plans_advance_from_the_image() {
        let mut img = image(1);
        let a = plan_allocate_producer_ids(&img, BrokerId(1), 1000).unwrap();
        assert_eq!(a.outcome, 0);
        apply(&mut img, &a.records);
        let b = plan_allocate_producer_ids(&img, BrokerId(1), 1000).unwrap();
        assert_eq!(b.outcome, 1000);
        img.next_producer_id = i64::MAX - 10;
        assert!(matches!(
            plan_allocate_producer_ids(&img, BrokerId(1), 1000),
            Err(ControllerError::InvalidRequest(_))
        ));
    }

    #[test]
    fn invalid_configs_plan_nothing() {
        let img = image(1);
        let mut with_topic = img.clone();
        apply(
            &mut with_topic,
            &plan_create_topic(&img, &config(), &topic("t", 1))
                .unwrap()
                .records,
        );
        assert!(matches!(
            plan_alter_topic_configs(&img, "t", &[]),
            Err(ControllerError::UnknownTopic)
        ));
        assert!(matches!(
            plan_alter_topic_configs(
                &with_topic,
                "t",
                &[
                    ("retention.ms".into(), Some("1".into())),
                    ("no.such.key".into(), Some("1".into()))
                ]
            ),
            Err(ControllerError::InvalidConfig(_))
        ));
        assert!(matches!(
            plan_alter_broker_configs(&img, None, &[("broker.id".into(), Some("2".into()))]),
            Err(ControllerError::InvalidConfig(_))
        ));
    }
}
