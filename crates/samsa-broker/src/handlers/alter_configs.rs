//! AlterConfigs (legacy, whole-set replace) and IncrementalAlterConfigs
//! (SET / DELETE / APPEND / SUBTRACT per key), for topics, brokers and groups.
//!
//! Changes go through the controller as config records; the broker applies
//! them to open logs on the next reconcile, so they take effect without a
//! restart.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use samsa_metadata::config::{self, ConfigType};
use samsa_model::BrokerId;

use super::s;
use crate::broker::Broker;
use crate::errors::controller_error;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;

type Changes = Vec<(String, Option<String>)>;
type Outcome = Result<(), (ResponseError, String)>;

/// Which broker resource a name designates: `Some(id)` or the cluster default.
fn broker_target(broker: &Broker, name: &str) -> Result<Option<BrokerId>, (ResponseError, String)> {
    if name.is_empty() {
        return Ok(None);
    }
    match name.parse::<i32>() {
        Ok(id) if broker.image().brokers.contains_key(&BrokerId(id)) => Ok(Some(BrokerId(id))),
        _ => Err((
            ResponseError::InvalidRequest,
            format!("Unknown broker id {name}"),
        )),
    }
}

fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    changes: &Changes,
    validate_only: bool,
) -> Outcome {
    let result = match resource_type {
        RESOURCE_TOPIC => broker.admin(|c| c.alter_topic_configs(name, changes, validate_only)),
        RESOURCE_BROKER => {
            let target = broker_target(broker, name)?;
            if target.is_none_or(|id| id == broker.settings.node_id) {
                check_cordoned(broker, changes)?;
            }
            broker.admin(|c| c.alter_broker_configs(target, changes, validate_only))
        }
        RESOURCE_GROUP => broker.admin(|c| c.alter_group_configs(name, changes, validate_only)),
        other => {
            return Err((
                ResponseError::InvalidRequest,
                format!("Unsupported resource type {other}"),
            ))
        }
    };
    result.map_err(|e| (controller_error(&e), e.to_string()))?;
    if !validate_only {
        if let Err(e) = broker.reconcile() {
            tracing::error!(error = %e, "reconciling after a config change");
        }
        // A changed `cordoned.log.dirs` of this broker reaches the
        // controller's placement (other brokers do it as they follow).
        if let Err(e) = crate::cordon::sync_cordoned_log_dirs(broker) {
            tracing::warn!(error = %e, "registering the cordoned log directories");
        }
    }
    Ok(())
}

/// A dynamic `cordoned.log.dirs` for this broker (or the cluster default)
/// names only `*` or this broker's `log.dirs`, as the static one must
/// (KIP-1066; INVALID_CONFIG in Kafka's wording otherwise). A change for
/// another broker is checked by that broker's own `log.dirs` when the
/// request is sent to it, as Kafka's admin clients send broker configs.
fn check_cordoned(broker: &Broker, changes: &Changes) -> Outcome {
    for (key, value) in changes {
        let Some(value) = value.as_deref().filter(|_| key == "cordoned.log.dirs") else {
            continue;
        };
        if let Some(entry) =
            crate::settings::cordoned_outside_log_dirs(value, &broker.settings.log_dirs)
        {
            let dirs: Vec<String> = broker
                .settings
                .log_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            return Err((
                ResponseError::InvalidConfig,
                format!(
                    "Invalid value {value} for configuration cordoned.log.dirs: {entry} is not one of log.dirs ({})",
                    dirs.join(",")
                ),
            ));
        }
    }
    Ok(())
}

/// The current overrides of a resource.
fn current(broker: &Broker, resource_type: i8, name: &str) -> BTreeMap<String, String> {
    let image = broker.image();
    match resource_type {
        RESOURCE_TOPIC => image
            .topic(name)
            .map(|t| t.configs.clone())
            .unwrap_or_default(),
        RESOURCE_GROUP => image.group_configs.get(name).cloned().unwrap_or_default(),
        _ if name.is_empty() => image.default_broker_configs.clone(),
        _ => name
            .parse::<i32>()
            .ok()
            .and_then(|id| image.broker_configs.get(&BrokerId(id)).cloned())
            .unwrap_or_default(),
    }
}

/// Answers AlterConfigs: the listed keys become the resource's whole set of
/// overrides; unlisted ones revert to their defaults.
pub fn handle_alter(
    broker: &Broker,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let responses = request
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let mut changes: Changes = res
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            for key in current(broker, res.resource_type, &name).into_keys() {
                if !changes.iter().any(|(k, _)| *k == key) {
                    changes.push((key, None));
                }
            }
            let r = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name);
            match apply(
                broker,
                res.resource_type,
                &name,
                &changes,
                request.validate_only,
            ) {
                Ok(()) => r,
                Err((code, message)) => r
                    .with_error_code(code.code())
                    .with_error_message(Some(s(message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// Answers IncrementalAlterConfigs.
pub fn handle_incremental(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let responses = request
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let r = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let existing = current(broker, res.resource_type, &name);
            let changes: Result<Changes, (ResponseError, String)> = res
                .configs
                .iter()
                .map(|c| {
                    let key = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string());
                    incremental_change(
                        broker,
                        res.resource_type,
                        &existing,
                        key,
                        c.config_operation,
                        value,
                    )
                })
                .collect();
            let outcome = changes.and_then(|changes| {
                apply(
                    broker,
                    res.resource_type,
                    &name,
                    &changes,
                    request.validate_only,
                )
            });
            match outcome {
                Ok(()) => r,
                Err((code, message)) => r
                    .with_error_code(code.code())
                    .with_error_message(Some(s(message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn incremental_change(
    broker: &Broker,
    resource_type: i8,
    existing: &BTreeMap<String, String>,
    key: String,
    op: i8,
    value: Option<String>,
) -> Result<(String, Option<String>), (ResponseError, String)> {
    match op {
        OP_SET => Ok((key, value)),
        OP_DELETE => Ok((key, None)),
        OP_APPEND | OP_SUBTRACT => {
            let def = if resource_type == RESOURCE_TOPIC {
                config::topic_def(&key)
            } else {
                config::broker_def(&key)
            };
            let Some(def) = def.filter(|d| d.ty == ConfigType::List) else {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("Config value append/subtract is only supported for LIST type configs: {key}"),
                ));
            };
            let base = existing
                .get(&key)
                .cloned()
                .or_else(|| {
                    if resource_type == RESOURCE_TOPIC {
                        broker.config().topic_default(def).value
                    } else {
                        broker.config().get(&key).map(str::to_string)
                    }
                })
                .unwrap_or_default();
            let mut items: Vec<String> = base
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let given: Vec<String> = value
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if op == OP_APPEND {
                for g in given {
                    if !items.contains(&g) {
                        items.push(g);
                    }
                }
            } else {
                items.retain(|i| !given.contains(i));
            }
            Ok((key, Some(items.join(","))))
        }
        other => Err((
            ResponseError::InvalidRequest,
            format!("Unknown config operation {other}"),
        )),
    }
}
