//! Moving a replica to another log directory while it keeps serving
//! (AlterReplicaLogDirs; Kafka's future replica and its
//! `ReplicaAlterLogDirsThread`).
//!
//! A move creates a *future log* `<topic>-<partition>.<32 hex>-future` (with
//! its `partition.metadata`) in the target log directory, starting at the
//! current log's start. One background thread (`samsa-log-mover`) copies
//! every moving partition's batches from the current log into its future
//! log, byte for byte with their offsets and epochs
//! (`PartitionLog::append_replicated`, which keeps producer state and the
//! leader epoch cache too), a chunk per partition per round, and follows the
//! tail; a truncation of the current log (a leader change) is followed as a
//! follower follows its leader (the future log is cut where its latest epoch
//! ends in the current log). Once the future log has caught up the thread
//! takes the partition's state lock (write side: no append can run), copies
//! the last batches, and swaps:
//!
//! 1. both logs are closed (flushed, clean-shutdown marker);
//! 2. the current directory is renamed `<name>.<32 hex>-retired`;
//! 3. the future directory is renamed `<name>` in the target log directory —
//!    the commit point;
//! 4. the log is reopened there and put in the partition's place;
//! 5. the retired directory is renamed `-delete` and removed in the
//!    background.
//!
//! # Crash behaviour
//!
//! A crash before step 2 leaves the live log in place and the future log
//! beside it: the next start resumes the copy from the future log's end
//! (a moving partition's `-future` directory is recognised by its
//! `partition.metadata`). Startup ([`recover_swaps`]) finishes an
//! interrupted swap before anything else reads the directories: a
//! `-retired` directory whose `<name>` exists in some log directory (step 3
//! happened) is deleted; one whose `<name>` is nowhere (the crash fell
//! between steps 2 and 3) is renamed back to `<name>`, and the copy resumes.
//! The live log is never deleted before its copy is in place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use samsa_model::{Offset, TimestampMs};
use samsa_storage::{PartitionLog, StorageError};

use crate::broker::{Broker, PARTITION_METADATA_FILE};
use crate::data_dir::read_partition_metadata;
use crate::partition::Partition;
use crate::purgatory::PartitionKey;

/// Ending of a future log's directory (Kafka's).
pub const FUTURE_SUFFIX: &str = "-future";
/// Ending of a log directory between the two renames of a swap.
pub const RETIRED_SUFFIX: &str = "-retired";
/// Bytes copied per partition per round.
pub const COPY_CHUNK_BYTES_MAX: usize = 1 << 20;
/// How long the mover waits when no moving partition had anything to copy.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Why a move cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("creating the future log {dir}: {source}")]
    Create {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("future log {dir}: {source}")]
    Storage {
        dir: PathBuf,
        #[source]
        source: StorageError,
    },
}

/// One moving partition.
struct Move {
    /// Index of the target log directory.
    target: usize,
    future: Arc<PartitionLog>,
}

/// The moves in progress, and the thread that runs them.
#[derive(Default)]
pub struct Moves {
    moving: Mutex<HashMap<PartitionKey, Arc<Move>>>,
    wake: Condvar,
    started: std::sync::OnceLock<()>,
}

/// What a moving partition looks like from outside (DescribeLogDirs).
pub struct FutureReplica {
    pub target: usize,
    pub size_bytes: u64,
    pub log_end: Offset,
}

impl Moves {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<PartitionKey, Arc<Move>>> {
        match self.moving.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The future replica of `key`, if it is moving.
    pub fn future_of(&self, key: PartitionKey) -> Option<FutureReplica> {
        self.map().get(&key).map(|m| FutureReplica {
            target: m.target,
            size_bytes: m.future.size_bytes(),
            log_end: m.future.log_end_offset(),
        })
    }

    /// Stops the move of `key`, if any, and returns its future log's
    /// directory (for the caller to delete).
    pub fn cancel(&self, key: PartitionKey) -> Option<PathBuf> {
        let m = self.map().remove(&key)?;
        if let Err(e) = m.future.close() {
            tracing::warn!(dir = %m.future.dir().display(), error = %e, "closing a cancelled future log");
        }
        Some(m.future.dir().to_path_buf())
    }

    fn register(&self, key: PartitionKey, m: Move) {
        self.map().insert(key, Arc::new(m));
        self.wake.notify_all();
    }

