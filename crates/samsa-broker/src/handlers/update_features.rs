//! UpdateFeatures (KIP-584; v1 adds `upgrade_type` and `validate_only`,
//! KIP-778; v2 answers with the top-level error only): changes finalized
//! feature levels through the controller.
//!
//! Any broker answers: the change is a metadata write, which a node that does
//! not lead the quorum forwards to the leader (as Kafka 4.x brokers forward
//! UpdateFeatures to the active controller); with no leader the answer is
//! NOT_CONTROLLER. All updates are applied or none: when any is invalid the
//! top-level error is that update's (INVALID_UPDATE_VERSION for an unknown
//! feature, a level outside the supported range, a downgrade without a
//! downgrade type, or any downgrade of `metadata.version`; INVALID_REQUEST for
//! an unknown upgrade type or a feature named twice), and in v0-1 every
//! feature's result carries it, as Kafka's controller answers. A commit that
//! fails otherwise is FEATURE_UPDATE_FAILED.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};
use samsa_metadata::features::{FeatureError, FeatureUpdate, UpgradeType};
use samsa_metadata::quorum::QuorumError;
use samsa_metadata::ControllerError;

use super::s;
use crate::broker::Broker;

/// Answers UpdateFeatures at a supported `version`.
pub fn handle(
    broker: &Broker,
    request: UpdateFeaturesRequest,
    version: i16,
) -> UpdateFeaturesResponse {
    let names: Vec<_> = request
        .feature_updates
        .iter()
        .map(|u| u.feature.clone())
        .collect();
    let outcome = updates(&request, version).and_then(|updates| {
        match broker.admin(|c| c.update_features(&updates, request.validate_only)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(FeatureError::InvalidUpdateVersion(m))) => {
                Err((ResponseError::InvalidUpdateVersion, m))
            }
            Ok(Err(FeatureError::InvalidRequest(m))) => Err((ResponseError::InvalidRequest, m)),
            Err(e) => Err((commit_error(&e), e.to_string())),
        }
    });
    let (code, message) = match outcome {
        Ok(()) => (0, None),
        Err((e, m)) => (e.code(), Some(s(m))),
    };
    let results = if version <= 1 {
        names
            .into_iter()
            .map(|feature| {
                UpdatableFeatureResult::default()
                    .with_feature(feature)
                    .with_error_code(code)
                    .with_error_message(message.clone())
            })
            .collect()
    } else {
        Vec::new()
    };
    UpdateFeaturesResponse::default()
        .with_error_code(code)
        .with_error_message(message)
        .with_results(results)
}

/// The request's updates; v0's `allow_downgrade` is a safe downgrade.
fn updates(
    request: &UpdateFeaturesRequest,
    version: i16,
) -> Result<Vec<FeatureUpdate>, (ResponseError, String)> {
    request
        .feature_updates
        .iter()
        .map(|u| {
            let upgrade_type = if version == 0 {
                if u.allow_downgrade {
                    UpgradeType::SafeDowngrade
                } else {
                    UpgradeType::Upgrade
                }
            } else {
                UpgradeType::from_wire(u.upgrade_type).ok_or_else(|| {
                    (
                        ResponseError::InvalidRequest,
                        format!(
                            "Invalid upgrade type {} for feature {}.",
                            u.upgrade_type,
                            u.feature.as_str()
                        ),
                    )
                })?
            };
            Ok(FeatureUpdate {
                name: u.feature.to_string(),
                level: u.max_version_level,
                upgrade_type,
            })
        })
        .collect()
}

