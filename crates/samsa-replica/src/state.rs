//! [`ReplicaState`]: one partition's role, epochs, ISR, follower progress
//! and high watermark, with the decisions over them.

use std::collections::BTreeMap;

use samsa_model::{BrokerId, LeaderEpoch, Offset};

use crate::ReplicaLog;

/// A partition's assignment as the metadata image states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The leader; negative when there is none.
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    /// Bumped with every change of the partition (the AlterPartition fence).
    pub partition_epoch: i32,
    pub replicas: Vec<BrokerId>,
    /// The committed ISR.
    pub isr: Vec<BrokerId>,
}

/// What the leader knows of one follower (Kafka's `Replica` state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset: the offset of its last fetch in this
    /// leader epoch; -1 until it fetched.
    pub log_end: i64,
    /// When the follower last was fully caught up (ms); 0 = never.
    pub caught_up_ms: i64,
    /// When it last fetched, and the leader's log end at that time.
    pub last_fetch_ms: i64,
    pub leader_end_at_last_fetch: i64,
    /// The broker epoch (registration) the follower fetched with; -1 when
    /// unknown. KIP-903: an ISR addition names it, and the controller
    /// refuses it when the broker has registered again since (a fetch from
    /// before a restart that lost its log must not bring it into the ISR).
    pub broker_epoch: i64,
}

impl FollowerProgress {
    fn unknown(caught_up_ms: i64) -> FollowerProgress {
        FollowerProgress {
            log_end: -1,
            caught_up_ms,
            last_fetch_ms: 0,
            leader_end_at_last_fetch: -1,
            broker_epoch: -1,
        }
    }
}

/// An ISR change sent to the controller and not yet answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrProposal {
    /// The leader and partition epochs it is fenced on.
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    /// The ISR proposed.
    pub isr: Vec<BrokerId>,
    /// For each member of `isr`, the broker epoch its fetches carried (-1:
    /// unknown or this leader); see [`FollowerProgress::broker_epoch`].
    pub broker_epochs: Vec<i64>,
}

/// The leader's side of replication for one partition.
#[derive(Clone, Debug)]
pub struct LeaderState {
    pub epoch: LeaderEpoch,
    pub partition_epoch: i32,
    pub replicas: Vec<BrokerId>,
    /// The committed ISR (from the metadata image).
    pub isr: Vec<BrokerId>,
    pub followers: BTreeMap<BrokerId, FollowerProgress>,
    /// The log end offset when this leader epoch began: a follower joins the
    /// ISR only once it reached it (Kafka's leader epoch start offset rule).
    pub epoch_start_offset: i64,
    /// The ISR change in flight, if any (one at a time).
    pub pending: Option<IsrProposal>,
}

impl LeaderState {
    /// KIP-497's maximal ISR: the committed ISR plus every replica a pending
    /// change adds. A pending addition counts from the moment it is
    /// proposed (once committed, the new member may be elected, so it must
    /// already hold everything acknowledged); a pending removal counts only
    /// once committed.
    pub fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut isr = self.isr.clone();
        if let Some(p) = &self.pending {
            for r in &p.isr {
                if !isr.contains(r) {
                    isr.push(*r);
                }
            }
        }
        isr
    }
}

/// This broker's role for a partition.
#[derive(Clone, Debug)]
pub enum Role {
    Leader(LeaderState),
    /// Replicating from `leader` in `epoch`; `truncated` once the divergent
    /// tail (if any) was cut after the epoch began (KIP-279).
    Follower {
        leader: BrokerId,
        epoch: LeaderEpoch,
        truncated: bool,
    },
    /// No leader, or this broker is not a replica.
    Offline,
}

/// How [`ReplicaState::apply_assignment`] changed the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleChange {
    Unchanged,
    BecameLeader,
    BecameFollower(BrokerId),
    WentOffline,
}

/// Why a leader-only operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotLeader {
    /// This broker does not lead the partition.
    NotLeader,
    /// acks=all and the ISR is smaller than `min.insync.replicas`.
    NotEnoughReplicas { isr: usize, min: usize },
}

