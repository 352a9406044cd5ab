//! Group-level configs: Kafka 4.x's `GROUP` config resource (type 32), the
//! per-group overrides of the KIP-848 consumer-group coordinator settings.
//!
//! Each key overrides one broker key for one group: `consumer.session.timeout.ms`
//! (`group.consumer.session.timeout.ms`) and `consumer.heartbeat.interval.ms`
//! (`group.consumer.heartbeat.interval.ms`). A change is validated against the
//! group's whole resulting set (broker defaults, the group's current overrides,
//! the change) and the broker's `group.consumer.min/max.*` bounds, as Kafka's
//! `GroupConfig.validate` does; a group need not exist to be configured.
//!
//! Left out on purpose: Kafka's `share.*` keys (samsa has no share groups, so
//! it could not honour them) and the `streams.*` keys (no streams groups).

use std::collections::BTreeMap;

use crate::config::{
    self, ConfigDef, ConfigSource, ConfigType, ResolvedConfig, StaticConfig, Validator,
};
use crate::controller::ControllerError;
use crate::image::MetadataImage;
use crate::plan::Planned;
use crate::record::{ConfigResource, MetadataRecord};

/// `consumer.session.timeout.ms`: the group's KIP-848 member session timeout.
pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
/// `consumer.heartbeat.interval.ms`: the heartbeat interval given to the group's members.
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";

/// Every group config key, with the broker key that supplies its default.
pub static GROUP_CONFIGS: &[(ConfigDef, &str)] = &[
    (
        ConfigDef {
            name: CONSUMER_SESSION_TIMEOUT_MS,
            ty: ConfigType::Int,
            default: Some("45000"),
            validator: Validator::Range(1, i32::MAX as i64),
            synonyms: &[],
            sensitive: false,
            doc: "The timeout to detect client failures when using the consumer group protocol.",
        },
        "group.consumer.session.timeout.ms",
    ),
    (
        ConfigDef {
            name: CONSUMER_HEARTBEAT_INTERVAL_MS,
            ty: ConfigType::Int,
            default: Some("5000"),
            validator: Validator::Range(1, i32::MAX as i64),
            synonyms: &[],
            sensitive: false,
            doc: "The heartbeat interval given to the members of a consumer group.",
        },
        "group.consumer.heartbeat.interval.ms",
    ),
];

/// The definition of group config `name`.
pub fn group_def(name: &str) -> Option<&'static ConfigDef> {
    GROUP_CONFIGS
        .iter()
        .map(|(d, _)| d)
        .find(|d| d.name == name)
}

fn int(cfg: &StaticConfig, key: &str) -> i64 {
    cfg.get_i64(key).unwrap_or(0)
}

/// Checks a group's resulting overrides (`overrides`, already merged with the
/// change) against the broker's bounds, with Kafka's messages. Unknown names
/// and malformed values are refused first.
pub fn validate_group(
    cfg: &StaticConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<(), String> {
    for (k, v) in overrides {
        let def = group_def(k).ok_or_else(|| format!("Unknown group config name: {k}"))?;
        config::validate(def, v)?;
    }
    let value = |key: &str, broker_key: &str| -> i64 {
        overrides
            .get(key)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| int(cfg, broker_key))
    };
    let heartbeat = value(
        CONSUMER_HEARTBEAT_INTERVAL_MS,
        "group.consumer.heartbeat.interval.ms",
    );
    let session = value(
        CONSUMER_SESSION_TIMEOUT_MS,
        "group.consumer.session.timeout.ms",
    );
    let bounds = [
        (
            heartbeat,
            CONSUMER_HEARTBEAT_INTERVAL_MS,
            "group.consumer.min.heartbeat.interval.ms",
            "group.consumer.max.heartbeat.interval.ms",
        ),
        (
            session,
            CONSUMER_SESSION_TIMEOUT_MS,
            "group.consumer.min.session.timeout.ms",
            "group.consumer.max.session.timeout.ms",
        ),
    ];
    for (v, key, min, max) in bounds {
        if v < int(cfg, min) {
            return Err(format!("{key} must be greater than or equal to {min}"));
        }
        if v > int(cfg, max) {
            return Err(format!("{key} must be less than or equal to {max}"));
        }
    }
    if session <= heartbeat {
        return Err(format!(
            "{CONSUMER_SESSION_TIMEOUT_MS} must be greater than {CONSUMER_HEARTBEAT_INTERVAL_MS}"
        ));
    }
    Ok(())
}

