//! Salesforce: Outbound Messages (a workflow rule's or flow's SOAP
//! notifications) from the collector to the canonical model.
//!
//! - [`outbound`]: reading a message and writing the acknowledgement and faults;
//! - `webhook.rs`: what the collector does with a message (the endpoint's
//!   secret, the org check, one event per notification);
//! - [`enrich`]: a notification in, the flat `salesforce-crm` event out;
//! - [`mapping`]: that event into the canonical model;
//! - `tests.rs`.
//!
//! Tenant settings, `[tenants.<tenant>.salesforce]` (see [`SalesforceTenant`]):
//! the org the tenant is, the secret its Outbound Message endpoint URL
//! carries, and the org's currency when it has only one.

pub mod enrich;
pub mod mapping;
pub mod outbound;
mod webhook;

use serde::Deserialize;
use serde_json::Value;
use tributary_config::Secret;

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
        objects: &["opportunity", "account", "contact", "user"],
        template: "salesforce-crm",
    }],
    // An Outbound Message is defined for the objects a tenant chose.
    ignored_objects: &[],
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
    if settings.endpoint_secret.is_empty() {
        return Err("endpoint_secret must be set: Salesforce does not sign Outbound Messages, so the endpoint URL carries a secret (?secret=...)".into());
    }
    Ok(settings)
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
