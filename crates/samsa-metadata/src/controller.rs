//! The controller: validates admin requests against the current image, turns them
//! into metadata records, commits them through the quorum and publishes the new
//! image.
//!
//! Concurrency: one writer at a time (a mutex around the quorum and the working
//! image); readers take the published `Arc<MetadataImage>` and never block on it
//! for longer than an `Arc` clone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

use samsa_model::{BrokerId, LeaderEpoch, PartitionIndex, TopicId};

use crate::config::{self, StaticConfig};
use crate::image::{MetadataImage, TopicImage};
use crate::quorum::{MetadataQuorum, QuorumError};
use crate::record::{ConfigResource, MetadataRecord};

/// The longest legal topic name.
pub const TOPIC_NAME_CHARS_MAX: usize = 249;
/// The most partitions one request may create for one topic.
pub const TOPIC_PARTITIONS_MAX: i32 = 100_000;

/// Why the controller refused a change. Each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("This server does not host this topic-partition.")]
    UnknownTopic,
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("Topic deletion is disabled.")]
    TopicDeletionDisabled,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("metadata log: {0}")]
    Quorum(#[from] QuorumError),
}

/// A topic to create (CreateTopics fields, with -1 meaning "broker default").
#[derive(Clone, Debug, Default)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// Manual assignment: replicas per partition index, in partition order.
    pub assignments: Vec<Vec<BrokerId>>,
    pub configs: Vec<(String, Option<String>)>,
}

struct Inner {
    quorum: Box<dyn MetadataQuorum>,
    image: MetadataImage,
}

/// The metadata controller of this node.
pub struct Controller {
    inner: Mutex<Inner>,
    published: RwLock<Arc<MetadataImage>>,
    config: Arc<StaticConfig>,
}

