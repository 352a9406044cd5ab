//! DescribeTopicPartitions (API 75, KIP-966): topics and every one of their
//! partitions, paged, as Kafka's admin `describeTopics` by name (and so
//! `kafka-topics.sh --describe` since 3.8) gathers them.
//!
//! One request names the topics (none = every topic), a page size
//! (`response_partition_limit`, which the broker caps with its
//! `max.request.partition.size.limit`) and the cursor of the previous page;
//! the answer holds at most that many partitions, in topic-name then
//! partition order, and a `next_cursor` naming the first partition left out.
//! The pages are asked on one connection and joined per topic. A broker that
//! does not list API 75 is asked with Metadata instead (Kafka's admin client
//! falls back the same way on UNSUPPORTED_VERSION); its partitions then have
//! no ELR lists (`None`).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::{ApiKey, DescribeTopicPartitionsRequest};

use super::{topic_name, Admin};
use crate::client::{codes, ids, PartitionInfo, TopicInfo};
use crate::error::ClientError;

/// Kafka's default page size (`kafka-topics.sh --partition-size-limit-per-response`).
pub const PARTITION_LIMIT_DEFAULT: i32 = 2000;

/// Most partitions one [`Admin::describe_topics_paged`] call gathers over all
/// its pages; a broker describing more is refused rather than followed.
pub const DESCRIBED_PARTITIONS_MAX: usize = 1_000_000;

/// Most pages one call follows (each page holds at least one partition, so
/// this never binds before [`DESCRIBED_PARTITIONS_MAX`] on an honest broker).
const PAGES_MAX: usize = DESCRIBED_PARTITIONS_MAX;

impl Admin {
    /// The named topics (each must exist; sorted by name) or every
    /// non-internal topic, with all their partitions, over
    /// DescribeTopicPartitions pages of at most `partition_limit` partitions
    /// (Metadata when the broker does not list API 75).
    pub async fn describe_topics_paged(
        &self,
        names: Option<&[String]>,
        partition_limit: i32,
    ) -> Result<Vec<TopicInfo>, ClientError> {
        let conn = self.client.any_connection().await?;
        let Some(v) = conn.versions().version(ApiKey::DescribeTopicPartitions) else {
            tracing::debug!("broker does not list DescribeTopicPartitions; using Metadata");
            let mut topics = self.describe_topics(names).await?;
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(topics);
        };
        let mut requested: Vec<String> = names.map(<[String]>::to_vec).unwrap_or_default();
        requested.sort_unstable();
        requested.dedup();
        let topics: Vec<TopicRequest> = requested
            .iter()
            .map(|n| TopicRequest::default().with_name(topic_name(n)))
            .collect();
        let mut pages = Pages::default();
        let mut cursor: Option<(String, i32)> = None;
        for _ in 0..PAGES_MAX {
            let request = DescribeTopicPartitionsRequest::default()
                .with_topics(topics.clone())
                .with_response_partition_limit(partition_limit)
                .with_cursor(cursor.as_ref().map(|(t, p)| {
                    Cursor::default()
                        .with_topic_name(topic_name(t))
                        .with_partition_index(*p)
                }));
            let response = conn.send_version(&request, v).await?;
            let added = pages.add(response.topics)?;
            let Some(next) = response.next_cursor else {
                return pages.finish(names.is_some().then_some(&requested[..]));
            };
            if added == 0 {
                // A page holds at least one partition, so the pages end.
                return Err(ClientError::Invalid(
                    "DescribeTopicPartitions answered an empty page with a cursor".into(),
                ));
            }
            let next = (next.topic_name.0.to_string(), next.partition_index);
            if cursor.as_ref().is_some_and(|prev| next <= *prev) {
                return Err(ClientError::Invalid(format!(
                    "DescribeTopicPartitions cursor went back to {}-{}",
                    next.0, next.1
                )));
            }
            cursor = Some(next);
        }
        Err(ClientError::Invalid(format!(
            "DescribeTopicPartitions did not end within {PAGES_MAX} pages"
        )))
    }
}

/// The topics of the pages so far, by name. (`add` answers how many
/// partitions the page held.)
#[derive(Default)]
struct Pages {
    topics: BTreeMap<String, TopicInfo>,
    partitions: usize,
}

