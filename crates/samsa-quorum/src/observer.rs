//! [`Observer`]: how a broker that is not a voter follows the committed
//! metadata log (Kafka's KRaft "observer").
//!
//! The observer pulls, like KRaft's fetch from the leader: it sends `Fetch
//! { next, wait_ms }` to a voter's CONTROLLER listener; the voter answers with
//! the committed proposals from log index `next` (long-polling up to `wait_ms`
//! when there are none yet), or says the position was compacted away, in which
//! case the observer downloads the voter's snapshot file in pieces
//! (`FetchSnapshot`, all pieces checked to come from one snapshot) and
//! continues after it. Wire formats: the `wire` module.
//!
//! A voter only serves what it has *applied*, and it applies only committed
//! entries, so any voter — leader or follower — serves a prefix of the same
//! committed log; the observer may switch voters at any time without seeing a
//! gap, a repeat, or an uncommitted record. It prefers the leader (every
//! response names it) and moves to the next voter on any failure.
//!
//! Observers are not part of the Raft membership: no vote, no effect on
//! commits, nothing to register, any number of them. They keep nothing on
//! disk: after a restart an observer starts from the voters' snapshot (or
//! from index 0) again.
//!
//! A broker that is not the leader also needs to *write* (register itself,
//! forward admin requests): [`Observer::append`] sends the batch to the leader
//! (`Propose`), following `NotLeader` hints. Each attempt uses a fresh
//! connection, so a failed connect is known not to have delivered anything and
//! is retried elsewhere; any later failure leaves the outcome unknown and is
//! reported as [`QuorumError::Timeout`]. [`Observer::append_after`] makes a
//! retry after an unknown outcome safe: if the first attempt committed, the
//! retry is fenced off.
//!
//! A broker also reports that it is alive: [`Observer::heartbeat`] sends
//! `Heartbeat { node, broker_epoch }` to the leader, following `NotLeader`
//! hints the same way, within [`HEARTBEAT_TIMEOUT_MS_MAX`] in all. A
//! heartbeat only refreshes a timestamp, so unlike an append it is simply
//! retried on another voter after any failure. Heartbeats keep one
//! connection per voter, apart from the ones fetches use.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use samsa_metadata::MetadataRecord;

use crate::committed::{Committed, Cursor};
use crate::config::ObserverConfig;
use crate::error::QuorumError;
use crate::network::{CallError, Connector};
use crate::snapshot::{self, DecodedSnapshot};
use crate::types::Precondition;
use crate::wire::{
    FetchResponse, HeartbeatResult, ProposeResult, Request, Response, SnapshotChunk,
};

/// How often a snapshot download restarts because the voter replaced its
/// snapshot mid-way, before the voter is given up on for now.
const SNAPSHOT_RESTARTS_MAX: u32 = 3;

/// The longest one [`Observer::heartbeat`] call may take, redirects and
/// retries included (less when `rpc_timeout_ms` is smaller).
pub const HEARTBEAT_TIMEOUT_MS_MAX: u64 = 2_000;

/// A non-voting follower of the committed metadata log.
///
/// Cancel safety: [`Observer::next`] may be dropped at any await point without
/// losing or repeating a step (an interrupted request's connection is
/// discarded).
pub struct Observer {
    config: ObserverConfig,
    voters: Vec<(u64, Connector)>,
    current: usize,
    cursor: Cursor,
    pending: VecDeque<Committed>,
    leader: Option<u64>,
    /// One heartbeat connection per voter, in `voters` order.
    heartbeat_conns: Vec<Connector>,
}

impl Observer {
    /// An observer of the given voters, positioned at the start of the log.
    /// Connects lazily.
    pub fn new(config: ObserverConfig) -> Result<Observer, QuorumError> {
        config.validate()?;
        let voters = config
            .voters
            .iter()
            .map(|(id, addr)| (*id, Connector::new(*addr, config.frame_bytes_max)))
            .collect();
        let heartbeat_conns = config
            .voters
            .values()
            .map(|addr| Connector::new(*addr, config.frame_bytes_max))
            .collect();
        Ok(Observer {
            config,
            voters,
            current: 0,
            cursor: Cursor::default(),
            pending: VecDeque::new(),
            leader: None,
            heartbeat_conns,
        })
    }

    /// The leader the voters last reported.
    pub fn leader(&self) -> Option<u64> {
        self.leader
    }

    /// The log index this observer reads next.
    pub fn position(&self) -> u64 {
        self.cursor.next
    }

    /// Waits for the next committed step, trying the voters in turn for as
    /// long as it takes (bound it with a timeout if needed).
    pub async fn next(&mut self) -> Result<Committed, QuorumError> {
        loop {
            if let Some(step) = self.pending.pop_front() {
                return Ok(step);
            }
            match self.fetch_once().await {
                Ok(()) => {}
                Err(e) => {
                    let (id, _) = &self.voters[self.current];
                    tracing::debug!(voter = id, error = %e, "observer fetch failed; trying the next voter");
                    self.current = (self.current + 1) % self.voters.len();
                    tokio::time::sleep(Duration::from_millis(self.config.retry_backoff_ms)).await;
                }
            }
        }
    }

