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

/// Encodes a response frame, size prefix included.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, EncodeError> {
    let frame = encode_response_frame(api_key, version, correlation_id, body)?;
    let mut buf = BytesMut::with_capacity(frame.len());
    for chunk in frame.chunks() {
        buf.extend_from_slice(chunk);
    }
    Ok(buf)
}

/// Record sets at least this large are referenced by a [`ResponseFrame`]
/// instead of being copied into the encoded bytes.
const ZERO_COPY_BYTES_MIN: usize = 1024;

/// An encoded response frame (size prefix included) as chunks to be written
/// back to back. The record sets of a Fetch response are chunks of their own
/// that share the bytes read from storage, so they are never copied.
#[derive(Debug, Default)]
pub struct ResponseFrame {
    chunks: Vec<Bytes>,
}

impl ResponseFrame {
    /// The chunks, in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// Total bytes of the frame, size prefix included.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// Whether the frame has no bytes (never true for an encoded response).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<BytesMut> for ResponseFrame {
    fn from(buf: BytesMut) -> Self {
        ResponseFrame {
            chunks: vec![buf.freeze()],
        }
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
    let fail = |e: String| EncodeError {
        api_key,
        version,
        reason: e,
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    let ResponseKind::Fetch(fetch) = body else {
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
        .filter(|r| r.len() >= ZERO_COPY_BYTES_MIN)
        .collect();
    let mut buf = ChunkedBuf {
        cur: BytesMut::with_capacity(256 + 64 * shared.len()),
        chunks: Vec::with_capacity(2 * shared.len() + 2),
        shared,
        next_shared: 0,
        before_cur: 0,
    };
    header
        .encode(&mut buf, header_version)
        .map_err(|e| fail(e.to_string()))?;
    fetch
        .encode(&mut buf, version)
        .map_err(|e| fail(e.to_string()))?;
    buf.flush();
    let size = i32::try_from(buf.before_cur).map_err(|_| fail("response too large".into()))?;
    let mut chunks = Vec::with_capacity(buf.chunks.len() + 1);
    chunks.push(Bytes::copy_from_slice(&size.to_be_bytes()));
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
    chunks: Vec<Bytes>,
    shared: Vec<Bytes>,
    next_shared: usize,
    /// Bytes in `chunks` (the logical offset where `cur` starts).
    before_cur: usize,
}

impl ChunkedBuf {
    fn flush(&mut self) {
        if !self.cur.is_empty() {
            let done = self.cur.split().freeze();
            self.before_cur += done.len();
            self.chunks.push(done);
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
            if let Some(next) = self.shared.get(self.next_shared) {
                if next.as_ptr() == src.as_ptr() && next.len() == src.len() {
                    let next = next.clone();
                    self.next_shared += 1;
                    self.flush();
                    self.before_cur += next.len();
                    self.chunks.push(next);
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
