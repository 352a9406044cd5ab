//! Memory: the shared budget of request bytes (`queued.max.request.bytes`)
//! and returning freed heap memory to the operating system.
//!
//! Large fetch and produce buffers are freed as soon as their request is
//! answered, but glibc's allocator keeps freed pages in its arenas, so after a
//! burst of traffic the resident size stays at its peak. [`trim`] asks glibc to
//! give free pages back (`malloc_trim(0)`); the broker calls it periodically,
//! so the resident size follows the current load instead of the largest load
//! ever seen. Elsewhere (other allocators or platforms) it does nothing.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Granularity of the request memory budget: permits are KiB, so budgets up
/// to 4 TiB fit the semaphore's `u32` permit counts.
const REQUEST_MEMORY_UNIT_BYTES: usize = 1024;

/// The bytes of request frames all connections may hold at once
/// (`queued.max.request.bytes`). A connection reserves a frame's size before
/// reading its body and keeps the reservation until the response is written,
/// so at most the budget (plus one frame larger than the whole budget, which
/// waits until nothing else is held) is in memory, however many clients send
/// at once. Waiting connections are served in arrival order.
#[derive(Clone, Debug)]
pub struct RequestMemory {
    permits: Arc<Semaphore>,
    /// Budget in units.
    total_units: u32,
}

/// Bytes of one frame, reserved from a [`RequestMemory`]; released on drop.
#[derive(Debug)]
pub struct RequestReservation {
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestMemory {
    /// A budget of `bytes` (rounded up to whole KiB, at least one).
    pub fn new(bytes: usize) -> Self {
        let units = bytes
            .div_ceil(REQUEST_MEMORY_UNIT_BYTES)
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let total_units = u32::try_from(units).unwrap_or(u32::MAX);
        RequestMemory {
            permits: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
        }
    }

    /// Units a frame of `bytes` reserves: its size rounded up, capped at the
    /// whole budget so that a frame larger than the budget waits for all of
    /// it instead of forever.
    fn units_for(&self, bytes: usize) -> u32 {
        let units = bytes.div_ceil(REQUEST_MEMORY_UNIT_BYTES).max(1);
        u32::try_from(units)
            .unwrap_or(u32::MAX)
            .min(self.total_units)
    }

    /// Waits until `bytes` fit in the budget and reserves them.
    pub async fn reserve(&self, bytes: usize) -> RequestReservation {
        let units = self.units_for(bytes);
        // The semaphore is never closed; should that change, the budget stops
        // applying rather than blocking every connection.
        RequestReservation {
            _permit: self.permits.clone().acquire_many_owned(units).await.ok(),
        }
    }

    /// Bytes not reserved right now.
    pub fn available_bytes(&self) -> usize {
        self.permits.available_permits() * REQUEST_MEMORY_UNIT_BYTES
    }
}

/// Releases free heap pages to the OS; returns whether any were released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointers, only walks the allocator's own
    // free lists under its locks, and may be called from any thread.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Releases free heap pages to the OS (not available here: does nothing).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::RequestMemory;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Many concurrent holders never reserve more than the budget together,
    /// frames larger than the budget still get through (alone), and all
    /// waiters are eventually served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reservations_never_exceed_the_budget_and_all_get_served() {
        let memory = RequestMemory::new(64 * 1024);
        let held = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..40usize {
            let (memory, held, peak) = (memory.clone(), held.clone(), peak.clone());
            // 10 KiB .. 100 KiB frames, some larger than the whole budget.
            let bytes = 10 * 1024 * (1 + i % 10);
            tasks.push(tokio::spawn(async move {
                let reservation = memory.reserve(bytes).await;
                let charged = bytes.min(64 * 1024);
                let now = held.fetch_add(charged, Ordering::SeqCst) + charged;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                held.fetch_sub(charged, Ordering::SeqCst);
                drop(reservation);
            }));
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("every reservation is granted")
                .expect("task");
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= 64 * 1024, "held {peak} bytes at once");
        assert!(peak > 10 * 1024, "reservations should overlap ({peak})");
        assert_eq!(memory.available_bytes(), 64 * 1024);
    }

    #[tokio::test]
    async fn a_frame_waits_until_enough_is_released() {
        let memory = RequestMemory::new(10 * 1024);
        let first = memory.reserve(8 * 1024).await;
        let waiting = {
            let memory = memory.clone();
            tokio::spawn(async move { memory.reserve(4 * 1024).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "4 KiB cannot fit next to 8 KiB of 10"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("granted after the release")
            .expect("task");
        assert_eq!(memory.available_bytes(), 6 * 1024);
        drop(second);
    }
    #[test]
    fn trimming_after_freeing_a_large_heap_block_is_safe() {
        // Many medium blocks (below the mmap threshold) land on the heap.
        let blocks: Vec<Vec<u8>> = (0..256).map(|i| vec![i as u8; 64 * 1024]).collect();
        assert_eq!(blocks.iter().map(Vec::len).sum::<usize>(), 256 * 64 * 1024);
        drop(blocks);
        // Whether pages come back depends on the allocator state; the call
        // must simply be safe and leave the heap usable.
        let _ = super::trim();
        let again = vec![7u8; 1 << 20];
        assert_eq!(again.iter().map(|b| *b as usize).sum::<usize>(), 7 << 20);
    }
}
