//! Helpers for the crate's unit tests: a single-node broker over a wrapped
//! local metadata quorum.

use std::path::Path;
use std::sync::Arc;

use samsa_metadata::config::StaticConfig;
use samsa_metadata::quorum::{LocalQuorum, MetadataQuorum};
use samsa_metadata::{BrokerRegistration, Controller};
use samsa_model::BrokerId;

use crate::broker::Broker;
use crate::settings::BrokerSettings;

/// A broker (node 1) with its data in `dir`, whose metadata quorum is the
/// local one as `wrap` wraps it; registered, with no topics.
pub(crate) fn broker_over(
    dir: &Path,
    wrap: impl FnOnce(LocalQuorum) -> Box<dyn MetadataQuorum>,
) -> Arc<Broker> {
    broker_with(dir, wrap, &[])
}

/// [`broker_over`] with `extra` config keys set.
pub(crate) fn broker_with(
    dir: &Path,
    wrap: impl FnOnce(LocalQuorum) -> Box<dyn MetadataQuorum>,
    extra: &[(&str, &str)],
) -> Arc<Broker> {
    let data = dir.display().to_string();
    let mut cfg = StaticConfig::default();
    for (key, value) in [
        ("log.dirs", data.as_str()),
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("node.id", "1"),
    ]
    .iter()
    .chain(extra)
    {
        cfg.set(key, value).expect("test config");
    }
    let cfg = Arc::new(cfg);
    let (inner, records) = LocalQuorum::open(&dir.join("meta")).expect("metadata log");
    let controller = Controller::open(wrap(inner), records, cfg.clone()).expect("controller");
    let epoch = controller
        .register_broker(BrokerRegistration {
            id: BrokerId(1),
            host: "127.0.0.1".into(),
            port: 9092,
            incarnation: "test".into(),
            ..Default::default()
        })
        .expect("registration");
    let settings = BrokerSettings::from_config(&cfg).expect("settings");
    let log_dirs =
        crate::log_dirs::LogDirs::open(&settings.log_dirs, &settings.data_dir, settings.node_id)
            .expect("log dirs");
    let broker = Broker::new(settings, cfg, controller, None, log_dirs);
    broker
        .broker_epoch
        .store(epoch, std::sync::atomic::Ordering::Relaxed);
    broker
}
