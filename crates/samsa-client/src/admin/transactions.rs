//! Transaction administration (KIP-664), as `kafka-transactions.sh` and the
//! admin clients' `listTransactions`, `describeTransactions`,
//! `describeProducers` and `abortTransaction` do it: ListTransactions to
//! every broker, DescribeTransactions to each transactional id's coordinator,
//! DescribeProducers to a partition's leader (or a chosen replica), and an
//! abort as a WriteTxnMarkers ABORT marker sent to the partition's leader.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest,
    ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::error::ClientError;

/// One transaction a coordinator lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    /// Kafka's state name (`Ongoing`, `PrepareCommit`, `CompleteAbort`, ...).
    pub state: String,
}

/// What ListTransactions selects (empty filters select everything).
#[derive(Clone, Debug, Default)]
pub struct ListTransactionsFilter {
    pub states: Vec<String>,
    pub producer_ids: Vec<i64>,
    /// Only transactions running longer than this many ms (v1+, KIP-994); -1: all.
    pub duration_ms: Option<i64>,
}

/// A transactional id's state at its coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionDescription {
    pub coordinator_id: i32,
    pub transactional_id: String,
    pub state: String,
    pub timeout_ms: i32,
    /// -1 when no transaction is in progress.
    pub start_time_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The partitions in the transaction, `topic-partition`, sorted.
    pub partitions: Vec<(String, i32)>,
}

/// Each partition's active producers, or the partition's error.
pub type PartitionProducers = BTreeMap<(String, i32), Result<Vec<ProducerState>, ClientError>>;

fn producer_state(
    a: &kafka_protocol::messages::describe_producers_response::ProducerState,
) -> ProducerState {
    ProducerState {
        producer_id: a.producer_id.0,
        producer_epoch: a.producer_epoch,
        last_sequence: a.last_sequence,
        last_timestamp: a.last_timestamp,
        coordinator_epoch: a.coordinator_epoch,
        current_txn_start_offset: a.current_txn_start_offset,
    }
}

/// An active producer of a partition (DescribeProducers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerState {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// -1 when unknown.
    pub coordinator_epoch: i32,
    /// -1 when no transaction is open.
    pub current_txn_start_offset: i64,
}

