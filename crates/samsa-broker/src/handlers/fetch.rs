//! Fetch: serve stored batches as bytes, long-polling on `max_wait_ms` /
//! `min_bytes`, within `max_bytes` and per-partition limits, with incremental
//! fetch sessions.
//!
//! `isolation_level = 1` (read_committed) serves only below the partition's
//! last stable offset and lists the aborted transactions overlapping the
//! batches returned; every answer carries the last stable offset. A parked
//! read_committed fetch is woken by appends (a marker moves the LSO) and
//! high-watermark moves, and reads again up to the LSO.
//!
//! A fetch that finds fewer than `min_bytes` parks in the broker's delayed
//! fetch purgatory ([`crate::purgatory`]), watching its own partitions only,
//! until an append or a high-watermark move on one of them wakes it or
//! `max_wait_ms` passes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ProducerId as WireProducerId, TopicName,
};
use samsa_metadata::MetadataImage;
use samsa_model::{BrokerId, LeaderEpoch, Offset, TopicId};
use samsa_protocol::codec::{FileRecordSets, FileRegion};
use samsa_storage::LogSlice;

use super::s;
use crate::broker::Broker;
use crate::errors::storage_error;
use crate::fetch_session::{FetchParams, SentState, SessionKey, SessionPlan};
use crate::partition::FollowerFetch;

/// The longest a fetch may park, whatever the client asks.
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;

/// Record sets at least this large stay in their segment files until the
/// response is written (then written to the socket from a memory map of the
/// file, one bounded window at a time); smaller ones are read into memory
/// now and go out in the response's vectored write.
pub const FILE_RECORDS_BYTES_MIN: usize = 16 * 1024;

struct PartResult {
    key: SessionKey,
    data: PartitionData,
    /// Where the records are; `data.records` is filled by [`attach_records`].
    slices: Vec<LogSlice>,
    bytes: usize,
}

/// A storage log range as a file region of a response frame.
#[derive(Debug)]
struct SegmentRegion(LogSlice);

impl FileRegion for SegmentRegion {
    fn file(&self) -> &std::fs::File {
        self.0.file()
    }

