//! `samsa transactions list | describe | describe-producers | find-hanging |
//! abort`: kafka-transactions.sh (KIP-664) — its subcommands, flags and
//! output columns, and `--output json` (one object per row, keyed by the
//! column names).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use samsa_client::admin::{
    AbortTransactionSpec, ListTransactionsFilter, ProducerState, TransactionDescription,
    TransactionListing,
};
use samsa_client::error::ClientError;
use samsa_client::Admin;

use crate::common::{now_ms, print_json, rows_json, ConnArgs, Output};
use crate::table;

#[derive(clap::Args)]
pub struct TransactionsArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: TxnCommand,
}

#[derive(clap::Subcommand)]
enum TxnCommand {
    /// List transactions.
    List {
        /// Duration (in millis) to filter by: if < 0, all transactions are
        /// returned; otherwise only transactions running longer than this.
        #[arg(long, allow_negative_numbers = true)]
        duration_filter: Option<i64>,
    },
    /// Describe the state of an active transactional-id.
    Describe {
        /// Transactional id.
        #[arg(long)]
        transactional_id: String,
    },
    /// Describe the states of active producers for a topic partition.
    DescribeProducers {
        /// Optional broker id to describe the producer state on a specific replica.
        #[arg(long)]
        broker_id: Option<i32>,
        /// Topic name.
        #[arg(long)]
        topic: String,
        /// Partition number.
        #[arg(long)]
        partition: i32,
    },
    /// Find hanging transactions.
    FindHanging {
        /// Broker id to search for hanging transactions.
        #[arg(long)]
        broker_id: Option<i32>,
        /// Maximum transaction timeout in minutes to limit the scope of the search.
        #[arg(long, default_value_t = 15)]
        max_transaction_timeout: i64,
        /// Topic name to limit search to (required if --partition is specified).
        #[arg(long)]
        topic: Option<String>,
        /// Partition number.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
    },
    /// Abort a hanging transaction (requires administrative privileges).
    Abort(AbortArgs),
}

#[derive(clap::Args)]
struct AbortArgs {
    /// Topic name.
    #[arg(long)]
    topic: String,
    /// Partition number.
    #[arg(long)]
    partition: i32,
    /// Start offset of the transaction to abort (brokers on 3.0 and above).
    #[arg(long)]
    start_offset: Option<i64>,
    /// Producer id (brokers older than 3.0, with --producer-epoch and --coordinator-epoch).
    #[arg(long)]
    producer_id: Option<i64>,
    /// Producer epoch.
    #[arg(long)]
    producer_epoch: Option<i16>,
    /// Coordinator epoch.
    #[arg(long, allow_negative_numbers = true)]
    coordinator_epoch: Option<i32>,
}

const LIST_HEADERS: [&str; 4] = [
    "TransactionalId",
    "Coordinator",
    "ProducerId",
    "TransactionState",
];
const DESCRIBE_HEADERS: [&str; 9] = [
    "CoordinatorId",
    "TransactionalId",
    "ProducerId",
    "ProducerEpoch",
    "TransactionState",
    "TransactionTimeoutMs",
    "CurrentTransactionStartTimeMs",
    "TransactionDurationMs",
    "TopicPartitions",
];
const PRODUCER_HEADERS: [&str; 6] = [
    "ProducerId",
    "ProducerEpoch",
    "LatestCoordinatorEpoch",
    "LastSequence",
    "LastTimestamp",
    "CurrentTransactionStartOffset",
];
const HANGING_HEADERS: [&str; 8] = [
    "Topic",
    "Partition",
    "ProducerId",
    "ProducerEpoch",
    "CoordinatorEpoch",
    "StartOffset",
    "LastTimestamp",
    "Duration(min)",
];

