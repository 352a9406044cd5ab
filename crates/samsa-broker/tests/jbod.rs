//! Several log directories (JBOD): replicas spread over them, each shown by
//! DescribeLogDirs, and AlterReplicaLogDirs moving a replica between them
//! while a producer writes, across segment rolls and a restart; the
//! directories and cordoned ones in the metadata log (KIP-858, KIP-1066).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, IncrementalAlterConfigsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use samsa_broker::handlers::{alter_configs, alter_replica_log_dirs, produce};
use samsa_broker::{Broker, BrokerSettings};
use samsa_metadata::config::StaticConfig;
use samsa_metadata::{ControllerError, NewTopic};
use samsa_model::batch::{self, BatchBuilder, BatchIter, NewRecord};
use samsa_model::{BrokerId, DirectoryId, Offset, TimestampMs};

mod common;

fn open(dirs: &[PathBuf], extra: &[(&str, &str)]) -> Arc<Broker> {
    let mut cfg = StaticConfig::default();
    let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    cfg.set("log.dirs", &list.join(",")).unwrap();
    cfg.set("listeners", "PLAINTEXT://127.0.0.1:0").unwrap();
    for (k, v) in extra {
        cfg.set(k, v).unwrap();
    }
    let cfg = Arc::new(cfg);
    Broker::open(BrokerSettings::from_config(&cfg).unwrap(), cfg).unwrap()
}

fn create(broker: &Broker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let r = broker.controller.create_topics(
        vec![NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: 1,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
            ..Default::default()
        }],
        false,
    );
    assert!(r[0].is_ok(), "{:?}", r[0]);
    broker.reconcile().unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// (topic, partition, is_future) of one replica.
type Replica = (String, i32, bool);

/// (log dir, its replicas) per directory.
fn describe(broker: &Arc<Broker>) -> Vec<(PathBuf, Vec<Replica>)> {
    common::describe_log_dirs(broker)
        .results
        .iter()
        .map(|r| {
            assert!(r.total_bytes > 0 && r.usable_bytes > 0);
            let mut parts = Vec::new();
            for t in &r.topics {
                for p in &t.partitions {
                    parts.push((t.name.0.to_string(), p.partition_index, p.is_future_key));
                }
            }
            parts.sort();
            (PathBuf::from(r.log_dir.as_str()), parts)
        })
        .collect()
}

fn move_to(broker: &Arc<Broker>, path: &str, topic: &str, partition: i32) -> i16 {
    let req = AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
        .with_path(StrBytes::from_string(path.to_string()))
        .with_topics(vec![AlterReplicaLogDirTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![partition])])]);
    let resp = alter_replica_log_dirs::handle(broker, req, 2);
    resp.results[0].partitions[0].error_code
}

/// Produces batch `n` (10 records `"<n>-<i>"`) with acks=1; returns the
/// error code and base offset.
fn send(rt: &tokio::runtime::Runtime, broker: &Arc<Broker>, n: usize) -> (i16, i64) {
    let mut b = BatchBuilder::new();
    let value = vec![b'x'; 2000];
    for i in 0..10 {
        let mut v = format!("{n}-{i}-").into_bytes();
        v.extend_from_slice(&value);
        b.push(NewRecord::new(produce::now_ms(), None, Some(&v)));
    }
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(b.build().unwrap())))])]);
    let resp = rt.block_on(produce::handle(broker, req, 9));
    let p = &resp.responses[0].partition_responses[0];
    assert!(
        p.error_code == 0,
        "produce failed: {} {:?}",
        p.error_code,
        p.error_message
    );
    (p.error_code, p.base_offset)
}

/// Every record value of partition 0 of `t`, in offset order, checking
/// offsets are dense and every batch's CRC holds.
fn read_all(broker: &Broker) -> Vec<String> {
    let image = broker.image();
    let part = broker.partition(image.topic("t").unwrap().id, 0).unwrap();
    let log = part.log();
    let end = log.log_end_offset();
    let mut at = log.log_start_offset();
    let mut values = Vec::new();
    while at < end {
        let r = log.read(at, 1 << 20, end, true).unwrap();
        for item in BatchIter::new(&r.bytes) {
            let (header, bytes) = item.unwrap();
            batch::verify_crc(bytes).unwrap();
            assert_eq!(header.base_offset, at, "offsets are dense");
            for rec in batch::records(bytes, 1 << 20).unwrap() {
                let v = rec.value.unwrap();
                let s = String::from_utf8_lossy(&v);
                values.push(s.split('-').take(2).collect::<Vec<_>>().join("-"));
            }
            at = header.next_offset();
        }
    }
    values
}

