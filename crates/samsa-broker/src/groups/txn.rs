//! The group coordinator's side of transactions: the hook through which
//! WriteTxnMarkers reports a marker it wrote to a `__consumer_offsets`
//! partition, so the shard commits or aborts that producer's pending
//! transactional offsets (Kafka's `replayEndTransactionMarker`).

use super::GroupService;
use crate::broker::Broker;

impl GroupService {
    /// Whether `group`'s `__consumer_offsets` partition (led here) holds a
    /// newer epoch of `producer_id` than `producer_epoch`: its transactional
    /// batch would be refused as Kafka's log refuses it (INVALID_PRODUCER_EPOCH).
    /// TxnOffsetCommit checks this under the shard's lock before the
    /// coordinator takes the offsets, so a fenced producer is told so, instead
    /// of its failed append unloading and reloading every group of the
    /// partition (after which it would retry, answered NOT_COORDINATOR).
    pub fn producer_fenced(
        &self,
        broker: &Broker,
        group: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> bool {
        let part = crate::coordinator_runtime::log::internal_partition(
            broker,
            super::OFFSETS_TOPIC,
            self.partition_for(group),
        );
        part.filter(|p| p.is_leader()).is_some_and(|part| {
            part.log()
                .producer_state(samsa_model::ProducerId(producer_id))
                .is_some_and(|e| e.epoch.get() > producer_epoch)
        })
    }

    /// WriteTxnMarkers wrote a COMMIT (`commit`) or ABORT marker of
    /// `producer_id` to `__consumer_offsets` partition `partition`; call once
    /// it is replicated (the handler appends markers with acks=all). The
    /// partition's shard makes the producer's pending offsets committed or
    /// drops them. A shard still loading applies the marker once loaded (the
    /// replay may have read it too: applying it twice is harmless, the first
    /// takes the producer's pending offsets, and no new transactional offset
    /// is committed while the shard loads); a partition not led here has no
    /// shard (its next leader replays the marker from the log).
    pub async fn txn_marker_written(
        &self,
        broker: &Broker,
        partition: u32,
        producer_id: i64,
        commit: bool,
    ) {
        self.runtime
            .notify_or_defer(broker, partition, move |c, _now| {
                c.complete_transaction(partition, producer_id, commit);
                Vec::new()
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use samsa_coordinator as gc;

    use super::*;

    async fn txn_commit(broker: &Broker, pid: i64, offset: i64) -> i16 {
        let req = gc::TxnOffsetCommitRequest {
            api_version: 3,
            transactional_id: "tx".into(),
            group_id: "g".into(),
            producer_id: pid,
            producer_epoch: 0,
            generation_id: -1,
            topics: vec![gc::OffsetCommitTopic {
                name: "t".into(),
                topic_id: None,
                partitions: vec![gc::OffsetCommitPartition {
                    partition_index: 0,
                    committed_offset: offset,
                    committed_leader_epoch: -1,
                    committed_metadata: None,
                }],
            }],
            ..Default::default()
        };
        match broker
            .groups
            .call(broker, "g", move |c, _, now, token| {
                c.txn_offset_commit(req, now, token)
            })
            .await
        {
            Some(gc::Response::OffsetCommit(r)) => r.topics[0].partitions[0].error_code,
            other => panic!("{other:?}"),
        }
    }

    /// (offset, error) of "g"/"t"-0, with `require_stable` or not.
    fn fetch(c: &gc::Coordinator, require_stable: bool) -> (i64, i16) {
        let r = c.offset_fetch(&gc::OffsetFetchRequest {
            api_version: 8,
            groups: vec![gc::OffsetFetchGroup {
                group_id: "g".into(),
                member_id: None,
                member_epoch: -1,
                topics: Some(vec![gc::OffsetFetchTopic {
                    name: "t".into(),
                    partition_indexes: vec![0],
                }]),
            }],
            require_stable,
        });
        let p = &r.groups[0].topics[0].partitions[0];
        (p.committed_offset, p.error_code)
    }

    async fn fetch_live(broker: &Broker, require_stable: bool) -> (i64, i16) {
        let ids = vec!["g".to_string()];
        broker
            .groups
            .read_groups(broker, &ids, |c, _, _| fetch(c, require_stable))
            .await[0]
    }

    /// The COMMIT or ABORT marker of `pid` in `__consumer_offsets`-0, as
    /// WriteTxnMarkers writes it.
    fn marker(broker: &Broker, pid: i64, commit: bool) {
        let part = crate::coordinator_runtime::log::internal_partition(
            broker,
            super::super::OFFSETS_TOPIC,
            0,
        )
        .unwrap();
        part.log()
            .append_marker(
                samsa_model::ProducerId(pid),
                samsa_model::ProducerEpoch(0),
                commit,
                samsa_model::CoordinatorEpoch(0),
                part.led_epoch().unwrap(),
                crate::handlers::produce::now_ms(),
            )
            .unwrap();
    }

    /// Starts the transaction coordinator (until `stop`), initializes
    /// transactional producer `id` twice (its second epoch fences the
    /// first) and adds `group`'s offsets partition to its transaction with
    /// AddOffsetsToTxn, since a TxnOffsetCommit is verified with the
    /// transaction coordinator (KIP-890): its producer id and epoch.
    async fn open_transaction(
        broker: &std::sync::Arc<Broker>,
        stop: &tokio::sync::watch::Sender<bool>,
        id: &str,
        group: &str,
    ) -> (i64, i16) {
        use crate::transactions::tests::{find_coordinator, init, until};
        use kafka_protocol::messages::{AddOffsetsToTxnRequest, GroupId, TransactionalId};
        use kafka_protocol::protocol::StrBytes;
        tokio::spawn(
            broker
                .transactions
                .clone()
                .run(broker.clone(), stop.subscribe()),
        );
        assert_eq!(find_coordinator(broker, id).1, 0);
        until("the transaction coordinator to load", || {
            broker.transactions.serves(id)
        })
        .await;
        assert_eq!(init(broker, id).await.0, 0);
        let (code, pid, epoch) = init(broker, id).await;
        assert_eq!((code, epoch), (0, 1));
        let add = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(id.into())))
            .with_producer_id(kafka_protocol::messages::ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(StrBytes::from_string(group.into())));
        let added = crate::handlers::add_offsets_to_txn::handle(broker, add, 3).await;
        assert_eq!(added.error_code, 0);
        (pid, epoch)
    }

    /// A single-node broker with `__consumer_offsets` (one partition) loaded;
    /// dropping the sender stops its group timers.
    async fn loaded_broker(
        dir: &std::path::Path,
    ) -> (std::sync::Arc<Broker>, tokio::sync::watch::Sender<bool>) {
        let broker = super::super::tests::open(dir, 1);
        assert!(broker.groups.ensure_offsets_topic(&broker));
        let (stop, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(broker.groups.clone().run_timers(broker.clone(), rx));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !broker.groups.serves("g") {
            assert!(std::time::Instant::now() < deadline, "shard never loaded");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        (broker, stop)
    }

    /// TxnOffsetCommit v3 of "g"/"t"-0 through the handler: its error code.
    async fn txn_commit_wire(
        broker: &std::sync::Arc<Broker>,
        pid: i64,
        epoch: i16,
        offset: i64,
    ) -> i16 {
        crate::transactions::tests::txn_offset_commit(broker, ("tx", pid, epoch), 3, offset).await
    }

    /// A zombie (a producer fenced by a newer epoch of its id) that sends
    /// TxnOffsetCommit is told INVALID_PRODUCER_EPOCH, as Kafka's log refuses
    /// its batch; the shard keeps serving the partition's groups and the
    /// current epoch's pending offsets. (Before, its append failed, every
    /// group of the partition was reloaded, and the zombie got
    /// NOT_COORDINATOR and retried.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fenced_producers_txn_offset_commit_is_refused_without_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (broker, stop) = loaded_broker(dir.path()).await;
        crate::transactions::tests::create_topic_t(&broker);
        let (pid, epoch) = open_transaction(&broker, &stop, "tx", "g").await;
        assert_eq!(txn_commit_wire(&broker, pid, epoch, 40).await, 0);
        assert_eq!(
            txn_commit_wire(&broker, pid, epoch - 1, 30).await,
            samsa_coordinator::txn::txn_codes::INVALID_PRODUCER_EPOCH
        );
        assert!(broker.groups.serves("g"), "the shard was reloaded");
        assert_eq!(
            fetch_live(&broker, true).await,
            (-1, gc::codes::UNSTABLE_OFFSET_COMMIT),
            "the current epoch's offsets are still pending"
        );
        assert_eq!(txn_commit_wire(&broker, pid, epoch, 41).await, 0);
        let _ = stop.send(true);
    }

    /// The wire path: TxnOffsetCommit v0 (no group fields) and v3 decode into
    /// the coordinator, a partition the topic lacks is refused, OffsetFetch v7
    /// with `require_stable` answers UNSTABLE_OFFSET_COMMIT for a pending one,
    /// and WriteTxnMarkers' COMMIT in `__consumer_offsets` makes it committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn txn_offset_commit_handler_and_require_stable_fetch() {
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
        use kafka_protocol::messages::txn_offset_commit_request::{
            TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
        };
        use kafka_protocol::messages::{
            GroupId, OffsetFetchRequest, ProducerId, TopicName, TransactionalId,
            TxnOffsetCommitRequest,
        };
        use kafka_protocol::protocol::StrBytes;

        let dir = tempfile::tempdir().unwrap();
        let (broker, stop) = loaded_broker(dir.path()).await;
        crate::transactions::tests::create_topic_t(&broker);
        let (pid, epoch) = open_transaction(&broker, &stop, "tx", "g").await;
        let name = || TopicName(StrBytes::from_static_str("t"));
        for version in [0, 3] {
            let request = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_generation_id(-1)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(name())
                    .with_partitions(
                        [0, 5]
                            .map(|p| {
                                TxnOffsetCommitRequestPartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(40)
                            })
                            .to_vec(),
                    )]);
            let r = crate::handlers::txn_offset_commit::handle(&broker, request, version).await;
            let codes: Vec<(i32, i16)> = r.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code))
                .collect();
            assert_eq!(
                codes,
                [(0, 0), (5, gc::codes::UNKNOWN_TOPIC_OR_PARTITION)],
                "v{version}"
            );
        }
        let fetch = |require_stable: bool| {
            OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(name())
                    .with_partition_indexes(vec![0])]))
                .with_require_stable(require_stable)
        };
        let r = crate::handlers::offset_fetch::handle(&broker, fetch(true), 7).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.committed_offset, p.error_code),
            (-1, gc::codes::UNSTABLE_OFFSET_COMMIT)
        );
        let r = crate::handlers::offset_fetch::handle(&broker, fetch(false), 7).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.committed_offset, p.error_code), (-1, 0));
        // The transaction coordinator's COMMIT marker, through WriteTxnMarkers
        // and its group hook.
        use kafka_protocol::messages::write_txn_markers_request::{
            WritableTxnMarker, WritableTxnMarkerTopic,
        };
        let markers =
            kafka_protocol::messages::WriteTxnMarkersRequest::default().with_markers(vec![
                WritableTxnMarker::default()
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_transaction_result(true)
                    .with_coordinator_epoch(0)
                    .with_topics(vec![WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("__consumer_offsets")))
                        .with_partition_indexes(vec![0])]),
            ]);
        let r = crate::handlers::write_txn_markers::handle(&broker, markers, 1).await;
        assert_eq!(r.markers[0].topics[0].partitions[0].error_code, 0);
        let r = crate::handlers::offset_fetch::handle(&broker, fetch(true), 7).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.committed_offset, p.error_code), (40, 0));
        let _ = stop.send(true);
    }

    /// TxnOffsetCommit through the broker: the producer's transactional batch
    /// in `__consumer_offsets`, pending until the marker hook; replaying the
    /// partition's log (transactional batches and control batches) rebuilds
    /// the same committed and pending offsets.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn txn_offsets_commit_on_the_marker_and_replay_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (broker, stop) = loaded_broker(dir.path()).await;

        assert_eq!(txn_commit(&broker, 7, 11).await, 0);
        assert_eq!(
            txn_commit(&broker, 7, 12).await,
            0,
            "a second batch of the producer is stored too"
        );
        assert_eq!(fetch_live(&broker, false).await, (-1, 0));
        assert_eq!(
            fetch_live(&broker, true).await,
            (-1, gc::codes::UNSTABLE_OFFSET_COMMIT)
        );
        marker(&broker, 7, true);
        broker.groups.txn_marker_written(&broker, 0, 7, true).await;
        assert_eq!(fetch_live(&broker, true).await, (12, 0));

        // A second transaction, left open.
        assert_eq!(txn_commit(&broker, 8, 20).await, 0);
        let part = crate::coordinator_runtime::log::internal_partition(
            &broker,
            super::super::OFFSETS_TOPIC,
            0,
        )
        .unwrap();
        let headers: Vec<_> = {
            let read = part
                .log()
                .read(
                    part.log().log_start_offset(),
                    1 << 20,
                    part.log().log_end_offset(),
                    true,
                )
                .unwrap();
            samsa_model::batch::BatchIter::new(&read.bytes)
                .map(|b| b.unwrap().0)
                .collect()
        };
        assert!(headers
            .iter()
            .any(|h| h.is_transactional() && h.producer_id.get() == 8 && !h.is_control()));

        use crate::coordinator_runtime::{CoordinatorKind, ShardMachine};
        let mut c = broker
            .groups
            .runtime
            .kind()
            .loading(0, samsa_model::LeaderEpoch(0));
        crate::coordinator_runtime::log::replay_partition(
            &broker,
            super::super::OFFSETS_TOPIC,
            0,
            &mut |h, k, v| ShardMachine::replay(&mut c, 0, h, k, v),
        )
        .unwrap();
        c.finish_loading(crate::handlers::produce::now_ms());
        assert_eq!(fetch(&c, false), (12, 0));
        assert_eq!(fetch(&c, true), (-1, gc::codes::UNSTABLE_OFFSET_COMMIT));
        let _ = stop.send(true);
    }
}