    /// Commits `records` as one batch through the leader; returns its log
    /// index. See the module doc for retries and unknown outcomes.
    pub async fn append(&mut self, records: Vec<MetadataRecord>) -> Result<u64, QuorumError> {
        self.forward(Precondition::Always, records).await
    }

    /// Like [`Observer::append`], committed only if the last committed batch
    /// is `last_batch` (else [`QuorumError::Fenced`]).
    pub async fn append_after(
        &mut self,
        last_batch: Option<u64>,
        records: Vec<MetadataRecord>,
    ) -> Result<u64, QuorumError> {
        self.forward(Precondition::LastBatch(last_batch), records)
            .await
    }

    async fn forward(
        &mut self,
        precondition: Precondition,
        records: Vec<MetadataRecord>,
    ) -> Result<u64, QuorumError> {
        let limit = Duration::from_millis(self.config.propose_timeout_ms);
        let backoff = Duration::from_millis(self.config.retry_backoff_ms);
        for _ in 0..self.voters.len() * 3 {
            if let Some(l) = self.leader {
                if let Some(i) = self.voters.iter().position(|(id, _)| *id == l) {
                    self.current = i;
                }
            }
            let id = self.voters[self.current].0;
            let Some(addr) = self.config.voters.get(&id).copied() else {
                return Err(QuorumError::Internal(format!("no address for voter {id}")));
            };
            let mut conn = Connector::new(addr, self.config.frame_bytes_max);
            let body = Request::Propose {
                precondition: precondition.clone(),
                records: records.clone(),
            };
            match conn.call(id, body, &[], limit).await {
                Ok((Response::Propose(result), _)) => match result {
                    ProposeResult::Committed { index } => {
                        self.leader = Some(id);
                        return Ok(index);
                    }
                    ProposeResult::NotLeader { leader } => {
                        self.leader = leader.filter(|l| *l != id);
                        if self.leader.is_none() {
                            self.current = (self.current + 1) % self.voters.len();
                            tokio::time::sleep(backoff).await;
                        }
                    }
                    ProposeResult::Fenced { last_batch } => {
                        return Err(QuorumError::Fenced { last_batch })
                    }
                    ProposeResult::Timeout { waited_ms } => {
                        return Err(QuorumError::Timeout { waited_ms })
                    }
                    ProposeResult::Failed { reason } => {
                        return Err(QuorumError::Network(format!(
                            "voter {id} refused the append: {reason}"
                        )))
                    }
                },
                // Refused before it was handled, or never connected: nothing
                // was appended, try another voter.
                Ok((Response::Refused { .. }, _)) | Err(CallError::Connect { .. }) => {
                    self.leader = None;
                    self.current = (self.current + 1) % self.voters.len();
                    tokio::time::sleep(backoff).await;
                }
                Ok(_) => {
                    return Err(QuorumError::Network(format!(
                        "voter {id} answered an append oddly"
                    )))
                }
                Err(CallError::TooLarge { bytes, max }) => {
                    return Err(QuorumError::BatchTooLarge { bytes, max })
                }
                Err(e) => {
                    tracing::debug!(voter = id, error = %e, "forwarded append: outcome unknown");
                    return Err(QuorumError::Timeout {
                        waited_ms: limit.as_millis() as u64,
                    });
                }
            }
        }
        Err(QuorumError::NotLeader {
            leader: self.leader,
        })
    }

