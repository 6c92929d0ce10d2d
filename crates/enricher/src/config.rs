//! The enricher's configuration: the shared sections plus `[enricher]` and `[enrichment]`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use tributary_config::{
    KafkaSettings, Secret, TelemetrySettings, Tenants, TopicSettings, default_instance_id,
};

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
            lanes: 64,
            max_in_flight: 10_000,
            commit_interval_ms: 200,
        }
    }
}

/// `[enrichment]`: the API lookups.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrichmentSettings {
    /// Timeout of one API request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Attempts per lookup, the first included (429, 5xx, timeouts are retried).
    pub max_attempts: u32,
    /// Total time one lookup may take across its retries, in milliseconds;
    /// after it the event is emitted `partial`.
    pub retry_budget_ms: u64,
    /// First retry delay; doubles each attempt, with jitter, up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// After this many lookups in a row failed, calls to that API stop for
    /// `circuit_open_ms` and events are emitted `partial` at once.
    pub circuit_failures: u32,
    pub circuit_open_ms: u64,
    /// Lifetime of cached persons, organizations and per-person deal lists, in seconds.
    pub entity_ttl_seconds: u64,
    /// Lifetime of cached stages, pipelines, users and field definitions, in seconds.
    pub definitions_ttl_seconds: u64,
    /// Lifetime of a cached "not found", in seconds.
    pub not_found_ttl_seconds: u64,
    /// Entries per cache, at most.
    pub cache_max_entries: u64,
    pub email_validation: EmailValidationSettings,
}

impl Default for EnrichmentSettings {
    fn default() -> Self {
        EnrichmentSettings {
            request_timeout_ms: 5_000,
            max_attempts: 5,
            retry_budget_ms: 10_000,
            backoff_initial_ms: 200,
            backoff_max_ms: 5_000,
            circuit_failures: 5,
            circuit_open_ms: 5_000,
            entity_ttl_seconds: 300,
            definitions_ttl_seconds: 3_600,
            not_found_ttl_seconds: 30,
            cache_max_entries: 100_000,
            email_validation: EmailValidationSettings::default(),
        }
    }
}

/// `[enrichment.email_validation]`: a Hunter-style verifier. Without `url`
/// emails are not validated (and events are not `partial` for it).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailValidationSettings {
    /// e.g. `https://api.hunter.io/v2/email-verifier`; empty: no validation.
    pub url: String,
    #[serde(skip_serializing)]
    pub api_key: Option<Secret>,
    /// Requests per second to the verifier, at most.
    pub requests_per_second: u32,
    /// Lifetime of a cached verdict, in seconds.
    pub ttl_seconds: u64,
}

impl Default for EmailValidationSettings {
    fn default() -> Self {
        EmailValidationSettings {
            url: String::new(),
            api_key: None,
            requests_per_second: 10,
            ttl_seconds: 86_400,
        }
    }
}