    /// Starts the mover thread once (it ends when the broker is dropped;
    /// it holds the broker only while copying, never while it waits).
    pub fn ensure_thread(self: &Arc<Self>, broker: &Arc<Broker>) {
        self.started.get_or_init(|| {
            let weak = Arc::downgrade(broker);
            let moves = self.clone();
            let spawned = std::thread::Builder::new()
                .name("samsa-log-mover".into())
                .spawn(move || run(weak, moves));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start the log mover thread");
            }
        });
        self.wake.notify_all();
    }
}

/// The name of partition `part`'s directory.
fn dir_name(part: &Partition) -> String {
    format!("{}-{}", part.topic, part.index.get())
}

/// Starts moving `part` to log directory `target` (an index into the
/// broker's log directories). Moving it to the directory that already holds
/// it cancels a move in progress; asking again for the target of the move in
/// progress changes nothing.
pub fn start(broker: &Arc<Broker>, part: &Arc<Partition>, target: usize) -> Result<(), MoveError> {
    let key = (part.topic_id, part.index.get());
    let current = broker.log_dirs.log_dir_of(key).map(|d| d.path.clone());
    let Some(target_dir) = broker.log_dirs.dirs().get(target).map(|d| d.path.clone()) else {
        return Ok(());
    };
    let existing = broker.moves.map().get(&key).map(|m| m.target);
    if existing == Some(target) {
        return Ok(());
    }
    if let Some(old) = broker.moves.cancel(key) {
        delete_dir(&old);
    }
    if current.as_deref() == Some(target_dir.as_path()) {
        return Ok(());
    }
    let dir = target_dir.join(format!(
        "{}.{}{FUTURE_SUFFIX}",
        dir_name(part),
        uuid::Uuid::new_v4().simple()
    ));
    let future = create_future(&dir, part)?;
    tracing::info!(topic = %part.topic, partition = part.index.get(), to = %target_dir.display(), "moving the replica to another log directory");
    broker.moves.register(
        key,
        Move {
            target,
            future: Arc::new(future),
        },
    );
    broker.moves.ensure_thread(broker);
    Ok(())
}

fn create_future(dir: &Path, part: &Partition) -> Result<PartitionLog, MoveError> {
    let create = |source| MoveError::Create {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(create)?;
    crate::broker::write_partition_metadata(dir, part.topic_id).map_err(create)?;
    let storage = |source| MoveError::Storage {
        dir: dir.to_path_buf(),
        source,
    };
    let log = PartitionLog::open(dir, part.log().config()).map_err(storage)?;
    log.reset_to(part.log().log_start_offset())
        .map_err(storage)?;
    Ok(log)
}

/// Resumes the move of `part` whose future log a restart found in log
/// directory `target` (`dir`): opens it and registers it. A future log in
/// the directory that already holds the partition is deleted.
pub fn resume(broker: &Broker, part: &Partition, target: usize, dir: &Path) {
    let key = (part.topic_id, part.index.get());
    let current = broker.log_dirs.log_dir_of(key).map(|d| d.path.clone());
    let same = broker
        .log_dirs
        .dirs()
        .get(target)
        .is_some_and(|d| Some(&d.path) == current.as_ref());
    if same || broker.moves.map().contains_key(&key) {
        delete_dir(dir);
        return;
    }
    match PartitionLog::open(dir, part.log().config()) {
        Ok(future) => {
            tracing::info!(dir = %dir.display(), "resuming the move of a replica to another log directory");
            broker.moves.register(
                key,
                Move {
                    target,
                    future: Arc::new(future),
                },
            );
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "the future log of an interrupted move cannot be opened; deleting it (the copy starts again when asked)");
            delete_dir(dir);
        }
    }
}

/// The future log directories of `part` found in the log directories:
/// `(log dir index, path)`, only those whose `partition.metadata` names
/// `part`'s topic.
pub fn find_futures(broker: &Broker, part: &Partition) -> Vec<(usize, PathBuf)> {
    let prefix = format!("{}.", dir_name(part));
    let mut out = Vec::new();
    for (i, d) in broker.log_dirs.dirs().iter().enumerate() {
        let Ok(entries) = std::fs::read_dir(&d.path) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(FUTURE_SUFFIX))
            else {
                continue;
            };
            if id.len() == 32
                && id.bytes().all(|b| b.is_ascii_hexdigit())
                && read_partition_metadata(&e.path()) == Some(part.topic_id)
            {
                out.push((i, e.path()));
            }
        }
    }
    out
}

