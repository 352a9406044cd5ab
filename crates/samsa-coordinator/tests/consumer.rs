//! KIP-848 consumer groups: assignment, revocation before assignment, fencing, leave.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use common::*;
use samsa_coordinator::*;
use samsa_model::TopicId;

fn topics() -> TopicMetadataMap {
    let mut m = TopicMetadataMap::new();
    m.insert("t", tid(1), 6);
    m
}

fn join(member: &str, subs: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest {
        subscribed_topic_names: Some(subs.iter().map(|s| s.to_string()).collect()),
        ..cgh_join(member)
    }
}

fn beat(member: &str, epoch: i32, owned: &[TopicPartitions]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest {
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        subscribed_topic_names: None,
        topic_partitions: Some(owned.to_vec()),
        ..join(member, &[])
    }
}

fn parts(a: &Option<Vec<TopicPartitions>>) -> BTreeSet<i32> {
    a.iter()
        .flatten()
        .flat_map(|tp| tp.partitions.iter().copied())
        .collect()
}

fn owned(ps: &BTreeSet<i32>) -> Vec<TopicPartitions> {
    if ps.is_empty() {
        return vec![];
    }
    vec![TopicPartitions {
        topic_id: tid(1),
        partitions: ps.iter().copied().collect(),
    }]
}

/// Asserts no partition is held (assigned or pending revocation) by two members.
fn assert_single_owner(c: &Coordinator, group: &str) {
    let holdings = c.consumer_group_holdings(group).unwrap_or_default();
    let mut seen: BTreeMap<(TopicId, i32), String> = BTreeMap::new();
    for (m, a) in holdings {
        for (t, ps) in a {
            for p in ps {
                if let Some(other) = seen.insert((t, p), m.clone()) {
                    panic!("partition {p} held by {other} and {m}");
                }
            }
        }
    }
}

/// Heartbeats every member (reporting what it holds) until nothing changes.
fn settle(
    h: &mut Harness,
    md: &TopicMetadataMap,
    members: &mut BTreeMap<String, (i32, BTreeSet<i32>)>,
) {
    for _ in 0..10 {
        let mut changed = false;
        let ids: Vec<String> = members.keys().cloned().collect();
        for id in ids {
            let (epoch, held) = members[&id].clone();
            let r = h.cgh(beat(&id, epoch, &owned(&held)), md);
            assert_eq!(r.error_code, codes::NONE, "{r:?}");
            let mut new_held = held.clone();
            if r.assignment.is_some() {
                new_held = parts(&r.assignment);
            }
            if r.member_epoch != epoch || new_held != held {
                changed = true;
            }
            members.insert(id, (r.member_epoch, new_held));
            assert_single_owner(&h.c, "g");
        }
        if !changed {
            return;
        }
    }
    panic!("did not settle");
}

