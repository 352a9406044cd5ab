//! Partition replication (Kafka's ReplicaManager and ReplicaFetcher roles).
//!
//! * **Roles.** After every metadata change [`crate::Broker::reconcile`] gives
//!   each hosted partition its role from the image
//!   ([`crate::partition::Partition::apply_image`]): leader, follower of some
//!   broker, or offline.
//! * **Followers** run one fetcher task per leader broker ([`fetcher`]). A
//!   follower that enters a new leader epoch first truncates a divergent
//!   suffix (KIP-101/279: OffsetForLeaderEpoch, repeated until both sides name
//!   the same epoch), then sends Fetch with its `replica_id` from its log end,
//!   appends what comes back byte for byte
//!   ([`samsa_storage::PartitionLog::append_replicated`]) and takes the
//!   leader's high watermark.
//! * **Leaders** record each follower's fetch offset as its log end, move the
//!   high watermark to the smallest log end in the ISR, and ask the controller
//!   to change the ISR: a follower joins once it reached the high watermark and
//!   the start of the current leader epoch; an ISR member that has not caught
//!   up for `replica.lag.time.max.ms` is removed ([`run`]'s periodic check).
//!   ISR changes are metadata records (AlterPartition through the quorum),
//!   fenced on the leader and partition epochs.
//! * **acks=all** waits for the high watermark ([`wait_replicated`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName,
};
use samsa_client::connection::{Connection, ConnectionConfig};
use samsa_model::{BrokerId, LeaderEpoch, Offset};
use tokio::sync::watch;

use crate::broker::Broker;
use crate::handlers::produce::now_ms;
use crate::handlers::s;
use crate::partition::{AppendWait, EpochAnswer, Partition, TruncationStep};
use crate::purgatory::Watch;

/// How often leaders look for lagging ISR members and new fetchers are started.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Rounds of OffsetForLeaderEpoch before a follower gives up for this pass.
const TRUNCATION_ROUNDS_MAX: usize = 16;
/// The Fetch version replica fetchers send (v15: topic ids, and the
/// replica's broker epoch in `ReplicaState`, KIP-903).
const FETCH_VERSION: i16 = 15;
/// How long a partition the leader refused is left out of fetches.
const PAUSE: Duration = Duration::from_millis(100);

/// Partitions left out of fetches: their epoch and until when.
type Paused = HashMap<(samsa_model::TopicId, i32), (LeaderEpoch, tokio::time::Instant)>;

fn config_ms(broker: &Broker, key: &str, default: i64) -> i64 {
    broker.config().get_i64(key).unwrap_or(default).max(0)
}

/// The replica manager's background work: starts fetchers for the leaders
/// this broker follows, shrinks ISRs of partitions it leads, and checkpoints
/// high watermarks. Runs until `shutdown`.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut last_checkpoint = tokio::time::Instant::now();
    // The checkpoint in progress, if any: checkpoints write and fsync a file
    // per partition, which can take long while the disk is busy with the
    // log's own writeback, so they run on a blocking thread, one at a time,
    // never on the runtime's workers (blocking one of those stalls the
    // connections it serves; measured: 100 B produce at 1.0 M instead of
    // 1.8 M records/s with a checkpoint every 200 ms).
    let mut checkpoint: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if let Some(running) = checkpoint.take() {
                    let _ = running.await;
                }
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || checkpoint_all(&b)).await;
                return;
            }
            _ = broker.roles_changed.notified() => {}
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
        start_fetchers(&broker, &shutdown);
        shrink_isrs(&broker);
        crate::dir_report::report_in_background(&broker);
        let every = config_ms(
            &broker,
            "replica.high.watermark.checkpoint.interval.ms",
            5000,
        );
        if last_checkpoint.elapsed() >= Duration::from_millis(every as u64)
            && checkpoint.as_ref().is_none_or(|c| c.is_finished())
        {
            last_checkpoint = tokio::time::Instant::now();
            let b = broker.clone();
            checkpoint = Some(tokio::task::spawn_blocking(move || checkpoint_all(&b)));
        }
    }
}