/// Runs `samsa transactions`.
pub async fn run(args: TransactionsArgs) -> anyhow::Result<()> {
    let json = args.conn.output == Output::Json;
    let admin = Admin::new(args.conn.connect().await?);
    let now = now_ms();
    let (headers, rows): (&[&str], Vec<Vec<String>>) = match args.command {
        TxnCommand::List { duration_filter } => {
            let filter = ListTransactionsFilter {
                duration_ms: duration_filter,
                ..Default::default()
            };
            let listed = admin
                .list_transactions(&filter)
                .await
                .context("Failed to list transactions")?;
            (&LIST_HEADERS, list_rows(&listed))
        }
        TxnCommand::Describe { transactional_id } => {
            let d = admin
                .describe_transaction(&transactional_id)
                .await
                .with_context(|| {
                    format!("Failed to describe transaction state of transactional-id `{transactional_id}`")
                })?;
            (&DESCRIBE_HEADERS, vec![describe_row(&d, now)])
        }
        TxnCommand::DescribeProducers {
            broker_id,
            topic,
            partition,
        } => {
            let producers = admin
                .describe_producers(&topic, partition, broker_id)
                .await
                .with_context(|| {
                    let on = broker_id.map_or("leader".to_string(), |b| format!("broker {b}"));
                    format!(
                        "Failed to describe producers for partition {topic}-{partition} on {on}"
                    )
                })?;
            (
                &PRODUCER_HEADERS,
                producers.iter().map(producer_row).collect(),
            )
        }
        TxnCommand::FindHanging {
            broker_id,
            max_transaction_timeout,
            topic,
            partition,
        } => {
            let hanging = find_hanging(
                &admin,
                broker_id,
                max_transaction_timeout.saturating_mul(60_000),
                topic,
                partition,
                now,
            )
            .await?;
            (
                &HANGING_HEADERS,
                hanging.iter().map(|h| hanging_row(h, now)).collect(),
            )
        }
        TxnCommand::Abort(a) => {
            let spec = match (a.start_offset, a.producer_id) {
                (Some(start), _) => {
                    let producers = admin
                        .describe_producers(&a.topic, a.partition, None)
                        .await
                        .with_context(|| {
                            format!(
                                "Failed to validate producer state for partition {}-{}",
                                a.topic, a.partition
                            )
                        })?;
                    spec_for_start_offset(&a.topic, a.partition, &producers, start)?
                }
                (None, Some(producer_id)) => explicit_spec(&a, producer_id)?,
                (None, None) => bail!(
                    "The transaction to abort must be identified either with --start-offset \
                     (for brokers on 3.0 or above) or with --producer-id, --producer-epoch, and \
                     --coordinator-epoch (for older brokers)"
                ),
            };
            admin
                .abort_transaction(&spec)
                .await
                .with_context(|| format!("Failed to abort transaction {spec:?}"))?;
            return Ok(());
        }
    };
    if json {
        print_json(&rows_json(headers, &rows));
    } else {
        table::print(headers, &rows);
    }
    Ok(())
}

/// `-1` (Kafka's absent OptionalLong) prints as `None`.
fn or_none(v: i64) -> String {
    if v < 0 {
        "None".into()
    } else {
        v.to_string()
    }
}

fn list_rows(listed: &BTreeMap<i32, Vec<TransactionListing>>) -> Vec<Vec<String>> {
    listed
        .iter()
        .flat_map(|(broker, listings)| {
            listings.iter().map(move |l| {
                vec![
                    l.transactional_id.clone(),
                    broker.to_string(),
                    l.producer_id.to_string(),
                    l.state.clone(),
                ]
            })
        })
        .collect()
}

fn describe_row(d: &TransactionDescription, now: i64) -> Vec<String> {
    let duration = if d.start_time_ms < 0 {
        "None".to_string()
    } else {
        (now - d.start_time_ms).to_string()
    };
    vec![
        d.coordinator_id.to_string(),
        d.transactional_id.clone(),
        d.producer_id.to_string(),
        d.producer_epoch.to_string(),
        d.state.clone(),
        d.timeout_ms.to_string(),
        or_none(d.start_time_ms),
        duration,
        d.partitions
            .iter()
            .map(|(t, p)| format!("{t}-{p}"))
            .collect::<Vec<_>>()
            .join(","),
    ]
}

fn producer_row(p: &ProducerState) -> Vec<String> {
    vec![
        p.producer_id.to_string(),
        p.producer_epoch.to_string(),
        p.coordinator_epoch.to_string(),
        p.last_sequence.to_string(),
        p.last_timestamp.to_string(),
        or_none(p.current_txn_start_offset),
    ]
}

