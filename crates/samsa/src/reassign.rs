//! `samsa reassign-partitions`: move partition replicas between brokers, with
//! kafka-reassign-partitions.sh's modes (`--execute`, `--verify`, `--cancel`,
//! `--list`, `--generate`), flags and JSON formats.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use samsa_client::admin::{placement_codes, OngoingReassignment, Tp};
use samsa_client::client::TopicInfo;
use samsa_client::error::ClientError;
use samsa_client::Admin;
use serde_json::json;

use crate::common::{
    bare_error, hint_for_code, hinted, json_topic_partition, print_json, read_json_file, tp_list,
    tp_name, ConnArgs,
};

#[derive(clap::Args)]
#[command(group(
    clap::ArgGroup::new("mode")
        .required(true)
        .args(["execute", "verify", "cancel", "list", "generate"])
))]
pub struct ReassignArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Start the reassignment described by --reassignment-json-file.
    #[arg(long)]
    execute: bool,
    /// Report whether each reassignment of --reassignment-json-file has completed.
    #[arg(long)]
    verify: bool,
    /// Cancel the ongoing reassignments of the partitions in --reassignment-json-file.
    #[arg(long)]
    cancel: bool,
    /// List every ongoing reassignment.
    #[arg(long)]
    list: bool,
    /// Propose an assignment of --topics-to-move-json-file's topics over --broker-list.
    #[arg(long)]
    generate: bool,
    /// {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,3,1]},...]}
    #[arg(long, value_name = "FILE")]
    reassignment_json_file: Option<PathBuf>,
    /// For --generate: {"version":1,"topics":[{"topic":"t"},...]}
    #[arg(long, value_name = "FILE")]
    topics_to_move_json_file: Option<PathBuf>,
    /// For --generate: the brokers to spread the replicas over, e.g. 1,2,3.
    #[arg(long, value_name = "IDS")]
    broker_list: Option<String>,
    /// With --execute: start even though other reassignments are in progress.
    #[arg(long)]
    additional: bool,
}

/// One partition's target replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

impl Move {
    fn tp(&self) -> Tp {
        (self.topic.clone(), self.partition)
    }
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn check_version(doc: &serde_json::Value) -> anyhow::Result<()> {
    match doc.get("version") {
        None => Ok(()),
        Some(v) if v.as_i64() == Some(1) => Ok(()),
        Some(v) => anyhow::bail!("Not supported version field value {v}: only version 1 is known"),
    }
}

/// Reads Kafka's reassignment JSON. Returns the moves and warnings (log
/// directories other than "any" are ignored).
pub fn parse_reassignment(doc: &serde_json::Value) -> anyhow::Result<(Vec<Move>, Vec<String>)> {
    check_version(doc)?;
    let parts = doc
        .get("partitions")
        .and_then(|p| p.as_array())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "expected {{\"version\":1,\"partitions\":[{{\"topic\":\"NAME\",\"partition\":N,\"replicas\":[BROKER,...]}},...]}}"
            )
        })?;
    if parts.is_empty() {
        anyhow::bail!("Partition reassignment list cannot be empty.");
    }
    let mut moves = Vec::with_capacity(parts.len());
    let warnings = Vec::new();
    let mut seen = BTreeSet::new();
    let mut dups = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let (topic, partition) = json_topic_partition(p, i)?;
        let topic = topic.as_str();
        let name = tp_name(topic, partition);
        let replicas = p
            .get("replicas")
            .and_then(|r| r.as_array())
            .ok_or_else(|| anyhow::anyhow!("{name}: \"replicas\" must be a list of broker ids"))?
            .iter()
            .map(|b| {
                b.as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| anyhow::anyhow!("{name}: replica {b} is not a broker id"))
            })
            .collect::<anyhow::Result<Vec<i32>>>()?;
        if replicas.is_empty() {
            anyhow::bail!("Partition replica list cannot be empty ({name}).");
        }
        let mut ids = BTreeSet::new();
        for r in &replicas {
            if !ids.insert(*r) {
                anyhow::bail!(
                    "Partition replica lists may not contain duplicate entries: {name} contains multiple entries for {r}."
                );
            }
        }
        if let Some(dirs) = p.get("log_dirs") {
            let dirs = dirs
                .as_array()
                .ok_or_else(|| anyhow::anyhow!("{name}: \"log_dirs\" must be a list"))?;
            if dirs.len() != replicas.len() {
                anyhow::bail!(
                    "Size of replicas list {} is different from size of log dirs list {} for partition {name}",
                    replicas.len(),
                    dirs.len()
                );
            }
            if let Some(d) = dirs
                .iter()
                .find(|d| d.as_str().is_none_or(|s| s.is_empty()))
            {
                anyhow::bail!("{name}: log dir {d} is not a directory path or \"any\"");
            }
        }
        let tp = (topic.to_string(), partition);
        if !seen.insert(tp.clone()) {
            dups.push(tp);
        }
        moves.push(Move {
            topic: topic.to_string(),
            partition,
            replicas,
        });
    }
    if !dups.is_empty() {
        anyhow::bail!(
            "Partition reassignment contains duplicate topic partitions: {}",
            tp_list(&dups)
        );
    }
    Ok((moves, warnings))
}

