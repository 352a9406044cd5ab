//! The in-memory metadata image: what the metadata log says, as of one point.
//!
//! Images are immutable once published; request handlers share them as
//! `Arc<MetadataImage>` and read without locks. A change is made by cloning (cheap:
//! topics are behind `Arc`) and applying records.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use samsa_model::{BrokerId, DirectoryId, LeaderEpoch, PartitionIndex, TopicId};

use crate::record::{ConfigResource, Endpoint, MetadataRecord};

/// Kafka's NO_LEADER: the leader of a partition none of whose eligible
/// replicas is available.
pub const NO_LEADER: BrokerId = BrokerId(-1);

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: BrokerId,
    /// The endpoint clients are given.
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// The broker epoch of the current registration (strictly increasing per
    /// broker; 0 for registrations written before epochs existed).
    pub epoch: i64,
    /// The id of the broker process that registered (see
    /// [`MetadataRecord::RegisterBroker`]).
    pub incarnation: String,
    /// Named listeners; empty: `host`/`port` serve every name.
    pub listeners: Vec<Endpoint>,
    /// A fenced broker leads no partition, may not join an ISR and gets no
    /// new replicas. Brokers registered before fencing existed are unfenced.
    pub fenced: bool,
    /// The broker's log directory ids (empty: registered before samsa
    /// recorded them).
    pub log_dirs: Vec<DirectoryId>,
    /// The cordoned subset of `log_dirs` (KIP-1066).
    pub cordoned_log_dirs: Vec<DirectoryId>,
    /// The broker's log directories that failed (KIP-858): its replicas in
    /// them are offline, may not lead and leave the ISRs.
    pub offline_log_dirs: Vec<DirectoryId>,
}

impl BrokerInfo {
    /// Whether every log directory of the broker is cordoned, so no new
    /// replica can be placed on it (KIP-1066). A broker that registered no
    /// directories is not.
    pub fn fully_cordoned(&self) -> bool {
        !self.log_dirs.is_empty()
            && self
                .log_dirs
                .iter()
                .all(|d| self.cordoned_log_dirs.contains(d))
    }

    /// The endpoint of listener `name`: the named listener, or, for a broker
    /// that registered no named listeners, its `host`/`port` under that name.
    /// `None` when the broker has named listeners but not this one.
    pub fn endpoint(&self, name: &str) -> Option<Cow<'_, Endpoint>> {
        if self.listeners.is_empty() {
            return Some(Cow::Owned(Endpoint {
                name: name.to_string(),
                host: self.host.clone(),
                port: self.port,
            }));
        }
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .map(Cow::Borrowed)
    }
}

/// One partition's replica set and leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionImage {
    pub index: PartitionIndex,
    /// Every replica, preferred leader first (during a reassignment: the
    /// target replicas, then those being removed).
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas. Never empty: when the last in-sync replica is
    /// fenced it stays here and the leader becomes [`NO_LEADER`].
    pub isr: Vec<BrokerId>,
    /// The leader, or [`NO_LEADER`].
    pub leader: BrokerId,
    /// Bumped when the leader changes or the replica set loses members.
    pub leader_epoch: LeaderEpoch,
    /// Bumped with every change of this partition.
    pub partition_epoch: i32,
    /// Replicas an ongoing reassignment adds (a subset of `replicas`).
    pub adding_replicas: Vec<BrokerId>,
    /// Replicas an ongoing reassignment removes (a subset of `replicas`).
    pub removing_replicas: Vec<BrokerId>,
    /// The log directory of each replica, in `replicas` order
    /// ([`DirectoryId::UNASSIGNED`]: not reported yet); empty: unknown for
    /// every replica.
    pub directories: Vec<DirectoryId>,
}

