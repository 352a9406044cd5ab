//! Partition ownership: a coordinator serves only the groups whose `__consumer_offsets`
//! partition it owns, unloads partitions it loses and loads partitions it gains.

mod common;

use std::collections::BTreeSet;

use common::*;
use samsa_coordinator::*;
use samsa_model::TimestampMs;

const PARTITIONS: u32 = 2;

fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        offsets_topic_num_partitions: PARTITIONS,
        ..CoordinatorConfig::default()
    }
}

/// The `nth` group id (of the form `g<i>`) that maps to `partition`.
fn group_on(partition: u32, nth: usize) -> String {
    (0u32..)
        .map(|i| format!("g{i}"))
        .filter(|g| partition_for(g, PARTITIONS) == partition)
        .nth(nth)
        .expect("some group id maps to every partition")
}

fn owned(ps: &[u32]) -> Option<BTreeSet<u32>> {
    Some(ps.iter().copied().collect())
}

fn topics() -> TopicMetadataMap {
    let mut m = TopicMetadataMap::new();
    m.insert("t", tid(1), 4);
    m
}

fn cg_join(group: &str, member: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest {
        api_version: 1,
        group_id: group.into(),
        member_id: member.into(),
        member_epoch: 0,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        subscribed_topic_regex: None,
        server_assignor: None,
        topic_partitions: Some(vec![]),
        client_id: "client".into(),
        client_host: "/10.0.0.1".into(),
    }
}

fn cg_beat(group: &str, member: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest {
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        subscribed_topic_names: None,
        topic_partitions: None,
        ..cg_join(group, member)
    }
}

fn fetch_all(c: &Coordinator, groups: &[&str]) -> OffsetFetchResponse {
    c.offset_fetch(&OffsetFetchRequest {
        api_version: 8,
        groups: groups
            .iter()
            .map(|g| OffsetFetchGroup {
                group_id: g.to_string(),
                member_id: None,
                member_epoch: -1,
                topics: None,
            })
            .collect(),
        require_stable: false,
    })
}

fn listed(c: &Coordinator) -> (i16, Vec<String>) {
    let r = c.list_groups(&ListGroupsRequest::default());
    (
        r.error_code,
        r.groups.into_iter().map(|g| g.group_id).collect(),
    )
}

/// Joins `client` with KIP-394: MEMBER_ID_REQUIRED, then the rejoin that parks.
fn join_parked(h: &mut Harness, group: &str, client: &str) -> (String, ReplyToken) {
    let t = h.join(join_req(group, "", client, &["t"]));
    let r = h.join_reply(t).expect("immediate MEMBER_ID_REQUIRED");
    assert_eq!(r.error_code, codes::MEMBER_ID_REQUIRED);
    let t = h.join(join_req(group, &r.member_id, client, &["t"]));
    assert!(!h.answered(t));
    (r.member_id, t)
}

fn records_on(h: &Harness, partition: u32) -> usize {
    h.records.iter().filter(|(p, _)| *p == partition).count()
}

