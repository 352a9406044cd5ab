//! Settings of a quorum voter ([`QuorumConfig`]) and of a non-voting follower
//! ([`ObserverConfig`]), their defaults, validation, and the parser for Kafka's
//! `controller.quorum.voters` syntax (`1@host:port,2@host:port,...`).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::error::QuorumError;

/// Bytes a wire frame needs beyond its largest payload (ids, JSON envelope,
/// the Raft request around a log entry).
pub(crate) const FRAME_OVERHEAD_BYTES: usize = 64 * 1024;

/// The configuration of one controller voter.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// This node's id; must be one of `voters`.
    pub node_id: u64,
    /// Every voter's id and CONTROLLER listener address
    /// (`controller.quorum.voters`). Static: the same on every node.
    pub voters: BTreeMap<u64, SocketAddr>,
    /// Where this node's CONTROLLER listener binds (usually `voters[node_id]`,
    /// or a wildcard address with the same port).
    pub listen: SocketAddr,
    /// Directory of the Raft log, vote and snapshot (created if missing).
    pub dir: PathBuf,
    /// A follower that hears no leader for a random time in
    /// `[min, max]` ms starts an election.
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    /// How often the leader sends heartbeats; also the time limit of one
    /// AppendEntries round trip (openraft's rule). Must be below the minimum
    /// election timeout.
    pub heartbeat_interval_ms: u64,
    /// Time limit for connecting to a peer and for a peer to finish sending a
    /// frame it has started.
    pub rpc_timeout_ms: u64,
    /// How long [`crate::RaftQuorum::append`] waits for its batch to commit.
    pub append_timeout_ms: u64,
    /// A snapshot is taken after this many log entries since the previous one.
    pub snapshot_log_entries: u64,
    /// Log entries kept behind a snapshot so that slightly lagging followers
    /// catch up from the log instead of a snapshot transfer.
    pub snapshot_kept_log_entries: u64,
    /// Largest serialized batch one append may carry.
    pub proposal_bytes_max: usize,
    /// Largest wire frame this node sends or accepts.
    pub frame_bytes_max: usize,
    /// Largest snapshot this node accepts from a leader (the snapshot is held
    /// in memory while it is received).
    pub snapshot_bytes_max: usize,
    /// Size of the pieces a snapshot is sent in.
    pub snapshot_chunk_bytes_max: usize,
    /// Largest number of log entries in one AppendEntries request.
    pub append_entries_max: u64,
    /// Concurrent inbound connections (peers and observers) this node serves.
    pub connections_max: usize,
    /// Longest time an observer's fetch may wait for new records.
    pub fetch_wait_ms_max: u64,
    /// Largest payload of one fetch response to an observer or subscriber.
    pub fetch_bytes_max: usize,
    /// An inbound connection idle for this long is closed.
    pub connection_idle_ms_max: u64,
}

impl QuorumConfig {
    /// A config with the defaults below for everything but identity and place.
    pub fn new(
        node_id: u64,
        voters: BTreeMap<u64, SocketAddr>,
        listen: SocketAddr,
        dir: impl Into<PathBuf>,
    ) -> QuorumConfig {
        QuorumConfig {
            node_id,
            voters,
            listen,
            dir: dir.into(),
            election_timeout_ms_min: 1_000,
            election_timeout_ms_max: 2_000,
            heartbeat_interval_ms: 200,
            rpc_timeout_ms: 2_000,
            append_timeout_ms: 5_000,
            snapshot_log_entries: 1_000,
            snapshot_kept_log_entries: 100,
            proposal_bytes_max: 8 << 20,
            frame_bytes_max: 16 << 20,
            snapshot_bytes_max: 256 << 20,
            snapshot_chunk_bytes_max: 1 << 20,
            append_entries_max: 300,
            connections_max: 256,
            fetch_wait_ms_max: 5_000,
            fetch_bytes_max: 4 << 20,
            connection_idle_ms_max: 60_000,
        }
    }

    /// Checks every setting and their relations.
    pub fn validate(&self) -> Result<(), QuorumError> {
        let bad = |m: String| Err(QuorumError::Config(m));
        if self.voters.is_empty() {
            return bad("voters is empty".into());
        }
        if !self.voters.contains_key(&self.node_id) {
            return bad(format!(
                "node_id {} is not one of the voters {:?}",
                self.node_id,
                self.voters.keys().collect::<Vec<_>>()
            ));
        }
        if self.heartbeat_interval_ms == 0 {
            return bad("heartbeat_interval_ms must be > 0".into());
        }
        if self.election_timeout_ms_min <= self.heartbeat_interval_ms {
            return bad("election_timeout_ms_min must exceed heartbeat_interval_ms".into());
        }
        if self.election_timeout_ms_max <= self.election_timeout_ms_min {
            return bad("election_timeout_ms_max must exceed election_timeout_ms_min".into());
        }
        if self.rpc_timeout_ms == 0 || self.append_timeout_ms == 0 {
            return bad("rpc_timeout_ms and append_timeout_ms must be > 0".into());
        }
        if self.snapshot_log_entries == 0 || self.append_entries_max == 0 {
            return bad("snapshot_log_entries and append_entries_max must be > 0".into());
        }
        if self.frame_bytes_max > u32::MAX as usize {
            return bad("frame_bytes_max must fit in 32 bits".into());
        }
        if self.proposal_bytes_max == 0
            || self.proposal_bytes_max + FRAME_OVERHEAD_BYTES > self.frame_bytes_max
        {
            return bad(format!(
                "proposal_bytes_max ({}) + {FRAME_OVERHEAD_BYTES} must be > 0 and <= frame_bytes_max ({})",
                self.proposal_bytes_max, self.frame_bytes_max
            ));
        }
        if self.snapshot_chunk_bytes_max == 0
            || self.snapshot_chunk_bytes_max + FRAME_OVERHEAD_BYTES > self.frame_bytes_max
        {
            return bad("snapshot_chunk_bytes_max + 64 KiB must be <= frame_bytes_max".into());
        }
        if self.fetch_bytes_max == 0
            || self.fetch_bytes_max + FRAME_OVERHEAD_BYTES > self.frame_bytes_max
        {
            return bad("fetch_bytes_max + 64 KiB must be <= frame_bytes_max".into());
        }
        if self.snapshot_bytes_max == 0 || self.connections_max == 0 {
            return bad("snapshot_bytes_max and connections_max must be > 0".into());
        }
        Ok(())
    }
}

