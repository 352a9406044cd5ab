//! `samsa log-dirs --describe`: kafka-log-dirs.sh. Asks each broker
//! (`--broker-list`, default all) for its log directories (DescribeLogDirs)
//! and prints Kafka's JSON document: per broker, per directory, the
//! replicas with their size, offset lag and whether each is a future
//! replica (a move between directories in progress).

use std::collections::BTreeSet;

use anyhow::Context;
use samsa_client::error::ClientError;
use samsa_client::Admin;
use serde_json::json;

use crate::common::{bare_error, ConnArgs};

#[derive(clap::Args)]
pub struct LogDirsArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Describe the log directories (the only mode, as in Kafka's tool).
    #[arg(long, required = true)]
    describe: bool,
    /// Brokers to ask, e.g. 1,2,3 (default: every broker).
    #[arg(long, value_name = "IDS")]
    broker_list: Option<String>,
    /// Topics to show, e.g. t1,t2 (default: every topic).
    #[arg(long, value_name = "TOPICS")]
    topic_list: Option<String>,
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

pub async fn run(args: LogDirsArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    let admin = Admin::new(client);
    let brokers: Vec<i32> = match &args.broker_list {
        Some(ids) => list(ids)
            .iter()
            .map(|b| {
                b.parse::<i32>()
                    .with_context(|| format!("--broker-list: {b:?} is not a broker id"))
            })
            .collect::<anyhow::Result<_>>()?,
        None => admin.client().cluster().brokers.keys().copied().collect(),
    };
    let topics: Option<BTreeSet<String>> = args
        .topic_list
        .as_deref()
        .map(|t| list(t).into_iter().collect());
    println!("Querying brokers for log directories information");
    let mut docs = Vec::new();
    let mut answered = Vec::new();
    for b in &brokers {
        let dirs = admin
            .describe_log_dirs(*b)
            .await
            .map_err(|e| anyhow::anyhow!("broker {b}: {}", bare_error(&e)))?;
        answered.push(b.to_string());
        let log_dirs: Vec<serde_json::Value> = dirs
            .iter()
            .map(|d| {
                let partitions: Vec<serde_json::Value> = d
                    .replicas
                    .iter()
                    .filter(|r| topics.as_ref().is_none_or(|t| t.contains(&r.topic)))
                    .map(|r| {
                        json!({
                            "partition": format!("{}-{}", r.topic, r.partition),
                            "size": r.size,
                            "offsetLag": r.offset_lag,
                            "isFuture": r.is_future,
                        })
                    })
                    .collect();
                let error = ClientError::check(d.error_code, None, d.dir.clone())
                    .err()
                    .map(|e| bare_error(&e));
                json!({"partitions": partitions, "error": error, "logDir": d.dir})
            })
            .collect();
        docs.push(json!({"broker": b, "logDirs": log_dirs}));
    }
    println!(
        "Received log directory information from brokers {}",
        answered.join(",")
    );
    println!("{}", json!({"brokers": docs, "version": 1}));
    Ok(())
}
