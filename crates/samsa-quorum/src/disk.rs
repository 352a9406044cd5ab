//! The quorum's own disk I/O threads.
//!
//! The Raft log (appends and their fsyncs, truncation, purge, vote) and the
//! snapshot files are written and read on dedicated threads, one job at a
//! time in submission order, never on tokio's blocking pool. The blocking
//! pool is shared with the rest of the process: code that waits there for a
//! metadata commit (a broker's controller call bridged from synchronous
//! code) could otherwise occupy every pool thread while the commit it waits
//! for queues behind it for a thread to write the log — the quorum wedges
//! until those waits time out.
//!
//! A job that panics answers its caller with an error; the thread goes on
//! with the next job. The thread ends when the last handle is dropped (after
//! the jobs already queued).

use std::panic::AssertUnwindSafe;

use tokio::sync::{mpsc, oneshot};

use crate::error::QuorumError;

/// Jobs queued on one disk thread at most; submitters wait (asynchronously)
/// for room beyond that.
pub(crate) const DISK_JOBS_MAX: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to a disk I/O thread.
#[derive(Clone)]
pub(crate) struct DiskThread {
    jobs: mpsc::Sender<Job>,
}

impl DiskThread {
    /// Starts a thread named `name`.
    pub(crate) fn spawn(name: &str) -> Result<DiskThread, QuorumError> {
        let (jobs, mut queue) = mpsc::channel::<Job>(DISK_JOBS_MAX);
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    // A panicking job drops its answer sender: its caller
                    // gets an error, later jobs still run.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })
            .map_err(|e| QuorumError::Internal(format!("starting the {name} thread: {e}")))?;
        Ok(DiskThread { jobs })
    }

    /// Runs `f` on the thread after the jobs queued before it; returns what
    /// it returns.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, QuorumError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = answer.send(f());
            }))
            .await
            .map_err(|_| QuorumError::Internal("the disk thread stopped".into()))?;
        answered
            .await
            .map_err(|_| QuorumError::Internal("a disk job failed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn runs_in_order_and_survives_a_panicking_job() {
        let disk = DiskThread::spawn("test-disk").unwrap();
        let name = disk
            .run(|| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("test-disk"));
        let failed = disk.run(|| -> u32 { panic!("boom") }).await;
        assert!(failed.is_err());
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let runs: Vec<_> = (0..10)
            .map(|i| {
                let order = order.clone();
                disk.run(move || order.lock().unwrap().push(i))
            })
            .collect();
        for r in runs {
            r.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
    }
}
