//! Enrichment machinery every platform shares: calling an API within its
//! rate limits with retries and a circuit breaker ([`api_client`]), the flat
//! event under construction ([`flatten`]) and its custom fields
//! ([`custom_fields`]), the contact-data policy ([`pii`]),
//! email validation ([`email_validation`]), OAuth 2.0 access tokens and the
//! store of rotated refresh tokens ([`oauth`]), the `[enrichment]` settings and
//! the metrics of this work. A platform's own lookups and its join into a flat
//! event live in its folder of `tributary-sources`.

pub mod api_client;
pub mod custom_fields;
pub mod email_validation;
pub mod flatten;
pub mod internal_events;
pub mod oauth;
pub mod pii;
mod settings;

pub use settings::{EmailValidationSettings, EnrichmentSettings};
