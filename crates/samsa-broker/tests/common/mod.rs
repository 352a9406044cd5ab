//! Helpers shared by the broker's integration tests (each test file uses
//! some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use samsa_broker::{Broker, BrokerSettings};
use samsa_metadata::config::StaticConfig;
use samsa_metadata::NewTopic;

/// A single-node broker on `dir` (listening nowhere).
pub fn open(dir: &Path) -> Arc<Broker> {
    open_dirs(&[dir.to_path_buf()])
}

/// A single-node broker whose `log.dirs` are `dirs` (listening nowhere).
pub fn open_dirs(dirs: &[PathBuf]) -> Arc<Broker> {
    let mut cfg = StaticConfig::default();
    let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    cfg.set("log.dirs", &list.join(",")).unwrap();
    cfg.set("listeners", "PLAINTEXT://127.0.0.1:0").unwrap();
    let cfg = Arc::new(cfg);
    Broker::open(BrokerSettings::from_config(&cfg).unwrap(), cfg).unwrap()
}

/// A two-worker multi-threaded runtime (the broker's handlers expect one).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Creates topic `name` with `partitions` partitions (replication factor
/// 1) and reconciles the logs.
pub fn create(broker: &Broker, name: &str, partitions: i32) {
    let r = broker.controller.create_topics(
        vec![NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: 1,
            ..Default::default()
        }],
        false,
    );
    assert!(r[0].is_ok(), "{:?}", r[0]);
    broker.reconcile().unwrap();
}

/// DescribeLogDirs (v4) for every partition.
pub fn describe_log_dirs(
    broker: &Arc<Broker>,
) -> kafka_protocol::messages::DescribeLogDirsResponse {
    samsa_broker::handlers::describe_log_dirs::handle(
        broker,
        kafka_protocol::messages::DescribeLogDirsRequest::default().with_topics(None),
        4,
    )
}
