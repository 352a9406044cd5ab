//! Authorization of requests: the broker's `authorizer.class.name`
//! ([`samsa_security::Authorizer`]) asked with the connection's principal
//! and host, against the ACLs of the current metadata image. Without an
//! authorizer every check passes, as in Kafka.
//!
//! [`API_RULES`] is Kafka's authorization matrix: for every API samsa
//! serves, what it needs. Handlers apply the per-resource rules (topics,
//! groups, transactional ids) themselves; the dispatcher applies the
//! cluster-wide ones ([`Rule::Cluster`]) before the handler runs.

use kafka_protocol::messages::ApiKey;
use samsa_metadata::acl::{ResourceType, CLUSTER_NAME};
use samsa_metadata::security::{
    applicable_operations, authorized_operations, AclOperation, AclResource,
};
use samsa_security::{Action, Requester};

use crate::broker::Broker;
use crate::handlers::Ctx;

/// What an API needs (Kafka's `KafkaApis` checks).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Nothing (ApiVersions, FindCoordinator's lookup, ...).
    None,
    /// This operation on the Cluster resource, else
    /// CLUSTER_AUTHORIZATION_FAILED for the whole request.
    Cluster(AclOperation),
    /// Checked per resource inside the handler (topics, groups,
    /// transactional ids; the note says which).
    PerResource(&'static str),
}

/// Kafka's authorization matrix for every API samsa serves.
pub const API_RULES: &[(ApiKey, Rule)] = &[
    (ApiKey::Produce, Rule::PerResource("Topic Write; TransactionalId Write when transactional; idempotent: Cluster IdempotentWrite or Write on any topic")),
    (ApiKey::Fetch, Rule::PerResource("Topic Read; a follower (replica_id >= 0) Cluster ClusterAction")),
    (ApiKey::ListOffsets, Rule::PerResource("Topic Describe")),
    (ApiKey::Metadata, Rule::PerResource("Topic Describe (unlisted or TOPIC_AUTHORIZATION_FAILED); auto-creation Cluster or Topic Create")),
    (ApiKey::ApiVersions, Rule::None),
    (ApiKey::CreateTopics, Rule::PerResource("Cluster Create or Topic Create")),
    (ApiKey::DeleteTopics, Rule::PerResource("Topic Delete")),
    // Until their per-resource checks exist, these admin APIs need Cluster
    // Alter (stricter than Kafka's Topic Delete / Alter, Group Delete,
    // AlterConfigs): with an authorizer they fail closed, never open.
    (ApiKey::DeleteRecords, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::DescribeConfigs, Rule::PerResource("Topic/Group DescribeConfigs; brokers Cluster DescribeConfigs")),
    (ApiKey::CreatePartitions, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::DescribeCluster, Rule::PerResource("none; cluster_authorized_operations from Cluster")),
    (ApiKey::DescribeLogDirs, Rule::Cluster(AclOperation::Describe)),
    (ApiKey::AlterReplicaLogDirs, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::InitProducerId, Rule::PerResource("TransactionalId Write; without one Cluster IdempotentWrite or Write on any topic")),
    (ApiKey::AlterConfigs, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::IncrementalAlterConfigs, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::FindCoordinator, Rule::PerResource("Group Describe / TransactionalId Describe")),
    (ApiKey::JoinGroup, Rule::PerResource("Group Read")),
    (ApiKey::SyncGroup, Rule::PerResource("Group Read")),
    (ApiKey::Heartbeat, Rule::PerResource("Group Read")),
    (ApiKey::LeaveGroup, Rule::PerResource("Group Read")),
    (ApiKey::OffsetCommit, Rule::PerResource("Group Read, Topic Read")),
    (ApiKey::OffsetFetch, Rule::PerResource("Group Describe, Topic Describe")),
    (ApiKey::TxnOffsetCommit, Rule::PerResource("TransactionalId Write, Group Read, Topic Read")),
    (ApiKey::ListGroups, Rule::PerResource("Cluster Describe, else only the groups with Group Describe")),
    (ApiKey::DescribeGroups, Rule::PerResource("Group Describe")),
    (ApiKey::DeleteGroups, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::OffsetDelete, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::ConsumerGroupHeartbeat, Rule::PerResource("Group Read, Topic Describe")),
    (ApiKey::ConsumerGroupDescribe, Rule::PerResource("Group Describe")),
    (ApiKey::OffsetForLeaderEpoch, Rule::PerResource("Topic Describe; a follower Cluster ClusterAction")),
    (ApiKey::ElectLeaders, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::AlterPartitionReassignments, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::ListPartitionReassignments, Rule::Cluster(AclOperation::Describe)),
    (ApiKey::DescribeTopicPartitions, Rule::PerResource("Topic Describe")),
    (ApiKey::ListConfigResources, Rule::Cluster(AclOperation::DescribeConfigs)),
    (ApiKey::DescribeQuorum, Rule::Cluster(AclOperation::Describe)),
    (ApiKey::UpdateFeatures, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::AddPartitionsToTxn, Rule::PerResource("TransactionalId Write, Topic Write; verify-only (v4+) Cluster ClusterAction")),
    (ApiKey::AddOffsetsToTxn, Rule::PerResource("TransactionalId Write, Group Read")),
    (ApiKey::EndTxn, Rule::PerResource("TransactionalId Write")),
    (ApiKey::DescribeTransactions, Rule::PerResource("TransactionalId Describe")),
    (ApiKey::ListTransactions, Rule::PerResource("only the TransactionalIds with Describe")),
    (ApiKey::WriteTxnMarkers, Rule::Cluster(AclOperation::ClusterAction)),
    (ApiKey::DescribeProducers, Rule::PerResource("Topic Read")),
    (ApiKey::DescribeAcls, Rule::Cluster(AclOperation::Describe)),
    (ApiKey::CreateAcls, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::DeleteAcls, Rule::Cluster(AclOperation::Alter)),
    (ApiKey::SaslHandshake, Rule::None),
    (ApiKey::SaslAuthenticate, Rule::None),
    (ApiKey::DescribeUserScramCredentials, Rule::Cluster(AclOperation::Describe)),
    (ApiKey::AlterUserScramCredentials, Rule::Cluster(AclOperation::Alter)),
];

