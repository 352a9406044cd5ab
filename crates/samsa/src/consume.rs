//! `samsa consume TOPIC`: print records like kafka-console-consumer.sh (the
//! `--print-*` flags and its default layout) or with a kcat-style `--format`.

use std::io::Write;
use std::time::{Duration, Instant};

use samsa_client::consumer::OffsetSpec;
use samsa_client::error::ClientError;
use samsa_client::{Consumer, ConsumerConfig, ConsumerRecord};
use serde_json::json;

use crate::common::{hinted, parse_kv, ConnArgs};

#[derive(clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Topic to read.
    #[arg(value_name = "TOPIC", required_unless_present = "topic_flag")]
    topic: Option<String>,
    /// Topic to read (kafka-console-consumer.sh style).
    #[arg(long = "topic", value_name = "TOPIC", conflicts_with = "topic")]
    topic_flag: Option<String>,
    /// Start at the earliest offset (otherwise at the end, or the group's commits).
    #[arg(long)]
    from_beginning: bool,
    /// Consume as a member of this consumer group (commits offsets).
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Read only this partition.
    #[arg(long, value_name = "P", conflicts_with = "group")]
    partition: Option<i32>,
    /// Start offset for --partition: a number, earliest or latest.
    #[arg(long, value_name = "OFFSET", requires = "partition")]
    offset: Option<String>,
    /// Exit after this many records.
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,
    /// Exit when no record arrives for this long (milliseconds).
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// kcat-style output format: %t topic, %p partition, %o offset, %k key,
    /// %s value, %K key length, %S value length, %h headers, %T timestamp,
    /// %% percent; \n \t \r \\ escapes. No newline is added.
    #[arg(long, value_name = "FMT")]
    format: Option<String>,
    /// Print the key before the value.
    #[arg(long)]
    print_key: bool,
    /// Print the partition.
    #[arg(long)]
    print_partition: bool,
    /// Print the offset.
    #[arg(long)]
    print_offset: bool,
    /// Print the timestamp (CreateTime:MS or LogAppendTime:MS).
    #[arg(long)]
    print_timestamp: bool,
    /// Print the headers (k:v,k2:v2 or NO_HEADERS).
    #[arg(long)]
    print_headers: bool,
    /// Separator between printed fields (default: a tab).
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Console-consumer properties: print.key, print.partition, print.offset,
    /// print.timestamp, print.headers, key.separator, null.literal.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// read_uncommitted or read_committed.
    #[arg(long, default_value = "read_uncommitted", value_parser = ["read_uncommitted", "read_committed"])]
    isolation_level: String,
}

#[derive(Clone, Debug, Default)]
struct Layout {
    print_key: bool,
    print_partition: bool,
    print_offset: bool,
    print_timestamp: bool,
    print_headers: bool,
    separator: String,
    null_literal: String,
}

