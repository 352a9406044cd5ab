//! Consumer groups from the admin side: list, describe, offsets (fetch,
//! alter) and delete, each at the group's coordinator and retried while the
//! coordinator loads or moves, as Kafka's admin client does; and the
//! OffsetFetch/OffsetCommit calls the consumer shares.

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    offset_commit_request, offset_fetch_request, ApiKey, DeleteGroupsRequest,
    DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::{
    opt_string, sb, topic_name, Admin, CommittedOffset, GroupDescription, GroupListing,
    GroupMember, Tp,
};
use crate::client::{codes, Client};
use crate::error::ClientError;
use crate::group_protocol::Assignment;

impl Admin {
    /// ListGroups on every broker, merged and sorted by group id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        let brokers: Vec<i32> = self.client.cluster().brokers.keys().copied().collect();
        let mut out = Vec::new();
        for id in brokers {
            // A broker still loading its group coordinator partitions answers
            // COORDINATOR_LOAD_IN_PROGRESS; ask again, as Kafka's admin client does.
            let mut attempt = 0;
            let resp = loop {
                let (resp, _) = self
                    .client
                    .send_to(id, ApiKey::ListGroups, |_| ListGroupsRequest::default())
                    .await?;
                if resp.error_code == codes::COORDINATOR_LOAD_IN_PROGRESS
                    && attempt < self.client.config().retries
                {
                    attempt += 1;
                    tokio::time::sleep(self.client.config().retry_backoff).await;
                    continue;
                }
                break resp;
            };
            ClientError::check(resp.error_code, None, format!("ListGroups on broker {id}"))?;
            out.extend(resp.groups.iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                coordinator: id,
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// Runs `call` against `group`'s coordinator, asking again (after the
    /// retry backoff, up to the configured retries) while it answers
    /// COORDINATOR_LOAD_IN_PROGRESS (a coordinator still loading its
    /// `__consumer_offsets` partition), NOT_COORDINATOR or
    /// COORDINATOR_NOT_AVAILABLE (then looking the coordinator up again), as
    /// Kafka's admin client does.
    async fn with_coordinator<T>(
        &self,
        group: &str,
        call: impl AsyncFn(i32) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut attempt = 0;
        loop {
            let coordinator = self.client.group_coordinator(group).await?;
            match call(coordinator).await {
                Err(e)
                    if matches!(
                        e.code(),
                        Some(
                            codes::COORDINATOR_LOAD_IN_PROGRESS
                                | codes::NOT_COORDINATOR
                                | codes::COORDINATOR_NOT_AVAILABLE
                        )
                    ) && attempt < self.client.config().retries =>
                {
                    attempt += 1;
                    tokio::time::sleep(self.client.config().retry_backoff).await;
                }
                result => return result,
            }
        }
    }

    /// Describes a group at its coordinator: ConsumerGroupDescribe for a
    /// consumer-protocol (KIP-848) group, DescribeGroups for a classic one
    /// (or one that does not exist: state `Dead`).
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, ClientError> {
        self.with_coordinator(group, async |coordinator| {
            self.describe_group_on(coordinator, group).await
        })
        .await
    }

    async fn describe_group_on(
        &self,
        coordinator: i32,
        group: &str,
    ) -> Result<GroupDescription, ClientError> {
        if let Some(d) = self.describe_consumer_group(coordinator, group).await? {
            return Ok(d);
        }
        let (resp, version) = self
            .client
            .send_to(coordinator, ApiKey::DescribeGroups, |_| {
                DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))])
            })
            .await?;
        let g = resp.groups.first().ok_or_else(|| {
            ClientError::Invalid(format!("DescribeGroups did not answer for {group}"))
        })?;
        // v6 (KIP-1043) answers a group with no classic state with
        // GROUP_ID_NOT_FOUND where older versions describe it as Dead; callers
        // (such as resetting a new group's offsets) rely on the Dead shape.
        if version >= 6 && g.error_code == codes::GROUP_ID_NOT_FOUND {
            return Ok(GroupDescription {
                group_id: group.to_string(),
                error_code: 0,
                state: "Dead".into(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
                coordinator,
                epochs: None,
            });
        }
        ClientError::check(
            g.error_code,
            opt_string(&g.error_message),
            format!("group {group}"),
        )?;
        let consumer = g.protocol_type.as_str() == "consumer" || g.protocol_type.is_empty();
        let members = g
            .members
            .iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: opt_string(&m.group_instance_id),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: if consumer {
                    Assignment::decode(&m.member_assignment).unwrap_or_default()
                } else {
                    Assignment::default()
                },
                consumer: None,
            })
            .collect();
        Ok(GroupDescription {
            group_id: g.group_id.0.to_string(),
            error_code: g.error_code,
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
            coordinator,
            epochs: None,
        })
    }

    /// OffsetFetch: a group's committed offsets (all topics when `topics` is None).
    pub async fn list_group_offsets(
        &self,
        group: &str,
        topics: Option<&[Tp]>,
    ) -> Result<BTreeMap<Tp, CommittedOffset>, ClientError> {
        self.with_coordinator(group, async |coordinator| {
            fetch_committed(&self.client, coordinator, group, topics).await
        })
        .await
    }

    /// OffsetCommit from outside the group (generation -1, empty member id);
    /// the group must have no active members.
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), ClientError> {
        self.with_coordinator(group, async |coordinator| {
            commit_offsets(&self.client, coordinator, group, -1, "", offsets).await
        })
        .await
    }

    /// DeleteGroups for one group.
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        self.with_coordinator(group, async |coordinator| {
            let (resp, _) = self
                .client
                .send_to(coordinator, ApiKey::DeleteGroups, |_| {
                    DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))])
                })
                .await?;
            let r = resp.results.first().ok_or_else(|| {
                ClientError::Invalid(format!("DeleteGroups did not answer for {group}"))
            })?;
            ClientError::check(r.error_code, None, format!("group {group}"))
        })
        .await
    }
}

