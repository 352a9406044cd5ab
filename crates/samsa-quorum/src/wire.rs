//! The controller RPC protocol: frames on a TCP connection, and the messages
//! they carry (Raft's AppendEntries/Vote/InstallSnapshot between voters,
//! Fetch/FetchSnapshot for observers, Propose for appends forwarded to the
//! leader, Heartbeat for broker liveness).
//!
//! # Frame layout
//!
//! ```text
//! offset  size  field
//! 0       4     frame length N (u32, big endian): the bytes after this field;
//!               12 <= N <= frame_bytes_max, checked before anything is allocated
//! 4       8     request id (u64, big endian); a response repeats its request's id
//! 12      4     JSON length J (u32, big endian), J <= N - 12
//! 16      J     the message as UTF-8 JSON: a `RequestEnvelope` or a `Response`
//! 16+J    N-12-J  binary attachment: snapshot bytes for InstallSnapshot and
//!               FetchSnapshot chunks, empty otherwise
//! ```
//!
//! One connection carries one request at a time: the client writes a request
//! frame and reads exactly one response frame with the same id; a response with
//! another id, a frame over the limit, or a timeout closes the connection (the
//! client reconnects on its next call). Every request names its target node
//! id, so a misconfigured address is refused rather than served by the wrong
//! node.
//!
//! Why JSON: openraft's message types serialize with serde out of the box, the
//! metadata records are already JSON on disk, the volume is small (metadata,
//! not partition data), and frames stay readable in a packet capture. The one
//! bulky payload, snapshot bytes, travels as a raw attachment instead of a JSON
//! number array. No checksum: TCP's suffices on the wire, and everything
//! stored is re-checksummed by the disk formats.
//!
//! # Messages
//!
//! | request | sent by | answered with |
//! |---|---|---|
//! | `AppendEntries`, `Vote`, `InstallSnapshot` | voters (openraft) | openraft's result |
//! | `Fetch { next, wait_ms, bytes_max }` | observers | [`FetchResponse`] |
//! | `FetchSnapshot { snapshot_id, offset, bytes_max }` | observers | [`SnapshotChunk`] + bytes |
//! | `Propose { precondition, records }` | brokers, to the leader | [`ProposeResult`] |
//! | `Heartbeat { node, broker_epoch }` | brokers, to the leader | [`HeartbeatResult`] |
//!
//! Any request may instead be answered `Refused { reason }` (wrong target
//! node, malformed, over a limit). A JSON heartbeat request looks like
//! `{"to":1,"body":{"Heartbeat":{"node":7,"broker_epoch":42}}}` and its answer
//! `{"Heartbeat":"Recorded"}` or `{"Heartbeat":{"NotLeader":{"leader":2}}}`.

use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use samsa_metadata::MetadataRecord;

use crate::types::{Precondition, Proposal, SnapshotMeta, TypeConfig, Vote};

/// Bytes of the fixed fields after the length: request id and JSON length.
const FIXED_BYTES: usize = 12;

/// A request and the node it is meant for.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RequestEnvelope {
    pub to: u64,
    pub body: Request,
}

/// Requests a voter serves.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    /// One chunk of a snapshot; the bytes are the attachment.
    InstallSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        offset: u64,
        done: bool,
    },
    /// Observer: committed proposals from log index `next`, waiting up to
    /// `wait_ms` for new ones.
    Fetch {
        next: u64,
        wait_ms: u64,
        bytes_max: u64,
    },
    /// Observer: a piece of the current snapshot file. `snapshot_id` (after the
    /// first piece) makes sure all pieces come from the same snapshot.
    FetchSnapshot {
        snapshot_id: Option<String>,
        offset: u64,
        bytes_max: u64,
    },
    /// Any broker: append this batch (the receiver must lead).
    Propose {
        precondition: Precondition,
        records: Vec<MetadataRecord>,
    },
    /// Any broker: broker `node` (at `broker_epoch`) is alive. The receiver
    /// must lead; it records the time of arrival in memory only (nothing is
    /// replicated), so a new leader starts with an empty table.
    Heartbeat {
        node: u64,
        broker_epoch: i64,
    },
}