fn dir_of(broker: &Broker) -> PathBuf {
    let image = broker.image();
    let part = broker.partition(image.topic("t").unwrap().id, 0).unwrap();
    part.log().dir().parent().unwrap().to_path_buf()
}

fn abs(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap()
}

#[test]
fn replicas_spread_over_every_log_directory_and_stay_there_after_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("a"), root.path().join("b")];
    {
        let broker = open(&dirs, &[]);
        create(&broker, "s", 4, &[]);
        let shown = describe(&broker);
        assert_eq!(shown.len(), 2, "one result per log directory");
        assert_eq!(shown[0].0, abs(&dirs[0]));
        assert_eq!(shown[1].0, abs(&dirs[1]));
        assert_eq!(shown[0].1.len(), 2, "{shown:?}");
        assert_eq!(shown[1].1.len(), 2, "{shown:?}");
        for (d, parts) in &shown {
            for (t, p, _) in parts {
                assert!(d.join(format!("{t}-{p}")).is_dir());
            }
            assert!(d.join("meta.properties").is_file());
        }
        broker.shutdown();
    }
    let before = {
        let broker = open(&dirs, &[]);
        let shown = describe(&broker);
        assert_eq!(shown[0].1.len() + shown[1].1.len(), 4);
        broker.shutdown();
        shown
    };
    // A new topic goes by the fewest-partitions rule; a cordoned directory
    // gets none.
    let broker = open(
        &dirs,
        &[("cordoned.log.dirs", &dirs[1].display().to_string())],
    );
    assert_eq!(
        describe(&broker)[..],
        before[..],
        "nothing moved on restart"
    );
    create(&broker, "c", 2, &[]);
    let shown = describe(&broker);
    assert!(
        shown[0].1.iter().filter(|(t, _, _)| t == "c").count() == 2,
        "{shown:?}"
    );
    // Nor can a replica be moved into it (KIP-1066: KAFKA_STORAGE_ERROR).
    assert_eq!(move_to(&broker, &dirs[1].display().to_string(), "c", 0), 56);
    assert_eq!(move_to(&broker, &dirs[0].display().to_string(), "c", 0), 0);
}

