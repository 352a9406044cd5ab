//! The disks under the data directory: their size and free space, and the
//! broker log line a full disk gets.
//!
//! A write that fails because the filesystem is full (`ENOSPC`, or `EDQUOT`
//! over a quota) is answered KAFKA_STORAGE_ERROR like any storage failure;
//! the log undoes the partial write and keeps accepting appends, so producing
//! works again as soon as space is freed, without a restart. What the
//! operator needs is a log line saying so: [`note_storage_error`] logs one
//! at ERROR with the path and the free space, at most once per
//! [`DISK_FULL_REPORT_INTERVAL`] per filesystem (all partitions of a log
//! directory share one; a flood of failing produces must not flood the log).
//! Every append path reports through it: produce (via
//! [`crate::errors::storage_error`]), a follower's replicated appends
//! (`replica.rs`: the partition's fetches pause and retry) and the group
//! coordinator's `__consumer_offsets` appends (`groups/`).
//!
//! A read that reaches stored bytes the disk damaged (a batch in a segment
//! that was already on disk whose header cannot be walked; see
//! `samsa_storage::segment`) is answered CORRUPT_MESSAGE and logged at ERROR
//! with the file and position, at most once per interval per file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use samsa_storage::StorageError;

/// How often a full disk is logged at most (per filesystem).
pub const DISK_FULL_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// (size, bytes available to this process) of the filesystem holding `dir`.
pub fn filesystem_bytes(dir: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `st` points to writable
    // memory of the right type, filled by statvfs when it returns 0.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    let unit = st.f_frsize;
    let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(unit)).unwrap_or(i64::MAX);
    Some((bytes(st.f_blocks), bytes(st.f_bavail)))
}

/// Allows one event per key per interval.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    last: Mutex<BTreeMap<u64, Instant>>,
}

impl RateLimiter {
    pub const fn new(interval: Duration) -> RateLimiter {
        RateLimiter {
            interval,
            last: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether an event for `key` at `now` may be reported: the first one,
    /// and then one once `interval` has passed since the last one reported.
    pub fn allow(&self, key: u64, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last.get(&key) {
            Some(at) if now.saturating_duration_since(*at) < self.interval => false,
            _ => {
                last.insert(key, now);
                true
            }
        }
    }
}

static DISK_FULL: RateLimiter = RateLimiter::new(DISK_FULL_REPORT_INTERVAL);
static DAMAGED_READ: RateLimiter = RateLimiter::new(DISK_FULL_REPORT_INTERVAL);

/// The path of a storage error caused by a full filesystem, if `e` is one.
pub fn disk_full_path(e: &StorageError) -> Option<&Path> {
    match e {
        StorageError::Io { path, source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) =>
        {
            Some(path)
        }
        _ => None,
    }
}

/// Logs a storage error caused by a full disk or by damaged stored bytes
/// (rate-limited, see the module docs); other errors are left to their callers.
pub fn note_storage_error(e: &StorageError) {
    if let StorageError::Corrupt { path, position, .. } = e {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        path.hash(&mut h);
        if DAMAGED_READ.allow(h.finish(), Instant::now()) {
            tracing::error!(
                path = %path.display(),
                position,
                error = %e,
                "a read reached a damaged batch; clients get CORRUPT_MESSAGE at this offset"
            );
        }
        return;
    }
    let Some(path) = disk_full_path(e) else {
        return;
    };
    let dir = path.parent().unwrap_or(path);
    let device = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir).map_or(0, |m| m.dev())
    };
    if !DISK_FULL.allow(device, Instant::now()) {
        return;
    }
    let (total, free) = filesystem_bytes(dir).unwrap_or((-1, -1));
    tracing::error!(
        path = %path.display(),
        free_bytes = free,
        total_bytes = total,
        error = %e,
        "the disk is full: writes fail with KAFKA_STORAGE_ERROR until space is freed \
         (no restart needed)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_key_per_interval() {
        let limiter = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(limiter.allow(1, t0));
        assert!(!limiter.allow(1, t0 + Duration::from_secs(1)));
        assert!(!limiter.allow(1, t0 + Duration::from_millis(9_999)));
        assert!(
            limiter.allow(2, t0 + Duration::from_secs(1)),
            "another disk"
        );
        assert!(limiter.allow(1, t0 + Duration::from_secs(10)));
        assert!(!limiter.allow(1, t0 + Duration::from_secs(15)));
        assert!(limiter.allow(1, t0 + Duration::from_secs(20)));
    }

    #[test]
    fn only_a_full_disk_is_reported() {
        let io = |code| StorageError::Io {
            op: "write",
            path: "/data/t-0/00000000000000000000.log".into(),
            source: std::io::Error::from_raw_os_error(code),
        };
        assert!(disk_full_path(&io(libc::ENOSPC)).is_some());
        assert!(disk_full_path(&io(libc::EDQUOT)).is_some());
        assert!(disk_full_path(&io(libc::EIO)).is_none());
        let dir = tempfile::tempdir().unwrap();
        let (total, free) = filesystem_bytes(dir.path()).unwrap();
        assert!(total > 0 && free >= 0 && free <= total);
    }
}
