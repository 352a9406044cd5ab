//! The cluster view: bootstrap, Metadata (brokers, topics, partition leaders),
//! one lazily opened connection per broker, routing to partition leaders and
//! group coordinators.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::{
    find_coordinator_response, metadata_request::MetadataRequestTopic, ApiKey, BrokerId,
    FindCoordinatorRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::connection::{Connection, ConnectionConfig};
use crate::error::ClientError;

/// Kafka error codes the routing logic reacts to.
pub(crate) mod codes {
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const OFFSET_NOT_AVAILABLE: i16 = 78;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
}

/// Settings of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` pairs tried in order until one answers.
    pub bootstrap_servers: Vec<String>,
    pub connection: ConnectionConfig,
    /// Pause before retrying after a retriable error.
    pub retry_backoff: Duration,
    /// How many times a retriable metadata/coordinator lookup is retried.
    pub retries: u32,
}

impl ClientConfig {
    /// Defaults for one bootstrap list (comma-separated `host:port`s allowed).
    pub fn new(bootstrap: &str) -> Self {
        ClientConfig {
            bootstrap_servers: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            connection: ConnectionConfig::default(),
            retry_backoff: Duration::from_millis(100),
            retries: 20,
        }
    }
}

/// A broker as Metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition of a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
    /// Eligible leader replicas (KIP-966) as DescribeTopicPartitions names
    /// them; `None` when the answer came from Metadata, which has no ELR.
    pub elr: Option<Vec<i32>>,
    /// The last known ELR (KIP-966); `None` as for `elr`.
    pub last_known_elr: Option<Vec<i32>>,
}

impl PartitionInfo {
    /// (index, error), (leader, leader epoch), [replicas, ISR, offline
    /// replicas] as a response carries them; no ELR lists (Metadata's shape).
    pub(crate) fn without_elr(
        (partition, error_code): (i32, i16),
        (leader, leader_epoch): (BrokerId, i32),
        [replicas, isr, offline]: [&[BrokerId]; 3],
    ) -> PartitionInfo {
        PartitionInfo {
            partition,
            error_code,
            leader: leader.0,
            leader_epoch,
            replicas: ids(replicas),
            isr: ids(isr),
            offline: ids(offline),
            elr: None,
            last_known_elr: None,
        }
    }
}

/// Broker ids as plain integers.
pub(crate) fn ids(brokers: &[BrokerId]) -> Vec<i32> {
    brokers.iter().map(|b| b.0).collect()
}

/// One topic as Metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub error_code: i16,
    /// The topic id (all zero if the broker does not send one).
    pub topic_id: [u8; 16],
    pub is_internal: bool,
    /// Sorted by partition index.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// The topic id in the usual 8-4-4-4-12 hex form, if not all zero.
    pub fn topic_id_string(&self) -> Option<String> {
        if self.topic_id == [0; 16] {
            return None;
        }
        let h: String = self.topic_id.iter().map(|b| format!("{b:02x}")).collect();
        Some(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }
}

/// A snapshot of what the client knows about the cluster.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

struct Inner {
    config: ClientConfig,
    conn_config: Arc<ConnectionConfig>,
    bootstrap: tokio::sync::Mutex<Option<Arc<Connection>>>,
    slots: Mutex<HashMap<i32, Slot>>,
    cluster: Mutex<Cluster>,
}

