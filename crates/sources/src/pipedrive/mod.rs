//! Pipedrive: webhooks v1 and v2, its API, and its enriched event.
//!
//! - `webhook.rs`: what the collector does with a delivery (HTTP Basic
//!   authentication, prevalidation of both payload versions, the keys);
//! - `model.rs`: both payload versions read into one model;
//! - [`api`]: the API lookups that join context in (cached, within the
//!   account's request budget);
//! - [`enrich`]: a raw webhook in, the flat enriched event out;
//! - [`mapping`]: the flat enriched event into the canonical model;
//! - `tests.rs`.
//!
//! Tenant settings, `[tenants.<tenant>.pipedrive]` (see [`PipedriveTenant`]):
//! the Basic credentials the webhook sends (required), and for the enricher
//! the API address and token, the request budget, which custom fields hold
//! marketing attribution and company data, and the contact-data policy.

pub mod api;
pub mod enrich;
pub mod mapping;
mod model;
mod webhook;

use serde::Deserialize;
use serde_json::Value;
use tributary_config::Secret;

use crate::{Platform, TemplateRoute};

pub use enrich::{PipedriveEnricher, TenantEnrichment};
pub use model::{
    Action, Activity, CustomFields, Deal, EventMeta, ObjectId, Organization, ParseError, Person,
    PipedriveEvent, Snapshot, is_custom_field_key, normalize_time, parse, read_entity,
};
pub use tributary_enrichment::pii::{PiiAction, PiiPolicy};
pub use webhook::{
    PayloadVersion, Pipedrive, V1_ACTIONS, V1_OBJECTS, V2_ACTIONS, V2_ENTITIES, payload_version,
    prevalidate, v1_event_id, v2_timestamp_micros,
};

pub const NAME: &str = "pipedrive";

/// Pipedrive's entry in [`crate::REGISTRY`].
pub const PLATFORM: Platform = Platform {
    name: NAME,
    webhook: webhook::build,
    enricher: enrich::build,
    mapping: &mapping::PipedriveMapping,
    templates: &[TemplateRoute {
        objects: &["deal", "activity", "person", "organization"],
        template: "pipedrive-sales",
    }],
    // A stage, pipeline or user change refreshes the enricher's cached
    // definitions (`api::PipedriveApi::invalidate`); the deals that use
    // them carry the new values into the model.
    ignored_objects: &[
        "activityType",
        "deal_installment",
        "deal_product",
        "lead",
        "note",
        "pipeline",
        "product",
        "project",
        "stage",
        "task",
        "user",
    ],
    pull: None,
};

/// `[tenants.<tenant>.pipedrive]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipedriveTenant {
    /// Basic-auth user name the webhook sends.
    #[serde(deserialize_with = "tributary_config::lenient_string")]
    pub username: String,
    /// Basic-auth password the webhook sends.
    pub password: Secret,
    /// API address, e.g. `https://acme.pipedrive.com`. Without it the enricher
    /// adds nothing from the API and marks events `partial`.
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// API token, sent as the `x-api-token` header.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Burst budget: requests per rolling 2 seconds (Pipedrive: Lite 20,
    /// Growth 40, Premium 100, Ultimate 120 with an API token).
    #[serde(default = "default_requests_per_2s")]
    pub requests_per_2s: u32,
    /// Deal custom field (key hash) holding the marketing source; default:
    /// the deal's "Source channel".
    #[serde(default)]
    pub marketing_source_field: Option<String>,
    /// Deal custom field holding the campaign; default: the deal's "Source channel ID".
    #[serde(default)]
    pub marketing_campaign_field: Option<String>,
    /// Organization custom field holding the company size.
    #[serde(default)]
    pub company_size_field: Option<String>,
    /// Organization custom field holding the industry.
    #[serde(default)]
    pub industry_field: Option<String>,
    /// What to do with each contact field.
    #[serde(default)]
    pub pii: PiiPolicy,
    /// Salt for hashed contact fields; required when any field is `hash`.
    #[serde(default)]
    pub pii_salt: Option<Secret>,
    /// Send contacts' emails to the email verifier (`[enrichment.email_validation]`).
    /// A third party sees them, so it is each tenant's explicit choice,
    /// separate from how they are stored: off unless set.
    #[serde(default)]
    pub verify_emails: bool,
}

fn default_requests_per_2s() -> u32 {
    20
}

/// Checks what serde cannot: required values are not empty, and settings that
/// depend on each other are given together.
pub fn check_tenant(settings: &PipedriveTenant) -> Result<(), String> {
    if settings.username.is_empty() || settings.password.is_empty() {
        return Err("username and password must both be set: Pipedrive webhooks are only accepted with HTTP Basic credentials".into());
    }
    if settings.api_base_url.is_some() != settings.api_token.is_some() {
        return Err("api_base_url and api_token go together".into());
    }
    if settings.requests_per_2s == 0 {
        return Err("requests_per_2s must be at least 1".into());
    }
    if settings.pii.hashes_anything() && settings.pii_salt.as_ref().is_none_or(Secret::is_empty) {
        return Err("pii_salt must be set when a contact field is hashed".into());
    }
    Ok(())
}

/// Reads and checks one tenant's section.
pub fn tenant_settings(section: &Value) -> Result<PipedriveTenant, String> {
    let settings: PipedriveTenant =
        serde_json::from_value(section.clone()).map_err(|e| e.to_string())?;
    check_tenant(&settings)?;
    Ok(settings)
}

#[cfg(test)]
mod tests;
