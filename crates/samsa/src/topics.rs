//! `samsa topics`: create, list, describe, alter (add partitions) and delete,
//! with kafka-topics.sh's flag names.

use anyhow::Context;
use samsa_client::admin::{ConfigResource, NewTopic};
use std::collections::BTreeSet;

use samsa_client::client::{PartitionInfo, TopicInfo};
use samsa_client::error::ClientError;
use samsa_client::Admin;
use serde_json::json;

use crate::common::{hinted, parse_kv, print_json, ConnArgs};

#[derive(clap::Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(clap::Subcommand)]
enum TopicsCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topic names.
    List {
        /// Leave out internal topics such as __consumer_offsets.
        #[arg(long)]
        exclude_internal: bool,
    },
    /// Show partitions (leader, replicas, ISR) and non-default configs.
    Describe(DescribeArgs),
    /// Add partitions to a topic.
    Alter {
        #[command(flatten)]
        name: RequiredName,
        /// The new total number of partitions.
        #[arg(long, value_name = "N")]
        partitions: i32,
    },
    /// Delete a topic.
    Delete {
        #[command(flatten)]
        name: RequiredName,
        /// Succeed silently if the topic does not exist.
        #[arg(long)]
        if_exists: bool,
    },
}

#[derive(clap::Args)]
struct RequiredName {
    /// Topic name.
    #[arg(value_name = "NAME", required_unless_present = "topic")]
    name: Option<String>,
    /// Topic name (kafka-topics.sh style).
    #[arg(long, value_name = "NAME", conflicts_with = "name")]
    topic: Option<String>,
}

impl RequiredName {
    fn get(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.topic.clone())
            .unwrap_or_default()
    }
}

#[derive(clap::Args)]
struct NameArg {
    /// Topic name (all topics when omitted).
    #[arg(value_name = "NAME")]
    name: Option<String>,
    /// Topic name (kafka-topics.sh style).
    #[arg(long, value_name = "NAME", conflicts_with = "name")]
    topic: Option<String>,
}

#[derive(clap::Args)]
struct DescribeArgs {
    #[command(flatten)]
    name: NameArg,
    /// Only partitions whose ISR is smaller than their replica set (and no
    /// topic summary lines), like kafka-topics.sh.
    #[arg(long)]
    under_replicated_partitions: bool,
    /// Only partitions without a live leader (and no topic summary lines).
    #[arg(long)]
    unavailable_partitions: bool,
    /// Most partitions in one DescribeTopicPartitions response (the tool
    /// asks page after page until every partition is in).
    #[arg(long, value_name = "N", default_value_t = samsa_client::admin::PARTITION_LIMIT_DEFAULT,
          value_parser = clap::value_parser!(i32).range(1..))]
    partition_size_limit_per_response: i32,
}

/// Which partitions `topics describe` shows.
#[derive(Clone, Copy, Debug, Default)]
struct PartitionFilter {
    under_replicated: bool,
    unavailable: bool,
}

impl PartitionFilter {
    fn active(self) -> bool {
        self.under_replicated || self.unavailable
    }

    /// Whether a partition passes (either filter matching is enough).
    fn keep(self, p: &PartitionInfo, live: &BTreeSet<i32>) -> bool {
        !self.active()
            || (self.under_replicated && under_replicated(p))
            || (self.unavailable && unavailable(p, live))
    }
}

/// Kafka's under-replicated: fewer in-sync replicas than replicas.
fn under_replicated(p: &PartitionInfo) -> bool {
    p.isr.len() < p.replicas.len()
}

/// Kafka's unavailable (offline): no leader, or a leader that is not a live broker.
fn unavailable(p: &PartitionInfo, live: &BTreeSet<i32>) -> bool {
    p.leader < 0 || (!live.is_empty() && !live.contains(&p.leader))
}

#[derive(clap::Args)]
struct CreateArgs {
    #[command(flatten)]
    name: RequiredName,
    /// Number of partitions (default: the broker's num.partitions).
    #[arg(long, value_name = "N")]
    partitions: Option<i32>,
    /// Copies of each partition (default: the broker's default.replication.factor).
    #[arg(long, value_name = "R")]
    replication_factor: Option<i16>,
    /// A topic config, e.g. --config retention.ms=86400000 (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// Succeed silently if the topic exists.
    #[arg(long)]
    if_not_exists: bool,
}

pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let conn = args.conn;
    let client = conn.connect().await?;
    let admin = Admin::new(client);
    match args.command {
        TopicsCommand::Create(c) => create(&conn, &admin, c).await,
        TopicsCommand::List { exclude_internal } => {
            let topics = admin.list_topics(!exclude_internal).await?;
            if conn.json() {
                print_json(&json!(topics.iter().map(|t| &t.name).collect::<Vec<_>>()));
            } else {
                for t in topics {
                    println!("{}", t.name);
                }
            }
            Ok(())
        }
        TopicsCommand::Describe(d) => {
            let name = d.name.name.or(d.name.topic);
            let filter = PartitionFilter {
                under_replicated: d.under_replicated_partitions,
                unavailable: d.unavailable_partitions,
            };
            describe(
                &conn,
                &admin,
                name,
                filter,
                d.partition_size_limit_per_response,
            )
            .await
        }
        TopicsCommand::Alter { name, partitions } => {
            let name = name.get();
            admin
                .create_partitions(&name, partitions)
                .await
                .with_context(|| format!("adding partitions to {name}"))?;
            if conn.json() {
                print_json(&json!({"topic": name, "partitions": partitions}));
            } else {
                println!("Topic {name} now has {partitions} partitions.");
            }
            Ok(())
        }
        TopicsCommand::Delete { name, if_exists } => {
            let name = name.get();
            match admin.delete_topic(&name).await {
                Ok(()) => {}
                Err(e) if if_exists && e.code() == Some(3) => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("deleting topic {name}")))
                }
            }
            if conn.json() {
                print_json(&json!({"deleted": name}));
            } else {
                println!("Deleted topic {name}.");
            }
            Ok(())
        }
    }
}

