//! In-process cluster tests: voters and observers on 127.0.0.1 ephemeral ports,
//! each test with its own directories, bounded waits, and a clean stop.
//!
//! Set `RUST_LOG=samsa_quorum=debug,openraft=info` to see what the nodes do;
//! run with `--nocapture` to see the measured election times.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use samsa_metadata::{ConfigResource, MetadataImage, MetadataRecord};
use samsa_quorum::{
    Committed, Observer, ObserverConfig, QuorumConfig, QuorumError, RaftQuorum, Subscription,
};
use tempfile::TempDir;
use tokio::net::TcpListener;

/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(30);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}

/// A distinct, recognisable record.
fn rec(i: u64) -> MetadataRecord {
    MetadataRecord::Config {
        resource: ConfigResource::BrokerDefault,
        name: format!("k{i:05}"),
        value: Some(format!("v{i}")),
    }
}

fn recs(range: std::ops::Range<u64>) -> Vec<MetadataRecord> {
    range.map(rec).collect()
}

/// A tiny deterministic PRNG for start orders (seed printed for replay).
struct Rng(u64);

impl Rng {
    fn from_time() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        println!("rng seed {seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

struct Cluster {
    dirs: BTreeMap<u64, TempDir>,
    addrs: BTreeMap<u64, SocketAddr>,
    reserved: BTreeMap<u64, TcpListener>,
    nodes: BTreeMap<u64, RaftQuorum>,
    tune: fn(&mut QuorumConfig),
    rng: Rng,
}

fn no_tuning(_: &mut QuorumConfig) {}

impl Cluster {
    /// `n` voters with reserved listeners; none started yet.
    async fn new(n: u64, tune: fn(&mut QuorumConfig)) -> Cluster {
        init_tracing();
        let mut dirs = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        let mut reserved = BTreeMap::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.insert(id, l.local_addr().unwrap());
            reserved.insert(id, l);
            dirs.insert(id, tempfile::tempdir().unwrap());
        }
        Cluster {
            dirs,
            addrs,
            reserved,
            nodes: BTreeMap::new(),
            tune,
            rng: Rng::from_time(),
        }
    }

    fn config(&self, id: u64) -> QuorumConfig {
        let mut c = QuorumConfig::new(
            id,
            self.addrs.clone(),
            self.addrs[&id],
            self.dirs[&id].path(),
        );
        c.election_timeout_ms_min = 500;
        c.election_timeout_ms_max = 1_000;
        c.heartbeat_interval_ms = 100;
        c.rpc_timeout_ms = 1_000;
        c.append_timeout_ms = 5_000;
        (self.tune)(&mut c);
        c
    }

    fn node(&self, id: u64) -> &RaftQuorum {
        &self.nodes[&id]
    }

    async fn start(&mut self, id: u64) {
        let config = self.config(id);
        let node = match self.reserved.remove(&id) {
            Some(listener) => RaftQuorum::start_with_listener(config, listener)
                .await
                .unwrap(),
            None => {
                // Rebinding a just-closed port can race with the OS; retry briefly.
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    match RaftQuorum::start(config.clone()).await {
                        Ok(n) => break n,
                        Err(QuorumError::Listen { .. }) if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(100)).await
                        }
                        Err(e) => panic!("start node {id}: {e}"),
                    }
                }
            }
        };
        self.nodes.insert(id, node);
    }

    /// Starts every voter not running, in random order with random gaps.
    async fn start_all_random(&mut self) -> Vec<u64> {
        let mut order: Vec<u64> = self
            .addrs
            .keys()
            .copied()
            .filter(|id| !self.nodes.contains_key(id))
            .collect();
        self.rng.shuffle(&mut order);
        println!("start order {order:?}");
        for id in &order {
            let gap = self.rng.next() % 300;
            tokio::time::sleep(Duration::from_millis(gap)).await;
            self.start(*id).await;
        }
        order
    }

    async fn stop(&mut self, id: u64) {
        if let Some(n) = self.nodes.remove(&id) {
            n.shutdown().await;
        }
    }

    async fn stop_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }

    /// Waits until every running node names the same running leader and that
    /// leader believes it leads.
    async fn leader(&self) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen: Vec<Option<u64>> = self.nodes.values().map(|n| n.leader()).collect();
            if let Some(Some(l)) = seen.first() {
                if seen.iter().all(|s| *s == Some(*l))
                    && self.nodes.get(l).is_some_and(|n| n.is_leader())
                {
                    return *l;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Appends on whoever leads, retrying through leader changes.
    async fn append(&self, records: Vec<MetadataRecord>) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let leader = self.leader().await;
            match self.node(leader).append(records.clone()).await {
                Ok(index) => return index,
                Err(e @ (QuorumError::NotLeader { .. } | QuorumError::Timeout { .. })) => {
                    assert!(Instant::now() < deadline, "append kept failing: {e}");
                }
                Err(e) => panic!("append: {e}"),
            }
        }
    }
}

