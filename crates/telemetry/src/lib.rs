//! Telemetry shared by the services: structured logs, Prometheus metrics and
//! the operational endpoints (`/metrics`, `/healthz`, `/readyz`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tributary_config::{LogFormat, TelemetrySettings};

/// Installs the global `tracing` subscriber. Safe to call more than once
/// (later calls are ignored), so tests can start several services in one process.
pub fn init_logging(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|err| {
        eprintln!(
            "invalid telemetry.log_level {:?} ({err}); using \"info\"",
            settings.log_level
        );
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _already_installed = match settings.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Latency buckets (seconds) for produce and request histograms: fine-grained
/// below 50 ms, where an acknowledgement should land.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (only possible in tests that
                // install their own); render an empty, private registry.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// A readiness check: resolves to `Ok(())` when the service can do its work,
/// or to the reason it cannot.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

#[derive(Clone)]
struct OpsState {
    metrics: PrometheusHandle,
    readiness: ReadinessCheck,
}

/// `GET /metrics` (Prometheus text), `GET /healthz` (process alive) and
/// `GET /readyz` (dependencies reachable), to merge into a service's router.
pub fn ops_router<S: Clone + Send + Sync + 'static>(readiness: ReadinessCheck) -> Router<S> {
    let state = OpsState {
        metrics: metrics_handle(),
        readiness,
    };
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state)
}

async fn render_metrics(State(state): State<OpsState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn ready(State(state): State<OpsState>) -> Response {
    match (state.readiness)().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "ready": false, "reason": reason })),
        )
            .into_response(),
    }
}

/// Resolves on SIGTERM or Ctrl-C: the signal to stop accepting work and drain.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupt received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
