//! `tributary`: the operator's command line.
//!
//! Reads the same configuration as the services (`TRIBUTARY_CONFIG` or
//! `./tributary.toml`, plus `TRIBUTARY_*` overrides).

mod migrate;
mod tail;
mod topics;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Deserialize;
use tributary_clickhouse::ClickHouseSettings;
use tributary_config::{KafkaSettings, Loader, TopicSettings};

#[derive(Parser)]
#[command(name = "tributary", version, about = "Operate a Tributary pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print events from a topic, decoding raw-topic envelopes.
    Tail(tail::TailArgs),
    /// Create the pipeline's topics if they do not exist.
    CreateTopics(topics::CreateTopicsArgs),
    /// Apply pending ClickHouse migrations.
    Migrate(migrate::MigrateArgs),
}

/// The sections the CLI needs from the shared configuration.
#[derive(Debug, Default, Deserialize)]
struct CliConfig {
    #[serde(default)]
    kafka: KafkaSettings,
    #[serde(default)]
    topics: TopicSettings,
    #[serde(default)]
    clickhouse: ClickHouseSettings,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        let config: CliConfig = Loader::from_env()?.extract()?;
        match cli.command {
            Command::Tail(args) => tail::run(&config.kafka, &config.topics, args).await,
            Command::CreateTopics(args) => topics::run(&config.kafka, &config.topics, args).await,
            Command::Migrate(args) => migrate::run(&config.clickhouse, args).await,
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tributary: {err:#}");
            ExitCode::FAILURE
        }
    }
}
