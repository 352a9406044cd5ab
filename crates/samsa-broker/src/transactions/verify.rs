//! KIP-890 on the produce path: before the first transactional batch of a
//! producer's transaction is appended to a partition, the partition leader
//! asks the transaction coordinator whether the partition is in the
//! producer's ongoing transaction (part 1, AddPartitionsToTxn `verify_only`),
//! or, for a transaction version 2 producer (Produce v12+ with
//! `transaction.version` ≥ 2 finalized), adds it itself (part 2). So a
//! batch the coordinator does not know about — a late retry after an abort,
//! a zombie — never opens a transaction nothing will ever end (a hanging
//! transaction that would hold back the last stable offset forever).
//!
//! The coordinator is called in place when this broker is it, with
//! AddPartitionsToTxn v5 over `samsa-client` otherwise. Coordinator errors
//! become the Produce errors Kafka's `AddPartitionsToTxnManager` gives:
//! retriable ones (no coordinator, loading, concurrent transactions) are
//! NOT_ENOUGH_REPLICAS, which producers retry; a fenced epoch is
//! INVALID_PRODUCER_EPOCH; a partition not in the transaction is
//! TRANSACTION_ABORTABLE for Produce v11+ (KIP-890), INVALID_TXN_STATE for
//! older producers, which do not know that code.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ProducerId as WireProducerId, TopicName, TransactionalId,
};
use samsa_coordinator::codes;
use samsa_coordinator::txn::{self, txn_codes, TxnResponse};
use samsa_model::{ProducerEpoch, ProducerId, TopicPartition};
use samsa_storage::{TxnVerification, VerificationGuard};

use super::TRANSACTION_STATE_TOPIC;
use crate::broker::Broker;
use crate::handlers::s;

/// The AddPartitionsToTxn version partition leaders send (batched, with
/// `verify_only`).
const ADD_PARTITIONS_VERSION: i16 = 5;
/// How long a remote verification may take.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// One producer's transactional batch waiting for the coordinator.
pub(crate) struct Verification {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub partition: TopicPartition,
    /// Transaction version 2: add the partition (else only verify).
    pub add: bool,
}

/// The first Produce version that knows TRANSACTION_ABORTABLE (KIP-890).
const TRANSACTION_ABORTABLE_SINCE: i16 = 11;

/// The first TxnOffsetCommit version that knows TRANSACTION_ABORTABLE
/// (Kafka's `genericErrorSupported`).
const TXN_OFFSET_COMMIT_ABORTABLE_SINCE: i16 = 4;
/// The first TxnOffsetCommit version of transaction version 2, whose
/// clients skip AddOffsetsToTxn: the group coordinator adds the partition
/// (Kafka's `addPartition`).
const TXN_OFFSET_COMMIT_ADDS_SINCE: i16 = 5;

/// Asks the coordinator of `v.transactional_id`; `Ok` when the batch may be
/// appended, else the client's error for it (`abortable_known`: the
/// request's version knows TRANSACTION_ABORTABLE).
pub(crate) async fn verify(
    broker: &Arc<Broker>,
    v: &Verification,
    abortable_known: bool,
) -> Result<(), ResponseError> {
    let code = match coordinator_of(broker, &v.transactional_id) {
        None => codes::COORDINATOR_NOT_AVAILABLE,
        Some(c) if c == broker.settings.node_id => here(broker, v).await,
        Some(c) => remote(broker, c, v).await,
    };
    client_error(code, abortable_known)
}

/// The client's error for the coordinator's answer `code`, as Kafka's
/// `AddPartitionsToTxnManager` maps it (`abortable_known`: the client's
/// request version knows TRANSACTION_ABORTABLE).
fn client_error(code: i16, abortable_known: bool) -> Result<(), ResponseError> {
    match code {
        0 => Ok(()),
        c if c == codes::COORDINATOR_NOT_AVAILABLE
            || c == codes::NOT_COORDINATOR
            || c == codes::COORDINATOR_LOAD_IN_PROGRESS
            || c == txn_codes::CONCURRENT_TRANSACTIONS =>
        {
            Err(ResponseError::NotEnoughReplicas)
        }
        c if c == txn_codes::PRODUCER_FENCED || c == txn_codes::INVALID_PRODUCER_EPOCH => {
            Err(ResponseError::InvalidProducerEpoch)
        }
        c if c == txn_codes::TRANSACTION_ABORTABLE && abortable_known => {
            Err(ResponseError::TransactionAbortable)
        }
        _ => Err(ResponseError::InvalidTxnState),
    }
}

/// The broker leading `transactional_id`'s `__transaction_state` partition.
fn coordinator_of(broker: &Broker, transactional_id: &str) -> Option<samsa_model::BrokerId> {
    let image = broker.image();
    let p = broker.transactions.partition_for(transactional_id);
    let leader = image
        .topic(TRANSACTION_STATE_TOPIC)?
        .partitions
        .get(p as usize)?
        .leader;
    image
        .brokers
        .get(&leader)
        .filter(|b| !b.fenced)
        .map(|b| b.id)
}

