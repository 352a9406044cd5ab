//! DescribeLogDirs (`kafka-log-dirs.sh --describe`, AdminClient
//! `describeLogDirs`): each of this broker's log directories with the bytes
//! of every partition replica it holds there, and (v4) the directory's
//! filesystem size and free space. A directory that failed (KIP-858,
//! [`crate::dir_failure`]) is listed with KAFKA_STORAGE_ERROR and no
//! partitions, as Kafka lists an offline log directory.

use std::collections::{BTreeMap, HashMap, HashSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use kafka_protocol::error::ResponseError;

use super::s;
use crate::broker::Broker;

/// Answers DescribeLogDirs. A null topic list asks for every partition;
/// otherwise only the listed partitions the broker holds are described
/// (unknown ones are left out, as Kafka does).
pub fn handle(
    broker: &Broker,
    request: DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    let wanted: Option<HashMap<&str, HashSet<i32>>> = request.topics.as_ref().map(|topics| {
        let mut wanted: HashMap<&str, HashSet<i32>> = HashMap::new();
        for t in topics {
            wanted
                .entry(t.topic.0.as_str())
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        wanted
    });
    let dirs = broker.log_dirs.dirs();
    // Per log directory, its partitions by topic name.
    let mut by_dir: Vec<BTreeMap<String, Vec<DescribeLogDirsPartition>>> =
        dirs.iter().map(|_| BTreeMap::new()).collect();
    for p in broker.all_partitions() {
        let index = p.index.get();
        if let Some(w) = &wanted {
            if !w
                .get(p.topic.as_str())
                .is_some_and(|ps| ps.contains(&index))
            {
                continue;
            }
        }
        let Some(slot) = broker
            .log_dirs
            .log_dir_of((p.topic_id, index))
            .and_then(|d| broker.log_dirs.index_of(&d.path))
            .and_then(|i| by_dir.get_mut(i))
        else {
            continue;
        };
        // Kafka's offset lag of a current (not future) replica: how far its
        // log end is below the high watermark.
        let lag = p
            .high_watermark()
            .get()
            .saturating_sub(p.log().log_end_offset().get())
            .max(0);
        slot.entry(p.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(index)
                .with_partition_size(i64::try_from(p.log().size_bytes()).unwrap_or(i64::MAX))
                .with_offset_lag(lag)
                .with_is_future_key(false),
        );
        // A move in progress: the future replica in its target directory,
        // its lag being how far it is behind the current log's end.
        if let Some(f) = broker.moves.future_of((p.topic_id, index)) {
            if let Some(slot) = by_dir.get_mut(f.target) {
                slot.entry(p.topic.clone()).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(index)
                        .with_partition_size(i64::try_from(f.size_bytes).unwrap_or(i64::MAX))
                        .with_offset_lag(
                            p.log()
                                .log_end_offset()
                                .get()
                                .saturating_sub(f.log_end.get())
                                .max(0),
                        )
                        .with_is_future_key(true),
                );
            }
        }
    }
    let results = dirs
        .iter()
        .zip(by_dir)
        .map(|(dir, topics)| {
            let topics = topics
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|p| p.partition_index);
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partitions(partitions)
                })
                .collect();
            let shown = std::path::absolute(&dir.path).unwrap_or_else(|_| dir.path.clone());
            let mut result =
                DescribeLogDirsResult::default().with_log_dir(s(shown.display().to_string()));
            if dir.is_offline() {
                return result.with_error_code(ResponseError::KafkaStorageError.code());
            }
            result = result.with_topics(topics);
            if version >= 4 {
                let (total, usable) = crate::disk::filesystem_bytes(&dir.path).unwrap_or((-1, -1));
                result = result.with_total_bytes(total).with_usable_bytes(usable);
            }
            result
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}