async fn create(conn: &ConnArgs, admin: &Admin, c: CreateArgs) -> anyhow::Result<()> {
    let name = c.name.get();
    let configs = c
        .configs
        .iter()
        .map(|s| parse_kv(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rf = c.replication_factor.unwrap_or(-1);
    let new = NewTopic {
        name: name.clone(),
        partitions: c.partitions.unwrap_or(-1),
        replication_factor: rf,
        configs,
    };
    match admin.create_topic(&new).await {
        Ok(created) => {
            if conn.json() {
                print_json(&json!({
                    "topic": created.name,
                    "partitions": created.partitions,
                    "replication_factor": created.replication_factor,
                }));
            } else {
                println!("Created topic {}.", created.name);
            }
            Ok(())
        }
        Err(e) if c.if_not_exists && e.code() == Some(36) => Ok(()),
        Err(e @ ClientError::Kafka { code: 38, .. }) => {
            let brokers = admin.client().cluster().brokers.len();
            let hint = format!(
                "replication factor {rf} is larger than the number of brokers in the cluster ({brokers}); \
                 use --replication-factor {} or fewer (each replica needs its own broker)",
                brokers.max(1)
            );
            Err(hinted(e, hint))
        }
        Err(e @ ClientError::Kafka { code: 36, .. }) => Err(hinted(
            e,
            format!("topic {name} exists already: inspect it with `samsa topics describe {name}`"),
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating topic {name}"))),
    }
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

async fn describe(
    conn: &ConnArgs,
    admin: &Admin,
    name: Option<String>,
    filter: PartitionFilter,
    partition_limit: i32,
) -> anyhow::Result<()> {
    let names = name.map(|n| vec![n]);
    let described = admin
        .describe_topics_paged(names.as_deref(), partition_limit)
        .await;
    let topics: Vec<TopicInfo> = match described {
        Ok(t) => t,
        Err(e @ ClientError::Kafka { code: 3, .. }) => {
            let n = names
                .as_ref()
                .and_then(|v| v.first())
                .cloned()
                .unwrap_or_default();
            return Err(hinted(
                e,
                format!("topic {n} does not exist: `samsa topics list` shows the topics, `samsa topics create {n}` makes it"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let live: BTreeSet<i32> = admin.client().cluster().brokers.keys().copied().collect();
    let mut json_topics = Vec::new();
    let (mut total_under, mut total_offline) = (0usize, 0usize);
    for t in &topics {
        let under_count = t.partitions.iter().filter(|p| under_replicated(p)).count();
        let offline_count = t
            .partitions
            .iter()
            .filter(|p| unavailable(p, &live))
            .count();
        total_under += under_count;
        total_offline += offline_count;
        let shown: Vec<&PartitionInfo> = t
            .partitions
            .iter()
            .filter(|p| filter.keep(p, &live))
            .collect();
        if filter.active() && shown.is_empty() {
            continue;
        }
        // The filtered text view prints no topic lines, so no configs either.
        let want_configs = conn.json() || !filter.active();
        let configs: Vec<(String, String)> = if !want_configs {
            Vec::new()
        } else {
            match admin
                .describe_configs(&ConfigResource::Topic(t.name.clone()))
                .await
            {
                Ok(entries) => entries
                    .into_iter()
                    .filter(|e| !e.is_default())
                    .map(|e| {
                        let v = if e.sensitive {
                            "<sensitive>".to_string()
                        } else {
                            e.value.unwrap_or_else(|| "null".into())
                        };
                        (e.name, v)
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(topic = %t.name, error = %e, "cannot describe the topic's configs");
                    Vec::new()
                }
            }
        };
        let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
        if conn.json() {
            json_topics.push(json!({
                "topic": t.name,
                "topic_id": t.topic_id_string(),
                "partition_count": t.partitions.len(),
                "replication_factor": rf,
                "configs": configs.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "under_replicated_partitions": under_count,
                "offline_partitions": offline_count,
                "partitions": shown.iter().map(|p| json!({
                    "partition": p.partition,
                    "leader": p.leader,
                    "replicas": p.replicas,
                    "isr": p.isr,
                    "elr": p.elr,
                    "last_known_elr": p.last_known_elr,
                    "offline": p.offline,
                })).collect::<Vec<_>>(),
            }));
            continue;
        }
        if !filter.active() {
            let cfg = configs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            println!(
                "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                t.name,
                t.topic_id_string().unwrap_or_else(|| "-".into()),
                t.partitions.len(),
                rf,
                cfg
            );
        }
        for p in shown {
            println!("{}", partition_line(&t.name, p));
        }
    }
    if conn.json() {
        print_json(&serde_json::Value::Array(json_topics));
    } else if let Some(summary) = health_summary(total_under, total_offline) {
        eprintln!("{summary}");
    }
    Ok(())
}

/// A partition's line, in kafka-topics.sh's shape: leader, replicas, ISR,
/// then the ELR lists (`N/A` when the broker answered with Metadata, which
/// has none) and samsa's offline replicas when there are any.
fn partition_line(topic: &str, p: &PartitionInfo) -> String {
    let leader = if p.leader < 0 {
        "none".to_string()
    } else {
        p.leader.to_string()
    };
    let elr = |l: &Option<Vec<i32>>| l.as_deref().map_or_else(|| "N/A".into(), join_ids);
    let mut line = format!(
        "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tElr: {}\tLastKnownElr: {}",
        topic,
        p.partition,
        leader,
        join_ids(&p.replicas),
        join_ids(&p.isr),
        elr(&p.elr),
        elr(&p.last_known_elr),
    );
    if !p.offline.is_empty() {
        line.push_str(&format!("\tOffline: {}", join_ids(&p.offline)));
    }
    line
}

/// The stderr line `topics describe` prints when something needs attention.
fn health_summary(under: usize, offline: usize) -> Option<String> {
    match (under, offline) {
        (0, 0) => None,
        (u, 0) => Some(format!("{u} under-replicated partition(s)")),
        (0, o) => Some(format!("{o} offline partition(s)")),
        (u, o) => Some(format!("{u} under-replicated, {o} offline partition(s)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionInfo {
        PartitionInfo {
            partition: 0,
            error_code: 0,
            leader,
            leader_epoch: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            offline: Vec::new(),
            elr: None,
            last_known_elr: None,
        }
    }

    #[test]
    fn partition_lines_show_the_elr_lists_or_na() {
        let mut p = part(2, &[2, 3, 1], &[2, 3]);
        assert_eq!(
            partition_line("t", &p),
            "\tTopic: t\tPartition: 0\tLeader: 2\tReplicas: 2,3,1\tIsr: 2,3\tElr: N/A\tLastKnownElr: N/A"
        );
        p.elr = Some(vec![1]);
        p.last_known_elr = Some(Vec::new());
        p.offline = vec![1];
        p.leader = -1;
        assert_eq!(
            partition_line("t", &p),
            "\tTopic: t\tPartition: 0\tLeader: none\tReplicas: 2,3,1\tIsr: 2,3\tElr: 1\tLastKnownElr: \tOffline: 1"
        );
    }

    #[test]
    fn filters_follow_kafka_topics() {
        let live: BTreeSet<i32> = [1, 2].into_iter().collect();
        let healthy = part(1, &[1, 2], &[1, 2]);
        let under = part(1, &[1, 3], &[1]);
        let offline = part(-1, &[3], &[3]);
        let led_by_dead = part(3, &[3, 1], &[3, 1]);
        assert!(!under_replicated(&healthy) && under_replicated(&under));
        assert!(
            !under_replicated(&offline),
            "a lone replica keeps its ISR of one"
        );
        assert!(unavailable(&offline, &live) && unavailable(&led_by_dead, &live));
        assert!(!unavailable(&under, &live));

        let all = PartitionFilter::default();
        assert!(!all.active() && all.keep(&healthy, &live));
        let urp = PartitionFilter {
            under_replicated: true,
            unavailable: false,
        };
        assert!(
            urp.keep(&under, &live) && !urp.keep(&healthy, &live) && !urp.keep(&offline, &live)
        );
        let both = PartitionFilter {
            under_replicated: true,
            unavailable: true,
        };
        assert!(
            both.keep(&under, &live) && both.keep(&offline, &live) && !both.keep(&healthy, &live)
        );
    }

    #[test]
    fn the_summary_names_what_needs_attention() {
        assert_eq!(health_summary(0, 0), None);
        assert_eq!(
            health_summary(2, 1).as_deref(),
            Some("2 under-replicated, 1 offline partition(s)")
        );
        assert_eq!(
            health_summary(2, 0).as_deref(),
            Some("2 under-replicated partition(s)")
        );
        assert_eq!(
            health_summary(0, 3).as_deref(),
            Some("3 offline partition(s)")
        );
    }
}
