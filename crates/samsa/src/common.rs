//! What every client subcommand shares: connection flags, `--output`, the
//! async runtime, and error reporting with the Kafka error name and a hint.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use samsa_client::error::ClientError;
use samsa_client::{Client, ClientConfig};

/// How results are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns / Kafka tool style text.
    Table,
    /// One JSON document (or one JSON object per line for streams).
    Json,
}

/// Flags shared by every client subcommand.
#[derive(clap::Args, Clone, Debug)]
pub struct ConnArgs {
    /// Broker(s) to bootstrap from: HOST:PORT[,HOST:PORT...].
    #[arg(
        long = "bootstrap-server",
        visible_alias = "bootstrap-servers",
        short = 'b',
        value_name = "HOST:PORT",
        default_value = "localhost:9092",
        global = true
    )]
    pub bootstrap_server: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// How long to wait for each broker response, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000, global = true)]
    pub request_timeout_ms: u64,
    /// client.id sent to the broker.
    #[arg(long, value_name = "ID", default_value = "samsa-cli", global = true)]
    pub client_id: String,
}

impl ConnArgs {
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(&self.bootstrap_server);
        config.connection.client_id = self.client_id.clone();
        config.connection.request_timeout = Duration::from_millis(self.request_timeout_ms);
        config.connection.connect_timeout =
            Duration::from_millis(self.request_timeout_ms.min(10_000));
        config
    }

    pub async fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(self.client_config())
            .await
            .map_err(anyhow::Error::new)
            .with_context(|| format!("connecting to {}", self.bootstrap_server))
    }

    pub fn json(&self) -> bool {
        self.output == Output::Json
    }
}

/// An error with advice for the user.
#[derive(Debug)]
pub struct Hinted {
    pub error: ClientError,
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Hinted {}

/// Wraps a client error with a specific hint.
pub fn hinted(error: ClientError, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        hint: hint.into(),
        error,
    })
}

/// Runs a client command on a multi-threaded runtime.
pub fn run(fut: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(fut)
}

/// Generic advice for a Kafka error code.
pub fn hint_for_code(code: i16) -> Option<&'static str> {
    Some(match code {
        3 => "the topic or partition does not exist: create it with `samsa topics create NAME --partitions N --replication-factor R` (or enable auto.create.topics.enable on the broker)",
        10 => "a record is larger than the topic's max.message.bytes: send smaller records or raise it with `samsa configs alter --topic NAME --add-config max.message.bytes=BYTES`",
        15 | 14 => "the group coordinator is not ready yet; retry in a few seconds",
        17 => "topic names may only contain ASCII letters, digits, '.', '_' and '-', at most 249 characters",
        19 | 20 => "fewer in-sync replicas than min.insync.replicas: use --acks 1, or lower min.insync.replicas",
        25 | 22 => "the group has moved to a new generation; restart the consumer",
        29 => "the broker refused: not authorized for this topic",
        30 => "the broker refused: not authorized for this group",
        36 => "the topic exists already: inspect it with `samsa topics describe NAME`",
        37 => "the number of partitions must be at least 1 (and can only grow)",
        38 => "the replication factor cannot exceed the number of brokers in the cluster; use a smaller --replication-factor",
        39 => "each replica must be a live broker listed once: `samsa topics describe` and the cluster's broker ids show what exists",
        40 => "check the config name and value: `samsa configs describe --topic NAME` lists the topic's configs",
        41 => "the broker is not the controller; retry",
        42 => "the broker rejected the request as invalid",
        44 => "a broker policy refused the request",
        68 => "the group still has active members: stop its consumers first",
        69 => "no such group: `samsa groups list` shows the existing groups",
        73 => "topic deletion is disabled: set delete.topic.enable=true on the broker",
        80 => "the preferred replica (the first of the partition's replicas) must be alive and in the ISR: wait until it has caught up (`samsa topics describe --under-replicated-partitions` lists partitions still catching up) and retry",
        83 => "no replica of the partition is alive: start one of its brokers",
        84 => "the partition already has a valid leader; nothing to do",
        85 => "the partition has no reassignment in progress: `samsa reassign-partitions --list` shows the ongoing ones",
        87 => "the partition count can only be increased",
        _ => return None,
    })
}

/// Prints an error (with the Kafka error name when there is one) and a hint.
pub fn report(e: &anyhow::Error) {
    eprintln!("Error: {e:#}");
    if let Some(h) = e.chain().find_map(|c| c.downcast_ref::<Hinted>()) {
        eprintln!("Hint: {}", h.hint);
        return;
    }
    let Some(ce) = e.chain().find_map(|c| c.downcast_ref::<ClientError>()) else {
        return;
    };
    let hint = match ce {
        ClientError::Kafka { code, .. } => hint_for_code(*code).map(str::to_string),
        ClientError::Io { addr, source } if source.kind() == std::io::ErrorKind::ConnectionRefused => Some(format!(
            "no broker is listening at {addr}: check --bootstrap-server, or start one with `samsa serve`"
        )),
        ClientError::Timeout { .. } => Some("the broker did not answer in time: check that it is up, or raise --request-timeout-ms".to_string()),
        ClientError::UnsupportedApi { .. } => {
            Some("this broker does not implement that operation (or only in versions this CLI does not speak)".to_string())
        }
        _ => None,
    };
    if let Some(h) = hint {
        eprintln!("Hint: {h}");
    }
}

