//! The CONTROLLER listener of a voter: serves Raft RPCs from the other voters,
//! Fetch/FetchSnapshot from observers, Propose (an append forwarded by a
//! broker that is not the leader) and Heartbeat (broker liveness, recorded by
//! the leader only; see `quorum`). Frame and message formats: `wire`.
//!
//! Limits: at most `connections_max` connections (more are closed at once);
//! one request at a time per connection; a frame is refused before allocation
//! when over `frame_bytes_max`; a connection idle for `connection_idle_ms_max`
//! or that takes longer than `rpc_timeout_ms` to finish a frame it started is
//! closed; an observer's fetch waits at most `fetch_wait_ms_max` and returns
//! about `fetch_bytes_max` at most (at least one entry).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::raft::InstallSnapshotRequest;
use openraft::Raft;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::committed::{until_true, CommittedReader, ReadOutcome};
use crate::error::QuorumError;
use crate::frame::{FRAME_HEADER_BYTES, STATE_BYTES_MAX};
use crate::quorum::{propose, Liveness, ProposeLimits};
use crate::snapshot;
use crate::types::TypeConfig;
use crate::wire::{
    encode_frame, read_frame, FetchResponse, ProposeResult, Request, RequestEnvelope, Response,
    SnapshotChunk,
};

/// What the server needs.
pub(crate) struct ServerCtx {
    pub limits: ProposeLimits,
    pub id: u64,
    pub raft: Raft<TypeConfig>,
    pub liveness: Arc<Liveness>,
    pub reader: CommittedReader,
    pub frame_bytes_max: usize,
    pub snapshot_bytes_max: usize,
    pub fetch_wait_ms_max: u64,
    pub fetch_bytes_max: usize,
    pub rpc_timeout: Duration,
    pub idle_timeout: Duration,
    pub connections_max: usize,
}

/// A running server; stopping it closes every connection.
pub(crate) struct ServerHandle {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Stops accepting, closes every connection and waits for that.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts serving `listener`.
pub(crate) fn spawn(listener: TcpListener, ctx: Arc<ServerCtx>) -> ServerHandle {
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, ctx, stop_rx));
    ServerHandle {
        stop,
        task: Some(task),
    }
}

async fn accept_loop(listener: TcpListener, ctx: Arc<ServerCtx>, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(ctx.connections_max));
    let mut conns = JoinSet::new();
    let conn_stop = stop.clone();
    loop {
        tokio::select! {
            _ = until_true(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "connections_max reached; closing new connection");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve_connection(stream, ctx.clone(), conn_stop.clone(), permit));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    conns.shutdown().await;
}

