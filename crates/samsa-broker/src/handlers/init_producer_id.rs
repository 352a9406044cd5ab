//! InitProducerId: producer ids for idempotent and transactional producers.
//!
//! A non-transactional producer always gets a fresh id with epoch 0 (as Kafka
//! does). Ids are handed out from blocks the controller allocates through the
//! metadata log, so no id is ever reused, across restarts too. A
//! transactional one is answered by the transaction coordinator of its
//! `transactional.id` (epoch bumps, fencing, KIP-360 re-initialization).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use samsa_coordinator::txn::{self, TxnResponse};
use samsa_model::ProducerEpoch;

use std::sync::Arc;

use crate::broker::Broker;

/// Answers InitProducerId.
pub async fn handle(
    broker: &Arc<Broker>,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(id) = request
        .transactional_id
        .as_ref()
        .filter(|t| !t.0.is_empty())
    {
        return transactional(broker, id.0.to_string(), &request, version).await;
    }
    match broker.next_producer_id().await {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id");
            response.with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}

/// InitProducerId with a `transactional.id`, answered by its coordinator.
async fn transactional(
    broker: &Arc<Broker>,
    transactional_id: String,
    request: &InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let req = txn::InitProducerIdRequest {
        transactional_id: transactional_id.clone(),
        transaction_timeout_ms: request.transaction_timeout_ms,
        producer_id: samsa_model::ProducerId(request.producer_id.0),
        producer_epoch: ProducerEpoch(request.producer_epoch),
    };
    let answer = broker
        .transactions
        .call(broker, &transactional_id, |c, now, token| {
            c.init_producer_id(now, &req, token)
        })
        .await;
    let (code, id, epoch) = match answer {
        Some(TxnResponse::InitProducerId(r)) => {
            (r.error_code, r.producer_id.get(), r.producer_epoch.get())
        }
        _ => (ResponseError::CoordinatorNotAvailable.code(), -1, -1),
    };
    InitProducerIdResponse::default()
        .with_error_code(crate::transactions::fenced_code(code, version, 4))
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use kafka_protocol::messages::InitProducerIdRequest;
    use samsa_metadata::quorum::{LocalQuorum, MetadataQuorum, QuorumError};
    use samsa_metadata::MetadataRecord;

    /// The local quorum, except that a producer-id allocation waits until
    /// the test lets it through (a slow quorum write).
    struct GatedQuorum {
        inner: LocalQuorum,
        entered: mpsc::Sender<()>,
        release: Arc<Mutex<mpsc::Receiver<()>>>,
    }

    impl MetadataQuorum for GatedQuorum {
        fn last_batch(&self) -> Option<u64> {
            self.inner.last_batch()
        }

        fn append_after(
            &mut self,
            after: Option<u64>,
            records: &[MetadataRecord],
        ) -> Result<u64, QuorumError> {
            if matches!(records.first(), Some(MetadataRecord::ProducerIds { .. })) {
                let _ = self.entered.send(());
                let _ = self.release.lock().unwrap().recv();
            }
            self.inner.append_after(after, records)
        }
    }

    /// While a producer-id block is being committed, other InitProducerId
    /// requests wait without blocking the runtime's workers, and every
    /// caller gets its own id. (Before, the allocation ran under a
    /// `std::sync::Mutex` on the worker: the writer held one worker, every
    /// other InitProducerId blocked another on the mutex, and with two
    /// workers nothing else on the runtime ran until the write finished.)
    #[test]
    fn allocation_does_not_block_runtime_workers() {
        let dir = tempfile::tempdir().unwrap();
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let broker = crate::test_support::broker_over(dir.path(), |inner| {
            Box::new(GatedQuorum {
                inner,
                entered: entered_tx,
                release: Arc::new(Mutex::new(release_rx)),
            })
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let b = broker.clone();
                rt.spawn(async move {
                    super::handle(&b, InitProducerIdRequest::default(), 4)
                        .await
                        .producer_id
                        .0
                })
            })
            .collect();
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("an allocation started");
        // Let the other callers reach the allocation too.
        std::thread::sleep(Duration::from_millis(200));
        // Other work on the runtime (waited for from this thread, so that a
        // runtime whose workers are all blocked cannot hang the test).
        let (done, other_work) = mpsc::channel();
        rt.spawn(async move { done.send(42) });
        let other_work = other_work.recv_timeout(Duration::from_secs(2));
        release.send(()).unwrap();
        let mut ids: Vec<i64> = rt.block_on(async {
            let mut ids = Vec::new();
            for c in callers {
                ids.push(c.await.unwrap());
            }
            ids
        });
        assert!(
            other_work == Ok(42),
            "the runtime's workers were blocked while a producer-id block was committed"
        );
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 4, "distinct ids: {ids:?}");
        assert!(ids.iter().all(|id| *id >= 0));
    }
}
