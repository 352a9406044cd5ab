//! ApiVersions: the API table clients negotiate versions from.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use samsa_protocol::codec::api_version_entries;

/// Answers ApiVersions at a supported `version`.
pub fn handle(_request: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_version_entries())
}
