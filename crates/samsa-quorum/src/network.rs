//! The client side of the controller RPC: a reconnecting one-request-at-a-time
//! connection ([`Connector`]), and openraft's network traits on top of it.
//!
//! Failures map to openraft's retry semantics: a refused or failed connect is
//! `Unreachable` (openraft backs off by [`PeerClient::backoff`]), a broken or
//! timed-out call is `Network`/`Timeout` (retried at once, on a fresh
//! connection), a request over `frame_bytes_max` with several entries is
//! `PayloadTooLarge` (openraft retries with fewer entries).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::types::TypeConfig;
use crate::wire::{encode_frame, read_frame, Request, RequestEnvelope, Response, WireError};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("request of {bytes} bytes exceeds frame_bytes_max = {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("call to {addr} timed out after {after:?}")]
    Timeout { addr: SocketAddr, after: Duration },
    #[error("call to {addr} failed: {source}")]
    Wire {
        addr: SocketAddr,
        #[source]
        source: WireError,
    },
    #[error("{addr} refused the request: {reason}")]
    Refused { addr: SocketAddr, reason: String },
    #[error("{addr} answered with an unexpected message")]
    Unexpected { addr: SocketAddr },
}

/// One lazily (re)connected connection to one address.
pub(crate) struct Connector {
    addr: SocketAddr,
    conn: Option<TcpStream>,
    next_id: u64,
    /// A call is in flight; if it is still set when the next call starts, the
    /// previous call was cancelled mid-frame and the connection is unusable.
    busy: bool,
    frame_bytes_max: usize,
}

impl Connector {
    pub(crate) fn new(addr: SocketAddr, frame_bytes_max: usize) -> Connector {
        Connector {
            addr,
            conn: None,
            next_id: 1,
            busy: false,
            frame_bytes_max,
        }
    }

    /// Sends `body` to node `to` and waits for its response, all within `limit`.
    pub(crate) async fn call(
        &mut self,
        to: u64,
        body: Request,
        attachment: &[u8],
        limit: Duration,
    ) -> Result<(Response, Vec<u8>), CallError> {
        let addr = self.addr;
        if self.busy {
            self.conn = None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_frame(
            id,
            &RequestEnvelope { to, body },
            attachment,
            self.frame_bytes_max,
        )
        .map_err(|e| match e {
            WireError::TooLarge { bytes, max } => CallError::TooLarge { bytes, max },
            other => CallError::Wire {
                addr,
                source: other,
            },
        })?;
        self.busy = true;
        let result = tokio::time::timeout(limit, self.exchange(id, &frame, limit)).await;
        self.busy = false;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout { addr, after: limit }),
        };
        match result {
            Ok((Response::Refused { reason }, _)) => {
                self.conn = None;
                Err(CallError::Refused { addr, reason })
            }
            Ok(ok) => Ok(ok),
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    async fn exchange(
        &mut self,
        id: u64,
        frame: &[u8],
        limit: Duration,
    ) -> Result<(Response, Vec<u8>), CallError> {
        let addr = self.addr;
        let wire = |source| CallError::Wire { addr, source };
        let stream = match &mut self.conn {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(addr)
                    .await
                    .map_err(|source| CallError::Connect { addr, source })?;
                let _ = s.set_nodelay(true);
                self.conn.insert(s)
            }
        };
        stream
            .write_all(frame)
            .await
            .map_err(|e| wire(WireError::Io(e)))?;
        let reply = read_frame(stream, self.frame_bytes_max, None, limit)
            .await
            .map_err(wire)?
            .ok_or(wire(WireError::Closed))?;
        if reply.id != id {
            return Err(wire(WireError::Malformed(format!(
                "response id {} for request {id}",
                reply.id
            ))));
        }
        let response: Response = reply.decode().map_err(wire)?;
        Ok((response, reply.into_attachment()))
    }
}

/// Creates [`PeerClient`]s for openraft, addressing voters by the configured
/// `controller.quorum.voters` (falling back to the address in the log's
/// membership).
#[derive(Clone)]
pub(crate) struct NetworkFactory {
    pub local: u64,
    pub addrs: Arc<BTreeMap<u64, SocketAddr>>,
    pub frame_bytes_max: usize,
    pub backoff: Duration,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let addr = self
            .addrs
            .get(&target)
            .copied()
            .or_else(|| node.addr.parse().ok());
        PeerClient {
            local: self.local,
            target,
            conn: addr.map(|a| Connector::new(a, self.frame_bytes_max)),
            backoff: self.backoff,
        }
    }
}

/// openraft's connection to one voter.
pub(crate) struct PeerClient {
    local: u64,
    target: u64,
    /// `None` when the voter's address is unknown (then every call is
    /// `Unreachable`).
    conn: Option<Connector>,
    backoff: Duration,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

impl PeerClient {
    async fn call(
        &mut self,
        body: Request,
        attachment: &[u8],
        limit: Duration,
    ) -> Result<(Response, Vec<u8>), CallError> {
        match &mut self.conn {
            Some(c) => c.call(self.target, body, attachment, limit).await,
            None => Err(CallError::Connect {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no address for this voter",
                ),
            }),
        }
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        e: CallError,
        action: RPCTypes,
    ) -> RPCError<u64, BasicNode, E> {
        match e {
            CallError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Timeout { after, .. } => RPCError::Timeout(Timeout {
                action,
                id: self.local,
                target: self.target,
                timeout: after,
            }),
            _ => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<u64, BasicNode, E> {
        let addr = self
            .conn
            .as_ref()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.addr);
        RPCError::Network(NetworkError::new(&CallError::Unexpected { addr }))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        let entries = rpc.entries.len() as u64;
        match self
            .call(Request::AppendEntries(rpc), &[], option.hard_ttl())
            .await
        {
            Ok((Response::AppendEntries(Ok(r)), _)) => Ok(r),
            Ok((Response::AppendEntries(Err(e)), _)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.unexpected()),
            Err(CallError::TooLarge { .. }) if entries > 1 => Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(entries / 2),
            )),
            Err(e) => Err(self.rpc_error(e, RPCTypes::AppendEntries)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<InstallSnapshotError>> {
        let InstallSnapshotRequest {
            vote,
            meta,
            offset,
            data,
            done,
        } = rpc;
        let body = Request::InstallSnapshot {
            vote,
            meta,
            offset,
            done,
        };
        match self.call(body, &data, option.hard_ttl()).await {
            Ok((Response::InstallSnapshot(Ok(r)), _)) => Ok(r),
            Ok((Response::InstallSnapshot(Err(e)), _)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(self.rpc_error(e, RPCTypes::InstallSnapshot)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr> {
        match self.call(Request::Vote(rpc), &[], option.hard_ttl()).await {
            Ok((Response::Vote(Ok(r)), _)) => Ok(r),
            Ok((Response::Vote(Err(e)), _)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(self.rpc_error(e, RPCTypes::Vote)),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.backoff))
    }
}