async fn serve_connection(
    mut stream: TcpStream,
    ctx: Arc<ServerCtx>,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut stream, ctx.frame_bytes_max, Some(ctx.idle_timeout), ctx.rpc_timeout) => f,
            _ = until_true(&mut stop) => return,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "closing controller connection");
                return;
            }
        };
        let id = frame.id;
        let (response, attachment) = match frame.decode::<RequestEnvelope>() {
            Err(e) => refused(e.to_string()),
            Ok(env) if env.to != ctx.id => {
                refused(format!("this is node {}, not node {}", ctx.id, env.to))
            }
            Ok(env) => handle(&ctx, env.body, frame.into_attachment()).await,
        };
        let bytes = match encode_frame(id, &response, &attachment, ctx.frame_bytes_max) {
            Ok(b) => b,
            Err(e) => match encode_frame(
                id,
                &Response::Refused {
                    reason: e.to_string(),
                },
                &[],
                ctx.frame_bytes_max,
            ) {
                Ok(b) => b,
                Err(_) => return,
            },
        };
        match tokio::time::timeout(ctx.rpc_timeout, stream.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

fn refused(reason: String) -> (Response, Vec<u8>) {
    (Response::Refused { reason }, Vec::new())
}

async fn handle(ctx: &ServerCtx, body: Request, attachment: Vec<u8>) -> (Response, Vec<u8>) {
    match body {
        Request::AppendEntries(rpc) => (
            Response::AppendEntries(ctx.raft.append_entries(rpc).await),
            Vec::new(),
        ),
        Request::Vote(rpc) => (Response::Vote(ctx.raft.vote(rpc).await), Vec::new()),
        Request::InstallSnapshot {
            vote,
            meta,
            offset,
            done,
        } => {
            if offset.saturating_add(attachment.len() as u64) > ctx.snapshot_bytes_max as u64 {
                return refused(format!(
                    "snapshot exceeds snapshot_bytes_max = {}",
                    ctx.snapshot_bytes_max
                ));
            }
            let req = InstallSnapshotRequest {
                vote,
                meta,
                offset,
                data: attachment,
                done,
            };
            (
                Response::InstallSnapshot(ctx.raft.install_snapshot(req).await),
                Vec::new(),
            )
        }
        Request::Fetch {
            next,
            wait_ms,
            bytes_max,
        } => (fetch(ctx, next, wait_ms, bytes_max).await, Vec::new()),
        Request::Propose {
            precondition,
            records,
        } => {
            let result = match propose(&ctx.raft, ctx.limits, precondition, records).await {
                Ok(index) => ProposeResult::Committed { index },
                Err(QuorumError::NotLeader { leader }) => ProposeResult::NotLeader { leader },
                Err(QuorumError::Fenced { last_batch }) => ProposeResult::Fenced { last_batch },
                Err(QuorumError::Timeout { waited_ms }) => ProposeResult::Timeout { waited_ms },
                Err(e) => ProposeResult::Failed {
                    reason: e.to_string(),
                },
            };
            (Response::Propose(result), Vec::new())
        }
        Request::Heartbeat { node, broker_epoch } => (
            Response::Heartbeat(ctx.liveness.heartbeat(&ctx.raft, node, broker_epoch)),
            Vec::new(),
        ),
        Request::FetchSnapshot {
            snapshot_id,
            offset,
            bytes_max,
        } => {
            let path = ctx.reader.sm.snapshot_path();
            let bytes_max = (bytes_max as usize).clamp(1, ctx.fetch_bytes_max);
            let read = ctx
                .reader
                .sm
                .disk
                .run(move || read_snapshot_chunk(path, snapshot_id, offset, bytes_max))
                .await;
            match read {
                Ok(Ok((chunk, data))) => (Response::FetchSnapshot(chunk), data),
                Ok(Err(e)) | Err(e) => refused(e.to_string()),
            }
        }
    }
}

fn leader(ctx: &ServerCtx) -> Option<u64> {
    ctx.raft.metrics().borrow().current_leader
}

/// Serves an observer's fetch: committed proposals from `next`, waiting up to
/// the (capped) `wait_ms` for some to be applied.
async fn fetch(ctx: &ServerCtx, next: u64, wait_ms: u64, bytes_max: u64) -> Response {
    let deadline = Instant::now() + Duration::from_millis(wait_ms.min(ctx.fetch_wait_ms_max));
    let bytes_max = (bytes_max as usize).clamp(1, ctx.fetch_bytes_max);
    let mut applied = ctx.reader.sm.applied();
    loop {
        applied.borrow_and_update();
        match ctx.reader.read(next, bytes_max).await {
            Err(e) => {
                return Response::Refused {
                    reason: e.to_string(),
                }
            }
            Ok(ReadOutcome::NeedSnapshot) => {
                return Response::Fetch(FetchResponse::SnapshotRequired {
                    leader: leader(ctx),
                })
            }
            Ok(ReadOutcome::Entries { proposals, next: n }) => {
                if n > next || Instant::now() >= deadline {
                    return Response::Fetch(FetchResponse::Entries {
                        proposals,
                        next: n,
                        leader: leader(ctx),
                    });
                }
            }
        }
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Ok(Ok(())) | Err(_) => {}
            Ok(Err(_)) => {
                return Response::Refused {
                    reason: "node stopping".into(),
                }
            }
        }
    }
}

/// Reads one piece of the snapshot file, checking that it is still the
/// snapshot `snapshot_id` (blocking).
fn read_snapshot_chunk(
    path: PathBuf,
    snapshot_id: Option<String>,
    offset: u64,
    bytes_max: usize,
) -> Result<(SnapshotChunk, Vec<u8>), QuorumError> {
    let mut f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((SnapshotChunk::Missing, Vec::new()))
        }
        Err(e) => return Err(QuorumError::io(&path)(e)),
    };
    let total = f.metadata().map_err(QuorumError::io(&path))?.len();
    let mut head = vec![0u8; FRAME_HEADER_BYTES];
    f.read_exact(&mut head).map_err(QuorumError::io(&path))?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > STATE_BYTES_MAX || (FRAME_HEADER_BYTES + len) as u64 > total {
        return Err(QuorumError::corrupt(&path, "snapshot header length"));
    }
    head.resize(FRAME_HEADER_BYTES + len, 0);
    f.read_exact(&mut head[FRAME_HEADER_BYTES..])
        .map_err(QuorumError::io(&path))?;
    let (header, _) = snapshot::decode_header(&head).map_err(|e| QuorumError::corrupt(&path, e))?;
    let id = header.meta.snapshot_id;
    if snapshot_id.is_some_and(|want| want != id) || offset > total {
        return Ok((SnapshotChunk::Changed, Vec::new()));
    }
    let n = (bytes_max as u64).min(total - offset) as usize;
    let mut data = vec![0u8; n];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut data))
        .map_err(QuorumError::io(&path))?;
    Ok((
        SnapshotChunk::Chunk {
            snapshot_id: id,
            total_bytes: total,
            offset,
        },
        data,
    ))
}
