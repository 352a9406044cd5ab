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
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(|e| EncodeError {
            api_key,
            version,
            reason: e.to_string(),
        })?;
    body.encode(&mut buf, version).map_err(|e| EncodeError {
        api_key,
        version,
        reason: e.to_string(),
    })?;
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
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
