//! ApiVersions: the API table clients negotiate versions from, and (v3+) the
//! supported and finalized features (KIP-584), which the admin clients'
//! DescribeFeatures reads.
//!
//! Supported features come from `samsa_metadata::features::SUPPORTED`;
//! finalized ones from the image: those above level 0, with
//! `finalized_features_epoch` the metadata offset of the last feature change
//! (-1 before any). As Kafka since KIP-1022: v4+ lists a supported range
//! starting at 0 as it is; v3 cannot carry a 0 minimum, so such a range is
//! listed from 1, and one that is only 0-0 is left out.

use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use samsa_metadata::features::{self, SUPPORTED};
use samsa_metadata::MetadataImage;
use samsa_protocol::codec::api_version_entries;

use super::s;

/// Answers ApiVersions at a supported `version` from `image`.
pub fn handle(
    image: &MetadataImage,
    _request: ApiVersionsRequest,
    version: i16,
) -> ApiVersionsResponse {
    let response = ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_version_entries());
    if version < 3 {
        return response;
    }
    let supported = SUPPORTED
        .iter()
        .filter_map(|f| {
            let min = if version < 4 && f.min == 0 {
                if f.max == 0 {
                    return None;
                }
                1
            } else {
                f.min
            };
            Some(
                SupportedFeatureKey::default()
                    .with_name(s(f.name))
                    .with_min_version(min)
                    .with_max_version(f.max),
            )
        })
        .collect();
    let finalized = features::finalized(image)
        .into_iter()
        .map(|(name, level)| {
            FinalizedFeatureKey::default()
                .with_name(s(name))
                .with_min_version_level(level)
                .with_max_version_level(level)
        })
        .collect();
    response
        .with_supported_features(supported)
        .with_finalized_features_epoch(image.features_epoch)
        .with_finalized_features(finalized)
        .with_zk_migration_ready(false)
}
