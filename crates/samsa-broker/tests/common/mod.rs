//! Helpers shared by the broker's integration tests.

use std::path::Path;
use std::sync::Arc;

use samsa_broker::{Broker, BrokerSettings};
use samsa_metadata::config::StaticConfig;
use samsa_metadata::NewTopic;

/// A single-node broker on `dir` (listening nowhere).
pub fn open(dir: &Path) -> Arc<Broker> {
    let mut cfg = StaticConfig::default();
    cfg.set("log.dirs", &dir.display().to_string()).unwrap();
    cfg.set("listeners", "PLAINTEXT://127.0.0.1:0").unwrap();
    let cfg = Arc::new(cfg);
    Broker::open(BrokerSettings::from_config(&cfg).unwrap(), cfg).unwrap()
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
