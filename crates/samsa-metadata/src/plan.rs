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
//!
//! # Replication
//!
//! Broker fencing, ISR changes, elections and reassignments follow Kafka's
//! KRaft controller (ReplicationControlManager and PartitionChangeBuilder).
//! Every partition change is planned by one rule set and written as a full
//! [`MetadataRecord::Partition`]:
//!
//! * An ongoing reassignment completes as soon as the ISR, without the
//!   replicas being removed, is non-empty and holds every target replica:
//!   replicas become the target, the ISR loses the removed replicas.
//! * The leader is kept while it is in the ISR and eligible (registered and
//!   unfenced, or being unfenced). Otherwise the first replica in replica
//!   order that is in the ISR and eligible leads. With none, an unclean
//!   election (when enabled) takes the first eligible replica and the ISR
//!   becomes just it; else the leader is -1 ([`NO_LEADER`]).
//! * The ISR is never emptied: a broker leaving the ISR as its last member
//!   stays in it, so the partition knows whose data is the latest.
//! * `partition_epoch` grows with every change; `leader_epoch` when the
//!   leader changes or replicas leave the replica set.

use std::collections::{BTreeMap, BTreeSet};

use samsa_model::DirectoryId;
use samsa_model::{BrokerId, LeaderEpoch, PartitionIndex, TopicId, TopicPartition};

use crate::config::{self, StaticConfig};
use crate::controller::{
    AlterPartition, BrokerRegistration, ControllerError, ElectionType, NewTopic,
    OngoingReassignment, PartitionResult,
};
use crate::image::{MetadataImage, PartitionImage, TopicImage, NO_LEADER};
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
    pub(crate) fn new(records: Vec<MetadataRecord>, outcome: T) -> Planned<T> {
        Planned { records, outcome }
    }

    pub(crate) fn new_pub(records: Vec<MetadataRecord>, outcome: T) -> Planned<T> {
        Planned::new(records, outcome)
    }
}

/// Plans the first record of a brand new cluster log (nothing when `image`
/// already has a cluster id) and the bootstrap level of every feature the
/// image lacks.
pub fn plan_init_cluster(image: &MetadataImage) -> Planned {
    let mut records = if image.cluster_id.is_empty() {
        vec![MetadataRecord::InitCluster {
            cluster_id: new_cluster_id(),
        }]
    } else {
        Vec::new()
    };
    // The bootstrap feature levels: with a new cluster's first record, or
    // once on the first start of a log written before features existed.
    records.extend(crate::features::bootstrap_records(image));
    Planned::new(records, ())
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
    let live = placement_brokers(image);
    let assignments: Vec<Vec<BrokerId>> = if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(ControllerError::InvalidRequest(
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        for replicas in &topic.assignments {
            validate_assignment(image, replicas)?;
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
            return Err(too_few_brokers(image, rf as usize, live.len()));
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
        records.push(new_partition_record(image, topic_id, i as i32, replicas)?);
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
    let live = placement_brokers(image);
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
                validate_assignment(image, replicas)?;
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
                return Err(too_few_brokers(image, rf, live.len()));
            }
            place_replicas(&live, current as usize, added as i32, rf)
        }
    };
    let records = new_replicas
        .into_iter()
        .enumerate()
        .map(|(i, r)| new_partition_record(image, topic.id, current + i as i32, r))
        .collect::<Result<_, _>>()?;
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

/// The record creating partition `index` on `replicas`: the ISR is the live
/// replicas (all of them for automatic placement, which uses live brokers
/// only), led by the first. A manual assignment naming only fenced brokers is
/// refused, as Kafka does.
fn new_partition_record(
    image: &MetadataImage,
    topic_id: TopicId,
    index: i32,
    replicas: Vec<BrokerId>,
) -> Result<MetadataRecord, ControllerError> {
    let isr: Vec<BrokerId> = replicas
        .iter()
        .copied()
        .filter(|r| image.is_live(*r))
        .collect();
    let Some(&leader) = isr.first() else {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "All brokers specified in the manual partition assignment for partition {index} are fenced."
        )));
    };
    let directories = replicas.iter().map(|r| default_dir(image, *r)).collect();
    Ok(MetadataRecord::Partition {
        topic_id,
        partition: PartitionIndex(index),
        replicas,
        isr,
        leader,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        directories,
    })
}

/// The directory a new replica on `broker` is known to be in before the
/// broker reports it: its only log directory when it registered exactly
/// one (as Kafka's controller assigns it), else unassigned.
fn default_dir(image: &MetadataImage, broker: BrokerId) -> DirectoryId {
    match image.brokers.get(&broker).map(|b| b.log_dirs.as_slice()) {
        Some([only]) => *only,
        _ => DirectoryId::UNASSIGNED,
    }
}

/// The record writing `p` as the new state of partition `p.index` of
/// `topic_id`.
pub(crate) fn partition_record(topic_id: TopicId, p: &PartitionImage) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition: p.index,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        adding_replicas: p.adding_replicas.clone(),
        removing_replicas: p.removing_replicas.clone(),
        directories: p.directories.clone(),
    }
}

/// A manual replica list: non-empty, no duplicates, registered brokers
/// (fenced ones included, as in Kafka).
fn validate_assignment(
    image: &MetadataImage,
    replicas: &[BrokerId],
) -> Result<(), ControllerError> {
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
    if let Some(b) = replicas.iter().find(|b| !image.brokers.contains_key(b)) {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "Broker {b} in replica assignment is not registered."
        )));
    }
    Ok(())
}

/// The brokers automatic placement may use: the live (unfenced) ones that
/// have a log directory not cordoned (KIP-1066), by id, with their racks.
fn placement_brokers(image: &MetadataImage) -> Vec<(BrokerId, Option<&str>)> {
    image
        .live_brokers()
        .filter(|b| !b.fully_cordoned())
        .map(|b| (b.id, b.rack.as_deref()))
        .collect()
}

/// Why automatic placement cannot reach `rf` replicas on `usable` brokers:
/// Kafka's INVALID_REPLICATION_FACTOR message, naming the live brokers left
/// out because all their log directories are cordoned, if any.
fn too_few_brokers(image: &MetadataImage, rf: usize, usable: usize) -> ControllerError {
    let cordoned = image.live_brokers().filter(|b| b.fully_cordoned()).count();
    let why = if cordoned == 0 {
        format!("only {usable} broker(s) are registered.")
    } else {
        format!(
            "only {usable} broker(s) are registered and not cordoned ({cordoned} broker(s) have all their log directories cordoned)."
        )
    };
    ControllerError::InvalidReplicationFactor(format!(
        "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because {why}"
    ))
}

/// Kafka's rack-alternated broker list: brokers grouped by rack (racks in
/// name order, brokers without a rack as one more group, brokers by id within
/// a group), then taken one per rack in turn. Neighbours in the list are on
/// different racks as long as racks have brokers left.
fn rack_alternated(brokers: &[(BrokerId, Option<&str>)]) -> Vec<BrokerId> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<BrokerId>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack.entry(*rack).or_default().push(*id);
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|i| by_rack.values().filter_map(move |ids| ids.get(i).copied()))
        .collect()
}

