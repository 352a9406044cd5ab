//! `samsa features describe | upgrade | downgrade`: finalized feature levels,
//! with kafka-features.sh's flags and output (`metadata.version` levels are
//! shown by their release names, `3.3-IV3` ... `4.1-IV1`, as it shows them).

use anyhow::{bail, Context};
use samsa_client::admin::{FeatureMetadata, FeatureUpgradeType};
use samsa_client::Admin;
use serde_json::json;

use crate::common::{print_json, ConnArgs, Output};

#[derive(clap::Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: FeaturesCommand,
}

#[derive(clap::Subcommand)]
enum FeaturesCommand {
    /// Describe the supported and finalized features.
    Describe,
    /// Upgrade one or more feature levels.
    Upgrade(UpdateArgs),
    /// Downgrade one or more feature levels.
    Downgrade(DowngradeArgs),
}

#[derive(clap::Args)]
struct UpdateArgs {
    /// A feature and its new level: NAME=LEVEL (repeatable).
    #[arg(long = "feature", value_name = "NAME=LEVEL", required = true)]
    features: Vec<String>,
    /// Validate the change without making it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args)]
struct DowngradeArgs {
    #[command(flatten)]
    update: UpdateArgs,
    /// Allow a downgrade that may lose metadata.
    #[arg(long = "unsafe")]
    unsafe_: bool,
}

const METADATA_VERSION: &str = "metadata.version";

/// Kafka's MetadataVersion release names, by feature level, from 7.
const METADATA_VERSION_NAMES: &[&str] = &[
    "3.3-IV3", "3.4-IV0", "3.5-IV0", "3.5-IV1", "3.5-IV2", "3.6-IV0", "3.6-IV1", "3.6-IV2",
    "3.7-IV0", "3.7-IV1", "3.7-IV2", "3.7-IV3", "3.7-IV4", "3.8-IV0", "3.9-IV0", "4.0-IV0",
    "4.0-IV1", "4.0-IV2", "4.0-IV3", "4.1-IV0", "4.1-IV1",
];
const METADATA_VERSION_NAMES_FIRST_LEVEL: i16 = 7;

/// A level as kafka-features.sh prints it.
fn level_name(feature: &str, level: i16) -> String {
    if feature == METADATA_VERSION {
        let name = usize::try_from(level - METADATA_VERSION_NAMES_FIRST_LEVEL)
            .ok()
            .and_then(|i| METADATA_VERSION_NAMES.get(i));
        if let Some(name) = name {
            return (*name).to_string();
        }
    }
    level.to_string()
}

/// Runs `samsa features`.
pub async fn run(args: FeaturesArgs) -> anyhow::Result<()> {
    let admin = Admin::new(args.conn.connect().await?);
    let json = args.conn.output == Output::Json;
    let (update, upgrade_type, verb) = match args.command {
        FeaturesCommand::Describe => {
            let metadata = admin.describe_features().await?;
            if json {
                print_json(&describe_json(&metadata));
            } else {
                print!("{}", describe_text(&metadata));
            }
            return Ok(());
        }
        FeaturesCommand::Upgrade(u) => (u, FeatureUpgradeType::Upgrade, "upgrade"),
        FeaturesCommand::Downgrade(d) => (
            d.update,
            if d.unsafe_ {
                FeatureUpgradeType::UnsafeDowngrade
            } else {
                FeatureUpgradeType::SafeDowngrade
            },
            "downgrade",
        ),
    };
    let updates = update
        .features
        .iter()
        .map(|f| parse_feature(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let request: Vec<_> = updates
        .iter()
        .map(|(n, l)| (n.clone(), *l, upgrade_type))
        .collect();
    let outcome = admin.update_features(&request, update.dry_run).await;
    let mut failed = 0;
    for (name, level) in &updates {
        let shown = level_name(name, *level);
        match &outcome {
            Ok(()) if update.dry_run => println!("{name} can be {verb}d to {shown}."),
            Ok(()) => println!("{name} was {verb}d to {shown}."),
            Err(e) => {
                failed += 1;
                println!("Could not {verb} {name} to {shown}. {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} out of {} operation(s) failed.", updates.len());
    }
    Ok(())
}

/// `NAME=LEVEL`; a `metadata.version` level may also be a release name.
fn parse_feature(s: &str) -> anyhow::Result<(String, i16)> {
    let (name, level) = s
        .split_once('=')
        .with_context(|| format!("--feature {s}: expected NAME=LEVEL"))?;
    let name = name.trim();
    let level = level.trim();
    if name == METADATA_VERSION {
        if let Some(i) = METADATA_VERSION_NAMES.iter().position(|n| *n == level) {
            let i = i16::try_from(i).context("metadata.version level")?;
            return Ok((name.to_string(), METADATA_VERSION_NAMES_FIRST_LEVEL + i));
        }
    }
    let level: i16 = level
        .parse()
        .with_context(|| format!("--feature {s}: the level is not a number"))?;
    Ok((name.to_string(), level))
}

fn epoch_text(m: &FeatureMetadata) -> String {
    if m.finalized_epoch < 0 {
        "-".to_string()
    } else {
        m.finalized_epoch.to_string()
    }
}

/// kafka-features.sh's describe lines.
fn describe_text(m: &FeatureMetadata) -> String {
    let epoch = epoch_text(m);
    m.features
        .iter()
        .map(|f| {
            format!(
                "Feature: {}\tSupportedMinVersion: {}\tSupportedMaxVersion: {}\t\
                 FinalizedVersionLevel: {}\tEpoch: {epoch}\n",
                f.name,
                level_name(&f.name, f.supported_min),
                level_name(&f.name, f.supported_max),
                level_name(&f.name, f.finalized_level),
            )
        })
        .collect()
}

fn describe_json(m: &FeatureMetadata) -> serde_json::Value {
    json!(m
        .features
        .iter()
        .map(|f| json!({
            "feature": f.name,
            "supportedMinVersion": f.supported_min,
            "supportedMaxVersion": f.supported_max,
            "finalizedVersionLevel": f.finalized_level,
            "epoch": m.finalized_epoch,
        }))
        .collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use samsa_client::admin::FeatureInfo;

    use super::*;

    #[test]
    fn describe_prints_kafka_features_lines() {
        let m = FeatureMetadata {
            features: vec![
                FeatureInfo {
                    name: "group.version".into(),
                    supported_min: 0,
                    supported_max: 1,
                    finalized_level: 1,
                },
                FeatureInfo {
                    name: "metadata.version".into(),
                    supported_min: 7,
                    supported_max: 27,
                    finalized_level: 27,
                },
            ],
            finalized_epoch: 2,
        };
        assert_eq!(
            describe_text(&m),
            "Feature: group.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\t\
             FinalizedVersionLevel: 1\tEpoch: 2\n\
             Feature: metadata.version\tSupportedMinVersion: 3.3-IV3\t\
             SupportedMaxVersion: 4.1-IV1\tFinalizedVersionLevel: 4.1-IV1\tEpoch: 2\n"
        );
    }

    #[test]
    fn features_parse_as_name_equals_level() {
        assert_eq!(
            parse_feature("group.version=1").unwrap(),
            ("group.version".to_string(), 1)
        );
        assert_eq!(
            parse_feature("metadata.version=4.0-IV3").unwrap(),
            ("metadata.version".to_string(), 25)
        );
        assert!(parse_feature("group.version").is_err());
        assert!(parse_feature("group.version=x").is_err());
    }
}
