//! CreateTopics: validates and commits new topics through the controller.

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use samsa_metadata::NewTopic;
use samsa_model::BrokerId;

use super::s;
use crate::broker::Broker;
use crate::errors::controller_error;

/// Answers CreateTopics.
pub fn handle(broker: &Broker, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let names: Vec<_> = request.topics.iter().map(|t| t.name.clone()).collect();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let mut assignments: Vec<_> = t
                .assignments
                .into_iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.into_iter().map(|b| BrokerId(b.0)).collect(),
                    )
                })
                .collect();
            assignments.sort_by_key(|(p, _)| *p);
            NewTopic {
                name: t.name.0.to_string(),
                num_partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                assignments: assignments.into_iter().map(|(_, r)| r).collect(),
                configs: t
                    .configs
                    .into_iter()
                    .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string())))
                    .collect(),
            }
        })
        .collect();
    let results = broker.admin(|c| c.create_topics(topics, request.validate_only));
    if !request.validate_only {
        if let Err(e) = broker.reconcile() {
            tracing::error!(error = %e, "reconciling logs after CreateTopics");
        }
    }
    let topics = names
        .into_iter()
        .zip(results)
        .map(|(name, result)| {
            let mut r = CreatableTopicResult::default().with_name(name);
            match result {
                Ok(topic) => {
                    if version >= 5 {
                        let rf = topic.partitions.first().map_or(0, |p| p.replicas.len());
                        let configs = broker
                            .config()
                            .resolve_topic(&topic.configs)
                            .into_iter()
                            .map(|c| {
                                CreatableTopicConfigs::default()
                                    .with_name(s(c.def.name))
                                    .with_value(c.value.map(s))
                                    .with_config_source(c.source.wire_code())
                                    .with_is_sensitive(c.def.sensitive)
                            })
                            .collect();
                        r = r
                            .with_num_partitions(topic.partitions.len() as i32)
                            .with_replication_factor(rf as i16)
                            .with_configs(Some(configs));
                    }
                    if version >= 7 {
                        r = r.with_topic_id(topic.id.0);
                    }
                }
                Err(e) => {
                    r = r
                        .with_error_code(controller_error(&e).code())
                        .with_error_message(Some(s(e.to_string())));
                    if version >= 5 {
                        r = r.with_num_partitions(-1).with_replication_factor(-1);
                    }
                }
            }
            r
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
