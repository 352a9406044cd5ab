//! Returning freed heap memory to the operating system.
//!
//! Large fetch and produce buffers are freed as soon as their request is
//! answered, but glibc's allocator keeps freed pages in its arenas, so after a
//! burst of traffic the resident size stays at its peak. [`trim`] asks glibc to
//! give free pages back (`malloc_trim(0)`); the broker calls it periodically,
//! so the resident size follows the current load instead of the largest load
//! ever seen. Elsewhere (other allocators or platforms) it does nothing.

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
