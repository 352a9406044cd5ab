//! Kafka config definitions: names, types, defaults, validation and the broker
//! keys that supply topic defaults, as in Apache Kafka 4.x.
//!
//! A topic's effective value of a key is its own override (a `Config` metadata
//! record), else the broker's value of the synonym key (from `server.properties`
//! or `--set`), else the built-in default.

use std::collections::BTreeMap;

/// The type of a config value, as DescribeConfigs reports it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Password,
}

impl ConfigType {
    /// Kafka's DescribeConfigs `config_type` code.
    pub const fn wire_code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Password => 9,
        }
    }
}

/// Allowed values beyond the type.
#[derive(Copy, Clone, Debug)]
pub enum Validator {
    Any,
    /// Inclusive integer range.
    Range(i64, i64),
    /// Inclusive floating point range.
    DoubleRange(f64, f64),
    /// One of these strings (case-insensitive).
    OneOf(&'static [&'static str]),
    /// A comma-separated non-empty list of these strings.
    ListOf(&'static [&'static str]),
}

/// A broker key that supplies a topic default, with the factor that turns its
/// unit into the topic key's unit (e.g. hours → ms).
#[derive(Copy, Clone, Debug)]
pub struct Synonym {
    pub name: &'static str,
    pub factor: i64,
}

const fn syn(name: &'static str) -> Synonym {
    Synonym { name, factor: 1 }
}

/// One config key.
#[derive(Copy, Clone, Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// The built-in default; `None` is Kafka's `null`.
    pub default: Option<&'static str>,
    pub validator: Validator,
    /// For topic keys: broker keys supplying the default, most specific first.
    pub synonyms: &'static [Synonym],
    /// Whether a user may see the value (passwords are hidden).
    pub sensitive: bool,
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";
const I64: (i64, i64) = (i64::MIN, i64::MAX);

macro_rules! def {
    ($name:expr, $ty:ident, $default:expr, $validator:expr, [$($syn:expr),*], $doc:expr) => {
        ConfigDef {
            name: $name,
            ty: ConfigType::$ty,
            default: $default,
            validator: $validator,
            synonyms: &[$($syn),*],
            sensitive: false,
            doc: $doc,
        }
    };
}

/// Topic-level configs (`kafka-configs --entity-type topics`).
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def!(
        "cleanup.policy",
        List,
        Some("delete"),
        Validator::ListOf(&["delete", "compact"]),
        [syn("log.cleanup.policy")],
        "Retention policy for old segments: delete and/or compact."
    ),
    def!(
        "compression.type",
        String,
        Some("producer"),
        Validator::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        [syn("compression.type")],
        "Final compression type for the topic; producer keeps the producer's codec."
    ),
    def!(
        "delete.retention.ms",
        Long,
        Some("86400000"),
        Validator::Range(0, i64::MAX),
        [syn("log.cleaner.delete.retention.ms")],
        "How long tombstones are kept in compacted topics."
    ),
    def!(
        "file.delete.delay.ms",
        Long,
        Some("60000"),
        Validator::Range(0, i64::MAX),
        [syn("log.segment.delete.delay.ms")],
        "Delay before a deleted segment file is removed."
    ),
    def!(
        "flush.messages",
        Long,
        Some(LONG_MAX),
        Validator::Range(1, i64::MAX),
        [syn("log.flush.interval.messages")],
        "Force an fsync after this many messages."
    ),
    def!(
        "flush.ms",
        Long,
        Some(LONG_MAX),
        Validator::Range(0, i64::MAX),
        [syn("log.flush.interval.ms")],
        "Force an fsync after this many milliseconds."
    ),
    def!(
        "index.interval.bytes",
        Int,
        Some("4096"),
        Validator::Range(0, i32::MAX as i64),
        [syn("log.index.interval.bytes")],
        "Bytes of log between offset index entries."
    ),
    def!(
        "max.compaction.lag.ms",
        Long,
        Some(LONG_MAX),
        Validator::Range(1, i64::MAX),
        [syn("log.cleaner.max.compaction.lag.ms")],
        "Longest a record may stay uncompacted."
    ),
    def!(
        "max.message.bytes",
        Int,
        Some("1048588"),
        Validator::Range(0, i32::MAX as i64),
        [syn("message.max.bytes")],
        "Largest record batch size allowed."
    ),
    def!(
        "message.timestamp.after.max.ms",
        Long,
        Some("3600000"),
        Validator::Range(0, i64::MAX),
        [syn("log.message.timestamp.after.max.ms")],
        "Largest allowed amount a record timestamp may be ahead of the broker's clock."
    ),
    def!(
        "message.timestamp.before.max.ms",
        Long,
        Some(LONG_MAX),
        Validator::Range(0, i64::MAX),
        [syn("log.message.timestamp.before.max.ms")],
        "Largest allowed amount a record timestamp may be behind the broker's clock."
    ),
    def!(
        "message.timestamp.type",
        String,
        Some("CreateTime"),
        Validator::OneOf(&["CreateTime", "LogAppendTime"]),
        [syn("log.message.timestamp.type")],
        "Whether record timestamps are the producer's or the broker's append time."
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Double,
        Some("0.5"),
        Validator::DoubleRange(0.0, 1.0),
        [syn("log.cleaner.min.cleanable.ratio")],
        "Dirty ratio above which the log is compacted."
    ),
    def!(
        "min.compaction.lag.ms",
        Long,
        Some("0"),
        Validator::Range(0, i64::MAX),
        [syn("log.cleaner.min.compaction.lag.ms")],
        "Shortest a record stays uncompacted."
    ),
    def!(
        "min.insync.replicas",
        Int,
        Some("1"),
        Validator::Range(1, i32::MAX as i64),
        [syn("min.insync.replicas")],
        "Replicas that must acknowledge an acks=all write."
    ),
    def!(
        "preallocate",
        Boolean,
        Some("false"),
        Validator::Any,
        [syn("log.preallocate")],
        "Preallocate segment files."
    ),
    def!(
        "retention.bytes",
        Long,
        Some("-1"),
        Validator::Range(-1, i64::MAX),
        [syn("log.retention.bytes")],
        "Largest size a partition may grow to before old segments are deleted; -1 for no limit."
    ),
    def!(
        "retention.ms",
        Long,
        Some("604800000"),
        Validator::Range(-1, i64::MAX),
        [
            syn("log.retention.ms"),
            Synonym {
                name: "log.retention.minutes",
                factor: 60_000
            },
            Synonym {
                name: "log.retention.hours",
                factor: 3_600_000
            }
        ],
        "How long records are kept before old segments are deleted; -1 for no limit."
    ),
    def!(
        "segment.bytes",
        Int,
        Some("1073741824"),
        Validator::Range(1024 * 1024, i32::MAX as i64),
        [syn("log.segment.bytes")],
        "Segment file size."
    ),
    def!(
        "segment.index.bytes",
        Int,
        Some("10485760"),
        Validator::Range(4, i32::MAX as i64),
        [syn("log.index.size.max.bytes")],
        "Offset index size per segment."
    ),
    def!(
        "segment.jitter.ms",
        Long,
        Some("0"),
        Validator::Range(0, i64::MAX),
        [
            syn("log.roll.jitter.ms"),
            Synonym {
                name: "log.roll.jitter.hours",
                factor: 3_600_000
            }
        ],
        "Random jitter subtracted from segment.ms."
    ),
    def!(
        "segment.ms",
        Long,
        Some("604800000"),
        Validator::Range(1, i64::MAX),
        [
            syn("log.roll.ms"),
            Synonym {
                name: "log.roll.hours",
                factor: 3_600_000
            }
        ],
        "Time after which a segment is rolled even if not full."
    ),
    def!(
        "unclean.leader.election.enable",
        Boolean,
        Some("false"),
        Validator::Any,
        [syn("unclean.leader.election.enable")],
        "Whether an out-of-sync replica may become leader."
    ),
];

