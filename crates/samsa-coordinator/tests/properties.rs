//! Property tests over random operation sequences driven by simulated clients:
//! * replaying every emitted record rebuilds the same durable state;
//! * a classic group that is Stable or Empty is exactly what was last persisted;
//! * in a KIP-848 group no partition is ever held by two members, neither in the
//!   coordinator's view nor in the clients' (for clients that are still members).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use proptest::prelude::*;
use samsa_coordinator::*;
use samsa_model::TopicId;

const CLASSIC_GROUPS: [&str; 2] = ["c0", "c1"];
const KIP_GROUP: &str = "k0";
const SLOTS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Join {
        group: usize,
        slot: usize,
        version: i16,
    },
    Sync {
        group: usize,
        slot: usize,
    },
    Heartbeat {
        group: usize,
        slot: usize,
    },
    Leave {
        group: usize,
        slot: usize,
    },
    Commit {
        group: usize,
        slot: Option<usize>,
        topic: usize,
        partition: i32,
        offset: i64,
    },
    OffsetDelete {
        group: usize,
        topic: usize,
        partition: i32,
    },
    DeleteGroup {
        group: usize,
    },
    Advance {
        ms: i64,
    },
    Kip {
        slot: usize,
        ack: bool,
        subs: usize,
    },
    KipLeave {
        slot: usize,
    },
    Resize {
        partitions: u32,
    },
    /// Every member of a classic group behaves: heartbeat, rejoin when told, sync.
    Round {
        group: usize,
    },
    /// The group's `__consumer_offsets` partition moves away and back: unloaded, then
    /// loaded again from its log.
    Failover {
        group: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..SLOTS, prop_oneof![Just(3i16), Just(5), Just(9)])
            .prop_map(|(group, slot, version)| Op::Join { group, slot, version }),
        3 => (0..2usize, 0..SLOTS).prop_map(|(group, slot)| Op::Sync { group, slot }),
        3 => (0..2usize, 0..SLOTS).prop_map(|(group, slot)| Op::Heartbeat { group, slot }),
        1 => (0..2usize, 0..SLOTS).prop_map(|(group, slot)| Op::Leave { group, slot }),
        3 => (0..3usize, proptest::option::of(0..SLOTS), 0..2usize, 0..3i32, 0..1000i64)
            .prop_map(|(group, slot, topic, partition, offset)| Op::Commit { group, slot, topic, partition, offset }),
        1 => (0..3usize, 0..2usize, 0..3i32).prop_map(|(group, topic, partition)| Op::OffsetDelete { group, topic, partition }),
        1 => (0..3usize).prop_map(|group| Op::DeleteGroup { group }),
        4 => prop_oneof![8 => 0..4_000i64, 2 => 4_000..40_000i64, 1 => Just(700_000i64)].prop_map(|ms| Op::Advance { ms }),
        6 => (0..SLOTS, any::<bool>(), 0..5usize).prop_map(|(slot, ack, subs)| Op::Kip { slot, ack, subs }),
        1 => (0..SLOTS).prop_map(|slot| Op::KipLeave { slot }),
        1 => prop_oneof![Just(6u32), Just(8u32)].prop_map(|partitions| Op::Resize { partitions }),
        5 => (0..2usize).prop_map(|group| Op::Round { group }),
        1 => (0..3usize).prop_map(|group| Op::Failover { group }),
    ]
}

#[derive(Clone, Debug, Default)]
struct ClassicClient {
    member_id: String,
    generation: i32,
    /// Members the leader was told about in its last JoinGroup response.
    leader_of: Vec<String>,
    /// A JoinGroup is parked.
    joining: bool,
}

#[derive(Clone, Debug, Default)]
struct KipClient {
    member_id: Option<String>,
    epoch: i32,
    /// What the client currently consumes.
    owned: BTreeSet<(TopicId, i32)>,
    /// What the coordinator last told it to own.
    target: BTreeSet<(TopicId, i32)>,
    joins: u32,
}

enum Pending {
    Join(usize, usize),
    Sync,
}