#[test]
fn groups_of_unowned_partitions_get_not_coordinator_on_every_api() {
    let md = topics();
    let mut h = Harness::new(config());
    let (mine, mine_cg, theirs) = (group_on(0, 0), group_on(0, 1), group_on(1, 0));
    assert!(h.c.owns(&theirs), "owns every partition by default");
    assert_eq!(h.c.owned_partitions(), None);

    let outs = h.c.set_owned_partitions(owned(&[0]));
    assert!(outs.is_empty());
    assert!(h.c.owns(&mine) && h.c.owns(&mine_cg) && !h.c.owns(&theirs));
    assert_eq!(h.c.owned_partitions(), owned(&[0]).as_ref());
    assert!(h.c.loading_partitions().is_empty());
    let nc = codes::NOT_COORDINATOR;

    // JoinGroup: generation -1, the member id echoed.
    let t = h.join(join_req(&theirs, "m-1", "a", &["t"]));
    assert_eq!(
        h.join_reply(t),
        Some(JoinGroupResponse::error(nc, "m-1".into()))
    );
    let t = h.join(join_req(&theirs, "", "a", &["t"]));
    assert_eq!(
        h.join_reply(t),
        Some(JoinGroupResponse::error(nc, "".into()))
    );
    // SyncGroup.
    let t = h.sync(sync_req(&theirs, "m-1", 1, &[("m-1", b"x")]));
    assert_eq!(h.sync_reply(t), Some(SyncGroupResponse::error(nc)));
    // Heartbeat.
    assert_eq!(h.heartbeat(&theirs, "m-1", 1, None), nc);
    // LeaveGroup: top-level error, no member results (v3+ and v0).
    for api_version in [0, 3] {
        let r = h.leave(LeaveGroupRequest {
            api_version,
            group_id: theirs.clone(),
            members: vec![LeaveGroupMember {
                member_id: "m-1".into(),
                ..Default::default()
            }],
        });
        assert_eq!(
            r,
            LeaveGroupResponse {
                error_code: nc,
                members: Vec::new()
            }
        );
    }
    // OffsetCommit: every partition of every topic.
    let mut req = commit_req(&theirs, "", -1, "t", 0, 5);
    req.topics[0].partitions.push(OffsetCommitPartition {
        partition_index: 1,
        committed_offset: 7,
        committed_leader_epoch: -1,
        committed_metadata: None,
    });
    req.topics.push(OffsetCommitTopic {
        name: "u".into(),
        topic_id: None,
        partitions: req.topics[0].partitions.clone(),
    });
    let r = h.commit(req);
    let codes_seen: Vec<(String, i32, i16)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.clone(), p.partition_index, p.error_code))
        })
        .collect();
    assert_eq!(
        codes_seen,
        vec![
            ("t".into(), 0, nc),
            ("t".into(), 1, nc),
            ("u".into(), 0, nc),
            ("u".into(), 1, nc)
        ]
    );
    // OffsetDelete.
    let r = h.offset_delete(OffsetDeleteRequest {
        group_id: theirs.clone(),
        topics: vec![OffsetDeleteTopic {
            name: "t".into(),
            partitions: vec![0],
        }],
    });
    assert_eq!(
        r,
        OffsetDeleteResponse {
            error_code: nc,
            topics: Vec::new()
        }
    );
    // ConsumerGroupHeartbeat.
    let r = h.cgh(cg_join(&theirs, "cm-1"), &md);
    assert_eq!(r.error_code, nc);
    assert_eq!((r.member_id, r.member_epoch, r.assignment), (None, 0, None));
    // Nothing about the unowned group was created or written.
    assert_eq!(h.c.group_state(&theirs), None);
    assert_eq!(records_on(&h, 1), 0);

    // The owned partition's groups are served.
    let t = h.join(join_req(&mine, "", "a", &["t"]));
    assert_eq!(
        h.join_reply(t).map(|r| r.error_code),
        Some(codes::MEMBER_ID_REQUIRED)
    );
    assert_eq!(
        h.heartbeat(&mine, "nobody", 1, None),
        codes::UNKNOWN_MEMBER_ID
    );
    let r = h.commit(commit_req(&mine, "", -1, "t", 0, 42));
    assert_eq!(r.topics[0].partitions[0].error_code, codes::NONE);
    let r = h.cgh(cg_join(&mine_cg, "cm-1"), &md);
    assert_eq!((r.error_code, r.member_epoch), (codes::NONE, 1));
    assert!(records_on(&h, 0) > 0);
    assert_eq!(records_on(&h, 1), 0);

    // Multi-group APIs answer per group.
    let r = fetch_all(&h.c, &[&mine, &theirs]);
    assert_eq!(r.groups[0].error_code, codes::NONE);
    assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 42);
    assert_eq!(
        r.groups[1],
        OffsetFetchGroupResponse {
            group_id: theirs.clone(),
            error_code: nc,
            topics: Vec::new()
        }
    );
    let r = h.c.describe_groups(&[mine.clone(), theirs.clone()]);
    assert_eq!(r.groups[0].error_code, codes::NONE);
    assert_eq!(r.groups[0].group_state, "Empty");
    assert_eq!(
        r.groups[1],
        DescribedGroup {
            error_code: nc,
            group_id: theirs.clone(),
            ..Default::default()
        }
    );
    let r = h.c.consumer_group_describe(
        &ConsumerGroupDescribeRequest {
            group_ids: vec![mine_cg.clone(), theirs.clone()],
        },
        &md,
    );
    assert_eq!(r.groups[0].error_code, codes::NONE);
    assert_eq!(r.groups[0].members.len(), 1);
    assert_eq!(
        r.groups[1],
        ConsumerDescribedGroup {
            error_code: nc,
            group_id: theirs.clone(),
            ..Default::default()
        }
    );
    let r = h.delete_groups(&[&mine, &theirs]);
    assert_eq!(
        r.results,
        vec![
            DeletableGroupResult {
                group_id: mine.clone(),
                error_code: codes::NONE
            },
            DeletableGroupResult {
                group_id: theirs.clone(),
                error_code: nc
            }
        ]
    );
    assert_eq!(h.c.group_state(&mine), None);
    assert_eq!(records_on(&h, 1), 0);
}

