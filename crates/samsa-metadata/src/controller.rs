//! The controller: commits planned changes through the quorum and owns the
//! apply side, the published image.
//!
//! Two halves:
//!
//! * **Apply.** The image changes only through [`Controller::apply`], one
//!   committed [`Step`] at a time (a batch with its log index, or a reset to a
//!   snapshot image). Each step publishes a new `Arc<MetadataImage>` together
//!   with the index of the last batch it reflects ([`Controller::last_batch`]).
//!   Steps at or below that index are ignored, so the same batch may be handed
//!   in both by the commit path and by a committed stream.
//! * **Commit.** An admin operation is planned (see [`crate::plan`]) against the
//!   published image, committed through the [`MetadataQuorum`] fenced on the
//!   batch that image was built up to, and the committed batch is applied. With
//!   [`crate::quorum::LocalQuorum`] this all happens synchronously in the
//!   caller; the public admin methods are thin wrappers over plan → commit →
//!   apply that read their answer from the new image.
//!
//! Concurrency: one writer at a time (a mutex around the quorum, held from
//! planning to applying); readers take the published `Arc<MetadataImage>` and
//! never block on it for longer than an `Arc` clone.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use samsa_model::{BrokerId, DirectoryId, LeaderEpoch, PartitionIndex, TopicId, TopicPartition};

use crate::config::StaticConfig;
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::plan::{self, Planned};
use crate::quorum::{MetadataQuorum, QuorumError};
use crate::record::{Endpoint, MetadataRecord};

pub use crate::plan::{validate_topic_name, TOPIC_NAME_CHARS_MAX, TOPIC_PARTITIONS_MAX};

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
    /// The broker id has no registration (BROKER_ID_NOT_REGISTERED).
    #[error("Broker {0} is not registered.")]
    BrokerIdNotRegistered(BrokerId),
    /// The request names a broker epoch other than the registered one: it
    /// comes from an earlier incarnation of the broker (STALE_BROKER_EPOCH).
    #[error("{0}")]
    StaleBrokerEpoch(String),
    /// The request's leader epoch is older than the partition's
    /// (FENCED_LEADER_EPOCH).
    #[error("{0}")]
    FencedLeaderEpoch(String),
    /// The requesting broker does not lead the partition
    /// (NOT_LEADER_OR_FOLLOWER).
    #[error("{0}")]
    NotLeaderOrFollower(String),
    /// The request's partition epoch is older than the partition's: it was
    /// planned against a state that changed since (INVALID_UPDATE_VERSION).
    #[error("{0}")]
    InvalidUpdateVersion(String),
    /// A proposed ISR member is not registered or is fenced
    /// (INELIGIBLE_REPLICA).
    #[error("{0}")]
    IneligibleReplica(String),
    /// The request is ahead of this controller's image (a newer leader or
    /// partition epoch than it knows): retry once it caught up
    /// (NOT_CONTROLLER, as Kafka answers).
    #[error("{0}")]
    NotController(String),
    /// The partition already has the leader the election would give it
    /// (ELECTION_NOT_NEEDED).
    #[error("Leader election not needed for this partition.")]
    ElectionNotNeeded,
    /// The preferred replica is not in the ISR or not live
    /// (PREFERRED_LEADER_NOT_AVAILABLE).
    #[error("{0}")]
    PreferredLeaderNotAvailable(String),
    /// No replica could be elected (ELIGIBLE_LEADERS_NOT_AVAILABLE).
    #[error("{0}")]
    EligibleLeadersNotAvailable(String),
    /// Cancelling a reassignment of a partition that has none
    /// (NO_REASSIGNMENT_IN_PROGRESS).
    #[error("No partition reassignment is in progress for this partition.")]
    NoReassignmentInProgress,
    #[error("metadata log: {0}")]
    Quorum(#[from] QuorumError),
}

/// How many times a change is planned and committed before a fenced commit
/// is reported.
pub const SUBMIT_TRIES_MAX: u32 = 3;

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

