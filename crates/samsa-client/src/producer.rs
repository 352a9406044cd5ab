//! A batching producer. Records are appended to one open batch per partition;
//! a sender task ships batches to partition leaders when they are full, when
//! they have waited `linger`, or on `flush`. A record that would take its
//! partition's open batch past `batch_bytes_max` closes that batch (it waits
//! for the sender as it is) and opens the next, as the Java client and
//! librdkafka do, so a sender that falls behind never finds one oversized
//! batch; a batch the broker refuses with MESSAGE_TOO_LARGE (the topic's
//! `max.message.bytes` is below `batch_bytes_max`) is split in halves and
//! retried, and later batches of that topic are kept to half the size refused. Keyed records go to
//! `toPositive(murmur2(key)) % partitions` (Kafka's default partitioner);
//! keyless records stick to one partition per batch, moving on to the next
//! partition each time a batch is sent. Each record's [`Delivery`] resolves to
//! its partition and offset, or to the Kafka error of its batch.
//!
//! Memory is bounded by `buffer_bytes_max` (send waits for room), and the
//! number of unanswered Produce requests per broker by `in_flight_max`.
//! Retriable errors (leader moved, timeouts, lost connections) are retried
//! after a metadata refresh, up to `retries` times.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::{produce_request, ApiKey, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use samsa_model::batch::{BatchBuilder, NewRecord, RecordHeader};
use samsa_model::compression::Compression;
use samsa_model::TimestampMs;
use tokio::sync::{oneshot, Notify, Semaphore};

use crate::client::Client;
use crate::error::ClientError;
use crate::partitioner::partition_for_key;

/// How many acknowledgements the leader waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no response at all; offsets are unknown (-1).
    None,
    /// acks=1: the leader wrote it.
    Leader,
    /// acks=all (-1): every in-sync replica has it.
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    pub acks: Acks,
    pub compression: Compression,
    /// How long a batch may wait for more records.
    pub linger: Duration,
    /// A batch is sent once its records reach this many bytes.
    pub batch_bytes_max: usize,
    /// Largest Produce request (several partitions' batches) to build.
    pub request_bytes_max: usize,
    /// Bytes of records waiting to be acknowledged before `send` waits.
    pub buffer_bytes_max: usize,
    /// Sent in Produce: how long the broker may wait for replication.
    pub request_timeout_ms: i32,
    /// Unanswered Produce requests per broker.
    pub in_flight_max: usize,
    /// Attempts after the first for a batch that failed retriably.
    pub retries: u32,
    /// Ask Metadata to auto-create unknown topics (if the broker allows it).
    pub allow_auto_create: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            compression: Compression::None,
            linger: Duration::from_millis(5),
            batch_bytes_max: 256 * 1024,
            request_bytes_max: 1024 * 1024,
            buffer_bytes_max: 32 * 1024 * 1024,
            request_timeout_ms: 30_000,
            in_flight_max: 5,
            retries: 5,
            allow_auto_create: true,
        }
    }
}

/// A record to send.
#[derive(Clone, Debug, Default)]
pub struct ProducerRecord {
    pub topic: String,
    /// Explicit partition; `None` = the partitioner decides.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// CreateTime in ms; `None` = now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// An upper bound of the record's encoded size in a batch: its bytes
    /// plus the largest varints (length 5, attributes 1, timestamp delta 10,
    /// offset delta 5, key and value lengths 5 each, header count 5; key and
    /// value lengths of each header 5 each).
    fn size_estimate(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 10)
            .sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
            + 36
    }
}

/// Where a record landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    /// -1 with acks=0.
    pub offset: i64,
    /// The broker's append time for LogAppendTime topics, else the record's.
    pub timestamp: i64,
    /// When the acknowledgement arrived (for latency measurements).
    pub acked_at: Instant,
}

type DeliveryResult = Result<RecordMetadata, ClientError>;

/// Resolves when the record is acknowledged (or has failed).
pub struct Delivery(oneshot::Receiver<DeliveryResult>);