/// Splits `k=v`.
pub fn parse_kv(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("expected KEY=VALUE, got {s:?}"))?;
    let k = k.trim();
    if k.is_empty() {
        anyhow::bail!("empty key in {s:?}");
    }
    Ok((k.to_string(), v.to_string()))
}

/// Splits a comma-separated list, keeping commas inside `[...]` (Kafka's
/// syntax for list values: `a=[x,y],b=z`).
pub fn split_list(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '[' => {
                depth += 1;
            }
            ']' => {
                depth -= 1;
            }
            ',' if depth <= 0 => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// `a=[x,y]` → `a=x,y` (Kafka's list value syntax).
pub fn unbracket(v: &str) -> String {
    let t = v.trim();
    if t.starts_with('[') && t.ends_with(']') && t.len() >= 2 {
        t[1..t.len() - 1].to_string()
    } else {
        t.to_string()
    }
}

/// Kafka's name for a partition: `topic-partition`.
pub fn tp_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Joins partition names with ", " (how Kafka's tools list them).
pub fn tp_list<'a>(tps: impl IntoIterator<Item = &'a (String, i32)>) -> String {
    tps.into_iter()
        .map(|(t, p)| tp_name(t, *p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An error without the partition it applies to (for per-partition lines
/// that name it already): `NAME (error code N): message`.
pub fn bare_error(e: &ClientError) -> String {
    match e {
        ClientError::Kafka {
            code,
            name,
            message,
            ..
        } => match message.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => format!("{name} (error code {code}): {m}"),
            None => format!("{name} (error code {code})"),
        },
        other => other.to_string(),
    }
}

/// Reads a JSON file given on the command line.
pub fn read_json_file(path: &std::path::Path, flag: &str) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {flag} {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{flag} {} is not valid JSON", path.display()))
}

/// Prints a JSON value on one line.
/// The `"topic"` and `"partition"` of entry `i` of a Kafka tool's JSON
/// `partitions` list (election and reassignment files share this shape).
pub fn json_topic_partition(entry: &serde_json::Value, i: usize) -> anyhow::Result<(String, i32)> {
    let topic = entry
        .get("topic")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow::anyhow!("partitions[{i}]: \"topic\" must be a non-empty string"))?;
    let partition = entry
        .get("partition")
        .and_then(|n| n.as_i64())
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            anyhow::anyhow!("partitions[{i}] ({topic}): \"partition\" must be a partition number")
        })?;
    Ok((topic.to_string(), partition))
}

pub fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

/// A table as JSON: one object per row, keyed by the column names.
pub fn rows_json(headers: &[&str], rows: &[Vec<String>]) -> serde_json::Value {
    serde_json::Value::Array(
        rows.iter()
            .map(|r| {
                serde_json::Value::Object(
                    headers
                        .iter()
                        .zip(r)
                        .map(|(h, v)| (h.to_string(), serde_json::Value::String(v.clone())))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// Milliseconds since the epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keep_bracketed_commas() {
        assert_eq!(
            split_list("a=1,b=[x,y], c=2"),
            vec!["a=1".to_string(), "b=[x,y]".into(), "c=2".into()]
        );
        assert_eq!(unbracket("[x,y]"), "x,y");
        assert_eq!(
            parse_kv("retention.ms=1000").unwrap(),
            ("retention.ms".into(), "1000".into())
        );
        assert!(parse_kv("nokey").is_err());
    }

    #[test]
    fn hints_exist_for_the_common_mistakes() {
        assert!(hint_for_code(36).unwrap().contains("samsa topics describe"));
        assert!(hint_for_code(3).unwrap().contains("samsa topics create"));
        assert!(hint_for_code(38).unwrap().contains("number of brokers"));
    }

    #[test]
    fn per_partition_errors_leave_out_the_partition() {
        let e = ClientError::at(80, Some("t-0: not in sync".into()), "partition t-0");
        assert_eq!(
            bare_error(&e),
            "PREFERRED_LEADER_NOT_AVAILABLE (error code 80): t-0: not in sync"
        );
        assert_eq!(
            bare_error(&ClientError::at(84, None, "partition t-0")),
            "ELECTION_NOT_NEEDED (error code 84)"
        );
        assert_eq!(tp_list(&[("a".into(), 0), ("b".into(), 1)]), "a-0, b-1");
    }
}
