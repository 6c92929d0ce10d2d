//! Freshsales (Freshworks CRM): workflow webhooks from the collector to the
//! canonical model.
//!
//! A Freshsales workflow's "Trigger webhook" action sends whatever body its
//! author writes, with no signature; Tributary takes from it only which
//! record changed and reads the record itself through the API, so any body
//! naming the record works and every event carries the record as Freshsales
//! has it.
//!
//! - `webhook.rs`: what the collector does with a delivery (the tenant's
//!   secret header, the record named by the body);
//! - [`api`]: the Freshsales API (`Authorization: Token token=...`);
//! - [`enrich`]: the record read whole, the flat `freshsales-crm` event out;
//! - [`mapping`]: that event into the canonical model;
//! - `tests.rs`.
//!
//! Tenant settings, `[tenants.<tenant>.freshsales]` (see [`FreshsalesTenant`]).

pub mod api;
pub mod enrich;
pub mod mapping;
mod webhook;

use serde::Deserialize;
use tributary_config::Secret;

use crate::{Platform, TemplateRoute};

pub use webhook::{Freshsales, record_named_by};

pub const NAME: &str = "freshsales";

/// Freshsales' entry in [`crate::REGISTRY`].
pub const PLATFORM: Platform = Platform {
    name: NAME,
    webhook: webhook::build,
    enricher: enrich::build,
    mapping: &mapping::FreshsalesMapping,
    templates: &[TemplateRoute {
        objects: &["deal", "sales_account", "contact", "sales_activity"],
        template: "freshsales-crm",
    }],
    // A workflow fires for the records its author chose.
    ignored_objects: &[],
    pull: None,
};

/// The header a workflow sends the tenant's secret in, unless configured.
pub const DEFAULT_SECRET_HEADER: &str = "x-tributary-secret";

/// `[tenants.<tenant>.freshsales]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshsalesTenant {
    /// The secret the workflow's webhook sends in `secret_header` (a custom
    /// header), or as the password of its Basic authentication.
    pub secret: Secret,
    #[serde(default = "default_secret_header")]
    pub secret_header: String,
    /// The account's API address: `https://<bundle alias>.myfreshworks.com/crm/sales`
    /// (accounts from before Freshworks CRM: `https://<domain>.freshsales.io`).
    pub api_url: String,
    /// The API key (Profile settings, API settings).
    pub api_key: Secret,
    /// The account's base currency (ISO 4217), for deals the API gives no
    /// currency for.
    #[serde(default)]
    pub currency: Option<String>,
    /// API requests per hour (Freshsales allows 1,000 per account on most plans).
    #[serde(default = "default_requests_per_hour")]
    pub requests_per_hour: u32,
}

fn default_secret_header() -> String {
    DEFAULT_SECRET_HEADER.to_owned()
}

fn default_requests_per_hour() -> u32 {
    1_000
}

impl FreshsalesTenant {
    /// The account the records belong to: the API's host.
    pub fn account(&self) -> &str {
        let rest = self
            .api_url
            .strip_prefix("https://")
            .or_else(|| self.api_url.strip_prefix("http://"))
            .unwrap_or(&self.api_url);
        rest.split('/').next().unwrap_or(rest)
    }
}

/// Reads and checks one tenant's section.
pub fn tenant_settings(section: &serde_json::Value) -> Result<FreshsalesTenant, String> {
    let mut settings: FreshsalesTenant =
        serde_json::from_value(section.clone()).map_err(|e| e.to_string())?;
    if settings.secret.expose().len() < 16 {
        return Err(
            "secret must be at least 16 characters: the workflow's webhook sends it in secret_header"
                .into(),
        );
    }
    settings.secret_header = settings.secret_header.trim().to_ascii_lowercase();
    if http::HeaderName::from_bytes(settings.secret_header.as_bytes()).is_err()
        || settings.secret_header == "authorization"
    {
        return Err(format!(
            "secret_header {:?} is not a custom header name",
            settings.secret_header
        ));
    }
    crate::mapped::check_http_url("api_url", &settings.api_url)?;
    if settings.api_key.is_empty() {
        return Err("api_key must be set: every event is read through the API".into());
    }
    if let Some(currency) = &settings.currency
        && !tributary_config::is_currency_code(currency)
    {
        return Err(format!(
            "currency {currency:?} is not an ISO 4217 code such as \"USD\""
        ));
    }
    if settings.requests_per_hour == 0 {
        return Err("requests_per_hour must be at least 1".into());
    }
    Ok(settings)
}

/// The records Tributary reads, by the name a body gives them: the
/// canonical object and the API's collection. A sales activity comes first:
/// its workflow's body may name the deal it is about too.
pub const OBJECTS: &[(&str, &str, &str)] = &[
    ("sales_activity", "sales_activity", "sales_activities"),
    ("deal", "deal", "deals"),
    ("contact", "contact", "contacts"),
    ("sales_account", "sales_account", "sales_accounts"),
    ("account", "sales_account", "sales_accounts"),
];

/// The API collection of an event's object.
pub fn collection_of(object: &str) -> Option<&'static str> {
    OBJECTS
        .iter()
        .find(|(_, canonical, _)| *canonical == object)
        .map(|(_, _, collection)| *collection)
}

#[cfg(test)]
mod tests;
