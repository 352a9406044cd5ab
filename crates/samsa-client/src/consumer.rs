//! A consumer: either assigned partitions (each from an offset, the earliest,
//! the latest, or a timestamp) or a member of a classic consumer group
//! (JoinGroup/SyncGroup with the "consumer" protocol type and the "range"
//! assignor, Heartbeat in the background, OffsetFetch for starting positions,
//! OffsetCommit, LeaveGroup on close).
//!
//! `poll` fetches from each partition leader (Fetch without sessions), checks
//! every batch's CRC, decodes records with a bounded decompressed size, skips
//! control batches, and in `read_committed` mode drops the records of aborted
//! transactions using the aborted-transaction list of the response.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    fetch_request, join_group_request, leave_group_request, sync_group_request, ApiKey, BrokerId,
    FetchRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use samsa_model::batch::{self, BatchIter};

use crate::admin::{commit_offsets, fetch_committed, Admin, OffsetQuery, Tp};
use crate::client::{codes, Client};
use crate::error::ClientError;
use crate::group_protocol::{range_assign, Assignment, Subscription};

/// The last Fetch version that names topics (v13 and later name them by
/// id); the consumer's requests carry names.
const FETCH_BY_NAME_VERSION_MAX: i16 = 12;

/// Where to start reading a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    Offset(i64),
    /// The first record with a timestamp at or after this (ms since epoch).
    Timestamp(i64),
}

/// Consumer settings.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub group_id: Option<String>,
    /// 0 = read_uncommitted, 1 = read_committed.
    pub isolation_level: i8,
    /// Where to start when a group has no committed offset, or after
    /// OFFSET_OUT_OF_RANGE.
    pub auto_offset_reset: OffsetSpec,
    pub fetch_max_wait: Duration,
    pub fetch_min_bytes: i32,
    pub fetch_max_bytes: i32,
    pub partition_max_bytes: i32,
    /// Largest decompressed size of one batch.
    pub batch_decompressed_bytes_max: usize,
    /// Decoded record bytes one `poll` may hold; batches beyond it are left
    /// for the next poll (fetched again), so a response of highly compressed
    /// batches cannot make a poll hold more than this plus one batch.
    pub poll_decoded_bytes_max: usize,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub heartbeat_interval: Duration,
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            isolation_level: 0,
            auto_offset_reset: OffsetSpec::Latest,
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            batch_decompressed_bytes_max: 64 * 1024 * 1024,
            poll_decoded_bytes_max: 256 * 1024 * 1024,
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 60_000,
            heartbeat_interval: Duration::from_secs(3),
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
        }
    }
}

/// A record as consumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// ms since epoch.
    pub timestamp: i64,
    /// True when the timestamp is the broker's append time.
    pub log_append_time: bool,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

struct GroupState {
    group_id: String,
    topics: Vec<String>,
    member_id: String,
    generation: i32,
    coordinator: i32,
    rejoin: Arc<AtomicBool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    last_commit: Instant,
    joined: bool,
}

/// A consumer (not shared: `poll` takes `&mut self`).
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    positions: BTreeMap<Tp, i64>,
    resets: BTreeMap<Tp, OffsetSpec>,
    group: Option<GroupState>,
    buffered: VecDeque<ConsumerRecord>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(h) = self.group.as_mut().and_then(|g| g.heartbeat.take()) {
            h.abort();
        }
    }
}

/// Control record type of an abort marker.
const ABORT_MARKER: i16 = 0;