/// One high-watermark checkpoint round over every online partition (Kafka's
/// replication-offset checkpoint); a failure that is a directory failure
/// takes that log directory offline ([`crate::dir_failure`]).
pub fn checkpoint_all(broker: &Broker) {
    for p in broker.all_partitions() {
        if p.is_offline() {
            continue;
        }
        if let Err(e) = p.checkpoint_high_watermark() {
            tracing::warn!(topic = %p.topic, partition = p.index.get(), error = %e, "checkpointing the high watermark");
            crate::dir_failure::check_error(broker, &p, &e);
        }
    }
}

fn start_fetchers(broker: &Arc<Broker>, shutdown: &watch::Receiver<bool>) {
    let leaders: HashSet<BrokerId> = broker
        .all_partitions()
        .iter()
        .filter_map(|p| p.follower_of().map(|(l, _, _)| l))
        .collect();
    let mut running = broker.fetchers();
    for leader in leaders {
        if running.insert(leader) {
            tracing::info!(leader = leader.get(), "starting a replica fetcher");
            tokio::spawn(fetcher(broker.clone(), leader, shutdown.clone()));
        }
    }
}

fn shrink_isrs(broker: &Arc<Broker>) {
    let lag_max = config_ms(broker, "replica.lag.time.max.ms", 30_000);
    let now = now_ms().get();
    for p in broker.all_partitions() {
        if let Some(isr) = p.lagging_isr(now, lag_max) {
            tracing::info!(topic = %p.topic, partition = p.index.get(), ?isr, "shrinking the ISR");
            submit_isr(broker, &p, isr);
        }
    }
}

/// Sends an ISR change for `part` to the controller (one in flight per
/// partition, batched with the other partitions' changes, see
/// [`crate::alter_isr`]); the new ISR takes effect when the metadata change
/// comes back. From the moment it is proposed, an expansion counts for the
/// high watermark (KIP-497's maximal ISR), a shrink only once committed.
pub fn submit_isr(broker: &Arc<Broker>, part: &Arc<Partition>, isr: Vec<BrokerId>) {
    crate::alter_isr::submit(broker, part, isr);
}

/// One acks=all wait: the partition, the append's last offset, the
/// `min.insync.replicas` it needs and the leader epoch it was appended in.
pub type ReplicationWait = (Arc<Partition>, i64, usize, LeaderEpoch);

/// Waits until the high watermark of each partition passes its offset while
/// this broker still leads it in the epoch of the append. Per partition:
/// `None` = replicated, `Some(error)` otherwise (leadership lost or moved to
/// another epoch, ISR below `min.insync.replicas`, or timed out).
pub async fn wait_replicated(
    broker: &Broker,
    waits: &[ReplicationWait],
    timeout: Duration,
) -> Vec<Option<ResponseError>> {
    let watch = broker.hw_watch(waits.iter().map(|w| &w.0));
    wait_replicated_on(watch, waits, timeout).await
}

/// [`wait_replicated`] on a [`Broker::hw_watch`] of the waited partitions,
/// taken before their high watermarks were last checked.
pub async fn wait_replicated_on(
    watch: Watch,
    waits: &[ReplicationWait],
    timeout: Duration,
) -> Vec<Option<ResponseError>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut results: Vec<Option<Option<ResponseError>>> = vec![None; waits.len()];
    loop {
        for (i, (part, last_offset, min_isr, epoch)) in waits.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            results[i] = match part.append_wait(*epoch, *last_offset, *min_isr) {
                AppendWait::Pending => None,
                AppendWait::Replicated => Some(None),
                AppendWait::NotEnoughReplicas => {
                    Some(Some(ResponseError::NotEnoughReplicasAfterAppend))
                }
                AppendWait::NotLeader => Some(Some(ResponseError::NotLeaderOrFollower)),
            };
        }
        if results.iter().all(Option::is_some) {
            break;
        }
        if tokio::time::timeout_at(deadline, watch.changed())
            .await
            .is_err()
        {
            break;
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Some(ResponseError::RequestTimedOut)))
        .collect()
}

