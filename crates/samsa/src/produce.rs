//! `samsa produce TOPIC`: one record per line of standard input, like
//! kafka-console-producer.sh (`--key-separator`/`--property parse.key=true`,
//! headers, acks, compression).

use std::collections::VecDeque;
use std::io::BufRead;

use bytes::Bytes;
use samsa_client::error::ClientError;
use samsa_client::producer::Delivery;
use samsa_client::{Acks, Producer, ProducerConfig, ProducerRecord};
use samsa_model::compression::Compression;
use serde_json::json;

use crate::common::{hinted, parse_kv, print_json, ConnArgs};

/// Deliveries awaited before reading more input, to bound memory.
const PENDING_MAX: usize = 10_000;

#[derive(clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Topic to write to.
    #[arg(value_name = "TOPIC", required_unless_present = "topic_flag")]
    topic: Option<String>,
    /// Topic to write to (kafka-console-producer.sh style).
    #[arg(long = "topic", value_name = "TOPIC", conflicts_with = "topic")]
    topic_flag: Option<String>,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Console-producer properties: parse.key=true, key.separator=SEP, null.marker=S.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// A header added to every record, KEY=VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Write every record to this partition.
    #[arg(long, value_name = "P")]
    partition: Option<i32>,
    /// Acknowledgements: all (-1), 1 or 0.
    #[arg(long, default_value = "all", allow_hyphen_values = true, value_parser = ["all", "-1", "1", "0"])]
    acks: String,
    /// Compression codec.
    #[arg(long = "compression", visible_alias = "compression-codec", default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// How long a batch waits for more lines, in milliseconds.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
}

pub fn parse_acks(s: &str) -> anyhow::Result<Acks> {
    Ok(match s {
        "all" | "-1" => Acks::All,
        "1" => Acks::Leader,
        "0" => Acks::None,
        other => anyhow::bail!("--acks must be all, -1, 1 or 0, not {other:?}"),
    })
}

pub fn parse_compression(s: &str) -> anyhow::Result<Compression> {
    Compression::ALL
        .into_iter()
        .find(|c| c.name() == s)
        .ok_or_else(|| anyhow::anyhow!("unknown compression {s:?} (none, gzip, snappy, lz4, zstd)"))
}

/// Adds the advice for a failed produce to a client error.
pub fn produce_error(e: ClientError, topic: &str) -> anyhow::Error {
    let hint = match e.code() {
        Some(3) => format!(
            "topic {topic} does not exist and the broker did not create it: \
             `samsa topics create {topic} --partitions 1 --replication-factor 1` creates it"
        ),
        Some(c) => match crate::common::hint_for_code(c) {
            Some(h) => h.to_string(),
            None => return anyhow::Error::new(e).context(format!("producing to {topic}")),
        },
        None => return anyhow::Error::new(e).context(format!("producing to {topic}")),
    };
    hinted(e, hint)
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let topic = args
        .topic
        .clone()
        .or(args.topic_flag.clone())
        .unwrap_or_default();
    let mut separator = args.key_separator.clone();
    let mut parse_key = separator.is_some();
    let mut null_marker: Option<String> = None;
    for p in &args.properties {
        let (k, v) = parse_kv(p)?;
        match k.as_str() {
            "parse.key" => parse_key = v.eq_ignore_ascii_case("true"),
            "key.separator" => separator = Some(v),
            "null.marker" => null_marker = Some(v),
            other => tracing::warn!(property = other, "ignoring unknown producer property"),
        }
    }
    let separator = separator.unwrap_or_else(|| "\t".to_string());
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|h| parse_kv(h).map(|(k, v)| (k, Some(Bytes::from(v)))))
        .collect::<anyhow::Result<_>>()?;
    let client = args.conn.connect().await?;
    let config = ProducerConfig {
        acks: parse_acks(&args.acks)?,
        compression: parse_compression(&args.compression)?,
        linger: std::time::Duration::from_millis(args.linger_ms),
        request_timeout_ms: args.conn.request_timeout_ms.min(i32::MAX as u64) as i32,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config);
    let json = args.conn.json();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(1024);
    // Standard input is read on a blocking thread.
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut line = Vec::new();
            match lock.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.blocking_send(Ok(line)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let mut pending: VecDeque<Delivery> = VecDeque::new();
    let mut count = 0u64;
    let mut line_no = 0u64;
    let to_field = |b: &[u8]| -> Option<Bytes> {
        if null_marker.as_deref().is_some_and(|m| m.as_bytes() == b) {
            None
        } else {
            Some(Bytes::copy_from_slice(b))
        }
    };
    while let Some(line) = rx.recv().await {
        let line = line.map_err(|e| anyhow::anyhow!("reading standard input: {e}"))?;
        line_no += 1;
        let (key, value) = if parse_key {
            let sep = separator.as_bytes();
            let at = line
                .windows(sep.len().max(1))
                .position(|w| w == sep)
                .ok_or_else(|| {
                    anyhow::anyhow!("no key separator {separator:?} on line {line_no}")
                })?;
            (to_field(&line[..at]), to_field(&line[at + sep.len()..]))
        } else {
            (None, to_field(&line))
        };
        let record = ProducerRecord {
            topic: topic.clone(),
            partition: args.partition,
            key,
            value,
            headers: headers.clone(),
            timestamp: None,
        };
        let delivery = producer
            .send(record)
            .await
            .map_err(|e| produce_error(e, &topic))?;
        pending.push_back(delivery);
        while pending.len() >= PENDING_MAX {
            if let Some(d) = pending.pop_front() {
                report(d.await, json, &topic)?;
                count += 1;
            }
        }
    }
    producer.flush().await;
    while let Some(d) = pending.pop_front() {
        report(d.await, json, &topic)?;
        count += 1;
    }
    producer.close().await;
    tracing::info!(records = count, "done");
    Ok(())
}

fn report(
    r: Result<samsa_client::RecordMetadata, ClientError>,
    json: bool,
    topic: &str,
) -> anyhow::Result<()> {
    let md = r.map_err(|e| produce_error(e, topic))?;
    if json {
        print_json(
            &json!({"topic": md.topic, "partition": md.partition, "offset": md.offset, "timestamp": md.timestamp}),
        );
    }
    Ok(())
}
