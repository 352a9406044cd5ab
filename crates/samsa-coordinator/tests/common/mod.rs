//! A deterministic test harness: a fake clock, a counting member-id generator, and a log
//! of every emitted record and reply.

#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use samsa_coordinator::*;
use samsa_model::{TimestampMs, TopicId};

pub struct Harness {
    pub c: Coordinator,
    pub now: i64,
    next_token: u64,
    pub replies: BTreeMap<u64, Response>,
    /// Every appended record, in order, with its partition.
    pub records: Vec<(u32, Record)>,
    /// Every output in order (appends and replies), to check ordering.
    pub log: Vec<Output>,
    /// Whether appended commits count as replicated at once (the broker reports them
    /// with `commit_replicated`); when off, they wait in `unreplicated`.
    pub replicate: bool,
    pub unreplicated: Vec<CommitId>,
    /// The log as written: every appended record with its batch's producer (for
    /// transactional batches) and the transaction markers added with [`Harness::marker`].
    pub entries: Vec<LogEntry>,
}

/// One entry of the harness's `__consumer_offsets` log.
#[derive(Clone, Debug)]
pub enum LogEntry {
    /// A record of a batch of `partition` (`Some` producer: transactional).
    Record(u32, Option<TxnProducer>, Record),
    /// A COMMIT (`true`) or ABORT marker of a producer in a partition.
    Marker(u32, i64, bool),
}

pub fn counting_ids() -> Box<dyn FnMut() -> String + Send> {
    let mut n = 0u64;
    Box::new(move || {
        n += 1;
        format!("id{n:04}")
    })
}

impl Harness {
    pub fn new(config: CoordinatorConfig) -> Self {
        let mut c = Coordinator::new(config, counting_ids());
        let outs = c.finish_loading(TimestampMs(0));
        let mut h = Harness {
            c,
            now: 0,
            next_token: 0,
            replies: BTreeMap::new(),
            records: Vec::new(),
            log: Vec::new(),
            replicate: true,
            unreplicated: Vec::new(),
            entries: Vec::new(),
        };
        h.absorb(outs);
        h
    }

    pub fn default_config() -> Self {
        Self::new(CoordinatorConfig::default())
    }

    pub fn absorb(&mut self, outs: Vec<Output>) {
        for o in outs {
            self.log.push(o.clone());
            match o {
                Output::Append {
                    partition,
                    records,
                    commit,
                    transaction,
                } => {
                    for r in records {
                        self.entries
                            .push(LogEntry::Record(partition, transaction, r.clone()));
                        self.records.push((partition, r));
                    }
                    if let Some(id) = commit {
                        if self.replicate {
                            self.c.commit_replicated(id);
                        } else {
                            self.unreplicated.push(id);
                        }
                    }
                }
                Output::Reply { token, response } => {
                    assert!(
                        self.replies.insert(token.0, response).is_none(),
                        "token {} answered twice",
                        token.0
                    );
                }
            }
        }
    }

    /// Writes a transaction marker of `producer_id` to `partition` and applies it.
    pub fn marker(&mut self, partition: u32, producer_id: i64, commit: bool) {
        self.entries
            .push(LogEntry::Marker(partition, producer_id, commit));
        self.c.complete_transaction(partition, producer_id, commit);
    }

    /// A coordinator rebuilt by replaying [`Harness::entries`] (transactional batches
    /// and markers included), then loaded at `now`.
    pub fn replayed_log(&self) -> Coordinator {
        let mut c = Coordinator::new(self.c.config().clone(), counting_ids());
        for e in &self.entries {
            match e {
                LogEntry::Record(_, None, r) => c.replay(&r.key, r.value.as_deref()).unwrap(),
                LogEntry::Record(_, Some(p), r) => c
                    .replay_transactional(p.producer_id, &r.key, r.value.as_deref())
                    .unwrap(),
                LogEntry::Marker(partition, pid, commit) => {
                    c.replay_end_transaction(*partition, *pid, *commit).unwrap()
                }
            }
        }
        c.finish_loading(self.t());
        c
    }

