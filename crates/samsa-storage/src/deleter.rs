//! Background removal of deleted segment files (Kafka's asynchronous segment
//! deletion).
//!
//! Unlinking a segment of a gigabyte takes 70-160 ms on ext4 (its extents are
//! freed), and retention, DeleteRecords and a follower following its leader's
//! log start used to do it while holding the partition's writer lock, on the
//! thread serving them (deleting the oldest 1 GiB segment held the lock for
//! about 200 ms; now about 1 ms). Instead the log renames the segment's files
//! to `<name>.deleted` under the lock (cheap, and the name can no longer
//! collide with a segment created later at the same base offset) and hands
//! the new paths to one process-wide thread that unlinks them. The log
//! writes its checkpoints before the handover: an fsync after it would wait
//! for the journal commit that frees the unlinked blocks.
//!
//! Crash behaviour: a `.deleted` file left by a crash (or by a failed unlink)
//! is removed when its log is next opened; the log start checkpoint was moved
//! past the segment before the rename, so nothing that is still part of the
//! log is ever renamed.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

/// Suffix appended to a segment file's name when it is deleted.
pub const DELETED_SUFFIX: &str = ".deleted";
/// Removal jobs (one per deletion, its segments' files) queued at most; when
/// the queue is full the caller unlinks inline, so memory stays bounded.
const DELETE_QUEUE_JOBS_MAX: usize = 1024;

static QUEUE: OnceLock<Option<SyncSender<Vec<PathBuf>>>> = OnceLock::new();

/// Unlink `paths` on the background thread (inline if it cannot be started
/// or its queue is full).
pub(crate) fn remove_in_background(paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = sync_channel::<Vec<PathBuf>>(DELETE_QUEUE_JOBS_MAX);
        std::thread::Builder::new()
            .name("segment-delete".into())
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

/// Unlink every path; a missing file is fine, any other failure is logged
/// (the file is retried when its log is next opened).
pub(crate) fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "removing a deleted segment file")
            }
        }
    }
}
