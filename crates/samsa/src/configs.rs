//! `samsa configs describe|alter`: topic, broker and group configs, with
//! kafka-configs.sh's `--add-config k=v,...` / `--delete-config k,...`.

use samsa_client::admin::{config_source, AlterOp, ConfigResource};
use samsa_client::Admin;
use serde_json::json;

use crate::common::{parse_kv, print_json, split_list, unbracket, ConnArgs};
use crate::table;

#[derive(clap::Args)]
pub struct ConfigsArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: ConfigsCommand,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("entity").required(true).args(["topic", "broker", "broker_defaults", "entity_type"])))]
struct Entity {
    /// A topic.
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    /// A broker by id.
    #[arg(long, value_name = "ID")]
    broker: Option<i32>,
    /// The cluster-wide broker defaults.
    #[arg(long)]
    broker_defaults: bool,
    /// kafka-configs.sh style: topics, brokers, groups (with --entity-name)
    /// or users (SCRAM credentials; describe: every user without --entity-name).
    #[arg(long, value_parser = ["topics", "brokers", "groups", "users"])]
    entity_type: Option<String>,
    /// kafka-configs.sh style entity name.
    #[arg(long, value_name = "NAME")]
    entity_name: Option<String>,
}

impl Entity {
    fn resource(&self) -> anyhow::Result<ConfigResource> {
        if let Some(t) = &self.topic {
            return Ok(ConfigResource::Topic(t.clone()));
        }
        if let Some(b) = self.broker {
            return Ok(ConfigResource::Broker(Some(b)));
        }
        if self.broker_defaults {
            return Ok(ConfigResource::Broker(None));
        }
        let name = self.entity_name.clone().unwrap_or_default();
        if name.is_empty() && self.entity_type.as_deref() != Some("brokers") {
            anyhow::bail!("--entity-type needs --entity-name");
        }
        match self.entity_type.as_deref() {
            Some("topics") => Ok(ConfigResource::Topic(name)),
            Some("groups") => Ok(ConfigResource::Group(name)),
            Some("brokers") if name.is_empty() => Ok(ConfigResource::Broker(None)),
            Some("brokers") => Ok(ConfigResource::Broker(Some(
                name.parse()
                    .map_err(|_| anyhow::anyhow!("broker ids are numbers, not {name:?}"))?,
            ))),
            _ => anyhow::bail!("name a --topic or a --broker"),
        }
    }

    /// `--entity-type users`: the named user, or `Some(None)` for all.
    fn users(&self) -> Option<Option<String>> {
        (self.entity_type.as_deref() == Some("users")).then(|| self.entity_name.clone())
    }
}

#[derive(clap::Subcommand)]
enum ConfigsCommand {
    /// Print every config of the entity with its value and source.
    Describe {
        #[command(flatten)]
        entity: Entity,
        /// Only configs that are not built-in defaults.
        #[arg(long)]
        overrides_only: bool,
    },
    /// Set or remove configs.
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// k=v[,k2=v2...] (list values in brackets: k=[a,b]).
        #[arg(long, value_name = "K=V,...")]
        add_config: Vec<String>,
        /// k[,k2...]
        #[arg(long, value_name = "K,...")]
        delete_config: Vec<String>,
    },
}

fn describe_name(r: &ConfigResource) -> String {
    match r {
        ConfigResource::Topic(t) => format!("topic {t}"),
        ConfigResource::Broker(Some(b)) => format!("broker {b}"),
        ConfigResource::Broker(None) => "the default broker".to_string(),
        ConfigResource::Group(g) => format!("group {g}"),
    }
}

pub async fn run(args: ConfigsArgs) -> anyhow::Result<()> {
    let conn = args.conn;
    let admin = Admin::new(conn.connect().await?);
    match args.command {
        ConfigsCommand::Describe {
            entity,
            overrides_only,
        } => {
            if let Some(user) = entity.users() {
                let users: Vec<String> = user.into_iter().collect();
                return crate::users::describe(&admin, &conn, &users).await;
            }
            let resource = entity.resource()?;
            let mut entries = admin.describe_configs(&resource).await.map_err(|e| {
                anyhow::Error::new(e).context(format!("describing {}", describe_name(&resource)))
            })?;
            if overrides_only {
                entries.retain(|e| !e.is_default());
            }
            let value = |e: &samsa_client::admin::ConfigEntry| {
                if e.sensitive {
                    "<sensitive>".to_string()
                } else {
                    e.value.clone().unwrap_or_else(|| "null".into())
                }
            };
            if conn.json() {
                print_json(&json!(entries
                    .iter()
                    .map(|e| json!({
                        "name": e.name,
                        "value": if e.sensitive { None } else { e.value.clone() },
                        "source": config_source::name(e.source),
                        "read_only": e.read_only,
                        "sensitive": e.sensitive,
                    }))
                    .collect::<Vec<_>>()));
            } else {
                println!("Configs for {}:", describe_name(&resource));
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            value(e),
                            config_source::name(e.source).to_string(),
                        ]
                    })
                    .collect();
                table::print(&["NAME", "VALUE", "SOURCE"], &rows);
            }
            Ok(())
        }
        ConfigsCommand::Alter {
            entity,
            add_config,
            delete_config,
        } => {
            if let Some(user) = entity.users() {
                let user =
                    user.ok_or_else(|| anyhow::anyhow!("--entity-type users needs --entity-name"))?;
                return crate::users::alter_configs(
                    &admin,
                    &conn,
                    &user,
                    &add_config,
                    &delete_config,
                )
                .await;
            }
            let resource = entity.resource()?;
            let mut ops = Vec::new();
            for item in add_config.iter().flat_map(|s| split_list(s)) {
                let (k, v) = parse_kv(&item)?;
                ops.push(AlterOp::Set(k, unbracket(&v)));
            }
            for k in delete_config.iter().flat_map(|s| split_list(s)) {
                ops.push(AlterOp::Delete(k));
            }
            if ops.is_empty() {
                anyhow::bail!("nothing to change: give --add-config and/or --delete-config");
            }
            admin.alter_configs(&resource, &ops).await.map_err(|e| {
                anyhow::Error::new(e).context(format!("altering {}", describe_name(&resource)))
            })?;
            if conn.json() {
                print_json(&json!({"altered": describe_name(&resource), "changes": ops.len()}));
            } else {
                println!(
                    "Completed updating config for {}.",
                    describe_name(&resource)
                );
            }
            Ok(())
        }
    }
}
