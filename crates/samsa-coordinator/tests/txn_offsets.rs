//! TxnOffsetCommit: pending transactional offsets, the markers that end them,
//! `require_stable`, and replay of transactional batches and markers.

mod common;

use common::*;
use proptest::prelude::*;
use samsa_coordinator::*;

fn txn_req(
    group: &str,
    pid: i64,
    topic: &str,
    partition: i32,
    offset: i64,
) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest {
        api_version: 3,
        transactional_id: "tx".into(),
        group_id: group.into(),
        producer_id: pid,
        producer_epoch: 2,
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        topics: commit_req(group, "", -1, topic, partition, offset).topics,
    }
}

fn txn_commit(h: &mut Harness, req: TxnOffsetCommitRequest) -> i16 {
    let t = h.token();
    let outs = h.c.txn_offset_commit(req, h.t(), t);
    h.absorb(outs);
    match h.replies.get(&t.0) {
        Some(Response::OffsetCommit(r)) => r.topics[0].partitions[0].error_code,
        other => panic!("unexpected {other:?}"),
    }
}

/// OffsetFetch v8 of one partition with `require_stable`.
fn fetch_stable(c: &Coordinator, group: &str, topic: &str, partition: i32) -> (i64, i16) {
    let r = c.offset_fetch(&OffsetFetchRequest {
        api_version: 8,
        groups: vec![OffsetFetchGroup {
            group_id: group.into(),
            member_id: None,
            member_epoch: -1,
            topics: Some(vec![OffsetFetchTopic {
                name: topic.into(),
                partition_indexes: vec![partition],
            }]),
        }],
        require_stable: true,
    });
    let p = &r.groups[0].topics[0].partitions[0];
    (p.committed_offset, p.error_code)
}

fn assert_replay_matches(h: &Harness) {
    let replayed = h.replayed_log();
    assert_eq!(replayed.durable_state(), h.c.durable_state());
}

#[test]
fn txn_offsets_stay_pending_until_a_commit_marker() {
    let mut h = Harness::default_config();
    let p = h.c.partition_for("g");
    h.commit(commit_req("g", "", -1, "t", 0, 10));
    assert_eq!(txn_commit(&mut h, txn_req("g", 7, "t", 0, 20)), codes::NONE);

    // The batch is the producer's transactional batch.
    let txn = h.log.iter().rev().find_map(|o| match o {
        Output::Append { transaction, .. } => Some(*transaction),
        _ => None,
    });
    assert_eq!(
        txn,
        Some(Some(TxnProducer {
            producer_id: 7,
            producer_epoch: 2
        }))
    );
    // Invisible: the last committed offset; require_stable: UNSTABLE_OFFSET_COMMIT.
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (10, codes::NONE));
    assert_eq!(
        fetch_stable(&h.c, "g", "t", 0),
        (-1, codes::UNSTABLE_OFFSET_COMMIT)
    );
    assert_eq!(fetch_stable(&h.c, "g", "t", 1), (-1, codes::NONE));
    assert_replay_matches(&h);

    // Another producer's marker, or one in another partition, changes nothing.
    h.marker(p, 8, true);
    h.marker((p + 1) % h.c.config().offsets_topic_num_partitions, 7, true);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (10, codes::NONE));

    h.marker(p, 7, true);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (20, codes::NONE));
    assert_eq!(fetch_stable(&h.c, "g", "t", 0), (20, codes::NONE));
    assert_replay_matches(&h);
}

#[test]
fn an_abort_marker_drops_pending_offsets() {
    let mut h = Harness::default_config();
    let p = h.c.partition_for("g");
    assert_eq!(txn_commit(&mut h, txn_req("g", 7, "t", 0, 20)), codes::NONE);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (-1, codes::NONE));
    h.marker(p, 7, false);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (-1, codes::NONE));
    assert_eq!(fetch_stable(&h.c, "g", "t", 0), (-1, codes::NONE));
    // A later commit marker of the same producer has nothing left to commit.
    h.marker(p, 7, true);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (-1, codes::NONE));
    assert_replay_matches(&h);
}