fn field_text(b: Option<&[u8]>, null: &str) -> String {
    match b {
        None => null.to_string(),
        Some(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn headers_text(r: &ConsumerRecord, null: &str) -> String {
    if r.headers.is_empty() {
        return "NO_HEADERS".to_string();
    }
    r.headers
        .iter()
        .map(|(k, v)| format!("{k}:{}", field_text(v.as_deref(), null)))
        .collect::<Vec<_>>()
        .join(",")
}

/// kafka-console-consumer's layout.
fn default_line(r: &ConsumerRecord, l: &Layout) -> Vec<u8> {
    let mut parts = Vec::new();
    if l.print_timestamp {
        let kind = if r.log_append_time {
            "LogAppendTime"
        } else {
            "CreateTime"
        };
        parts.push(format!("{kind}:{}", r.timestamp));
    }
    if l.print_partition {
        parts.push(format!("Partition:{}", r.partition));
    }
    if l.print_offset {
        parts.push(format!("Offset:{}", r.offset));
    }
    if l.print_headers {
        parts.push(headers_text(r, &l.null_literal));
    }
    if l.print_key {
        parts.push(field_text(r.key.as_deref(), &l.null_literal));
    }
    let mut out = parts.join(&l.separator).into_bytes();
    if !parts.is_empty() {
        out.extend_from_slice(l.separator.as_bytes());
    }
    match r.value.as_deref() {
        Some(v) => out.extend_from_slice(v),
        None => out.extend_from_slice(l.null_literal.as_bytes()),
    }
    out.push(b'\n');
    out
}

/// kcat-style `--format`.
pub fn format_record(fmt: &str, r: &ConsumerRecord) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = fmt.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('t') => out.extend_from_slice(r.topic.as_bytes()),
                Some('p') => out.extend_from_slice(r.partition.to_string().as_bytes()),
                Some('o') => out.extend_from_slice(r.offset.to_string().as_bytes()),
                Some('k') => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                Some('s') => out.extend_from_slice(r.value.as_deref().unwrap_or_default()),
                Some('K') => out.extend_from_slice(
                    r.key
                        .as_ref()
                        .map_or(-1, |k| k.len() as i64)
                        .to_string()
                        .as_bytes(),
                ),
                Some('S') => out.extend_from_slice(
                    r.value
                        .as_ref()
                        .map_or(-1, |v| v.len() as i64)
                        .to_string()
                        .as_bytes(),
                ),
                Some('T') => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
                Some('h') => {
                    let h = r
                        .headers
                        .iter()
                        .map(|(k, v)| format!("{k}={}", field_text(v.as_deref(), "")))
                        .collect::<Vec<_>>()
                        .join(",");
                    out.extend_from_slice(h.as_bytes());
                }
                Some('%') => out.push(b'%'),
                Some(other) => {
                    out.push(b'%');
                    out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                }
                None => out.push(b'%'),
            },
            '\\' => match chars.next() {
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('r') => out.push(b'\r'),
                Some('0') => out.push(0),
                Some('\\') => out.push(b'\\'),
                Some(other) => {
                    out.push(b'\\');
                    out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                }
                None => out.push(b'\\'),
            },
            c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    out
}

fn json_line(r: &ConsumerRecord) -> Vec<u8> {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let v = json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "timestamp_type": if r.log_append_time { "LogAppendTime" } else { "CreateTime" },
        "key": text(r.key.as_deref()),
        "value": text(r.value.as_deref()),
        "headers": r.headers.iter().map(|(k, v)| json!([k, text(v.as_deref())])).collect::<Vec<_>>(),
    });
    let mut out = v.to_string().into_bytes();
    out.push(b'\n');
    out
}

fn parse_offset(s: &str) -> anyhow::Result<OffsetSpec> {
    Ok(match s {
        "earliest" | "beginning" => OffsetSpec::Earliest,
        "latest" | "end" => OffsetSpec::Latest,
        n => {
            let o: i64 = n.parse().map_err(|_| {
                anyhow::anyhow!("--offset must be a number, earliest or latest, not {n:?}")
            })?;
            if o < 0 {
                anyhow::bail!("--offset must not be negative");
            }
            OffsetSpec::Offset(o)
        }
    })
}