/// An open transaction of one partition (a find-hanging candidate).
#[derive(Clone, Debug, PartialEq, Eq)]
struct OpenTransaction {
    topic: String,
    partition: i32,
    producer: ProducerState,
}

fn hanging_row(h: &OpenTransaction, now: i64) -> Vec<String> {
    vec![
        h.topic.clone(),
        h.partition.to_string(),
        h.producer.producer_id.to_string(),
        h.producer.producer_epoch.to_string(),
        h.producer.coordinator_epoch.to_string(),
        h.producer.current_txn_start_offset.to_string(),
        h.producer.last_timestamp.to_string(),
        ((now - h.producer.last_timestamp) / 60_000).to_string(),
    ]
}

/// Producers with an open transaction whose last write is older than
/// `max_timeout_ms` (a transaction that old must have timed out at its
/// coordinator, so it is a candidate).
fn candidates(
    topic: &str,
    partition: i32,
    producers: &[ProducerState],
    now: i64,
    max_timeout_ms: i64,
) -> Vec<OpenTransaction> {
    producers
        .iter()
        .filter(|p| p.current_txn_start_offset >= 0 && now - p.last_timestamp > max_timeout_ms)
        .map(|p| OpenTransaction {
            topic: topic.to_string(),
            partition,
            producer: p.clone(),
        })
        .collect()
}

/// The candidates the coordinators do not account for: no transactional id
/// lists the producer id, the id is not found, or its transaction does not
/// include the partition (the coordinator will never write its marker).
fn hanging(
    candidates: Vec<OpenTransaction>,
    transactional_ids: &BTreeMap<i64, String>,
    descriptions: &BTreeMap<String, Option<TransactionDescription>>,
) -> Vec<OpenTransaction> {
    candidates
        .into_iter()
        .filter(|c| {
            let Some(id) = transactional_ids.get(&c.producer.producer_id) else {
                return true;
            };
            match descriptions.get(id) {
                Some(Some(d)) => !d
                    .partitions
                    .iter()
                    .any(|(t, p)| *t == c.topic && *p == c.partition),
                _ => true,
            }
        })
        .collect()
}

async fn find_hanging(
    admin: &Admin,
    broker_id: Option<i32>,
    max_timeout_ms: i64,
    topic: Option<String>,
    partition: Option<i32>,
    now: i64,
) -> anyhow::Result<Vec<OpenTransaction>> {
    if topic.is_none() && broker_id.is_none() {
        bail!("The `find-hanging` command requires either --topic or --broker-id to limit the scope of the search");
    }
    let partitions: Vec<(String, i32)> = match (&topic, partition) {
        (Some(t), Some(p)) => vec![(t.clone(), p)],
        _ => {
            let topics = topic.clone().map(|t| vec![t]);
            let described = admin
                .client()
                .fetch_metadata(topics.as_deref(), false)
                .await
                .context("Failed to describe topics")?;
            described
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .filter(|p| broker_id.is_none_or(|b| p.replicas.contains(&b)))
                        .map(|p| (t.name.clone(), p.partition))
                })
                .collect()
        }
    };
    // One DescribeProducers per broker (its partitions, or all of them to
    // --broker-id), as Kafka's tool asks through the admin client.
    let mut described = admin
        .describe_producers_of(&partitions, broker_id)
        .await
        .context("Failed to describe producers")?;
    let mut open = Vec::new();
    for (t, p) in &partitions {
        let producers = described
            .remove(&(t.clone(), *p))
            .unwrap_or_else(|| {
                Err(ClientError::Invalid(
                    "DescribeProducers did not answer for it".into(),
                ))
            })
            .with_context(|| format!("Failed to describe producers for {t}-{p}"))?;
        open.extend(candidates(t, *p, &producers, now, max_timeout_ms));
    }
    if open.is_empty() {
        return Ok(open);
    }
    let producer_ids: BTreeSet<i64> = open.iter().map(|o| o.producer.producer_id).collect();
    let filter = ListTransactionsFilter {
        producer_ids: producer_ids.iter().copied().collect(),
        ..Default::default()
    };
    let listed = admin.list_transactions(&filter).await.with_context(|| {
        format!(
            "Failed to list transactions for {} producers",
            producer_ids.len()
        )
    })?;
    let transactional_ids: BTreeMap<i64, String> = listed
        .values()
        .flatten()
        .filter(|l| producer_ids.contains(&l.producer_id))
        .map(|l| (l.producer_id, l.transactional_id.clone()))
        .collect();
    let mut descriptions = BTreeMap::new();
    for id in transactional_ids.values() {
        // TRANSACTIONAL_ID_NOT_FOUND: no description, the transaction hangs.
        let d = match admin.describe_transaction(id).await {
            Ok(d) => Some(d),
            Err(e) if e.code() == Some(TRANSACTIONAL_ID_NOT_FOUND) => None,
            Err(e) => return Err(e).context(format!("Failed to describe transaction {id}")),
        };
        descriptions.insert(id.clone(), d);
    }
    Ok(hanging(open, &transactional_ids, &descriptions))
}