#[test]
fn list_groups_lists_only_owned_partitions() {
    let md = topics();
    let mut h = Harness::new(config());
    let (a0, b0, a1, b1) = (
        group_on(0, 0),
        group_on(0, 1),
        group_on(1, 0),
        group_on(1, 1),
    );
    for g in [&a0, &a1] {
        h.commit(commit_req(g, "", -1, "t", 0, 1));
    }
    for g in [&b0, &b1] {
        let r = h.cgh(cg_join(g, "m"), &md);
        assert_eq!(r.error_code, codes::NONE);
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let (code, ids) = listed(&h.c);
    assert_eq!(code, codes::NONE);
    assert_eq!(
        sorted(ids),
        sorted(vec![a0.clone(), b0.clone(), a1.clone(), b1.clone()])
    );

    h.c.set_owned_partitions(owned(&[0]));
    let (code, ids) = listed(&h.c);
    assert_eq!(code, codes::NONE);
    assert_eq!(sorted(ids), sorted(vec![a0.clone(), b0.clone()]));
    // The filters still apply on top.
    let r = h.c.list_groups(&ListGroupsRequest {
        states_filter: vec![],
        types_filter: vec!["consumer".into()],
    });
    let ids: Vec<&str> = r.groups.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(ids, vec![b0.as_str()]);

    h.c.set_owned_partitions(owned(&[]));
    assert_eq!(listed(&h.c), (codes::NONE, Vec::new()));
}

#[test]
fn dropping_a_partition_fails_its_parked_requests_and_forgets_its_groups() {
    let md = topics();
    let mut h = Harness::new(config());
    let (mine, a1, b1, c1, d1) = (
        group_on(0, 0),
        group_on(1, 0),
        group_on(1, 1),
        group_on(1, 2),
        group_on(1, 3),
    );
    // a1: two members through the join phase; the follower's SyncGroup parks waiting for
    // the leader.
    let (ma, ta) = join_parked(&mut h, &a1, "a");
    let (mb, tb) = join_parked(&mut h, &a1, "b");
    h.advance_to(h.now + 10_000);
    let (ra, rb) = (h.join_reply(ta).expect("a"), h.join_reply(tb).expect("b"));
    assert_eq!((ra.error_code, rb.error_code), (codes::NONE, codes::NONE));
    let follower = if ra.leader == ma { &mb } else { &ma };
    let sync_t = h.sync(sync_req(&a1, follower, ra.generation_id, &[]));
    assert!(!h.answered(sync_t));
    assert_eq!(h.c.group_state(&a1), Some("CompletingRebalance"));
    // b1: a JoinGroup parked in the initial rebalance delay; so is one of the owned group.
    let (mx, join_b1) = join_parked(&mut h, &b1, "x");
    let (_, join_mine) = join_parked(&mut h, &mine, "y");
    // c1: a KIP-848 group (session deadlines); d1: committed offsets only.
    let r = h.cgh(cg_join(&c1, "cm"), &md);
    assert_eq!(r.error_code, codes::NONE);
    h.commit(commit_req(&d1, "", -1, "t", 0, 9));
    assert!(h.c.committed_offsets(&d1).is_some());
    let before_p1 = records_on(&h, 1);

    let outs = h.c.set_owned_partitions(owned(&[0]));
    // Exactly the parked requests of partition 1, answered NOT_COORDINATOR; no appends.
    let mut answered: Vec<(ReplyToken, Response)> = outs
        .iter()
        .map(|o| match o {
            Output::Reply { token, response } => (*token, response.clone()),
            Output::Append { .. } => panic!("unloading appends nothing: {o:?}"),
        })
        .collect();
    answered.sort_by_key(|(t, _)| *t);
    let mut expected = vec![
        (
            sync_t,
            Response::SyncGroup(SyncGroupResponse::error(codes::NOT_COORDINATOR)),
        ),
        (
            join_b1,
            Response::JoinGroup(JoinGroupResponse::error(codes::NOT_COORDINATOR, mx)),
        ),
    ];
    expected.sort_by_key(|(t, _)| *t);
    assert_eq!(answered, expected);
    h.absorb(outs);
    assert_eq!(
        h.sync_reply(sync_t),
        Some(SyncGroupResponse::error(codes::NOT_COORDINATOR))
    );
    assert!(!h.answered(join_mine));

    // The groups and offsets of partition 1 are gone; partition 0 is untouched.
    for g in [&a1, &b1, &c1, &d1] {
        assert_eq!(h.c.group_state(g), None, "{g}");
        assert_eq!(h.c.committed_offsets(g), None, "{g}");
    }
    let d = h.c.durable_state();
    assert!(d
        .classic_groups
        .keys()
        .chain(d.consumer_groups.keys())
        .chain(d.offsets.keys())
        .all(|g| partition_for(g, PARTITIONS) == 0));
    assert_eq!(h.c.group_state(&mine), Some("PreparingRebalance"));

    // Their deadlines are cancelled: long after every session and rebalance timeout,
    // nothing more is written to partition 1 and no dropped token is answered twice
    // (the harness panics on that); the owned group's join completes.
    h.advance_to(h.now + 600_000);
    assert_eq!(records_on(&h, 1), before_p1);
    assert_eq!(
        h.join_reply(join_mine).map(|r| r.error_code),
        Some(codes::NONE)
    );
    assert_eq!(
        h.heartbeat(&a1, &ma, ra.generation_id, None),
        codes::NOT_COORDINATOR
    );
    assert_eq!(
        h.cgh(cg_beat(&c1, "cm", 1), &md).error_code,
        codes::NOT_COORDINATOR
    );
}

#[test]
fn dropping_a_partition_cancels_its_deadlines() {
    let md = topics();
    let mut h = Harness::new(config());
    let (a1, b1) = (group_on(1, 0), group_on(1, 1));
    join_parked(&mut h, &a1, "a");
    h.cgh(cg_join(&b1, "cm"), &md);
    let retention_check = TimestampMs(600_000);
    assert!(h.c.next_deadline() < Some(retention_check));
    let outs = h.c.set_owned_partitions(owned(&[0]));
    assert_eq!(outs.len(), 1, "the parked join");
    h.absorb(outs);
    // Only the coordinator-wide offset expiry is left.
    assert_eq!(h.c.next_deadline(), Some(retention_check));
}

#[test]
fn regained_partitions_load_before_they_are_served() {
    let md = topics();
    let mut h = Harness::new(CoordinatorConfig {
        offsets_retention_minutes: 1,
        offsets_retention_check_interval_ms: 10_000,
        ..config()
    });
    let (mine, theirs, theirs_cg) = (group_on(0, 0), group_on(1, 0), group_on(1, 1));
    h.commit(commit_req(&mine, "", -1, "t", 0, 3));
    h.commit(commit_req(&theirs, "", -1, "t", 0, 5));
    let r = h.cgh(cg_join(&theirs_cg, "cm"), &md);
    assert_eq!((r.error_code, r.member_epoch), (codes::NONE, 1));
    let full = h.c.durable_state();

    h.c.set_owned_partitions(owned(&[0]));
    assert_eq!(h.c.group_state(&theirs_cg), None);

    // Back to owning everything: partition 1 must be loaded first.
    let outs = h.c.set_owned_partitions(None);
    assert!(outs.is_empty());
    assert_eq!(h.c.owned_partitions(), None);
    assert!(h.c.owns(&theirs));
    assert_eq!(h.c.loading_partitions(), &BTreeSet::from([1]));
    let lip = codes::COORDINATOR_LOAD_IN_PROGRESS;
    assert_eq!(fetch_one(&h.c, &theirs, "t", 0), (-1, lip));
    let r = h.commit(commit_req(&theirs, "", -1, "t", 0, 6));
    assert_eq!(r.topics[0].partitions[0].error_code, lip);
    assert_eq!(h.cgh(cg_beat(&theirs_cg, "cm", 1), &md).error_code, lip);
    assert_eq!(listed(&h.c), (lip, Vec::new()));
    // Partition 0 keeps being served meanwhile.
    assert_eq!(fetch_one(&h.c, &mine, "t", 0), (3, codes::NONE));

    // Replay partition 1's log; records of other partitions are refused now.
    let log_p1: Vec<Record> = h
        .records
        .iter()
        .filter(|(p, _)| *p == 1)
        .map(|(_, r)| r.clone())
        .collect();
    assert!(!log_p1.is_empty());
    for r in &log_p1 {
        h.c.replay(&r.key, r.value.as_deref()).expect("replay");
    }
    let (_, r0) = h
        .records
        .iter()
        .find(|(p, _)| *p == 0)
        .expect("a partition 0 record");
    assert_eq!(
        h.c.replay(&r0.key, r0.value.as_deref()),
        Err(ReplayError::NotLoading)
    );

    // Offset expiry leaves the loading partition alone: only partition 0 gets
    // tombstones while partition 1 loads.
    let before_p1 = records_on(&h, 1);
    h.advance_to(h.now + 120_000);
    assert_eq!(fetch_one(&h.c, &mine, "t", 0), (-1, codes::NONE));
    assert_eq!(records_on(&h, 1), before_p1);

    let outs = h.c.finish_loading_partition(1, h.t());
    h.absorb(outs);
    assert!(h.c.loading_partitions().is_empty());
    let restored = h.c.durable_state();
    assert_eq!(
        restored.consumer_groups.get(&theirs_cg),
        full.consumer_groups.get(&theirs_cg)
    );
    assert_eq!(restored.offsets.get(&theirs), full.offsets.get(&theirs));
    // Served again, exactly as before the partition was lost.
    assert_eq!(fetch_one(&h.c, &theirs, "t", 0), (5, codes::NONE));
    let (code, ids) = listed(&h.c);
    assert_eq!(code, codes::NONE);
    assert!(ids.contains(&theirs) && ids.contains(&theirs_cg));
    // Loading restarted the member's session at `finish_loading_partition` (it last
    // heartbeated two minutes ago): it is fenced once silent for the session timeout
    // (45 s) from then, which is written to partition 1.
    let loaded_at = h.now;
    h.advance_to(loaded_at + 44_999);
    assert!(h
        .c
        .consumer_group_holdings(&theirs_cg)
        .is_some_and(|m| m.contains_key("cm")));
    let before_p1 = records_on(&h, 1);
    h.advance_to(loaded_at + 45_000);
    assert!(h
        .c
        .consumer_group_holdings(&theirs_cg)
        .is_some_and(|m| m.is_empty()));
    assert!(records_on(&h, 1) > before_p1);
    // The retention checks since then expired the old offsets of `theirs`.
    assert_eq!(fetch_one(&h.c, &theirs, "t", 0), (-1, codes::NONE));

    // A second call is a no-op.
    assert!(h.c.finish_loading_partition(1, h.t()).is_empty());
}

#[test]
fn ownership_set_while_loading_skips_records_of_other_partitions() {
    let md = topics();
    let mut h = Harness::new(config());
    let (mine, theirs, theirs_cg) = (group_on(0, 0), group_on(1, 0), group_on(1, 1));
    h.commit(commit_req(&mine, "", -1, "t", 0, 3));
    h.commit(commit_req(&theirs, "", -1, "t", 0, 5));
    h.cgh(cg_join(&theirs_cg, "cm"), &md);
    let full = h.c.durable_state();

    let mut c = Coordinator::new(config(), counting_ids());
    assert!(c.set_owned_partitions(owned(&[1])).is_empty());
    for (_, r) in &h.records {
        c.replay(&r.key, r.value.as_deref()).expect("replay");
    }
    assert!(c.loading_partitions().is_empty());
    c.finish_loading(h.t());
    let d = c.durable_state();
    assert_eq!(d.offsets.get(&mine), None);
    assert_eq!(d.classic_groups.get(&mine), None);
    assert_eq!(d.offsets.get(&theirs), full.offsets.get(&theirs));
    assert_eq!(
        d.consumer_groups.get(&theirs_cg),
        full.consumer_groups.get(&theirs_cg)
    );
    assert_eq!(fetch_one(&c, &theirs, "t", 0), (5, codes::NONE));
    assert_eq!(fetch_one(&c, &mine, "t", 0), (-1, codes::NOT_COORDINATOR));
    // Once active, replay of a partition that is not loading is refused.
    let (_, r) = &h.records[0];
    assert_eq!(
        c.replay(&r.key, r.value.as_deref()),
        Err(ReplayError::NotLoading)
    );
}

#[test]
fn all_owned_by_default_and_after_none() {
    let mut h = Harness::new(config());
    let groups: Vec<String> = (0..4).map(|i| group_on(i % PARTITIONS, 0)).collect();
    // Setting None on a coordinator that owns everything changes nothing.
    assert!(h.c.set_owned_partitions(None).is_empty());
    assert!(h.c.loading_partitions().is_empty());
    for g in &groups {
        assert!(h.c.owns(g));
        let r = h.commit(commit_req(g, "", -1, "t", 0, 1));
        assert_eq!(r.topics[0].partitions[0].error_code, codes::NONE);
    }
    // An unloaded coordinator answers NOT_COORDINATOR whatever it owns.
    let outs = h.c.unload();
    h.absorb(outs);
    assert!(h.c.set_owned_partitions(owned(&[0, 1])).is_empty());
    assert!(h.c.loading_partitions().is_empty());
    assert_eq!(
        fetch_one(&h.c, &groups[0], "t", 0),
        (-1, codes::NOT_COORDINATOR)
    );
}
