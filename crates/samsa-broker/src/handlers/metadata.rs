//! Metadata: brokers, the controller, and topics with their partitions; creates
//! requested topics that don't exist when auto-creation is allowed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use samsa_metadata::{MetadataImage, TopicImage};
use samsa_model::TopicId;

use super::{s, Ctx};
use crate::broker::Broker;
use crate::errors::controller_error;

/// Answers Metadata.
pub fn handle(
    broker: &Broker,
    ctx: &Ctx,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let mut image = broker.image();
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested: Option<Vec<(Option<String>, uuid::Uuid)>> = match request.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    let allow_auto = version < 4 || request.allow_auto_topic_creation;
    let mut create_errors = std::collections::HashMap::new();
    if let Some(req) = &requested {
        if allow_auto && broker.settings.auto_create_topics {
            let missing: Vec<String> = req
                .iter()
                .filter_map(|(n, _)| n.clone())
                .filter(|n| image.topic(n).is_none())
                .collect();
            if !missing.is_empty() {
                for (name, result) in missing.iter().zip(broker.auto_create(&missing)) {
                    if let Err(e) = result {
                        create_errors.insert(name.clone(), controller_error(&e));
                    }
                }
                image = broker.image();
            }
        }
    }
    let topics = match requested {
        None => image
            .topics
            .values()
            .map(|t| topic_entry(&image, t, version))
            .collect(),
        Some(req) => req
            .into_iter()
            .map(|(name, id)| {
                let found = match &name {
                    Some(n) => image.topic(n),
                    None => image.topic_by_id(TopicId(id)),
                };
                match found {
                    Some(t) => topic_entry(&image, t, version),
                    None => {
                        let code = match &name {
                            Some(n) => match create_errors.get(n) {
                                Some(ResponseError::InvalidTopicException) => {
                                    ResponseError::InvalidTopicException
                                }
                                _ => ResponseError::UnknownTopicOrPartition,
                            },
                            None => ResponseError::UnknownTopicId,
                        };
                        let mut t = MetadataResponseTopic::default()
                            .with_error_code(code.code())
                            .with_name(name.map(|n| TopicName(s(n))));
                        if version >= 10 {
                            t = t.with_topic_id(id);
                        }
                        t
                    }
                }
            })
            .collect(),
    };
    // Fenced brokers are left out, as in Kafka; each broker is given with its
    // endpoint on the listener this request came in on.
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            let (host, port) = endpoint_on(b, &ctx.listener);
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id.get()))
                .with_host(s(host))
                .with_port(port as i32)
                .with_rack(b.rack.clone().map(s))
        })
        .collect();
    // v13's top-level error code (KIP-1102) stays NONE: as in Kafka, a broker
    // answering Metadata never asks the client to rebootstrap.
    MetadataResponse::default()
        .with_error_code(0)
        .with_brokers(brokers)
        .with_cluster_id(Some(s(image.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_topics(topics)
}

fn topic_entry(image: &MetadataImage, t: &TopicImage, version: i16) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let live =
                |id: &samsa_model::BrokerId| image.brokers.get(id).is_some_and(|b| !b.fenced);
            let leader_alive = live(&p.leader);
            let offline = p
                .replicas
                .iter()
                .filter(|r| !live(r))
                .map(|r| BrokerId(r.get()))
                .collect();
            MetadataResponsePartition::default()
                .with_error_code(if leader_alive {
                    0
                } else {
                    ResponseError::LeaderNotAvailable.code()
                })
                .with_partition_index(p.index.get())
                .with_leader_id(BrokerId(if leader_alive { p.leader.get() } else { -1 }))
                .with_leader_epoch(p.leader_epoch.get())
                .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(r.get())).collect())
                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(r.get())).collect())
                .with_offline_replicas(offline)
        })
        .collect();
    let mut entry = MetadataResponseTopic::default()
        .with_name(Some(TopicName(s(t.name.clone()))))
        .with_is_internal(t.is_internal())
        .with_partitions(partitions);
    if version >= 10 {
        entry = entry.with_topic_id(t.id.0);
    }
    entry
}

/// `b`'s (host, port) on the listener named `listener` (its registered
/// endpoint when it has no listener of that name).
pub fn endpoint_on(b: &samsa_metadata::BrokerInfo, listener: &str) -> (String, u16) {
    match b.endpoint(listener) {
        Some(e) => (e.host.clone(), e.port),
        None => (b.host.clone(), b.port),
    }
}
