//! Produce: validate each partition's batch, append it, answer per `acks`.
//!
//! Nothing is appended for a partition whose batch fails validation; other
//! partitions in the same request are unaffected (as in Kafka).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use samsa_model::batch::{self, RecordProblem, ValidationLimits};
use samsa_model::{LeaderEpoch, TimestampMs};

use super::s;
use crate::broker::Broker;
use crate::errors::{batch_error, storage_error};
use crate::partition::{NotLeader, Partition};
use crate::transactions::verify::Verdicts;
use samsa_storage::VerificationGuard;

/// Wall-clock now in ms.
pub fn now_ms() -> TimestampMs {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    TimestampMs(ms)
}

/// Answers Produce. With acks=all the answer waits until every ISR member
/// has the batch (the high watermark passed it), at most the request's
/// `timeout_ms`. With acks=0 the client gets no answer: the caller sends
/// none, and closes the connection if a partition failed
/// ([`failed_partitions`]), as Kafka does.
///
/// v13+ names topics by id (KIP-516): an id this broker does not know is
/// answered with UNKNOWN_TOPIC_ID, and the answer names topics by id too.
pub async fn handle(broker: &Broker, request: ProduceRequest, version: i16) -> ProduceResponse {
    handle_verified(broker, request, version, Verdicts::default()).await
}

/// [`handle`] for a request whose transactional batches the transaction
/// coordinator already checked (KIP-890, `crate::transactions::verify`):
/// the partitions it refused are answered with their error, unappended, the
/// others appended with their verification guards.
pub(crate) async fn handle_verified(
    broker: &Broker,
    request: ProduceRequest,
    version: i16,
    verdicts: Verdicts,
) -> ProduceResponse {
    let by_id = version >= 13;
    let acks = request.acks;
    let timeout = Duration::from_millis(request.timeout_ms.clamp(0, PRODUCE_WAIT_MS_MAX) as u64);
    let mut image = broker.image();
    if broker.settings.auto_create_topics && !by_id && (-1..=1).contains(&acks) {
        // Not a topic the request may not write to or create.
        let missing: Vec<String> = request
            .topic_data
            .iter()
            .enumerate()
            .filter(|(ti, _)| !verdicts.refused.keys().any(|(t, _)| t == ti))
            .map(|(_, t)| t.name.0.to_string())
            .filter(|n| image.topic(n).is_none())
            .collect();
        if !missing.is_empty() {
            for (name, r) in missing.iter().zip(broker.auto_create(&missing)) {
                if let Err(e) = r {
                    tracing::debug!(topic = %name, error = %e, "auto-creation on produce refused");
                }
            }
            image = broker.image();
        }
    }
    let now = now_ms();
    // (topic index, partition index, partition, last offset, min ISR, leader
    // epoch of the append) per append that acks=all must wait for.
    let mut waits: Vec<(usize, usize, Arc<Partition>, i64, usize, LeaderEpoch)> = Vec::new();
    let mut responses: Vec<TopicProduceResponse> = request
        .topic_data
        .into_iter()
        .enumerate()
        .map(|(ti, t)| {
            let topic = if by_id {
                image.topic_by_id(samsa_model::TopicId(t.topic_id)).cloned()
            } else {
                image.topic(&t.name.0).cloned()
            };
            let name = topic
                .as_ref()
                .map_or_else(|| t.name.0.to_string(), |t| t.name.clone());
            let unknown = if by_id {
                ResponseError::UnknownTopicId
            } else {
                ResponseError::UnknownTopicOrPartition
            };
            let partition_responses = t
                .partition_data
                .into_iter()
                .enumerate()
                .map(|(pi, p)| {
                    let r = PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    if !(-1..=1).contains(&acks) {
                        return r.with_error_code(ResponseError::InvalidRequiredAcks.code());
                    }
                    if let Some(e) = verdicts.refused.get(&(ti, pi)) {
                        let r = r.with_error_code(e.code());
                        return if crate::authz::is_authorization_error(*e)
                            || *e == ResponseError::UnknownTopicOrPartition
                        {
                            r
                        } else {
                            r.with_error_message(Some(s(
                                "The transaction coordinator did not confirm this partition in the producer's transaction",
                            )))
                        };
                    }
                    if crate::broker::is_internal_topic(&name) {
                        return r
                            .with_error_code(ResponseError::InvalidTopicException.code())
                            .with_error_message(Some(s(format!(
                                "Cannot append to internal topic {name}"
                            ))));
                    }
                    let Some(topic) = topic.as_ref() else {
                        return r.with_error_code(unknown.code());
                    };
                    let Some(part) = broker.partition(topic.id, p.index) else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let Some(records) = p.records else {
                        return r
                            .with_error_code(ResponseError::InvalidRecord.code())
                            .with_error_message(Some(s("null records")));
                    };
                    let guard = verdicts.guard((ti, pi));
                    match append(broker, &part, &records, acks, now, guard) {
                        Ok((base, last, append_time, log_start, epoch)) => {
                            if acks == -1 {
                                let min_isr = part.settings().min_insync_replicas;
                                waits.push((ti, pi, part.clone(), last, min_isr, epoch));
                            }
                            r.with_base_offset(base)
                                .with_log_append_time_ms(append_time)
                                .with_log_start_offset(log_start)
                        }
                        Err(refused) => r
                            .with_error_code(refused.code.code())
                            .with_error_message(Some(s(refused.message)))
                            .with_record_errors(refused.records),
                    }
                })
                .collect();
            let response =
                TopicProduceResponse::default().with_partition_responses(partition_responses);
            if by_id {
                response.with_topic_id(t.topic_id)
            } else {
                response.with_name(t.name)
            }
        })
        .collect();
    if !waits.is_empty() {
        let list: Vec<crate::replica::ReplicationWait> = waits
            .iter()
            .map(|(_, _, p, last, min, epoch)| (p.clone(), *last, *min, *epoch))
            .collect();
        let outcomes = crate::replica::wait_replicated(broker, &list, timeout).await;
        for ((ti, pi, part, _, min_isr, _), outcome) in waits.into_iter().zip(outcomes) {
            let Some(code) = outcome else { continue };
            if let Some(r) = responses
                .get_mut(ti)
                .and_then(|t| t.partition_responses.get_mut(pi))
            {
                let message = match code {
                    ResponseError::NotEnoughReplicasAfterAppend => format!(
                        "The ISR of {}-{} shrank below min.insync.replicas ({min_isr}) after the append",
                        part.topic, part.index.get()
                    ),
                    ResponseError::RequestTimedOut => {
                        "The batch was not replicated to every in-sync replica in time".into()
                    }
                    _ => "This broker is no longer the leader of the partition".into(),
                };
                r.error_code = code.code();
                r.error_message = Some(s(message));
                if code != ResponseError::NotEnoughReplicasAfterAppend {
                    r.base_offset = -1;
                }
            }
        }
    }
    ProduceResponse::default().with_responses(responses)
}

