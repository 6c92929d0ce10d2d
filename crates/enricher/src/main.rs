//! The `enricher` binary. Configuration: `TRIBUTARY_CONFIG` / `tributary.toml`
//! plus `TRIBUTARY_*` environment variables (see the README).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tributary_config::Loader;
use tributary_enricher::{Enricher, EnricherConfig};

// Enrichment allocates many small, short-lived values; mimalloc handles
// that markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "enricher failed");
            eprintln!("enricher: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let loader = Loader::from_env()?;
    let config: EnricherConfig = loader.extract()?;
    tributary_telemetry::init_logging(&config.telemetry);
    tracing::info!(config_file = ?loader.file(), brokers = %config.kafka.brokers, "starting enricher");
    let listen = config.enricher.listen;
    let enricher = Arc::new(Enricher::new(config)?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let (stop, stopped) = watch::channel(false);
    let ops = axum::serve(listener, enricher.ops_router()).with_graceful_shutdown({
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
    tracing::info!(address = %listen, "enricher serving /metrics, /healthz, /readyz");
    let result = enricher.run(stopped).await;
    let _ = ops.await;
    result
}