/// OffsetFetch against `coordinator` (shared by the admin and the consumer).
pub(crate) async fn fetch_committed(
    client: &Client,
    coordinator: i32,
    group: &str,
    topics: Option<&[Tp]>,
) -> Result<BTreeMap<Tp, CommittedOffset>, ClientError> {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    if let Some(ts) = topics {
        for (t, p) in ts {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
    }
    let want_all = topics.is_none();
    let (resp, v) = client
        .send_to(coordinator, ApiKey::OffsetFetch, |v| {
            if v >= 8 {
                let topics = (!want_all).then(|| {
                    by_topic
                        .iter()
                        .map(|(t, ps)| {
                            offset_fetch_request::OffsetFetchRequestTopics::default()
                                .with_name(topic_name(t))
                                .with_partition_indexes(ps.clone())
                        })
                        .collect()
                });
                OffsetFetchRequest::default()
                    .with_groups(vec![
                        offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(sb(group)))
                            .with_member_id(None)
                            .with_topics(topics),
                    ])
                    .with_require_stable(false)
            } else {
                let topics = (!want_all).then(|| {
                    by_topic
                        .iter()
                        .map(|(t, ps)| {
                            offset_fetch_request::OffsetFetchRequestTopic::default()
                                .with_name(topic_name(t))
                                .with_partition_indexes(ps.clone())
                        })
                        .collect()
                });
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(sb(group)))
                    .with_topics(topics)
            }
        })
        .await?;
    let mut out = BTreeMap::new();
    if v >= 8 {
        let g = resp.groups.first().ok_or_else(|| {
            ClientError::Invalid(format!("OffsetFetch did not answer for {group}"))
        })?;
        ClientError::check(g.error_code, None, format!("group {group}"))?;
        for t in &g.topics {
            for p in &t.partitions {
                ClientError::check(
                    p.error_code,
                    None,
                    format!("group {group} partition {}-{}", t.name.0, p.partition_index),
                )?;
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    committed(p.committed_offset, &p.metadata, p.committed_leader_epoch),
                );
            }
        }
    } else {
        ClientError::check(resp.error_code, None, format!("group {group}"))?;
        for t in &resp.topics {
            for p in &t.partitions {
                ClientError::check(
                    p.error_code,
                    None,
                    format!("group {group} partition {}-{}", t.name.0, p.partition_index),
                )?;
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    committed(p.committed_offset, &p.metadata, p.committed_leader_epoch),
                );
            }
        }
    }
    Ok(out)
}

/// One partition of an OffsetFetch answer (the same fields in every version).
fn committed(offset: i64, metadata: &Option<StrBytes>, leader_epoch: i32) -> CommittedOffset {
    CommittedOffset {
        offset,
        metadata: opt_string(metadata),
        leader_epoch: (leader_epoch >= 0).then_some(leader_epoch),
    }
}

/// OffsetCommit against `coordinator` (shared by the admin and the consumer).
pub(crate) async fn commit_offsets(
    client: &Client,
    coordinator: i32,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &[(String, i32, i64)],
) -> Result<(), ClientError> {
    let mut by_topic: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for (t, p, o) in offsets {
        by_topic.entry(t.clone()).or_default().push((*p, *o));
    }
    let (resp, _) = client
        .send_to(coordinator, ApiKey::OffsetCommit, |_| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(sb(member_id))
                .with_topics(
                    by_topic
                        .iter()
                        .map(|(t, ps)| {
                            offset_commit_request::OffsetCommitRequestTopic::default()
                                .with_name(topic_name(t))
                                .with_partitions(
                                    ps.iter()
                                        .map(|(p, o)| {
                                            offset_commit_request::OffsetCommitRequestPartition::default()
                                                .with_partition_index(*p)
                                                .with_committed_offset(*o)
                                                .with_committed_leader_epoch(-1)
                                                .with_committed_metadata(Some(StrBytes::default()))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .await?;
    for t in &resp.topics {
        for p in &t.partitions {
            ClientError::check(
                p.error_code,
                None,
                format!("group {group} partition {}-{}", t.name.0, p.partition_index),
            )?;
        }
    }
    Ok(())
}