#[test]
fn a_replica_moves_to_another_log_directory_while_a_producer_writes() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("a"), root.path().join("b")];
    let broker = open(&dirs, &[]);
    create(&broker, "t", 1, &[("segment.bytes", "1048576")]);
    let rt = runtime();
    let from = dir_of(&broker);
    let to = if from == dirs[0] { &dirs[1] } else { &dirs[0] };
    // The partition's record names each replica's directory
    // (AssignReplicasToDirs; the replica manager reports it every 100 ms).
    let dir_id = |path: &Path| {
        let i = broker.log_dirs.index_of(path).unwrap();
        DirectoryId(broker.log_dirs.dirs()[i].id)
    };
    let recorded = |b: &Broker| {
        b.image()
            .partition("t", samsa_model::PartitionIndex(0))
            .unwrap()
            .directory_of(BrokerId(1))
    };
    samsa_broker::dir_report::report(&broker, true).unwrap();
    assert_eq!(recorded(&broker), Some(dir_id(&from)), "before the move");

    // Errors as Kafka answers them.
    assert_eq!(
        move_to(&broker, "/no/such/dir", "t", 0),
        57,
        "LOG_DIR_NOT_FOUND"
    );
    assert_eq!(
        move_to(&broker, &to.display().to_string(), "t", 7),
        9,
        "REPLICA_NOT_AVAILABLE"
    );

    let mut acked = Vec::new();
    for n in 0..200 {
        let (code, base) = send(&rt, &broker, n);
        assert_eq!(code, 0);
        acked.push((n, base));
    }
    assert_eq!(move_to(&broker, &to.display().to_string(), "t", 0), 0);
    // Keep producing while the copy runs and until the swap is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 200;
    while dir_of(&broker) != *to {
        assert!(Instant::now() < deadline, "the move did not finish");
        let (code, base) = send(&rt, &broker, n);
        assert_eq!(code, 0);
        acked.push((n, base));
        n += 1;
    }
    for _ in 0..100 {
        let (code, base) = send(&rt, &broker, n);
        assert_eq!(code, 0);
        acked.push((n, base));
        n += 1;
    }
    assert!(n > 200, "records were produced while the replica moved");
    let expected: Vec<String> = acked
        .iter()
        .flat_map(|(n, _)| (0..10).map(move |i| format!("{n}-{i}")))
        .collect();
    for (i, (_, base)) in acked.iter().enumerate() {
        assert_eq!(*base, (i * 10) as i64, "acknowledged offsets");
    }
    assert_eq!(
        read_all(&broker),
        expected,
        "every record once, in order, after the swap"
    );
    let shown = describe(&broker);
    let holder: Vec<_> = shown.iter().filter(|(_, ps)| !ps.is_empty()).collect();
    assert_eq!(holder.len(), 1);
    assert_eq!(holder[0].0, abs(to));
    assert_eq!(holder[0].1, vec![("t".to_string(), 0, false)]);
    // The partition's record names the directory the replica is in now.
    samsa_broker::dir_report::report(&broker, true).unwrap();
    assert_eq!(recorded(&broker), Some(dir_id(to)), "after the move");
    // The old copy goes away in the background.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&from)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("t-0"))
    {
        assert!(
            Instant::now() < deadline,
            "the old directory was not removed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    broker.shutdown();
    drop(broker);
    drop(rt);

    let broker = open(&dirs, &[]);
    assert_eq!(dir_of(&broker), *to, "the move survives a restart");
    assert_eq!(
        read_all(&broker),
        expected,
        "every record once, in order, after a restart"
    );
    let rt = runtime();
    assert_eq!(send(&rt, &broker, n).1, expected.len() as i64);
    let image = broker.image();
    let part = broker.partition(image.topic("t").unwrap().id, 0).unwrap();
    assert!(part.log().segments_info().len() > 3, "segments rolled");
    assert_eq!(part.log().log_start_offset(), Offset(0));
    let _ = TimestampMs(0);
}

#[test]
fn an_interrupted_swap_keeps_the_live_log() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("a"), root.path().join("b")];
    {
        let broker = open(&dirs, &[]);
        create(&broker, "t", 1, &[]);
        let rt = runtime();
        for n in 0..20 {
            assert_eq!(send(&rt, &broker, n).0, 0);
        }
        broker.shutdown();
    }
    // A crash between the two renames of a swap: the live log is renamed
    // `-retired` and the future log is not in place yet.
    let holder = dirs
        .iter()
        .find(|d| d.join("t-0").is_dir())
        .unwrap()
        .clone();
    let retired = holder.join("t-0.0123456789abcdef0123456789abcdef-retired");
    std::fs::rename(holder.join("t-0"), &retired).unwrap();
    let broker = open(&dirs, &[]);
    assert_eq!(read_all(&broker).len(), 200, "the live log was put back");
    assert!(!retired.exists());
}

#[test]
fn a_move_interrupted_by_a_restart_resumes_from_its_future_log() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("a"), root.path().join("b")];
    let from = {
        let broker = open(&dirs, &[]);
        create(&broker, "t", 1, &[]);
        let rt = runtime();
        for n in 0..20 {
            assert_eq!(send(&rt, &broker, n).0, 0);
        }
        let from = dir_of(&broker);
        broker.shutdown();
        from
    };
    let to = if from == dirs[0] { &dirs[1] } else { &dirs[0] };
    // A future log part-way through its copy: the first ten batches.
    let future = to.join("t-0.0123456789abcdef0123456789abcdef-future");
    std::fs::create_dir_all(&future).unwrap();
    {
        let log = samsa_storage::PartitionLog::open(&future, Default::default()).unwrap();
        let src = samsa_storage::PartitionLog::open(&from.join("t-0"), Default::default()).unwrap();
        let half = src.read(Offset(0), 1 << 20, Offset(100), true).unwrap();
        log.append_replicated(&half.bytes, TimestampMs(0)).unwrap();
        assert_eq!(log.log_end_offset(), Offset(100));
        log.close().unwrap();
        src.close().unwrap();
    }
    std::fs::copy(
        from.join("t-0").join("partition.metadata"),
        future.join("partition.metadata"),
    )
    .unwrap();
    let broker = open(&dirs, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while dir_of(&broker) != *to {
        assert!(Instant::now() < deadline, "the move did not resume");
        std::thread::sleep(Duration::from_millis(20));
    }
    let expected: Vec<String> = (0..20)
        .flat_map(|n| (0..10).map(move |i| format!("{n}-{i}")))
        .collect();
    assert_eq!(read_all(&broker), expected);
    assert!(!future.exists());
}

// KIP-858/KIP-1066: the broker's log directories and its cordoned ones in the
// metadata log: registered at startup, updated by a dynamic
// `cordoned.log.dirs` change without a new broker epoch, and kept off by the
// controller's placement when every directory is cordoned.