/// The outcome of a forwarded append ([`Request::Propose`]).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ProposeResult {
    Committed {
        index: u64,
    },
    NotLeader {
        leader: Option<u64>,
    },
    Fenced {
        last_batch: Option<u64>,
    },
    /// Not committed in time; the outcome is unknown.
    Timeout {
        waited_ms: u64,
    },
    /// Refused (too large, empty, node stopping); not committed.
    Failed {
        reason: String,
    },
}

/// The outcome of a [`Request::Heartbeat`].
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum HeartbeatResult {
    /// The leader recorded it.
    Recorded,
    /// The receiver does not lead; `leader` is the one it knows of.
    NotLeader { leader: Option<u64> },
}

/// Responses, one per request kind.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Fetch(FetchResponse),
    FetchSnapshot(SnapshotChunk),
    Propose(ProposeResult),
    Heartbeat(HeartbeatResult),
    /// The request was refused (wrong target, malformed, over a limit).
    Refused {
        reason: String,
    },
}

/// The answer to [`Request::Fetch`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FetchResponse {
    /// Proposals at indexes in `[request.next, next)`; other entries are skipped.
    Entries {
        proposals: Vec<(u64, Proposal)>,
        next: u64,
        leader: Option<u64>,
    },
    /// The position is no longer in the log: fetch the snapshot.
    SnapshotRequired { leader: Option<u64> },
}

/// The answer to [`Request::FetchSnapshot`]; the bytes are the attachment.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SnapshotChunk {
    Chunk {
        snapshot_id: String,
        total_bytes: u64,
        offset: u64,
    },
    /// The snapshot was replaced since the first piece: start again.
    Changed,
    /// This voter has no snapshot.
    Missing,
}

/// Why a frame could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("connection I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed by the peer")]
    Closed,
    #[error("frame of {bytes} bytes exceeds frame_bytes_max = {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("timed out")]
    Timeout,
}

/// A received frame.
#[derive(Debug)]
pub(crate) struct RawFrame {
    pub id: u64,
    body: Vec<u8>,
    json_len: usize,
}

impl RawFrame {
    pub(crate) fn decode<T: DeserializeOwned>(&self) -> Result<T, WireError> {
        serde_json::from_slice(&self.body[..self.json_len])
            .map_err(|e| WireError::Malformed(e.to_string()))
    }

    pub(crate) fn into_attachment(mut self) -> Vec<u8> {
        self.body.drain(..self.json_len);
        self.body
    }
}

