//! HubSpot: app webhooks and the CRM API.

pub mod api;
pub mod enrich;
pub mod mapping;
pub mod signature;

use serde::Deserialize;
use serde_json::Value;
use tributary_config::Secret;
use tributary_enrichment::pii::PiiPolicy;

pub const NAME: &str = "hubspot";

/// The deal property read as the marketing source unless a tenant names another.
pub const DEFAULT_MARKETING_SOURCE_PROPERTY: &str = "hs_analytics_source";

/// `[tenants.<tenant>.hubspot]`.
#[derive(Debug, Clone, Deserialize)]
pub struct HubSpotTenant {
    pub portal_id: String,
    pub client_secret: Secret,
    #[serde(default)]
    pub access_token: Option<Secret>,
    #[serde(default = "default_api_base_url")]
    pub api_base_url: String,
    #[serde(default = "default_requests_per_10s")]
    pub requests_per_10s: u32,
    #[serde(default = "default_marketing_source_property")]
    pub marketing_source_property: String,
    #[serde(default)]
    pub pii: PiiPolicy,
    #[serde(default)]
    pub pii_salt: Option<Secret>,
}

fn default_api_base_url() -> String {
    "https://api.hubapi.com".into()
}

fn default_requests_per_10s() -> u32 {
    100
}

fn default_marketing_source_property() -> String {
    DEFAULT_MARKETING_SOURCE_PROPERTY.into()
}

pub fn tenant_settings(section: &Value) -> Result<HubSpotTenant, String> {
    HubSpotTenant::deserialize(section).map_err(|e| e.to_string())
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
