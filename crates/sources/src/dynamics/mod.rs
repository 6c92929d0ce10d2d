//! Dynamics 365 (Dataverse): webhook steps registered with the Plug-in
//! Registration Tool, from the collector to the canonical model.
//!
//! - [`context`]: reading a `RemoteExecutionContext` and its WCF values;
//! - `webhook.rs`: what the collector does with a delivery (the
//!   registration's key, the org check, one event per delivery);
//! - [`enrich`]: a context in, the flat `dynamics-crm` event out;
//! - [`mapping`]: that event into the canonical model;
//! - `tests.rs`.
//!
//! Tenant settings, `[tenants.<tenant>.dynamics]` (see [`DynamicsTenant`]).

pub mod api;
pub mod context;
pub mod enrich;
pub mod mapping;
mod webhook;

use serde::Deserialize;
use serde_json::Value;
use tributary_config::Secret;
use tributary_enrichment::oauth::OAuthSettings;

use crate::{Platform, TemplateRoute};

pub use webhook::{Dynamics, SIZE_EXCEEDED_HEADER, WEBHOOK_KEY_PARAMETER};

pub const NAME: &str = "dynamics";

/// Dynamics 365's entry in [`crate::REGISTRY`].
pub const PLATFORM: Platform = Platform {
    name: NAME,
    webhook: webhook::build,
    enricher: enrich::build,
    mapping: &mapping::DynamicsMapping,
    templates: &[TemplateRoute {
        objects: &["opportunity", "account", "contact", "systemuser"],
        template: "dynamics-crm",
    }],
    // A step is registered for the entities a tenant chose.
    ignored_objects: &[],
    pull: None,
};

/// How the webhook registration authenticates (its "Authentication" choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DynamicsAuth {
    /// "WebhookKey": the key travels as the `code` query parameter.
    #[default]
    WebhookKey,
    /// "HttpHeader": a header of the registration's choosing (`key_name`).
    Header,
    /// "HttpQueryString": a query parameter of its choosing (`key_name`).
    Query,
}

/// `[tenants.<tenant>.dynamics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicsTenant {
    /// The Dataverse organization (a GUID): `OrganizationId` in every
    /// context; another organization's deliveries are refused.
    pub organization_id: String,
    #[serde(default)]
    pub auth: DynamicsAuth,
    /// The header or query parameter carrying the secret (`header` and
    /// `query`); `webhook_key` always uses `code`.
    #[serde(default)]
    pub key_name: Option<String>,
    /// The registration's key or value, compared in constant time.
    pub secret: Secret,
    /// The organization's base currency (ISO 4217): Dataverse names a
    /// record's currency by reference, not by code.
    #[serde(default)]
    pub currency: Option<String>,
    /// The organization's address, e.g. `https://acme.crm.dynamics.com`:
    /// with `access_token` or `oauth`, a context stripped of its record
    /// (over 256 KB) has the record read from the Web API.
    #[serde(default)]
    pub web_api_url: Option<String>,
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// OAuth 2.0, usually the client-credentials grant of an application
    /// user (`token_url` `https://login.microsoftonline.com/<directory>/oauth2/v2.0/token`,
    /// `scope` `https://acme.crm.dynamics.com/.default`).
    #[serde(default)]
    pub oauth: Option<OAuthSettings>,
    /// Web API requests per 5 minutes (Dataverse's service protection
    /// allows 6,000 per user).
    #[serde(default = "default_requests_per_5min")]
    pub requests_per_5min: u32,
}

fn default_requests_per_5min() -> u32 {
    6_000
}

impl DynamicsTenant {
    /// Where the secret is looked for: (in a header, its name).
    pub fn key_location(&self) -> (bool, String) {
        match self.auth {
            DynamicsAuth::WebhookKey => (false, WEBHOOK_KEY_PARAMETER.to_owned()),
            DynamicsAuth::Header => (
                true,
                self.key_name
                    .clone()
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
            ),
            DynamicsAuth::Query => (false, self.key_name.clone().unwrap_or_default()),
        }
    }
}

/// Reads and checks one tenant's section; the organization id comes back in
/// lower case.
pub fn tenant_settings(section: &Value) -> Result<DynamicsTenant, String> {
    let mut settings: DynamicsTenant =
        serde_json::from_value(section.clone()).map_err(|e| e.to_string())?;
    settings.organization_id = context::guid(&settings.organization_id).ok_or_else(|| {
        format!(
            "organization_id {:?} is not a GUID (the Dataverse organization's id)",
            settings.organization_id
        )
    })?;
    if settings.secret.is_empty() {
        return Err("secret must be set: the webhook registration's key or header value".into());
    }
    match settings.auth {
        DynamicsAuth::WebhookKey if settings.key_name.is_some() => {
            return Err("key_name goes with auth = \"header\" or \"query\": a webhook key is always the code parameter".into());
        }
        DynamicsAuth::Header | DynamicsAuth::Query
            if settings.key_name.as_deref().is_none_or(str::is_empty) =>
        {
            return Err(
                "key_name must name the header or query parameter the registration sends".into(),
            );
        }
        _ => {}
    }
    if let Some(currency) = &settings.currency
        && !tributary_config::is_currency_code(currency)
    {
        return Err(format!(
            "currency {currency:?} is not an ISO 4217 code such as \"USD\""
        ));
    }
    crate::mapped::check_api_access(
        "web_api_url",
        settings.web_api_url.as_ref(),
        settings.access_token.as_ref(),
        settings.oauth.as_ref(),
    )?;
    if settings.requests_per_5min == 0 {
        return Err("requests_per_5min must be at least 1".into());
    }
    Ok(settings)
}

#[cfg(test)]
mod tests;