/// Every group config of a group with `overrides`, for DescribeConfigs: an
/// override is `GROUP_CONFIG`; otherwise the broker's value of the matching
/// `group.consumer.*` key with the source Kafka gives a group default
/// (`DEFAULT_CONFIG`).
pub fn describe_group(
    cfg: &StaticConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<ResolvedConfig> {
    GROUP_CONFIGS
        .iter()
        .map(|(def, broker_key)| match overrides.get(def.name) {
            Some(v) => ResolvedConfig {
                def,
                value: Some(v.clone()),
                source: ConfigSource::GroupConfig,
            },
            None => ResolvedConfig {
                def,
                value: cfg
                    .get(broker_key)
                    .map(str::to_string)
                    .or_else(|| def.default.map(str::to_string)),
                source: ConfigSource::Default,
            },
        })
        .collect()
}

/// Plans setting (`Some`) or removing (`None`) config keys of group `group`
/// after validating the group's resulting set against `cfg`'s bounds.
pub fn plan_alter_group_configs(
    image: &MetadataImage,
    cfg: &StaticConfig,
    group: &str,
    changes: &[(String, Option<String>)],
) -> Result<Planned, ControllerError> {
    if group.is_empty() {
        return Err(ControllerError::InvalidRequest(
            "Group name must not be empty".to_string(),
        ));
    }
    let mut merged = image.group_configs.get(group).cloned().unwrap_or_default();
    let mut records = Vec::with_capacity(changes.len());
    for (key, value) in changes {
        let value = value.as_ref().map(|v| v.trim().to_string());
        match &value {
            Some(v) => merged.insert(key.clone(), v.clone()),
            None => merged.remove(key),
        };
        if group_def(key).is_none() {
            return Err(ControllerError::InvalidConfig(format!(
                "Unknown group config name: {key}"
            )));
        }
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Group(group.to_string()),
            name: key.clone(),
            value,
        });
    }
    validate_group(cfg, &merged).map_err(ControllerError::InvalidConfig)?;
    Ok(Planned {
        records,
        outcome: (),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_are_held_to_the_broker_bounds_with_kafkas_messages() {
        let cfg = StaticConfig::default();
        assert_eq!(
            validate_group(&cfg, &map(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "7000")])),
            Ok(())
        );
        assert_eq!(
            validate_group(&cfg, &map(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "100")])),
            Err("consumer.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms".into())
        );
        assert_eq!(
            validate_group(&cfg, &map(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "16000")])),
            Err("consumer.heartbeat.interval.ms must be less than or equal to group.consumer.max.heartbeat.interval.ms".into())
        );
        assert_eq!(
            validate_group(&cfg, &map(&[(CONSUMER_SESSION_TIMEOUT_MS, "61000")])),
            Err("consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms".into())
        );
        assert_eq!(
            validate_group(&cfg, &map(&[("session.timeout.ms", "1")])),
            Err("Unknown group config name: session.timeout.ms".into())
        );
        assert!(validate_group(&cfg, &map(&[(CONSUMER_SESSION_TIMEOUT_MS, "x")])).is_err());
    }

    #[test]
    fn session_must_exceed_heartbeat() {
        let mut cfg = StaticConfig::default();
        assert!(cfg
            .set("group.consumer.min.session.timeout.ms", "1000")
            .is_ok());
        assert_eq!(
            validate_group(&cfg, &map(&[(CONSUMER_SESSION_TIMEOUT_MS, "5000")])),
            Err(
                "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms"
                    .into()
            )
        );
    }

    #[test]
    fn describe_shows_overrides_and_broker_defaults() {
        let mut cfg = StaticConfig::default();
        assert!(cfg
            .set("group.consumer.session.timeout.ms", "50000")
            .is_ok());
        let d = describe_group(&cfg, &map(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "7000")]));
        let by = |n: &str| d.iter().find(|c| c.def.name == n).cloned();
        let hb = by(CONSUMER_HEARTBEAT_INTERVAL_MS).map(|c| (c.value, c.source));
        assert_eq!(hb, Some((Some("7000".into()), ConfigSource::GroupConfig)));
        let st = by(CONSUMER_SESSION_TIMEOUT_MS).map(|c| (c.value, c.source));
        assert_eq!(st, Some((Some("50000".into()), ConfigSource::Default)));
    }
}