/// The error for a change that validated but was not committed.
fn commit_error(e: &ControllerError) -> ResponseError {
    match e {
        ControllerError::Quorum(QuorumError::NoLeader(_)) => ResponseError::NotController,
        _ => ResponseError::FeatureUpdateFailed,
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
    use kafka_protocol::messages::ApiVersionsRequest;
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    const INVALID_UPDATE_VERSION: i16 = 95;
    const INVALID_REQUEST: i16 = 42;

    fn key(name: &'static str, level: i16, upgrade_type: i8) -> FeatureUpdateKey {
        FeatureUpdateKey::default()
            .with_feature(StrBytes::from_static_str(name))
            .with_max_version_level(level)
            .with_upgrade_type(upgrade_type)
    }

    fn request(keys: Vec<FeatureUpdateKey>, validate_only: bool) -> UpdateFeaturesRequest {
        UpdateFeaturesRequest::default()
            .with_timeout_ms(60_000)
            .with_feature_updates(keys)
            .with_validate_only(validate_only)
    }

    /// (name, min, max) supported and (name, level) finalized, and the epoch,
    /// as ApiVersions at `version` lists them.
    #[allow(clippy::type_complexity)]
    fn features(
        broker: &Broker,
        version: i16,
    ) -> (Vec<(String, i16, i16)>, Vec<(String, i16)>, i64) {
        let r = super::super::api_versions::handle(
            &broker.image(),
            ApiVersionsRequest::default(),
            version,
        );
        (
            r.supported_features
                .iter()
                .map(|f| (f.name.to_string(), f.min_version, f.max_version))
                .collect(),
            r.finalized_features
                .iter()
                .map(|f| (f.name.to_string(), f.max_version_level))
                .collect(),
            r.finalized_features_epoch,
        )
    }

    fn owned(v: &[(&str, i16)]) -> Vec<(String, i16)> {
        v.iter().map(|(n, l)| (n.to_string(), *l)).collect()
    }

    #[test]
    fn api_versions_advertises_and_finalizes_the_features() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::test_support::broker_over(dir.path(), |q| Box::new(q));
        let (supported, finalized, epoch) = features(&broker, 4);
        let names: Vec<_> = supported
            .iter()
            .map(|(n, a, b)| (n.as_str(), *a, *b))
            .collect();
        assert_eq!(
            names,
            vec![
                ("metadata.version", 7, 27),
                ("kraft.version", 0, 1),
                ("group.version", 0, 1),
                ("transaction.version", 0, 2)
            ]
        );
        assert_eq!(
            finalized,
            owned(&[
                ("group.version", 1),
                ("metadata.version", 27),
                ("transaction.version", 2)
            ])
        );
        assert!(epoch >= 0, "{epoch}");
        // v3 cannot carry a 0 minimum (KIP-1022).
        let (supported, _, _) = features(&broker, 3);
        assert!(
            supported.iter().all(|(_, min, _)| *min >= 1),
            "{supported:?}"
        );
        assert!(features(&broker, 2).0.is_empty());
    }

    #[test]
    fn update_features_changes_group_version_and_refuses_as_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::test_support::broker_over(dir.path(), |q| Box::new(q));
        let (_, _, epoch_before) = features(&broker, 4);
        let refused = |keys, v| {
            let r = handle(&broker, request(keys, false), v);
            (
                r.error_code,
                r.results.iter().map(|r| r.error_code).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            refused(vec![key("no.such.version", 1, 1)], 1),
            (INVALID_UPDATE_VERSION, vec![INVALID_UPDATE_VERSION])
        );
        assert_eq!(
            refused(vec![key("group.version", 7, 1)], 1),
            (INVALID_UPDATE_VERSION, vec![INVALID_UPDATE_VERSION])
        );
        for t in [2, 3] {
            assert_eq!(
                refused(vec![key("metadata.version", 21, t)], 1).0,
                INVALID_UPDATE_VERSION
            );
        }
        assert_eq!(
            refused(vec![key("group.version", 0, 1)], 1).0,
            INVALID_UPDATE_VERSION
        );
        assert_eq!(
            refused(vec![key("group.version", 0, 9)], 1).0,
            INVALID_REQUEST
        );
        // v2 answers with the top-level error only.
        let (code, results) = refused(vec![key("nope", 1, 1)], 2);
        assert_eq!((code, results.len()), (INVALID_UPDATE_VERSION, 0));

        // validate_only changes nothing.
        let r = handle(&broker, request(vec![key("group.version", 0, 2)], true), 1);
        assert_eq!(r.error_code, 0);
        assert!(features(&broker, 4)
            .1
            .contains(&("group.version".into(), 1)));
        assert_eq!(features(&broker, 4).2, epoch_before);

        // v0's allow_downgrade is a downgrade.
        let downgrade = key("group.version", 0, 1).with_allow_downgrade(true);
        let r = handle(&broker, request(vec![downgrade], false), 0);
        assert_eq!((r.error_code, r.results[0].error_code), (0, 0));
        let (_, finalized, epoch) = features(&broker, 4);
        assert_eq!(
            finalized,
            owned(&[("metadata.version", 27), ("transaction.version", 2)])
        );
        assert!(epoch > epoch_before);
        let r = handle(&broker, request(vec![key("group.version", 1, 1)], false), 2);
        assert_eq!(r.error_code, 0);
        assert!(features(&broker, 4)
            .1
            .contains(&("group.version".into(), 1)));
    }
}