/// The address followers use to reach `leader`: its endpoint on
/// `inter.broker.listener.name` (its first endpoint when unset).
pub(crate) fn leader_address(broker: &Broker, leader: BrokerId) -> Option<String> {
    let image = broker.image();
    let info = image.brokers.get(&leader)?;
    let name = broker
        .config()
        .get("inter.broker.listener.name")
        .map(str::to_string);
    let (host, port) = match name.as_deref().and_then(|n| info.endpoint(n)) {
        Some(e) => (e.host.clone(), e.port),
        None => (info.host.clone(), info.port),
    };
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// Follows every partition led by `leader` until none is left (or shutdown).
async fn fetcher(broker: Arc<Broker>, leader: BrokerId, mut shutdown: watch::Receiver<bool>) {
    let me = broker.settings.node_id;
    let mut conn: Option<Arc<Connection>> = None;
    // Partitions paused after an error, until their leader epoch changes or
    // the retry time comes (the leader may just not have the same metadata
    // yet).
    let mut paused: Paused = HashMap::new();
    let mut roles = broker.roles_version.subscribe();
    loop {
        if *shutdown.borrow() {
            break;
        }
        // Marked seen before the partitions are read, so a role change from
        // here on is seen by the fetch below (see `FetchEnd::Abandoned`).
        roles.borrow_and_update();
        let parts: Vec<(Arc<Partition>, LeaderEpoch, bool)> = broker
            .all_partitions()
            .into_iter()
            .filter_map(|p| match p.follower_of() {
                Some((l, epoch, truncated)) if l == leader => Some((p, epoch, truncated)),
                _ => None,
            })
            .collect();
        if parts.is_empty() {
            let mut running = broker.fetchers();
            // Re-check under the lock: a partition may just have started
            // following this leader.
            let again = broker
                .all_partitions()
                .iter()
                .any(|p| p.follower_of().is_some_and(|(l, _, _)| l == leader));
            if !again {
                running.remove(&leader);
                tracing::info!(leader = leader.get(), "replica fetcher stopped");
                return;
            }
            continue;
        }
        let now = tokio::time::Instant::now();
        paused.retain(|k, (e, until)| {
            *until > now
                && parts
                    .iter()
                    .any(|(p, epoch, _)| (p.topic_id, p.index.get()) == *k && epoch == e)
        });
        let active: Vec<&(Arc<Partition>, LeaderEpoch, bool)> = parts
            .iter()
            .filter(|(p, _, _)| !paused.contains_key(&(p.topic_id, p.index.get())))
            .collect();
        let backoff = Duration::from_millis(
            config_ms(&broker, "replica.fetch.backoff.ms", 1000).clamp(10, 1000) as u64,
        );
        if active.is_empty() {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = roles.changed() => {}
                _ = tokio::time::sleep(PAUSE) => {}
            }
            continue;
        }
        let connection = match conn.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => c.clone(),
            None => {
                let Some(addr) = leader_address(&broker, leader) else {
                    tokio::time::sleep(backoff).await;
                    continue;
                };
                let config = Arc::new(ConnectionConfig {
                    client_id: format!("samsa-replica-{}", me.get()),
                    connect_timeout: Duration::from_secs(3),
                    request_timeout: Duration::from_millis(
                        config_ms(&broker, "replica.socket.timeout.ms", 30_000).max(1000) as u64,
                    ),
                    ..ConnectionConfig::default()
                });
                match Connection::connect(&addr, config).await {
                    Ok(c) => {
                        conn = Some(c.clone());
                        c
                    }
                    Err(e) => {
                        tracing::debug!(leader = leader.get(), %addr, error = %e, "connecting to the leader");
                        tokio::select! {
                            _ = shutdown.changed() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        continue;
                    }
                }
            }
        };
        let untruncated: Vec<(Arc<Partition>, LeaderEpoch)> = active
            .iter()
            .filter(|(_, _, t)| !t)
            .map(|(p, e, _)| (p.clone(), *e))
            .collect();
        if !untruncated.is_empty() {
            if let Err(e) = truncate(&broker, &connection, leader, &untruncated, &mut paused).await
            {
                tracing::info!(leader = leader.get(), error = %e, "truncation round failed");
                conn = None;
                tokio::time::sleep(backoff).await;
            }
            continue;
        }
        let mut wait_ms = config_ms(&broker, "replica.fetch.wait.max.ms", 500).min(30_000);
        // A paused partition rejoins when its pause ends: the long poll ends
        // by then, so it is not left out for a whole replica.fetch.wait.max.ms.
        if let Some(until) = paused.values().map(|(_, until)| *until).min() {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            wait_ms = wait_ms.min(left.as_millis() as i64);
        }
        let request = fetch_request(&broker, &active, wait_ms);
        let fetching: HashSet<PartitionEpoch> = active
            .iter()
            .map(|(p, e, _)| (p.topic_id, p.index.get(), *e))
            .collect();
        let send = tokio::time::timeout(
            Duration::from_millis(wait_ms as u64 + 3000),
            connection.send_version(&request, FETCH_VERSION),
        );
        tokio::pin!(send);
        let end = loop {
            tokio::select! {
                _ = shutdown.changed() => break FetchEnd::Shutdown,
                r = &mut send => break FetchEnd::Answered(r),
                _ = roles.changed() => {
                    roles.borrow_and_update();
                    if follows_beyond(&broker, leader, &fetching, &paused) {
                        break FetchEnd::Abandoned;
                    }
                }
            }
        };
        let sent = match end {
            FetchEnd::Shutdown => break,
            FetchEnd::Answered(r) => r,
            FetchEnd::Abandoned => {
                // The leader answers requests on a connection in order, so a
                // new fetch would queue behind the parked one: drop the
                // connection (and the parked fetch's answer) and fetch again
                // at once. Fetches are idempotent; nothing was applied.
                tracing::debug!(
                    leader = leader.get(),
                    "new partitions to follow: abandoning the parked fetch"
                );
                conn = None;
                continue;
            }
        };
        let response = match sent {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(leader = leader.get(), error = %e, "replica fetch failed");
                conn = None;
                tokio::time::sleep(backoff).await;
                continue;
            }
            Err(_) => {
                tracing::info!(
                    leader = leader.get(),
                    "replica fetch timed out; reconnecting"
                );
                conn = None;
                continue;
            }
        };
        if response.error_code != 0 {
            tracing::info!(
                leader = leader.get(),
                code = response.error_code,
                "replica fetch refused"
            );
            tokio::time::sleep(backoff).await;
            continue;
        }
        let by_key: HashMap<(uuid::Uuid, i32), &(Arc<Partition>, LeaderEpoch, bool)> = active
            .iter()
            .map(|x| ((x.0.topic_id.0, x.0.index.get()), *x))
            .collect();
        for t in response.responses {
            for pd in t.partitions {
                let Some((part, epoch, _)) = by_key.get(&(t.topic_id, pd.partition_index)) else {
                    continue;
                };
                handle_fetched(part, leader, *epoch, pd, &mut paused);
            }
        }
    }
    broker.fetchers().remove(&leader);
}