#[test]
fn the_most_recent_record_wins_when_plain_and_txn_commits_mix() {
    let mut h = Harness::default_config();
    let p = h.c.partition_for("g");
    // Transactional record first, plain commit after it: the plain one stays.
    txn_commit(&mut h, txn_req("g", 7, "t", 0, 20));
    h.commit(commit_req("g", "", -1, "t", 0, 30));
    h.marker(p, 7, true);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (30, codes::NONE));
    // Plain first, transactional after: the transaction's offset wins.
    h.commit(commit_req("g", "", -1, "t", 1, 5));
    txn_commit(&mut h, txn_req("g", 9, "t", 1, 6));
    h.marker(p, 9, true);
    assert_eq!(fetch_one(&h.c, "g", "t", 1), (6, codes::NONE));
    assert_replay_matches(&h);
}

#[test]
fn txn_commits_are_validated_like_offset_commits() {
    let mut h = Harness::default_config();
    // A group that does not exist, with a generation.
    let mut r = txn_req("nope", 7, "t", 0, 1);
    r.generation_id = 3;
    r.member_id = "m".into();
    assert_eq!(txn_commit(&mut h, r), codes::ILLEGAL_GENERATION);

    // A classic group with a member.
    let t = h.join(join_req("g", "", "a", &["t"]));
    let id = h.join_reply(t).expect("id").member_id;
    let t = h.join(join_req("g", &id, "a", &["t"]));
    h.advance_to(h.now + 5_000);
    let generation = h.join_reply(t).expect("joined").generation_id;
    h.sync(sync_req("g", &id, generation, &[(id.as_str(), b"x")]));

    let mut stale = txn_req("g", 7, "t", 0, 1);
    stale.generation_id = generation + 1;
    stale.member_id = id.clone();
    assert_eq!(txn_commit(&mut h, stale), codes::ILLEGAL_GENERATION);
    let mut ghost = txn_req("g", 7, "t", 0, 1);
    ghost.generation_id = generation;
    ghost.member_id = "ghost".into();
    assert_eq!(txn_commit(&mut h, ghost), codes::UNKNOWN_MEMBER_ID);
    let mut ok = txn_req("g", 7, "t", 0, 1);
    ok.generation_id = generation;
    ok.member_id = id.clone();
    assert_eq!(txn_commit(&mut h, ok), codes::NONE);
    // v0–v2 carry no member: accepted although the group has members (an
    // OffsetCommit without a member is refused there).
    let mut v2 = txn_req("g", 8, "t", 1, 1);
    v2.api_version = 2;
    assert_eq!(txn_commit(&mut h, v2), codes::NONE);
    assert_eq!(
        h.commit(commit_req("g", "", -1, "t", 1, 1)).topics[0].partitions[0].error_code,
        codes::UNKNOWN_MEMBER_ID
    );

    let mut big = txn_req("g", 7, "t", 0, 1);
    big.topics[0].partitions[0].committed_metadata = Some("x".repeat(10_000));
    assert_eq!(txn_commit(&mut h, big), codes::OFFSET_METADATA_TOO_LARGE);
    assert_eq!(
        txn_commit(&mut h, txn_req("", 7, "t", 0, 1)),
        codes::INVALID_GROUP_ID
    );
}

#[test]
fn expiry_keeps_partitions_with_pending_offsets_and_their_group() {
    let mut h = Harness::new(CoordinatorConfig {
        offsets_retention_minutes: 1,
        offsets_retention_check_interval_ms: 10_000,
        ..CoordinatorConfig::default()
    });
    let p = h.c.partition_for("g");
    h.commit(commit_req("g", "", -1, "t", 0, 10));
    h.commit(commit_req("g", "", -1, "t", 1, 11));
    txn_commit(&mut h, txn_req("g", 7, "t", 0, 20));
    h.advance_to(h.now + 120_000);
    // Partition 1 expired; partition 0 has a pending offset and stays, with the group.
    assert_eq!(fetch_one(&h.c, "g", "t", 1), (-1, codes::NONE));
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (10, codes::NONE));
    assert!(h.c.group_state("g").is_some());
    h.marker(p, 7, true);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (20, codes::NONE));
    assert_replay_matches(&h);
}

