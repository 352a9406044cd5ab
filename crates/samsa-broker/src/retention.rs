//! Time and size retention (`retention.ms`, `retention.bytes`) for topics whose
//! `cleanup.policy` includes `delete`: whole segments are deleted, oldest
//! first, and the log start offset moves past them. Consumers positioned below
//! the new start get OFFSET_OUT_OF_RANGE and apply `auto.offset.reset`.
//!
//! Nothing at or above the high watermark is ever deleted (Kafka's rule: a
//! segment is deletable only once the next segment's base offset is at or
//! below the high watermark): those records may not be on every ISR member
//! yet, so a producer sending old `CreateTime` timestamps must not lose an
//! acknowledged, not yet replicated batch.

use samsa_model::TimestampMs;
use samsa_storage::StorageError;

use crate::partition::Partition;

/// Deletes the segments of `p` that retention no longer keeps; returns how
/// many. A segment is expired by time when its largest timestamp is older than
/// `retention.ms`; by size while the log without it is still at least
/// `retention.bytes` (Kafka's rule). Only whole segments wholly below the
/// high watermark are deleted; the active one is rolled first if it alone is
/// expired.
pub fn enforce(p: &Partition, now: TimestampMs) -> Result<usize, StorageError> {
    let settings = p.settings();
    if !settings.delete_retention {
        return Ok(0);
    }
    let mut deleted = 0;
    loop {
        let segments = p.log().segments_info();
        let Some(oldest) = segments.first() else {
            break;
        };
        if oldest.size_bytes == 0 {
            break;
        }
        let total: u64 = segments.iter().map(|s| s.size_bytes).sum();
        let expired_by_time = settings.retention_ms >= 0
            && oldest
                .max_timestamp
                .is_some_and(|ts| now.get().saturating_sub(ts.get()) > settings.retention_ms);
        let expired_by_size = settings.retention_bytes >= 0
            && total - oldest.size_bytes >= settings.retention_bytes as u64;
        if !expired_by_time && !expired_by_size {
            break;
        }
        if oldest.next_offset > p.deletable_below() {
            break;
        }
        if p.log().delete_oldest_segment()?.is_none() {
            break;
        }
        deleted += 1;
    }
    Ok(deleted)
}
