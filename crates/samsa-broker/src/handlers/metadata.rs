//! Metadata: brokers, the controller, and topics with their partitions; creates
//! requested topics that don't exist when auto-creation is allowed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use samsa_metadata::security::{authorized_operations, AclResource, AUTHORIZED_OPERATIONS_OMITTED};
use samsa_metadata::{MetadataImage, PartitionImage, TopicImage};
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
    let include_topic_ops = version >= 8 && request.include_topic_authorized_operations;
    let include_cluster_ops =
        (8..=10).contains(&version) && request.include_cluster_authorized_operations;
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
    let mut topics: Vec<MetadataResponseTopic> = match requested {
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
    // As Kafka: every topic entry (errors too) carries the operations when asked.
    if include_topic_ops {
        let ops = authorized_operations(AclResource::Topic);
        for t in &mut topics {
            t.topic_authorized_operations = ops;
        }
    }
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
        .with_cluster_authorized_operations(if include_cluster_ops {
            authorized_operations(AclResource::Cluster)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

fn topic_entry(image: &MetadataImage, t: &TopicImage, version: i16) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let v = PartitionView::new(image, p);
            MetadataResponsePartition::default()
                .with_error_code(v.error_code)
                .with_partition_index(v.index)
                .with_leader_id(v.leader)
                .with_leader_epoch(v.leader_epoch)
                .with_replica_nodes(v.replicas)
                .with_isr_nodes(v.isr)
                .with_offline_replicas(v.offline)
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

/// A partition as Metadata and DescribeTopicPartitions describe it: a
/// leader that is not a live (registered, unfenced) broker is reported as
/// -1 with LEADER_NOT_AVAILABLE, and replicas on dead brokers are offline.
pub(crate) struct PartitionView {
    pub error_code: i16,
    pub index: i32,
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub offline: Vec<BrokerId>,
}

impl PartitionView {
    pub(crate) fn new(image: &MetadataImage, p: &PartitionImage) -> PartitionView {
        let live = |id: &samsa_model::BrokerId| image.brokers.get(id).is_some_and(|b| !b.fenced);
        let leader_alive = live(&p.leader);
        PartitionView {
            error_code: if leader_alive {
                0
            } else {
                ResponseError::LeaderNotAvailable.code()
            },
            index: p.index.get(),
            leader: BrokerId(if leader_alive { p.leader.get() } else { -1 }),
            leader_epoch: p.leader_epoch.get(),
            replicas: p.replicas.iter().map(|r| BrokerId(r.get())).collect(),
            isr: p.isr.iter().map(|r| BrokerId(r.get())).collect(),
            offline: p
                .replicas
                .iter()
                .filter(|r| !live(r))
                .map(|r| BrokerId(r.get()))
                .collect(),
        }
    }
}

/// `b`'s (host, port) on the listener named `listener` (its registered
/// endpoint when it has no listener of that name).
pub fn endpoint_on(b: &samsa_metadata::BrokerInfo, listener: &str) -> (String, u16) {
    match b.endpoint(listener) {
        Some(e) => (e.host.clone(), e.port),
        None => (b.host.clone(), b.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{DescribeClusterRequest, DescribeGroupsRequest, GroupId};

    fn ctx() -> Ctx {
        Ctx {
            peer: "127.0.0.1:1".parse().unwrap(),
            client_id: "t".into(),
            listener: "PLAINTEXT".into(),
            principal: std::sync::Arc::new(samsa_security::KafkaPrincipal::anonymous()),
        }
    }

    /// Without an authorizer every applicable operation is reported, when
    /// asked for (Kafka's bitfields: 3576 for a topic, 8096 for the
    /// cluster, 3400 for a group), and INT_MIN when not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn authorized_operations_are_reported_when_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::test_support::broker_over(dir.path(), |q| Box::new(q));
        let topics = Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(s("nope"))))
        ]);
        let ask = |include: bool| {
            MetadataRequest::default()
                .with_topics(topics.clone())
                .with_include_topic_authorized_operations(include)
                .with_include_cluster_authorized_operations(include)
        };
        let r = handle(&broker, &ctx(), ask(true), 10);
        assert_eq!(r.topics[0].topic_authorized_operations, 3576);
        assert_eq!(r.cluster_authorized_operations, 8096);
        let r = handle(&broker, &ctx(), ask(false), 10);
        assert_eq!(r.topics[0].topic_authorized_operations, i32::MIN);
        assert_eq!(r.cluster_authorized_operations, i32::MIN);
        // v11+ dropped the cluster field from Metadata (DescribeCluster has it).
        let r = handle(&broker, &ctx(), ask(true), 12);
        assert_eq!(r.topics[0].topic_authorized_operations, 3576);
        assert_eq!(r.cluster_authorized_operations, i32::MIN);

        let cluster = |include| {
            super::super::describe_cluster::handle(
                &broker,
                &ctx(),
                DescribeClusterRequest::default()
                    .with_include_cluster_authorized_operations(include)
                    .with_endpoint_type(1),
                1,
            )
            .cluster_authorized_operations
        };
        assert_eq!(cluster(true), 8096);
        assert_eq!(cluster(false), i32::MIN);

        // A group's answer needs its coordinator shard loaded.
        assert!(broker.groups.ensure_offsets_topic(&broker));
        let (stop, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(broker.groups.clone().run_timers(broker.clone(), rx));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !broker.groups.serves("g") {
            assert!(
                std::time::Instant::now() < deadline,
                "coordinator not loaded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let groups = |include| {
            let broker = broker.clone();
            async move {
                super::super::describe_groups::handle(
                    &broker,
                    DescribeGroupsRequest::default()
                        .with_groups(vec![GroupId(s("g"))])
                        .with_include_authorized_operations(include),
                    5,
                )
                .await
                .groups
                .iter()
                .map(|g| g.authorized_operations)
                .collect::<Vec<_>>()
            }
        };
        assert_eq!(groups(true).await, vec![3400]);
        assert_eq!(groups(false).await, vec![i32::MIN]);
        let _ = stop.send(true);
    }
}
