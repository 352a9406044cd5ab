//! KIP-848 regex subscriptions: compiling a member's `SubscribedTopicRegex` and
//! resolving it against the cluster's topics.
//!
//! Kafka compiles the pattern with RE2/J and keeps the topics whose *whole* name
//! matches (`Pattern.matcher(topic).matches()`); samsa compiles it with the `regex`
//! crate, whose syntax is RE2's, and anchors it the same way (`^(?:pattern)$`, after
//! checking the bare pattern compiles, so `a)|(b` stays invalid). Topic names are
//! ASCII (`[a-zA-Z0-9._-]`), so the Unicode differences between the two engines never
//! change which topics match. Differences in what is *accepted*:
//!
//! * accepted by samsa, refused by RE2/J: the flags `x` (verbose), `R` (CRLF) and `u`
//!   (`(?x)`, `(?R)`, `(?u)`), the group syntax `(?<name>re)` (RE2/J knows only
//!   `(?P<name>re)`), class set operations (`[a&&b]`, `[a--b]`, `[a~~b]`) and
//!   `\b{start}`-style word boundaries;
//! * refused by samsa, accepted by RE2/J: `\C` (any byte), `\Q…\E` quoting, octal
//!   escapes (`\141`), and patterns whose compiled program exceeds
//!   [`REGEX_COMPILED_BYTES_MAX`] or nests deeper than [`REGEX_NEST_MAX`].
//!
//! Either refusal is answered `INVALID_REGULAR_EXPRESSION`. Internal topics
//! (`__consumer_offsets`, `__transaction_state`, `__share_group_state`) never match,
//! as in Kafka 4.x.

use std::collections::{BTreeMap, BTreeSet};

use regex::{Regex, RegexBuilder};

use crate::assignor::TopicMetadata;
use crate::error::GroupError;

/// Largest compiled program of one subscribed regex (the `regex` crate's size limit).
pub const REGEX_COMPILED_BYTES_MAX: usize = 1 << 20;
/// Deepest nesting of groups and repetitions in one subscribed regex.
pub const REGEX_NEST_MAX: u32 = 64;
/// Kafka's `REGEX_BATCH_REFRESH_MIN_INTERVAL_MS`: a group's regexes are resolved
/// again at most this often, whatever asks for it.
pub const REGEX_REFRESH_MIN_INTERVAL_MS: i64 = 10_000;

/// Kafka's internal topics (`Topic.isInternal`), which regexes never match.
const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

fn build(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_COMPILED_BYTES_MAX)
        .dfa_size_limit(REGEX_COMPILED_BYTES_MAX)
        .nest_limit(REGEX_NEST_MAX)
        .build()
}

/// Compiles `pattern` for whole-string matching with the bounds of subscribed
/// regexes (ListTransactions v2's transactional id pattern, which Kafka
/// matches against whole ids); the error says why it is invalid.
pub fn whole_match(pattern: &str) -> Result<Regex, String> {
    build(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())
}

/// Compiles `pattern` for whole-name matching, or says why it is invalid (Kafka's
/// `throwIfRegularExpressionIsInvalid` message).
pub(crate) fn compile(pattern: &str) -> Result<Regex, GroupError> {
    let invalid = |e: regex::Error| {
        let why = e
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        GroupError::InvalidRegularExpression(format!(
            "SubscribedTopicRegex `{pattern}` is not a valid regular expression: {why}."
        ))
    };
    build(pattern).map_err(invalid)?;
    build(&format!("^(?:{pattern})$")).map_err(invalid)
}

/// The non-internal topics each of `patterns` matches. A pattern that does not compile
/// (never the case for a subscribed one: they are checked when a member brings them)
/// matches nothing.
pub(crate) fn resolve<'a>(
    patterns: impl IntoIterator<Item = &'a str>,
    topics: &dyn TopicMetadata,
) -> BTreeMap<String, BTreeSet<String>> {
    let compiled: Vec<(String, Option<Regex>)> = patterns
        .into_iter()
        .map(|p| (p.to_owned(), compile(p).ok()))
        .collect();
    let mut out: BTreeMap<String, BTreeSet<String>> = compiled
        .iter()
        .map(|(p, _)| (p.clone(), BTreeSet::new()))
        .collect();
    for name in topics.topic_names() {
        if INTERNAL_TOPICS.contains(&name.as_str()) {
            continue;
        }
        for (p, re) in &compiled {
            if re.as_ref().is_some_and(|re| re.is_match(&name)) {
                if let Some(set) = out.get_mut(p) {
                    set.insert(name.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignor::TopicMetadataMap;
    use samsa_model::TopicId;

    fn topics(names: &[&str]) -> TopicMetadataMap {
        let mut m = TopicMetadataMap::new();
        for (i, n) in names.iter().enumerate() {
            m.insert(n, TopicId(uuid::Uuid::from_bytes([i as u8 + 1; 16])), 1);
        }
        m
    }

    fn matches(pattern: &str, names: &[&str]) -> Vec<String> {
        let t = topics(names);
        resolve([pattern], &t)
            .remove(pattern)
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    #[test]
    fn whole_name_must_match_as_java_matches() {
        let names = ["orders-1", "orders-2", "my-orders-1", "payments"];
        assert_eq!(matches("^orders-.*", &names), ["orders-1", "orders-2"]);
        // No anchors: still the whole name (Java `matches()`), not a substring.
        assert_eq!(matches("orders-.*", &names), ["orders-1", "orders-2"]);
        assert_eq!(matches("orders", &names), Vec::<String>::new());
        // An alternation must cover the whole name too.
        assert_eq!(matches("pay|payments", &names), ["payments"]);
    }

    #[test]
    fn internal_topics_never_match() {
        let names = ["__consumer_offsets", "__transaction_state", "__other"];
        assert_eq!(matches(".*", &names), ["__other"]);
    }

    #[test]
    fn invalid_patterns_are_invalid_regular_expression() {
        for p in ["(", "[a-", "a)|(b", "\\Qx\\E", "a{99999}{99999}"] {
            let e = compile(p).err();
            assert!(
                matches!(&e, Some(GroupError::InvalidRegularExpression(m)) if m.contains(p)),
                "{p}: {e:?}"
            );
            assert_eq!(
                e.map(|e| e.code()),
                Some(crate::codes::INVALID_REGULAR_EXPRESSION)
            );
        }
        assert!(compile("(?P<x>a+)b").is_ok());
    }
}