fn delete_dir(dir: &Path) {
    if let Some(marked) = crate::broker::mark_for_deletion(dir) {
        samsa_storage::deleter::remove_in_background(vec![marked]);
    }
}

/// The mover thread: copies a chunk for every moving partition per round,
/// swaps those caught up, and sleeps when there is nothing to do.
fn run(weak: Weak<Broker>, all: Arc<Moves>) {
    loop {
        let Some(broker) = weak.upgrade() else {
            return;
        };
        let moves: Vec<(PartitionKey, Arc<Move>)> = broker
            .moves
            .map()
            .iter()
            .map(|(k, m)| (*k, m.clone()))
            .collect();
        let mut busy = false;
        for (key, m) in moves {
            let Some(part) = broker.partition(key.0, key.1) else {
                if let Some(dir) = broker.moves.cancel(key) {
                    delete_dir(&dir);
                }
                continue;
            };
            match step(&broker, &part, &m) {
                Ok(Step::Copied) => busy = true,
                Ok(Step::Idle) => {}
                Ok(Step::Swapped) => {
                    busy = true;
                    broker.moves.map().remove(&key);
                }
                Err(e) => {
                    tracing::error!(topic = %part.topic, partition = key.1, error = %e, "moving the replica failed; the move is abandoned and the replica stays where it is");
                    if let Some(dir) = broker.moves.cancel(key) {
                        delete_dir(&dir);
                    }
                }
            }
        }
        drop(broker);
        if !busy {
            let guard = all.map();
            let timeout = if guard.is_empty() {
                Duration::from_secs(1)
            } else {
                IDLE_WAIT
            };
            drop(all.wake.wait_timeout(guard, timeout));
        }
    }
}

enum Step {
    Copied,
    Idle,
    Swapped,
}

/// Brings `future` in line with `current`'s history and copies up to
/// [`COPY_CHUNK_BYTES_MAX`]; returns whether it copied anything.
fn catch_up(current: &PartitionLog, future: &PartitionLog) -> Result<bool, StorageError> {
    // Follow a truncation of the current log (KIP-101 style): cut the
    // future log where its latest epoch ends in the current log.
    if let Some(epoch) = future.latest_epoch() {
        let (_, end) = current.end_offset_for_epoch(epoch);
        if end.get() >= 0 && end < future.log_end_offset() {
            future.truncate_to(end)?;
        }
    }
    if current.log_end_offset() < future.log_end_offset() {
        future.truncate_to(current.log_end_offset())?;
    }
    if current.log_start_offset() > future.log_end_offset() {
        future.reset_to(current.log_start_offset())?;
    }
    let start = future.log_end_offset();
    let end = current.log_end_offset();
    if start >= end {
        return Ok(false);
    }
    let read = current.read(start, COPY_CHUNK_BYTES_MAX, end, true)?;
    if read.bytes.is_empty() {
        return Ok(false);
    }
    future.append_replicated(&read.bytes, now())?;
    Ok(true)
}

fn now() -> TimestampMs {
    crate::handlers::produce::now_ms()
}

fn step(broker: &Broker, part: &Partition, m: &Move) -> Result<Step, MoveError> {
    let storage = |source| MoveError::Storage {
        dir: m.future.dir().to_path_buf(),
        source,
    };
    let current = part.log();
    if catch_up(&current, &m.future).map_err(storage)? {
        return Ok(Step::Copied);
    }
    if m.future.log_end_offset() != current.log_end_offset() {
        return Ok(Step::Idle);
    }
    // Caught up: flush outside the lock, then finish under it.
    m.future.flush().map_err(storage)?;
    Ok(if swap(broker, part, m)? {
        Step::Swapped
    } else {
        Step::Idle
    })
}