/// Where a leader append that acks=all waits for stands
/// ([`ReplicaState::append_wait`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendWait {
    /// The high watermark has not passed it yet.
    Pending,
    /// On every ISR member, with the ISR at least `min.insync.replicas`.
    Replicated,
    /// Replicated, but the ISR shrank below `min.insync.replicas`.
    NotEnoughReplicas,
    /// This broker no longer leads the partition in the append's epoch.
    NotLeader,
}

/// What a follower's fetch did on the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerFetch {
    /// The high watermark moved.
    pub hw_moved: bool,
    /// The ISR to propose: the follower caught up and is not a member yet.
    pub expand: Option<Vec<BrokerId>>,
}

/// A leader's OffsetForLeaderEpoch answer (without error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochAnswer {
    /// The largest epoch the leader has at or below the one asked; negative
    /// when it has none.
    pub leader_epoch: LeaderEpoch,
    /// Where that epoch's data ends on the leader; negative when unknown.
    pub end_offset: Offset,
}

/// The next step of a follower's KIP-279 truncation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruncationStep {
    /// The role or epoch changed since the request was built: nothing was
    /// done (a late answer never cuts records).
    Stale,
    /// Ask the leader about this epoch of ours.
    Ask(LeaderEpoch),
    /// Truncation is complete; `cut` is where the log was cut, if it was.
    Done { cut: Option<(Offset, Offset)> },
}

/// One partition's replication state on one broker.
#[derive(Clone, Debug)]
pub struct ReplicaState {
    me: BrokerId,
    role: Role,
    /// The leader epoch of the assignment (followers keep it too).
    leader_epoch: LeaderEpoch,
    /// The high watermark: below it, records are on every ISR member.
    hw: i64,
}

impl ReplicaState {
    /// A partition on broker `me`, offline until its first assignment, with
    /// the high watermark `hw` (e.g. from its checkpoint).
    pub fn new(me: BrokerId, leader_epoch: LeaderEpoch, hw: Offset) -> ReplicaState {
        ReplicaState {
            me,
            role: Role::Offline,
            leader_epoch,
            hw: hw.get().max(0),
        }
    }

    /// The current role.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The leader epoch of the current assignment.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    /// The high watermark as stored (callers clamp it to the log end).
    pub fn high_watermark(&self) -> Offset {
        Offset(self.hw)
    }