/// A broker's registration (the parts of Kafka's BrokerRegistrationRequest
/// samsa uses).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: BrokerId,
    /// The endpoint clients are given.
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Every named listener; may be empty (then `host`/`port` serve all).
    pub listeners: Vec<Endpoint>,
    /// An id the broker process picked at start-up (e.g. a random UUID): the
    /// same value again means a retry of the same process, a new one a
    /// restart.
    pub incarnation: String,
    /// Register fenced (a replicated cluster: the broker is unfenced once it
    /// caught up with the metadata log), or unfenced at once (single node).
    pub fenced: bool,
    /// The ids of the broker's log directories, in `log.dirs` order (KIP-858).
    pub log_dirs: Vec<DirectoryId>,
    /// The subset of `log_dirs` in `cordoned.log.dirs` (KIP-1066). A
    /// registration differing from the current one only here is a cordoning
    /// change: it keeps the broker epoch.
    pub cordoned_log_dirs: Vec<DirectoryId>,
}

/// An ISR change proposed by a partition's leader (one partition of Kafka's
/// AlterPartition request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartition {
    pub topic_id: TopicId,
    pub partition: PartitionIndex,
    /// The requesting broker, which must be the partition's leader.
    pub leader: BrokerId,
    /// The requester's broker epoch; `None`: not checked.
    pub broker_epoch: Option<i64>,
    /// The leader epoch and partition epoch the leader's view is at.
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    /// The proposed ISR: replicas of the partition, including the leader.
    pub new_isr: Vec<BrokerId>,
    /// KIP-903: for each member of `new_isr` (same order), the broker epoch
    /// its fetches carried; -1 or absent = not checked. A member being added
    /// whose broker has registered again since (a restart, possibly with a
    /// lost log) is ineligible.
    pub new_isr_broker_epochs: Vec<i64>,
}

/// Kafka's ElectLeaders election types.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the preferred (first) replica when it is in sync
    /// and live.
    Preferred,
    /// Give a leaderless partition whose in-sync replicas are all down a
    /// leader from the live out-of-sync replicas (may lose data).
    Unclean,
}

/// The answer for one partition of a multi-partition request.
#[derive(Debug)]
pub struct PartitionResult<T = ()> {
    pub partition: TopicPartition,
    pub result: Result<T, ControllerError>,
}

/// One ongoing reassignment (ListPartitionReassignments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub partition: TopicPartition,
    /// All replicas: the target ones, then the ones being removed.
    pub replicas: Vec<BrokerId>,
    pub adding_replicas: Vec<BrokerId>,
    pub removing_replicas: Vec<BrokerId>,
}

/// One committed step for [`Controller::apply`].
#[derive(Clone, Debug)]
pub enum Step {
    /// A committed batch with its log index, applied after everything before.
    Batch {
        index: u64,
        records: Vec<MetadataRecord>,
    },
    /// Replace the image (a snapshot, or a log replayed at startup) that
    /// reflects every batch up to `last_batch`.
    Reset {
        /// Boxed: an image is far larger than a batch step.
        image: Box<MetadataImage>,
        last_batch: Option<u64>,
    },
}

/// The published image and the last committed batch it reflects.
#[derive(Clone, Debug, Default)]
struct Published {
    image: Arc<MetadataImage>,
    last_batch: Option<u64>,
}

/// The metadata controller of this node.
pub struct Controller {
    /// The write path; held from planning until the batch is applied.
    quorum: Mutex<Box<dyn MetadataQuorum>>,
    published: RwLock<Published>,
    config: Arc<StaticConfig>,
}

impl Controller {
    /// A controller over `quorum` with an empty image; feed it with
    /// [`Controller::apply`].
    pub fn new(quorum: Box<dyn MetadataQuorum>, config: Arc<StaticConfig>) -> Controller {
        Controller {
            quorum: Mutex::new(quorum),
            published: RwLock::new(Published::default()),
            config,
        }
    }

    /// Builds the image from `committed`, the records `quorum` already holds (up
    /// to its [`MetadataQuorum::last_batch`]), and, for a brand new log, commits
    /// the cluster's first record.
    pub fn open(
        quorum: Box<dyn MetadataQuorum>,
        committed: Vec<MetadataRecord>,
        config: Arc<StaticConfig>,
    ) -> Result<Controller, ControllerError> {
        let last_batch = quorum.last_batch();
        let controller = Controller::new(quorum, config);
        if let Some(index) = last_batch {
            controller.apply(Step::Batch {
                index,
                records: committed,
            });
        }
        controller.init_cluster()?;
        Ok(controller)
    }

    /// Commits the cluster's first record unless the image has a cluster id.
    pub fn init_cluster(&self) -> Result<(), ControllerError> {
        self.submit(|image| Ok(plan::plan_init_cluster(image)))
            .map(|_| ())
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.published().image
    }

