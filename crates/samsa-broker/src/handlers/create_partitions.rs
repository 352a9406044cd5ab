//! CreatePartitions: grows topics.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use samsa_model::BrokerId;

use super::s;
use crate::broker::Broker;
use crate::errors::controller_error;

/// Answers CreatePartitions.
pub fn handle(
    broker: &Broker,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let assignments = t.assignments.map(|a| {
                a.into_iter()
                    .map(|x| x.broker_ids.into_iter().map(|b| BrokerId(b.0)).collect())
                    .collect()
            });
            let result = broker.admin(|c| {
                c.create_partitions(&t.name.0, t.count, assignments, request.validate_only)
            });
            let r = CreatePartitionsTopicResult::default().with_name(t.name);
            match result {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(controller_error(&e).code())
                    .with_error_message(Some(s(e.to_string()))),
            }
        })
        .collect();
    if !request.validate_only {
        if let Err(e) = broker.reconcile() {
            tracing::error!(error = %e, "reconciling logs after CreatePartitions");
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}