/// One replica's requested log directory (a `log_dirs` entry other than
/// "any"): the broker holding the replica moves it there
/// (AlterReplicaLogDirs), as Kafka's tool asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaDir {
    pub topic: String,
    pub partition: i32,
    pub broker: i32,
    pub dir: String,
}

/// The `log_dirs` entries other than "any" of a reassignment JSON that
/// [`parse_reassignment`] accepted, paired with their replicas.
pub fn parse_log_dirs(doc: &serde_json::Value) -> Vec<ReplicaDir> {
    let mut out = Vec::new();
    let parts = doc.get("partitions").and_then(|p| p.as_array());
    for p in parts.into_iter().flatten() {
        let (Some(topic), Some(partition), Some(replicas), Some(dirs)) = (
            p.get("topic").and_then(|t| t.as_str()),
            p.get("partition")
                .and_then(|n| n.as_i64())
                .and_then(|n| i32::try_from(n).ok()),
            p.get("replicas").and_then(|r| r.as_array()),
            p.get("log_dirs").and_then(|d| d.as_array()),
        ) else {
            continue;
        };
        for (broker, dir) in replicas.iter().zip(dirs) {
            let (Some(broker), Some(dir)) = (
                broker.as_i64().and_then(|b| i32::try_from(b).ok()),
                dir.as_str(),
            ) else {
                continue;
            };
            if dir != "any" {
                out.push(ReplicaDir {
                    topic: topic.to_string(),
                    partition,
                    broker,
                    dir: dir.to_string(),
                });
            }
        }
    }
    out
}

/// Sends each broker its replicas' log directory moves; returns the
/// replicas whose move started (or that the broker will create in that
/// directory) and those refused.
async fn move_log_dirs(
    admin: &Admin,
    dirs: &[ReplicaDir],
) -> (Vec<ReplicaDir>, Vec<(ReplicaDir, ClientError)>) {
    let mut by_broker: BTreeMap<i32, Vec<&ReplicaDir>> = BTreeMap::new();
    for d in dirs {
        by_broker.entry(d.broker).or_default().push(d);
    }
    let (mut started, mut failed) = (Vec::new(), Vec::new());
    for (broker, ds) in by_broker {
        let req = ds
            .iter()
            .map(|d| (d.topic.clone(), d.partition, d.dir.clone()))
            .collect();
        match admin.alter_replica_log_dirs(broker, req).await {
            Err(e) => failed.extend(ds.into_iter().map(|d| (d.clone(), e.duplicate()))),
            Ok(results) => {
                for d in ds {
                    match results.get(&(d.topic.clone(), d.partition)) {
                        Some(Ok(())) => started.push(d.clone()),
                        // Not on that broker yet: it creates the replica in
                        // that directory once the reassignment adds it.
                        Some(Err(e)) if e.code() == Some(9) => started.push(d.clone()),
                        Some(Err(e)) => failed.push((d.clone(), e.duplicate())),
                        None => failed.push((
                            d.clone(),
                            ClientError::Invalid(
                                "the broker did not answer for this replica".into(),
                            ),
                        )),
                    }
                }
            }
        }
    }
    (started, failed)
}

