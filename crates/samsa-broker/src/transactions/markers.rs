//! Writing a transaction's COMMIT/ABORT markers (Kafka's
//! `TransactionMarkerChannelManager`): each partition of the transaction
//! gets its marker from its leader — this broker's own WriteTxnMarkers
//! handler when it leads the partition, a WriteTxnMarkers request over
//! `samsa-client` otherwise — retried (NOT_LEADER_OR_FOLLOWER, an unknown
//! or fenced leader, NOT_ENOUGH_REPLICAS, timeouts) until written. Written
//! partitions, and partitions of topics deleted meanwhile, are reported to
//! the shard that asked; once all are, it appends CompleteCommit/Abort.
//!
//! The sender stops when its shard no longer leads its `__transaction_state`
//! partition in the same epoch (the next leader re-issues the markers after
//! loading), and, as Kafka's, when a leader answers INVALID_PRODUCER_EPOCH
//! or TRANSACTION_COORDINATOR_FENCED (a newer producer epoch or coordinator
//! already moved the transaction on).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ProducerId as WireProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use samsa_coordinator::txn::TxnMarkers;
use samsa_model::{BrokerId, LeaderEpoch, TopicPartition};

use crate::broker::Broker;
use crate::handlers::s;

/// The WriteTxnMarkers version brokers send (Kafka 4.x has only v1).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// First and longest pause between rounds of a marker that is not written yet.
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(1000);
/// How long one remote WriteTxnMarkers may take (the leader waits for its
/// ISR before it answers).
const REMOTE_TIMEOUT: Duration = Duration::from_secs(35);

/// Writes `markers` in the background for the shard of `__transaction_state`
/// partition `partition`, led in `epoch`.
pub(crate) fn spawn(broker: Arc<Broker>, partition: u32, epoch: LeaderEpoch, markers: TxnMarkers) {
    tokio::spawn(async move { send(broker, partition, epoch, markers).await });
}

/// What became of one partition's marker in a round.
enum Outcome {
    /// Written (or its topic is gone): reported to the shard.
    Done,
    /// Try again next round.
    Retry,
    /// The transaction moved on without this sender: stop.
    Abandon,
}

async fn send(broker: Arc<Broker>, partition: u32, epoch: LeaderEpoch, markers: TxnMarkers) {
    let mut remaining: BTreeSet<TopicPartition> = markers.partitions.iter().cloned().collect();
    let mut backoff = RETRY_BACKOFF_MIN;
    while !remaining.is_empty() {
        if !broker.transactions.leads(partition, epoch) {
            return;
        }
        let mut done = Vec::new();
        for (leader, tps) in by_leader(&broker, &remaining, &mut done) {
            let outcomes = match leader {
                Some(l) if l == broker.settings.node_id => {
                    write_here(&broker, &markers, &tps).await
                }
                Some(l) => write_remote(&broker, l, &markers, &tps).await,
                None => tps.iter().map(|tp| (tp.clone(), Outcome::Retry)).collect(),
            };
            for (tp, outcome) in outcomes {
                match outcome {
                    Outcome::Done => done.push(tp),
                    Outcome::Retry => {}
                    Outcome::Abandon => {
                        tracing::info!(
                            transactional_id = %markers.transactional_id,
                            partition = %tp,
                            "transaction marker refused as fenced; leaving the transaction to its newer epoch"
                        );
                        return;
                    }
                }
            }
        }
        if !done.is_empty() {
            for tp in &done {
                remaining.remove(tp);
            }
            broker
                .transactions
                .markers_written(&broker, partition, epoch, &markers, &done)
                .await;
            backoff = RETRY_BACKOFF_MIN;
        }
        if !remaining.is_empty() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }
}

