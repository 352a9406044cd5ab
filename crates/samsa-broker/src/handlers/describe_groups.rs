//! DescribeGroups: state, protocol and members of classic groups.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use samsa_metadata::security::{authorized_operations, AclResource, AUTHORIZED_OPERATIONS_OMITTED};

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
    let ops = if version >= 3 && request.include_authorized_operations {
        authorized_operations(AclResource::Group)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    DescribeGroupsResponse::default().with_groups(
        groups
            .into_iter()
            .map(|g| {
                let (error_code, error_message) = v6_error(&g, version);
                DescribedGroup::default()
                    .with_error_code(error_code)
                    .with_error_message(error_message)
                    .with_group_id(GroupId(s(g.group_id)))
                    .with_group_state(s(g.group_state))
                    .with_protocol_type(s(g.protocol_type))
                    .with_protocol_data(s(g.protocol_data))
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

/// DescribeGroups v6 (KIP-1043) answers a group that does not exist, or that
/// is not a classic group, with GROUP_ID_NOT_FOUND and a message; older
/// versions describe an unknown group as `Dead` without an error.
fn v6_error(
    g: &samsa_coordinator::DescribedGroup,
    version: i16,
) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    use samsa_coordinator::codes::GROUP_ID_NOT_FOUND;
    let unknown = g.error_code == 0 && g.group_state == "Dead" && g.protocol_type.is_empty();
    match (version >= 6, g.error_code) {
        (true, 0) if unknown => (
            GROUP_ID_NOT_FOUND,
            Some(s(format!("Group {} not found.", g.group_id))),
        ),
        (true, GROUP_ID_NOT_FOUND) => (
            GROUP_ID_NOT_FOUND,
            Some(s(format!("Group {} is not a classic group.", g.group_id))),
        ),
        (_, code) => (code, None),
    }
}

#[cfg(test)]
mod tests {
    use samsa_coordinator::{codes, DescribedGroup};

    use super::v6_error;

    fn message(e: &(i16, Option<kafka_protocol::protocol::StrBytes>)) -> Option<String> {
        e.1.as_ref().map(|m| m.to_string())
    }

    /// v6 (KIP-1043): an unknown group is GROUP_ID_NOT_FOUND with a message,
    /// as is a consumer-protocol group; v5 keeps describing an unknown group
    /// as Dead without an error; a live group has no error in either.
    #[test]
    fn v6_names_unknown_and_non_classic_groups() {
        let unknown = DescribedGroup {
            group_id: "g".into(),
            group_state: "Dead".into(),
            ..Default::default()
        };
        let e = v6_error(&unknown, 6);
        assert_eq!(e.0, codes::GROUP_ID_NOT_FOUND);
        assert_eq!(message(&e).as_deref(), Some("Group g not found."));
        assert_eq!(v6_error(&unknown, 5), (0, None));

        let consumer = DescribedGroup {
            error_code: codes::GROUP_ID_NOT_FOUND,
            ..unknown.clone()
        };
        let e = v6_error(&consumer, 6);
        assert_eq!(e.0, codes::GROUP_ID_NOT_FOUND);
        assert_eq!(
            message(&e).as_deref(),
            Some("Group g is not a classic group.")
        );

        let stable = DescribedGroup {
            group_state: "Stable".into(),
            protocol_type: "consumer".into(),
            ..unknown
        };
        assert_eq!(v6_error(&stable, 6), (0, None));
    }
}
