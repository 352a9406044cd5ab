//! Delayed fetches and delayed acks=all produces are woken by their own
//! partitions only (Kafka's purgatory keyed by partition), and keep their
//! long-poll semantics (min_bytes, max_wait_ms, the acks=all timeout).
//!
//! The broker is a single node with a second, registered broker (2) that
//! never runs: partitions replicated on both have ISR {1, 2}, and this test
//! plays broker 2's replica fetches through the Fetch handler itself, which
//! is what moves the high watermark.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use samsa_broker::handlers::{fetch, produce};
use samsa_broker::{Broker, BrokerSettings};
use samsa_metadata::config::StaticConfig;
use samsa_metadata::{BrokerRegistration, NewTopic};
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::BrokerId;

const TOPIC: &str = "t";
/// The partition the parked request waits on.
const A: i32 = 0;
/// The busy partition.
const B: i32 = 1;
/// Appends (and high-watermark moves) on B while a request on A is parked.
const ROUNDS: usize = 1000;

/// A single node (broker 1) with topic `t` of `partitions` partitions; with
/// `replicated`, every partition is on brokers 1 and 2 (ISR {1, 2}).
fn open(dir: &std::path::Path, partitions: i32, replicated: bool) -> Arc<Broker> {
    let mut cfg = StaticConfig::default();
    cfg.set("log.dirs", &dir.display().to_string()).unwrap();
    cfg.set("listeners", "PLAINTEXT://127.0.0.1:0").unwrap();
    cfg.set("node.id", "1").unwrap();
    let cfg = Arc::new(cfg);
    let broker = Broker::open(BrokerSettings::from_config(&cfg).unwrap(), cfg).unwrap();
    let assignments = if replicated {
        broker
            .controller
            .register_broker(BrokerRegistration {
                id: BrokerId(2),
                host: "127.0.0.1".into(),
                port: 1,
                incarnation: "two".into(),
                ..Default::default()
            })
            .unwrap();
        (0..partitions)
            .map(|_| vec![BrokerId(1), BrokerId(2)])
            .collect()
    } else {
        Vec::new()
    };
    let created = broker.controller.create_topics(
        vec![NewTopic {
            name: TOPIC.into(),
            num_partitions: if replicated { -1 } else { partitions },
            replication_factor: if replicated { -1 } else { 1 },
            assignments,
            ..Default::default()
        }],
        false,
    );
    assert!(created[0].is_ok(), "{created:?}");
    broker.reconcile().unwrap();
    broker
}

fn records(n: usize) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        b.push(NewRecord::new(
            produce::now_ms(),
            None,
            Some(format!("value-{i}").as_bytes()),
        ));
    }
    Bytes::from(b.build().unwrap())
}

fn produce_request(partition: i32, acks: i16, timeout_ms: i32, n: usize) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records(n)))])])
}

fn fetch_request(
    replica: i32,
    partition: i32,
    offset: i64,
    min_bytes: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(WireBrokerId(replica))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

async fn produce(broker: &Broker, req: ProduceRequest) -> ProduceResponse {
    produce::handle(broker, req, 9).await
}

async fn fetch(broker: &Arc<Broker>, req: FetchRequest) -> FetchResponse {
    fetch::handle(broker, &samsa_broker::handlers::Ctx::anonymous(), req, 12)
        .await
        .0
}

/// Counts how often the wrapped future is polled: each poll after the first
/// is a wake-up of the parked request.
struct Polls<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for Polls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

fn counted<F: Future>(f: F) -> (Polls<F>, Arc<AtomicUsize>) {
    let polls = Arc::new(AtomicUsize::new(0));
    (
        Polls {
            inner: Box::pin(f),
            polls: polls.clone(),
        },
        polls,
    )
}

/// The parked request is still parked and was polled at most twice more
/// (a spurious wake-up or two is fine; one per round on B is the bug).
fn assert_slept<T>(polls: &AtomicUsize, parked: &tokio::task::JoinHandle<T>, what: &str, by: &str) {
    let woken = polls.load(Ordering::Relaxed).saturating_sub(1);
    assert!(woken <= 2, "{what} was woken {woken} times by {by}");
    assert!(!parked.is_finished(), "{what} is still parked");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn record_bytes(r: &FetchResponse) -> usize {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |b| b.len()))
        .sum()
}