/// Reads batches until `n` records arrived; a snapshot step is a test failure.
async fn read_batches(sub: &mut Subscription, n: usize) -> (Vec<u64>, Vec<MetadataRecord>) {
    let mut indexes = Vec::new();
    let mut records = Vec::new();
    while records.len() < n {
        match tokio::time::timeout(WAIT, sub.next()).await {
            Ok(Ok(Committed::Batch(b))) => {
                indexes.push(b.index);
                records.extend(b.records);
            }
            Ok(Ok(Committed::Snapshot(s))) => panic!("unexpected snapshot at {}", s.index),
            Ok(Err(e)) => panic!("subscription: {e}"),
            Err(_) => panic!("only {} of {n} records within {WAIT:?}", records.len()),
        }
    }
    (indexes, records)
}

/// Asserts nothing more arrives for a moment (no duplicates).
async fn expect_quiet(sub: &mut Subscription) {
    if let Ok(step) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        panic!("unexpected extra step: {step:?}");
    }
}

/// Something that yields committed steps.
enum Source<'a> {
    Sub(&'a mut Subscription),
    Obs(&'a mut Observer),
}

impl Source<'_> {
    async fn next(&mut self) -> Result<Committed, QuorumError> {
        match self {
            Source::Sub(s) => s.next().await,
            Source::Obs(o) => o.next().await,
        }
    }
}

/// Folds steps into an image until `done` holds; returns it and whether a
/// snapshot step was seen.
async fn read_image(
    mut source: Source<'_>,
    done: impl Fn(&MetadataImage) -> bool,
) -> (MetadataImage, bool) {
    let mut image = MetadataImage::default();
    let mut saw_snapshot = false;
    let deadline = Instant::now() + WAIT;
    while !done(&image) {
        let left = deadline.saturating_duration_since(Instant::now());
        let step = tokio::time::timeout(left, source.next())
            .await
            .expect("image did not complete in time")
            .expect("stream failed");
        saw_snapshot |= matches!(step, Committed::Snapshot(_));
        step.apply_to(&mut image);
    }
    (image, saw_snapshot)
}

fn has_keys(n: usize) -> impl Fn(&MetadataImage) -> bool {
    move |i| i.default_broker_configs.len() >= n
}

fn observer_config(addrs: &BTreeMap<u64, SocketAddr>) -> ObserverConfig {
    let mut c = ObserverConfig::new(addrs.clone());
    c.fetch_wait_ms = 200;
    c.rpc_timeout_ms = 2_000;
    c.retry_backoff_ms = 50;
    c
}

async fn observer_batches(obs: &mut Observer, n: usize) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    while records.len() < n {
        match tokio::time::timeout(WAIT, obs.next()).await {
            Ok(Ok(Committed::Batch(b))) => records.extend(b.records),
            Ok(Ok(Committed::Snapshot(s))) => panic!("unexpected snapshot at {}", s.index),
            Ok(Err(e)) => panic!("observer: {e}"),
            Err(_) => panic!("observer got only {} of {n} records", records.len()),
        }
    }
    records
}

// 1. Three voters started in random order elect exactly one leader; 100
//    records appended there reach every node's stream, in order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_one_leader_and_replicate_in_order() {
    let mut c = Cluster::new(3, no_tuning).await;
    let started = Instant::now();
    c.start_all_random().await;
    let leader = c.leader().await;
    println!("leader {leader} after {:?}", started.elapsed());
    let leaders: Vec<u64> = c
        .nodes
        .values()
        .filter(|n| n.is_leader())
        .map(|n| n.id())
        .collect();
    assert_eq!(leaders, vec![leader], "exactly one leader");
    let terms: Vec<u64> = c.nodes.values().map(|n| n.status().term).collect();
    assert!(
        terms.windows(2).all(|w| w[0] == w[1]),
        "one term: {terms:?}"
    );

    let mut subs: Vec<Subscription> = c.nodes.values().map(|n| n.subscribe()).collect();
    let t = Instant::now();
    for i in 0..100 {
        c.node(leader).append(vec![rec(i)]).await.unwrap();
    }
    println!("100 appends in {:?}", t.elapsed());
    let mut first_indexes = None;
    for sub in &mut subs {
        let (indexes, records) = read_batches(sub, 100).await;
        assert_eq!(records, recs(0..100));
        assert!(indexes.windows(2).all(|w| w[0] < w[1]));
        match &first_indexes {
            None => first_indexes = Some(indexes),
            Some(f) => assert_eq!(f, &indexes, "same log positions on every node"),
        }
        expect_quiet(sub).await;
    }
    c.stop_all().await;
}