/// Automatic placement of `partitions` new partitions, the first of which is
/// partition number `first`, on `live` brokers.
///
/// Without racks, partition `p`'s first replica (its preferred leader) is
/// broker `(first + p) mod n` in id order and the others follow it in that
/// order. When any broker has a rack the same walk runs over the
/// rack-alternated list ([`rack_alternated`]), and a follower is taken only
/// from a rack the partition has no replica on yet, until every rack has
/// one; so preferred leaders spread round-robin and a partition's replicas
/// land on distinct racks when there are enough.
fn place_replicas(
    live: &[(BrokerId, Option<&str>)],
    first: usize,
    partitions: i32,
    rf: usize,
) -> Vec<Vec<BrokerId>> {
    let racked = live.iter().any(|(_, rack)| rack.is_some());
    let order: Vec<BrokerId> = if racked {
        rack_alternated(live)
    } else {
        live.iter().map(|(id, _)| *id).collect()
    };
    let rack_of = |id: BrokerId| {
        live.iter()
            .find(|(b, _)| *b == id)
            .and_then(|(_, rack)| *rack)
    };
    let rack_count = live
        .iter()
        .map(|(_, rack)| *rack)
        .collect::<BTreeSet<_>>()
        .len();
    let n = order.len();
    if n == 0 {
        return vec![Vec::new(); partitions.max(0) as usize];
    }
    (0..partitions.max(0) as usize)
        .map(|p| {
            let start = (first + p) % n;
            let mut replicas = vec![order[start]];
            let mut racks: BTreeSet<Option<&str>> = BTreeSet::from([rack_of(order[start])]);
            // First pass: only new racks (while some rack has no replica);
            // second pass: anything not taken yet.
            for new_racks_only in [true, false] {
                for k in 1..n {
                    if replicas.len() >= rf {
                        break;
                    }
                    let candidate = order[(start + k) % n];
                    if replicas.contains(&candidate) {
                        continue;
                    }
                    let rack = rack_of(candidate);
                    if new_racks_only && (racks.len() >= rack_count || racks.contains(&rack)) {
                        continue;
                    }
                    racks.insert(rack);
                    replicas.push(candidate);
                }
            }
            replicas
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Replication: broker registration and fencing, ISR changes, elections,
// reassignments.
// ---------------------------------------------------------------------------

/// How a partition change may pick a new leader.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Election {
    /// Keep the leader while it is in the ISR and eligible; else the first
    /// replica (in replica order) that is.
    Online,
    /// The preferred (first) replica when it is in the ISR and eligible; else
    /// as [`Election::Online`].
    Preferred,
    /// As [`Election::Online`]; failing that, the first eligible replica even
    /// out of sync, which becomes the only ISR member.
    Unclean,
}

/// A change of one partition, built from its current state: set the target
/// replica set, ISR and reassignment lists, then [`PartitionChange::build`]
/// completes a reassignment when it can, elects the leader and bumps epochs
/// (see the module doc).
pub(crate) struct PartitionChange<'a> {
    current: &'a PartitionImage,
    replicas: Vec<BrokerId>,
    pub(crate) isr: Vec<BrokerId>,
    adding: Vec<BrokerId>,
    removing: Vec<BrokerId>,
    election: Election,
}

impl<'a> PartitionChange<'a> {
    pub(crate) fn new(current: &'a PartitionImage, election: Election) -> PartitionChange<'a> {
        PartitionChange {
            current,
            replicas: current.replicas.clone(),
            isr: current.isr.clone(),
            adding: current.adding_replicas.clone(),
            removing: current.removing_replicas.clone(),
            election,
        }
    }

    /// Completes the reassignment in progress if the target ISR allows it:
    /// without the replicas being removed it must be non-empty and hold every
    /// remaining replica.
    fn complete_reassignment(&mut self) {
        if self.adding.is_empty() && self.removing.is_empty() {
            return;
        }
        let removing = &self.removing;
        let isr: Vec<BrokerId> = without(&self.isr, removing);
        let replicas: Vec<BrokerId> = without(&self.replicas, removing);
        if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
            return;
        }
        self.replicas = replicas;
        self.isr = isr;
        self.adding.clear();
        self.removing.clear();
    }

    /// The new state, or `None` when nothing changes. `eligible` says which
    /// brokers may lead (registered and unfenced, as the caller sees it).
    pub(crate) fn build(mut self, eligible: impl Fn(BrokerId) -> bool) -> Option<PartitionImage> {
        self.complete_reassignment();
        let in_sync = |r: BrokerId| self.isr.contains(&r) && eligible(r);
        let current_leader = self.current.leader;
        let mut unclean = false;
        let leader = match self.election {
            Election::Preferred => self
                .replicas
                .first()
                .copied()
                .filter(|r| in_sync(*r))
                .or_else(|| Some(current_leader).filter(|r| in_sync(*r)))
                .or_else(|| self.replicas.iter().copied().find(|r| in_sync(*r))),
            Election::Online | Election::Unclean => Some(current_leader)
                .filter(|r| in_sync(*r))
                .or_else(|| self.replicas.iter().copied().find(|r| in_sync(*r)))
                .or_else(|| {
                    if self.election != Election::Unclean {
                        return None;
                    }
                    let r = self.replicas.iter().copied().find(|r| eligible(*r))?;
                    unclean = true;
                    Some(r)
                }),
        }
        .unwrap_or(NO_LEADER);
        let isr = if unclean {
            vec![leader]
        } else if self.isr.is_empty() {
            // Never an empty ISR: its last member stays (without leading).
            self.current.isr.clone()
        } else {
            self.isr
        };
        let leader_changed = leader != current_leader;
        let replicas_removed = self
            .current
            .replicas
            .iter()
            .any(|r| !self.replicas.contains(r));
        let changed = leader_changed
            || isr != self.current.isr
            || self.replicas != self.current.replicas
            || self.adding != self.current.adding_replicas
            || self.removing != self.current.removing_replicas;
        if !changed {
            return None;
        }
        let leader_epoch = if leader_changed || replicas_removed {
            LeaderEpoch(self.current.leader_epoch.0.saturating_add(1))
        } else {
            self.current.leader_epoch
        };
        let directories = self.current.directories_for(&self.replicas);
        Some(PartitionImage {
            index: self.current.index,
            replicas: self.replicas,
            isr,
            leader,
            leader_epoch,
            partition_epoch: self.current.partition_epoch.saturating_add(1),
            directories,
            adding_replicas: self.adding,
            removing_replicas: self.removing,
        })
    }
}

/// `list` without the members of `remove`, in order.
fn without(list: &[BrokerId], remove: &[BrokerId]) -> Vec<BrokerId> {
    list.iter()
        .copied()
        .filter(|r| !remove.contains(r))
        .collect()
}

/// `image` with `records` applied (for planning several changes in a row and
/// for reading a plan's outcome).
pub(crate) fn applied(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
    let mut next = image.clone();
    for r in records {
        next.apply(r);
    }
    next
}

/// Whether `unclean.leader.election.enable` holds for `topic`: its own
/// override, else the cluster-wide dynamic broker default, else the static
/// broker config, else Kafka's default (false).
fn unclean_enabled(config: &StaticConfig, image: &MetadataImage, topic: &TopicImage) -> bool {
    config
        .with_dynamic(&image.default_broker_configs)
        .topic_value(&topic.configs, "unclean.leader.election.enable")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The election a broker-driven change (fencing, unfencing) runs for `topic`.
pub(crate) fn online_election(
    config: &StaticConfig,
    image: &MetadataImage,
    topic: &TopicImage,
) -> Election {
    if unclean_enabled(config, image, topic) {
        Election::Unclean
    } else {
        Election::Online
    }
}

/// Partition records moving leaderships and ISRs after a broker state
/// change, for every partition `select` picks: `remove` leaves the ISRs (but
/// never empties one) and may not lead; `add` may lead although the image
/// still shows it fenced. Other brokers are eligible when live in `image`.
fn leader_and_isr_updates(
    image: &MetadataImage,
    config: &StaticConfig,
    remove: Option<BrokerId>,
    add: Option<BrokerId>,
    select: impl Fn(&PartitionImage) -> bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        let election = online_election(config, image, topic);
        for p in topic.partitions.iter().filter(|p| select(p)) {
            // A replica in a failed log directory (KIP-858) may not lead.
            let eligible = |r: BrokerId| {
                Some(r) != remove
                    && (Some(r) == add || image.is_live(r))
                    && !image.replica_dir_offline(p, r)
            };
            let mut change = PartitionChange::new(p, election);
            if let Some(gone) = remove {
                change.isr.retain(|r| *r != gone);
            }
            if let Some(next) = change.build(eligible) {
                records.push(partition_record(topic.id, &next));
            }
        }
    }
    records
}

/// Every partition of `image` that `pick` selects, in topic name and
/// partition order.
fn partitions_where(
    image: &MetadataImage,
    pick: impl Fn(&PartitionImage) -> bool,
) -> Vec<TopicPartition> {
    image
        .topics
        .values()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| pick(p))
                .map(|p| TopicPartition {
                    topic: t.name.clone(),
                    partition: p.index,
                })
        })
        .collect()
}

/// Plans registering a broker; the outcome is its broker epoch.
///
/// A registration equal to the current one (same incarnation, endpoints,
/// listeners, rack and log directories) plans nothing and answers the
/// current epoch, or, when only its cordoned log directories differ, plans a
/// [`MetadataRecord::BrokerRegistrationChange`] at the current epoch. Any
/// other gets epoch `previous + 1` (1 for a new broker) and replaces the
/// registration with the requested fencing state. Registered fenced, the
/// broker leaves the ISRs and leaderships it held (as
/// [`plan_fence_broker`]; the restart of a broker whose log may be behind);
/// registered unfenced, leaderless partitions it may lead are given a
/// leader (as [`plan_unfence_broker`]).
pub fn plan_register_broker(
    image: &MetadataImage,
    config: &StaticConfig,
    reg: &BrokerRegistration,
) -> Result<Planned<i64>, ControllerError> {
    if reg.id.get() < 0 {
        return Err(ControllerError::InvalidRequest(format!(
            "Invalid broker id {}.",
            reg.id
        )));
    }
    let existing = image.brokers.get(&reg.id);
    if let Some(b) = existing {
        let unchanged = b.incarnation == reg.incarnation
            && b.host == reg.host
            && b.port == reg.port
            && b.rack == reg.rack
            && b.listeners == reg.listeners
            && b.log_dirs == reg.log_dirs;
        if unchanged {
            let mut cordoned = reg.cordoned_log_dirs.clone();
            cordoned.sort();
            cordoned.dedup();
            let mut current = b.cordoned_log_dirs.clone();
            current.sort();
            if cordoned == current {
                return Ok(Planned::new(Vec::new(), b.epoch));
            }
            // Only the cordoned directories changed (a dynamic
            // `cordoned.log.dirs` change): same process, same epoch.
            let change = MetadataRecord::BrokerRegistrationChange {
                broker_id: reg.id,
                epoch: b.epoch,
                cordoned_log_dirs: cordoned,
                offline_log_dirs: None,
            };
            return Ok(Planned::new(vec![change], b.epoch));
        }
    }
    let epoch = existing.map_or(1, |b| b.epoch.max(0).saturating_add(1));
    let register = MetadataRecord::RegisterBroker {
        broker_id: reg.id,
        host: reg.host.clone(),
        port: reg.port,
        rack: reg.rack.clone(),
        epoch,
        incarnation: reg.incarnation.clone(),
        listeners: reg.listeners.clone(),
        fenced: reg.fenced,
        log_dirs: reg.log_dirs.clone(),
        cordoned_log_dirs: reg.cordoned_log_dirs.clone(),
    };
    let registered = applied(image, std::slice::from_ref(&register));
    let id = reg.id;
    let moves = if reg.fenced {
        leader_and_isr_updates(&registered, config, Some(id), None, |p| p.isr.contains(&id))
    } else {
        leader_and_isr_updates(&registered, config, None, Some(id), |p| !p.has_leader())
    };
    let mut records = vec![register];
    records.extend(moves);
    Ok(Planned::new(records, epoch))
}

