//! `samsa groups`: list, describe (kafka-consumer-groups.sh's columns),
//! reset-offsets (a dry run unless `--execute`) and delete.

use std::collections::{BTreeMap, BTreeSet};

use samsa_client::admin::{GroupDescription, OffsetQuery, Tp};
use samsa_client::error::ClientError;
use samsa_client::group_protocol::Assignment;
use samsa_client::Admin;
use serde_json::json;

use crate::common::{hinted, print_json, ConnArgs};
use crate::datetime::parse_iso8601_ms;
use crate::table;

#[derive(clap::Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(clap::Subcommand)]
enum GroupsCommand {
    /// List consumer groups.
    List {
        /// Also print each group's state.
        #[arg(long)]
        state: bool,
    },
    /// Offsets and lag per partition, with the consumer that owns it.
    Describe {
        #[command(flatten)]
        group: GroupName,
        /// Print the members instead of the offsets.
        #[arg(long, conflicts_with = "state")]
        members: bool,
        /// Print the group's state instead of the offsets.
        #[arg(long)]
        state: bool,
        /// More columns: the committed leader epoch (offsets), member and
        /// target assignments with their epochs (--members), group and
        /// target assignment epochs (--state).
        #[arg(long)]
        verbose: bool,
    },
    /// Move a group's committed offsets (dry run unless --execute).
    ResetOffsets(ResetArgs),
    /// Delete a group (it must have no active members).
    Delete {
        #[command(flatten)]
        group: GroupName,
    },
}

#[derive(clap::Args)]
struct GroupName {
    /// Group id.
    #[arg(value_name = "GROUP", required_unless_present = "group_flag")]
    group: Option<String>,
    /// Group id (kafka-consumer-groups.sh style).
    #[arg(long = "group", value_name = "GROUP", conflicts_with = "group")]
    group_flag: Option<String>,
}

impl GroupName {
    fn get(&self) -> String {
        self.group
            .clone()
            .or_else(|| self.group_flag.clone())
            .unwrap_or_default()
    }
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by", "to_current"])))]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
struct ResetArgs {
    #[command(flatten)]
    group: GroupName,
    /// TOPIC or TOPIC:P[,P...] (repeatable).
    #[arg(long, value_name = "TOPIC[:PARTITIONS]")]
    topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    all_topics: bool,
    /// Reset to the earliest offset.
    #[arg(long)]
    to_earliest: bool,
    /// Reset to the end of each partition.
    #[arg(long)]
    to_latest: bool,
    /// Reset to this offset (clamped to the partition's range).
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// Reset to the first offset at or after this time (YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM], UTC if no zone).
    #[arg(long, value_name = "ISO8601")]
    to_datetime: Option<String>,
    /// Move the committed offset by N (negative moves back).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Keep the current committed offset.
    #[arg(long)]
    to_current: bool,
    /// Apply the plan (without it, only print it).
    #[arg(long)]
    execute: bool,
    /// Only print the plan (the default).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
}

fn dash(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| x.to_string())
}

fn group_error(e: ClientError, group: &str) -> anyhow::Error {
    match e.code() {
        Some(69) => hinted(
            e,
            format!("there is no group {group}: `samsa groups list` shows the groups"),
        ),
        Some(68) => hinted(
            e,
            format!("group {group} still has active members: stop its consumers first"),
        ),
        _ => anyhow::Error::new(e).context(format!("group {group}")),
    }
}

pub async fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let conn = args.conn;
    let admin = Admin::new(conn.connect().await?);
    match args.command {
        GroupsCommand::List { state } => {
            let groups = admin.list_groups().await?;
            if conn.json() {
                print_json(&json!(groups
                    .iter()
                    .map(|g| json!({"group": g.group_id, "state": g.state, "protocol_type": g.protocol_type}))
                    .collect::<Vec<_>>()));
            } else if state {
                let rows: Vec<Vec<String>> = groups
                    .iter()
                    .map(|g| {
                        vec![
                            g.group_id.clone(),
                            if g.state.is_empty() {
                                "-".into()
                            } else {
                                g.state.clone()
                            },
                        ]
                    })
                    .collect();
                table::print(&["GROUP", "STATE"], &rows);
            } else {
                for g in groups {
                    println!("{}", g.group_id);
                }
            }
            Ok(())
        }
        GroupsCommand::Describe {
            group,
            members,
            state,
            verbose,
        } => {
            let show = Show {
                members,
                state,
                verbose,
            };
            describe(&conn, &admin, &group.get(), show).await
        }
        GroupsCommand::ResetOffsets(r) => reset(&conn, &admin, r).await,
        GroupsCommand::Delete { group } => {
            let g = group.get();
            admin
                .delete_group(&g)
                .await
                .map_err(|e| group_error(e, &g))?;
            if conn.json() {
                print_json(&json!({"deleted": g}));
            } else {
                println!("Deletion of requested consumer groups ('{g}') was successful.");
            }
            Ok(())
        }
    }
}

