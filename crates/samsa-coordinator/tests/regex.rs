//! KIP-848 regex subscriptions (`SubscribedTopicRegex`): resolution against the
//! topics, refresh when topics come and go, assignment, persistence.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use samsa_coordinator::records::CoordinatorRecord;
use samsa_coordinator::*;

const ORDERS: &str = "^orders-.*";

/// orders-1 (3 partitions, id 1), orders-2 (2, id 2), payments (4, id 3) and the
/// internal `__consumer_offsets` (id 9).
fn topics() -> TopicMetadataMap {
    let mut m = TopicMetadataMap::new();
    m.insert("orders-1", tid(1), 3);
    m.insert("orders-2", tid(2), 2);
    m.insert("payments", tid(3), 4);
    m.insert("__consumer_offsets", tid(9), 50);
    m
}

fn join_regex(member: &str, regex: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest {
        subscribed_topic_regex: Some(regex.into()),
        ..cgh_join(member)
    }
}

fn beat(member: &str, epoch: i32, owned: &Held) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest {
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        subscribed_topic_regex: None,
        topic_partitions: Some(to_wire(owned)),
        ..join_regex(member, "")
    }
}

/// Partitions by topic id byte, as held by a member.
type Held = BTreeMap<u8, BTreeSet<i32>>;

