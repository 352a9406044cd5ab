//! Pre-decode guard: proves a request body is well-formed enough for kafka-protocol to
//! decode it without allocations driven by lengths that the body cannot back up.
//!
//! # Why
//!
//! kafka-protocol's decoders trust length prefixes: arrays call `Vec::with_capacity(n)`
//! and some string/bytes paths call `vec![0; n]` with `n` taken straight off the wire,
//! before checking that the bytes exist. A four-byte body can therefore request
//! gigabytes, and a failed allocation aborts the whole broker. [`check_request_body`]
//! walks the body first and refuses it unless every length fits in what remains.
//!
//! # Wire encoding facts the walker relies on
//!
//! * Fixed-width integers are big-endian: INT8/BOOLEAN 1 byte, INT16/UINT16 2,
//!   INT32 4, INT64/FLOAT64 8, UUID 16.
//! * UNSIGNED_VARINT is little-endian base-128 (7 bits per byte, high bit = "more"), at
//!   most 5 bytes ([`VARINT_BYTES_MAX`]); VARINT/VARLONG are zig-zag encoded on top of
//!   that (VARLONG at most 10 bytes, [`VARLONG_BYTES_MAX`]). The guard refuses varints
//!   whose last permitted byte still carries a continuation bit or overflowing bits, so
//!   every accepted varint means the same thing to kafka-protocol.
//! * Classic (non-flexible) versions: STRING is an INT16 length then that many bytes;
//!   BYTES and ARRAY use an INT32 length (an array length counts elements). A length of
//!   -1 means null (only for the nullable variants); any other negative length is invalid.
//! * Flexible versions use compact encodings: the length is an UNSIGNED_VARINT holding
//!   `length + 1`, so `0` means null, `1` means empty and `n` means `n - 1` bytes or
//!   elements.
//! * Flexible versions also end every struct (the request itself and every nested
//!   struct) with a tagged-fields section: an UNSIGNED_VARINT count, then per field an
//!   UNSIGNED_VARINT tag, an UNSIGNED_VARINT size, and `size` bytes of payload. Unknown
//!   tags are skipped by size. Tags kafka-protocol knows are decoded by kafka-protocol
//!   with the field's own schema *from the main buffer* (the size is not used to bound
//!   them), so the guard walks those payloads with their schema too and requires the
//!   walk to consume exactly `size` bytes.
//! * A nullable struct (used by DescribeTopicPartitions' cursor) is an INT8 marker,
//!   where 1 means "a struct follows" and anything else means null.
//! * Within one message a single version threshold switches every struct to the
//!   flexible encoding (compact lengths plus tagged fields).
//!
//! # Shape
//!
//! Each request is described as static data: a `Schema` is a list of fields, each
//! with a kind and the version range in which it is on the wire, plus the tagged fields
//! the decoder knows. `Walker` follows that description over the body, reading every
//! length with bounds checks and walking every array element, so an accepted body holds
//! at least `count * min_element_size` bytes for every array. Nesting depth is fixed by
//! the static schemas, never by the input, and the walk does work proportional to the
//! body length (every array element and tagged field consumes at least one byte).
//!
//! # The resulting allocation bound
//!
//! kafka-protocol reserves `count * size_of::<Element>()` bytes per array. After the
//! guard, `count <= body_len / min_wire_size(Element)`, so the largest reservation is
//! `body_len * size_of / min_wire_size`. For the covered requests that ratio peaks near
//! 40 (e.g. an `OffsetFetchRequestGroup`, 120 bytes in memory, can be 3 bytes on the
//! wire); the tests hold every accepted body to `64 * body_len + 64 KiB`. Strings and
//! bytes are never longer than the body. When adding a request, check its element
//! types against that ratio (the dense-array test in `tests/guard.rs` measures it).

use std::ops::RangeInclusive;

use kafka_protocol::messages::ApiKey;

/// Most bytes an UNSIGNED_VARINT (32-bit) may occupy.
pub const VARINT_BYTES_MAX: usize = 5;
/// Most bytes an UNSIGNED_VARLONG (64-bit) may occupy.
pub const VARLONG_BYTES_MAX: usize = 10;

/// Why a request body was refused before decoding.
///
/// `at` is always the byte offset within the body where the offending item starts, and
/// `field` names the schema field being read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    /// No schema is known for this api key and version.
    #[error("no request schema for api key {key} version {version}")]
    UnsupportedApi { key: i16, version: i16 },
    /// The body ends inside a fixed-size item or a length prefix.
    #[error("body ends inside field `{field}` at byte {at}")]
    Truncated { at: usize, field: &'static str },
    /// A length (for arrays: count times the minimum element size) exceeds the bytes
    /// that remain after the length prefix.
    #[error("field `{field}` at byte {at} needs at least {len} bytes but {remaining} remain")]
    LengthTooLarge {
        at: usize,
        field: &'static str,
        len: u64,
        remaining: usize,
    },
    /// A classic length prefix below -1.
    #[error("field `{field}` at byte {at} has negative length {len}")]
    NegativeLength {
        at: usize,
        field: &'static str,
        len: i32,
    },
    /// A null length on a field that kafka-protocol decodes as non-nullable.
    #[error("field `{field}` at byte {at} is null but not nullable")]
    NullNotAllowed { at: usize, field: &'static str },
    /// A varint longer than its maximum width or overflowing its integer type.
    #[error("field `{field}` at byte {at} is a malformed varint")]
    MalformedVarint { at: usize, field: &'static str },
    /// A known tagged field whose payload does not occupy exactly its declared size.
    #[error(
        "tagged field {tag} at byte {at} declares {declared} bytes but its payload is {actual}"
    )]
    TaggedFieldSize {
        at: usize,
        tag: u32,
        declared: u32,
        actual: usize,
    },
    /// Bytes left over after the request body's schema is complete.
    #[error("{remaining} bytes follow the end of the request body at byte {at}")]
    TrailingBytes { at: usize, remaining: usize },
}

/// Walks a request BODY (the bytes after the request header, i.e. exactly what
/// kafka-protocol's `Decodable::decode(buf, version)` for that request type would read)
/// following Kafka's schema for (api_key, api_version), and checks that every array,
/// string, bytes and tagged-field length fits in the bytes that remain, with each array
/// element counted as at least its minimum wire size. Returns Ok(()) when kafka-protocol
/// can decode it without any allocation larger than the body itself (times a small constant).
///
/// Bytes after the end of the schema are refused ([`GuardError::TrailingBytes`]).
pub fn check_request_body(api_key: i16, api_version: i16, body: &[u8]) -> Result<(), GuardError> {
    let end = request_body_len(api_key, api_version, body)?;
    if end == body.len() {
        Ok(())
    } else {
        Err(GuardError::TrailingBytes {
            at: end,
            remaining: body.len().saturating_sub(end),
        })
    }
}

/// Walks the request body like [`check_request_body`] but allows trailing bytes:
/// returns how many bytes of `body` the request occupies.
pub fn request_body_len(api_key: i16, api_version: i16, body: &[u8]) -> Result<usize, GuardError> {
    let api = find_api(api_key, api_version).ok_or(GuardError::UnsupportedApi {
        key: api_key,
        version: api_version,
    })?;
    let mut walker = Walker {
        body,
        pos: 0,
        version: api_version,
        flexible: api.flexible_min.is_some_and(|min| api_version >= min),
    };
    walker.walk_struct(api.body)?;
    Ok(walker.pos)
}