/// (registered log dirs, registered cordoned dirs, broker epoch) of node 1.
fn registered(broker: &Broker) -> (Vec<DirectoryId>, Vec<DirectoryId>, i64) {
    let image = broker.image();
    let me = &image.brokers[&BrokerId(1)];
    let mut cordoned = me.cordoned_log_dirs.clone();
    cordoned.sort();
    (me.log_dirs.clone(), cordoned, me.epoch)
}

/// Sets (`Some`) or deletes this broker's dynamic `cordoned.log.dirs`
/// through IncrementalAlterConfigs.
fn set_cordoned(broker: &Broker, value: Option<&str>) {
    let (code, message) = try_set_cordoned(broker, value);
    assert_eq!(code, 0, "{message:?}");
}

/// [`set_cordoned`]'s answer: error code and message.
fn try_set_cordoned(broker: &Broker, value: Option<&str>) -> (i16, Option<String>) {
    let config = AlterableConfig::default()
        .with_name(StrBytes::from_static_str("cordoned.log.dirs"))
        .with_config_operation(if value.is_some() { 0 } else { 1 })
        .with_value(value.map(|v| StrBytes::from_string(v.to_string())));
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1"))
            .with_configs(vec![config]),
    ]);
    let response = alter_configs::handle_incremental(broker, request, 1);
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[test]
fn a_dynamic_cordoned_log_dir_must_be_one_of_log_dirs() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("a"), root.path().join("b")];
    let broker = open(&dirs, &[]);
    let typo = root.path().join("c").display().to_string();
    let (code, message) = try_set_cordoned(&broker, Some(&typo));
    assert_eq!(code, 40, "INVALID_CONFIG: {message:?}");
    let message = message.unwrap();
    assert!(
        message.contains("cordoned.log.dirs") && message.contains(&typo),
        "{message}"
    );
    let image = broker.image();
    assert!(
        !image
            .dynamic_broker_configs(BrokerId(1))
            .contains_key("cordoned.log.dirs"),
        "nothing was stored"
    );
    set_cordoned(&broker, Some(&dirs[1].display().to_string()));
    set_cordoned(&broker, Some("*"));
}

fn try_create(broker: &Broker, name: &str) -> Result<(), ControllerError> {
    let mut r = broker.controller.create_topics(
        vec![NewTopic {
            name: name.into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        }],
        false,
    );
    r.remove(0).map(|_| ())
}

#[test]
fn log_dirs_and_cordoned_ones_are_registered_and_follow_dynamic_changes() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("a"), root.path().join("b")];
    let b_path = dirs[1].display().to_string();
    let (ids, epoch) = {
        let broker = open(&dirs, &[("cordoned.log.dirs", &b_path)]);
        let ids = broker.log_dirs.ids();
        assert_eq!(ids.len(), 2);
        let (log_dirs, cordoned, epoch) = registered(&broker);
        assert_eq!(log_dirs, ids, "every directory id, in log.dirs order");
        assert_eq!(cordoned, vec![ids[1]], "the static cordoned directory");
        assert!(try_create(&broker, "open").is_ok(), "directory a is open");

        // Cordon both dynamically: recorded at the same broker epoch, and
        // the controller then refuses to place a replica here.
        let both = format!("{},{b_path}", dirs[0].display());
        set_cordoned(&broker, Some(&both));
        let (_, cordoned, now) = registered(&broker);
        let mut all = ids.clone();
        all.sort();
        assert_eq!(cordoned, all);
        assert_eq!(now, epoch, "a cordoning change is no new registration");
        match try_create(&broker, "refused") {
            Err(ControllerError::InvalidReplicationFactor(msg)) => {
                assert!(msg.contains("cordoned"), "{msg}")
            }
            other => panic!("expected INVALID_REPLICATION_FACTOR, got {other:?}"),
        }
        broker.shutdown();
        (ids, epoch)
    };
    // After a restart the dynamic value (from the metadata log) still holds.
    let broker = open(&dirs, &[("cordoned.log.dirs", &b_path)]);
    let (log_dirs, cordoned, _) = registered(&broker);
    assert_eq!(log_dirs, ids, "directory ids survive restarts");
    assert_eq!(cordoned.len(), 2, "{cordoned:?}");
    assert!(try_create(&broker, "still-refused").is_err());
    // Deleting the dynamic value falls back to the static one.
    set_cordoned(&broker, None);
    let (_, cordoned, now) = registered(&broker);
    assert_eq!(cordoned, vec![ids[1]]);
    assert!(now >= epoch);
    assert!(try_create(&broker, "allowed").is_ok());
}
