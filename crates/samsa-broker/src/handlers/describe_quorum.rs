//! DescribeQuorum (KIP-595; v2 adds the voters' listeners, KIP-853): the
//! metadata quorum's leader, epoch, high watermark, voters and observers.
//!
//! As Kafka's Raft client answers it: a request that does not name
//! `__cluster_metadata` partition 0 fails with UNKNOWN_TOPIC_OR_PARTITION;
//! only the quorum leader knows its followers' progress. A node that does
//! not lead forwards the request to the leader's broker listener, as Kafka's
//! brokers forward it to the active controller, and answers the partition
//! NOT_LEADER_OR_FOLLOWER when it cannot (no known leader, the leader has no
//! broker listener, the leader did not answer, or the request was itself
//! forwarded, so a request crosses at most one hop). A single node is a
//! one-voter quorum it leads (epoch 1; offsets count metadata records).
//! Timestamps are milliseconds since the epoch, -1 when unknown (see
//! `samsa_quorum::describe` for what they measure).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use samsa_client::connection::{Connection, ConnectionConfig};
use samsa_quorum::{QuorumDescription, ReplicaProgress};

use super::{s, Ctx};
use crate::broker::Broker;

/// The metadata log's topic name, as Kafka's.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// The client id of a forwarded DescribeQuorum (never forwarded again).
pub const FORWARDED_CLIENT_ID: &str = "samsa-describe-quorum-forward";
/// How long a forwarded DescribeQuorum may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers DescribeQuorum, forwarding it to the quorum leader when this node
/// does not lead.
pub async fn handle(
    broker: &Broker,
    ctx: &Ctx,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let leads = match &broker.cluster {
        None => true,
        Some(c) => c.raft.as_ref().is_some_and(|r| r.is_leader()),
    };
    if !leads && ctx.client_id != FORWARDED_CLIENT_ID {
        if let Some(mut forwarded) = forward(broker, ctx, &request).await {
            if version < 2 {
                forwarded.nodes.clear();
            }
            return forwarded;
        }
    }
    answer(broker, ctx, request, version)
}

/// The leader's answer to `request`, if this node knows a leader with a
/// broker listener of the request's listener name and it answers in time.
async fn forward(
    broker: &Broker,
    ctx: &Ctx,
    request: &DescribeQuorumRequest,
) -> Option<DescribeQuorumResponse> {
    let leader = broker.cluster.as_ref()?.leader()?;
    let leader = i32::try_from(leader).ok()?;
    if leader == broker.settings.node_id.get() {
        return None;
    }
    let image = broker.image();
    let info = image
        .brokers
        .get(&samsa_model::BrokerId(leader))
        .filter(|b| !b.fenced)?;
    let (host, port) = super::metadata::endpoint_on(info, &ctx.listener);
    let config = Arc::new(ConnectionConfig {
        client_id: FORWARDED_CLIENT_ID.to_owned(),
        connect_timeout: FORWARD_TIMEOUT,
        request_timeout: FORWARD_TIMEOUT,
        ..ConnectionConfig::default()
    });
    let addr = format!("{host}:{port}");
    let sent = async {
        let conn = Connection::connect(&addr, config).await?;
        conn.send(request).await
    };
    match tokio::time::timeout(FORWARD_TIMEOUT, sent).await {
        Ok(Ok((response, _))) => Some(response),
        Ok(Err(e)) => {
            tracing::debug!(leader, %addr, error = %e, "forwarding DescribeQuorum");
            None
        }
        Err(_) => None,
    }
}

/// This node's own answer.
fn answer(
    broker: &Broker,
    ctx: &Ctx,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let names_metadata_log = request.topics.len() == 1
        && request.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && request.topics[0].partitions.len() == 1
        && request.topics[0].partitions[0].partition_index == 0;
    if !names_metadata_log {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
    }
    let description = match &broker.cluster {
        None => Some(single_node(broker)),
        Some(cluster) => cluster.raft.as_ref().and_then(|r| r.describe()),
    };
    let partition = match &description {
        None => PartitionData::default()
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_error_message(Some(s("this node is not the metadata quorum's leader")))
            .with_leader_id(BrokerId(
                broker
                    .cluster
                    .as_ref()
                    .and_then(|c| c.leader())
                    .and_then(|l| i32::try_from(l).ok())
                    .unwrap_or(-1),
            )),
        Some(d) => {
            let now = Instant::now();
            let replicas =
                |list: &[ReplicaProgress]| list.iter().map(|r| replica(r, now)).collect();
            PartitionData::default()
                .with_leader_id(BrokerId(d.leader_id as i32))
                .with_leader_epoch(i32::try_from(d.leader_epoch).unwrap_or(i32::MAX))
                .with_high_watermark(d.high_watermark)
                .with_current_voters(replicas(&d.voters))
                .with_observers(replicas(&d.observers))
        }
    };
    let mut response = DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(s(METADATA_TOPIC)))
        .with_partitions(vec![partition])]);
    if version >= 2 && description.is_some() {
        response.nodes = voter_nodes(broker, ctx);
    }
    response
}