// 2. A follower refuses appends and names the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_on_follower_is_not_leader() {
    let mut c = Cluster::new(3, no_tuning).await;
    c.start_all_random().await;
    let leader = c.leader().await;
    for id in c.addrs.keys().copied().filter(|id| *id != leader) {
        match c.node(id).append(vec![rec(0)]).await {
            Err(QuorumError::NotLeader { leader: Some(l) }) => assert_eq!(l, leader),
            other => panic!("follower {id}: expected NotLeader, got {other:?}"),
        }
    }
    assert!(matches!(
        c.node(leader).append(vec![]).await,
        Err(QuorumError::EmptyBatch)
    ));
    let mut sub = c.node(leader).subscribe();
    c.stop_all().await;
    let after = tokio::time::timeout(WAIT, sub.next()).await;
    assert!(
        matches!(after, Ok(Err(QuorumError::Shutdown(_)))),
        "a subscription ends when its quorum stops: {after:?}"
    );
}

// 3. Losing the leader elects a new one among the two others within a few
//    election timeouts; nothing committed is lost; the old leader rejoins from
//    its directory and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_and_rejoin() {
    let mut c = Cluster::new(3, no_tuning).await;
    c.start_all_random().await;
    let old = c.leader().await;
    for i in 0..20 {
        c.node(old).append(vec![rec(i)]).await.unwrap();
    }
    let killed = Instant::now();
    c.stop(old).await;
    let new = c.leader().await;
    let elapsed = killed.elapsed();
    println!(
        "leader {old} stopped; node {new} leads after {elapsed:?} (election timeout 500..1000 ms)"
    );
    assert_ne!(new, old);
    assert!(
        elapsed < Duration::from_secs(5),
        "election took {elapsed:?}"
    );

    for n in c.nodes.values() {
        let (_, records) = read_batches(&mut n.subscribe(), 20).await;
        assert_eq!(records, recs(0..20), "node {}", n.id());
    }
    for i in 20..40 {
        c.node(new).append(vec![rec(i)]).await.unwrap();
    }
    c.start(old).await;
    let mut sub = c.node(old).subscribe();
    let (_, records) = read_batches(&mut sub, 40).await;
    assert_eq!(records, recs(0..40));
    expect_quiet(&mut sub).await;
    c.stop_all().await;
}

// 4. With two of three voters down nothing commits; once one is back, appends
//    succeed, and every node sees one and the same committed sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_cannot_commit_and_nothing_is_lost() {
    let mut c = Cluster::new(3, |c| c.append_timeout_ms = 1_500).await;
    c.start_all_random().await;
    let leader = c.leader().await;
    for i in 0..10 {
        c.node(leader).append(vec![rec(i)]).await.unwrap();
    }
    let followers: Vec<u64> = c.addrs.keys().copied().filter(|id| *id != leader).collect();
    for f in &followers {
        c.stop(*f).await;
    }
    let before = *c.node(leader).committed().borrow();
    let t = Instant::now();
    let lonely = c.node(leader).append(vec![rec(100)]).await;
    println!(
        "append without a majority: {lonely:?} after {:?}",
        t.elapsed()
    );
    assert!(
        matches!(
            lonely,
            Err(QuorumError::Timeout { .. } | QuorumError::NotLeader { .. })
        ),
        "{lonely:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        *c.node(leader).committed().borrow(),
        before,
        "nothing committed without a majority"
    );

    c.start(followers[0]).await;
    c.append(vec![rec(101)]).await;
    c.start(followers[1]).await;

    let mut sequences = Vec::new();
    for n in c.nodes.values() {
        let mut sub = n.subscribe();
        let mut seq = Vec::new();
        while !seq.contains(&rec(101)) {
            let (_, r) = read_batches(&mut sub, 1).await;
            seq.extend(r);
        }
        expect_quiet(&mut sub).await;
        sequences.push((n.id(), seq));
    }
    let (_, first) = &sequences[0];
    for (id, seq) in &sequences {
        assert_eq!(seq, first, "node {id} sees the same committed sequence");
    }
    // Acknowledged records in order; the timed-out one at most once, before
    // the later append (its outcome was unknown, so it may have committed).
    let without_lonely: Vec<_> = first.iter().filter(|r| **r != rec(100)).cloned().collect();
    assert_eq!(without_lonely, [recs(0..10), vec![rec(101)]].concat());
    assert!(first.iter().filter(|r| **r == rec(100)).count() <= 1);
    println!(
        "timed-out append {} committed later",
        if first.contains(&rec(100)) {
            "was"
        } else {
            "was not"
        }
    );
    c.stop_all().await;
}