    fn position(&self) -> u64 {
        self.0.position()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn read_append(&self, out: &mut BytesMut) -> std::io::Result<()> {
        self.0.read_append(out).map_err(std::io::Error::other)
    }
}

/// Puts a partition's found batches into its response: large record sets
/// as placeholders registered in `files` (sent from the segment files),
/// others read into memory now. A read that fails here answers the partition
/// with the storage error instead.
fn attach_records(r: &mut PartResult, files: &mut FileRecordSets) {
    if r.slices.is_empty() {
        return;
    }
    let slices = std::mem::take(&mut r.slices);
    if r.bytes >= FILE_RECORDS_BYTES_MIN {
        let regions = slices
            .iter()
            .map(|s| Box::new(SegmentRegion(s.clone())) as Box<dyn FileRegion>)
            .collect();
        if let Some(placeholder) = files.add(regions) {
            r.data.records = Some(placeholder);
            return;
        }
    }
    let mut buf = BytesMut::with_capacity(r.bytes);
    for slice in &slices {
        if let Err(e) = slice.read_append(&mut buf) {
            r.data.error_code = storage_error(&e).code();
            r.data.records = Some(Bytes::new());
            r.bytes = 0;
            return;
        }
    }
    r.data.records = Some(buf.freeze());
}

/// Answers Fetch. Large record sets stay in their segment files: the
/// response holds placeholders for them, registered in the returned
/// [`FileRecordSets`] for the frame encoder.
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &super::Ctx,
    request: FetchRequest,
    version: i16,
) -> (FetchResponse, FileRecordSets) {
    let image = broker.image();
    let (replica_id, replica_epoch) = if version >= 15 {
        (
            request.replica_state.replica_id.0,
            request.replica_state.replica_epoch,
        )
    } else {
        (request.replica_id.0, -1)
    };
    let mut requested = Vec::new();
    for t in &request.topics {
        let (name, id) = resolve(&image, version, &t.topic.0, t.topic_id);
        for p in &t.partitions {
            requested.push((
                SessionKey {
                    topic: name.clone(),
                    topic_id: id,
                    partition: p.partition,
                },
                FetchParams {
                    fetch_offset: p.fetch_offset,
                    partition_max_bytes: p.partition_max_bytes,
                    current_leader_epoch: p.current_leader_epoch,
                },
            ));
        }
    }
    let mut forgotten = Vec::new();
    if version >= 7 {
        for t in &request.forgotten_topics_data {
            let (name, id) = resolve(&image, version, &t.topic.0, t.topic_id);
            for p in &t.partitions {
                forgotten.push(SessionKey {
                    topic: name.clone(),
                    topic_id: id,
                    partition: *p,
                });
            }
        }
    }
    let (session_id, epoch) = if version >= 7 {
        (request.session_id, request.session_epoch)
    } else {
        (0, -1)
    };
    let (plan, partitions) = match broker
        .fetch_sessions
        .begin(session_id, epoch, requested, forgotten)
    {
        Ok(x) => x,
        Err(code) => {
            return (
                FetchResponse::default().with_error_code(code.code()),
                FileRecordSets::default(),
            )
        }
    };
    let (session_id, incremental) = match plan {
        SessionPlan::Full { session_id } => (session_id, false),
        SessionPlan::Incremental { session_id } => (session_id, true),
    };
    let read_committed = request.isolation_level == 1;
    let max_bytes = if request.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        request.max_bytes as usize
    };
    let min_bytes = request.min_bytes.max(0) as usize;
    // Authorized first: an unauthorized follower's fetch moves nothing.
    let follower_ok = replica_id < 0
        || crate::authz::cluster_allowed(
            broker,
            ctx,
            samsa_metadata::security::AclOperation::ClusterAction,
        );
    let mut refused = if replica_id >= 0 && follower_ok {
        follower_progress(broker, &image, &partitions, replica_id, replica_epoch)
    } else {
        HashMap::new()
    };
    crate::authz::fetch_refusals(broker, ctx, &partitions, follower_ok, &mut refused);
    let wait = Duration::from_millis((request.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MS_MAX));
    let deadline = tokio::time::Instant::now() + wait;
    // Taken only once the first read falls short, then checked again before
    // parking (a wake in between is kept by the watch).
    let mut watch = None;
    let results = loop {
        let image = broker.image();
        let results = read_all(
            broker,
            &image,
            &partitions,
            max_bytes,
            replica_id,
            read_committed,
            &refused,
        );
        let total: usize = results.iter().map(|r| r.bytes).sum();
        let any_error = results.iter().any(|r| r.data.error_code != 0);
        if total >= min_bytes || any_error || tokio::time::Instant::now() >= deadline {
            break results;
        }
        let Some(watch) = &watch else {
            watch = Some(
                broker.fetch_watch(
                    partitions
                        .iter()
                        .map(|(k, _)| (TopicId(k.topic_id), k.partition)),
                ),
            );
            continue;
        };
        if tokio::time::timeout_at(deadline, watch.changed())
            .await
            .is_err()
        {
            let image = broker.image();
            break read_all(
                broker,
                &image,
                &partitions,
                max_bytes,
                replica_id,
                read_committed,
                &refused,
            );
        }
    };
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    let mut files = FileRecordSets::default();
    for mut r in results {
        let has_news = r.bytes > 0 || r.data.error_code != 0;
        let state = SentState {
            high_watermark: r.data.high_watermark,
            last_stable_offset: r.data.last_stable_offset,
            log_start_offset: r.data.log_start_offset,
        };
        let include = broker
            .fetch_sessions
            .note_sent(session_id, &r.key, state, has_news);
        if incremental && !include {
            continue;
        }
        attach_records(&mut r, &mut files);
        let same_topic = responses
            .last()
            .is_some_and(|t| t.topic.0.as_str() == r.key.topic && t.topic_id == r.key.topic_id);
        if !same_topic {
            let mut t =
                FetchableTopicResponse::default().with_topic(TopicName(s(r.key.topic.clone())));
            if version >= 13 {
                t = t.with_topic_id(r.key.topic_id);
            }
            responses.push(t);
        }
        if let Some(t) = responses.last_mut() {
            t.partitions.push(r.data);
        }
    }
    let mut response = FetchResponse::default().with_responses(responses);
    if version >= 7 {
        response = response.with_session_id(session_id);
    }
    (response, files)
}

/// (name, id) of a requested topic: by id from v13, by name before.
fn resolve(
    image: &MetadataImage,
    version: i16,
    name: &str,
    id: uuid::Uuid,
) -> (String, uuid::Uuid) {
    if version >= 13 {
        let name = image
            .topic_by_id(TopicId(id))
            .map(|t| t.name.clone())
            .unwrap_or_default();
        (name, id)
    } else {
        let id = image.topic(name).map_or(uuid::Uuid::nil(), |t| t.id.0);
        (name.to_string(), id)
    }
}

/// A follower's fetch: record each partition's fetch offset as the
/// follower's log end (moving high watermarks, asking for ISR expansion).
/// Returns the partitions refused, with their error.
fn follower_progress(
    broker: &Arc<Broker>,
    image: &MetadataImage,
    partitions: &[(SessionKey, FetchParams)],
    replica_id: i32,
    replica_epoch: i64,
) -> HashMap<SessionKey, ResponseError> {
    let now = crate::handlers::produce::now_ms().get();
    let mut refused = HashMap::new();
    for (key, params) in partitions {
        let Some(part) = image
            .topic(&key.topic)
            .and_then(|t| broker.partition(t.id, key.partition))
        else {
            continue;
        };
        let fetch_epoch =
            (params.current_leader_epoch >= 0).then_some(LeaderEpoch(params.current_leader_epoch));
        match part.follower_fetched(
            BrokerId(replica_id),
            replica_epoch,
            fetch_epoch,
            params.fetch_offset,
            now,
        ) {
            Ok(FollowerFetch { hw_moved, expand }) => {
                if hw_moved {
                    broker.notify_hw(&part);
                }
                // A fenced follower (restarted or paused, not yet heard by the
                // controller) would be refused; asking on every fetch floods
                // the controller. Its first heartbeat unfences it, the next
                // fetch asks again (Kafka's leader checks the same locally).
                if let Some(isr) = expand.filter(|_| image.is_live(BrokerId(replica_id))) {
                    tracing::info!(topic = %part.topic, partition = part.index.get(), follower = replica_id, ?isr, "follower caught up; expanding the ISR");
                    crate::replica::submit_isr(broker, &part, isr);
                }
            }
            Err(_) => {
                refused.insert(key.clone(), ResponseError::NotLeaderOrFollower);
            }
        }
    }
    refused
}

