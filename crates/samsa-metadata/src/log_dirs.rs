//! Which log directory holds each replica, and what a failed directory
//! changes (KIP-858, Kafka's JBOD in KRaft).
//!
//! A partition's `directories` name, per replica, the `directory.id` its
//! broker keeps it in. A broker reports them when it creates a replica or
//! moves one to another directory (Kafka's AssignReplicasToDirs):
//! [`plan_assign_replica_dirs`] writes them into the partition (a full
//! `Partition` record, partition epoch + 1, as Kafka's
//! `PartitionChangeRecord` with `Directories` does).
//!
//! When an I/O error takes one of a broker's directories offline, the broker
//! reports it (Kafka: BrokerHeartbeat `OfflineLogDirs`):
//! [`plan_log_dirs_offline`] records the broker's offline set
//! (`BrokerRegistrationChange.offline_log_dirs`) and, for every partition
//! whose replica on that broker is in an offline directory, removes that
//! replica from the ISR (never emptying it) and moves leadership to another
//! online in-sync replica (or none). From then on such a replica is not
//! eligible anywhere ([`MetadataImage::replica_online`]): no election, ISR
//! expansion or reassignment completion picks it, until the broker
//! registers again (a restart) with its directories back.

use samsa_model::{BrokerId, DirectoryId, PartitionIndex, TopicId, TopicPartition};

use crate::controller::ControllerError;
use crate::image::{MetadataImage, PartitionImage};
use crate::plan::{
    applied, online_election, partition_record, registered_at, PartitionChange, Planned,
};
use crate::record::MetadataRecord;

/// Replica-to-directory assignments one request may carry.
pub const DIR_ASSIGNMENTS_MAX: usize = 10_000;

/// One replica's directory, as its broker reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirAssignment {
    pub topic_id: TopicId,
    pub partition: PartitionIndex,
    pub directory: DirectoryId,
}

/// Plans recording that `broker` (at broker epoch `epoch`) keeps the listed
/// replicas in the listed directories. Entries for partitions that no
/// longer exist, that `broker` does not replicate, or naming a directory
/// the broker did not register, are skipped; so are those already
/// recorded. The outcome is how many partitions changed. More than
/// [`DIR_ASSIGNMENTS_MAX`] entries are refused.
pub fn plan_assign_replica_dirs(
    image: &MetadataImage,
    broker: BrokerId,
    epoch: i64,
    assignments: &[DirAssignment],
) -> Result<Planned<usize>, ControllerError> {
    registered_at(image, broker, epoch)?;
    if assignments.len() > DIR_ASSIGNMENTS_MAX {
        return Err(ControllerError::InvalidRequest(format!(
            "{} directory assignments in one request; at most {DIR_ASSIGNMENTS_MAX}.",
            assignments.len()
        )));
    }
    let registered = image
        .brokers
        .get(&broker)
        .map(|b| b.log_dirs.clone())
        .unwrap_or_default();
    let mut scratch: Option<MetadataImage> = None;
    let mut records = Vec::new();
    for a in assignments {
        if !registered.contains(&a.directory) {
            continue;
        }
        let current = scratch.as_ref().unwrap_or(image);
        let Some(topic) = current.topic_by_id(a.topic_id) else {
            continue;
        };
        let Some(part) = usize::try_from(a.partition.get())
            .ok()
            .and_then(|i| topic.partitions.get(i))
        else {
            continue;
        };
        let Some(slot) = part.replicas.iter().position(|r| *r == broker) else {
            continue;
        };
        if part.directory_of(broker) == Some(a.directory) {
            continue;
        }
        let mut directories = part.directories.clone();
        if directories.len() != part.replicas.len() {
            directories = vec![DirectoryId::UNASSIGNED; part.replicas.len()];
        }
        directories[slot] = a.directory;
        let next = PartitionImage {
            directories,
            partition_epoch: part.partition_epoch.saturating_add(1),
            ..part.clone()
        };
        let record = partition_record(topic.id, &next);
        scratch.get_or_insert_with(|| image.clone()).apply(&record);
        records.push(record);
    }
    let changed = records.len();
    Ok(Planned::new(records, changed))
}