// 5. Five voters keep making progress with two down (the leader among them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_voters_survive_two_failures() {
    let mut c = Cluster::new(5, no_tuning).await;
    c.start_all_random().await;
    let leader = c.leader().await;
    for i in 0..10 {
        c.node(leader).append(vec![rec(i)]).await.unwrap();
    }
    let other = c.addrs.keys().copied().find(|id| *id != leader).unwrap();
    let t = Instant::now();
    c.stop(leader).await;
    c.stop(other).await;
    let new = c.leader().await;
    println!(
        "nodes {leader} and {other} stopped; node {new} leads after {:?}",
        t.elapsed()
    );
    for i in 10..20 {
        c.node(new).append(vec![rec(i)]).await.unwrap();
    }
    for n in c.nodes.values() {
        let mut sub = n.subscribe();
        let (_, records) = read_batches(&mut sub, 20).await;
        assert_eq!(records, recs(0..20), "node {}", n.id());
        expect_quiet(&mut sub).await;
    }
    c.stop_all().await;
}

// 6. All nodes restart from disk with the same committed sequence; a torn
//    tail in one node's log is cut off and the node recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_and_torn_tail() {
    let mut c = Cluster::new(3, no_tuning).await;
    c.start_all_random().await;
    let leader = c.leader().await;
    for i in 0..30 {
        c.node(leader).append(vec![rec(i)]).await.unwrap();
    }
    // Let every follower apply everything before stopping.
    for n in c.nodes.values() {
        read_batches(&mut n.subscribe(), 30).await;
    }
    c.stop_all().await;

    let torn = *c.addrs.keys().last().unwrap();
    let log = c.dirs[&torn].path().join("raft.log");
    let intact = std::fs::metadata(&log).unwrap().len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        // A frame header promising 200 bytes, and only 50 of them: a torn append.
        f.write_all(&200u32.to_be_bytes()).unwrap();
        f.write_all(&[0xab; 4]).unwrap();
        f.write_all(&[b'{'; 50]).unwrap();
    }

    c.start_all_random().await;
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        intact,
        "torn tail cut off"
    );
    c.leader().await;
    for n in c.nodes.values() {
        let mut sub = n.subscribe();
        let (_, records) = read_batches(&mut sub, 30).await;
        assert_eq!(records, recs(0..30), "node {} after restart", n.id());
    }
    c.append(recs(30..35)).await;
    for n in c.nodes.values() {
        let mut sub = n.subscribe();
        let (_, records) = read_batches(&mut sub, 35).await;
        assert_eq!(records, recs(0..35));
        expect_quiet(&mut sub).await;
    }
    c.stop_all().await;
}

