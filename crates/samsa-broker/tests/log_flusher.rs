//! A roll does not fsync the sealed segment on the append path: the serving
//! broker's log flusher syncs it in the background shortly afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use samsa_broker::{Broker, BrokerSettings};
use samsa_metadata::config::StaticConfig;
use samsa_metadata::NewTopic;
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::{LeaderEpoch, TimestampMs};

#[test]
fn the_serving_broker_syncs_rolled_segments_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StaticConfig::default();
    cfg.set("log.dirs", &dir.path().display().to_string())
        .unwrap();
    cfg.set("listeners", "PLAINTEXT://127.0.0.1:0").unwrap();
    let cfg = Arc::new(cfg);
    let broker = Broker::open(BrokerSettings::from_config(&cfg).unwrap(), cfg).unwrap();
    let r = broker.controller.create_topics(
        vec![NewTopic {
            name: "t".into(),
            num_partitions: 1,
            replication_factor: 1,
            configs: vec![("segment.bytes".into(), Some("1048576".into()))],
            ..Default::default()
        }],
        false,
    );
    assert!(r[0].is_ok(), "{:?}", r[0]);
    broker.reconcile().unwrap();
    let part = broker
        .partition(broker.image().topic("t").unwrap().id, 0)
        .unwrap();
    let value = vec![b'x'; 1024];
    for _ in 0..1300 {
        let mut b = BatchBuilder::new();
        for _ in 0..4 {
            b.push(NewRecord::new(TimestampMs(1), None, Some(&value)));
        }
        let mut bytes = b.build().unwrap();
        part.log()
            .append(&mut bytes, LeaderEpoch(0), TimestampMs(1))
            .unwrap();
    }
    assert!(part.log().segments_info().len() >= 5, "segments rolled");
    assert!(
        part.log().needs_sync(),
        "nothing syncs them without the flusher"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let served = {
        let broker = broker.clone();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            samsa_broker::server::serve(broker, vec![("PLAINTEXT".into(), listener)], stopped).await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while part.log().needs_sync() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !part.log().needs_sync(),
        "rolled segments still unsynced after 10 s of serving"
    );
    stop.send(true).unwrap();
    rt.block_on(served).unwrap().unwrap();
}
