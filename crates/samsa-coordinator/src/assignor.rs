//! KIP-848 server-side assignors (`uniform`, `range`) and the topic metadata they read.
//!
//! * `uniform` (the default) is sticky and balanced: every member first keeps the
//!   partitions of its previous target that are still valid, then free partitions go to
//!   the least-loaded eligible member. With identical subscriptions the result is exactly
//!   balanced (counts differ by at most one). With different subscriptions, single
//!   partition moves from the most to the least loaded eligible member are applied until
//!   none helps (bounded by [`BALANCE_MOVES_MAX`]); this may stop short of Kafka's optimum
//!   for some subscription patterns.
//! * `range` assigns each topic on its own: its subscribers, sorted by member id, get
//!   contiguous ranges, the first `partitions % members` one partition more. Unlike
//!   Kafka's server-side range assignor it is not sticky.

use std::collections::{BTreeMap, BTreeSet};

use samsa_model::TopicId;

use crate::records::Assignment;

/// Partition moves the `uniform` assignor makes while balancing heterogeneous
/// subscriptions, per partition assigned.
pub const BALANCE_MOVES_MAX: usize = 4;

/// A topic as the broker's metadata image knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic id.
    pub id: TopicId,
    /// The topic name.
    pub name: String,
    /// The partition count.
    pub partitions: u32,
}

/// Topic name ↔ (id, partition count), supplied by the broker for KIP-848 calls.
pub trait TopicMetadata {
    /// The topic called `name`, if it exists.
    fn topic_by_name(&self, name: &str) -> Option<TopicInfo>;
    /// The topic with id `id`, if it exists.
    fn topic_by_id(&self, id: TopicId) -> Option<TopicInfo>;
    /// Every topic's name, to resolve regex subscriptions against (none by default).
    fn topic_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// The version of this metadata: grows whenever topics may have been created or
    /// deleted (Kafka resolves a group's regexes again once the image has moved past
    /// the version they were resolved at). The broker passes its metadata image's
    /// count of applied records.
    fn topics_version(&self) -> i64 {
        0
    }
}

/// A plain in-memory [`TopicMetadata`].
#[derive(Clone, Debug, Default)]
pub struct TopicMetadataMap {
    by_name: BTreeMap<String, TopicInfo>,
    by_id: BTreeMap<TopicId, String>,
    /// Bumped by every insert and remove.
    version: i64,
}

impl TopicMetadataMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a topic.
    pub fn insert(&mut self, name: &str, id: TopicId, partitions: u32) {
        self.version += 1;
        if let Some(old) = self.by_name.remove(name) {
            self.by_id.remove(&old.id);
        }
        self.by_id.insert(id, name.to_owned());
        self.by_name.insert(
            name.to_owned(),
            TopicInfo {
                id,
                name: name.to_owned(),
                partitions,
            },
        );
    }

    /// Removes a topic.
    pub fn remove(&mut self, name: &str) {
        self.version += 1;
        if let Some(old) = self.by_name.remove(name) {
            self.by_id.remove(&old.id);
        }
    }
}

impl TopicMetadata for TopicMetadataMap {
    fn topic_by_name(&self, name: &str) -> Option<TopicInfo> {
        self.by_name.get(name).cloned()
    }

    fn topic_by_id(&self, id: TopicId) -> Option<TopicInfo> {
        self.by_id
            .get(&id)
            .and_then(|n| self.by_name.get(n))
            .cloned()
    }

    fn topic_names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    fn topics_version(&self) -> i64 {
        self.version
    }
}

/// One member as an assignor sees it.
pub(crate) struct MemberSpec<'a> {
    pub(crate) id: &'a str,
    pub(crate) subscribed: BTreeSet<TopicId>,
    pub(crate) current: Option<&'a Assignment>,
}