/// The partitions of a response that failed (`topic-partition: ERROR`,
/// comma-separated), `None` when all succeeded.
pub fn failed_partitions(response: &ProduceResponse) -> Option<String> {
    let failed: Vec<String> = response
        .responses
        .iter()
        .flat_map(|t| {
            t.partition_responses
                .iter()
                .filter(|p| p.error_code != 0)
                .map(move |p| {
                    let error = ResponseError::try_from_code(p.error_code)
                        .map_or_else(|| format!("error {}", p.error_code), |e| format!("{e:?}"));
                    let topic = if t.name.0.is_empty() {
                        t.topic_id.to_string()
                    } else {
                        t.name.0.to_string()
                    };
                    format!("{topic}-{}: {error}", p.index)
                })
        })
        .collect();
    (!failed.is_empty()).then(|| failed.join(", "))
}

/// The longest an acks=all produce waits for replication.
pub const PRODUCE_WAIT_MS_MAX: i32 = 300_000;

/// (base offset, last offset, log append time, log start offset, leader
/// epoch of the append).
type AppendOutcome = Result<(i64, i64, i64, i64, LeaderEpoch), Refused>;

/// Why a partition's batch was not appended: the partition's error, and
/// (KIP-467, Produce v8+) the records that caused it.
struct Refused {
    code: ResponseError,
    message: String,
    records: Vec<BatchIndexAndErrorMessage>,
}

impl From<(ResponseError, String)> for Refused {
    fn from((code, message): (ResponseError, String)) -> Self {
        Refused {
            code,
            message,
            records: Vec::new(),
        }
    }
}

/// The answer to a batch with per-record errors: the batch is refused whole
/// and every offending record is named with its own message, so the client
/// fails exactly those records (INVALID_RECORD, or INVALID_TIMESTAMP when a
/// timestamp is among the causes, as in Kafka) and may retry the others.
fn refuse_records(
    part: &Partition,
    validated: &batch::ValidatedBatch,
    limits: &ValidationLimits,
) -> Refused {
    let (low, high) = limits
        .timestamp_range
        .map_or((i64::MIN, i64::MAX), |(lo, hi)| (lo.get(), hi.get()));
    let mut timestamps = false;
    let records: Vec<BatchIndexAndErrorMessage> = validated
        .record_errors
        .iter()
        .map(|e| {
            let message = match e.problem {
                RecordProblem::MissingKey => format!(
                    "Compacted topic cannot accept message without key in topic partition {}-{}.",
                    part.topic,
                    part.index.get()
                ),
                RecordProblem::TimestampOutOfRange { timestamp } => {
                    timestamps = true;
                    format!(
                        "Timestamp {timestamp} of message with offset {} is out of range. The timestamp should be within [{low}, {high}]",
                        e.index
                    )
                }
            };
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i32::try_from(e.index).unwrap_or(i32::MAX))
                .with_batch_index_error_message(Some(s(message)))
        })
        .collect();
    let total = validated.record_errors_total;
    let (code, message) = if timestamps {
        (
            ResponseError::InvalidTimestamp,
            format!("{total} records of the batch have an invalid timestamp or key"),
        )
    } else {
        (
            ResponseError::InvalidRecord,
            format!("{total} records of the batch were refused"),
        )
    };
    Refused {
        code,
        message,
        records,
    }
}

