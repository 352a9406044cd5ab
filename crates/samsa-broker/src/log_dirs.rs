//! The broker's log directories (`log.dirs`, Kafka's JBOD): each one locked
//! and identified, which directory holds each hosted partition, and where a
//! new replica goes (Kafka's `LogManager` placement).
//!
//! This bookkeeping lives in the broker, not in `samsa-storage`: a
//! `PartitionLog` is one directory and knows nothing of its neighbours;
//! which directory a replica belongs in depends on broker configuration
//! (`cordoned.log.dirs`) and on what the broker hosts.
//!
//! # `meta.properties`
//!
//! Every log directory (and the metadata log directory, `metadata.log.dir`,
//! when it is not one of them) holds a `meta.properties` in Kafka's
//! Java-properties layout, written once (temporary file, fsync, rename)
//! when the directory is first used:
//!
//! ```text
//! #
//! #written by samsa
//! directory.id=<uuid, hyphenated>
//! node.id=<this node's id>
//! version=1
//! ```
//!
//! `directory.id` is the directory's identity (Kafka's `directory.id`,
//! KIP-858); it never changes. On every start the file is read back: a
//! directory whose `node.id` is another node's, or two directories with the
//! same `directory.id` (one copied from the other), stop startup with a
//! message naming the directories. An unreadable or partly written file (a
//! crash before the rename leaves only `meta.properties.tmp`) is written
//! again with a fresh id.
//!
//! # Placement
//!
//! A replica already on disk stays in the directory that holds it. A new
//! replica goes to the directory with the fewest partitions (ties: the
//! first in `log.dirs` order), leaving out directories listed in
//! `cordoned.log.dirs` (KIP-1066); with every directory cordoned no new
//! replica is created ([`PlaceError::AllCordoned`]). Directories that
//! failed (KIP-858, [`crate::dir_failure`]) get no new replica either.
//!
//! # Failed directories
//!
//! A directory is marked offline once an I/O error shows it failed, and
//! stays offline until the process restarts (as in Kafka). Its partitions
//! stay in the bookkeeping (so they are not created again elsewhere) but
//! serve nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use samsa_model::{BrokerId, DirectoryId, TopicId};

use crate::broker::BrokerError;
use crate::data_dir::{read_partition_metadata, DataDirLock};
use crate::purgatory::PartitionKey;

/// Name of the identity file in each log directory (Kafka's).
pub const META_PROPERTIES: &str = "meta.properties";

/// One log directory.
#[derive(Debug)]
pub struct LogDir {
    /// As configured.
    pub path: PathBuf,
    /// Its `directory.id`.
    pub id: uuid::Uuid,
    /// An I/O error took it offline (until the process restarts).
    offline: AtomicBool,
    _lock: DataDirLock,
}

impl LogDir {
    /// Whether an I/O error took this directory offline.
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }
}

/// Preferred directories remembered for replicas not yet created.
pub const PREFERRED_ENTRIES_MAX: usize = 100_000;

/// Why a new replica has no directory.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlaceError {
    /// Every log directory is in `cordoned.log.dirs` or offline.
    #[error("every log directory is cordoned (cordoned.log.dirs) or offline; no new replica can be created on this broker")]
    AllCordoned,
}

/// Where a partition's directory is: found on disk, or newly placed.
#[derive(Debug, PartialEq, Eq)]
pub struct Placement {
    /// The partition directory (`<log dir>/<topic>-<index>`).
    pub dir: PathBuf,
    /// Directories named like this partition's that belong to an earlier
    /// topic of the same name (their `partition.metadata` names another
    /// topic id): to be removed.
    pub stale: Vec<PathBuf>,
}

/// The broker's log directories and which of them holds each partition.
#[derive(Debug)]
pub struct LogDirs {
    dirs: Vec<LogDir>,
    /// The metadata directory's lock when it is not a log directory.
    _metadata_lock: Option<DataDirLock>,
    /// Index in `dirs` of the directory of each hosted partition.
    placed: Mutex<HashMap<PartitionKey, usize>>,
    /// Directories asked for (AlterReplicaLogDirs) for replicas this
    /// broker did not hold yet, by topic name and partition: used when the
    /// replica is created (Kafka's preferred log dir).
    preferred: Mutex<HashMap<(String, i32), usize>>,
    /// A replica was placed or moved since the controller was last told.
    assignments_changed: AtomicBool,
}