struct Sim {
    h: Harness,
    topics: TopicMetadataMap,
    classic: Vec<Vec<ClassicClient>>,
    kip: Vec<KipClient>,
    pending: BTreeMap<u64, Pending>,
    offsets_topics: [&'static str; 2],
}

fn instance(group: usize, slot: usize) -> Option<String> {
    (slot == SLOTS - 1).then(|| format!("inst-{group}"))
}

impl Sim {
    fn new() -> Self {
        let config = CoordinatorConfig {
            offsets_retention_minutes: 10,
            offsets_retention_check_interval_ms: 60_000,
            ..Default::default()
        };
        let mut topics = TopicMetadataMap::new();
        topics.insert("t", tid(1), 6);
        topics.insert("u", tid(2), 3);
        Sim {
            h: Harness::new(config),
            topics,
            classic: vec![vec![ClassicClient::default(); SLOTS]; 2],
            kip: vec![KipClient::default(); SLOTS],
            pending: BTreeMap::new(),
            offsets_topics: ["t", "x"],
        }
    }

    fn group_name(g: usize) -> &'static str {
        if g < 2 {
            CLASSIC_GROUPS[g]
        } else {
            KIP_GROUP
        }
    }

    /// Applies the replies that arrived since the last call to the client models.
    fn deliver(&mut self) {
        let answered: Vec<u64> = self
            .pending
            .keys()
            .copied()
            .filter(|t| self.h.replies.contains_key(t))
            .collect();
        for t in answered {
            let Some(kind) = self.pending.remove(&t) else {
                continue;
            };
            let Pending::Join(g, s) = kind else { continue };
            let Some(Response::JoinGroup(r)) = self.h.replies.get(&t).cloned() else {
                continue;
            };
            let client = &mut self.classic[g][s];
            client.joining = false;
            match r.error_code {
                codes::NONE => {
                    client.member_id = r.member_id.clone();
                    client.generation = r.generation_id;
                    client.leader_of = r.members.iter().map(|m| m.member_id.clone()).collect();
                }
                codes::MEMBER_ID_REQUIRED => client.member_id = r.member_id.clone(),
                codes::UNKNOWN_MEMBER_ID | codes::FENCED_INSTANCE_ID => {
                    *client = ClassicClient::default()
                }
                _ => {}
            }
        }
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Join {
                group,
                slot,
                version,
            } => {
                let c = self.classic[*group][*slot].clone();
                let mut req = join_req(
                    CLASSIC_GROUPS[*group],
                    &c.member_id,
                    &format!("cl{slot}"),
                    &["t"],
                );
                req.api_version = *version;
                req.group_instance_id = instance(*group, *slot);
                let t = self.h.join(req);
                self.classic[*group][*slot].joining = true;
                self.pending.insert(t.0, Pending::Join(*group, *slot));
            }
            Op::Sync { group, slot } => {
                let c = self.classic[*group][*slot].clone();
                if c.member_id.is_empty() {
                    return;
                }
                let assignment: Vec<(String, Vec<u8>)> = c
                    .leader_of
                    .iter()
                    .map(|m| (m.clone(), m.as_bytes().to_vec()))
                    .collect();
                let refs: Vec<(&str, &[u8])> = assignment
                    .iter()
                    .map(|(m, a)| (m.as_str(), a.as_slice()))
                    .collect();
                let mut req = sync_req(CLASSIC_GROUPS[*group], &c.member_id, c.generation, &refs);
                req.group_instance_id = instance(*group, *slot);
                let t = self.h.sync(req);
                self.pending.insert(t.0, Pending::Sync);
            }
            Op::Heartbeat { group, slot } => {
                let c = self.classic[*group][*slot].clone();
                if !c.member_id.is_empty() {
                    let inst = instance(*group, *slot);
                    let code = self.h.heartbeat(
                        CLASSIC_GROUPS[*group],
                        &c.member_id,
                        c.generation,
                        inst.as_deref(),
                    );
                    if code == codes::UNKNOWN_MEMBER_ID || code == codes::FENCED_INSTANCE_ID {
                        self.classic[*group][*slot] = ClassicClient::default();
                    }
                }
            }
            Op::Leave { group, slot } => {
                let c = self.classic[*group][*slot].clone();
                if !c.member_id.is_empty() {
                    self.h.leave(LeaveGroupRequest {
                        api_version: 3,
                        group_id: CLASSIC_GROUPS[*group].into(),
                        members: vec![LeaveGroupMember {
                            member_id: c.member_id.clone(),
                            group_instance_id: instance(*group, *slot),
                            reason: None,
                        }],
                    });
                    self.classic[*group][*slot] = ClassicClient::default();
                }
            }
            Op::Commit {
                group,
                slot,
                topic,
                partition,
                offset,
            } => {
                let name = Self::group_name(*group);
                let (member, generation) = match (group, slot) {
                    (g, Some(s)) if *g < 2 => {
                        let c = &self.classic[*g][*s];
                        (c.member_id.clone(), c.generation)
                    }
                    (_, Some(s)) => {
                        let k = &self.kip[*s];
                        (k.member_id.clone().unwrap_or_default(), k.epoch)
                    }
                    (_, None) => (String::new(), -1),
                };
                let mut req = commit_req(
                    name,
                    &member,
                    generation,
                    self.offsets_topics[*topic],
                    *partition,
                    *offset,
                );
                req.api_version = 9;
                self.h.commit(req);
            }
            Op::OffsetDelete {
                group,
                topic,
                partition,
            } => {
                self.h.offset_delete(OffsetDeleteRequest {
                    group_id: Self::group_name(*group).into(),
                    topics: vec![OffsetDeleteTopic {
                        name: self.offsets_topics[*topic].into(),
                        partitions: vec![*partition],
                    }],
                });
            }
            Op::DeleteGroup { group } => {
                self.h.delete_groups(&[Self::group_name(*group)]);
            }
            Op::Advance { ms } => {
                let to = self.h.now + ms;
                self.h.advance_to(to);
            }
            Op::Kip { slot, ack, subs } => self.kip_heartbeat(*slot, *ack, *subs),
            Op::KipLeave { slot } => {
                let k = self.kip[*slot].clone();
                if let Some(id) = k.member_id {
                    let req = ConsumerGroupHeartbeatRequest {
                        api_version: 1,
                        group_id: KIP_GROUP.into(),
                        member_id: id,
                        member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
                        rebalance_timeout_ms: -1,
                        ..Default::default()
                    };
                    self.h.cgh(req, &self.topics);
                    self.kip[*slot] = KipClient {
                        joins: k.joins,
                        ..Default::default()
                    };
                }
            }
            Op::Resize { partitions } => self.topics.insert("t", tid(1), *partitions),
            Op::Failover { group } => self.failover(Self::group_name(*group)),
            Op::Round { group } => {
                for slot in 0..SLOTS {
                    let c = self.classic[*group][slot].clone();
                    if c.joining {
                        continue;
                    }
                    let rejoin = c.member_id.is_empty() || c.generation == 0 || {
                        let inst = instance(*group, slot);
                        let code = self.h.heartbeat(
                            CLASSIC_GROUPS[*group],
                            &c.member_id,
                            c.generation,
                            inst.as_deref(),
                        );
                        if code == codes::UNKNOWN_MEMBER_ID || code == codes::FENCED_INSTANCE_ID {
                            self.classic[*group][slot] = ClassicClient::default();
                        }
                        code != codes::NONE
                    };
                    if rejoin {
                        self.run(&Op::Join {
                            group: *group,
                            slot,
                            version: 5,
                        });
                        if self.classic[*group][slot].generation == 0
                            && !self.classic[*group][slot].joining
                        {
                            // MEMBER_ID_REQUIRED: join again with the id.
                            self.run(&Op::Join {
                                group: *group,
                                slot,
                                version: 5,
                            });
                        }
                    }
                }
                self.deliver();
                for slot in 0..SLOTS {
                    let c = &self.classic[*group][slot];
                    if !c.joining && c.generation > 0 {
                        self.run(&Op::Sync {
                            group: *group,
                            slot,
                        });
                    }
                }
            }
        }
        self.deliver();
    }

    /// Unloads the partition of `group` (parked requests answered NOT_COORDINATOR) and
    /// loads it again from the records it was given; the durable state survives.
    fn failover(&mut self, group: &str) {
        let p = self.h.c.partition_for(group);
        let before = self.h.c.durable_state();
        let others: BTreeSet<u32> = (0..self.h.c.config().offsets_topic_num_partitions)
            .filter(|q| *q != p)
            .collect();
        let outs = self.h.c.set_owned_partitions(Some(others));
        assert!(
            outs.iter()
                .all(|o| matches!(o, Output::Reply { response, .. }
                if response.error_code() == codes::NOT_COORDINATOR)),
            "{outs:?}"
        );
        self.h.absorb(outs);
        assert_eq!(self.h.c.group_state(group), None);
        let outs = self.h.c.set_owned_partitions(None);
        assert!(outs.is_empty());
        let log: Vec<Record> = self
            .h
            .records
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, r)| r.clone())
            .collect();
        for r in &log {
            self.h.c.replay(&r.key, r.value.as_deref()).expect("replay");
        }
        assert_eq!(self.h.c.durable_state(), before);
        let outs = self.h.c.finish_loading_partition(p, self.h.t());
        self.h.absorb(outs);
    }

    fn kip_heartbeat(&mut self, slot: usize, ack: bool, subs: usize) {
        // 3 and 4 subscribe by regex (KIP-848 SubscribedTopicRegex), alone or with names.
        let subscription: Vec<String> = match subs {
            0 | 3 => vec!["t".into()],
            1 => vec!["t".into(), "u".into()],
            _ => vec!["u".into()],
        };
        let regex = match subs {
            3 => Some("u|v".to_owned()),
            4 => Some(".*".to_owned()),
            _ => Some(String::new()),
        };
        let k = &mut self.kip[slot];
        if ack {
            // The client revokes what it lost and starts consuming what it got.
            k.owned = k.target.clone();
        }
        let joining = k.member_id.is_none();
        if joining {
            k.joins += 1;
            k.member_id = Some(format!("k{slot}-{}", k.joins));
            k.epoch = 0;
            k.owned.clear();
            k.target.clear();
        }
        let mut owned: BTreeMap<TopicId, Vec<i32>> = BTreeMap::new();
        for (t, p) in &k.owned {
            owned.entry(*t).or_default().push(*p);
        }
        let req = ConsumerGroupHeartbeatRequest {
            api_version: 1,
            group_id: KIP_GROUP.into(),
            member_id: k.member_id.clone().unwrap_or_default(),
            member_epoch: k.epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: if joining { 20_000 } else { -1 },
            subscribed_topic_names: Some(subscription),
            subscribed_topic_regex: regex,
            server_assignor: None,
            topic_partitions: Some(
                owned
                    .into_iter()
                    .map(|(topic_id, partitions)| TopicPartitions {
                        topic_id,
                        partitions,
                    })
                    .collect(),
            ),
            client_id: format!("k{slot}"),
            client_host: "/h".into(),
        };
        let r = self.h.cgh(req, &self.topics);
        let k = &mut self.kip[slot];
        if r.error_code == codes::NONE {
            k.epoch = r.member_epoch;
            if let Some(a) = r.assignment {
                k.target = a
                    .iter()
                    .flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic_id, *p)))
                    .collect();
                if joining {
                    k.owned = k.target.clone();
                }
            }
        } else if r.error_code == codes::UNKNOWN_MEMBER_ID
            || r.error_code == codes::FENCED_MEMBER_EPOCH
        {
            // Fenced: abandon everything and rejoin next time.
            *k = KipClient {
                joins: k.joins,
                ..Default::default()
            };
        } else if r.error_code == codes::GROUP_ID_NOT_FOUND {
            *k = KipClient {
                joins: k.joins,
                ..Default::default()
            };
        } else {
            panic!("unexpected consumer heartbeat error {r:?}");
        }
    }

    fn check_invariants(&self) -> Result<(), TestCaseError> {
        // Coordinator view: one holder per partition.
        if let Some(holdings) = self.h.c.consumer_group_holdings(KIP_GROUP) {
            let mut seen: BTreeMap<(TopicId, i32), &str> = BTreeMap::new();
            for (m, a) in &holdings {
                for (t, ps) in a {
                    for p in ps {
                        if let Some(other) = seen.insert((*t, *p), m) {
                            return Err(TestCaseError::fail(format!(
                                "{t}/{p} held by {other} and {m}"
                            )));
                        }
                    }
                }
            }
            // Client view, for clients the coordinator still counts as members.
            let mut seen: BTreeMap<(TopicId, i32), usize> = BTreeMap::new();
            for (i, k) in self.kip.iter().enumerate() {
                let Some(id) = &k.member_id else { continue };
                if !holdings.contains_key(id) {
                    continue;
                }
                for tp in &k.owned {
                    if let Some(other) = seen.insert(*tp, i) {
                        return Err(TestCaseError::fail(format!(
                            "clients {other} and {i} both consume {tp:?}"
                        )));
                    }
                }
            }
        }
        // Classic groups at rest are what was persisted.
        let durable = self.h.c.durable_state();
        for g in CLASSIC_GROUPS {
            let state = self.h.c.group_state(g);
            if !matches!(state, Some("Stable") | Some("Empty")) {
                continue;
            }
            let Some(Some(persisted)) = durable.classic_groups.get(g) else {
                continue;
            };
            let Some(live) = self.h.c.classic_group_snapshot(g) else {
                continue;
            };
            let strip = |v: &records::GroupMetadataValue| records::GroupMetadataValue {
                current_state_timestamp: 0,
                ..v.clone()
            };
            prop_assert_eq!(
                strip(&live),
                strip(persisted),
                "group {} in state {:?}",
                g,
                state
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replay_rebuilds_state_and_invariants_hold(ops in proptest::collection::vec(op(), 1..150)) {
        let mut sim = Sim::new();
        for (i, op) in ops.iter().enumerate() {
            sim.run(op);
            sim.check_invariants()?;
            if i % 25 == 24 {
                prop_assert_eq!(sim.h.replayed().durable_state(), sim.h.c.durable_state());
            }
        }
        let mut replayed = sim.h.replayed();
        prop_assert_eq!(replayed.durable_state(), sim.h.c.durable_state());
        // The replayed coordinator serves the same committed offsets.
        let outs = replayed.finish_loading(sim.h.t());
        let only_appends = outs.iter().all(|o| matches!(o, Output::Append { .. }));
        prop_assert!(only_appends, "loading answers nothing: {:?}", outs);
        for g in ["c0", "c1", "k0"] {
            prop_assert_eq!(replayed.committed_offsets(g), sim.h.c.committed_offsets(g));
        }
        // Every parked JoinGroup / SyncGroup gets exactly one answer (the harness
        // rejects a second one), at the latest when the coordinator unloads.
        let outs = sim.h.c.unload();
        sim.h.absorb(outs);
        let unanswered: Vec<u64> = sim.pending.keys().copied().filter(|t| !sim.h.replies.contains_key(t)).collect();
        prop_assert!(unanswered.is_empty(), "never answered: {:?}", unanswered);
    }

    #[test]
    fn record_decoding_never_panics(key in proptest::collection::vec(any::<u8>(), 0..64),
                                    value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256))) {
        let _ = records::CoordinatorRecord::decode(&key, value.as_deref());
    }
}

