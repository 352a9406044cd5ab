//! The data directory: the lock that keeps a second process out of it, and
//! which of the directories startup finds in it samsa may delete.
//!
//! # `.lock`
//!
//! An empty file in the data directory (Kafka's name). Every process that
//! uses the directory — a broker, or a controller-only node — holds an
//! exclusive `flock(2)` on it for its whole life; a second process fails to
//! take it and refuses to start, naming the directory. The kernel releases
//! the lock when the process exits, however it exits, so a stale file never
//! blocks a restart. The lock is per open file, so a second broker inside the
//! same process is refused too.
//!
//! # What startup may delete
//!
//! Only directories samsa made: partition directories named
//! `<topic>-<partition>` holding a `partition.metadata` whose topic id no
//! topic of the metadata image has (the topic was deleted, or deleted and
//! recreated, while this node was down), and directories samsa renamed for
//! deletion (`<topic>-<partition>.<32 hex digits>-delete`). Anything else that
//! looks like one but lacks that proof (no or unreadable `partition.metadata`,
//! another naming pattern) is reported at WARN and left alone.

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use samsa_metadata::MetadataImage;
use samsa_model::TopicId;

use crate::broker::{BrokerError, DELETE_SUFFIX, METADATA_DIR, PARTITION_METADATA_FILE};

/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a data directory, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Creates `dir` if needed and locks it; fails with
    /// [`BrokerError::Locked`] when another process (or another broker in
    /// this one) holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, BrokerError> {
        let data_dir = |source| BrokerError::DataDir {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(data_dir)?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(data_dir)?;
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
                BrokerError::Locked {
                    dir: dir.to_path_buf(),
                }
            } else {
                data_dir(e)
            });
        }
        Ok(DataDirLock { _file: file })
    }
}

/// What startup does with one entry of the data directory.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not samsa's to judge here (a file, the metadata directory, a live
    /// partition, a name that is no partition's).
    Keep,
    /// A partition directory samsa renamed for deletion before a restart.
    Marked,
    /// A partition directory samsa made whose topic the image no longer has.
    Stale,
    /// Looks like a partition directory but nothing proves samsa made it:
    /// report and leave alone.
    Foreign(&'static str),
}

/// Whether `name` is `<anything>-<digits>.<32 hex digits>-delete`, the name
/// samsa (and Kafka) gives a partition directory it renamed for deletion.
fn is_marked_for_deletion(name: &str) -> bool {
    let Some(rest) = name.strip_suffix(DELETE_SUFFIX) else {
        return false;
    };
    let Some((partition_dir, id)) = rest.rsplit_once('.') else {
        return false;
    };
    id.len() == 32
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && partition_name(partition_dir).is_some()
}

/// `<topic>-<partition index>` split in two.
fn partition_name(name: &str) -> Option<(&str, usize)> {
    let (topic, index) = name.rsplit_once('-')?;
    if topic.is_empty() || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic, index.parse().ok()?))
}

/// The topic id in `dir`'s `partition.metadata` (`version: 0` and
/// `topic_id: <id>` lines), if it is there and parses.
pub(crate) fn read_partition_metadata(dir: &Path) -> Option<TopicId> {
    let text = std::fs::read_to_string(dir.join(PARTITION_METADATA_FILE)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
        .map(TopicId)
}

/// What to do with the directory `path` (named `name`) found in the data
/// directory at startup, given the image.
pub(crate) fn classify(name: &str, path: &Path, image: &MetadataImage) -> Verdict {
    if name == METADATA_DIR || !path.is_dir() {
        return Verdict::Keep;
    }
    if let Some(rest) = name.strip_suffix(crate::log_mover::FUTURE_SUFFIX) {
        // A future log (a move to this log directory in progress): its
        // partition resumes it; one whose topic is gone is stale.
        let named = rest
            .rsplit_once('.')
            .is_some_and(|(p, id)| id.len() == 32 && partition_name(p).is_some());
        return match read_partition_metadata(path) {
            Some(id) if named && image.topics.values().all(|t| t.id != id) => Verdict::Stale,
            _ => Verdict::Keep,
        };
    }
    if name.ends_with(DELETE_SUFFIX) {
        return if is_marked_for_deletion(name) {
            Verdict::Marked
        } else {
            Verdict::Foreign("ends in -delete but is not named as samsa marks deleted partitions")
        };
    }
    let Some((topic, index)) = partition_name(name) else {
        return Verdict::Keep;
    };
    let live = image.topic(topic).filter(|t| index < t.partitions.len());
    match (read_partition_metadata(path), live) {
        (None, Some(_)) => Verdict::Keep,
        (Some(id), Some(t)) if id == t.id => Verdict::Keep,
        (Some(id), _) if image.topics.values().all(|t| t.id != id) => Verdict::Stale,
        (Some(_), _) => Verdict::Foreign("its topic id belongs to another partition"),
        (None, None) => Verdict::Foreign("no partition.metadata proves samsa created it"),
    }
}

/// Every directory of `dir` with its verdict, leaving out those kept.
pub(crate) fn scan(
    dir: &Path,
    image: &MetadataImage,
) -> Result<Vec<(PathBuf, Verdict)>, BrokerError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BrokerError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        match classify(&name, &path, image) {
            Verdict::Keep => {}
            verdict => out.push((path, verdict)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_marks_and_partition_names() {
        assert!(is_marked_for_deletion(
            "t-0.0123456789abcdef0123456789abcdef-delete"
        ));
        assert!(is_marked_for_deletion(
            "my-topic-12.0123456789abcdef0123456789abcdef-delete"
        ));
        assert!(!is_marked_for_deletion("backup-delete"));
        assert!(!is_marked_for_deletion("t-0.123-delete"));
        assert!(!is_marked_for_deletion(
            "t.0123456789abcdef0123456789abcdef-delete"
        ));
        assert_eq!(partition_name("my-topic-3"), Some(("my-topic", 3)));
        assert_eq!(partition_name("lost+found"), None);
        assert_eq!(partition_name("t-"), None);
        assert_eq!(partition_name("-3"), None);
    }

    #[test]
    fn a_future_log_of_a_deleted_topic_is_stale_and_a_live_ones_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let future = dir
            .path()
            .join("t-0.0123456789abcdef0123456789abcdef-future");
        std::fs::create_dir_all(&future).unwrap();
        let image = MetadataImage::default();
        let name = future.file_name().unwrap().to_str().unwrap().to_string();
        // No proof: left alone.
        assert_eq!(classify(&name, &future, &image), Verdict::Keep);
        std::fs::write(
            future.join(PARTITION_METADATA_FILE),
            format!("version: 0\ntopic_id: {}\n", uuid::Uuid::new_v4()),
        )
        .unwrap();
        assert_eq!(classify(&name, &future, &image), Verdict::Stale);
    }

    #[test]
    fn the_lock_keeps_a_second_holder_out_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