/// A partition of a fetch and the leader epoch it was fetched in.
type PartitionEpoch = (samsa_model::TopicId, i32, LeaderEpoch);

/// How a fetch sent to the leader ended.
enum FetchEnd<R> {
    Shutdown,
    Answered(R),
    /// This broker started following `leader` for a partition (or a new
    /// epoch of one) the parked fetch does not carry. Waiting for the park to
    /// end (up to `replica.fetch.wait.max.ms`) would hold every acks=all
    /// produce to that partition as long: a new topic, or a partition whose
    /// leadership just moved here.
    Abandoned,
}

/// Whether this broker now follows `leader` for a partition or epoch that
/// neither `fetching` nor `paused` holds.
fn follows_beyond(
    broker: &Broker,
    leader: BrokerId,
    fetching: &HashSet<PartitionEpoch>,
    paused: &Paused,
) -> bool {
    broker.all_partitions().iter().any(|p| {
        p.follower_of().is_some_and(|(l, epoch, _)| {
            let key = (p.topic_id, p.index.get());
            l == leader
                && !fetching.contains(&(key.0, key.1, epoch))
                && paused.get(&key).is_none_or(|(e, _)| *e != epoch)
        })
    })
}

fn fetch_request(
    broker: &Broker,
    parts: &[&(Arc<Partition>, LeaderEpoch, bool)],
    wait_ms: i64,
) -> FetchRequest {
    let partition_max =
        config_ms(broker, "replica.fetch.max.bytes", 1_048_576).clamp(1, i32::MAX as i64);
    let response_max =
        config_ms(broker, "replica.fetch.response.max.bytes", 10_485_760).clamp(1, i32::MAX as i64);
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (p, epoch, _) in parts {
        let fp = FetchPartition::default()
            .with_partition(p.index.get())
            .with_current_leader_epoch(epoch.get())
            .with_fetch_offset(p.log().log_end_offset().get())
            .with_last_fetched_epoch(p.log().latest_epoch().map_or(-1, |e| e.get()))
            .with_log_start_offset(p.log().log_start_offset().get())
            .with_partition_max_bytes(partition_max as i32);
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id.0) {
            Some(t) => t.partitions.push(fp),
            None => topics.push(
                FetchTopic::default()
                    .with_topic_id(p.topic_id.0)
                    .with_partitions(vec![fp]),
            ),
        }
    }
    // v15 (KIP-903): the follower names its broker epoch, which the leader
    // puts in the ISR additions it proposes; the controller refuses one
    // from an earlier registration of this broker.
    let epoch = broker
        .broker_epoch
        .load(std::sync::atomic::Ordering::Relaxed);
    FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(WireBrokerId(broker.settings.node_id.get()))
                .with_replica_epoch(epoch),
        )
        .with_max_wait_ms(wait_ms as i32)
        .with_min_bytes(
            config_ms(broker, "replica.fetch.min.bytes", 1).clamp(0, i32::MAX as i64) as i32,
        )
        .with_max_bytes(response_max as i32)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// Applies one partition's fetch response, built as follower of `(leader,
