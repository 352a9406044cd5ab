//! Offset commit / fetch / delete, group deletion, retention, and replay of the records.

mod common;

use common::*;
use samsa_coordinator::*;

/// A stable single-member classic group; returns (member id, generation).
fn one_member_group(h: &mut Harness, group: &str, topics: &[&str]) -> (String, i32) {
    let t = h.join(join_req(group, "", "a", topics));
    let id = h.join_reply(t).expect("id").member_id;
    let t = h.join(join_req(group, &id, "a", topics));
    h.advance_to(h.now + 5_000);
    let generation = h.join_reply(t).expect("joined").generation_id;
    h.sync(sync_req(group, &id, generation, &[(id.as_str(), b"x")]));
    assert_eq!(h.c.group_state(group), Some("Stable"));
    (id, generation)
}

#[test]
fn commit_and_fetch_with_generation_checks() {
    let mut h = Harness::default_config();
    let (id, generation) = one_member_group(&mut h, "g", &["t"]);
    let r = h.commit(commit_req("g", &id, generation, "t", 0, 42));
    assert_eq!(r.topics[0].partitions[0].error_code, codes::NONE);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (42, codes::NONE));
    assert_eq!(
        fetch_one(&h.c, "g", "t", 1),
        (-1, codes::NONE),
        "unknown partition"
    );
    assert_eq!(
        fetch_one(&h.c, "missing", "t", 0),
        (-1, codes::NONE),
        "unknown group"
    );

    let stale = h.commit(commit_req("g", &id, generation + 1, "t", 0, 50));
    assert_eq!(
        stale.topics[0].partitions[0].error_code,
        codes::ILLEGAL_GENERATION
    );
    let unknown = h.commit(commit_req("g", "ghost", generation, "t", 0, 50));
    assert_eq!(
        unknown.topics[0].partitions[0].error_code,
        codes::UNKNOWN_MEMBER_ID
    );
    // A "simple" commit (generation -1, no member) to a group with members.
    let simple = h.commit(commit_req("g", "", -1, "t", 0, 50));
    assert_eq!(
        simple.topics[0].partitions[0].error_code,
        codes::UNKNOWN_MEMBER_ID
    );
    // A commit with a generation to a group that does not exist.
    let r = h.commit(commit_req("nope", "m", 3, "t", 0, 1));
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        codes::ILLEGAL_GENERATION
    );
    let mut v9 = commit_req("nope", "m", 3, "t", 0, 1);
    v9.api_version = 9;
    let r = h.commit(v9);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        codes::GROUP_ID_NOT_FOUND
    );
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (42, codes::NONE));

    // Metadata larger than offset.metadata.max.bytes fails only that partition.
    let mut big = commit_req("g", &id, generation, "t", 0, 60);
    big.topics[0].partitions.push(OffsetCommitPartition {
        partition_index: 1,
        committed_offset: 7,
        committed_leader_epoch: -1,
        committed_metadata: Some("x".repeat(4097)),
    });
    let r = h.commit(big);
    let codes_: Vec<i16> = r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes_, vec![codes::NONE, codes::OFFSET_METADATA_TOO_LARGE]);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (60, codes::NONE));
    assert_eq!(fetch_one(&h.c, "g", "t", 1), (-1, codes::NONE));

    // Fetch all (topics = null), and a multi-group fetch.
    h.commit(commit_req("g", &id, generation, "u", 3, 9));
    let all = h.c.offset_fetch(&OffsetFetchRequest {
        api_version: 8,
        groups: vec![
            OffsetFetchGroup {
                group_id: "g".into(),
                member_id: None,
                member_epoch: -1,
                topics: None,
            },
            OffsetFetchGroup {
                group_id: "missing".into(),
                member_id: None,
                member_epoch: -1,
                topics: None,
            },
        ],
        require_stable: true,
    });
    type Row = (i32, i64, i32);
    let topics: Vec<(String, Vec<Row>)> = all.groups[0]
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions
                    .iter()
                    .map(|p| {
                        (
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        topics,
        vec![
            ("t".to_string(), vec![(0, 60, 1)]),
            ("u".to_string(), vec![(3, 9, 1)])
        ]
    );
    assert!(all.groups[1].topics.is_empty());
    let committed = h.c.committed_offsets("g").expect("offsets");
    assert_eq!(committed.len(), 2);

    // Commits during CompletingRebalance are refused.
    let t = h.join(join_req("g", &id, "a", &["t", "v"]));
    let r = h.join_reply(t).expect("single member completes at once");
    assert_eq!(h.c.group_state("g"), Some("CompletingRebalance"));
    let busy = h.commit(commit_req("g", &id, r.generation_id, "t", 0, 61));
    assert_eq!(
        busy.topics[0].partitions[0].error_code,
        codes::REBALANCE_IN_PROGRESS
    );
}

#[test]
fn simple_groups_offset_delete_and_delete_groups() {
    let mut h = Harness::default_config();
    let r = h.commit(commit_req("simple", "", -1, "t", 0, 5));
    assert_eq!(r.topics[0].partitions[0].error_code, codes::NONE);
    assert_eq!(h.c.group_state("simple"), Some("Empty"));

    let (_, _) = one_member_group(&mut h, "busy", &["t"]);
    let od = h.offset_delete(OffsetDeleteRequest {
        group_id: "busy".into(),
        topics: vec![
            OffsetDeleteTopic {
                name: "t".into(),
                partitions: vec![0],
            },
            OffsetDeleteTopic {
                name: "other".into(),
                partitions: vec![0],
            },
        ],
    });
    assert_eq!(od.error_code, codes::NONE);
    assert_eq!(
        od.topics[0].partitions[0].error_code,
        codes::GROUP_SUBSCRIBED_TO_TOPIC
    );
    assert_eq!(od.topics[1].partitions[0].error_code, codes::NONE);

    let od = h.offset_delete(OffsetDeleteRequest {
        group_id: "simple".into(),
        topics: vec![OffsetDeleteTopic {
            name: "t".into(),
            partitions: vec![0],
        }],
    });
    assert_eq!(od.topics[0].partitions[0].error_code, codes::NONE);
    assert_eq!(fetch_one(&h.c, "simple", "t", 0), (-1, codes::NONE));
    let od = h.offset_delete(OffsetDeleteRequest {
        group_id: "none".into(),
        topics: vec![],
    });
    assert_eq!(od.error_code, codes::GROUP_ID_NOT_FOUND);

    h.commit(commit_req("simple", "", -1, "t", 1, 6));
    let d = h.delete_groups(&["busy", "simple", "none", ""]);
    let got: Vec<(String, i16)> = d
        .results
        .iter()
        .map(|r| (r.group_id.clone(), r.error_code))
        .collect();
    assert_eq!(
        got,
        vec![
            ("busy".to_string(), codes::NON_EMPTY_GROUP),
            ("simple".to_string(), codes::NONE),
            ("none".to_string(), codes::GROUP_ID_NOT_FOUND),
            (String::new(), codes::INVALID_GROUP_ID),
        ]
    );
    assert_eq!(h.c.group_state("simple"), None);
    assert_eq!(fetch_one(&h.c, "simple", "t", 1), (-1, codes::NONE));
    assert_eq!(h.c.durable_state(), h.replayed().durable_state());
}

#[test]
fn offsets_of_empty_groups_expire_after_retention() {
    let config = CoordinatorConfig {
        offsets_retention_minutes: 1,
        offsets_retention_check_interval_ms: 10_000,
        ..Default::default()
    };
    let mut h = Harness::new(config);
    h.commit(commit_req("simple", "", -1, "t", 0, 5));
    let (id, generation) = one_member_group(&mut h, "g", &["t"]);
    h.commit(commit_req("g", &id, generation, "t", 0, 7));
    h.commit(commit_req("g", &id, generation, "gone", 0, 8));
    let committed_at = h.now;

    // Keep the member alive for 2 minutes: offsets of the subscribed topic stay, the
    // unsubscribed one expires (Stable consumer group rule).
    while h.now < committed_at + 120_000 {
        h.advance(3_000);
        h.heartbeat("g", &id, generation, None);
    }
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (7, codes::NONE));
    assert_eq!(fetch_one(&h.c, "g", "gone", 0), (-1, codes::NONE));
    assert_eq!(
        fetch_one(&h.c, "simple", "t", 0),
        (-1, codes::NONE),
        "simple group offsets expire from commit time"
    );
    assert_eq!(
        h.c.group_state("simple"),
        None,
        "and the empty group goes with them"
    );

    // The member leaves; retention now counts from when the group became Empty.
    h.leave(LeaveGroupRequest {
        api_version: 3,
        group_id: "g".into(),
        members: vec![LeaveGroupMember {
            member_id: id.clone(),
            group_instance_id: None,
            reason: None,
        }],
    });
    assert_eq!(h.c.group_state("g"), Some("Empty"));
    let empty_since = h.now;
    h.advance_to(empty_since + 50_000);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (7, codes::NONE));
    let tombstones_before = h.records.iter().filter(|(_, r)| r.value.is_none()).count();
    h.advance_to(empty_since + 71_000);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (-1, codes::NONE));
    assert_eq!(
        h.c.group_state("g"),
        None,
        "empty group without offsets is deleted"
    );
    let tombstones_after = h.records.iter().filter(|(_, r)| r.value.is_none()).count();
    assert_eq!(
        tombstones_after,
        tombstones_before + 2,
        "offset + group metadata tombstones"
    );
    assert_eq!(h.c.durable_state(), h.replayed().durable_state());
}

