//! DescribeGroups: state, protocol and members of classic groups.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use super::s;
use crate::broker::Broker;

/// Answers DescribeGroups.
pub async fn handle(
    broker: &Broker,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let ids: Vec<String> = request.groups.iter().map(|g| g.0.to_string()).collect();
    let mut groups: Vec<_> = broker
        .groups
        .read_groups(broker, &ids, |c, _, part| c.describe_groups(part).groups)
        .await
        .into_iter()
        .flatten()
        .collect();
    super::in_request_order(&mut groups, &ids, |g| &g.group_id);
    DescribeGroupsResponse::default().with_groups(
        groups
            .into_iter()
            .map(|g| {
                DescribedGroup::default()
                    .with_error_code(g.error_code)
                    .with_group_id(GroupId(s(g.group_id)))
                    .with_group_state(s(g.group_state))
                    .with_protocol_type(s(g.protocol_type))
                    .with_protocol_data(s(g.protocol_data))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                let mut out = DescribedGroupMember::default()
                                    .with_member_id(s(m.member_id))
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_member_metadata(m.member_metadata)
                                    .with_member_assignment(m.member_assignment);
                                if version >= 4 {
                                    out = out.with_group_instance_id(m.group_instance_id.map(s));
                                }
                                out
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
