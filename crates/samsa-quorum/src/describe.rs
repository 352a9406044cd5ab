//! The quorum as Kafka's DescribeQuorum (KIP-595, KIP-853) reports it, seen
//! from the leader.
//!
//! Offsets are Raft log positions: a replica's log end offset is the index
//! after the last entry it holds (the leader's own log, a follower's matched
//! entry as the leader's replication state records it; 0 when nothing is
//! known), the high watermark the index after the last entry applied on the
//! leader (committed entries are applied before an append returns). openraft
//! does not time its replication messages, so a replica's last contact is the
//! last broker heartbeat the leader received from that node (every node in
//! combined mode, and every broker-only node, heartbeats the leader), and it
//! was caught up then when its log end offset equals the leader's.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// One replica of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaProgress {
    pub node_id: u64,
    /// The index after its last entry (-1: unknown, an observer).
    pub log_end_offset: i64,
    /// When the leader last heard from it (`None`: not since it became leader).
    pub last_contact: Option<Instant>,
    /// Whether its log reached the leader's log end.
    pub caught_up: bool,
}

/// The quorum from the leader's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumDescription {
    pub leader_id: u64,
    /// The Raft term (Kafka's leader epoch).
    pub leader_epoch: u64,
    pub high_watermark: i64,
    /// The voters, leader included, by id.
    pub voters: Vec<ReplicaProgress>,
    /// Nodes that heartbeat the leader but do not vote, by id.
    pub observers: Vec<ReplicaProgress>,
}

/// Builds the description from the leader's Raft state: its id and term,
/// its own log end (`leader_last_index`, Raft's last log index), the last applied index, the
/// voters, each follower's matched index and the heartbeats received.
pub(crate) fn describe(
    (leader_id, term): (u64, u64),
    leader_last_index: Option<u64>,
    applied_index: Option<u64>,
    voters: &[u64],
    matched: &BTreeMap<u64, Option<u64>>,
    heartbeats: &HashMap<u64, (Instant, i64)>,
    now: Instant,
) -> QuorumDescription {
    let end = |index: Option<u64>| index.map_or(0, |i| i as i64 + 1);
    let leader_end = end(leader_last_index);
    let mut voter_ids = voters.to_vec();
    voter_ids.sort_unstable();
    voter_ids.dedup();
    let voters = voter_ids
        .iter()
        .map(|&id| {
            if id == leader_id {
                ReplicaProgress {
                    node_id: id,
                    log_end_offset: leader_end,
                    last_contact: Some(now),
                    caught_up: true,
                }
            } else {
                let log_end_offset = end(matched.get(&id).copied().flatten());
                ReplicaProgress {
                    node_id: id,
                    log_end_offset,
                    last_contact: heartbeats.get(&id).map(|(at, _)| *at),
                    caught_up: log_end_offset >= leader_end,
                }
            }
        })
        .collect();
    let mut observer_ids: Vec<u64> = heartbeats
        .keys()
        .copied()
        .filter(|id| !voter_ids.contains(id))
        .collect();
    observer_ids.sort_unstable();
    let observers = observer_ids
        .into_iter()
        .map(|id| ReplicaProgress {
            node_id: id,
            log_end_offset: -1,
            last_contact: heartbeats.get(&id).map(|(at, _)| *at),
            caught_up: false,
        })
        .collect();
    QuorumDescription {
        leader_id,
        leader_epoch: term,
        high_watermark: end(applied_index),
        voters,
        observers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_observers_and_offsets() {
        let now = Instant::now();
        let matched = BTreeMap::from([(2, Some(9)), (3, None)]);
        let heartbeats = HashMap::from([(2, (now, 1)), (7, (now, 4))]);
        let d = describe(
            (1, 5),
            Some(9),
            Some(8),
            &[3, 1, 2],
            &matched,
            &heartbeats,
            now,
        );
        assert_eq!((d.leader_id, d.leader_epoch, d.high_watermark), (1, 5, 9));
        let voters: Vec<(u64, i64, bool, bool)> = d
            .voters
            .iter()
            .map(|v| {
                (
                    v.node_id,
                    v.log_end_offset,
                    v.caught_up,
                    v.last_contact.is_some(),
                )
            })
            .collect();
        assert_eq!(
            voters,
            vec![
                (1, 10, true, true),
                (2, 10, true, true),
                (3, 0, false, false)
            ]
        );
        assert_eq!(d.observers.len(), 1);
        assert_eq!(
            (d.observers[0].node_id, d.observers[0].log_end_offset),
            (7, -1)
        );
    }
}