/// What `groups describe` prints.
struct Show {
    members: bool,
    state: bool,
    verbose: bool,
}

/// kafka-consumer-groups.sh's assignment column: `topic:0,1;other:2`
/// (topics sorted), `-` when empty.
fn assignment_text(a: &Assignment) -> String {
    let parts: Vec<String> = a
        .partitions
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| {
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}:{}", ps.join(","))
        })
        .collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(";")
    }
}

fn opt_text<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `--members [--verbose]`: kafka-consumer-groups.sh's columns (a
/// GROUP-INSTANCE-ID column when a member has one; UPGRADED when classic and
/// consumer-protocol members share the group).
fn print_members(conn: &ConnArgs, group: &str, d: &GroupDescription, verbose: bool) {
    let target_epoch = d.epochs.map(|(_, target)| target);
    if conn.json() {
        let members: Vec<serde_json::Value> = d
            .members
            .iter()
            .map(|m| {
                let n: usize = m.assignment.partitions.values().map(Vec::len).sum();
                let c = m.consumer.as_ref();
                json!({
                    "group": group, "consumer_id": m.member_id, "group_instance_id": m.group_instance_id,
                    "host": m.client_host, "client_id": m.client_id, "partitions": n,
                    "assignment": m.assignment.partitions,
                    "current_epoch": c.map(|c| c.member_epoch),
                    "target_epoch": c.and(target_epoch),
                    "target_assignment": c.map(|c| &c.target_assignment.partitions),
                    "subscribed_topic_names": c.map(|c| &c.subscribed_topic_names),
                    "subscribed_topic_regex": c.and_then(|c| c.subscribed_topic_regex.clone()),
                    "upgraded": c.and_then(|c| c.upgraded),
                })
            })
            .collect();
        print_json(&json!({"group": group, "state": d.state, "members": members}));
        return;
    }
    let with_instance = d.members.iter().any(|m| m.group_instance_id.is_some());
    let upgraded = |v: bool| {
        d.members
            .iter()
            .any(|m| m.consumer.as_ref().and_then(|c| c.upgraded) == Some(v))
    };
    let with_upgraded = upgraded(true) && upgraded(false);
    let mut headers = vec!["GROUP", "CONSUMER-ID"];
    if with_instance {
        headers.push("GROUP-INSTANCE-ID");
    }
    headers.extend(["HOST", "CLIENT-ID", "#PARTITIONS"]);
    if verbose {
        headers.extend([
            "CURRENT-EPOCH",
            "CURRENT-ASSIGNMENT",
            "TARGET-EPOCH",
            "TARGET-ASSIGNMENT",
        ]);
        if with_upgraded {
            headers.push("UPGRADED");
        }
    }
    let rows: Vec<Vec<String>> = d
        .members
        .iter()
        .map(|m| {
            let n: usize = m.assignment.partitions.values().map(Vec::len).sum();
            let mut row = vec![group.to_string(), m.member_id.clone()];
            if with_instance {
                row.push(m.group_instance_id.clone().unwrap_or_else(|| "-".into()));
            }
            row.extend([m.client_host.clone(), m.client_id.clone(), n.to_string()]);
            if verbose {
                let c = m.consumer.as_ref();
                row.extend([
                    opt_text(c.map(|c| c.member_epoch)),
                    assignment_text(&m.assignment),
                    opt_text(c.and(target_epoch)),
                    c.map_or_else(|| "-".into(), |c| assignment_text(&c.target_assignment)),
                ]);
                if with_upgraded {
                    row.push(opt_text(c.and_then(|c| c.upgraded)));
                }
            }
            row
        })
        .collect();
    table::print(&headers, &rows);
}

