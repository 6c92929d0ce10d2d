//! The Dataverse Web API (OData v4), per organization: a record read whole
//! when its webhook context arrived without it (over 256 KB, marked
//! `x-ms-dynamics-msg-size-exceeded`).
//!
//! The organization's currencies (`transactioncurrencies`, id to ISO code)
//! are read once and shared: a context names a record's currency by
//! reference only.
//!
//! A read asks for every annotation (`Prefer: odata.include-annotations="*"`)
//! so a lookup comes with its entity type and name, and is turned into the
//! attributes a context carries: a lookup `_ownerid_value` becomes
//! `ownerid` with `ownerid_name` and `ownerid_type`, a date-only value
//! `YYYY-MM-DD` midnight UTC in RFC 3339, as a context's `/Date(ms)/` reads.
//! Requests keep to the organization's service-protection limit (6,000 per
//! user per 5 minutes by default) and `Retry-After` on 429.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tributary_enrichment::EnrichmentSettings;
use tributary_enrichment::api_client::{ApiError, Fetched, RequestBudget};
use tributary_enrichment::oauth::{Access, AuthorizedClient, ClientAuth, TokenStore};

use super::DynamicsTenant;
use crate::enrich::AccountTable;

const API: &str = "dynamics";
/// The Web API version in paths.
pub const WEB_API_VERSION: &str = "v9.2";

/// An entity's Web API collection (`opportunity` → `opportunities`).
pub fn entity_set(logical_name: &str) -> String {
    match logical_name {
        "opportunity" => "opportunities".into(),
        "systemuser" => "systemusers".into(),
        other if other.ends_with('y') => format!("{}ies", &other[..other.len() - 1]),
        other if other.ends_with('s') => format!("{other}es"),
        other => format!("{other}s"),
    }
}

/// A Web API record as a context's attributes (see the module's description).
pub fn context_attributes(record: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in record {
        if key.starts_with('@') || key.contains('@') {
            continue;
        }
        if let Some(name) = key
            .strip_prefix('_')
            .and_then(|rest| rest.strip_suffix("_value"))
        {
            if value.is_null() {
                out.insert(name.to_owned(), Value::Null);
                continue;
            }
            out.insert(name.to_owned(), value.clone());
            let annotation = |suffix: &str| record.get(&format!("{key}@{suffix}")).cloned();
            if let Some(label) = annotation("OData.Community.Display.V1.FormattedValue") {
                out.insert(format!("{name}_name"), label);
            }
            if let Some(kind) = annotation("Microsoft.Dynamics.CRM.lookuplogicalname") {
                out.insert(format!("{name}_type"), kind);
            }
            continue;
        }
        let value = match value {
            Value::String(text) if is_date_only(text) => {
                Value::String(format!("{text}T00:00:00.000Z"))
            }
            other => other.clone(),
        };
        out.insert(key.clone(), value);
    }
    out
}

