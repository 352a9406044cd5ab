//! The `high-watermark` checkpoint of a partition directory.
//!
//! # Layout
//!
//! One line of ASCII text: the high watermark as a decimal i64 followed by
//! `\n` (e.g. `1234\n`). Surrounding whitespace is tolerated on read; anything
//! else (empty, not a number, not UTF-8) makes the file count as missing.
//!
//! # Crash behaviour
//!
//! Written atomically (`high-watermark.tmp`, fsync, rename, directory fsync;
//! see [`crate::checkpoint`]): a crash leaves the old or the new value, plus
//! possibly a stray `.tmp` that the log deletes on open. The value is only a
//! lower bound hint for the replica's committed offset after a restart, so
//! readers clamp it to the log's current `[log start, log end]` (the log may
//! have lost an unflushed tail, or moved its start, since it was written).

use std::fs;
use std::io;
use std::path::Path;

use samsa_model::Offset;

use crate::checkpoint;
use crate::error::StorageError;

/// File name of the high watermark checkpoint inside the partition directory.
pub const HIGH_WATERMARK_FILE: &str = "high-watermark";
/// Temporary name used while writing it.
pub const HIGH_WATERMARK_TMP_FILE: &str = "high-watermark.tmp";

fn encode(hw: Offset) -> String {
    format!("{hw}\n")
}

fn decode(bytes: &[u8]) -> Option<Offset> {
    std::str::from_utf8(bytes)
        .ok()?
        .trim()
        .parse::<i64>()
        .ok()
        .map(Offset)
}

/// Atomically replace the checkpoint with `hw`.
pub(crate) fn write(dir: &Path, hw: Offset) -> Result<(), StorageError> {
    checkpoint::write_atomically(
        dir,
        HIGH_WATERMARK_FILE,
        HIGH_WATERMARK_TMP_FILE,
        encode(hw).as_bytes(),
    )
}

/// The checkpointed value (unclamped); `None` when missing or unparsable
/// (warned) or unreadable.
pub(crate) fn read(dir: &Path) -> Option<Offset> {
    let path = dir.join(HIGH_WATERMARK_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot read high watermark");
            }
            return None;
        }
    };
    let decoded = decode(&bytes);
    if decoded.is_none() {
        tracing::warn!(path = %path.display(), "ignoring damaged high watermark checkpoint");
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()), None);
        write(dir.path(), Offset(1234)).expect("write");
        assert_eq!(
            fs::read_to_string(dir.path().join(HIGH_WATERMARK_FILE)).expect("text"),
            "1234\n"
        );
        assert_eq!(read(dir.path()), Some(Offset(1234)));
        assert!(!dir.path().join(HIGH_WATERMARK_TMP_FILE).exists());
        for garbage in [&b""[..], b"\n", b"12x\n", b"1 2\n", &[0xff, 0x31]] {
            fs::write(dir.path().join(HIGH_WATERMARK_FILE), garbage).expect("damage");
            assert_eq!(read(dir.path()), None, "{garbage:?}");
        }
        fs::write(dir.path().join(HIGH_WATERMARK_FILE), b" 77 \n").expect("spaces");
        assert_eq!(read(dir.path()), Some(Offset(77)));
    }
}
