//! Request parsing and response encoding.
//!
//! Frame layout (both directions):
//!
//! ```text
//! offset  size  field
//! 0       4     size S of what follows (i32, big endian); requests with
//!               S > socket.request.max.bytes close the connection unread
//! 4       S     request: header (v0/v1: api_key i16, api_version i16,
//!               correlation_id i32, client_id nullable string; v2 adds tagged
//!               fields) + body.
//!               response: header (correlation_id i32; v1 adds tagged fields;
//!               ApiVersions responses always use v0) + body.
//! ```
//!
//! Parsing order: the API key and version are read first; a version outside our
//! range is refused before the body is looked at; the body is then walked by
//! [`crate::guard`] so that no length from the wire can cause an allocation larger
//! than the frame; only then is it decoded by `kafka-protocol`.

use std::fmt;
use std::fs::File;
use std::io;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::guard;
use crate::versions::{supported, SUPPORTED_APIS};

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
}

impl Request {
    /// The request's API version.
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// Why a frame could not become a [`Request`]. Except where noted the connection
/// is closed, as Kafka does for malformed requests.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("request frame of {0} bytes is too short for a header")]
    Truncated(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// A version samsa does not implement. For ApiVersions the caller answers
    /// with [`api_versions_unsupported`] and keeps the connection.
    #[error("unsupported version {version} of {api_key:?}")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed request header: {0}")]
    Header(String),
    #[error("{api_key:?} v{version} body refused before decoding: {source}")]
    Guard {
        api_key: ApiKey,
        version: i16,
        source: guard::GuardError,
    },
    #[error("malformed {api_key:?} v{version} body: {reason}")]
    Body {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Parses one request frame (without its 4-byte size prefix).
pub fn parse_request(mut frame: Bytes) -> Result<Request, ParseError> {
    let len = frame.len();
    let (Some(key_bytes), Some(version_bytes), Some(corr_bytes)) =
        (frame.get(0..2), frame.get(2..4), frame.get(4..8))
    else {
        return Err(ParseError::Truncated(len));
    };
    let raw_key = i16::from_be_bytes([key_bytes[0], key_bytes[1]]);
    let version = i16::from_be_bytes([version_bytes[0], version_bytes[1]]);
    let correlation_id =
        i32::from_be_bytes([corr_bytes[0], corr_bytes[1], corr_bytes[2], corr_bytes[3]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| ParseError::UnknownApiKey(raw_key))?;
    let Some(range) = supported(api_key) else {
        return Err(ParseError::UnknownApiKey(raw_key));
    };
    if version < range.min || version > range.max {
        return Err(ParseError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| ParseError::Header(e.to_string()))?;
    // Bytes after the end of the schema are tolerated, as Kafka's parser does
    // (librdkafka 2.16 sends three extra bytes after a Metadata v12 body).
    guard::request_body_len(raw_key, version, &frame).map_err(|source| ParseError::Guard {
        api_key,
        version,
        source,
    })?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(|e| ParseError::Body {
        api_key,
        version,
        reason: e.to_string(),
    })?;
    Ok(Request {
        header,
        api_key,
        body,
    })
}

/// Why a response could not be encoded (a bug in a handler, never client input).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Encodes a response frame, size prefix included, as one buffer (file-backed
/// record sets are read into it).
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, EncodeError> {
    let frame = encode_response_frame(api_key, version, correlation_id, body)?;
    frame.to_bytes().map_err(|e| EncodeError {
        api_key,
        version,
        reason: format!("reading a file-backed record set: {e}"),
    })
}

/// Record sets at least this large are referenced by a [`ResponseFrame`]
/// instead of being copied into the encoded bytes.
const ZERO_COPY_BYTES_MIN: usize = 1024;

/// Bytes of an open file that a [`ResponseFrame`] carries by reference, to be
/// written from the file to the socket piece by piece when the frame goes
/// out, or read whole ([`ResponseFrame::to_bytes`]). Implemented by the
/// broker over its storage's log ranges, so this crate knows nothing about
/// segments.
pub trait FileRegion: Send + Sync + fmt::Debug {
    /// The open file.
    fn file(&self) -> &File;
    /// Position of the first byte in the file.
    fn position(&self) -> u64;
    /// Number of bytes.
    fn len(&self) -> usize;
    /// Whether the region holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends the region's bytes to `out`.
    fn read_append(&self, out: &mut BytesMut) -> io::Result<()>;
}

/// One piece of an encoded [`ResponseFrame`].
#[derive(Debug)]
pub enum Chunk {
    /// Bytes in memory.
    Bytes(Bytes),
    /// Bytes in a file, sent without being read into memory.
    File(Box<dyn FileRegion>),
}

impl Chunk {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(f) => f.len(),
        }
    }

    /// Whether the chunk holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An encoded response frame (size prefix included) as chunks to be written
/// back to back. The record sets of a Fetch response are chunks of their own:
/// in-memory record sets share the bytes read from storage, file-backed ones
/// (see [`FileRecordSets`]) are [`Chunk::File`]s, so neither is copied.
#[derive(Debug, Default)]
pub struct ResponseFrame {
    chunks: Vec<Chunk>,
}

impl ResponseFrame {
    /// The chunks, in order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// Total bytes of the frame, size prefix included.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum()
    }

    /// Whether the frame has no bytes (never true for an encoded response).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole frame in one buffer, file-backed chunks read from their files.
    pub fn to_bytes(&self) -> io::Result<BytesMut> {
        let mut buf = BytesMut::with_capacity(self.len());
        for chunk in &self.chunks {
            match chunk {
                Chunk::Bytes(b) => buf.extend_from_slice(b),
                Chunk::File(f) => f.read_append(&mut buf)?,
            }
        }
        Ok(buf)
    }
}

impl From<BytesMut> for ResponseFrame {
    fn from(buf: BytesMut) -> Self {
        ResponseFrame {
            chunks: vec![Chunk::Bytes(buf.freeze())],
        }
    }
}

/// Bytes of the zeroed, never-touched memory that placeholders are cut from:
/// the largest file-backed record set plus one byte per set in a response.
const PLACEHOLDER_BYTES: usize = FILE_RECORD_SET_BYTES_MAX + FILE_RECORD_SETS_MAX;
/// Largest file-backed record set; larger ones are read into memory.
pub const FILE_RECORD_SET_BYTES_MAX: usize = 64 << 20;
/// Most file-backed record sets in one response; further ones are read into memory.
pub const FILE_RECORD_SETS_MAX: usize = 4096;

/// Zeroed memory that is allocated once, lazily (the pages are never written
/// or read, so they take no RSS), and only ever used for its addresses.
fn placeholder_memory() -> &'static [u8] {
    static MEMORY: OnceLock<&'static [u8]> = OnceLock::new();
    MEMORY.get_or_init(|| Box::leak(vec![0u8; PLACEHOLDER_BYTES].into_boxed_slice()))
}

/// Record sets of one Fetch response that stay in their files.
///
/// `kafka-protocol` encodes a partition's `records` from a `Bytes`, so each
/// file-backed record set is represented there by a *placeholder*: a `Bytes`
/// of the right length whose address is unique within the response, cut from
/// untouched zeroed memory. [`encode_response_frame_with_files`] recognises
/// each placeholder by address and length when the encoder hands it over and
/// emits the set's file regions in its place; the placeholder's bytes are
/// never read or sent.
#[derive(Debug, Default)]
pub struct FileRecordSets {
    sets: Vec<FileRecordSet>,
}

/// One registered set: the placeholder's address and length, and the
/// regions (taken when the encoder reaches the placeholder).
#[derive(Debug)]
struct FileRecordSet {
    address: usize,
    len: usize,
    regions: Vec<Box<dyn FileRegion>>,
}

impl FileRecordSets {
    /// Registers one partition's record set made of `regions` (in order) and
    /// returns the placeholder to put in its `records` field, or `None` (the
    /// caller reads the bytes instead) if the set is smaller than
    /// [`ZERO_COPY_BYTES_MIN`], larger than [`FILE_RECORD_SET_BYTES_MAX`], or
    /// the response already has [`FILE_RECORD_SETS_MAX`] sets.
    pub fn add(&mut self, regions: Vec<Box<dyn FileRegion>>) -> Option<Bytes> {
        let len: usize = regions.iter().map(|r| r.len()).sum();
        let index = self.sets.len();
        if !(ZERO_COPY_BYTES_MIN..=FILE_RECORD_SET_BYTES_MAX).contains(&len)
            || index >= FILE_RECORD_SETS_MAX
        {
            return None;
        }
        let placeholder = placeholder_memory().get(index..index + len)?;
        self.sets.push(FileRecordSet {
            address: placeholder.as_ptr() as usize,
            len,
            regions,
        });
        Some(Bytes::from_static(placeholder))
    }

    /// Number of registered sets.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// Whether no set was registered.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Whether `bytes` is one of the registered placeholders.
    fn is_placeholder(&self, bytes: &[u8]) -> bool {
        let at = bytes.as_ptr() as usize;
        self.sets
            .iter()
            .any(|set| set.address == at && set.len == bytes.len())
    }

    /// Takes the regions of the set whose placeholder is exactly `src`.
    fn take(&mut self, src: &[u8]) -> Option<Vec<Box<dyn FileRegion>>> {
        let at = src.as_ptr() as usize;
        let set = self
            .sets
            .iter_mut()
            .find(|set| set.address == at && set.len == src.len() && !set.regions.is_empty())?;
        Some(std::mem::take(&mut set.regions))
    }
}

/// Encodes a response frame, size prefix included, without copying the
/// record sets of a Fetch response.
pub fn encode_response_frame(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<ResponseFrame, EncodeError> {
    encode_response_frame_with_files(
        api_key,
        version,
        correlation_id,
        body,
        FileRecordSets::default(),
    )
}

/// [`encode_response_frame`] for a response whose `records` fields may hold
/// placeholders registered in `files`; each becomes that set's file chunks.
/// Fails if a registered set was not encoded (a placeholder that did not
/// reach the encoder would leave its file bytes unsent).
pub fn encode_response_frame_with_files(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    files: FileRecordSets,
) -> Result<ResponseFrame, EncodeError> {
    let fail = |e: String| EncodeError {
        api_key,
        version,
        reason: e,
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    let ResponseKind::Fetch(fetch) = body else {
        if !files.is_empty() {
            return Err(fail(
                "file-backed record sets outside a Fetch response".into(),
            ));
        }
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, header_version)
            .map_err(|e| fail(e.to_string()))?;
        body.encode(&mut buf, version)
            .map_err(|e| fail(e.to_string()))?;
        let size = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        return Ok(ResponseFrame::from(buf));
    };
    let shared: Vec<Bytes> = fetch
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.records.clone())
        .filter(|r| r.len() >= ZERO_COPY_BYTES_MIN && !files.is_placeholder(r))
        .collect();
    let mut buf = ChunkedBuf {
        cur: BytesMut::with_capacity(256 + 64 * shared.len()),
        chunks: Vec::with_capacity(2 * shared.len() + 2),
        shared,
        next_shared: 0,
        files,
        before_cur: 0,
    };
    header
        .encode(&mut buf, header_version)
        .map_err(|e| fail(e.to_string()))?;
    fetch
        .encode(&mut buf, version)
        .map_err(|e| fail(e.to_string()))?;
    buf.flush();
    if buf.files.sets.iter().any(|set| !set.regions.is_empty()) {
        return Err(fail("a file-backed record set was not encoded".into()));
    }
    let size = i32::try_from(buf.before_cur).map_err(|_| fail("response too large".into()))?;
    let mut chunks = Vec::with_capacity(buf.chunks.len() + 1);
    chunks.push(Chunk::Bytes(Bytes::copy_from_slice(&size.to_be_bytes())));
    chunks.append(&mut buf.chunks);
    Ok(ResponseFrame { chunks })
}

/// An encode target that keeps the given record sets (`shared`, in encoding
/// order) as chunks of their own instead of copying them: when
/// `put_slice` is handed exactly the bytes of the next shared record set
/// (same address and length), the bytes so far become a chunk and the record
/// set is referenced. Anything else is copied, so the output is always the
/// plain encoding.
struct ChunkedBuf {
    cur: BytesMut,
    chunks: Vec<Chunk>,
    shared: Vec<Bytes>,
    next_shared: usize,
    files: FileRecordSets,
    /// Bytes in `chunks` (the logical offset where `cur` starts).
    before_cur: usize,
}

impl ChunkedBuf {
    fn flush(&mut self) {
        if !self.cur.is_empty() {
            let done = self.cur.split().freeze();
            self.before_cur += done.len();
            self.chunks.push(Chunk::Bytes(done));
        }
    }
}

// SAFETY: every method delegates to the inner `BytesMut`, which upholds the
// `BufMut` contract; `put_slice` either delegates or appends a whole chunk
// without touching `cur`'s uninitialised capacity.
unsafe impl BufMut for ChunkedBuf {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded with the caller's guarantee (cnt bytes of
        // `chunk_mut()`, which is `cur`'s, were initialised).
        unsafe { self.cur.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.cur.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= ZERO_COPY_BYTES_MIN {
            if let Some(regions) = self.files.take(src) {
                self.flush();
                self.before_cur += src.len();
                self.chunks.extend(regions.into_iter().map(Chunk::File));
                return;
            }
            if let Some(next) = self.shared.get(self.next_shared) {
                if next.as_ptr() == src.as_ptr() && next.len() == src.len() {
                    let next = next.clone();
                    self.next_shared += 1;
                    self.flush();
                    self.before_cur += next.len();
                    self.chunks.push(Chunk::Bytes(next));
                    return;
                }
            }
        }
        self.cur.extend_from_slice(src);
    }
}

impl ByteBufMut for ChunkedBuf {
    fn offset(&self) -> usize {
        self.before_cur + self.cur.len()
    }

    // Gaps are used by the record batch encoder, never by message encoding;
    // positions before `cur` are out of reach and ignored.
    fn seek(&mut self, offset: usize) {
        if let Some(rel) = offset.checked_sub(self.before_cur) {
            self.cur.resize(rel, 0);
        }
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let (Some(start), Some(end)) = (
            r.start.checked_sub(self.before_cur),
            r.end.checked_sub(self.before_cur),
        ) else {
            return &mut [];
        };
        self.cur.get_mut(start..end).unwrap_or_default()
    }
}

/// Our API table as ApiVersions entries.
pub fn api_version_entries() -> Vec<kafka_protocol::messages::api_versions_response::ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|a| {
            kafka_protocol::messages::api_versions_response::ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min)
                .with_max_version(a.max)
        })
        .collect()
}

/// The answer to an ApiVersions request of a version newer than ours: error 35
/// (UNSUPPORTED_VERSION) in the v0 body format with our API table, so the client
/// can retry with a version we know.
pub fn api_versions_unsupported(correlation_id: i32) -> BytesMut {
    let body = ApiVersionsResponse::default()
        .with_error_code(35)
        .with_api_keys(api_version_entries());
    // v0 header and body cannot fail to encode: no field has a version limit.
    match encode_response(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ResponseKind::ApiVersions(body),
    ) {
        Ok(b) => b,
        Err(_) => {
            let mut buf = BytesMut::new();
            buf.put_i32(10);
            buf.put_i32(correlation_id);
            buf.put_i16(35);
            buf.put_i32(0);
            buf
        }
    }
}
