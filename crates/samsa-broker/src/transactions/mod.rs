//! The transaction coordinator service: runs `samsa-coordinator`'s
//! transaction state machine ([`TxnCoordinator`]) for the transactional ids
//! of this broker, persists its records in `__transaction_state`, and writes
//! the COMMIT/ABORT markers it asks for ([`markers`]).
//!
//! Hosted by the shared coordinator runtime ([`crate::coordinator_runtime`]),
//! as the group coordinator is: one coordinator per `__transaction_state`
//! partition this broker leads, whose leader epoch is the coordinator epoch
//! stamped on its markers; loading it (a failover, a restart) re-issues the
//! markers of transactions left in PrepareCommit/PrepareAbort. Replies and
//! markers follow the appends before them only once those are replicated.
//!
//! Producer ids come from the broker's blocks (allocated through the
//! metadata log, so never reused): the state machine takes them from a
//! small pool that [`TxnService::call`] fills before each call, since a
//! block allocation is a quorum write that cannot run under a shard's lock.

pub(crate) mod markers;
pub(crate) mod verify;

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use samsa_client::connection::{Connection, ConnectionConfig};
use samsa_coordinator::txn::{TxnConfig, TxnCoordinator, TxnMarkers, TxnOutput, TxnResponse};
use samsa_coordinator::ReplyToken;
use samsa_metadata::config::StaticConfig;
use samsa_metadata::features::TRANSACTION_VERSION;
use samsa_model::{LeaderEpoch, ProducerId, TimestampMs};

use crate::broker::Broker;
use crate::coordinator_runtime::log::{ensure_topic, InternalTopic};
use crate::coordinator_runtime::{CoordinatorKind, CoordinatorRuntime, ShardMachine, Step};

/// The internal topic holding the transaction coordinator's state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// How `__transaction_state` is created on first use (Kafka's
/// `transaction.state.log.*` configs).
const TRANSACTION_STATE_SPEC: InternalTopic = InternalTopic {
    name: TRANSACTION_STATE_TOPIC,
    partitions_key: "transaction.state.log.num.partitions",
    partitions_default: 50,
    replication_key: "transaction.state.log.replication.factor",
    replication_default: 3,
    min_isr_key: Some(("transaction.state.log.min.isr", 2)),
    segment_bytes_key: Some("transaction.state.log.segment.bytes"),
    segment_bytes_default: 104_857_600,
};

/// Spare producer ids kept for the state machines (one is taken per new
/// transactional id or exhausted epoch).
const SPARE_PRODUCER_IDS_MAX: usize = 4;

impl ShardMachine for TxnCoordinator {
    type Output = TxnOutput;
    type Response = TxnResponse;
    type Effect = TxnMarkers;

    fn step(output: TxnOutput) -> Step<TxnResponse, TxnMarkers> {
        match output {
            // One coordinator per shard: its appends go to the shard's partition.
            TxnOutput::Append { records, .. } => Step::Append {
                records,
                commit: None,
                producer: None,
            },
            TxnOutput::Reply { token, response } => Step::Reply { token, response },
            TxnOutput::WriteMarkers(m) => Step::Effect(m),
        }
    }

    fn with_error(response: TxnResponse, code: i16) -> TxnResponse {
        response.with_error(code)
    }

    fn replay(
        &mut self,
        _partition: u32,
        batch: &samsa_model::batch::BatchHeader,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        // `__transaction_state` holds no transaction of its own: a control
        // batch there is nothing this machine wrote.
        if batch.is_control() {
            return Ok(());
        }
        TxnCoordinator::replay(self, key, value).map_err(|e| e.to_string())
    }

    fn finish_loading(&mut self, now: TimestampMs) -> Vec<TxnOutput> {
        TxnCoordinator::finish_loading(self, now)
    }

    fn unload(&mut self) -> Vec<TxnOutput> {
        TxnCoordinator::unload(self)
    }

    fn tick(&mut self, now: TimestampMs) -> Vec<TxnOutput> {
        TxnCoordinator::tick(self, now)
    }

    fn next_deadline(&self) -> Option<TimestampMs> {
        TxnCoordinator::next_deadline(self)
    }
}