/// Broker-level configs samsa understands (`server.properties` keys).
pub const BROKER_CONFIGS: &[ConfigDef] = &[
    def!("node.id", Int, Some("1"), Validator::Range(0, i32::MAX as i64), [], "This node's id."),
    def!("broker.id", Int, None, Validator::Range(0, i32::MAX as i64), [], "Alias of node.id."),
    def!("process.roles", List, Some("broker,controller"), Validator::ListOf(&["broker", "controller"]), [], "The roles this node plays."),
    def!("listeners", List, Some("PLAINTEXT://127.0.0.1:9092"), Validator::Any, [], "Addresses to listen on."),
    def!("advertised.listeners", List, None, Validator::Any, [], "Addresses given to clients; default: listeners."),
    def!("listener.security.protocol.map", List, Some("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"), Validator::Any, [], "Security protocol of each listener name: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."),
    def!("controller.listener.names", List, None, Validator::Any, [], "Listener names used by the controller."),
    def!("controller.quorum.voters", List, None, Validator::Any, [], "Controller quorum voters, id@host:port."),
    def!("controller.quorum.election.timeout.ms", Int, Some("1000"), Validator::Range(10, 600_000), [], "Without a leader for this long (randomized up to twice as long) a voter starts an election."),
    def!("broker.rack", String, None, Validator::Any, [], "Rack of this broker."),
    def!("log.dirs", List, None, Validator::Any, [], "Log directories (JBOD): each holds partition replicas; new replicas go to the one with the fewest partitions."),
    def!("log.dir", String, Some("./samsa-data"), Validator::Any, [], "Data directory when log.dirs is unset."),
    def!("metadata.log.dir", String, None, Validator::Any, [], "Directory of the metadata log; default: the first of log.dirs."),
    def!("cordoned.log.dirs", List, None, Validator::Any, [], "Log directories that receive no new replicas (KIP-1066); existing replicas stay. `*` cordons every directory."),
    def!("num.partitions", Int, Some("1"), Validator::Range(1, i32::MAX as i64), [], "Partitions of auto-created topics and of CreateTopics with -1."),
    def!("default.replication.factor", Int, Some("1"), Validator::Range(1, i16::MAX as i64), [], "Replication factor of auto-created topics."),
    def!("auto.create.topics.enable", Boolean, Some("true"), Validator::Any, [], "Create topics on Metadata/Produce for unknown topics."),
    def!("delete.topic.enable", Boolean, Some("true"), Validator::Any, [], "Whether DeleteTopics is allowed."),
    def!("message.max.bytes", Int, Some("1048588"), Validator::Range(0, i32::MAX as i64), [], "Largest record batch size allowed."),
    def!("socket.request.max.bytes", Int, Some("104857600"), Validator::Range(1, i32::MAX as i64), [], "Largest request frame accepted; larger frames close the connection."),
    def!("queued.max.request.bytes", Long, Some("-1"), Validator::Range(-1, i64::MAX), [], "Bytes of request frames held in memory at once across all connections; a connection waits before reading a frame that does not fit. -1: no limit beyond socket.request.max.bytes per connection."),
    def!("queued.max.requests", Int, Some("500"), Validator::Range(1, i32::MAX as i64), [], "Requests in flight per connection before reading pauses."),
    def!("max.connections", Int, Some("2147483647"), Validator::Range(0, i32::MAX as i64), [], "Largest number of client connections."),
    def!("max.connections.per.ip", Int, Some("2147483647"), Validator::Range(0, i32::MAX as i64), [], "Largest number of connections from one IP address; new connections over it are closed."),
    def!("max.connections.per.ip.overrides", String, Some(""), Validator::Any, [], "Per-IP or hostname limits that override max.connections.per.ip, as host:count,host:count."),
    def!("max.request.partition.size.limit", Int, Some("2000"), Validator::Range(1, i32::MAX as i64), [], "Most partitions a DescribeTopicPartitions response holds; a request asking for more gets this many and a cursor."),
    def!("connections.max.reauth.ms", Long, Some("0"), Validator::Range(0, i64::MAX), [], "KIP-368: a SASL session lasts this long (sent to clients as session_lifetime_ms); a client must re-authenticate before it ends or its connection is closed on its next request. 0: sessions do not expire."),
    def!("connection.failed.authentication.delay.ms", Int, Some("100"), Validator::Range(0, i32::MAX as i64), [], "A failed SASL authentication is answered, and its connection closed, after this delay, which slows down password guessing."),
    def!("connections.max.idle.ms", Long, Some("600000"), Validator::Any, [], "Connections without a request for this long are closed; negative: never."),
    def!("http.listeners", List, Some("http://127.0.0.1:9644"), Validator::Any, [], "The HTTP listener for /metrics (Prometheus) and /health/live, /health/ready: one http://host:port; empty disables it. A default port already in use only logs a warning."),
    def!("log.segment.bytes", Int, Some("1073741824"), Validator::Range(14, i32::MAX as i64), [], "Segment file size."),
    def!("log.roll.ms", Long, None, Validator::Range(1, i64::MAX), [], "Segment roll time in ms."),
    def!("log.roll.hours", Int, Some("168"), Validator::Range(1, i32::MAX as i64), [], "Segment roll time in hours."),
    def!("log.roll.jitter.ms", Long, None, Validator::Range(0, i64::MAX), [], "Segment roll jitter in ms."),
    def!("log.roll.jitter.hours", Int, Some("0"), Validator::Range(0, i32::MAX as i64), [], "Segment roll jitter in hours."),
    def!("log.retention.ms", Long, None, Validator::Range(-1, i64::MAX), [], "Retention time in ms."),
    def!("log.retention.minutes", Int, None, Validator::Range(-1, i32::MAX as i64), [], "Retention time in minutes."),
    def!("log.retention.hours", Int, Some("168"), Validator::Range(-1, i32::MAX as i64), [], "Retention time in hours."),
    def!("log.retention.bytes", Long, Some("-1"), Validator::Range(-1, i64::MAX), [], "Retention size per partition."),
    def!("log.retention.check.interval.ms", Long, Some("300000"), Validator::Range(1, i64::MAX), [], "How often retention is enforced."),
    def!("log.cleanup.policy", List, Some("delete"), Validator::ListOf(&["delete", "compact"]), [], "Default cleanup policy."),
    def!("log.cleaner.backoff.ms", Long, Some("15000"), Validator::Range(0, i64::MAX), [], "Sleep between log cleaner runs."),
    def!("log.cleaner.enable", Boolean, Some("true"), Validator::Any, [], "Whether the log cleaner runs."),
    def!("log.cleaner.delete.retention.ms", Long, Some("86400000"), Validator::Range(0, i64::MAX), [], "Tombstone retention."),
    def!("log.cleaner.min.cleanable.ratio", Double, Some("0.5"), Validator::DoubleRange(0.0, 1.0), [], "Default min.cleanable.dirty.ratio."),
    def!("log.cleaner.min.compaction.lag.ms", Long, Some("0"), Validator::Range(0, i64::MAX), [], "Default min.compaction.lag.ms."),
    def!("log.cleaner.max.compaction.lag.ms", Long, Some(LONG_MAX), Validator::Range(1, i64::MAX), [], "Default max.compaction.lag.ms."),
    def!("log.segment.delete.delay.ms", Long, Some("60000"), Validator::Range(0, i64::MAX), [], "Delay before deleting a segment file."),
    def!("log.flush.interval.messages", Long, Some(LONG_MAX), Validator::Range(1, i64::MAX), [], "fsync after this many messages."),
    def!("log.flush.interval.ms", Long, None, Validator::Range(0, i64::MAX), [], "fsync after this many ms."),
    def!("log.index.interval.bytes", Int, Some("4096"), Validator::Range(0, i32::MAX as i64), [], "Bytes between index entries."),
    def!("log.index.size.max.bytes", Int, Some("10485760"), Validator::Range(4, i32::MAX as i64), [], "Offset index size per segment."),
    def!("log.preallocate", Boolean, Some("false"), Validator::Any, [], "Preallocate segment files."),
    def!("log.message.timestamp.type", String, Some("CreateTime"), Validator::OneOf(&["CreateTime", "LogAppendTime"]), [], "Default message.timestamp.type."),
    def!("log.message.timestamp.before.max.ms", Long, Some(LONG_MAX), Validator::Range(0, i64::MAX), [], "Default message.timestamp.before.max.ms."),
    def!("log.message.timestamp.after.max.ms", Long, Some("3600000"), Validator::Range(0, i64::MAX), [], "Default message.timestamp.after.max.ms."),
    def!("compression.type", String, Some("producer"), Validator::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), [], "Default topic compression.type."),
    def!("min.insync.replicas", Int, Some("1"), Validator::Range(1, i32::MAX as i64), [], "Default min.insync.replicas."),
    def!("unclean.leader.election.enable", Boolean, Some("false"), Validator::Any, [], "Default unclean.leader.election.enable."),
    def!("offsets.topic.num.partitions", Int, Some("50"), Validator::Range(1, i32::MAX as i64), [], "Partitions of __consumer_offsets."),
    def!("offsets.topic.replication.factor", Short, Some("3"), Validator::Range(1, i16::MAX as i64), [], "Replication factor of __consumer_offsets."),
    def!("group.initial.rebalance.delay.ms", Int, Some("3000"), Validator::Range(0, i32::MAX as i64), [], "Delay before the first rebalance of a new group."),
    def!("group.min.session.timeout.ms", Int, Some("6000"), Validator::Range(0, i32::MAX as i64), [], "Smallest session timeout a classic group member may ask for."),
    def!("group.max.session.timeout.ms", Int, Some("1800000"), Validator::Range(0, i32::MAX as i64), [], "Largest session timeout a classic group member may ask for."),
    def!("group.max.size", Int, Some("2147483647"), Validator::Range(1, i32::MAX as i64), [], "Largest number of members of a classic group."),
    def!("group.consumer.session.timeout.ms", Int, Some("45000"), Validator::Range(1, i32::MAX as i64), [], "Session timeout of consumer-protocol (KIP-848) group members."),
    def!("group.consumer.heartbeat.interval.ms", Int, Some("5000"), Validator::Range(1, i32::MAX as i64), [], "Heartbeat interval given to consumer-protocol group members."),
    def!("group.consumer.min.session.timeout.ms", Int, Some("45000"), Validator::Range(1, i32::MAX as i64), [], "Smallest consumer.session.timeout.ms a group may be configured with."),
    def!("group.consumer.max.session.timeout.ms", Int, Some("60000"), Validator::Range(1, i32::MAX as i64), [], "Largest consumer.session.timeout.ms a group may be configured with."),
    def!("group.consumer.min.heartbeat.interval.ms", Int, Some("5000"), Validator::Range(1, i32::MAX as i64), [], "Smallest consumer.heartbeat.interval.ms a group may be configured with."),
    def!("group.consumer.max.heartbeat.interval.ms", Int, Some("15000"), Validator::Range(1, i32::MAX as i64), [], "Largest consumer.heartbeat.interval.ms a group may be configured with."),
    def!("group.consumer.regex.refresh.interval.ms", Int, Some("600000"), Validator::Range(10_000, i32::MAX as i64), [], "How long a resolution of a consumer group's subscribed regex stands before a heartbeat resolves it again although no topic was created or deleted (Kafka 4.x)."),
    def!("group.coordinator.rebalance.protocols", List, Some("classic,consumer"), Validator::ListOf(&["classic", "consumer", "share", "streams"]), [], "Rebalance protocols the group coordinator accepts."),
    def!("offsets.retention.minutes", Int, Some("10080"), Validator::Range(1, i32::MAX as i64), [], "How long committed offsets of an empty group are kept."),
    def!("offsets.retention.check.interval.ms", Long, Some("600000"), Validator::Range(1, i64::MAX), [], "How often expired offsets are removed."),
    def!("offset.metadata.max.bytes", Int, Some("4096"), Validator::Range(0, i32::MAX as i64), [], "Longest metadata string of a committed offset."),
    def!("broker.session.timeout.ms", Int, Some("9000"), Validator::Any, [], "How long the controller waits for a broker heartbeat before fencing the broker."),
    def!("broker.heartbeat.interval.ms", Int, Some("2000"), Validator::Any, [], "How often a broker heartbeats to the controller."),
    def!("replica.lag.time.max.ms", Long, Some("30000"), Validator::Any, [], "A follower that has not caught up with the leader's log end for this long is removed from the ISR."),
    def!("replica.fetch.wait.max.ms", Int, Some("500"), Validator::Any, [], "Longest a follower's fetch waits at the leader for data; keep below replica.lag.time.max.ms."),
    def!("replica.fetch.min.bytes", Int, Some("1"), Validator::Any, [], "Bytes a follower's fetch waits for before the leader answers."),
    def!("replica.fetch.max.bytes", Int, Some("1048576"), Validator::Range(0, i32::MAX as i64), [], "Bytes a follower fetches per partition (a larger first batch is still returned)."),
    def!("replica.fetch.response.max.bytes", Int, Some("10485760"), Validator::Range(0, i32::MAX as i64), [], "Bytes a follower's whole fetch response may carry (a larger first batch is still returned)."),
    def!("replica.fetch.backoff.ms", Int, Some("1000"), Validator::Range(0, i32::MAX as i64), [], "Sleep after a follower fetch fails."),
    def!("replica.socket.timeout.ms", Int, Some("30000"), Validator::Any, [], "Socket timeout of follower fetches; at least replica.fetch.wait.max.ms."),
    def!("replica.high.watermark.checkpoint.interval.ms", Long, Some("5000"), Validator::Any, [], "How often high watermarks are saved to disk."),
    def!("auto.leader.rebalance.enable", Boolean, Some("true"), Validator::Any, [], "Move leadership back to preferred replicas periodically."),
    def!("leader.imbalance.check.interval.seconds", Long, Some("300"), Validator::Range(1, i64::MAX), [], "How often the controller checks for partitions not led by their preferred replica."),
    def!("leader.imbalance.per.broker.percentage", Int, Some("10"), Validator::Any, [], "Share of a broker's partitions that may be led elsewhere before a rebalance (ZooKeeper-era; KRaft rebalances any imbalance)."),
    def!("controlled.shutdown.enable", Boolean, Some("true"), Validator::Any, [], "Move leadership away before a broker shuts down."),
    def!("inter.broker.listener.name", String, None, Validator::Any, [], "Listener brokers use to reach each other (followers fetch from leaders through it); unset: the PLAINTEXT listener, as security.inter.broker.protocol defaults to."),
    def!("producer.id.expiration.ms", Int, Some("86400000"), Validator::Range(1, i32::MAX as i64), [], "How long a partition keeps the state of an idempotent producer after its last batch (its sequences are then forgotten). Transactional ids expire by transactional.id.expiration.ms, at the transaction coordinator."),
    def!("transaction.state.log.num.partitions", Int, Some("50"), Validator::Range(1, i32::MAX as i64), [], "Partitions of __transaction_state."),
    def!("transaction.state.log.replication.factor", Short, Some("3"), Validator::Range(1, i16::MAX as i64), [], "Replication factor of __transaction_state (capped by the live brokers when it is created)."),
    def!("transaction.state.log.min.isr", Int, Some("2"), Validator::Range(1, i32::MAX as i64), [], "min.insync.replicas of __transaction_state (capped by its replication factor)."),
    def!("transaction.state.log.segment.bytes", Int, Some("104857600"), Validator::Range(1, i32::MAX as i64), [], "segment.bytes of __transaction_state."),
    def!("transaction.max.timeout.ms", Int, Some("900000"), Validator::Range(1, i32::MAX as i64), [], "Largest transaction.timeout.ms a producer may ask for."),
    def!("transactional.id.expiration.ms", Int, Some("604800000"), Validator::Range(1, i32::MAX as i64), [], "How long the transaction coordinator keeps a transactional id without a transaction."),
    def!("transaction.abort.timed.out.transaction.cleanup.interval.ms", Int, Some("10000"), Validator::Range(1, i32::MAX as i64), [], "How often transactions older than their timeout are aborted."),
    def!("transaction.remove.expired.transaction.cleanup.interval.ms", Int, Some("3600000"), Validator::Range(1, i32::MAX as i64), [], "How often expired transactional ids are removed."),
    def!("producer.id.expiration.check.interval.ms", Int, Some("600000"), Validator::Range(1, i32::MAX as i64), [], "How often idle producer ids are expired."),
    def!("batch.decompressed.bytes.max", Int, Some("67108864"), Validator::Range(1024, i32::MAX as i64), [], "samsa: largest decompressed size of one batch the broker will inspect; larger batches are refused."),
];