impl Pages {
    fn add(
        &mut self,
        topics: Vec<
            kafka_protocol::messages::describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic,
        >,
    ) -> Result<usize, ClientError> {
        let mut added = 0usize;
        for t in topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            added = added.saturating_add(t.partitions.len());
            self.partitions = self.partitions.saturating_add(t.partitions.len());
            if self.partitions > DESCRIBED_PARTITIONS_MAX {
                return Err(ClientError::Invalid(format!(
                    "DescribeTopicPartitions described more than {DESCRIBED_PARTITIONS_MAX} partitions"
                )));
            }
            let entry = self
                .topics
                .entry(name.clone())
                .or_insert_with(|| TopicInfo {
                    name,
                    error_code: t.error_code,
                    topic_id: *t.topic_id.as_bytes(),
                    is_internal: t.is_internal,
                    partitions: Vec::new(),
                });
            entry
                .partitions
                .extend(t.partitions.into_iter().map(|p| PartitionInfo {
                    elr: p.eligible_leader_replicas.as_deref().map(ids),
                    last_known_elr: p.last_known_elr.as_deref().map(ids),
                    ..PartitionInfo::without_elr(
                        (p.partition_index, p.error_code),
                        (p.leader_id, p.leader_epoch),
                        [&p.replica_nodes, &p.isr_nodes, &p.offline_replicas],
                    )
                }));
        }
        Ok(added)
    }

    /// The topics sorted by name, each with its partitions sorted (a
    /// partition described twice counts once). With `named`, each named topic
    /// must be there without an error; without, internal and failed topics
    /// are left out.
    fn finish(mut self, named: Option<&[String]>) -> Result<Vec<TopicInfo>, ClientError> {
        for t in self.topics.values_mut() {
            t.partitions.sort_by_key(|p| p.partition);
            t.partitions.dedup_by_key(|p| p.partition);
        }
        let Some(named) = named else {
            return Ok(self
                .topics
                .into_values()
                .filter(|t| t.error_code == 0 && !t.is_internal)
                .collect());
        };
        named_topics(named, |name| self.topics.remove(name))
    }
}

