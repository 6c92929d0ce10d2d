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
    /// Enrich partial events again later (through the retry topic) when a
    /// lookup failed for a reason that may pass: the API down or over budget.
    pub retry_partial: bool,
    /// Delay before the first re-enrichment, in milliseconds; doubles with
    /// each attempt up to `partial_retry_max_ms`.
    pub partial_retry_initial_ms: u64,
    pub partial_retry_max_ms: u64,
    /// Re-enrichments before an event that is still partial goes to the
    /// dead-letter topic (`enrichment_incomplete`) for a person to look at.
    pub partial_retry_attempts: u32,
}

impl EnricherSettings {
    /// The retry topic's consumer group.
    pub fn retry_group_id(&self) -> String {
        tributary_config::enrichment_retry_group(&self.group_id)
    }

    /// How long the `attempt`-th re-enrichment waits (1 for the first).
    pub fn partial_retry_delay(&self, attempt: u32) -> std::time::Duration {
        let doubled = self
            .partial_retry_initial_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(32));
        std::time::Duration::from_millis(doubled.min(self.partial_retry_max_ms))
    }
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
            retry_partial: true,
            partial_retry_initial_ms: 10_000,
            partial_retry_max_ms: 300_000,
            partial_retry_attempts: 15,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_retries_double_from_the_first_delay_up_to_the_cap() {
        let settings = EnricherSettings::default();
        let delays: Vec<u64> = (1..=7)
            .map(|attempt| settings.partial_retry_delay(attempt).as_secs())
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(settings.partial_retry_delay(200).as_secs(), 300);
        assert_eq!(settings.retry_group_id(), "tributary-enricher.retry");
    }
}