/// A handle to a cluster; clones share connections and metadata.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    /// Connects to the first reachable bootstrap server and loads the broker list.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.bootstrap_servers.is_empty() {
            return Err(ClientError::Invalid("no bootstrap server given".into()));
        }
        let conn_config = Arc::new(config.connection.clone());
        let client = Client {
            inner: Arc::new(Inner {
                config,
                conn_config,
                bootstrap: tokio::sync::Mutex::new(None),
                slots: Mutex::new(HashMap::new()),
                cluster: Mutex::new(Cluster::default()),
            }),
        };
        client.any_connection().await?;
        client.fetch_metadata(Some(&[]), false).await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// What the client currently knows.
    pub fn cluster(&self) -> Cluster {
        locked(&self.inner.cluster).clone()
    }

    /// A live connection to some broker (the bootstrap one if it is up).
    pub async fn any_connection(&self) -> Result<Arc<Connection>, ClientError> {
        let mut boot = self.inner.bootstrap.lock().await;
        if let Some(c) = boot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let mut last = None;
        let mut addrs: Vec<String> = self.inner.config.bootstrap_servers.clone();
        addrs.extend(self.cluster().brokers.values().map(BrokerInfo::addr));
        for addr in addrs {
            match Connection::connect(&addr, self.inner.conn_config.clone()).await {
                Ok(c) => {
                    *boot = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "bootstrap server unreachable");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Invalid("no bootstrap server given".into())))
    }

    /// The connection to broker `id` (opened on first use, reopened if closed).
    pub async fn broker_connection(&self, id: i32) -> Result<Arc<Connection>, ClientError> {
        let slot = locked(&self.inner.slots).entry(id).or_default().clone();
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let mut broker = self.cluster().brokers.get(&id).cloned();
        if broker.is_none() {
            self.fetch_metadata(Some(&[]), false).await?;
            broker = self.cluster().brokers.get(&id).cloned();
        }
        let broker = broker.ok_or_else(|| {
            ClientError::Invalid(format!("broker {id} is not in the cluster metadata"))
        })?;
        let conn = Connection::connect(&broker.addr(), self.inner.conn_config.clone()).await?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Sends to any broker at the negotiated version; `build` makes the request
    /// for that version.
    pub async fn send_any<R: Request>(
        &self,
        key: ApiKey,
        build: impl Fn(i16) -> R,
    ) -> Result<(R::Response, i16), ClientError> {
        let conn = self.any_connection().await?;
        let v = conn.version(key)?;
        let resp = conn.send_version(&build(v), v).await?;
        Ok((resp, v))
    }

    /// Sends to broker `id` at the negotiated version.
    pub async fn send_to<R: Request>(
        &self,
        id: i32,
        key: ApiKey,
        build: impl Fn(i16) -> R,
    ) -> Result<(R::Response, i16), ClientError> {
        let conn = self.broker_connection(id).await?;
        let v = conn.version(key)?;
        let resp = conn.send_version(&build(v), v).await?;
        Ok((resp, v))
    }

    /// The broker admin requests go to: the controller Metadata names if it is
    /// a known broker, else any broker.
    pub async fn admin_connection(&self) -> Result<Arc<Connection>, ClientError> {
        let cluster = self.cluster();
        if cluster.brokers.contains_key(&cluster.controller_id) {
            if let Ok(c) = self.broker_connection(cluster.controller_id).await {
                return Ok(c);
            }
        }
        self.any_connection().await
    }

    /// Metadata for `topics` (`None` = all topics, `Some(&[])` = brokers only);
    /// updates the cache and returns the topics in the answer (with their errors).
    pub async fn fetch_metadata(
        &self,
        topics: Option<&[String]>,
        allow_auto_create: bool,
    ) -> Result<Vec<TopicInfo>, ClientError> {
        let (resp, _v) = self
            .send_any(ApiKey::Metadata, |_v| {
                MetadataRequest::default()
                    .with_topics(topics.map(|ts| {
                        ts.iter()
                            .map(|t| {
                                MetadataRequestTopic::default()
                                    .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                            })
                            .collect()
                    }))
                    .with_allow_auto_topic_creation(allow_auto_create)
            })
            .await?;
        let mut out = Vec::with_capacity(resp.topics.len());
        let mut cluster = locked(&self.inner.cluster);
        cluster.cluster_id = resp.cluster_id.as_ref().map(|s| s.to_string());
        cluster.controller_id = resp.controller_id.0;
        cluster.brokers = resp
            .brokers
            .iter()
            .map(|b| {
                (
                    b.node_id.0,
                    BrokerInfo {
                        id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                    },
                )
            })
            .collect();
        if topics.is_none() {
            cluster.topics.clear();
        }
        for t in &resp.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| {
                    PartitionInfo::without_elr(
                        (p.partition_index, p.error_code),
                        (p.leader_id, p.leader_epoch),
                        [&p.replica_nodes, &p.isr_nodes, &p.offline_replicas],
                    )
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let info = TopicInfo {
                name: name.clone(),
                error_code: t.error_code,
                topic_id: *t.topic_id.as_bytes(),
                is_internal: t.is_internal,
                partitions,
            };
            if t.error_code == 0 {
                cluster.topics.insert(name, info.clone());
            } else {
                cluster.topics.remove(&name);
            }
            out.push(info);
        }
        Ok(out)
    }

    /// The metadata of one topic, fetched fresh. Waits out LEADER_NOT_AVAILABLE
    /// (a topic being created); other topic errors are returned.
    pub async fn topic(
        &self,
        topic: &str,
        allow_auto_create: bool,
    ) -> Result<TopicInfo, ClientError> {
        let names = [topic.to_string()];
        let mut attempt = 0;
        loop {
            let infos = self.fetch_metadata(Some(&names), allow_auto_create).await?;
            let info = infos.into_iter().find(|t| t.name == topic).ok_or_else(|| {
                ClientError::at(
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    None,
                    format!("topic {topic}"),
                )
            })?;
            let leaderless = info.partitions.iter().any(|p| p.leader < 0);
            let retry = info.error_code == codes::LEADER_NOT_AVAILABLE
                || (info.error_code == 0 && (leaderless || info.partitions.is_empty()));
            if retry && attempt < self.inner.config.retries {
                attempt += 1;
                tokio::time::sleep(self.inner.config.retry_backoff).await;
                continue;
            }
            ClientError::check(info.error_code, None, format!("topic {topic}"))?;
            return Ok(info);
        }
    }

    /// The cached metadata of `topic`, fetching it if unknown.
    pub async fn cached_topic(
        &self,
        topic: &str,
        allow_auto_create: bool,
    ) -> Result<TopicInfo, ClientError> {
        if let Some(t) = locked(&self.inner.cluster).topics.get(topic) {
            return Ok(t.clone());
        }
        self.topic(topic, allow_auto_create).await
    }

    /// The leader of a partition from the cache (refreshing once if unknown).
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<i32, ClientError> {
        for refresh in [false, true] {
            let info = if refresh {
                self.topic(topic, false).await?
            } else {
                self.cached_topic(topic, false).await?
            };
            if let Some(p) = info.partitions.iter().find(|p| p.partition == partition) {
                if p.leader >= 0 {
                    return Ok(p.leader);
                }
            } else if refresh {
                return Err(ClientError::at(
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(format!("{topic} has {} partitions", info.partitions.len())),
                    format!("partition {topic}-{partition}"),
                ));
            }
        }
        Err(ClientError::at(
            codes::LEADER_NOT_AVAILABLE,
            None,
            format!("partition {topic}-{partition}"),
        ))
    }

    /// The cached partition count of `topic`.
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        locked(&self.inner.cluster)
            .topics
            .get(topic)
            .map(|t| t.partitions.len() as i32)
    }

    /// Forgets cached topic metadata so the next lookup asks the cluster.
    pub fn invalidate_topic(&self, topic: &str) {
        locked(&self.inner.cluster).topics.remove(topic);
    }

    /// The coordinator broker of a consumer group (FindCoordinator, retried
    /// while the coordinator is loading or not available).
    pub async fn group_coordinator(&self, group: &str) -> Result<i32, ClientError> {
        self.coordinator(0, group, "group").await
    }

    /// The transaction coordinator broker of `transactional_id` (FindCoordinator
    /// with key type 1, retried as for groups).
    pub async fn transaction_coordinator(
        &self,
        transactional_id: &str,
    ) -> Result<i32, ClientError> {
        self.coordinator(1, transactional_id, "transactional id")
            .await
    }

    /// FindCoordinator for `key` of `key_type` (0 group, 1 transaction).
    async fn coordinator(&self, key_type: i8, key: &str, what: &str) -> Result<i32, ClientError> {
        let group = key;
        let mut attempt = 0;
        loop {
            let (resp, v) = self
                .send_any(ApiKey::FindCoordinator, |v| {
                    let req = FindCoordinatorRequest::default().with_key_type(key_type);
                    if v >= 4 {
                        req.with_coordinator_keys(vec![StrBytes::from_string(group.to_string())])
                    } else {
                        req.with_key(StrBytes::from_string(group.to_string()))
                    }
                })
                .await?;
            let (code, message, node, host, port) = if v >= 4 {
                let c: find_coordinator_response::Coordinator =
                    resp.coordinators.first().cloned().ok_or_else(|| {
                        ClientError::Invalid("FindCoordinator returned no coordinator".into())
                    })?;
                (
                    c.error_code,
                    c.error_message.map(|m| m.to_string()),
                    c.node_id.0,
                    c.host.to_string(),
                    c.port,
                )
            } else {
                (
                    resp.error_code,
                    resp.error_message.map(|m| m.to_string()),
                    resp.node_id.0,
                    resp.host.to_string(),
                    resp.port,
                )
            };
            let retriable = matches!(
                code,
                codes::COORDINATOR_NOT_AVAILABLE
                    | codes::COORDINATOR_LOAD_IN_PROGRESS
                    | codes::NOT_COORDINATOR
            );
            if retriable && attempt < self.inner.config.retries {
                attempt += 1;
                tokio::time::sleep(self.inner.config.retry_backoff * 2).await;
                continue;
            }
            ClientError::check(code, message, format!("{what} {group}"))?;
            let mut cluster = locked(&self.inner.cluster);
            cluster.brokers.entry(node).or_insert(BrokerInfo {
                id: node,
                host,
                port,
                rack: None,
            });
            return Ok(node);
        }
    }

    /// Closes the connection slot of broker `id` so the next use reconnects.
    pub async fn drop_connection(&self, id: i32) {
        let slot = locked(&self.inner.slots).get(&id).cloned();
        if let Some(slot) = slot {
            *slot.lock().await = None;
        }
    }
}