async fn describe(conn: &ConnArgs, admin: &Admin, group: &str, show: Show) -> anyhow::Result<()> {
    let Show {
        members,
        state,
        verbose,
    } = show;
    let d: GroupDescription = admin
        .describe_group(group)
        .await
        .map_err(|e| group_error(e, group))?;
    if d.state == "Dead" {
        let e = ClientError::at(
            69,
            Some(format!("consumer group '{group}' does not exist")),
            format!("group {group}"),
        );
        return Err(group_error(e, group));
    }
    if state {
        if conn.json() {
            print_json(
                &json!({"group": group, "coordinator": d.coordinator, "assignment_strategy": d.protocol, "state": d.state, "members": d.members.len(),
                        "group_epoch": d.epochs.map(|e| e.0), "target_assignment_epoch": d.epochs.map(|e| e.1)}),
            );
        } else {
            let coord = admin
                .client()
                .cluster()
                .brokers
                .get(&d.coordinator)
                .map(|b| format!("{}:{} ({})", b.host, b.port, b.id))
                .unwrap_or_else(|| d.coordinator.to_string());
            let strategy = if d.protocol.is_empty() {
                "-".to_string()
            } else {
                d.protocol.clone()
            };
            let mut headers = vec!["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE"];
            let mut row = vec![group.to_string(), coord, strategy, d.state.clone()];
            if verbose {
                headers.extend(["GROUP-EPOCH", "TARGET-ASSIGNMENT-EPOCH"]);
                row.extend([
                    opt_text(d.epochs.map(|e| e.0)),
                    opt_text(d.epochs.map(|e| e.1)),
                ]);
            }
            headers.push("#MEMBERS");
            row.push(d.members.len().to_string());
            table::print(&headers, &[row]);
        }
        return Ok(());
    }
    if members {
        print_members(conn, group, &d, verbose);
        return Ok(());
    }
    let committed = admin
        .list_group_offsets(group, None)
        .await
        .map_err(|e| group_error(e, group))?;
    let mut owner: BTreeMap<Tp, (String, String, String)> = BTreeMap::new();
    for m in &d.members {
        for (t, ps) in &m.assignment.partitions {
            for p in ps {
                owner.insert(
                    (t.clone(), *p),
                    (
                        m.member_id.clone(),
                        m.client_host.clone(),
                        m.client_id.clone(),
                    ),
                );
            }
        }
    }
    let tps: BTreeSet<Tp> = committed
        .iter()
        .filter(|(_, c)| c.offset >= 0)
        .map(|(tp, _)| tp.clone())
        .chain(owner.keys().cloned())
        .collect();
    let tps: Vec<Tp> = tps.into_iter().collect();
    let ends = if tps.is_empty() {
        BTreeMap::new()
    } else {
        admin.list_offsets(&tps, OffsetQuery::Latest, 0).await?
    };
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for tp in &tps {
        let current = committed.get(tp).map(|c| c.offset).filter(|o| *o >= 0);
        let end = ends.get(tp).map(|l| l.offset);
        let lag = match (current, end) {
            (Some(c), Some(e)) => Some((e - c).max(0)),
            _ => None,
        };
        let (cid, host, client) = owner
            .get(tp)
            .cloned()
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        let epoch = committed
            .get(tp)
            .filter(|c| c.offset >= 0)
            .and_then(|c| c.leader_epoch);
        json_rows.push(json!({
            "group": group, "topic": tp.0, "partition": tp.1, "leader_epoch": epoch, "current_offset": current,
            "log_end_offset": end, "lag": lag, "consumer_id": cid, "host": host, "client_id": client,
        }));
        let mut row = vec![group.to_string(), tp.0.clone(), tp.1.to_string()];
        if verbose {
            row.push(opt_text(epoch));
        }
        row.extend([dash(current), dash(end), dash(lag), cid, host, client]);
        rows.push(row);
    }
    if conn.json() {
        print_json(&json!({"group": group, "state": d.state, "partitions": json_rows}));
        return Ok(());
    }
    if d.members.is_empty() {
        println!("\nConsumer group '{group}' has no active members.\n");
    } else {
        println!();
    }
    let mut headers = vec!["GROUP", "TOPIC", "PARTITION"];
    if verbose {
        headers.push("LEADER-EPOCH");
    }
    headers.extend([
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    table::print(&headers, &rows);
    Ok(())
}

fn parse_topic_spec(s: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    match s.split_once(':') {
        None => Ok((s.to_string(), None)),
        Some((t, ps)) => {
            let parts = ps
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .map_err(|_| anyhow::anyhow!("bad partition {p:?} in --topic {s}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((t.to_string(), Some(parts)))
        }
    }
}

async fn reset(conn: &ConnArgs, admin: &Admin, r: ResetArgs) -> anyhow::Result<()> {
    let group = r.group.get();
    let committed = admin
        .list_group_offsets(&group, None)
        .await
        .map_err(|e| group_error(e, &group))?;
    let mut tps: Vec<Tp> = Vec::new();
    if r.all_topics {
        tps.extend(committed.keys().cloned());
    }
    for spec in &r.topic {
        let (topic, parts) = parse_topic_spec(spec)?;
        let parts = match parts {
            Some(p) => p,
            None => admin
                .client()
                .topic(&topic, false)
                .await
                .map_err(|e| anyhow::Error::new(e).context(format!("topic {topic}")))?
                .partitions
                .iter()
                .map(|p| p.partition)
                .collect(),
        };
        tps.extend(parts.into_iter().map(|p| (topic.clone(), p)));
    }
    tps.sort();
    tps.dedup();
    if tps.is_empty() {
        anyhow::bail!("no partitions to reset");
    }
    let earliest = admin.list_offsets(&tps, OffsetQuery::Earliest, 0).await?;
    let latest = admin.list_offsets(&tps, OffsetQuery::Latest, 0).await?;
    let by_time = match &r.to_datetime {
        Some(s) => Some(
            admin
                .list_offsets(&tps, OffsetQuery::Timestamp(parse_iso8601_ms(s)?), 0)
                .await?,
        ),
        None => None,
    };
    let mut plan: Vec<(String, i32, i64)> = Vec::new();
    for tp in &tps {
        let lo = earliest.get(tp).map_or(0, |l| l.offset);
        let hi = latest.get(tp).map_or(0, |l| l.offset);
        let current = committed.get(tp).map(|c| c.offset).filter(|o| *o >= 0);
        let target = if r.to_earliest {
            lo
        } else if r.to_latest {
            hi
        } else if let Some(o) = r.to_offset {
            o
        } else if let Some(n) = r.shift_by {
            current.unwrap_or(hi).saturating_add(n)
        } else if let Some(found) = &by_time {
            match found.get(tp) {
                Some(l) if l.offset >= 0 => l.offset,
                _ => hi,
            }
        } else {
            current.unwrap_or(hi)
        };
        plan.push((tp.0.clone(), tp.1, target.clamp(lo, hi.max(lo))));
    }
    if r.execute {
        let d = admin
            .describe_group(&group)
            .await
            .map_err(|e| group_error(e, &group))?;
        if !d.members.is_empty() {
            anyhow::bail!(
                "Assignments can only be reset if the group '{group}' is inactive, but the current state is {}. Stop its consumers first.",
                d.state
            );
        }
        admin
            .alter_group_offsets(&group, &plan)
            .await
            .map_err(|e| group_error(e, &group))?;
    }
    if conn.json() {
        print_json(&json!({
            "group": group,
            "executed": r.execute,
            "offsets": plan.iter().map(|(t, p, o)| json!({"topic": t, "partition": p, "new_offset": o})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    if !r.execute {
        eprintln!("Dry run: nothing was changed; add --execute to apply this plan.");
    }
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|(t, p, o)| vec![group.clone(), t.clone(), p.to_string(), o.to_string()])
        .collect();
    println!();
    table::print(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_specs() {
        assert_eq!(parse_topic_spec("t").unwrap(), ("t".into(), None));
        assert_eq!(
            parse_topic_spec("t:0,2").unwrap(),
            ("t".into(), Some(vec![0, 2]))
        );
        assert!(parse_topic_spec("t:x").is_err());
    }
}