/// The named topics in the order named, each required to be answered and
/// without an error (UNKNOWN_TOPIC_OR_PARTITION when missing).
pub(super) fn named_topics(
    named: &[String],
    mut take: impl FnMut(&str) -> Option<TopicInfo>,
) -> Result<Vec<TopicInfo>, ClientError> {
    let mut out = Vec::with_capacity(named.len());
    for name in named {
        let t = take(name).ok_or_else(|| {
            ClientError::at(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                None,
                format!("topic {name}"),
            )
        })?;
        ClientError::check(t.error_code, None, format!("topic {name}"))?;
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use kafka_protocol::messages::describe_topic_partitions_response::{
        Cursor as ResponseCursor, DescribeTopicPartitionsResponsePartition,
        DescribeTopicPartitionsResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsResponse, MetadataRequest};
    use kafka_protocol::protocol::Decodable;

    use super::*;
    use crate::admin::fake_broker::{self, Reply};
    use crate::{Client, ClientConfig};

    /// Topic `a` with 5 partitions and `b` with 1, on broker 1.
    const TOPICS: [(&str, i32); 2] = [("a", 5), ("b", 1)];

    /// How the fake broker pages.
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Honest,
        /// Answers the same cursor forever.
        Stuck,
        /// Answers no partitions, with an advancing cursor.
        Empty,
    }

    /// One page as a broker with `max.request.partition.size.limit` = 2
    /// answers it (as `mode` says).
    fn page(req: &DescribeTopicPartitionsRequest, mode: Mode) -> DescribeTopicPartitionsResponse {
        let (from_topic, from_part) = req
            .cursor
            .as_ref()
            .map_or(("", 0), |c| (c.topic_name.0.as_str(), c.partition_index));
        let limit = req.response_partition_limit.min(2) as usize;
        let mut all: Vec<(&str, i32)> = Vec::new();
        for (n, count) in TOPICS {
            if req.topics.is_empty() || req.topics.iter().any(|t| t.name.0.as_str() == n) {
                all.extend((0..count).map(|i| (n, i)));
            }
        }
        let rest: Vec<(&str, i32)> = all
            .into_iter()
            .filter(|(n, i)| (*n, *i) >= (from_topic, from_part))
            .collect();
        let mut resp = DescribeTopicPartitionsResponse::default();
        let shown = if mode == Mode::Empty { 0 } else { limit };
        for (n, i) in rest.iter().take(shown) {
            if resp
                .topics
                .last()
                .map(|t| t.name.as_ref().map(|x| x.0.as_str()))
                != Some(Some(n))
            {
                resp.topics.push(
                    DescribeTopicPartitionsResponseTopic::default().with_name(Some(topic_name(n))),
                );
            }
            if let Some(t) = resp.topics.last_mut() {
                t.partitions.push(
                    DescribeTopicPartitionsResponsePartition::default()
                        .with_partition_index(*i)
                        .with_leader_id(BrokerId(1))
                        .with_replica_nodes(vec![BrokerId(1)])
                        .with_isr_nodes(vec![BrokerId(1)])
                        .with_eligible_leader_replicas(Some(Vec::new()))
                        .with_last_known_elr(Some(Vec::new())),
                );
            }
        }
        let next = if mode == Mode::Stuck {
            rest.first()
        } else {
            rest.get(limit)
        };
        resp.next_cursor = next.map(|(n, i)| {
            ResponseCursor::default()
                .with_topic_name(topic_name(n))
                .with_partition_index(*i)
        });
        resp
    }

    /// A broker listing API 75 or not; returns its address and the
    /// DescribeTopicPartitions requests it saw.
    async fn broker(
        with_api_75: bool,
        mode: Mode,
    ) -> (String, Arc<Mutex<Vec<DescribeTopicPartitionsRequest>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let mut apis = vec![(ApiKey::ApiVersions, 0, 3), (ApiKey::Metadata, 0, 12)];
        if with_api_75 {
            apis.push((ApiKey::DescribeTopicPartitions, 0, 0));
        }
        let addr = fake_broker::spawn(apis, move |port, key, version, body| match key {
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(body, version).expect("metadata request");
                Reply::encode(&fake_broker::metadata(port, &TOPICS, &req), version)
            }
            ApiKey::DescribeTopicPartitions => {
                let req = DescribeTopicPartitionsRequest::decode(body, version).expect("request");
                let resp = page(&req, mode);
                log.lock().expect("log").push(req);
                Reply::encode(&resp, version)
            }
            other => panic!("unexpected {other:?}"),
        })
        .await;
        (addr, seen)
    }

    async fn admin(addr: &str) -> Admin {
        Admin::new(
            Client::connect(ClientConfig::new(addr))
                .await
                .expect("connect"),
        )
    }

    fn indexes(t: &TopicInfo) -> Vec<i32> {
        t.partitions.iter().map(|p| p.partition).collect()
    }

    #[tokio::test]
    async fn pages_are_followed_with_the_cursor_until_every_partition_is_in() {
        let (addr, seen) = broker(true, Mode::Honest).await;
        let admin = admin(&addr).await;
        let topics = admin
            .describe_topics_paged(Some(&["b".to_string(), "a".to_string()]), 100)
            .await
            .expect("describe");
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(indexes(&topics[0]), [0, 1, 2, 3, 4]);
        assert_eq!(indexes(&topics[1]), [0]);
        assert_eq!(topics[0].partitions[0].elr, Some(Vec::new()));
        {
            let seen = seen.lock().expect("seen");
            assert_eq!(seen.len(), 3, "6 partitions in pages of 2");
            assert!(seen[0].cursor.is_none());
            let c = seen[2].cursor.as_ref().expect("cursor sent");
            assert_eq!((c.topic_name.0.as_str(), c.partition_index), ("a", 4));
            assert!(seen.iter().all(|r| r.response_partition_limit == 100));
        }

        // All topics: the request names none.
        let all = admin.describe_topics_paged(None, 2).await.expect("all");
        assert_eq!(
            all.iter().map(indexes).collect::<Vec<_>>(),
            [vec![0, 1, 2, 3, 4], vec![0]]
        );
    }

    #[tokio::test]
    async fn a_broker_without_api_75_is_asked_with_metadata() {
        let (addr, seen) = broker(false, Mode::Honest).await;
        let admin = admin(&addr).await;
        let topics = admin
            .describe_topics_paged(Some(&["a".to_string()]), 2)
            .await
            .expect("describe");
        assert_eq!(topics.len(), 1);
        assert_eq!(indexes(&topics[0]), [0, 1, 2, 3, 4]);
        assert_eq!(topics[0].partitions[0].elr, None, "Metadata has no ELR");
        assert!(seen.lock().expect("seen").is_empty());
        let e = admin
            .describe_topics_paged(Some(&["zz".to_string()]), 2)
            .await
            .expect_err("unknown topic");
        assert_eq!(e.code(), Some(codes::UNKNOWN_TOPIC_OR_PARTITION));
    }

    #[tokio::test]
    async fn a_cursor_that_does_not_advance_or_an_empty_page_is_refused() {
        let (addr, seen) = broker(true, Mode::Stuck).await;
        let admin = admin(&addr).await;
        let e = admin
            .describe_topics_paged(Some(&["a".to_string()]), 2)
            .await
            .expect_err("stuck cursor");
        assert!(e.to_string().contains("cursor went back"), "{e}");
        assert_eq!(seen.lock().expect("seen").len(), 2);

        // Empty pages whose cursor advances would take a request per partition.
        let (addr, seen) = broker(true, Mode::Empty).await;
        let admin = super::tests::admin(&addr).await;
        let e = admin
            .describe_topics_paged(None, 2)
            .await
            .expect_err("empty page");
        assert!(e.to_string().contains("empty page"), "{e}");
        assert_eq!(seen.lock().expect("seen").len(), 1);
    }
}
