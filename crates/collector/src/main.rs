//! The `collector` binary. Configuration: `TRIBUTARY_CONFIG` / `tributary.toml`
//! plus `TRIBUTARY_*` environment variables (see the README).

use std::process::ExitCode;

use tributary_collector::{Collector, CollectorConfig};
use tributary_config::Loader;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "collector failed");
            eprintln!("collector: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let loader = Loader::from_env()?;
    let config: CollectorConfig = loader.extract()?;
    tributary_telemetry::init_logging(&config.telemetry);
    tracing::info!(config_file = ?loader.file(), brokers = %config.kafka.brokers, "starting collector");
    let collector = Collector::new(config).await?;
    let listener = collector.bind().await?;
    collector
        .serve(listener, tributary_telemetry::shutdown_signal())
        .await
}
