//! `samsa leader-election`: preferred or unclean leader election, with
//! kafka-leader-election.sh's flags (`--election-type`, `--topic` and
//! `--partition`, `--all-topic-partitions`, `--path-to-json-file`) and output.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;
use samsa_client::admin::{placement_codes, ElectionType, Tp};
use samsa_client::error::ClientError;
use samsa_client::Admin;
use serde_json::json;

use crate::common::{
    bare_error, hint_for_code, hinted, print_json, read_json_file, tp_list, ConnArgs,
};

#[derive(clap::Args)]
#[command(group(
    clap::ArgGroup::new("partitions")
        .required(true)
        .args(["topic", "all_topic_partitions", "path_to_json_file"])
))]
pub struct LeaderElectionArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// PREFERRED: move leadership back to each partition's first replica (if it
    /// is alive and in sync). UNCLEAN: elect a leader for partitions that have
    /// none, from outside the ISR if need be (acknowledged records may be lost).
    #[arg(long, value_name = "TYPE", default_value = "preferred", value_parser = parse_election_type)]
    election_type: ElectionType,
    /// Topic whose partition(s) to elect a leader for.
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// Partition of --topic (all of its partitions when omitted).
    #[arg(long, value_name = "P", requires = "topic")]
    partition: Option<i32>,
    /// Every partition of every topic (those that need no election are skipped).
    #[arg(long)]
    all_topic_partitions: bool,
    /// Partitions listed in a JSON file:
    /// {"partitions":[{"topic":"t","partition":0},...]}.
    #[arg(long, value_name = "FILE")]
    path_to_json_file: Option<PathBuf>,
}

fn parse_election_type(s: &str) -> Result<ElectionType, String> {
    s.parse()
}

/// Reads Kafka's election JSON: `{"partitions":[{"topic":..,"partition":..}]}`.
pub fn parse_election_json(doc: &serde_json::Value) -> anyhow::Result<Vec<Tp>> {
    let parts = doc
        .get("partitions")
        .and_then(|p| p.as_array())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "expected {{\"partitions\":[{{\"topic\":\"NAME\",\"partition\":N}},...]}}"
            )
        })?;
    let mut out = Vec::with_capacity(parts.len());
    let mut seen = BTreeSet::new();
    let mut dups = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let tp = crate::common::json_topic_partition(p, i)?;
        if !seen.insert(tp.clone()) {
            dups.push(tp.clone());
        }
        out.push(tp);
    }
    if !dups.is_empty() {
        anyhow::bail!(
            "Replica election data contains duplicate partitions: {}",
            tp_list(&dups)
        );
    }
    if out.is_empty() {
        anyhow::bail!("the partition list is empty: name at least one partition");
    }
    Ok(out)
}

/// The outcome of one election request, sorted into Kafka's three groups.
#[derive(Debug, Default)]
struct Outcome {
    succeeded: Vec<Tp>,
    not_needed: Vec<Tp>,
    failed: Vec<(Tp, ClientError)>,
}

pub async fn run(args: LeaderElectionArgs) -> anyhow::Result<()> {
    let conn = args.conn;
    let kind = args.election_type;
    let client = conn.connect().await?;
    let admin = Admin::new(client);
    let partitions: Option<Vec<Tp>> = if args.all_topic_partitions {
        None
    } else if let Some(path) = &args.path_to_json_file {
        let doc = read_json_file(path, "--path-to-json-file")?;
        Some(
            parse_election_json(&doc)
                .with_context(|| format!("--path-to-json-file {}", path.display()))?,
        )
    } else {
        let topic = args.topic.clone().unwrap_or_default();
        match args.partition {
            Some(p) => Some(vec![(topic, p)]),
            None => {
                let infos = match admin
                    .describe_topics(Some(std::slice::from_ref(&topic)))
                    .await
                {
                    Ok(t) => t,
                    Err(e @ ClientError::Kafka { code: 3, .. }) => {
                        return Err(hinted(
                            e,
                            format!(
                            "topic {topic} does not exist: `samsa topics list` shows the topics"
                        ),
                        ))
                    }
                    Err(e) => return Err(e.into()),
                };
                Some(
                    infos
                        .iter()
                        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
                        .collect(),
                )
            }
        }
    };
    let all = partitions.is_none();
    let results = admin
        .elect_leaders(kind, partitions)
        .await
        .with_context(|| format!("leader election ({kind})"))?;
    let mut outcome = Outcome::default();
    for (tp, r) in results {
        match r {
            Ok(()) => outcome.succeeded.push(tp),
            Err(e) if e.code() == Some(placement_codes::ELECTION_NOT_NEEDED) => {
                outcome.not_needed.push(tp)
            }
            Err(e) => outcome.failed.push((tp, e)),
        }
    }
    if conn.json() {
        let tps = |v: &[Tp]| {
            v.iter()
                .map(|(t, p)| json!({"topic": t, "partition": p}))
                .collect::<Vec<_>>()
        };
        print_json(&json!({
            "election_type": kind.name(),
            "succeeded": tps(&outcome.succeeded),
            "not_needed": tps(&outcome.not_needed),
            "failed": outcome.failed.iter().map(|((t, p), e)| {
                let (code, name, message) = match e {
                    ClientError::Kafka { code, name, message, .. } => (Some(*code), Some(*name), message.clone()),
                    other => (None, None, Some(other.to_string())),
                };
                json!({"topic": t, "partition": p, "error": name, "error_code": code, "message": message})
            }).collect::<Vec<_>>(),
        }));
    } else {
        print_outcome(kind, all, &outcome);
    }
    failure(kind, outcome.failed)
}

