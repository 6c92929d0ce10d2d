//! The collector's configuration: the shared sections plus `[collector]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tributary_config::{KafkaSettings, TelemetrySettings, Tenants, TopicSettings};

/// Everything the collector reads from `tributary.toml` and `TRIBUTARY_*`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CollectorConfig {
    #[serde(default)]
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub topics: TopicSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub collector: CollectorSettings,
    #[serde(default)]
    pub tenants: Tenants,
}

/// `[collector]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorSettings {
    /// Address the HTTP server binds: the webhooks, and `/metrics`,
    /// `/healthz` and `/readyz` unless `admin_listen` is set.
    pub listen: SocketAddr,
    /// A separate address for `/metrics`, `/healthz` and `/readyz`, so they
    /// need not face the internet with the webhooks.
    pub admin_listen: Option<SocketAddr>,
    /// Largest accepted request body in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// `Retry-After` seconds sent with 503 when the broker cannot take events.
    pub retry_after_seconds: u32,
    /// On shutdown, how long to wait for queued events to be acknowledged.
    pub drain_timeout_seconds: u32,
    /// How long a request's body may take to arrive, in milliseconds;
    /// a slower one is answered `408` and its connection closed.
    pub body_read_timeout_ms: u64,
    /// How long a client may take to send a request's headers, and a
    /// kept-alive connection may sit idle before its next request, in
    /// milliseconds; then the connection is closed. A slow client cannot
    /// hold a connection open.
    pub header_read_timeout_ms: u64,
    /// Requests handled at once, at most; beyond it `503` with `Retry-After`,
    /// so a flood cannot hold the collector's memory.
    pub max_requests_in_flight: usize,
    /// Keep the client's address (`x-forwarded-for`, `forwarded`,
    /// `x-real-ip`) with each event. A client IP is personal data: off
    /// unless configured.
    pub keep_client_ip: bool,
    /// Where pull subscriptions (Salesforce Change Data Capture) keep their
    /// positions, one small file each; required when a tenant has one. On
    /// a volume that outlives the container: without it a restart starts
    /// each subscription anew.
    pub checkpoint_dir: Option<PathBuf>,
}

impl Default for CollectorSettings {
    fn default() -> Self {
        CollectorSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            max_body_bytes: 1024 * 1024,
            retry_after_seconds: 5,
            drain_timeout_seconds: 10,
            body_read_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            max_requests_in_flight: 1_024,
            checkpoint_dir: None,
            keep_client_ip: false,
        }
    }
}