/// The transaction to abort in one partition (Kafka's `AbortTransactionSpec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbortTransactionSpec {
    pub topic: String,
    pub partition: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl Admin {
    /// ListTransactions on every broker: each coordinator's listing, by broker id.
    pub async fn list_transactions(
        &self,
        filter: &ListTransactionsFilter,
    ) -> Result<BTreeMap<i32, Vec<TransactionListing>>, ClientError> {
        self.client.fetch_metadata(Some(&[]), false).await?;
        let brokers: Vec<i32> = self.client.cluster().brokers.keys().copied().collect();
        let mut out = BTreeMap::new();
        for id in brokers {
            let (resp, version) = self
                .client
                .send_to(id, ApiKey::ListTransactions, |v| {
                    let mut req = ListTransactionsRequest::default()
                        .with_state_filters(filter.states.iter().map(|x| s(x)).collect())
                        .with_producer_id_filters(
                            filter.producer_ids.iter().map(|p| ProducerId(*p)).collect(),
                        );
                    if v >= 1 {
                        req.duration_filter = filter.duration_ms.unwrap_or(-1);
                    }
                    req
                })
                .await?;
            if version < 1 && filter.duration_ms.is_some_and(|d| d >= 0) {
                // As Kafka's admin client: v0 cannot carry the filter.
                return Err(ClientError::Invalid(format!(
                    "broker {id} does not support ListTransactions with a duration filter (v1+)"
                )));
            }
            ClientError::check(
                resp.error_code,
                None,
                format!("ListTransactions on broker {id}"),
            )?;
            let listings = resp
                .transaction_states
                .iter()
                .map(|t| TransactionListing {
                    transactional_id: t.transactional_id.0.to_string(),
                    producer_id: t.producer_id.0,
                    state: t.transaction_state.to_string(),
                })
                .collect();
            out.insert(id, listings);
        }
        Ok(out)
    }

    /// DescribeTransactions of `transactional_id` at its coordinator.
    pub async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<TransactionDescription, ClientError> {
        let coordinator = self
            .client
            .transaction_coordinator(transactional_id)
            .await?;
        let (resp, _) = self
            .client
            .send_to(coordinator, ApiKey::DescribeTransactions, |_| {
                DescribeTransactionsRequest::default()
                    .with_transactional_ids(vec![TransactionalId(s(transactional_id))])
            })
            .await?;
        let t = resp
            .transaction_states
            .into_iter()
            .find(|t| t.transactional_id.0.as_str() == transactional_id)
            .ok_or_else(|| {
                ClientError::Invalid(format!(
                    "DescribeTransactions did not answer for {transactional_id}"
                ))
            })?;
        ClientError::check(
            t.error_code,
            None,
            format!("transactional id {transactional_id}"),
        )?;
        let mut partitions: Vec<(String, i32)> = t
            .topics
            .iter()
            .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.0.to_string(), *p)))
            .collect();
        partitions.sort();
        Ok(TransactionDescription {
            coordinator_id: coordinator,
            transactional_id: transactional_id.to_string(),
            state: t.transaction_state.to_string(),
            timeout_ms: t.transaction_timeout_ms,
            start_time_ms: t.transaction_start_time_ms,
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            partitions,
        })
    }

    /// DescribeProducers of `topic`-`partition` on its leader, or on
    /// `broker_id` (any replica).
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
        broker_id: Option<i32>,
    ) -> Result<Vec<ProducerState>, ClientError> {
        let key = (topic.to_string(), partition);
        let mut all = self
            .describe_producers_of(std::slice::from_ref(&key), broker_id)
            .await?;
        all.remove(&key).unwrap_or_else(|| {
            Err(ClientError::Invalid(format!(
                "DescribeProducers did not answer for {topic}-{partition}"
            )))
        })
    }

    /// DescribeProducers of several partitions, as the admin clients'
    /// `describeProducers` sends it: one request per broker naming every
    /// partition that broker leads (or all of them to `broker_id`). Each
    /// partition gets its producers or its own error; the call fails only
    /// when a broker cannot be asked at all.
    pub async fn describe_producers_of(
        &self,
        partitions: &[(String, i32)],
        broker_id: Option<i32>,
    ) -> Result<PartitionProducers, ClientError> {
        let mut by_broker: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        for (topic, partition) in partitions {
            let broker = match broker_id {
                Some(id) => id,
                None => self.client.leader(topic, *partition).await?,
            };
            by_broker
                .entry(broker)
                .or_default()
                .entry(topic.as_str())
                .or_default()
                .push(*partition);
        }
        let mut out = BTreeMap::new();
        for (broker, topics) in by_broker {
            let (resp, _) = self
                .client
                .send_to(broker, ApiKey::DescribeProducers, |_| {
                    DescribeProducersRequest::default().with_topics(
                        topics
                            .iter()
                            .map(|(t, ps)| {
                                TopicRequest::default()
                                    .with_name(TopicName(s(t)))
                                    .with_partition_indexes(ps.clone())
                            })
                            .collect(),
                    )
                })
                .await?;
            for t in &resp.topics {
                let asked = topics.get(t.name.0.as_str());
                for p in &t.partitions {
                    if !asked.is_some_and(|ps| ps.contains(&p.partition_index)) {
                        continue; // not asked of this broker
                    }
                    let key = (t.name.0.to_string(), p.partition_index);
                    let result = ClientError::check(
                        p.error_code,
                        p.error_message.as_ref().map(|m| m.to_string()),
                        format!("partition {}-{}", key.0, key.1),
                    )
                    .map(|()| p.active_producers.iter().map(producer_state).collect());
                    out.insert(key, result);
                }
            }
        }
        Ok(out)
    }

    /// Aborts a (hanging) transaction in one partition: an ABORT marker of the
    /// producer, written by the partition's leader (WriteTxnMarkers, as the
    /// admin clients' `abortTransaction`).
    pub async fn abort_transaction(&self, spec: &AbortTransactionSpec) -> Result<(), ClientError> {
        let leader = self.client.leader(&spec.topic, spec.partition).await?;
        let (resp, _) = self
            .client
            .send_to(leader, ApiKey::WriteTxnMarkers, |_| {
                WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                    .with_producer_id(ProducerId(spec.producer_id))
                    .with_producer_epoch(spec.producer_epoch)
                    .with_transaction_result(false)
                    .with_coordinator_epoch(spec.coordinator_epoch)
                    .with_topics(vec![WritableTxnMarkerTopic::default()
                        .with_name(TopicName(s(&spec.topic)))
                        .with_partition_indexes(vec![spec.partition])])])
            })
            .await?;
        let code = resp
            .markers
            .iter()
            .flat_map(|m| m.topics.iter())
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == spec.partition)
            .map(|p| p.error_code)
            .ok_or_else(|| ClientError::Invalid("WriteTxnMarkers did not answer".into()))?;
        ClientError::check(
            code,
            None,
            format!("partition {}-{}", spec.topic, spec.partition),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use kafka_protocol::messages::describe_producers_response::{PartitionResponse, TopicResponse};
    use kafka_protocol::messages::{DescribeProducersResponse, MetadataRequest};
    use kafka_protocol::protocol::Decodable;

    use super::*;
    use crate::admin::fake_broker::{self, Reply};
    use crate::{Client, ClientConfig};

    /// Kafka's NOT_LEADER_OR_FOLLOWER.
    const NOT_LEADER: i16 = 6;

    #[tokio::test]
    async fn producers_of_many_partitions_are_asked_in_one_request_per_broker() {
        let seen: Arc<Mutex<Vec<DescribeProducersRequest>>> = Arc::default();
        let log = seen.clone();
        let apis = vec![
            (ApiKey::ApiVersions, 0, 3),
            (ApiKey::Metadata, 0, 12),
            (ApiKey::DescribeProducers, 0, 0),
        ];
        let addr = fake_broker::spawn(apis, move |port, key, version, body| match key {
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(body, version).expect("metadata");
                Reply::encode(
                    &fake_broker::metadata(port, &[("t", 3), ("u", 1)], &req),
                    version,
                )
            }
            ApiKey::DescribeProducers => {
                let req = DescribeProducersRequest::decode(body, version).expect("request");
                // Producer 7 on every partition asked, except u-0: not led here.
                let topics = req
                    .topics
                    .iter()
                    .map(|t| {
                        TopicResponse::default().with_name(t.name.clone()).with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|&i| {
                                    let p = PartitionResponse::default().with_partition_index(i);
                                    if t.name.0.as_str() == "u" {
                                        p.with_error_code(NOT_LEADER)
                                    } else {
                                        p.with_active_producers(vec![
                                        kafka_protocol::messages::describe_producers_response::ProducerState::default()
                                            .with_producer_id(ProducerId(7)),
                                    ])
                                    }
                                })
                                .collect(),
                        )
                    })
                    .collect();
                log.lock().expect("log").push(req);
                Reply::encode(&DescribeProducersResponse::default().with_topics(topics), version)
            }
            other => panic!("unexpected {other:?}"),
        })
        .await;
        let admin = Admin::new(
            Client::connect(ClientConfig::new(&addr))
                .await
                .expect("connect"),
        );
        let asked: Vec<(String, i32)> = [("t", 0), ("t", 1), ("t", 2), ("u", 0)]
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect();
        let mut got = admin
            .describe_producers_of(&asked, None)
            .await
            .expect("describe");
        {
            let seen = seen.lock().expect("seen");
            assert_eq!(seen.len(), 1, "one request for the broker leading all four");
            let named: Vec<(&str, &[i32])> = seen[0]
                .topics
                .iter()
                .map(|t| (t.name.0.as_str(), t.partition_indexes.as_slice()))
                .collect();
            assert_eq!(named, [("t", &[0, 1, 2][..]), ("u", &[0][..])]);
        }
        for p in 0..3 {
            let producers = got.remove(&("t".to_string(), p)).expect("t").expect("ok");
            assert_eq!(producers[0].producer_id, 7);
        }
        let e = got
            .remove(&("u".to_string(), 0))
            .expect("u")
            .expect_err("u-0");
        assert_eq!(e.code(), Some(NOT_LEADER));
        // The one-partition form is the same request.
        let one = admin
            .describe_producers("t", 1, Some(1))
            .await
            .expect("t-1");
        assert_eq!(one[0].producer_id, 7);
    }
}