/// Kafka's name of a replica: `<topic>-<partition>-<broker>`.
fn replica_name(d: &ReplicaDir) -> String {
    format!("{}-{}-{}", d.topic, d.partition, d.broker)
}

/// Kafka's reassignment JSON, with the fields in Kafka's order.
pub fn reassignment_json(moves: &[Move]) -> String {
    let parts: Vec<String> = moves
        .iter()
        .map(|m| {
            format!(
                "{{\"topic\":{},\"partition\":{},\"replicas\":[{}],\"log_dirs\":[{}]}}",
                json!(m.topic),
                m.partition,
                join_ids(&m.replicas),
                vec!["\"any\""; m.replicas.len()].join(",")
            )
        })
        .collect();
    format!("{{\"version\":1,\"partitions\":[{}]}}", parts.join(","))
}

fn moves_value(moves: &[Move]) -> serde_json::Value {
    serde_json::from_str(&reassignment_json(moves)).unwrap_or(serde_json::Value::Null)
}

/// Reads --topics-to-move-json-file: `{"version":1,"topics":[{"topic":"t"},...]}`.
pub fn parse_topics_to_move(doc: &serde_json::Value) -> anyhow::Result<Vec<String>> {
    check_version(doc)?;
    let topics = doc
        .get("topics")
        .and_then(|t| t.as_array())
        .ok_or_else(|| {
            anyhow::anyhow!("expected {{\"version\":1,\"topics\":[{{\"topic\":\"NAME\"}},...]}}")
        })?;
    let mut out: Vec<String> = Vec::new();
    for (i, t) in topics.iter().enumerate() {
        let name = t
            .get("topic")
            .and_then(|n| n.as_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| anyhow::anyhow!("topics[{i}]: \"topic\" must be a non-empty string"))?;
        if out.iter().any(|n| n == name) {
            anyhow::bail!("List of topics to reassign contains duplicate entries: {name}");
        }
        out.push(name.to_string());
    }
    if out.is_empty() {
        anyhow::bail!("the topic list is empty: name at least one topic");
    }
    Ok(out)
}

/// Parses `--broker-list 1,2,3`.
pub fn parse_broker_list(s: &str) -> anyhow::Result<Vec<i32>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id: i32 = part
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| anyhow::anyhow!("--broker-list: {part:?} is not a broker id"))?;
        if out.contains(&id) {
            anyhow::bail!("--broker-list contains duplicate entries: {id}");
        }
        out.push(id);
    }
    if out.is_empty() {
        anyhow::bail!("--broker-list is empty: give broker ids such as 1,2,3");
    }
    Ok(out)
}

/// Kafka's rack-unaware replica placement (AdminUtils.assignReplicasToBrokers)
/// with a fixed start: partition p's first replica is broker
/// `(p + start) % n`, the others follow at a shift that grows every `n`
/// partitions, so leaders and followers spread evenly.
pub fn assign_replicas(brokers: &[i32], partitions: i32, rf: usize, start: usize) -> Vec<Vec<i32>> {
    let n = brokers.len();
    let mut out = Vec::with_capacity(partitions.max(0) as usize);
    if n == 0 {
        return out;
    }
    let mut shift = start % n;
    for p in 0..partitions.max(0) as usize {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = vec![brokers[first]];
        for j in 0..rf.saturating_sub(1) {
            let idx = if n == 1 {
                first
            } else {
                (first + 1 + (shift + j) % (n - 1)) % n
            };
            replicas.push(brokers[idx]);
        }
        out.push(replicas);
    }
    out
}

