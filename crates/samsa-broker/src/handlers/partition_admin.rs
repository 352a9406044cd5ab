//! Partition leadership and placement admin: ElectLeaders (preferred or
//! unclean election), AlterPartitionReassignments and
//! ListPartitionReassignments. Each is a metadata change through the
//! controller; replicas move online as the new ones catch up and join the ISR.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName,
};
use samsa_metadata::ElectionType;

use super::s;
use crate::broker::Broker;
use crate::errors::controller_error;

/// Answers ElectLeaders (type 0 = preferred, 1 = unclean; null topics = all).
pub fn elect_leaders(
    broker: &Broker,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let kind = if version >= 1 && request.election_type == 1 {
        ElectionType::Unclean
    } else {
        ElectionType::Preferred
    };
    let partitions = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    let mut response = ElectLeadersResponse::default();
    match broker.admin(|c| c.elect_leaders(kind, partitions)) {
        Ok(results) => {
            if let Err(e) = broker.reconcile() {
                tracing::error!(error = %e, "reconciling after a leader election");
            }
            let mut topics: Vec<ReplicaElectionResult> = Vec::new();
            for r in results {
                let (code, message) = match &r.result {
                    Ok(_) => (0, None),
                    Err(e) => (controller_error(e).code(), Some(s(e.to_string()))),
                };
                let pr = PartitionResult::default()
                    .with_partition_id(r.partition.partition.get())
                    .with_error_code(code)
                    .with_error_message(message);
                match topics
                    .iter_mut()
                    .find(|t| t.topic.0.as_str() == r.partition.topic)
                {
                    Some(t) => t.partition_result.push(pr),
                    None => topics.push(
                        ReplicaElectionResult::default()
                            .with_topic(TopicName(s(r.partition.topic.clone())))
                            .with_partition_result(vec![pr]),
                    ),
                }
            }
            response.replica_election_results = topics;
        }
        Err(e) => response.error_code = controller_error(&e).code(),
    }
    response
}

/// Answers AlterPartitionReassignments (null replicas = cancel).
pub fn alter_reassignments(
    broker: &Broker,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    // v1 (KIP-860): with allow_replication_factor_change=false a target
    // whose size differs from the partition's current (or ongoing target)
    // replica count is refused with INVALID_REPLICATION_FACTOR, per partition.
    let allow_rf_change = version < 1 || request.allow_replication_factor_change;
    let image = broker.image();
    let mut refused: Vec<(String, i32, String)> = Vec::new();
    let changes: Vec<(String, i32, Option<Vec<samsa_model::BrokerId>>)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.replicas.as_ref().map(|r| {
                        r.iter()
                            .map(|b| samsa_model::BrokerId(b.0))
                            .collect::<Vec<_>>()
                    }),
                )
            })
        })
        .filter(|(topic, index, target)| {
            let Some(target) = target.as_ref().filter(|_| !allow_rf_change) else {
                return true;
            };
            let current = image
                .topic(topic)
                .and_then(|t| {
                    usize::try_from(*index)
                        .ok()
                        .and_then(|i| t.partitions.get(i))
                })
                .map(|p| p.target_replicas().len());
            match current {
                Some(n) if n != target.len() => {
                    refused.push((
                        topic.clone(),
                        *index,
                        format!(
                            "The replication factor is changed from {n} to {}",
                            target.len()
                        ),
                    ));
                    false
                }
                _ => true,
            }
        })
        .collect();
    let mut response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change);
    match broker.admin(|c| c.alter_reassignments(changes)) {
        Ok(results) => {
            if let Err(e) = broker.reconcile() {
                tracing::error!(error = %e, "reconciling after a reassignment");
            }
            let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
            let refused = refused.into_iter().map(|(topic, index, message)| {
                (
                    topic,
                    index,
                    ResponseError::InvalidReplicationFactor.code(),
                    Some(s(message)),
                )
            });
            let results = results.into_iter().map(|r| {
                let (code, message) = match &r.result {
                    Ok(()) => (0, None),
                    Err(e) => (controller_error(e).code(), Some(s(e.to_string()))),
                };
                (
                    r.partition.topic,
                    r.partition.partition.get(),
                    code,
                    message,
                )
            });
            for (topic, index, code, message) in results.chain(refused) {
                let pr = ReassignablePartitionResponse::default()
                    .with_partition_index(index)
                    .with_error_code(code)
                    .with_error_message(message);
                match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                    Some(t) => t.partitions.push(pr),
                    None => topics.push(
                        ReassignableTopicResponse::default()
                            .with_name(TopicName(s(topic)))
                            .with_partitions(vec![pr]),
                    ),
                }
            }
            response.responses = topics;
        }
        Err(e) => {
            response.error_code = controller_error(&e).code();
            response.error_message = Some(s(e.to_string()));
        }
    }
    response
}

/// Answers ListPartitionReassignments (null topics = all).
pub fn list_reassignments(
    broker: &Broker,
    request: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    let filter: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let ongoing = broker.controller.list_reassignments(filter.as_deref());
    let ids = |v: &[samsa_model::BrokerId]| v.iter().map(|b| BrokerId(b.get())).collect();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for r in ongoing {
        let p = OngoingPartitionReassignment::default()
            .with_partition_index(r.partition.partition.get())
            .with_replicas(ids(&r.replicas))
            .with_adding_replicas(ids(&r.adding_replicas))
            .with_removing_replicas(ids(&r.removing_replicas));
        match topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == r.partition.topic)
        {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(s(r.partition.topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