/// Plans fencing broker `id`: every partition whose ISR holds it loses it
/// from the ISR (unless it is the last member) and, if it led, gets the first
/// live in-sync replica in replica order as leader; with none, an
/// out-of-sync live replica when unclean election is enabled for the topic,
/// else no leader. Then a `FenceBroker`. The outcome is the partitions left
/// without a leader because `id` is their only in-sync replica. Nothing is
/// planned for a broker already fenced.
pub fn plan_fence_broker(
    image: &MetadataImage,
    config: &StaticConfig,
    id: BrokerId,
) -> Result<Planned<Vec<TopicPartition>>, ControllerError> {
    let broker = image
        .brokers
        .get(&id)
        .ok_or(ControllerError::BrokerIdNotRegistered(id))?;
    let mut records = Vec::new();
    if !broker.fenced {
        records = leader_and_isr_updates(image, config, Some(id), None, |p| p.isr.contains(&id));
        records.push(MetadataRecord::FenceBroker {
            broker_id: id,
            epoch: broker.epoch,
        });
    }
    let after = applied(image, &records);
    let offline = partitions_where(&after, |p| !p.has_leader() && p.isr == [id]);
    Ok(Planned::new(records, offline))
}

/// Plans a controlled shutdown of broker `id`: the changes of
/// [`plan_fence_broker`] (leaderships move to other live in-sync replicas
/// and the broker is fenced, in one batch). The outcome is the partitions it
/// was the only in-sync replica of, left without a leader until it returns.
pub fn plan_controlled_shutdown(
    image: &MetadataImage,
    config: &StaticConfig,
    id: BrokerId,
) -> Result<Planned<Vec<TopicPartition>>, ControllerError> {
    plan_fence_broker(image, config, id)
}

/// Plans unfencing broker `id` at broker epoch `epoch` (refused with
/// [`ControllerError::StaleBrokerEpoch`] when the registered epoch differs):
/// an `UnfenceBroker` if it is fenced, then a leader for every leaderless
/// partition that can get one now — `id` or another live replica in the ISR,
/// or, when unclean election is enabled for the topic, the first live
/// replica (the ISR becomes just it). The outcome is the partitions that got
/// a leader.
pub fn plan_unfence_broker(
    image: &MetadataImage,
    config: &StaticConfig,
    id: BrokerId,
    epoch: i64,
) -> Result<Planned<Vec<TopicPartition>>, ControllerError> {
    let broker = registered_at(image, id, epoch)?;
    let mut records = Vec::new();
    if broker.fenced {
        records.push(MetadataRecord::UnfenceBroker {
            broker_id: id,
            epoch,
        });
    }
    records.extend(leader_and_isr_updates(image, config, None, Some(id), |p| {
        !p.has_leader()
    }));
    let after = applied(image, &records);
    let elected = partitions_where(&after, |p| p.has_leader())
        .into_iter()
        .filter(|tp| {
            image
                .partition(&tp.topic, tp.partition)
                .is_some_and(|before| !before.has_leader())
        })
        .collect();
    Ok(Planned::new(records, elected))
}

/// Broker `id`'s registration, if it is at broker epoch `epoch`
/// ([`ControllerError::BrokerIdNotRegistered`], else
/// [`ControllerError::StaleBrokerEpoch`]).
pub(crate) fn registered_at(
    image: &MetadataImage,
    id: BrokerId,
    epoch: i64,
) -> Result<&crate::image::BrokerInfo, ControllerError> {
    let broker = image
        .brokers
        .get(&id)
        .ok_or(ControllerError::BrokerIdNotRegistered(id))?;
    if broker.epoch != epoch {
        return Err(ControllerError::StaleBrokerEpoch(format!(
            "Broker {id} is registered with epoch {}, not {epoch}.",
            broker.epoch
        )));
    }
    Ok(broker)
}

/// Plans a leader's ISR change (Kafka's AlterPartition), checked in Kafka's
/// order: an unknown topic or partition is [`ControllerError::UnknownTopic`];
/// a stale broker epoch [`ControllerError::StaleBrokerEpoch`]; epochs ahead
/// of the image [`ControllerError::NotController`]; an older leader epoch
/// [`ControllerError::FencedLeaderEpoch`]; a requester that is not the
/// leader [`ControllerError::NotLeaderOrFollower`] (Kafka answers
/// INVALID_REQUEST there); an older partition epoch
/// [`ControllerError::InvalidUpdateVersion`]; an ISR that is empty, repeats
/// a broker, names a non-replica or leaves out the leader
/// [`ControllerError::InvalidRequest`]; an ISR member that is unregistered or
/// fenced, or added with a broker epoch that is not its current
/// registration's (KIP-903), [`ControllerError::IneligibleReplica`].
///
/// The outcome is the partition afterwards: unchanged when the ISR is the
/// current one. An ISR holding every target replica of an ongoing
/// reassignment completes it in the same change (and moves leadership if the
/// leader is being removed).
pub fn plan_alter_partition(
    image: &MetadataImage,
    config: &StaticConfig,
    request: &AlterPartition,
) -> Result<Planned<PartitionImage>, ControllerError> {
    let topic = image
        .topic_by_id(request.topic_id)
        .ok_or(ControllerError::UnknownTopic)?;
    let part = usize::try_from(request.partition.get())
        .ok()
        .and_then(|i| topic.partitions.get(i))
        .ok_or(ControllerError::UnknownTopic)?;
    let name = format!("{}-{}", topic.name, part.index);
    if let Some(epoch) = request.broker_epoch {
        let registered = image.brokers.get(&request.leader).map(|b| b.epoch);
        if registered != Some(epoch) {
            return Err(ControllerError::StaleBrokerEpoch(format!(
                "Broker {} has epoch {registered:?}, not {epoch}.",
                request.leader
            )));
        }
    }
    if request.leader_epoch > part.leader_epoch || request.partition_epoch > part.partition_epoch {
        return Err(ControllerError::NotController(format!(
            "{name}: the request's leader epoch {} / partition epoch {} is ahead of this controller's {} / {}.",
            request.leader_epoch, request.partition_epoch, part.leader_epoch, part.partition_epoch
        )));
    }
    if request.leader_epoch < part.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch(format!(
            "{name}: leader epoch {} is older than the current {}.",
            request.leader_epoch, part.leader_epoch
        )));
    }
    if request.leader != part.leader {
        return Err(ControllerError::NotLeaderOrFollower(format!(
            "{name}: broker {} is not the leader (the leader is {}).",
            request.leader, part.leader
        )));
    }
    if request.partition_epoch < part.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion(format!(
            "{name}: partition epoch {} is older than the current {}.",
            request.partition_epoch, part.partition_epoch
        )));
    }
    let new_isr = &request.new_isr;
    let unique: BTreeSet<_> = new_isr.iter().collect();
    if unique.len() != new_isr.len() || new_isr.iter().any(|r| !part.replicas.contains(r)) {
        return Err(ControllerError::InvalidRequest(format!(
            "{name}: the ISR {new_isr:?} is not a set of replicas of {:?}.",
            part.replicas
        )));
    }
    if !new_isr.contains(&part.leader) {
        return Err(ControllerError::InvalidRequest(format!(
            "{name}: the ISR {new_isr:?} does not include the leader {}.",
            part.leader
        )));
    }
    if let Some(r) = new_isr.iter().find(|r| !image.replica_online(part, **r)) {
        let why = if image.replica_dir_offline(part, *r) {
            "in an offline log directory"
        } else if image.brokers.contains_key(r) {
            "fenced"
        } else {
            "not registered"
        };
        return Err(ControllerError::IneligibleReplica(format!(
            "{name}: replica {r} in the ISR {new_isr:?} is {why}."
        )));
    }
    for (r, epoch) in new_isr.iter().zip(&request.new_isr_broker_epochs) {
        let registered = image.brokers.get(r).map(|b| b.epoch);
        if *epoch >= 0 && !part.isr.contains(r) && registered != Some(*epoch) {
            return Err(ControllerError::IneligibleReplica(format!(
                "{name}: replica {r} fetched with broker epoch {epoch}, but its registration has epoch {registered:?}."
            )));
        }
    }
    let mut change = PartitionChange::new(part, online_election(config, image, topic));
    change.isr = new_isr.clone();
    Ok(match change.build(|r| image.replica_online(part, r)) {
        Some(next) => Planned::new(vec![partition_record(topic.id, &next)], next),
        None => Planned::new(Vec::new(), part.clone()),
    })
}

