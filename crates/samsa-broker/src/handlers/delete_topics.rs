//! DeleteTopics: by name (v1-5) or by name or id (v6).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use samsa_model::TopicId;

use super::s;
use crate::broker::Broker;
use crate::errors::controller_error;

/// Answers DeleteTopics.
pub fn handle(broker: &Broker, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let by_id = name.is_none() && !id.is_nil();
        let result = broker
            .admin(|c| c.delete_topic(name.as_deref(), (!id.is_nil()).then_some(TopicId(id))));
        let mut r =
            DeletableTopicResult::default().with_name(name.clone().map(|n| TopicName(s(n))));
        match result {
            Ok((deleted_name, deleted_id)) => {
                r = r.with_name(Some(TopicName(s(deleted_name))));
                if version >= 6 {
                    r = r.with_topic_id(deleted_id.0);
                }
            }
            Err(e) => {
                let code = match controller_error(&e) {
                    ResponseError::UnknownTopicOrPartition if by_id => {
                        ResponseError::UnknownTopicId
                    }
                    c => c,
                };
                r = r.with_error_code(code.code());
                if version >= 5 {
                    r = r.with_error_message(Some(s(e.to_string())));
                }
                if version >= 6 {
                    r = r.with_topic_id(id);
                }
            }
        }
        responses.push(r);
    }
    if let Err(e) = broker.reconcile() {
        tracing::error!(error = %e, "reconciling logs after DeleteTopics");
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