/// Plans taking `broker`'s directories `offline` (ids it registered; others
/// are ignored) offline, at broker epoch `epoch`: the broker's offline set
/// becomes the union with what it already was, and every partition whose
/// replica on `broker` is in an offline directory loses that replica from
/// its ISR (unless it is the last member) and, if it led, gets the first
/// online in-sync replica as leader (or, with unclean election enabled for
/// the topic, an online out-of-sync one; else none). The outcome is the
/// partitions left without a leader.
pub fn plan_log_dirs_offline(
    image: &MetadataImage,
    config: &crate::config::StaticConfig,
    broker: BrokerId,
    epoch: i64,
    offline: &[DirectoryId],
) -> Result<Planned<Vec<TopicPartition>>, ControllerError> {
    let info = registered_at(image, broker, epoch)?;
    let mut set = info.offline_log_dirs.clone();
    set.extend(offline.iter().filter(|d| info.log_dirs.contains(d)));
    set.sort();
    set.dedup();
    let mut records = Vec::new();
    if set != info.offline_log_dirs {
        records.push(MetadataRecord::BrokerRegistrationChange {
            broker_id: broker,
            epoch,
            cordoned_log_dirs: info.cordoned_log_dirs.clone(),
            offline_log_dirs: Some(set),
        });
    }
    let after = applied(image, &records);
    let mut leaderless = Vec::new();
    for topic in after.topics.values() {
        let election = online_election(config, &after, topic);
        for p in &topic.partitions {
            if !after.replica_dir_offline(p, broker)
                || !(p.isr.contains(&broker) || p.leader == broker)
            {
                continue;
            }
            let mut change = PartitionChange::new(p, election);
            change.isr.retain(|r| *r != broker);
            let next = change.build(|r| after.replica_online(p, r));
            let now = next.as_ref().unwrap_or(p);
            if !now.has_leader() {
                leaderless.push(TopicPartition {
                    topic: topic.name.clone(),
                    partition: p.index,
                });
            }
            if let Some(next) = next {
                records.push(partition_record(topic.id, &next));
            }
        }
    }
    Ok(Planned::new(records, leaderless))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StaticConfig;
    use crate::controller::{BrokerRegistration, NewTopic};
    use crate::plan::{
        plan_create_topic, plan_fence_broker, plan_init_cluster, plan_register_broker,
    };

    fn dir(n: u128) -> DirectoryId {
        DirectoryId(uuid::Uuid::from_u128(n))
    }

    /// Brokers 1..=3, each with two log directories (`b*10+1`, `b*10+2`),
    /// and topic `t` with two partitions on all three (partition 0 led by 1).
    fn cluster() -> MetadataImage {
        let config = StaticConfig::default();
        let mut image = MetadataImage::default();
        let run = |image: &mut MetadataImage, records: &[MetadataRecord]| {
            for r in records {
                image.apply(r);
            }
        };
        let init = plan_init_cluster(&image).records;
        run(&mut image, &init);
        for b in 1..=3 {
            let reg = BrokerRegistration {
                id: BrokerId(b),
                host: "localhost".into(),
                port: 9092,
                incarnation: "first".into(),
                log_dirs: vec![dir(b as u128 * 10 + 1), dir(b as u128 * 10 + 2)],
                ..Default::default()
            };
            let planned = plan_register_broker(&image, &config, &reg).unwrap();
            run(&mut image, &planned.records);
        }
        let topic = NewTopic {
            name: "t".into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: vec![
                vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                vec![BrokerId(2), BrokerId(1), BrokerId(3)],
            ],
            ..Default::default()
        };
        let planned = plan_create_topic(&image, &config, &topic).unwrap();
        run(&mut image, &planned.records);
        image
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            image.apply(r);
        }
    }

    fn part(image: &MetadataImage, p: i32) -> PartitionImage {
        image.partition("t", PartitionIndex(p)).cloned().unwrap()
    }

    fn assign(image: &mut MetadataImage, broker: i32, p: i32, d: DirectoryId) -> usize {
        let id = image.topic("t").unwrap().id;
        let epoch = image.brokers[&BrokerId(broker)].epoch;
        let planned = plan_assign_replica_dirs(
            image,
            BrokerId(broker),
            epoch,
            &[DirAssignment {
                topic_id: id,
                partition: PartitionIndex(p),
                directory: d,
            }],
        )
        .unwrap();
        apply(image, &planned.records);
        planned.outcome
    }

    #[test]
    fn a_brokers_report_records_each_replicas_directory() {
        let mut image = cluster();
        // Several directories per broker: unknown until reported.
        assert_eq!(part(&image, 0).directory_of(BrokerId(1)), None);
        let before = part(&image, 0).partition_epoch;
        assert_eq!(assign(&mut image, 1, 0, dir(11)), 1);
        let p = part(&image, 0);
        assert_eq!(p.directory_of(BrokerId(1)), Some(dir(11)));
        assert_eq!(p.directory_of(BrokerId(2)), None);
        assert_eq!(p.partition_epoch, before + 1);
        // Again: nothing to change; a directory of another broker is ignored.
        assert_eq!(assign(&mut image, 1, 0, dir(11)), 0);
        assert_eq!(assign(&mut image, 1, 0, dir(21)), 0);
        // A move to the other directory is recorded.
        assert_eq!(assign(&mut image, 1, 0, dir(12)), 1);
        assert_eq!(part(&image, 0).directory_of(BrokerId(1)), Some(dir(12)));
        // A stale broker epoch is refused.
        let id = image.topic("t").unwrap().id;
        let stale = plan_assign_replica_dirs(
            &image,
            BrokerId(1),
            99,
            &[DirAssignment {
                topic_id: id,
                partition: PartitionIndex(0),
                directory: dir(11),
            }],
        );
        assert!(matches!(stale, Err(ControllerError::StaleBrokerEpoch(_))));
    }

    #[test]
    fn a_failed_directory_moves_only_its_replicas_out_of_the_isr_and_leadership() {
        let mut image = cluster();
        let config = StaticConfig::default();
        assign(&mut image, 1, 0, dir(11));
        assign(&mut image, 1, 1, dir(12));
        let p1_before = part(&image, 1);
        let epoch = image.brokers[&BrokerId(1)].epoch;
        let planned =
            plan_log_dirs_offline(&image, &config, BrokerId(1), epoch, &[dir(11)]).unwrap();
        apply(&mut image, &planned.records);
        assert!(planned.outcome.is_empty());
        assert_eq!(image.brokers[&BrokerId(1)].offline_log_dirs, vec![dir(11)]);
        // Partition 0 (broker 1's replica in the failed directory): led by 2
        // now, 1 out of the ISR.
        let p0 = part(&image, 0);
        assert_eq!(p0.leader, BrokerId(2));
        assert_eq!(p0.isr, vec![BrokerId(2), BrokerId(3)]);
        // Partition 1 (broker 1's replica in the other directory): untouched.
        assert_eq!(part(&image, 1), p1_before);
        // Later elections skip the offline replica: with 2 and 3 fenced,
        // partition 0 has no leader rather than broker 1.
        for b in [2, 3] {
            let planned = plan_fence_broker(&image, &config, BrokerId(b)).unwrap();
            apply(&mut image, &planned.records);
        }
        assert!(!part(&image, 0).has_leader());
        assert_eq!(part(&image, 1).leader, BrokerId(1));
        // Reported again: nothing more to do.
        let again = plan_log_dirs_offline(&image, &config, BrokerId(1), epoch, &[dir(11)]).unwrap();
        assert!(again.records.is_empty());
    }

    #[test]
    fn single_replica_partitions_in_a_failed_directory_go_leaderless() {
        let config = StaticConfig::default();
        let mut image = cluster();
        let topic = NewTopic {
            name: "solo".into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: vec![vec![BrokerId(1)]],
            ..Default::default()
        };
        let planned = plan_create_topic(&image, &config, &topic).unwrap();
        apply(&mut image, &planned.records);
        let id = image.topic("solo").unwrap().id;
        let epoch = image.brokers[&BrokerId(1)].epoch;
        let planned = plan_assign_replica_dirs(
            &image,
            BrokerId(1),
            epoch,
            &[DirAssignment {
                topic_id: id,
                partition: PartitionIndex(0),
                directory: dir(12),
            }],
        )
        .unwrap();
        apply(&mut image, &planned.records);
        let planned =
            plan_log_dirs_offline(&image, &config, BrokerId(1), epoch, &[dir(12)]).unwrap();
        apply(&mut image, &planned.records);
        let solo = image.partition("solo", PartitionIndex(0)).unwrap();
        assert!(!solo.has_leader());
        assert_eq!(solo.isr, vec![BrokerId(1)], "the ISR is never emptied");
        assert_eq!(
            planned.outcome,
            vec![TopicPartition {
                topic: "solo".into(),
                partition: PartitionIndex(0)
            }]
        );
    }
}