fn request_of(v: &Verification) -> txn::AddPartitionsToTxnRequest {
    txn::AddPartitionsToTxnRequest {
        transactional_id: v.transactional_id.clone(),
        producer_id: v.producer_id,
        producer_epoch: v.producer_epoch,
        partitions: vec![v.partition.clone()],
        client_transaction_version: if v.add { 2 } else { 0 },
    }
}

/// The partition's code from this broker's own coordinator.
async fn here(broker: &Arc<Broker>, v: &Verification) -> i16 {
    let req = request_of(v);
    let results = if v.add {
        match broker
            .transactions
            .call(broker, &v.transactional_id, |c, now, token| {
                c.add_partitions_to_txn(now, &req, token)
            })
            .await
        {
            Some(TxnResponse::AddPartitionsToTxn(r)) => r.results,
            _ => return codes::COORDINATOR_NOT_AVAILABLE,
        }
    } else {
        let p = broker.transactions.partition_for(&v.transactional_id);
        broker
            .transactions
            .read(broker, p, |c| c.verify_partitions_in_txn(&req))
            .await
            .results
    };
    results
        .first()
        .map_or(codes::COORDINATOR_NOT_AVAILABLE, |(_, code)| *code)
}

/// The partition's code from a remote coordinator (AddPartitionsToTxn v5).
async fn remote(broker: &Broker, coordinator: samsa_model::BrokerId, v: &Verification) -> i16 {
    let Some(addr) = crate::replica::leader_address(broker, coordinator) else {
        return codes::COORDINATOR_NOT_AVAILABLE;
    };
    let Ok(conn) = broker
        .transactions
        .peer("samsa-txn-verify", &addr, REMOTE_TIMEOUT)
        .await
    else {
        return codes::COORDINATOR_NOT_AVAILABLE;
    };
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(s(v.transactional_id.clone())))
            .with_producer_id(WireProducerId(v.producer_id.get()))
            .with_producer_epoch(v.producer_epoch.get())
            .with_verify_only(!v.add)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(v.partition.topic.clone())))
                .with_partitions(vec![v.partition.partition.get()])]),
    ]);
    match conn.send_version(&request, ADD_PARTITIONS_VERSION).await {
        Ok(r) if r.error_code != 0 => r.error_code,
        Ok(r) => r
            .results_by_transaction
            .iter()
            .flat_map(|t| t.topic_results.iter())
            .flat_map(|t| t.results_by_partition.iter())
            .map(|p| p.partition_error_code)
            .next()
            .unwrap_or(codes::COORDINATOR_NOT_AVAILABLE),
        Err(e) => {
            tracing::debug!(%addr, error = %e, "AddPartitionsToTxn to the transaction coordinator failed");
            codes::COORDINATOR_NOT_AVAILABLE
        }
    }
}

/// What [`verify_produce`] found, by (topic index, partition index).
#[derive(Debug, Default)]
pub(crate) struct Verdicts {
    /// The request names a transactional id: its batches are appended with
    /// [`samsa_storage::PartitionLog::append_guarded`].
    pub transactional: bool,
    /// Partitions the coordinator did not confirm, with the Produce error.
    pub refused: std::collections::HashMap<(usize, usize), ResponseError>,
    /// Guards of the partitions the coordinator confirmed.
    pub guards: std::collections::HashMap<(usize, usize), VerificationGuard>,
}

impl Verdicts {
    /// How the batch of a partition is appended: `None` unguarded (no
    /// transactional id), else with its guard (none when its producer's
    /// transaction was already open there).
    pub fn guard(&self, at: (usize, usize)) -> Option<Option<VerificationGuard>> {
        self.transactional.then(|| self.guards.get(&at).copied())
    }
}

