//! Requests, responses and outputs of the transaction coordinator.

use samsa_model::{LeaderEpoch, ProducerEpoch, ProducerId, TimestampMs, TopicPartition};

use crate::api::{Record, ReplyToken};

/// Kafka's error codes the transaction coordinator answers with (in addition to the
/// shared ones in [`crate::codes`]).
pub mod txn_codes {
    /// INVALID_PRODUCER_EPOCH (what old request versions get instead of PRODUCER_FENCED).
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// INVALID_TXN_STATE.
    pub const INVALID_TXN_STATE: i16 = 48;
    /// INVALID_PRODUCER_ID_MAPPING.
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    /// INVALID_TRANSACTION_TIMEOUT.
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    /// CONCURRENT_TRANSACTIONS.
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    /// PRODUCER_FENCED.
    pub const PRODUCER_FENCED: i16 = 90;
    /// TRANSACTIONAL_ID_NOT_FOUND.
    pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
    /// TRANSACTION_ABORTABLE (KIP-890).
    pub const TRANSACTION_ABORTABLE: i16 = 120;

    /// The code to send to request version `version` of API `api_key` for `code`: as
    /// Kafka's `KafkaApis` does (KIP-588), versions older than PRODUCER_FENCED get
    /// INVALID_PRODUCER_EPOCH instead — InitProducerId (22) below v4, AddPartitionsToTxn
    /// (24), AddOffsetsToTxn (25), EndTxn (26) and TxnOffsetCommit (28) below v2.
    pub fn for_version(api_key: i16, version: i16, code: i16) -> i16 {
        let fenced_since = match api_key {
            22 => 4,
            24 | 25 | 26 | 28 => 2,
            _ => return code,
        };
        if code == PRODUCER_FENCED && version < fenced_since {
            INVALID_PRODUCER_EPOCH
        } else {
            code
        }
    }
}

/// Kafka's "no producer id" (-1).
pub const NO_PRODUCER_ID: ProducerId = ProducerId(-1);
/// Kafka's "no producer epoch" (-1).
pub const NO_PRODUCER_EPOCH: ProducerEpoch = ProducerEpoch(-1);

/// InitProducerId with a `transactional.id` (requests without one never reach the
/// coordinator: the broker hands out a fresh producer id itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    /// The transactional id.
    pub transactional_id: String,
    /// `transaction.timeout.ms`.
    pub transaction_timeout_ms: i32,
    /// KIP-360: the producer's current id when it re-initializes (-1: none).
    pub producer_id: ProducerId,
    /// KIP-360: the producer's current epoch (-1: none).
    pub producer_epoch: ProducerEpoch,
}

/// InitProducerId's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitProducerIdResponse {
    /// Error code.
    pub error_code: i16,
    /// The producer id (-1 on error).
    pub producer_id: ProducerId,
    /// The producer epoch (-1 on error).
    pub producer_epoch: ProducerEpoch,
}

/// AddPartitionsToTxn for one transaction (v3-: the request; v4+: one of its
/// transactions — the broker splits a batched request by transactional id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddPartitionsToTxnRequest {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: ProducerId,
    /// The producer epoch.
    pub producer_epoch: ProducerEpoch,
    /// The partitions to add.
    pub partitions: Vec<TopicPartition>,
    /// The transaction version the client uses (KIP-1022 level: 0, 1 or 2).
    pub client_transaction_version: i16,
}

/// The result of one transaction of AddPartitionsToTxn: an error code per partition
/// (the coordinator's errors apply to every partition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddPartitionsToTxnResponse {
    /// The transactional id.
    pub transactional_id: String,
    /// (partition, error code), in request order.
    pub results: Vec<(TopicPartition, i16)>,
}

impl AddPartitionsToTxnResponse {
    /// Every partition of `partitions` answered with `code`.
    pub fn all(transactional_id: &str, partitions: &[TopicPartition], code: i16) -> Self {
        AddPartitionsToTxnResponse {
            transactional_id: transactional_id.to_owned(),
            results: partitions.iter().map(|tp| (tp.clone(), code)).collect(),
        }
    }
}

/// AddOffsetsToTxn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddOffsetsToTxnRequest {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: ProducerId,
    /// The producer epoch.
    pub producer_epoch: ProducerEpoch,
    /// The consumer group whose offsets the transaction commits.
    pub group_id: String,
    /// The transaction version the client uses.
    pub client_transaction_version: i16,
}

/// AddOffsetsToTxn's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddOffsetsToTxnResponse {
    /// Error code.
    pub error_code: i16,
}

/// EndTxn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndTxnRequest {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: ProducerId,
    /// The producer epoch.
    pub producer_epoch: ProducerEpoch,
    /// Commit (true) or abort.
    pub commit: bool,
    /// The transaction version the client uses (EndTxn v5+: 2, which bumps the epoch on
    /// every end, KIP-890 part 2).
    pub client_transaction_version: i16,
}