/// The remaining partitions by current leader (`None`: no live leader now);
/// partitions whose topic or partition no longer exists go to `gone` (a
/// deleted topic needs no marker, as in Kafka).
fn by_leader(
    broker: &Broker,
    remaining: &BTreeSet<TopicPartition>,
    gone: &mut Vec<TopicPartition>,
) -> BTreeMap<Option<BrokerId>, Vec<TopicPartition>> {
    let image = broker.image();
    let mut out: BTreeMap<Option<BrokerId>, Vec<TopicPartition>> = BTreeMap::new();
    for tp in remaining {
        let Some(p) = image
            .topic(&tp.topic)
            .and_then(|t| t.partitions.get(usize::try_from(tp.partition.get()).ok()?))
        else {
            gone.push(tp.clone());
            continue;
        };
        let leader = image
            .brokers
            .get(&p.leader)
            .filter(|b| !b.fenced)
            .map(|b| b.id);
        out.entry(leader).or_default().push(tp.clone());
    }
    out
}

fn request(markers: &TxnMarkers, tps: &[TopicPartition]) -> WriteTxnMarkersRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in tps {
        topics
            .entry(tp.topic.as_str())
            .or_default()
            .push(tp.partition.get());
    }
    let marker = WritableTxnMarker::default()
        .with_producer_id(WireProducerId(markers.producer_id.get()))
        .with_producer_epoch(markers.producer_epoch.get())
        .with_transaction_result(markers.commit)
        .with_coordinator_epoch(markers.coordinator_epoch.get())
        .with_topics(
            topics
                .into_iter()
                .map(|(name, parts)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partition_indexes(parts)
                })
                .collect(),
        );
    WriteTxnMarkersRequest::default().with_markers(vec![marker])
}

/// The outcome of each partition in a WriteTxnMarkers answer; partitions the
/// answer does not mention are retried.
fn outcomes(
    tps: &[TopicPartition],
    response: &WriteTxnMarkersResponse,
) -> Vec<(TopicPartition, Outcome)> {
    let mut codes: BTreeMap<(String, i32), i16> = BTreeMap::new();
    for m in &response.markers {
        for t in &m.topics {
            for p in &t.partitions {
                codes.insert((t.name.0.to_string(), p.partition_index), p.error_code);
            }
        }
    }
    tps.iter()
        .map(|tp| {
            let code = codes.get(&(tp.topic.clone(), tp.partition.get())).copied();
            let outcome = match code {
                Some(0) => Outcome::Done,
                Some(c)
                    if c == ResponseError::InvalidProducerEpoch.code()
                        || c == ResponseError::TransactionCoordinatorFenced.code() =>
                {
                    Outcome::Abandon
                }
                _ => Outcome::Retry,
            };
            (tp.clone(), outcome)
        })
        .collect()
}

/// Writes the markers of partitions this broker leads through its own
/// WriteTxnMarkers handler (no network round trip).
async fn write_here(
    broker: &Broker,
    markers: &TxnMarkers,
    tps: &[TopicPartition],
) -> Vec<(TopicPartition, Outcome)> {
    let response = crate::handlers::write_txn_markers::handle(
        broker,
        request(markers, tps),
        WRITE_TXN_MARKERS_VERSION,
    )
    .await;
    outcomes(tps, &response)
}

/// Sends the markers of partitions `leader` leads to it, on the
/// inter-broker listener.
async fn write_remote(
    broker: &Broker,
    leader: BrokerId,
    markers: &TxnMarkers,
    tps: &[TopicPartition],
) -> Vec<(TopicPartition, Outcome)> {
    let retry = || tps.iter().map(|tp| (tp.clone(), Outcome::Retry)).collect();
    let Some(addr) = crate::replica::leader_address(broker, leader) else {
        return retry();
    };
    let conn = match broker
        .transactions
        .peer("samsa-txn-markers", &addr, REMOTE_TIMEOUT)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%addr, error = %e, "connecting to a partition leader for transaction markers");
            return retry();
        }
    };
    match conn
        .send_version(&request(markers, tps), WRITE_TXN_MARKERS_VERSION)
        .await
    {
        Ok(response) => outcomes(tps, &response),
        Err(e) => {
            tracing::debug!(%addr, error = %e, "WriteTxnMarkers to a partition leader failed; retrying");
            retry()
        }
    }
}
