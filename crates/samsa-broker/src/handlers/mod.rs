//! One handler per Kafka API, named after it. Each takes the decoded request and
//! returns the response body; this module encodes it.

use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use samsa_protocol::codec::{
    encode_response_frame_with_files, FileRecordSets, Request, ResponseFrame,
};

use crate::broker::Broker;

#[cfg(test)]
mod acl_tests;
pub mod acls;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_replica_log_dirs;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
mod gate;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
mod null_on_success;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod partition_admin;
pub mod produce;
mod refused;
pub mod sasl_state;
pub mod sync_group;
pub mod txn_offset_commit;
#[cfg(test)]
mod txn_tests;
pub mod update_features;
pub mod user_scram_credentials;
#[cfg(test)]
mod version_tests;
pub mod write_txn_markers;

/// What a handler knows about the connection a request came on.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub peer: std::net::SocketAddr,
    pub client_id: String,
    /// The listener the request came in on (`PLAINTEXT`, ...).
    pub listener: Arc<str>,
    /// Who sent the request: the mapped client-certificate subject on mTLS,
    /// else `User:ANONYMOUS`.
    pub principal: Arc<samsa_security::KafkaPrincipal>,
}

impl Ctx {
    /// An anonymous plaintext client, for code and tests that call a
    /// handler directly.
    pub fn anonymous() -> Ctx {
        Ctx {
            peer: "127.0.0.1:1".parse().expect("address"),
            client_id: "test".into(),
            listener: Arc::from("PLAINTEXT"),
            principal: Arc::new(samsa_security::KafkaPrincipal::anonymous()),
        }
    }

    /// The client host as Kafka reports it (`/1.2.3.4`).
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

/// What the connection does after a request.
#[derive(Debug)]
pub enum Reply {
    /// Write this response.
    Send(ResponseFrame),
    /// Write nothing and go on reading (a Produce with acks=0 that succeeded).
    Nothing,
    /// Close the connection without answering; the reason is logged. Kafka
    /// does this after an acks=0 Produce that failed (the producer learns of
    /// it by the closed connection and refreshes its metadata), and samsa
    /// also when a response cannot be encoded (the client would otherwise
    /// wait for it until its request timeout).
    Close(String),
}

/// Handles one request.
pub async fn handle(
    broker: &Arc<Broker>,
    peer: std::net::SocketAddr,
    listener: &Arc<str>,
    principal: &Arc<samsa_security::KafkaPrincipal>,
    request: Request,
) -> Reply {
    let version = request.version();
    let ctx = Ctx {
        peer,
        client_id: request
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        listener: listener.clone(),
        principal: principal.clone(),
    };
    let api_key = request.api_key;
    let correlation_id = request.header.correlation_id;
    let mut files = FileRecordSets::default();
    if !crate::authz::dispatch_allowed(broker, &ctx, api_key) {
        tracing::debug!(?api_key, principal = %ctx.principal, "refused: not authorized on the cluster");
        return match refused::cluster_refused(request.body) {
            Some(body) => encode(api_key, version, correlation_id, &body, files),
            None => Reply::Close(format!(
                "{api_key:?} is not authorized for {}",
                ctx.principal
            )),
        };
    }
    let (request_body, patch) = match gate::check(broker, &ctx, request.body) {
        gate::Gate::Pass(body, patch) => (body, patch),
        gate::Gate::Answer(body) => return encode(api_key, version, correlation_id, &body, files),
    };
    let mut body = match request_body {
        RequestKind::ApiVersions(r) => {
            ResponseKind::ApiVersions(api_versions::handle(&broker.image(), r, version))
        }
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata::handle(broker, &ctx, r, version))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics::handle(broker, r, version))
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(delete_topics::handle(broker, r, version))
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::handle(broker, r, version))
        }
        RequestKind::Produce(r) => {
            let acks = r.acks;
            // KIP-890: a transaction's first batch in a partition is checked
            // with (or, transaction version 2, added by) its coordinator.
            // Partitions the authorizer refuses are neither verified nor
            // appended; the others go on as without an authorizer.
            let denied = crate::authz::produce_refusals(broker, &ctx, &r, version);
            let mut verdicts =
                crate::transactions::verify::verify_produce(broker, &r, version, &denied).await;
            verdicts.refused.extend(denied);
            let response = produce::handle_verified(broker, r, version, verdicts).await;
            if acks == 0 {
                // No response; a failed partition closes the connection.
                return match produce::failed_partitions(&response) {
                    None => Reply::Nothing,
                    Some(failed) => Reply::Close(format!(
                        "an acks=0 Produce (correlation id {correlation_id}, client id {:?}) failed: {failed}",
                        ctx.client_id
                    )),
                };
            }
            ResponseKind::Produce(response)
        }
        RequestKind::Fetch(r) => {
            let (response, sets) = fetch::handle(broker, &ctx, r, version).await;
            files = sets;
            ResponseKind::Fetch(response)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, r, version).await)
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, r, version))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(broker, r, version))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(alter_configs::handle_alter(broker, r, version))
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            alter_configs::handle_incremental(broker, r, version),
        ),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(broker, &ctx, r, version))
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(join_group::handle(broker, &ctx, r, version).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(sync_group::handle(broker, r, version).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(heartbeat::handle(broker, r, version).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(leave_group::handle(broker, r, version).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offset_commit::handle(broker, r, version).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(broker, r, version).await)
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn_offset_commit::handle(broker, r, version).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(offset_delete::handle(broker, r, version).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(list_groups::handle(broker, r, version).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(describe_groups::handle(broker, r, version).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(delete_groups::handle(broker, r, version).await)
        }
        RequestKind::ConsumerGroupHeartbeat(r) => ResponseKind::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(broker, &ctx, r, version).await,
        ),
        RequestKind::ConsumerGroupDescribe(r) => ResponseKind::ConsumerGroupDescribe(
            consumer_group_describe::handle(broker, r, version).await,
        ),
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(broker, r, version))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(broker, &ctx, r, version))
        }
        RequestKind::AlterReplicaLogDirs(r) => {
            ResponseKind::AlterReplicaLogDirs(alter_replica_log_dirs::handle(broker, r, version))
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(describe_log_dirs::handle(broker, r, version))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, r, version))
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(partition_admin::elect_leaders(broker, r, version))
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            partition_admin::alter_reassignments(broker, r, version),
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            partition_admin::list_reassignments(broker, r, version),
        ),
        RequestKind::DescribeTopicPartitions(r) => ResponseKind::DescribeTopicPartitions(
            describe_topic_partitions::handle(broker, r, version),
        ),
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(describe_quorum::handle(broker, &ctx, r, version).await)
        }
        RequestKind::UpdateFeatures(r) => {
            ResponseKind::UpdateFeatures(update_features::handle(broker, r, version))
        }
        RequestKind::ListConfigResources(r) => ResponseKind::ListConfigResources(
            list_config_resources::handle(broker, r, version).await,
        ),
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(
            add_partitions_to_txn::handle(broker, r, version).await,
        ),
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(broker, r, version).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(end_txn::handle(broker, r, version).await),
        RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(
            describe_transactions::handle(broker, r, version).await,
        ),
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(list_transactions::handle(broker, r, version).await)
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(write_txn_markers::handle(broker, r, version).await)
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(describe_producers::handle(broker, r, version))
        }
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(acls::describe(broker, r, version))
        }
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create(broker, r, version)),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete(broker, r, version)),
        RequestKind::SaslHandshake(_) => ResponseKind::SaslHandshake(sasl_state::handshake()),
        RequestKind::SaslAuthenticate(_) => {
            ResponseKind::SaslAuthenticate(sasl_state::authenticate())
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(user_scram_credentials::describe(broker, r))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(user_scram_credentials::alter(broker, r))
        }
        other => {
            // parse_request only admits APIs in the version table, each of which
            // has an arm above.
            tracing::error!(?api_key, "no handler for an advertised API");
            drop(other);
            return Reply::Close(format!("no handler for the advertised API {api_key:?}"));
        }
    };
    patch.apply(&mut body);
    null_on_success::apply(&mut body);
    encode(api_key, version, correlation_id, &body, files)
}