/// The transaction coordinator as the runtime hosts it.
pub(crate) struct Transactions {
    config: TxnConfig,
    /// Producer ids ready for the state machines (see the module docs).
    spare_ids: Arc<Mutex<Vec<i64>>>,
    /// The broker (which owns this service): markers are written through it.
    broker: Weak<Broker>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Transactions {
    fn machine(&self, partition: u32, epoch: LeaderEpoch) -> TxnCoordinator {
        let spare = self.spare_ids.clone();
        let mut config = self.config.clone();
        if let Some(b) = self.broker.upgrade() {
            config.transaction_version = b.image().feature_level(TRANSACTION_VERSION);
        }
        TxnCoordinator::new(
            config,
            partition,
            epoch,
            Box::new(move || lock(&spare).pop().map(ProducerId)),
        )
    }
}

impl CoordinatorKind for Transactions {
    type Machine = TxnCoordinator;

    fn topic(&self) -> &'static str {
        TRANSACTION_STATE_TOPIC
    }

    fn loading(&self, partition: u32, epoch: LeaderEpoch) -> TxnCoordinator {
        self.machine(partition, epoch)
    }

    fn unloaded(&self) -> TxnCoordinator {
        let mut c = self.machine(0, LeaderEpoch(-1));
        c.unload();
        c
    }

    fn effect(&self, partition: u32, epoch: LeaderEpoch, markers: TxnMarkers) {
        if let Some(broker) = self.broker.upgrade() {
            markers::spawn(broker, partition, epoch, markers);
        }
    }
}