impl Controller {
    /// Builds the image from `committed` records and, for a brand new log, commits
    /// the cluster's first record.
    pub fn open(
        mut quorum: Box<dyn MetadataQuorum>,
        committed: Vec<MetadataRecord>,
        config: Arc<StaticConfig>,
    ) -> Result<Controller, ControllerError> {
        let mut image = MetadataImage::default();
        for r in &committed {
            image.apply(r);
        }
        if image.cluster_id.is_empty() {
            let init = MetadataRecord::InitCluster {
                cluster_id: new_cluster_id(),
            };
            quorum.append(std::slice::from_ref(&init))?;
            image.apply(&init);
        }
        let published = RwLock::new(Arc::new(image.clone()));
        Ok(Controller {
            inner: Mutex::new(Inner { quorum, image }),
            published,
            config,
        })
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        match self.published.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The broker's static config.
    pub fn config(&self) -> &Arc<StaticConfig> {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Commits `records` and publishes the image they produce.
    fn commit(&self, inner: &mut Inner, records: &[MetadataRecord]) -> Result<(), ControllerError> {
        if records.is_empty() {
            return Ok(());
        }
        inner.quorum.append(records)?;
        for r in records {
            inner.image.apply(r);
        }
        let next = Arc::new(inner.image.clone());
        match self.published.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }

    /// Registers (or re-registers) a broker's endpoint.
    pub fn register_broker(
        &self,
        id: BrokerId,
        host: &str,
        port: u16,
        rack: Option<String>,
    ) -> Result<(), ControllerError> {
        let mut inner = self.lock();
        let record = MetadataRecord::RegisterBroker {
            broker_id: id,
            host: host.to_string(),
            port,
            rack,
        };
        let unchanged = inner.image.brokers.get(&id).is_some_and(|b| {
            matches!(&record, MetadataRecord::RegisterBroker { host, port, rack, .. }
                if &b.host == host && b.port == *port && &b.rack == rack)
        });
        if unchanged {
            return Ok(());
        }
        self.commit(&mut inner, &[record])
    }

    /// Creates topics; one result per input, in order. With `validate_only`
    /// nothing is committed.
    pub fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<Arc<TopicImage>, ControllerError>> {
        let mut inner = self.lock();
        let mut results = Vec::with_capacity(topics.len());
        let mut names_in_request = BTreeSet::new();
        for topic in topics {
            if !names_in_request.insert(topic.name.clone()) {
                results.push(Err(ControllerError::InvalidRequest(format!(
                    "Duplicate topic name {} in the request.",
                    topic.name
                ))));
                continue;
            }
            let records = match self.plan_topic(&inner.image, &topic) {
                Ok(r) => r,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            if validate_only {
                let mut scratch = inner.image.clone();
                for r in &records {
                    scratch.apply(r);
                }
                match scratch.topic(&topic.name) {
                    Some(t) => results.push(Ok(t.clone())),
                    None => results.push(Err(ControllerError::UnknownTopic)),
                }
                continue;
            }
            if let Err(e) = self.commit(&mut inner, &records) {
                results.push(Err(e));
                continue;
            }
            match inner.image.topic(&topic.name) {
                Some(t) => results.push(Ok(t.clone())),
                None => results.push(Err(ControllerError::UnknownTopic)),
            }
        }
        results
    }

    fn plan_topic(
        &self,
        image: &MetadataImage,
        topic: &NewTopic,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
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
                self.config.get_i64("num.partitions").unwrap_or(1) as i32
            } else {
                topic.num_partitions
            };
            if partitions <= 0 || partitions > TOPIC_PARTITIONS_MAX {
                return Err(ControllerError::InvalidPartitions(format!(
                    "Number of partitions was set to an invalid non-positive value: {partitions}."
                )));
            }
            let rf = if topic.replication_factor == -1 {
                self.config
                    .get_i64("default.replication.factor")
                    .unwrap_or(1) as i16
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
        Ok(records)
    }

    /// Deletes the topic named `name` (or with id `id`).
    pub fn delete_topic(
        &self,
        name: Option<&str>,
        id: Option<TopicId>,
    ) -> Result<(String, TopicId), ControllerError> {
        if !self.config.get_bool("delete.topic.enable") {
            return Err(ControllerError::TopicDeletionDisabled);
        }
        let mut inner = self.lock();
        let topic = match (name, id) {
            (Some(n), _) => inner.image.topic(n).cloned(),
            (None, Some(id)) => inner.image.topic_by_id(id).cloned(),
            (None, None) => None,
        }
        .ok_or(ControllerError::UnknownTopic)?;
        self.commit(
            &mut inner,
            &[MetadataRecord::RemoveTopic { topic_id: topic.id }],
        )?;
        Ok((topic.name.clone(), topic.id))
    }

    /// Grows `name` to `total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: Option<Vec<Vec<BrokerId>>>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let mut inner = self.lock();
        let topic = inner
            .image
            .topic(name)
            .cloned()
            .ok_or(ControllerError::UnknownTopic)?;
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
        let live: Vec<BrokerId> = inner.image.brokers.keys().copied().collect();
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
        if validate_only {
            return Ok(());
        }
        let records: Vec<_> = new_replicas
            .into_iter()
            .enumerate()
            .map(|(i, r)| partition_record(topic.id, current + i as i32, r))
            .collect();
        self.commit(&mut inner, &records)
    }

    /// Hands a block of `count` producer ids to `broker`; returns its first id.
    pub fn allocate_producer_ids(
        &self,
        broker: BrokerId,
        count: i64,
    ) -> Result<i64, ControllerError> {
        let mut inner = self.lock();
        let start = inner.image.next_producer_id;
        let next = start
            .checked_add(count)
            .ok_or_else(|| ControllerError::InvalidRequest("producer ids exhausted".into()))?;
        self.commit(
            &mut inner,
            &[MetadataRecord::ProducerIds {
                broker_id: broker,
                next_producer_id: next,
            }],
        )?;
        Ok(start)
    }

    /// Sets (`Some`) or removes (`None`) dynamic broker configs of `broker`
    /// (`None`: the cluster-wide default), after validating all of them.
    pub fn alter_broker_configs(
        &self,
        broker: Option<BrokerId>,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let mut inner = self.lock();
        let resource = match broker {
            Some(id) => ConfigResource::Broker(id),
            None => ConfigResource::BrokerDefault,
        };
        let mut records = Vec::new();
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
        if validate_only {
            return Ok(());
        }
        self.commit(&mut inner, &records)
    }

    /// Sets (`Some`) or removes (`None`) topic config keys, after validating all of
    /// them; nothing is committed if any is invalid.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let mut inner = self.lock();
        if inner.image.topic(name).is_none() {
            return Err(ControllerError::UnknownTopic);
        }
        let mut records = Vec::new();
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
        if validate_only {
            return Ok(());
        }
        self.commit(&mut inner, &records)
    }
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
    use super::*;
    use crate::quorum::LocalQuorum;

    fn controller(dir: &std::path::Path) -> Controller {
        let (q, records) = LocalQuorum::open(dir).unwrap();
        let c = Controller::open(Box::new(q), records, Arc::new(StaticConfig::default())).unwrap();
        c.register_broker(BrokerId(1), "127.0.0.1", 9092, None)
            .unwrap();
        c
    }

    fn topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: -1,
            ..Default::default()
        }
    }

    #[test]
    fn topics_persist_across_reopen_and_deletes_stick() {
        let dir = tempfile::tempdir().unwrap();
        let (id, cluster) = {
            let c = controller(dir.path());
            let r = c.create_topics(vec![topic("orders", 3), topic("gone", 1)], false);
            assert!(r.iter().all(|r| r.is_ok()));
            c.delete_topic(Some("gone"), None).unwrap();
            c.alter_topic_configs(
                "orders",
                &[("retention.ms".into(), Some("1000".into()))],
                false,
            )
            .unwrap();
            (
                c.image().topic("orders").unwrap().id,
                c.image().cluster_id.clone(),
            )
        };
        let c = controller(dir.path());
        let image = c.image();
        assert_eq!(image.cluster_id, cluster);
        let orders = image.topic("orders").unwrap();
        assert_eq!(orders.id, id);
        assert_eq!(orders.partitions.len(), 3);
        assert_eq!(
            orders.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert!(image.topic("gone").is_none());
    }

    #[test]
    fn invalid_requests_map_to_kafka_errors() {
        let dir = tempfile::tempdir().unwrap();
        let c = controller(dir.path());
        c.create_topics(vec![topic("a.b", 1)], false)[0]
            .as_ref()
            .unwrap();
        let r = c.create_topics(
            vec![
                topic("a.b", 1),
                topic("a_b", 1),
                topic("bad name", 1),
                topic("zero", 0),
                NewTopic {
                    replication_factor: 3,
                    ..topic("rf", 1)
                },
                NewTopic {
                    configs: vec![("retention.ms".into(), Some("x".into()))],
                    ..topic("cfg", 1)
                },
            ],
            false,
        );
        assert!(matches!(r[0], Err(ControllerError::TopicAlreadyExists(_))));
        assert!(matches!(r[1], Err(ControllerError::InvalidTopic(_))));
        assert!(matches!(r[2], Err(ControllerError::InvalidTopic(_))));
        assert!(matches!(r[3], Err(ControllerError::InvalidPartitions(_))));
        assert!(matches!(
            r[4],
            Err(ControllerError::InvalidReplicationFactor(_))
        ));
        assert!(matches!(r[5], Err(ControllerError::InvalidConfig(_))));
        assert_eq!(c.image().topics.len(), 1, "nothing half-created");
    }

    #[test]
    fn producer_id_blocks_never_overlap_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let c = controller(dir.path());
            let a = c.allocate_producer_ids(BrokerId(1), 1000).unwrap();
            let b = c.allocate_producer_ids(BrokerId(1), 1000).unwrap();
            assert_eq!(b, a + 1000);
            b
        };
        let c = controller(dir.path());
        assert_eq!(
            c.allocate_producer_ids(BrokerId(1), 1000).unwrap(),
            first + 1000
        );
    }

    #[test]
    fn partitions_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let c = controller(dir.path());
        c.create_topics(vec![topic("t", 2)], false)[0]
            .as_ref()
            .unwrap();
        assert!(c.create_partitions("t", 1, None, false).is_err());
        assert!(c.create_partitions("t", 2, None, false).is_err());
        c.create_partitions("t", 5, None, true).unwrap();
        assert_eq!(
            c.image().topic("t").unwrap().partitions.len(),
            2,
            "validate only"
        );
        c.create_partitions("t", 5, None, false).unwrap();
        let t = c.image().topic("t").cloned().unwrap();
        assert_eq!(t.partitions.len(), 5);
        assert!(t
            .partitions
            .iter()
            .enumerate()
            .all(|(i, p)| p.index.get() == i as i32));
    }
}