/// The configuration of an [`crate::Observer`]: a broker that follows the
/// committed metadata log without voting.
#[derive(Clone, Debug)]
pub struct ObserverConfig {
    /// The voters to fetch from (`controller.quorum.voters`).
    pub voters: BTreeMap<u64, SocketAddr>,
    /// How long one fetch may wait at a voter for new records.
    pub fetch_wait_ms: u64,
    /// Time limit for one request, including `fetch_wait_ms`.
    pub rpc_timeout_ms: u64,
    /// Pause before trying the next voter after a failure.
    pub retry_backoff_ms: u64,
    /// Time limit for one forwarded append (should exceed the voters'
    /// `append_timeout_ms`).
    pub propose_timeout_ms: u64,
    /// Largest payload asked for in one fetch.
    pub fetch_bytes_max: usize,
    /// Largest wire frame accepted.
    pub frame_bytes_max: usize,
    /// Largest snapshot accepted (held in memory while fetched).
    pub snapshot_bytes_max: usize,
}

impl ObserverConfig {
    /// Defaults for everything but the voters.
    pub fn new(voters: BTreeMap<u64, SocketAddr>) -> ObserverConfig {
        ObserverConfig {
            voters,
            fetch_wait_ms: 500,
            rpc_timeout_ms: 5_000,
            retry_backoff_ms: 100,
            propose_timeout_ms: 10_000,
            fetch_bytes_max: 4 << 20,
            frame_bytes_max: 16 << 20,
            snapshot_bytes_max: 256 << 20,
        }
    }

    /// Checks every setting and their relations.
    pub fn validate(&self) -> Result<(), QuorumError> {
        let bad = |m: &str| Err(QuorumError::Config(m.into()));
        if self.voters.is_empty() {
            return bad("observer voters is empty");
        }
        if self.rpc_timeout_ms <= self.fetch_wait_ms {
            return bad("observer rpc_timeout_ms must exceed fetch_wait_ms");
        }
        if self.propose_timeout_ms == 0 {
            return bad("observer propose_timeout_ms must be > 0");
        }
        if self.frame_bytes_max > u32::MAX as usize
            || self.fetch_bytes_max == 0
            || self.fetch_bytes_max + FRAME_OVERHEAD_BYTES > self.frame_bytes_max
        {
            return bad("observer fetch_bytes_max + 64 KiB must be <= frame_bytes_max < 4 GiB");
        }
        if self.snapshot_bytes_max == 0 {
            return bad("observer snapshot_bytes_max must be > 0");
        }
        Ok(())
    }
}

/// Parses Kafka's `controller.quorum.voters`: `id@host:port` separated by
/// commas. Host names are resolved once, here (the first address wins).
pub fn parse_voters(value: &str) -> Result<BTreeMap<u64, SocketAddr>, QuorumError> {
    let mut voters = BTreeMap::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((id, endpoint)) = part.split_once('@') else {
            return Err(QuorumError::Config(format!(
                "voter '{part}' is not of the form id@host:port"
            )));
        };
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| QuorumError::Config(format!("voter id '{id}' is not a number")))?;
        let addr = endpoint
            .trim()
            .to_socket_addrs()
            .map_err(|e| QuorumError::Config(format!("voter {id} address '{endpoint}': {e}")))?
            .next()
            .ok_or_else(|| {
                QuorumError::Config(format!(
                    "voter {id} address '{endpoint}' resolves to nothing"
                ))
            })?;
        if voters.insert(id, addr).is_some() {
            return Err(QuorumError::Config(format!("voter id {id} appears twice")));
        }
    }
    if voters.is_empty() {
        return Err(QuorumError::Config(
            "controller.quorum.voters is empty".into(),
        ));
    }
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_voter_syntax() {
        let v = parse_voters("1@127.0.0.1:9093, 2@127.0.0.1:9094,3@127.0.0.1:9095").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[&2], "127.0.0.1:9094".parse().unwrap());
        assert!(parse_voters("").is_err());
        assert!(parse_voters("x@127.0.0.1:1").is_err());
        assert!(parse_voters("1@127.0.0.1:1,1@127.0.0.1:2").is_err());
        assert!(parse_voters("127.0.0.1:1").is_err());
    }

    #[test]
    fn validation_catches_bad_relations() {
        let voters = parse_voters("1@127.0.0.1:1").unwrap();
        let ok = QuorumConfig::new(1, voters.clone(), voters[&1], "/tmp/x");
        ok.validate().unwrap();
        let mut c = ok.clone();
        c.node_id = 2;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.election_timeout_ms_min = c.heartbeat_interval_ms;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.proposal_bytes_max = c.frame_bytes_max;
        assert!(c.validate().is_err());
        ObserverConfig::new(voters).validate().unwrap();
    }
}
