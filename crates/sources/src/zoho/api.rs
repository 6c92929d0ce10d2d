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
use tributary_enrichment::api_client::{ApiClient, ApiError, Fetched, RequestBudget, RetryPolicy};
use tributary_enrichment::oauth::{ClientAuth, Credentials, TokenStore};

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
    client: ApiClient,
    api_domain: String,
    credentials: Credentials,
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
        let Some(api_domain) = &settings.api_domain else {
            return Ok(None);
        };
        let policy = RetryPolicy::from_settings(enrichment);
        let Some(credentials) = Credentials::new(
            API,
            tenant,
            settings.access_token.as_ref(),
            settings.oauth.as_ref(),
            // Zoho's accounts server takes the client's id and secret as parameters.
            ClientAuth::Body,
            &policy,
            http.clone(),
            store,
        )?
        else {
            return Ok(None);
        };
        let budget = RequestBudget::new(settings.requests_per_minute, Duration::from_secs(60));
        Ok(Some(CrmApi {
            client: ApiClient::new(API, http, policy, budget),
            api_domain: api_domain.trim_end_matches('/').to_owned(),
            credentials,
        }))
    }

    /// A record of `module` as Zoho has it now; `None` when it has none.
    pub async fn record(
        &self,
        module: &str,
        id: &str,
    ) -> Result<Option<Map<String, Value>>, ApiError> {
        let url = format!("{}/crm/v8/{module}/{id}", self.api_domain);
        let fields = fields_of(module).join(",");
        let client = &self.client;
        let (url, fields) = (&url, &fields);
        let answer = self
            .credentials
            .with_token(|token| async move {
                client
                    .get_json("record", || {
                        client
                            .http()
                            .get(url)
                            .query(&[("fields", fields.as_str())])
                            .header(
                                "authorization",
                                format!("Zoho-oauthtoken {}", token.expose()),
                            )
                    })
                    .await
            })
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
        let url = format!("{}/crm/v8/users?type=CurrentUser", self.api_domain);
        let client = &self.client;
        let url = &url;
        let answer = self
            .credentials
            .with_token(|token| async move {
                client
                    .get_json("current_user", || {
                        client.http().get(url).header(
                            "authorization",
                            format!("Zoho-oauthtoken {}", token.expose()),
                        )
                    })
                    .await
            })
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