impl LogDirs {
    /// Locks every directory of `log_dirs` and `metadata_dir` (creating
    /// them), reads or writes their `meta.properties`, and checks that they
    /// belong to `node` and are distinct.
    pub fn open(
        log_dirs: &[PathBuf],
        metadata_dir: &Path,
        node: BrokerId,
    ) -> Result<LogDirs, BrokerError> {
        let mut dirs: Vec<LogDir> = Vec::with_capacity(log_dirs.len());
        for path in log_dirs {
            let lock = DataDirLock::acquire(path)?;
            let id = identify(path, node)?;
            if let Some(twin) = dirs.iter().find(|d| d.id == id) {
                return Err(BrokerError::LogDirs(format!(
                    "log directories {} and {} have the same directory.id {id} in their {META_PROPERTIES} (one was copied from the other); give one of them a new {META_PROPERTIES}",
                    twin.path.display(),
                    path.display()
                )));
            }
            dirs.push(LogDir {
                path: path.clone(),
                id,
                offline: AtomicBool::new(false),
                _lock: lock,
            });
        }
        let metadata_lock = if log_dirs.iter().any(|d| d == metadata_dir) {
            None
        } else {
            let lock = DataDirLock::acquire(metadata_dir)?;
            identify(metadata_dir, node)?;
            Some(lock)
        };
        Ok(LogDirs {
            dirs,
            _metadata_lock: metadata_lock,
            placed: Mutex::new(HashMap::new()),
            preferred: Mutex::new(HashMap::new()),
            assignments_changed: AtomicBool::new(true),
        })
    }

    /// The log directories, in configured order.
    pub fn dirs(&self) -> &[LogDir] {
        &self.dirs
    }

    /// The log directory holding partition `key`, if it is hosted here.
    pub fn log_dir_of(&self, key: PartitionKey) -> Option<&LogDir> {
        let i = *self.placed().get(&key)?;
        self.dirs.get(i)
    }

    /// The directory of partition `key` (`<log dir>/<topic>-<index>`), if it
    /// is hosted here.
    pub fn partition_dir(&self, key: PartitionKey, topic: &str) -> Option<PathBuf> {
        self.log_dir_of(key)
            .map(|d| d.path.join(format!("{topic}-{}", key.1)))
    }

    /// Forgets partition `key` (deleted); returns the directory it had.
    pub fn forget(&self, key: PartitionKey, topic: &str) -> Option<PathBuf> {
        let dir = self.partition_dir(key, topic);
        self.placed().remove(&key);
        dir
    }

    /// Remembers `index` as the directory for partition `index_in_topic` of
    /// `topic` when this broker creates that replica.
    pub fn prefer(&self, topic: &str, index_in_topic: i32, index: usize) {
        let mut g = match self.preferred.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // Bounded by what operators ask for; a stale entry is harmless.
        if g.len() < PREFERRED_ENTRIES_MAX {
            g.insert((topic.to_string(), index_in_topic), index);
        }
    }

    /// Records that partition `key` now lives in log directory `index`.
    pub fn set_placed(&self, key: PartitionKey, index: usize) {
        self.placed().insert(key, index);
        self.assignments_changed.store(true, Ordering::Release);
    }

    /// Takes log directory `index` offline; true when it was online.
    pub fn mark_offline(&self, index: usize) -> bool {
        self.dirs
            .get(index)
            .is_some_and(|d| !d.offline.swap(true, Ordering::AcqRel))
    }

    /// The ids of the offline directories, in `log.dirs` order.
    pub fn offline_ids(&self) -> Vec<DirectoryId> {
        self.dirs
            .iter()
            .filter(|d| d.is_offline())
            .map(|d| DirectoryId(d.id))
            .collect()
    }