impl PartitionImage {
    /// The replicas once the ongoing reassignment (if any) completes:
    /// `replicas` without the ones being removed, in order.
    pub fn target_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }

    /// Whether a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The preferred leader: the first replica.
    pub fn preferred_leader(&self) -> Option<BrokerId> {
        self.replicas.first().copied()
    }

    /// Whether the partition has a leader.
    pub fn has_leader(&self) -> bool {
        self.leader != NO_LEADER
    }

    /// The log directory holding replica `broker`, when known.
    pub fn directory_of(&self, broker: BrokerId) -> Option<DirectoryId> {
        let i = self.replicas.iter().position(|r| *r == broker)?;
        self.directories
            .get(i)
            .copied()
            .filter(|d| *d != DirectoryId::UNASSIGNED)
    }

    /// `directories` for a new replica list `replicas`: each replica keeps
    /// the directory it had here, a new one is unassigned (empty stays
    /// empty: unknown).
    pub fn directories_for(&self, replicas: &[BrokerId]) -> Vec<DirectoryId> {
        if self.directories.is_empty() {
            return Vec::new();
        }
        replicas
            .iter()
            .map(|r| self.directory_of(*r).unwrap_or(DirectoryId::UNASSIGNED))
            .collect()
    }
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
#[derive(Clone, Debug)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub topic_names: HashMap<TopicId, String>,
    pub broker_configs: BTreeMap<BrokerId, BTreeMap<String, String>>,
    /// Cluster-wide dynamic broker defaults.
    pub default_broker_configs: BTreeMap<String, String>,
    /// Group-level config overrides by group id (Kafka's `GROUP` resource); a
    /// group with no override left is absent.
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
    /// How many records built this image.
    pub records_applied: u64,
    /// Finalized feature levels by name: a feature never written is absent;
    /// one set to level 0 is present at 0 (Kafka lists neither as finalized).
    pub features: BTreeMap<String, i16>,
    /// The metadata offset of the last feature change (Kafka's
    /// `finalized_features_epoch`), -1 before any.
    pub features_epoch: i64,
    /// Every ACL by id (shared: an image change that does not touch ACLs
    /// does not copy them).
    pub acls: Arc<crate::acl::AclMap>,
    /// SCRAM credentials by user and mechanism; a user with none left is
    /// absent.
    /// (Shared like `acls`: an image change that does not touch them does
    /// not copy them.)
    pub scram_credentials: Arc<
        BTreeMap<String, BTreeMap<crate::scram::ScramMechanism, crate::scram::ScramCredential>>,
    >,
}

impl Default for MetadataImage {
    fn default() -> Self {
        MetadataImage {
            cluster_id: String::new(),
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            topic_names: HashMap::new(),
            broker_configs: BTreeMap::new(),
            default_broker_configs: BTreeMap::new(),
            group_configs: BTreeMap::new(),
            next_producer_id: 0,
            records_applied: 0,
            features: BTreeMap::new(),
            features_epoch: -1,
            acls: Arc::default(),
            scram_credentials: Arc::default(),
        }
    }
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

    /// The finalized level of feature `name` (0 when absent).
    pub fn feature_level(&self, name: &str) -> i16 {
        self.features.get(name).copied().unwrap_or(0)
    }

