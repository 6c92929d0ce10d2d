//! The `activator` binary. Configuration: `TRIBUTARY_CONFIG` / `tributary.toml`
//! plus `TRIBUTARY_*` environment variables (see the README).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tributary_activator::{Activator, ActivatorConfig};
use tributary_config::Loader;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "activator failed");
            eprintln!("activator: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let loader = Loader::from_env()?;
    let config: ActivatorConfig = loader.extract()?;
    tributary_telemetry::init_logging(&config.telemetry);
    tracing::info!(config_file = ?loader.file(), brokers = %config.kafka.brokers, clickhouse = %config.clickhouse.url, "starting activator");
    let listen = config.activator.listen;
    let activator = Arc::new(Activator::new(config)?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let (stop, stopped) = watch::channel(false);
    let ops = axum::serve(listener, activator.ops_router()).with_graceful_shutdown({
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.changed().await;
        }
    });
    let ops = tokio::spawn(async move { ops.await });
    tokio::spawn(async move {
        tributary_telemetry::shutdown_signal().await;
        let _ = stop.send(true);
    });
    tracing::info!(address = %listen, "activator serving /metrics, /healthz, /readyz");
    let result = activator.run(stopped).await;
    let _ = ops.await;
    result
}