/// A consumer fetch parked on idle partition A is not woken by 1,000 appends
/// to partition B (it was: one global data signal woke every parked fetch on
/// every append, ~1,000 wake-ups here), and still returns as soon as A gets
/// a record.
#[test]
fn parked_fetch_sleeps_through_appends_to_other_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 2, false);
    runtime().block_on(async {
        let b = broker.clone();
        let (parked, polls) =
            counted(async move { fetch(&b, fetch_request(-1, A, 0, 1, 30_000)).await });
        let parked = tokio::spawn(parked);
        tokio::task::yield_now().await;
        for _ in 0..ROUNDS {
            let r = produce(&broker, produce_request(B, 1, 1000, 1)).await;
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
            // Let the parked fetch run if it was woken.
            tokio::task::yield_now().await;
        }
        assert_slept(&polls, &parked, "the fetch parked on A", "appends to B");
        produce(&broker, produce_request(A, 1, 1000, 1)).await;
        let r = tokio::time::timeout(Duration::from_secs(5), parked)
            .await
            .expect("an append to A wakes the fetch")
            .unwrap();
        assert!(record_bytes(&r) > 0);
    });
}

/// An acks=all produce parked on partition A (waiting for broker 2) is not
/// woken by 1,000 high-watermark moves on partition B (it was: one global
/// signal woke every acks=all waiter on every move), and completes once
/// broker 2 has A's record.
#[test]
fn parked_acks_all_produce_sleeps_through_other_partitions_replicating() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 2, true);
    runtime().block_on(async {
        let b = broker.clone();
        let (parked, polls) =
            counted(async move { produce(&b, produce_request(A, -1, 30_000, 1)).await });
        let parked = tokio::spawn(parked);
        tokio::task::yield_now().await;
        for round in 0..ROUNDS {
            produce(&broker, produce_request(B, 1, 1000, 1)).await;
            // Broker 2 fetches B's new record: B's high watermark moves.
            let end = round as i64 + 1;
            fetch(&broker, fetch_request(2, B, end, 0, 0)).await;
            tokio::task::yield_now().await;
        }
        assert_slept(
            &polls,
            &parked,
            "the acks=all produce parked on A",
            "B's replication",
        );
        // Broker 2 fetches past A's record: the produce completes.
        fetch(&broker, fetch_request(2, A, 1, 0, 0)).await;
        let r = tokio::time::timeout(Duration::from_secs(5), parked)
            .await
            .expect("A's high watermark wakes the produce")
            .unwrap();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, 0));
    });
}

/// Long-poll semantics: a fetch waits for `min_bytes` (one small append is
/// not enough, a second one is), returns empty after `max_wait_ms`, and a
/// consumer's parked fetch on a replicated partition is answered when the
/// high watermark moves (not only on appends).
#[test]
fn fetch_long_poll_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 1, false);
    runtime().block_on(async {
        let one = records(1).len() as i32;
        let b = broker.clone();
        let parked =
            tokio::spawn(async move { fetch(&b, fetch_request(-1, A, 0, one + 1, 30_000)).await });
        tokio::task::yield_now().await;
        produce(&broker, produce_request(A, 1, 1000, 1)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!parked.is_finished(), "min_bytes not reached yet");
        produce(&broker, produce_request(A, 1, 1000, 1)).await;
        let r = tokio::time::timeout(Duration::from_secs(5), parked)
            .await
            .expect("min_bytes reached")
            .unwrap();
        assert!(record_bytes(&r) > one as usize);

        let started = std::time::Instant::now();
        let r = fetch(&broker, fetch_request(-1, A, 2, 1, 200)).await;
        assert_eq!(record_bytes(&r), 0);
        assert!(started.elapsed() >= Duration::from_millis(200));
    });

    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 1, true);
    runtime().block_on(async {
        let b = broker.clone();
        let consumer =
            tokio::spawn(async move { fetch(&b, fetch_request(-1, A, 0, 1, 30_000)).await });
        tokio::task::yield_now().await;
        produce(&broker, produce_request(A, 1, 1000, 1)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !consumer.is_finished(),
            "not below the high watermark yet: nothing for a consumer"
        );
        fetch(&broker, fetch_request(2, A, 1, 0, 0)).await;
        let r = tokio::time::timeout(Duration::from_secs(5), consumer)
            .await
            .expect("the high watermark move wakes the consumer")
            .unwrap();
        assert!(record_bytes(&r) > 0);
    });
}

/// An acks=all produce that broker 2 never replicates is answered
/// REQUEST_TIMED_OUT after its timeout.
#[test]
fn acks_all_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 1, true);
    runtime().block_on(async {
        let started = std::time::Instant::now();
        let r = produce(&broker, produce_request(A, -1, 300, 1)).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 7, "REQUEST_TIMED_OUT");
        assert!(started.elapsed() >= Duration::from_millis(300));
    });
}
