//! Per-resource authorization done around a handler ([`crate::authz`]'s
//! `Rule::PerResource` APIs whose handlers do not check it themselves):
//! either the whole request is refused ([`Gate::Answer`]), or the topics
//! the principal may not touch are taken out of the request and answered
//! with TOPIC_AUTHORIZATION_FAILED next to the handler's answer
//! ([`Patch`]), so an unauthorized topic is never read, written, created or
//! deleted, as in Kafka. (Fetch is checked inside its handler, over the
//! fetch session's partitions: a session must not keep serving a topic
//! whose Read was revoked.)

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use samsa_metadata::acl::ResourceType;
use samsa_metadata::security::AclOperation;

use super::Ctx;
use crate::authz::{allowed, cluster_allowed};
use crate::broker::Broker;

const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();

/// What the dispatcher does with a request.
pub enum Gate {
    /// Run the handler on this (possibly reduced) request, then apply the patch.
    Pass(RequestKind, Patch),
    /// Answer this without running the handler.
    Answer(ResponseKind),
}

/// Answers to add for what was taken out of the request.
#[derive(Default)]
pub struct Patch {
    /// (topic name, topic id, partitions, error code)
    topics: Vec<(TopicName, uuid::Uuid, Vec<i32>, i16)>,
}

impl Patch {
    /// Adds the refused topics' answers to `body`.
    pub fn apply(self, body: &mut ResponseKind) {
        if self.topics.is_empty() {
            return;
        }
        match body {
            ResponseKind::CreateTopics(r) => {
                for (name, _, _, code) in self.topics {
                    r.topics.push(
                        CreatableTopicResult::default()
                            .with_name(name)
                            .with_error_code(code)
                            .with_error_message(None)
                            .with_num_partitions(-1)
                            .with_replication_factor(-1),
                    );
                }
            }
            ResponseKind::DeleteTopics(r) => {
                for (name, id, _, code) in self.topics {
                    r.responses.push(
                        DeletableTopicResult::default()
                            .with_name(Some(name))
                            .with_topic_id(id)
                            .with_error_code(code),
                    );
                }
            }
            ResponseKind::OffsetCommit(r) => {
                for (name, id, parts, code) in self.topics {
                    r.topics.push(
                        OffsetCommitResponseTopic::default()
                            .with_name(name)
                            .with_topic_id(id)
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
            _ => {}
        }
    }
}

/// Checks `request` as `ctx`'s principal; without an authorizer, passes it
/// unchanged.
pub fn check(broker: &Broker, ctx: &Ctx, request: RequestKind) -> Gate {
    if broker.authorizer.is_none() {
        return Gate::Pass(request, Patch::default());
    }
    let topic_ok =
        |op: AclOperation, name: &str| allowed(broker, ctx, op, ResourceType::Topic, name);
    let group_ok =
        |group: &str| allowed(broker, ctx, AclOperation::Read, ResourceType::Group, group);
    let image = broker.image();
    let name_of = |name: &TopicName, id: uuid::Uuid| -> Option<String> {
        if name.0.is_empty() && !id.is_nil() {
            image
                .topic_by_id(samsa_model::TopicId(id))
                .map(|t| t.name.clone())
        } else {
            Some(name.0.to_string())
        }
    };
    let mut patch = Patch::default();
    let request = match request {
        RequestKind::CreateTopics(mut r) => {
            if !cluster_allowed(broker, ctx, AclOperation::Create) {
                r.topics.retain(|t| {
                    let ok = topic_ok(AclOperation::Create, &t.name.0);
                    if !ok {
                        patch.topics.push((
                            t.name.clone(),
                            uuid::Uuid::nil(),
                            Vec::new(),
                            TOPIC_DENIED,
                        ));
                    }
                    ok
                });
            }
            RequestKind::CreateTopics(r)
        }
        RequestKind::DeleteTopics(mut r) => {
            r.topic_names.retain(|n| {
                let ok = topic_ok(AclOperation::Delete, &n.0);
                if !ok {
                    patch
                        .topics
                        .push((n.clone(), uuid::Uuid::nil(), Vec::new(), TOPIC_DENIED));
                }
                ok
            });
            r.topics.retain(|t| {
                let name = t.name.clone().unwrap_or_default();
                let ok =
                    name_of(&name, t.topic_id).is_none_or(|n| topic_ok(AclOperation::Delete, &n));
                if !ok {
                    patch
                        .topics
                        .push((name, t.topic_id, Vec::new(), TOPIC_DENIED));
                }
                ok
            });
            RequestKind::DeleteTopics(r)
        }
        RequestKind::OffsetCommit(mut r) => {
            let group = group_ok(&r.group_id.0);
            r.topics.retain(|t| {
                let code = if !group {
                    GROUP_DENIED
                } else if name_of(&t.name, t.topic_id)
                    .is_none_or(|n| topic_ok(AclOperation::Read, &n))
                {
                    return true;
                } else {
                    TOPIC_DENIED
                };
                let parts = t.partitions.iter().map(|p| p.partition_index).collect();
                patch.topics.push((t.name.clone(), t.topic_id, parts, code));
                false
            });
            RequestKind::OffsetCommit(r)
        }
        RequestKind::JoinGroup(r) if !group_ok(&r.group_id.0) => {
            return Gate::Answer(ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_error_code(GROUP_DENIED)
                    .with_generation_id(-1)
                    .with_member_id(r.member_id),
            ))
        }
        RequestKind::SyncGroup(r) if !group_ok(&r.group_id.0) => {
            return Gate::Answer(ResponseKind::SyncGroup(
                SyncGroupResponse::default().with_error_code(GROUP_DENIED),
            ))
        }
        RequestKind::Heartbeat(r) if !group_ok(&r.group_id.0) => {
            return Gate::Answer(ResponseKind::Heartbeat(
                HeartbeatResponse::default().with_error_code(GROUP_DENIED),
            ))
        }
        RequestKind::LeaveGroup(r) if !group_ok(&r.group_id.0) => {
            return Gate::Answer(ResponseKind::LeaveGroup(
                LeaveGroupResponse::default().with_error_code(GROUP_DENIED),
            ))
        }
        RequestKind::InitProducerId(r) => {
            // TransactionalId Write; an idempotent producer needs Cluster
            // IdempotentWrite or Write on some topic (Kafka 3+).
            let denied = match &r.transactional_id {
                Some(id) => (!allowed(
                    broker,
                    ctx,
                    AclOperation::Write,
                    ResourceType::TransactionalId,
                    id,
                ))
                .then_some(ResponseError::TransactionalIdAuthorizationFailed),
                None => (!cluster_allowed(broker, ctx, AclOperation::IdempotentWrite)
                    && !crate::authz::allowed_on_any(
                        broker,
                        ctx,
                        AclOperation::Write,
                        ResourceType::Topic,
                    ))
                .then_some(ResponseError::ClusterAuthorizationFailed),
            };
            if let Some(e) = denied {
                return Gate::Answer(ResponseKind::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(e.code())
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                ));
            }
            RequestKind::InitProducerId(r)
        }
        other => other,
    };
    Gate::Pass(request, patch)
}
