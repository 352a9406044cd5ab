//! DescribeTopicPartitions (KIP-966): topics and their partitions, paged.
//!
//! As Kafka answers it: the topics (all when the request names none) are
//! walked in name order from the request's cursor, partitions from the
//! cursor's index, until `response_partition_limit` partitions (capped by
//! the broker's `max.request.partition.size.limit`, at least 1) are in the
//! response; `next_cursor` then names the first partition left out. Unknown
//! topics are answered UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION
//! for an illegal name) when named, and left out of an all-topics listing.
//! samsa has no eligible leader replicas (KIP-966's ELR): both ELR lists are
//! empty, as Kafka's with ELR disabled.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use samsa_metadata::security::{authorized_operations, AclResource};
use samsa_metadata::TopicImage;

use super::metadata::PartitionView;
use super::s;
use crate::broker::Broker;

/// The broker config capping `response_partition_limit`.
pub const PARTITION_LIMIT_KEY: &str = "max.request.partition.size.limit";
/// Its default (Kafka's).
const PARTITION_LIMIT_DEFAULT: i32 = 2000;

/// Answers DescribeTopicPartitions.
pub fn handle(
    broker: &Broker,
    request: DescribeTopicPartitionsRequest,
    _version: i16,
) -> DescribeTopicPartitionsResponse {
    let cap = broker
        .config()
        .get(PARTITION_LIMIT_KEY)
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(PARTITION_LIMIT_DEFAULT);
    match describe(broker, &request, cap) {
        Ok(response) => response,
        Err(message) => {
            // Kafka's error response: every named topic with the error.
            tracing::debug!(%message, "DescribeTopicPartitions refused");
            let topics = request
                .topics
                .iter()
                .map(|t| {
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_name(Some(t.name.clone()))
                })
                .collect();
            DescribeTopicPartitionsResponse::default().with_topics(topics)
        }
    }
}

/// The response, or why the request is invalid (a cursor naming a topic the
/// request does not, or a negative cursor partition).
fn describe(
    broker: &Broker,
    request: &DescribeTopicPartitionsRequest,
    cap: i32,
) -> Result<DescribeTopicPartitionsResponse, String> {
    let image = broker.image();
    let (cursor_topic, cursor_partition) = match &request.cursor {
        Some(c) => (c.topic_name.0.as_str(), c.partition_index),
        None => ("", 0),
    };
    if cursor_partition < 0 {
        return Err("Partition index in the cursor cannot be negative.".into());
    }
    let all_topics = request.topics.is_empty();
    let mut names: Vec<&str> = if all_topics {
        image
            .topics
            .keys()
            .map(String::as_str)
            .filter(|n| *n >= cursor_topic)
            .collect()
    } else {
        let named: Vec<&str> = request
            .topics
            .iter()
            .map(|t| t.name.0.as_str())
            .filter(|n| *n >= cursor_topic)
            .collect();
        if request.cursor.is_some() && !named.contains(&cursor_topic) {
            return Err(format!(
                "DescribeTopicPartitionsRequest topic list should contain the cursor topic: {cursor_topic}"
            ));
        }
        named
    };
    names.sort_unstable();
    names.dedup();
    let mut remaining = request.response_partition_limit.min(cap).max(1) as usize;
    let mut response = DescribeTopicPartitionsResponse::default();
    for name in names {
        if remaining == 0 {
            // The cursor points at the start of the next topic, whether it
            // exists or not (as Kafka).
            response.next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(s(name)))
                    .with_partition_index(0),
            );
            break;
        }
        let Some(topic) = image.topic(name) else {
            if !all_topics {
                response.topics.push(unknown_topic(name));
            }
            continue;
        };
        let start = if name == cursor_topic {
            cursor_partition as usize
        } else {
            0
        };
        let (entry, next) = topic_entry(&image, topic, start, remaining);
        remaining -= entry.partitions.len();
        response.topics.push(entry);
        if let Some(next) = next {
            response.next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(s(name)))
                    .with_partition_index(next),
            );
            break;
        }
    }
    Ok(response)
}

/// The entry of an existing topic with at most `max` partitions from
/// `start`, and the index of the first partition left out, if any.
fn topic_entry(
    image: &samsa_metadata::MetadataImage,
    t: &TopicImage,
    start: usize,
    max: usize,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let end = t.partitions.len().min(start.saturating_add(max));
    let partitions = t
        .partitions
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let v = PartitionView::new(image, p);
            DescribeTopicPartitionsResponsePartition::default()
                .with_error_code(v.error_code)
                .with_partition_index(v.index)
                .with_leader_id(v.leader)
                .with_leader_epoch(v.leader_epoch)
                .with_replica_nodes(v.replicas)
                .with_isr_nodes(v.isr)
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(v.offline)
        })
        .collect();
    let next = (end < t.partitions.len()).then_some(end as i32);
    let entry = DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(s(t.name.clone()))))
        .with_topic_id(t.id.0)
        .with_is_internal(t.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized_operations(AclResource::Topic));
    (entry, next)
}