// 7. Observers (non-voters) receive the full committed stream, also when
//    started late and across the loss of the voter they fetch from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_follows_the_committed_stream() {
    let mut c = Cluster::new(3, no_tuning).await;
    c.start_all_random().await;
    let mut early = Observer::new(observer_config(&c.addrs)).unwrap();
    let leader = c.leader().await;
    for i in 0..50 {
        c.node(leader).append(vec![rec(i)]).await.unwrap();
    }
    assert_eq!(observer_batches(&mut early, 50).await, recs(0..50));
    assert_eq!(early.leader(), Some(leader));

    let mut late = Observer::new(observer_config(&c.addrs)).unwrap();
    assert_eq!(observer_batches(&mut late, 50).await, recs(0..50));

    c.stop(leader).await;
    c.append(recs(50..60)).await;
    assert_eq!(observer_batches(&mut early, 10).await, recs(50..60));
    assert_eq!(observer_batches(&mut late, 10).await, recs(50..60));
    assert_ne!(early.leader(), Some(leader));

    // A broker that does not lead writes through the leader: a fresh observer
    // knows no leader yet and follows the NotLeader hints.
    let mut writer = Observer::new(observer_config(&c.addrs)).unwrap();
    let index = writer.append(vec![rec(60)]).await.unwrap();
    assert_eq!(writer.leader(), Some(c.leader().await));
    match writer.append_after(None, vec![rec(61)]).await {
        Err(QuorumError::Fenced { last_batch }) => assert_eq!(last_batch, Some(index)),
        other => panic!("expected Fenced, got {other:?}"),
    }
    writer
        .append_after(Some(index), vec![rec(62)])
        .await
        .unwrap();
    assert_eq!(
        observer_batches(&mut early, 2).await,
        vec![rec(60), rec(62)]
    );
    c.stop_all().await;
}

// Snapshots bound the log: a voter that was down while the log was compacted
// catches up by snapshot, a fresh observer starts from one, and a full restart
// rebuilds every node from its snapshot plus log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_voter_and_observer_catch_up_by_snapshot() {
    let mut c = Cluster::new(3, |c| {
        c.snapshot_log_entries = 20;
        c.snapshot_kept_log_entries = 5;
    })
    .await;
    c.start_all_random().await;
    let leader = c.leader().await;
    let lagging = *c.addrs.keys().find(|id| **id != leader).unwrap();
    c.append(vec![rec(0)]).await;
    c.stop(lagging).await;
    for i in 1..100 {
        c.node(leader).append(vec![rec(i)]).await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    while c.node(leader).status().purged_index.unwrap_or(0) < 50 {
        assert!(
            Instant::now() < deadline,
            "no compaction: {:?}",
            c.node(leader).status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reference = {
        let mut sub = c.node(leader).subscribe();
        let (image, saw) = read_image(Source::Sub(&mut sub), has_keys(100)).await;
        assert!(
            saw,
            "the leader's own log was compacted, so it starts from a snapshot"
        );
        image
    };
    assert_eq!(reference.records_applied, 100);

    c.start(lagging).await;
    let mut sub = c.node(lagging).subscribe();
    let (image, saw) = read_image(Source::Sub(&mut sub), has_keys(100)).await;
    assert!(saw, "the lagging voter was caught up by a snapshot");
    assert_eq!(
        image.default_broker_configs,
        reference.default_broker_configs
    );
    assert_eq!(image.records_applied, 100);
    println!(
        "lagging voter status after catch-up: {:?}",
        c.node(lagging).status()
    );

    let mut obs = Observer::new(observer_config(&c.addrs)).unwrap();
    let (image, saw) = read_image(Source::Obs(&mut obs), has_keys(100)).await;
    assert!(saw, "a fresh observer starts from a snapshot");
    assert_eq!(
        image.default_broker_configs,
        reference.default_broker_configs
    );
    assert_eq!(image.records_applied, 100);

    c.stop_all().await;
    c.start_all_random().await;
    c.append(vec![rec(100)]).await;
    for n in c.nodes.values() {
        let mut sub = n.subscribe();
        let (image, _) = read_image(Source::Sub(&mut sub), has_keys(101)).await;
        assert_eq!(image.default_broker_configs.len(), 101, "node {}", n.id());
        assert_eq!(image.records_applied, 101);
    }
    c.stop_all().await;
}

// Conditional appends: a batch validated against a stale image is refused and
// never shows up in the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_appends_never_commit() {
    let mut c = Cluster::new(3, no_tuning).await;
    c.start_all_random().await;
    let leader = c.leader().await;
    let node = c.node(leader);
    let first = node.append_after(None, vec![rec(0)]).await.unwrap();
    let second = node.append_after(Some(first), vec![rec(1)]).await.unwrap();
    match node.append_after(Some(first), vec![rec(2)]).await {
        Err(QuorumError::Fenced { last_batch }) => assert_eq!(last_batch, Some(second)),
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert_eq!(node.last_batch(), Some(second));
    node.append(vec![rec(3)]).await.unwrap();
    for n in c.nodes.values() {
        let mut sub = n.subscribe();
        let (_, records) = read_batches(&mut sub, 3).await;
        assert_eq!(records, vec![rec(0), rec(1), rec(3)]);
        expect_quiet(&mut sub).await;
    }
    c.stop_all().await;
}

// A node restarted with a different voter set is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_voter_set_is_refused() {
    let mut c = Cluster::new(3, no_tuning).await;
    c.start_all_random().await;
    c.leader().await;
    c.append(vec![rec(0)]).await;
    c.stop_all().await;
    let mut config = c.config(1);
    config.voters.remove(&3);
    config.listen = "127.0.0.1:0".parse().unwrap();
    match RaftQuorum::start(config).await {
        Err(QuorumError::VoterMismatch { configured, stored }) => {
            assert_eq!(configured, vec![1, 2]);
            assert_eq!(stored, vec![1, 2, 3]);
        }
        Err(e) => panic!("expected VoterMismatch, got {e}"),
        Ok(_) => panic!("expected VoterMismatch, got a running node"),
    }
}

/// One raw frame as the wire module lays it out.
fn raw_frame(id: u64, json: &[u8]) -> Vec<u8> {
    let mut out = ((12 + json.len()) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json);
    out
}

async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    // The server answers and keeps the connection, or closes it; either way
    // stop after a short while.
    let _ = tokio::time::timeout(Duration::from_millis(500), s.read_to_end(&mut out)).await;
    out
}