impl Consumer {
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            config,
            positions: BTreeMap::new(),
            resets: BTreeMap::new(),
            group: None,
            buffered: VecDeque::new(),
        }
    }

    /// Reads exactly these partitions (no group), each from its own start.
    pub fn assign(&mut self, partitions: Vec<(String, i32, OffsetSpec)>) {
        self.positions.clear();
        self.resets.clear();
        for (t, p, spec) in partitions {
            match spec {
                OffsetSpec::Offset(o) if o >= 0 => {
                    self.positions.insert((t, p), o);
                }
                other => {
                    self.resets.insert((t, p), other);
                }
            }
        }
    }

    /// Every partition of `topic`, all from `spec`.
    pub async fn assign_topic(&mut self, topic: &str, spec: OffsetSpec) -> Result<(), ClientError> {
        let info = self.client.topic(topic, false).await?;
        self.assign(
            info.partitions
                .iter()
                .map(|p| (topic.to_string(), p.partition, spec))
                .collect(),
        );
        Ok(())
    }

    /// Joins `config.group_id` subscribed to `topics`; the assignment happens on
    /// the next `poll`.
    pub fn subscribe(&mut self, topics: Vec<String>) -> Result<(), ClientError> {
        let group_id = self
            .config
            .group_id
            .clone()
            .ok_or_else(|| ClientError::Invalid("subscribe needs a group id".into()))?;
        self.group = Some(GroupState {
            group_id,
            topics,
            member_id: String::new(),
            generation: -1,
            coordinator: -1,
            rejoin: Arc::new(AtomicBool::new(true)),
            heartbeat: None,
            last_commit: Instant::now(),
            joined: false,
        });
        Ok(())
    }

    /// The partitions currently read, with their next offsets (or pending starts).
    pub fn assignment(&self) -> BTreeSet<Tp> {
        self.positions
            .keys()
            .chain(self.resets.keys())
            .cloned()
            .collect()
    }

    /// Sets the next offset to read of an assigned partition (e.g. to give back
    /// records that were fetched but not processed, before a commit).
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        let tp = (topic.to_string(), partition);
        if self.positions.contains_key(&tp) || self.resets.contains_key(&tp) {
            self.resets.remove(&tp);
            self.positions.insert(tp, offset);
        }
    }

    /// The next offset to read per partition.
    pub fn positions(&self) -> &BTreeMap<Tp, i64> {
        &self.positions
    }

    /// Records available within `timeout` (possibly none).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        if !self.buffered.is_empty() {
            return Ok(self.buffered.drain(..).collect());
        }
        let deadline = Instant::now() + timeout;
        if self
            .group
            .as_ref()
            .is_some_and(|g| g.rejoin.load(Ordering::SeqCst))
        {
            self.join_group().await?;
        }
        self.resolve_resets().await?;
        if self.positions.is_empty() {
            tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
            return Ok(Vec::new());
        }
        let wait = self
            .config
            .fetch_max_wait
            .min(deadline.saturating_duration_since(Instant::now()));
        let records = self.fetch_once(wait).await?;
        self.maybe_auto_commit().await;
        Ok(records)
    }

    async fn resolve_resets(&mut self) -> Result<(), ClientError> {
        if self.resets.is_empty() {
            return Ok(());
        }
        let admin = Admin::new(self.client.clone());
        let mut by_query: BTreeMap<(u8, i64), Vec<Tp>> = BTreeMap::new();
        for (tp, spec) in &self.resets {
            let key = match spec {
                OffsetSpec::Earliest => (0, 0),
                OffsetSpec::Latest => (1, 0),
                OffsetSpec::Timestamp(t) => (2, *t),
                OffsetSpec::Offset(_) => (1, 0),
            };
            by_query.entry(key).or_default().push(tp.clone());
        }
        for ((kind, ts), tps) in by_query {
            let query = match kind {
                0 => OffsetQuery::Earliest,
                2 => OffsetQuery::Timestamp(ts),
                _ => OffsetQuery::Latest,
            };
            let found = admin
                .list_offsets(&tps, query, self.config.isolation_level)
                .await?;
            let mut missing = Vec::new();
            for tp in tps {
                match found.get(&tp) {
                    Some(l) if l.offset >= 0 => {
                        self.positions.insert(tp.clone(), l.offset);
                    }
                    _ => missing.push(tp.clone()),
                }
                self.resets.remove(&tp);
            }
            // A timestamp after the last record: start at the end.
            if !missing.is_empty() {
                let ends = admin
                    .list_offsets(&missing, OffsetQuery::Latest, self.config.isolation_level)
                    .await?;
                for tp in missing {
                    let end = ends.get(&tp).map_or(0, |l| l.offset.max(0));
                    self.positions.insert(tp, end);
                }
            }
        }
        Ok(())
    }

    async fn fetch_once(&mut self, wait: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let mut by_leader: BTreeMap<i32, Vec<(Tp, i64)>> = BTreeMap::new();
        for (tp, pos) in &self.positions {
            match self.client.leader(&tp.0, tp.1).await {
                Ok(l) => by_leader.entry(l).or_default().push((tp.clone(), *pos)),
                Err(e) if e.is_retriable() => self.client.invalidate_topic(&tp.0),
                Err(e) => return Err(e),
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (leader, parts) in by_leader {
            let client = self.client.clone();
            let cfg = self.config.clone();
            tasks.spawn(async move {
                let mut topics: BTreeMap<String, Vec<fetch_request::FetchPartition>> =
                    BTreeMap::new();
                for ((t, p), pos) in &parts {
                    topics.entry(t.clone()).or_default().push(
                        fetch_request::FetchPartition::default()
                            .with_partition(*p)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(*pos)
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(cfg.partition_max_bytes),
                    );
                }
                let req = FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(wait.as_millis().min(i32::MAX as u128) as i32)
                    .with_min_bytes(cfg.fetch_min_bytes)
                    .with_max_bytes(cfg.fetch_max_bytes)
                    .with_isolation_level(cfg.isolation_level)
                    .with_session_id(0)
                    .with_session_epoch(-1)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                fetch_request::FetchTopic::default()
                                    .with_topic(TopicName(StrBytes::from_string(t)))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    );
                let conn = client.broker_connection(leader).await?;
                // Topics by name: at most v12 (v13+ names them by id).
                let v = conn.version(ApiKey::Fetch)?.min(FETCH_BY_NAME_VERSION_MAX);
                let timeout = client.config().connection.request_timeout + wait;
                conn.send_version_timeout(&req, v, timeout).await
            });
        }
        let mut out = Vec::new();
        let mut budget = self.config.poll_decoded_bytes_max;
        while let Some(joined) = tasks.join_next().await {
            let resp = match joined {
                Ok(Ok(r)) => r,
                Ok(Err(e)) if e.is_retriable() => {
                    tracing::debug!(error = %e, "fetch failed; will retry");
                    continue;
                }
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(ClientError::Invalid(format!("fetch task failed: {e}"))),
            };
            ClientError::check(resp.error_code, None, "Fetch")?;
            for t in &resp.responses {
                let topic = t.topic.0.to_string();
                for p in &t.partitions {
                    let tp = (topic.clone(), p.partition_index);
                    let Some(&pos) = self.positions.get(&tp) else {
                        continue;
                    };
                    match p.error_code {
                        0 => {}
                        1 => {
                            // OFFSET_OUT_OF_RANGE
                            tracing::info!(topic = %tp.0, partition = tp.1, offset = pos, "offset out of range; resetting");
                            self.positions.remove(&tp);
                            self.resets.insert(tp, self.config.auto_offset_reset);
                            continue;
                        }
                        code if crate::error::is_retriable_code(code) => {
                            self.client.invalidate_topic(&tp.0);
                            continue;
                        }
                        code => {
                            return Err(ClientError::at(
                                code,
                                None,
                                format!("partition {}-{}", tp.0, tp.1),
                            ))
                        }
                    }
                    let Some(records) = p.records.as_ref() else {
                        continue;
                    };
                    let aborted: Vec<(i64, i64)> = p
                        .aborted_transactions
                        .as_ref()
                        .map(|a| {
                            a.iter()
                                .map(|x| (x.producer_id.0, x.first_offset))
                                .collect()
                        })
                        .unwrap_or_default();
                    let next = decode_partition(
                        &tp,
                        pos,
                        records,
                        DecodeOptions {
                            read_committed: self.config.isolation_level == 1,
                            decompressed_max: self.config.batch_decompressed_bytes_max,
                        },
                        aborted,
                        &mut budget,
                        &mut out,
                    )?;
                    self.positions.insert(tp, next);
                }
            }
        }
        Ok(out)
    }

    /// Commits the current positions of the group's partitions.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        if !g.joined || self.positions.is_empty() {
            return Ok(());
        }
        let offsets: Vec<(String, i32, i64)> = self
            .positions
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect();
        g.last_commit = Instant::now();
        let r = commit_offsets(
            &self.client,
            g.coordinator,
            &g.group_id,
            g.generation,
            &g.member_id,
            &offsets,
        )
        .await;
        if let Err(e) = &r {
            if matches!(
                e.code(),
                Some(
                    codes::REBALANCE_IN_PROGRESS
                        | codes::ILLEGAL_GENERATION
                        | codes::UNKNOWN_MEMBER_ID
                        | codes::NOT_COORDINATOR
                )
            ) {
                g.rejoin.store(true, Ordering::SeqCst);
            }
        }
        r
    }

    async fn maybe_auto_commit(&mut self) {
        let due = self.config.auto_commit
            && self.group.as_ref().is_some_and(|g| {
                g.joined && g.last_commit.elapsed() >= self.config.auto_commit_interval
            });
        if due {
            if let Err(e) = self.commit().await {
                tracing::warn!(error = %e, "auto-commit failed");
            }
        }
    }

    /// Commits (if auto-commit is on) and leaves the group.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        if self.group.is_none() {
            return Ok(());
        }
        let commit = if self.config.auto_commit {
            self.commit().await
        } else {
            Ok(())
        };
        if let Some(g) = self.group.as_mut() {
            if let Some(h) = g.heartbeat.take() {
                h.abort();
            }
            if g.joined {
                g.joined = false;
                let group_id = g.group_id.clone();
                let member_id = g.member_id.clone();
                let leave = self
                    .client
                    .send_to(g.coordinator, ApiKey::LeaveGroup, |v| {
                        let mut m = leave_group_request::MemberIdentity::default()
                            .with_member_id(StrBytes::from_string(member_id.clone()));
                        if v >= 5 {
                            m = m.with_reason(Some(StrBytes::from_static_str(
                                "the consumer is closing",
                            )));
                        }
                        LeaveGroupRequest::default()
                            .with_group_id(GroupId(StrBytes::from_string(group_id.clone())))
                            .with_members(vec![m])
                    })
                    .await;
                if let Err(e) = leave {
                    tracing::debug!(error = %e, "LeaveGroup failed");
                }
            }
        }
        commit
    }

    async fn join_group(&mut self) -> Result<(), ClientError> {
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        if let Some(h) = g.heartbeat.take() {
            h.abort();
        }
        // Commit what was consumed under the old generation before rejoining.
        if g.joined && self.config.auto_commit && !self.positions.is_empty() {
            let offsets: Vec<(String, i32, i64)> = self
                .positions
                .iter()
                .map(|((t, p), o)| (t.clone(), *p, *o))
                .collect();
            let _ = commit_offsets(
                &self.client,
                g.coordinator,
                &g.group_id,
                g.generation,
                &g.member_id,
                &offsets,
            )
            .await;
        }
        g.joined = false;
        self.positions.clear();
        self.resets.clear();
        let subscription = Subscription {
            topics: g.topics.clone(),
            user_data: None,
        }
        .encode();
        let join_timeout = Duration::from_millis(self.config.rebalance_timeout_ms.max(0) as u64)
            + self.client.config().connection.request_timeout;
        let mut attempts = 0u32;
        let assignment = loop {
            attempts += 1;
            if attempts > 50 {
                return Err(ClientError::Invalid(format!(
                    "could not join group {} after 50 attempts",
                    g.group_id
                )));
            }
            if g.coordinator < 0 {
                g.coordinator = self.client.group_coordinator(&g.group_id).await?;
            }
            let conn = self.client.broker_connection(g.coordinator).await?;
            let v = conn.version(ApiKey::JoinGroup)?;
            let mut req = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id.clone())))
                .with_session_timeout_ms(self.config.session_timeout_ms)
                .with_rebalance_timeout_ms(self.config.rebalance_timeout_ms)
                .with_member_id(StrBytes::from_string(g.member_id.clone()))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from(subscription.clone()))]);
            if v >= 8 {
                req = req.with_reason(Some(StrBytes::from_static_str("joining")));
            }
            let resp = match conn.send_version_timeout(&req, v, join_timeout).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    g.coordinator = -1;
                    tokio::time::sleep(self.client.config().retry_backoff).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match resp.error_code {
                0 => {}
                codes::MEMBER_ID_REQUIRED => {
                    g.member_id = resp.member_id.to_string();
                    continue;
                }
                codes::UNKNOWN_MEMBER_ID => {
                    g.member_id.clear();
                    continue;
                }
                codes::REBALANCE_IN_PROGRESS | codes::COORDINATOR_LOAD_IN_PROGRESS => {
                    tokio::time::sleep(self.client.config().retry_backoff).await;
                    continue;
                }
                codes::NOT_COORDINATOR | codes::COORDINATOR_NOT_AVAILABLE => {
                    g.coordinator = -1;
                    tokio::time::sleep(self.client.config().retry_backoff).await;
                    continue;
                }
                code => {
                    return Err(ClientError::at(
                        code,
                        None,
                        format!("JoinGroup {}", g.group_id),
                    ));
                }
            }
            g.member_id = resp.member_id.to_string();
            g.generation = resp.generation_id;
            let is_leader = resp.leader == resp.member_id;
            let mut assignments = Vec::new();
            if is_leader {
                let mut subs = BTreeMap::new();
                for m in &resp.members {
                    let s = Subscription::decode(&m.metadata).unwrap_or_default();
                    subs.insert(m.member_id.to_string(), s);
                }
                let topics: BTreeSet<String> = subs
                    .values()
                    .flat_map(|s| s.topics.iter().cloned())
                    .collect();
                let mut counts = BTreeMap::new();
                for t in topics {
                    match self.client.topic(&t, false).await {
                        Ok(info) => {
                            counts.insert(t, info.partitions.len() as i32);
                        }
                        Err(e) => {
                            tracing::warn!(topic = %t, error = %e, "subscribed topic not available")
                        }
                    }
                }
                for (member, a) in range_assign(&subs, &counts) {
                    assignments.push(
                        sync_group_request::SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(member))
                            .with_assignment(Bytes::from(a.encode())),
                    );
                }
            }
            let sv = conn.version(ApiKey::SyncGroup)?;
            let mut sync = SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id.clone())))
                .with_generation_id(g.generation)
                .with_member_id(StrBytes::from_string(g.member_id.clone()))
                .with_assignments(assignments);
            if sv >= 5 {
                sync = sync
                    .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                    .with_protocol_name(Some(StrBytes::from_static_str("range")));
            }
            let resp = match conn.send_version_timeout(&sync, sv, join_timeout).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    g.coordinator = -1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match resp.error_code {
                0 => break Assignment::decode(&resp.assignment)?,
                codes::REBALANCE_IN_PROGRESS | codes::ILLEGAL_GENERATION => continue,
                codes::UNKNOWN_MEMBER_ID => {
                    g.member_id.clear();
                    continue;
                }
                codes::NOT_COORDINATOR | codes::COORDINATOR_NOT_AVAILABLE => {
                    g.coordinator = -1;
                    continue;
                }
                code => {
                    return Err(ClientError::at(
                        code,
                        None,
                        format!("SyncGroup {}", g.group_id),
                    ))
                }
            }
        };
        g.joined = true;
        g.rejoin.store(false, Ordering::SeqCst);
        g.last_commit = Instant::now();
        let tps: Vec<Tp> = assignment
            .partitions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        tracing::debug!(group = %g.group_id, generation = g.generation, partitions = tps.len(), "joined");
        if !tps.is_empty() {
            let committed =
                fetch_committed(&self.client, g.coordinator, &g.group_id, Some(&tps)).await?;
            for tp in tps {
                match committed.get(&tp) {
                    Some(c) if c.offset >= 0 => {
                        self.positions.insert(tp, c.offset);
                    }
                    _ => {
                        self.resets.insert(tp, self.config.auto_offset_reset);
                    }
                }
            }
        }
        // Heartbeats until the coordinator asks for a rejoin.
        let client = self.client.clone();
        let rejoin = g.rejoin.clone();
        let (group_id, member_id, generation, coordinator) = (
            g.group_id.clone(),
            g.member_id.clone(),
            g.generation,
            g.coordinator,
        );
        let interval = self.config.heartbeat_interval;
        g.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let r = client
                    .send_to(coordinator, ApiKey::Heartbeat, |_| {
                        HeartbeatRequest::default()
                            .with_group_id(GroupId(StrBytes::from_string(group_id.clone())))
                            .with_generation_id(generation)
                            .with_member_id(StrBytes::from_string(member_id.clone()))
                    })
                    .await;
                match r {
                    Ok((resp, _)) if resp.error_code == 0 => {}
                    Ok((resp, _)) => {
                        tracing::debug!(code = resp.error_code, "heartbeat asks for a rejoin");
                        rejoin.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
                }
            }
        }));
        Ok(())
    }
}

