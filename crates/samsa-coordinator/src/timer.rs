//! Deadlines of the coordinator (Kafka's `CoordinatorTimer`): keyed, replaceable,
//! fired in (deadline, scheduling order) order by [`crate::Coordinator::tick`].

use std::collections::{BTreeSet, HashMap};

/// What a deadline is for. Scheduling a key again replaces its previous deadline.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKey {
    /// A classic member's session (or a KIP-394 pending member / new member join timeout).
    ClassicHeartbeat { group: String, member: String },
    /// A classic group's join phase (initial delay or rebalance timeout).
    ClassicJoin { group: String },
    /// A classic group's wait for SyncGroups from all members.
    ClassicSync { group: String },
    /// A KIP-848 member's session.
    ConsumerSession { group: String, member: String },
    /// A KIP-848 member's deadline to revoke partitions.
    ConsumerRebalance { group: String, member: String },
    /// The periodic offset expiration.
    OffsetRetention,
}

impl TimerKey {
    /// The group the deadline belongs to (`None` for coordinator-wide ones).
    pub(crate) fn group(&self) -> Option<&str> {
        match self {
            TimerKey::ClassicHeartbeat { group, .. }
            | TimerKey::ClassicJoin { group }
            | TimerKey::ClassicSync { group }
            | TimerKey::ConsumerSession { group, .. }
            | TimerKey::ConsumerRebalance { group, .. } => Some(group),
            TimerKey::OffsetRetention => None,
        }
    }
}

/// Data carried by a deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerPayload {
    None,
    /// Kafka's `InitialDelayedJoin`: current delay and the time left in the rebalance
    /// timeout.
    InitialJoin {
        delay_ms: i64,
        remaining_ms: i64,
    },
    /// The generation (classic sync) or member epoch (KIP-848 rebalance) it was set for.
    Epoch(i32),
}

#[derive(Default)]
pub(crate) struct Timers {
    by_key: HashMap<TimerKey, (i64, u64, TimerPayload)>,
    queue: BTreeSet<(i64, u64, TimerKey)>,
    seq: u64,
}

impl Timers {
    pub(crate) fn schedule(&mut self, key: TimerKey, deadline: i64, payload: TimerPayload) {
        self.cancel(&key);
        self.seq += 1;
        self.queue.insert((deadline, self.seq, key.clone()));
        self.by_key.insert(key, (deadline, self.seq, payload));
    }

    pub(crate) fn cancel(&mut self, key: &TimerKey) {
        if let Some((deadline, seq, _)) = self.by_key.remove(key) {
            self.queue.remove(&(deadline, seq, key.clone()));
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.queue.first().map(|(d, _, _)| *d)
    }

    /// The sequence number of the next timer scheduled (see [`Timers::pop_expired`]).
    pub(crate) fn watermark(&self) -> u64 {
        self.seq + 1
    }

    /// Removes and returns the earliest timer due at `now` that was scheduled before
    /// `watermark`; timers scheduled while firing others wait for the next call, so a
    /// zero-delay timer that reschedules itself cannot spin.
    pub(crate) fn pop_expired(
        &mut self,
        now: i64,
        watermark: u64,
    ) -> Option<(i64, TimerKey, TimerPayload)> {
        let found = self
            .queue
            .iter()
            .take_while(|(d, _, _)| *d <= now)
            .find(|(_, seq, _)| *seq < watermark)
            .cloned()?;
        self.queue.remove(&found);
        let (_, _, payload) = self.by_key.remove(&found.2)?;
        Some((found.0, found.2, payload))
    }

    /// Cancels every deadline whose key `keep` rejects.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&TimerKey) -> bool) {
        let Timers { by_key, queue, .. } = self;
        by_key.retain(|key, (deadline, seq, _)| {
            let kept = keep(key);
            if !kept {
                queue.remove(&(*deadline, *seq, key.clone()));
            }
            kept
        });
    }

    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescheduling_replaces_and_order_is_deadline_then_fifo() {
        let mut t = Timers::default();
        let a = TimerKey::ClassicJoin { group: "a".into() };
        let b = TimerKey::ClassicJoin { group: "b".into() };
        t.schedule(a.clone(), 10, TimerPayload::None);
        t.schedule(b.clone(), 10, TimerPayload::None);
        t.schedule(a.clone(), 20, TimerPayload::None);
        assert_eq!(t.next_deadline(), Some(10));
        let w = t.watermark();
        assert_eq!(t.pop_expired(25, w).map(|x| x.1), Some(b));
        assert_eq!(t.pop_expired(25, w).map(|x| (x.0, x.1)), Some((20, a)));
        assert_eq!(t.pop_expired(25, w), None);
    }

    #[test]
    fn retain_cancels_rejected_keys() {
        let mut t = Timers::default();
        let a = TimerKey::ClassicJoin { group: "a".into() };
        let b = TimerKey::ConsumerSession {
            group: "b".into(),
            member: "m".into(),
        };
        t.schedule(a.clone(), 10, TimerPayload::None);
        t.schedule(b.clone(), 5, TimerPayload::None);
        t.schedule(TimerKey::OffsetRetention, 20, TimerPayload::None);
        t.retain(|k| k.group() != Some("b"));
        assert_eq!(t.next_deadline(), Some(10));
        let w = t.watermark();
        assert_eq!(t.pop_expired(30, w).map(|x| x.1), Some(a));
        assert_eq!(
            t.pop_expired(30, w).map(|x| x.1),
            Some(TimerKey::OffsetRetention)
        );
        assert_eq!(t.pop_expired(30, w), None);
    }
}
