//! DescribeQuorum (KIP-595/853): the metadata quorum, as
//! `kafka-metadata-quorum.sh` and the admin clients' `describeMetadataQuorum`
//! read it. Only the quorum leader answers, so the request goes to the
//! controller the cluster names (samsa reports the quorum leader there).

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{ApiKey, DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{opt_string, Admin};
use crate::error::ClientError;

/// One replica of the metadata log. Timestamps are milliseconds since the
/// epoch, -1 when unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumReplica {
    pub id: i32,
    pub log_end_offset: i64,
    pub last_fetch_timestamp: i64,
    pub last_caught_up_timestamp: i64,
}

/// A voter's listener (`NAME://host:port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumEndpoint {
    pub node_id: i32,
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// The metadata quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumInfo {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
    pub endpoints: Vec<QuorumEndpoint>,
}

impl Admin {
    /// Describes the metadata quorum (`__cluster_metadata` partition 0).
    pub async fn describe_metadata_quorum(&self) -> Result<QuorumInfo, ClientError> {
        let controller = self.describe_cluster().await?.controller_id;
        let (resp, _) = self
            .client
            .send_to(controller, ApiKey::DescribeQuorum, |_| {
                DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                    .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
            })
            .await?;
        ClientError::check(
            resp.error_code,
            opt_string(&resp.error_message),
            "DescribeQuorum",
        )?;
        let p = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Decode {
                api: "DescribeQuorum",
                version: 2,
                reason: "no partition in the answer".into(),
            })?;
        ClientError::check(p.error_code, opt_string(&p.error_message), "DescribeQuorum")?;
        let replicas =
            |list: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
                list.iter()
                    .map(|r| QuorumReplica {
                        id: r.replica_id.0,
                        log_end_offset: r.log_end_offset,
                        last_fetch_timestamp: r.last_fetch_timestamp,
                        last_caught_up_timestamp: r.last_caught_up_timestamp,
                    })
                    .collect()
            };
        Ok(QuorumInfo {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: replicas(&p.current_voters),
            observers: replicas(&p.observers),
            endpoints: resp
                .nodes
                .iter()
                .flat_map(|n| {
                    n.listeners.iter().map(|l| QuorumEndpoint {
                        node_id: n.node_id.0,
                        name: l.name.to_string(),
                        host: l.host.to_string(),
                        port: l.port,
                    })
                })
                .collect(),
        })
    }
}