fn to_wire(h: &Held) -> Vec<TopicPartitions> {
    h.iter()
        .map(|(t, ps)| TopicPartitions {
            topic_id: tid(*t),
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

fn held(a: &Option<Vec<TopicPartitions>>) -> Option<Held> {
    a.as_ref().map(|tps| {
        let mut h = Held::new();
        for tp in tps {
            let t = (1..=9).find(|n| tid(*n) == tp.topic_id).unwrap_or(0);
            h.entry(t)
                .or_default()
                .extend(tp.partitions.iter().copied());
        }
        h.retain(|_, ps| !ps.is_empty());
        h
    })
}

fn all(t: u8, n: i32) -> (u8, BTreeSet<i32>) {
    (t, (0..n).collect())
}

/// A member as the client sees it: epoch and the partitions it holds.
struct Client {
    id: String,
    epoch: i32,
    held: Held,
}

impl Client {
    fn join(h: &mut Harness, md: &TopicMetadataMap, id: &str, regex: &str) -> Client {
        let r = h.cgh(join_regex(id, regex), md);
        assert_eq!(r.error_code, codes::NONE, "{r:?}");
        Client {
            id: id.into(),
            epoch: r.member_epoch,
            held: held(&r.assignment).unwrap_or_default(),
        }
    }

    /// One heartbeat reporting what it holds; returns whether anything changed.
    fn beat(&mut self, h: &mut Harness, md: &TopicMetadataMap) -> bool {
        let r = h.cgh(beat(&self.id, self.epoch, &self.held), md);
        assert_eq!(r.error_code, codes::NONE, "{r:?}");
        let before = (self.epoch, self.held.clone());
        self.epoch = r.member_epoch;
        if let Some(a) = held(&r.assignment) {
            self.held = a;
        }
        before != (self.epoch, self.held.clone())
    }
}

fn settle(h: &mut Harness, md: &TopicMetadataMap, clients: &mut [Client]) {
    for _ in 0..10 {
        let mut changed = false;
        for c in clients.iter_mut() {
            changed |= c.beat(h, md);
        }
        if !changed {
            return;
        }
    }
    panic!("did not settle");
}

fn regex_records(h: &Harness) -> Vec<(String, Option<BTreeSet<String>>)> {
    h.records
        .iter()
        .filter_map(
            |(_, r)| match CoordinatorRecord::decode(&r.key, r.value.as_deref()) {
                Ok(CoordinatorRecord::ConsumerRegex { regex, value, .. }) => {
                    Some((regex, value.map(|v| v.topics)))
                }
                _ => None,
            },
        )
        .collect()
}

#[test]
fn a_regex_member_gets_the_matching_topics_only() {
    let md = topics();
    let mut h = Harness::default_config();
    let c = Client::join(&mut h, &md, "a", ORDERS);
    let want: Held = [all(1, 3), all(2, 2)].into_iter().collect();
    assert_eq!(c.held, want, "orders-1 and orders-2, not payments");

    // The resolution is recorded, and the member's regex is described.
    let orders: BTreeSet<String> = ["orders-1".to_owned(), "orders-2".to_owned()].into();
    assert_eq!(regex_records(&h), vec![(ORDERS.to_owned(), Some(orders))]);
    let d = h.c.consumer_group_describe(
        &ConsumerGroupDescribeRequest {
            group_ids: vec!["g".into()],
        },
        &md,
    );
    let m = &d.groups[0].members[0];
    assert_eq!(m.subscribed_topic_regex.as_deref(), Some(ORDERS));
    assert_eq!(m.assignment.len(), 2);
}

#[test]
fn an_invalid_regex_is_refused_and_changes_nothing() {
    let md = topics();
    let mut h = Harness::default_config();
    for bad in ["orders-(", "[a-", "a)|(b"] {
        let r = h.cgh(join_regex("a", bad), &md);
        assert_eq!(r.error_code, codes::INVALID_REGULAR_EXPRESSION, "{bad}");
        assert!(
            r.error_message.as_deref().is_some_and(|m| m.contains(bad)),
            "{r:?}"
        );
    }
    assert!(h.records.is_empty(), "nothing written");
    assert_eq!(h.c.group_state("g"), None);
}

#[test]
fn created_topics_join_after_the_refresh_interval_and_deleted_ones_leave() {
    let mut md = topics();
    let mut h = Harness::default_config();
    let mut c = Client::join(&mut h, &md, "a", ORDERS);
    assert_eq!(c.held.keys().copied().collect::<Vec<_>>(), [1, 2]);

    // A new matching topic and a new non-matching one.
    md.insert("orders-3", tid(4), 2);
    md.insert("refunds", tid(5), 2);
    h.now += 5_000;
    c.beat(&mut h, &md);
    assert!(
        !c.held.contains_key(&4),
        "not resolved again within 10 s of the last resolution"
    );
    h.now += REGEX_REFRESH_MIN_INTERVAL_MS;
    settle(&mut h, &md, std::slice::from_mut(&mut c));
    let want: Held = [all(1, 3), all(2, 2), all(4, 2)].into_iter().collect();
    assert_eq!(c.held, want, "orders-3 is assigned, refunds is not");

    // Deleting a topic takes it out of the assignment at the next heartbeat.
    md.remove("orders-1");
    h.now += 1_000;
    settle(&mut h, &md, std::slice::from_mut(&mut c));
    let want: Held = [all(2, 2), all(4, 2)].into_iter().collect();
    assert_eq!(c.held, want);
    assert_eq!(h.c.durable_state(), h.replayed().durable_state());
}

#[test]
fn two_members_with_one_regex_share_its_partitions() {
    let md = topics();
    let mut h = Harness::default_config();
    let mut clients = vec![
        Client::join(&mut h, &md, "a", ORDERS),
        Client::join(&mut h, &md, "b", ORDERS),
    ];
    settle(&mut h, &md, &mut clients);
    let mut seen = BTreeSet::new();
    for c in &clients {
        for (t, ps) in &c.held {
            for p in ps {
                assert!(seen.insert((*t, *p)), "({t}, {p}) held twice");
            }
        }
    }
    let want: BTreeSet<(u8, i32)> = [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1)].into();
    assert_eq!(seen, want);
    let counts: Vec<usize> = clients
        .iter()
        .map(|c| c.held.values().map(BTreeSet::len).sum())
        .collect();
    assert!(counts.iter().all(|n| (2..=3).contains(n)), "{counts:?}");
    // One resolution for the group, not one per member.
    assert_eq!(regex_records(&h).len(), 1);
}

#[test]
fn names_and_regexes_combine_in_one_group() {
    let md = topics();
    let mut h = Harness::default_config();
    let mut names = join_regex("n", "");
    names.subscribed_topic_regex = None;
    names.subscribed_topic_names = Some(vec!["payments".into()]);
    let r = h.cgh(names, &md);
    assert_eq!(r.error_code, codes::NONE);
    let mut clients = vec![
        Client {
            id: "n".into(),
            epoch: r.member_epoch,
            held: held(&r.assignment).unwrap_or_default(),
        },
        Client::join(&mut h, &md, "r", ORDERS),
    ];
    settle(&mut h, &md, &mut clients);
    assert_eq!(clients[0].held, [all(3, 4)].into_iter().collect::<Held>());
    assert_eq!(
        clients[1].held,
        [all(1, 3), all(2, 2)].into_iter().collect::<Held>()
    );
}

#[test]
fn a_member_changing_its_regex_drops_the_old_resolution() {
    let md = topics();
    let mut h = Harness::default_config();
    let mut c = Client::join(&mut h, &md, "a", ORDERS);
    h.now += 1_000;
    let mut change = beat("a", c.epoch, &c.held);
    change.subscribed_topic_regex = Some("pay.*".into());
    let r = h.cgh(change, &md);
    assert_eq!(r.error_code, codes::NONE);
    // The old regex's resolution is deleted; the group has no other, so the new
    // one is resolved at once (as Kafka: the 10 s rule counts from the group's
    // remaining resolutions).
    let payments: BTreeSet<String> = ["payments".to_owned()].into();
    assert_eq!(
        regex_records(&h)[1..],
        [
            (ORDERS.to_owned(), None),
            ("pay.*".to_owned(), Some(payments))
        ]
    );
    c.epoch = r.member_epoch;
    if let Some(a) = held(&r.assignment) {
        c.held = a;
    }
    assert!(
        !c.held.contains_key(&3),
        "payments waits for the revocation"
    );
    settle(&mut h, &md, std::slice::from_mut(&mut c));
    assert_eq!(c.held, [all(3, 4)].into_iter().collect::<Held>());
    let state = h.c.durable_state();
    let resolved: Vec<&String> = state.consumer_groups["g"].resolved_regexes.keys().collect();
    assert_eq!(resolved, ["pay.*"]);
    assert_eq!(state, h.replayed().durable_state());
}

#[test]
fn resolutions_survive_a_failover_and_go_with_the_last_member() {
    let md = topics();
    let mut h = Harness::default_config();
    let mut c = Client::join(&mut h, &md, "a", ORDERS);
    let epoch = c.epoch;
    let before = h.c.durable_state();
    let mut h = h.failed_over();
    assert_eq!(h.c.durable_state(), before);
    let resolved = &h.c.durable_state().consumer_groups["g"].resolved_regexes;
    assert_eq!(resolved[ORDERS].topics.len(), 2);
    // The new coordinator keeps the assignment: no new resolution, no new epoch.
    h.now += 1_000;
    c.beat(&mut h, &md);
    assert_eq!(c.epoch, epoch);
    assert_eq!(c.held.len(), 2);
    assert!(h.records.is_empty(), "nothing written by a plain heartbeat");

    // The last subscriber leaves: its regex's resolution is deleted.
    let mut leave = beat("a", LEAVE_GROUP_MEMBER_EPOCH, &c.held);
    leave.topic_partitions = None;
    assert_eq!(h.cgh(leave, &md).error_code, codes::NONE);
    assert_eq!(regex_records(&h), vec![(ORDERS.to_owned(), None)]);
    assert!(h.c.durable_state().consumer_groups["g"]
        .resolved_regexes
        .is_empty());
}
