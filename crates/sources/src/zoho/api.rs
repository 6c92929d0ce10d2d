//! The Zoho CRM API (v8), per org: a record read whole when its
//! notification carries no values (a channel created without
//! `return_affected_field_values`, or a field Zoho does not report).
//!
//! Requests carry `Authorization: Zoho-oauthtoken <token>` (Zoho's scheme,
//! not `Bearer`), go to the org's data center (`api_domain`), and keep to
//! `requests_per_minute`; a `401` renews an OAuth token once. A record Zoho
//! does not have answers `204 No Content`.

use std::time::Duration;

use serde_json::{Map, Value};
use tributary_enrichment::EnrichmentSettings;
use tributary_enrichment::api_client::{ApiError, Fetched, RequestBudget};
use tributary_enrichment::oauth::{Access, AuthorizedClient, ClientAuth, TokenStore};

use super::ZohoTenant;

const API: &str = "zoho";

/// The fields read of each module: what the mapping uses.
pub fn fields_of(module: &str) -> &'static [&'static str] {
    match module {
        "Deals" | "Potentials" => &[
            "Deal_Name",
            "Amount",
            "Currency",
            "Stage",
            "Pipeline",
            "Probability",
            "Closing_Date",
            "Owner",
            "Account_Name",
            "Contact_Name",
            "Lead_Source",
            "Campaign_Source",
            "Created_Time",
            "Modified_Time",
        ],
        "Accounts" => &[
            "Account_Name",
            "Website",
            "Industry",
            "Employees",
            "Owner",
            "Created_Time",
            "Modified_Time",
        ],
        _ => &[
            "Account_Name",
            "Owner",
            "Lead_Source",
            "Created_Time",
            "Modified_Time",
        ],
    }
}

/// One org's CRM API.
pub struct CrmApi {
    /// At the org's `api_domain`.
    api: AuthorizedClient,
}

impl CrmApi {
    /// The org's API, when the tenant's section configures it.
    pub fn for_tenant(
        tenant: &str,
        settings: &ZohoTenant,
        enrichment: &EnrichmentSettings,
        http: reqwest::Client,
        store: Option<std::sync::Arc<TokenStore>>,
    ) -> Result<Option<CrmApi>, String> {
        let access = Access {
            api: API,
            tenant,
            base_url: settings.api_domain.as_ref(),
            access_token: settings.access_token.as_ref(),
            oauth: settings.oauth.as_ref(),
            // Zoho's accounts server takes the client's id and secret as parameters.
            client_auth: ClientAuth::Body,
            budget: RequestBudget::new(settings.requests_per_minute, Duration::from_secs(60)),
        };
        Ok(AuthorizedClient::new(access, enrichment, http, store)?.map(|api| CrmApi { api }))
    }

    /// A GET authorized Zoho's way (`Zoho-oauthtoken`, not `Bearer`).
    async fn get(
        &self,
        endpoint: &'static str,
        url: &str,
        query: &[(&str, &str)],
    ) -> Result<Fetched, ApiError> {
        self.api
            .get_json(endpoint, |http, token| {
                http.get(url).query(query).header(
                    "authorization",
                    format!("Zoho-oauthtoken {}", token.expose()),
                )
            })
            .await
    }

    /// A record of `module` as Zoho has it now; `None` when it has none.
    pub async fn record(
        &self,
        module: &str,
        id: &str,
    ) -> Result<Option<Map<String, Value>>, ApiError> {
        let url = format!("{}/crm/v8/{module}/{id}", self.api.base_url);
        let fields = fields_of(module).join(",");
        let answer = self
            .get("record", &url, &[("fields", fields.as_str())])
            .await?;
        Ok(match answer {
            Fetched::Found(body) => body
                .get("data")
                .and_then(Value::as_array)
                .and_then(|records| records.first())
                .and_then(Value::as_object)
                .cloned(),
            Fetched::NotFound => None,
        })
    }

    /// The current user: the cheapest authenticated call, tried at start.
    pub async fn current_user(&self) -> Result<String, ApiError> {
        let url = format!("{}/crm/v8/users", self.api.base_url);
        let answer = self
            .get("current_user", &url, &[("type", "CurrentUser")])
            .await?;
        let name = match &answer {
            Fetched::Found(body) => body["users"][0]["full_name"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
            Fetched::NotFound => "?".to_owned(),
        };
        Ok(format!("the token is accepted; acting as {name}"))
    }
}