pub async fn run(args: ReassignArgs) -> anyhow::Result<()> {
    let conn = args.conn.clone();
    let client = conn.connect().await?;
    let admin = Admin::new(client);
    let file = || -> anyhow::Result<(Vec<Move>, Vec<ReplicaDir>)> {
        let path = args.reassignment_json_file.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "this mode needs --reassignment-json-file FILE (Kafka's reassignment JSON)"
            )
        })?;
        let doc = read_json_file(path, "--reassignment-json-file")?;
        let (moves, warnings) = parse_reassignment(&doc)
            .with_context(|| format!("--reassignment-json-file {}", path.display()))?;
        for w in warnings {
            eprintln!("Warning: {w}");
        }
        Ok((moves, parse_log_dirs(&doc)))
    };
    if args.execute {
        let (moves, dirs) = file()?;
        execute(&conn, &admin, moves, &dirs, args.additional).await
    } else if args.verify {
        verify(&conn, &admin, file()?.0).await
    } else if args.cancel {
        cancel(&conn, &admin, file()?.0).await
    } else if args.list {
        list(&conn, &admin).await
    } else {
        let path = args.topics_to_move_json_file.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "--generate needs --topics-to-move-json-file FILE and --broker-list IDS"
            )
        })?;
        let brokers = args.broker_list.as_deref().ok_or_else(|| {
            anyhow::anyhow!("--generate needs --broker-list IDS, e.g. --broker-list 1,2,3")
        })?;
        let brokers = parse_broker_list(brokers)?;
        let doc = read_json_file(path, "--topics-to-move-json-file")?;
        let topics = parse_topics_to_move(&doc)
            .with_context(|| format!("--topics-to-move-json-file {}", path.display()))?;
        generate(&conn, &admin, topics, brokers).await
    }
}

