//! ConsumerGroupDescribe (KIP-848): members, epochs and assignments.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, TopicName,
};
use samsa_coordinator as gc;
use samsa_metadata::security::{authorized_operations, AclResource, AUTHORIZED_OPERATIONS_OMITTED};

use super::s;
use crate::broker::Broker;

fn assignment(parts: Vec<gc::NamedTopicPartitions>) -> Assignment {
    Assignment::default().with_topic_partitions(
        parts
            .into_iter()
            .map(|p| {
                TopicPartitions::default()
                    .with_topic_id(p.topic_id.0)
                    .with_topic_name(TopicName(s(p.topic_name)))
                    .with_partitions(p.partitions)
            })
            .collect(),
    )
}

/// Answers ConsumerGroupDescribe.
pub async fn handle(
    broker: &Broker,
    request: ConsumerGroupDescribeRequest,
    _version: i16,
) -> ConsumerGroupDescribeResponse {
    let ids: Vec<String> = request.group_ids.iter().map(|g| g.0.to_string()).collect();
    let mut groups: Vec<_> = broker
        .groups
        .read_groups(broker, &ids, |c, topics, part| {
            let req = gc::ConsumerGroupDescribeRequest {
                group_ids: part.to_vec(),
            };
            c.consumer_group_describe(&req, topics).groups
        })
        .await
        .into_iter()
        .flatten()
        .collect();
    super::in_request_order(&mut groups, &ids, |g| &g.group_id);
    let ops = if request.include_authorized_operations {
        authorized_operations(AclResource::Group)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    ConsumerGroupDescribeResponse::default().with_groups(
        groups
            .into_iter()
            .map(|g| {
                DescribedGroup::default()
                    .with_error_code(g.error_code)
                    .with_error_message(g.error_message.map(s))
                    .with_group_id(GroupId(s(g.group_id)))
                    .with_group_state(s(g.group_state))
                    .with_group_epoch(g.group_epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(s(g.assignor_name))
                    // Only on success, as Kafka.
                    .with_authorized_operations(if g.error_code == 0 {
                        ops
                    } else {
                        AUTHORIZED_OPERATIONS_OMITTED
                    })
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(s(m.member_id))
                                    .with_instance_id(m.instance_id.map(s))
                                    .with_rack_id(m.rack_id.map(s))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_subscribed_topic_names(
                                        m.subscribed_topic_names
                                            .into_iter()
                                            .map(|t| TopicName(s(t)))
                                            .collect(),
                                    )
                                    .with_subscribed_topic_regex(m.subscribed_topic_regex.map(s))
                                    .with_assignment(assignment(m.assignment))
                                    .with_target_assignment(assignment(m.target_assignment))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
