//! `tributary`: the operator's command line.
//!
//! Reads the same configuration as the services (`TRIBUTARY_CONFIG` or
//! `./tributary.toml`, plus `TRIBUTARY_*` overrides).

mod dlq;
mod migrate;
mod rates;
mod read;
mod replay;
mod report;
mod send;
mod status;
mod tail;
mod topics;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Deserialize;
use tributary_clickhouse::ClickHouseSettings;
use tributary_config::{KafkaSettings, Loader, Tenants, TopicSettings};

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
    /// Produce a range of a topic again, so the stage reading it processes it again.
    Replay(replay::ReplayArgs),
    /// List, show and redrive dead-letter records.
    Dlq(dlq::DlqArgs),
    /// Consumer lag per stage, dead-letter counts, last event per tenant.
    Status(status::StatusArgs),
    /// Write a tenant's sales-operations dashboard as a self-contained HTML page.
    Report(report::ReportArgs),
    /// List a tenant's currency rates, or load an operator's.
    Rates(rates::RatesArgs),
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
    #[serde(default)]
    enricher: EnricherSection,
    #[serde(default)]
    activator: ActivatorSection,
    /// For redriving deliveries the collector kept whole: they are split
    /// again by their source, as configured for their tenant.
    #[serde(default)]
    tenants: Tenants,
    /// The body limit, which sets the topics' `max.message.bytes`.
    #[serde(default)]
    collector: CollectorSection,
}

/// `[collector]`, as far as the CLI needs it.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct CollectorSection {
    max_body_bytes: usize,
    /// Where pull subscriptions keep their checkpoints, for `status`.
    checkpoint_dir: Option<std::path::PathBuf>,
}

impl Default for CollectorSection {
    fn default() -> Self {
        CollectorSection {
            max_body_bytes: tributary_collector::CollectorSettings::default().max_body_bytes,
            checkpoint_dir: None,
        }
    }
}

/// `[enricher]`, as far as the CLI needs it. Other keys are the enricher's
/// own, which it checks itself at start; the CLI ignores them.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct EnricherSection {
    group_id: String,
}

impl Default for EnricherSection {
    fn default() -> Self {
        EnricherSection {
            group_id: "tributary-enricher".into(),
        }
    }
}

/// `[activator]`, as far as the CLI needs it (see [`EnricherSection`]).
#[derive(Debug, Deserialize)]
#[serde(default)]
struct ActivatorSection {
    group_id: String,
}

impl Default for ActivatorSection {
    fn default() -> Self {
        ActivatorSection {
            group_id: "tributary-activator".into(),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        let mut config: CliConfig = Loader::from_env()?.extract()?;
        if matches!(
            cli.command,
            Command::Migrate(_) | Command::Report(_) | Command::Rates(_)
        ) {
            let (clickhouse, adapted) = tributary_clickhouse::adapted(&config.clickhouse).await;
            if adapted {
                eprintln!(
                    "note: this ClickHouse server cannot check row types (no RowBinaryWithNamesAndTypes): \
                     working without [clickhouse] validation; set validation = false to say so"
                );
            }
            config.clickhouse = clickhouse;
        }
        match cli.command {
            Command::Tail(args) => tail::run(&config.kafka, &config.topics, args).await,
            Command::CreateTopics(args) => {
                topics::run(
                    &config.kafka,
                    &config.topics,
                    config.collector.max_body_bytes,
                    args,
                )
                .await
            }
            Command::Migrate(args) => migrate::run(&config.clickhouse, args).await,
            Command::Report(args) => report::run(&config.clickhouse, args).await,
            Command::Rates(args) => rates::run(&config.clickhouse, args).await,
            Command::Replay(args) => replay::run(&config.kafka, &config.topics, args).await,
            Command::Dlq(args) => {
                dlq::run(&config.kafka, &config.topics, &config.tenants, args).await
            }
            Command::Status(args) => {
                let status = status::StatusConfig {
                    kafka: &config.kafka,
                    topics: &config.topics,
                    clickhouse: &config.clickhouse,
                    enricher_group: &config.enricher.group_id,
                    activator_group: &config.activator.group_id,
                    checkpoint_dir: config.collector.checkpoint_dir.as_deref(),
                };
                status::run(status, args).await
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn group_ids_default_as_the_services_do() {
        let config: CliConfig = Loader::from_toml_str("").extract().expect("defaults");
        assert_eq!(
            config.enricher.group_id,
            tributary_enricher::EnricherSettings::default().group_id
        );
        assert_eq!(
            config.activator.group_id,
            tributary_activator::ActivatorSettings::default().group_id
        );
    }

    #[test]
    fn group_ids_are_read_beside_the_services_own_keys() {
        let config: CliConfig = Loader::from_toml_str(
            "[enricher]\ngroup_id = \"e\"\nlanes = 8\n[activator]\ngroup_id = \"a\"\nbatch_max_rows = 10\n",
        )
        .extract()
        .expect("a full service section is accepted");
        assert_eq!(config.enricher.group_id, "e");
        assert_eq!(config.activator.group_id, "a");
    }

    #[test]
    fn replay_needs_a_range_and_refuses_mixed_ones() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["tributary", "replay"], args].concat());
        assert!(parse(&["--topic", "raw"]).is_err());
        assert!(parse(&["--topic", "raw", "--from", "0"]).is_ok());
        assert!(
            parse(&["--topic", "raw", "--start-offset", "3"]).is_err(),
            "needs --partition"
        );
        assert!(parse(&["--topic", "raw", "--partition", "1", "--start-offset", "3"]).is_ok());
        assert!(
            parse(&[
                "--topic",
                "raw",
                "--from",
                "0",
                "--partition",
                "1",
                "--start-offset",
                "3"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "--topic",
                "raw",
                "--to",
                "5",
                "--partition",
                "1",
                "--start-offset",
                "3"
            ])
            .is_err()
        );
        assert!(parse(&["--topic", "raw", "--partition", "1", "--end-offset", "3"]).is_err());
    }
}