/// Looks up a topic config definition.
pub fn topic_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Looks up a broker config definition.
pub fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks `value` against `def`'s type and validator; the error says why, in the
/// words Kafka's INVALID_CONFIG messages use.
pub fn validate(def: &ConfigDef, value: &str) -> Result<(), String> {
    let bad = |what: &str| {
        Err(format!(
            "Invalid value {value} for configuration {}: {what}",
            def.name
        ))
    };
    let v = value.trim();
    match def.ty {
        ConfigType::Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return bad("Expected value to be either true or false");
            }
        }
        ConfigType::Int | ConfigType::Short | ConfigType::Long => {
            let (lo, hi) = match def.ty {
                ConfigType::Int => (i32::MIN as i64, i32::MAX as i64),
                ConfigType::Short => (i16::MIN as i64, i16::MAX as i64),
                _ => I64,
            };
            let Ok(n) = v.parse::<i64>() else {
                return bad("Not a number of the expected type");
            };
            if n < lo || n > hi {
                return bad("Not a number of the expected type");
            }
            if let Validator::Range(min, max) = def.validator {
                if n < min || n > max {
                    return bad(&format!("Value must be in [{min}, {max}]"));
                }
            }
        }
        ConfigType::Double => {
            let Ok(n) = v.parse::<f64>() else {
                return bad("Not a number of type DOUBLE");
            };
            if let Validator::DoubleRange(min, max) = def.validator {
                if !(min..=max).contains(&n) {
                    return bad(&format!("Value must be in [{min}, {max}]"));
                }
            }
        }
        ConfigType::String | ConfigType::Password => {
            if let Validator::OneOf(allowed) = def.validator {
                if !allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) {
                    return bad(&format!("String must be one of: {}", allowed.join(", ")));
                }
            }
        }
        // As Kafka 4.1's ConfigDef: a blank value is the empty list, which
        // every list config accepts (`cleanup.policy` emptied by SUBTRACT);
        // otherwise the value splits at commas and, where the config names
        // its values (ValidList), every element must be one of them, exactly
        // (so an empty element, as in `compact,,delete`, is refused).
        // Duplicates are accepted, as in Kafka.
        ConfigType::List => {
            if let (Validator::ListOf(allowed), false) = (def.validator, v.is_empty()) {
                if let Some(item) = v.split(',').map(str::trim).find(|i| !allowed.contains(i)) {
                    return bad(&format!(
                        "String must be one of: {} (not \"{item}\")",
                        allowed.join(", ")
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Where an effective value came from (DescribeConfigs `config_source`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    TopicConfig,
    DynamicBrokerConfig,
    StaticBrokerConfig,
    Default,
    /// A group's own override (the `GROUP` resource, see [`crate::group_config`]).
    GroupConfig,
}

impl ConfigSource {
    /// Kafka's wire code.
    pub const fn wire_code(self) -> i8 {
        match self {
            ConfigSource::TopicConfig => 1,
            ConfigSource::DynamicBrokerConfig => 2,
            ConfigSource::StaticBrokerConfig => 4,
            ConfigSource::Default => 5,
            ConfigSource::GroupConfig => 8,
        }
    }
}

/// An effective config value and its provenance.
#[derive(Clone, Debug)]
pub struct ResolvedConfig {
    pub def: &'static ConfigDef,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// The broker's static configuration: `server.properties` plus `--set`
/// overrides, validated at startup.
#[derive(Clone, Debug, Default)]
pub struct StaticConfig {
    values: BTreeMap<String, String>,
    /// Dynamic broker configs (AlterConfigs on a broker resource), which win
    /// over `values`.
    dynamic: BTreeMap<String, String>,
}

/// Broker keys that AlterConfigs may change at run time: the broker-wide
/// defaults of topic configs, as in Kafka's dynamic "log" configs.
pub fn is_dynamic_broker_key(key: &str) -> bool {
    key == "message.max.bytes"
        || key == "cordoned.log.dirs"
        || TOPIC_CONFIGS
            .iter()
            .any(|d| d.synonyms.iter().any(|s| s.name == key))
}

/// A startup config problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("line {line}: expected key=value, got {text:?}")]
    Syntax { line: usize, text: String },
    /// A security setting samsa does not implement (see [`crate::security`]).
    #[error("{key}: {reason}; samsa refuses to start rather than serve with less security than configured (remove the setting)")]
    Unsupported { key: String, reason: String },
}

/// `ssl.*` or `listener.name.<listener>.ssl.*`.
fn is_ssl_key(key: &str) -> bool {
    let setting = key
        .strip_prefix("listener.name.")
        .and_then(|rest| rest.split_once('.'))
        .map_or(key, |(_, setting)| setting);
    setting.starts_with("ssl.")
}

impl StaticConfig {
    /// Parses Java-properties text (`key=value` or `key: value`, `#`/`!` comments).
    /// Continuation lines and escapes beyond `\\` are not supported.
    pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let mut out = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some(split) = line.find(['=', ':']) else {
                return Err(ConfigError::Syntax {
                    line: i + 1,
                    text: raw.to_string(),
                });
            };
            let key = line[..split].trim().to_string();
            let value = line[split + 1..].trim().to_string();
            out.push((key, value));
        }
        Ok(out)
    }

    /// Sets `key` after validating it. Unknown keys are accepted and ignored (with
    /// a warning from the caller), as Kafka does.
    /// Security settings samsa does not implement are refused
    /// ([`crate::security::unsupported_key`]).
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        if let Some(reason) = crate::security::unsupported_key(key, value) {
            return Err(ConfigError::Unsupported {
                key: key.to_owned(),
                reason,
            });
        }
        if is_ssl_key(key)
            || crate::security::is_sasl_key(key)
            || crate::security::is_authorizer_key(key)
        {
            // TLS and SASL settings (global or per listener), validated as
            // a whole by `samsa-security` once every key is known.
            self.values
                .insert(key.to_string(), value.trim().to_string());
            return Ok(true);
        }
        match broker_def(key).or_else(|| topic_def(key)) {
            Some(def) => {
                validate(def, value).map_err(ConfigError::Invalid)?;
                self.values
                    .insert(key.to_string(), value.trim().to_string());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Fails on a listener (`listeners`, `advertised.listeners`) whose
    /// security protocol is neither PLAINTEXT nor SSL ([`crate::security`]); run once
    /// every key is set.
    pub fn check_listener_security(&self) -> Result<(), ConfigError> {
        let map = self.get("listener.security.protocol.map");
        for key in ["listeners", "advertised.listeners"] {
            let Some(listeners) = self.get(key) else {
                continue;
            };
            if let Some(reason) = crate::security::unsupported_listener(listeners, map) {
                return Err(ConfigError::Unsupported {
                    key: key.to_owned(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// This config with `dynamic` (per-broker dynamic configs, already merged
    /// over cluster-wide ones) laid over the static values.
    pub fn with_dynamic(&self, dynamic: &BTreeMap<String, String>) -> StaticConfig {
        StaticConfig {
            values: self.values.clone(),
            dynamic: dynamic.clone(),
        }
    }

    /// The explicitly configured value of `key` (dynamic, else static).
    pub fn explicit(&self, key: &str) -> Option<&str> {
        self.dynamic
            .get(key)
            .or_else(|| self.values.get(key))
            .map(String::as_str)
    }

    fn explicit_source(&self, key: &str) -> ConfigSource {
        if self.dynamic.contains_key(key) {
            ConfigSource::DynamicBrokerConfig
        } else {
            ConfigSource::StaticBrokerConfig
        }
    }

    /// The value of a broker key: configured, else its default.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.explicit(key)
            .or_else(|| broker_def(key).and_then(|d| d.default))
    }

    /// A broker key parsed as an integer (configured or default).
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|v| v.trim().parse().ok())
    }

    /// A broker key parsed as a boolean (configured or default).
    pub fn get_bool(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Every broker config with its value and source, for DescribeConfigs.
    pub fn describe_broker(&self) -> Vec<ResolvedConfig> {
        BROKER_CONFIGS
            .iter()
            .map(|def| match self.explicit(def.name) {
                Some(v) => ResolvedConfig {
                    def,
                    value: Some(v.to_string()),
                    source: self.explicit_source(def.name),
                },
                None => ResolvedConfig {
                    def,
                    value: def.default.map(str::to_string),
                    source: ConfigSource::Default,
                },
            })
            .collect()
    }

    /// The default of a topic key as this broker sets it (synonyms, else built-in).
    pub fn topic_default(&self, def: &'static ConfigDef) -> ResolvedConfig {
        for syn in def.synonyms {
            if let Some(v) = self.explicit(syn.name) {
                let value = if syn.factor == 1 {
                    v.to_string()
                } else {
                    match v.trim().parse::<i64>() {
                        Ok(n) if n < 0 => n.to_string(),
                        Ok(n) => n.saturating_mul(syn.factor).to_string(),
                        Err(_) => continue,
                    }
                };
                return ResolvedConfig {
                    def,
                    value: Some(value),
                    source: self.explicit_source(syn.name),
                };
            }
        }
        ResolvedConfig {
            def,
            value: def.default.map(str::to_string),
            source: ConfigSource::Default,
        }
    }

    /// Every topic key's effective value for a topic with `overrides`.
    pub fn resolve_topic(&self, overrides: &BTreeMap<String, String>) -> Vec<ResolvedConfig> {
        TOPIC_CONFIGS
            .iter()
            .map(|def| match overrides.get(def.name) {
                Some(v) => ResolvedConfig {
                    def,
                    value: Some(v.clone()),
                    source: ConfigSource::TopicConfig,
                },
                None => self.topic_default(def),
            })
            .collect()
    }

    /// One topic key's effective value for a topic with `overrides`.
    pub fn topic_value(&self, overrides: &BTreeMap<String, String>, key: &str) -> Option<String> {
        let def = topic_def(key)?;
        overrides
            .get(key)
            .cloned()
            .or_else(|| self.topic_default(def).value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_follows_kafka_types_and_ranges() {
        let d = topic_def("retention.ms").unwrap();
        assert!(validate(d, "604800000").is_ok());
        assert!(validate(d, "-1").is_ok());
        assert!(validate(d, "-2").is_err());
        assert!(validate(d, "abc").is_err());
        let c = topic_def("cleanup.policy").unwrap();
        assert!(validate(c, "compact,delete").is_ok());
        assert!(validate(c, "compact,nope").is_err());
        let t = topic_def("message.timestamp.type").unwrap();
        assert!(validate(t, "LogAppendTime").is_ok());
        assert!(validate(t, "Now").is_err());
        let s = topic_def("segment.bytes").unwrap();
        assert!(validate(s, "3000000000").is_err(), "INT overflow");
    }

    /// Kafka 4.1's list validation: blank is the empty list, accepted by
    /// every list config; each element of a non-empty list must be one of
    /// the named values exactly (no empty elements, case-sensitive);
    /// duplicates pass.
    #[test]
    fn list_configs_validate_as_kafka_does() {
        let c = topic_def("cleanup.policy").unwrap();
        assert_eq!(validate(c, ""), Ok(()), "the empty list");
        assert_eq!(validate(c, "  "), Ok(()), "blank is the empty list");
        assert!(validate(c, "compact,,delete").is_err(), "empty element");
        assert!(validate(c, "compact,").is_err(), "trailing empty element");
        assert!(validate(c, "Compact").is_err(), "values are case-sensitive");
        assert_eq!(validate(c, "delete, compact"), Ok(()));
        assert_eq!(validate(c, "compact,compact"), Ok(()), "duplicates");
        let err = validate(c, "compact,nope").unwrap_err();
        assert!(err.contains("String must be one of: "), "{err}");
        for name in [
            "log.cleanup.policy",
            "group.coordinator.rebalance.protocols",
        ] {
            assert_eq!(validate(broker_def(name).unwrap(), ""), Ok(()), "{name}");
        }
    }

    #[test]
    fn topic_defaults_come_from_broker_synonyms() {
        let mut cfg = StaticConfig::default();
        let overrides = BTreeMap::new();
        assert_eq!(
            cfg.topic_value(&overrides, "retention.ms").as_deref(),
            Some("604800000")
        );
        cfg.set("log.retention.hours", "1").unwrap();
        assert_eq!(
            cfg.topic_value(&overrides, "retention.ms").as_deref(),
            Some("3600000")
        );
        cfg.set("log.retention.ms", "5000").unwrap();
        assert_eq!(
            cfg.topic_value(&overrides, "retention.ms").as_deref(),
            Some("5000")
        );
        let mut topic = BTreeMap::new();
        topic.insert("retention.ms".to_string(), "77".to_string());
        let resolved = cfg.resolve_topic(&topic);
        let r = resolved
            .iter()
            .find(|r| r.def.name == "retention.ms")
            .unwrap();
        assert_eq!(r.value.as_deref(), Some("77"));
        assert_eq!(r.source, ConfigSource::TopicConfig);
    }

    #[test]
    fn dynamic_broker_configs_win_over_static_ones() {
        let mut cfg = StaticConfig::default();
        cfg.set("log.retention.ms", "5000").unwrap();
        let mut dynamic = BTreeMap::new();
        dynamic.insert("log.retention.ms".to_string(), "9000".to_string());
        let eff = cfg.with_dynamic(&dynamic);
        let r = eff.topic_default(topic_def("retention.ms").unwrap());
        assert_eq!(r.value.as_deref(), Some("9000"));
        assert_eq!(r.source, ConfigSource::DynamicBrokerConfig);
        assert!(is_dynamic_broker_key("log.retention.ms"));
        assert!(!is_dynamic_broker_key("listeners"));
    }

    #[test]
    fn the_regex_refresh_interval_is_a_broker_setting() {
        let mut cfg = StaticConfig::default();
        assert_eq!(
            cfg.get_i64("group.consumer.regex.refresh.interval.ms"),
            Some(600_000)
        );
        cfg.set("group.consumer.regex.refresh.interval.ms", "60000")
            .unwrap();
        assert_eq!(
            cfg.get_i64("group.consumer.regex.refresh.interval.ms"),
            Some(60_000)
        );
        assert!(cfg
            .set("group.consumer.regex.refresh.interval.ms", "9999")
            .is_err());
    }

    #[test]
    fn replication_configs_have_kafkas_defaults() {
        let cfg = StaticConfig::default();
        for (key, value) in [
            ("broker.session.timeout.ms", 9000),
            ("broker.heartbeat.interval.ms", 2000),
            ("replica.lag.time.max.ms", 30000),
            ("replica.fetch.wait.max.ms", 500),
            ("replica.fetch.min.bytes", 1),
            ("replica.fetch.max.bytes", 1048576),
            ("replica.fetch.response.max.bytes", 10485760),
            ("replica.fetch.backoff.ms", 1000),
            ("replica.socket.timeout.ms", 30000),
            ("leader.imbalance.check.interval.seconds", 300),
            ("leader.imbalance.per.broker.percentage", 10),
            ("replica.high.watermark.checkpoint.interval.ms", 5000),
        ] {
            assert_eq!(cfg.get_i64(key), Some(value), "{key}");
        }
        assert!(cfg.get_bool("auto.leader.rebalance.enable"));
        assert!(cfg.get_bool("controlled.shutdown.enable"));
        assert_eq!(cfg.get("inter.broker.listener.name"), None);
        let mut cfg = cfg;
        cfg.set("inter.broker.listener.name", "REPLICATION")
            .unwrap();
        assert_eq!(cfg.get("inter.broker.listener.name"), Some("REPLICATION"));
        assert!(cfg
            .set("leader.imbalance.check.interval.seconds", "0")
            .is_err());
    }

    #[test]
    fn properties_parse_and_reject_bad_values() {
        let props = StaticConfig::parse_properties(
            "# comment\nnum.partitions=3\n  log.dirs = /tmp/x \nfoo: bar\n",
        )
        .unwrap();
        assert_eq!(props.len(), 3);
        let mut cfg = StaticConfig::default();
        for (k, v) in &props {
            cfg.set(k, v).unwrap();
        }
        assert_eq!(cfg.get_i64("num.partitions"), Some(3));
        assert_eq!(cfg.get("log.dirs"), Some("/tmp/x"));
        assert!(cfg.set("num.partitions", "zero").is_err());
        assert!(matches!(
            StaticConfig::parse_properties("novalue"),
            Err(ConfigError::Syntax { line: 1, .. })
        ));
    }
}