// A single voter is a quorum of one; bad bytes on its listener only ever
// affect their own connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_voter_and_bad_input_on_the_listener() {
    let mut c = Cluster::new(1, no_tuning).await;
    c.start(1).await;
    assert_eq!(c.leader().await, 1);
    let addr = c.addrs[&1];

    // Over the frame limit: closed without an answer.
    let answer = raw_exchange(addr, &u32::MAX.to_be_bytes()).await;
    assert!(answer.is_empty());
    // Not JSON, or for another node: refused, with the request id echoed.
    for (id, json) in [
        (7u64, &b"not json"[..]),
        (
            8,
            br#"{"to":9,"body":{"Fetch":{"next":0,"wait_ms":0,"bytes_max":10}}}"#,
        ),
    ] {
        let answer = raw_exchange(addr, &raw_frame(id, json)).await;
        assert!(answer.len() > 16, "an answer for request {id}");
        assert_eq!(u64::from_be_bytes(answer[4..12].try_into().unwrap()), id);
        assert!(String::from_utf8_lossy(&answer[16..]).contains("Refused"));
    }
    // JSON length past the frame end: closed.
    let mut bad = raw_frame(9, b"{}");
    bad[12..16].copy_from_slice(&1000u32.to_be_bytes());
    assert!(raw_exchange(addr, &bad).await.is_empty());

    for i in 0..5 {
        c.node(1).append(vec![rec(i)]).await.unwrap();
    }
    let mut sub = c.node(1).subscribe();
    assert_eq!(read_batches(&mut sub, 5).await.1, recs(0..5));
    c.stop_all().await;
}

/// Callers that wait for commits on tokio's blocking pool (as a broker's
/// synchronous controller calls do) can fill it: the quorum's own disk I/O
/// must not need a pool thread, or the commits they wait for never get
/// written. Before, the Raft log was written on the blocking pool: with the
/// pool full of waiters every append here timed out.
#[test]
fn commits_complete_while_waiters_fill_the_blocking_pool() {
    const POOL: usize = 4;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(POOL)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = Cluster::new(1, no_tuning).await;
        c.start(1).await;
        assert_eq!(c.leader().await, 1);
        let node = std::sync::Arc::new(c.nodes.remove(&1).unwrap());
        let handle = tokio::runtime::Handle::current();
        let waiters: Vec<_> = (0..POOL as u64 * 4)
            .map(|i| {
                let node = node.clone();
                let handle = handle.clone();
                tokio::task::spawn_blocking(move || handle.block_on(node.append(vec![rec(i)])))
            })
            .collect();
        let mut committed = Vec::new();
        for w in waiters {
            committed.push(tokio::time::timeout(WAIT, w).await.unwrap().unwrap());
        }
        let failed: Vec<_> = committed.iter().filter(|r| r.is_err()).collect();
        assert!(failed.is_empty(), "appends failed: {failed:?}");
        let mut sub = node.subscribe();
        let (_, records) = read_batches(&mut sub, POOL * 4).await;
        assert_eq!(records.len(), POOL * 4);
        if let Ok(node) = std::sync::Arc::try_unwrap(node) {
            node.shutdown().await;
        }
    });
}