    /// User `user`'s SCRAM credential for `mechanism`.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: crate::scram::ScramMechanism,
    ) -> Option<&crate::scram::ScramCredential> {
        self.scram_credentials.get(user)?.get(&mechanism)
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<TopicImage>> {
        self.topic_names.get(&id).and_then(|n| self.topics.get(n))
    }

    /// Partition `index` of the topic named `topic`.
    pub fn partition(&self, topic: &str, index: PartitionIndex) -> Option<&PartitionImage> {
        let i = usize::try_from(index.get()).ok()?;
        self.topic(topic)?.partitions.get(i)
    }

    /// The unfenced brokers, by id: those that may lead, join ISRs and get new
    /// replicas.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerInfo> + '_ {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Whether `id` is registered and unfenced.
    pub fn is_live(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Whether replica `r` of `p` sits in a log directory its broker
    /// reported failed (KIP-858). A replica whose directory is not known
    /// is not (as Kafka's `DirectoryId.isOnline` treats UNASSIGNED).
    pub fn replica_dir_offline(&self, p: &PartitionImage, r: BrokerId) -> bool {
        let Some(b) = self.brokers.get(&r) else {
            return false;
        };
        !b.offline_log_dirs.is_empty()
            && p.directory_of(r)
                .is_some_and(|d| b.offline_log_dirs.contains(&d))
    }

    /// Whether replica `r` of `p` can lead or be in sync: its broker is
    /// live and its directory is not offline.
    pub fn replica_online(&self, p: &PartitionImage, r: BrokerId) -> bool {
        self.is_live(r) && !self.replica_dir_offline(p, r)
    }

    /// Applies one record. Records that refer to unknown topics are ignored (they
    /// cannot be produced by the controller, which validates against the image).
    pub fn apply(&mut self, record: &MetadataRecord) {
        self.records_applied += 1;
        match record {
            MetadataRecord::InitCluster { cluster_id } => {
                self.cluster_id = cluster_id.clone();
            }
            MetadataRecord::AccessControlEntry { id, acl } => {
                Arc::make_mut(&mut self.acls).insert(*id, acl.clone());
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                if self.acls.contains_key(id) {
                    Arc::make_mut(&mut self.acls).remove(id);
                }
            }
            MetadataRecord::FeatureLevel {
                name,
                level,
                at_offset,
            } => {
                // Level 0 stays in the map: the feature was finalized (and
                // then disabled), so startup does not bootstrap it again.
                self.features.insert(name.clone(), *level);
                // records_applied counts this record: its offset is one less.
                let offset = i64::try_from(self.records_applied).unwrap_or(i64::MAX) - 1;
                self.features_epoch = at_offset.unwrap_or(offset);
            }
            MetadataRecord::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
                epoch,
                incarnation,
                listeners,
                fenced,
                log_dirs,
                cordoned_log_dirs,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerInfo {
                        id: *broker_id,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        epoch: *epoch,
                        incarnation: incarnation.clone(),
                        listeners: listeners.clone(),
                        fenced: *fenced,
                        log_dirs: log_dirs.clone(),
                        cordoned_log_dirs: cordoned_log_dirs.clone(),
                        offline_log_dirs: Vec::new(),
                    },
                );
            }
            MetadataRecord::BrokerRegistrationChange {
                broker_id,
                epoch,
                cordoned_log_dirs,
                offline_log_dirs,
            } => {
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    if b.epoch == *epoch {
                        b.cordoned_log_dirs = cordoned_log_dirs.clone();
                        if let Some(offline) = offline_log_dirs {
                            b.offline_log_dirs = offline.clone();
                        }
                    }
                }
            }
            MetadataRecord::FenceBroker { broker_id, epoch } => {
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    if b.epoch == *epoch {
                        b.fenced = true;
                    }
                }
            }
            MetadataRecord::UnfenceBroker { broker_id, epoch } => {
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    if b.epoch == *epoch {
                        b.fenced = false;
                    }
                }
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
                adding_replicas,
                removing_replicas,
                directories,
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
                    adding_replicas: adding_replicas.clone(),
                    removing_replicas: removing_replicas.clone(),
                    // Only a list aligned with the replicas means anything.
                    directories: if directories.len() == replicas.len() {
                        directories.clone()
                    } else {
                        Vec::new()
                    },
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
                    ConfigResource::Group(group) => {
                        let map = self.group_configs.entry(group.clone()).or_default();
                        match value {
                            Some(v) => {
                                map.insert(name.clone(), v.clone());
                            }
                            None => {
                                map.remove(name);
                                if map.is_empty() {
                                    self.group_configs.remove(group);
                                }
                            }
                        }
                        return;
                    }
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
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                credential,
            } => {
                Arc::make_mut(&mut self.scram_credentials)
                    .entry(name.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                if self
                    .scram_credentials
                    .get(name)
                    .is_some_and(|u| u.contains_key(mechanism))
                {
                    let all = Arc::make_mut(&mut self.scram_credentials);
                    if let Some(user) = all.get_mut(name) {
                        user.remove(mechanism);
                        if user.is_empty() {
                            all.remove(name);
                        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn register(id: i32, epoch: i64, fenced: bool) -> MetadataRecord {
        MetadataRecord::RegisterBroker {
            broker_id: BrokerId(id),
            host: "h".into(),
            port: 9092,
            rack: Some("r".into()),
            epoch,
            incarnation: format!("inc{epoch}"),
            listeners: vec![Endpoint {
                name: "INTERNAL".into(),
                host: "10.0.0.1".into(),
                port: 9093,
            }],
            fenced,
            log_dirs: Vec::new(),
            cordoned_log_dirs: Vec::new(),
        }
    }

    #[test]
    fn cordoned_log_dirs_follow_registration_and_change_records_of_the_epoch() {
        let (a, b) = (
            DirectoryId(uuid::Uuid::from_u128(1)),
            DirectoryId(uuid::Uuid::from_u128(2)),
        );
        let mut image = MetadataImage::default();
        let mut reg = register(1, 3, false);
        if let MetadataRecord::RegisterBroker {
            log_dirs,
            cordoned_log_dirs,
            ..
        } = &mut reg
        {
            *log_dirs = vec![a, b];
            *cordoned_log_dirs = vec![a];
        }
        image.apply(&reg);
        let broker = &image.brokers[&BrokerId(1)];
        assert_eq!(broker.log_dirs, vec![a, b]);
        assert!(!broker.fully_cordoned(), "one of two directories is open");
        // A change for another epoch is stale.
        image.apply(&MetadataRecord::BrokerRegistrationChange {
            broker_id: BrokerId(1),
            epoch: 2,
            cordoned_log_dirs: vec![a, b],
            offline_log_dirs: None,
        });
        assert!(!image.brokers[&BrokerId(1)].fully_cordoned());
        image.apply(&MetadataRecord::BrokerRegistrationChange {
            broker_id: BrokerId(1),
            epoch: 3,
            cordoned_log_dirs: vec![b, a],
            offline_log_dirs: None,
        });
        assert!(image.brokers[&BrokerId(1)].fully_cordoned());
        // A broker that registered no directories is never fully cordoned.
        image.apply(&register(2, 1, false));
        assert!(!image.brokers[&BrokerId(2)].fully_cordoned());
    }

    #[test]
    fn broker_records_set_the_registration_and_fencing_by_epoch() {
        let mut image = MetadataImage::default();
        image.apply(&register(1, 3, true));
        image.apply(&register(2, 1, false));
        let b = &image.brokers[&BrokerId(1)];
        assert_eq!(
            (b.epoch, b.incarnation.as_str(), b.fenced),
            (3, "inc3", true)
        );
        assert_eq!(b.endpoint("INTERNAL").unwrap().port, 9093);
        assert!(b.endpoint("EXTERNAL").is_none());
        let live: Vec<BrokerId> = image.live_brokers().map(|b| b.id).collect();
        assert_eq!(live, vec![BrokerId(2)]);

        // A record for another epoch is stale and ignored.
        image.apply(&MetadataRecord::UnfenceBroker {
            broker_id: BrokerId(1),
            epoch: 2,
        });
        assert!(image.brokers[&BrokerId(1)].fenced);
        image.apply(&MetadataRecord::UnfenceBroker {
            broker_id: BrokerId(1),
            epoch: 3,
        });
        assert!(image.is_live(BrokerId(1)));
        image.apply(&MetadataRecord::FenceBroker {
            broker_id: BrokerId(2),
            epoch: 1,
        });
        assert!(!image.is_live(BrokerId(2)));
        // Unknown brokers are ignored.
        image.apply(&MetadataRecord::FenceBroker {
            broker_id: BrokerId(9),
            epoch: 0,
        });
        assert_eq!(image.brokers.len(), 2);
        assert_eq!(image.records_applied, 6, "stale records count as applied");
    }

    #[test]
    fn partition_records_carry_the_reassignment() {
        let mut image = MetadataImage::default();
        let topic_id = TopicId(uuid::Uuid::from_u128(7));
        image.apply(&MetadataRecord::Topic {
            name: "t".into(),
            topic_id,
        });
        image.apply(&MetadataRecord::Partition {
            topic_id,
            partition: PartitionIndex(0),
            replicas: vec![BrokerId(3), BrokerId(1), BrokerId(2)],
            isr: vec![BrokerId(1), BrokerId(2)],
            leader: BrokerId(1),
            leader_epoch: LeaderEpoch(4),
            partition_epoch: 9,
            adding_replicas: vec![BrokerId(3)],
            removing_replicas: vec![BrokerId(2)],
            directories: Vec::new(),
        });
        let p = image.partition("t", PartitionIndex(0)).unwrap();
        assert!(p.is_reassigning());
        assert_eq!(p.target_replicas(), vec![BrokerId(3), BrokerId(1)]);
        assert_eq!(p.preferred_leader(), Some(BrokerId(3)));
        assert!(p.has_leader());
        assert!(image.partition("t", PartitionIndex(1)).is_none());
        assert!(image.partition("t", PartitionIndex(-1)).is_none());
    }
}