impl Future for Delivery {
    type Output = DeliveryResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DeliveryResult> {
        Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(ClientError::Invalid(
                    "the producer stopped before delivering".into(),
                ))
            })
        })
    }
}

struct Waiter {
    tx: oneshot::Sender<DeliveryResult>,
    timestamp: i64,
    /// The record's [`ProducerRecord::size_estimate`] (buffer permits held).
    bytes: usize,
}

/// Bytes of a record batch v2 besides its records (the header).
const BATCH_OVERHEAD_BYTES: usize = 61;

struct Batch {
    topic: String,
    partition: i32,
    records: Vec<NewRecord>,
    waiters: Vec<Waiter>,
    bytes: usize,
    created: Instant,
    attempts: u32,
}

impl Batch {
    fn new(topic: &str, partition: i32) -> Batch {
        Batch {
            topic: topic.to_owned(),
            partition,
            records: Vec::new(),
            waiters: Vec::new(),
            bytes: 0,
            created: Instant::now(),
            attempts: 0,
        }
    }

    /// Whether a record of `bytes` still fits (an empty batch takes any
    /// record: a record larger than the limit is sent alone).
    fn fits(&self, bytes: usize, limit: usize) -> bool {
        self.records.is_empty() || BATCH_OVERHEAD_BYTES + self.bytes + bytes <= limit
    }

    /// Splits off the second half of the records (at least one stays).
    fn split_off_half(&mut self) -> Batch {
        let at = self.records.len().div_ceil(2);
        let records = self.records.split_off(at);
        let waiters = self.waiters.split_off(at);
        let bytes: usize = waiters.iter().map(|w| w.bytes).sum();
        self.bytes -= bytes;
        Batch {
            topic: self.topic.clone(),
            partition: self.partition,
            records,
            waiters,
            bytes,
            created: self.created,
            attempts: self.attempts,
        }
    }
}

#[derive(Default)]
struct Accumulator {
    open: HashMap<(String, i32), Batch>,
    /// Batches closed because they were full, waiting for the sender.
    full: Vec<Batch>,
    retry: Vec<Batch>,
    /// Per topic, a batch size below one the broker refused as too large.
    topic_batch_bytes_max: HashMap<String, usize>,
    /// Keyless records of a topic go here until its batch is sent.
    sticky: HashMap<String, i32>,
    flushing: usize,
    closed: bool,
}

struct Inner {
    client: Client,
    config: ProducerConfig,
    acc: Mutex<Accumulator>,
    wake: Notify,
    memory: Arc<Semaphore>,
    outstanding: AtomicUsize,
    idle: Notify,
}

