//! The committed stream: every committed metadata batch, in log order, exactly
//! once per reader, starting from the beginning of the log or from a snapshot.
//!
//! Readers do not hold entries in memory or in a queue that could overflow: a
//! reader is a cursor (`next`, the log index it reads from) over this node's
//! log, bounded by the state machine's `applied` mark, so it only ever sees
//! committed entries. When its position was purged (or lies below the snapshot
//! the state was last replaced by) it is handed the snapshot instead, as one
//! [`Committed::Snapshot`] that replaces everything before it.
//!
//! Which batches count is decided by `types::admit` from the log alone,
//! so the stream is the same on every voter and observer: a conditional batch
//! that was fenced off never appears.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use openraft::EntryPayload;
use samsa_metadata::{MetadataImage, MetadataRecord};
use tokio::sync::watch;

use crate::error::QuorumError;
use crate::log_store::{LogRead, LogStore};
use crate::snapshot::DecodedSnapshot;
use crate::state_machine::SmShared;
use crate::types::{admit, Proposal};

/// One step of the committed stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// The whole state up to and including log index `index`: replaces
    /// everything received before.
    Snapshot(SnapshotView),
    /// One committed batch, applied after everything before it.
    Batch(Batch),
}

/// A snapshot of the metadata image, as the records that rebuild it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotView {
    /// The last log index the snapshot covers.
    pub index: u64,
    /// The log index of the last batch the snapshot covers (for
    /// [`crate::RaftQuorum::append_after`]).
    pub last_batch: Option<u64>,
    /// `MetadataImage::records_applied` at the snapshot.
    pub records_applied: u64,
    /// Records that, applied to an empty image, rebuild the image.
    pub records: Vec<MetadataRecord>,
}

impl SnapshotView {
    /// The image this snapshot describes.
    pub fn to_image(&self) -> MetadataImage {
        crate::snapshot::rebuild(&self.records, self.records_applied)
    }
}

/// One committed batch of records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The batch's log index (strictly increasing along the stream).
    pub index: u64,
    pub records: Vec<MetadataRecord>,
}

impl Committed {
    /// Brings `image` up to date with this step.
    pub fn apply_to(&self, image: &mut MetadataImage) {
        match self {
            Committed::Snapshot(s) => *image = s.to_image(),
            Committed::Batch(b) => {
                for r in &b.records {
                    image.apply(r);
                }
            }
        }
    }

    /// The log index of the last batch reflected once this step is applied.
    pub fn last_batch(&self) -> Option<u64> {
        match self {
            Committed::Snapshot(s) => s.last_batch,
            Committed::Batch(b) => Some(b.index),
        }
    }
}

/// A reader's position and the fencing state at that position.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cursor {
    pub next: u64,
    pub last_batch: Option<u64>,
}

impl Cursor {
    /// Consumes the proposal at `index`; returns it if it takes effect.
    pub(crate) fn on_proposal(&mut self, index: u64, proposal: Proposal) -> Option<Batch> {
        if index < self.next {
            return None; // already delivered
        }
        self.next = index + 1;
        admit(&mut self.last_batch, index, &proposal.precondition).then_some(Batch {
            index,
            records: proposal.records,
        })
    }

    /// Consumes a snapshot; returns the step if it moves the cursor forward.
    pub(crate) fn on_snapshot(&mut self, snap: DecodedSnapshot) -> Option<Committed> {
        let last = snap.header.meta.last_log_id?;
        if last.index < self.next {
            return None;
        }
        self.next = last.index + 1;
        self.last_batch = snap.header.last_batch;
        Some(Committed::Snapshot(SnapshotView {
            index: last.index,
            last_batch: snap.header.last_batch,
            records_applied: snap.header.records_applied,
            records: snap.records,
        }))
    }
}

/// What a read at a position found.
pub(crate) enum ReadOutcome {
    /// Proposals at `[from, next)` (other entries skipped); `next` is the new
    /// position. Empty with an unchanged position when nothing new is applied.
    Entries {
        proposals: Vec<(u64, Proposal)>,
        next: u64,
    },
    /// The position is below what the log can serve: read the snapshot.
    NeedSnapshot,
}

/// Reads committed entries from this node's log and snapshot.
#[derive(Clone)]
pub(crate) struct CommittedReader {
    pub log: LogStore,
    pub sm: Arc<SmShared>,
}

