//! Zoho CRM: Notification API channels (`/actions/watch`) from the
//! collector to the canonical model.
//!
//! - `webhook.rs`: what the collector does with a notification (the
//!   channel's token, one event per record id);
//! - [`enrich`]: a notification's record in, the flat `zoho-crm` event out;
//! - [`mapping`]: that event into the canonical model;
//! - `tests.rs`.
//!
//! Tenant settings, `[tenants.<tenant>.zoho]` (see [`ZohoTenant`]).

pub mod api;
pub mod enrich;
pub mod mapping;
mod webhook;

use serde::Deserialize;
use serde_json::Value;
use tributary_config::Secret;
use tributary_enrichment::oauth::OAuthSettings;

use crate::{Platform, TemplateRoute};

pub use webhook::{Zoho, notification_event_id};

pub const NAME: &str = "zoho";

/// Zoho CRM's entry in [`crate::REGISTRY`].
pub const PLATFORM: Platform = Platform {
    name: NAME,
    webhook: webhook::build,
    enricher: enrich::build,
    mapping: &mapping::ZohoMapping,
    templates: &[TemplateRoute {
        objects: &["deal", "account", "contact"],
        template: "zoho-crm",
    }],
    // A channel watches the modules a tenant chose.
    ignored_objects: &[],
    pull: None,
};

/// `[tenants.<tenant>.zoho]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZohoTenant {
    /// The org (its `zgid`): the account of every record.
    #[serde(deserialize_with = "tributary_config::lenient_string")]
    pub org_id: String,
    /// The channels the tenant created with `/actions/watch`: their
    /// `channel_id`s. A notification of another channel is refused.
    pub channel_ids: Vec<Value>,
    /// The `token` the channels were created with (at most 50
    /// characters): Zoho echoes it in every notification.
    pub token: Secret,
    /// The org's home currency (ISO 4217): a single-currency org's records
    /// carry no `Currency`, so a deal inserted or read whole without one is
    /// in this currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// The org's data center for the CRM API, e.g. `https://www.zohoapis.com`
    /// (`.eu`, `.in`, `.com.au`, `.jp`, `.ca`...): with `access_token` or
    /// `oauth`, a notification without values has its record read.
    #[serde(default)]
    pub api_domain: Option<String>,
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// OAuth 2.0: the self client's refresh token (`token_url` on the org's
    /// accounts server, e.g. `https://accounts.zoho.com/oauth/v2/token`).
    #[serde(default)]
    pub oauth: Option<OAuthSettings>,
    /// CRM API requests per minute.
    #[serde(default = "default_requests_per_minute")]
    pub requests_per_minute: u32,
    /// The org's API credits Tributary may spend per rolling 24 hours (one
    /// per request). The default is the least an org has (the Free
    /// edition's 5,000); paid editions have 50,000 and more, shared with
    /// every other integration of the org.
    #[serde(default = "default_credits_per_day")]
    pub credits_per_day: u32,
    /// With the API: keep the channels from expiring (their expiry is moved
    /// a day ahead every few hours; needs the `ZohoCRM.notifications.UPDATE`
    /// scope).
    #[serde(default = "default_renew_channels")]
    pub renew_channels: bool,
}

fn default_renew_channels() -> bool {
    true
}

fn default_requests_per_minute() -> u32 {
    100
}

fn default_credits_per_day() -> u32 {
    5_000
}

impl ZohoTenant {
    /// The channel ids as text (configuration may hold numbers or strings).
    pub fn channels(&self) -> Vec<String> {
        self.channel_ids
            .iter()
            .filter_map(crate::checks::id_text)
            .collect()
    }
}

/// Reads and checks one tenant's section.
pub fn tenant_settings(section: &Value) -> Result<ZohoTenant, String> {
    let settings: ZohoTenant =
        serde_json::from_value(section.clone()).map_err(|e| e.to_string())?;
    if settings.org_id.is_empty() {
        return Err("org_id must be set: the Zoho org's id".into());
    }
    if settings.channels().len() != settings.channel_ids.len() || settings.channel_ids.is_empty() {
        return Err("channel_ids must list the notification channels' ids (digits)".into());
    }
    if settings.token.is_empty() || settings.token.expose().len() > 50 {
        return Err(
            "token must be set, at most 50 characters: the token the channels were created with"
                .into(),
        );
    }
    if let Some(currency) = &settings.currency
        && !tributary_config::is_currency_code(currency)
    {
        return Err(format!(
            "currency {currency:?} is not an ISO 4217 code such as \"USD\""
        ));
    }
    crate::mapped::check_api_access(
        "api_domain",
        settings.api_domain.as_ref(),
        settings.access_token.as_ref(),
        settings.oauth.as_ref(),
    )?;
    if settings.requests_per_minute == 0 {
        return Err("requests_per_minute must be at least 1".into());
    }
    if settings.credits_per_day == 0 {
        return Err("credits_per_day must be at least 1".into());
    }
    Ok(settings)
}

/// The canonical object of a Zoho module, for the modules the dashboards use.
pub fn object_of_module(module: &str) -> Option<&'static str> {
    match module {
        "Deals" | "Potentials" => Some("deal"),
        "Accounts" => Some("account"),
        "Contacts" => Some("contact"),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
