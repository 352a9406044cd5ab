//! AlterReplicaLogDirs (`kafka-reassign-partitions.sh` with `log_dirs`,
//! AdminClient `alterReplicaLogDirs`): move replicas this broker holds to
//! another of its log directories, online (see [`crate::log_mover`]).
//!
//! Per partition, as Kafka answers: a path that is none of this broker's
//! log directories is LOG_DIR_NOT_FOUND; one listed in `cordoned.log.dirs`
//! is KAFKA_STORAGE_ERROR (KIP-1066); a partition this broker does not
//! hold is REPLICA_NOT_AVAILABLE (the directory is remembered, and the
//! replica is created there if it is assigned here later); a future log that
//! cannot be created is KAFKA_STORAGE_ERROR; otherwise NONE once the move
//! has started (or at once when the replica is already there).

use std::sync::Arc;

use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;

/// Answers AlterReplicaLogDirs. The moves run on a blocking thread's
/// worth of file creation per partition, so this runs in `block_in_place`
/// on a multi-threaded runtime.
pub fn handle(
    broker: &Arc<Broker>,
    request: AlterReplicaLogDirsRequest,
    _version: i16,
) -> AlterReplicaLogDirsResponse {
    let run = || answer(broker, request);
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(run)
        }
        _ => run(),
    }
}

fn answer(
    broker: &Arc<Broker>,
    request: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let image = broker.image();
    let config = broker.config();
    let cordoned = config.get("cordoned.log.dirs").unwrap_or("");
    let mut results: Vec<AlterReplicaLogDirTopicResult> = Vec::new();
    for dir in &request.dirs {
        let target = broker
            .log_dirs
            .index_of(std::path::Path::new(dir.path.as_str()));
        for t in &dir.topics {
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for &index in &t.partitions {
                let code = match target {
                    None => ResponseError::LogDirNotFound.code(),
                    // KIP-1066: a cordoned directory takes no replica.
                    Some(target) if broker.log_dirs.is_cordoned(target, cordoned) => {
                        ResponseError::KafkaStorageError.code()
                    }
                    Some(target) => {
                        match broker.partition_named(&image, t.name.0.as_str(), index) {
                            None => {
                                broker.log_dirs.prefer(t.name.0.as_str(), index, target);
                                ResponseError::ReplicaNotAvailable.code()
                            }
                            Some(part) => match crate::log_mover::start(broker, &part, target) {
                                Ok(()) => 0,
                                Err(e) => {
                                    tracing::warn!(topic = %part.topic, partition = index, error = %e, "cannot move the replica");
                                    ResponseError::KafkaStorageError.code()
                                }
                            },
                        }
                    }
                };
                partitions.push(
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code),
                );
            }
            match results.iter_mut().find(|r| r.topic_name == t.name) {
                Some(r) => r.partitions.extend(partitions),
                None => results.push(
                    AlterReplicaLogDirTopicResult::default()
                        .with_topic_name(t.name.clone())
                        .with_partitions(partitions),
                ),
            }
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}
