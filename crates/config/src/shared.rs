//! Sections shared by every service: `[kafka]`, `[topics]`, `[telemetry]`, `[tenants]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[kafka]`: how to reach the broker and tune the clients.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` bootstrap list.
    pub brokers: String,
    /// Compression codec for produced batches: none, gzip, snappy or lz4.
    pub compression: String,
    /// How long the producer waits to fill a batch, in milliseconds. Kept
    /// short: a webhook is answered only once its event is acknowledged, and
    /// under load batches fill while earlier requests are in flight anyway.
    pub linger_ms: u32,
    /// How long a produced message may wait for the broker's acknowledgement
    /// before it counts as failed, in milliseconds.
    pub message_timeout_ms: u32,
    /// Producer queue bound, in messages; beyond it new events are refused.
    pub queue_max_messages: u32,
    /// Longest a fetch waits on the broker for new data, in milliseconds.
    /// Low by default: the local broker sleeps for half of it on every fetch.
    pub fetch_wait_max_ms: u32,
    /// Timeout of metadata requests used by readiness checks, in milliseconds.
    pub metadata_timeout_ms: u32,
    /// Extra librdkafka properties (for example `security.protocol`), passed through verbatim.
    pub librdkafka: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            compression: "lz4".into(),
            linger_ms: 2,
            message_timeout_ms: 4_000,
            queue_max_messages: 100_000,
            fetch_wait_max_ms: 10,
            metadata_timeout_ms: 2_000,
            librdkafka: BTreeMap::new(),
        }
    }
}

/// `[topics]`: the names of the pipeline's topics.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicSettings {
    pub raw: String,
    pub enriched: String,
    pub dead_letter: String,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            raw: "tributary.raw".into(),
            enriched: "tributary.enriched".into(),
            dead_letter: "tributary.dead-letter".into(),
        }
    }
}

/// `[telemetry]`: logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `human` (default) or `json`.
    pub log_format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `info,collector=debug`.
    pub log_level: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            log_format: LogFormat::Human,
            log_level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// `[tenants.<tenant>.<source>]`: per-tenant, per-source settings.
///
/// Kept untyped here: each source module owns the shape of its own section
/// and checks it when the service starts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Tenants(BTreeMap<String, BTreeMap<String, serde_json::Value>>);

impl Tenants {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One tenant's section for one source, if configured.
    pub fn section(&self, tenant: &str, source: &str) -> Option<&serde_json::Value> {
        self.0.get(tenant)?.get(source)
    }

    /// Every tenant that configures `source`, with its section.
    pub fn for_source<'a>(
        &'a self,
        source: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a serde_json::Value)> + 'a {
        self.0
            .iter()
            .filter_map(move |(tenant, sources)| Some((tenant.as_str(), sources.get(source)?)))
    }

    /// Every configured source name, across tenants (to catch unknown ones at boot).
    pub fn source_names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().flat_map(|(tenant, sources)| {
            sources.keys().map(move |s| (tenant.as_str(), s.as_str()))
        })
    }

    /// Adds or replaces a tenant's section (tests and tools that build config in code).
    pub fn insert(&mut self, tenant: &str, source: &str, section: serde_json::Value) {
        self.0
            .entry(tenant.to_owned())
            .or_default()
            .insert(source.to_owned(), section);
    }
}

/// `<host name>-<service>`: stable across restarts of a service on one host
/// or container, distinct between hosts.
pub fn default_instance_id(service: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}-{service}")
}
