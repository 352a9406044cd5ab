//! Features (KIP-584): DescribeFeatures (the admin clients read a broker's
//! ApiVersions v3+ feature fields) and UpdateFeatures, as
//! `kafka-features.sh` uses them.

use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, UpdateFeaturesRequest};
use kafka_protocol::protocol::StrBytes;

use super::{opt_string, Admin};
use crate::error::ClientError;

/// The ApiVersions version feature descriptions are read at (v4: a supported
/// range may start at 0, KIP-1022).
const FEATURES_API_VERSIONS_VERSION: i16 = 4;

/// One supported feature and its finalized level (0 when not finalized).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureInfo {
    pub name: String,
    pub supported_min: i16,
    pub supported_max: i16,
    pub finalized_level: i16,
}

/// The features a broker reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureMetadata {
    /// Supported features, by name, with their finalized levels.
    pub features: Vec<FeatureInfo>,
    /// The metadata offset of the last feature change, -1 when unknown.
    pub finalized_epoch: i64,
}

/// How UpdateFeatures may move a level (its v1+ `upgrade_type`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FeatureUpgradeType {
    Upgrade = 1,
    SafeDowngrade = 2,
    UnsafeDowngrade = 3,
}

impl Admin {
    /// The supported and finalized features of any broker.
    pub async fn describe_features(&self) -> Result<FeatureMetadata, ClientError> {
        let conn = self.client.any_connection().await?;
        let resp = conn
            .send_version(
                &ApiVersionsRequest::default(),
                FEATURES_API_VERSIONS_VERSION,
            )
            .await?;
        ClientError::check(resp.error_code, None, "ApiVersions")?;
        let mut features: Vec<FeatureInfo> = resp
            .supported_features
            .iter()
            .map(|f| FeatureInfo {
                name: f.name.to_string(),
                supported_min: f.min_version,
                supported_max: f.max_version,
                finalized_level: resp
                    .finalized_features
                    .iter()
                    .find(|x| x.name == f.name)
                    .map_or(0, |x| x.max_version_level),
            })
            .collect();
        features.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(FeatureMetadata {
            features,
            finalized_epoch: resp.finalized_features_epoch,
        })
    }

    /// Sets finalized feature levels (all or none); `validate_only` checks
    /// without changing anything.
    pub async fn update_features(
        &self,
        updates: &[(String, i16, FeatureUpgradeType)],
        validate_only: bool,
    ) -> Result<(), ClientError> {
        let timeout = self.operation_timeout_ms;
        let (resp, _) = self
            .client
            .send_any(ApiKey::UpdateFeatures, |v| {
                UpdateFeaturesRequest::default()
                    .with_timeout_ms(timeout)
                    .with_validate_only(validate_only)
                    .with_feature_updates(
                        updates
                            .iter()
                            .map(|(name, level, t)| {
                                FeatureUpdateKey::default()
                                    .with_feature(StrBytes::from_string(name.clone()))
                                    .with_max_version_level(*level)
                                    .with_allow_downgrade(
                                        v == 0 && *t != FeatureUpgradeType::Upgrade,
                                    )
                                    .with_upgrade_type(*t as i8)
                            })
                            .collect(),
                    )
            })
            .await?;
        ClientError::check(
            resp.error_code,
            opt_string(&resp.error_message),
            "UpdateFeatures",
        )?;
        for r in &resp.results {
            ClientError::check(r.error_code, opt_string(&r.error_message), "UpdateFeatures")?;
        }
        Ok(())
    }
}