    pub fn token(&mut self) -> ReplyToken {
        self.next_token += 1;
        ReplyToken(self.next_token)
    }

    pub fn t(&self) -> TimestampMs {
        TimestampMs(self.now)
    }

    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
        let outs = self.c.tick(self.t());
        self.absorb(outs);
    }

    /// Advances to `at` in steps, ticking at every deadline on the way.
    pub fn advance_to(&mut self, at: i64) {
        while let Some(d) = self.c.next_deadline() {
            if d.get() > at {
                break;
            }
            self.now = self.now.max(d.get());
            let outs = self.c.tick(self.t());
            self.absorb(outs);
        }
        self.now = self.now.max(at);
        let outs = self.c.tick(self.t());
        self.absorb(outs);
    }

    pub fn answered(&self, token: ReplyToken) -> bool {
        self.replies.contains_key(&token.0)
    }

    pub fn join_reply(&self, token: ReplyToken) -> Option<JoinGroupResponse> {
        match self.replies.get(&token.0) {
            Some(Response::JoinGroup(r)) => Some(r.clone()),
            Some(other) => panic!("not a join reply: {other:?}"),
            None => None,
        }
    }

    pub fn sync_reply(&self, token: ReplyToken) -> Option<SyncGroupResponse> {
        match self.replies.get(&token.0) {
            Some(Response::SyncGroup(r)) => Some(r.clone()),
            Some(other) => panic!("not a sync reply: {other:?}"),
            None => None,
        }
    }

    pub fn code(&self, token: ReplyToken) -> Option<i16> {
        self.replies.get(&token.0).map(Response::error_code)
    }

    pub fn join(&mut self, req: JoinGroupRequest) -> ReplyToken {
        let t = self.token();
        let outs = self.c.join_group(req, self.t(), t);
        self.absorb(outs);
        t
    }

    pub fn sync(&mut self, req: SyncGroupRequest) -> ReplyToken {
        let t = self.token();
        let outs = self.c.sync_group(req, self.t(), t);
        self.absorb(outs);
        t
    }

    pub fn heartbeat(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        instance: Option<&str>,
    ) -> i16 {
        let t = self.token();
        let outs = self.c.heartbeat(
            HeartbeatRequest {
                group_id: group.into(),
                generation_id: generation,
                member_id: member.into(),
                group_instance_id: instance.map(Into::into),
            },
            self.t(),
            t,
        );
        self.absorb(outs);
        self.code(t).unwrap_or(i16::MIN)
    }

    pub fn leave(&mut self, req: LeaveGroupRequest) -> LeaveGroupResponse {
        let t = self.token();
        let outs = self.c.leave_group(req, self.t(), t);
        self.absorb(outs);
        match self.replies.get(&t.0) {
            Some(Response::LeaveGroup(r)) => r.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn commit(&mut self, req: OffsetCommitRequest) -> OffsetCommitResponse {
        let t = self.token();
        let outs = self.c.offset_commit(req, self.t(), t);
        self.absorb(outs);
        match self.replies.get(&t.0) {
            Some(Response::OffsetCommit(r)) => r.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn delete_groups(&mut self, ids: &[&str]) -> DeleteGroupsResponse {
        let t = self.token();
        let outs = self
            .c
            .delete_groups(ids.iter().map(|s| s.to_string()).collect(), self.t(), t);
        self.absorb(outs);
        match self.replies.get(&t.0) {
            Some(Response::DeleteGroups(r)) => r.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn offset_delete(&mut self, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
        let t = self.token();
        let outs = self.c.offset_delete(req, self.t(), t);
        self.absorb(outs);
        match self.replies.get(&t.0) {
            Some(Response::OffsetDelete(r)) => r.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn cgh(
        &mut self,
        req: ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicMetadata,
    ) -> ConsumerGroupHeartbeatResponse {
        let t = self.token();
        let outs = self.c.consumer_group_heartbeat(req, topics, self.t(), t);
        self.absorb(outs);
        match self.replies.get(&t.0) {
            Some(Response::ConsumerGroupHeartbeat(r)) => r.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A fresh coordinator that replayed every record emitted so far.
    /// A new coordinator replayed from this one's records and loaded at the same
    /// time: the coordinator after a failover.
    pub fn failed_over(&self) -> Harness {
        let mut c = self.replayed();
        let outs = c.finish_loading(self.t());
        let mut h = Harness::new(self.c.config().clone());
        h.c = c;
        h.now = self.now;
        h.absorb(outs);
        h
    }

    pub fn replayed(&self) -> Coordinator {
        let mut c = Coordinator::new(self.c.config().clone(), counting_ids());
        for (_, r) in &self.records {
            c.replay(&r.key, r.value.as_deref()).expect("replay");
        }
        c
    }
}

/// A consumer-protocol subscription (version 0) for `topics`.
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.freeze()
}

pub fn join_req(group: &str, member: &str, client: &str, topics: &[&str]) -> JoinGroupRequest {
    JoinGroupRequest {
        api_version: 5,
        group_id: group.into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![
            JoinGroupProtocol {
                name: "range".into(),
                metadata: subscription(topics),
            },
            JoinGroupProtocol {
                name: "roundrobin".into(),
                metadata: subscription(topics),
            },
        ],
        reason: None,
        client_id: client.into(),
        client_host: "/127.0.0.1".into(),
    }
}

pub fn sync_req(
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &[u8])],
) -> SyncGroupRequest {
    SyncGroupRequest {
        api_version: 3,
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| SyncGroupAssignment {
                member_id: m.to_string(),
                assignment: Bytes::copy_from_slice(a),
            })
            .collect(),
    }
}

pub fn tid(n: u8) -> TopicId {
    TopicId(uuid::Uuid::from_bytes([n; 16]))
}

pub fn commit_req(
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest {
        api_version: 8,
        group_id: group.into(),
        generation_id_or_member_epoch: generation,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        topics: vec![OffsetCommitTopic {
            name: topic.into(),
            topic_id: None,
            partitions: vec![OffsetCommitPartition {
                partition_index: partition,
                committed_offset: offset,
                committed_leader_epoch: 1,
                committed_metadata: Some("md".into()),
            }],
        }],
    }
}

/// OffsetFetch v8 of one group (`topics: None`: every committed partition).
pub fn fetch_group(
    c: &Coordinator,
    group: &str,
    topics: Option<Vec<OffsetFetchTopic>>,
) -> OffsetFetchGroupResponse {
    let mut r = c.offset_fetch(&OffsetFetchRequest {
        api_version: 8,
        groups: vec![OffsetFetchGroup {
            group_id: group.into(),
            member_id: None,
            member_epoch: -1,
            topics,
        }],
        require_stable: false,
    });
    r.groups.remove(0)
}

pub fn fetch_one(c: &Coordinator, group: &str, topic: &str, partition: i32) -> (i64, i16) {
    let topics = vec![OffsetFetchTopic {
        name: topic.into(),
        partition_indexes: vec![partition],
    }];
    let g = &fetch_group(c, group, Some(topics));
    if g.error_code != codes::NONE {
        return (-1, g.error_code);
    }
    let p = &g.topics[0].partitions[0];
    (p.committed_offset, p.error_code)
}

/// A joining (epoch 0) ConsumerGroupHeartbeat v1 of `member` in group `g` that
/// subscribes to nothing yet.
pub fn cgh_join(member: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest {
        api_version: 1,
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: None,
        subscribed_topic_regex: None,
        server_assignor: None,
        topic_partitions: Some(vec![]),
        client_id: "client".into(),
        client_host: "/10.0.0.1".into(),
    }
}