/// A producer; cheap to clone, all clones share one sender task.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Producer {
    /// Starts a producer (its sender task runs on the current runtime).
    pub fn new(client: Client, config: ProducerConfig) -> Producer {
        let permits = config.buffer_bytes_max.clamp(1, Semaphore::MAX_PERMITS);
        let inner = Arc::new(Inner {
            client,
            config,
            acc: Mutex::new(Accumulator::default()),
            wake: Notify::new(),
            memory: Arc::new(Semaphore::new(permits)),
            outstanding: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        let task = tokio::spawn(sender_loop(inner.clone()));
        Producer {
            inner,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// Queues a record. Fails at once if its topic cannot be resolved (e.g.
    /// UNKNOWN_TOPIC_OR_PARTITION) or its partition does not exist; waits while
    /// the buffer is full.
    pub async fn send(&self, record: ProducerRecord) -> Result<Delivery, ClientError> {
        let inner = &self.inner;
        let topic = inner
            .client
            .cached_topic(&record.topic, inner.config.allow_auto_create)
            .await?;
        let count = topic.partitions.len() as i32;
        if count == 0 {
            return Err(ClientError::Invalid(format!(
                "topic {} has no partitions",
                record.topic
            )));
        }
        let explicit = record.partition;
        if let Some(p) = explicit {
            if p < 0 || p >= count {
                return Err(ClientError::at(
                    3,
                    Some(format!("topic {} has {count} partitions", record.topic)),
                    format!("partition {}-{p}", record.topic),
                ));
            }
        }
        let size = record.size_estimate();
        let permits =
            size.clamp(1, inner.config.buffer_bytes_max.clamp(1, u32::MAX as usize)) as u32;
        inner
            .memory
            .acquire_many(permits)
            .await
            .map_err(|_| ClientError::Invalid("the producer is closed".into()))?
            .forget();
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let mut new = NewRecord::new(TimestampMs(timestamp), None, None);
        new.key = record.key.clone();
        new.value = record.value.clone();
        new.headers = record
            .headers
            .iter()
            .map(|(k, v)| RecordHeader {
                key: Bytes::copy_from_slice(k.as_bytes()),
                value: v.clone(),
            })
            .collect();
        let (tx, rx) = oneshot::channel();
        inner.outstanding.fetch_add(1, Ordering::SeqCst);
        let wake;
        {
            let mut acc = lock(&inner.acc);
            if acc.closed {
                inner.memory.add_permits(permits as usize);
                inner.finish_one();
                return Err(ClientError::Invalid("the producer is closed".into()));
            }
            let sticky = explicit.is_none() && record.key.is_none();
            let mut partition = match (explicit, &record.key) {
                (Some(p), _) => p,
                (None, Some(k)) => partition_for_key(k, count),
                (None, None) => {
                    let start = (now_ms() % i64::from(count)) as i32;
                    *acc.sticky.entry(record.topic.clone()).or_insert(start)
                }
            };
            let limit = acc
                .topic_batch_bytes_max
                .get(&record.topic)
                .map_or(inner.config.batch_bytes_max, |&m| {
                    m.min(inner.config.batch_bytes_max)
                });
            let bytes = permits as usize;
            let mut closed = false;
            // Close the open batch if the record does not fit; a keyless
            // record then moves on to the next partition, as when a batch
            // is sent. Each partition is closed at most once.
            for _ in 0..count {
                let key = (record.topic.clone(), partition);
                if acc.open.get(&key).is_none_or(|b| b.fits(bytes, limit)) {
                    break;
                }
                if let Some(full) = acc.open.remove(&key) {
                    acc.full.push(full);
                    closed = true;
                }
                if !sticky {
                    break;
                }
                partition = (partition + 1).rem_euclid(count);
                acc.sticky.insert(record.topic.clone(), partition);
            }
            let key = (record.topic.clone(), partition);
            let batch = acc
                .open
                .entry(key)
                .or_insert_with(|| Batch::new(&record.topic, partition));
            batch.records.push(new);
            batch.waiters.push(Waiter {
                tx,
                timestamp,
                bytes,
            });
            batch.bytes += bytes;
            wake = closed || batch.records.len() == 1 || !batch.fits(1, limit);
        }
        if wake {
            inner.wake.notify_one();
        }
        Ok(Delivery(rx))
    }

    /// Sends everything queued now and waits until every record sent so far
    /// is acknowledged or failed.
    pub async fn flush(&self) {
        let inner = &self.inner;
        lock(&inner.acc).flushing += 1;
        inner.wake.notify_one();
        loop {
            let idle = inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if inner.outstanding.load(Ordering::SeqCst) == 0 {
                break;
            }
            inner.wake.notify_one();
            idle.await;
        }
        let mut acc = lock(&inner.acc);
        acc.flushing = acc.flushing.saturating_sub(1);
    }

    /// Flushes, then stops the sender task.
    pub async fn close(&self) {
        self.flush().await;
        lock(&self.inner.acc).closed = true;
        self.inner.wake.notify_one();
        let task = lock(&self.task).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

impl Inner {
    fn finish_one(&self) {
        if self.outstanding.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    fn complete(&self, batch: Batch, result: Result<(i64, i64), ClientError>) {
        let acked_at = Instant::now();
        self.memory
            .add_permits(batch.bytes.min(Semaphore::MAX_PERMITS));
        for (i, w) in batch.waiters.into_iter().enumerate() {
            let r = match &result {
                Ok((base, append_time)) => Ok(RecordMetadata {
                    topic: batch.topic.clone(),
                    partition: batch.partition,
                    offset: if *base < 0 { -1 } else { base + i as i64 },
                    timestamp: if *append_time >= 0 {
                        *append_time
                    } else {
                        w.timestamp
                    },
                    acked_at,
                }),
                Err(e) => Err(e.duplicate()),
            };
            let _ = w.tx.send(r);
            self.finish_one();
        }
    }
}

/// Takes the batches that are due: full, lingered, retried, or all when
/// flushing/closing. Returns them and how long until the next one is due.
fn take_ready(inner: &Inner) -> (Vec<Batch>, Option<Duration>, bool) {
    let mut acc = lock(&inner.acc);
    let now = Instant::now();
    let all = acc.flushing > 0 || acc.closed;
    let linger = inner.config.linger;
    let mut ready: Vec<Batch> = std::mem::take(&mut acc.retry);
    ready.append(&mut acc.full);
    let keys: Vec<(String, i32)> = acc
        .open
        .iter()
        .filter(|(_, b)| {
            all || !b.fits(1, inner.config.batch_bytes_max)
                || now.duration_since(b.created) >= linger
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in keys {
        if let Some(b) = acc.open.remove(&k) {
            // The next keyless record of this topic goes to the next partition.
            if acc.sticky.get(&b.topic) == Some(&b.partition) {
                let n = inner.client.partition_count(&b.topic).unwrap_or(1).max(1);
                acc.sticky
                    .insert(b.topic.clone(), (b.partition + 1).rem_euclid(n));
            }
            ready.push(b);
        }
    }
    let next = acc
        .open
        .values()
        .map(|b| linger.saturating_sub(now.duration_since(b.created)))
        .min();
    let done = acc.closed && acc.open.is_empty() && ready.is_empty();
    (ready, next, done)
}

async fn sender_loop(inner: Arc<Inner>) {
    let mut in_flight: HashMap<i32, Arc<Semaphore>> = HashMap::new();
    loop {
        let (ready, next, done) = take_ready(&inner);
        if done {
            break;
        }
        if ready.is_empty() {
            let notified = inner.wake.notified();
            match next {
                Some(d) => {
                    let _ = tokio::time::timeout(d.max(Duration::from_micros(100)), notified).await;
                }
                None => notified.await,
            }
            continue;
        }
        // Route each batch to its partition leader.
        let mut by_leader: BTreeMap<i32, Vec<Batch>> = BTreeMap::new();
        for batch in ready {
            match inner.client.leader(&batch.topic, batch.partition).await {
                Ok(leader) => by_leader.entry(leader).or_default().push(batch),
                Err(e) => retry_or_fail(&inner, batch, e),
            }
        }
        for (leader, batches) in by_leader {
            let sem = in_flight
                .entry(leader)
                .or_insert_with(|| Arc::new(Semaphore::new(inner.config.in_flight_max.max(1))))
                .clone();
            for req in pack_requests(batches, inner.config.request_bytes_max) {
                let Ok(permit) = sem.clone().acquire_owned().await else {
                    continue;
                };
                let inner = inner.clone();
                tokio::spawn(async move {
                    send_request(&inner, leader, req).await;
                    drop(permit);
                });
            }
        }
    }
}

/// Kafka's MESSAGE_TOO_LARGE error code.
const MESSAGE_TOO_LARGE: i16 = 10;

/// A batch of several records refused as larger than the topic's
/// `max.message.bytes`: both halves are sent again at once (a split is not
/// a retry), and the topic's later batches are kept to half the refused
/// size (so they end up between half the topic's limit and the limit).
fn split_and_retry(inner: &Arc<Inner>, mut batch: Batch) {
    let second = batch.split_off_half();
    tracing::debug!(topic = %batch.topic, partition = batch.partition, records = batch.records.len() + second.records.len(), "splitting a batch refused as too large");
    let mut acc = lock(&inner.acc);
    let refused = BATCH_OVERHEAD_BYTES + batch.bytes + second.bytes;
    let limit = acc
        .topic_batch_bytes_max
        .entry(batch.topic.clone())
        .or_insert(usize::MAX);
    *limit = (*limit).min(refused / 2);
    acc.retry.push(batch);
    acc.retry.push(second);
    drop(acc);
    inner.wake.notify_one();
}

/// Packs a leader's batches into Produce requests of at most
/// `request_bytes_max` (a larger batch goes alone) and at most one batch per
/// partition each (a Produce request carries one batch per partition); a
/// partition's later batches go into later requests, which are sent in
/// order.
fn pack_requests(batches: Vec<Batch>, request_bytes_max: usize) -> Vec<Vec<Batch>> {
    let mut requests: Vec<(Vec<Batch>, usize)> = Vec::new();
    // Per partition, the index of the last request holding one of its batches.
    let mut last: HashMap<(String, i32), usize> = HashMap::new();
    for b in batches {
        let key = (b.topic.clone(), b.partition);
        let from = last.get(&key).map_or(0, |&i| i + 1);
        let room = requests
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, (r, bytes))| r.is_empty() || bytes + b.bytes <= request_bytes_max)
            .map(|(i, _)| i);
        let i = room.unwrap_or_else(|| {
            requests.push((Vec::new(), 0));
            requests.len() - 1
        });
        if let Some((r, bytes)) = requests.get_mut(i) {
            *bytes += b.bytes;
            r.push(b);
        }
        last.insert(key, i);
    }
    requests.into_iter().map(|(r, _)| r).collect()
}

fn retry_or_fail(inner: &Arc<Inner>, mut batch: Batch, error: ClientError) {
    if error.is_retriable() && batch.attempts < inner.config.retries {
        batch.attempts += 1;
        inner.client.invalidate_topic(&batch.topic);
        tracing::debug!(topic = %batch.topic, partition = batch.partition, attempt = batch.attempts, %error, "retrying a batch");
        let inner = inner.clone();
        tokio::spawn(async move {
            tokio::time::sleep(inner.client.config().retry_backoff * batch.attempts).await;
            lock(&inner.acc).retry.push(batch);
            inner.wake.notify_one();
        });
    } else {
        inner.complete(batch, Err(error));
    }
}

/// A partition's Produce result: error code, message, base offset, append time.
type PartitionResult = (i16, Option<String>, i64, i64);

async fn send_request(inner: &Arc<Inner>, leader: i32, batches: Vec<Batch>) {
    let conn = match inner.client.broker_connection(leader).await {
        Ok(c) => c,
        Err(e) => {
            for b in batches {
                retry_or_fail(inner, b, e.duplicate());
            }
            return;
        }
    };
    let version = match conn.version(ApiKey::Produce) {
        Ok(v) => v,
        Err(e) => {
            for b in batches {
                inner.complete(b, Err(e.duplicate()));
            }
            return;
        }
    };
    let mut topics: BTreeMap<String, Vec<produce_request::PartitionProduceData>> = BTreeMap::new();
    let mut sendable = Vec::with_capacity(batches.len());
    for b in batches {
        let mut builder = BatchBuilder::new().compression(inner.config.compression);
        for r in &b.records {
            builder.push(r.clone());
        }
        match builder.build() {
            Ok(bytes) => {
                topics.entry(b.topic.clone()).or_default().push(
                    produce_request::PartitionProduceData::default()
                        .with_index(b.partition)
                        .with_records(Some(Bytes::from(bytes))),
                );
                sendable.push(b);
            }
            Err(e) => {
                let err = ClientError::Invalid(format!("cannot build a record batch: {e}"));
                inner.complete(b, Err(err));
            }
        }
    }
    if sendable.is_empty() {
        return;
    }
    let req = ProduceRequest::default()
        .with_acks(inner.config.acks.wire())
        .with_timeout_ms(inner.config.request_timeout_ms)
        .with_topic_data(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    produce_request::TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partition_data(parts)
                })
                .collect(),
        );
    if inner.config.acks == Acks::None {
        let result = conn.send_no_response(&req, version).await;
        for b in sendable {
            match &result {
                Ok(()) => inner.complete(b, Ok((-1, -1))),
                Err(e) => retry_or_fail(inner, b, e.duplicate()),
            }
        }
        return;
    }
    let resp = match conn.send_version(&req, version).await {
        Ok(r) => r,
        Err(e) => {
            for b in sendable {
                retry_or_fail(inner, b, e.duplicate());
            }
            return;
        }
    };
    let mut results: HashMap<(String, i32), PartitionResult> = HashMap::new();
    for t in &resp.responses {
        for p in &t.partition_responses {
            results.insert(
                (t.name.0.to_string(), p.index),
                (
                    p.error_code,
                    p.error_message.as_ref().map(|m| m.to_string()),
                    p.base_offset,
                    p.log_append_time_ms,
                ),
            );
        }
    }
    for b in sendable {
        match results.remove(&(b.topic.clone(), b.partition)) {
            Some((0, _, base, append)) => inner.complete(b, Ok((base, append))),
            Some((MESSAGE_TOO_LARGE, _, _, _)) if b.records.len() > 1 => split_and_retry(inner, b),
            Some((code, message, _, _)) => {
                let context = format!("partition {}-{}", b.topic, b.partition);
                let err = ClientError::at(code, message, context);
                retry_or_fail(inner, b, err);
            }
            None => {
                let err = ClientError::Invalid(format!(
                    "the Produce response has no result for {}-{}",
                    b.topic, b.partition
                ));
                inner.complete(b, Err(err));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(
        topic: &str,
        partition: i32,
        records: usize,
    ) -> (Batch, Vec<oneshot::Receiver<DeliveryResult>>) {
        let mut b = Batch::new(topic, partition);
        let mut receivers = Vec::new();
        for i in 0..records {
            let (tx, rx) = oneshot::channel();
            b.records
                .push(NewRecord::new(TimestampMs(0), None, Some(b"v".as_slice())));
            b.waiters.push(Waiter {
                tx,
                timestamp: 0,
                bytes: 100 + i,
            });
            b.bytes += 100 + i;
            receivers.push(rx);
        }
        (b, receivers)
    }

    #[test]
    fn requests_carry_one_batch_per_partition_in_order_and_within_the_size() {
        let batches: Vec<Batch> = [("a", 0), ("a", 0), ("b", 0), ("a", 1), ("a", 0)]
            .into_iter()
            .map(|(t, p)| batch(t, p, 3).0)
            .collect();
        // Each batch is 303 bytes; two fit in a request of 700.
        let requests = pack_requests(batches, 700);
        let layout: Vec<Vec<(String, i32)>> = requests
            .iter()
            .map(|r| r.iter().map(|b| (b.topic.clone(), b.partition)).collect())
            .collect();
        let tp = |t: &str, p| (t.to_owned(), p);
        assert_eq!(
            layout,
            [
                vec![tp("a", 0), tp("b", 0)],
                vec![tp("a", 0), tp("a", 1)],
                vec![tp("a", 0)]
            ]
        );
    }

    #[test]
    fn a_split_batch_keeps_its_records_waiters_and_bytes() {
        let (mut first, _rx) = batch("t", 0, 5);
        let second = first.split_off_half();
        assert_eq!((first.records.len(), first.waiters.len()), (3, 3));
        assert_eq!((second.records.len(), second.waiters.len()), (2, 2));
        assert_eq!(first.bytes, 100 + 101 + 102);
        assert_eq!(second.bytes, 103 + 104);
        assert!(first.fits(1, 61 + 303 + 1) && !first.fits(2, 61 + 303 + 1));
    }
}