/// The request versions the guard has a schema for, if it knows `api_key` at all.
pub fn covered_versions(api_key: i16) -> Option<RangeInclusive<i16>> {
    APIS.iter()
        .find(|api| api.key as i16 == api_key)
        .map(|api| api.min..=api.max)
}

fn find_api(api_key: i16, api_version: i16) -> Option<&'static Api> {
    APIS.iter()
        .find(|api| api.key as i16 == api_key && (api.min..=api.max).contains(&api_version))
}

// ---------------------------------------------------------------------------------------
// Schema description language
// ---------------------------------------------------------------------------------------

/// The wire type of one field.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Int8,
    Int16,
    #[allow(dead_code)] // part of the type set; no covered request uses it yet
    UInt16,
    Int32,
    Int64,
    #[allow(dead_code)] // part of the type set; no covered request uses it yet
    Float64,
    Bool,
    Uuid,
    #[allow(dead_code)] // part of the type set; no covered request uses it yet
    VarInt,
    #[allow(dead_code)] // part of the type set; no covered request uses it yet
    VarLong,
    /// STRING / COMPACT_STRING that must not be null.
    Str,
    /// NULLABLE_STRING / COMPACT_NULLABLE_STRING.
    NullableStr,
    /// BYTES / COMPACT_BYTES that must not be null.
    Bytes,
    #[allow(dead_code)] // part of the type set; no covered request uses it yet
    NullableBytes,
    /// A record set: nullable bytes on the wire, kept opaque here.
    Records,
    /// ARRAY / COMPACT_ARRAY that must not be null.
    Array(Elem),
    /// Nullable ARRAY / COMPACT_ARRAY.
    NullableArray(Elem),
    /// A struct embedded directly (used for tagged struct fields).
    Struct(&'static Schema),
    /// A nullable struct: INT8 marker, 1 = present.
    OptionStruct(&'static Schema),
}

/// The element type of an array.
#[derive(Clone, Copy, Debug)]
enum Elem {
    Int8,
    Int32,
    Int64,
    /// Non-nullable string elements.
    Str,
    Struct(&'static Schema),
}

impl Elem {
    fn kind(self) -> Kind {
        match self {
            Elem::Int8 => Kind::Int8,
            Elem::Int32 => Kind::Int32,
            Elem::Int64 => Kind::Int64,
            Elem::Str => Kind::Str,
            Elem::Struct(schema) => Kind::Struct(schema),
        }
    }
}

/// One field of a struct, on the wire for versions `min..=max`.
#[derive(Clone, Copy, Debug)]
struct Field {
    name: &'static str,
    kind: Kind,
    min: i16,
    max: i16,
}

impl Field {
    const fn since(self, min: i16) -> Field {
        Field { min, ..self }
    }
    const fn until(self, max: i16) -> Field {
        Field { max, ..self }
    }
    fn present_in(&self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// A tagged field kafka-protocol decodes with its own schema.
#[derive(Clone, Copy, Debug)]
struct Tagged {
    tag: u32,
    name: &'static str,
    kind: Kind,
}

/// A struct: ordered fields, then (in flexible versions) the tagged-fields section.
#[derive(Clone, Copy, Debug)]
struct Schema {
    fields: &'static [Field],
    tagged: &'static [Tagged],
}

impl Schema {
    const fn tags(self, tagged: &'static [Tagged]) -> Schema {
        Schema { tagged, ..self }
    }
}

/// A request type: its api key, covered versions, first flexible version and body.
struct Api {
    key: ApiKey,
    min: i16,
    max: i16,
    flexible_min: Option<i16>,
    body: &'static Schema,
}

const fn f(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        min: 0,
        max: i16::MAX,
    }
}

const fn tag(tag: u32, name: &'static str, kind: Kind) -> Tagged {
    Tagged { tag, name, kind }
}

const fn schema(fields: &'static [Field]) -> Schema {
    Schema {
        fields,
        tagged: &[],
    }
}

const fn array(schema: &'static Schema) -> Kind {
    Kind::Array(Elem::Struct(schema))
}

const fn nullable_array(schema: &'static Schema) -> Kind {
    Kind::NullableArray(Elem::Struct(schema))
}

const fn api(
    key: ApiKey,
    min: i16,
    max: i16,
    flexible_min: Option<i16>,
    body: &'static Schema,
) -> Api {
    Api {
        key,
        min,
        max,
        flexible_min,
        body,
    }
}

const I8: Kind = Kind::Int8;
const I16: Kind = Kind::Int16;
const I32: Kind = Kind::Int32;
const I64: Kind = Kind::Int64;
const BOOL: Kind = Kind::Bool;
const UUID: Kind = Kind::Uuid;
const STR: Kind = Kind::Str;
const NSTR: Kind = Kind::NullableStr;
const BYTES: Kind = Kind::Bytes;
const I8_ARRAY: Kind = Kind::Array(Elem::Int8);
const I32_ARRAY: Kind = Kind::Array(Elem::Int32);
const STR_ARRAY: Kind = Kind::Array(Elem::Str);
const I64_ARRAY: Kind = Kind::Array(Elem::Int64);
const NULLABLE_I32_ARRAY: Kind = Kind::NullableArray(Elem::Int32);
const NULLABLE_STR_ARRAY: Kind = Kind::NullableArray(Elem::Str);

// ---------------------------------------------------------------------------------------
// Request schemas. Field order, types, nullability and version ranges follow Kafka's
// request definitions as decoded by kafka-protocol 0.18.
// ---------------------------------------------------------------------------------------

/// Every request the guard can walk. Versions outside these ranges are unsupported.
static APIS: &[Api] = &[
    api(ApiKey::Produce, 3, 13, Some(9), &PRODUCE),
    api(ApiKey::Fetch, 4, 18, Some(12), &FETCH),
    api(ApiKey::ListOffsets, 1, 10, Some(6), &LIST_OFFSETS),
    api(ApiKey::Metadata, 0, 13, Some(9), &METADATA),
    api(ApiKey::ApiVersions, 0, 4, Some(3), &API_VERSIONS),
    api(ApiKey::CreateTopics, 2, 7, Some(5), &CREATE_TOPICS),
    api(ApiKey::DeleteTopics, 1, 6, Some(4), &DELETE_TOPICS),
    api(ApiKey::DeleteRecords, 0, 2, Some(2), &DELETE_RECORDS),
    api(ApiKey::DescribeConfigs, 1, 4, Some(4), &DESCRIBE_CONFIGS),
    api(ApiKey::CreatePartitions, 0, 3, Some(2), &CREATE_PARTITIONS),
    api(ApiKey::DescribeCluster, 0, 2, Some(0), &DESCRIBE_CLUSTER),
    api(ApiKey::DescribeLogDirs, 1, 4, Some(2), &DESCRIBE_LOG_DIRS),
    api(
        ApiKey::AlterReplicaLogDirs,
        1,
        2,
        Some(2),
        &ALTER_REPLICA_LOG_DIRS,
    ),
    api(ApiKey::InitProducerId, 0, 5, Some(2), &INIT_PRODUCER_ID),
    api(ApiKey::FindCoordinator, 0, 6, Some(3), &FIND_COORDINATOR),
    api(ApiKey::JoinGroup, 0, 9, Some(6), &JOIN_GROUP),
    api(ApiKey::SyncGroup, 0, 5, Some(4), &SYNC_GROUP),
    api(ApiKey::Heartbeat, 0, 4, Some(4), &HEARTBEAT),
    api(ApiKey::LeaveGroup, 0, 5, Some(4), &LEAVE_GROUP),
    api(ApiKey::OffsetCommit, 2, 9, Some(8), &OFFSET_COMMIT),
    api(ApiKey::OffsetFetch, 1, 9, Some(6), &OFFSET_FETCH),
    api(ApiKey::TxnOffsetCommit, 0, 5, Some(3), &TXN_OFFSET_COMMIT),
    api(ApiKey::ListGroups, 0, 5, Some(3), &LIST_GROUPS),
    api(ApiKey::DescribeGroups, 0, 6, Some(5), &DESCRIBE_GROUPS),
    api(ApiKey::DeleteGroups, 0, 2, Some(2), &DELETE_GROUPS),
    api(ApiKey::OffsetDelete, 0, 0, None, &OFFSET_DELETE),
    api(ApiKey::AlterConfigs, 0, 2, Some(2), &ALTER_CONFIGS),
    api(
        ApiKey::IncrementalAlterConfigs,
        0,
        1,
        Some(1),
        &INCREMENTAL_ALTER_CONFIGS,
    ),
    api(
        ApiKey::ConsumerGroupHeartbeat,
        0,
        1,
        Some(0),
        &CONSUMER_GROUP_HEARTBEAT,
    ),
    api(
        ApiKey::ConsumerGroupDescribe,
        0,
        1,
        Some(0),
        &CONSUMER_GROUP_DESCRIBE,
    ),
    api(
        ApiKey::DescribeTopicPartitions,
        0,
        0,
        Some(0),
        &DESCRIBE_TOPIC_PARTITIONS,
    ),
    api(ApiKey::DescribeQuorum, 0, 2, Some(0), &DESCRIBE_QUORUM),
    api(
        ApiKey::ListConfigResources,
        0,
        1,
        Some(0),
        &LIST_CONFIG_RESOURCES,
    ),
    api(
        ApiKey::OffsetForLeaderEpoch,
        2,
        4,
        Some(4),
        &OFFSET_FOR_LEADER_EPOCH,
    ),
    api(ApiKey::ElectLeaders, 0, 2, Some(2), &ELECT_LEADERS),
    api(
        ApiKey::AlterPartitionReassignments,
        0,
        1,
        Some(0),
        &ALTER_PARTITION_REASSIGNMENTS,
    ),
    api(
        ApiKey::ListPartitionReassignments,
        0,
        0,
        Some(0),
        &LIST_PARTITION_REASSIGNMENTS,
    ),
    api(ApiKey::UpdateFeatures, 0, 2, Some(0), &UPDATE_FEATURES),
    api(
        ApiKey::AddPartitionsToTxn,
        0,
        5,
        Some(3),
        &ADD_PARTITIONS_TO_TXN,
    ),
    api(ApiKey::AddOffsetsToTxn, 0, 4, Some(3), &ADD_OFFSETS_TO_TXN),
    api(ApiKey::EndTxn, 0, 5, Some(3), &END_TXN),
    api(
        ApiKey::DescribeTransactions,
        0,
        0,
        Some(0),
        &DESCRIBE_TRANSACTIONS,
    ),
    api(ApiKey::ListTransactions, 0, 2, Some(0), &LIST_TRANSACTIONS),
    api(ApiKey::WriteTxnMarkers, 1, 1, Some(1), &WRITE_TXN_MARKERS),
    api(
        ApiKey::DescribeProducers,
        0,
        0,
        Some(0),
        &DESCRIBE_PRODUCERS,
    ),
    api(ApiKey::DescribeAcls, 1, 3, Some(2), &DESCRIBE_ACLS),
    api(ApiKey::CreateAcls, 1, 3, Some(2), &CREATE_ACLS),
    api(ApiKey::DeleteAcls, 1, 3, Some(2), &DELETE_ACLS),
    api(ApiKey::SaslHandshake, 0, 1, None, &SASL_HANDSHAKE),
    api(ApiKey::SaslAuthenticate, 0, 2, Some(2), &SASL_AUTHENTICATE),
    api(
        ApiKey::DescribeUserScramCredentials,
        0,
        0,
        Some(0),
        &DESCRIBE_USER_SCRAM_CREDENTIALS,
    ),
    api(
        ApiKey::AlterUserScramCredentials,
        0,
        0,
        Some(0),
        &ALTER_USER_SCRAM_CREDENTIALS,
    ),
];

// Produce (0)
const PRODUCE: Schema = schema(&[
    f("transactional_id", NSTR),
    f("acks", I16),
    f("timeout_ms", I32),
    f("topic_data", array(&PRODUCE_TOPIC)),
]);
const PRODUCE_TOPIC: Schema = schema(&[
    f("name", STR).until(12),
    f("topic_id", UUID).since(13),
    f("partition_data", array(&PRODUCE_PARTITION)),
]);
const PRODUCE_PARTITION: Schema = schema(&[f("index", I32), f("records", Kind::Records)]);

// Fetch (1)
const FETCH: Schema = schema(&[
    f("replica_id", I32).until(14),
    f("max_wait_ms", I32),
    f("min_bytes", I32),
    f("max_bytes", I32),
    f("isolation_level", I8),
    f("session_id", I32).since(7),
    f("session_epoch", I32).since(7),
    f("topics", array(&FETCH_TOPIC)),
    f("forgotten_topics_data", array(&FETCH_FORGOTTEN_TOPIC)).since(7),
    f("rack_id", STR).since(11),
])
.tags(&[
    tag(0, "cluster_id", NSTR),
    // kafka-protocol accepts this tag from v15 and refuses it below; walking it with
    // its schema in every version is at least as strict.
    tag(1, "replica_state", Kind::Struct(&FETCH_REPLICA_STATE)),
]);
const FETCH_REPLICA_STATE: Schema = schema(&[
    f("replica_id", I32).since(15),
    f("replica_epoch", I64).since(15),
]);
const FETCH_TOPIC: Schema = schema(&[
    f("topic", STR).until(12),
    f("topic_id", UUID).since(13),
    f("partitions", array(&FETCH_PARTITION)),
]);
const FETCH_PARTITION: Schema = schema(&[
    f("partition", I32),
    f("current_leader_epoch", I32).since(9),
    f("fetch_offset", I64),
    f("last_fetched_epoch", I32).since(12),
    f("log_start_offset", I64).since(5),
    f("partition_max_bytes", I32),
])
.tags(&[
    // Valid from v17 and v18 respectively in kafka-protocol (refused below).
    tag(0, "replica_directory_id", UUID),
    tag(1, "high_watermark", I64),
]);
const FETCH_FORGOTTEN_TOPIC: Schema = schema(&[
    f("topic", STR).since(7).until(12),
    f("topic_id", UUID).since(13),
    f("partitions", I32_ARRAY).since(7),
]);

// ListOffsets (2)
const LIST_OFFSETS: Schema = schema(&[
    f("replica_id", I32),
    f("isolation_level", I8).since(2),
    f("topics", array(&LIST_OFFSETS_TOPIC)),
    f("timeout_ms", I32).since(10),
]);
const LIST_OFFSETS_TOPIC: Schema = schema(&[
    f("name", STR),
    f("partitions", array(&LIST_OFFSETS_PARTITION)),
]);
const LIST_OFFSETS_PARTITION: Schema = schema(&[
    f("partition_index", I32),
    f("current_leader_epoch", I32).since(4),
    f("timestamp", I64),
]);

// Metadata (3)
const METADATA: Schema = schema(&[
    f("topics", nullable_array(&METADATA_TOPIC)),
    f("allow_auto_topic_creation", BOOL).since(4),
    f("include_cluster_authorized_operations", BOOL)
        .since(8)
        .until(10),
    f("include_topic_authorized_operations", BOOL).since(8),
]);
const METADATA_TOPIC: Schema = schema(&[f("topic_id", UUID).since(10), f("name", NSTR)]);

// ApiVersions (18)
const API_VERSIONS: Schema = schema(&[
    f("client_software_name", STR).since(3),
    f("client_software_version", STR).since(3),
]);

// CreateTopics (19)
const CREATE_TOPICS: Schema = schema(&[
    f("topics", array(&CREATE_TOPICS_TOPIC)),
    f("timeout_ms", I32),
    f("validate_only", BOOL),
]);
const CREATE_TOPICS_TOPIC: Schema = schema(&[
    f("name", STR),
    f("num_partitions", I32),
    f("replication_factor", I16),
    f("assignments", array(&CREATE_TOPICS_ASSIGNMENT)),
    f("configs", array(&CREATE_TOPICS_CONFIG)),
]);
const CREATE_TOPICS_ASSIGNMENT: Schema =
    schema(&[f("partition_index", I32), f("broker_ids", I32_ARRAY)]);
const CREATE_TOPICS_CONFIG: Schema = schema(&[f("name", STR), f("value", NSTR)]);

// DeleteTopics (20)
const DELETE_TOPICS: Schema = schema(&[
    f("topics", array(&DELETE_TOPICS_TOPIC)).since(6),
    f("topic_names", STR_ARRAY).until(5),
    f("timeout_ms", I32),
]);
const DELETE_TOPICS_TOPIC: Schema =
    schema(&[f("name", NSTR).since(6), f("topic_id", UUID).since(6)]);

// DeleteRecords (21)
const DELETE_RECORDS: Schema = schema(&[
    f("topics", array(&DELETE_RECORDS_TOPIC)),
    f("timeout_ms", I32),
]);
const DELETE_RECORDS_TOPIC: Schema = schema(&[
    f("name", STR),
    f("partitions", array(&DELETE_RECORDS_PARTITION)),
]);
const DELETE_RECORDS_PARTITION: Schema = schema(&[f("partition_index", I32), f("offset", I64)]);

// WriteTxnMarkers (27)
const WRITE_TXN_MARKERS: Schema = schema(&[f("markers", array(&WRITE_TXN_MARKERS_MARKER))]);
const WRITE_TXN_MARKERS_MARKER: Schema = schema(&[
    f("producer_id", I64),
    f("producer_epoch", I16),
    f("transaction_result", BOOL),
    f("topics", array(&WRITE_TXN_MARKERS_TOPIC)),
    f("coordinator_epoch", I32),
]);
const WRITE_TXN_MARKERS_TOPIC: Schema =
    schema(&[f("name", STR), f("partition_indexes", I32_ARRAY)]);

// DescribeAcls (29); also one DeleteAcls (31) filter.
const DESCRIBE_ACLS: Schema = schema(&[
    f("resource_type_filter", I8),
    f("resource_name_filter", NSTR),
    f("pattern_type_filter", I8),
    f("principal_filter", NSTR),
    f("host_filter", NSTR),
    f("operation", I8),
    f("permission_type", I8),
]);

// CreateAcls (30)
const CREATE_ACLS: Schema = schema(&[f("creations", array(&CREATE_ACLS_CREATION))]);
const CREATE_ACLS_CREATION: Schema = schema(&[
    f("resource_type", I8),
    f("resource_name", STR),
    f("resource_pattern_type", I8),
    f("principal", STR),
    f("host", STR),
    f("operation", I8),
    f("permission_type", I8),
]);

// DeleteAcls (31)
const DELETE_ACLS: Schema = schema(&[f("filters", array(&DESCRIBE_ACLS))]);

// DescribeProducers (61)
const DESCRIBE_PRODUCERS: Schema = schema(&[f("topics", array(&DESCRIBE_PRODUCERS_TOPIC))]);
const DESCRIBE_PRODUCERS_TOPIC: Schema =
    schema(&[f("name", STR), f("partition_indexes", I32_ARRAY)]);

// DescribeConfigs (32)
const DESCRIBE_CONFIGS: Schema = schema(&[
    f("resources", array(&DESCRIBE_CONFIGS_RESOURCE)),
    f("include_synonyms", BOOL),
    f("include_documentation", BOOL).since(3),
]);
const DESCRIBE_CONFIGS_RESOURCE: Schema = schema(&[
    f("resource_type", I8),
    f("resource_name", STR),
    f("configuration_keys", NULLABLE_STR_ARRAY),
]);

// CreatePartitions (37)
const CREATE_PARTITIONS: Schema = schema(&[
    f("topics", array(&CREATE_PARTITIONS_TOPIC)),
    f("timeout_ms", I32),
    f("validate_only", BOOL),
]);
const CREATE_PARTITIONS_TOPIC: Schema = schema(&[
    f("name", STR),
    f("count", I32),
    f("assignments", nullable_array(&CREATE_PARTITIONS_ASSIGNMENT)),
]);
const CREATE_PARTITIONS_ASSIGNMENT: Schema = schema(&[f("broker_ids", I32_ARRAY)]);

// DescribeCluster (60)
const DESCRIBE_CLUSTER: Schema = schema(&[
    f("include_cluster_authorized_operations", BOOL),
    f("endpoint_type", I8).since(1),
    f("include_fenced_brokers", BOOL).since(2),
]);

// InitProducerId (22)
const INIT_PRODUCER_ID: Schema = schema(&[
    f("transactional_id", NSTR),
    f("transaction_timeout_ms", I32),
    f("producer_id", I64).since(3),
    f("producer_epoch", I16).since(3),
]);

// FindCoordinator (10)
const FIND_COORDINATOR: Schema = schema(&[
    f("key", STR).until(3),
    f("key_type", I8).since(1),
    f("coordinator_keys", STR_ARRAY).since(4),
]);

// JoinGroup (11)
const JOIN_GROUP: Schema = schema(&[
    f("group_id", STR),
    f("session_timeout_ms", I32),
    f("rebalance_timeout_ms", I32).since(1),
    f("member_id", STR),
    f("group_instance_id", NSTR).since(5),
    f("protocol_type", STR),
    f("protocols", array(&JOIN_GROUP_PROTOCOL)),
    f("reason", NSTR).since(8),
]);
const JOIN_GROUP_PROTOCOL: Schema = schema(&[f("name", STR), f("metadata", BYTES)]);

// SyncGroup (14)
const SYNC_GROUP: Schema = schema(&[
    f("group_id", STR),
    f("generation_id", I32),
    f("member_id", STR),
    f("group_instance_id", NSTR).since(3),
    f("protocol_type", NSTR).since(5),
    f("protocol_name", NSTR).since(5),
    f("assignments", array(&SYNC_GROUP_ASSIGNMENT)),
]);
const SYNC_GROUP_ASSIGNMENT: Schema = schema(&[f("member_id", STR), f("assignment", BYTES)]);

// Heartbeat (12)
const HEARTBEAT: Schema = schema(&[
    f("group_id", STR),
    f("generation_id", I32),
    f("member_id", STR),
    f("group_instance_id", NSTR).since(3),
]);

// LeaveGroup (13)
const LEAVE_GROUP: Schema = schema(&[
    f("group_id", STR),
    f("member_id", STR).until(2),
    f("members", array(&LEAVE_GROUP_MEMBER)).since(3),
]);
const LEAVE_GROUP_MEMBER: Schema = schema(&[
    f("member_id", STR).since(3),
    f("group_instance_id", NSTR).since(3),
    f("reason", NSTR).since(5),
]);

// OffsetCommit (8)
const OFFSET_COMMIT: Schema = schema(&[
    f("group_id", STR),
    f("generation_id_or_member_epoch", I32),
    f("member_id", STR),
    f("group_instance_id", NSTR).since(7),
    f("retention_time_ms", I64).until(4),
    f("topics", array(&OFFSET_COMMIT_TOPIC)),
]);
const OFFSET_COMMIT_TOPIC: Schema = schema(&[
    f("name", STR),
    f("partitions", array(&OFFSET_COMMIT_PARTITION)),
]);
const OFFSET_COMMIT_PARTITION: Schema = schema(&[
    f("partition_index", I32),
    f("committed_offset", I64),
    f("committed_leader_epoch", I32).since(6),
    f("committed_metadata", NSTR),
]);

// TxnOffsetCommit (28)
const TXN_OFFSET_COMMIT: Schema = schema(&[
    f("transactional_id", STR),
    f("group_id", STR),
    f("producer_id", I64),
    f("producer_epoch", I16),
    f("generation_id", I32).since(3),
    f("member_id", STR).since(3),
    f("group_instance_id", NSTR).since(3),
    f("topics", array(&TXN_OFFSET_COMMIT_TOPIC)),
]);
const TXN_OFFSET_COMMIT_TOPIC: Schema = schema(&[
    f("name", STR),
    f("partitions", array(&TXN_OFFSET_COMMIT_PARTITION)),
]);
const TXN_OFFSET_COMMIT_PARTITION: Schema = schema(&[
    f("partition_index", I32),
    f("committed_offset", I64),
    f("committed_leader_epoch", I32).since(2),
    f("committed_metadata", NSTR),
]);

// OffsetFetch (9)
const OFFSET_FETCH: Schema = schema(&[
    f("group_id", STR).until(7),
    f("topics", nullable_array(&OFFSET_FETCH_TOPIC)).until(7),
    f("groups", array(&OFFSET_FETCH_GROUP)).since(8),
    f("require_stable", BOOL).since(7),
]);
const OFFSET_FETCH_TOPIC: Schema = schema(&[
    f("name", STR).until(7),
    f("partition_indexes", I32_ARRAY).until(7),
]);
const OFFSET_FETCH_GROUP: Schema = schema(&[
    f("group_id", STR).since(8),
    f("member_id", NSTR).since(9),
    f("member_epoch", I32).since(9),
    f("topics", nullable_array(&OFFSET_FETCH_GROUP_TOPIC)).since(8),
]);
const OFFSET_FETCH_GROUP_TOPIC: Schema = schema(&[
    f("name", STR).since(8),
    f("partition_indexes", I32_ARRAY).since(8),
]);

// ListGroups (16)
const LIST_GROUPS: Schema = schema(&[
    f("states_filter", STR_ARRAY).since(4),
    f("types_filter", STR_ARRAY).since(5),
]);

// DescribeGroups (15)
const DESCRIBE_GROUPS: Schema = schema(&[
    f("groups", STR_ARRAY),
    f("include_authorized_operations", BOOL).since(3),
]);

// DeleteGroups (42)
const DELETE_GROUPS: Schema = schema(&[f("groups_names", STR_ARRAY)]);

// OffsetDelete (47)
const OFFSET_DELETE: Schema =
    schema(&[f("group_id", STR), f("topics", array(&OFFSET_DELETE_TOPIC))]);
const OFFSET_DELETE_TOPIC: Schema = schema(&[
    f("name", STR),
    f("partitions", array(&OFFSET_DELETE_PARTITION)),
]);
const OFFSET_DELETE_PARTITION: Schema = schema(&[f("partition_index", I32)]);

// AlterConfigs (33)
const ALTER_CONFIGS: Schema = schema(&[
    f("resources", array(&ALTER_CONFIGS_RESOURCE)),
    f("validate_only", BOOL),
]);
const ALTER_CONFIGS_RESOURCE: Schema = schema(&[
    f("resource_type", I8),
    f("resource_name", STR),
    f("configs", array(&ALTER_CONFIGS_CONFIG)),
]);
const ALTER_CONFIGS_CONFIG: Schema = schema(&[f("name", STR), f("value", NSTR)]);

// IncrementalAlterConfigs (44)
const INCREMENTAL_ALTER_CONFIGS: Schema = schema(&[
    f("resources", array(&INCREMENTAL_ALTER_CONFIGS_RESOURCE)),
    f("validate_only", BOOL),
]);
const INCREMENTAL_ALTER_CONFIGS_RESOURCE: Schema = schema(&[
    f("resource_type", I8),
    f("resource_name", STR),
    f("configs", array(&INCREMENTAL_ALTER_CONFIGS_CONFIG)),
]);
const INCREMENTAL_ALTER_CONFIGS_CONFIG: Schema =
    schema(&[f("name", STR), f("config_operation", I8), f("value", NSTR)]);

// ConsumerGroupHeartbeat (68)
const CONSUMER_GROUP_HEARTBEAT: Schema = schema(&[
    f("group_id", STR),
    f("member_id", STR),
    f("member_epoch", I32),
    f("instance_id", NSTR),
    f("rack_id", NSTR),
    f("rebalance_timeout_ms", I32),
    f("subscribed_topic_names", NULLABLE_STR_ARRAY),
    f("subscribed_topic_regex", NSTR).since(1),
    f("server_assignor", NSTR),
    f(
        "topic_partitions",
        nullable_array(&CONSUMER_GROUP_HEARTBEAT_TOPIC),
    ),
]);
const CONSUMER_GROUP_HEARTBEAT_TOPIC: Schema =
    schema(&[f("topic_id", UUID), f("partitions", I32_ARRAY)]);

// ConsumerGroupDescribe (69)
const CONSUMER_GROUP_DESCRIBE: Schema = schema(&[
    f("group_ids", STR_ARRAY),
    f("include_authorized_operations", BOOL),
]);

// DescribeTopicPartitions (75)
const DESCRIBE_TOPIC_PARTITIONS: Schema = schema(&[
    f("topics", array(&DESCRIBE_TOPIC_PARTITIONS_TOPIC)),
    f("response_partition_limit", I32),
    f(
        "cursor",
        Kind::OptionStruct(&DESCRIBE_TOPIC_PARTITIONS_CURSOR),
    ),
]);
const DESCRIBE_TOPIC_PARTITIONS_TOPIC: Schema = schema(&[f("name", STR)]);
const DESCRIBE_TOPIC_PARTITIONS_CURSOR: Schema =
    schema(&[f("topic_name", STR), f("partition_index", I32)]);

// DescribeQuorum (55)
const DESCRIBE_QUORUM: Schema = schema(&[f("topics", array(&DESCRIBE_QUORUM_TOPIC))]);
const DESCRIBE_QUORUM_TOPIC: Schema = schema(&[
    f("topic_name", STR),
    f("partitions", array(&DESCRIBE_QUORUM_PARTITION)),
]);
const DESCRIBE_QUORUM_PARTITION: Schema = schema(&[f("partition_index", I32)]);

// ListConfigResources (74; v0 is ListClientMetricsResources, with no fields)
const LIST_CONFIG_RESOURCES: Schema = schema(&[f("resource_types", I8_ARRAY).since(1)]);

// OffsetForLeaderEpoch (23). Versions 0-1 were removed in Kafka 4.0 (KIP-896) and
// kafka-protocol 0.18 cannot encode or decode them, so the table starts at 2.
const OFFSET_FOR_LEADER_EPOCH: Schema = schema(&[
    f("replica_id", I32).since(3),
    f("topics", array(&OFFSET_FOR_LEADER_EPOCH_TOPIC)),
]);
const OFFSET_FOR_LEADER_EPOCH_TOPIC: Schema = schema(&[
    f("topic", STR),
    f("partitions", array(&OFFSET_FOR_LEADER_EPOCH_PARTITION)),
]);
const OFFSET_FOR_LEADER_EPOCH_PARTITION: Schema = schema(&[
    f("partition", I32),
    f("current_leader_epoch", I32),
    f("leader_epoch", I32),
]);

// ElectLeaders (43)
const ELECT_LEADERS: Schema = schema(&[
    f("election_type", I8).since(1),
    f("topic_partitions", nullable_array(&ELECT_LEADERS_TOPIC)),
    f("timeout_ms", I32),
]);
const ELECT_LEADERS_TOPIC: Schema = schema(&[f("topic", STR), f("partitions", I32_ARRAY)]);

// DescribeLogDirs (35): a nullable array of {topic, partitions}, the shape of
// ElectLeaders' topic_partitions.
const DESCRIBE_LOG_DIRS: Schema = schema(&[f("topics", nullable_array(&ELECT_LEADERS_TOPIC))]);

// AlterReplicaLogDirs (34): per directory its path and {topic, partitions}
// (the shape of ElectLeaders' topic_partitions).
const ALTER_REPLICA_LOG_DIRS: Schema = schema(&[f("dirs", array(&ALTER_REPLICA_LOG_DIR))]);
const ALTER_REPLICA_LOG_DIR: Schema =
    schema(&[f("path", STR), f("topics", array(&ELECT_LEADERS_TOPIC))]);

// AlterPartitionReassignments (45). v1 (Kafka 4.1, KIP-860) adds
// allow_replication_factor_change after timeout_ms.
const ALTER_PARTITION_REASSIGNMENTS: Schema = schema(&[
    f("timeout_ms", I32),
    f("allow_replication_factor_change", BOOL).since(1),
    f("topics", array(&ALTER_PARTITION_REASSIGNMENTS_TOPIC)),
]);
const ALTER_PARTITION_REASSIGNMENTS_TOPIC: Schema = schema(&[
    f("name", STR),
    f(
        "partitions",
        array(&ALTER_PARTITION_REASSIGNMENTS_PARTITION),
    ),
]);
const ALTER_PARTITION_REASSIGNMENTS_PARTITION: Schema = schema(&[
    f("partition_index", I32),
    // Null cancels a pending reassignment.
    f("replicas", NULLABLE_I32_ARRAY),
]);

// UpdateFeatures (57): v1 replaces allow_downgrade with upgrade_type and adds
// validate_only; v2 changes only the response.
const UPDATE_FEATURES: Schema = schema(&[
    f("timeout_ms", I32),
    f("feature_updates", array(&UPDATE_FEATURES_UPDATE)),
    f("validate_only", BOOL).since(1),
]);
const UPDATE_FEATURES_UPDATE: Schema = schema(&[
    f("feature", STR),
    f("max_version_level", I16),
    f("allow_downgrade", BOOL).until(0),
    f("upgrade_type", I8).since(1),
]);

// AddPartitionsToTxn (24): v0-3 name one transaction, v4+ a batch of them
// (KIP-890: brokers send v4+, with `verify_only`).
const ADD_PARTITIONS_TO_TXN: Schema = schema(&[
    f("transactions", array(&ADD_PARTITIONS_TO_TXN_TRANSACTION)).since(4),
    f("v3_and_below_transactional_id", STR).until(3),
    f("v3_and_below_producer_id", I64).until(3),
    f("v3_and_below_producer_epoch", I16).until(3),
    f("v3_and_below_topics", array(&ADD_PARTITIONS_TO_TXN_TOPIC)).until(3),
]);
const ADD_PARTITIONS_TO_TXN_TRANSACTION: Schema = schema(&[
    f("transactional_id", STR),
    f("producer_id", I64),
    f("producer_epoch", I16),
    f("verify_only", BOOL),
    f("topics", array(&ADD_PARTITIONS_TO_TXN_TOPIC)),
]);
const ADD_PARTITIONS_TO_TXN_TOPIC: Schema = schema(&[f("name", STR), f("partitions", I32_ARRAY)]);

// AddOffsetsToTxn (25)
const ADD_OFFSETS_TO_TXN: Schema = schema(&[
    f("transactional_id", STR),
    f("producer_id", I64),
    f("producer_epoch", I16),
    f("group_id", STR),
]);

// EndTxn (26): v5 is transaction version 2 (KIP-890 part 2), same fields.
const END_TXN: Schema = schema(&[
    f("transactional_id", STR),
    f("producer_id", I64),
    f("producer_epoch", I16),
    f("committed", BOOL),
]);

// DescribeTransactions (65)
const DESCRIBE_TRANSACTIONS: Schema = schema(&[f("transactional_ids", STR_ARRAY)]);

// ListTransactions (66): v1 adds the duration filter (KIP-994), v2 the
// transactional id pattern (KIP-1152).
const LIST_TRANSACTIONS: Schema = schema(&[
    f("state_filters", STR_ARRAY),
    f("producer_id_filters", I64_ARRAY),
    f("duration_filter", I64).since(1),
    f("transactional_id_pattern", NSTR).since(2),
]);

// ListPartitionReassignments (46)
const LIST_PARTITION_REASSIGNMENTS: Schema = schema(&[
    f("timeout_ms", I32),
    // Null lists every ongoing reassignment.
    f(
        "topics",
        nullable_array(&LIST_PARTITION_REASSIGNMENTS_TOPIC),
    ),
]);
const LIST_PARTITION_REASSIGNMENTS_TOPIC: Schema =
    schema(&[f("name", STR), f("partition_indexes", I32_ARRAY)]);

// SaslHandshake (17)
const SASL_HANDSHAKE: Schema = schema(&[f("mechanism", STR)]);

// SaslAuthenticate (36)
const SASL_AUTHENTICATE: Schema = schema(&[f("auth_bytes", BYTES)]);

// DescribeUserScramCredentials (50): null users means all.
const DESCRIBE_USER_SCRAM_CREDENTIALS: Schema =
    schema(&[f("users", nullable_array(&SCRAM_USER_NAME))]);
const SCRAM_USER_NAME: Schema = schema(&[f("name", STR)]);

// AlterUserScramCredentials (51)
const ALTER_USER_SCRAM_CREDENTIALS: Schema = schema(&[
    f("deletions", array(&SCRAM_CREDENTIAL_DELETION)),
    f("upsertions", array(&SCRAM_CREDENTIAL_UPSERTION)),
]);
const SCRAM_CREDENTIAL_DELETION: Schema = schema(&[f("name", STR), f("mechanism", I8)]);
const SCRAM_CREDENTIAL_UPSERTION: Schema = schema(&[
    f("name", STR),
    f("mechanism", I8),
    f("iterations", I32),
    f("salt", BYTES),
    f("salted_password", BYTES),
]);

// ---------------------------------------------------------------------------------------
// The walker
// ---------------------------------------------------------------------------------------

/// Width of a classic (non-compact) length prefix.
#[derive(Clone, Copy)]
enum Prefix {
    /// STRING / NULLABLE_STRING.
    Int16,
    /// BYTES / NULLABLE_BYTES / ARRAY.
    Int32,
}

/// The fewest bytes `kind` can occupy on the wire in `version`.
fn min_wire_size(kind: Kind, version: i16, flexible: bool) -> u64 {
    let prefix = |classic: u64| if flexible { 1 } else { classic };
    match kind {
        Kind::Int8 | Kind::Bool | Kind::VarInt | Kind::VarLong => 1,
        Kind::Int16 | Kind::UInt16 => 2,
        Kind::Int32 => 4,
        Kind::Int64 | Kind::Float64 => 8,
        Kind::Uuid => 16,
        Kind::Str | Kind::NullableStr => prefix(2),
        Kind::Bytes | Kind::NullableBytes | Kind::Records => prefix(4),
        Kind::Array(_) | Kind::NullableArray(_) => prefix(4),
        Kind::OptionStruct(_) => 1,
        Kind::Struct(schema) => {
            let fields: u64 = schema
                .fields
                .iter()
                .filter(|field| field.present_in(version))
                .map(|field| min_wire_size(field.kind, version, flexible))
                .sum();
            fields + u64::from(flexible)
        }
    }
}

/// A cursor over a body, following one schema version.
struct Walker<'a> {
    body: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.body.len().saturating_sub(self.pos)
    }

    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], GuardError> {
        let at = self.pos;
        let bytes = at
            .checked_add(N)
            .and_then(|end| self.body.get(at..end))
            .ok_or(GuardError::Truncated { at, field })?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.pos = at + N;
        Ok(out)
    }

    /// Skips `len` bytes whose length prefix started at `at`.
    fn skip(&mut self, at: usize, len: u64, field: &'static str) -> Result<(), GuardError> {
        let remaining = self.remaining();
        match usize::try_from(len) {
            Ok(len) if len <= remaining => {
                self.pos += len;
                Ok(())
            }
            _ => Err(GuardError::LengthTooLarge {
                at,
                field,
                len,
                remaining,
            }),
        }
    }

    fn read_uvarint(&mut self, field: &'static str) -> Result<u32, GuardError> {
        let at = self.pos;
        let mut value = 0u32;
        for i in 0..VARINT_BYTES_MAX {
            let [byte] = self.take::<1>(field)?;
            // The last byte may carry only the top 4 bits of a u32 and no continuation.
            if i == VARINT_BYTES_MAX - 1 && byte > 0x0f {
                break;
            }
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(GuardError::MalformedVarint { at, field })
    }

    fn skip_uvarlong(&mut self, field: &'static str) -> Result<(), GuardError> {
        let at = self.pos;
        for i in 0..VARLONG_BYTES_MAX {
            let [byte] = self.take::<1>(field)?;
            // The last byte may carry only the top bit of a u64 and no continuation.
            if i == VARLONG_BYTES_MAX - 1 && byte > 0x01 {
                break;
            }
            if byte & 0x80 == 0 {
                return Ok(());
            }
        }
        Err(GuardError::MalformedVarint { at, field })
    }

    /// Reads a length prefix (compact in flexible versions); `None` means null.
    fn read_len(
        &mut self,
        field: &'static str,
        prefix: Prefix,
        nullable: bool,
    ) -> Result<Option<u64>, GuardError> {
        let at = self.pos;
        let len = if self.flexible {
            self.read_uvarint(field)?.checked_sub(1).map(u64::from)
        } else {
            let len = match prefix {
                Prefix::Int16 => i32::from(i16::from_be_bytes(self.take::<2>(field)?)),
                Prefix::Int32 => i32::from_be_bytes(self.take::<4>(field)?),
            };
            match len {
                -1 => None,
                len if len < -1 => return Err(GuardError::NegativeLength { at, field, len }),
                len => Some(u64::from(len.unsigned_abs())),
            }
        };
        if len.is_none() && !nullable {
            return Err(GuardError::NullNotAllowed { at, field });
        }
        Ok(len)
    }

    fn walk_struct(&mut self, schema: &Schema) -> Result<(), GuardError> {
        for field in schema.fields {
            if field.present_in(self.version) {
                self.walk(field.kind, field.name)?;
            }
        }
        if self.flexible {
            self.walk_tagged_fields(schema)?;
        }
        Ok(())
    }

    fn walk(&mut self, kind: Kind, field: &'static str) -> Result<(), GuardError> {
        match kind {
            Kind::Int8 | Kind::Bool => self.take::<1>(field).map(drop),
            Kind::Int16 | Kind::UInt16 => self.take::<2>(field).map(drop),
            Kind::Int32 => self.take::<4>(field).map(drop),
            Kind::Int64 | Kind::Float64 => self.take::<8>(field).map(drop),
            Kind::Uuid => self.take::<16>(field).map(drop),
            Kind::VarInt => self.read_uvarint(field).map(drop),
            Kind::VarLong => self.skip_uvarlong(field),
            Kind::Str | Kind::NullableStr => {
                self.walk_blob(field, Prefix::Int16, matches!(kind, Kind::NullableStr))
            }
            Kind::Bytes => self.walk_blob(field, Prefix::Int32, false),
            Kind::NullableBytes | Kind::Records => self.walk_blob(field, Prefix::Int32, true),
            Kind::Array(elem) => self.walk_array(field, elem, false),
            Kind::NullableArray(elem) => self.walk_array(field, elem, true),
            Kind::Struct(schema) => self.walk_struct(schema),
            Kind::OptionStruct(schema) => {
                let [present] = self.take::<1>(field)?;
                if present == 1 {
                    self.walk_struct(schema)?;
                }
                Ok(())
            }
        }
    }

    fn walk_blob(
        &mut self,
        field: &'static str,
        prefix: Prefix,
        nullable: bool,
    ) -> Result<(), GuardError> {
        let at = self.pos;
        match self.read_len(field, prefix, nullable)? {
            Some(len) => self.skip(at, len, field),
            None => Ok(()),
        }
    }

    fn walk_array(
        &mut self,
        field: &'static str,
        elem: Elem,
        nullable: bool,
    ) -> Result<(), GuardError> {
        let at = self.pos;
        let Some(count) = self.read_len(field, Prefix::Int32, nullable)? else {
            return Ok(());
        };
        let kind = elem.kind();
        // Every element costs at least one byte, so a zero-size element can never let a
        // count outgrow the body.
        let elem_min = min_wire_size(kind, self.version, self.flexible).max(1);
        let len = count.saturating_mul(elem_min);
        let remaining = self.remaining();
        if len > remaining as u64 {
            return Err(GuardError::LengthTooLarge {
                at,
                field,
                len,
                remaining,
            });
        }
        for _ in 0..count {
            self.walk(kind, field)?;
        }
        Ok(())
    }

    fn walk_tagged_fields(&mut self, schema: &Schema) -> Result<(), GuardError> {
        const FIELD: &str = "tagged_fields";
        let at = self.pos;
        let count = self.read_uvarint(FIELD)?;
        // Each entry needs at least a one-byte tag and a one-byte size.
        let len = u64::from(count) * 2;
        let remaining = self.remaining();
        if len > remaining as u64 {
            return Err(GuardError::LengthTooLarge {
                at,
                field: FIELD,
                len,
                remaining,
            });
        }
        for _ in 0..count {
            let tag_at = self.pos;
            let tag = self.read_uvarint("tag")?;
            let size = self.read_uvarint("tag_size")?;
            let start = self.pos;
            self.skip(tag_at, u64::from(size), "tag_size")?;
            let end = self.pos;
            if let Some(known) = schema.tagged.iter().find(|known| known.tag == tag) {
                // kafka-protocol decodes this payload with its schema from the main
                // buffer; walk it the same way, confined to the declared size.
                let mut payload = Walker {
                    body: self.body.get(..end).unwrap_or_default(),
                    pos: start,
                    version: self.version,
                    flexible: self.flexible,
                };
                payload.walk(known.kind, known.name)?;
                if payload.pos != end {
                    return Err(GuardError::TaggedFieldSize {
                        at: tag_at,
                        tag,
                        declared: size,
                        actual: payload.pos.saturating_sub(start),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walker(body: &[u8], flexible: bool) -> Walker<'_> {
        Walker {
            body,
            pos: 0,
            version: 0,
            flexible,
        }
    }

    /// Calls `visit` for every array element kind reachable in `schema` at `version`.
    fn visit_arrays(schema: &Schema, version: i16, visit: &mut dyn FnMut(&'static str, Kind)) {
        let present = schema
            .fields
            .iter()
            .filter(|field| field.present_in(version));
        let kinds = present.map(|field| (field.name, field.kind)).chain(
            schema
                .tagged
                .iter()
                .map(|tagged| (tagged.name, tagged.kind)),
        );
        for (name, kind) in kinds {
            match kind {
                Kind::Array(elem) | Kind::NullableArray(elem) => {
                    visit(name, elem.kind());
                    if let Elem::Struct(inner) = elem {
                        visit_arrays(inner, version, visit);
                    }
                }
                Kind::Struct(inner) | Kind::OptionStruct(inner) => {
                    visit_arrays(inner, version, visit)
                }
                _ => {}
            }
        }
    }

    #[test]
    fn every_array_element_occupies_at_least_one_byte() {
        // The walker clamps element sizes to one byte; this proves the clamp never hides
        // a zero-size element in any covered version.
        for api in APIS {
            for version in api.min..=api.max {
                let flexible = api.flexible_min.is_some_and(|min| version >= min);
                visit_arrays(api.body, version, &mut |name, kind| {
                    assert!(
                        min_wire_size(kind, version, flexible) >= 1,
                        "{:?} v{version} {name}",
                        api.key
                    );
                });
            }
        }
    }

    #[test]
    fn api_table_is_consistent() {
        for (i, api) in APIS.iter().enumerate() {
            assert!(api.min <= api.max, "{:?}", api.key);
            assert!(
                APIS[i + 1..].iter().all(|other| other.key != api.key),
                "{:?} listed twice",
                api.key
            );
        }
    }

    #[test]
    fn unsigned_varints_follow_kafka_protocol() {
        assert_eq!(walker(&[0], false).read_uvarint("x"), Ok(0));
        assert_eq!(walker(&[0x7f], false).read_uvarint("x"), Ok(0x7f));
        assert_eq!(walker(&[0xd8, 0x04], false).read_uvarint("x"), Ok(600));
        assert_eq!(
            walker(&[0xff, 0xff, 0xff, 0xff, 0x0f], false).read_uvarint("x"),
            Ok(u32::MAX)
        );
        // Overflowing bits or a continuation bit in the fifth byte.
        for last in [0x10, 0x8f] {
            assert_eq!(
                walker(&[0xff, 0xff, 0xff, 0xff, last], false).read_uvarint("x"),
                Err(GuardError::MalformedVarint { at: 0, field: "x" })
            );
        }
        assert_eq!(
            walker(&[0x80, 0x80], false).read_uvarint("x"),
            Err(GuardError::Truncated { at: 2, field: "x" })
        );
    }

    #[test]
    fn varlongs_and_spare_kinds_are_walked() {
        const SPARE: Schema = schema(&[
            f("a", Kind::UInt16),
            f("b", Kind::Float64),
            f("c", Kind::VarInt),
            f("d", Kind::VarLong),
            f("e", Kind::NullableBytes),
        ]);
        let mut body = vec![0, 1];
        body.extend_from_slice(&1.5f64.to_be_bytes());
        body.extend_from_slice(&[0x96, 0x01]); // varint
        body.extend_from_slice(&[0xff; 9]); // varlong, 10 bytes
        body.push(0x01);
        body.extend_from_slice(&(-1i32).to_be_bytes()); // null bytes
        let mut w = walker(&body, false);
        assert_eq!(w.walk_struct(&SPARE), Ok(()));
        assert_eq!(w.pos, body.len());

        let mut long = vec![0xff; 9];
        long.push(0x02);
        assert_eq!(
            walker(&long, false).skip_uvarlong("d"),
            Err(GuardError::MalformedVarint { at: 0, field: "d" })
        );
    }

    #[test]
    fn option_struct_marker_other_than_one_means_absent() {
        let mut body = vec![1]; // topics: empty compact array
        body.extend_from_slice(&7i32.to_be_bytes()); // response_partition_limit
        body.push(0xff); // cursor: null
        body.push(0); // no tagged fields
        assert_eq!(
            check_request_body(ApiKey::DescribeTopicPartitions as i16, 0, &body),
            Ok(())
        );
        let mut present = body.clone();
        let marker = present.len() - 2;
        present[marker] = 1;
        present.splice(marker + 1..marker + 1, [2, b't', 0, 0, 0, 0, 0]);
        assert_eq!(
            check_request_body(ApiKey::DescribeTopicPartitions as i16, 0, &present),
            Ok(())
        );
    }
}
