//! Deleting a topic frees its name at once and its disk space soon after:
//! partition directories are renamed to `<name>.<id>-delete` and removed in
//! the background; leftovers of a crash are removed at the next startup.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use samsa_broker::broker::DELETE_SUFFIX;
use samsa_broker::{Broker, BrokerSettings};
use samsa_metadata::config::StaticConfig;
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::{LeaderEpoch, TimestampMs};

mod common;

use common::{create, open};

/// Appends `n` records of 1 KiB to partition 0 of `name`.
fn fill(broker: &Broker, name: &str, n: usize) {
    let image = broker.image();
    let part = broker.partition(image.topic(name).unwrap().id, 0).unwrap();
    let value = vec![b'x'; 1024];
    let mut b = BatchBuilder::new();
    for _ in 0..n {
        b.push(NewRecord::new(TimestampMs(1), None, Some(&value)));
    }
    let mut bytes = b.build().unwrap();
    part.log()
        .append(&mut bytes, LeaderEpoch(0), TimestampMs(1))
        .unwrap();
}

/// Names of the entries of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Waits up to 10 s until no entry of `dir` satisfies `f`; returns the
/// entries left.
fn wait_gone(dir: &Path, f: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = entries(dir).into_iter().filter(|n| f(n)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn deleted_topic_frees_its_name_at_once_and_its_directories_soon_after() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    create(&broker, "t", 2);
    fill(&broker, "t", 2000);
    assert!(dir.path().join("t-0").is_dir() && dir.path().join("t-1").is_dir());

    broker.controller.delete_topic(Some("t"), None).unwrap();
    broker.reconcile().unwrap();
    // The partition directories are gone under their own names right away.
    let names = entries(dir.path());
    assert!(!names.iter().any(|n| n == "t-0" || n == "t-1"), "{names:?}");
    // A topic of the same name starts empty, whatever the removal is doing.
    create(&broker, "t", 1);
    let image = broker.image();
    let part = broker.partition(image.topic("t").unwrap().id, 0).unwrap();
    assert_eq!(part.log().log_end_offset().get(), 0);
    // The renamed directories are removed in the background.
    let left = wait_gone(dir.path(), |n| n.ends_with(DELETE_SUFFIX));
    assert!(left.is_empty(), "still on disk after 10 s: {left:?}");
    assert!(dir.path().join("t-0").is_dir());
    assert!(!dir.path().join("t-1").exists());
}

#[test]
fn directories_marked_for_deletion_before_a_crash_are_removed_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        create(&broker, "kept", 1);
        broker.shutdown();
    }
    // As a crash between the rename and the removal leaves it.
    let leftover = dir.path().join(format!(
        "gone-0.0123456789abcdef0123456789abcdef{DELETE_SUFFIX}"
    ));
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("00000000000000000000.log"), [0u8; 4096]).unwrap();

    let broker = open(dir.path());
    let left = wait_gone(dir.path(), |n| n.ends_with(DELETE_SUFFIX));
    assert!(left.is_empty(), "still on disk after 10 s: {left:?}");
    let image = broker.image();
    assert!(broker
        .partition(image.topic("kept").unwrap().id, 0)
        .is_some());
    assert!(dir.path().join("kept-0").is_dir());
}

#[test]
fn directories_samsa_did_not_create_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        create(&broker, "kept", 1);
        create(&broker, "dropped", 1);
        fill(&broker, "dropped", 10);
        broker.shutdown();
    }
    // A partition directory of a topic deleted while the broker was down
    // (samsa's: its partition.metadata names a topic id the image lacks)...
    let stale = dir.path().join("gone-0");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(
        stale.join("partition.metadata"),
        format!("version: 0\ntopic_id: {}\n", uuid::Uuid::new_v4()),
    )
    .unwrap();
    // ...and directories that only look like samsa's: an operator's copy, a
    // Kafka partition directory (base64 topic id), a "-delete" of another kind.
    let foreign = [
        ("backup-2024", None),
        (
            "dropped-7",
            Some("version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n"),
        ),
        ("old-logs-delete", None),
    ];
    for (name, metadata) in foreign {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("00000000000000000000.log"), b"precious").unwrap();
        if let Some(m) = metadata {
            std::fs::write(d.join("partition.metadata"), m).unwrap();
        }
    }
    let broker = open(dir.path());
    let left = wait_gone(dir.path(), |n| n.starts_with("gone-0"));
    assert!(
        left.is_empty(),
        "samsa's stale directory is removed: {left:?}"
    );
    for (name, _) in foreign {
        let log = dir.path().join(name).join("00000000000000000000.log");
        assert_eq!(
            std::fs::read(&log).unwrap(),
            b"precious",
            "{name} left alone"
        );
    }
    let image = broker.image();
    assert!(broker
        .partition(image.topic("kept").unwrap().id, 0)
        .is_some());
}

#[test]
fn a_second_broker_on_the_same_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    create(&first, "t", 1);
    let cfg = Arc::new(StaticConfig::default());
    let mut settings = BrokerSettings::from_config(&cfg).unwrap();
    settings.data_dir = dir.path().to_path_buf();
    settings.log_dirs = vec![dir.path().to_path_buf()];
    let err = match Broker::open(settings, cfg) {
        Ok(_) => panic!("a second broker opened the same data directory"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(err.contains("in use"), "{err}");
    first.shutdown();
    drop(first);
    let again = open(dir.path());
    assert!(
        again.image().topic("t").is_some(),
        "restarts once the first is gone"
    );
}