/// epoch)`, under the partition's state lock, and only if the partition
/// still follows that leader in that epoch: a response that comes back after
/// a role or epoch change is dropped (its data, its high watermark and its
/// log start alike).
fn handle_fetched(
    part: &Arc<Partition>,
    leader: BrokerId,
    epoch: LeaderEpoch,
    pd: kafka_protocol::messages::fetch_response::PartitionData,
    paused: &mut Paused,
) {
    let key = (part.topic_id, part.index.get());
    let applied = part.follower_apply(leader, epoch, |st, log| {
        match ResponseError::try_from_code(pd.error_code) {
            None => {
                let records: Bytes = pd.records.clone().unwrap_or_default();
                if !records.is_empty() {
                    match log.append_replicated(&records, now_ms()) {
                        // The log records the producer state of the batches it stores.
                        Ok(_) => {}
                        Err(e) if crate::disk::disk_full_path(&e).is_some() => {
                            // Logged (rate-limited) with the path and free
                            // space; the log undid the partial write, so the
                            // same fetch is retried after a pause and
                            // replication resumes once space is freed.
                            crate::disk::note_storage_error(&e);
                            paused.insert(key, (epoch, tokio::time::Instant::now() + PAUSE));
                            return;
                        }
                        Err(e) => {
                            tracing::error!(topic = %part.topic, partition = part.index.get(), error = %e, "appending replicated batches; truncating again");
                            st.fetch_diverged(leader, epoch);
                            return;
                        }
                    }
                }
                if pd.log_start_offset > log.log_start_offset().get() {
                    let to = Offset(pd.log_start_offset.min(log.log_end_offset().get()));
                    if let Err(e) = log.delete_records_before(to) {
                        tracing::warn!(topic = %part.topic, partition = part.index.get(), error = %e, "following the leader's log start");
                    }
                }
                st.follower_learned_hw(
                    leader,
                    epoch,
                    Offset(pd.high_watermark),
                    log.log_end_offset(),
                );
            }
            Some(ResponseError::OffsetOutOfRange) => {
                let end = log.log_end_offset().get();
                if pd.log_start_offset > end {
                    tracing::info!(topic = %part.topic, partition = part.index.get(), leader_log_start = pd.log_start_offset, "behind the leader's log start: restarting the log there");
                    if let Err(e) = log.reset_to(Offset(pd.log_start_offset)) {
                        tracing::error!(error = %e, "restarting the log");
                    }
                } else {
                    st.fetch_diverged(leader, epoch);
                }
            }
            Some(e) => {
                tracing::debug!(topic = %part.topic, partition = part.index.get(), error = ?e, "replica fetch error; waiting for new metadata");
                paused.insert(key, (epoch, tokio::time::Instant::now() + PAUSE));
            }
        }
    });
    if applied.is_none() {
        tracing::debug!(topic = %part.topic, partition = part.index.get(), leader = leader.get(), epoch = epoch.get(), "dropping a fetch response for an earlier role or epoch");
    }
}