/// How batches are decoded.
#[derive(Clone, Copy, Debug)]
struct DecodeOptions {
    read_committed: bool,
    /// Largest decompressed size of one batch.
    decompressed_max: usize,
}

/// Decodes one partition's records section into `out`, starting at offset
/// `pos`; returns the next offset to fetch.
fn decode_partition(
    tp: &Tp,
    mut pos: i64,
    records: &Bytes,
    opts: DecodeOptions,
    mut aborted: Vec<(i64, i64)>,
    budget: &mut usize,
    out: &mut Vec<ConsumerRecord>,
) -> Result<i64, ClientError> {
    let DecodeOptions {
        read_committed,
        decompressed_max,
    } = opts;
    aborted.sort_by_key(|a| a.1);
    let mut aborted = aborted.into_iter().peekable();
    let mut aborted_pids: HashSet<i64> = HashSet::new();
    let bad = |reason: String| ClientError::Records {
        topic: tp.0.clone(),
        partition: tp.1,
        reason,
    };
    for item in BatchIter::new(records) {
        let (header, bytes) = item.map_err(|e| bad(e.to_string()))?;
        if header.next_offset().get() <= pos {
            continue;
        }
        batch::verify_crc(bytes).map_err(|e| bad(e.to_string()))?;
        let pid = header.producer_id.get();
        if read_committed {
            while let Some(&(p, first)) = aborted.peek() {
                if first > header.last_offset().get() {
                    break;
                }
                aborted_pids.insert(p);
                aborted.next();
            }
        }
        if header.is_control() {
            if read_committed {
                let recs =
                    batch::records(bytes, decompressed_max).map_err(|e| bad(e.to_string()))?;
                let is_abort = recs
                    .first()
                    .and_then(|r| r.key.as_ref())
                    .and_then(|k| k.get(2..4))
                    .map(|t| i16::from_be_bytes([t[0], t[1]]))
                    == Some(ABORT_MARKER);
                if is_abort {
                    aborted_pids.remove(&pid);
                }
            }
            pos = header.next_offset().get();
            continue;
        }
        if read_committed && header.is_transactional() && aborted_pids.contains(&pid) {
            pos = header.next_offset().get();
            continue;
        }
        if *budget == 0 && !out.is_empty() {
            // Over this poll's budget: the rest is fetched again next time.
            break;
        }
        let recs = batch::records(bytes, decompressed_max).map_err(|e| bad(e.to_string()))?;
        let decoded: usize = recs
            .iter()
            .map(|r| {
                r.key.as_ref().map_or(0, Bytes::len)
                    + r.value.as_ref().map_or(0, Bytes::len)
                    + r.headers
                        .iter()
                        .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
                        .sum::<usize>()
            })
            .sum();
        *budget = budget.saturating_sub(decoded);
        for r in &recs {
            let offset = header.record_offset(r).get();
            if offset < pos {
                continue;
            }
            out.push(ConsumerRecord {
                topic: tp.0.clone(),
                partition: tp.1,
                offset,
                timestamp: header.record_timestamp(r).get(),
                log_append_time: header.log_append_time(),
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            String::from_utf8_lossy(&h.key).into_owned(),
                            h.value.clone(),
                        )
                    })
                    .collect(),
            });
        }
        pos = header.next_offset().get();
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use samsa_model::batch::{BatchBuilder, NewRecord};
    use samsa_model::compression::Compression;
    use samsa_model::{Offset, ProducerEpoch, ProducerId, TimestampMs};

    fn unlimited() -> usize {
        usize::MAX
    }

    fn batch(base: i64, values: &[&str]) -> Vec<u8> {
        let mut b = BatchBuilder::new()
            .base_offset(Offset(base))
            .compression(Compression::Gzip);
        for (i, v) in values.iter().enumerate() {
            b.push(
                NewRecord::new(TimestampMs(1000 + i as i64), Some(b"k"), Some(v.as_bytes()))
                    .with_header(b"h", Some(b"1")),
            );
        }
        b.build().expect("builds")
    }

    #[test]
    fn decodes_batches_from_the_fetch_position() {
        let mut bytes = batch(0, &["a", "b", "c"]);
        bytes.extend(batch(3, &["d"]));
        // An incomplete trailing batch is ignored.
        let tail = batch(4, &["e"]);
        bytes.extend_from_slice(&tail[..tail.len() - 3]);
        let mut out = Vec::new();
        let tp = ("t".to_string(), 0);
        let next = decode_partition(
            &tp,
            1,
            &Bytes::from(bytes),
            DecodeOptions {
                read_committed: false,
                decompressed_max: 1 << 20,
            },
            vec![],
            &mut unlimited(),
            &mut out,
        )
        .expect("decodes");
        assert_eq!(next, 4);
        let values: Vec<&[u8]> = out
            .iter()
            .map(|r| r.value.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(values, vec![&b"b"[..], b"c", b"d"]);
        assert_eq!(out[0].offset, 1);
        assert_eq!(out[0].timestamp, 1001);
        assert_eq!(
            out[0].headers,
            vec![("h".to_string(), Some(Bytes::from_static(b"1")))]
        );
    }

    #[test]
    fn a_poll_stops_decoding_at_its_budget() {
        let mut bytes = batch(0, &["aaaa", "bbbb"]);
        bytes.extend(batch(2, &["cccc"]));
        let tp = ("t".to_string(), 0);
        let mut out = Vec::new();
        let mut budget = 1;
        let next = decode_partition(
            &tp,
            0,
            &Bytes::from(bytes),
            DecodeOptions {
                read_committed: false,
                decompressed_max: 1 << 20,
            },
            vec![],
            &mut budget,
            &mut out,
        )
        .expect("decodes");
        assert_eq!(next, 2, "the second batch is left for the next poll");
        assert_eq!(out.len(), 2);
        assert_eq!(budget, 0);
    }

    #[test]
    fn corrupt_batches_are_errors() {
        let mut bytes = batch(0, &["a"]);
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        let mut out = Vec::new();
        let tp = ("t".to_string(), 0);
        assert!(decode_partition(
            &tp,
            0,
            &Bytes::from(bytes),
            DecodeOptions {
                read_committed: false,
                decompressed_max: 1 << 20
            },
            vec![],
            &mut unlimited(),
            &mut out
        )
        .is_err());
    }

    #[test]
    fn read_committed_skips_aborted_transactions() {
        let txn = |base: i64, v: &str| {
            BatchBuilder::new()
                .base_offset(Offset(base))
                .producer(ProducerId(7), ProducerEpoch(0), 0)
                .transactional(true)
                .record(NewRecord::new(TimestampMs(1), None, Some(v.as_bytes())))
                .build()
                .expect("builds")
        };
        let marker = |base: i64, kind: i16| {
            let mut key = 0i16.to_be_bytes().to_vec();
            key.extend(kind.to_be_bytes());
            BatchBuilder::new()
                .base_offset(Offset(base))
                .producer(ProducerId(7), ProducerEpoch(0), -1)
                .transactional(true)
                .control(true)
                .record(NewRecord::new(
                    TimestampMs(1),
                    Some(&key),
                    Some(&[0, 0, 0, 0, 0, 0]),
                ))
                .build()
                .expect("builds")
        };
        let mut bytes = txn(0, "aborted");
        bytes.extend(marker(1, 0));
        bytes.extend(txn(2, "committed"));
        bytes.extend(marker(3, 1));
        let tp = ("t".to_string(), 0);
        let mut out = Vec::new();
        let next = decode_partition(
            &tp,
            0,
            &Bytes::from(bytes.clone()),
            DecodeOptions {
                read_committed: true,
                decompressed_max: 1 << 20,
            },
            vec![(7, 0)],
            &mut unlimited(),
            &mut out,
        )
        .expect("ok");
        assert_eq!(next, 4);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value.as_deref(), Some(&b"committed"[..]));
        let mut all = Vec::new();
        decode_partition(
            &tp,
            0,
            &Bytes::from(bytes),
            DecodeOptions {
                read_committed: false,
                decompressed_max: 1 << 20,
            },
            vec![(7, 0)],
            &mut unlimited(),
            &mut all,
        )
        .expect("ok");
        assert_eq!(all.len(), 2, "read_uncommitted sees both, never markers");
    }
}