/// The partitions automatic leader rebalancing should move: led by another
/// broker than their preferred replica while that replica is in the ISR and
/// live (a preferred election would succeed). In topic name and partition
/// order.
pub fn imbalanced_partitions(image: &MetadataImage) -> Vec<TopicPartition> {
    partitions_where(image, |p| {
        p.preferred_leader().is_some_and(|preferred| {
            p.leader != preferred
                && p.isr.contains(&preferred)
                && image.replica_online(p, preferred)
        })
    })
}

/// Plans leader elections (Kafka's ElectLeaders); one result per partition,
/// the new leader on success. `partitions: None` considers every partition
/// and reports only those not answering
/// [`ControllerError::ElectionNotNeeded`].
///
/// Preferred: the first replica must be in the ISR and live, else
/// [`ControllerError::PreferredLeaderNotAvailable`]; already leading:
/// not needed. Unclean: only for a partition without a leader (else not
/// needed); a live in-sync replica is elected if there is one, else the
/// first live replica with the ISR set to just it; with no live replica
/// [`ControllerError::EligibleLeadersNotAvailable`]. Unknown partitions are
/// [`ControllerError::UnknownTopic`].
pub fn plan_elect_leaders(
    image: &MetadataImage,
    kind: ElectionType,
    partitions: Option<&[(String, i32)]>,
) -> Planned<Vec<PartitionResult<BrokerId>>> {
    let requested: Vec<(String, i32)> = match partitions {
        Some(list) => list.to_vec(),
        None => partitions_where(image, |_| true)
            .into_iter()
            .map(|tp| (tp.topic, tp.partition.get()))
            .collect(),
    };
    let mut scratch: Option<MetadataImage> = None;
    let mut records = Vec::new();
    let mut results = Vec::new();
    for (topic, index) in requested {
        let current = scratch.as_ref().unwrap_or(image);
        let result = elect_one(current, kind, &topic, index);
        let result = match result {
            Ok((record, leader)) => {
                let next = scratch.get_or_insert_with(|| image.clone());
                next.apply(&record);
                records.push(record);
                Ok(leader)
            }
            Err(ControllerError::ElectionNotNeeded) if partitions.is_none() => continue,
            Err(e) => Err(e),
        };
        results.push(PartitionResult {
            partition: TopicPartition {
                topic,
                partition: PartitionIndex(index),
            },
            result,
        });
    }
    Planned::new(records, results)
}

fn elect_one(
    image: &MetadataImage,
    kind: ElectionType,
    topic_name: &str,
    index: i32,
) -> Result<(MetadataRecord, BrokerId), ControllerError> {
    let topic = image
        .topic(topic_name)
        .ok_or(ControllerError::UnknownTopic)?;
    let part = image
        .partition(topic_name, PartitionIndex(index))
        .ok_or(ControllerError::UnknownTopic)?;
    let next = match kind {
        ElectionType::Preferred => {
            let preferred = part.preferred_leader().unwrap_or(NO_LEADER);
            if part.leader == preferred {
                return Err(ControllerError::ElectionNotNeeded);
            }
            if !part.isr.contains(&preferred) || !image.replica_online(part, preferred) {
                return Err(ControllerError::PreferredLeaderNotAvailable(format!(
                    "{topic_name}-{index}: the preferred leader {preferred} is not a live in-sync replica."
                )));
            }
            PartitionChange::new(part, Election::Preferred).build(|r| image.replica_online(part, r))
        }
        ElectionType::Unclean => {
            if part.has_leader() {
                return Err(ControllerError::ElectionNotNeeded);
            }
            PartitionChange::new(part, Election::Unclean).build(|r| image.replica_online(part, r))
        }
    };
    match next {
        Some(next) if next.has_leader() => {
            let leader = next.leader;
            Ok((partition_record(topic.id, &next), leader))
        }
        _ => Err(match kind {
            ElectionType::Preferred => ControllerError::PreferredLeaderNotAvailable(format!(
                "{topic_name}-{index}: the preferred leader could not be elected."
            )),
            ElectionType::Unclean => ControllerError::EligibleLeadersNotAvailable(format!(
                "{topic_name}-{index}: no replica is live."
            )),
        }),
    }
}

/// Plans starting (`Some(target)`) or cancelling (`None`) reassignments
/// (Kafka's AlterPartitionReassignments); one result per entry, the
/// records of all successful ones as one batch. Entries are planned in
/// order, each seeing the earlier ones.
///
/// Starting: the target must be non-empty, without duplicates and name
/// registered brokers ([`ControllerError::InvalidReplicaAssignment`]). The
/// replicas become the target followed by the current replicas not in it;
/// `adding` is the target minus the current replicas, `removing` the current
/// replicas minus the target. When the ISR already holds every target
/// replica (e.g. a reordering or a pure removal) the reassignment completes
/// at once. Cancelling ([`ControllerError::NoReassignmentInProgress`] when
/// there is none) reverts to the replicas and ISR without the ones being
/// added; if that empties the ISR the first remaining replica becomes its
/// only member, which needs unclean election enabled for the topic (else
/// [`ControllerError::InvalidReplicaAssignment`]).
pub fn plan_alter_reassignments(
    image: &MetadataImage,
    config: &StaticConfig,
    changes: &[(String, i32, Option<Vec<BrokerId>>)],
) -> Planned<Vec<PartitionResult>> {
    let mut scratch: Option<MetadataImage> = None;
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(changes.len());
    for (topic, index, target) in changes {
        let current = scratch.as_ref().unwrap_or(image);
        let result =
            reassign_one(current, config, topic, *index, target.as_deref()).map(|record| {
                if let Some(record) = record {
                    let next = scratch.get_or_insert_with(|| image.clone());
                    next.apply(&record);
                    records.push(record);
                }
            });
        results.push(PartitionResult {
            partition: TopicPartition {
                topic: topic.clone(),
                partition: PartitionIndex(*index),
            },
            result,
        });
    }
    Planned::new(records, results)
}

fn reassign_one(
    image: &MetadataImage,
    config: &StaticConfig,
    topic_name: &str,
    index: i32,
    target: Option<&[BrokerId]>,
) -> Result<Option<MetadataRecord>, ControllerError> {
    let topic = image
        .topic(topic_name)
        .ok_or(ControllerError::UnknownTopic)?;
    let part = image
        .partition(topic_name, PartitionIndex(index))
        .ok_or(ControllerError::UnknownTopic)?;
    let eligible = |r: BrokerId| image.replica_online(part, r);
    let next = match target {
        Some(target) => {
            validate_assignment(image, target)?;
            let removing = without(&part.replicas, target);
            let adding = without(target, &part.replicas);
            let mut change = PartitionChange::new(part, Election::Online);
            change.replicas = target
                .iter()
                .copied()
                .chain(removing.iter().copied())
                .collect();
            change.adding = adding;
            change.removing = removing;
            change.build(eligible)
        }
        None => {
            if !part.is_reassigning() {
                return Err(ControllerError::NoReassignmentInProgress);
            }
            let replicas = without(&part.replicas, &part.adding_replicas);
            let mut isr = without(&part.isr, &part.adding_replicas);
            let unclean = unclean_enabled(config, image, topic);
            if isr.is_empty() {
                let Some(&first) = replicas.first() else {
                    return Err(ControllerError::InvalidReplicaAssignment(format!(
                        "Unable to revert the reassignment of {topic_name}-{index}: every replica is being added."
                    )));
                };
                if !unclean {
                    return Err(ControllerError::InvalidReplicaAssignment(format!(
                        "Unable to revert the reassignment of {topic_name}-{index}: it would need an unclean leader election."
                    )));
                }
                isr = vec![first];
            }
            let election = if unclean {
                Election::Unclean
            } else {
                Election::Online
            };
            let mut change = PartitionChange::new(part, election);
            change.replicas = replicas;
            change.isr = isr;
            change.adding.clear();
            change.removing.clear();
            change.build(eligible)
        }
    };
    Ok(next.map(|next| partition_record(topic.id, &next)))
}