/// The rule of `api` (`None` for an API missing from the table: then the
/// dispatcher refuses it when an authorizer is configured).
pub fn rule(api: ApiKey) -> Option<Rule> {
    API_RULES.iter().find(|(k, _)| *k == api).map(|(_, r)| *r)
}

/// Whether the request's principal may perform `operation` on the
/// resource; always true without an authorizer.
pub fn allowed(
    broker: &Broker,
    ctx: &Ctx,
    operation: AclOperation,
    resource_type: ResourceType,
    resource_name: &str,
) -> bool {
    let Some(authorizer) = &broker.authorizer else {
        return true;
    };
    authorizer.authorize(
        &broker.image().acls,
        requester(ctx),
        Action {
            operation,
            resource_type,
            resource_name,
        },
    )
}

/// Whether the principal may perform `operation` on the cluster.
pub fn cluster_allowed(broker: &Broker, ctx: &Ctx, operation: AclOperation) -> bool {
    allowed(broker, ctx, operation, ResourceType::Cluster, CLUSTER_NAME)
}

/// Whether the principal may perform `operation` on some resource of the
/// type (Kafka's `authorizeByResourceType`).
pub fn allowed_on_any(
    broker: &Broker,
    ctx: &Ctx,
    operation: AclOperation,
    resource_type: ResourceType,
) -> bool {
    let Some(authorizer) = &broker.authorizer else {
        return true;
    };
    authorizer.authorize_any(
        &broker.image().acls,
        requester(ctx),
        operation,
        resource_type,
    )
}

/// The `authorized_operations` bitfield of a resource for the principal:
/// every applicable operation without an authorizer.
pub fn operations(broker: &Broker, ctx: &Ctx, resource: AclResource, name: &str) -> i32 {
    let Some(authorizer) = &broker.authorizer else {
        return authorized_operations(resource);
    };
    let resource_type = match resource {
        AclResource::Topic => ResourceType::Topic,
        AclResource::Group => ResourceType::Group,
        AclResource::Cluster => ResourceType::Cluster,
    };
    authorizer.authorized_operations(
        &broker.image().acls,
        requester(ctx),
        resource_type,
        name,
        applicable_operations(resource),
    )
}

fn requester(ctx: &Ctx) -> Requester<'_> {
    Requester {
        principal: &ctx.principal,
        host: ctx.peer.ip(),
    }
}

/// Whether the dispatcher lets the request through to its handler: the
/// API's cluster-wide rule holds (or it has none). An API missing from
/// [`API_RULES`] is refused when an authorizer is configured (fail closed).
pub fn dispatch_allowed(broker: &Broker, ctx: &Ctx, api: ApiKey) -> bool {
    if broker.authorizer.is_none() {
        return true;
    }
    match rule(api) {
        Some(Rule::None) | Some(Rule::PerResource(_)) => true,
        Some(Rule::Cluster(op)) => cluster_allowed(broker, ctx, op),
        None => false,
    }
}

/// Whether `e` is one of Kafka's authorization errors.
pub fn is_authorization_error(e: kafka_protocol::error::ResponseError) -> bool {
    use kafka_protocol::error::ResponseError::*;
    matches!(
        e,
        TopicAuthorizationFailed
            | GroupAuthorizationFailed
            | ClusterAuthorizationFailed
            | TransactionalIdAuthorizationFailed
    )
}