    /// Replaces the high watermark (loading its checkpoint at startup).
    pub fn set_high_watermark(&mut self, hw: Offset) {
        self.hw = hw.get().max(0);
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The committed ISR's size while this broker leads.
    pub fn isr_len(&self) -> Option<usize> {
        match &self.role {
            Role::Leader(s) => Some(s.isr.len()),
            _ => None,
        }
    }

    /// Where an append made as leader in `epoch`, ending at `last_offset`,
    /// stands. A leader that lost the partition and leads it again in
    /// another epoch no longer knows whether its batch survived a truncation
    /// in between, so the wait ends with [`AppendWait::NotLeader`] even when
    /// the high watermark passed the offset (an idempotent producer's retry
    /// is then answered from the producer state).
    pub fn append_wait(
        &self,
        epoch: LeaderEpoch,
        last_offset: i64,
        min_isr: usize,
        log_end: Offset,
    ) -> AppendWait {
        let Role::Leader(state) = &self.role else {
            return AppendWait::NotLeader;
        };
        if self.leader_epoch != epoch {
            return AppendWait::NotLeader;
        }
        if self.hw.min(log_end.get()) <= last_offset {
            AppendWait::Pending
        } else if state.isr.len() >= min_isr {
            AppendWait::Replicated
        } else {
            AppendWait::NotEnoughReplicas
        }
    }

    /// The lowest offset retention and DeleteRecords may not delete: data at
    /// or above the high watermark is never removed (Kafka's rule; it may
    /// not be on every ISR member yet, so it is not committed).
    pub fn deletable_below(&self) -> Offset {
        Offset(self.hw)
    }

    /// Brings the role in line with the partition's assignment. Becoming
    /// leader records the epoch in the log's epoch cache first; if that fails
    /// the partition stays offline (a later assignment retries).
    pub fn apply_assignment<L: ReplicaLog>(
        &mut self,
        a: &Assignment,
        log: &mut L,
        now_ms: i64,
    ) -> Result<RoleChange, L::Error> {
        let me = self.me;
        let leader_here = a.leader == me;
        let change = match (&mut self.role, leader_here) {
            (Role::Leader(state), true) if state.epoch == a.leader_epoch => {
                // Same leadership: the ISR or replica set changed.
                if a.partition_epoch != state.partition_epoch {
                    // A change in flight was fenced on the old partition
                    // epoch: it is applied now or will be refused.
                    state.pending = None;
                }
                state.partition_epoch = a.partition_epoch;
                state.isr = a.isr.clone();
                state.replicas = a.replicas.clone();
                state.followers.retain(|id, _| a.replicas.contains(id));
                for r in &a.replicas {
                    if *r != me {
                        state
                            .followers
                            .entry(*r)
                            .or_insert(FollowerProgress::unknown(0));
                    }
                }
                RoleChange::Unchanged
            }
            (_, true) => {
                if let Err(e) = log.assign_epoch(a.leader_epoch) {
                    self.role = Role::Offline;
                    self.leader_epoch = a.leader_epoch;
                    return Err(e);
                }
                let followers = a
                    .replicas
                    .iter()
                    .filter(|r| **r != me)
                    .map(|r| {
                        let caught_up = if a.isr.contains(r) { now_ms } else { 0 };
                        (*r, FollowerProgress::unknown(caught_up))
                    })
                    .collect();
                self.role = Role::Leader(LeaderState {
                    epoch: a.leader_epoch,
                    partition_epoch: a.partition_epoch,
                    replicas: a.replicas.clone(),
                    isr: a.isr.clone(),
                    followers,
                    epoch_start_offset: log.log_end().get(),
                    pending: None,
                });
                RoleChange::BecameLeader
            }
            (Role::Follower { leader, epoch, .. }, false)
                if *leader == a.leader && *epoch == a.leader_epoch =>
            {
                RoleChange::Unchanged
            }
            (_, false) if a.leader.get() >= 0 && a.replicas.contains(&me) => {
                self.role = Role::Follower {
                    leader: a.leader,
                    epoch: a.leader_epoch,
                    truncated: false,
                };
                RoleChange::BecameFollower(a.leader)
            }
            (Role::Offline, false) => RoleChange::Unchanged,
            (_, false) => {
                self.role = Role::Offline;
                RoleChange::WentOffline
            }
        };
        self.leader_epoch = a.leader_epoch;
        self.advance_hw(log.log_end());
        Ok(change)
    }

    /// Whether a produce may append here: this broker leads and, with
    /// acks=all, the committed ISR is at least `min.insync.replicas`. Returns
    /// the leader epoch to stamp the batch with. The caller appends while
    /// still holding the lock it read this under.
    pub fn check_append(&self, acks: i16, min_insync: usize) -> Result<LeaderEpoch, NotLeader> {
        match &self.role {
            Role::Leader(state) => {
                if acks == -1 && state.isr.len() < min_insync {
                    Err(NotLeader::NotEnoughReplicas {
                        isr: state.isr.len(),
                        min: min_insync,
                    })
                } else {
                    Ok(state.epoch)
                }
            }
            _ => Err(NotLeader::NotLeader),
        }
    }

    /// On the leader: moves the high watermark to the smallest log end in the
    /// maximal ISR (KIP-497), never backwards. Returns whether it moved.
    pub fn advance_hw(&mut self, log_end: Offset) -> bool {
        let Role::Leader(state) = &self.role else {
            return false;
        };
        let mut candidate = log_end.get();
        for r in state.maximal_isr() {
            if r == self.me {
                continue;
            }
            match state.followers.get(&r) {
                Some(f) if f.log_end >= 0 => candidate = candidate.min(f.log_end),
                _ => return false,
            }
        }
        if candidate > self.hw {
            self.hw = candidate;
            true
        } else {
            false
        }
    }

    /// On the leader: `follower` fetched from `fetch_offset` (its log end);
    /// records its progress and advances the high watermark. An expansion is
    /// wanted once it reached the high watermark and the start of this leader
    /// epoch, and no ISR change is in flight.
    pub fn follower_fetched(
        &mut self,
        follower: BrokerId,
        follower_broker_epoch: i64,
        fetch_offset: Offset,
        log_end: Offset,
        now_ms: i64,
    ) -> Result<FollowerFetch, NotLeader> {
        let end = log_end.get();
        let Role::Leader(state) = &mut self.role else {
            return Err(NotLeader::NotLeader);
        };
        let Some(f) = state.followers.get_mut(&follower) else {
            return Err(NotLeader::NotLeader);
        };
        let fetch_offset = fetch_offset.get();
        if fetch_offset >= end {
            f.caught_up_ms = now_ms;
        } else if f.leader_end_at_last_fetch >= 0 && fetch_offset >= f.leader_end_at_last_fetch {
            f.caught_up_ms = f.caught_up_ms.max(f.last_fetch_ms);
        }
        f.last_fetch_ms = now_ms;
        f.leader_end_at_last_fetch = end;
        f.log_end = fetch_offset.min(end);
        f.broker_epoch = follower_broker_epoch;
        let follower_end = f.log_end;
        let hw_moved = self.advance_hw(log_end);
        let Role::Leader(state) = &self.role else {
            return Err(NotLeader::NotLeader);
        };
        let expand = (!state.isr.contains(&follower)
            && state.pending.is_none()
            && follower_end >= self.hw
            && follower_end >= state.epoch_start_offset)
            .then(|| {
                let mut isr = state.isr.clone();
                isr.push(follower);
                isr
            });
        Ok(FollowerFetch { hw_moved, expand })
    }

    /// On the leader: the ISR without the members that have not caught up
    /// for `lag_max_ms`, if any fell behind (and no ISR change is in flight).
    pub fn lagging_isr(
        &self,
        log_end: Offset,
        now_ms: i64,
        lag_max_ms: i64,
    ) -> Option<Vec<BrokerId>> {
        let Role::Leader(state) = &self.role else {
            return None;
        };
        if state.pending.is_some() {
            return None;
        }
        let keep: Vec<BrokerId> = state
            .isr
            .iter()
            .copied()
            .filter(|r| {
                *r == self.me
                    || state.followers.get(r).is_some_and(|f| {
                        // Caught up now, or recently enough.
                        f.log_end >= log_end.get() || now_ms - f.caught_up_ms <= lag_max_ms
                    })
            })
            .collect();
        (keep.len() < state.isr.len()).then_some(keep)
    }

    /// On the leader: records `isr` as the change in flight (it counts for
    /// the high watermark from now on, see [`LeaderState::maximal_isr`]) and
    /// returns the proposal to send, fenced on the current epochs. `None`
    /// when not leading or another change is in flight.
    pub fn propose_isr(&mut self, isr: Vec<BrokerId>) -> Option<IsrProposal> {
        let Role::Leader(state) = &mut self.role else {
            return None;
        };
        if state.pending.is_some() {
            return None;
        }
        let broker_epochs = isr
            .iter()
            .map(|r| state.followers.get(r).map_or(-1, |f| f.broker_epoch))
            .collect();
        let proposal = IsrProposal {
            leader_epoch: state.epoch,
            partition_epoch: state.partition_epoch,
            isr,
            broker_epochs,
        };
        state.pending = Some(proposal.clone());
        Some(proposal)
    }

    /// The controller answered `proposal` (applied or refused; an applied
    /// change has reached this state through [`Self::apply_assignment`]
    /// first). Clears it if it is still the change in flight.
    pub fn isr_change_done(&mut self, proposal: &IsrProposal) {
        if let Role::Leader(state) = &mut self.role {
            if state.pending.as_ref() == Some(proposal) {
                state.pending = None;
            }
        }
    }

    /// The follower's leader and epoch, with whether it has truncated.
    pub fn follower_of(&self) -> Option<(BrokerId, LeaderEpoch, bool)> {
        match &self.role {
            Role::Follower {
                leader,
                epoch,
                truncated,
            } => Some((*leader, *epoch, *truncated)),
            _ => None,
        }
    }

    /// Whether a fetch response for a request built as follower of `leader`
    /// in `epoch` may still be applied: the role, leader and epoch are
    /// unchanged and truncation for the epoch is done.
    pub fn is_current_fetch(&self, leader: BrokerId, epoch: LeaderEpoch) -> bool {
        matches!(self.role, Role::Follower { leader: l, epoch: e, truncated: true } if l == leader && e == epoch)
    }

    /// Applying fetched data failed (e.g. it does not continue the log):
    /// truncate again before the next fetch, if the fetch is still current.
    pub fn fetch_diverged(&mut self, leader: BrokerId, epoch: LeaderEpoch) {
        if let Role::Follower {
            leader: l,
            epoch: e,
            truncated,
        } = &mut self.role
        {
            if *l == leader && *e == epoch {
                *truncated = false;
            }
        }
    }

    /// A follower learned the leader's high watermark from a fetch built
    /// for `(leader, epoch)`; ignored when that fetch is no longer current.
    pub fn follower_learned_hw(
        &mut self,
        leader: BrokerId,
        epoch: LeaderEpoch,
        leader_hw: Offset,
        log_end: Offset,
    ) {
        if self.is_current_fetch(leader, epoch) {
            self.hw = leader_hw.get().min(log_end.get()).max(0);
        }
    }

    /// Starts KIP-279 truncation for a follower of `(leader, epoch)`: the
    /// epoch to ask the leader about, or `Done` when the log is empty.
    pub fn start_truncation<L: ReplicaLog>(
        &mut self,
        leader: BrokerId,
        epoch: LeaderEpoch,
        log: &L,
    ) -> TruncationStep {
        if !matches!(self.role, Role::Follower { leader: l, epoch: e, truncated: false } if l == leader && e == epoch)
        {
            return TruncationStep::Stale;
        }
        if log.log_end() <= log.log_start() {
            self.finish_truncation(log.log_end());
            return TruncationStep::Done { cut: None };
        }
        TruncationStep::Ask(log.latest_epoch().unwrap_or(LeaderEpoch(-1)))
    }

    /// Applies the leader's OffsetForLeaderEpoch answer to a request built
    /// as follower of `(leader, epoch)`: cut the log where it diverges, or
    /// ask again about an earlier epoch. A late answer (role, leader or
    /// epoch changed, or truncation already done) is dropped: `Stale`.
    pub fn apply_epoch_answer<L: ReplicaLog>(
        &mut self,
        leader: BrokerId,
        epoch: LeaderEpoch,
        answer: EpochAnswer,
        log: &mut L,
    ) -> Result<TruncationStep, L::Error> {
        if !matches!(self.role, Role::Follower { leader: l, epoch: e, truncated: false } if l == leader && e == epoch)
        {
            return Ok(TruncationStep::Stale);
        }
        let cut = if answer.leader_epoch.get() < 0 || answer.end_offset.get() < 0 {
            // The leader knows none of our epochs: keep only what was
            // committed (Kafka's pre-KIP-101 rule).
            self.hw
        } else {
            let (mine, my_end) = log.end_offset_for_epoch(answer.leader_epoch);
            if mine == answer.leader_epoch {
                answer.end_offset.get().min(my_end.get())
            } else if mine.get() < 0 {
                // We have nothing from that epoch or before it.
                log.log_start().get()
            } else {
                // Ask again about the latest epoch we have before it.
                return Ok(TruncationStep::Ask(mine));
            }
        };
        let end = log.log_end();
        let cut = if cut < end.get() {
            log.truncate_to(Offset(cut))?;
            Some((end, log.log_end()))
        } else {
            None
        };
        self.finish_truncation(log.log_end());
        Ok(TruncationStep::Done { cut })
    }

    fn finish_truncation(&mut self, log_end: Offset) {
        self.hw = self.hw.min(log_end.get());
        if let Role::Follower { truncated, .. } = &mut self.role {
            *truncated = true;
        }
    }
}