/// The transaction coordinator service.
pub struct TxnService {
    runtime: Arc<CoordinatorRuntime<Transactions>>,
    /// Connections to other brokers, by (client id, address): one per
    /// purpose, since a broker answers a connection's requests in order and a
    /// WriteTxnMarkers may wait for its ISR. At most one per purpose and broker.
    peers: Mutex<std::collections::HashMap<(&'static str, String), Arc<Connection>>>,
}

impl TxnService {
    /// A service configured from the broker's config (Kafka's
    /// `transaction.*` settings), with no shard yet.
    pub fn new(config: &StaticConfig, broker: Weak<Broker>) -> TxnService {
        let mut tc = TxnConfig::default();
        let int = |k: &str| config.get_i64(k);
        if let Some(v) = int("transaction.max.timeout.ms") {
            tc.transaction_max_timeout_ms = v.clamp(1, i32::MAX as i64) as i32;
        }
        if let Some(v) = int("transactional.id.expiration.ms") {
            tc.transactional_id_expiration_ms = v;
        }
        if let Some(v) = int("transaction.abort.timed.out.transaction.cleanup.interval.ms") {
            tc.abort_timed_out_interval_ms = v;
        }
        if let Some(v) = int("transaction.remove.expired.transaction.cleanup.interval.ms") {
            tc.remove_expired_interval_ms = v;
        }
        if let Some(v) = int("transaction.state.log.num.partitions") {
            tc.transaction_state_partitions = v.clamp(1, i32::MAX as i64) as u32;
        }
        if let Some(v) = int("offsets.topic.num.partitions") {
            tc.offsets_partitions = v.clamp(1, i32::MAX as i64) as u32;
        }
        TxnService {
            runtime: Arc::new(CoordinatorRuntime::new(Transactions {
                config: tc,
                spare_ids: Arc::new(Mutex::new(Vec::new())),
                broker,
            })),
            peers: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Wakes the leadership follower (after a role change).
    pub fn wake(&self) {
        self.runtime.wake();
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn partition_for(&self, transactional_id: &str) -> u32 {
        samsa_coordinator::partition_for(
            transactional_id,
            self.runtime.kind().config.transaction_state_partitions,
        )
    }

    /// Whether `transactional_id`'s shard is loaded and serving here.
    pub fn serves(&self, transactional_id: &str) -> bool {
        self.runtime.serves(self.partition_for(transactional_id))
    }

    /// Creates `__transaction_state` if it does not exist yet (as Kafka does
    /// on the first FindCoordinator for a transactional id). Returns whether
    /// it exists now.
    pub fn ensure_topic(&self, broker: &Broker) -> bool {
        ensure_topic(broker, &TRANSACTION_STATE_SPEC)
    }

    /// Follows `__transaction_state` leadership until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        broker: Arc<Broker>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        self.runtime.clone().run(broker, shutdown).await
    }

    /// Runs one state-changing call for `transactional_id` on its shard and
    /// waits for its reply. A spare producer id is ready for the state
    /// machine first; `None` if the reply channel closed (shutdown).
    pub async fn call<F>(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        f: F,
    ) -> Option<TxnResponse>
    where
        F: FnOnce(&mut TxnCoordinator, TimestampMs, ReplyToken) -> Vec<TxnOutput>,
    {
        self.refill_producer_ids(broker).await;
        let level = broker.image().feature_level(TRANSACTION_VERSION);
        self.runtime
            .call(
                broker,
                self.partition_for(transactional_id),
                |c, now, token| {
                    c.set_transaction_version(level);
                    f(c, now, token)
                },
            )
            .await
    }

    /// Runs a read-only call on the shard of `partition`.
    pub async fn read<R>(
        &self,
        broker: &Broker,
        partition: u32,
        f: impl FnOnce(&TxnCoordinator) -> R,
    ) -> R {
        self.runtime.read(broker, partition, f).await
    }

    /// Runs a read-only call on every shard of this broker.
    pub async fn read_all<R>(&self, f: impl Fn(&TxnCoordinator) -> R) -> Vec<R> {
        self.runtime.read_all(f).await
    }

    /// Reports markers written (or given up, for a deleted topic) to the
    /// shard that asked for them, if it still leads in `epoch`.
    pub(crate) async fn markers_written(
        &self,
        broker: &Broker,
        partition: u32,
        epoch: LeaderEpoch,
        markers: &TxnMarkers,
        done: &[samsa_model::TopicPartition],
    ) {
        self.runtime
            .notify(broker, partition, epoch, |c, now| {
                c.markers_written(
                    now,
                    &markers.transactional_id,
                    markers.producer_id,
                    markers.producer_epoch,
                    done,
                )
            })
            .await
    }

    /// Whether the shard of `partition` still leads in `epoch` (a marker
    /// sender for an older leadership stops).
    pub(crate) fn leads(&self, partition: u32, epoch: LeaderEpoch) -> bool {
        self.runtime.leads(partition, epoch)
    }

    /// A connection to the broker at `addr` for `client_id`'s requests
    /// (reused while open), whose requests time out after `timeout`.
    pub(crate) async fn peer(
        &self,
        client_id: &'static str,
        addr: &str,
        timeout: std::time::Duration,
    ) -> Result<Arc<Connection>, samsa_client::ClientError> {
        let key = (client_id, addr.to_string());
        if let Some(c) = lock(&self.peers).get(&key).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let config = Arc::new(ConnectionConfig {
            client_id: client_id.into(),
            request_timeout: timeout,
            ..ConnectionConfig::default()
        });
        let conn = Connection::connect(addr, config).await?;
        lock(&self.peers).insert(key, conn.clone());
        Ok(conn)
    }

    async fn refill_producer_ids(&self, broker: &Arc<Broker>) {
        let spare = &self.runtime.kind().spare_ids;
        if !lock(spare).is_empty() {
            return;
        }
        match broker.next_producer_id().await {
            Ok(id) => {
                let mut s = lock(spare);
                if s.len() < SPARE_PRODUCER_IDS_MAX {
                    s.push(id);
                }
            }
            // The state machine answers COORDINATOR_LOAD_IN_PROGRESS without
            // one (as Kafka does while it fetches a block); the client retries.
            Err(e) => {
                tracing::warn!(error = %e, "allocating a producer id for the transaction coordinator")
            }
        }
    }
}

/// The error code an old request version expects: PRODUCER_FENCED (90)
/// became a code of its own in InitProducerId v4 and AddPartitionsToTxn,
/// AddOffsetsToTxn and EndTxn v2 (`fenced_since`); older versions get
/// INVALID_PRODUCER_EPOCH (47), as Kafka's `KafkaApis` maps it.
pub(crate) fn fenced_code(code: i16, version: i16, fenced_since: i16) -> i16 {
    use samsa_coordinator::txn::txn_codes::{INVALID_PRODUCER_EPOCH, PRODUCER_FENCED};
    if code == PRODUCER_FENCED && version < fenced_since {
        INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

#[cfg(test)]
pub(crate) mod tests;
