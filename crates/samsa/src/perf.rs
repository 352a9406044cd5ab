//! `samsa perf produce|consume`: throughput and latency, like
//! kafka-producer-perf-test.sh / kafka-consumer-perf-test.sh. A progress bar is
//! drawn on a terminal; otherwise a status line is printed every 5 seconds.
//! Produce latency of a record = acknowledgement time − send time.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use samsa_client::consumer::OffsetSpec;
use samsa_client::producer::Delivery;
use samsa_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use serde_json::json;

use crate::common::{print_json, ConnArgs};
use crate::produce::{parse_acks, parse_compression, produce_error};

#[derive(clap::Args)]
pub struct PerfArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(clap::Subcommand)]
enum PerfCommand {
    /// Produce records as fast as allowed and report throughput and latency.
    Produce(ProducePerf),
    /// Consume records from the beginning and report throughput.
    Consume(ConsumePerf),
}

#[derive(clap::Args)]
struct ProducePerf {
    /// Topic to write to.
    #[arg(long)]
    topic: String,
    /// How many records to send.
    #[arg(long, value_name = "N")]
    num_records: u64,
    /// Value size in bytes.
    #[arg(long, value_name = "BYTES")]
    record_size: usize,
    /// Records per second to aim for; -1 = as fast as possible.
    #[arg(long, value_name = "R", default_value_t = -1, allow_negative_numbers = true)]
    throughput: i64,
    /// Acknowledgements: all (-1), 1 or 0.
    #[arg(long, default_value = "1", allow_hyphen_values = true, value_parser = ["all", "-1", "1", "0"])]
    acks: String,
    /// Compression codec.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// Batch size in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    batch_size: usize,
    /// Linger in milliseconds.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
}

#[derive(clap::Args)]
struct ConsumePerf {
    /// Topic to read.
    #[arg(long)]
    topic: String,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    messages: u64,
    /// Give up when no record arrives for this long (milliseconds).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    timeout_ms: u64,
    /// Fetch as this consumer group (default: no group, all partitions).
    #[arg(long)]
    group: Option<String>,
}

fn progress(total: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    Some(pb)
}

/// Percentile of sorted values (nearest rank).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub async fn run(args: PerfArgs) -> anyhow::Result<()> {
    match args.command {
        PerfCommand::Produce(p) => produce(&args.conn, p).await,
        PerfCommand::Consume(c) => consume(&args.conn, c).await,
    }
}

