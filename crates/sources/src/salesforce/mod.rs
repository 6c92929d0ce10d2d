//! Salesforce: Outbound Messages (a workflow rule's or flow's SOAP
//! notifications) from the collector to the canonical model.
//!
//! - [`outbound`]: reading a message and writing the acknowledgement and faults;
//! - [`api`]: the REST API (stage definitions, owners, records a message lacks);
//! - `webhook.rs`: what the collector does with a message (the endpoint's
//!   secret, the org check, one event per notification);
//! - [`enrich`]: a notification in, the flat `salesforce-crm` event out;
//! - [`mapping`]: that event into the canonical model;
//! - `tests.rs`.
//!
//! Tenant settings, `[tenants.<tenant>.salesforce]` (see [`SalesforceTenant`]):
//! the org the tenant is, the secret its Outbound Message endpoint URL
//! carries, the org's currency when it has only one, and optionally the
//! REST API's address and token.

pub mod api;
pub mod cdc;
pub mod enrich;
pub mod mapping;
pub mod outbound;
mod webhook;

use serde::Deserialize;
use serde_json::Value;
use tributary_config::Secret;
use tributary_enrichment::oauth::OAuthSettings;

use crate::{Platform, TemplateRoute};

pub use webhook::{ENDPOINT_SECRET_PARAMETER, PAYLOAD_VERSION_OUTBOUND, Salesforce};

pub const NAME: &str = "salesforce";

/// Salesforce's entry in [`crate::REGISTRY`].
pub const PLATFORM: Platform = Platform {
    name: NAME,
    webhook: webhook::build,
    enricher: enrich::build,
    mapping: &mapping::SalesforceMapping,
    templates: &[TemplateRoute {
        objects: &["opportunity", "account", "contact", "user", "task", "event"],
        template: "salesforce-crm",
    }],
    // An Outbound Message is defined for the objects a tenant chose.
    ignored_objects: &[],
    pull: Some(cdc::build),
};

/// `[tenants.<tenant>.salesforce]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceTenant {
    /// The org this tenant is (15 or 18 characters; kept in the 18-character
    /// form): messages naming another org are refused.
    pub organization_id: String,
    /// The value of the `secret` query parameter in the endpoint URL the
    /// Outbound Message is configured with. Salesforce does not sign its
    /// messages, so this secret and the org are what authenticate them.
    pub endpoint_secret: Secret,
    /// The org's currency (ISO 4217) for amounts of records that carry no
    /// `CurrencyIsoCode`: every record of a single-currency org.
    #[serde(default)]
    pub currency: Option<String>,
    /// The org's address for the REST API, e.g.
    /// `https://acme.my.salesforce.com`. With `access_token`, the enricher
    /// reads stage definitions, owners, and fields a message lacks; without
    /// them events carry what the messages carry.
    #[serde(default)]
    pub instance_url: Option<String>,
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// OAuth 2.0 instead of a fixed `access_token`
    /// (`[tenants.<tenant>.salesforce.oauth]`): a connected app's JWT bearer
    /// grant or a refresh token.
    #[serde(default)]
    pub oauth: Option<OAuthSettings>,
    /// Change Data Capture through the Pub/Sub API, e.g.
    /// `https://api.pubsub.salesforce.com:7443`: the collector subscribes to
    /// `change_events` (needs `instance_url` and a token or the JWT bearer grant).
    #[serde(default)]
    pub pubsub_url: Option<String>,
    /// The channels followed, e.g. `["/data/OpportunityChangeEvent"]`.
    #[serde(default = "default_change_events")]
    pub change_events: Vec<String>,
    /// Where a subscription without a checkpoint starts: `latest` or `earliest`.
    #[serde(default)]
    pub change_events_start: cdc::Start,
    /// The REST API version, e.g. `62.0`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Requests per rolling 10 seconds Tributary sends the org.
    #[serde(default = "default_requests_per_10s")]
    pub requests_per_10s: u32,
    /// The share of the org's 24-hour API allocation Tributary may use
    /// (read from `Sforce-Limit-Info`); above it lookups pause.
    #[serde(default = "default_api_allocation_share")]
    pub api_allocation_share: f64,
}

/// The REST API version used unless a tenant says otherwise.
pub const DEFAULT_API_VERSION: &str = "62.0";

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_owned()
}

fn default_requests_per_10s() -> u32 {
    100
}

fn default_change_events() -> Vec<String> {
    vec!["/data/OpportunityChangeEvent".into()]
}

fn default_api_allocation_share() -> f64 {
    0.5
}

