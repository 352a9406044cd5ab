//! A failed log directory (KIP-858): with two `log.dirs`, one directory
//! replaced by a regular file takes only its partitions offline
//! (KAFKA_STORAGE_ERROR, DescribeLogDirs shows the directory failed), the
//! other directory keeps serving, and new replicas go to the directory that
//! works.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use samsa_broker::handlers::produce;
use samsa_broker::Broker;
use samsa_model::batch::{BatchBuilder, NewRecord};

const KAFKA_STORAGE_ERROR: i16 = 56;

mod common;
use common::{create, open_dirs, runtime};

/// A broker on two log directories `a` and `b` under `root`, with topic `t`
/// of `partitions` partitions.
fn two_dirs(root: &Path, partitions: i32) -> (Arc<Broker>, Vec<PathBuf>) {
    let dirs = vec![root.join("a"), root.join("b")];
    let broker = open_dirs(&dirs);
    create(&broker, "t", partitions);
    (broker, dirs)
}

/// Produces one record to `topic`-`partition` with acks=1; the error code.
fn send(rt: &tokio::runtime::Runtime, broker: &Arc<Broker>, topic: &str, partition: i32) -> i16 {
    let mut b = BatchBuilder::new();
    b.push(NewRecord::new(produce::now_ms(), None, Some(b"v")));
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(b.build().unwrap())))])]);
    let resp = rt.block_on(produce::handle(broker, req, 9));
    resp.responses[0].partition_responses[0].error_code
}

/// The log directory (as configured) holding `topic`-`partition`.
fn dir_of(broker: &Broker, topic: &str, partition: i32) -> PathBuf {
    let id = broker.image().topic(topic).unwrap().id;
    broker
        .log_dirs
        .log_dir_of((id, partition))
        .unwrap()
        .path
        .clone()
}

/// Replaces directory `dir` by a regular file (the directory's files stay
/// reachable only through descriptors already open).
fn break_dir(dir: &Path) {
    std::fs::rename(dir, dir.with_extension("gone")).unwrap();
    std::fs::write(dir, b"not a directory").unwrap();
}

/// (error code, partitions listed) per log directory.
fn describe(broker: &Arc<Broker>) -> Vec<(i16, usize)> {
    common::describe_log_dirs(broker)
        .results
        .iter()
        .map(|r| {
            let n = r.topics.iter().map(|t| t.partitions.len()).sum();
            (r.error_code, n)
        })
        .collect()
}

#[test]
fn a_failed_log_directory_takes_only_its_partitions_offline() {
    let root = tempfile::tempdir().unwrap();
    let (broker, dirs) = two_dirs(root.path(), 2);
    assert_eq!(dir_of(&broker, "t", 0), dirs[0]);
    assert_eq!(dir_of(&broker, "t", 1), dirs[1]);
    let rt = runtime();
    assert_eq!(send(&rt, &broker, "t", 0), 0);
    assert_eq!(send(&rt, &broker, "t", 1), 0);

    break_dir(&dirs[1]);
    // The write still lands in the open segment file; the next checkpoint
    // of the directory (the high watermark moved) finds it gone.
    assert_eq!(send(&rt, &broker, "t", 1), 0);
    samsa_broker::replica::checkpoint_all(&broker);

    assert_eq!(
        send(&rt, &broker, "t", 1),
        KAFKA_STORAGE_ERROR,
        "the failed directory's partition is offline"
    );
    let offline = broker
        .partition(broker.image().topic("t").unwrap().id, 1)
        .unwrap();
    assert_eq!(
        samsa_broker::errors::check_leader(&offline, -1),
        Err(kafka_protocol::error::ResponseError::KafkaStorageError),
        "reads (Fetch, ListOffsets) are refused too"
    );
    for _ in 0..3 {
        assert_eq!(
            send(&rt, &broker, "t", 0),
            0,
            "the other directory keeps serving"
        );
    }
    assert_eq!(
        describe(&broker),
        vec![(0, 1), (KAFKA_STORAGE_ERROR, 0)],
        "DescribeLogDirs shows the failed directory with no partitions"
    );

    // New replicas go to the directory that works.
    create(&broker, "u", 2);
    assert_eq!(dir_of(&broker, "u", 0), dirs[0]);
    assert_eq!(dir_of(&broker, "u", 1), dirs[0]);
    assert_eq!(send(&rt, &broker, "u", 1), 0);
}

#[test]
fn a_new_replica_in_a_directory_that_failed_unnoticed_goes_to_another() {
    let root = tempfile::tempdir().unwrap();
    let (broker, dirs) = two_dirs(root.path(), 1);
    assert_eq!(dir_of(&broker, "t", 0), dirs[0]);
    // The second directory (the emptier one, where the next replica would
    // go) is gone before anything noticed.
    break_dir(&dirs[1]);
    create(&broker, "u", 1);
    assert_eq!(dir_of(&broker, "u", 0), dirs[0]);
    let rt = runtime();
    assert_eq!(send(&rt, &broker, "u", 0), 0);
    assert_eq!(send(&rt, &broker, "t", 0), 0);
    assert_eq!(describe(&broker)[1].0, KAFKA_STORAGE_ERROR);
}
