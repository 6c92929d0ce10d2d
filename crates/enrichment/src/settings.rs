//! `[enrichment]`: how API lookups and email validation behave, whatever the platform.

use serde::{Deserialize, Serialize};
use tributary_config::Secret;

use crate::oauth::TokenStoreSettings;

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
    /// After this many lookups in a row failed because the API did (5xx,
    /// timeouts, connection errors; not 429s or an exhausted request
    /// budget), calls to that API stop for `circuit_open_ms` and events are
    /// emitted `partial` at once.
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
    /// Where rotated OAuth refresh tokens are kept, encrypted.
    pub token_store: TokenStoreSettings,
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
            token_store: TokenStoreSettings::default(),
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