/// Steps 1-5 of the module docs, under the write side of the partition's
/// state lock (no append runs meanwhile; the tail copied here is what was
/// appended since the last round). Returns whether it swapped (not when
/// the current log changed under the copy; the next round tries again).
fn swap(broker: &Broker, part: &Partition, m: &Move) -> Result<bool, MoveError> {
    let key = (part.topic_id, part.index.get());
    let mut st = part.state_mut();
    let current = part.log();
    let storage = |source| MoveError::Storage {
        dir: m.future.dir().to_path_buf(),
        source,
    };
    while catch_up(&current, &m.future).map_err(storage)? {}
    if m.future.log_end_offset() != current.log_end_offset() {
        return Ok(false);
    }
    // Epochs the current log knows with no batch yet (a leader that has
    // not appended in its epoch).
    let latest = m.future.latest_epoch();
    for (epoch, _) in current.epoch_entries() {
        if latest.is_none_or(|l| epoch > l) {
            m.future.assign_epoch(epoch).map_err(storage)?;
        }
    }
    if current.log_start_offset() > m.future.log_start_offset() {
        m.future
            .delete_records_before(current.log_start_offset())
            .map_err(storage)?;
    }
    let Some(target_dir) = broker.log_dirs.dirs().get(m.target).map(|d| d.path.clone()) else {
        return Ok(false);
    };
    let name = dir_name(part);
    let live_dir = current.dir().to_path_buf();
    let new_dir = target_dir.join(&name);
    let retired = live_dir.with_file_name(format!(
        "{name}.{}{RETIRED_SUFFIX}",
        uuid::Uuid::new_v4().simple()
    ));
    m.future.close().map_err(storage)?;
    current.close().map_err(|source| MoveError::Storage {
        dir: live_dir.clone(),
        source,
    })?;
    let io = |dir: &Path| {
        let dir = dir.to_path_buf();
        move |source| MoveError::Create { dir, source }
    };
    let renamed = rename_synced(&live_dir, &retired).and_then(|()| {
        rename_synced(m.future.dir(), &new_dir).inspect_err(|_| {
            // Put the live log back; the move is abandoned.
            if let Err(e) = rename_synced(&retired, &live_dir) {
                tracing::error!(dir = %retired.display(), error = %e, "could not put the live log back after a failed swap; the next start does it");
            }
        })
    });
    let config = current.config();
    if let Err(e) = renamed {
        reopen(part, &mut st, &live_dir, config);
        return Err(io(&new_dir)(e));
    }
    match PartitionLog::open(&new_dir, config) {
        Ok(log) => {
            let log = Arc::new(log);
            if let Err(e) = log.write_high_watermark(part.high_watermark()) {
                tracing::warn!(dir = %new_dir.display(), error = %e, "writing the high watermark after a move");
            }
            part.replace_log(&mut st, log);
            broker.log_dirs.set_placed(key, m.target);
        }
        Err(e) => {
            // The moved log is in place on disk (the commit point passed);
            // the partition is unusable until a restart reopens it.
            tracing::error!(dir = %new_dir.display(), error = %e, "opening the moved log failed; restart the broker");
            return Err(storage(e));
        }
    }
    drop(st);
    delete_dir(&retired);
    tracing::info!(topic = %part.topic, partition = part.index.get(), dir = %new_dir.display(), "replica moved to another log directory");
    Ok(true)
}

/// Reopens the live log at `dir` after a swap that did not happen.
fn reopen(
    part: &Partition,
    st: &mut crate::partition::StateWrite<'_>,
    dir: &Path,
    config: samsa_storage::LogConfig,
) {
    match PartitionLog::open(dir, config) {
        Ok(log) => {
            part.replace_log(st, Arc::new(log));
        }
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "reopening the live log after a failed move; restart the broker")
        }
    }
}

/// Renames `from` to `to` and syncs both parent directories.
fn rename_synced(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    for parent in [to.parent(), from.parent()].into_iter().flatten() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Finishes swaps a crash interrupted (see the module docs), in every log
/// directory of `dirs`, before the broker reads them.
pub fn recover_swaps(dirs: &[PathBuf]) {
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((live_name, id)) = name
                .strip_suffix(RETIRED_SUFFIX)
                .and_then(|r| r.rsplit_once('.'))
            else {
                continue;
            };
            if id.len() != 32
                || !id.bytes().all(|b| b.is_ascii_hexdigit())
                || !e.path().join(PARTITION_METADATA_FILE).exists()
            {
                continue;
            }
            let committed = dirs.iter().any(|d| d.join(live_name).is_dir());
            if committed {
                tracing::info!(dir = %e.path().display(), "removing the old copy of a replica whose move finished before a crash");
                delete_dir(&e.path());
            } else {
                tracing::info!(dir = %e.path().display(), "a move was interrupted before its swap: putting the live log back");
                if let Err(err) = rename_synced(&e.path(), &dir.join(live_name)) {
                    tracing::error!(dir = %e.path().display(), error = %err, "could not put the live log back");
                }
            }
        }
    }
}