/// The one-voter quorum of a single node.
fn single_node(broker: &Broker) -> QuorumDescription {
    let id = broker.settings.node_id.get() as u64;
    let end = broker.image().records_applied as i64;
    let me = ReplicaProgress {
        node_id: id,
        log_end_offset: end,
        last_contact: Some(Instant::now()),
        caught_up: true,
    };
    QuorumDescription {
        leader_id: id,
        leader_epoch: 1,
        high_watermark: end,
        voters: vec![me],
        observers: Vec::new(),
    }
}

fn replica(r: &ReplicaProgress, now: Instant) -> ReplicaState {
    let at = r.last_contact.map_or(-1, |t| epoch_ms(now, t));
    ReplicaState::default()
        .with_replica_id(BrokerId(r.node_id as i32))
        .with_log_end_offset(r.log_end_offset)
        .with_last_fetch_timestamp(at)
        .with_last_caught_up_timestamp(if r.caught_up { at } else { -1 })
}

/// `t` (at or before `now`) in milliseconds since the Unix epoch.
fn epoch_ms(now: Instant, t: Instant) -> i64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    wall - now.saturating_duration_since(t).as_millis() as i64
}

/// v2's nodes: each voter with its CONTROLLER listener (a single node: its
/// own listener the request came on).
fn voter_nodes(broker: &Broker, ctx: &Ctx) -> Vec<Node> {
    let node = |id: i32, name: String, host: String, port: u16| {
        Node::default()
            .with_node_id(BrokerId(id))
            .with_listeners(vec![Listener::default()
                .with_name(s(name))
                .with_host(s(host))
                .with_port(port)])
    };
    match &broker.cluster {
        None => vec![node(
            broker.settings.node_id.get(),
            ctx.listener.to_string(),
            broker.settings.advertised_host.clone(),
            broker.settings.advertised_port,
        )],
        Some(cluster) => {
            let name = crate::cluster::controller_listener_names(&broker.config())
                .into_iter()
                .next()
                .unwrap_or_else(|| "CONTROLLER".to_owned());
            cluster
                .settings
                .voters
                .iter()
                .map(|(id, addr)| {
                    node(*id as i32, name.clone(), addr.ip().to_string(), addr.port())
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_quorum_request;

    fn request(topic: &str) -> DescribeQuorumRequest {
        DescribeQuorumRequest::default().with_topics(vec![
            describe_quorum_request::TopicData::default()
                .with_topic_name(TopicName(s(topic)))
                .with_partitions(vec![
                    describe_quorum_request::PartitionData::default().with_partition_index(0)
                ]),
        ])
    }

    #[tokio::test]
    async fn a_single_node_is_a_one_voter_quorum_it_leads() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::test_support::broker_over(dir.path(), |q| Box::new(q));
        let ctx = Ctx {
            peer: "127.0.0.1:1".parse().unwrap(),
            client_id: "t".into(),
            listener: "PLAINTEXT".into(),
            principal: std::sync::Arc::new(samsa_security::KafkaPrincipal::anonymous()),
        };
        let r = handle(&broker, &ctx, request(METADATA_TOPIC), 2).await;
        assert_eq!(r.error_code, 0);
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.leader_id.0, p.leader_epoch), (0, 1, 1));
        assert!(p.high_watermark > 0, "the registration is in the log");
        assert_eq!(p.current_voters.len(), 1);
        assert_eq!(p.current_voters[0].replica_id.0, 1);
        assert_eq!(p.current_voters[0].log_end_offset, p.high_watermark);
        assert!(p.current_voters[0].last_fetch_timestamp > 0);
        assert!(p.observers.is_empty());
        assert_eq!(r.nodes.len(), 1);
        assert_eq!(r.nodes[0].listeners[0].name.as_str(), "PLAINTEXT");

        let r = handle(&broker, &ctx, request("other"), 2).await;
        assert_eq!(r.error_code, ResponseError::UnknownTopicOrPartition.code());
    }
}