fn unknown_topic(name: &str) -> DescribeTopicPartitionsResponseTopic {
    let code = match samsa_metadata::plan::validate_topic_name(name) {
        Ok(()) => ResponseError::UnknownTopicOrPartition,
        Err(_) => ResponseError::InvalidTopicException,
    };
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(code.code())
        .with_name(Some(TopicName(s(name))))
        .with_is_internal(name.starts_with("__"))
        .with_topic_authorized_operations(authorized_operations(AclResource::Topic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_topic_partitions_request::{
        Cursor as RequestCursor, TopicRequest,
    };
    use samsa_metadata::NewTopic;

    fn broker_with(dir: &std::path::Path, topics: &[(&str, i32)]) -> std::sync::Arc<Broker> {
        let broker = crate::test_support::broker_over(dir, |q| Box::new(q));
        let new = topics
            .iter()
            .map(|(name, partitions)| NewTopic {
                name: (*name).into(),
                num_partitions: *partitions,
                replication_factor: 1,
                ..Default::default()
            })
            .collect();
        for r in broker.controller.create_topics(new, false) {
            assert!(r.is_ok(), "{r:?}");
        }
        broker
    }

    fn request(
        names: &[&str],
        limit: i32,
        cursor: Option<(&str, i32)>,
    ) -> DescribeTopicPartitionsRequest {
        DescribeTopicPartitionsRequest::default()
            .with_topics(
                names
                    .iter()
                    .map(|n| TopicRequest::default().with_name(TopicName(s(*n))))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| {
                RequestCursor::default()
                    .with_topic_name(TopicName(s(t)))
                    .with_partition_index(p)
            }))
    }

    /// (topic, partition indexes) per topic entry, and the next cursor.
    type Page = (Vec<(String, Vec<i32>)>, Option<(String, i32)>);

    fn pages(r: &DescribeTopicPartitionsResponse) -> Page {
        (
            r.topics
                .iter()
                .map(|t| {
                    (
                        t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                        t.partitions.iter().map(|p| p.partition_index).collect(),
                    )
                })
                .collect(),
            r.next_cursor
                .as_ref()
                .map(|c| (c.topic_name.0.to_string(), c.partition_index)),
        )
    }

    #[test]
    fn pages_through_all_topics_in_name_order_with_a_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with(dir.path(), &[("b", 5), ("a", 3), ("c", 1)]);
        let page = |cursor| pages(&handle(&broker, request(&[], 4, cursor), 0));
        let s = |v: &str| v.to_string();
        assert_eq!(
            page(None),
            (
                vec![(s("a"), vec![0, 1, 2]), (s("b"), vec![0])],
                Some((s("b"), 1))
            )
        );
        assert_eq!(
            page(Some(("b", 1))),
            (vec![(s("b"), vec![1, 2, 3, 4])], Some((s("c"), 0)))
        );
        assert_eq!(page(Some(("c", 0))), (vec![(s("c"), vec![0])], None));
        // A limit of 0 (or less) still makes progress: one partition.
        assert_eq!(page(None).0.len(), 2);
        assert_eq!(
            pages(&handle(&broker, request(&[], 0, None), 0)),
            (vec![(s("a"), vec![0])], Some((s("a"), 1)))
        );
    }

    #[test]
    fn the_broker_cap_bounds_the_requested_limit() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with(dir.path(), &[("a", 5)]);
        let r = describe(&broker, &request(&["a"], 2000, None), 2).unwrap();
        assert_eq!(
            pages(&r),
            (vec![("a".into(), vec![0, 1])], Some(("a".into(), 2)))
        );
    }

    #[test]
    fn named_topics_unknown_and_invalid_names_and_bad_cursors() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with(dir.path(), &[("a", 2)]);
        let r = handle(&broker, request(&["zz", "a", "bad/name"], 100, None), 0);
        let codes: Vec<(String, i16)> = r
            .topics
            .iter()
            .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("a".into(), 0),
                (
                    "bad/name".into(),
                    ResponseError::InvalidTopicException.code()
                ),
                ("zz".into(), ResponseError::UnknownTopicOrPartition.code()),
            ]
        );
        let a = &r.topics[0];
        assert_eq!(a.topic_authorized_operations, 3576);
        assert!(!a.is_internal);
        let p = &a.partitions[0];
        assert_eq!(p.leader_id.0, 1);
        assert_eq!(p.eligible_leader_replicas, Some(vec![]));
        assert_eq!(p.last_known_elr, Some(vec![]));
        // The cursor must name a requested topic; its partition must not be negative.
        for cursor in [("b", 0), ("a", -1)] {
            let r = handle(&broker, request(&["a"], 100, Some(cursor)), 0);
            assert_eq!(r.topics.len(), 1, "{cursor:?}");
            assert_eq!(r.topics[0].error_code, ResponseError::InvalidRequest.code());
        }
    }
}
