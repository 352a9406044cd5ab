//! Partition placement from the admin side: leader elections, replica
//! reassignments (sent to the controller, retried while it moves) and log
//! directories (DescribeLogDirs, AlterReplicaLogDirs at each broker).

use super::*;

impl Admin {
    /// Sends a controller request to the controller Metadata names (any broker
    /// if it is unknown or down: brokers forward metadata changes to the
    /// active controller). A top-level retriable error (NOT_CONTROLLER while a
    /// controller is elected, ...) or a lost connection is retried after a
    /// metadata refresh, up to the configured number of retries.
    async fn send_controller<R: Request>(
        &self,
        key: ApiKey,
        request: &R,
        top_error: impl Fn(&R::Response) -> (i16, Option<String>),
        what: &str,
    ) -> Result<R::Response, ClientError> {
        let mut attempt = 0;
        loop {
            let result = async {
                let conn = self.client.admin_connection().await?;
                let v = conn.version(key)?;
                let resp = conn.send_version(request, v).await?;
                let (code, message) = top_error(&resp);
                ClientError::check(code, message, what)?;
                Ok(resp)
            }
            .await;
            match result {
                Err(e) if attempt < self.client.config().retries && retry_controller(&e) => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "{what}: retrying");
                    tokio::time::sleep(self.client.config().retry_backoff).await;
                    if let Err(e) = self.client.fetch_metadata(Some(&[]), false).await {
                        tracing::debug!(error = %e, "metadata refresh failed");
                    }
                }
                other => return other,
            }
        }
    }

    /// ElectLeaders (v2): a preferred or unclean leader election for the given
    /// partitions, or for every partition (`None`; the broker then leaves out
    /// the partitions where no election was needed). Returns each partition's
    /// outcome; `ELECTION_NOT_NEEDED` means a valid leader is already in place.
    pub async fn elect_leaders(
        &self,
        election_type: ElectionType,
        partitions: Option<Vec<Tp>>,
    ) -> Result<PartitionResults, ClientError> {
        let topic_partitions = partitions.map(|ps| {
            by_topic(ps.into_iter().map(|(t, p)| (t, p, ())))
                .into_iter()
                .map(|(t, ps)| {
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(topic_name(&t))
                        .with_partitions(ps.into_iter().map(|(p, ())| p).collect())
                })
                .collect()
        });
        let req = ElectLeadersRequest::default()
            .with_election_type(election_type.wire())
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(self.operation_timeout_ms);
        let resp = self
            .send_controller(
                ApiKey::ElectLeaders,
                &req,
                |r| (r.error_code, None),
                "ElectLeaders",
            )
            .await?;
        let mut out = BTreeMap::new();
        for t in &resp.replica_election_results {
            let topic = t.topic.0.to_string();
            for p in &t.partition_result {
                out.insert(
                    (topic.clone(), p.partition_id),
                    partition_result(
                        &topic,
                        p.partition_id,
                        p.error_code,
                        opt_string(&p.error_message),
                    ),
                );
            }
            self.client.invalidate_topic(&topic);
        }
        Ok(out)
    }

    /// DescribeLogDirs (v4) to broker `broker`: each of its log directories
    /// with the replicas in it (every replica: no topic filter).
    pub async fn describe_log_dirs(
        &self,
        broker: i32,
    ) -> Result<Vec<LogDirDescription>, ClientError> {
        let req = DescribeLogDirsRequest::default().with_topics(None);
        let (resp, _) = self
            .client
            .send_to(broker, ApiKey::DescribeLogDirs, |_| req.clone())
            .await?;
        ClientError::check(resp.error_code, None, format!("broker {broker}"))?;
        Ok(resp
            .results
            .iter()
            .map(|r| LogDirDescription {
                dir: r.log_dir.to_string(),
                error_code: r.error_code,
                total_bytes: r.total_bytes,
                usable_bytes: r.usable_bytes,
                replicas: r
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(|p| LogDirReplica {
                            topic: t.name.0.to_string(),
                            partition: p.partition_index,
                            size: p.partition_size,
                            offset_lag: p.offset_lag,
                            is_future: p.is_future_key,
                        })
                    })
                    .collect(),
            })
            .collect())
    }

    /// AlterReplicaLogDirs (v2) to broker `broker`: move its replica of each
    /// `(topic, partition)` to the log directory named with it. Returns each
    /// partition's outcome (REPLICA_NOT_AVAILABLE: the broker does not hold
    /// the replica yet and creates it in that directory when it does).
    pub async fn alter_replica_log_dirs(
        &self,
        broker: i32,
        moves: Vec<(String, i32, String)>,
    ) -> Result<PartitionResults, ClientError> {
        let mut dirs: Vec<alter_replica_log_dirs_request::AlterReplicaLogDir> = Vec::new();
        let mut by_dir: BTreeMap<String, Vec<(String, i32, ())>> = BTreeMap::new();
        for (t, p, d) in moves {
            by_dir.entry(d).or_default().push((t, p, ()));
        }
        for (dir, tps) in by_dir {
            dirs.push(
                alter_replica_log_dirs_request::AlterReplicaLogDir::default()
                    .with_path(sb(&dir))
                    .with_topics(
                        by_topic(tps)
                            .into_iter()
                            .map(|(t, ps)| {
                                alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                                    .with_name(topic_name(&t))
                                    .with_partitions(ps.into_iter().map(|(p, ())| p).collect())
                            })
                            .collect(),
                    ),
            );
        }
        let req = AlterReplicaLogDirsRequest::default().with_dirs(dirs);
        let (resp, _) = self
            .client
            .send_to(broker, ApiKey::AlterReplicaLogDirs, |_| req.clone())
            .await?;
        let mut out = BTreeMap::new();
        for t in &resp.results {
            let topic = t.topic_name.0.to_string();
            for p in &t.partitions {
                out.insert(
                    (topic.clone(), p.partition_index),
                    partition_result(&topic, p.partition_index, p.error_code, None),
                );
            }
        }
        Ok(out)
    }

    /// AlterPartitionReassignments (v0): for each `(topic, partition, target)`,
    /// start moving the partition to the `target` replicas (the first is the
    /// preferred leader), or cancel its ongoing reassignment (`None`).
    /// Returns each partition's outcome.
    pub async fn alter_partition_reassignments(
        &self,
        changes: Vec<(String, i32, Option<Vec<i32>>)>,
    ) -> Result<PartitionResults, ClientError> {
        let topics = by_topic(changes)
            .into_iter()
            .map(|(t, ps)| {
                alter_partition_reassignments_request::ReassignableTopic::default()
                    .with_name(topic_name(&t))
                    .with_partitions(
                        ps.into_iter()
                            .map(|(p, target)| {
                                alter_partition_reassignments_request::ReassignablePartition::default()
                                    .with_partition_index(p)
                                    .with_replicas(
                                        target.map(|r| r.into_iter().map(BrokerId).collect()),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.operation_timeout_ms)
            .with_topics(topics);
        let resp = self
            .send_controller(
                ApiKey::AlterPartitionReassignments,
                &req,
                |r| (r.error_code, opt_string(&r.error_message)),
                "AlterPartitionReassignments",
            )
            .await?;
        let mut out = BTreeMap::new();
        for t in &resp.responses {
            let topic = t.name.0.to_string();
            for p in &t.partitions {
                out.insert(
                    (topic.clone(), p.partition_index),
                    partition_result(
                        &topic,
                        p.partition_index,
                        p.error_code,
                        opt_string(&p.error_message),
                    ),
                );
            }
            self.client.invalidate_topic(&topic);
        }
        Ok(out)
    }

    /// ListPartitionReassignments (v0): the ongoing reassignments of the given
    /// partitions (those not being reassigned are left out), or of all (`None`).
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<Vec<Tp>>,
    ) -> Result<BTreeMap<Tp, OngoingReassignment>, ClientError> {
        let topics = partitions.map(|ps| {
            by_topic(ps.into_iter().map(|(t, p)| (t, p, ())))
                .into_iter()
                .map(|(t, ps)| {
                    list_partition_reassignments_request::ListPartitionReassignmentsTopics::default(
                    )
                    .with_name(topic_name(&t))
                    .with_partition_indexes(ps.into_iter().map(|(p, ())| p).collect())
                })
                .collect()
        });
        let req = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.operation_timeout_ms)
            .with_topics(topics);
        let resp = self
            .send_controller(
                ApiKey::ListPartitionReassignments,
                &req,
                |r| (r.error_code, opt_string(&r.error_message)),
                "ListPartitionReassignments",
            )
            .await?;
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
        let mut out = BTreeMap::new();
        for t in &resp.topics {
            for p in &t.partitions {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    OngoingReassignment {
                        replicas: ids(&p.replicas),
                        adding_replicas: ids(&p.adding_replicas),
                        removing_replicas: ids(&p.removing_replicas),
                    },
                );
            }
        }
        Ok(out)
    }
}