    /// The hosted partitions in log directory `index`.
    pub fn partitions_in(&self, index: usize) -> Vec<PartitionKey> {
        self.placed()
            .iter()
            .filter(|(_, i)| **i == index)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Every hosted partition with the id of its log directory.
    pub fn placements(&self) -> Vec<(PartitionKey, DirectoryId)> {
        self.placed()
            .iter()
            .filter_map(|(k, i)| self.dirs.get(*i).map(|d| (*k, DirectoryId(d.id))))
            .collect()
    }

    /// Whether a replica was placed or moved since the last call (then the
    /// controller may need telling, [`crate::dir_report`]); clears the flag.
    pub fn take_assignments_changed(&self) -> bool {
        self.assignments_changed.swap(false, Ordering::AcqRel)
    }

    /// Sets the flag [`Self::take_assignments_changed`] reads (a report
    /// that could not be written is tried again).
    pub fn assignments_changed_again(&self) {
        self.assignments_changed.store(true, Ordering::Release);
    }

    /// How many hosted partitions each log directory holds.
    pub fn partition_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.dirs.len()];
        for i in self.placed().values() {
            if let Some(c) = counts.get_mut(*i) {
                *c += 1;
            }
        }
        counts
    }

    /// The index of the log directory whose path is `path` (as configured,
    /// or the same directory spelt another way).
    pub fn index_of(&self, path: &Path) -> Option<usize> {
        let wanted = canonical(path);
        self.dirs
            .iter()
            .position(|d| d.path == path || canonical(&d.path) == wanted)
    }

    /// Where partition `key` of topic `topic` (id `topic_id`) lives: the log
    /// directory already holding `<topic>-<index>` for this topic, else the
    /// uncordoned directory with the fewest partitions. `cordoned` is the
    /// value of `cordoned.log.dirs`.
    pub fn locate_or_place(
        &self,
        key: PartitionKey,
        topic: &str,
        topic_id: TopicId,
        cordoned: &str,
    ) -> Result<Placement, PlaceError> {
        let name = format!("{topic}-{}", key.1);
        let mut stale = Vec::new();
        let mut found = None;
        for (i, d) in self.dirs.iter().enumerate() {
            let dir = d.path.join(&name);
            if d.is_offline() || !dir.is_dir() {
                continue;
            }
            match read_partition_metadata(&dir) {
                Some(id) if id != topic_id => stale.push(dir),
                _ if found.is_none() => found = Some(i),
                _ => {
                    tracing::warn!(dir = %dir.display(), "a second directory of this partition in another log directory is left alone")
                }
            }
        }
        let preferred = match self.preferred.lock() {
            Ok(mut g) => g.remove(&(topic.to_string(), key.1)),
            Err(p) => p.into_inner().remove(&(topic.to_string(), key.1)),
        };
        let index = match (found, preferred) {
            (Some(i), _) => i,
            (None, Some(i))
                if i < self.dirs.len()
                    && !self.is_cordoned(i, cordoned)
                    && !self.dirs[i].is_offline() =>
            {
                i
            }
            (None, _) => self.choose(cordoned)?,
        };
        self.set_placed(key, index);
        Ok(Placement {
            dir: self.dirs[index].path.join(&name),
            stale,
        })
    }

    /// The directory a new replica goes to: fewest partitions among the
    /// directories neither cordoned nor offline, the first in `log.dirs`
    /// order on a tie.
    pub fn choose(&self, cordoned: &str) -> Result<usize, PlaceError> {
        let counts = self.partition_counts();
        (0..self.dirs.len())
            .filter(|&i| !self.is_cordoned(i, cordoned) && !self.dirs[i].is_offline())
            .min_by_key(|&i| (counts[i], i))
            .ok_or(PlaceError::AllCordoned)
    }

    /// The `directory.id` of every log directory, in `log.dirs` order (what
    /// the broker registers, KIP-858).
    pub fn ids(&self) -> Vec<DirectoryId> {
        self.dirs.iter().map(|d| DirectoryId(d.id)).collect()
    }

    /// The ids of the directories listed in `cordoned` (the value of
    /// `cordoned.log.dirs`), in `log.dirs` order (what the broker registers
    /// as cordoned, KIP-1066).
    pub fn cordoned_ids(&self, cordoned: &str) -> Vec<DirectoryId> {
        (0..self.dirs.len())
            .filter(|&i| self.is_cordoned(i, cordoned))
            .map(|i| DirectoryId(self.dirs[i].id))
            .collect()
    }

    /// Whether log directory `index` is listed in `cordoned` (the value of
    /// `cordoned.log.dirs`; `*` lists every directory).
    pub fn is_cordoned(&self, index: usize, cordoned: &str) -> bool {
        let Some(d) = self.dirs.get(index) else {
            return false;
        };
        cordoned
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .any(|c| {
                c == "*" || Path::new(c) == d.path || canonical(Path::new(c)) == canonical(&d.path)
            })
    }

    fn placed(&self) -> std::sync::MutexGuard<'_, HashMap<PartitionKey, usize>> {
        match self.placed.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// `path` made absolute and resolved, for comparing directories spelt
/// differently (falls back to the path as given).
pub fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// The `directory.id` of `dir`, writing its `meta.properties` first when it
/// has none (or an unreadable one); fails when the file names another node.
fn identify(dir: &Path, node: BrokerId) -> Result<uuid::Uuid, BrokerError> {
    let path = dir.join(META_PROPERTIES);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let value = |key: &str| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().to_string())
        };
        if let Some(stored) = value("node.id") {
            if stored != node.get().to_string() {
                return Err(BrokerError::LogDirs(format!(
                    "{}: stored node.id {stored} does not match this node's id {}; this directory belongs to another node",
                    path.display(),
                    node.get()
                )));
            }
        }
        if let Some(id) = value("directory.id").and_then(|v| uuid::Uuid::parse_str(&v).ok()) {
            return Ok(id);
        }
        tracing::warn!(file = %path.display(), "meta.properties has no readable directory.id; writing a new one");
    }
    let id = uuid::Uuid::new_v4();
    write_meta_properties(dir, id, node).map_err(|source| BrokerError::DataDir {
        path: path.clone(),
        source,
    })?;
    Ok(id)
}