fn append(
    broker: &Broker,
    part: &Partition,
    records: &[u8],
    acks: i16,
    now: TimestampMs,
    guard: Option<Option<VerificationGuard>>,
) -> AppendOutcome {
    let settings = part.settings();
    if records.len() > settings.max_message_bytes {
        return Err(Refused::from((
            ResponseError::MessageTooLarge,
            format!(
                "The batch of {} bytes exceeds max.message.bytes ({})",
                records.len(),
                settings.max_message_bytes
            ),
        )));
    }
    // CreateTime topics accept record timestamps within
    // [now - message.timestamp.before.max.ms, now + ...after.max.ms].
    let timestamp_range = (!settings.log_append_time).then(|| {
        (
            TimestampMs(now.get().saturating_sub(settings.timestamp_before_max_ms)),
            TimestampMs(now.get().saturating_add(settings.timestamp_after_max_ms)),
        )
    });
    let limits = ValidationLimits {
        batch_bytes_max: settings.max_message_bytes,
        decompressed_bytes_max: broker.settings.batch_decompressed_bytes_max,
        require_keys: settings.compact,
        timestamp_range,
    };
    let validated = batch::validate_produced_batch_detailed(records, &limits)
        .map_err(|e| (batch_error(&e), e.to_string()))?;
    let header = &validated.header;
    // Kafka's LogValidator: a transactional batch needs a producer id. Its
    // sequence and epoch are checked by the log as an idempotent batch's,
    // and it opens the producer's transaction in the partition.
    if header.is_transactional() && header.producer_id.get() < 0 {
        return Err(Refused::from((
            ResponseError::InvalidRecord,
            "Invalid transactional record batch with no producer id".to_string(),
        )));
    }
    if !validated.record_errors.is_empty() {
        return Err(refuse_records(part, &validated, &limits));
    }
    // The read side of the partition's state lock, held from the leadership
    // check through the append: no role change can fall in between, so the
    // epoch stamped is the one this broker leads with (Kafka's
    // leaderIsrUpdateLock).
    let leadership = match part.lock_for_append(acks, settings.min_insync_replicas) {
        Ok(g) => g,
        Err(NotLeader::NotLeader) => {
            return Err(Refused::from((
                ResponseError::NotLeaderOrFollower,
                "This broker is not the leader of the partition".to_string(),
            )))
        }
        Err(NotLeader::NotEnoughReplicas { isr, min }) => {
            return Err(Refused::from((
                ResponseError::NotEnoughReplicas,
                format!(
                    "The size of the current ISR ({isr}) is insufficient to satisfy the min.isr requirement of {min} for partition {}-{}",
                    part.topic, part.index.get()
                ),
            )))
        }
    };
    let epoch = leadership.epoch();
    let append_time = if settings.log_append_time {
        now.get()
    } else {
        -1
    };
    // The log checks an idempotent producer's sequence under its writer
    // lock: a retry is answered with the original offsets (and waited for
    // like the first time with acks=all), a gap or an old epoch is refused.
    // The batch is stored as sent except for the header fields the log
    // patches; only LogAppendTime (timestamps + CRC) needs a modified copy.
    // A transactional producer's batch carries its KIP-890 guard.
    let appended = if settings.log_append_time {
        let mut buf = BytesMut::from(records);
        batch::set_log_append_time(&mut buf, now)
            .map_err(|e| Refused::from((batch_error(&e), e.to_string())))?;
        match guard {
            Some(g) => part.log().append_guarded(&buf, epoch, now, g),
            None => part.log().append(&mut buf, epoch, now),
        }
    } else {
        match guard {
            Some(g) => part.log().append_guarded(records, epoch, now, g),
            None => part.log().append_unmodified(records, epoch, now),
        }
    };
    let info = appended.map_err(|e| Refused::from((storage_error(&e), e.to_string())))?;
    drop(leadership);
    // A retry answered from the producer state appended nothing.
    if !info.duplicate {
        let records_count = u64::try_from(header.records_count).unwrap_or(0);
        part.counters(&broker.metrics)
            .appended(records.len() as u64, records_count);
        if part.after_leader_append() {
            broker.notify_hw(part);
        } else {
            broker.notify_data(part);
        }
    }
    Ok((
        info.base_offset.get(),
        info.last_offset.get(),
        append_time,
        info.log_start_offset.get(),
        epoch,
    ))
}
