//! Delayed requests watched per partition (Kafka's purgatory: `DelayedFetch`
//! and `DelayedProduce` keyed by `TopicPartition`).
//!
//! A request that cannot be answered yet — a fetch below `min_bytes`, an
//! acks=all produce below the high watermark, a group reply waiting for its
//! records to replicate — takes a [`Watch`] on the partitions it waits for
//! and parks on it. Whoever changes a partition (an append, a high-watermark
//! move, a role or ISR change) wakes only the watches on that partition
//! ([`Purgatory::wake`]), so the cost of a wake-up follows the partitions
//! that changed, not the number of parked requests (one global signal woke
//! every parked request on every append).
//!
//! * **No lost wake-ups.** A waiter takes its watch first, then checks its
//!   condition, then parks; a wake that lands in between leaves a permit in
//!   the watch's [`Notify`], so the park returns at once.
//! * **Bounded.** At most [`PURGATORY_WATCHES_MAX`] (partition, request)
//!   entries are registered at once. A watch that would go past the bound is
//!   kept in a small overflow set instead, woken by every partition's
//!   changes (the old behaviour, only for what does not fit): still correct,
//!   only less precise.
//! * **Locks.** The maps are sharded `std` mutexes held only to insert,
//!   remove or collect the watchers of one partition, never across an await
//!   or I/O; the watchers are woken after the lock is released.
//!
//! A watch unregisters itself when dropped (the request answered, timed out
//! or its connection closed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use samsa_model::TopicId;
use tokio::sync::Notify;

/// A partition: (topic id, partition index).
pub type PartitionKey = (TopicId, i32);

/// The most (partition, request) pairs watched at once; more go to the
/// overflow set (see the module doc). A parked request watches each
/// partition it waits on once; requests in flight are bounded by
/// `max.connections` (one per connection) and partitions per request by the
/// frame size.
pub const PURGATORY_WATCHES_MAX: usize = 1 << 20;

/// Shards of the partition map (a power of two).
const SHARDS: usize = 16;

type Waiters = HashMap<u64, Arc<Notify>>;

#[derive(Default)]
struct Shard {
    by_partition: HashMap<PartitionKey, Waiters>,
}

/// Parked requests by the partitions they wait on.
pub struct Purgatory {
    shards: Vec<Mutex<Shard>>,
    /// Watches that did not fit under `watches_max`: woken by every wake.
    overflow: Mutex<Waiters>,
    /// How many watches `overflow` holds (read without its lock, so that a
    /// wake with no overflow takes only its partition's shard lock).
    overflowed: AtomicUsize,
    next_id: AtomicU64,
    /// (partition, request) entries registered in `shards`.
    watched: AtomicUsize,
    watches_max: usize,
    /// Watchers notified since start (for tests and metrics).
    woken: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn shard_of(key: &PartitionKey) -> usize {
    let (id, index) = key;
    let h = id.0.as_u64_pair();
    ((h.0 ^ h.1 ^ (*index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) as usize) & (SHARDS - 1)
}

impl Default for Purgatory {
    fn default() -> Self {
        Purgatory::new(PURGATORY_WATCHES_MAX)
    }
}

impl Purgatory {
    /// An empty purgatory holding at most `watches_max` partition entries.
    pub fn new(watches_max: usize) -> Purgatory {
        Purgatory {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            overflow: Mutex::new(HashMap::new()),
            overflowed: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            watched: AtomicUsize::new(0),
            watches_max,
            woken: AtomicU64::new(0),
        }
    }

    /// Starts watching `partitions` (duplicates are watched once). Take the
    /// watch before checking the condition it waits for.
    pub fn watch(self: &Arc<Self>, partitions: impl IntoIterator<Item = PartitionKey>) -> Watch {
        let mut keys: Vec<PartitionKey> = partitions.into_iter().collect();
        keys.sort_unstable_by_key(|(t, p)| (t.0, *p));
        keys.dedup();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        let fits = self
            .watched
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                n.checked_add(keys.len()).filter(|t| *t <= self.watches_max)
            })
            .is_ok();
        if fits {
            for key in &keys {
                lock(&self.shards[shard_of(key)])
                    .by_partition
                    .entry(*key)
                    .or_default()
                    .insert(id, notify.clone());
            }
        } else {
            lock(&self.overflow).insert(id, notify.clone());
            self.overflowed.fetch_add(1, Ordering::AcqRel);
        }
        Watch {
            purgatory: self.clone(),
            id,
            keys: if fits { keys } else { Vec::new() },
            overflow: !fits,
            notify,
        }
    }