/// Pending offsets: a commit, or a report that the oldest unreplicated append is
/// now replicated.
#[derive(Clone, Debug)]
enum PendingOp {
    Commit {
        group: usize,
        partition: i32,
        offset: i64,
    },
    Replicate,
}

fn pending_op() -> impl Strategy<Value = PendingOp> {
    prop_oneof![
        (0..2usize, 0..2i32, 0..1000i64).prop_map(|(group, partition, offset)| {
            PendingOp::Commit {
                group,
                partition,
                offset,
            }
        }),
        Just(PendingOp::Replicate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the interleaving of commits and replication reports (in log order),
    /// OffsetFetch shows exactly the last replicated commit of each partition — never
    /// one still waiting for replication, never an older one once a newer is
    /// replicated — and replaying the log rebuilds the latest commits.
    #[test]
    fn offset_fetch_shows_the_last_replicated_commit(ops in proptest::collection::vec(pending_op(), 1..80)) {
        let mut h = Harness::default_config();
        h.replicate = false;
        let mut queue: std::collections::VecDeque<(CommitId, (usize, i32), i64)> = Default::default();
        let mut visible: BTreeMap<(usize, i32), i64> = BTreeMap::new();
        for op in &ops {
            match op {
                PendingOp::Commit { group, partition, offset } => {
                    let g = format!("g{group}");
                    h.commit(commit_req(&g, "", -1, "t", *partition, *offset));
                    let id = h.unreplicated.pop().expect("a committing append");
                    queue.push_back((id, (*group, *partition), *offset));
                }
                PendingOp::Replicate => {
                    if let Some((id, key, offset)) = queue.pop_front() {
                        h.c.commit_replicated(id);
                        visible.insert(key, offset);
                    }
                }
            }
            for group in 0..2 {
                for partition in 0..2 {
                    let shown = fetch_one(&h.c, &format!("g{group}"), "t", partition).0;
                    let want = visible.get(&(group, partition)).copied().unwrap_or(-1);
                    prop_assert_eq!(shown, want, "g{} t-{}", group, partition);
                }
            }
            prop_assert_eq!(h.c.has_unreplicated_commits(), !queue.is_empty());
        }
        prop_assert_eq!(h.c.durable_state(), h.replayed().durable_state());
    }
}