#[allow(clippy::too_many_arguments)]
fn read_all(
    broker: &Broker,
    image: &MetadataImage,
    partitions: &[(SessionKey, FetchParams)],
    max_bytes: usize,
    replica_id: i32,
    read_committed: bool,
    refused: &HashMap<SessionKey, ResponseError>,
) -> Vec<PartResult> {
    let mut remaining = max_bytes;
    let mut first_with_data = true;
    partitions
        .iter()
        .map(|(key, params)| {
            if let Some(code) = refused.get(key) {
                return PartResult {
                    key: key.clone(),
                    data: PartitionData::default()
                        .with_partition_index(key.partition)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_records(Some(Bytes::new()))
                        .with_error_code(code.code()),
                    slices: Vec::new(),
                    bytes: 0,
                };
            }
            let result = read_one(
                broker,
                image,
                key,
                params,
                remaining,
                first_with_data,
                replica_id,
                read_committed,
            );
            if result.bytes > 0 {
                first_with_data = false;
                remaining = remaining.saturating_sub(result.bytes);
            }
            result
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn read_one(
    broker: &Broker,
    image: &MetadataImage,
    key: &SessionKey,
    params: &FetchParams,
    remaining: usize,
    first_with_data: bool,
    replica_id: i32,
    read_committed: bool,
) -> PartResult {
    let base = PartitionData::default()
        .with_partition_index(key.partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()));
    let error = |code: ResponseError| PartResult {
        key: key.clone(),
        data: base.clone().with_error_code(code.code()),
        slices: Vec::new(),
        bytes: 0,
    };
    let topic = if key.topic.is_empty() {
        None
    } else {
        image.topic(&key.topic)
    };
    let Some(part) = topic.and_then(|t| broker.partition(t.id, key.partition)) else {
        return error(if key.topic.is_empty() {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        });
    };
    // Consumers and followers both fetch from the leader only.
    if let Err(code) = crate::errors::check_leader(&part, params.current_leader_epoch) {
        return error(code);
    }
    let log = part.log();
    let hw = part.high_watermark();
    let log_start = log.log_start_offset();
    // Every answer carries the last stable offset, as Kafka's does.
    let lso = log.last_stable_offset(hw);
    // Followers read up to the log end; read_committed consumers up to the
    // last stable offset, others up to the high watermark.
    let upper = if replica_id >= 0 {
        log.log_end_offset()
    } else if read_committed {
        lso
    } else {
        hw
    };
    let data = base
        .with_high_watermark(hw.get())
        .with_last_stable_offset(lso.get())
        .with_log_start_offset(log_start.get())
        .with_aborted_transactions(read_committed.then(Vec::new));
    let limit = (params.partition_max_bytes.max(0) as usize).min(remaining);
    let fetch_offset = Offset(params.fetch_offset);
    match log.read_slices(fetch_offset, limit, upper, first_with_data) {
        Ok(found) => {
            // The aborted transactions overlapping the batches returned
            // (Kafka's collectAbortedTxns from the fetch offset to the end of
            // the last batch), so the consumer drops their records; the
            // stored bytes go out unchanged.
            let data = if read_committed && found.len > 0 {
                let aborted = match log.aborted_transactions(fetch_offset, found.next_offset) {
                    Ok(a) => a,
                    Err(e) => {
                        return PartResult {
                            key: key.clone(),
                            data: data.with_error_code(storage_error(&e).code()),
                            slices: Vec::new(),
                            bytes: 0,
                        }
                    }
                };
                let aborted = aborted
                    .into_iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(WireProducerId(a.producer_id.get()))
                            .with_first_offset(a.first_offset.get())
                    })
                    .collect();
                data.with_aborted_transactions(Some(aborted))
            } else {
                data
            };
            // BytesOut counts what consumers read (Kafka counts replication
            // apart).
            if replica_id < 0 && found.len > 0 {
                part.counters(&broker.metrics).sent(found.len as u64);
            }
            PartResult {
                key: key.clone(),
                data,
                slices: found.slices,
                bytes: found.len,
            }
        }
        Err(e) => PartResult {
            key: key.clone(),
            // Keeps the high watermark and log start: a follower behind the
            // log start restarts its log there.
            data: data.with_error_code(storage_error(&e).code()),
            slices: Vec::new(),
            bytes: 0,
        },
    }
}