    /// Tells the leader that broker `node`, at `broker_epoch`, is alive.
    /// Follows `NotLeader` hints and tries the other voters on failures, all
    /// within [`HEARTBEAT_TIMEOUT_MS_MAX`] (or `rpc_timeout_ms` if smaller).
    /// Errors: [`QuorumError::NotLeader`] when no voter leads (e.g. during an
    /// election), [`QuorumError::Network`] when no leader answered in time.
    pub async fn heartbeat(&mut self, node: u64, broker_epoch: i64) -> Result<(), QuorumError> {
        let limit = Duration::from_millis(self.config.rpc_timeout_ms.min(HEARTBEAT_TIMEOUT_MS_MAX));
        let deadline = Instant::now() + limit;
        let backoff = Duration::from_millis(self.config.retry_backoff_ms);
        let mut last_error = None;
        for _ in 0..self.voters.len() * 3 {
            if let Some(l) = self.leader {
                if let Some(i) = self.voters.iter().position(|(id, _)| *id == l) {
                    self.current = i;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let id = self.voters[self.current].0;
            let body = Request::Heartbeat { node, broker_epoch };
            let failed = match self.heartbeat_conns[self.current]
                .call(id, body, &[], left)
                .await
            {
                Ok((Response::Heartbeat(HeartbeatResult::Recorded), _)) => {
                    self.leader = Some(id);
                    return Ok(());
                }
                Ok((Response::Heartbeat(HeartbeatResult::NotLeader { leader }), _)) => {
                    last_error = None;
                    self.leader = leader.filter(|l| *l != id);
                    if self.leader.is_some() {
                        continue;
                    }
                    None
                }
                Ok(_) => Some(format!("voter {id} answered a heartbeat oddly")),
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = failed {
                tracing::debug!(voter = id, error = %e, "heartbeat failed; trying the next voter");
                last_error = Some(e);
                self.leader = None;
            }
            self.current = (self.current + 1) % self.voters.len();
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(backoff.min(left)).await;
        }
        match last_error {
            Some(e) => Err(QuorumError::Network(format!(
                "heartbeat not recorded within {} ms: {e}",
                limit.as_millis()
            ))),
            None => Err(QuorumError::NotLeader {
                leader: self.leader,
            }),
        }
    }

    fn note_leader(&mut self, leader: Option<u64>) {
        self.leader = leader;
        if let Some(l) = leader {
            if let Some(i) = self.voters.iter().position(|(id, _)| *id == l) {
                self.current = i;
            }
        }
    }

    async fn fetch_once(&mut self) -> Result<(), QuorumError> {
        let limit = Duration::from_millis(self.config.rpc_timeout_ms);
        let request = Request::Fetch {
            next: self.cursor.next,
            wait_ms: self.config.fetch_wait_ms,
            bytes_max: self.config.fetch_bytes_max as u64,
        };
        let (id, conn) = &mut self.voters[self.current];
        let (response, _) = conn
            .call(*id, request, &[], limit)
            .await
            .map_err(|e| QuorumError::Network(e.to_string()))?;
        match response {
            Response::Fetch(FetchResponse::Entries {
                proposals,
                next,
                leader,
            }) => {
                for (index, p) in proposals {
                    if let Some(b) = self.cursor.on_proposal(index, p) {
                        self.pending.push_back(Committed::Batch(b));
                    }
                }
                self.cursor.next = self.cursor.next.max(next);
                self.note_leader(leader);
                Ok(())
            }
            Response::Fetch(FetchResponse::SnapshotRequired { leader }) => {
                let snap = self.fetch_snapshot().await?;
                if let Some(step) = self.cursor.on_snapshot(snap) {
                    self.pending.push_back(step);
                }
                self.note_leader(leader);
                Ok(())
            }
            Response::Refused { reason } => {
                Err(QuorumError::Network(format!("voter refused: {reason}")))
            }
            _ => Err(QuorumError::Network("unexpected response to fetch".into())),
        }
    }

    async fn fetch_snapshot(&mut self) -> Result<DecodedSnapshot, QuorumError> {
        let limit = Duration::from_millis(self.config.rpc_timeout_ms);
        let (id, conn) = &mut self.voters[self.current];
        'restart: for _ in 0..SNAPSHOT_RESTARTS_MAX {
            let mut snapshot_id: Option<String> = None;
            let mut bytes: Vec<u8> = Vec::new();
            loop {
                let request = Request::FetchSnapshot {
                    snapshot_id: snapshot_id.clone(),
                    offset: bytes.len() as u64,
                    bytes_max: self.config.fetch_bytes_max as u64,
                };
                let (response, data) = conn
                    .call(*id, request, &[], limit)
                    .await
                    .map_err(|e| QuorumError::Network(e.to_string()))?;
                match response {
                    Response::FetchSnapshot(SnapshotChunk::Chunk {
                        snapshot_id: sid,
                        total_bytes,
                        offset,
                    }) => {
                        if total_bytes > self.config.snapshot_bytes_max as u64 {
                            return Err(QuorumError::Network(format!(
                                "snapshot of {total_bytes} bytes exceeds snapshot_bytes_max"
                            )));
                        }
                        if snapshot_id.as_ref().is_some_and(|s| *s != sid) {
                            continue 'restart;
                        }
                        if offset != bytes.len() as u64
                            || (data.is_empty() && offset < total_bytes)
                            || offset + data.len() as u64 > total_bytes
                        {
                            return Err(QuorumError::Network("snapshot piece out of place".into()));
                        }
                        snapshot_id = Some(sid);
                        bytes.extend_from_slice(&data);
                        if bytes.len() as u64 == total_bytes {
                            return snapshot::decode(&bytes, samsa_metadata::log::RECORD_BYTES_MAX)
                                .map_err(|e| {
                                    QuorumError::Network(format!("fetched snapshot: {e}"))
                                });
                        }
                    }
                    Response::FetchSnapshot(SnapshotChunk::Changed) => continue 'restart,
                    Response::FetchSnapshot(SnapshotChunk::Missing) => {
                        return Err(QuorumError::Network("voter has no snapshot".into()))
                    }
                    Response::Refused { reason } => {
                        return Err(QuorumError::Network(format!("voter refused: {reason}")))
                    }
                    _ => {
                        return Err(QuorumError::Network(
                            "unexpected response to snapshot fetch".into(),
                        ))
                    }
                }
            }
        }
        Err(QuorumError::Network(
            "the voter kept replacing its snapshot".into(),
        ))
    }
}
