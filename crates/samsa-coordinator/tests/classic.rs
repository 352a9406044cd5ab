//! Classic group protocol scenarios with a fake clock.

mod common;

use common::*;
use samsa_coordinator::*;

/// Joins `client` with KIP-394 (v5): MEMBER_ID_REQUIRED, then the rejoin that parks.
fn join_kip394(h: &mut Harness, group: &str, client: &str) -> (String, ReplyToken) {
    let t = h.join(join_req(group, "", client, &["t"]));
    let r = h.join_reply(t).expect("immediate MEMBER_ID_REQUIRED");
    assert_eq!(r.error_code, codes::MEMBER_ID_REQUIRED);
    assert!(
        r.member_id.starts_with(&format!("{client}-")),
        "{}",
        r.member_id
    );
    let id = r.member_id;
    let t = h.join(join_req(group, &id, client, &["t"]));
    (id, t)
}

/// A stable three-member group; returns (member ids, leader, generation).
fn stable_group(h: &mut Harness, group: &str) -> (Vec<String>, String, i32) {
    let mut members = Vec::new();
    let mut tokens = Vec::new();
    for c in ["a", "b", "c"] {
        let (id, t) = join_kip394(h, group, c);
        members.push(id);
        tokens.push(t);
    }
    h.advance_to(h.now + 10_000);
    let replies: Vec<JoinGroupResponse> = tokens
        .iter()
        .map(|t| h.join_reply(*t).expect("joined"))
        .collect();
    let generation = replies[0].generation_id;
    let leader = replies[0].leader.clone();
    let syncs: Vec<ReplyToken> = members
        .iter()
        .filter(|m| **m != leader)
        .map(|m| h.sync(sync_req(group, m, generation, &[])))
        .collect();
    let assignments: Vec<(String, Vec<u8>)> = members
        .iter()
        .map(|m| (m.clone(), format!("assign-{m}").into_bytes()))
        .collect();
    let refs: Vec<(&str, &[u8])> = assignments
        .iter()
        .map(|(m, a)| (m.as_str(), a.as_slice()))
        .collect();
    let lt = h.sync(sync_req(group, &leader, generation, &refs));
    assert_eq!(h.sync_reply(lt).map(|r| r.error_code), Some(codes::NONE));
    for t in syncs {
        assert_eq!(h.sync_reply(t).map(|r| r.error_code), Some(codes::NONE));
    }
    assert_eq!(h.c.group_state(group), Some("Stable"));
    (members, leader, generation)
}

#[test]
fn three_members_rebalance_with_initial_delay_and_sync() {
    let mut h = Harness::default_config();
    // a at t=0, b at t=100, c at t=200.
    let (a, ta) = join_kip394(&mut h, "g", "a");
    h.advance(100);
    let (b, tb) = join_kip394(&mut h, "g", "b");
    h.advance(100);
    let (c, tc) = join_kip394(&mut h, "g", "c");
    assert_eq!(h.c.group_state("g"), Some("PreparingRebalance"));

    // The initial delay (3000ms) was extended once because members joined during it.
    h.advance_to(2_999);
    assert!(!h.answered(ta) && !h.answered(tb) && !h.answered(tc));
    h.advance_to(3_000);
    assert!(!h.answered(ta), "delay extended because b and c joined");
    h.advance_to(5_999);
    assert!(!h.answered(ta));
    h.advance_to(6_000);
    let (ra, rb, rc) = (
        h.join_reply(ta).expect("a"),
        h.join_reply(tb).expect("b"),
        h.join_reply(tc).expect("c"),
    );
    for r in [&ra, &rb, &rc] {
        assert_eq!(r.error_code, codes::NONE);
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.leader, a, "the first joiner leads");
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
        assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    }
    // The leader sees every member's metadata; followers see none.
    let mut seen: Vec<&str> = ra.members.iter().map(|m| m.member_id.as_str()).collect();
    seen.sort();
    let mut all = vec![a.as_str(), b.as_str(), c.as_str()];
    all.sort();
    assert_eq!(seen, all);
    assert!(ra
        .members
        .iter()
        .all(|m| m.metadata == subscription(&["t"])));
    assert!(rb.members.is_empty() && rc.members.is_empty());
    assert_eq!(h.c.group_state("g"), Some("CompletingRebalance"));

    // Followers' SyncGroups wait for the leader's.
    let sb = h.sync(sync_req("g", &b, 1, &[]));
    let sc = h.sync(sync_req("g", &c, 1, &[]));
    assert!(!h.answered(sb) && !h.answered(sc));
    let appends_before = h.records.len();
    let sa = h.sync(sync_req(
        "g",
        &a,
        1,
        &[(a.as_str(), b"A"), (b.as_str(), b"B"), (c.as_str(), b"C")],
    ));
    assert_eq!(&h.sync_reply(sa).expect("a").assignment[..], b"A");
    assert_eq!(&h.sync_reply(sb).expect("b").assignment[..], b"B");
    assert_eq!(&h.sync_reply(sc).expect("c").assignment[..], b"C");
    assert_eq!(h.c.group_state("g"), Some("Stable"));
    // The group metadata was appended before the sync replies went out.
    assert_eq!(h.records.len(), appends_before + 1);
    let first_append = h
        .log
        .iter()
        .rposition(|o| matches!(o, Output::Append { .. }))
        .expect("append");
    let first_reply = h
        .log
        .iter()
        .position(|o| matches!(o, Output::Reply { token, .. } if *token == sb))
        .expect("reply");
    assert!(first_append < first_reply);
    assert_eq!(h.heartbeat("g", &b, 1, None), codes::NONE);
}