#[test]
fn three_members_get_two_partitions_each_then_a_fourth_joins_safely() {
    let md = topics();
    let mut h = Harness::default_config();
    let mut members: BTreeMap<String, (i32, BTreeSet<i32>)> = BTreeMap::new();
    for m in ["m1", "m2", "m3"] {
        let r = h.cgh(join(m, &["t"]), &md);
        assert_eq!(r.error_code, codes::NONE);
        assert_eq!(r.member_id.as_deref(), Some(m));
        assert_eq!(r.heartbeat_interval_ms, 5_000);
        assert!(
            r.assignment.is_some(),
            "a joining member always gets its assignment"
        );
        members.insert(m.to_string(), (r.member_epoch, parts(&r.assignment)));
        assert_single_owner(&h.c, "g");
    }
    settle(&mut h, &md, &mut members);
    let epochs: BTreeSet<i32> = members.values().map(|(e, _)| *e).collect();
    assert_eq!(epochs.len(), 1, "all at the group epoch");
    for (_, held) in members.values() {
        assert_eq!(held.len(), 2);
    }
    let all: BTreeSet<i32> = members
        .values()
        .flat_map(|(_, h)| h.iter().copied())
        .collect();
    assert_eq!(all, (0..6).collect());
    assert_eq!(h.c.group_state("g"), Some("Stable"));

    // A fourth member joins: it gets nothing until someone revokes.
    let r = h.cgh(join("m4", &["t"]), &md);
    assert_eq!(r.error_code, codes::NONE);
    assert!(
        parts(&r.assignment).is_empty(),
        "partitions still held elsewhere"
    );
    members.insert("m4".into(), (r.member_epoch, BTreeSet::new()));
    assert_eq!(h.c.group_state("g"), Some("Reconciling"));
    // One old member is told to revoke but keeps its epoch until it acknowledges.
    let (e1, held1) = members["m1"].clone();
    let r1 = h.cgh(beat("m1", e1, &owned(&held1)), &md);
    assert_single_owner(&h.c, "g");
    if r1.member_epoch == e1 {
        let kept = parts(&r1.assignment);
        assert!(
            kept.len() < held1.len(),
            "m1 must give up a partition first"
        );
        // m4 still cannot take it while m1 has not confirmed.
        let (e4, _) = members["m4"].clone();
        let r4 = h.cgh(beat("m4", e4, &[]), &md);
        let got4 = parts(&r4.assignment);
        assert!(got4.is_disjoint(&held1), "{got4:?} taken before m1 revoked");
        assert_single_owner(&h.c, "g");
    }
    members.insert(
        "m1".into(),
        (
            r1.member_epoch,
            if r1.assignment.is_some() {
                parts(&r1.assignment)
            } else {
                held1
            },
        ),
    );
    settle(&mut h, &md, &mut members);
    let counts: Vec<usize> = members.values().map(|(_, h)| h.len()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 6);
    assert!(counts.iter().all(|c| (1..=2).contains(c)), "{counts:?}");
    assert_eq!(h.c.group_state("g"), Some("Stable"));
    assert_eq!(h.c.durable_state(), h.replayed().durable_state());
}

#[test]
fn member_epoch_fencing_unknown_members_and_leave() {
    let md = topics();
    let mut h = Harness::default_config();
    let r = h.cgh(join("a", &["t"]), &md);
    let epoch = r.member_epoch;
    assert!(epoch > 0);
    let held = parts(&r.assignment);
    assert_eq!(held.len(), 6);

    let r = h.cgh(beat("a", epoch + 1, &owned(&held)), &md);
    assert_eq!(r.error_code, codes::FENCED_MEMBER_EPOCH);
    let r = h.cgh(beat("a", 0, &owned(&held)), &md);
    assert_eq!(
        r.error_code,
        codes::INVALID_REQUEST,
        "rejoining (epoch 0) must not claim partitions"
    );

    // Move a to a later epoch: b joins, a revokes half and advances.
    let rb = h.cgh(join("b", &["t"]), &md);
    let r = h.cgh(beat("a", epoch, &owned(&held)), &md);
    let kept = parts(&r.assignment);
    assert_eq!(
        (r.member_epoch, kept.len()),
        (epoch, 3),
        "revoke first, same epoch"
    );
    let r = h.cgh(beat("a", epoch, &owned(&kept)), &md);
    let epoch2 = r.member_epoch;
    assert!(epoch2 > epoch);
    // A lost response: the previous epoch with a subset of the assignment is accepted...
    let r = h.cgh(beat("a", epoch, &owned(&kept)), &md);
    assert_eq!((r.error_code, r.member_epoch), (codes::NONE, epoch2));
    // ...but not with partitions it no longer has.
    let r = h.cgh(beat("a", epoch, &owned(&held)), &md);
    assert_eq!(r.error_code, codes::FENCED_MEMBER_EPOCH);
    let held = kept;
    let epoch = epoch2;
    let rb = h.cgh(beat("b", rb.member_epoch, &[]), &md);
    assert_eq!(rb.error_code, codes::NONE);
    let r = h.cgh(beat("ghost", 3, &[]), &md);
    assert_eq!(r.error_code, codes::UNKNOWN_MEMBER_ID);
    let mut other_group = beat("a", epoch, &[]);
    other_group.group_id = "missing".into();
    assert_eq!(
        h.cgh(other_group, &md).error_code,
        codes::GROUP_ID_NOT_FOUND
    );
    let mut bad = join("b", &["t"]);
    bad.server_assignor = Some("sticky".into());
    assert_eq!(h.cgh(bad, &md).error_code, codes::UNSUPPORTED_ASSIGNOR);
    let mut bad = join("b", &["t"]);
    bad.rebalance_timeout_ms = -1;
    assert_eq!(h.cgh(bad, &md).error_code, codes::INVALID_REQUEST);
    let mut bad = join("", &["t"]);
    bad.api_version = 1;
    assert_eq!(
        h.cgh(bad, &md).error_code,
        codes::INVALID_REQUEST,
        "v1 needs a client member id"
    );
    let mut v0 = join("", &["t"]);
    v0.api_version = 0;
    let r = h.cgh(v0, &md);
    assert_eq!(r.error_code, codes::NONE);
    let generated = r.member_id.expect("coordinator-generated id");
    assert!(!generated.is_empty());

    // The regular heartbeat of a still works and returns no assignment when unchanged.
    let (e, held) = {
        let r = h.cgh(beat("a", epoch, &owned(&held)), &md);
        assert_eq!(r.error_code, codes::NONE);
        (
            r.member_epoch,
            if r.assignment.is_some() {
                parts(&r.assignment)
            } else {
                held
            },
        )
    };
    // Leave (-1).
    let r = h.cgh(beat("a", LEAVE_GROUP_MEMBER_EPOCH, &owned(&held)), &md);
    assert_eq!((r.error_code, r.member_epoch), (codes::NONE, -1));
    let r = h.cgh(beat("a", e, &owned(&held)), &md);
    assert_eq!(r.error_code, codes::UNKNOWN_MEMBER_ID);
    assert_single_owner(&h.c, "g");
}