#[test]
fn deleting_a_group_drops_its_pending_offsets() {
    let mut h = Harness::default_config();
    let p = h.c.partition_for("g");
    txn_commit(&mut h, txn_req("g", 7, "t", 0, 20));
    assert_eq!(h.delete_groups(&["g"]).results[0].error_code, codes::NONE);
    assert_eq!(fetch_stable(&h.c, "g", "t", 0), (-1, codes::NONE));
    h.marker(p, 7, true);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (-1, codes::NONE));
    assert_replay_matches(&h);
}

#[derive(Clone, Debug)]
enum Op {
    Commit {
        group: usize,
        partition: i32,
        offset: i64,
    },
    TxnCommit {
        group: usize,
        pid: i64,
        partition: i32,
        offset: i64,
    },
    Marker {
        group: usize,
        pid: i64,
        commit: bool,
    },
    OffsetDelete {
        group: usize,
        partition: i32,
    },
    DeleteGroup {
        group: usize,
    },
    Expire {
        ms: i64,
    },
}

const GROUPS: [&str; 3] = ["a", "b", "c"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..3i32, 0..1000i64).prop_map(|(group, partition, offset)| Op::Commit {
            group,
            partition,
            offset
        }),
        (0..3usize, 1..4i64, 0..3i32, 0..1000i64).prop_map(|(group, pid, partition, offset)| {
            Op::TxnCommit {
                group,
                pid,
                partition,
                offset,
            }
        }),
        (0..3usize, 1..4i64, any::<bool>()).prop_map(|(group, pid, commit)| Op::Marker {
            group,
            pid,
            commit
        }),
        (0..3usize, 0..3i32).prop_map(|(group, partition)| Op::OffsetDelete { group, partition }),
        (0..3usize).prop_map(|group| Op::DeleteGroup { group }),
        (0..200_000i64).prop_map(|ms| Op::Expire { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Replaying the log (plain and transactional batches, markers) rebuilds the live
    /// state: committed offsets, pending transactional offsets, and what OffsetFetch
    /// answers with and without `require_stable`.
    #[test]
    fn replay_rebuilds_committed_and_pending_offsets(ops in proptest::collection::vec(op(), 1..80)) {
        let config = CoordinatorConfig {
            offsets_topic_num_partitions: 2,
            offsets_retention_minutes: 1,
            offsets_retention_check_interval_ms: 10_000,
            ..CoordinatorConfig::default()
        };
        let mut h = Harness::new(config);
        for op in &ops {
            match op {
                Op::Commit { group, partition, offset } => {
                    h.commit(commit_req(GROUPS[*group], "", -1, "t", *partition, *offset));
                }
                Op::TxnCommit { group, pid, partition, offset } => {
                    txn_commit(&mut h, txn_req(GROUPS[*group], *pid, "t", *partition, *offset));
                }
                Op::Marker { group, pid, commit } => {
                    let p = h.c.partition_for(GROUPS[*group]);
                    h.marker(p, *pid, *commit);
                }
                Op::OffsetDelete { group, partition } => {
                    h.offset_delete(OffsetDeleteRequest {
                        group_id: GROUPS[*group].into(),
                        topics: vec![OffsetDeleteTopic { name: "t".into(), partitions: vec![*partition] }],
                    });
                }
                Op::DeleteGroup { group } => {
                    h.delete_groups(&[GROUPS[*group]]);
                }
                Op::Expire { ms } => h.advance_to(h.now + ms),
            }
        }
        let replayed = h.replayed_log();
        prop_assert_eq!(replayed.durable_state(), h.c.durable_state());
        for g in GROUPS {
            for p in 0..3 {
                prop_assert_eq!(fetch_one(&replayed, g, "t", p), fetch_one(&h.c, g, "t", p));
                prop_assert_eq!(fetch_stable(&replayed, g, "t", p), fetch_stable(&h.c, g, "t", p));
                let pending = h.c.durable_state().pending_transactional_offsets.values()
                    .any(|o| o.contains_key(&(g.to_string(), "t".to_string(), p)));
                prop_assert_eq!(fetch_stable(&h.c, g, "t", p).1 == codes::UNSTABLE_OFFSET_COMMIT, pending);
            }
        }
    }
}
