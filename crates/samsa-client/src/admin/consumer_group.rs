//! ConsumerGroupDescribe (API 69, KIP-848): how a group that speaks the
//! consumer protocol is described. Such a group is not a classic group, so
//! DescribeGroups answers GROUP_ID_NOT_FOUND for it (as Kafka 4.x does); the
//! admin client asks ConsumerGroupDescribe first and falls back to
//! DescribeGroups for a classic group, as Kafka's own admin client does.

use kafka_protocol::messages::consumer_group_describe_response::Assignment as WireAssignment;
use kafka_protocol::messages::{ApiKey, ConsumerGroupDescribeRequest, GroupId};

use super::{opt_string, sb, Admin, GroupDescription, GroupMember};
use crate::client::codes;
use crate::error::ClientError;
use crate::group_protocol::Assignment;

/// A wire assignment as topic name → sorted partitions.
fn assignment(a: &WireAssignment) -> Assignment {
    let mut out = Assignment::default();
    for t in &a.topic_partitions {
        let mut ps = t.partitions.clone();
        ps.sort_unstable();
        out.partitions.insert(t.topic_name.0.to_string(), ps);
    }
    out
}

impl Admin {
    /// ConsumerGroupDescribe at the group's coordinator. `Ok(None)` when the
    /// coordinator does not speak it or the group is not a consumer-protocol
    /// group (then DescribeGroups is the one to ask).
    pub(super) async fn describe_consumer_group(
        &self,
        coordinator: i32,
        group: &str,
    ) -> Result<Option<GroupDescription>, ClientError> {
        let conn = self.client.broker_connection(coordinator).await?;
        if conn
            .versions()
            .version(ApiKey::ConsumerGroupDescribe)
            .is_none()
        {
            return Ok(None);
        }
        let (resp, _) = self
            .client
            .send_to(coordinator, ApiKey::ConsumerGroupDescribe, |_| {
                ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(group))])
            })
            .await?;
        let g = resp.groups.first().ok_or_else(|| {
            ClientError::Invalid(format!("ConsumerGroupDescribe did not answer for {group}"))
        })?;
        // A classic group (or none): DescribeGroups is the one to ask.
        if g.error_code == codes::GROUP_ID_NOT_FOUND {
            return Ok(None);
        }
        ClientError::check(
            g.error_code,
            opt_string(&g.error_message),
            format!("group {group}"),
        )?;
        let members = g
            .members
            .iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: opt_string(&m.instance_id),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: assignment(&m.assignment),
                consumer: Some(super::ConsumerMember {
                    member_epoch: m.member_epoch,
                    target_assignment: assignment(&m.target_assignment),
                    subscribed_topic_names: m
                        .subscribed_topic_names
                        .iter()
                        .map(|t| t.0.to_string())
                        .collect(),
                    subscribed_topic_regex: opt_string(&m.subscribed_topic_regex),
                    // v1: 0 = a classic member (not upgraded), 1 = consumer.
                    upgraded: match m.member_type {
                        0 => Some(false),
                        1 => Some(true),
                        _ => None,
                    },
                }),
            })
            .collect();
        Ok(Some(GroupDescription {
            group_id: g.group_id.0.to_string(),
            error_code: g.error_code,
            state: g.group_state.to_string(),
            protocol_type: "consumer".to_string(),
            protocol: g.assignor_name.to_string(),
            members,
            coordinator,
            epochs: Some((g.group_epoch, g.assignment_epoch)),
        }))
    }
}