/// The producer id of a record batch (`-1`: not idempotent, or not a
/// parsable v2 batch, which validation refuses later anyway).
fn batch_producer_id(records: &[u8]) -> i64 {
    samsa_model::batch::BatchHeader::parse(records).map_or(-1, |h| h.producer_id.get())
}

/// Produce's authorization (Kafka's `handleProduceRequest`), as refusals by
/// (topic index, partition index): every partition
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED without TransactionalId Write on
/// a transactional request; CLUSTER_AUTHORIZATION_FAILED for idempotent
/// batches without Cluster IdempotentWrite or Write on some topic; else per
/// topic TOPIC_AUTHORIZATION_FAILED without Write, and
/// UNKNOWN_TOPIC_OR_PARTITION for a missing topic it may not Create (so it
/// is not auto-created).
pub fn produce_refusals(
    broker: &Broker,
    ctx: &Ctx,
    request: &kafka_protocol::messages::ProduceRequest,
    version: i16,
) -> std::collections::HashMap<(usize, usize), kafka_protocol::error::ResponseError> {
    use kafka_protocol::error::ResponseError;
    let mut refused = std::collections::HashMap::new();
    if broker.authorizer.is_none() {
        return refused;
    }
    let every = |refused: &mut std::collections::HashMap<_, _>, e: ResponseError| {
        for (ti, t) in request.topic_data.iter().enumerate() {
            for pi in 0..t.partition_data.len() {
                refused.insert((ti, pi), e);
            }
        }
    };
    if let Some(id) = request
        .transactional_id
        .as_ref()
        .filter(|id| !id.is_empty())
    {
        if !allowed(
            broker,
            ctx,
            AclOperation::Write,
            ResourceType::TransactionalId,
            id,
        ) {
            every(
                &mut refused,
                ResponseError::TransactionalIdAuthorizationFailed,
            );
            return refused;
        }
    } else {
        let idempotent = request.topic_data.iter().any(|t| {
            t.partition_data.iter().any(|p| {
                p.records
                    .as_ref()
                    .is_some_and(|r| batch_producer_id(r) >= 0)
            })
        });
        if idempotent
            && !cluster_allowed(broker, ctx, AclOperation::IdempotentWrite)
            && !allowed_on_any(broker, ctx, AclOperation::Write, ResourceType::Topic)
        {
            every(&mut refused, ResponseError::ClusterAuthorizationFailed);
            return refused;
        }
    }
    let image = broker.image();
    let may_create = cluster_allowed(broker, ctx, AclOperation::Create);
    for (ti, t) in request.topic_data.iter().enumerate() {
        let name = if version >= 13 {
            match image.topic_by_id(samsa_model::TopicId(t.topic_id)) {
                Some(topic) => topic.name.clone(),
                None => continue,
            }
        } else {
            t.name.0.to_string()
        };
        let error = if !allowed(broker, ctx, AclOperation::Write, ResourceType::Topic, &name) {
            ResponseError::TopicAuthorizationFailed
        } else if image.topic(&name).is_none()
            && !may_create
            && !allowed(
                broker,
                ctx,
                AclOperation::Create,
                ResourceType::Topic,
                &name,
            )
        {
            ResponseError::UnknownTopicOrPartition
        } else {
            continue;
        };
        for pi in 0..t.partition_data.len() {
            refused.insert((ti, pi), error);
        }
    }
    refused
}

/// Fetch's authorization over the partitions it is about to read (the
/// request's and its session's): a consumer needs Topic Read, a follower
/// Cluster ClusterAction (`follower_ok`); a refused partition is answered
/// TOPIC_AUTHORIZATION_FAILED, as Kafka's `handleFetchRequest` does.
/// Partitions of an unknown topic id (no name) are left to the handler.
pub fn fetch_refusals(
    broker: &Broker,
    ctx: &Ctx,
    partitions: &[(
        crate::fetch_session::SessionKey,
        crate::fetch_session::FetchParams,
    )],
    follower_ok: bool,
    refused: &mut std::collections::HashMap<
        crate::fetch_session::SessionKey,
        kafka_protocol::error::ResponseError,
    >,
) {
    if broker.authorizer.is_none() {
        return;
    }
    for (key, _) in partitions {
        if key.topic.is_empty() {
            continue;
        }
        if !follower_ok
            || !allowed(
                broker,
                ctx,
                AclOperation::Read,
                ResourceType::Topic,
                &key.topic,
            )
        {
            refused.insert(
                key.clone(),
                kafka_protocol::error::ResponseError::TopicAuthorizationFailed,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_api_has_a_rule() {
        for api in samsa_protocol::versions::SUPPORTED_APIS {
            assert!(
                rule(api.key).is_some(),
                "{:?} has no authorization rule",
                api.key
            );
        }
    }
}
