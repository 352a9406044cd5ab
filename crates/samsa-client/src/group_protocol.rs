//! The "consumer" embedded protocol of classic consumer groups: the
//! subscription a member sends in JoinGroup, the assignment the leader sends in
//! SyncGroup (both in Kafka's non-flexible encoding: INT16 string lengths, INT32
//! array counts and byte lengths), and the "range" assignor.
//!
//! Decoding is bounded: every count and length is checked against the bytes
//! that remain before anything is reserved.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ClientError;

/// A member's subscription (ConsumerProtocolSubscription; fields after
/// `user_data` in newer versions are ignored when decoding).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub user_data: Option<Vec<u8>>,
}

/// A member's assignment (ConsumerProtocolAssignment).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// topic → partitions, sorted.
    pub partitions: BTreeMap<String, Vec<i32>>,
    pub user_data: Option<Vec<u8>>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(b) => {
            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
}

impl Subscription {
    /// Version 0 encoding (read by every consumer-protocol version).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&(self.topics.len() as i32).to_be_bytes());
        for t in &self.topics {
            put_str(&mut out, t);
        }
        put_bytes(&mut out, self.user_data.as_deref());
        out
    }

    pub fn decode(buf: &[u8]) -> Result<Subscription, ClientError> {
        let mut r = Reader { buf, pos: 0 };
        let _version = r.i16()?;
        let n = r.count(2)?;
        let mut topics = Vec::with_capacity(n);
        for _ in 0..n {
            topics.push(r.string()?);
        }
        let user_data = if r.remaining() >= 4 { r.bytes()? } else { None };
        Ok(Subscription { topics, user_data })
    }
}

impl Assignment {
    /// Version 0 encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&(self.partitions.len() as i32).to_be_bytes());
        for (topic, parts) in &self.partitions {
            put_str(&mut out, topic);
            out.extend_from_slice(&(parts.len() as i32).to_be_bytes());
            for p in parts {
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
        put_bytes(&mut out, self.user_data.as_deref());
        out
    }

    /// Decodes any version; an empty buffer is an empty assignment (what a
    /// broker returns for a member that got nothing).
    pub fn decode(buf: &[u8]) -> Result<Assignment, ClientError> {
        if buf.is_empty() {
            return Ok(Assignment::default());
        }
        let mut r = Reader { buf, pos: 0 };
        let _version = r.i16()?;
        let n = r.count(6)?;
        let mut partitions = BTreeMap::new();
        for _ in 0..n {
            let topic = r.string()?;
            let m = r.count(4)?;
            let mut parts = Vec::with_capacity(m);
            for _ in 0..m {
                parts.push(r.i32()?);
            }
            parts.sort_unstable();
            partitions
                .entry(topic)
                .or_insert_with(Vec::new)
                .extend(parts);
        }
        let user_data = if r.remaining() >= 4 { r.bytes()? } else { None };
        Ok(Assignment {
            partitions,
            user_data,
        })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed(what: &str) -> ClientError {
    ClientError::Invalid(format!("malformed consumer protocol data: {what}"))
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], ClientError> {
        let s = self
            .buf
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or_else(|| malformed("truncated"))?;
        self.pos += n;
        Ok(s)
    }

    fn i16(&mut self) -> Result<i16, ClientError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, ClientError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An array count whose elements take at least `min_elem` bytes each.
    fn count(&mut self, min_elem: usize) -> Result<usize, ClientError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        let n = n as usize;
        if n.saturating_mul(min_elem) > self.remaining() {
            return Err(malformed("array count larger than the data"));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, ClientError> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(String::new());
        }
        let b = self.take(n as usize)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    fn bytes(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?.to_vec()))
    }
}

/// The "range" assignor: per topic, the subscribed members sorted by member id
/// each get a contiguous range; the first `partitions % members` get one extra.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Subscription>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = subscriptions
        .keys()
        .map(|m| (m.clone(), Assignment::default()))
        .collect();
    let topics: BTreeSet<&String> = subscriptions
        .values()
        .flat_map(|s| s.topics.iter())
        .collect();
    for topic in topics {
        let Some(&count) = partition_counts.get(topic) else {
            continue;
        };
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, s)| s.topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() || count <= 0 {
            continue;
        }
        let n = members.len() as i32;
        let per = count / n;
        let extra = count % n;
        for (i, member) in members.iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            if len == 0 {
                continue;
            }
            if let Some(a) = out.get_mut(*member) {
                a.partitions
                    .insert(topic.clone(), (start..start + len).collect());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_and_assignment_round_trip() {
        let s = Subscription {
            topics: vec!["a".into(), "bb".into()],
            user_data: None,
        };
        let bytes = s.encode();
        assert_eq!(
            bytes,
            vec![0, 0, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'b', 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(Subscription::decode(&bytes).expect("decodes"), s);
        let mut a = Assignment::default();
        a.partitions.insert("t".into(), vec![0, 2]);
        let bytes = a.encode();
        assert_eq!(Assignment::decode(&bytes).expect("decodes"), a);
        assert_eq!(
            Assignment::decode(&[]).expect("empty"),
            Assignment::default()
        );
    }

    #[test]
    fn decoding_refuses_counts_beyond_the_data() {
        let bytes = [0, 0, 0x7f, 0xff, 0xff, 0xff];
        assert!(Assignment::decode(&bytes).is_err());
        assert!(Subscription::decode(&bytes).is_err());
        assert!(Subscription::decode(&[0]).is_err());
    }

    #[test]
    fn range_assignor_matches_kafka() {
        // 2 consumers, topic of 5 partitions: c1 gets 0-2, c2 gets 3-4.
        let mut subs = BTreeMap::new();
        for m in ["c2", "c1"] {
            subs.insert(
                m.to_string(),
                Subscription {
                    topics: vec!["t".into(), "u".into()],
                    user_data: None,
                },
            );
        }
        let counts = BTreeMap::from([("t".to_string(), 5), ("u".to_string(), 1)]);
        let a = range_assign(&subs, &counts);
        assert_eq!(a["c1"].partitions["t"], vec![0, 1, 2]);
        assert_eq!(a["c2"].partitions["t"], vec![3, 4]);
        assert_eq!(a["c1"].partitions["u"], vec![0]);
        assert!(!a["c2"].partitions.contains_key("u"));
    }
}