impl CommittedReader {
    /// Reads from position `next`, up to `bytes_max` bytes of log frames.
    pub(crate) async fn read(
        &self,
        next: u64,
        bytes_max: usize,
    ) -> Result<ReadOutcome, QuorumError> {
        let (applied, floor) = self.sm.marks();
        if next < floor {
            return Ok(ReadOutcome::NeedSnapshot);
        }
        if next >= applied {
            return Ok(ReadOutcome::Entries {
                proposals: Vec::new(),
                next,
            });
        }
        match self.log.read_from(next, applied, bytes_max).await? {
            LogRead::Purged => Ok(ReadOutcome::NeedSnapshot),
            LogRead::Entries(entries) => {
                let mut pos = next;
                let mut proposals = Vec::new();
                for e in entries {
                    if e.log_id.index != pos {
                        return Err(QuorumError::Internal(format!(
                            "log read at {pos} returned {}",
                            e.log_id
                        )));
                    }
                    pos += 1;
                    if let EntryPayload::Normal(p) = e.payload {
                        proposals.push((e.log_id.index, p));
                    }
                }
                Ok(ReadOutcome::Entries {
                    proposals,
                    next: pos,
                })
            }
        }
    }

    /// The current snapshot, decoded.
    pub(crate) async fn snapshot(&self) -> Result<Option<DecodedSnapshot>, QuorumError> {
        let sm = self.sm.clone();
        self.sm.disk.run(move || sm.read_snapshot()).await?
    }
}

/// A local reader of the committed stream of a [`crate::RaftQuorum`].
///
/// Cancel safety: [`Subscription::next`] may be dropped at any await point
/// without losing or repeating a step.
pub struct Subscription {
    reader: CommittedReader,
    applied: watch::Receiver<u64>,
    closed: watch::Receiver<bool>,
    cursor: Cursor,
    pending: VecDeque<Committed>,
    read_bytes_max: usize,
}

impl Subscription {
    pub(crate) fn new(reader: CommittedReader, read_bytes_max: usize) -> Subscription {
        Subscription {
            applied: reader.sm.applied(),
            closed: reader.sm.closed(),
            reader,
            cursor: Cursor::default(),
            pending: VecDeque::new(),
            read_bytes_max,
        }
    }

    /// The log index this subscription reads next.
    pub fn position(&self) -> u64 {
        self.cursor.next
    }

    /// Waits for the next committed step. Errors only when the quorum shut
    /// down or this node's files cannot be read.
    pub async fn next(&mut self) -> Result<Committed, QuorumError> {
        loop {
            if let Some(step) = self.pending.pop_front() {
                return Ok(step);
            }
            if *self.closed.borrow() {
                return Err(QuorumError::Shutdown("quorum stopped".into()));
            }
            self.applied.borrow_and_update();
            match self
                .reader
                .read(self.cursor.next, self.read_bytes_max)
                .await?
            {
                ReadOutcome::Entries { proposals, next } if next > self.cursor.next => {
                    // Update the cursor and the queue together, with no await in
                    // between, so that dropping `next()` loses nothing.
                    for (index, p) in proposals {
                        if let Some(b) = self.cursor.on_proposal(index, p) {
                            self.pending.push_back(Committed::Batch(b));
                        }
                    }
                    self.cursor.next = self.cursor.next.max(next);
                }
                ReadOutcome::Entries { .. } => self.wait().await?,
                ReadOutcome::NeedSnapshot => {
                    let snap = self.reader.snapshot().await?;
                    match snap.and_then(|s| self.cursor.on_snapshot(s)) {
                        Some(step) => return Ok(step),
                        // The snapshot that replaced the state is not on disk
                        // yet; it will be shortly.
                        None => {
                            let _ =
                                tokio::time::timeout(Duration::from_millis(50), self.wait()).await;
                        }
                    }
                }
            }
        }
    }

    async fn wait(&mut self) -> Result<(), QuorumError> {
        tokio::select! {
            r = self.applied.changed() => r.map_err(|_| QuorumError::Shutdown("quorum stopped".into())),
            _ = until_true(&mut self.closed) => Err(QuorumError::Shutdown("quorum stopped".into())),
        }
    }
}

/// Waits until the flag is (or its sender is gone). Holds no borrow across an
/// await, so the future stays `Send`.
pub(crate) async fn until_true(flag: &mut watch::Receiver<bool>) {
    loop {
        if *flag.borrow_and_update() {
            return;
        }
        if flag.changed().await.is_err() {
            return;
        }
    }
}