fn topic_error(e: ClientError, topic: &str) -> anyhow::Error {
    if e.code() == Some(3) {
        hinted(
            e,
            format!("topic {topic} does not exist: `samsa topics list` shows the topics, `samsa topics create {topic}` makes it"),
        )
    } else {
        anyhow::Error::new(e).context(format!("consuming from {topic}"))
    }
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let topic = args
        .topic
        .clone()
        .or(args.topic_flag.clone())
        .unwrap_or_default();
    let mut layout = Layout {
        print_key: args.print_key,
        print_partition: args.print_partition,
        print_offset: args.print_offset,
        print_timestamp: args.print_timestamp,
        print_headers: args.print_headers,
        separator: args.key_separator.clone().unwrap_or_else(|| "\t".into()),
        null_literal: "null".into(),
    };
    for p in &args.properties {
        let (k, v) = parse_kv(p)?;
        let on = v.eq_ignore_ascii_case("true");
        match k.as_str() {
            "print.key" => layout.print_key = on,
            "print.partition" => layout.print_partition = on,
            "print.offset" => layout.print_offset = on,
            "print.timestamp" => layout.print_timestamp = on,
            "print.headers" => layout.print_headers = on,
            "key.separator" => layout.separator = v,
            "null.literal" => layout.null_literal = v,
            other => tracing::warn!(property = other, "ignoring unknown consumer property"),
        }
    }
    let client = args.conn.connect().await?;
    let start = if args.from_beginning {
        OffsetSpec::Earliest
    } else {
        OffsetSpec::Latest
    };
    let config = ConsumerConfig {
        group_id: args.group.clone(),
        isolation_level: i8::from(args.isolation_level == "read_committed"),
        auto_offset_reset: start,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client.clone(), config);
    if args.group.is_some() {
        // Fail early, with advice, when the topic is missing.
        client
            .topic(&topic, false)
            .await
            .map_err(|e| topic_error(e, &topic))?;
        consumer.subscribe(vec![topic.clone()])?;
    } else if let Some(p) = args.partition {
        let spec = match &args.offset {
            Some(o) => parse_offset(o)?,
            None => start,
        };
        let info = client
            .topic(&topic, false)
            .await
            .map_err(|e| topic_error(e, &topic))?;
        if !info.partitions.iter().any(|x| x.partition == p) {
            let e = ClientError::at(
                3,
                Some(format!("{topic} has {} partitions", info.partitions.len())),
                format!("partition {topic}-{p}"),
            );
            return Err(hinted(
                e,
                format!(
                    "partitions of {topic} are numbered 0..{}",
                    info.partitions.len()
                ),
            ));
        }
        consumer.assign(vec![(topic.clone(), p, spec)]);
    } else {
        consumer
            .assign_topic(&topic, start)
            .await
            .map_err(|e| topic_error(e, &topic))?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    let max = args.max_messages;
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut last_data = Instant::now();
    let json = args.conn.json();
    let result: anyhow::Result<()> = async {
        'outer: loop {
            if max.is_some_and(|m| count >= m) {
                break;
            }
            let wait = match idle_limit {
                Some(limit) => {
                    let left = limit.saturating_sub(last_data.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    left.min(Duration::from_millis(500))
                }
                None => Duration::from_millis(500),
            };
            let records = tokio::select! {
                r = consumer.poll(wait) => r.map_err(|e| topic_error(e, &topic))?,
                _ = tokio::signal::ctrl_c() => break 'outer,
            };
            if !records.is_empty() {
                last_data = Instant::now();
            }
            for (i, r) in records.iter().enumerate() {
                if max.is_some_and(|m| count >= m) {
                    // Give the unprinted records back so a group commits only
                    // what was printed.
                    let mut first_unprinted: std::collections::BTreeMap<(&str, i32), i64> =
                        Default::default();
                    for u in &records[i..] {
                        first_unprinted
                            .entry((u.topic.as_str(), u.partition))
                            .or_insert(u.offset);
                    }
                    for ((t, p), o) in first_unprinted {
                        consumer.seek(t, p, o);
                    }
                    break 'outer;
                }
                let bytes = if json {
                    json_line(r)
                } else if let Some(f) = &args.format {
                    format_record(f, r)
                } else {
                    default_line(r, &layout)
                };
                out.write_all(&bytes)?;
                count += 1;
            }
            if max.is_some_and(|m| count >= m) {
                break;
            }
            out.flush()?;
        }
        Ok(())
    }
    .await;
    let _ = out.flush();
    drop(out);
    // With a group, commit exactly what was printed.
    if let Err(e) = consumer.close().await {
        tracing::warn!(error = %e, "closing the consumer");
    }
    eprintln!("Processed a total of {count} messages");
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rec() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1234,
            log_append_time: false,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"hello")),
            headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
        }
    }

    #[test]
    fn kcat_style_format() {
        let out = format_record("%t/%p@%o %k=%s [%h] %T %K %S 100%%\\n", &rec());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "t/2@7 k1=hello [h=v] 1234 2 5 100%\n"
        );
    }

    #[test]
    fn console_consumer_layout() {
        let l = Layout {
            print_key: true,
            print_offset: true,
            separator: "\t".into(),
            null_literal: "null".into(),
            ..Layout::default()
        };
        assert_eq!(
            String::from_utf8(default_line(&rec(), &l)).unwrap(),
            "Offset:7\tk1\thello\n"
        );
        let plain = Layout {
            separator: "\t".into(),
            null_literal: "null".into(),
            ..Layout::default()
        };
        assert_eq!(
            String::from_utf8(default_line(&rec(), &plain)).unwrap(),
            "hello\n"
        );
    }
}