/// Fresh metadata of the topics the moves name; a missing topic is an error
/// with advice.
async fn topics_of(admin: &Admin, moves: &[Move]) -> anyhow::Result<BTreeMap<String, TopicInfo>> {
    let names: Vec<String> = moves
        .iter()
        .map(|m| m.topic.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let infos = match admin.describe_topics(Some(&names)).await {
        Ok(t) => t,
        Err(e @ ClientError::Kafka { code: 3, .. }) => {
            return Err(hinted(
                e,
                "the reassignment names a topic that does not exist: `samsa topics list` shows the topics",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(infos.into_iter().map(|t| (t.name.clone(), t)).collect())
}

fn current_replicas(
    topics: &BTreeMap<String, TopicInfo>,
    topic: &str,
    partition: i32,
) -> Option<Vec<i32>> {
    topics
        .get(topic)?
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .map(|p| p.replicas.clone())
}

fn error_json(tp: &Tp, e: &ClientError) -> serde_json::Value {
    let (code, name, message) = match e {
        ClientError::Kafka {
            code,
            name,
            message,
            ..
        } => (Some(*code), Some(*name), message.clone()),
        other => (None, None, Some(other.to_string())),
    };
    json!({"topic": tp.0, "partition": tp.1, "error": name, "error_code": code, "message": message})
}

fn tps_json(tps: &[Tp]) -> Vec<serde_json::Value> {
    tps.iter()
        .map(|(t, p)| json!({"topic": t, "partition": p}))
        .collect()
}

/// A failed per-partition operation: "N partition(s) ..." with a hint for the first error.
fn failure(what: &str, failed: &[(Tp, ClientError)]) -> anyhow::Result<()> {
    let Some((_, first)) = failed.first() else {
        return Ok(());
    };
    let hint = match first.code() {
        Some(placement_codes::INVALID_REPLICA_ASSIGNMENT) => {
            "each target replica must be a live broker, listed once: `samsa topics describe` shows the \
             current replicas, and Metadata's broker list the live brokers"
                .to_string()
        }
        Some(3) => "the partition does not exist: `samsa topics describe NAME` lists a topic's partitions"
            .to_string(),
        Some(code) => hint_for_code(code)
            .unwrap_or("see the per-partition errors above")
            .to_string(),
        None => "see the per-partition errors above".to_string(),
    };
    let name = match first {
        ClientError::Kafka { name, .. } => format!(" ({name})"),
        _ => String::new(),
    };
    Err(hinted(
        ClientError::Invalid(format!("{} {what}{name}", failed.len())),
        hint,
    ))
}

async fn execute(
    conn: &ConnArgs,
    admin: &Admin,
    moves: Vec<Move>,
    dirs: &[ReplicaDir],
    additional: bool,
) -> anyhow::Result<()> {
    let topics = topics_of(admin, &moves).await?;
    let mut current = Vec::with_capacity(moves.len());
    for m in &moves {
        let replicas = current_replicas(&topics, &m.topic, m.partition).ok_or_else(|| {
            anyhow::anyhow!(
                "Unable to find partition {}: topic {} has {} partition(s)",
                tp_name(&m.topic, m.partition),
                m.topic,
                topics.get(&m.topic).map_or(0, |t| t.partitions.len())
            )
        })?;
        current.push(Move {
            topic: m.topic.clone(),
            partition: m.partition,
            replicas,
        });
    }
    let live: BTreeSet<i32> = admin.client().cluster().brokers.keys().copied().collect();
    let unknown: BTreeSet<i32> = moves
        .iter()
        .flat_map(|m| m.replicas.iter().copied())
        .filter(|b| !live.contains(b))
        .collect();
    if !unknown.is_empty() {
        let unknown: Vec<i32> = unknown.into_iter().collect();
        let live: Vec<i32> = live.into_iter().collect();
        anyhow::bail!(
            "The proposed assignment contains non-existent brokerIDs: {} (the live brokers are {})",
            join_ids(&unknown),
            join_ids(&live)
        );
    }
    if !additional {
        let ongoing = admin
            .list_partition_reassignments(None)
            .await
            .context("listing ongoing reassignments")?;
        if !ongoing.is_empty() {
            let tps: Vec<Tp> = ongoing.into_keys().collect();
            anyhow::bail!(
                "Cannot execute because there is an existing partition assignment (of {}). Use --additional to \
                 override this and create a new partition assignment in addition to the existing one, \
                 or wait: `samsa reassign-partitions --list` shows them.",
                tp_list(&tps)
            );
        }
    }
    // Log directories first, as Kafka's tool does: a replica the broker
    // does not hold yet is created in the directory asked for.
    let (dirs_started, dirs_failed) = move_log_dirs(admin, dirs).await;
    let results = admin
        .alter_partition_reassignments(
            moves
                .iter()
                .map(|m| (m.topic.clone(), m.partition, Some(m.replicas.clone())))
                .collect(),
        )
        .await
        .context("starting the reassignment")?;
    let mut started = Vec::new();
    let mut failed = Vec::new();
    for m in &moves {
        match results.get(&m.tp()) {
            Some(Ok(())) => started.push(m.tp()),
            Some(Err(e)) => failed.push((m.tp(), e.duplicate())),
            None => failed.push((
                m.tp(),
                ClientError::Invalid("the broker did not answer for this partition".into()),
            )),
        }
    }
    if conn.json() {
        print_json(&json!({
            "current": moves_value(&current),
            "started": tps_json(&started),
            "failed": failed.iter().map(|(tp, e)| error_json(tp, e)).collect::<Vec<_>>(),
            "log_dir_moves_started": dirs_started.iter().map(replica_name).collect::<Vec<_>>(),
            "log_dir_moves_failed": dirs_failed
                .iter()
                .map(|(d, e)| json!({"replica": replica_name(d), "dir": d.dir, "error": bare_error(e)}))
                .collect::<Vec<_>>(),
        }));
    } else {
        println!("Current partition replica assignment\n");
        println!("{}\n", reassignment_json(&current));
        println!("Save this to use as the --reassignment-json-file option during rollback");
        if !started.is_empty() {
            println!(
                "Successfully started partition reassignment{} for {}",
                if started.len() == 1 { "" } else { "s" },
                tp_list(&started)
            );
        }
        for ((t, p), e) in &failed {
            println!(
                "Error reassigning partition {}: {}",
                tp_name(t, *p),
                bare_error(e)
            );
        }
        if !dirs_started.is_empty() {
            let names: Vec<String> = dirs_started.iter().map(replica_name).collect();
            println!(
                "Successfully started log directory move{} for: {}",
                if names.len() == 1 { "" } else { "s" },
                names.join(",")
            );
        }
        for (d, e) in &dirs_failed {
            println!(
                "Error moving replica {} to log directory {}: {}",
                replica_name(d),
                d.dir,
                bare_error(e)
            );
        }
    }
    if !dirs_failed.is_empty() {
        anyhow::bail!(
            "{} log directory move(s) could not be started",
            dirs_failed.len()
        );
    }
    failure("partition reassignment(s) could not be started", &failed)
}

/// Where one partition's reassignment stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Completed,
    InProgress(OngoingReassignment),
    /// Not being reassigned, but the replicas are not the target (e.g. cancelled).
    Differs(Vec<i32>),
    Missing,
}

async fn states(admin: &Admin, moves: &[Move]) -> anyhow::Result<Vec<State>> {
    let ongoing = admin
        .list_partition_reassignments(Some(moves.iter().map(Move::tp).collect()))
        .await
        .context("listing ongoing reassignments")?;
    let topics = topics_of(admin, moves).await?;
    Ok(moves
        .iter()
        .map(|m| {
            if let Some(r) = ongoing.get(&m.tp()) {
                return State::InProgress(r.clone());
            }
            match current_replicas(&topics, &m.topic, m.partition) {
                None => State::Missing,
                Some(r) if r == m.replicas => State::Completed,
                Some(r) => State::Differs(r),
            }
        })
        .collect())
}

async fn verify(conn: &ConnArgs, admin: &Admin, moves: Vec<Move>) -> anyhow::Result<()> {
    let mut st = states(admin, &moves).await?;
    // A reassignment that just completed may not have reached the broker
    // answering Metadata yet: look again before calling it a mismatch.
    for _ in 0..10 {
        if !st.iter().any(|s| matches!(s, State::Differs(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        st = states(admin, &moves).await?;
    }
    if conn.json() {
        let rows: Vec<serde_json::Value> = moves
            .iter()
            .zip(&st)
            .map(|(m, s)| {
                let (state, current) = match s {
                    State::Completed => ("completed", Some(m.replicas.clone())),
                    State::InProgress(r) => ("in_progress", Some(r.replicas.clone())),
                    State::Differs(r) => ("not_in_progress", Some(r.clone())),
                    State::Missing => ("missing", None),
                };
                json!({
                    "topic": m.topic,
                    "partition": m.partition,
                    "state": state,
                    "target": m.replicas,
                    "replicas": current,
                })
            })
            .collect();
        print_json(&json!({
            "complete": st.iter().all(|s| *s == State::Completed),
            "partitions": rows,
        }));
        return Ok(());
    }
    println!("Status of partition reassignment:");
    for (m, s) in moves.iter().zip(&st) {
        let name = tp_name(&m.topic, m.partition);
        match s {
            State::Completed => println!("Reassignment of partition {name} is completed."),
            State::InProgress(_) => println!("Reassignment of partition {name} is still in progress."),
            State::Differs(r) => println!(
                "There is no active reassignment of partition {name}, but replica set is [{}] rather than [{}].",
                join_ids(r),
                join_ids(&m.replicas)
            ),
            State::Missing => println!("Partition {name} does not exist."),
        }
    }
    Ok(())
}

async fn cancel(conn: &ConnArgs, admin: &Admin, moves: Vec<Move>) -> anyhow::Result<()> {
    let ongoing = admin
        .list_partition_reassignments(Some(moves.iter().map(Move::tp).collect()))
        .await
        .context("listing ongoing reassignments")?;
    let (todo, idle): (Vec<Tp>, Vec<Tp>) = moves
        .iter()
        .map(Move::tp)
        .partition(|tp| ongoing.contains_key(tp));
    let mut cancelled = Vec::new();
    let mut failed = Vec::new();
    if !todo.is_empty() {
        let results = admin
            .alter_partition_reassignments(
                todo.iter().map(|(t, p)| (t.clone(), *p, None)).collect(),
            )
            .await
            .context("cancelling the reassignment")?;
        for tp in todo {
            match results.get(&tp) {
                Some(Ok(())) => cancelled.push(tp),
                // Finished between the listing and the cancellation.
                Some(Err(e)) if e.code() == Some(placement_codes::NO_REASSIGNMENT_IN_PROGRESS) => {}
                Some(Err(e)) => failed.push((tp, e.duplicate())),
                None => failed.push((
                    tp,
                    ClientError::Invalid("the broker did not answer for this partition".into()),
                )),
            }
        }
    }
    if conn.json() {
        print_json(&json!({
            "cancelled": tps_json(&cancelled),
            "not_in_progress": tps_json(&idle),
            "failed": failed.iter().map(|(tp, e)| error_json(tp, e)).collect::<Vec<_>>(),
        }));
    } else {
        if !cancelled.is_empty() {
            println!(
                "Successfully cancelled partition reassignment(s) for: {}",
                tp_list(&cancelled)
            );
        }
        if !idle.is_empty() {
            println!("No reassignment in progress for: {}", tp_list(&idle));
        }
        for ((t, p), e) in &failed {
            println!(
                "Error cancelling the reassignment of partition {}: {}",
                tp_name(t, *p),
                bare_error(e)
            );
        }
    }
    failure("partition reassignment(s) could not be cancelled", &failed)
}

async fn list(conn: &ConnArgs, admin: &Admin) -> anyhow::Result<()> {
    let ongoing = admin
        .list_partition_reassignments(None)
        .await
        .context("listing ongoing reassignments")?;
    if conn.json() {
        print_json(&serde_json::Value::Array(
            ongoing
                .iter()
                .map(|((t, p), r)| {
                    json!({
                        "topic": t,
                        "partition": p,
                        "replicas": r.replicas,
                        "adding_replicas": r.adding_replicas,
                        "removing_replicas": r.removing_replicas,
                    })
                })
                .collect(),
        ));
        return Ok(());
    }
    if ongoing.is_empty() {
        println!("No partition reassignments found.");
        return Ok(());
    }
    println!("Current partition reassignments:");
    for ((t, p), r) in &ongoing {
        println!(
            "{}: replicas: {}. adding: {}. removing: {}.",
            tp_name(t, *p),
            join_ids(&r.replicas),
            join_ids(&r.adding_replicas),
            join_ids(&r.removing_replicas)
        );
    }
    Ok(())
}

async fn generate(
    conn: &ConnArgs,
    admin: &Admin,
    topics: Vec<String>,
    brokers: Vec<i32>,
) -> anyhow::Result<()> {
    let infos = match admin.describe_topics(Some(&topics)).await {
        Ok(t) => t,
        Err(e @ ClientError::Kafka { code: 3, .. }) => {
            return Err(hinted(
                e,
                "--topics-to-move-json-file names a topic that does not exist: `samsa topics list` shows the topics",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let live: BTreeSet<i32> = admin.client().cluster().brokers.keys().copied().collect();
    let unknown: Vec<i32> = brokers
        .iter()
        .copied()
        .filter(|b| !live.contains(b))
        .collect();
    if !unknown.is_empty() {
        let live: Vec<i32> = live.into_iter().collect();
        anyhow::bail!(
            "--broker-list names brokers that are not in the cluster: {} (the live brokers are {})",
            join_ids(&unknown),
            join_ids(&live)
        );
    }
    let mut current = Vec::new();
    let mut proposed = Vec::new();
    for (i, t) in infos.iter().enumerate() {
        let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
        if rf > brokers.len() {
            anyhow::bail!(
                "Replication factor: {rf} larger than available brokers: {} (topic {})",
                brokers.len(),
                t.name
            );
        }
        let count = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
        let assignment = assign_replicas(&brokers, count, rf, i);
        for (p, replicas) in t.partitions.iter().zip(assignment) {
            current.push(Move {
                topic: t.name.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
            });
            proposed.push(Move {
                topic: t.name.clone(),
                partition: p.partition,
                replicas,
            });
        }
    }
    if conn.json() {
        print_json(&json!({
            "current": moves_value(&current),
            "proposed": moves_value(&proposed),
        }));
    } else {
        println!("Current partition replica assignment");
        println!("{}\n", reassignment_json(&current));
        println!("Proposed partition reassignment configuration");
        println!("{}", reassignment_json(&proposed));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kafkas_reassignment_json() {
        let doc = serde_json::json!({"version": 1, "partitions": [
            {"topic": "t", "partition": 0, "replicas": [2, 3, 1], "log_dirs": ["any", "any", "any"]},
            {"topic": "t", "partition": 1, "replicas": [3]},
        ]});
        let (moves, warnings) = parse_reassignment(&doc).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(
            moves,
            vec![
                Move {
                    topic: "t".into(),
                    partition: 0,
                    replicas: vec![2, 3, 1]
                },
                Move {
                    topic: "t".into(),
                    partition: 1,
                    replicas: vec![3]
                },
            ]
        );
        // What we print reads back the same (Kafka's field order).
        let text = reassignment_json(&moves);
        assert!(
            text.starts_with(r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,3,1],"log_dirs":["any","any","any"]}"#),
            "{text}"
        );
        let again: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parse_reassignment(&again).unwrap().0, moves);
    }

    #[test]
    fn rejects_what_kafka_rejects() {
        let bad = |doc: serde_json::Value| parse_reassignment(&doc).unwrap_err().to_string();
        assert!(
            bad(serde_json::json!({"version": 1, "partitions": []})).contains("cannot be empty")
        );
        assert!(bad(serde_json::json!({"version": 2, "partitions": [
            {"topic": "t", "partition": 0, "replicas": [1]}]}))
        .contains("version"));
        assert!(bad(serde_json::json!({"partitions": [
            {"topic": "t", "partition": 0, "replicas": [1, 1]}]}))
        .contains("duplicate entries: t-0 contains multiple entries for 1"));
        assert!(bad(serde_json::json!({"partitions": [
            {"topic": "t", "partition": 0, "replicas": [1]},
            {"topic": "t", "partition": 0, "replicas": [2]}]}))
        .contains("duplicate topic partitions: t-0"));
        assert!(bad(serde_json::json!({"partitions": [
            {"topic": "t", "partition": 0, "replicas": []}]}))
        .contains("cannot be empty"));
        assert!(bad(serde_json::json!({"partitions": [
            {"topic": "t", "partition": 0, "replicas": [1, 2], "log_dirs": ["any"]}]}))
        .contains("log dirs"));
        assert!(
            bad(serde_json::json!({"partitions": [{"topic": "t", "replicas": [1]}]}))
                .contains("\"partition\"")
        );
        assert!(bad(serde_json::json!({"topics": []})).contains("\"partitions\""));
        let doc = serde_json::json!({"partitions": [
            {"topic": "t", "partition": 0, "replicas": [1, 2], "log_dirs": ["/data", "any"]}]});
        let (_, warnings) = parse_reassignment(&doc).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            parse_log_dirs(&doc),
            vec![ReplicaDir {
                topic: "t".into(),
                partition: 0,
                broker: 1,
                dir: "/data".into()
            }]
        );
    }

    #[test]
    fn topics_to_move_and_broker_lists() {
        let doc = serde_json::json!({"version": 1, "topics": [{"topic": "a"}, {"topic": "b"}]});
        assert_eq!(parse_topics_to_move(&doc).unwrap(), vec!["a", "b"]);
        assert!(parse_topics_to_move(
            &serde_json::json!({"topics": [{"topic": "a"}, {"topic": "a"}]})
        )
        .is_err());
        assert_eq!(parse_broker_list("1, 2,3").unwrap(), vec![1, 2, 3]);
        assert!(parse_broker_list("1,x").is_err());
        assert!(parse_broker_list("1,1").is_err());
        assert!(parse_broker_list("").is_err());
    }

    #[test]
    fn proposed_assignments_spread_leaders_and_replicas() {
        let brokers = [1, 2, 3];
        let a = assign_replicas(&brokers, 6, 2, 0);
        assert_eq!(a.len(), 6);
        for r in &a {
            assert_eq!(r.len(), 2);
            assert_ne!(r[0], r[1], "{a:?}");
        }
        // Every broker leads two of the six partitions and holds four replicas.
        for b in brokers {
            assert_eq!(a.iter().filter(|r| r[0] == b).count(), 2, "{a:?}");
            assert_eq!(a.iter().flatten().filter(|x| **x == b).count(), 4, "{a:?}");
        }
        let full = assign_replicas(&brokers, 3, 3, 1);
        for r in &full {
            let mut s = r.clone();
            s.sort_unstable();
            assert_eq!(s, vec![1, 2, 3]);
        }
        assert_eq!(assign_replicas(&[7], 2, 1, 0), vec![vec![7], vec![7]]);
        assert!(assign_replicas(&[], 2, 1, 0).is_empty());
    }
}