#[test]
fn explicit_retention_time_is_persisted_as_value_v1_and_honoured() {
    let mut h = Harness::default_config();
    let mut req = commit_req("simple", "", -1, "t", 0, 5);
    req.api_version = 2;
    req.retention_time_ms = 1_000;
    h.commit(req);
    let (_, rec) = h.records.last().expect("record").clone();
    let value = rec.value.expect("value");
    assert_eq!(
        &value[..2],
        &[0, 1],
        "OffsetCommitValue v1 carries the expire timestamp"
    );
    h.advance_to(600_000);
    assert_eq!(fetch_one(&h.c, "simple", "t", 0), (-1, codes::NONE));
}

#[test]
fn records_use_kafka_partitioning_and_replay_to_the_same_offsets() {
    let mut h = Harness::default_config();
    let (id, generation) = one_member_group(&mut h, "my-group", &["t"]);
    for p in 0..5 {
        h.commit(commit_req(
            "my-group",
            &id,
            generation,
            "t",
            p,
            100 + i64::from(p),
        ));
    }
    let expected = partition_for("my-group", 50);
    assert!(h.records.iter().all(|(p, _)| *p == expected));
    let mut c = h.replayed();
    h.absorb(c.finish_loading(h.t()));
    for p in 0..5 {
        assert_eq!(
            fetch_one(&c, "my-group", "t", p),
            (100 + i64::from(p), codes::NONE)
        );
    }
    assert_eq!(c.durable_state(), h.c.durable_state());
    // Replay refuses records once loaded, and garbage while loading.
    assert!(matches!(
        c.replay(&[0, 1], None),
        Err(ReplayError::NotLoading)
    ));
    let mut fresh = Coordinator::new(CoordinatorConfig::default(), counting_ids());
    assert!(matches!(
        fresh.replay(&[0, 99, 1], None),
        Err(ReplayError::Decode(_))
    ));
    assert!(matches!(
        fresh.replay(&[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 0], Some(&[0, 9])),
        Err(ReplayError::Decode(_))
    ));
}

