//! Produce: validate each partition's batch, append it, answer per `acks`.
//!
//! Nothing is appended for a partition whose batch fails validation; other
//! partitions in the same request are unaffected (as in Kafka).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use samsa_model::batch::{self, ValidationLimits};
use samsa_model::TimestampMs;

use super::s;
use crate::broker::Broker;
use crate::errors::{batch_error, storage_error};
use crate::partition::Partition;
use crate::producer_state::SeqCheck;

/// Wall-clock now in ms.
pub fn now_ms() -> TimestampMs {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    TimestampMs(ms)
}

/// Answers Produce; `None` for acks=0.
pub fn handle(broker: &Broker, request: ProduceRequest, _version: i16) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut image = broker.image();
    if broker.settings.auto_create_topics && (-1..=1).contains(&acks) {
        let missing: Vec<String> = request
            .topic_data
            .iter()
            .map(|t| t.name.0.to_string())
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
    let mut appended = false;
    let responses = request
        .topic_data
        .into_iter()
        .map(|t| {
            let topic = image.topic(&t.name.0).cloned();
            let partition_responses = t
                .partition_data
                .into_iter()
                .map(|p| {
                    let r = PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    if !(-1..=1).contains(&acks) {
                        return r.with_error_code(ResponseError::InvalidRequiredAcks.code());
                    }
                    if crate::broker::is_internal_topic(&t.name.0) {
                        return r
                            .with_error_code(ResponseError::InvalidTopicException.code())
                            .with_error_message(Some(s(format!(
                                "Cannot append to internal topic {}",
                                t.name.0.as_str()
                            ))));
                    }
                    let Some(part) = topic.as_ref().and_then(|t| broker.partition(t.id, p.index))
                    else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let Some(records) = p.records else {
                        return r
                            .with_error_code(ResponseError::InvalidRecord.code())
                            .with_error_message(Some(s("null records")));
                    };
                    match append(broker, &part, &records, acks, now) {
                        Ok((base, append_time, log_start)) => {
                            appended = true;
                            r.with_base_offset(base)
                                .with_log_append_time_ms(append_time)
                                .with_log_start_offset(log_start)
                        }
                        Err((code, message)) => r
                            .with_error_code(code.code())
                            .with_error_message(Some(s(message))),
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    if appended {
        broker.notify_data();
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

type AppendOutcome = Result<(i64, i64, i64), (ResponseError, String)>;

fn append(
    broker: &Broker,
    part: &Partition,
    records: &[u8],
    acks: i16,
    now: TimestampMs,
) -> AppendOutcome {
    let settings = part.settings();
    if records.len() > settings.max_message_bytes {
        return Err((
            ResponseError::MessageTooLarge,
            format!(
                "The batch of {} bytes exceeds max.message.bytes ({})",
                records.len(),
                settings.max_message_bytes
            ),
        ));
    }
    let limits = ValidationLimits {
        batch_bytes_max: settings.max_message_bytes,
        decompressed_bytes_max: broker.settings.batch_decompressed_bytes_max,
        require_keys: settings.compact,
    };
    let validated = batch::validate_produced_batch_detailed(records, &limits)
        .map_err(|e| (batch_error(&e), e.to_string()))?;
    let header = &validated.header;
    if header.is_transactional() {
        return Err((
            ResponseError::InvalidTxnState,
            "transactions are not supported by this broker yet".into(),
        ));
    }
    if !settings.log_append_time {
        let before = now
            .get()
            .saturating_sub(validated.min_record_timestamp.get());
        let after = validated
            .max_record_timestamp
            .get()
            .saturating_sub(now.get());
        if before > settings.timestamp_before_max_ms || after > settings.timestamp_after_max_ms {
            return Err((
                ResponseError::InvalidTimestamp,
                format!(
                    "Timestamp {} of the batch is out of range (message.timestamp.before.max.ms={}, message.timestamp.after.max.ms={})",
                    validated.min_record_timestamp, settings.timestamp_before_max_ms, settings.timestamp_after_max_ms
                ),
            ));
        }
    }
    if acks == -1 && settings.min_insync_replicas > 1 {
        // A single node's ISR is itself.
        return Err((
            ResponseError::NotEnoughReplicas,
            format!(
                "The size of the current ISR (1) is insufficient to satisfy the min.isr requirement of {}",
                settings.min_insync_replicas
            ),
        ));
    }
    let append_time = if settings.log_append_time {
        now.get()
    } else {
        -1
    };
    let mut producers = part.producers();
    if header.producer_id.get() >= 0 {
        match producers.check(header) {
            SeqCheck::Append => {}
            SeqCheck::Duplicate { base_offset } => {
                return Ok((base_offset, append_time, part.log.log_start_offset().get()));
            }
            SeqCheck::Reject(code, message) => return Err((code, message)),
        }
    }
    let mut buf = BytesMut::from(records);
    if settings.log_append_time {
        batch::set_log_append_time(&mut buf, now).map_err(|e| (batch_error(&e), e.to_string()))?;
    }
    let info = part
        .log
        .append(&mut buf, part.leader_epoch(), now)
        .map_err(|e| (storage_error(&e), e.to_string()))?;
    producers.record(header, info.base_offset.get());
    Ok((
        info.base_offset.get(),
        append_time,
        info.log_start_offset.get(),
    ))
}
