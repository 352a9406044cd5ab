//! Helpers shared by the broker's integration tests (each test file uses
//! some of them).
#![allow(dead_code)]

use std::net::SocketAddr;
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

/// A served broker with a PLAINTEXT listener and one more (`secured`); it
/// stops when dropped.
pub struct Served {
    pub plain: SocketAddr,
    pub secured: SocketAddr,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serves a broker on `dir` with `PLAINTEXT` and listener `name` (both on
/// 127.0.0.1, ephemeral ports) and the extra `settings`, checked as
/// `samsa serve` checks them.
pub async fn serve_plain_and(
    dir: tempfile::TempDir,
    name: &str,
    settings: &[(&str, String)],
) -> Served {
    let mut cfg = StaticConfig::default();
    cfg.set("log.dirs", &dir.path().join("data").display().to_string())
        .expect("log.dirs");
    cfg.set(
        "listeners",
        &format!("PLAINTEXT://127.0.0.1:0,{name}://127.0.0.1:0"),
    )
    .expect("listeners");
    for (k, v) in settings {
        cfg.set(k, v).expect("setting");
    }
    samsa_security::check_listeners(&cfg).expect("the listeners build");
    let cfg = Arc::new(cfg);
    let broker =
        Broker::open(BrokerSettings::from_config(&cfg).expect("settings"), cfg).expect("open");
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (plain, secured) = (bind().await.expect("bind"), bind().await.expect("bind"));
    let (plain_addr, secured_addr) = (
        plain.local_addr().expect("address"),
        secured.local_addr().expect("address"),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let listeners = vec![
        ("PLAINTEXT".to_string(), plain),
        (name.to_string(), secured),
    ];
    tokio::spawn(samsa_broker::serve(broker, listeners, stopped));
    Served {
        plain: plain_addr,
        secured: secured_addr,
        stop,
        dir,
    }
}
