//! The broker's metrics, exposed in the Prometheus text format.
//!
//! Names follow Prometheus conventions (`snake_case`, base units, `_total`
//! for counters) and carry the meaning of Kafka's JMX metrics; the mapping
//! is in the table of `ARCHITECTURE.md` ("Metrics") and next to each field
//! below. This crate knows nothing of the broker: the broker calls the
//! recording methods on its request and data paths, and hands a [`State`]
//! snapshot (partitions, logs, directories, groups) to [`Metrics::encode`]
//! at scrape time, so gauges describing state are computed once per scrape
//! instead of being kept up to date on hot paths.
//!
//! Cardinality is bounded: at most [`TOPIC_LABELS_MAX`] topics get their
//! own `topic` label on the per-topic counters (later ones are counted under
//! `topic="_other"`), and a topic's series disappear with the topic.

mod process;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Topics with a `topic` label of their own on the per-topic counters.
pub const TOPIC_LABELS_MAX: usize = 10_000;

/// Lag series (group, partition) reported per scrape.
pub const GROUP_LAG_SERIES_MAX: usize = 50_000;

/// The label that counts topics beyond [`TOPIC_LABELS_MAX`].
pub const OTHER_TOPIC: &str = "_other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirLabels {
    dir: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    group: String,
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupStateLabels {
    r#type: String,
    state: String,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms .. ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// One hosted partition, as the broker sees it at scrape time.
#[derive(Clone, Debug, Default)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    /// This broker leads it.
    pub leader: bool,
    /// Led here and its ISR is smaller than its replica set
    /// (Kafka: `UnderReplicatedPartitions`).
    pub under_replicated: bool,
    /// Led here and its ISR is smaller than `min.insync.replicas`
    /// (Kafka: `UnderMinIsrPartitionCount`).
    pub under_min_isr: bool,
    pub log_size_bytes: u64,
    pub log_segments: u64,
}

/// A group's committed position in one partition against the partition's
/// end (its high watermark, which consumers read up to).
#[derive(Clone, Debug, Default)]
pub struct GroupLag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// Records between the committed offset and the end (never negative).
    pub records: i64,
}

/// One topic's traffic counters (shared with the registry's series).
#[derive(Clone, Debug)]
pub struct TopicCounters {
    bytes_in: Counter,
    records_in: Counter,
    bytes_out: Counter,
}

impl TopicCounters {
    /// A producer's batch of `records` records and `bytes` bytes appended.
    pub fn appended(&self, bytes: u64, records: u64) {
        self.bytes_in.inc_by(bytes);
        self.records_in.inc_by(records);
    }

    /// `bytes` bytes of record batches sent to a consumer.
    pub fn sent(&self, bytes: u64) {
        self.bytes_out.inc_by(bytes);
    }
}

/// An open connection, counted in `samsa_connections` until dropped.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What the broker knows at scrape time.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// Every topic of the cluster (series of deleted topics are dropped).
    pub topics: BTreeSet<String>,
    /// Partitions of the cluster without a live leader
    /// (Kafka: `OfflinePartitionsCount`, reported by the controller).
    pub offline_partitions: u64,
    /// This node leads the metadata quorum (Kafka: `ActiveControllerCount`).
    pub active_controller: bool,
    pub partitions: Vec<PartitionState>,
    /// `(directory, free bytes)` for every log directory.
    pub log_dirs: Vec<(String, u64)>,
    /// `(group type, state, count)` of the groups this node coordinates.
    pub groups: Vec<(String, String, u64)>,
    /// Lag of the groups this node coordinates, at most
    /// [`GROUP_LAG_SERIES_MAX`] entries.
    pub lag: Vec<GroupLag>,
}

