//! HubSpot: app webhooks and workflow "Send a webhook" actions at the
//! collector, and the CRM API.
//!
//! - `webhook.rs`: what the collector does with a delivery (routing by
//!   portal, the v1/v2/v3 signatures or a workflow's secret, one event per
//!   element of a batch, malformed elements left out for the dead-letter topic);
//! - [`model`]: reading a webhook element and a workflow's record;
//! - [`signature`]: HubSpot's request signatures;
//! - [`api`]: the CRM API, read in batches;
//! - [`enrich`]: a webhook event in, the flat `hubspot-crm` event out;
//! - [`mapping`]: that event into the canonical model;
//! - `tests.rs`.
//!
//! Tenant settings, `[tenants.<tenant>.hubspot]` (see [`HubSpotTenant`]): the
//! portal the tenant is and the app's client secret (required), how HubSpot
//! reaches the collector (the signed URI), the legacy-signature policy and a
//! workflow secret; for the enricher the access token, API address, burst
//! limit and the deal property holding the marketing source.

pub mod api;
pub mod enrich;
pub mod mapping;
pub mod model;
pub mod signature;
mod webhook;

use serde::Deserialize;
use serde_json::Value;
use tributary_config::Secret;
use tributary_enrichment::pii::PiiPolicy;

use crate::{Platform, TemplateRoute};

pub use model::{
    ACTIONS, AppEvent, DeliveryBody, OBJECT_TYPE_IDS, OBJECTS, WorkflowRecord, object_of_type_id,
    read_app_event, read_body, read_workflow_record,
};
pub use webhook::{
    HubSpot, PAYLOAD_VERSION_APP, PAYLOAD_VERSION_WORKFLOW, WORKFLOW_OBJECT_PARAMETER,
    WORKFLOW_SECRET_HEADER, WORKFLOW_SECRET_PARAMETER, app_event_id, workflow_event_id,
};

pub const NAME: &str = "hubspot";

/// HubSpot's entry in [`crate::REGISTRY`].
pub const PLATFORM: Platform = Platform {
    name: NAME,
    webhook: webhook::build,
    enricher: enrich::build,
    mapping: &mapping::HubSpotMapping,
    templates: &[TemplateRoute {
        objects: &[
            "deal", "contact", "company", "call", "email", "meeting", "task", "note",
        ],
        template: "hubspot-crm",
    }],
    // Subscriptions name their objects; the collector refuses any other.
    ignored_objects: &[],
    pull: None,
};

/// The CRM API's address.
pub const DEFAULT_API_BASE_URL: &str = "https://api.hubapi.com";
/// A private app's burst limit on Free and Starter accounts.
pub const DEFAULT_REQUESTS_PER_10S: u32 = 100;
/// The deal property HubSpot fills with the original traffic source.
pub const DEFAULT_MARKETING_SOURCE_PROPERTY: &str = "hs_analytics_source";

/// `[tenants.<tenant>.hubspot]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSpotTenant {
    /// The HubSpot account (portal) this tenant is: `portalId` in webhooks.
    #[serde(deserialize_with = "tributary_config::lenient_string")]
    pub portal_id: String,
    /// The app's client secret: the key of `X-HubSpot-Signature(-v3)`.
    pub client_secret: Secret,
    /// Private-app or OAuth access token for the CRM API. Without it the
    /// enricher adds nothing from the API and marks events `partial`.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The CRM API's address.
    #[serde(default = "default_api_base_url")]
    pub api_base_url: String,
    /// The app's burst limit: requests per rolling 10 seconds (private apps:
    /// 100 on Free and Starter, 190 on Professional and Enterprise).
    #[serde(default = "default_requests_per_10s")]
    pub requests_per_10s: u32,
    /// How HubSpot reaches the collector, e.g. `https://hooks.example.com`:
    /// the v2 and v3 signatures cover the full URI HubSpot called, rebuilt as
    /// this address followed by the path and query the collector received.
    /// Without it, `https://` and the request's `Host` header.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The deal property holding the marketing source.
    #[serde(default = "default_marketing_source_property")]
    pub marketing_source_property: String,
    /// A secret a workflow's "Send a webhook" action sends as an API key
    /// (header `X-Tributary-Workflow-Secret` or query parameter `secret`),
    /// for workflows that do not sign their requests.
    #[serde(default)]
    pub workflow_secret: Option<Secret>,
    /// Whether the legacy v1 and v2 signatures are accepted (requests
    /// without `X-HubSpot-Signature-v3`).
    #[serde(default = "default_legacy_signatures")]
    pub legacy_signatures: bool,
    /// What the enricher does with contact data: `keep`, `hash` or `drop`
    /// per field (`[tenants.<tenant>.hubspot.pii]`).
    #[serde(default)]
    pub pii: PiiPolicy,
    /// Salt of hashed contact fields; required when any field is `hash`.
    #[serde(default)]
    pub pii_salt: Option<Secret>,
}

fn default_api_base_url() -> String {
    DEFAULT_API_BASE_URL.to_owned()
}

fn default_requests_per_10s() -> u32 {
    DEFAULT_REQUESTS_PER_10S
}

fn default_marketing_source_property() -> String {
    DEFAULT_MARKETING_SOURCE_PROPERTY.to_owned()
}

fn default_legacy_signatures() -> bool {
    true
}

impl HubSpotTenant {
    /// `public_url` without a trailing slash, ready to have a path appended.
    pub fn public_base(&self) -> Option<&str> {
        self.public_url
            .as_deref()
            .map(|url| url.trim_end_matches('/'))
    }
}

/// Checks what serde cannot: required values are not empty, ids and
/// addresses have their form, limits are positive.
pub fn check_tenant(settings: &HubSpotTenant) -> Result<(), String> {
    if !crate::mapped::is_digits(&settings.portal_id) {
        return Err(format!(
            "portal_id must be the HubSpot account id (digits), got {:?}",
            settings.portal_id
        ));
    }
    if settings.client_secret.is_empty() {
        return Err("client_secret must be set: HubSpot webhooks are only accepted with a signature made with the app's client secret".into());
    }
    if settings.access_token.as_ref().is_some_and(Secret::is_empty) {
        return Err("access_token must not be empty; leave it out to run without the API".into());
    }
    if settings
        .workflow_secret
        .as_ref()
        .is_some_and(Secret::is_empty)
    {
        return Err(
            "workflow_secret must not be empty; leave it out to refuse unsigned workflow requests"
                .into(),
        );
    }
    crate::mapped::check_http_url("api_base_url", &settings.api_base_url)?;
    if let Some(url) = &settings.public_url {
        crate::mapped::check_http_url("public_url", url)?;
    }
    if settings.requests_per_10s == 0 {
        return Err("requests_per_10s must be at least 1".into());
    }
    if settings.marketing_source_property.trim().is_empty() {
        return Err("marketing_source_property must name a deal property".into());
    }
    if settings.pii.hashes_anything() && settings.pii_salt.is_none() {
        return Err("pii_salt must be set when a contact field is hashed".into());
    }
    Ok(())
}

/// Reads and checks one tenant's section.
pub fn tenant_settings(section: &Value) -> Result<HubSpotTenant, String> {
    let settings: HubSpotTenant =
        serde_json::from_value(section.clone()).map_err(|e| e.to_string())?;
    check_tenant(&settings)?;
    Ok(settings)
}

/// An id's verbatim text: a JSON string, or an integer's digits (never a float).
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// HubSpot's booleans: `true` or the string `"true"` ("false" is false).
pub fn truthy(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true)))
        || matches!(value, Some(Value::String(s)) if s == "true")
}

#[cfg(test)]
mod tests;
