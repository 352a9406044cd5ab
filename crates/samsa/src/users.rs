//! `samsa users create|delete|describe`: SCRAM users (KIP-554), and the
//! `samsa configs ... --entity-type users` form of kafka-configs.sh
//! (`--add-config 'SCRAM-SHA-256=[iterations=8192,password=alice-secret]'`,
//! `--delete-config SCRAM-SHA-256`, `describe`).
//!
//! The password is salted here (PBKDF2 with a fresh 32-byte salt) and only
//! the salt, iteration count and salted password are sent, as Kafka's tools
//! do; the broker keeps the keys derived from them.

use anyhow::{bail, Context};
use samsa_client::admin::{ScramUpsertion, ScramUser};
use samsa_client::Admin;
use samsa_metadata::scram::{ScramMechanism, SCRAM_ITERATIONS_MIN};
use samsa_security::sasl::scram::{new_salt, salted_password};
use serde_json::json;

use crate::common::{parse_kv, print_json, split_list, unbracket, ConnArgs};

#[derive(clap::Args)]
pub struct UsersArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(clap::Subcommand)]
enum UsersCommand {
    /// Create a SCRAM user, or set its password for a mechanism.
    Create {
        user: String,
        #[arg(long)]
        password: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; default both).
        #[arg(long = "mechanism", value_name = "MECHANISM")]
        mechanisms: Vec<String>,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = SCRAM_ITERATIONS_MIN)]
        iterations: i32,
    },
    /// Delete a user's SCRAM credentials (all of them unless --mechanism).
    Delete {
        user: String,
        #[arg(long = "mechanism", value_name = "MECHANISM")]
        mechanisms: Vec<String>,
    },
    /// List SCRAM users and their mechanisms (all users when none is named).
    Describe { users: Vec<String> },
}

fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::from_name(name).with_context(|| {
        format!("unknown SCRAM mechanism {name:?} (SCRAM-SHA-256 or SCRAM-SHA-512)")
    })
}

/// A credential for `user` with `password`, salted here.
fn upsertion(
    user: &str,
    m: ScramMechanism,
    password: &str,
    iterations: i32,
) -> anyhow::Result<ScramUpsertion> {
    let salt = new_salt().map_err(|e| anyhow::anyhow!("{e}"))?;
    let rounds = u32::try_from(iterations).context("iterations must be positive")?;
    Ok(ScramUpsertion {
        user: user.to_owned(),
        mechanism: m.wire(),
        iterations,
        salted_password: salted_password(m, password.as_bytes(), &salt, rounds),
        salt,
    })
}

