//! The slice of Kafka's embedded consumer protocol the coordinator reads: the topic list
//! at the start of a classic `consumer` member's subscription metadata, which decides
//! offset expiry and `GROUP_SUBSCRIBED_TO_TOPIC`.
//!
//! Layout (ConsumerProtocolSubscription, every version 0–3, classic encoding):
//! `version int16, topics [int32 count] of string (int16 length + UTF-8), ...` — the fields
//! after the topics (user data, owned partitions, generation, rack) are not read.

use crate::codec::Reader;

/// The topics of a consumer-protocol subscription, or `None` if it does not parse.
pub(crate) fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader::new(metadata);
    let version = r.i16().ok()?;
    if version < 0 {
        return None;
    }
    let n = r.array_len(2).ok()?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(r.string().ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_topics_and_rejects_garbage() {
        let raw = [
            0u8, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(
            subscription_topics(&raw),
            Some(vec!["a".to_owned(), "bc".to_owned()])
        );
        assert_eq!(subscription_topics(&[0, 1, 0, 0, 0, 9]), None);
        assert_eq!(subscription_topics(&[]), None);
    }
}
