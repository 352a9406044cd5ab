//! Idempotent produce through the real handler: retries get their original
//! offsets, gaps are refused, and the producer table survives a restart.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use samsa_broker::handlers::produce;
use samsa_broker::{Broker, BrokerSettings};
use samsa_metadata::config::StaticConfig;
use samsa_metadata::NewTopic;
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::{ProducerEpoch, ProducerId, TimestampMs};

fn open(dir: &std::path::Path) -> Arc<Broker> {
    let mut cfg = StaticConfig::default();
    cfg.set("log.dirs", &dir.display().to_string()).unwrap();
    cfg.set("listeners", "PLAINTEXT://127.0.0.1:0").unwrap();
    let cfg = Arc::new(cfg);
    Broker::open(BrokerSettings::from_config(&cfg).unwrap(), cfg).unwrap()
}

fn batch(seq: i32, n: usize) -> Bytes {
    let mut b = BatchBuilder::new().producer(ProducerId(77), ProducerEpoch(0), seq);
    let now = produce::now_ms().get();
    for i in 0..n {
        b.push(NewRecord::new(
            TimestampMs(now),
            None,
            Some(format!("v{i}").as_bytes()),
        ));
    }
    Bytes::from(b.build().unwrap())
}

/// Produces one batch; returns (error code, base offset).
fn send(broker: &Broker, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let resp = runtime.block_on(produce::handle(broker, req, 9));
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn retries_are_deduplicated_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let r = broker.controller.create_topics(
            vec![NewTopic {
                name: "t".into(),
                num_partitions: 1,
                replication_factor: 1,
                ..Default::default()
            }],
            false,
        );
        assert!(r[0].is_ok());
        broker.reconcile().unwrap();
        assert_eq!(send(&broker, batch(0, 3)), (0, 0));
        assert_eq!(send(&broker, batch(3, 2)), (0, 3));
        // A retry of the first batch: success with its original offset, nothing appended.
        assert_eq!(send(&broker, batch(0, 3)), (0, 0));
        // A gap in the sequence: OUT_OF_ORDER_SEQUENCE_NUMBER (45).
        assert_eq!(send(&broker, batch(9, 1)).0, 45);
        broker.shutdown();
    }
    let broker = open(dir.path());
    let image = broker.image();
    let part = broker.partition(image.topic("t").unwrap().id, 0).unwrap();
    assert_eq!(
        part.log().log_end_offset().get(),
        5,
        "no duplicate was stored"
    );
    assert_eq!(
        send(&broker, batch(3, 2)),
        (0, 3),
        "retry after restart is still a duplicate"
    );
    assert_eq!(send(&broker, batch(5, 1)), (0, 5));
}

fn create_topic(broker: &Broker, configs: Vec<(String, Option<String>)>) {
    let r = broker.controller.create_topics(
        vec![NewTopic {
            name: "t".into(),
            num_partitions: 1,
            replication_factor: 1,
            configs,
            ..Default::default()
        }],
        false,
    );
    assert!(r[0].is_ok(), "{:?}", r[0]);
    broker.reconcile().unwrap();
}

/// Plain (non-idempotent) records: `batches` batches of 100 records of 1 KiB.
fn fill(broker: &Broker, batches: usize) {
    let value = vec![b'x'; 1000];
    for _ in 0..batches {
        let mut b = BatchBuilder::new();
        let now = produce::now_ms().get();
        for _ in 0..100 {
            b.push(NewRecord::new(TimestampMs(now), None, Some(&value)));
        }
        assert_eq!(send(broker, Bytes::from(b.build().unwrap())).0, 0);
    }
}

/// The reproduction: an idempotent batch at offset 0, 3 MB of other
/// records after it in 1 MiB segments (so it sits in an old segment), a
/// crash (no clean shutdown), a restart: the retried batch is a duplicate,
/// answered with its original offset and not stored again.
#[test]
fn a_retry_whose_original_sits_in_an_older_segment_is_a_duplicate_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        create_topic(
            &broker,
            vec![("segment.bytes".into(), Some("1048576".into()))],
        );
        assert_eq!(send(&broker, batch(0, 3)), (0, 0));
        fill(&broker, 30);
        let part = broker
            .partition(broker.image().topic("t").unwrap().id, 0)
            .unwrap();
        assert!(part.log().segments_info().len() >= 3, "segments rolled");
        // Dropped without shutdown: no clean-shutdown marker, as after kill -9.
    }
    let broker = open(dir.path());
    let part = broker
        .partition(broker.image().topic("t").unwrap().id, 0)
        .unwrap();
    let end = part.log().log_end_offset().get();
    assert_eq!(end, 3003);
    assert_eq!(
        send(&broker, batch(0, 3)),
        (0, 0),
        "the retry is answered with the original offset"
    );
    assert_eq!(
        part.log().log_end_offset().get(),
        end,
        "nothing stored twice"
    );
    // The producer continues where it left off; a gap is still refused.
    assert_eq!(send(&broker, batch(3, 1)), (0, end));
    assert_eq!(send(&broker, batch(9, 1)).0, 45);
}