/// The broker's metric families and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    /// Kafka: `kafka.network:type=RequestMetrics,name=RequestsPerSec,request=*`.
    requests: Family<ApiLabels, Counter>,
    /// Kafka: `kafka.network:type=RequestMetrics,name=TotalTimeMs,request=*`.
    request_seconds: Family<ApiLabels, Histogram, fn() -> Histogram>,
    /// Kafka: `BrokerTopicMetrics` `BytesInPerSec` / `MessagesInPerSec` /
    /// `BytesOutPerSec` (consumers only: like Kafka's, replication traffic
    /// is not counted here).
    bytes_in: Family<TopicLabels, Counter>,
    records_in: Family<TopicLabels, Counter>,
    bytes_out: Family<TopicLabels, Counter>,
    /// Kafka: `kafka.server:type=socket-server-metrics,name=connection-count`.
    connections: Family<ListenerLabels, Gauge>,
    /// Kafka: `connection-creation-total`.
    connections_created: Family<ListenerLabels, Counter>,
    partitions: Gauge,
    leaders: Gauge,
    under_replicated: Gauge,
    under_min_isr: Gauge,
    offline: Gauge,
    active_controller: Gauge,
    log_size: Family<PartitionLabels, Gauge>,
    log_segments: Family<PartitionLabels, Gauge>,
    dir_free: Family<DirLabels, Gauge>,
    groups: Family<GroupStateLabels, Gauge>,
    /// Beyond Kafka (Burrow's job there): consumer lag in records.
    lag_records: Family<LagLabels, Gauge>,
    process: process::ProcessMetrics,
    /// Topics that have a label of their own (bounded by [`TOPIC_LABELS_MAX`]).
    labelled_topics: Mutex<BTreeSet<String>>,
    /// Serialises scrapes: state gauges are set, then encoded.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("samsa");
        let requests = Family::<ApiLabels, Counter>::default();
        registry.register("requests", "Requests handled, by API", requests.clone());
        let request_seconds =
            Family::<ApiLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its response being ready, by API",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let topic_counter =
            |registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>| {
                let f = Family::<TopicLabels, Counter>::default();
                match unit {
                    Some(u) => registry.register_with_unit(name, help, u, f.clone()),
                    None => registry.register(name, help, f.clone()),
                }
                f
            };
        let bytes_in = topic_counter(
            &mut registry,
            "topic_in",
            "Bytes of record batches appended by producers, by topic",
            Some(Unit::Bytes),
        );
        let records_in = topic_counter(
            &mut registry,
            "topic_records_in",
            "Records appended by producers, by topic",
            None,
        );
        let bytes_out = topic_counter(
            &mut registry,
            "topic_out",
            "Bytes of record batches sent to consumers (not followers), by topic",
            Some(Unit::Bytes),
        );
        let connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections",
            "Open client connections, by listener",
            connections.clone(),
        );
        let connections_created = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections_created",
            "Connections accepted, by listener",
            connections_created.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let partitions = gauge(
            &mut registry,
            "partitions",
            "Partitions hosted by this broker",
        );
        let leaders = gauge(
            &mut registry,
            "leader_partitions",
            "Partitions led by this broker",
        );
        let under_replicated = gauge(
            &mut registry,
            "under_replicated_partitions",
            "Partitions led here whose ISR is smaller than their replica set",
        );
        let under_min_isr = gauge(
            &mut registry,
            "under_min_isr_partitions",
            "Partitions led here whose ISR is smaller than min.insync.replicas",
        );
        let offline = gauge(
            &mut registry,
            "offline_partitions",
            "Partitions of the cluster without a live leader",
        );
        let active_controller = gauge(
            &mut registry,
            "active_controller",
            "1 when this node leads the metadata quorum",
        );
        let log_size = Family::<PartitionLabels, Gauge>::default();
        registry.register_with_unit(
            "log_size",
            "Size of a hosted partition's log",
            Unit::Bytes,
            log_size.clone(),
        );
        let log_segments = Family::<PartitionLabels, Gauge>::default();
        registry.register(
            "log_segments",
            "Segments of a hosted partition's log",
            log_segments.clone(),
        );
        let dir_free = Family::<DirLabels, Gauge>::default();
        registry.register_with_unit(
            "log_dir_free",
            "Free space in a log directory's file system",
            Unit::Bytes,
            dir_free.clone(),
        );
        let groups = Family::<GroupStateLabels, Gauge>::default();
        registry.register(
            "groups",
            "Groups coordinated by this broker, by type (classic, consumer) and state",
            groups.clone(),
        );
        let lag_records = Family::<LagLabels, Gauge>::default();
        registry.register(
            "group_lag_records",
            "Records between a group's committed offset and the partition's high watermark (groups coordinated here)",
            lag_records.clone(),
        );
        let process = process::ProcessMetrics::register(&mut registry);
        Metrics {
            registry,
            requests,
            request_seconds,
            bytes_in,
            records_in,
            bytes_out,
            connections,
            connections_created,
            partitions,
            leaders,
            under_replicated,
            under_min_isr,
            offline,
            active_controller,
            log_size,
            log_segments,
            dir_free,
            groups,
            lag_records,
            process,
            labelled_topics: Mutex::new(BTreeSet::new()),
            scrape: Mutex::new(()),
        }
    }

    /// One request of `api` answered after `elapsed`.
    pub fn request(&self, api: &'static str, elapsed: Duration) {
        let labels = ApiLabels { api };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    fn topic_label(&self, topic: &str) -> TopicLabels {
        let mut labelled = match self.labelled_topics.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if labelled.contains(topic) {
            return TopicLabels {
                topic: topic.to_string(),
            };
        }
        if labelled.len() < TOPIC_LABELS_MAX {
            labelled.insert(topic.to_string());
            return TopicLabels {
                topic: topic.to_string(),
            };
        }
        TopicLabels {
            topic: OTHER_TOPIC.to_string(),
        }
    }

    /// The per-topic counters of `topic`, for its partitions to keep: the
    /// produce and fetch paths then only add to atomics (no label lookup,
    /// no allocation per batch).
    pub fn topic_counters(&self, topic: &str) -> TopicCounters {
        let l = self.topic_label(topic);
        TopicCounters {
            bytes_in: self.bytes_in.get_or_create(&l).clone(),
            records_in: self.records_in.get_or_create(&l).clone(),
            bytes_out: self.bytes_out.get_or_create(&l).clone(),
        }
    }

    /// A connection accepted on `listener`; it counts as open until the
    /// returned guard is dropped.
    pub fn connection(&self, listener: &str) -> OpenConnection {
        let labels = ListenerLabels {
            listener: listener.to_string(),
        };
        let open = self.connections.get_or_create(&labels).clone();
        open.inc();
        self.connections_created.get_or_create(&labels).inc();
        OpenConnection(open)
    }

    /// The text exposition (`text/plain; version=0.0.4` compatible; the
    /// OpenMetrics text format that `prometheus-client` writes), with the state
    /// gauges taken from `state`.
    pub fn encode(&self, state: &State) -> String {
        let _scrape = match self.scrape.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        self.set_state(state);
        self.process.refresh();
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn set_state(&self, s: &State) {
        self.forget_deleted_topics(&s.topics);
        let count = |f: fn(&PartitionState) -> bool| s.partitions.iter().filter(|p| f(p)).count();
        self.partitions.set(s.partitions.len() as i64);
        self.leaders.set(count(|p| p.leader) as i64);
        self.under_replicated
            .set(count(|p| p.under_replicated) as i64);
        self.under_min_isr.set(count(|p| p.under_min_isr) as i64);
        self.offline.set(s.offline_partitions as i64);
        self.active_controller.set(i64::from(s.active_controller));
        self.log_size.clear();
        self.log_segments.clear();
        for p in &s.partitions {
            let l = PartitionLabels {
                topic: p.topic.clone(),
                partition: p.partition.to_string(),
            };
            self.log_size.get_or_create(&l).set(p.log_size_bytes as i64);
            self.log_segments
                .get_or_create(&l)
                .set(p.log_segments as i64);
        }
        self.dir_free.clear();
        for (dir, free) in &s.log_dirs {
            self.dir_free
                .get_or_create(&DirLabels { dir: dir.clone() })
                .set(*free as i64);
        }
        self.set_lag(&s.lag);
        self.groups.clear();
        for (kind, state, n) in &s.groups {
            self.groups
                .get_or_create(&GroupStateLabels {
                    r#type: kind.clone(),
                    state: state.clone(),
                })
                .set(*n as i64);
        }
    }

    fn set_lag(&self, lag: &[GroupLag]) {
        self.lag_records.clear();
        for g in lag.iter().take(GROUP_LAG_SERIES_MAX) {
            let l = LagLabels {
                group: g.group.clone(),
                topic: g.topic.clone(),
                partition: g.partition.to_string(),
            };
            self.lag_records.get_or_create(&l).set(g.records.max(0));
        }
    }

    fn forget_deleted_topics(&self, topics: &BTreeSet<String>) {
        let mut labelled = match self.labelled_topics.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        let gone: Vec<String> = labelled.difference(topics).cloned().collect();
        for topic in gone {
            let l = TopicLabels { topic };
            for f in [&self.bytes_in, &self.records_in, &self.bytes_out] {
                f.remove(&l);
            }
            labelled.remove(&l.topic);
        }
    }
}

#[cfg(test)]
mod tests;