    /// Wakes every request watching `partition` (and the overflow set).
    pub fn wake(&self, partition: PartitionKey) {
        let waiters: Vec<Arc<Notify>> = {
            let shard = lock(&self.shards[shard_of(&partition)]);
            match shard.by_partition.get(&partition) {
                Some(w) => w.values().cloned().collect(),
                None => Vec::new(),
            }
        };
        self.notify(&waiters);
        self.wake_overflow();
    }

    /// Wakes every parked request.
    pub fn wake_all(&self) {
        for shard in &self.shards {
            let waiters: Vec<Arc<Notify>> = lock(shard)
                .by_partition
                .values()
                .flat_map(|w| w.values().cloned())
                .collect();
            self.notify(&waiters);
        }
        self.wake_overflow();
    }

    fn wake_overflow(&self) {
        if self.overflowed.load(Ordering::Acquire) == 0 {
            return;
        }
        let waiters: Vec<Arc<Notify>> = {
            let overflow = lock(&self.overflow);
            if overflow.is_empty() {
                return;
            }
            overflow.values().cloned().collect()
        };
        self.notify(&waiters);
    }

    fn notify(&self, waiters: &[Arc<Notify>]) {
        for w in waiters {
            w.notify_one();
        }
        self.woken
            .fetch_add(waiters.len() as u64, Ordering::Relaxed);
    }

    /// Wake-ups delivered to parked requests since start.
    pub fn woken(&self) -> u64 {
        self.woken.load(Ordering::Relaxed)
    }

    /// (partition, request) entries currently watched (overflow excluded).
    pub fn watched(&self) -> usize {
        self.watched.load(Ordering::Acquire)
    }

    fn unwatch(&self, watch: &Watch) {
        if watch.overflow {
            lock(&self.overflow).remove(&watch.id);
            self.overflowed.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        for key in &watch.keys {
            let mut shard = lock(&self.shards[shard_of(key)]);
            if let Some(w) = shard.by_partition.get_mut(key) {
                w.remove(&watch.id);
                if w.is_empty() {
                    shard.by_partition.remove(key);
                }
            }
        }
        self.watched.fetch_sub(watch.keys.len(), Ordering::AcqRel);
    }
}

/// One parked request's registration; unregisters when dropped.
pub struct Watch {
    purgatory: Arc<Purgatory>,
    id: u64,
    keys: Vec<PartitionKey>,
    overflow: bool,
    notify: Arc<Notify>,
}

impl Watch {
    /// Returns once a watched partition changed since the watch was taken or
    /// since the last call returned (possibly at once: a wake-up is never
    /// lost, but one may be spurious).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.purgatory.unwatch(self);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(p: i32) -> PartitionKey {
        (TopicId(uuid::Uuid::from_u128(7)), p)
    }

    fn woken(w: &Watch) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(20), w.changed())
                .await
                .is_ok()
        })
    }

    #[test]
    fn wakes_only_watchers_of_the_partition() {
        let p = Arc::new(Purgatory::default());
        let a = p.watch([key(0), key(0), key(1)]);
        let b = p.watch([key(2)]);
        assert_eq!(p.watched(), 3, "duplicates watched once");
        for _ in 0..1000 {
            p.wake(key(2));
        }
        assert!(!woken(&a));
        assert!(woken(&b), "a wake before the park is kept");
        p.wake(key(1));
        assert!(woken(&a));
        drop(a);
        drop(b);
        assert_eq!(p.watched(), 0);
        assert!(p.shards.iter().all(|s| lock(s).by_partition.is_empty()));
    }

    #[test]
    fn over_the_bound_watches_overflow_and_still_wake() {
        let p = Arc::new(Purgatory::new(2));
        let a = p.watch([key(0), key(1)]);
        let b = p.watch([key(5)]);
        assert_eq!(p.watched(), 2);
        assert_eq!(lock(&p.overflow).len(), 1);
        p.wake(key(9));
        assert!(woken(&b), "overflow watches wake on any partition");
        assert!(!woken(&a));
        drop(b);
        assert!(lock(&p.overflow).is_empty());
        p.wake_all();
        assert!(woken(&a));
    }
}
