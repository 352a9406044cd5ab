//! What this broker tells the controller about its log directories
//! (KIP-858): which directory holds each of its replicas (Kafka's
//! AssignReplicasToDirs) and which directories failed (Kafka's
//! BrokerHeartbeat `OfflineLogDirs`; cluster mode only — a single node has
//! no other replica to move leadership to, so its partitions simply answer
//! KAFKA_STORAGE_ERROR, [`crate::dir_failure`]).
//!
//! Checked by the replica manager every 100 ms (two comparisons unless a
//! replica was placed or a directory failed since the last check); a
//! difference is written on a blocking thread, one write at a time (a
//! quorum write), and a failed write is retried at the next check.
//! Assignments go out at most [`DIR_ASSIGNMENTS_MAX`] per write.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use samsa_metadata::log_dirs::{DirAssignment, DIR_ASSIGNMENTS_MAX};
use samsa_metadata::{ControllerError, MetadataImage};
use samsa_model::{BrokerId, DirectoryId, PartitionIndex};

use crate::broker::Broker;

/// This process's registration epoch in `image`: None until the image
/// holds this process's own registration.
fn my_epoch(broker: &Broker, image: &MetadataImage) -> Option<i64> {
    let me = image.brokers.get(&broker.settings.node_id)?;
    let reg = crate::broker::registration(broker, me.fenced);
    (me.incarnation == reg.incarnation).then_some(me.epoch)
}

/// The failed directories the image does not show offline yet (cluster
/// mode; empty otherwise).
fn unreported_offline(broker: &Broker, image: &MetadataImage) -> Vec<DirectoryId> {
    if broker.cluster.is_none() {
        return Vec::new();
    }
    let Some(me) = image.brokers.get(&broker.settings.node_id) else {
        return Vec::new();
    };
    broker
        .log_dirs
        .offline_ids()
        .into_iter()
        .filter(|d| !me.offline_log_dirs.contains(d))
        .collect()
}

/// The hosted replicas whose directory the image does not show.
fn unreported_assignments(broker: &Broker, image: &MetadataImage) -> Vec<DirAssignment> {
    let me: BrokerId = broker.settings.node_id;
    let mut out = Vec::new();
    for ((topic_id, index), dir) in broker.log_dirs.placements() {
        let Some(p) = image.topic_by_id(topic_id).and_then(|t| {
            usize::try_from(index)
                .ok()
                .and_then(|i| t.partitions.get(i))
        }) else {
            continue;
        };
        if p.replicas.contains(&me) && p.directory_of(me) != Some(dir) {
            out.push(DirAssignment {
                topic_id,
                partition: PartitionIndex(index),
                directory: dir,
            });
        }
    }
    out
}

/// One round: reports failed directories, then replica directories.
/// Returns whether it wrote anything. A quorum write: run it on a blocking
/// thread.
pub fn report(broker: &Broker, assignments: bool) -> Result<bool, ControllerError> {
    let image = broker.image();
    let Some(epoch) = my_epoch(broker, &image) else {
        return Ok(false);
    };
    let me = broker.settings.node_id;
    let mut wrote = false;
    let offline = unreported_offline(broker, &image);
    if !offline.is_empty() {
        tracing::warn!(dirs = ?offline, "reporting failed log directories to the controller");
        broker.admin(|c| c.log_dirs_offline(me, epoch, &offline))?;
        wrote = true;
    }
    if assignments {
        let image = broker.image();
        let mut pending = unreported_assignments(broker, &image);
        pending.truncate(DIR_ASSIGNMENTS_MAX);
        if !pending.is_empty() {
            wrote |= broker.admin(|c| c.assign_replica_dirs(me, epoch, &pending))? > 0;
        }
    }
    Ok(wrote)
}

/// [`report`] on a blocking thread when there may be something to report
/// (at most one at a time).
pub fn report_in_background(broker: &Arc<Broker>) {
    let assignments = broker.log_dirs.take_assignments_changed();
    if !assignments && unreported_offline(broker, &broker.image()).is_empty() {
        return;
    }
    if broker.dir_report_running.swap(true, Ordering::AcqRel) {
        if assignments {
            broker.log_dirs.assignments_changed_again();
        }
        return;
    }
    let b = broker.clone();
    tokio::task::spawn_blocking(move || {
        match report(&b, assignments) {
            // More may be left (a bounded write, or placed meanwhile).
            Ok(true) if assignments => b.log_dirs.assignments_changed_again(),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot report the log directories to the controller yet");
                if assignments {
                    b.log_dirs.assignments_changed_again();
                }
            }
        }
        b.dir_report_running.store(false, Ordering::Release);
    });
}
