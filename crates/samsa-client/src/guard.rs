//! Response guard: walks a response body against the schema of its API and
//! version before `kafka-protocol` decodes it.
//!
//! `kafka-protocol`'s decoders reserve `Vec::with_capacity(n)` for an array whose
//! count `n` comes straight off the wire, before checking that the elements are
//! there; a few bytes from a faulty or hostile broker could ask for gigabytes.
//! [`check_response_body`] refuses a body unless every array count fits in the
//! bytes that remain after it (each element occupies at least one byte) and
//! every string or byte field fits too. Decoding an accepted body reserves at
//! most `body_len * size_of::<element>()` bytes per array, and the body itself is
//! capped by the connection's response size limit.
//!
//! Wire facts used: classic versions use an INT16 length for strings and INT32
//! lengths for bytes and arrays (-1 = null); flexible versions use unsigned
//! varints holding `length + 1` (0 = null) and end every struct with a tagged
//! field section (count, then tag, size, payload per field). A nullable struct
//! (DescribeTopicPartitions' cursor) is an INT8 marker, 1 = a struct follows,
//! anything else = null. Tagged fields that
//! `kafka-protocol` knows are decoded from the main buffer with their own schema,
//! so their payloads are walked too and must be exactly their declared size.
//!
//! The client speaks only the versions listed in [`crate::versions`]; a schema
//! here covers exactly those (mostly the flexible versions of each API).

use kafka_protocol::messages::ApiKey;