/// Encodes one frame.
pub(crate) fn encode_frame<T: Serialize>(
    id: u64,
    message: &T,
    attachment: &[u8],
    frame_bytes_max: usize,
) -> Result<Vec<u8>, WireError> {
    let json = serde_json::to_vec(message).map_err(|e| WireError::Malformed(e.to_string()))?;
    let n = FIXED_BYTES + json.len() + attachment.len();
    if n > frame_bytes_max || n > u32::MAX as usize {
        return Err(WireError::TooLarge {
            bytes: n,
            max: frame_bytes_max,
        });
    }
    let mut out = Vec::with_capacity(4 + n);
    out.extend_from_slice(&(n as u32).to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(attachment);
    Ok(out)
}

/// Reads one frame. Waits up to `idle` (if given) for its first byte, then up
/// to `rest` for the remainder. `Ok(None)` when the peer closed the connection
/// cleanly between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    frame_bytes_max: usize,
    idle: Option<Duration>,
    rest: Duration,
) -> Result<Option<RawFrame>, WireError> {
    let mut len = [0u8; 4];
    let first = async {
        match r.read(&mut len).await {
            Ok(0) => Ok(0),
            Ok(n) => Ok(n),
            Err(e) => Err(WireError::Io(e)),
        }
    };
    let got = match idle {
        Some(d) => tokio::time::timeout(d, first)
            .await
            .map_err(|_| WireError::Timeout)??,
        None => first.await?,
    };
    if got == 0 {
        return Ok(None);
    }
    let body = async {
        r.read_exact(&mut len[got..]).await?;
        let n = u32::from_be_bytes(len) as usize;
        if n > frame_bytes_max {
            return Err(WireError::TooLarge {
                bytes: n,
                max: frame_bytes_max,
            });
        }
        if n < FIXED_BYTES {
            return Err(WireError::Malformed(format!(
                "frame length {n} below {FIXED_BYTES}"
            )));
        }
        let mut fixed = [0u8; FIXED_BYTES];
        r.read_exact(&mut fixed).await?;
        let id = u64::from_be_bytes([
            fixed[0], fixed[1], fixed[2], fixed[3], fixed[4], fixed[5], fixed[6], fixed[7],
        ]);
        let json_len = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]) as usize;
        if json_len > n - FIXED_BYTES {
            return Err(WireError::Malformed(format!(
                "JSON length {json_len} exceeds the frame"
            )));
        }
        let mut body = vec![0u8; n - FIXED_BYTES];
        r.read_exact(&mut body).await?;
        Ok(RawFrame { id, body, json_len })
    };
    match tokio::time::timeout(rest, body).await {
        Ok(Ok(f)) => Ok(Some(f)),
        Ok(Err(WireError::Io(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(WireError::Closed)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(WireError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn frame_roundtrip_with_attachment() {
        let msg = Request::Fetch {
            next: 5,
            wait_ms: 10,
            bytes_max: 100,
        };
        let bytes = encode_frame(42, &msg, b"xyz", 1 << 20).unwrap();
        let mut r = &bytes[..];
        let f = read_frame(&mut r, 1 << 20, Some(SEC), SEC)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.id, 42);
        assert!(matches!(
            f.decode::<Request>().unwrap(),
            Request::Fetch { next: 5, .. }
        ));
        assert_eq!(f.into_attachment(), b"xyz");
        assert!(read_frame(&mut r, 1 << 20, None, SEC)
            .await
            .unwrap()
            .is_none());
    }

    #[test]
    fn heartbeat_messages_have_the_documented_json() {
        let request = RequestEnvelope {
            to: 1,
            body: Request::Heartbeat {
                node: 7,
                broker_epoch: 42,
            },
        };
        let json = r#"{"to":1,"body":{"Heartbeat":{"node":7,"broker_epoch":42}}}"#;
        assert_eq!(serde_json::to_string(&request).unwrap(), json);
        assert!(matches!(
            serde_json::from_str::<RequestEnvelope>(json).unwrap().body,
            Request::Heartbeat {
                node: 7,
                broker_epoch: 42
            }
        ));
        for (response, json) in [
            (HeartbeatResult::Recorded, r#"{"Heartbeat":"Recorded"}"#),
            (
                HeartbeatResult::NotLeader { leader: Some(2) },
                r#"{"Heartbeat":{"NotLeader":{"leader":2}}}"#,
            ),
        ] {
            assert_eq!(
                serde_json::to_string(&Response::Heartbeat(response)).unwrap(),
                json
            );
            assert!(matches!(
                serde_json::from_str::<Response>(json).unwrap(),
                Response::Heartbeat(_)
            ));
        }
    }

    #[tokio::test]
    async fn oversized_and_malformed_frames_are_refused_before_allocation() {
        let mut r = &[0xffu8, 0xff, 0xff, 0xff, 0, 0][..];
        assert!(matches!(
            read_frame(&mut r, 1 << 20, None, SEC).await,
            Err(WireError::TooLarge { .. })
        ));
        let mut bad = 20u32.to_be_bytes().to_vec();
        bad.extend_from_slice(&7u64.to_be_bytes());
        bad.extend_from_slice(&100u32.to_be_bytes());
        bad.extend_from_slice(&[0; 8]);
        let mut r = &bad[..];
        assert!(matches!(
            read_frame(&mut r, 1 << 20, None, SEC).await,
            Err(WireError::Malformed(_))
        ));
        // A frame cut short is an error, not a clean close.
        let bytes = encode_frame(1, &"x", b"", 1 << 20).unwrap();
        for cut in 1..bytes.len() {
            let mut r = &bytes[..cut];
            assert!(
                read_frame(&mut r, 1 << 20, None, SEC).await.is_err(),
                "cut {cut}"
            );
        }
        assert!(matches!(
            encode_frame(1, &"x".repeat(100), b"", 50),
            Err(WireError::TooLarge { .. })
        ));
    }
}
