//! Webhook sources: one module per platform behind [`WebhookSource`].
//!
//! A source knows how its platform authenticates deliveries, answers any
//! subscription handshake, checks a delivery before it is accepted
//! (prevalidation) and extracts the keys the pipeline needs (event id,
//! object, object id). The collector calls it for every request; later
//! stages use the same module to read the raw body.
//!
//! Adding a platform: write `src/<platform>.rs` implementing
//! [`WebhookSource`] with its tenant settings and tests, then add one line to
//! [`REGISTRY`].

pub mod checks;
pub mod hubspot;
pub mod pipedrive;

use std::collections::BTreeMap;

use serde::Serialize;
use tributary_config::Tenants;

/// The platforms the collector accepts, by the name used in
/// `/webhooks/{source}/{tenant}` and in `[tenants.<tenant>.<source>]`.
pub const REGISTRY: &[(&str, BuildSource)] = &[(pipedrive::NAME, pipedrive::build)];

/// Builds a source from every tenant's section for it.
pub type BuildSource = fn(
    tenants: Vec<(&str, &serde_json::Value)>,
) -> Result<Box<dyn WebhookSource>, SourceConfigError>;

/// What a source sees of an HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// Why a delivery was not authenticated. Both answer 401; the metric label differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials (or signature) at all.
    Missing,
    /// Credentials present but wrong or malformed.
    Invalid,
}

/// A reply to a subscription handshake, sent instead of accepting an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A broken rule: the field (dotted path) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub field: String,
    pub reason: String,
}

/// An oddity that does not justify rejecting the delivery, kept with the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

/// Why prevalidation refused a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The body is not JSON; the parser's message.
    MalformedJson(String),
    /// The body is JSON but breaks the platform's rules.
    Invalid(Vec<Violation>),
}

impl From<Vec<Violation>> for Refusal {
    fn from(violations: Vec<Violation>) -> Self {
        Refusal::Invalid(violations)
    }
}

/// What prevalidation learned about an acceptable delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prevalidated {
    /// De-duplication id, identical for every delivery of the same event.
    pub event_id: String,
    /// The platform's payload format version ("1", "2.0").
    pub payload_version: String,
    /// The changed object's kind ("deal", "person", ...).
    pub object: String,
    /// The changed object's id.
    pub object_id: String,
    /// The platform's action word, verbatim.
    pub action: String,
    /// Delivery attempt, 1 for the first.
    pub attempt: u32,
    /// The platform's event time in microseconds since the epoch.
    pub occurred_at_micros: u64,
    pub warnings: Vec<Warning>,
}

/// A webhook platform.
pub trait WebhookSource: Send + Sync {
    /// The name in URLs and configuration.
    fn name(&self) -> &'static str;

    /// Whether `tenant` has this source configured.
    fn has_tenant(&self, tenant: &str) -> bool;

    /// Checks the delivery's credentials or signature. Called only for
    /// configured tenants. Must compare secrets in constant time.
    fn authenticate(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure>;

    /// Answers a subscription handshake (challenge echo, intent to receive...).
    /// `None` means the request is an ordinary delivery.
    fn handshake(&self, _tenant: &str, _request: &WebhookRequest<'_>) -> Option<HandshakeReply> {
        None
    }

    /// Checks a body against the platform's rules, returning the extracted
    /// keys and any warnings, or why it is refused (every violation at once).
    fn prevalidate(&self, tenant: &str, body: &[u8]) -> Result<Prevalidated, Refusal>;

    /// Platform-specific request headers worth keeping with the event
    /// (lower-case names), beyond the generic ones the collector keeps.
    fn forwarded_headers(&self) -> &'static [&'static str] {
        &[]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceConfigError {
    #[error("[tenants.{tenant}.{source_name}]: {reason}")]
    Tenant {
        tenant: String,
        source_name: &'static str,
        reason: String,
    },
    #[error("[tenants.{tenant}.{source_name}]: unknown source; known sources: {known}")]
    UnknownSource {
        tenant: String,
        source_name: String,
        known: String,
    },
}

/// Every registered source, built from configuration.
pub struct Sources {
    by_name: BTreeMap<&'static str, Box<dyn WebhookSource>>,
}

impl Sources {
    /// Builds every registered source from `[tenants]`, failing on an unknown
    /// source name or an invalid tenant section.
    pub fn from_config(tenants: &Tenants) -> Result<Self, SourceConfigError> {
        for (tenant, source) in tenants.source_names() {
            if !REGISTRY.iter().any(|(name, _)| *name == source) {
                return Err(SourceConfigError::UnknownSource {
                    tenant: tenant.to_owned(),
                    source_name: source.to_owned(),
                    known: REGISTRY
                        .iter()
                        .map(|(name, _)| *name)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        let mut by_name = BTreeMap::new();
        for (name, build) in REGISTRY {
            by_name.insert(*name, build(tenants.for_source(name).collect())?);
        }
        Ok(Sources { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&dyn WebhookSource> {
        self.by_name.get(name).map(|source| &**source)
    }

    /// Configured (tenant, source) pairs, for the startup log.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_source_in_config_fails_boot_and_names_the_known_ones() {
        let mut tenants = Tenants::default();
        tenants.insert(
            "acme",
            "pipedriv",
            json!({"username": "u", "password": "p"}),
        );
        let err = Sources::from_config(&tenants)
            .err()
            .expect("unknown source");
        let text = err.to_string();
        assert!(
            text.contains("pipedriv") && text.contains("pipedrive"),
            "{text}"
        );
    }

    #[test]
    fn configured_tenants_are_known_to_their_source_only() {
        let mut tenants = Tenants::default();
        tenants.insert(
            "acme",
            "pipedrive",
            json!({"username": "u", "password": "p"}),
        );
        let sources = Sources::from_config(&tenants).expect("builds");
        let pipedrive = sources.get("pipedrive").expect("registered");
        assert!(pipedrive.has_tenant("acme"));
        assert!(!pipedrive.has_tenant("globex"));
        assert!(sources.get("hubspot").is_none());
    }
}