fn print_outcome(kind: ElectionType, all: bool, outcome: &Outcome) {
    if !outcome.succeeded.is_empty() {
        println!(
            "Successfully completed leader election ({kind}) for partitions {}",
            tp_list(&outcome.succeeded)
        );
    }
    if !outcome.not_needed.is_empty() {
        println!(
            "Valid replica already elected for partitions {}",
            tp_list(&outcome.not_needed)
        );
    }
    for ((t, p), e) in &outcome.failed {
        println!(
            "Error completing leader election ({kind}) for partition: {t}-{p}: {}",
            bare_error(e)
        );
    }
    if all && outcome.succeeded.is_empty() && outcome.failed.is_empty() {
        println!("Valid replica already elected for all partitions");
    }
}

/// Kafka's "N replica(s) could not be elected", with a hint for the most
/// common cause.
fn failure(kind: ElectionType, failed: Vec<(Tp, ClientError)>) -> anyhow::Result<()> {
    let Some((_, first)) = failed.first() else {
        return Ok(());
    };
    let n = failed.len();
    let hint = match (kind, first.code()) {
        (ElectionType::Preferred, Some(placement_codes::PREFERRED_LEADER_NOT_AVAILABLE)) => {
            "the preferred replica (the first of the partition's replicas) must be a live broker in the ISR: \
             wait until it has caught up (`samsa topics describe --under-replicated-partitions` lists the \
             partitions still catching up) and run the election again"
                .to_string()
        }
        (_, Some(placement_codes::ELIGIBLE_LEADERS_NOT_AVAILABLE)) => {
            "no replica of the partition is alive: start one of its brokers".to_string()
        }
        (_, Some(3)) => {
            "check the topic and partition: `samsa topics describe NAME` lists a topic's partitions"
                .to_string()
        }
        (_, Some(code)) => hint_for_code(code)
            .unwrap_or("see the per-partition errors above")
            .to_string(),
        (_, None) => "see the per-partition errors above".to_string(),
    };
    let names: BTreeSet<&str> = failed
        .iter()
        .map(|(_, e)| match e {
            ClientError::Kafka { name, .. } => *name,
            _ => "see above",
        })
        .collect();
    let summary = names.into_iter().collect::<Vec<_>>().join(", ");
    Err(hinted(
        ClientError::Invalid(format!("{n} replica(s) could not be elected ({summary})")),
        hint,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kafkas_election_json() {
        let doc = serde_json::json!({"partitions": [
            {"topic": "a", "partition": 0},
            {"topic": "b", "partition": 2},
        ]});
        assert_eq!(
            parse_election_json(&doc).unwrap(),
            vec![("a".to_string(), 0), ("b".to_string(), 2)]
        );
    }

    #[test]
    fn rejects_duplicates_and_bad_entries() {
        let dup = serde_json::json!({"partitions": [
            {"topic": "a", "partition": 0}, {"topic": "a", "partition": 0}
        ]});
        let e = parse_election_json(&dup).unwrap_err().to_string();
        assert!(e.contains("duplicate partitions: a-0"), "{e}");
        let bad = serde_json::json!({"partitions": [{"topic": "a", "partition": "x"}]});
        assert!(parse_election_json(&bad).is_err());
        let missing = serde_json::json!({"topics": []});
        assert!(parse_election_json(&missing)
            .unwrap_err()
            .to_string()
            .contains("\"partitions\""));
        let empty = serde_json::json!({"partitions": []});
        assert!(parse_election_json(&empty).is_err());
    }

    #[test]
    fn election_types_are_case_insensitive() {
        assert_eq!(
            parse_election_type("PREFERRED").unwrap(),
            ElectionType::Preferred
        );
        assert_eq!(
            parse_election_type("Unclean").unwrap(),
            ElectionType::Unclean
        );
        assert!(parse_election_type("dirty").is_err());
    }

    #[test]
    fn failures_carry_a_hint() {
        let e = failure(
            ElectionType::Preferred,
            vec![(("t".into(), 0), ClientError::at(80, None, "partition t-0"))],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("1 replica(s) could not be elected"),
            "{e}"
        );
        assert!(
            e.to_string().contains("PREFERRED_LEADER_NOT_AVAILABLE"),
            "{e}"
        );
        let h = e
            .chain()
            .find_map(|c| c.downcast_ref::<crate::common::Hinted>())
            .unwrap();
        assert!(h.hint.contains("ISR"), "{}", h.hint);
        assert!(failure(ElectionType::Preferred, Vec::new()).is_ok());
    }
}