#[test]
fn silent_member_is_removed_after_session_timeout_and_the_rest_rebalance() {
    let mut h = Harness::default_config();
    let (members, leader, generation) = stable_group(&mut h, "g");
    let silent = members
        .iter()
        .find(|m| **m != leader)
        .cloned()
        .expect("follower");
    let alive: Vec<String> = members.iter().filter(|m| **m != silent).cloned().collect();
    // Session timeout is 10s; the others heartbeat every 3s.
    let mut rebalancing = false;
    for _ in 0..5 {
        h.advance(3_000);
        for m in &alive {
            let code = h.heartbeat("g", m, generation, None);
            if code == codes::REBALANCE_IN_PROGRESS {
                rebalancing = true;
            } else {
                assert_eq!(code, codes::NONE);
            }
        }
        if rebalancing {
            break;
        }
    }
    assert!(
        rebalancing,
        "the silent member's expiry triggers a rebalance"
    );
    assert_eq!(
        h.heartbeat("g", &silent, generation, None),
        codes::UNKNOWN_MEMBER_ID
    );
    // Both survivors rejoin: the join phase completes as soon as both are in.
    let tokens: Vec<ReplyToken> = alive
        .iter()
        .map(|m| h.join(join_req("g", m, "x", &["t"])))
        .collect();
    for t in &tokens {
        let r = h.join_reply(*t).expect("join completes when all rejoined");
        assert_eq!(r.generation_id, generation + 1);
    }
    let leader_reply = tokens
        .iter()
        .filter_map(|t| h.join_reply(*t))
        .find(|r| !r.members.is_empty())
        .expect("a leader");
    assert_eq!(leader_reply.members.len(), 2);
    assert!(leader_reply.members.iter().all(|m| m.member_id != silent));
}

#[test]
fn kip394_member_id_required_only_from_v4_and_pending_members_expire() {
    let mut h = Harness::default_config();
    let mut old = join_req("g", "", "old-client", &["t"]);
    old.api_version = 3;
    let t = h.join(old);
    assert!(
        !h.answered(t),
        "v3 joins directly and waits for the rebalance"
    );

    let t2 = h.join(join_req("g", "", "new-client", &["t"]));
    let r = h.join_reply(t2).expect("immediate");
    assert_eq!(r.error_code, codes::MEMBER_ID_REQUIRED);
    assert!(r.member_id.starts_with("new-client-"));
    assert_eq!(r.generation_id, -1);
    // It never comes back: after its session timeout the pending id is forgotten.
    h.advance_to(h.now + 20_000);
    let v3 = h.join_reply(t).expect("rebalance completed");
    assert_eq!(v3.error_code, codes::NONE);
    assert_eq!(v3.members.len(), 1);
    let late = h.join(join_req("g", &r.member_id, "new-client", &["t"]));
    assert_eq!(
        h.join_reply(late).map(|r| r.error_code),
        Some(codes::UNKNOWN_MEMBER_ID)
    );
}

