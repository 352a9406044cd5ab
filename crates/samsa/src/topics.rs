//! `samsa topics`: create, list, describe, alter (add partitions) and delete,
//! with kafka-topics.sh's flag names.

use anyhow::Context;
use samsa_client::admin::{ConfigResource, NewTopic};
use samsa_client::client::TopicInfo;
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
    Describe(NameArg),
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
        TopicsCommand::Describe(n) => {
            let name = n.name.or(n.topic);
            describe(&conn, &admin, name).await
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

async fn describe(conn: &ConnArgs, admin: &Admin, name: Option<String>) -> anyhow::Result<()> {
    let names = name.map(|n| vec![n]);
    let topics: Vec<TopicInfo> = match admin.describe_topics(names.as_deref()).await {
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
    let mut json_topics = Vec::new();
    for t in &topics {
        let configs: Vec<(String, String)> = match admin
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
        };
        let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
        if conn.json() {
            json_topics.push(json!({
                "topic": t.name,
                "topic_id": t.topic_id_string(),
                "partition_count": t.partitions.len(),
                "replication_factor": rf,
                "configs": configs.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "partitions": t.partitions.iter().map(|p| json!({
                    "partition": p.partition,
                    "leader": p.leader,
                    "replicas": p.replicas,
                    "isr": p.isr,
                    "offline": p.offline,
                })).collect::<Vec<_>>(),
            }));
            continue;
        }
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
        for p in &t.partitions {
            let leader = if p.leader < 0 {
                "none".to_string()
            } else {
                p.leader.to_string()
            };
            let mut line = format!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                t.name,
                p.partition,
                leader,
                join_ids(&p.replicas),
                join_ids(&p.isr)
            );
            if !p.offline.is_empty() {
                line.push_str(&format!("\tOffline: {}", join_ids(&p.offline)));
            }
            println!("{line}");
        }
    }
    if conn.json() {
        print_json(&serde_json::Value::Array(json_topics));
    }
    Ok(())
}
