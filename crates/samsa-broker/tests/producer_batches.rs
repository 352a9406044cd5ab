//! samsa's own producer against a serving broker when its sender task is
//! starved (records are queued on a one-thread runtime without yielding, as
//! under CPU contention): batches are closed when full instead of growing
//! until the sender takes them, and a batch the topic refuses as too large
//! is split and retried.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use samsa_broker::{Broker, BrokerSettings};
use samsa_client::admin::{Admin, NewTopic};
use samsa_client::producer::{Acks, Producer, ProducerConfig, ProducerRecord};
use samsa_client::{Client, ClientConfig};
use samsa_metadata::config::StaticConfig;

/// A broker serving on its own runtime, stopped when dropped.
struct Served {
    broker: Arc<Broker>,
    bootstrap: String,
    stop: tokio::sync::watch::Sender<bool>,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn serve() -> Served {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let bootstrap = listener.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = StaticConfig::default();
    cfg.set("log.dirs", &dir.path().display().to_string())
        .expect("log.dirs");
    // Metadata advertises this address to the producer.
    cfg.set("listeners", &format!("PLAINTEXT://{bootstrap}"))
        .expect("listeners");
    let cfg = Arc::new(cfg);
    let broker =
        Broker::open(BrokerSettings::from_config(&cfg).expect("settings"), cfg).expect("open");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    runtime.spawn(samsa_broker::serve(
        broker.clone(),
        vec![("PLAINTEXT".into(), listener)],
        stopped,
    ));
    Served {
        broker,
        bootstrap,
        stop,
        _runtime: runtime,
        _dir: dir,
    }
}

/// Creates `topic` (one partition) with `configs`, then queues `count`
/// records of `size` bytes on a one-thread runtime without ever yielding
/// to the producer's sender task, and returns each record's offset or
/// error once the sender has delivered them.
fn produce_starved(
    served: &Served,
    topic: &str,
    configs: &[(&str, &str)],
    count: usize,
    size: usize,
) -> Vec<Result<i64, String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = Client::connect(ClientConfig::new(&served.bootstrap))
            .await
            .expect("client");
        Admin::new(client.clone())
            .create_topic(&NewTopic {
                name: topic.into(),
                partitions: 1,
                replication_factor: 1,
                configs: configs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
            .await
            .expect("create topic");
        let producer = Producer::new(
            client,
            ProducerConfig {
                acks: Acks::Leader,
                linger: Duration::from_millis(1),
                ..ProducerConfig::default()
            },
        );
        // The first send fetches the topic's metadata; after that nothing
        // below waits, so the sender task cannot run until all are queued.
        let value = Bytes::from(vec![b'v'; size]);
        let deliveries = tokio::task::unconstrained(async {
            let mut deliveries = Vec::with_capacity(count);
            for _ in 0..count {
                let record = ProducerRecord::new(topic, value.clone());
                deliveries.push(producer.send(record).await.expect("queued"));
            }
            deliveries
        })
        .await;
        let mut results = Vec::with_capacity(count);
        for d in deliveries {
            results.push(d.await.map(|m| m.offset).map_err(|e| e.to_string()));
        }
        producer.close().await;
        results
    })
}

/// Every record delivered, at offsets 0..count.
fn assert_all_delivered(results: &[Result<i64, String>]) {
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} records failed, e.g. {:?}",
        failed.len(),
        results.len(),
        failed.first()
    );
    let offsets: BTreeSet<i64> = results.iter().filter_map(|r| r.clone().ok()).collect();
    let expected: BTreeSet<i64> = (0..results.len() as i64).collect();
    assert_eq!(offsets, expected, "each record once, offsets dense");
}

#[test]
fn a_starved_sender_still_sends_batches_within_the_batch_size() {
    let served = serve();
    // 20,000 records of 100 bytes: about 2.6 MB, more than the default
    // max.message.bytes (1048588) if they all went into one batch.
    let results = produce_starved(&served, "starved", &[], 20_000, 100);
    assert_all_delivered(&results);
    let t = served.broker.image().topic("starved").expect("topic").id;
    let part = served.broker.partition(t, 0).expect("partition");
    assert_eq!(part.log().log_end_offset().get(), 20_000);
}

#[test]
fn a_batch_refused_as_too_large_is_split_and_retried() {
    let served = serve();
    // The producer's batch size (256 KiB) is above the topic's limit.
    let results = produce_starved(
        &served,
        "small-batches",
        &[("max.message.bytes", "10000")],
        3_000,
        100,
    );
    assert_all_delivered(&results);
}
