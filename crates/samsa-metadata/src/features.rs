//! Finalized features (KIP-584, KRaft's `FeatureLevelRecord`): the feature
//! levels every node of the cluster has agreed to use, as Kafka 4.1 defines
//! them for the features samsa implements.
//!
//! A level lives in the image ([`crate::MetadataImage::features`]), written as
//! [`MetadataRecord::FeatureLevel`] records to the metadata log. When the
//! cluster's log is created (or, for a log written before features existed,
//! at the first start of a version that knows them) the controller writes the
//! bootstrap level of every feature the image lacks ([`bootstrap_records`]);
//! a feature set to level 0 stays in the image at 0 (so it is not bootstrapped
//! again) but is not listed as finalized, as in Kafka ([`finalized`]). UpdateFeatures changes them
//! through [`plan_update_features`].

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// `metadata.version`.
pub const METADATA_VERSION: &str = "metadata.version";
/// `kraft.version`.
pub const KRAFT_VERSION: &str = "kraft.version";
/// `group.version`.
pub const GROUP_VERSION: &str = "group.version";
/// `transaction.version` (KIP-1022): 1 is KIP-890 part 1's flexible
/// transaction records, 2 its part 2 (the epoch bumped on every EndTxn, the
/// partition leader adding partitions to the transaction itself).
pub const TRANSACTION_VERSION: &str = "transaction.version";

/// One feature this build supports.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    /// The lowest level this build can run at.
    pub min: i16,
    /// The highest level this build can run at.
    pub max: i16,
    /// The level a new cluster (or a log without the feature) starts at.
    pub bootstrap: i16,
}

/// The supported features, as a Kafka 4.1 KRaft broker advertises them:
/// `metadata.version` from 3.3-IV3 (level 7, the oldest Kafka 4.x reads) to
/// 4.1-IV1 (27, 4.1's latest production level, the bootstrap level);
/// `kraft.version` 0-1 at 0 (a static `controller.quorum.voters` quorum;
/// level 1 is KIP-853's dynamic quorum); `group.version` 0-1 at 1 (KIP-848's
/// consumer protocol, on by default since 4.0); `transaction.version` 0-2 at 2
/// (KIP-1022; a new Kafka 4.x cluster finalizes 2, so clients use KIP-890's
/// transaction version 2).
pub const SUPPORTED: &[Feature] = &[
    Feature {
        name: METADATA_VERSION,
        min: 7,
        max: 27,
        bootstrap: 27,
    },
    Feature {
        name: KRAFT_VERSION,
        min: 0,
        max: 1,
        bootstrap: 0,
    },
    Feature {
        name: GROUP_VERSION,
        min: 0,
        max: 1,
        bootstrap: 1,
    },
    Feature {
        name: TRANSACTION_VERSION,
        min: 0,
        max: 2,
        bootstrap: 2,
    },
];

/// The supported feature named `name`.
pub fn supported(name: &str) -> Option<&'static Feature> {
    SUPPORTED.iter().find(|f| f.name == name)
}

/// The records that give every supported feature missing from `image` its
/// bootstrap level (none at level 0: an absent feature is at level 0).
pub fn bootstrap_records(image: &MetadataImage) -> Vec<MetadataRecord> {
    SUPPORTED
        .iter()
        .filter(|f| f.bootstrap > 0 && !image.features.contains_key(f.name))
        .map(|f| MetadataRecord::FeatureLevel {
            name: f.name.to_string(),
            level: f.bootstrap,
            at_offset: None,
        })
        .collect()
}

/// The finalized features as Kafka lists them: those above level 0.
pub fn finalized(image: &MetadataImage) -> Vec<(&str, i16)> {
    image
        .features
        .iter()
        .filter(|(_, l)| **l > 0)
        .map(|(n, l)| (n.as_str(), *l))
        .collect()
}

/// How an update may move a level (UpdateFeatures v1+ `upgrade_type`; v0's
/// `allow_downgrade` is `SafeDowngrade` when set, else `Upgrade`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UpgradeType {
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
}

impl UpgradeType {
    /// The wire value (1, 2, 3), or `None` for an unknown one.
    pub fn from_wire(v: i8) -> Option<UpgradeType> {
        match v {
            1 => Some(UpgradeType::Upgrade),
            2 => Some(UpgradeType::SafeDowngrade),
            3 => Some(UpgradeType::UnsafeDowngrade),
            _ => None,
        }
    }
}