pub async fn run(args: UsersArgs) -> anyhow::Result<()> {
    let conn = args.conn;
    let admin = Admin::new(conn.connect().await?);
    match args.command {
        UsersCommand::Create {
            user,
            password,
            mechanisms,
            iterations,
        } => {
            let ms = if mechanisms.is_empty() {
                ScramMechanism::ALL.to_vec()
            } else {
                mechanisms
                    .iter()
                    .map(|m| mechanism(m))
                    .collect::<anyhow::Result<_>>()?
            };
            let ups = ms
                .into_iter()
                .map(|m| upsertion(&user, m, &password, iterations))
                .collect::<anyhow::Result<Vec<_>>>()?;
            alter(&admin, &conn, &ups, &[]).await
        }
        UsersCommand::Delete { user, mechanisms } => {
            let ms = if mechanisms.is_empty() {
                let described = admin
                    .describe_user_scram_credentials(Some(std::slice::from_ref(&user)))
                    .await?;
                match described.into_iter().next() {
                    Some(Ok(u)) => u.credentials.iter().map(|(m, _)| *m).collect(),
                    Some(Err((_, e))) => {
                        return Err(anyhow::Error::new(e).context(format!("deleting user {user}")))
                    }
                    None => bail!("the broker did not describe user {user}"),
                }
            } else {
                mechanisms
                    .iter()
                    .map(|m| mechanism(m).map(ScramMechanism::wire))
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            let deletions: Vec<_> = ms.into_iter().map(|m| (user.clone(), m)).collect();
            alter(&admin, &conn, &[], &deletions).await
        }
        UsersCommand::Describe { users } => describe(&admin, &conn, &users).await,
    }
}

async fn alter(
    admin: &Admin,
    conn: &ConnArgs,
    upsertions: &[ScramUpsertion],
    deletions: &[(String, i8)],
) -> anyhow::Result<()> {
    let results = admin
        .alter_user_scram_credentials(upsertions, deletions)
        .await?;
    let mut failed = None;
    for (user, r) in results {
        match r {
            Ok(()) if conn.json() => print_json(&json!({"user": user, "altered": true})),
            Ok(()) => println!("Completed updating SCRAM credentials for user-principal '{user}'."),
            Err(e) => {
                let e = anyhow::Error::new(e).context(format!("altering user {user}"));
                failed.get_or_insert(e);
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

fn mechanism_name(wire: i8) -> String {
    ScramMechanism::from_wire(wire).map_or_else(|| format!("UNKNOWN({wire})"), |m| m.name().into())
}

/// Prints users as kafka-configs.sh `--describe --entity-type users` does.
pub async fn describe(admin: &Admin, conn: &ConnArgs, users: &[String]) -> anyhow::Result<()> {
    let named = (!users.is_empty()).then_some(users);
    let described = admin.describe_user_scram_credentials(named).await?;
    let mut found: Vec<ScramUser> = Vec::new();
    let mut failed = None;
    for d in described {
        match d {
            Ok(u) => found.push(u),
            Err((user, e)) => {
                failed.get_or_insert(
                    anyhow::Error::new(e).context(format!("describing user {user}")),
                );
            }
        }
    }
    if conn.json() {
        print_json(&json!(found
            .iter()
            .map(|u| json!({
                "user": u.user,
                "credentials": u.credentials.iter().map(|(m, i)| json!({
                    "mechanism": mechanism_name(*m), "iterations": i
                })).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>()));
    } else {
        for u in &found {
            let list: Vec<String> = u
                .credentials
                .iter()
                .map(|(m, i)| format!("{}=iterations={i}", mechanism_name(*m)))
                .collect();
            println!(
                "SCRAM credential configs for user-principal '{}' are {}",
                u.user,
                list.join(", ")
            );
        }
    }
    failed.map_or(Ok(()), Err)
}

/// `samsa configs alter --entity-type users --entity-name <user>` with
/// kafka-configs.sh's `SCRAM-SHA-256=[iterations=N,password=P]` items.
pub async fn alter_configs(
    admin: &Admin,
    conn: &ConnArgs,
    user: &str,
    add: &[String],
    delete: &[String],
) -> anyhow::Result<()> {
    let mut ups = Vec::new();
    for item in add.iter().flat_map(|s| split_list(s)) {
        let (k, v) = parse_kv(&item)?;
        let m = mechanism(&k)?;
        let mut password = None;
        let mut iterations = SCRAM_ITERATIONS_MIN;
        for (pk, pv) in unbracket(&v)
            .split(',')
            .map(parse_kv)
            .collect::<anyhow::Result<Vec<_>>>()?
        {
            match pk.as_str() {
                "password" => password = Some(pv),
                "iterations" => {
                    iterations = pv
                        .trim()
                        .parse()
                        .with_context(|| format!("iterations must be a number, not {pv:?}"))?
                }
                other => bail!("unknown SCRAM setting {other:?} (password, iterations)"),
            }
        }
        let password = password.with_context(|| format!("{k} needs a password=..."))?;
        ups.push(upsertion(user, m, &password, iterations)?);
    }
    let deletions = delete
        .iter()
        .flat_map(|s| split_list(s))
        .map(|k| mechanism(&k).map(|m| (user.to_owned(), m.wire())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if ups.is_empty() && deletions.is_empty() {
        bail!("nothing to change: give --add-config and/or --delete-config");
    }
    alter(admin, conn, &ups, &deletions).await
}
