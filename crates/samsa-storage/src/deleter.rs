//! Background removal of deleted segment files and partition directories
//! (Kafka's asynchronous segment and log deletion).
//!
//! Unlinking a segment of a gigabyte takes 70-160 ms on ext4 (its extents are
//! freed), and retention, DeleteRecords and a follower following its leader's
//! log start used to do it while holding the partition's writer lock, on the
//! thread serving them (deleting the oldest 1 GiB segment held the lock for
//! about 200 ms; now about 1 ms). Instead the log renames the segment's files
//! to `<name>.deleted` under the lock (cheap, and the name can no longer
//! collide with a segment created later at the same base offset) and hands
//! the new paths to one process-wide thread that unlinks them. The broker
//! hands the same thread the directories of deleted partitions, renamed out
//! of the way first for the same reasons. The log
//! writes its checkpoints before the handover: an fsync after it would wait
//! for the journal commit that frees the unlinked blocks.
//!
//! Crash behaviour: a `.deleted` file left by a crash (or by a failed unlink)
//! is removed when its log is next opened; the log start checkpoint was moved
//! past the segment before the rename, so nothing that is still part of the
//! log is ever renamed. A renamed partition directory left behind is removed
//! by the broker at its next startup.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

/// Suffix appended to a segment file's name when it is deleted.
pub const DELETED_SUFFIX: &str = ".deleted";
/// Removal jobs (one per deletion: its files or directories) queued at most; when
/// the queue is full the caller unlinks inline, so memory stays bounded.
const DELETE_QUEUE_JOBS_MAX: usize = 1024;

static QUEUE: OnceLock<Option<SyncSender<Vec<PathBuf>>>> = OnceLock::new();

/// Remove `paths` (files, or directories with everything in them) on the
/// background thread (inline if it cannot be started or its queue is full).
/// Callers rename what they hand over out of the way first, so that nothing
/// live can appear under these paths meanwhile.
pub fn remove_in_background(paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = sync_channel::<Vec<PathBuf>>(DELETE_QUEUE_JOBS_MAX);
        std::thread::Builder::new()
            .name("samsa-delete".into())
            .spawn(move || {
                for job in rx {
                    remove_all(&job);
                }
            })
            .ok()
            .map(|_| tx)
    });
    let paths = match queue {
        Some(tx) => match tx.try_send(paths) {
            Ok(()) => return,
            Err(TrySendError::Full(p) | TrySendError::Disconnected(p)) => p,
        },
        None => paths,
    };
    remove_all(&paths);
}

/// Remove every path; a missing one is fine, any other failure is logged
/// (the owner retries at its next open or startup).
fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        let is_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        let removed = if is_dir {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "removing a deleted file or directory")
            }
        }
    }
}
