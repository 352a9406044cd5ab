//! ISR changes sent to the controller in batches (Kafka's
//! `AlterPartitionManager`: one AlterPartition request carries every
//! partition of this broker with a pending change).
//!
//! A leader that wants to grow or shrink a partition's ISR marks the change
//! in flight on the partition (one per partition) and queues it here. One
//! sender per broker takes everything queued (at most
//! [`ALTER_ISR_BATCH_PARTITIONS_MAX`] partitions) and commits it as one
//! metadata batch ([`samsa_metadata::Controller::alter_partitions`]: each
//! partition fenced on its own leader and partition epochs), on one
//! blocking thread, then applies the result to the partitions before their
//! changes stop being in flight. Changes queued meanwhile go in the next
//! batch. So a few hundred partitions changing at once (a follower died)
//! cost a handful of quorum writes and one blocking thread, not a blocking
//! thread and a write each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use samsa_metadata::{AlterPartition, ControllerError};
use samsa_model::BrokerId;

use crate::broker::Broker;
use crate::partition::{IsrProposal, Partition};

/// Partitions in one AlterPartition batch at most.
pub const ALTER_ISR_BATCH_PARTITIONS_MAX: usize = 1000;

/// One partition's pending ISR change.
struct Change {
    part: Arc<Partition>,
    proposal: IsrProposal,
}

#[derive(Default)]
struct Queue {
    /// At most one per partition (a partition has one change in flight),
    /// so bounded by the partitions hosted here.
    pending: Vec<Change>,
    /// Whether a sender task is running.
    sending: bool,
}

/// The broker's queue of ISR changes.
#[derive(Default)]
pub struct AlterIsr {
    queue: Mutex<Queue>,
    /// Batches sent to the controller since start.
    batches: AtomicU64,
}

impl AlterIsr {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        match self.queue.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// AlterPartition batches sent to the controller since start.
    pub fn batches_sent(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
}

/// Queues an ISR change for `part` (ignored unless this broker leads it);
/// the new ISR takes effect when the metadata change comes back. Must be
/// called on a tokio runtime (the sender is a task).
pub fn submit(broker: &Arc<Broker>, part: &Arc<Partition>, isr: Vec<BrokerId>) {
    let Some(proposal) = part.propose_isr(isr) else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!(topic = %part.topic, partition = part.index.get(), "ISR change outside a runtime; dropped");
        part.isr_change_done(&proposal);
        return;
    };
    let mut queue = broker.alter_isr.lock();
    queue.pending.push(Change {
        part: part.clone(),
        proposal,
    });
    if !queue.sending {
        queue.sending = true;
        runtime.spawn(send_loop(broker.clone()));
    }
}

/// Sends batches until the queue is empty.
async fn send_loop(broker: Arc<Broker>) {
    loop {
        let batch: Vec<Change> = {
            let mut queue = broker.alter_isr.lock();
            if queue.pending.is_empty() {
                queue.sending = false;
                return;
            }
            let n = queue.pending.len().min(ALTER_ISR_BATCH_PARTITIONS_MAX);
            queue.pending.drain(..n).collect()
        };
        let answered: Vec<(Arc<Partition>, IsrProposal)> = batch
            .iter()
            .map(|c| (c.part.clone(), c.proposal.clone()))
            .collect();
        let b = broker.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || send_batch(&b, &batch)).await {
            tracing::error!(error = %e, "sending ISR changes failed");
        }
        for (part, proposal) in &answered {
            part.isr_change_done(proposal);
            broker.notify_hw(part);
        }
    }
}

