//! `samsa metadata-quorum describe --status | --replication`: the metadata
//! quorum, with kafka-metadata-quorum.sh's flags and output (samsa has no
//! directory ids, so its DirectoryId column and fields are left out).

use samsa_client::admin::{QuorumInfo, QuorumReplica};
use samsa_client::Admin;
use serde_json::json;

use crate::common::{now_ms, print_json, rows_json, ConnArgs, Output};
use crate::table;

#[derive(clap::Args)]
pub struct MetadataQuorumArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: QuorumCommand,
}

#[derive(clap::Subcommand)]
enum QuorumCommand {
    /// Describe the metadata quorum.
    Describe(DescribeArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["status", "replication"])))]
struct DescribeArgs {
    /// The leader, epoch, high watermark, follower lag and the voters and observers.
    #[arg(long)]
    status: bool,
    /// Each replica's log end offset, lag and fetch times.
    #[arg(long)]
    replication: bool,
    /// Timestamps as "N ms ago" (with --replication).
    #[arg(long, requires = "replication")]
    human_readable: bool,
}

/// Runs `samsa metadata-quorum`.
pub async fn run(args: MetadataQuorumArgs) -> anyhow::Result<()> {
    let QuorumCommand::Describe(d) = args.command;
    let admin = Admin::new(args.conn.connect().await?);
    let quorum = admin.describe_metadata_quorum().await?;
    let json = args.conn.output == Output::Json;
    if d.status {
        let cluster_id = admin.describe_cluster().await?.cluster_id;
        if json {
            print_json(&status_json(&cluster_id, &quorum));
        } else {
            print!("{}", status_text(&cluster_id, &quorum));
        }
    } else {
        let now = now_ms();
        let rows = replication_rows(&quorum, d.human_readable.then_some(now));
        if json {
            print_json(&rows_json(&REPLICATION_HEADERS, &rows));
        } else {
            table::print(&REPLICATION_HEADERS, &rows);
        }
    }
    Ok(())
}

/// The voter furthest behind (lowest log end offset), as Kafka picks it.
fn max_lag_follower(q: &QuorumInfo) -> Option<&QuorumReplica> {
    q.voters.iter().min_by_key(|v| v.log_end_offset)
}

fn leader(q: &QuorumInfo) -> Option<&QuorumReplica> {
    q.voters.iter().find(|v| v.id == q.leader_id)
}

/// (MaxFollowerLag, MaxFollowerLagTimeMs) as kafka-metadata-quorum.sh computes them.
fn follower_lag(q: &QuorumInfo) -> (i64, i64) {
    match (max_lag_follower(q), leader(q)) {
        (Some(f), Some(l)) => {
            let time = if f.id == l.id {
                0
            } else {
                (l.last_caught_up_timestamp - f.last_caught_up_timestamp).max(0)
            };
            ((q.high_watermark - f.log_end_offset).max(0), time)
        }
        _ => (0, 0),
    }
}

fn endpoints_of(q: &QuorumInfo, id: i32) -> Vec<String> {
    q.endpoints
        .iter()
        .filter(|e| e.node_id == id)
        .map(|e| format!("{}://{}:{}", e.name, e.host, e.port))
        .collect()
}

fn status_json(cluster_id: &str, q: &QuorumInfo) -> serde_json::Value {
    let (lag, lag_ms) = follower_lag(q);
    json!({
        "ClusterId": cluster_id,
        "LeaderId": q.leader_id,
        "LeaderEpoch": q.leader_epoch,
        "HighWatermark": q.high_watermark,
        "MaxFollowerLag": lag,
        "MaxFollowerLagTimeMs": lag_ms,
        "CurrentVoters": q.voters.iter()
            .map(|v| json!({"id": v.id, "endpoints": endpoints_of(q, v.id)}))
            .collect::<Vec<_>>(),
        "CurrentObservers": q.observers.iter().map(|o| json!({"id": o.id})).collect::<Vec<_>>(),
    })
}