#[test]
fn session_timeout_fences_and_frees_partitions() {
    let md = topics();
    let mut h = Harness::default_config();
    let ra = h.cgh(join("a", &["t"]), &md);
    let rb = h.cgh(join("b", &["t"]), &md);
    let mut members = BTreeMap::new();
    members.insert("a".to_string(), (ra.member_epoch, parts(&ra.assignment)));
    members.insert("b".to_string(), (rb.member_epoch, parts(&rb.assignment)));
    settle(&mut h, &md, &mut members);
    assert_eq!(members["a"].1.len(), 3);
    // b goes silent; a keeps heartbeating.
    for _ in 0..10 {
        h.advance(5_000);
        let (e, held) = members["a"].clone();
        let r = h.cgh(beat("a", e, &owned(&held)), &md);
        assert_eq!(r.error_code, codes::NONE);
        let held = if r.assignment.is_some() {
            parts(&r.assignment)
        } else {
            held
        };
        members.insert("a".into(), (r.member_epoch, held));
    }
    assert_eq!(
        members["a"].1.len(),
        6,
        "b's partitions moved to a after its session expired"
    );
    let (eb, hb) = members["b"].clone();
    assert_eq!(
        h.cgh(beat("b", eb, &owned(&hb)), &md).error_code,
        codes::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn member_that_never_revokes_is_fenced_after_its_rebalance_timeout() {
    let md = topics();
    let mut h = Harness::default_config();
    let ra = h.cgh(join("a", &["t"]), &md);
    let held_a = parts(&ra.assignment);
    assert_eq!(held_a.len(), 6);
    let rb = h.cgh(join("b", &["t"]), &md);
    assert!(parts(&rb.assignment).is_empty());
    // a is asked to revoke but keeps reporting all six partitions.
    let r = h.cgh(beat("a", ra.member_epoch, &owned(&held_a)), &md);
    assert_eq!(r.member_epoch, ra.member_epoch);
    assert_eq!(parts(&r.assignment).len(), 3);
    let mut b_epoch = rb.member_epoch;
    for _ in 0..7 {
        h.advance(5_000);
        let r = h.cgh(beat("a", ra.member_epoch, &owned(&held_a)), &md);
        if r.error_code != codes::NONE {
            assert_eq!(r.error_code, codes::UNKNOWN_MEMBER_ID);
            break;
        }
        let rb = h.cgh(beat("b", b_epoch, &[]), &md);
        assert!(parts(&rb.assignment).is_empty(), "a still holds everything");
        b_epoch = rb.member_epoch;
        assert_single_owner(&h.c, "g");
    }
    // a was fenced at its 30s rebalance timeout; b can now take everything.
    let rb = h.cgh(beat("b", b_epoch, &[]), &md);
    let rb = if parts(&rb.assignment).len() == 6 {
        rb
    } else {
        h.cgh(beat("b", rb.member_epoch, &[]), &md)
    };
    assert_eq!(parts(&rb.assignment).len(), 6);
}

#[test]
fn static_member_leaves_temporarily_and_rejoins_with_its_assignment() {
    let md = topics();
    let mut h = Harness::default_config();
    let mut ja = join("a1", &["t"]);
    ja.instance_id = Some("inst-a".into());
    let ra = h.cgh(ja.clone(), &md);
    let rb = h.cgh(join("b", &["t"]), &md);
    let mut members = BTreeMap::new();
    members.insert("a1".to_string(), (ra.member_epoch, parts(&ra.assignment)));
    members.insert("b".to_string(), (rb.member_epoch, parts(&rb.assignment)));
    // settle with the instance id on a's heartbeats
    for _ in 0..5 {
        for id in ["a1", "b"] {
            let (e, held) = members[id].clone();
            let mut req = beat(id, e, &owned(&held));
            if id == "a1" {
                req.instance_id = Some("inst-a".into());
            }
            let r = h.cgh(req, &md);
            assert_eq!(r.error_code, codes::NONE);
            let held = if r.assignment.is_some() {
                parts(&r.assignment)
            } else {
                held
            };
            members.insert(id.to_string(), (r.member_epoch, held));
        }
    }
    let a_held = members["a1"].1.clone();
    assert_eq!(a_held.len(), 3);
    let epoch_before = h.c.durable_state().consumer_groups["g"].group_epoch;

    // Another process with the same instance id cannot join while a1 is active.
    let mut dup = join("a2", &["t"]);
    dup.instance_id = Some("inst-a".into());
    assert_eq!(
        h.cgh(dup.clone(), &md).error_code,
        codes::UNRELEASED_INSTANCE_ID
    );

    // a1 leaves temporarily (-2): it keeps its assignment.
    let mut leave = beat("a1", LEAVE_GROUP_STATIC_MEMBER_EPOCH, &owned(&a_held));
    leave.instance_id = Some("inst-a".into());
    let r = h.cgh(leave, &md);
    assert_eq!((r.error_code, r.member_epoch), (codes::NONE, -2));
    // a2 takes over the instance id and gets a1's partitions without a new group epoch.
    let r = h.cgh(dup, &md);
    assert_eq!(r.error_code, codes::NONE);
    assert_eq!(parts(&r.assignment), a_held);
    assert_eq!(
        h.c.durable_state().consumer_groups["g"].group_epoch,
        epoch_before
    );
    // The old member id is fenced by the instance id.
    let (ea, _) = members["a1"].clone();
    let mut old = beat("a1", ea, &[]);
    old.instance_id = Some("inst-a".into());
    assert_eq!(h.cgh(old, &md).error_code, codes::FENCED_INSTANCE_ID);
    assert_single_owner(&h.c, "g");
    assert_eq!(h.c.durable_state(), h.replayed().durable_state());
}

#[test]
fn range_assignor_and_describe() {
    let mut md = topics();
    md.insert("u", tid(2), 3);
    let mut h = Harness::default_config();
    let mut a = join("a", &["t", "u"]);
    a.server_assignor = Some("range".into());
    let ra = h.cgh(a, &md);
    let mut b = join("b", &["t", "u"]);
    b.server_assignor = Some("range".into());
    h.cgh(b, &md);
    let held = ra.assignment.clone().unwrap_or_default();
    let rb2 = h.cgh(beat("a", ra.member_epoch, &held), &md);
    assert_eq!(rb2.error_code, codes::NONE);
    let d = h.c.consumer_group_describe(
        &ConsumerGroupDescribeRequest {
            group_ids: vec!["g".into(), "nope".into()],
        },
        &md,
    );
    let g = &d.groups[0];
    assert_eq!(g.assignor_name, "range");
    assert_eq!(g.members.len(), 2);
    let target_a: Vec<(String, Vec<i32>)> = g.members[0]
        .target_assignment
        .iter()
        .map(|t| (t.topic_name.clone(), t.partitions.clone()))
        .collect();
    assert_eq!(
        target_a,
        vec![
            ("t".to_string(), vec![0, 1, 2]),
            ("u".to_string(), vec![0, 1])
        ]
    );
    assert_eq!(d.groups[1].error_code, codes::GROUP_ID_NOT_FOUND);
    let l = h.c.list_groups(&ListGroupsRequest {
        states_filter: vec![],
        types_filter: vec!["consumer".into()],
    });
    assert_eq!(l.groups.len(), 1);
    assert_eq!(l.groups[0].protocol_type, "consumer");
    // Classic protocol calls do not reach KIP-848 groups.
    let t = h.join(join_req("g", "", "x", &["t"]));
    assert_eq!(h.code(t), Some(codes::INCONSISTENT_GROUP_PROTOCOL));
    assert_eq!(h.heartbeat("g", "a", 1, None), codes::UNKNOWN_MEMBER_ID);
}

#[test]
fn offset_commit_checks_member_epochs() {
    let md = topics();
    let mut h = Harness::default_config();
    let r = h.cgh(join("a", &["t"]), &md);
    let mut c = commit_req("g", "a", r.member_epoch, "t", 0, 10);
    c.api_version = 9;
    assert_eq!(
        h.commit(c.clone()).topics[0].partitions[0].error_code,
        codes::NONE
    );
    let mut stale = c.clone();
    stale.generation_id_or_member_epoch = r.member_epoch + 1;
    assert_eq!(
        h.commit(stale).topics[0].partitions[0].error_code,
        codes::STALE_MEMBER_EPOCH
    );
    let mut old = c.clone();
    old.api_version = 8;
    assert_eq!(
        h.commit(old).topics[0].partitions[0].error_code,
        codes::UNSUPPORTED_VERSION
    );
    let mut ghost = c.clone();
    ghost.member_id = "ghost".into();
    assert_eq!(
        h.commit(ghost).topics[0].partitions[0].error_code,
        codes::UNKNOWN_MEMBER_ID
    );
    let f = h.c.offset_fetch(&OffsetFetchRequest {
        api_version: 9,
        groups: vec![OffsetFetchGroup {
            group_id: "g".into(),
            member_id: Some("a".into()),
            member_epoch: r.member_epoch + 5,
            topics: None,
        }],
        require_stable: true,
    });
    assert_eq!(f.groups[0].error_code, codes::STALE_MEMBER_EPOCH);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (10, codes::NONE));
    // Empty groups become classic on a classic join, keeping offsets.
    let held = parts(&r.assignment);
    h.cgh(beat("a", LEAVE_GROUP_MEMBER_EPOCH, &owned(&held)), &md);
    assert_eq!(h.c.group_state("g"), Some("Empty"));
    let t = h.join(join_req("g", "", "x", &["t"]));
    assert_eq!(h.code(t), Some(codes::MEMBER_ID_REQUIRED));
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (10, codes::NONE));
    assert_eq!(h.c.durable_state(), h.replayed().durable_state());
}

