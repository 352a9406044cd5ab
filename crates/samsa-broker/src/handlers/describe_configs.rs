//! DescribeConfigs: topic, broker and group configs with Kafka's names, types,
//! defaults and sources.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use samsa_metadata::config::{ConfigSource, ResolvedConfig, StaticConfig};

use super::s;
use crate::broker::Broker;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;

/// Answers DescribeConfigs.
pub fn handle(
    broker: &Broker,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = broker.image();
    let flags = (request.include_synonyms, request.include_documentation);
    let results = request
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let resolved: Result<Vec<ResolvedConfig>, (ResponseError, String)> = match res.resource_type {
                RESOURCE_TOPIC => match image.topic(&name) {
                    Some(t) => Ok(broker.config().resolve_topic(&t.configs)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("Topic {name} does not exist."),
                    )),
                },
                RESOURCE_BROKER => {
                    if name.is_empty() || name == broker.settings.node_id.to_string() {
                        Ok(broker.config().describe_broker())
                    } else {
                        Err((
                            ResponseError::InvalidRequest,
                            format!(
                                "Unexpected broker id, expected {} or empty string, but received {name}",
                                broker.settings.node_id
                            ),
                        ))
                    }
                }
                RESOURCE_GROUP if name.is_empty() => Err((
                    ResponseError::InvalidRequest,
                    "Group name must not be empty".to_string(),
                )),
                RESOURCE_GROUP => {
                    let overrides = image.group_configs.get(&name).cloned().unwrap_or_default();
                    Ok(samsa_metadata::group_config::describe_group(&broker.config(), &overrides))
                }
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match resolved {
                Err((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(s(message))),
                Ok(configs) => {
                    let wanted = res.configuration_keys.map(|k| {
                        k.into_iter().map(|k| k.to_string()).collect::<Vec<_>>()
                    });
                    let configs = configs
                        .into_iter()
                        .filter(|c| wanted.as_ref().is_none_or(|w| w.iter().any(|k| k == c.def.name)))
                        .map(|c| entry(&broker.config(), c, res.resource_type, flags, version))
                        .collect();
                    result.with_configs(configs)
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entry(
    cfg: &StaticConfig,
    c: ResolvedConfig,
    resource_type: i8,
    (include_synonyms, include_documentation): (bool, bool),
    version: i16,
) -> DescribeConfigsResourceResult {
    let value = if c.def.sensitive {
        None
    } else {
        c.value.clone()
    };
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(s(c.def.name))
        .with_value(value.map(s))
        .with_read_only(resource_type == RESOURCE_BROKER)
        .with_config_source(c.source.wire_code())
        .with_is_sensitive(c.def.sensitive);
    if include_synonyms {
        let mut synonyms = Vec::new();
        if matches!(
            c.source,
            ConfigSource::TopicConfig | ConfigSource::GroupConfig
        ) {
            synonyms.push(
                DescribeConfigsSynonym::default()
                    .with_name(s(c.def.name))
                    .with_value(c.value.clone().map(s))
                    .with_source(c.source.wire_code()),
            );
        }
        if resource_type == RESOURCE_TOPIC {
            for syn in c.def.synonyms {
                if let Some(v) = cfg.explicit(syn.name) {
                    synonyms.push(
                        DescribeConfigsSynonym::default()
                            .with_name(s(syn.name))
                            .with_value(Some(s(v)))
                            .with_source(ConfigSource::StaticBrokerConfig.wire_code()),
                    );
                }
            }
        } else if c.source == ConfigSource::StaticBrokerConfig {
            synonyms.push(
                DescribeConfigsSynonym::default()
                    .with_name(s(c.def.name))
                    .with_value(c.value.clone().map(s))
                    .with_source(ConfigSource::StaticBrokerConfig.wire_code()),
            );
        }
        if let Some(d) = c.def.default {
            synonyms.push(
                DescribeConfigsSynonym::default()
                    .with_name(s(c.def.name))
                    .with_value(Some(s(d)))
                    .with_source(ConfigSource::Default.wire_code()),
            );
        }
        e = e.with_synonyms(synonyms);
    }
    if version >= 3 {
        e = e.with_config_type(c.def.ty.wire_code());
        // Null unless asked for, as Kafka (the default would be "").
        e = e.with_documentation(include_documentation.then(|| s(c.def.doc)));
    }
    e
}
