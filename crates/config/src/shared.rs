//! Sections shared by every service: `[kafka]`, `[topics]`, `[telemetry]`, `[tenants]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[kafka]`: how to reach the broker and tune the clients.
#[derive(Clone, Deserialize, Serialize)]
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

/// Every setting; of the librdkafka properties, the values of those that
/// may hold a credential (`sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`...) are not shown.
impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let librdkafka: BTreeMap<&str, &str> = self
            .librdkafka
            .iter()
            .map(|(key, value)| {
                let shown = if may_hold_a_credential(key) {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("compression", &self.compression)
            .field("linger_ms", &self.linger_ms)
            .field("message_timeout_ms", &self.message_timeout_ms)
            .field("queue_max_messages", &self.queue_max_messages)
            .field("fetch_wait_max_ms", &self.fetch_wait_max_ms)
            .field("metadata_timeout_ms", &self.metadata_timeout_ms)
            .field("librdkafka", &librdkafka)
            .finish()
    }
}

/// Whether a librdkafka property may hold a credential: any password,
/// secret, key or token, and the JAAS and SASL configuration strings.
fn may_hold_a_credential(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "key",
        "token",
        "jaas",
        "sasl.oauthbearer.config",
    ]
    .iter()
    .any(|part| key.contains(part))
}

/// `[topics]`: the names of the pipeline's topics.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicSettings {
    pub raw: String,
    pub enriched: String,
    pub dead_letter: String,
    /// Raw events whose enrichment came out partial, waiting to be enriched
    /// again (written and read by the enricher only).
    pub retry: String,
}

impl TopicSettings {
    /// Every topic the pipeline uses.
    pub fn all(&self) -> [&String; 4] {
        [&self.raw, &self.enriched, &self.dead_letter, &self.retry]
    }
}

/// The consumer group that reads the retry topic for the enricher group
/// `enricher_group`: its own, so a waiting retry never holds up the raw topic.
pub fn enrichment_retry_group(enricher_group: &str) -> String {
    format!("{enricher_group}.retry")
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            raw: "tributary.raw".into(),
            enriched: "tributary.enriched".into(),
            dead_letter: "tributary.dead-letter".into(),
            retry: "tributary.enrichment-retry".into(),
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

/// `[tenants.<tenant>]`: per-tenant settings ([`TENANT_SETTINGS`]: the home
/// currency and its rates) and per-source sections,
/// `[tenants.<tenant>.<source>]`.
///
/// Source sections are kept untyped here: each source module owns the shape
/// of its own section and checks it when the service starts.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Tenants(BTreeMap<String, BTreeMap<String, serde_json::Value>>);

/// Each tenant's section names only: the sections hold its credentials.
impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(tenant, sections)| (tenant, sections.keys().collect::<Vec<_>>())),
            )
            .finish()
    }
}

/// Keys of `[tenants.<tenant>]` that are the tenant's own settings, not sources.
pub const TENANT_SETTINGS: &[&str] = &["home_currency", "currency_rates"];

/// A tenant's home currency and the rates that convert its other
/// currencies into it: `home_currency = "EUR"` and
/// `[tenants.<tenant>.currency_rates] USD = 0.92` (home units per unit).
#[derive(Debug, Clone, PartialEq)]
pub struct CurrencySettings {
    pub home: String,
    pub rates: BTreeMap<String, f64>,
}

/// An ISO 4217 code: three capital letters.
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

impl Tenants {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every configured tenant's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// A tenant's currency settings, if it has any; an error names the key
    /// and what is wrong with it.
    pub fn currency(&self, tenant: &str) -> Result<Option<CurrencySettings>, String> {
        let Some(settings) = self.0.get(tenant) else {
            return Ok(None);
        };
        let prefix = format!("[tenants.{tenant}]");
        let home = match settings.get("home_currency") {
            None => None,
            Some(serde_json::Value::String(code)) if is_currency_code(code) => Some(code.clone()),
            Some(other) => {
                return Err(format!(
                    "{prefix} home_currency: {other} is not an ISO 4217 code such as \"EUR\""
                ));
            }
        };
        let mut rates = BTreeMap::new();
        match settings.get("currency_rates") {
            None => {}
            Some(serde_json::Value::Object(table)) => {
                for (code, rate) in table {
                    if !is_currency_code(code) {
                        return Err(format!(
                            "{prefix} currency_rates: {code:?} is not an ISO 4217 code"
                        ));
                    }
                    // Environment overrides arrive as text.
                    let value = match rate {
                        serde_json::Value::Number(n) => n.as_f64(),
                        serde_json::Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    };
                    match value {
                        Some(value) if value.is_finite() && value > 0.0 => {
                            rates.insert(code.clone(), value);
                        }
                        _ => {
                            return Err(format!(
                                "{prefix} currency_rates.{code}: {rate} is not a positive number of {} per {code}",
                                home.as_deref().unwrap_or("home currency units")
                            ));
                        }
                    }
                }
            }
            Some(other) => {
                return Err(format!(
                    "{prefix} currency_rates: expected a table such as {{ USD = 0.92 }}, got {other}"
                ));
            }
        }
        match home {
            Some(home) => Ok(Some(CurrencySettings { home, rates })),
            None if rates.is_empty() => Ok(None),
            None => Err(format!(
                "{prefix} currency_rates needs home_currency: the currency the rates convert into"
            )),
        }
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
        self.0.iter().filter_map(move |(tenant, sources)| {
            if TENANT_SETTINGS.contains(&source) {
                return None;
            }
            Some((tenant.as_str(), sources.get(source)?))
        })
    }

    /// Every configured source name, across tenants (to catch unknown ones at boot).
    pub fn source_names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().flat_map(|(tenant, sources)| {
            sources
                .keys()
                .filter(|key| !TENANT_SETTINGS.contains(&key.as_str()))
                .map(move |s| (tenant.as_str(), s.as_str()))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tenants(value: serde_json::Value) -> Tenants {
        serde_json::from_value(value).expect("tenants")
    }

    #[test]
    fn currency_settings_are_checked_and_are_no_source() {
        let t = tenants(json!({"acme": {
            "home_currency": "EUR",
            "currency_rates": {"USD": 0.92, "BRL": "0.17"},
            "pipedrive": {"username": "u"}
        }}));
        let currency = t.currency("acme").expect("valid").expect("configured");
        assert_eq!(currency.home, "EUR");
        assert_eq!(currency.rates["USD"], 0.92);
        assert_eq!(currency.rates["BRL"], 0.17, "text from the environment");
        assert_eq!(
            t.source_names().collect::<Vec<_>>(),
            [("acme", "pipedrive")],
            "tenant settings are not sources"
        );
        assert_eq!(t.currency("globex"), Ok(None));

        for (bad, names) in [
            (json!({"home_currency": "euro"}), "home_currency"),
            (
                json!({"home_currency": "EUR", "currency_rates": {"usd": 1}}),
                "usd",
            ),
            (
                json!({"home_currency": "EUR", "currency_rates": {"USD": 0}}),
                "currency_rates.USD",
            ),
            (
                json!({"home_currency": "EUR", "currency_rates": {"USD": "x"}}),
                "currency_rates.USD",
            ),
            (
                json!({"currency_rates": {"USD": 1.1}}),
                "needs home_currency",
            ),
        ] {
            let err = tenants(json!({"acme": bad}))
                .currency("acme")
                .expect_err("refused");
            assert!(
                err.contains(names) && err.contains("[tenants.acme]"),
                "{err}"
            );
        }
    }
}
