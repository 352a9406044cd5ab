//! Per-partition log settings (Kafka's topic-level `segment.*`/`flush.*` configs).

/// How a partition log rolls segments, indexes and flushes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll before an append would make the active segment larger than this
    /// (`segment.bytes`, default 1 GiB). Capped at 4 GiB - 1 because index
    /// positions are u32. A single batch larger than this still gets a segment
    /// of its own.
    pub segment_bytes: u64,
    /// Roll when this many milliseconds have passed since the active segment's
    /// first append (`segment.ms`, default 7 days).
    pub segment_ms: i64,
    /// Add an offset index entry after this many bytes of log
    /// (`index.interval.bytes`, default 4096).
    pub index_interval_bytes: u32,
    /// Roll when either index of the active segment reaches this size
    /// (`segment.index.bytes`, default 10 MiB).
    pub segment_index_bytes: u64,
    /// fsync after this many records since the last flush (`flush.messages`;
    /// `u64::MAX` leaves flushing to the OS).
    pub flush_messages: u64,
    /// fsync on append when this many milliseconds have passed since the last
    /// flush (`flush.ms`; `u64::MAX` = never). Only checked on append.
    pub flush_ms: u64,
    /// Identity of the running OS boot (Linux: `/proc/sys/kernel/random/boot_id`),
    /// or `None` to always treat an unclean shutdown as a possible OS crash.
    /// When the log was last opened during this same boot, an unclean
    /// shutdown was a process crash: every completed write is still in the
    /// page cache exactly as written, so the active segment is loaded like a
    /// sealed one (index check and a header walk from the last index entry,
    /// torn tail cut) instead of re-reading and CRC-checking all of it. See
    /// [`crate::log::BOOT_ID_FILE`].
    pub boot_id: Option<u128>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 << 20,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            boot_id: None,
        }
    }
}

/// Largest log file size whose positions fit the index's u32.
pub(crate) const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;

/// The current OS boot's identity (`/proc/sys/kernel/random/boot_id`, a
/// UUID), `None` where the system does not provide one.
pub fn current_boot_id() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

impl LogConfig {
    /// `segment_bytes`, capped so positions fit a u32.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.min(SEGMENT_BYTES_MAX)
    }
}
