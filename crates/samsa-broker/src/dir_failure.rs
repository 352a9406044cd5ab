//! Log directory failure (KIP-858; Kafka's `LogDirFailureChannel`).
//!
//! With several `log.dirs`, an I/O error in one directory takes that
//! directory offline and only it: every partition it holds goes offline on
//! this broker (the log's writer stops, Produce, Fetch, ListOffsets and
//! OffsetForLeaderEpoch answer KAFKA_STORAGE_ERROR, no replica fetcher serves
//! it, no new replica is placed there, DescribeLogDirs reports the directory
//! with KAFKA_STORAGE_ERROR and no partitions), while the other directories
//! keep serving. In cluster mode the broker then tells the controller
//! ([`crate::dir_report`]), which moves leadership off its replicas in that
//! directory and drops them from the ISRs. The directory stays offline
//! until the process restarts (as in Kafka; a restart with the directory
//! still broken refuses to start, naming it).
//!
//! What counts as a failure: a log whose writer stopped after a write or
//! fsync error (seen by the log flusher within a second), a failed
//! high-watermark checkpoint or background sync, or a new replica whose
//! directory or log cannot be created. A full disk (`ENOSPC`, `EDQUOT`) is
//! not one: samsa keeps such a log writable so producing resumes once space
//! is freed ([`crate::disk`]), where Kafka would take the directory offline.

use std::fmt::Display;

use samsa_storage::StorageError;

use crate::broker::Broker;
use crate::partition::Partition;

/// Whether `e` means the partition's log directory failed (not a full disk,
/// not a bad request).
pub fn is_dir_failure(e: &StorageError) -> bool {
    match e {
        StorageError::Failed { .. } => true,
        StorageError::Io { .. } => crate::disk::disk_full_path(e).is_none(),
        _ => false,
    }
}

/// Takes the log directory holding `part` offline when `e` is a directory
/// failure ([`is_dir_failure`]).
pub fn check_error(broker: &Broker, part: &Partition, e: &StorageError) {
    if is_dir_failure(e) {
        fail_dir_of(broker, part, e);
    }
}

/// Takes the log directory holding `part` offline.
pub fn fail_dir_of(broker: &Broker, part: &Partition, why: &dyn Display) {
    let index = broker
        .log_dirs
        .log_dir_of((part.topic_id, part.index.get()))
        .and_then(|d| broker.log_dirs.index_of(&d.path));
    if let Some(index) = index {
        fail_dir(broker, index, why);
    }
}

/// Takes log directory `index` offline with every partition in it (nothing
/// when it already is).
pub fn fail_dir(broker: &Broker, index: usize, why: &dyn Display) {
    if !broker.log_dirs.mark_offline(index) {
        return;
    }
    let Some(dir) = broker.log_dirs.dirs().get(index) else {
        return;
    };
    let keys = broker.log_dirs.partitions_in(index);
    tracing::error!(
        dir = %dir.path.display(),
        error = %why,
        partitions = keys.len(),
        "log directory failed: its partitions are offline on this broker (KAFKA_STORAGE_ERROR) until a restart; the other log directories keep serving"
    );
    for (topic_id, index) in keys {
        if let Some(p) = broker.partition(topic_id, index) {
            p.take_offline();
            // Parked fetches and acks=all produces look again.
            broker.notify_hw(&p);
        }
    }
    if broker
        .log_dirs
        .dirs()
        .iter()
        .all(crate::log_dirs::LogDir::is_offline)
    {
        tracing::error!("every log directory has failed: this broker serves no partition");
    }
    // Fetchers drop the partitions; the replica manager reports the
    // directory to the controller.
    broker.roles_changed.notify_one();
    broker.roles_version.send_modify(|v| *v = v.wrapping_add(1));
}

/// The log flusher's check: a partition whose log's writer stopped after an
/// I/O error of its own (a failed append or fsync) takes its directory
/// offline.
pub fn check_logs(broker: &Broker) {
    for p in broker.all_partitions() {
        if !p.is_offline() && p.log().has_failed() {
            let dir = p.log().dir().display().to_string();
            fail_dir_of(broker, &p, &format!("a write or fsync in {dir} failed"));
        }
    }
}