fn is_date_only(text: &str) -> bool {
    text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

/// One organization's Web API.
pub struct WebApi {
    /// At the organization's `web_api_url`.
    api: AuthorizedClient,
    /// The organization's currencies (id, lower case, to ISO code).
    currencies: AccountTable,
}

impl WebApi {
    /// The organization's Web API, when the tenant's section configures it.
    pub fn for_tenant(
        tenant: &str,
        settings: &DynamicsTenant,
        enrichment: &EnrichmentSettings,
        http: reqwest::Client,
        store: Option<Arc<TokenStore>>,
    ) -> Result<Option<WebApi>, String> {
        let access = Access {
            api: API,
            tenant,
            base_url: settings.web_api_url.as_ref(),
            access_token: settings.access_token.as_ref(),
            oauth: settings.oauth.as_ref(),
            // Microsoft Entra ID takes the client's id and secret in the form.
            client_auth: ClientAuth::Body,
            budget: RequestBudget::new(settings.requests_per_5min, Duration::from_secs(300)),
        };
        Ok(
            AuthorizedClient::new(access, enrichment, http, store)?.map(|api| WebApi {
                api,
                currencies: AccountTable::default(),
            }),
        )
    }

    /// `WhoAmI`: the cheapest authenticated call, to try the access at start.
    pub async fn who_am_i(&self) -> Result<String, ApiError> {
        let url = format!("{}/api/data/{WEB_API_VERSION}/WhoAmI", self.api.base_url);
        match self.get("who_am_i", &url).await? {
            Some(answer) => Ok(format!(
                "the token is accepted; acting as user {}",
                answer.get("UserId").and_then(Value::as_str).unwrap_or("?")
            )),
            None => Err(ApiError::Refused {
                api: API,
                status: 404,
                body: "WhoAmI was not found: check web_api_url".into(),
            }),
        }
    }

    /// A record as the Web API has it now, with its annotations; `None` when
    /// the organization no longer has it.
    pub async fn record(
        &self,
        entity: &str,
        id: &str,
    ) -> Result<Option<Map<String, Value>>, ApiError> {
        let url = format!(
            "{}/api/data/{WEB_API_VERSION}/{}({id})",
            self.api.base_url,
            entity_set(entity)
        );
        self.get("record", &url).await
    }

    /// The ISO code of the organization's currency `id` (a
    /// `transactioncurrency`); `None` when the organization has no such
    /// currency. The currencies are read once and shared (see
    /// [`AccountTable`]).
    pub async fn currency(&self, id: &str) -> Result<Option<String>, ApiError> {
        let id = id.to_ascii_lowercase();
        self.currencies.get(&id, || self.currency_codes()).await
    }

    async fn currency_codes(&self) -> Result<BTreeMap<String, String>, ApiError> {
        let url = format!(
            "{}/api/data/{WEB_API_VERSION}/transactioncurrencies?$select=isocurrencycode",
            self.api.base_url
        );
        Ok(self
            .get("currencies", &url)
            .await?
            .and_then(|mut answer| answer.remove("value"))
            .and_then(|value| match value {
                Value::Array(rows) => Some(rows),
                _ => None,
            })
            .unwrap_or_default()
            .into_iter()
            .filter_map(|row| {
                Some((
                    row.get("transactioncurrencyid")?
                        .as_str()?
                        .to_ascii_lowercase(),
                    row.get("isocurrencycode")?.as_str()?.to_owned(),
                ))
            })
            .collect())
    }

    /// A GET of one JSON object (`None`: not found).
    async fn get(
        &self,
        endpoint: &'static str,
        url: &str,
    ) -> Result<Option<Map<String, Value>>, ApiError> {
        let answer = self
            .api
            .get_json(endpoint, |http, token| {
                http.get(url)
                    .bearer_auth(token.expose())
                    .header("accept", "application/json")
                    .header("odata-maxversion", "4.0")
                    .header("odata-version", "4.0")
                    .header("prefer", "odata.include-annotations=\"*\"")
            })
            .await?;
        match answer {
            Fetched::Found(Value::Object(record)) => Ok(Some(record)),
            Fetched::Found(_) => Err(ApiError::Refused {
                api: API,
                status: 200,
                body: "the Web API answered something other than a JSON object".into(),
            }),
            Fetched::NotFound => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn entity_sets_are_the_plural_collections() {
        assert_eq!(entity_set("opportunity"), "opportunities");
        assert_eq!(entity_set("account"), "accounts");
        assert_eq!(entity_set("contact"), "contacts");
        assert_eq!(entity_set("systemuser"), "systemusers");
        assert_eq!(entity_set("activityparty"), "activityparties");
    }

    #[test]
    fn a_web_api_record_reads_as_a_contexts_attributes() {
        let record = json!({
            "@odata.context": "https://acme.crm.dynamics.com/api/data/v9.2/$metadata#opportunities/$entity",
            "@odata.etag": "W/\"1234\"",
            "opportunityid": "5f0c5f2a-3c1b-4f0e-9a57-2b8d3c1e0a11",
            "name": "Fleet renewal",
            "estimatedvalue": 48000.25,
            "estimatedvalue@OData.Community.Display.V1.FormattedValue": "$48,000.25",
            "statecode": 1,
            "estimatedclosedate": "2025-03-04",
            "modifiedon": "2025-03-04T16:30:00Z",
            "_ownerid_value": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "_ownerid_value@OData.Community.Display.V1.FormattedValue": "Dana Reyes",
            "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
            "_parentaccountid_value": null
        });
        let attributes = context_attributes(record.as_object().expect("object"));
        assert_eq!(
            Value::Object(attributes),
            json!({
                "opportunityid": "5f0c5f2a-3c1b-4f0e-9a57-2b8d3c1e0a11",
                "name": "Fleet renewal",
                "estimatedvalue": 48000.25,
                "statecode": 1,
                "estimatedclosedate": "2025-03-04T00:00:00.000Z",
                "modifiedon": "2025-03-04T16:30:00Z",
                "ownerid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
                "ownerid_name": "Dana Reyes",
                "ownerid_type": "systemuser",
                "parentaccountid": null
            })
        );
    }
}
