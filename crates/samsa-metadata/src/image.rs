//! The in-memory metadata image: what the metadata log says, as of one point.
//!
//! Images are immutable once published; request handlers share them as
//! `Arc<MetadataImage>` and read without locks. A change is made by cloning (cheap:
//! topics are behind `Arc`) and applying records.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use samsa_model::{BrokerId, LeaderEpoch, PartitionIndex, TopicId};

use crate::record::{ConfigResource, MetadataRecord};

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: BrokerId,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// One partition's replica set and leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionImage {
    pub index: PartitionIndex,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: TopicId,
    pub partitions: Vec<PartitionImage>,
    /// Topic-level config overrides.
    pub configs: BTreeMap<String, String>,
}

impl TopicImage {
    /// Whether this is an internal topic (`__consumer_offsets`, ...).
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }
}

/// The whole cluster state.
#[derive(Clone, Debug, Default)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub topic_names: HashMap<TopicId, String>,
    pub broker_configs: BTreeMap<BrokerId, BTreeMap<String, String>>,
    /// Cluster-wide dynamic broker defaults.
    pub default_broker_configs: BTreeMap<String, String>,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
    /// How many records built this image.
    pub records_applied: u64,
}

impl MetadataImage {
    /// The dynamic configs in force for `broker`: its own over the cluster-wide
    /// defaults.
    pub fn dynamic_broker_configs(&self, broker: BrokerId) -> BTreeMap<String, String> {
        let mut merged = self.default_broker_configs.clone();
        if let Some(own) = self.broker_configs.get(&broker) {
            merged.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        merged
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<TopicImage>> {
        self.topic_names.get(&id).and_then(|n| self.topics.get(n))
    }

    /// Applies one record. Records that refer to unknown topics are ignored (they
    /// cannot be produced by the controller, which validates against the image).
    pub fn apply(&mut self, record: &MetadataRecord) {
        self.records_applied += 1;
        match record {
            MetadataRecord::InitCluster { cluster_id } => {
                self.cluster_id = cluster_id.clone();
            }
            MetadataRecord::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerInfo {
                        id: *broker_id,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                    },
                );
            }
            MetadataRecord::Topic { name, topic_id } => {
                self.topic_names.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: Vec::new(),
                        configs: BTreeMap::new(),
                    }),
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let Some(name) = self.topic_names.get(topic_id) else {
                    return;
                };
                let Some(topic) = self.topics.get_mut(name) else {
                    return;
                };
                let topic = Arc::make_mut(topic);
                let image = PartitionImage {
                    index: *partition,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                };
                let idx = partition.get();
                match usize::try_from(idx) {
                    Ok(i) if i < topic.partitions.len() => topic.partitions[i] = image,
                    Ok(i) if i == topic.partitions.len() => topic.partitions.push(image),
                    _ => {}
                }
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let map = match resource {
                    ConfigResource::Topic(topic) => match self.topics.get_mut(topic) {
                        Some(t) => &mut Arc::make_mut(t).configs,
                        None => return,
                    },
                    ConfigResource::Broker(id) => self.broker_configs.entry(*id).or_default(),
                    ConfigResource::BrokerDefault => &mut self.default_broker_configs,
                };
                match value {
                    Some(v) => {
                        map.insert(name.clone(), v.clone());
                    }
                    None => {
                        map.remove(name);
                    }
                }
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names.remove(topic_id) {
                    self.topics.remove(&name);
                }
            }
        }
    }
}