#[test]
fn static_member_rejoins_without_rebalance_and_old_id_is_fenced() {
    let mut h = Harness::default_config();
    let mut a = join_req("g", "", "a", &["t"]);
    a.group_instance_id = Some("inst-a".into());
    let ta = h.join(a.clone());
    assert!(!h.answered(ta), "static members get no MEMBER_ID_REQUIRED");
    let (b, tb) = join_kip394(&mut h, "g", "b");
    h.advance_to(h.now + 10_000);
    let ra = h.join_reply(ta).expect("a");
    let rb = h.join_reply(tb).expect("b");
    assert!(ra.member_id.starts_with("inst-a-"));
    let old_a = ra.member_id.clone();
    let generation = ra.generation_id;
    assert_eq!(ra.leader, old_a);
    let sb = h.sync(sync_req("g", &b, generation, &[]));
    let mut sa = sync_req(
        "g",
        &old_a,
        generation,
        &[(old_a.as_str(), b"for-a"), (b.as_str(), b"for-b")],
    );
    sa.group_instance_id = Some("inst-a".into());
    let sa = h.sync(sa);
    assert_eq!(&h.sync_reply(sa).expect("a").assignment[..], b"for-a");
    assert_eq!(&h.sync_reply(sb).expect("b").assignment[..], b"for-b");
    assert_eq!(rb.generation_id, generation);

    // a restarts: same instance id, unknown member id, same metadata.
    let records_before = h.records.len();
    let t = h.join(a.clone());
    let r = h.join_reply(t).expect("answered at once");
    assert_eq!(r.error_code, codes::NONE);
    assert_ne!(r.member_id, old_a);
    assert_eq!(r.generation_id, generation, "no new generation");
    // A pre-v9 client must not believe it leads: the leader is reported as before.
    assert_eq!(r.leader, old_a);
    assert!(r.members.is_empty());
    assert_eq!(h.c.group_state("g"), Some("Stable"));
    assert_eq!(
        h.records.len(),
        records_before + 1,
        "the new member id is persisted"
    );
    // The new id gets the old assignment; the old id is fenced.
    let mut s = sync_req("g", &r.member_id, generation, &[]);
    s.group_instance_id = Some("inst-a".into());
    let s = h.sync(s);
    assert_eq!(&h.sync_reply(s).expect("sync").assignment[..], b"for-a");
    assert_eq!(
        h.heartbeat("g", &old_a, generation, Some("inst-a")),
        codes::FENCED_INSTANCE_ID
    );
    assert_eq!(
        h.heartbeat("g", &r.member_id, generation, Some("inst-a")),
        codes::NONE
    );
    assert_eq!(h.heartbeat("g", &b, generation, None), codes::NONE);

    // A v9 client that leads is told so and told to skip the assignment.
    let mut a9 = a.clone();
    a9.api_version = 9;
    let t9 = h.join(a9);
    let r9 = h.join_reply(t9).expect("answered");
    assert_eq!(r9.leader, r9.member_id);
    assert!(r9.skip_assignment);
    assert_eq!(r9.members.len(), 2);
    assert_eq!(h.c.group_state("g"), Some("Stable"));
}

