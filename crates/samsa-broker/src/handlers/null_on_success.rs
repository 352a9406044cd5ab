//! Nullable strings are null on success, as Kafka answers them.
//!
//! `kafka-protocol`'s `Default` gives many nullable response strings the
//! value `Some("")` (CreateTopics' and the config APIs' `error_message`,
//! FindCoordinator's, the reassignment APIs'), where Kafka sends null when
//! there is no error; clients tell the two apart (aiokafka checks
//! `error_message is None`). Every response passes through [`apply`] before
//! it is encoded, so a handler that leaves such a field at its default
//! cannot send `""`. An error keeps its message.

use kafka_protocol::messages::ResponseKind;
use kafka_protocol::protocol::StrBytes;

/// Clears `message` when `error_code` is 0 (no error).
fn clear(error_code: i16, message: &mut Option<StrBytes>) {
    if error_code == 0 {
        *message = None;
    }
}

/// Sets every success's nullable error message in `body` to null.
pub(crate) fn apply(body: &mut ResponseKind) {
    match body {
        ResponseKind::CreateTopics(r) => {
            for t in &mut r.topics {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::DeleteTopics(r) => {
            for t in &mut r.responses {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::CreatePartitions(r) => {
            for t in &mut r.results {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::DescribeConfigs(r) => {
            for t in &mut r.results {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::AlterConfigs(r) => {
            for t in &mut r.responses {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::IncrementalAlterConfigs(r) => {
            for t in &mut r.responses {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::FindCoordinator(r) => {
            clear(r.error_code, &mut r.error_message);
            for c in &mut r.coordinators {
                clear(c.error_code, &mut c.error_message);
            }
        }
        ResponseKind::ElectLeaders(r) => {
            for t in &mut r.replica_election_results {
                for p in &mut t.partition_result {
                    clear(p.error_code, &mut p.error_message);
                }
            }
        }
        ResponseKind::AlterPartitionReassignments(r) => {
            clear(r.error_code, &mut r.error_message);
            for t in &mut r.responses {
                for p in &mut t.partitions {
                    clear(p.error_code, &mut p.error_message);
                }
            }
        }
        ResponseKind::ListPartitionReassignments(r) => {
            clear(r.error_code, &mut r.error_message);
        }
        ResponseKind::DescribeQuorum(r) => {
            clear(r.error_code, &mut r.error_message);
            for t in &mut r.topics {
                for p in &mut t.partitions {
                    clear(p.error_code, &mut p.error_message);
                }
            }
        }
        ResponseKind::DescribeCluster(r) => clear(r.error_code, &mut r.error_message),
        ResponseKind::ConsumerGroupHeartbeat(r) => clear(r.error_code, &mut r.error_message),
        ResponseKind::ConsumerGroupDescribe(r) => {
            for g in &mut r.groups {
                clear(g.error_code, &mut g.error_message);
            }
        }
        ResponseKind::Produce(r) => {
            for t in &mut r.responses {
                for p in &mut t.partition_responses {
                    clear(p.error_code, &mut p.error_message);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::{
        CreateTopicsResponse, FindCoordinatorResponse, ListPartitionReassignmentsResponse,
        TopicName,
    };

    /// The defaults the walker exists for: without it these go out as "".
    #[test]
    fn defaults_that_would_be_empty_strings_become_null() {
        assert_eq!(
            CreatableTopicResult::default().error_message,
            Some(StrBytes::default()),
            "kafka-protocol's default changed; this module may be obsolete"
        );
        let mut body =
            ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(vec![
                CreatableTopicResult::default()
                    .with_name(TopicName(StrBytes::from_static_str("a"))),
                CreatableTopicResult::default()
                    .with_error_code(36)
                    .with_error_message(Some(StrBytes::from_static_str("exists"))),
            ]));
        apply(&mut body);
        let ResponseKind::CreateTopics(r) = body else {
            unreachable!()
        };
        assert_eq!(r.topics[0].error_message, None);
        assert_eq!(r.topics[1].error_message.as_deref(), Some("exists"));

        let mut body = ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default().with_coordinators(vec![Coordinator::default()]),
        );
        apply(&mut body);
        let ResponseKind::FindCoordinator(r) = body else {
            unreachable!()
        };
        assert_eq!(r.error_message, None);
        assert_eq!(r.coordinators[0].error_message, None);

        let mut body =
            ResponseKind::ListPartitionReassignments(ListPartitionReassignmentsResponse::default());
        apply(&mut body);
        let ResponseKind::ListPartitionReassignments(r) = body else {
            unreachable!()
        };
        assert_eq!(r.error_message, None);
    }

    /// Through the dispatcher, as a client sees it: a created topic's
    /// CreateTopics entry has a null error message (it was "" before).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_topics_answers_null_error_message_on_success() {
        use bytes::{Buf, BytesMut};
        use kafka_protocol::messages::create_topics_request::CreatableTopic;
        use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, RequestHeader};
        use kafka_protocol::protocol::{Decodable, Encodable};

        let dir = tempfile::tempdir().unwrap();
        let broker = crate::test_support::broker_over(dir.path(), |q| Box::new(q));
        let version = 7;
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::CreateTopics as i16)
            .with_request_api_version(version)
            .with_correlation_id(9)
            .encode(&mut frame, 2)
            .unwrap();
        CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_num_partitions(1)
                .with_replication_factor(1)])
            .with_timeout_ms(5000)
            .encode(&mut frame, version)
            .unwrap();
        let request = samsa_protocol::codec::parse_request(frame.freeze()).unwrap();
        let peer = "127.0.0.1:1".parse().unwrap();
        let super::super::Reply::Send(response) = super::super::handle(
            &broker,
            peer,
            &"PLAINTEXT".into(),
            &std::sync::Arc::new(samsa_security::KafkaPrincipal::anonymous()),
            request,
        )
        .await
        else {
            panic!("no response");
        };
        let mut bytes = response.to_bytes().unwrap().freeze();
        let size = bytes.get_i32() as usize;
        assert_eq!(size, bytes.len());
        assert_eq!(bytes.get_i32(), 9, "correlation id");
        assert_eq!(bytes.get_u8(), 0, "no tagged fields in the header");
        let r = CreateTopicsResponse::decode(&mut bytes, version).unwrap();
        assert_eq!(r.topics[0].error_code, 0);
        assert_eq!(r.topics[0].error_message, None);
    }
}
