//! The `samsa` command: `samsa serve` runs a broker; the other subcommands are
//! the operator's CLI (topics, produce, consume, groups, configs, features,
//! leader-election, reassign-partitions, transactions, users, perf, completions), talking to any
//! Kafka-compatible broker through samsa-client.

mod common;
mod configs;
mod consume;
mod datetime;
mod features;
mod groups;
mod leader_election;
mod log_dirs;
mod metadata_quorum;
mod perf;
mod produce;
mod reassign;
mod serve;
mod table;
mod topics;
mod transactions;
mod users;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "samsa",
    version,
    about = "A Kafka-compatible event streaming broker, and a CLI for any Kafka cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker in the foreground (single node by default).
    Serve(serve::ServeArgs),
    /// Create, list, describe, alter and delete topics.
    Topics(topics::TopicsArgs),
    /// Write one record per line of standard input to a topic.
    Produce(produce::ProduceArgs),
    /// Print records of a topic.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    Groups(groups::GroupsArgs),
    /// Describe and alter topic and broker configs.
    Configs(configs::ConfigsArgs),
    /// Elect preferred (or unclean) partition leaders, like kafka-leader-election.sh.
    LeaderElection(leader_election::LeaderElectionArgs),
    /// Describe, upgrade and downgrade feature levels, like kafka-features.sh.
    Features(features::FeaturesArgs),
    /// Describe the brokers' log directories, like kafka-log-dirs.sh.
    LogDirs(log_dirs::LogDirsArgs),
    /// Describe the metadata quorum, like kafka-metadata-quorum.sh.
    MetadataQuorum(metadata_quorum::MetadataQuorumArgs),
    /// List, describe and abort transactions, like kafka-transactions.sh.
    Transactions(transactions::TransactionsArgs),
    /// Move partition replicas between brokers, like kafka-reassign-partitions.sh.
    ReassignPartitions(reassign::ReassignArgs),
    /// Create, delete and describe SCRAM users (kafka-configs.sh --entity-type users).
    Users(users::UsersArgs),
    /// Measure produce or consume throughput and latency.
    Perf(perf::PerfArgs),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, powershell or elvish
        shell: clap_complete::Shell,
    },
}

fn main() {
    let cli = Cli::parse();
    let filter = match &cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SAMSA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "samsa", &mut std::io::stdout());
            Ok(())
        }
        Command::Topics(args) => common::run(topics::run(args)),
        Command::Produce(args) => common::run(produce::run(args)),
        Command::Consume(args) => common::run(consume::run(args)),
        Command::Groups(args) => common::run(groups::run(args)),
        Command::Configs(args) => common::run(configs::run(args)),
        Command::LeaderElection(args) => common::run(leader_election::run(args)),
        Command::MetadataQuorum(args) => common::run(metadata_quorum::run(args)),
        Command::Transactions(args) => common::run(transactions::run(args)),
        Command::ReassignPartitions(args) => common::run(reassign::run(args)),
        Command::LogDirs(args) => common::run(log_dirs::run(args)),
        Command::Features(args) => common::run(features::run(args)),
        Command::Perf(args) => common::run(perf::run(args)),
        Command::Users(args) => common::run(users::run(args)),
    };
    if let Err(e) = result {
        common::report(&e);
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