async fn produce(conn: &ConnArgs, p: ProducePerf) -> anyhow::Result<()> {
    let client = conn.connect().await?;
    let config = ProducerConfig {
        acks: parse_acks(&p.acks)?,
        compression: parse_compression(&p.compression)?,
        batch_bytes_max: p.batch_size.max(1),
        linger: Duration::from_millis(p.linger_ms),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config);
    // Printable pseudo-random payload (compressible like real text, not all zeros).
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let payload: Vec<u8> = (0..p.record_size.max(1) * 2)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b'A' + (seed % 26) as u8
        })
        .collect();
    let payload = Bytes::from(payload);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Delivery)>(100_000);
    let total = p.num_records;
    let pb = progress(total);
    let pb2 = pb.clone();
    // Collects acknowledgements and latencies.
    let collector = tokio::spawn(async move {
        let mut lat_us: Vec<u64> = Vec::with_capacity(total.min(10_000_000) as usize);
        let mut failed: Option<samsa_client::ClientError> = None;
        let mut window = (Instant::now(), 0u64, 0u64, 0u64);
        while let Some((sent, d)) = rx.recv().await {
            match d.await {
                Ok(md) => {
                    let us = md.acked_at.saturating_duration_since(sent).as_micros() as u64;
                    lat_us.push(us);
                    window.1 += 1;
                    window.2 += us;
                    window.3 = window.3.max(us);
                }
                Err(e) => {
                    if failed.is_none() {
                        failed = Some(e);
                    }
                }
            }
            if let Some(pb) = &pb2 {
                pb.inc(1);
            } else if window.0.elapsed() >= Duration::from_secs(5) {
                let secs = window.0.elapsed().as_secs_f64();
                eprintln!(
                    "{} records sent, {:.1} records/sec, {:.2} ms avg latency, {:.2} ms max latency.",
                    window.1,
                    window.1 as f64 / secs,
                    ms(window.2 / window.1.max(1)),
                    ms(window.3)
                );
                window = (Instant::now(), 0, 0, 0);
            }
        }
        (lat_us, failed)
    });
    let start = Instant::now();
    for i in 0..total {
        if p.throughput > 0 {
            let due = start + Duration::from_secs_f64(i as f64 / p.throughput as f64);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        let offset = (i as usize * 7) % p.record_size.max(1);
        let value = payload.slice(offset..offset + p.record_size);
        let sent = Instant::now();
        let d = producer
            .send(ProducerRecord {
                topic: p.topic.clone(),
                value: Some(value),
                ..Default::default()
            })
            .await
            .map_err(|e| produce_error(e, &p.topic))?;
        if tx.send((sent, d)).await.is_err() {
            break;
        }
    }
    drop(tx);
    producer.flush().await;
    let (mut lat, failed) = collector.await?;
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    producer.close().await;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    if let Some(e) = failed {
        return Err(produce_error(e, &p.topic));
    }
    lat.sort_unstable();
    let n = lat.len() as u64;
    let rps = n as f64 / elapsed;
    let mbps = rps * p.record_size as f64 / (1024.0 * 1024.0);
    let avg = lat.iter().sum::<u64>().checked_div(n).unwrap_or(0);
    let (p50, p95, p99, p999) = (
        percentile(&lat, 0.50),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
    );
    let max = lat.last().copied().unwrap_or(0);
    if conn.json() {
        print_json(&json!({
            "records": n, "seconds": elapsed, "records_per_sec": rps, "mb_per_sec": mbps,
            "latency_ms": {"avg": ms(avg), "p50": ms(p50), "p95": ms(p95), "p99": ms(p99), "p99_9": ms(p999), "max": ms(max)},
        }));
    } else {
        println!(
            "{n} records sent, {rps:.1} records/sec ({mbps:.2} MB/sec), latency ms: avg {:.2}, p50 {:.2}, p95 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}.",
            ms(avg),
            ms(p50),
            ms(p95),
            ms(p99),
            ms(p999),
            ms(max)
        );
    }
    Ok(())
}

async fn consume(conn: &ConnArgs, c: ConsumePerf) -> anyhow::Result<()> {
    let client = conn.connect().await?;
    let mut consumer = Consumer::new(
        client,
        ConsumerConfig {
            group_id: c.group.clone(),
            auto_offset_reset: OffsetSpec::Earliest,
            ..ConsumerConfig::default()
        },
    );
    if c.group.is_some() {
        consumer.subscribe(vec![c.topic.clone()])?;
    } else {
        consumer
            .assign_topic(&c.topic, OffsetSpec::Earliest)
            .await?;
    }
    let pb = progress(c.messages);
    let start = Instant::now();
    let mut last_data = Instant::now();
    let mut window = Instant::now();
    let (mut n, mut bytes, mut window_n) = (0u64, 0u64, 0u64);
    let idle = Duration::from_millis(c.timeout_ms);
    while n < c.messages && last_data.elapsed() < idle {
        let recs = consumer.poll(Duration::from_millis(500)).await?;
        if !recs.is_empty() {
            last_data = Instant::now();
        }
        for r in recs.iter().take((c.messages - n) as usize) {
            n += 1;
            window_n += 1;
            bytes += r.value.as_ref().map_or(0, |v| v.len()) as u64
                + r.key.as_ref().map_or(0, |k| k.len()) as u64;
        }
        if let Some(pb) = &pb {
            pb.set_position(n);
        } else if window.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "{window_n} records consumed, {:.1} records/sec.",
                window_n as f64 / window.elapsed().as_secs_f64()
            );
            window = Instant::now();
            window_n = 0;
        }
    }
    let _ = consumer.close().await;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if conn.json() {
        print_json(
            &json!({"records": n, "bytes": bytes, "seconds": elapsed, "records_per_sec": n as f64 / elapsed, "mb_per_sec": mb / elapsed}),
        );
    } else {
        println!(
            "{n} records consumed ({mb:.2} MB) in {elapsed:.2} s, {:.1} records/sec ({:.2} MB/sec).",
            n as f64 / elapsed,
            mb / elapsed
        );
    }
    if n < c.messages {
        anyhow::bail!(
            "only {n} of {} records arrived within {} ms of inactivity",
            c.messages,
            c.timeout_ms
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 500);
        assert_eq!(percentile(&v, 0.99), 990);
        assert_eq!(percentile(&v, 0.999), 999);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[7], 0.999), 7);
    }
}