#[test]
fn static_member_with_changed_protocols_triggers_rebalance() {
    let mut h = Harness::default_config();
    let mut a = join_req("g", "", "a", &["t"]);
    a.group_instance_id = Some("inst-a".into());
    let ta = h.join(a.clone());
    h.advance_to(h.now + 10_000);
    let ra = h.join_reply(ta).expect("joined");
    let mut s = sync_req("g", &ra.member_id, ra.generation_id, &[]);
    s.group_instance_id = Some("inst-a".into());
    h.sync(s);
    assert_eq!(h.c.group_state("g"), Some("Stable"));
    let mut changed = a.clone();
    changed.protocols.retain(|p| p.name == "roundrobin");
    let t = h.join(changed);
    // Only member: the join phase completes at once with a new generation and protocol.
    let r = h.join_reply(t).expect("rebalanced");
    assert_eq!(r.generation_id, ra.generation_id + 1);
    assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn error_codes_for_unknown_members_and_stale_generations() {
    let mut h = Harness::default_config();
    let (members, leader, generation) = stable_group(&mut h, "g");
    assert_eq!(
        h.heartbeat("g", &members[0], generation + 1, None),
        codes::ILLEGAL_GENERATION
    );
    assert_eq!(
        h.heartbeat("g", &members[0], generation - 1, None),
        codes::ILLEGAL_GENERATION
    );
    assert_eq!(
        h.heartbeat("g", "nobody", generation, None),
        codes::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        h.heartbeat("missing", "x", 1, None),
        codes::UNKNOWN_MEMBER_ID
    );
    assert_eq!(h.heartbeat("", "x", 1, None), codes::INVALID_GROUP_ID);
    assert_eq!(
        h.heartbeat("g", &members[0], generation, Some("not-mine")),
        codes::UNKNOWN_MEMBER_ID
    );
    let s = h.sync(sync_req("g", &leader, generation + 5, &[]));
    assert_eq!(
        h.sync_reply(s).map(|r| r.error_code),
        Some(codes::ILLEGAL_GENERATION)
    );
    let s = h.sync(sync_req("g", "nobody", generation, &[]));
    assert_eq!(
        h.sync_reply(s).map(|r| r.error_code),
        Some(codes::UNKNOWN_MEMBER_ID)
    );
    let mut s = sync_req("g", &leader, generation, &[]);
    s.protocol_name = Some("other".into());
    let s = h.sync(s);
    assert_eq!(
        h.sync_reply(s).map(|r| r.error_code),
        Some(codes::INCONSISTENT_GROUP_PROTOCOL)
    );
    // Join with a known member id the group does not have.
    let t = h.join(join_req("g", "stranger", "x", &["t"]));
    assert_eq!(
        h.join_reply(t).map(|r| r.error_code),
        Some(codes::UNKNOWN_MEMBER_ID)
    );
    // Join with a different protocol type.
    let mut other = join_req("g", "", "x", &["t"]);
    other.protocol_type = "connect".into();
    let t = h.join(other);
    assert_eq!(
        h.join_reply(t).map(|r| r.error_code),
        Some(codes::INCONSISTENT_GROUP_PROTOCOL)
    );
    // No common protocol.
    let mut other = join_req("g", "", "x", &["t"]);
    other.protocols.retain(|p| p.name == "roundrobin");
    other.protocols[0].name = "sticky".into();
    let t = h.join(other);
    assert_eq!(
        h.join_reply(t).map(|r| r.error_code),
        Some(codes::INCONSISTENT_GROUP_PROTOCOL)
    );
}

#[test]
fn session_timeout_bounds_group_size_and_limits() {
    let config = CoordinatorConfig {
        group_max_size: 2,
        group_initial_rebalance_delay_ms: 100,
        ..Default::default()
    };
    let mut h = Harness::new(config);
    let mut r = join_req("g", "", "a", &["t"]);
    r.session_timeout_ms = 5_999;
    let t = h.join(r.clone());
    assert_eq!(
        h.join_reply(t).map(|r| r.error_code),
        Some(codes::INVALID_SESSION_TIMEOUT)
    );
    r.session_timeout_ms = 1_800_001;
    let t = h.join(r);
    assert_eq!(
        h.join_reply(t).map(|r| r.error_code),
        Some(codes::INVALID_SESSION_TIMEOUT)
    );
    let t = h.join(join_req("", "", "a", &["t"]));
    assert_eq!(
        h.join_reply(t).map(|r| r.error_code),
        Some(codes::INVALID_GROUP_ID)
    );

    let mut big = join_req("g", "", "a", &["t"]);
    big.protocols[0].metadata = vec![0u8; MEMBER_METADATA_BYTES_MAX + 1].into();
    let t = h.join(big);
    assert_eq!(
        h.join_reply(t).map(|r| r.error_code),
        Some(codes::INVALID_REQUEST)
    );

    // Two members fill the group; a third is refused.
    let (a, ta) = join_kip394(&mut h, "g", "a");
    let (b, tb) = join_kip394(&mut h, "g", "b");
    h.advance_to(h.now + 1_000);
    let generation = h.join_reply(ta).expect("a").generation_id;
    assert!(h.answered(tb));
    let leader = h.join_reply(ta).expect("a").leader;
    h.sync(sync_req("g", &leader, generation, &[]));
    let follower = if leader == a { &b } else { &a };
    h.sync(sync_req("g", follower, generation, &[]));
    assert_eq!(h.c.group_state("g"), Some("Stable"));
    // Kafka checks the size before handing out a member id.
    let t = h.join(join_req("g", "", "c", &["t"]));
    assert_eq!(
        h.join_reply(t).map(|r| r.error_code),
        Some(codes::GROUP_MAX_SIZE_REACHED)
    );
    // Existing members are still accepted (a follower with unchanged metadata just
    // gets the current generation back).
    let t = h.join(join_req("g", follower, "x", &["t"]));
    let r = h.join_reply(t).expect("answered");
    assert_eq!((r.error_code, r.generation_id), (codes::NONE, generation));
}

#[test]
fn rebalance_timeout_removes_members_that_do_not_rejoin() {
    let mut h = Harness::default_config();
    let (members, leader, generation) = stable_group(&mut h, "g");
    // The leader rejoins (forcing a rebalance); the others keep heartbeating but
    // never rejoin (max.poll.interval.ms exceeded).
    let t = h.join(join_req("g", &leader, "a", &["t"]));
    assert_eq!(h.c.group_state("g"), Some("PreparingRebalance"));
    for _ in 0..9 {
        h.advance(3_000);
        assert!(!h.answered(t));
        for m in members.iter().filter(|m| **m != leader) {
            let code = h.heartbeat("g", m, generation, None);
            assert_eq!(code, codes::REBALANCE_IN_PROGRESS);
        }
    }
    // rebalance timeout: 30s after the rebalance started.
    h.advance_to(h.now + 5_000);
    let r = h.join_reply(t).expect("completed by the rebalance timeout");
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
    for m in members.iter().filter(|m| **m != leader) {
        assert_eq!(
            h.heartbeat("g", m, generation, None),
            codes::UNKNOWN_MEMBER_ID
        );
    }
}

#[test]
fn leave_group_batch_and_legacy_versions() {
    let mut h = Harness::default_config();
    let mut a = join_req("g", "", "a", &["t"]);
    a.group_instance_id = Some("inst-a".into());
    let ta = h.join(a);
    let (b, tb) = join_kip394(&mut h, "g", "b");
    let (c, tc) = join_kip394(&mut h, "g", "c");
    h.advance_to(h.now + 10_000);
    let generation = h.join_reply(ta).expect("a").generation_id;
    assert!(h.answered(tb) && h.answered(tc));

    // v3 batch: the static member by instance id, b by member id, one unknown.
    let r = h.leave(LeaveGroupRequest {
        api_version: 3,
        group_id: "g".into(),
        members: vec![
            LeaveGroupMember {
                member_id: String::new(),
                group_instance_id: Some("inst-a".into()),
                reason: None,
            },
            LeaveGroupMember {
                member_id: b.clone(),
                group_instance_id: None,
                reason: None,
            },
            LeaveGroupMember {
                member_id: "ghost".into(),
                group_instance_id: None,
                reason: None,
            },
        ],
    });
    assert_eq!(r.error_code, codes::NONE);
    let codes_: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
    assert_eq!(
        codes_,
        vec![codes::NONE, codes::NONE, codes::UNKNOWN_MEMBER_ID]
    );
    // c is alone; it must rejoin.
    assert_eq!(
        h.heartbeat("g", &c, generation, None),
        codes::REBALANCE_IN_PROGRESS
    );

    // v0-2: the member's error becomes the top-level error.
    let r = h.leave(LeaveGroupRequest {
        api_version: 1,
        group_id: "g".into(),
        members: vec![LeaveGroupMember {
            member_id: "ghost".into(),
            group_instance_id: None,
            reason: None,
        }],
    });
    assert_eq!(r.error_code, codes::UNKNOWN_MEMBER_ID);
    let r = h.leave(LeaveGroupRequest {
        api_version: 0,
        group_id: "g".into(),
        members: vec![LeaveGroupMember {
            member_id: c.clone(),
            group_instance_id: None,
            reason: None,
        }],
    });
    assert_eq!(r.error_code, codes::NONE);
    assert_eq!(h.c.group_state("g"), Some("Empty"));
    let r = h.leave(LeaveGroupRequest {
        api_version: 0,
        group_id: "nope".into(),
        members: vec![LeaveGroupMember::default()],
    });
    assert_eq!(r.error_code, codes::UNKNOWN_MEMBER_ID);
}

#[test]
fn legacy_leave_by_member_id_removes_a_static_member_as_kafka_does() {
    // Kafka's coordinator validates a LeaveGroup without instance id by member id only,
    // so a static member named by its member id is removed (static *clients* simply do
    // not send LeaveGroup on shutdown).
    let mut h = Harness::default_config();
    let mut a = join_req("g", "", "a", &["t"]);
    a.group_instance_id = Some("inst-a".into());
    let ta = h.join(a);
    h.advance_to(h.now + 10_000);
    let r = h.join_reply(ta).expect("joined");
    let resp = h.leave(LeaveGroupRequest {
        api_version: 2,
        group_id: "g".into(),
        members: vec![LeaveGroupMember {
            member_id: r.member_id.clone(),
            group_instance_id: None,
            reason: None,
        }],
    });
    assert_eq!(resp.error_code, codes::NONE);
    assert_eq!(h.c.group_state("g"), Some("Empty"));
}

#[test]
fn repeated_rebalances_pass_metadata_and_assignments_through() {
    // Cooperative-sticky is client-side: the coordinator just relays bytes, generation
    // after generation.
    let mut h = Harness::default_config();
    let (members, _, mut generation) = stable_group(&mut h, "g");
    for round in 0..4u8 {
        let tokens: Vec<ReplyToken> = members
            .iter()
            .map(|m| {
                let mut r = join_req("g", m, "x", &["t"]);
                r.protocols[0].metadata = vec![round; 3].into();
                h.join(r)
            })
            .collect();
        let replies: Vec<JoinGroupResponse> = tokens
            .iter()
            .map(|t| h.join_reply(*t).expect("joined"))
            .collect();
        assert!(replies.iter().all(|r| r.generation_id == generation + 1));
        generation += 1;
        let leader = replies[0].leader.clone();
        let lr = replies
            .iter()
            .find(|r| r.member_id == leader)
            .expect("leader reply");
        assert!(lr.members.iter().all(|m| m.metadata[..] == [round; 3]));
        let mut follower_tokens = Vec::new();
        for m in members.iter().filter(|m| **m != leader) {
            follower_tokens.push(h.sync(sync_req("g", m, generation, &[])));
        }
        let payload = vec![round, 42];
        let refs: Vec<(&str, &[u8])> = members
            .iter()
            .map(|m| (m.as_str(), payload.as_slice()))
            .collect();
        h.sync(sync_req("g", &leader, generation, &refs));
        for t in follower_tokens {
            assert_eq!(h.sync_reply(t).expect("synced").assignment[..], [round, 42]);
        }
    }
}

#[test]
fn unsynced_members_are_removed_after_the_rebalance_timeout() {
    let mut h = Harness::default_config();
    let (a, ta) = join_kip394(&mut h, "g", "a");
    let (b, tb) = join_kip394(&mut h, "g", "b");
    h.advance_to(h.now + 10_000);
    let generation = h.join_reply(ta).expect("a").generation_id;
    assert!(h.answered(tb));
    // The join phase completed at t=6000 (initial delay extended once). Only the
    // leader syncs; b heartbeats but never syncs.
    h.sync(sync_req("g", &a, generation, &[(a.as_str(), b"x")]));
    assert_eq!(h.c.group_state("g"), Some("Stable"));
    while h.now < 36_000 - 3_000 {
        h.advance(3_000);
        assert_eq!(h.heartbeat("g", &a, generation, None), codes::NONE);
        assert_eq!(h.heartbeat("g", &b, generation, None), codes::NONE);
    }
    h.advance_to(36_000);
    assert_eq!(h.c.group_state("g"), Some("PreparingRebalance"));
    assert_eq!(
        h.heartbeat("g", &b, generation, None),
        codes::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        h.heartbeat("g", &a, generation, None),
        codes::REBALANCE_IN_PROGRESS
    );
}

#[test]
fn failover_replay_restores_stable_groups_with_running_sessions() {
    let mut h = Harness::default_config();
    let (members, leader, generation) = stable_group(&mut h, "g");
    let mut c = h.replayed();
    // Loading: requests are refused until loading finishes.
    let outs = c.heartbeat(
        HeartbeatRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: leader.clone(),
            group_instance_id: None,
        },
        h.t(),
        ReplyToken(9_000),
    );
    assert!(
        matches!(&outs[..], [Output::Reply { response, .. }] if response.error_code() == codes::COORDINATOR_LOAD_IN_PROGRESS)
    );
    h.absorb(outs);
    let outs = c.finish_loading(h.t());
    h.c = c;
    h.absorb(outs);
    assert_eq!(h.c.group_state("g"), Some("Stable"));
    assert_eq!(h.c.durable_state(), h.replayed().durable_state());
    // Members keep their generation and assignment.
    let s = h.sync(sync_req("g", &members[1], generation, &[]));
    assert_eq!(
        h.sync_reply(s).expect("sync").assignment[..],
        *format!("assign-{}", members[1]).as_bytes()
    );
    // Two members keep heartbeating, the third's session (restarted at load) expires.
    for _ in 0..4 {
        h.advance(3_000);
        h.heartbeat("g", &members[0], generation, None);
        h.heartbeat("g", &members[1], generation, None);
    }
    assert_eq!(
        h.heartbeat("g", &members[2], generation, None),
        codes::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn unload_answers_parked_requests() {
    let mut h = Harness::default_config();
    let (_, t) = join_kip394(&mut h, "g", "a");
    assert!(!h.answered(t));
    let outs = h.c.unload();
    h.absorb(outs);
    assert_eq!(h.code(t), Some(codes::NOT_COORDINATOR));
    assert_eq!(h.heartbeat("g", "x", 1, None), codes::NOT_COORDINATOR);
    assert_eq!(h.c.status(), CoordinatorStatus::Unloaded);
}

#[test]
fn list_and_describe_groups() {
    let mut h = Harness::default_config();
    let (members, _, _) = stable_group(&mut h, "g1");
    h.commit(commit_req("simple", "", -1, "t", 0, 5));
    let all = h.c.list_groups(&ListGroupsRequest::default());
    let ids: Vec<(&str, &str, &str)> = all
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str(),
                g.group_state.as_str(),
                g.protocol_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![("g1", "Stable", "consumer"), ("simple", "Empty", "")]
    );
    let stable = h.c.list_groups(&ListGroupsRequest {
        states_filter: vec!["stable".into()],
        types_filter: vec!["CLASSIC".into()],
    });
    assert_eq!(stable.groups.len(), 1);
    let none = h.c.list_groups(&ListGroupsRequest {
        states_filter: vec![],
        types_filter: vec!["consumer".into()],
    });
    assert!(none.groups.is_empty());

    let d = h.c.describe_groups(&["g1".to_string(), "nope".to_string()]);
    assert_eq!(d.groups[0].group_state, "Stable");
    assert_eq!(d.groups[0].protocol_data, "range");
    assert_eq!(d.groups[0].members.len(), 3);
    let m = d.groups[0]
        .members
        .iter()
        .find(|m| m.member_id == members[0])
        .expect("member");
    assert_eq!(
        m.member_assignment[..],
        *format!("assign-{}", members[0]).as_bytes()
    );
    assert_eq!(d.groups[1].group_state, "Dead");
    assert_eq!(d.groups[1].error_code, codes::NONE);
}