/// Commits one batch and applies it to the partitions (before their
/// changes stop being in flight: fetches in between would ask for the same
/// change again with an epoch that is already stale).
fn send_batch(broker: &Broker, batch: &[Change]) {
    let broker_epoch = broker.broker_epoch.load(Ordering::Relaxed);
    let requests: Vec<AlterPartition> = batch
        .iter()
        .map(|c| AlterPartition {
            topic_id: c.part.topic_id,
            partition: c.part.index,
            leader: broker.settings.node_id,
            broker_epoch: Some(broker_epoch),
            leader_epoch: c.proposal.leader_epoch,
            partition_epoch: c.proposal.partition_epoch,
            new_isr: c.proposal.isr.clone(),
            new_isr_broker_epochs: c.proposal.broker_epochs.clone(),
        })
        .collect();
    broker.alter_isr.batches.fetch_add(1, Ordering::Relaxed);
    let results = match broker.admin(|c| c.alter_partitions(&requests)) {
        Ok(results) => results,
        Err(e) => {
            tracing::info!(partitions = batch.len(), error = %e, "ISR changes refused");
            return;
        }
    };
    if results.iter().any(Result::is_ok) {
        if let Err(e) = broker.reconcile() {
            tracing::error!(error = %e, "reconciling after ISR changes");
        }
    }
    for (c, result) in batch.iter().zip(results) {
        let (topic, partition, isr) = (&c.part.topic, c.part.index.get(), &c.proposal.isr);
        match result {
            Ok(_) => tracing::info!(%topic, partition, ?isr, "ISR changed"),
            // A restarted follower fetches before its first heartbeat
            // unfences it; the expansion is retried on its next fetch.
            Err(e @ ControllerError::IneligibleReplica(_)) => {
                tracing::debug!(%topic, partition, error = %e, "ISR change refused")
            }
            Err(e) => tracing::info!(%topic, partition, error = %e, "ISR change refused"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    use samsa_metadata::quorum::{LocalQuorum, MetadataQuorum, QuorumError};
    use samsa_metadata::{BrokerRegistration, MetadataRecord, NewTopic};

    use super::*;

    /// The local quorum, counting the batches that change partitions.
    struct Counting(LocalQuorum, Arc<AtomicUsize>);

    impl MetadataQuorum for Counting {
        fn last_batch(&self) -> Option<u64> {
            self.0.last_batch()
        }

        fn append_after(
            &mut self,
            after: Option<u64>,
            records: &[MetadataRecord],
        ) -> Result<u64, QuorumError> {
            if matches!(records.first(), Some(MetadataRecord::Partition { .. })) {
                self.1.fetch_add(1, Ordering::Relaxed);
            }
            self.0.append_after(after, records)
        }
    }

    /// 300 partitions losing a follower at once shrink their ISRs in a
    /// handful of metadata writes (before: one write, and one blocking
    /// thread waiting on it, per partition).
    #[test]
    fn hundreds_of_isr_changes_take_a_handful_of_writes() {
        const PARTITIONS: usize = 300;
        let dir = tempfile::tempdir().unwrap();
        let writes = Arc::new(AtomicUsize::new(0));
        let counter = writes.clone();
        let broker = crate::test_support::broker_over(dir.path(), move |inner| {
            Box::new(Counting(inner, counter))
        });
        broker
            .controller
            .register_broker(BrokerRegistration {
                id: BrokerId(2),
                host: "127.0.0.1".into(),
                port: 1,
                incarnation: "two".into(),
                ..Default::default()
            })
            .unwrap();
        let created = broker.controller.create_topics(
            vec![NewTopic {
                name: "t".into(),
                num_partitions: -1,
                replication_factor: -1,
                assignments: vec![vec![BrokerId(1), BrokerId(2)]; PARTITIONS],
                ..Default::default()
            }],
            false,
        );
        let topic = created[0].as_ref().unwrap().clone();
        broker.reconcile().unwrap();
        let before = writes.load(Ordering::Relaxed);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for p in 0..PARTITIONS as i32 {
                let part = broker.partition(topic.id, p).unwrap();
                assert_eq!(part.isr_len(), Some(2));
                crate::replica::submit_isr(&broker, &part, vec![BrokerId(1)]);
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let shrunk = (0..PARTITIONS as i32)
                    .filter(|p| broker.partition(topic.id, *p).unwrap().isr_len() == Some(1))
                    .count();
                if shrunk == PARTITIONS {
                    break;
                }
                assert!(Instant::now() < deadline, "{shrunk} of {PARTITIONS} shrunk");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let image = broker.image();
        let t = image.topic("t").unwrap();
        assert!(t.partitions.iter().all(|p| p.isr == vec![BrokerId(1)]));
        let used = writes.load(Ordering::Relaxed) - before;
        assert!(
            used <= 5,
            "{used} metadata writes for {PARTITIONS} ISR changes"
        );
    }
}