/// Runs the assignor `name` (`range`, else `uniform`). `members` are sorted by id;
/// `topics` maps every subscribed, existing topic to its partition count.
pub(crate) fn assign(
    name: &str,
    members: &[MemberSpec<'_>],
    topics: &BTreeMap<TopicId, u32>,
) -> BTreeMap<String, Assignment> {
    match name {
        "range" => range(members, topics),
        _ => uniform(members, topics),
    }
}

fn empty_result(members: &[MemberSpec<'_>]) -> BTreeMap<String, Assignment> {
    members
        .iter()
        .map(|m| (m.id.to_owned(), Assignment::new()))
        .collect()
}

fn add(result: &mut BTreeMap<String, Assignment>, member: &str, tp: (TopicId, i32)) {
    if let Some(a) = result.get_mut(member) {
        a.entry(tp.0).or_default().insert(tp.1);
    }
}

fn range(
    members: &[MemberSpec<'_>],
    topics: &BTreeMap<TopicId, u32>,
) -> BTreeMap<String, Assignment> {
    let mut result = empty_result(members);
    for (topic, count) in topics {
        let eligible: Vec<&str> = members
            .iter()
            .filter(|m| m.subscribed.contains(topic))
            .map(|m| m.id)
            .collect();
        if eligible.is_empty() {
            continue;
        }
        let count = i64::from(*count);
        let n = eligible.len() as i64;
        let (base, extra) = (count / n, count % n);
        let mut start = 0i64;
        for (i, id) in eligible.iter().enumerate() {
            let len = base + i64::from((i as i64) < extra);
            for p in start..start + len {
                add(&mut result, id, (*topic, p as i32));
            }
            start += len;
        }
    }
    result
}

fn valid(topics: &BTreeMap<TopicId, u32>, m: &MemberSpec<'_>, tp: (TopicId, i32)) -> bool {
    m.subscribed.contains(&tp.0)
        && tp.1 >= 0
        && topics.get(&tp.0).is_some_and(|c| (tp.1 as u32) < *c)
}

fn uniform(
    members: &[MemberSpec<'_>],
    topics: &BTreeMap<TopicId, u32>,
) -> BTreeMap<String, Assignment> {
    let mut result = empty_result(members);
    if members.is_empty() {
        return result;
    }
    // Every partition of a topic somebody subscribes to.
    let parts: Vec<(TopicId, i32)> = topics
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.subscribed.contains(t)))
        .flat_map(|(t, c)| (0..*c as i32).map(move |p| (*t, p)))
        .collect();
    let mut counts = vec![0usize; members.len()];
    let mut taken: BTreeSet<(TopicId, i32)> = BTreeSet::new();
    let homogeneous = members
        .windows(2)
        .all(|w| w[0].subscribed == w[1].subscribed);

    let kept = |m: &MemberSpec<'_>| -> Vec<(TopicId, i32)> {
        m.current
            .map(|a| {
                a.iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
                    .filter(|tp| valid(topics, m, *tp))
                    .collect()
            })
            .unwrap_or_default()
    };

    if homogeneous {
        let n = members.len();
        let base = parts.len() / n;
        let mut extra = parts.len() % n;
        for (i, m) in members.iter().enumerate() {
            let keep: Vec<_> = kept(m)
                .into_iter()
                .filter(|tp| !taken.contains(tp))
                .collect();
            let mut quota = base;
            if keep.len() > base && extra > 0 {
                quota += 1;
                extra -= 1;
            }
            for tp in keep.into_iter().take(quota) {
                taken.insert(tp);
                add(&mut result, m.id, tp);
                counts[i] += 1;
            }
        }
        let mut free = parts.iter().filter(|tp| !taken.contains(tp)).copied();
        for (i, m) in members.iter().enumerate() {
            while counts[i] < base {
                let Some(tp) = free.next() else { break };
                add(&mut result, m.id, tp);
                counts[i] += 1;
            }
        }
        for (i, m) in members.iter().enumerate() {
            if extra == 0 {
                break;
            }
            if counts[i] == base {
                if let Some(tp) = free.next() {
                    add(&mut result, m.id, tp);
                    counts[i] += 1;
                    extra -= 1;
                }
            }
        }
        return result;
    }

    // Heterogeneous subscriptions.
    let mut owner: BTreeMap<(TopicId, i32), usize> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for tp in kept(m) {
            if let std::collections::btree_map::Entry::Vacant(e) = owner.entry(tp) {
                e.insert(i);
                counts[i] += 1;
            }
        }
    }
    for tp in &parts {
        if owner.contains_key(tp) {
            continue;
        }
        let best = members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.subscribed.contains(&tp.0))
            .min_by_key(|(i, _)| counts[*i])
            .map(|(i, _)| i);
        if let Some(i) = best {
            owner.insert(*tp, i);
            counts[i] += 1;
        }
    }
    let mut moves_left = parts.len().saturating_mul(BALANCE_MOVES_MAX);
    'balance: while moves_left > 0 {
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|i| std::cmp::Reverse(counts[*i]));
        for src in order {
            let mine: Vec<(TopicId, i32)> = owner
                .iter()
                .filter(|(_, o)| **o == src)
                .map(|(tp, _)| *tp)
                .collect();
            for tp in mine.into_iter().rev() {
                let dst = members
                    .iter()
                    .enumerate()
                    .filter(|(j, m)| *j != src && m.subscribed.contains(&tp.0))
                    .filter(|(j, _)| counts[*j] + 1 < counts[src])
                    .min_by_key(|(j, _)| counts[*j])
                    .map(|(j, _)| j);
                if let Some(j) = dst {
                    owner.insert(tp, j);
                    counts[src] -= 1;
                    counts[j] += 1;
                    moves_left -= 1;
                    continue 'balance;
                }
            }
        }
        break;
    }
    for (tp, i) in owner {
        add(&mut result, members[i].id, tp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(n: u8) -> TopicId {
        TopicId(uuid::Uuid::from_bytes([n; 16]))
    }

    fn spec<'a>(id: &'a str, subs: &[TopicId], current: Option<&'a Assignment>) -> MemberSpec<'a> {
        MemberSpec {
            id,
            subscribed: subs.iter().copied().collect(),
            current,
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn uniform_is_balanced_and_sticky() {
        let t = tid(1);
        let topics: BTreeMap<_, _> = [(t, 6)].into_iter().collect();
        let ms = [
            spec("a", &[t], None),
            spec("b", &[t], None),
            spec("c", &[t], None),
        ];
        let r1 = assign("uniform", &ms, &topics);
        assert!(r1.values().all(|a| count(a) == 2));
        // A fourth member: the others keep what they can.
        let ms = [
            spec("a", &[t], r1.get("a")),
            spec("b", &[t], r1.get("b")),
            spec("c", &[t], r1.get("c")),
            spec("d", &[t], None),
        ];
        let r2 = assign("uniform", &ms, &topics);
        let counts: Vec<usize> = r2.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 6);
        assert!(counts.iter().all(|c| (1..=2).contains(c)));
        for id in ["a", "b", "c"] {
            let before = &r1[id][&t];
            let after = r2[id].get(&t).cloned().unwrap_or_default();
            assert!(after.is_subset(before), "{id} lost stickiness");
        }
    }

    #[test]
    fn uniform_heterogeneous_covers_everything_once() {
        let (t1, t2) = (tid(1), tid(2));
        let topics: BTreeMap<_, _> = [(t1, 4), (t2, 4)].into_iter().collect();
        let ms = [
            spec("a", &[t1], None),
            spec("b", &[t1, t2], None),
            spec("c", &[t2], None),
        ];
        let r = assign("uniform", &ms, &topics);
        let total: usize = r.values().map(count).sum();
        assert_eq!(total, 8);
        assert!(r["a"].keys().all(|t| *t == t1));
        assert!(r["c"].keys().all(|t| *t == t2));
        let counts: Vec<usize> = r.values().map(count).collect();
        assert!(counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0) <= 1);
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let t = tid(1);
        let topics: BTreeMap<_, _> = [(t, 5)].into_iter().collect();
        let ms = [spec("a", &[t], None), spec("b", &[t], None)];
        let r = assign("range", &ms, &topics);
        assert_eq!(r["a"][&t], [0, 1, 2].into_iter().collect());
        assert_eq!(r["b"][&t], [3, 4].into_iter().collect());
    }
}