/// The transactional batches of a Produce request that need the
/// coordinator's word before they are appended (the first batch of the
/// producer's transaction in a partition led here), verified, each with the
/// verification guard its append must carry ([`samsa_storage::verification`]:
/// a marker written meanwhile makes that append fail with
/// INVALID_TXN_STATE, as Kafka's `VerificationGuard` does). `add` for
/// transaction version 2 producers (Produce v12+ with the feature finalized
/// at 2+).
///
/// Partitions in `denied` (refused by the authorizer) are not verified:
/// they are answered with their refusal and never appended.
pub(crate) async fn verify_produce(
    broker: &Arc<Broker>,
    request: &kafka_protocol::messages::ProduceRequest,
    version: i16,
    denied: &std::collections::HashMap<(usize, usize), ResponseError>,
) -> Verdicts {
    let mut verdicts = Verdicts::default();
    let Some(transactional_id) = request
        .transactional_id
        .as_ref()
        .map(|t| t.0.to_string())
        .filter(|t| !t.is_empty())
    else {
        return verdicts;
    };
    verdicts.transactional = true;
    let image = broker.image();
    let add =
        version >= 12 && image.feature_level(samsa_metadata::features::TRANSACTION_VERSION) >= 2;
    for (ti, t) in request.topic_data.iter().enumerate() {
        let topic = if version >= 13 {
            image.topic_by_id(samsa_model::TopicId(t.topic_id))
        } else {
            image.topic(&t.name.0)
        };
        let Some(topic) = topic else { continue };
        for (pi, p) in t.partition_data.iter().enumerate() {
            if denied.contains_key(&(ti, pi)) {
                continue;
            }
            let Some(records) = p.records.as_deref() else {
                continue;
            };
            let Ok(header) = samsa_model::batch::BatchHeader::parse(records) else {
                continue;
            };
            if !header.is_transactional() || header.producer_id.get() < 0 {
                continue;
            }
            let Some(part) = broker.partition(topic.id, p.index) else {
                continue;
            };
            if part.led_epoch().is_none() {
                continue;
            }
            // Already in the producer's transaction here (its first batch
            // opened it): nothing to ask.
            let TxnVerification::Needed(guard) =
                part.log().start_txn_verification(header.producer_id)
            else {
                continue;
            };
            let v = Verification {
                transactional_id: transactional_id.clone(),
                producer_id: header.producer_id,
                producer_epoch: header.producer_epoch,
                partition: TopicPartition {
                    topic: topic.name.clone(),
                    partition: samsa_model::PartitionIndex(p.index),
                },
                add,
            };
            match verify(broker, &v, version >= TRANSACTION_ABORTABLE_SINCE).await {
                Ok(()) => {
                    verdicts.guards.insert((ti, pi), guard);
                }
                Err(e) => {
                    verdicts.refused.insert((ti, pi), e);
                }
            }
        }
    }
    verdicts
}

/// KIP-890 for TxnOffsetCommit (Kafka 4.x's group coordinator verifies
/// before it appends a producer's offsets): unless the producer's
/// transaction is already open in the group's `__consumer_offsets`
/// partition `partition` (led here), asks the transaction coordinator
/// whether that partition is in the transaction (TxnOffsetCommit v0–4,
/// transaction version 1, which sent AddOffsetsToTxn) or has it added
/// (v5, transaction version 2). `Err` is the TxnOffsetCommit (v`version`)
/// error code: a partition not in the transaction is INVALID_TXN_STATE, or
/// TRANSACTION_ABORTABLE from v4; a stale epoch INVALID_PRODUCER_EPOCH;
/// a coordinator that cannot answer now COORDINATOR_NOT_AVAILABLE (Kafka's
/// group coordinator turns NOT_ENOUGH_REPLICAS into it), which clients
/// retry.
pub(crate) async fn verify_txn_offset_commit(
    broker: &Arc<Broker>,
    transactional_id: &str,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    partition: u32,
    version: i16,
) -> Result<(), i16> {
    let topic = crate::groups::OFFSETS_TOPIC;
    let Some(part) = crate::coordinator_runtime::log::internal_partition(broker, topic, partition)
    else {
        return Ok(());
    };
    let ongoing = part
        .log()
        .producer_state(producer_id)
        .is_some_and(|e| e.epoch == producer_epoch && e.current_txn_first_offset.is_some());
    // Not led here: the group coordinator answers NOT_COORDINATOR.
    if transactional_id.is_empty() || ongoing || part.led_epoch().is_none() {
        return Ok(());
    }
    let level = broker
        .image()
        .feature_level(samsa_metadata::features::TRANSACTION_VERSION);
    let v = Verification {
        transactional_id: transactional_id.to_owned(),
        producer_id,
        producer_epoch,
        partition: TopicPartition {
            topic: topic.to_owned(),
            partition: samsa_model::PartitionIndex(partition as i32),
        },
        add: version >= TXN_OFFSET_COMMIT_ADDS_SINCE && level >= 2,
    };
    match verify(broker, &v, version >= TXN_OFFSET_COMMIT_ABORTABLE_SINCE).await {
        Ok(()) => Ok(()),
        Err(ResponseError::NotEnoughReplicas) => Err(codes::COORDINATOR_NOT_AVAILABLE),
        Err(e) => Err(e.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Coordinator answers become the Produce errors Kafka gives, so
    /// producers retry what is transient and abort what is not.
    #[test]
    fn coordinator_errors_map_to_produce_errors() {
        assert_eq!(client_error(0, true), Ok(()));
        for retriable in [
            codes::NOT_COORDINATOR,
            codes::COORDINATOR_LOAD_IN_PROGRESS,
            codes::COORDINATOR_NOT_AVAILABLE,
            txn_codes::CONCURRENT_TRANSACTIONS,
        ] {
            assert_eq!(
                client_error(retriable, true),
                Err(ResponseError::NotEnoughReplicas)
            );
        }
        assert_eq!(
            client_error(txn_codes::PRODUCER_FENCED, true),
            Err(ResponseError::InvalidProducerEpoch)
        );
        assert_eq!(
            client_error(txn_codes::INVALID_TXN_STATE, true),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            client_error(txn_codes::TRANSACTION_ABORTABLE, true),
            Err(ResponseError::TransactionAbortable)
        );
        assert_eq!(
            client_error(txn_codes::TRANSACTION_ABORTABLE, false),
            Err(ResponseError::InvalidTxnState),
            "older producers do not know TRANSACTION_ABORTABLE"
        );
    }
}
