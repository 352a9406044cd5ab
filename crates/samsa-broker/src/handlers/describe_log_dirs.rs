//! DescribeLogDirs (`kafka-log-dirs.sh --describe`, AdminClient
//! `describeLogDirs`): this broker's log directory, the bytes of every
//! partition replica it holds there, and (v4) the directory's filesystem size
//! and free space.

use std::collections::{BTreeMap, HashMap, HashSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

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
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
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
        // Kafka's offset lag of a current (not future) replica: how far its
        // log end is below the high watermark.
        let lag = p
            .high_watermark()
            .get()
            .saturating_sub(p.log.log_end_offset().get())
            .max(0);
        topics.entry(p.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(index)
                .with_partition_size(i64::try_from(p.log.size_bytes()).unwrap_or(i64::MAX))
                .with_offset_lag(lag)
                .with_is_future_key(false),
        );
    }
    let topics = topics
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(s(name)))
                .with_partitions(partitions)
        })
        .collect();
    let dir = &broker.settings.data_dir;
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(s(shown.display().to_string()))
        .with_topics(topics);
    if version >= 4 {
        let (total, usable) = crate::disk::filesystem_bytes(dir).unwrap_or((-1, -1));
        result = result.with_total_bytes(total).with_usable_bytes(usable);
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}
