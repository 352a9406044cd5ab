//! Regex subscriptions of a KIP-848 group (Kafka's `maybeUpdateRegularExpressions`
//! and `handleRegularExpressionsResult`).
//!
//! A group keeps one resolution per regex at least one member subscribes to (a
//! ConsumerGroupRegularExpression record each; a tombstone once the last subscriber
//! changes its regex or leaves). A member's subscribed topics are its explicit names
//! plus what its regex resolved to; the group's are the union over its members.
//!
//! Resolution follows Kafka's rules, checked on every heartbeat of a group that
//! subscribes to a regex: nothing is resolved within
//! [`REGEX_REFRESH_MIN_INTERVAL_MS`] of the group's last resolution; after that the
//! group's regexes are resolved (all together) when one of them has no resolution
//! yet, when the metadata moved past the version they were resolved at (topics
//! created or deleted), or when `regex_refresh_interval_ms` passed. A resolution
//! whose topics differ from the previous one bumps the group epoch, so the target
//! assignment is recomputed. Deleted topics also leave the assignment at once, with
//! no resolution, because only existing topics enter the subscription metadata.
//!
//! Unlike Kafka, which resolves on a background thread and applies the result in a
//! later write, samsa resolves within the heartbeat that asks for it (one pass over
//! the topic names per resolution, at most one per group every 10 s): the result is
//! the same records, in the same operation as the heartbeat's own.

use std::collections::{BTreeMap, BTreeSet};

use crate::assignor::TopicMetadata;
use crate::consumer::{ConsumerGroup, ConsumerMember};
use crate::coordinator::Ctx;
use crate::error::GroupError;
use crate::records::{ConsumerRegexValue, CoordinatorRecord};
use crate::topic_regex::{self, REGEX_REFRESH_MIN_INTERVAL_MS};

/// A member's regex, `None` when absent or empty (Kafka's `isNotEmpty`).
pub(crate) fn regex_of(m: &ConsumerMember) -> Option<&str> {
    m.meta
        .subscribed_topic_regex
        .as_deref()
        .filter(|r| !r.is_empty())
}

impl ConsumerGroup {
    /// Members subscribed to each regex.
    pub(crate) fn subscribed_regexes(&self) -> BTreeMap<&str, usize> {
        let mut out: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(r) = regex_of(m) {
                *out.entry(r).or_default() += 1;
            }
        }
        out
    }

    fn regex_subscribed(&self, regex: &str) -> bool {
        self.members.values().any(|m| regex_of(m) == Some(regex))
    }

    /// The topic names `m` subscribes to: its explicit names and what its regex
    /// resolved to.
    pub(crate) fn member_topic_names<'a>(
        &'a self,
        m: &'a ConsumerMember,
    ) -> impl Iterator<Item = &'a String> + 'a {
        let resolved = regex_of(m)
            .and_then(|r| self.resolved_regexes.get(r))
            .map(|v| v.topics.iter());
        m.meta
            .subscribed_topic_names
            .iter()
            .chain(resolved.into_iter().flatten())
    }

    /// Refuses a regex the group does not subscribe to yet when it does not compile
    /// (INVALID_REGULAR_EXPRESSION); one that a member already subscribes to was
    /// checked when it came.
    pub(crate) fn check_new_regex(&self, regex: Option<&str>) -> Result<(), GroupError> {
        match regex.filter(|r| !r.is_empty()) {
            Some(r) if !self.regex_subscribed(r) => topic_regex::compile(r).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// Writes the tombstone of `regex` (a member's previous one) if no member
    /// subscribes to it any more.
    pub(crate) fn drop_unsubscribed_regex(
        &mut self,
        regex: Option<&str>,
        records: &mut Vec<CoordinatorRecord>,
    ) {
        let Some(r) = regex.filter(|r| !r.is_empty()) else {
            return;
        };
        if self.regex_subscribed(r) || self.resolved_regexes.remove(r).is_none() {
            return;
        }
        records.push(CoordinatorRecord::ConsumerRegex {
            group: self.id.clone(),
            regex: r.to_owned(),
            value: None,
        });
    }

    /// After a member's subscription was updated (its regex was `old`): drops a regex
    /// nobody subscribes to any more, and resolves the group's regexes when Kafka's
    /// rules ask for it (see the module docs). Returns whether the group epoch must
    /// be bumped: a regex the member took up is already resolved, or a resolution
    /// changed topics.
    pub(crate) fn update_regexes(
        &mut self,
        cx: &Ctx<'_>,
        member_id: &str,
        old: Option<&str>,
        topics: &dyn TopicMetadata,
        records: &mut Vec<CoordinatorRecord>,
    ) -> bool {
        let new = self
            .members
            .get(member_id)
            .and_then(regex_of)
            .map(str::to_owned);
        let old = old.filter(|r| !r.is_empty());
        let mut bump = false;
        if old != new.as_deref() {
            self.drop_unsubscribed_regex(old, records);
            bump = new
                .as_deref()
                .is_some_and(|r| self.resolved_regexes.contains_key(r));
        }
        let regexes: Vec<String> = self
            .subscribed_regexes()
            .into_keys()
            .map(str::to_owned)
            .collect();
        if regexes.is_empty() {
            return bump;
        }
        let last_version = self.resolved_regexes.values().map(|v| v.version).min();
        let last_time = self.resolved_regexes.values().map(|v| v.timestamp).min();
        if last_time.is_some_and(|t| cx.now <= t.saturating_add(REGEX_REFRESH_MIN_INTERVAL_MS)) {
            return bump;
        }
        let version = topics.topics_version();
        let unresolved = regexes
            .iter()
            .any(|r| !self.resolved_regexes.contains_key(r));
        let moved = last_version.is_some_and(|v| v < version);
        let stale = last_time.is_some_and(|t| {
            cx.now > t.saturating_add(cx.cfg.group_consumer_regex_refresh_interval_ms)
        });
        if !(unresolved || moved || stale) {
            return bump;
        }
        for (regex, matched) in topic_regex::resolve(regexes.iter().map(String::as_str), topics) {
            let before = self.resolved_regexes.get(&regex).map(|v| &v.topics);
            if before.unwrap_or(&BTreeSet::new()) != &matched {
                bump = true;
            }
            let value = ConsumerRegexValue {
                topics: matched,
                version,
                timestamp: cx.now,
            };
            records.push(CoordinatorRecord::ConsumerRegex {
                group: self.id.clone(),
                regex: regex.clone(),
                value: Some(value.clone()),
            });
            self.resolved_regexes.insert(regex, value);
        }
        bump
    }

    /// Replays a ConsumerGroupRegularExpression value.
    pub(crate) fn replay_regex(&mut self, regex: String, value: Option<ConsumerRegexValue>) {
        match value {
            Some(v) => {
                self.resolved_regexes.insert(regex, v);
            }
            None => {
                self.resolved_regexes.remove(&regex);
            }
        }
    }

    /// Tombstones of every resolution (the group is deleted).
    pub(crate) fn regex_tombstones(&self) -> impl Iterator<Item = CoordinatorRecord> + '_ {
        self.resolved_regexes
            .keys()
            .map(|r| CoordinatorRecord::ConsumerRegex {
                group: self.id.clone(),
                regex: r.clone(),
                value: None,
            })
    }
}