    /// The log index of the last committed batch the current image reflects.
    pub fn last_batch(&self) -> Option<u64> {
        self.published().last_batch
    }

    /// The broker's static config.
    pub fn config(&self) -> &Arc<StaticConfig> {
        &self.config
    }

    fn published(&self) -> Published {
        match self.published.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies one committed step and publishes the image it produces. Returns
    /// whether anything changed: a batch at or below [`Controller::last_batch`]
    /// was applied already and is ignored.
    pub fn apply(&self, step: Step) -> bool {
        let mut published = match self.published.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match step {
            Step::Batch { index, records } => {
                if published.last_batch.is_some_and(|last| index <= last) {
                    return false;
                }
                let mut image = MetadataImage::clone(&published.image);
                for r in &records {
                    image.apply(r);
                }
                *published = Published {
                    image: Arc::new(image),
                    last_batch: Some(index),
                };
            }
            Step::Reset { image, last_batch } => {
                *published = Published {
                    image: Arc::new(*image),
                    last_batch,
                };
            }
        }
        true
    }

    fn lock_quorum(&self) -> MutexGuard<'_, Box<dyn MetadataQuorum>> {
        match self.quorum.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Plans against the published image, commits the plan fenced on the batch
    /// that image reflects, and applies it. Returns the plan's outcome and the
    /// image after the change. An empty plan commits nothing.
    ///
    /// A fenced commit (another writer committed after the image was built —
    /// only possible with a replicated quorum, whose `append_after` returns
    /// once this node caught up) is re-planned against the newer image, up to
    /// [`SUBMIT_TRIES_MAX`] times in all.
    fn submit<T>(
        &self,
        mut plan: impl FnMut(&MetadataImage) -> Result<Planned<T>, ControllerError>,
    ) -> Result<(T, Arc<MetadataImage>), ControllerError> {
        let mut quorum = self.lock_quorum();
        let mut tries = 0;
        loop {
            tries += 1;
            let Published { image, last_batch } = self.published();
            let Planned { records, outcome } = plan(&image)?;
            if records.is_empty() {
                return Ok((outcome, image));
            }
            match quorum.append_after(last_batch, &records) {
                Ok(index) => {
                    self.apply(Step::Batch { index, records });
                    return Ok((outcome, self.image()));
                }
                Err(QuorumError::Fenced { .. }) if tries < SUBMIT_TRIES_MAX => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Registers a broker (first start, restart or changed endpoints); returns
    /// its broker epoch. A registration identical to the current one (same
    /// incarnation, endpoints and rack) changes nothing. A new registration
    /// gets the next epoch; registered fenced, the broker's leaderships and
    /// ISR memberships move away as with [`Controller::fence_broker`];
    /// registered unfenced, it is elected where it may lead (as with
    /// [`Controller::unfence_broker`]).
    pub fn register_broker(&self, reg: BrokerRegistration) -> Result<i64, ControllerError> {
        self.submit(|image| plan::plan_register_broker(image, &self.config, &reg))
            .map(|(epoch, _)| epoch)
    }

    /// Records the directories `broker` keeps replicas in (Kafka's
    /// AssignReplicasToDirs); see [`crate::log_dirs::plan_assign_replica_dirs`].
    /// Returns how many partitions changed.
    pub fn assign_replica_dirs(
        &self,
        broker: BrokerId,
        epoch: i64,
        assignments: &[crate::log_dirs::DirAssignment],
    ) -> Result<usize, ControllerError> {
        self.submit(|image| {
            crate::log_dirs::plan_assign_replica_dirs(image, broker, epoch, assignments)
        })
        .map(|(changed, _)| changed)
    }

    /// Takes `broker`'s log directories `offline` offline (an I/O error,
    /// KIP-858): its replicas in them leave the ISRs and their leaderships;
    /// see [`crate::log_dirs::plan_log_dirs_offline`]. Returns the
    /// partitions left without a leader.
    pub fn log_dirs_offline(
        &self,
        broker: BrokerId,
        epoch: i64,
        offline: &[samsa_model::DirectoryId],
    ) -> Result<Vec<TopicPartition>, ControllerError> {
        self.submit(|image| {
            crate::log_dirs::plan_log_dirs_offline(image, &self.config, broker, epoch, offline)
        })
        .map(|(leaderless, _)| leaderless)
    }

    /// Fences a broker (missed heartbeats): it leaves every ISR that keeps
    /// another member and loses its leaderships to the first live in-sync
    /// replica; a partition whose only in-sync replica it is keeps it in the
    /// ISR with no leader (or, with `unclean.leader.election.enable`, gets an
    /// out-of-sync live replica as leader). Returns the partitions left
    /// without a leader. Nothing changes for an already fenced broker.
    pub fn fence_broker(&self, id: BrokerId) -> Result<Vec<TopicPartition>, ControllerError> {
        self.submit(|image| plan::plan_fence_broker(image, &self.config, id))
            .map(|(offline, _)| offline)
    }

    /// Unfences a broker at broker epoch `epoch` (it caught up): it is
    /// elected leader of the leaderless partitions it is in sync for, and of
    /// leaderless partitions it replicates whose in-sync replicas are all down
    /// when unclean election is enabled for their topic. Returns the
    /// partitions that got a leader.
    pub fn unfence_broker(
        &self,
        id: BrokerId,
        epoch: i64,
    ) -> Result<Vec<TopicPartition>, ControllerError> {
        self.submit(|image| plan::plan_unfence_broker(image, &self.config, id, epoch))
            .map(|(elected, _)| elected)
    }

    /// A broker's controlled shutdown: its leaderships move to other live
    /// in-sync replicas and it is fenced, in one batch. Returns the
    /// partitions it was the only in-sync replica of: they have no leader
    /// until it comes back (empty when shutting it down loses nothing).
    pub fn controlled_shutdown(
        &self,
        id: BrokerId,
    ) -> Result<Vec<TopicPartition>, ControllerError> {
        self.submit(|image| plan::plan_controlled_shutdown(image, &self.config, id))
            .map(|(offline, _)| offline)
    }

    /// Applies a leader's ISR change; returns the partition as it is
    /// afterwards. When the change completes an ongoing reassignment that
    /// removes the leader, the returned leader differs from the requester
    /// (Kafka answers NEW_LEADER_ELECTED in that case).
    pub fn alter_partition(
        &self,
        request: AlterPartition,
    ) -> Result<PartitionImage, ControllerError> {
        self.submit(|image| plan::plan_alter_partition(image, &self.config, &request))
            .map(|(partition, _)| partition)
    }

    /// Applies ISR changes of many partitions (one leader's AlterPartition
    /// request, as Kafka's carries every partition with a pending change)
    /// in one batch: one quorum write for all of them. Each partition is
    /// checked on its own, fenced on its leader and partition epochs as in
    /// [`Controller::alter_partition`]; one result per request, in order (a
    /// partition named twice is refused the second time). A failed commit
    /// fails them all.
    pub fn alter_partitions(
        &self,
        requests: &[AlterPartition],
    ) -> Result<Vec<Result<PartitionImage, ControllerError>>, ControllerError> {
        self.submit(|image| {
            let mut records = Vec::new();
            let mut seen = BTreeSet::new();
            let outcome = requests
                .iter()
                .map(|request| {
                    if !seen.insert((request.topic_id, request.partition)) {
                        return Err(ControllerError::InvalidRequest(format!(
                            "partition {} of topic {} is named twice",
                            request.partition, request.topic_id
                        )));
                    }
                    let planned = plan::plan_alter_partition(image, &self.config, request)?;
                    records.extend(planned.records);
                    Ok(planned.outcome)
                })
                .collect();
            Ok(Planned { records, outcome })
        })
        .map(|(results, _)| results)
    }

    /// Elects leaders (ElectLeaders); one result per partition, the new
    /// leader on success. `None`: every partition, reporting only those the
    /// election concerns (not those answering ELECTION_NOT_NEEDED). All
    /// elections commit as one batch.
    pub fn elect_leaders(
        &self,
        kind: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<PartitionResult<BrokerId>>, ControllerError> {
        self.submit(|image| Ok(plan::plan_elect_leaders(image, kind, partitions.as_deref())))
            .map(|(results, _)| results)
    }

    /// Starts (`Some(target replicas)`) or cancels (`None`) partition
    /// reassignments (AlterPartitionReassignments); one result per entry,
    /// all changes committed as one batch.
    pub fn alter_reassignments(
        &self,
        changes: Vec<(String, i32, Option<Vec<BrokerId>>)>,
    ) -> Result<Vec<PartitionResult>, ControllerError> {
        self.submit(|image| {
            Ok(plan::plan_alter_reassignments(
                image,
                &self.config,
                &changes,
            ))
        })
        .map(|(results, _)| results)
    }

    /// The ongoing reassignments (ListPartitionReassignments): of every
    /// partition, or of the listed topics' listed partitions.
    pub fn list_reassignments(
        &self,
        filter: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<OngoingReassignment> {
        plan::list_reassignments(&self.image(), filter)
    }

    /// Creates topics; one result per input, in order. Each topic is planned and
    /// committed on its own, after the ones before it. With `validate_only`
    /// nothing is committed and each topic is planned against the current image.
    pub fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<Arc<TopicImage>, ControllerError>> {
        let mut results = Vec::with_capacity(topics.len());
        let mut names_in_request = BTreeSet::new();
        for topic in topics {
            if !names_in_request.insert(topic.name.clone()) {
                results.push(Err(plan::duplicate_topic(&topic.name)));
                continue;
            }
            let created = if validate_only {
                let image = self.image();
                plan::plan_create_topic(&image, &self.config, &topic).map(|planned| {
                    let mut scratch = MetadataImage::clone(&image);
                    for r in &planned.records {
                        scratch.apply(r);
                    }
                    Arc::new(scratch)
                })
            } else {
                self.submit(|image| plan::plan_create_topic(image, &self.config, &topic))
                    .map(|(_, image)| image)
            };
            results.push(created.and_then(|image| {
                image
                    .topic(&topic.name)
                    .cloned()
                    .ok_or(ControllerError::UnknownTopic)
            }));
        }
        results
    }

    /// Deletes the topic named `name` (or with id `id`).
    pub fn delete_topic(
        &self,
        name: Option<&str>,
        id: Option<TopicId>,
    ) -> Result<(String, TopicId), ControllerError> {
        self.submit(|image| plan::plan_delete_topic(image, &self.config, name, id))
            .map(|(deleted, _)| deleted)
    }

    /// Grows `name` to `total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: Option<Vec<Vec<BrokerId>>>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        if validate_only {
            return plan::plan_create_partitions(&self.image(), name, total, assignments)
                .map(|_| ());
        }
        self.submit(|image| plan::plan_create_partitions(image, name, total, assignments.clone()))
            .map(|_| ())
    }

    /// Hands a block of `count` producer ids to `broker`; returns its first id.
    pub fn allocate_producer_ids(
        &self,
        broker: BrokerId,
        count: i64,
    ) -> Result<i64, ControllerError> {
        self.submit(|image| plan::plan_allocate_producer_ids(image, broker, count))
            .map(|(start, _)| start)
    }

    /// Sets (`Some`) or removes (`None`) dynamic broker configs of `broker`
    /// (`None`: the cluster-wide default), after validating all of them.
    pub fn alter_broker_configs(
        &self,
        broker: Option<BrokerId>,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        if validate_only {
            return plan::plan_alter_broker_configs(&self.image(), broker, changes).map(|_| ());
        }
        self.submit(|image| plan::plan_alter_broker_configs(image, broker, changes))
            .map(|_| ())
    }

    /// Validates feature level changes (UpdateFeatures) and, unless
    /// `validate_only`, commits all of them; none when any is invalid.
    pub fn update_features(
        &self,
        updates: &[crate::features::FeatureUpdate],
        validate_only: bool,
    ) -> Result<Result<(), crate::features::FeatureError>, ControllerError> {
        let plan = |image: &MetadataImage| {
            Ok(
                match crate::features::plan_update_features(image, updates) {
                    Ok(records) => Planned::new_pub(records, Ok(())),
                    Err(e) => Planned::new_pub(Vec::new(), Err(e)),
                },
            )
        };
        if validate_only {
            return plan(&self.image()).map(|p| p.outcome);
        }
        self.submit(plan).map(|(outcome, _)| outcome)
    }

    /// Sets (`Some`) or removes (`None`) topic config keys, after validating all of
    /// them; nothing is committed if any is invalid.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        if validate_only {
            return plan::plan_alter_topic_configs(&self.image(), name, changes).map(|_| ());
        }
        self.submit(|image| plan::plan_alter_topic_configs(image, name, changes))
            .map(|_| ())
    }

    /// AlterUserScramCredentials: commits the alterations of every user
    /// whose alterations are all valid; returns each user's result.
    pub fn alter_scram_credentials(
        &self,
        alterations: &[crate::scram::ScramAlteration],
    ) -> Result<crate::scram::UserResults, ControllerError> {
        self.submit(|image| {
            Ok(crate::scram::plan_alter_scram_credentials(
                image,
                alterations,
            ))
        })
        .map(|(results, _)| results)
    }

    /// Sets (`Some`) or removes (`None`) config keys of group `group` (Kafka's
    /// `GROUP` resource), validated against this broker's group bounds.
    pub fn alter_group_configs(
        &self,
        group: &str,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let plan = |image: &MetadataImage| {
            crate::group_config::plan_alter_group_configs(image, &self.config, group, changes)
        };
        if validate_only {
            return plan(&self.image()).map(|_| ());
        }
        self.submit(plan).map(|_| ())
    }

    /// CreateAcls: commits the valid new ACLs; one outcome per binding.
    pub fn create_acls(
        &self,
        bindings: &[crate::acl::AclBinding],
    ) -> Result<Vec<Result<(), String>>, ControllerError> {
        self.submit(|image| crate::acl::plan_create_acls(image, bindings))
            .map(|(outcome, _)| outcome)
    }

    /// DeleteAcls: removes every ACL a filter matches; per filter, the ACLs
    /// it removed or why it is invalid.
    #[allow(clippy::type_complexity)]
    pub fn delete_acls(
        &self,
        filters: &[crate::acl::AclFilter],
    ) -> Result<Vec<Result<Vec<crate::acl::AclBinding>, String>>, ControllerError> {
        self.submit(|image| crate::acl::plan_delete_acls(image, filters))
            .map(|(outcome, _)| outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::NO_LEADER;
    use crate::quorum::LocalQuorum;

    fn controller(dir: &std::path::Path) -> Controller {
        let (q, records) = LocalQuorum::open(dir).unwrap();
        let c = Controller::open(Box::new(q), records, Arc::new(StaticConfig::default())).unwrap();
        c.register_broker(BrokerRegistration {
            id: BrokerId(1),
            host: "127.0.0.1".into(),
            port: 9092,
            incarnation: "test".into(),
            ..Default::default()
        })
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

    #[test]
    fn apply_publishes_batches_once_with_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let c = controller(dir.path());
        // InitCluster with the three bootstrap FeatureLevel records, then
        // RegisterBroker: five records in two batches.
        assert_eq!(c.last_batch(), Some(5));
        let before = c.image();
        c.create_topics(vec![topic("t", 2)], false)[0]
            .as_ref()
            .unwrap();
        assert_eq!(c.last_batch(), Some(8), "Topic + two Partition records");
        let after = c.image();
        // A batch already applied (as a committed stream would hand it again) is
        // ignored.
        let replay = Step::Batch {
            index: 8,
            records: vec![MetadataRecord::RemoveTopic {
                topic_id: after.topic("t").unwrap().id,
            }],
        };
        assert!(!c.apply(replay));
        assert!(c.image().topic("t").is_some());
        assert!(
            before.topic("t").is_none(),
            "published images are immutable"
        );
        // A reset replaces the image and the fence position.
        assert!(c.apply(Step::Reset {
            image: Box::new(MetadataImage::clone(&before)),
            last_batch: Some(5),
        }));
        assert!(c.image().topic("t").is_none());
        assert_eq!(c.last_batch(), Some(5));
    }

    fn registration(id: i32, incarnation: &str, fenced: bool) -> BrokerRegistration {
        BrokerRegistration {
            id: BrokerId(id),
            host: "127.0.0.1".into(),
            port: 9092 + id as u16,
            incarnation: incarnation.into(),
            fenced,
            ..Default::default()
        }
    }

    /// The local quorum, counting its writes.
    struct Counting(LocalQuorum, Arc<std::sync::atomic::AtomicUsize>);

    impl MetadataQuorum for Counting {
        fn last_batch(&self) -> Option<u64> {
            self.0.last_batch()
        }

        fn append_after(
            &mut self,
            after: Option<u64>,
            records: &[MetadataRecord],
        ) -> Result<u64, QuorumError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.append_after(after, records)
        }
    }

    #[test]
    fn isr_changes_of_many_partitions_commit_as_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (q, records) = LocalQuorum::open(dir.path()).unwrap();
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let quorum = Box::new(Counting(q, writes.clone()));
        let c = Controller::open(quorum, records, Arc::new(StaticConfig::default())).unwrap();
        c.register_broker(registration(1, "a", false)).unwrap();
        c.register_broker(registration(2, "b", false)).unwrap();
        // Many partitions' changes in one request: one batch, each
        // partition fenced on its own epochs.
        c.create_topics(
            vec![NewTopic {
                replication_factor: 2,
                ..topic("many", 300)
            }],
            false,
        )[0]
        .as_ref()
        .unwrap();
        let many = c.image().topic("many").unwrap().clone();
        let mut requests: Vec<AlterPartition> = many
            .partitions
            .iter()
            .filter(|p| p.leader == BrokerId(1))
            .map(|p| AlterPartition {
                topic_id: many.id,
                partition: p.index,
                leader: BrokerId(1),
                broker_epoch: Some(1),
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr: vec![BrokerId(1)],
                new_isr_broker_epochs: Vec::new(),
            })
            .collect();
        assert!(requests.len() >= 100, "{} led by 1", requests.len());
        let stale = AlterPartition {
            partition_epoch: requests[0].partition_epoch - 1,
            ..requests[0].clone()
        };
        requests[0] = stale;
        let duplicate = requests[1].clone();
        requests.push(duplicate);
        let before = writes.load(std::sync::atomic::Ordering::Relaxed);
        let results = c.alter_partitions(&requests).unwrap();
        let after = writes.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(after - before, 1, "one quorum write");
        assert_eq!(results.len(), requests.len());
        assert!(matches!(
            results[0],
            Err(ControllerError::InvalidUpdateVersion(_))
        ));
        assert!(matches!(
            results.last(),
            Some(Err(ControllerError::InvalidRequest(_)))
        ));
        let applied = &results[1..results.len() - 1];
        assert!(applied
            .iter()
            .all(|r| r.as_ref().is_ok_and(|p| p.isr == vec![BrokerId(1)])));
        let image = c.image();
        let shrunk = image.topic("many").unwrap();
        for r in &requests[1..requests.len() - 1] {
            assert_eq!(
                shrunk.partitions[r.partition.get() as usize].isr,
                vec![BrokerId(1)]
            );
        }
    }

    #[test]
    fn fencing_and_isr_changes_commit_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = controller(dir.path());
            assert_eq!(c.register_broker(registration(2, "b", true)).unwrap(), 1);
            assert!(c.image().brokers[&BrokerId(2)].fenced);
            assert_eq!(c.unfence_broker(BrokerId(2), 1).unwrap(), Vec::new());
            c.create_topics(
                vec![NewTopic {
                    replication_factor: 2,
                    ..topic("t", 1)
                }],
                false,
            )[0]
            .as_ref()
            .unwrap();
            let p = c.image().topic("t").unwrap().partitions[0].clone();
            assert_eq!(p.leader, BrokerId(1));

            // The leader shrinks the ISR; a replay of the same request is stale.
            let request = AlterPartition {
                topic_id: c.image().topic("t").unwrap().id,
                partition: PartitionIndex(0),
                leader: BrokerId(1),
                broker_epoch: Some(1),
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr: vec![BrokerId(1)],
                new_isr_broker_epochs: Vec::new(),
            };
            let shrunk = c.alter_partition(request.clone()).unwrap();
            assert_eq!(shrunk.isr, vec![BrokerId(1)]);
            assert!(matches!(
                c.alter_partition(request),
                Err(ControllerError::InvalidUpdateVersion(_))
            ));

            let offline = c.controlled_shutdown(BrokerId(1)).unwrap();
            assert_eq!(
                offline,
                vec![TopicPartition {
                    topic: "t".into(),
                    partition: PartitionIndex(0)
                }]
            );
        }
        let c = controller(dir.path());
        let image = c.image();
        // `controller` registered broker 1 again with the same incarnation:
        // nothing changed, it is still fenced.
        assert!(image.brokers[&BrokerId(1)].fenced);
        assert!(!image.brokers[&BrokerId(2)].fenced);
        let p = &image.topic("t").unwrap().partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![BrokerId(1)]));
        let elected = c.unfence_broker(BrokerId(1), 1).unwrap();
        assert_eq!(elected.len(), 1);
        assert_eq!(
            c.image().topic("t").unwrap().partitions[0].leader,
            BrokerId(1)
        );
    }

    #[test]
    fn elections_and_reassignments_answer_per_partition() {
        let dir = tempfile::tempdir().unwrap();
        let c = controller(dir.path());
        c.register_broker(registration(2, "b", false)).unwrap();
        c.create_topics(vec![topic("t", 2)], false)[0]
            .as_ref()
            .unwrap();
        let results = c
            .alter_reassignments(vec![
                ("t".into(), 0, Some(vec![BrokerId(2)])),
                ("t".into(), 1, None),
            ])
            .unwrap();
        assert!(results[0].result.is_ok());
        assert!(matches!(
            results[1].result,
            Err(ControllerError::NoReassignmentInProgress)
        ));
        // Broker 2 is not in sync yet: the reassignment waits.
        let ongoing = c.list_reassignments(None);
        assert_eq!(ongoing.len(), 1);
        assert_eq!(ongoing[0].replicas, vec![BrokerId(2), BrokerId(1)]);
        let results = c
            .elect_leaders(ElectionType::Preferred, Some(vec![("t".into(), 0)]))
            .unwrap();
        assert!(matches!(
            results[0].result,
            Err(ControllerError::PreferredLeaderNotAvailable(_))
        ));
        c.alter_reassignments(vec![("t".into(), 0, None)]).unwrap();
        assert!(c.list_reassignments(None).is_empty());
        let image = c.image();
        assert_eq!(
            image.topic("t").unwrap().partitions[0].replicas,
            vec![BrokerId(1)]
        );
    }

    /// A quorum whose log moved on without this controller (another writer).
    struct Behind(Option<u64>);

    impl MetadataQuorum for Behind {
        fn last_batch(&self) -> Option<u64> {
            self.0
        }
        fn append_after(
            &mut self,
            after: Option<u64>,
            _records: &[MetadataRecord],
        ) -> Result<u64, QuorumError> {
            Err(QuorumError::Fenced {
                expected: after,
                actual: self.0.map(|i| i + 1),
            })
        }
    }

    /// A quorum that fences the first append (another writer got in first)
    /// and then accepts.
    struct FencedOnce {
        fenced: bool,
        last: Option<u64>,
    }

    impl MetadataQuorum for FencedOnce {
        fn last_batch(&self) -> Option<u64> {
            self.last
        }
        fn append_after(
            &mut self,
            after: Option<u64>,
            _records: &[MetadataRecord],
        ) -> Result<u64, QuorumError> {
            if !self.fenced {
                self.fenced = true;
                return Err(QuorumError::Fenced {
                    expected: after,
                    actual: after.map(|i| i + 1),
                });
            }
            let index = after.unwrap_or(0) + 1;
            self.last = Some(index);
            Ok(index)
        }
    }

    #[test]
    fn a_fenced_commit_is_replanned() {
        let c = Controller::new(
            Box::new(FencedOnce {
                fenced: false,
                last: None,
            }),
            Arc::new(StaticConfig::default()),
        );
        c.init_cluster().unwrap();
        assert!(!c.image().cluster_id.is_empty());
        assert_eq!(c.last_batch(), Some(1));
    }

    #[test]
    fn a_fenced_commit_applies_nothing() {
        let c = Controller::new(Box::new(Behind(Some(1))), Arc::new(StaticConfig::default()));
        c.apply(Step::Batch {
            index: 1,
            records: vec![
                MetadataRecord::InitCluster {
                    cluster_id: "c".into(),
                },
                MetadataRecord::RegisterBroker {
                    broker_id: BrokerId(1),
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    epoch: 1,
                    incarnation: String::new(),
                    listeners: Vec::new(),
                    fenced: false,
                    log_dirs: Vec::new(),
                    cordoned_log_dirs: Vec::new(),
                },
            ],
        });
        let r = c.create_topics(vec![topic("t", 1)], false);
        assert!(matches!(
            r[0],
            Err(ControllerError::Quorum(QuorumError::Fenced { .. }))
        ));
        assert!(c.image().topic("t").is_none());
        assert_eq!(c.last_batch(), Some(1));
        // Validate-only never reaches the quorum.
        assert!(c.create_topics(vec![topic("t", 1)], true)[0].is_ok());
    }
}