fn status_text(cluster_id: &str, q: &QuorumInfo) -> String {
    let (lag, lag_ms) = follower_lag(q);
    let voters: Vec<String> = q
        .voters
        .iter()
        .map(|v| json!({"id": v.id, "endpoints": endpoints_of(q, v.id)}).to_string())
        .collect();
    let observers: Vec<String> = q
        .observers
        .iter()
        .map(|o| json!({"id": o.id}).to_string())
        .collect();
    format!(
        "ClusterId:              {cluster_id}\n\
         LeaderId:               {}\n\
         LeaderEpoch:            {}\n\
         HighWatermark:          {}\n\
         MaxFollowerLag:         {lag}\n\
         MaxFollowerLagTimeMs:   {lag_ms}\n\
         CurrentVoters:          [{}]\n\
         CurrentObservers:       [{}]\n",
        q.leader_id,
        q.leader_epoch,
        q.high_watermark,
        voters.join(","),
        observers.join(","),
    )
}

const REPLICATION_HEADERS: [&str; 6] = [
    "NodeId",
    "LogEndOffset",
    "Lag",
    "LastFetchTimestamp",
    "LastCaughtUpTimestamp",
    "Status",
];

/// The leader, then the other voters, then the observers. With `now`,
/// timestamps read "N ms ago" (kafka-metadata-quorum.sh --human-readable).
fn replication_rows(q: &QuorumInfo, now: Option<i64>) -> Vec<Vec<String>> {
    let time = |t: i64| match now {
        Some(now) if t >= 0 => format!("{} ms ago", (now - t).max(0)),
        _ => t.to_string(),
    };
    let row = |r: &QuorumReplica, status: &str| {
        vec![
            r.id.to_string(),
            r.log_end_offset.to_string(),
            (q.high_watermark - r.log_end_offset).max(0).to_string(),
            time(r.last_fetch_timestamp),
            time(r.last_caught_up_timestamp),
            status.to_string(),
        ]
    };
    let mut rows = Vec::new();
    rows.extend(leader(q).map(|l| row(l, "Leader")));
    rows.extend(
        q.voters
            .iter()
            .filter(|v| v.id != q.leader_id)
            .map(|v| row(v, "Follower")),
    );
    rows.extend(q.observers.iter().map(|o| row(o, "Observer")));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(id: i32, leo: i64, caught_up: i64) -> QuorumReplica {
        QuorumReplica {
            id,
            log_end_offset: leo,
            last_fetch_timestamp: caught_up,
            last_caught_up_timestamp: caught_up,
        }
    }

    #[test]
    fn status_and_replication_as_kafka_prints_them() {
        let q = QuorumInfo {
            leader_id: 2,
            leader_epoch: 3,
            high_watermark: 10,
            voters: vec![
                replica(1, 7, 900),
                replica(2, 10, 1000),
                replica(3, 10, 1000),
            ],
            observers: vec![replica(4, -1, -1)],
            endpoints: Vec::new(),
        };
        let text = status_text("abc", &q);
        assert!(text.contains("LeaderId:               2\n"), "{text}");
        assert!(text.contains("MaxFollowerLag:         3\n"), "{text}");
        assert!(text.contains("MaxFollowerLagTimeMs:   100\n"), "{text}");
        assert!(
            text.contains("CurrentObservers:       [{\"id\":4}]"),
            "{text}"
        );
        let rows = replication_rows(&q, Some(1000));
        let status: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r[0].as_str(), r[5].as_str()))
            .collect();
        assert_eq!(
            status,
            vec![
                ("2", "Leader"),
                ("1", "Follower"),
                ("3", "Follower"),
                ("4", "Observer")
            ]
        );
        assert_eq!(rows[1][2], "3");
        assert_eq!(rows[1][3], "100 ms ago");
        assert_eq!(rows[3][3], "-1");
    }
}