/// The ongoing reassignments of `image` (ListPartitionReassignments): of
/// every partition (`None`), or of the listed partitions of the listed
/// topics; unknown topics and partitions, and those not being reassigned,
/// are left out.
pub fn list_reassignments(
    image: &MetadataImage,
    filter: Option<&[(String, Vec<i32>)]>,
) -> Vec<OngoingReassignment> {
    let ongoing = |topic: &str, p: &PartitionImage| {
        p.is_reassigning().then(|| OngoingReassignment {
            partition: TopicPartition {
                topic: topic.to_string(),
                partition: p.index,
            },
            replicas: p.replicas.clone(),
            adding_replicas: p.adding_replicas.clone(),
            removing_replicas: p.removing_replicas.clone(),
        })
    };
    match filter {
        None => image
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().filter_map(|p| ongoing(&t.name, p)))
            .collect(),
        Some(list) => list
            .iter()
            .flat_map(|(topic, indexes)| {
                indexes.iter().filter_map(|i| {
                    image
                        .partition(topic, PartitionIndex(*i))
                        .and_then(|p| ongoing(topic, p))
                })
            })
            .collect(),
    }
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
            let planned = plan_register_broker(&image, &config(), &registration(b)).unwrap();
            apply(&mut image, &planned.records);
        }
        image
    }

    /// An unfenced registration of broker `id` on localhost:9092.
    fn registration(id: i32) -> BrokerRegistration {
        BrokerRegistration {
            id: BrokerId(id),
            host: "localhost".into(),
            port: 9092,
            incarnation: "first".into(),
            ..Default::default()
        }
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
                MetadataRecord::Partition { topic_id, .. } => {
                    let mut r = r.clone();
                    if let MetadataRecord::Partition { topic_id: id, .. } = &mut r {
                        *id = canon(topic_id);
                    }
                    r
                }
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
        let _ = plan_register_broker(&base, &cfg, &registration(9));
        let _ = plan_fence_broker(&base, &cfg, BrokerId(1));
        let _ = plan_unfence_broker(&base, &cfg, BrokerId(1), 1);
        let _ = plan_elect_leaders(&base, ElectionType::Preferred, None);
        let _ = plan_alter_reassignments(
            &base,
            &cfg,
            &[("existing".into(), 0, Some(vec![BrokerId(3), BrokerId(2)]))],
        );
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
        let same = plan_register_broker(&img, &config(), &registration(1)).unwrap();
        assert!(same.records.is_empty());
        assert_eq!(same.outcome, 1, "the current epoch");
        let moved = BrokerRegistration {
            port: 9093,
            ..registration(1)
        };
        let planned = plan_register_broker(&img, &config(), &moved).unwrap();
        assert_eq!(planned.records.len(), 1);
        assert_eq!(planned.outcome, 2, "a new registration gets the next epoch");
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

#[cfg(test)]
mod replication_tests {
    use super::*;
    use crate::record::Endpoint;

    /// An image plus the static config, changed only by applying plans.
    struct Cluster {
        image: MetadataImage,
        config: StaticConfig,
    }

    fn b(ids: &[i32]) -> Vec<BrokerId> {
        ids.iter().copied().map(BrokerId).collect()
    }

    fn tp(topic: &str, p: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition: PartitionIndex(p),
        }
    }

    impl Cluster {
        /// Unfenced brokers with the given ids and racks.
        fn new(brokers: &[(i32, Option<&str>)]) -> Cluster {
            let mut c = Cluster {
                image: MetadataImage::default(),
                config: StaticConfig::default(),
            };
            let init = plan_init_cluster(&c.image);
            c.apply(&init.records);
            for (id, rack) in brokers {
                c.register(*id, "first", rack.map(str::to_string), false);
            }
            c
        }

        fn brokers(n: i32) -> Cluster {
            let ids: Vec<(i32, Option<&str>)> = (1..=n).map(|i| (i, None)).collect();
            Cluster::new(&ids)
        }

        fn apply(&mut self, records: &[MetadataRecord]) {
            for r in records {
                self.image.apply(r);
            }
        }

        /// Applies a successful plan and returns its records and outcome.
        fn run<T>(
            &mut self,
            planned: Result<Planned<T>, ControllerError>,
        ) -> (Vec<MetadataRecord>, T) {
            let planned = planned.unwrap();
            self.apply(&planned.records);
            (planned.records, planned.outcome)
        }

        fn register(
            &mut self,
            id: i32,
            incarnation: &str,
            rack: Option<String>,
            fenced: bool,
        ) -> (Vec<MetadataRecord>, i64) {
            let reg = BrokerRegistration {
                id: BrokerId(id),
                host: format!("host{id}"),
                port: 9092,
                rack,
                listeners: Vec::new(),
                incarnation: incarnation.into(),
                fenced,
                ..BrokerRegistration::default()
            };
            let planned = plan_register_broker(&self.image, &self.config, &reg);
            self.run(planned)
        }

        fn create(&mut self, name: &str, partitions: i32, rf: i16) {
            let topic = NewTopic {
                name: name.into(),
                num_partitions: partitions,
                replication_factor: rf,
                ..Default::default()
            };
            let planned = plan_create_topic(&self.image, &self.config, &topic);
            self.run(planned);
        }

        fn create_manual(&mut self, name: &str, assignments: &[&[i32]]) {
            let topic = NewTopic {
                name: name.into(),
                num_partitions: -1,
                replication_factor: -1,
                assignments: assignments.iter().map(|a| b(a)).collect(),
                ..Default::default()
            };
            let planned = plan_create_topic(&self.image, &self.config, &topic);
            self.run(planned);
        }

        fn set_topic_config(&mut self, topic: &str, key: &str, value: &str) {
            let planned = plan_alter_topic_configs(
                &self.image,
                topic,
                &[(key.to_string(), Some(value.to_string()))],
            );
            self.run(planned);
        }

        fn part(&self, topic: &str, p: i32) -> PartitionImage {
            self.image
                .partition(topic, PartitionIndex(p))
                .cloned()
                .unwrap()
        }

        fn epoch(&self, id: i32) -> i64 {
            self.image.brokers[&BrokerId(id)].epoch
        }

        fn fenced(&self, id: i32) -> bool {
            self.image.brokers[&BrokerId(id)].fenced
        }

        fn fence(&mut self, id: i32) -> Vec<TopicPartition> {
            let planned = plan_fence_broker(&self.image, &self.config, BrokerId(id));
            self.run(planned).1
        }

        fn unfence(&mut self, id: i32) -> Vec<TopicPartition> {
            let epoch = self.epoch(id);
            let planned = plan_unfence_broker(&self.image, &self.config, BrokerId(id), epoch);
            self.run(planned).1
        }

        /// The AlterPartition the current leader of `topic`-`p` would send.
        fn isr_request(&self, topic: &str, p: i32, new_isr: &[i32]) -> AlterPartition {
            let part = self.part(topic, p);
            AlterPartition {
                topic_id: self.image.topic(topic).unwrap().id,
                partition: PartitionIndex(p),
                leader: part.leader,
                broker_epoch: Some(self.epoch(part.leader.get())),
                leader_epoch: part.leader_epoch,
                partition_epoch: part.partition_epoch,
                new_isr: b(new_isr),
                new_isr_broker_epochs: Vec::new(),
            }
        }

        fn alter_isr(&mut self, topic: &str, p: i32, new_isr: &[i32]) -> PartitionImage {
            let request = self.isr_request(topic, p, new_isr);
            let planned = plan_alter_partition(&self.image, &self.config, &request);
            self.run(planned).1
        }

        fn reassign(
            &mut self,
            topic: &str,
            p: i32,
            target: Option<&[i32]>,
        ) -> Result<(), ControllerError> {
            let planned = plan_alter_reassignments(
                &self.image,
                &self.config,
                &[(topic.into(), p, target.map(b))],
            );
            self.apply(&planned.records);
            let mut results = planned.outcome;
            assert_eq!(results.len(), 1);
            results.remove(0).result
        }

        fn elect(
            &mut self,
            kind: ElectionType,
            partitions: Option<&[(String, i32)]>,
        ) -> Vec<PartitionResult<BrokerId>> {
            let planned = plan_elect_leaders(&self.image, kind, partitions);
            self.apply(&planned.records);
            planned.outcome
        }
    }

    #[test]
    fn fencing_a_leader_moves_leadership_to_the_next_in_sync_replica() {
        let mut c = Cluster::brokers(3);
        c.create_manual("t", &[&[1, 2, 3], &[2, 3, 1]]);
        let planned = plan_fence_broker(&c.image, &c.config, BrokerId(1)).unwrap();
        assert!(matches!(
            planned.records.last(),
            Some(MetadataRecord::FenceBroker {
                broker_id: BrokerId(1),
                epoch: 1
            })
        ));
        let (_, offline) = c.run(Ok(planned));
        assert!(offline.is_empty());
        assert!(c.fenced(1));
        assert_eq!(c.image.live_brokers().count(), 2);

        let led = c.part("t", 0);
        assert_eq!(
            led.leader,
            BrokerId(2),
            "first live in-sync replica in replica order"
        );
        assert_eq!(led.isr, b(&[2, 3]));
        assert_eq!(
            led.replicas,
            b(&[1, 2, 3]),
            "replicas never change on fencing"
        );
        assert_eq!(led.leader_epoch, LeaderEpoch(1));
        assert_eq!(led.partition_epoch, 1);

        // A follower only leaves the ISR: same leader, same leader epoch.
        let followed = c.part("t", 1);
        assert_eq!(followed.leader, BrokerId(2));
        assert_eq!(followed.isr, b(&[2, 3]));
        assert_eq!(followed.leader_epoch, LeaderEpoch(0));
        assert_eq!(followed.partition_epoch, 1);

        // Fencing again changes nothing.
        let again = plan_fence_broker(&c.image, &c.config, BrokerId(1)).unwrap();
        assert!(again.records.is_empty());
        assert!(matches!(
            plan_fence_broker(&c.image, &c.config, BrokerId(9)),
            Err(ControllerError::BrokerIdNotRegistered(BrokerId(9)))
        ));
    }

    #[test]
    fn the_last_in_sync_replica_stays_and_leads_again_once_unfenced() {
        let mut c = Cluster::brokers(2);
        c.create_manual("t", &[&[1, 2]]);
        c.fence(2);
        assert_eq!(c.part("t", 0).isr, b(&[1]));
        let offline = c.fence(1);
        assert_eq!(offline, vec![tp("t", 0)]);
        let p = c.part("t", 0);
        assert_eq!(p.leader, NO_LEADER);
        assert_eq!(p.isr, b(&[1]), "the last ISR member is kept");
        assert_eq!(p.leader_epoch, LeaderEpoch(1));

        // Broker 2 coming back is not in sync: no clean election.
        assert!(c.unfence(2).is_empty());
        assert_eq!(c.part("t", 0).leader, NO_LEADER);

        let elected = c.unfence(1);
        assert_eq!(elected, vec![tp("t", 0)]);
        let p = c.part("t", 0);
        assert_eq!(p.leader, BrokerId(1));
        assert_eq!(p.isr, b(&[1]));
        assert_eq!(p.leader_epoch, LeaderEpoch(2));
        assert!(!c.fenced(1));
    }

    #[test]
    fn unclean_election_follows_the_topic_then_broker_config() {
        // Off (Kafka's default): fencing the only in-sync replica leaves the
        // partition offline although replica 2 is live.
        let mut c = Cluster::brokers(2);
        c.create_manual("t", &[&[1, 2]]);
        c.alter_isr("t", 0, &[1]);
        c.fence(1);
        assert_eq!(c.part("t", 0).leader, NO_LEADER);

        // Enabled on the topic: unfencing any broker runs the unclean
        // election, which takes the first live replica.
        c.set_topic_config("t", "unclean.leader.election.enable", "true");
        c.fence(2);
        let elected = c.unfence(2);
        assert_eq!(elected, vec![tp("t", 0)]);
        let p = c.part("t", 0);
        assert_eq!(p.leader, BrokerId(2));
        assert_eq!(p.isr, b(&[2]), "an unclean leader is the whole ISR");

        // Enabled as the broker default: fencing itself elects uncleanly.
        let mut c = Cluster::brokers(2);
        c.config
            .set("unclean.leader.election.enable", "true")
            .unwrap();
        c.create_manual("u", &[&[1, 2]]);
        c.alter_isr("u", 0, &[1]);
        assert!(c.fence(1).is_empty());
        let p = c.part("u", 0);
        assert_eq!((p.leader, p.isr), (BrokerId(2), b(&[2])));

        // A topic override wins over the broker default.
        c.create_manual("v", &[&[2, 1]]);
        c.set_topic_config("v", "unclean.leader.election.enable", "false");
        c.unfence(1);
        c.alter_isr("v", 0, &[2]);
        assert_eq!(c.fence(2), vec![tp("v", 0)]);
        assert_eq!(c.part("v", 0).leader, NO_LEADER);
    }

    #[test]
    fn unfencing_checks_the_broker_epoch() {
        let mut c = Cluster::brokers(1);
        c.fence(1);
        assert!(matches!(
            plan_unfence_broker(&c.image, &c.config, BrokerId(1), 7),
            Err(ControllerError::StaleBrokerEpoch(_))
        ));
        assert!(matches!(
            plan_unfence_broker(&c.image, &c.config, BrokerId(5), 1),
            Err(ControllerError::BrokerIdNotRegistered(_))
        ));
        let planned = plan_unfence_broker(&c.image, &c.config, BrokerId(1), 1).unwrap();
        assert_eq!(
            planned.records,
            vec![MetadataRecord::UnfenceBroker {
                broker_id: BrokerId(1),
                epoch: 1
            }]
        );
    }

    #[test]
    fn a_restart_registers_a_new_epoch_and_moves_leadership_away() {
        let mut c = Cluster::brokers(3);
        c.create_manual("t", &[&[1, 2, 3]]);
        // The same process registering again changes nothing.
        let (records, epoch) = c.register(1, "first", None, true);
        assert!(records.is_empty());
        assert_eq!(epoch, 1);

        let (records, epoch) = c.register(1, "second", None, true);
        assert_eq!(epoch, 2);
        assert!(matches!(
            &records[0],
            MetadataRecord::RegisterBroker {
                epoch: 2,
                fenced: true,
                ..
            }
        ));
        assert_eq!(records.len(), 2, "registration + one partition change");
        assert!(c.fenced(1));
        let p = c.part("t", 0);
        assert_eq!(p.leader, BrokerId(2));
        assert_eq!(p.isr, b(&[2, 3]));

        // Unfencing needs the new epoch.
        assert!(matches!(
            plan_unfence_broker(&c.image, &c.config, BrokerId(1), 1),
            Err(ControllerError::StaleBrokerEpoch(_))
        ));
        assert!(c.unfence(1).is_empty(), "nothing leaderless to take");
        assert!(!c.fenced(1));
    }

    #[test]
    fn a_single_node_restart_unfenced_leads_its_partitions_again() {
        let mut c = Cluster::brokers(1);
        c.create("t", 2, 1);
        let planned = plan_controlled_shutdown(&c.image, &c.config, BrokerId(1));
        let (_, offline) = c.run(planned);
        assert_eq!(offline, vec![tp("t", 0), tp("t", 1)]);
        assert!(c.fenced(1));
        assert_eq!(c.part("t", 1).leader, NO_LEADER);

        let (records, epoch) = c.register(1, "second", None, false);
        assert_eq!(epoch, 2);
        assert_eq!(records.len(), 3, "registration + two elections");
        assert!(!c.fenced(1));
        for p in 0..2 {
            let p = c.part("t", p);
            assert_eq!((p.leader, p.leader_epoch), (BrokerId(1), LeaderEpoch(2)));
        }
    }

    #[test]
    fn controlled_shutdown_moves_every_leadership_it_can() {
        let mut c = Cluster::brokers(3);
        c.create("t", 3, 3);
        c.create_manual("solo", &[&[1]]);
        let planned = plan_controlled_shutdown(&c.image, &c.config, BrokerId(1));
        let (_, offline) = c.run(planned);
        assert_eq!(offline, vec![tp("solo", 0)]);
        assert!(c.fenced(1));
        for p in 0..3 {
            let p = c.part("t", p);
            assert_ne!(p.leader, BrokerId(1));
            assert!(!p.isr.contains(&BrokerId(1)));
        }
    }

    #[test]
    fn alter_partition_refuses_bad_requests_with_kafkas_errors() {
        let mut c = Cluster::brokers(4);
        c.create_manual("t", &[&[1, 2, 3]]);
        c.fence(4);
        let ok = c.isr_request("t", 0, &[1, 2]);
        let check = |c: &Cluster, request: AlterPartition| {
            plan_alter_partition(&c.image, &c.config, &request).map(|p| p.outcome)
        };
        type Expected = fn(&ControllerError) -> bool;
        let cases: Vec<(AlterPartition, Expected)> = vec![
            (
                AlterPartition {
                    topic_id: TopicId(uuid::Uuid::from_u128(99)),
                    ..ok.clone()
                },
                |e| matches!(e, ControllerError::UnknownTopic),
            ),
            (
                AlterPartition {
                    partition: PartitionIndex(5),
                    ..ok.clone()
                },
                |e| matches!(e, ControllerError::UnknownTopic),
            ),
            (
                AlterPartition {
                    broker_epoch: Some(9),
                    ..ok.clone()
                },
                |e| matches!(e, ControllerError::StaleBrokerEpoch(_)),
            ),
            (
                AlterPartition {
                    leader_epoch: LeaderEpoch(1),
                    ..ok.clone()
                },
                |e| matches!(e, ControllerError::NotController(_)),
            ),
            (
                AlterPartition {
                    leader_epoch: LeaderEpoch(-1),
                    ..ok.clone()
                },
                |e| matches!(e, ControllerError::FencedLeaderEpoch(_)),
            ),
            (
                AlterPartition {
                    leader: BrokerId(2),
                    broker_epoch: None,
                    ..ok.clone()
                },
                |e| matches!(e, ControllerError::NotLeaderOrFollower(_)),
            ),
            (
                AlterPartition {
                    new_isr: b(&[1, 5]),
                    ..ok.clone()
                },
                |e| matches!(e, ControllerError::InvalidRequest(_)),
            ),
            (
                AlterPartition {
                    new_isr: b(&[1, 1]),
                    ..ok.clone()
                },
                |e| matches!(e, ControllerError::InvalidRequest(_)),
            ),
            (
                AlterPartition {
                    new_isr: b(&[2, 3]),
                    ..ok.clone()
                },
                |e| matches!(e, ControllerError::InvalidRequest(_)),
            ),
        ];
        for (request, expected) in cases {
            let err = check(&c, request.clone()).unwrap_err();
            assert!(expected(&err), "{request:?}: {err:?}");
        }

        // A stale partition epoch (after another change) is an invalid version.
        let shrunk = c.alter_isr("t", 0, &[1, 2]);
        assert_eq!(shrunk.isr, b(&[1, 2]));
        assert_eq!(shrunk.partition_epoch, 1);
        assert_eq!(
            shrunk.leader_epoch,
            LeaderEpoch(0),
            "a shrink keeps the leader epoch"
        );
        assert!(matches!(
            check(&c, ok.clone()),
            Err(ControllerError::InvalidUpdateVersion(_))
        ));

        // Adding a fenced replica is refused.
        c.reassign("t", 0, Some(&[1, 2, 3, 4])).unwrap();
        let fenced_member = c.isr_request("t", 0, &[1, 2, 4]);
        assert!(matches!(
            check(&c, fenced_member),
            Err(ControllerError::IneligibleReplica(_))
        ));

        // KIP-903: a replica added with the broker epoch of an earlier
        // registration (its fetch was sent before it restarted) is refused;
        // with its current epoch it is accepted.
        c.unfence(4);
        let mut stale = c.isr_request("t", 0, &[1, 2, 4]);
        stale.new_isr_broker_epochs = vec![-1, -1, c.epoch(4) - 1];
        assert!(matches!(
            check(&c, stale.clone()),
            Err(ControllerError::IneligibleReplica(_))
        ));
        stale.new_isr_broker_epochs = vec![-1, -1, c.epoch(4)];
        assert_eq!(check(&c, stale).unwrap().isr, b(&[1, 2, 4]));
        c.fence(4);

        // Proposing the current ISR changes nothing.
        let same = c.isr_request("t", 0, &[1, 2]);
        let planned = plan_alter_partition(&c.image, &c.config, &same).unwrap();
        assert!(planned.records.is_empty());
        assert_eq!(planned.outcome, c.part("t", 0));
    }

    #[test]
    fn an_isr_expansion_completes_a_reassignment_and_moves_a_removed_leader() {
        let mut c = Cluster::brokers(4);
        c.create_manual("t", &[&[1, 2, 3]]);
        c.reassign("t", 0, Some(&[2, 3, 4])).unwrap();
        let p = c.part("t", 0);
        assert_eq!(
            p.replicas,
            b(&[2, 3, 4, 1]),
            "target, then the replicas being removed"
        );
        assert_eq!(p.adding_replicas, b(&[4]));
        assert_eq!(p.removing_replicas, b(&[1]));
        assert_eq!(p.target_replicas(), b(&[2, 3, 4]));
        assert_eq!((p.leader, p.isr.clone()), (BrokerId(1), b(&[1, 2, 3])));
        assert_eq!(p.leader_epoch, LeaderEpoch(0), "nothing removed yet");
        assert_eq!(
            c.image
                .partition("t", PartitionIndex(0))
                .map(|p| p.partition_epoch),
            Some(1)
        );
        let listed = list_reassignments(&c.image, None);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].adding_replicas, b(&[4]));
        assert_eq!(
            list_reassignments(&c.image, Some(&[("t".into(), vec![0, 7])])),
            listed
        );

        // The leader adds the new replica to the ISR: the reassignment
        // completes and leadership leaves the removed replica 1.
        let done = c.alter_isr("t", 0, &[1, 2, 3, 4]);
        assert_eq!(done.replicas, b(&[2, 3, 4]));
        assert_eq!(done.isr, b(&[2, 3, 4]));
        assert_eq!(done.leader, BrokerId(2), "first target replica in the ISR");
        assert_eq!(done.leader_epoch, LeaderEpoch(1));
        assert_eq!(done.partition_epoch, 2);
        assert!(done.adding_replicas.is_empty() && done.removing_replicas.is_empty());
        assert!(list_reassignments(&c.image, None).is_empty());
    }

    #[test]
    fn reassignments_without_new_replicas_complete_at_once() {
        let mut c = Cluster::brokers(3);
        c.create_manual("t", &[&[1, 2, 3], &[1, 2, 3]]);
        // A reordering keeps the leader and its epoch.
        c.reassign("t", 0, Some(&[3, 2, 1])).unwrap();
        let p = c.part("t", 0);
        assert_eq!((p.replicas.clone(), p.leader), (b(&[3, 2, 1]), BrokerId(1)));
        assert_eq!(p.leader_epoch, LeaderEpoch(0));
        assert!(!p.is_reassigning());
        // A removal of the leader re-elects and bumps the leader epoch.
        c.reassign("t", 1, Some(&[3, 2])).unwrap();
        let p = c.part("t", 1);
        assert_eq!(p.replicas, b(&[3, 2]));
        assert_eq!(p.isr, b(&[2, 3]));
        assert_eq!(p.leader, BrokerId(3), "target order decides");
        assert_eq!(p.leader_epoch, LeaderEpoch(1));
        assert!(!p.is_reassigning());
        // The same target again: nothing to do.
        let again =
            plan_alter_reassignments(&c.image, &c.config, &[("t".into(), 1, Some(b(&[3, 2])))]);
        assert!(again.records.is_empty());
        assert!(again.outcome[0].result.is_ok());
    }

    #[test]
    fn reassignments_validate_and_cancel() {
        let mut c = Cluster::brokers(4);
        c.create_manual("t", &[&[1, 2]]);
        for bad in [&[][..], &[1, 1][..], &[1, 9][..]] {
            assert!(
                matches!(
                    c.reassign("t", 0, Some(bad)),
                    Err(ControllerError::InvalidReplicaAssignment(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            c.reassign("t", 3, Some(&[1])),
            Err(ControllerError::UnknownTopic)
        ));
        assert!(matches!(
            c.reassign("nope", 0, Some(&[1])),
            Err(ControllerError::UnknownTopic)
        ));
        assert!(matches!(
            c.reassign("t", 0, None),
            Err(ControllerError::NoReassignmentInProgress)
        ));

        c.reassign("t", 0, Some(&[3, 4])).unwrap();
        let p = c.part("t", 0);
        assert_eq!(p.replicas, b(&[3, 4, 1, 2]));
        c.reassign("t", 0, None).unwrap();
        let p = c.part("t", 0);
        assert_eq!(p.replicas, b(&[1, 2]));
        assert_eq!(p.isr, b(&[1, 2]));
        assert_eq!(p.leader, BrokerId(1));
        assert!(!p.is_reassigning());
        assert_eq!(p.partition_epoch, 2);
        assert_eq!(
            p.leader_epoch,
            LeaderEpoch(1),
            "the adding replicas were removed"
        );
    }

    #[test]
    fn several_reassignments_commit_together_and_report_each() {
        let c = Cluster::brokers(3);
        let mut c = c;
        c.create_manual("t", &[&[1], &[2]]);
        let planned = plan_alter_reassignments(
            &c.image,
            &c.config,
            &[
                ("t".into(), 0, Some(b(&[2]))),
                ("t".into(), 1, Some(b(&[7]))),
                ("t".into(), 1, Some(b(&[2, 3]))),
            ],
        );
        assert_eq!(planned.records.len(), 2);
        assert!(planned.outcome[0].result.is_ok());
        assert!(planned.outcome[1].result.is_err());
        assert!(planned.outcome[2].result.is_ok());
        assert_eq!(planned.outcome[1].partition, tp("t", 1));
    }

    #[test]
    fn preferred_elections_need_the_preferred_replica_in_sync() {
        let mut c = Cluster::brokers(3);
        c.create_manual("t", &[&[1, 2, 3], &[2, 3, 1]]);
        assert!(imbalanced_partitions(&c.image).is_empty());
        c.fence(1);
        c.unfence(1);
        // Broker 1 is back but not yet in sync.
        assert_eq!(c.part("t", 0).leader, BrokerId(2));
        assert!(
            imbalanced_partitions(&c.image).is_empty(),
            "not actionable yet"
        );
        let results = c.elect(
            ElectionType::Preferred,
            Some(&[("t".into(), 0), ("t".into(), 1)]),
        );
        assert!(matches!(
            results[0].result,
            Err(ControllerError::PreferredLeaderNotAvailable(_))
        ));
        assert!(matches!(
            results[1].result,
            Err(ControllerError::ElectionNotNeeded)
        ));

        // The leader adds 1 back to the ISR: now the election moves leadership.
        c.alter_isr("t", 0, &[2, 3, 1]);
        assert_eq!(imbalanced_partitions(&c.image), vec![tp("t", 0)]);
        let results = c.elect(ElectionType::Preferred, None);
        assert_eq!(results.len(), 1, "only partitions the election concerns");
        assert_eq!(results[0].partition, tp("t", 0));
        assert_eq!(results[0].result.as_ref().ok(), Some(&BrokerId(1)));
        let p = c.part("t", 0);
        assert_eq!(p.leader, BrokerId(1));
        assert_eq!(p.leader_epoch, LeaderEpoch(2));
        assert!(imbalanced_partitions(&c.image).is_empty());
        assert!(c.elect(ElectionType::Preferred, None).is_empty());

        let unknown = c.elect(ElectionType::Preferred, Some(&[("t".into(), 9)]));
        assert!(matches!(
            unknown[0].result,
            Err(ControllerError::UnknownTopic)
        ));
    }

    #[test]
    fn unclean_elections_take_a_live_out_of_sync_replica() {
        let mut c = Cluster::brokers(3);
        c.create_manual("t", &[&[1, 2], &[3]]);
        c.alter_isr("t", 0, &[1]);
        c.fence(1);
        c.fence(3);
        assert_eq!(c.part("t", 0).leader, NO_LEADER);

        let results = c.elect(ElectionType::Unclean, None);
        assert_eq!(results.len(), 2, "only leaderless partitions");
        assert_eq!(results[0].result.as_ref().ok(), Some(&BrokerId(2)));
        assert!(matches!(
            results[1].result,
            Err(ControllerError::EligibleLeadersNotAvailable(_))
        ));
        let p = c.part("t", 0);
        assert_eq!((p.leader, p.isr.clone()), (BrokerId(2), b(&[2])));
        assert_eq!(p.leader_epoch, LeaderEpoch(2));

        let led = c.elect(ElectionType::Unclean, Some(&[("t".into(), 0)]));
        assert!(matches!(
            led[0].result,
            Err(ControllerError::ElectionNotNeeded)
        ));
    }

    #[test]
    fn rack_aware_placement_spreads_replicas_over_racks() {
        let mut c = Cluster::new(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        c.create("t", 6, 3);
        let rack = |id: BrokerId| c.image.brokers[&id].rack.clone();
        let mut leaders = BTreeSet::new();
        for p in 0..6 {
            let p = c.part("t", p);
            let racks: BTreeSet<_> = p.replicas.iter().map(|r| rack(*r)).collect();
            assert_eq!(racks.len(), 3, "{:?} on three racks", p.replicas);
            assert_eq!(p.isr, p.replicas);
            assert_eq!(p.leader, p.replicas[0]);
            leaders.insert(p.leader);
        }
        assert_eq!(leaders.len(), 6, "every broker leads one partition");

        // Uneven racks: every partition still spans both.
        let mut c = Cluster::new(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("a")),
            (4, Some("b")),
        ]);
        c.create("u", 8, 2);
        for p in 0..8 {
            let p = c.part("u", p);
            let racks: BTreeSet<_> = p
                .replicas
                .iter()
                .map(|r| c.image.brokers[r].rack.clone())
                .collect();
            assert_eq!(racks.len(), 2, "{:?}", p.replicas);
        }
    }

    #[test]
    fn placement_leaves_out_fenced_brokers() {
        let mut c = Cluster::brokers(3);
        c.fence(3);
        let too_many = NewTopic {
            name: "t".into(),
            num_partitions: 1,
            replication_factor: 3,
            ..Default::default()
        };
        assert!(matches!(
            plan_create_topic(&c.image, &c.config, &too_many),
            Err(ControllerError::InvalidReplicationFactor(_))
        ));
        c.create("t", 4, 2);
        c.create_partitions_ok("t", 8);
        for p in 0..8 {
            assert!(!c.part("t", p).replicas.contains(&BrokerId(3)));
        }
        // A manual assignment may name a fenced broker, which starts out of sync.
        c.create_manual("m", &[&[3, 1]]);
        let p = c.part("m", 0);
        assert_eq!((p.leader, p.isr), (BrokerId(1), b(&[1])));
        let all_fenced = NewTopic {
            name: "f".into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: vec![b(&[3])],
            ..Default::default()
        };
        assert!(matches!(
            plan_create_topic(&c.image, &c.config, &all_fenced),
            Err(ControllerError::InvalidReplicaAssignment(_))
        ));
    }

    impl Cluster {
        fn create_partitions_ok(&mut self, topic: &str, total: i32) {
            let planned = plan_create_partitions(&self.image, topic, total, None);
            self.run(planned);
        }
    }

    #[test]
    fn listeners_are_found_by_name_with_the_plain_endpoint_as_fallback() {
        let mut c = Cluster::brokers(1);
        let info = &c.image.brokers[&BrokerId(1)];
        let any = info.endpoint("REPLICATION").unwrap();
        assert_eq!((any.host.as_str(), any.port), ("host1", 9092));

        let reg = BrokerRegistration {
            id: BrokerId(1),
            host: "host1".into(),
            port: 9092,
            listeners: vec![Endpoint {
                name: "REPLICATION".into(),
                host: "10.0.0.1".into(),
                port: 9093,
            }],
            incarnation: "first".into(),
            ..Default::default()
        };
        let planned = plan_register_broker(&c.image, &c.config, &reg);
        let (records, epoch) = c.run(planned);
        assert_eq!(records.len(), 1, "changed listeners re-register");
        assert_eq!(epoch, 2);
        let info = &c.image.brokers[&BrokerId(1)];
        assert_eq!(info.endpoint("REPLICATION").unwrap().port, 9093);
        assert!(info.endpoint("PLAINTEXT").is_none());
    }

    /// Registers broker `id` again (same incarnation) with directories
    /// 1 and 2 of its own and the given ones of them cordoned.
    fn register_dirs(c: &mut Cluster, id: i32, cordoned: &[u128]) -> (Vec<MetadataRecord>, i64) {
        let dir = |n: u128| DirectoryId(uuid::Uuid::from_u128(u128::from(id as u32) * 10 + n));
        let reg = BrokerRegistration {
            id: BrokerId(id),
            host: format!("host{id}"),
            port: 9092,
            incarnation: "first".into(),
            log_dirs: vec![dir(1), dir(2)],
            cordoned_log_dirs: cordoned.iter().map(|n| dir(*n)).collect(),
            ..Default::default()
        };
        let planned = plan_register_broker(&c.image, &c.config, &reg);
        c.run(planned)
    }

    #[test]
    fn placement_skips_brokers_whose_every_log_dir_is_cordoned() {
        let mut c = Cluster::brokers(3);
        register_dirs(&mut c, 1, &[]);
        register_dirs(&mut c, 2, &[1]);
        let (_, epoch) = register_dirs(&mut c, 3, &[]);
        // Cordoning both directories of broker 3 is a change at the same epoch.
        let (records, same) = register_dirs(&mut c, 3, &[2, 1]);
        assert_eq!(same, epoch);
        assert!(matches!(
            records.as_slice(),
            [MetadataRecord::BrokerRegistrationChange { .. }]
        ));
        let (records, _) = register_dirs(&mut c, 3, &[1, 2]);
        assert!(records.is_empty(), "the same set again changes nothing");

        c.create("t", 6, 2);
        c.create_partitions_ok("t", 9);
        for p in 0..9 {
            let replicas = c.part("t", p).replicas;
            assert!(!replicas.contains(&BrokerId(3)), "{p}: {replicas:?}");
        }
        // Broker 2 has one open directory, so it still takes replicas.
        assert!(c.part("t", 0).replicas.contains(&BrokerId(2)));
        let rf3 = NewTopic {
            name: "three".into(),
            num_partitions: 1,
            replication_factor: 3,
            ..Default::default()
        };
        let Err(ControllerError::InvalidReplicationFactor(msg)) =
            plan_create_topic(&c.image, &c.config, &rf3)
        else {
            panic!("rf 3 with one broker cordoned must fail");
        };
        assert!(msg.contains("cordoned"), "{msg}");
        // A manual assignment may still name the cordoned broker.
        c.create_manual("m", &[&[3, 1]]);

        // Uncordoning makes the broker eligible again.
        register_dirs(&mut c, 3, &[2]);
        assert!(plan_create_topic(&c.image, &c.config, &rf3).is_ok());
    }

    #[test]
    fn with_every_broker_cordoned_create_topics_fails_with_invalid_replication_factor() {
        let mut c = Cluster::brokers(2);
        register_dirs(&mut c, 1, &[1, 2]);
        register_dirs(&mut c, 2, &[1, 2]);
        let one = NewTopic {
            name: "t".into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        };
        assert!(matches!(
            plan_create_topic(&c.image, &c.config, &one),
            Err(ControllerError::InvalidReplicationFactor(_))
        ));
    }
}