fn write_meta_properties(dir: &Path, id: uuid::Uuid, node: BrokerId) -> std::io::Result<()> {
    let tmp = dir.join(format!("{META_PROPERTIES}.tmp"));
    std::fs::write(
        &tmp,
        format!(
            "#\n#written by samsa\ndirectory.id={id}\nnode.id={}\nversion=1\n",
            node.get()
        ),
    )?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(META_PROPERTIES))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_dirs() -> (tempfile::TempDir, Vec<PathBuf>) {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().join("a"), root.path().join("b")];
        (root, dirs)
    }

    #[test]
    fn every_directory_is_locked_and_keeps_its_id_across_restarts() {
        let (_root, dirs) = two_dirs();
        let first = LogDirs::open(&dirs, &dirs[0], BrokerId(1)).unwrap();
        let ids: Vec<_> = first.dirs().iter().map(|d| d.id).collect();
        assert_ne!(ids[0], ids[1]);
        // A second process is kept out of the second directory too.
        let err = DataDirLock::acquire(&dirs[1]).unwrap_err().to_string();
        assert!(err.contains(&dirs[1].display().to_string()), "{err}");
        drop(first);
        let again = LogDirs::open(&dirs, &dirs[0], BrokerId(1)).unwrap();
        assert_eq!(again.dirs().iter().map(|d| d.id).collect::<Vec<_>>(), ids);
        let text = std::fs::read_to_string(dirs[1].join(META_PROPERTIES)).unwrap();
        assert!(text.contains(&format!("directory.id={}", ids[1])), "{text}");
        assert!(text.contains("node.id=1"), "{text}");
    }

    #[test]
    fn another_nodes_directory_or_a_copied_one_stops_startup() {
        let (_root, dirs) = two_dirs();
        drop(LogDirs::open(&dirs, &dirs[0], BrokerId(1)).unwrap());
        let err = LogDirs::open(&dirs, &dirs[0], BrokerId(2))
            .unwrap_err()
            .to_string();
        assert!(err.contains("node.id 1"), "{err}");
        std::fs::copy(dirs[0].join(META_PROPERTIES), dirs[1].join(META_PROPERTIES)).unwrap();
        let err = LogDirs::open(&dirs, &dirs[0], BrokerId(1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("same directory.id"), "{err}");
    }

    #[test]
    fn new_replicas_go_to_the_least_loaded_uncordoned_directory() {
        let (_root, dirs) = two_dirs();
        let ld = LogDirs::open(&dirs, &dirs[0], BrokerId(1)).unwrap();
        let topic = TopicId(uuid::Uuid::new_v4());
        let mut chosen = Vec::new();
        for i in 0..4 {
            let p = ld.locate_or_place((topic, i), "t", topic, "").unwrap();
            chosen.push(p.dir.parent().unwrap().to_path_buf());
        }
        assert_eq!(
            chosen,
            vec![
                dirs[0].clone(),
                dirs[1].clone(),
                dirs[0].clone(),
                dirs[1].clone()
            ]
        );
        assert_eq!(ld.partition_counts(), vec![2, 2]);
        // Cordoning the first sends every new replica to the second.
        let cordoned = dirs[0].display().to_string();
        for i in 4..6 {
            let p = ld
                .locate_or_place((topic, i), "t", topic, &cordoned)
                .unwrap();
            assert_eq!(p.dir.parent().unwrap(), dirs[1]);
        }
        assert_eq!(
            ld.locate_or_place((topic, 9), "t", topic, "*"),
            Err(PlaceError::AllCordoned)
        );
        let both = format!("{},{}", dirs[0].display(), dirs[1].display());
        assert_eq!(ld.choose(&both), Err(PlaceError::AllCordoned));
    }

    #[test]
    fn a_replica_on_disk_stays_where_it_is_and_an_earlier_topics_is_stale() {
        let (_root, dirs) = two_dirs();
        let ld = LogDirs::open(&dirs, &dirs[0], BrokerId(1)).unwrap();
        let topic = TopicId(uuid::Uuid::new_v4());
        let old = TopicId(uuid::Uuid::new_v4());
        std::fs::create_dir_all(dirs[1].join("t-0")).unwrap();
        std::fs::create_dir_all(dirs[0].join("t-1")).unwrap();
        std::fs::write(
            dirs[0]
                .join("t-1")
                .join(crate::broker::PARTITION_METADATA_FILE),
            format!("version: 0\ntopic_id: {old}\n"),
        )
        .unwrap();
        let p = ld.locate_or_place((topic, 0), "t", topic, "").unwrap();
        assert_eq!(p.dir, dirs[1].join("t-0"));
        let p = ld.locate_or_place((topic, 1), "t", topic, "").unwrap();
        assert_eq!(p.stale, vec![dirs[0].join("t-1")]);
        // The second directory already holds one partition: the first gets it.
        assert_eq!(p.dir, dirs[0].join("t-1"));
    }
}