/// Kafka's TRANSACTIONAL_ID_NOT_FOUND.
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// The abort of the open transaction starting at `start_offset`, from the
/// partition's producers (coordinator epoch unknown: 0, as Kafka).
fn spec_for_start_offset(
    topic: &str,
    partition: i32,
    producers: &[ProducerState],
    start_offset: i64,
) -> anyhow::Result<AbortTransactionSpec> {
    let Some(p) = producers
        .iter()
        .find(|p| p.current_txn_start_offset >= 0 && p.current_txn_start_offset == start_offset)
    else {
        bail!("Could not find any open transactions starting at offset {start_offset} on partition {topic}-{partition}");
    };
    Ok(AbortTransactionSpec {
        topic: topic.to_string(),
        partition,
        producer_id: p.producer_id,
        producer_epoch: i16::try_from(p.producer_epoch)
            .with_context(|| format!("producer epoch {} out of range", p.producer_epoch))?,
        coordinator_epoch: p.coordinator_epoch.max(0),
    })
}

/// The abort given by --producer-id, --producer-epoch and --coordinator-epoch
/// (a negative coordinator epoch becomes 0, as Kafka's tool does).
fn explicit_spec(a: &AbortArgs, producer_id: i64) -> anyhow::Result<AbortTransactionSpec> {
    let Some(producer_epoch) = a.producer_epoch else {
        bail!("Missing required argument --producer-epoch");
    };
    let Some(coordinator_epoch) = a.coordinator_epoch else {
        bail!("Missing required argument --coordinator-epoch");
    };
    Ok(AbortTransactionSpec {
        topic: a.topic.clone(),
        partition: a.partition,
        producer_id,
        producer_epoch,
        coordinator_epoch: coordinator_epoch.max(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producer(id: i64, start: i64, last_timestamp: i64) -> ProducerState {
        ProducerState {
            producer_id: id,
            producer_epoch: 3,
            last_sequence: 9,
            last_timestamp,
            coordinator_epoch: -1,
            current_txn_start_offset: start,
        }
    }

    #[test]
    fn describe_producers_prints_kafkas_columns() {
        let rows = vec![
            producer_row(&producer(7, -1, 1000)),
            producer_row(&producer(8, 42, 5)),
        ];
        let text = table::render(&PRODUCER_HEADERS, &rows);
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
            PRODUCER_HEADERS
        );
        assert_eq!(
            lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
            ["7", "3", "-1", "9", "1000", "None"]
        );
        assert_eq!(lines.next().unwrap().split_whitespace().last(), Some("42"));
        let j = rows_json(&PRODUCER_HEADERS, &rows);
        assert_eq!(j[1]["CurrentTransactionStartOffset"], "42");
        assert_eq!(j[0]["ProducerId"], "7");
    }

    #[test]
    fn describe_shows_duration_and_partitions() {
        let d = TransactionDescription {
            coordinator_id: 1,
            transactional_id: "tx".into(),
            state: "Ongoing".into(),
            timeout_ms: 60_000,
            start_time_ms: 1_000,
            producer_id: 5,
            producer_epoch: 2,
            partitions: vec![("a".into(), 0), ("b".into(), 3)],
        };
        assert_eq!(
            describe_row(&d, 4_000),
            ["1", "tx", "5", "2", "Ongoing", "60000", "1000", "3000", "a-0,b-3"]
        );
        let idle = TransactionDescription {
            start_time_ms: -1,
            partitions: vec![],
            state: "Empty".into(),
            ..d
        };
        let row = describe_row(&idle, 4_000);
        assert_eq!(row[6], "None");
        assert_eq!(row[7], "None");
    }

    #[test]
    fn list_rows_name_each_coordinator() {
        let listed = BTreeMap::from([
            (
                2,
                vec![TransactionListing {
                    transactional_id: "b".into(),
                    producer_id: 9,
                    state: "Ongoing".into(),
                }],
            ),
            (1, vec![]),
        ]);
        assert_eq!(list_rows(&listed), [["b", "2", "9", "Ongoing"]]);
    }

    #[test]
    fn find_hanging_keeps_transactions_no_coordinator_will_finish() {
        let now = 100 * 60_000;
        let old = now - 20 * 60_000;
        let producers = [
            producer(1, 10, old),     // no transactional id lists it: hanging
            producer(2, 11, old),     // its transaction includes t-0: not hanging
            producer(3, 12, old),     // its transaction is on another partition: hanging
            producer(4, 13, now - 1), // recent: not a candidate
            producer(5, -1, old),     // no open transaction
            producer(6, 14, old),     // id not found at its coordinator: hanging
        ];
        let c = candidates("t", 0, &producers, now, 15 * 60_000);
        assert_eq!(
            c.iter().map(|o| o.producer.producer_id).collect::<Vec<_>>(),
            [1, 2, 3, 6]
        );
        let ids = BTreeMap::from([
            (2, "two".to_string()),
            (3, "three".into()),
            (6, "six".into()),
        ]);
        let desc = |partitions: Vec<(String, i32)>| TransactionDescription {
            coordinator_id: 1,
            transactional_id: String::new(),
            state: "Ongoing".into(),
            timeout_ms: 60_000,
            start_time_ms: old,
            producer_id: 0,
            producer_epoch: 0,
            partitions,
        };
        let descriptions = BTreeMap::from([
            ("two".to_string(), Some(desc(vec![("t".into(), 0)]))),
            ("three".to_string(), Some(desc(vec![("t".into(), 1)]))),
            ("six".to_string(), None),
        ]);
        let h = hanging(c, &ids, &descriptions);
        assert_eq!(
            h.iter().map(|o| o.producer.producer_id).collect::<Vec<_>>(),
            [1, 3, 6]
        );
        assert_eq!(
            hanging_row(&h[0], now),
            [
                "t",
                "0",
                "1",
                "3",
                "-1",
                "10",
                old.to_string().as_str(),
                "20"
            ]
        );
    }

    #[test]
    fn abort_specs() {
        let producers = [producer(1, 10, 0), producer(2, 20, 0)];
        let spec = spec_for_start_offset("t", 0, &producers, 20).unwrap();
        assert_eq!(
            spec,
            AbortTransactionSpec {
                topic: "t".into(),
                partition: 0,
                producer_id: 2,
                producer_epoch: 3,
                coordinator_epoch: 0,
            }
        );
        let err = spec_for_start_offset("t", 0, &producers, 15).unwrap_err();
        assert!(err.to_string().contains("starting at offset 15"), "{err}");
        let a = AbortArgs {
            topic: "t".into(),
            partition: 1,
            start_offset: None,
            producer_id: Some(5),
            producer_epoch: Some(2),
            coordinator_epoch: Some(-1),
        };
        assert_eq!(explicit_spec(&a, 5).unwrap().coordinator_epoch, 0);
        let missing = AbortArgs {
            producer_epoch: None,
            ..a
        };
        assert!(explicit_spec(&missing, 5)
            .unwrap_err()
            .to_string()
            .contains("--producer-epoch"));
    }
}