/// Encodes a response; one that cannot be encoded closes the connection
/// (logged as an error: it is a broker bug).
fn encode(
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    files: FileRecordSets,
) -> Reply {
    match encode_response_frame_with_files(api_key, version, correlation_id, body, files) {
        Ok(frame) => Reply::Send(frame),
        Err(e) => {
            tracing::error!(error = %e, correlation_id, "response encoding failed; closing the connection");
            Reply::Close(format!("the response could not be encoded: {e}"))
        }
    }
}

/// A `StrBytes` from a `String`.
pub(crate) fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// Sorts answers gathered from several coordinator shards back into the order
/// their groups had in the request (stable: repeated ids keep their order).
pub(crate) fn in_request_order<T>(
    answers: &mut [T],
    request: &[String],
    id: impl Fn(&T) -> &String,
) {
    let mut first: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(request.len());
    for (i, r) in request.iter().enumerate() {
        first.entry(r.as_str()).or_insert(i);
    }
    answers.sort_by_key(|a| first.get(id(a).as_str()).copied().unwrap_or(usize::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ProduceResponse};

    #[test]
    fn a_response_that_cannot_be_encoded_closes_the_connection() {
        let body = ResponseKind::Produce(ProduceResponse::default());
        let files = FileRecordSets::default();
        assert!(matches!(
            encode(ApiKey::Produce, 9, 1, &body, files),
            Reply::Send(_)
        ));
        // Version 99 does not exist: kafka-protocol refuses to encode it.
        let files = FileRecordSets::default();
        match encode(ApiKey::Produce, 99, 1, &body, files) {
            Reply::Close(reason) => assert!(reason.contains("encoded"), "{reason}"),
            other => panic!("expected Close, got {other:?}"),
        }
    }
}
