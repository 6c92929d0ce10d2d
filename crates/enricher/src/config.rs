//! The enricher's configuration: the shared sections plus `[enricher]` and `[enrichment]`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use tributary_config::{
    KafkaSettings, TelemetrySettings, Tenants, TopicSettings, default_instance_id,
};
pub use tributary_enrichment::{EmailValidationSettings, EnrichmentSettings};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct EnricherConfig {
    #[serde(default)]
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub topics: TopicSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub enricher: EnricherSettings,
    #[serde(default)]
    pub enrichment: EnrichmentSettings,
    #[serde(default)]
    pub tenants: Tenants,
}

/// `[enricher]`: the service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnricherSettings {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub listen: SocketAddr,
    /// Consumer group on the raw topic.
    pub group_id: String,
    /// Static group membership id of this instance; default: the host name.
    /// A restarted enricher with the same id gets its partitions back at once.
    /// Two instances running at the same time need different ids; empty
    /// turns static membership off.
    pub instance_id: String,
    /// Events enriched concurrently. Events of one entity always go to the
    /// same lane, so they keep their order.
    pub lanes: usize,
    /// Events read but not yet acknowledged downstream, at most; reading
    /// pauses beyond it.
    pub max_in_flight: usize,
    /// How often completed offsets are committed, in milliseconds.
    pub commit_interval_ms: u64,
}

impl Default for EnricherSettings {
    fn default() -> Self {
        EnricherSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            group_id: "tributary-enricher".into(),
            instance_id: default_instance_id("enricher"),
            lanes: 4096,
            max_in_flight: 10_000,
            commit_interval_ms: 200,
        }
    }
}