/// EndTxn's answer (v5+ carries the producer id and epoch to use next).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndTxnResponse {
    /// Error code.
    pub error_code: i16,
    /// The producer id to use next (-1 on error).
    pub producer_id: ProducerId,
    /// The producer epoch to use next (-1 on error).
    pub producer_epoch: ProducerEpoch,
}

/// A response to a state-changing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnResponse {
    /// InitProducerId.
    InitProducerId(InitProducerIdResponse),
    /// AddPartitionsToTxn (one transaction).
    AddPartitionsToTxn(AddPartitionsToTxnResponse),
    /// AddOffsetsToTxn.
    AddOffsetsToTxn(AddOffsetsToTxnResponse),
    /// EndTxn.
    EndTxn(EndTxnResponse),
}

impl TxnResponse {
    /// The same kind of response failed with `code` (used when an append fails).
    pub fn with_error(self, code: i16) -> TxnResponse {
        match self {
            TxnResponse::InitProducerId(_) => TxnResponse::InitProducerId(InitProducerIdResponse {
                error_code: code,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
            }),
            TxnResponse::AddPartitionsToTxn(r) => {
                TxnResponse::AddPartitionsToTxn(AddPartitionsToTxnResponse {
                    transactional_id: r.transactional_id,
                    results: r.results.into_iter().map(|(tp, _)| (tp, code)).collect(),
                })
            }
            TxnResponse::AddOffsetsToTxn(_) => {
                TxnResponse::AddOffsetsToTxn(AddOffsetsToTxnResponse { error_code: code })
            }
            TxnResponse::EndTxn(_) => TxnResponse::EndTxn(EndTxnResponse {
                error_code: code,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
            }),
        }
    }
}

/// Markers the broker must write: a COMMIT or ABORT control batch for `producer_id` /
/// `producer_epoch` in each partition (WriteTxnMarkers to each partition's leader), then
/// report each partition done with [`crate::txn::TxnCoordinator::markers_written`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMarkers {
    /// The transactional id (to report completion).
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: ProducerId,
    /// The producer epoch of the markers (the prepare's, bumped under TV2).
    pub producer_epoch: ProducerEpoch,
    /// Commit (true) or abort.
    pub commit: bool,
    /// The coordinator epoch: the `__transaction_state` partition's leader epoch.
    pub coordinator_epoch: LeaderEpoch,
    /// The partitions, sorted.
    pub partitions: Vec<TopicPartition>,
}

/// What the broker must do after a call, **in order** (see the module docs for the
/// contract).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOutput {
    /// Append these records, as one batch, to the coordinator's `__transaction_state`
    /// partition, with acks=all; nothing after it may be acted on before it is replicated.
    Append {
        /// The `__transaction_state` partition.
        partition: u32,
        /// The records, in order.
        records: Vec<Record>,
    },
    /// Send `response` for the request that carried `token`.
    Reply {
        /// The request's token.
        token: ReplyToken,
        /// The answer.
        response: TxnResponse,
    },
    /// Write transaction markers (after the appends before it are replicated).
    WriteMarkers(TxnMarkers),
}

/// One entry of DescribeTransactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedTransaction {
    /// Error code (TRANSACTIONAL_ID_NOT_FOUND, NOT_COORDINATOR, ...).
    pub error_code: i16,
    /// The transactional id.
    pub transactional_id: String,
    /// State name (Kafka's, e.g. "Ongoing"); empty on error.
    pub state: String,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// Start of the transaction (-1: none).
    pub start_time_ms: TimestampMs,
    /// Producer id.
    pub producer_id: ProducerId,
    /// Producer epoch.
    pub producer_epoch: ProducerEpoch,
    /// The transaction's partitions, by topic (sorted).
    pub topics: Vec<(String, Vec<i32>)>,
}

/// ListTransactions filters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ListTransactionsRequest {
    /// State names (empty: all).
    pub state_filters: Vec<String>,
    /// Producer ids (empty: all).
    pub producer_id_filters: Vec<ProducerId>,
    /// KIP-994: only transactions running longer than this (-1: no filter).
    pub duration_filter_ms: i64,
}

/// One listed transaction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedTransaction {
    /// The transactional id.
    pub transactional_id: String,
    /// Producer id.
    pub producer_id: ProducerId,
    /// State name.
    pub state: String,
}

/// ListTransactions' answer for this coordinator's partition (the broker merges its
/// shards: the first non-zero error wins, as Kafka answers for all its partitions).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ListTransactionsResponse {
    /// Error code (COORDINATOR_LOAD_IN_PROGRESS while loading).
    pub error_code: i16,
    /// State filters that name no state.
    pub unknown_state_filters: Vec<String>,
    /// Matching transactions, sorted by id.
    pub transactions: Vec<ListedTransaction>,
}