/// Reads and checks one tenant's section; the org id comes back in its
/// 18-character form.
pub fn tenant_settings(section: &Value) -> Result<SalesforceTenant, String> {
    let mut settings: SalesforceTenant =
        serde_json::from_value(section.clone()).map_err(|e| e.to_string())?;
    settings.organization_id = id_18(&settings.organization_id).ok_or_else(|| {
        format!(
            "organization_id {:?} is not a Salesforce org id (15 or 18 letters and digits, starting 00D)",
            settings.organization_id
        )
    })?;
    if !settings.organization_id.starts_with("00D") {
        return Err(format!(
            "organization_id {:?} is not an org id: org ids start with 00D",
            settings.organization_id
        ));
    }
    if let Some(currency) = &settings.currency
        && !tributary_config::is_currency_code(currency)
    {
        return Err(format!(
            "currency {currency:?} is not an ISO 4217 code such as \"USD\""
        ));
    }
    check_api_settings(&mut settings)?;
    if settings.endpoint_secret.is_empty() {
        return Err("endpoint_secret must be set: Salesforce does not sign Outbound Messages, so the endpoint URL carries a secret (?secret=...)".into());
    }
    Ok(settings)
}

/// The REST settings: both of address and token or neither, a version
/// such as `62.0` (a leading `v` is dropped), limits in range.
fn check_api_settings(settings: &mut SalesforceTenant) -> Result<(), String> {
    crate::mapped::check_api_access(
        "instance_url",
        settings.instance_url.as_ref(),
        settings.access_token.as_ref(),
        settings.oauth.as_ref(),
    )?;
    let version = settings.api_version.trim_start_matches('v').to_owned();
    let valid = version.split_once('.').is_some_and(|(major, minor)| {
        crate::mapped::is_digits(major) && crate::mapped::is_digits(minor)
    });
    if !valid {
        return Err(format!(
            "api_version {:?} is not a REST API version such as \"{DEFAULT_API_VERSION}\"",
            settings.api_version
        ));
    }
    settings.api_version = version;
    if let Some(url) = &settings.pubsub_url {
        crate::mapped::check_http_url("pubsub_url", url)?;
        if settings.instance_url.is_none() {
            return Err("pubsub_url needs instance_url and access_token or [oauth]: every Pub/Sub call names the org's instance".into());
        }
        if settings
            .oauth
            .as_ref()
            .is_some_and(|oauth| oauth.refresh_token.is_some())
        {
            return Err("pubsub_url with an [oauth] refresh_token: the collector's subscription and the enricher would each rotate the one refresh token; use the JWT bearer grant (private_key, username) or access_token".into());
        }
        if settings.change_events.is_empty() {
            return Err("change_events must name at least one channel, e.g. [\"/data/OpportunityChangeEvent\"]".into());
        }
        for channel in &settings.change_events {
            let valid = channel == "/data/ChangeEvents"
                || (channel.starts_with("/data/") && channel.ends_with("ChangeEvent"));
            if !valid {
                return Err(format!(
                    "change_events: {channel:?} is not a Change Data Capture channel (\"/data/OpportunityChangeEvent\", \"/data/ChangeEvents\")"
                ));
            }
        }
    }
    if settings.requests_per_10s == 0 {
        return Err("requests_per_10s must be at least 1".into());
    }
    if !(settings.api_allocation_share > 0.0 && settings.api_allocation_share <= 1.0) {
        return Err(format!(
            "api_allocation_share must be a share in (0, 1], such as 0.5; got {}",
            settings.api_allocation_share
        ));
    }
    Ok(())
}

/// Whether two ids (15 or 18 characters) name the same record: the first 15
/// characters are the id, the last three only a checksum of their case.
pub fn same_id(a: &str, b: &str) -> bool {
    let valid = |id: &str| id_18(id).is_some();
    valid(a) && valid(b) && a[..15] == b[..15]
}

/// A record id in its 18-character, case-insensitive form: a 15-character id
/// gets its three check characters; an 18-character id is returned as is.
/// `None` for anything that is not 15 or 18 ASCII letters and digits.
pub fn id_18(id: &str) -> Option<String> {
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match id.len() {
        18 => Some(id.to_owned()),
        15 => {
            const CHECK: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
            let mut out = id.to_owned();
            for chunk in id.as_bytes().chunks(5) {
                let bits = chunk
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.is_ascii_uppercase())
                    .fold(0usize, |bits, (i, _)| bits | (1 << i));
                out.push(char::from(CHECK[bits]));
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
