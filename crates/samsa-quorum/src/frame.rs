//! Checksummed frames and atomic file replacement, shared by every file this
//! crate writes.
//!
//! Frame layout (the same framing as samsa-metadata's `metadata.log`):
//!
//! ```text
//! offset  size  field
//! 0       4     payload length N (u32, big endian)
//! 4       4     CRC-32C of the payload (u32, big endian)
//! 8       N     payload (UTF-8 JSON in every file of this crate)
//! ```
//!
//! A reader never allocates for a length before checking it against a limit and
//! against the bytes actually present.
//!
//! Small state files (`vote`, `committed`) hold exactly one frame and are
//! replaced atomically: the new content is written to `<name>.tmp`, fsynced,
//! renamed over `<name>`, and the directory is fsynced. A crash leaves either the
//! old or the new file (plus possibly a stale `.tmp`, ignored and overwritten).
//! Files that are only hints (`committed`) skip both fsyncs ([`Fsync::Lazy`]);
//! their readers treat a damaged file as absent.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::QuorumError;

/// Bytes of a frame before its payload.
pub(crate) const FRAME_HEADER_BYTES: usize = 8;
/// The largest state file payload (a vote or a log id is far smaller).
pub(crate) const STATE_BYTES_MAX: usize = 64 * 1024;

/// Appends one frame holding `payload` to `out`.
pub(crate) fn put_frame(out: &mut Vec<u8>, payload: &[u8]) {
    // Callers bound payloads far below 4 GiB; saturate rather than wrap.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Why the bytes at a position are not an intact frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes than the header or the declared payload length.
    Short,
    /// The declared length exceeds the limit.
    TooLarge(usize),
    /// The payload does not match its CRC.
    Crc,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Short => write!(f, "frame cut short"),
            FrameError::TooLarge(n) => write!(f, "frame length {n} over the limit"),
            FrameError::Crc => write!(f, "frame CRC mismatch"),
        }
    }
}

/// Parses the frame at the start of `bytes`: its payload and the frame's total
/// length.
pub(crate) fn parse_frame(
    bytes: &[u8],
    payload_bytes_max: usize,
) -> Result<(&[u8], usize), FrameError> {
    let Some(header) = bytes.get(..FRAME_HEADER_BYTES) else {
        return Err(FrameError::Short);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len > payload_bytes_max {
        return Err(FrameError::TooLarge(len));
    }
    let Some(payload) = bytes.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
        return Err(FrameError::Short);
    };
    if crc32c::crc32c(payload) != crc {
        return Err(FrameError::Crc);
    }
    Ok((payload, FRAME_HEADER_BYTES + len))
}

/// fsyncs a directory so that renames and creations inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), QuorumError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(QuorumError::io(dir))
}

/// Replaces `dir/name` with `bytes` atomically and durably (see the module doc).
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), QuorumError> {
    replace_file(dir, name, bytes, Fsync::Durable)
}

/// Whether a file replacement is fsynced.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fsync {
    /// Written, fsynced, renamed, directory fsynced: survives power loss.
    Durable,
    /// Written and renamed only: a crash may leave the old content, or (after a
    /// power loss) a damaged file that the CRC rejects. For hints only.
    Lazy,
}

fn replace_file(dir: &Path, name: &str, bytes: &[u8], sync: Fsync) -> Result<(), QuorumError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    {
        let mut f = File::create(&tmp).map_err(QuorumError::io(&tmp))?;
        f.write_all(bytes).map_err(QuorumError::io(&tmp))?;
        if sync == Fsync::Durable {
            f.sync_all().map_err(QuorumError::io(&tmp))?;
        }
    }
    std::fs::rename(&tmp, &path).map_err(QuorumError::io(&path))?;
    match sync {
        Fsync::Durable => sync_dir(dir),
        Fsync::Lazy => Ok(()),
    }
}

/// Writes a one-frame state file atomically.
pub(crate) fn write_state<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
    sync: Fsync,
) -> Result<(), QuorumError> {
    let payload = serde_json::to_vec(value)?;
    let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    put_frame(&mut bytes, &payload);
    replace_file(dir, name, &bytes, sync)
}

/// Reads a one-frame state file: `None` if it does not exist, an error if it
/// exists but is not exactly one intact frame that decodes.
pub(crate) fn read_state<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, QuorumError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(QuorumError::io(path)(e)),
    };
    let (payload, len) = parse_frame(&bytes, STATE_BYTES_MAX)
        .map_err(|e| QuorumError::corrupt(path, e.to_string()))?;
    if len != bytes.len() {
        return Err(QuorumError::corrupt(path, "trailing bytes after the frame"));
    }
    serde_json::from_slice(payload)
        .map(Some)
        .map_err(|e| QuorumError::corrupt(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip_and_every_cut_is_short() {
        let mut buf = Vec::new();
        put_frame(&mut buf, b"hello");
        assert_eq!(parse_frame(&buf, 100).unwrap(), (&b"hello"[..], 13));
        for cut in 0..buf.len() {
            assert_eq!(parse_frame(&buf[..cut], 100), Err(FrameError::Short));
        }
        assert_eq!(parse_frame(&buf, 4), Err(FrameError::TooLarge(5)));
        let mut bad = buf.clone();
        bad[10] ^= 1;
        assert_eq!(parse_frame(&bad, 100), Err(FrameError::Crc));
    }

    #[test]
    fn huge_declared_length_does_not_allocate() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(
            parse_frame(&bytes, 1 << 20),
            Err(FrameError::TooLarge(u32::MAX as usize))
        );
        assert_eq!(parse_frame(&bytes, usize::MAX), Err(FrameError::Short));
    }

    #[test]
    fn state_files_roundtrip_and_reject_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        assert_eq!(read_state::<u64>(&path).unwrap(), None);
        write_state(dir.path(), "s", &42u64, Fsync::Durable).unwrap();
        assert_eq!(read_state::<u64>(&path).unwrap(), Some(42));
        write_state(dir.path(), "s", &43u64, Fsync::Lazy).unwrap();
        assert_eq!(read_state::<u64>(&path).unwrap(), Some(43));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            read_state::<u64>(&path),
            Err(QuorumError::Corrupt { .. })
        ));
    }
}