/// Every committed offset of `group` as OffsetFetch (all topics) shows it.
fn fetch_all(c: &Coordinator, group: &str) -> Vec<(String, i32, i64)> {
    fetch_group(c, group, None)
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.clone(), p.partition_index, p.committed_offset))
        })
        .collect()
}

/// Kafka's pending offsets: a committed offset is read back only once its record is
/// replicated, so a failover (which may lose the unreplicated tail) never takes back an
/// offset a client has already seen. Commits stacked on one partition become visible
/// one by one, in log order; an unload drops what was never replicated.
#[test]
fn offsets_are_visible_only_once_replicated() {
    let mut h = Harness::default_config();
    h.replicate = false;
    let r = h.commit(commit_req("g", "", -1, "t", 0, 10));
    assert_eq!(r.topics[0].partitions[0].error_code, codes::NONE);
    assert_eq!(fetch_one(&h.c, "g", "t", 0), (-1, codes::NONE));
    assert_eq!(fetch_all(&h.c, "g"), vec![]);
    h.commit(commit_req("g", "", -1, "t", 0, 20));
    h.commit(commit_req("g", "", -1, "t", 1, 5));
    assert_eq!(fetch_one(&h.c, "g", "t", 0).0, -1);
    assert!(h.c.has_unreplicated_commits());
    let ids = std::mem::take(&mut h.unreplicated);
    assert_eq!(ids.len(), 3);
    h.c.commit_replicated(ids[0]);
    assert_eq!(fetch_one(&h.c, "g", "t", 0).0, 10);
    assert_eq!(fetch_all(&h.c, "g"), vec![("t".to_string(), 0, 10)]);
    h.c.commit_replicated(ids[1]);
    h.c.commit_replicated(ids[2]);
    assert_eq!(
        fetch_all(&h.c, "g"),
        vec![("t".to_string(), 0, 20), ("t".to_string(), 1, 5)]
    );
    assert!(!h.c.has_unreplicated_commits());

    // Replicated commits stay visible while a newer one waits.
    h.commit(commit_req("g", "", -1, "t", 0, 30));
    assert_eq!(fetch_one(&h.c, "g", "t", 0).0, 20);
    // The coordinator moves away before replication: nothing unreplicated survives.
    let parked = h.c.unload();
    h.absorb(parked);
    assert!(!h.c.has_unreplicated_commits());
}
