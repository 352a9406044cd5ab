//! The offset checkpoint files of a partition directory: `log-start-offset`
//! (the log start offset) and `recovery-point` (the base offset of the first
//! segment that may hold bytes not yet fsynced; see [`crate::log`]).
//!
//! # Layout (16 bytes, big endian; the same for both files)
//!
//! | at | size | field                                   |
//! |----|------|-----------------------------------------|
//! | 0  | 4    | format version, u32 (= 1)               |
//! | 4  | 8    | the offset, i64                         |
//! | 12 | 4    | CRC-32C of bytes 0..12, u32             |
//!
//! # Crash behaviour
//!
//! Written atomically: the bytes go to `log-start-offset.tmp`, which is
//! fsynced, renamed over `log-start-offset`, and the directory is fsynced. A
//! crash leaves either the old or the new file (plus possibly a stray `.tmp`,
//! deleted on open). A file that fails the size, version or CRC check is
//! ignored with a warning: the log start falls back to the first segment's
//! base offset, the recovery point to the first segment (every segment is
//! then recovered, the safe direction).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use samsa_model::Offset;

use crate::error::StorageError;

/// File name of the checkpoint inside the partition directory.
pub const LOG_START_FILE: &str = "log-start-offset";
/// Temporary name used while writing it.
pub const LOG_START_TMP_FILE: &str = "log-start-offset.tmp";
/// File name of the recovery point inside the partition directory.
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Temporary name used while writing it.
pub const RECOVERY_POINT_TMP_FILE: &str = "recovery-point.tmp";
const CHECKPOINT_BYTES: usize = 16;
const CHECKPOINT_VERSION: u32 = 1;
const _: () = assert!(CHECKPOINT_BYTES == 4 + 8 + 4);

fn encode(offset: Offset) -> [u8; CHECKPOINT_BYTES] {
    let mut out = [0u8; CHECKPOINT_BYTES];
    out[..4].copy_from_slice(&CHECKPOINT_VERSION.to_be_bytes());
    out[4..12].copy_from_slice(&offset.get().to_be_bytes());
    let crc = crc32c::crc32c(&out[..12]);
    out[12..].copy_from_slice(&crc.to_be_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<Offset> {
    let b: &[u8; CHECKPOINT_BYTES] = bytes.try_into().ok()?;
    let [v0, v1, v2, v3, o0, o1, o2, o3, o4, o5, o6, o7, c0, c1, c2, c3] = *b;
    if u32::from_be_bytes([v0, v1, v2, v3]) != CHECKPOINT_VERSION {
        return None;
    }
    if crc32c::crc32c(&b[..12]) != u32::from_be_bytes([c0, c1, c2, c3]) {
        return None;
    }
    Some(Offset(i64::from_be_bytes([o0, o1, o2, o3, o4, o5, o6, o7])))
}

/// fsync a directory so renames, creations and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}

/// Atomically replace the checkpoint with `offset`.
pub(crate) fn write(dir: &Path, offset: Offset) -> Result<(), StorageError> {
    write_atomically(dir, LOG_START_FILE, LOG_START_TMP_FILE, &encode(offset))
}

/// Atomically replace `dir/name` with `bytes`: write and fsync `dir/tmp_name`,
/// rename it over `name`, fsync the directory. A crash leaves the old or the
/// new file, plus possibly the temporary one (the log deletes `*.tmp` on open).
pub(crate) fn write_atomically(
    dir: &Path,
    name: &str,
    tmp_name: &str,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let tmp = dir.join(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StorageError::io("create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| StorageError::io("write", &tmp, e))?;
    let dst = dir.join(name);
    fs::rename(&tmp, &dst).map_err(|e| StorageError::io("rename", &dst, e))?;
    sync_dir(dir)
}

/// Atomically replace the recovery point with `offset`.
pub(crate) fn write_recovery_point(dir: &Path, offset: Offset) -> Result<(), StorageError> {
    write_atomically(
        dir,
        RECOVERY_POINT_FILE,
        RECOVERY_POINT_TMP_FILE,
        &encode(offset),
    )
}

/// What an offset checkpoint file held.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    Absent,
    /// Present but failing the size, version or CRC check (warned).
    Damaged,
    Offset(Offset),
}

fn read_named(dir: &Path, name: &str) -> Result<Stored, StorageError> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Stored::Absent),
        Err(e) => return Err(StorageError::io("read", &path, e)),
    };
    Ok(match decode(&bytes) {
        Some(offset) => Stored::Offset(offset),
        None => {
            tracing::warn!(path = %path.display(), "ignoring damaged offset checkpoint");
            Stored::Damaged
        }
    })
}

/// The checkpointed log start, `None` if absent or unreadable (warned).
pub(crate) fn read(dir: &Path) -> Result<Option<Offset>, StorageError> {
    Ok(match read_named(dir, LOG_START_FILE)? {
        Stored::Offset(offset) => Some(offset),
        Stored::Absent | Stored::Damaged => None,
    })
}

/// The recovery point file.
pub(crate) fn read_recovery_point(dir: &Path) -> Result<Stored, StorageError> {
    read_named(dir, RECOVERY_POINT_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("read"), None);
        write(dir.path(), Offset(1234)).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(Offset(1234)));
        write(dir.path(), Offset(99)).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(Offset(99)));
        let path = dir.path().join(LOG_START_FILE);
        let mut bytes = fs::read(&path).expect("bytes");
        bytes[6] ^= 1;
        fs::write(&path, &bytes).expect("damage");
        assert_eq!(read(dir.path()).expect("read"), None);
        fs::write(&path, b"short").expect("damage");
        assert_eq!(read(dir.path()).expect("read"), None);
    }

    #[test]
    fn recovery_point_tells_absent_from_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let read = || read_recovery_point(dir.path()).expect("read");
        assert_eq!(read(), Stored::Absent);
        write_recovery_point(dir.path(), Offset(77)).expect("write");
        assert_eq!(read(), Stored::Offset(Offset(77)));
        assert_eq!(
            super::read(dir.path()).expect("log start"),
            None,
            "separate files"
        );
        fs::write(dir.path().join(RECOVERY_POINT_FILE), b"\0\0\0\x01junk").expect("damage");
        assert_eq!(read(), Stored::Damaged);
    }
}