/// Why a response body was refused before decoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    #[error("no response schema for API key {key} version {version}")]
    Unsupported { key: i16, version: i16 },
    #[error("body ends inside a field at byte {at}")]
    Truncated { at: usize },
    #[error("length {len} at byte {at} exceeds the {remaining} bytes that remain")]
    TooLong {
        at: usize,
        len: u64,
        remaining: usize,
    },
    #[error("negative length {len} at byte {at}")]
    Negative { at: usize, len: i64 },
    #[error("malformed varint at byte {at}")]
    Varint { at: usize },
    #[error(
        "tagged field {tag} at byte {at} declares {declared} bytes but its payload is {actual}"
    )]
    TagSize {
        at: usize,
        tag: u32,
        declared: usize,
        actual: usize,
    },
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    I8,
    I16,
    I32,
    I64,
    Uuid,
    /// String (nullable or not: null is left to the decoder to refuse).
    Str,
    /// Bytes or records.
    Bytes,
    /// Array of INT32.
    I32s,
    /// Array of strings.
    Strs,
    Array(&'static Schema),
    Struct(&'static Schema),
    /// A nullable struct: INT8 marker, 1 = the struct follows.
    OptStruct(&'static Schema),
}

#[derive(Clone, Copy, Debug)]
struct Field {
    kind: Kind,
    min: i16,
    max: i16,
}

#[derive(Clone, Copy, Debug)]
struct Tag {
    tag: u32,
    kind: Kind,
    min: i16,
}

#[derive(Debug)]
struct Schema {
    fields: &'static [Field],
    tags: &'static [Tag],
}

const fn f(kind: Kind) -> Field {
    Field {
        kind,
        min: 0,
        max: i16::MAX,
    }
}

const fn since(min: i16, kind: Kind) -> Field {
    Field {
        kind,
        min,
        max: i16::MAX,
    }
}

const fn until(max: i16, kind: Kind) -> Field {
    Field { kind, min: 0, max }
}

const fn s(fields: &'static [Field]) -> Schema {
    Schema { fields, tags: &[] }
}

const fn st(fields: &'static [Field], tags: &'static [Tag]) -> Schema {
    Schema { fields, tags }
}

const fn tag(tag: u32, min: i16, kind: Kind) -> Tag {
    Tag { tag, kind, min }
}

use Kind::{Bytes, I32s, Str, Strs, Uuid, I16, I32, I64, I8};

const fn arr(schema: &'static Schema) -> Kind {
    Kind::Array(schema)
}

// ----------------------------------------------------------------------------
// Response schemas (field order and types per Kafka's message definitions).

static API_VERSION: Schema = s(&[f(I16), f(I16), f(I16)]);
static FEATURE_KEY: Schema = s(&[f(Str), f(I16), f(I16)]);
static API_VERSIONS: Schema = st(
    &[f(I16), f(arr(&API_VERSION)), since(1, I32)],
    &[
        tag(0, 3, arr(&FEATURE_KEY)),
        tag(1, 3, I64),
        tag(2, 3, arr(&FEATURE_KEY)),
        tag(3, 3, I8),
    ],
);

static MD_BROKER: Schema = s(&[f(I32), f(Str), f(I32), f(Str)]);
static MD_PARTITION: Schema = s(&[f(I16), f(I32), f(I32), f(I32), f(I32s), f(I32s), f(I32s)]);
static MD_TOPIC: Schema = s(&[
    f(I16),
    f(Str),
    since(10, Uuid),
    f(I8),
    f(arr(&MD_PARTITION)),
    f(I32),
]);
static METADATA: Schema = s(&[
    f(I32),
    f(arr(&MD_BROKER)),
    f(Str),
    f(I32),
    f(arr(&MD_TOPIC)),
    until(10, I32),
]);

static LEADER_AND_EPOCH: Schema = s(&[f(I32), f(I32)]);
static NODE_ENDPOINT: Schema = s(&[f(I32), f(Str), f(I32), f(Str)]);
static PRODUCE_RECORD_ERROR: Schema = s(&[f(I32), f(Str)]);
static PRODUCE_PARTITION: Schema = st(
    &[
        f(I32),
        f(I16),
        f(I64),
        f(I64),
        f(I64),
        f(arr(&PRODUCE_RECORD_ERROR)),
        f(Str),
    ],
    &[tag(0, 10, Kind::Struct(&LEADER_AND_EPOCH))],
);
static PRODUCE_TOPIC: Schema = s(&[f(Str), f(arr(&PRODUCE_PARTITION))]);
static PRODUCE: Schema = st(
    &[f(arr(&PRODUCE_TOPIC)), f(I32)],
    &[tag(0, 10, arr(&NODE_ENDPOINT))],
);

static ABORTED_TXN: Schema = s(&[f(I64), f(I64)]);
static EPOCH_END_OFFSET: Schema = s(&[f(I32), f(I64)]);
static SNAPSHOT_ID: Schema = s(&[f(I64), f(I32)]);
static FETCH_PARTITION: Schema = st(
    &[
        f(I32),
        f(I16),
        f(I64),
        f(I64),
        f(I64),
        f(arr(&ABORTED_TXN)),
        f(I32),
        f(Bytes),
    ],
    &[
        tag(0, 12, Kind::Struct(&EPOCH_END_OFFSET)),
        tag(1, 12, Kind::Struct(&LEADER_AND_EPOCH)),
        tag(2, 12, Kind::Struct(&SNAPSHOT_ID)),
    ],
);
static FETCH_TOPIC: Schema = s(&[until(12, Str), since(13, Uuid), f(arr(&FETCH_PARTITION))]);
static FETCH: Schema = st(
    &[f(I32), f(I16), f(I32), f(arr(&FETCH_TOPIC))],
    &[tag(0, 16, arr(&NODE_ENDPOINT))],
);

static LIST_OFFSETS_PARTITION: Schema = s(&[f(I32), f(I16), f(I64), f(I64), f(I32)]);
static LIST_OFFSETS_TOPIC: Schema = s(&[f(Str), f(arr(&LIST_OFFSETS_PARTITION))]);
static LIST_OFFSETS: Schema = s(&[f(I32), f(arr(&LIST_OFFSETS_TOPIC))]);

static CREATE_TOPIC_CONFIG: Schema = s(&[f(Str), f(Str), f(I8), f(I8), f(I8)]);
static CREATE_TOPIC_RESULT: Schema = st(
    &[
        f(Str),
        since(7, Uuid),
        f(I16),
        f(Str),
        f(I32),
        f(I16),
        f(arr(&CREATE_TOPIC_CONFIG)),
    ],
    &[tag(0, 5, I16)],
);
static CREATE_TOPICS: Schema = s(&[f(I32), f(arr(&CREATE_TOPIC_RESULT))]);

static DELETE_TOPIC_RESULT: Schema = s(&[f(Str), since(6, Uuid), f(I16), since(5, Str)]);
static DELETE_TOPICS: Schema = s(&[f(I32), f(arr(&DELETE_TOPIC_RESULT))]);

static NAME_ERROR_MESSAGE: Schema = s(&[f(Str), f(I16), f(Str)]);
static CREATE_PARTITIONS: Schema = s(&[f(I32), f(arr(&NAME_ERROR_MESSAGE))]);

static CONFIG_SYNONYM: Schema = s(&[f(Str), f(Str), f(I8)]);
static CONFIG_ENTRY: Schema = s(&[
    f(Str),
    f(Str),
    f(I8),
    f(I8),
    f(I8),
    f(arr(&CONFIG_SYNONYM)),
    f(I8),
    f(Str),
]);
static CONFIG_RESOURCE: Schema = s(&[f(I16), f(Str), f(I8), f(Str), f(arr(&CONFIG_ENTRY))]);
static DESCRIBE_CONFIGS: Schema = s(&[f(I32), f(arr(&CONFIG_RESOURCE))]);

static ALTER_RESOURCE: Schema = s(&[f(I16), f(Str), f(I8), f(Str)]);
static ALTER_CONFIGS: Schema = s(&[f(I32), f(arr(&ALTER_RESOURCE))]);

static DELETE_RECORDS_PARTITION: Schema = s(&[f(I32), f(I64), f(I16)]);
static DELETE_RECORDS_TOPIC: Schema = s(&[f(Str), f(arr(&DELETE_RECORDS_PARTITION))]);
static DELETE_RECORDS: Schema = s(&[f(I32), f(arr(&DELETE_RECORDS_TOPIC))]);

static EPOCH_END_PARTITION: Schema = s(&[f(I16), f(I32), f(I32), f(I64)]);
static EPOCH_END_TOPIC: Schema = s(&[f(Str), f(arr(&EPOCH_END_PARTITION))]);
static OFFSET_FOR_LEADER_EPOCH: Schema = s(&[f(I32), f(arr(&EPOCH_END_TOPIC))]);

static ELECTION_PARTITION: Schema = s(&[f(I32), f(I16), f(Str)]);
static ELECTION_TOPIC: Schema = s(&[f(Str), f(arr(&ELECTION_PARTITION))]);
static ELECT_LEADERS: Schema = s(&[f(I32), f(I16), f(arr(&ELECTION_TOPIC))]);

static REASSIGN_PARTITION: Schema = s(&[f(I32), f(I16), f(Str)]);
static REASSIGN_TOPIC: Schema = s(&[f(Str), f(arr(&REASSIGN_PARTITION))]);
static ALTER_REASSIGNMENTS: Schema = s(&[f(I32), f(I16), f(Str), f(arr(&REASSIGN_TOPIC))]);

static LOG_DIR_REPLICA: Schema = s(&[f(I32), f(I64), f(I64), f(I8)]);
static LOG_DIR_TOPIC_INFO: Schema = s(&[f(Str), f(arr(&LOG_DIR_REPLICA))]);
static LOG_DIR_RESULT: Schema = s(&[f(I16), f(Str), f(arr(&LOG_DIR_TOPIC_INFO)), f(I64), f(I64)]);
static DESCRIBE_LOG_DIRS: Schema = s(&[f(I32), f(I16), f(arr(&LOG_DIR_RESULT))]);

static LOG_DIR_PARTITION: Schema = s(&[f(I32), f(I16)]);
static LOG_DIR_TOPIC: Schema = s(&[f(Str), f(arr(&LOG_DIR_PARTITION))]);
static ALTER_REPLICA_LOG_DIRS: Schema = s(&[f(I32), f(arr(&LOG_DIR_TOPIC))]);

static ONGOING_PARTITION: Schema = s(&[f(I32), f(I32s), f(I32s), f(I32s)]);
static ONGOING_TOPIC: Schema = s(&[f(Str), f(arr(&ONGOING_PARTITION))]);
static LIST_REASSIGNMENTS: Schema = s(&[f(I32), f(I16), f(Str), f(arr(&ONGOING_TOPIC))]);

static CLUSTER_BROKER: Schema = s(&[f(I32), f(Str), f(I32), f(Str), since(2, I8)]);
static DESCRIBE_CLUSTER: Schema = s(&[
    f(I32),
    f(I16),
    f(Str),
    since(1, I8),
    f(Str),
    f(I32),
    f(arr(&CLUSTER_BROKER)),
    f(I32),
]);

static COORDINATOR: Schema = s(&[f(Str), f(I32), f(Str), f(I32), f(I16), f(Str)]);
static FIND_COORDINATOR: Schema = s(&[
    f(I32),
    until(3, I16),
    until(3, Str),
    until(3, I32),
    until(3, Str),
    until(3, I32),
    since(4, arr(&COORDINATOR)),
]);

static JOIN_MEMBER: Schema = s(&[f(Str), f(Str), f(Bytes)]);
static JOIN_GROUP: Schema = s(&[
    f(I32),
    f(I16),
    f(I32),
    since(7, Str),
    f(Str),
    f(Str),
    since(9, I8),
    f(Str),
    f(arr(&JOIN_MEMBER)),
]);

static SYNC_GROUP: Schema = s(&[f(I32), f(I16), since(5, Str), since(5, Str), f(Bytes)]);
static HEARTBEAT: Schema = s(&[f(I32), f(I16)]);
static LEAVE_MEMBER: Schema = s(&[f(Str), f(Str), f(I16)]);
static LEAVE_GROUP: Schema = s(&[f(I32), f(I16), f(arr(&LEAVE_MEMBER))]);

static PARTITION_ERROR: Schema = s(&[f(I32), f(I16)]);
static COMMIT_TOPIC: Schema = s(&[f(Str), f(arr(&PARTITION_ERROR))]);
static OFFSET_COMMIT: Schema = s(&[f(I32), f(arr(&COMMIT_TOPIC))]);

static OFFSET_FETCH_PARTITION: Schema = s(&[f(I32), f(I64), f(I32), f(Str), f(I16)]);
static OFFSET_FETCH_TOPIC: Schema = s(&[f(Str), f(arr(&OFFSET_FETCH_PARTITION))]);
static OFFSET_FETCH_GROUP: Schema = s(&[f(Str), f(arr(&OFFSET_FETCH_TOPIC)), f(I16)]);
static OFFSET_FETCH: Schema = s(&[
    f(I32),
    until(7, arr(&OFFSET_FETCH_TOPIC)),
    until(7, I16),
    since(8, arr(&OFFSET_FETCH_GROUP)),
]);

static LISTED_GROUP: Schema = s(&[f(Str), f(Str), since(4, Str), since(5, Str)]);
static LIST_GROUPS: Schema = s(&[f(I32), f(I16), f(arr(&LISTED_GROUP))]);

static GROUP_MEMBER: Schema = s(&[f(Str), f(Str), f(Str), f(Str), f(Bytes), f(Bytes)]);
static DESCRIBED_GROUP: Schema = s(&[
    f(I16),
    since(6, Str),
    f(Str),
    f(Str),
    f(Str),
    f(Str),
    f(arr(&GROUP_MEMBER)),
    f(I32),
]);
static DESCRIBE_GROUPS: Schema = s(&[f(I32), f(arr(&DESCRIBED_GROUP))]);

// DescribeQuorum v2 (the listener port is a UINT16: two bytes, as I16).
static QUORUM_REPLICA: Schema = s(&[f(I32), since(2, Uuid), f(I64), since(1, I64), since(1, I64)]);
static QUORUM_PARTITION: Schema = s(&[
    f(I32),
    f(I16),
    since(2, Str),
    f(I32),
    f(I32),
    f(I64),
    f(arr(&QUORUM_REPLICA)),
    f(arr(&QUORUM_REPLICA)),
]);
static QUORUM_TOPIC: Schema = s(&[f(Str), f(arr(&QUORUM_PARTITION))]);
static QUORUM_LISTENER: Schema = s(&[f(Str), f(Str), f(I16)]);
static QUORUM_NODE: Schema = s(&[f(I32), f(arr(&QUORUM_LISTENER))]);
static DESCRIBE_QUORUM: Schema = s(&[
    f(I16),
    since(2, Str),
    f(arr(&QUORUM_TOPIC)),
    since(2, arr(&QUORUM_NODE)),
]);

// UpdateFeatures: v2 drops the per-feature results.
static FEATURE_RESULT: Schema = s(&[f(Str), f(I16), f(Str)]);
static UPDATE_FEATURES: Schema = s(&[f(I32), f(I16), f(Str), until(1, arr(&FEATURE_RESULT))]);

// DescribeUserScramCredentials and AlterUserScramCredentials v0 (KIP-554).
static SCRAM_CREDENTIAL_INFO: Schema = s(&[f(I8), f(I32)]);
static SCRAM_DESCRIBED_USER: Schema = s(&[f(Str), f(I16), f(Str), f(arr(&SCRAM_CREDENTIAL_INFO))]);
static DESCRIBE_USER_SCRAM_CREDENTIALS: Schema =
    s(&[f(I32), f(I16), f(Str), f(arr(&SCRAM_DESCRIBED_USER))]);
static SCRAM_ALTERED_USER: Schema = s(&[f(Str), f(I16), f(Str)]);
static ALTER_USER_SCRAM_CREDENTIALS: Schema = s(&[f(I32), f(arr(&SCRAM_ALTERED_USER))]);

// Transactions (KIP-664): ListTransactions v0-2, DescribeTransactions v0,
// DescribeProducers v0, WriteTxnMarkers v1 (all flexible).
static LISTED_TXN: Schema = s(&[f(Str), f(I64), f(Str)]);
static LIST_TRANSACTIONS: Schema = s(&[f(I32), f(I16), f(Strs), f(arr(&LISTED_TXN))]);
static TXN_TOPIC: Schema = s(&[f(Str), f(I32s)]);
static DESCRIBED_TXN: Schema = s(&[
    f(I16),
    f(Str),
    f(Str),
    f(I32),
    f(I64),
    f(I64),
    f(I16),
    f(arr(&TXN_TOPIC)),
]);
static DESCRIBE_TRANSACTIONS: Schema = s(&[f(I32), f(arr(&DESCRIBED_TXN))]);
static PRODUCER_STATE: Schema = s(&[f(I64), f(I32), f(I32), f(I64), f(I32), f(I64)]);
static PRODUCERS_PARTITION: Schema = s(&[f(I32), f(I16), f(Str), f(arr(&PRODUCER_STATE))]);
static PRODUCERS_TOPIC: Schema = s(&[f(Str), f(arr(&PRODUCERS_PARTITION))]);
static DESCRIBE_PRODUCERS: Schema = s(&[f(I32), f(arr(&PRODUCERS_TOPIC))]);
static MARKER_PARTITION: Schema = s(&[f(I32), f(I16)]);
static MARKER_TOPIC: Schema = s(&[f(Str), f(arr(&MARKER_PARTITION))]);
static MARKER_RESULT: Schema = s(&[f(I64), f(arr(&MARKER_TOPIC))]);
static WRITE_TXN_MARKERS: Schema = s(&[f(arr(&MARKER_RESULT))]);

// DescribeTopicPartitions v0 (KIP-966): per topic its partitions (with the
// nullable ELR and last-known-ELR lists) and authorized operations, then the
// nullable cursor naming the first partition left out.
static DTP_PARTITION: Schema = s(&[
    f(I16),
    f(I32),
    f(I32),
    f(I32),
    f(I32s),
    f(I32s),
    f(I32s),
    f(I32s),
    f(I32s),
]);
static DTP_TOPIC: Schema = s(&[
    f(I16),
    f(Str),
    f(Uuid),
    f(I8),
    f(arr(&DTP_PARTITION)),
    f(I32),
]);
static DTP_CURSOR: Schema = s(&[f(Str), f(I32)]);
static DESCRIBE_TOPIC_PARTITIONS: Schema =
    s(&[f(I32), f(arr(&DTP_TOPIC)), f(Kind::OptStruct(&DTP_CURSOR))]);

static GROUP_RESULT: Schema = s(&[f(Str), f(I16)]);
static DELETE_GROUPS: Schema = s(&[f(I32), f(arr(&GROUP_RESULT))]);

// AddPartitionsToTxn v5 (a partition leader verifying or adding a
// partition, KIP-890): throttle, error, then per transaction per topic the
// partitions' error codes.
static APT_PARTITION: Schema = s(&[f(I32), f(I16)]);
static APT_TOPIC: Schema = s(&[f(Str), f(arr(&APT_PARTITION))]);
static APT_TRANSACTION: Schema = s(&[f(Str), f(arr(&APT_TOPIC))]);
static ADD_PARTITIONS_TO_TXN: Schema = s(&[f(I32), f(I16), f(arr(&APT_TRANSACTION))]);

static CGD_TOPIC_PARTITIONS: Schema = s(&[f(Uuid), f(Str), f(I32s)]);
static CGD_ASSIGNMENT: Schema = s(&[f(arr(&CGD_TOPIC_PARTITIONS))]);
static CGD_MEMBER: Schema = s(&[
    f(Str),
    f(Str),
    f(Str),
    f(I32),
    f(Str),
    f(Str),
    f(Strs),
    f(Str),
    f(Kind::Struct(&CGD_ASSIGNMENT)),
    f(Kind::Struct(&CGD_ASSIGNMENT)),
    since(1, I8),
]);
static CGD_GROUP: Schema = s(&[
    f(I16),
    f(Str),
    f(Str),
    f(Str),
    f(I32),
    f(I32),
    f(Str),
    f(arr(&CGD_MEMBER)),
    f(I32),
]);
static CONSUMER_GROUP_DESCRIBE: Schema = s(&[f(I32), f(arr(&CGD_GROUP))]);

/// A response type the guard can walk: key, covered versions, first flexible version.
struct Api {
    key: ApiKey,
    min: i16,
    max: i16,
    flexible_min: i16,
    body: &'static Schema,
}

const fn api(key: ApiKey, min: i16, max: i16, flexible_min: i16, body: &'static Schema) -> Api {
    Api {
        key,
        min,
        max,
        flexible_min,
        body,
    }
}

static APIS: &[Api] = &[
    api(ApiKey::ApiVersions, 0, 4, 3, &API_VERSIONS),
    api(ApiKey::Metadata, 9, 12, 9, &METADATA),
    api(ApiKey::Produce, 9, 11, 9, &PRODUCE),
    // v15: replica fetchers (topic ids, the replica's broker epoch).
    api(ApiKey::Fetch, 12, 15, 12, &FETCH),
    api(ApiKey::ListOffsets, 6, 8, 6, &LIST_OFFSETS),
    api(ApiKey::CreateTopics, 5, 7, 5, &CREATE_TOPICS),
    api(ApiKey::DeleteTopics, 4, 6, 4, &DELETE_TOPICS),
    api(ApiKey::CreatePartitions, 2, 3, 2, &CREATE_PARTITIONS),
    api(ApiKey::DescribeConfigs, 4, 4, 4, &DESCRIBE_CONFIGS),
    api(ApiKey::AlterConfigs, 2, 2, 2, &ALTER_CONFIGS),
    api(ApiKey::IncrementalAlterConfigs, 1, 1, 1, &ALTER_CONFIGS),
    api(ApiKey::DeleteRecords, 2, 2, 2, &DELETE_RECORDS),
    api(ApiKey::DescribeCluster, 0, 1, 0, &DESCRIBE_CLUSTER),
    api(
        ApiKey::OffsetForLeaderEpoch,
        4,
        4,
        4,
        &OFFSET_FOR_LEADER_EPOCH,
    ),
    api(ApiKey::ElectLeaders, 2, 2, 2, &ELECT_LEADERS),
    api(ApiKey::DescribeLogDirs, 4, 4, 4, &DESCRIBE_LOG_DIRS),
    api(
        ApiKey::AlterReplicaLogDirs,
        2,
        2,
        2,
        &ALTER_REPLICA_LOG_DIRS,
    ),
    api(
        ApiKey::AlterPartitionReassignments,
        0,
        0,
        0,
        &ALTER_REASSIGNMENTS,
    ),
    api(
        ApiKey::ListPartitionReassignments,
        0,
        0,
        0,
        &LIST_REASSIGNMENTS,
    ),
    api(ApiKey::FindCoordinator, 3, 6, 3, &FIND_COORDINATOR),
    api(ApiKey::JoinGroup, 6, 9, 6, &JOIN_GROUP),
    api(ApiKey::SyncGroup, 4, 5, 4, &SYNC_GROUP),
    api(ApiKey::Heartbeat, 4, 4, 4, &HEARTBEAT),
    api(ApiKey::LeaveGroup, 4, 5, 4, &LEAVE_GROUP),
    api(ApiKey::OffsetCommit, 8, 9, 8, &OFFSET_COMMIT),
    api(ApiKey::OffsetFetch, 6, 9, 6, &OFFSET_FETCH),
    api(ApiKey::ListGroups, 3, 5, 3, &LIST_GROUPS),
    api(ApiKey::DescribeGroups, 5, 6, 5, &DESCRIBE_GROUPS),
    api(ApiKey::DeleteGroups, 2, 2, 2, &DELETE_GROUPS),
    api(
        ApiKey::ConsumerGroupDescribe,
        0,
        1,
        0,
        &CONSUMER_GROUP_DESCRIBE,
    ),
    api(ApiKey::DescribeQuorum, 2, 2, 0, &DESCRIBE_QUORUM),
    api(
        ApiKey::DescribeTopicPartitions,
        0,
        0,
        0,
        &DESCRIBE_TOPIC_PARTITIONS,
    ),
    api(ApiKey::UpdateFeatures, 0, 2, 0, &UPDATE_FEATURES),
    api(ApiKey::ListTransactions, 0, 2, 0, &LIST_TRANSACTIONS),
    api(
        ApiKey::DescribeTransactions,
        0,
        0,
        0,
        &DESCRIBE_TRANSACTIONS,
    ),
    api(ApiKey::DescribeProducers, 0, 0, 0, &DESCRIBE_PRODUCERS),
    api(ApiKey::WriteTxnMarkers, 1, 1, 1, &WRITE_TXN_MARKERS),
    api(ApiKey::AddPartitionsToTxn, 5, 5, 3, &ADD_PARTITIONS_TO_TXN),
    api(
        ApiKey::DescribeUserScramCredentials,
        0,
        0,
        0,
        &DESCRIBE_USER_SCRAM_CREDENTIALS,
    ),
    api(
        ApiKey::AlterUserScramCredentials,
        0,
        0,
        0,
        &ALTER_USER_SCRAM_CREDENTIALS,
    ),
];

/// The response versions the guard covers for `key`, if any.
pub fn covered(key: ApiKey) -> Option<(i16, i16)> {
    APIS.iter().find(|a| a.key == key).map(|a| (a.min, a.max))
}

/// Checks that `body` (the bytes after the response header) is a response of
/// `key`/`version` whose every length fits in the bytes present. Trailing bytes
/// after the schema are allowed (newer brokers may add fields we skip).
pub fn check_response_body(key: ApiKey, version: i16, body: &[u8]) -> Result<(), GuardError> {
    let api = APIS
        .iter()
        .find(|a| a.key == key && (a.min..=a.max).contains(&version))
        .ok_or(GuardError::Unsupported {
            key: key as i16,
            version,
        })?;
    let mut w = Walker {
        buf: body,
        pos: 0,
        version,
        flexible: version >= api.flexible_min,
    };
    w.walk_struct(api.body)
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn skip(&mut self, n: usize) -> Result<(), GuardError> {
        if n > self.remaining() {
            return Err(GuardError::TooLong {
                at: self.pos,
                len: n as u64,
                remaining: self.remaining(),
            });
        }
        self.pos += n;
        Ok(())
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], GuardError> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or(GuardError::Truncated { at: self.pos })?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.pos += N;
        Ok(out)
    }

    fn uvarint(&mut self) -> Result<u32, GuardError> {
        let at = self.pos;
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = *self.buf.get(self.pos).ok_or(GuardError::Truncated { at })?;
            self.pos += 1;
            let bits = u32::from(b & 0x7f);
            if i == 4 && bits > 0x0f {
                return Err(GuardError::Varint { at });
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(GuardError::Varint { at })
    }

    /// A length prefix: `None` for null; classic lengths are `width` bytes.
    fn length(&mut self, classic_width: usize) -> Result<Option<usize>, GuardError> {
        let at = self.pos;
        if self.flexible {
            let n = self.uvarint()?;
            return Ok(n.checked_sub(1).map(|n| n as usize));
        }
        let n: i64 = if classic_width == 2 {
            i64::from(i16::from_be_bytes(self.fixed::<2>()?))
        } else {
            i64::from(i32::from_be_bytes(self.fixed::<4>()?))
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(GuardError::Negative { at, len: n }),
            n => Ok(Some(n as usize)),
        }
    }

    fn walk_kind(&mut self, kind: Kind) -> Result<(), GuardError> {
        match kind {
            Kind::I8 => self.skip_fixed(1),
            Kind::I16 => self.skip_fixed(2),
            Kind::I32 => self.skip_fixed(4),
            Kind::I64 => self.skip_fixed(8),
            Kind::Uuid => self.skip_fixed(16),
            Kind::Str => {
                if let Some(n) = self.length(2)? {
                    self.skip(n)?;
                }
                Ok(())
            }
            Kind::Bytes => {
                if let Some(n) = self.length(4)? {
                    self.skip(n)?;
                }
                Ok(())
            }
            Kind::I32s => {
                if let Some(n) = self.array_len()? {
                    self.skip(
                        n.checked_mul(4)
                            .ok_or(GuardError::Truncated { at: self.pos })?,
                    )?;
                }
                Ok(())
            }
            Kind::Strs => {
                if let Some(n) = self.array_len()? {
                    for _ in 0..n {
                        self.walk_kind(Kind::Str)?;
                    }
                }
                Ok(())
            }
            Kind::Array(schema) => {
                if let Some(n) = self.array_len()? {
                    for _ in 0..n {
                        self.walk_struct(schema)?;
                    }
                }
                Ok(())
            }
            Kind::Struct(schema) => self.walk_struct(schema),
            Kind::OptStruct(schema) => {
                let marker = self.fixed::<1>()?;
                if marker[0] == 1 {
                    self.walk_struct(schema)?;
                }
                Ok(())
            }
        }
    }

    fn skip_fixed(&mut self, n: usize) -> Result<(), GuardError> {
        if self.remaining() < n {
            return Err(GuardError::Truncated { at: self.pos });
        }
        self.pos += n;
        Ok(())
    }

    /// An array count, refused unless that many one-byte elements could follow.
    fn array_len(&mut self) -> Result<Option<usize>, GuardError> {
        let at = self.pos;
        let n = self.length(4)?;
        if let Some(n) = n {
            if n > self.remaining() {
                return Err(GuardError::TooLong {
                    at,
                    len: n as u64,
                    remaining: self.remaining(),
                });
            }
        }
        Ok(n)
    }

    fn walk_struct(&mut self, schema: &Schema) -> Result<(), GuardError> {
        for field in schema.fields {
            if field.min <= self.version && self.version <= field.max {
                self.walk_kind(field.kind)?;
            }
        }
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint()?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let at = self.pos;
            if size > self.remaining() {
                return Err(GuardError::TooLong {
                    at,
                    len: size as u64,
                    remaining: self.remaining(),
                });
            }
            let known = schema
                .tags
                .iter()
                .find(|t| t.tag == tag && self.version >= t.min);
            match known {
                Some(t) => {
                    let mut sub = Walker {
                        buf: &self.buf[..at + size],
                        pos: at,
                        version: self.version,
                        flexible: true,
                    };
                    sub.walk_kind(t.kind)?;
                    if sub.pos != at + size {
                        return Err(GuardError::TagSize {
                            at,
                            tag,
                            declared: size,
                            actual: sub.pos - at,
                        });
                    }
                    self.pos = at + size;
                }
                None => self.pos = at + size,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encode<T: Encodable>(msg: &T, version: i16) -> Vec<u8> {
        let mut buf = BytesMut::new();
        msg.encode(&mut buf, version).expect("encodes");
        buf.to_vec()
    }

    #[test]
    fn accepts_real_responses_of_every_covered_version() {
        let md = MetadataResponse::default()
            .with_brokers(vec![metadata_response::MetadataResponseBroker::default()
                .with_host(StrBytes::from_static_str("localhost"))
                .with_port(9092)])
            .with_topics(vec![metadata_response::MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                .with_partitions(vec![
                    metadata_response::MetadataResponsePartition::default()
                        .with_replica_nodes(vec![BrokerId(1)])
                        .with_isr_nodes(vec![BrokerId(1)]),
                ])]);
        for v in 9..=12 {
            check_response_body(ApiKey::Metadata, v, &encode(&md, v)).expect("valid metadata");
        }
        let av = ApiVersionsResponse::default().with_api_keys(vec![
            api_versions_response::ApiVersion::default()
                .with_api_key(3)
                .with_max_version(12),
        ]);
        for v in 0..=4 {
            check_response_body(ApiKey::ApiVersions, v, &encode(&av, v))
                .expect("valid api versions");
        }
        let uf = UpdateFeaturesResponse::default()
            .with_error_code(95)
            .with_error_message(Some(StrBytes::from_static_str("no")))
            .with_results(vec![
                update_features_response::UpdatableFeatureResult::default()
                    .with_feature(StrBytes::from_static_str("group.version"))
                    .with_error_code(95),
            ]);
        for v in 0..=2 {
            check_response_body(ApiKey::UpdateFeatures, v, &encode(&uf, v))
                .expect("valid update features");
        }
        let fetch = FetchResponse::default().with_responses(vec![
            fetch_response::FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![fetch_response::PartitionData::default()
                    .with_records(Some(bytes::Bytes::from_static(b"abc")))
                    .with_current_leader(
                        fetch_response::LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(1))
                            .with_leader_epoch(3),
                    )]),
        ]);
        check_response_body(ApiKey::Fetch, 12, &encode(&fetch, 12)).expect("valid fetch");
        let by_id = FetchResponse::default().with_responses(vec![
            fetch_response::FetchableTopicResponse::default()
                .with_topic_id(Default::default())
                .with_partitions(vec![fetch_response::PartitionData::default()
                    .with_records(Some(bytes::Bytes::from_static(b"abc")))]),
        ]);
        check_response_body(ApiKey::Fetch, 15, &encode(&by_id, 15)).expect("valid fetch v15");
        assert!(
            check_response_body(ApiKey::Fetch, 15, &encode(&fetch, 12)).is_err(),
            "a v12 body (topic names) is not a v15 one"
        );
        let of = OffsetFetchResponse::default().with_groups(vec![
            offset_fetch_response::OffsetFetchResponseGroup::default().with_topics(vec![
                offset_fetch_response::OffsetFetchResponseTopics::default().with_partitions(vec![
                    offset_fetch_response::OffsetFetchResponsePartitions::default(),
                ]),
            ]),
        ]);
        for v in 8..=9 {
            check_response_body(ApiKey::OffsetFetch, v, &encode(&of, v))
                .expect("valid offset fetch");
        }
        use kafka_protocol::messages::describe_quorum_response as dq;
        let replica = dq::ReplicaState::default()
            .with_replica_id(BrokerId(1))
            .with_log_end_offset(7);
        let quorum = DescribeQuorumResponse::default()
            .with_topics(vec![dq::TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                .with_partitions(vec![dq::PartitionData::default()
                    .with_current_voters(vec![replica.clone(), replica.clone()])
                    .with_observers(vec![replica])])])
            .with_nodes(vec![
                dq::Node::default().with_listeners(vec![dq::Listener::default().with_port(9093)])
            ]);
        check_response_body(ApiKey::DescribeQuorum, 2, &encode(&quorum, 2))
            .expect("valid describe quorum");
    }

    #[test]
    fn replication_admin_responses_pass() {
        use kafka_protocol::messages::*;
        let epochs = OffsetForLeaderEpochResponse::default().with_topics(vec![
            offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    offset_for_leader_epoch_response::EpochEndOffset::default()
                        .with_partition(2)
                        .with_leader_epoch(5)
                        .with_end_offset(77),
                ]),
        ]);
        check_response_body(ApiKey::OffsetForLeaderEpoch, 4, &encode(&epochs, 4))
            .expect("valid epochs");
        let elect = ElectLeadersResponse::default().with_replica_election_results(vec![
            elect_leaders_response::ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partition_result(vec![elect_leaders_response::PartitionResult::default()
                    .with_error_message(Some(StrBytes::from_static_str("no")))]),
        ]);
        check_response_body(ApiKey::ElectLeaders, 2, &encode(&elect, 2)).expect("valid elect");
        let alter = AlterPartitionReassignmentsResponse::default().with_responses(vec![
            alter_partition_reassignments_response::ReassignableTopicResponse::default()
                .with_partitions(vec![Default::default()]),
        ]);
        check_response_body(ApiKey::AlterPartitionReassignments, 0, &encode(&alter, 0))
            .expect("valid alter");
        let list = ListPartitionReassignmentsResponse::default().with_topics(vec![
            list_partition_reassignments_response::OngoingTopicReassignment::default()
                .with_partitions(vec![
                    list_partition_reassignments_response::OngoingPartitionReassignment::default()
                        .with_replicas(vec![BrokerId(1), BrokerId(2)])
                        .with_adding_replicas(vec![BrokerId(2)]),
                ]),
        ]);
        check_response_body(ApiKey::ListPartitionReassignments, 0, &encode(&list, 0))
            .expect("valid list");
        // Truncated: the partitions array count claims more than remains.
        let mut body = encode(&epochs, 4).to_vec();
        body.truncate(body.len() - 10);
        assert!(check_response_body(ApiKey::OffsetForLeaderEpoch, 4, &body).is_err());
    }

    #[test]
    fn consumer_group_describe_responses_pass_and_truncations_do_not() {
        let tps = |name: &'static str| {
            consumer_group_describe_response::Assignment::default().with_topic_partitions(vec![
                consumer_group_describe_response::TopicPartitions::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str(name)))
                    .with_partitions(vec![0, 2]),
            ])
        };
        let resp = ConsumerGroupDescribeResponse::default().with_groups(vec![
            consumer_group_describe_response::DescribedGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_members(vec![consumer_group_describe_response::Member::default()
                    .with_member_id(StrBytes::from_static_str("m"))
                    .with_subscribed_topic_names(vec![
                        TopicName(StrBytes::from_static_str("a")),
                        TopicName(StrBytes::from_static_str("b")),
                    ])
                    .with_subscribed_topic_regex(Some(StrBytes::from_static_str("^o-.*")))
                    .with_assignment(tps("a"))
                    .with_target_assignment(tps("b"))
                    .with_member_type(1)]),
        ]);
        for v in 0..=1 {
            let body = encode(&resp, v);
            check_response_body(ApiKey::ConsumerGroupDescribe, v, &body).expect("valid describe");
            let mut cut = body.clone();
            cut.truncate(body.len() - 12);
            assert!(check_response_body(ApiKey::ConsumerGroupDescribe, v, &cut).is_err());
        }
    }

    #[test]
    fn refuses_huge_array_counts() {
        // Metadata v9: throttle, then a compact array claiming 2^28 brokers.
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&[0x81, 0x80, 0x80, 0x80, 0x01]);
        let err = check_response_body(ApiKey::Metadata, 9, &body).unwrap_err();
        assert!(matches!(err, GuardError::TooLong { .. }), "{err:?}");
        // ApiVersions v0: error code, then an INT32 array count of i32::MAX.
        let body = [0, 0, 0x7f, 0xff, 0xff, 0xff];
        assert!(check_response_body(ApiKey::ApiVersions, 0, &body).is_err());
    }

    #[test]
    fn refuses_truncated_and_oversized_tags() {
        let hb = HeartbeatResponse::default();
        let mut bytes = encode(&hb, 4);
        bytes.pop();
        assert!(check_response_body(ApiKey::Heartbeat, 4, &bytes).is_err());
        // A known tag (CreateTopics result tag 0, an INT16) declared as 5 bytes.
        let ok = encode(
            &CreateTopicsResponse::default()
                .with_topics(vec![create_topics_response::CreatableTopicResult::default()]),
            5,
        );
        check_response_body(ApiKey::CreateTopics, 5, &ok).expect("valid");
        let mut bad = ok.clone();
        // Replace the result's empty tag section (second-to-last byte) with one tag.
        let n = bad.len();
        bad.truncate(n - 2);
        bad.extend_from_slice(&[1, 0, 5, 0, 1, 0, 0, 0, 0]);
        let err = check_response_body(ApiKey::CreateTopics, 5, &bad).unwrap_err();
        assert!(matches!(err, GuardError::TagSize { .. }), "{err:?}");
    }

    #[test]
    fn describe_topic_partitions_responses_pass_with_and_without_a_cursor() {
        use describe_topic_partitions_response::{
            Cursor, DescribeTopicPartitionsResponsePartition as P,
            DescribeTopicPartitionsResponseTopic as T,
        };
        let page = DescribeTopicPartitionsResponse::default().with_topics(vec![T::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
            .with_partitions(vec![
                P::default()
                    .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                    .with_eligible_leader_replicas(Some(vec![BrokerId(2)]))
                    .with_last_known_elr(None),
                P::default().with_partition_index(1),
            ])]);
        let last = encode(&page, 0);
        check_response_body(ApiKey::DescribeTopicPartitions, 0, &last).expect("last page");
        let more = encode(
            &page.clone().with_next_cursor(Some(
                Cursor::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_index(2),
            )),
            0,
        );
        assert!(more.len() > last.len() + 4, "the cursor is on the wire");
        check_response_body(ApiKey::DescribeTopicPartitions, 0, &more).expect("with cursor");
        // A present marker whose cursor is cut off is refused.
        let mut cut = more.clone();
        cut.truncate(more.len() - 3);
        assert!(check_response_body(ApiKey::DescribeTopicPartitions, 0, &cut).is_err());
    }

    #[test]
    fn unknown_versions_are_refused() {
        assert!(check_response_body(ApiKey::Fetch, 11, &[]).is_err());
    }

    #[test]
    fn transaction_admin_responses_pass() {
        let list = ListTransactionsResponse::default()
            .with_unknown_state_filters(vec![StrBytes::from_static_str("Bogus")])
            .with_transaction_states(vec![list_transactions_response::TransactionState::default(
            )
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
            .with_producer_id(ProducerId(7))
            .with_transaction_state(StrBytes::from_static_str("Ongoing"))]);
        for v in 0..=2 {
            check_response_body(ApiKey::ListTransactions, v, &encode(&list, v)).expect("list");
        }
        let describe = DescribeTransactionsResponse::default().with_transaction_states(vec![
            describe_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                .with_transaction_state(StrBytes::from_static_str("Ongoing"))
                .with_topics(vec![describe_transactions_response::TopicData::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![0, 1])]),
        ]);
        check_response_body(ApiKey::DescribeTransactions, 0, &encode(&describe, 0))
            .expect("describe");
        let producers = DescribeProducersResponse::default().with_topics(vec![
            describe_producers_response::TopicResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    describe_producers_response::PartitionResponse::default()
                        .with_active_producers(vec![
                            describe_producers_response::ProducerState::default(),
                        ]),
                ]),
        ]);
        check_response_body(ApiKey::DescribeProducers, 0, &encode(&producers, 0))
            .expect("producers");
        let markers = WriteTxnMarkersResponse::default().with_markers(vec![
            write_txn_markers_response::WritableTxnMarkerResult::default().with_topics(vec![
                write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                    .with_partitions(vec![
                        write_txn_markers_response::WritableTxnMarkerPartitionResult::default(),
                    ]),
            ]),
        ]);
        check_response_body(ApiKey::WriteTxnMarkers, 1, &encode(&markers, 1)).expect("markers");
        // A count larger than the body is refused.
        let mut bad = encode(&producers, 0);
        bad[4] = 0x7f;
        assert!(check_response_body(ApiKey::DescribeProducers, 0, &bad).is_err());
    }
}