/// One requested change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureUpdate {
    pub name: String,
    /// The new level; 0 (or below) removes the feature.
    pub level: i16,
    pub upgrade_type: UpgradeType,
}

/// Why an update is refused; each maps to Kafka's error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// INVALID_UPDATE_VERSION.
    #[error("{0}")]
    InvalidUpdateVersion(String),
    /// INVALID_REQUEST.
    #[error("{0}")]
    InvalidRequest(String),
}

/// Validates `updates` against `image` and plans them: all of them, or, when
/// any is invalid, none (the first error found). A level equal to the current
/// one writes nothing.
pub fn plan_update_features(
    image: &MetadataImage,
    updates: &[FeatureUpdate],
) -> Result<Vec<MetadataRecord>, FeatureError> {
    let mut records = Vec::new();
    for (i, u) in updates.iter().enumerate() {
        if updates[..i].iter().any(|p| p.name == u.name) {
            return Err(FeatureError::InvalidRequest(format!(
                "Feature {} appears more than once in the request.",
                u.name
            )));
        }
        let Some(feature) = supported(&u.name) else {
            return Err(FeatureError::InvalidUpdateVersion(format!(
                "Invalid update version {} for feature {}. The controller does not support the \
                 given feature.",
                u.level, u.name
            )));
        };
        let level = u.level.max(0);
        let current = image.feature_level(feature.name);
        if level == current {
            continue;
        }
        if level < feature.min || level > feature.max {
            return Err(FeatureError::InvalidUpdateVersion(format!(
                "Invalid update version {} for feature {}. Local controller supports versions \
                 {}-{}.",
                u.level, u.name, feature.min, feature.max
            )));
        }
        if level < current {
            if u.upgrade_type == UpgradeType::Upgrade {
                return Err(FeatureError::InvalidUpdateVersion(format!(
                    "Invalid update version {} for feature {}. Can't downgrade the version of \
                     this feature without setting the upgrade type to either safe or unsafe \
                     downgrade.",
                    u.level, u.name
                )));
            }
            if feature.name == METADATA_VERSION {
                return Err(FeatureError::InvalidUpdateVersion(format!(
                    "Invalid metadata.version {}. Refusing to downgrade metadata.version from {} \
                     (metadata.version downgrades are not supported).",
                    u.level, current
                )));
            }
        }
        if feature.name == KRAFT_VERSION {
            return Err(FeatureError::InvalidUpdateVersion(format!(
                "Invalid update version {} for feature kraft.version. This quorum's voters are \
                 static (controller.quorum.voters); kraft.version cannot change.",
                u.level
            )));
        }
        records.push(MetadataRecord::FeatureLevel {
            name: feature.name.to_string(),
            level,
            at_offset: None,
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StaticConfig;
    use crate::controller::Controller;
    use crate::quorum::LocalQuorum;
    use std::sync::Arc;

    fn update(name: &str, level: i16, upgrade_type: UpgradeType) -> FeatureUpdate {
        FeatureUpdate {
            name: name.into(),
            level,
            upgrade_type,
        }
    }

    fn bootstrapped() -> MetadataImage {
        let mut image = MetadataImage::default();
        for r in crate::plan::plan_init_cluster(&image).records {
            image.apply(&r);
        }
        image
    }

    #[test]
    fn a_new_cluster_finalizes_metadata_group_and_transaction_version() {
        let image = bootstrapped();
        assert_eq!(image.feature_level(METADATA_VERSION), 27);
        assert_eq!(image.feature_level(GROUP_VERSION), 1);
        assert_eq!(image.feature_level(TRANSACTION_VERSION), 2);
        assert_eq!(image.feature_level(KRAFT_VERSION), 0);
        assert!(!image.features.contains_key(KRAFT_VERSION));
        assert_eq!(
            finalized(&image),
            vec![
                (GROUP_VERSION, 1),
                (METADATA_VERSION, 27),
                (TRANSACTION_VERSION, 2)
            ]
        );
        // InitCluster is offset 0, the three feature records 1 to 3.
        assert_eq!(image.features_epoch, 3);
        assert!(crate::plan::plan_init_cluster(&image).records.is_empty());
    }

    #[test]
    fn invalid_updates_are_refused_as_kafka_refuses_them() {
        let image = bootstrapped();
        let refused = |u: FeatureUpdate| plan_update_features(&image, &[u]).unwrap_err();
        assert!(matches!(
            refused(update("no.such.version", 1, UpgradeType::Upgrade)),
            FeatureError::InvalidUpdateVersion(_)
        ));
        assert!(matches!(
            refused(update(GROUP_VERSION, 2, UpgradeType::Upgrade)),
            FeatureError::InvalidUpdateVersion(_)
        ));
        assert!(matches!(
            refused(update(GROUP_VERSION, 0, UpgradeType::Upgrade)),
            FeatureError::InvalidUpdateVersion(_)
        ));
        for t in [UpgradeType::SafeDowngrade, UpgradeType::UnsafeDowngrade] {
            let e = refused(update(METADATA_VERSION, 20, t));
            assert!(e.to_string().contains("downgrade"), "{e}");
        }
        assert!(matches!(
            refused(update(METADATA_VERSION, 28, UpgradeType::Upgrade)),
            FeatureError::InvalidUpdateVersion(_)
        ));
        // All or nothing: a valid update beside an invalid one is not planned.
        assert!(plan_update_features(
            &image,
            &[
                update(GROUP_VERSION, 0, UpgradeType::SafeDowngrade),
                update("nope", 1, UpgradeType::Upgrade)
            ]
        )
        .is_err());
    }

    #[test]
    fn a_downgrade_and_upgrade_of_group_version_move_the_epoch() {
        let mut image = bootstrapped();
        let records = plan_update_features(
            &image,
            &[update(GROUP_VERSION, 0, UpgradeType::SafeDowngrade)],
        )
        .unwrap();
        for r in &records {
            image.apply(r);
        }
        assert_eq!(image.feature_level(GROUP_VERSION), 0);
        assert_eq!(image.features_epoch, 4);
        // The same level again writes nothing.
        assert!(plan_update_features(
            &image,
            &[update(GROUP_VERSION, 0, UpgradeType::SafeDowngrade)]
        )
        .unwrap()
        .is_empty());
        let records =
            plan_update_features(&image, &[update(GROUP_VERSION, 1, UpgradeType::Upgrade)])
                .unwrap();
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn levels_survive_a_restart_and_old_logs_get_the_defaults_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(StaticConfig::default());
        {
            // A log written before features existed: only InitCluster.
            let (mut q, _) = LocalQuorum::open(dir.path()).unwrap();
            use crate::quorum::MetadataQuorum;
            q.append_after(
                None,
                &[MetadataRecord::InitCluster {
                    cluster_id: "old".into(),
                }],
            )
            .unwrap();
        }
        {
            let (q, records) = LocalQuorum::open(dir.path()).unwrap();
            let c = Controller::open(Box::new(q), records, config.clone()).unwrap();
            assert_eq!(c.image().feature_level(GROUP_VERSION), 1);
            assert_eq!(c.image().feature_level(METADATA_VERSION), 27);
            let refused = c
                .update_features(&[update(GROUP_VERSION, 5, UpgradeType::Upgrade)], false)
                .unwrap();
            assert!(refused.is_err());
            c.update_features(
                &[update(GROUP_VERSION, 0, UpgradeType::SafeDowngrade)],
                true,
            )
            .unwrap()
            .unwrap();
            assert_eq!(
                c.image().feature_level(GROUP_VERSION),
                1,
                "validate_only changed it"
            );
            c.update_features(
                &[update(GROUP_VERSION, 0, UpgradeType::SafeDowngrade)],
                false,
            )
            .unwrap()
            .unwrap();
        }
        let (q, records) = LocalQuorum::open(dir.path()).unwrap();
        let c = Controller::open(Box::new(q), records, config).unwrap();
        let image = c.image();
        assert_eq!(image.cluster_id, "old");
        // Not bootstrapped again: the downgrade stands.
        assert_eq!(image.feature_level(GROUP_VERSION), 0);
        assert_eq!(image.feature_level(METADATA_VERSION), 27);
        assert_eq!(image.features_epoch, 4);
    }
}