/// A KIP-848 member's OffsetCommit (v9, by topic id) at `epoch` for `partitions` of "t".
fn commit848(h: &mut Harness, member: &str, epoch: i32, partitions: &[i32]) -> Vec<i16> {
    let mut req = commit_req("g", member, epoch, "t", 0, 42);
    req.api_version = 9;
    req.topics[0].topic_id = Some(tid(1));
    let one = req.topics[0].partitions[0].clone();
    req.topics[0].partitions = partitions
        .iter()
        .map(|p| OffsetCommitPartition {
            partition_index: *p,
            ..one.clone()
        })
        .collect();
    let r = h.commit(req);
    r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// KIP-1251: the Java consumer pipelines the heartbeat that acknowledges a revocation
/// (bumping its epoch) and an OffsetCommit still carrying the old epoch. The commit is
/// accepted for partitions assigned at or before that epoch; a partition it no longer
/// holds, one given to it only at the new epoch, or an epoch from the future is
/// STALE_MEMBER_EPOCH — and the epochs survive a failover (replay).
#[test]
fn commits_at_an_older_epoch_pass_for_partitions_assigned_by_then() {
    let md = topics();
    let mut h = Harness::default_config();
    let ra = h.cgh(join("a", &["t"]), &md);
    let e1 = ra.member_epoch;
    let held = parts(&ra.assignment);
    assert_eq!(held.len(), 6);
    // b joins: a is told to revoke half, staying at e1.
    let rb = h.cgh(join("b", &["t"]), &md);
    let r = h.cgh(beat("a", e1, &owned(&held)), &md);
    assert_eq!(r.member_epoch, e1);
    let kept = parts(&r.assignment);
    assert_eq!(kept.len(), 3);
    let revoked: BTreeSet<i32> = held.difference(&kept).copied().collect();
    // a acknowledges the revocation: its epoch moves on...
    let r = h.cgh(beat("a", e1, &owned(&kept)), &md);
    let e2 = r.member_epoch;
    assert!(e2 > e1);
    // ...while its commit, sent with e1 right behind the heartbeat, arrives.
    let kept_v: Vec<i32> = kept.iter().copied().collect();
    assert_eq!(
        commit848(&mut h, "a", e1, &kept_v),
        vec![codes::NONE; 3],
        "partitions held since e1 commit at e1"
    );
    assert_eq!(fetch_one(&h.c, "g", "t", kept_v[0]).0, 42);
    let revoked_v: Vec<i32> = revoked.iter().copied().collect();
    assert_eq!(
        commit848(&mut h, "a", e1, &revoked_v[..1]),
        vec![codes::STALE_MEMBER_EPOCH],
        "a partition it gave up"
    );
    assert_eq!(
        commit848(&mut h, "a", e2 + 1, &kept_v[..1]),
        vec![codes::STALE_MEMBER_EPOCH],
        "an epoch ahead of the member's"
    );
    assert_eq!(commit848(&mut h, "a", e2, &kept_v), vec![codes::NONE; 3]);
    // b gets the revoked partitions at a later epoch than the one it joined with.
    let rb = h.cgh(beat("b", rb.member_epoch, &[]), &md);
    let b_epoch = rb.member_epoch;
    let got = parts(&rb.assignment);
    assert_eq!(got, revoked);
    let got_v: Vec<i32> = got.iter().copied().collect();
    assert_eq!(
        commit848(&mut h, "b", b_epoch, &got_v),
        vec![codes::NONE; 3]
    );
    assert_eq!(
        commit848(&mut h, "b", b_epoch - 1, &got_v[..1]),
        vec![codes::STALE_MEMBER_EPOCH],
        "assigned only at {b_epoch}"
    );
    // After a failover the new coordinator knows the assignment epochs too.
    let mut h2 = h.failed_over();
    assert_eq!(commit848(&mut h2, "a", e1, &kept_v), vec![codes::NONE; 3]);
    assert_eq!(
        commit848(&mut h2, "b", b_epoch - 1, &got_v[..1]),
        vec![codes::STALE_MEMBER_EPOCH]
    );
}

/// Kafka's `throwIfMemberEpochIsInvalid`: a heartbeat whose member epoch is ahead of the
/// member's epoch on the coordinator is FENCED_MEMBER_EPOCH (the member must give up its
/// partitions and rejoin), for static members too, and also after a failover rebuilt the
/// member from the log; nothing is written for it.
#[test]
fn member_epoch_ahead_of_the_coordinators_is_fenced() {
    let md = topics();
    let mut h = Harness::default_config();
    let mut js = join("s1", &["t"]);
    js.instance_id = Some("inst".into());
    let r = h.cgh(js, &md);
    let epoch = r.member_epoch;
    let held = parts(&r.assignment);
    let records = h.records.len();
    let mut ahead = beat("s1", epoch + 1, &owned(&held));
    ahead.instance_id = Some("inst".into());
    assert_eq!(
        h.cgh(ahead.clone(), &md).error_code,
        codes::FENCED_MEMBER_EPOCH
    );
    assert_eq!(
        h.records.len(),
        records,
        "a fenced heartbeat writes nothing"
    );

    let mut h2 = h.failed_over();
    assert_eq!(h2.cgh(ahead, &md).error_code, codes::FENCED_MEMBER_EPOCH);
    assert_eq!(
        h2.cgh(beat("s1", epoch + 5, &[]), &md).error_code,
        codes::FENCED_MEMBER_EPOCH
    );
    let mut ok = beat("s1", epoch, &owned(&held));
    ok.instance_id = Some("inst".into());
    assert_eq!(h2.cgh(ok, &md).error_code, codes::NONE);
}

type Cell = Arc<Mutex<GroupOverrides>>;

/// A coordinator whose `GROUP` config overrides for "g" come from a shared
/// cell (as the broker's metadata image supplies them), with member "m1"
/// joined under `initial`: (harness, cell, m1's epoch, m1's partitions).
fn joined_with(initial: GroupOverrides) -> (Harness, Cell, i32, BTreeSet<i32>) {
    let cell: Cell = Arc::new(Mutex::new(initial));
    let read = cell.clone();
    let lookup = GroupConfigLookup::new(Arc::new(move |group: &str| {
        if group == "g" {
            *read.lock().unwrap_or_else(|p| p.into_inner())
        } else {
            GroupOverrides::default()
        }
    }));
    let mut h = Harness::new(CoordinatorConfig {
        group_configs: lookup,
        ..CoordinatorConfig::default()
    });
    let r = h.cgh(join("m1", &["t"]), &topics());
    assert_eq!(r.error_code, codes::NONE);
    let held = parts(&r.assignment);
    (h, cell, r.member_epoch, held)
}

#[test]
fn a_groups_heartbeat_interval_override_is_returned_from_the_next_heartbeat() {
    let md = topics();
    let (mut h, cell, epoch, held) = joined_with(GroupOverrides {
        heartbeat_interval_ms: Some(7_000),
        ..GroupOverrides::default()
    });
    let r = h.cgh(beat("m1", epoch, &owned(&held)), &md);
    assert_eq!(r.heartbeat_interval_ms, 7_000);
    cell.lock()
        .unwrap_or_else(|p| p.into_inner())
        .heartbeat_interval_ms = Some(9_000);
    let r = h.cgh(beat("m1", r.member_epoch, &owned(&held)), &md);
    assert_eq!(r.heartbeat_interval_ms, 9_000);
    *cell.lock().unwrap_or_else(|p| p.into_inner()) = GroupOverrides::default();
    let r = h.cgh(beat("m1", r.member_epoch, &owned(&held)), &md);
    assert_eq!(r.heartbeat_interval_ms, 5_000, "back to the broker default");
}

#[test]
fn a_groups_session_timeout_override_decides_when_a_silent_member_expires() {
    let md = topics();
    let (mut h, _cell, epoch, held) = joined_with(GroupOverrides {
        session_timeout_ms: Some(55_000),
        ..GroupOverrides::default()
    });
    // Past the broker default (45 s) but within the group's 55 s: still a member.
    h.advance(50_000);
    let r = h.cgh(beat("m1", epoch, &owned(&held)), &md);
    assert_eq!(r.error_code, codes::NONE, "{r:?}");
    h.advance(56_000);
    let r = h.cgh(beat("m1", r.member_epoch, &owned(&held)), &md);
    assert_eq!(r.error_code, codes::UNKNOWN_MEMBER_ID);
}