#[derive(Debug, thiserror::Error)]
enum TruncateError {
    #[error("{0}")]
    Client(#[from] samsa_client::ClientError),
    #[error("storage: {0}")]
    Storage(#[from] samsa_storage::StorageError),
}

/// KIP-279 truncation for partitions that just entered a leader epoch as
/// followers of `leader`: ask the leader where our latest epoch ends, cut
/// there, and repeat with an earlier epoch while the leader answers with an
/// epoch we do not have. Each answer is applied under the partition's state
/// lock and only while it still follows `leader` in the epoch the request
/// was built for ([`Partition::apply_epoch_answer`]).
async fn truncate(
    broker: &Broker,
    conn: &Connection,
    leader: BrokerId,
    parts: &[(Arc<Partition>, LeaderEpoch)],
    paused: &mut Paused,
) -> Result<(), TruncateError> {
    // Per partition: the epoch to ask about next (None = done).
    let mut asking: Vec<Option<LeaderEpoch>> = parts
        .iter()
        .map(|(p, epoch)| match p.start_truncation(leader, *epoch) {
            TruncationStep::Ask(e) => Some(e),
            TruncationStep::Stale | TruncationStep::Done { .. } => None,
        })
        .collect();
    for _round in 0..TRUNCATION_ROUNDS_MAX {
        let pending: Vec<usize> = (0..parts.len()).filter(|i| asking[*i].is_some()).collect();
        if pending.is_empty() {
            return Ok(());
        }
        let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
        for &i in &pending {
            let (p, epoch) = &parts[i];
            let op = OffsetForLeaderPartition::default()
                .with_partition(p.index.get())
                .with_current_leader_epoch(epoch.get())
                .with_leader_epoch(asking[i].map_or(-1, |e| e.get()));
            match topics.iter_mut().find(|t| t.topic.0.as_str() == p.topic) {
                Some(t) => t.partitions.push(op),
                None => topics.push(
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(s(p.topic.clone())))
                        .with_partitions(vec![op]),
                ),
            }
        }
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(WireBrokerId(broker.settings.node_id.get()))
            .with_topics(topics);
        let response = conn.send_version(&request, 4).await?;
        let mut answered: HashMap<(String, i32), (i16, i32, i64)> = HashMap::new();
        for t in response.topics {
            for p in t.partitions {
                answered.insert(
                    (t.topic.0.to_string(), p.partition),
                    (p.error_code, p.leader_epoch, p.end_offset),
                );
            }
        }
        for &i in &pending {
            let (p, epoch) = &parts[i];
            let Some(&(code, leader_epoch, end_offset)) =
                answered.get(&(p.topic.clone(), p.index.get()))
            else {
                continue;
            };
            if code != 0 {
                tracing::debug!(topic = %p.topic, partition = p.index.get(), code, "OffsetForLeaderEpoch refused; waiting for new metadata");
                paused.insert(
                    (p.topic_id, p.index.get()),
                    (*epoch, tokio::time::Instant::now() + PAUSE),
                );
                asking[i] = None;
                continue;
            }
            let answer = EpochAnswer {
                leader_epoch: LeaderEpoch(leader_epoch),
                end_offset: Offset(end_offset),
            };
            asking[i] = match p.apply_epoch_answer(leader, *epoch, answer)? {
                TruncationStep::Ask(e) => Some(e),
                TruncationStep::Done { cut } => {
                    if let Some((from, to)) = cut {
                        tracing::info!(topic = %p.topic, partition = p.index.get(), from = from.get(), to = to.get(), "truncated a divergent log suffix");
                    }
                    None
                }
                TruncationStep::Stale => {
                    tracing::debug!(topic = %p.topic, partition = p.index.get(), "dropping an OffsetForLeaderEpoch answer for an earlier role or epoch");
                    None
                }
            };
        }
    }
    Ok(())
}
