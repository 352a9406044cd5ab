//! The `log-start-offset` checkpoint file of a partition directory.
//!
//! # Layout (16 bytes, big endian)
//!
//! | at | size | field                                   |
//! |----|------|-----------------------------------------|
//! | 0  | 4    | format version, u32 (= 1)               |
//! | 4  | 8    | log start offset, i64                   |
//! | 12 | 4    | CRC-32C of bytes 0..12, u32             |
//!
//! # Crash behaviour
//!
//! Written atomically: the bytes go to `log-start-offset.tmp`, which is
//! fsynced, renamed over `log-start-offset`, and the directory is fsynced. A
//! crash leaves either the old or the new file (plus possibly a stray `.tmp`,
//! deleted on open). A file that fails the size, version or CRC check is
//! ignored with a warning and the log start falls back to the first segment's
//! base offset.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use samsa_model::Offset;

use crate::error::StorageError;

/// File name of the checkpoint inside the partition directory.
pub const LOG_START_FILE: &str = "log-start-offset";
/// Temporary name used while writing it.
pub const LOG_START_TMP_FILE: &str = "log-start-offset.tmp";
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

/// The checkpointed log start, `None` if absent or unreadable (warned).
pub(crate) fn read(dir: &Path) -> Result<Option<Offset>, StorageError> {
    let path = dir.join(LOG_START_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", &path, e)),
    };
    let decoded = decode(&bytes);
    if decoded.is_none() {
        tracing::warn!(path = %path.display(), "ignoring damaged log start checkpoint");
    }
    Ok(decoded)
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
}
