//! Read-only memory maps of segment file ranges, used only as the source of
//! socket writes.
//!
//! A fetch response's file-backed record sets go to the socket straight from
//! the page cache: the range is mapped and the mapping handed to `write(2)`,
//! so the kernel copies page cache → socket buffer once. Reading the range
//! into a buffer first (`pread`) costs a second copy; `sendfile(2)` avoids it
//! but was slower still on loopback (see `server::copy_region`).
//!
//! Safety of a mapping whose file shrinks: a segment can be truncated (a
//! follower's log truncation) while a response that points into it is being
//! written. Touching a mapped page past the new end of file from user space
//! raises SIGBUS. This module never does: the bytes are only read by the
//! kernel inside `write(2)`, where the failed access is caught by the
//! kernel's user-copy fixup and the call returns `EFAULT` (or a short count
//! first). The connection then closes, as it did when a positioned read came
//! back short. A range past the end of file when it is mapped is refused up
//! front. Record bytes below the end of a segment are never rewritten in
//! place, so the mapped bytes do not change while mapped.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// A read-only, shared mapping of `len` bytes of a file from `position`.
/// Unmapped on drop.
#[derive(Debug)]
pub struct MappedRange {
    /// Start of the mapping (page aligned).
    base: *mut libc::c_void,
    /// Length of the mapping (`skip + len`).
    map_len: usize,
    /// Bytes between the page boundary and `position`.
    skip: usize,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone; the raw
// pointer is only dereferenced by the kernel (see the module docs), from
// whichever thread writes it out.
unsafe impl Send for MappedRange {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for MappedRange {}

fn page_size() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096)
}

impl MappedRange {
    /// Maps `len` bytes of `file` from `position`. Fails with
    /// `UnexpectedEof` when the file ends before `position + len` (it was
    /// truncated after the range was found), and with `InvalidInput` for an
    /// empty range.
    pub fn map(file: &File, position: u64, len: usize) -> io::Result<MappedRange> {
        if len == 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let end = position
            .checked_add(len as u64)
            .ok_or(io::ErrorKind::InvalidInput)?;
        if file.metadata()?.len() < end {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let page = page_size();
        let aligned = position - position % page;
        let skip = usize::try_from(position - aligned).map_err(|_| io::ErrorKind::InvalidInput)?;
        let map_len = skip.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
        let offset = libc::off_t::try_from(aligned).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: a fresh mapping chosen by the kernel (no address hint), of
        // a file descriptor that stays open for the call; the result is
        // checked against MAP_FAILED before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(MappedRange {
            base,
            map_len,
            skip,
            len,
        })
    }

    /// The mapped bytes, to be passed to a socket write and nothing else:
    /// reading them from user space could fault if the file shrinks (see
    /// the module docs).
    pub fn bytes_for_write(&self) -> &[u8] {
        // SAFETY: `base + skip .. base + skip + len` lies inside the live
        // mapping made by `map`, which lasts as long as `self`; the bytes are
        // not modified while mapped.
        unsafe { std::slice::from_raw_parts(self.base.cast::<u8>().add(self.skip), self.len) }
    }
}

impl Drop for MappedRange {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping `map` created, unmapped once.
        unsafe {
            libc::munmap(self.base, self.map_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::FileExt;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.log");
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.write_all(bytes).unwrap();
        (dir, f)
    }

    #[test]
    fn maps_unaligned_ranges_exactly() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let (_dir, f) = file_with(&data);
        for (pos, len) in [
            (0usize, 1usize),
            (1, 4095),
            (4095, 2),
            (4096, 4096),
            (5000, 15_000),
        ] {
            let m = MappedRange::map(&f, pos as u64, len).unwrap();
            // Compared through a socket write, the only use the bytes have.
            let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
            let expected = data[pos..pos + len].to_vec();
            let reader = std::thread::spawn(move || {
                let mut got = vec![0u8; len];
                b.read_exact(&mut got).unwrap();
                got
            });
            a.write_all(m.bytes_for_write()).unwrap();
            assert_eq!(reader.join().unwrap(), expected, "range {pos}+{len}");
        }
    }

    #[test]
    fn ranges_past_the_end_or_empty_are_refused() {
        let (_dir, f) = file_with(&[1u8; 10_000]);
        let err = MappedRange::map(&f, 9_000, 1_001).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let err = MappedRange::map(&f, 0, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(MappedRange::map(&f, u64::MAX - 1, 10).is_err());
    }

    /// The segment shrinks after its range was mapped: writing the mapping
    /// fails with an error (EFAULT) instead of killing the process with
    /// SIGBUS, and the bytes that were still in the file went out intact.
    #[test]
    fn a_file_truncated_under_the_mapping_fails_the_write_not_the_process() {
        let data = vec![0xabu8; 64 * 1024];
        let (_dir, f) = file_with(&data);
        let m = MappedRange::map(&f, 0, data.len()).unwrap();
        f.set_len(4096).unwrap();
        f.sync_all().unwrap();
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            b.read_to_end(&mut got).unwrap();
            got
        });
        let result = a.write_all(m.bytes_for_write());
        drop(a);
        let got = reader.join().unwrap();
        let err = result.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EFAULT), "{err}");
        assert!(
            got.len() <= 4096,
            "{} bytes written past the new end",
            got.len()
        );
        assert!(got.iter().all(|b| *b == 0xab));
        // The file is still readable as it now is.
        let mut first = [0u8; 16];
        f.read_exact_at(&mut first, 0).unwrap();
        assert_eq!(first, [0xab; 16]);
    }
}
