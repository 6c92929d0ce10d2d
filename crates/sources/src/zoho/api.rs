//! The Zoho CRM API (v8), per org: a record read whole when its
//! notification carries no values (a channel created without
//! `return_affected_field_values`, or a field Zoho does not report), and
//! the deal stages' definitions (the `Stage` field's picklist: each value's
//! order and `forecast_type`, which says open, won or lost), cached for
//! `definitions_ttl_seconds`.
//!
//! Requests carry `Authorization: Zoho-oauthtoken <token>` (Zoho's scheme,
//! not `Bearer`), go to the org's data center (`api_domain`), and keep to
//! `requests_per_minute` and to `credits_per_day` (Zoho counts a credit
//! per call in a rolling 24 hours, per org: once they are spent a lookup
//! fails at once, leaving its event `partial` to be enriched again); a
//! `401` renews an OAuth token once. A record Zoho does not have answers
//! `204 No Content`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
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

/// One deal stage as the org defines it: a value of the `Stage` picklist.
#[derive(Debug, Clone, PartialEq)]
pub struct StageDefinition {
    /// What a deal's `Stage` holds.
    pub actual_value: String,
    pub display_value: String,
    pub sequence_number: i64,
    /// `Open`, `Closed Won` or `Closed Lost`.
    pub forecast_type: String,
}

impl StageDefinition {
    fn from_value(value: &Value) -> Option<StageDefinition> {
        let actual_value = value.get("actual_value")?.as_str()?.to_owned();
        Some(StageDefinition {
            display_value: value
                .get("display_value")
                .and_then(Value::as_str)
                .unwrap_or(&actual_value)
                .to_owned(),
            sequence_number: value
                .get("sequence_number")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            forecast_type: value.get("forecast_type")?.as_str()?.to_owned(),
            actual_value,
        })
    }
}

/// One org's CRM API.
pub struct CrmApi {
    /// At the org's `api_domain`.
    api: AuthorizedClient,
    stages: Cache<(), Arc<Vec<StageDefinition>>>,
    /// The org's API credits for Tributary, per rolling 24 hours.
    credits: RequestBudget,
}

impl CrmApi {
    /// The org's API, when the tenant's section configures it.
    pub fn for_tenant(
        tenant: &str,
        settings: &ZohoTenant,
        enrichment: &EnrichmentSettings,
        http: reqwest::Client,
        store: Option<Arc<TokenStore>>,
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
        let ttl = Duration::from_secs(enrichment.definitions_ttl_seconds.max(1));
        Ok(
            AuthorizedClient::new(access, enrichment, http, store)?.map(|api| CrmApi {
                api,
                stages: Cache::builder().time_to_live(ttl).build(),
                credits: RequestBudget::new(
                    settings.credits_per_day,
                    Duration::from_secs(24 * 3_600),
                ),
            }),
        )
    }

    /// A credit for one call, if the day's are not spent: never waited for
    /// (the window is a day long).
    async fn spend_credit(&self) -> Result<(), ApiError> {
        if self.credits.acquire(Instant::now()).await {
            Ok(())
        } else {
            Err(ApiError::Unavailable {
                api: API,
                reason: "the org's API credits for Tributary (credits_per_day) are spent for now; they come back as the 24-hour window rolls".into(),
            })
        }
    }

    /// A GET authorized Zoho's way (`Zoho-oauthtoken`, not `Bearer`).
    async fn get(
        &self,
        endpoint: &'static str,
        url: &str,
        query: &[(&str, &str)],
    ) -> Result<Fetched, ApiError> {
        self.spend_credit().await?;
        self.api
            .get_json(endpoint, |http, token| {
                http.get(url).query(query).header(
                    "authorization",
                    format!("Zoho-oauthtoken {}", token.expose()),
                )
            })
            .await
    }

    /// The org's notification channels as Zoho has them
    /// (`GET /crm/v8/actions/watch`): each one's `channel_id`, `events`,
    /// `channel_expiry`...
    pub async fn channels(&self) -> Result<Vec<Value>, ApiError> {
        let url = format!("{}/crm/v8/actions/watch", self.api.base_url);
        Ok(match self.get("channels", &url, &[]).await? {
            Fetched::Found(body) => body
                .get("watch")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            Fetched::NotFound => Vec::new(),
        })
    }

    /// Moves a channel's expiry to `until` (RFC 3339), keeping its events
    /// (`PATCH /crm/v8/actions/watch` changes only what it is given).
    pub async fn renew(&self, channel: &Value, until: &str) -> Result<(), ApiError> {
        let url = format!("{}/crm/v8/actions/watch", self.api.base_url);
        let body = serde_json::json!({"watch": [{
            "channel_id": channel.get("channel_id"),
            "events": channel.get("events"),
            "channel_expiry": until,
        }]});
        self.spend_credit().await?;
        let answer = self
            .api
            .get_json("renew_channel", |http, token| {
                http.patch(&url).json(&body).header(
                    "authorization",
                    format!("Zoho-oauthtoken {}", token.expose()),
                )
            })
            .await?;
        let status = match &answer {
            Fetched::Found(body) => body["watch"][0]["status"].as_str().unwrap_or_default(),
            Fetched::NotFound => "",
        };
        if status == "success" {
            Ok(())
        } else {
            Err(ApiError::Refused {
                api: API,
                status: 200,
                body: format!("renewing the channel: {answer:?}"),
            })
        }
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

    /// Every deal stage the org defines (the `Deals` module's `Stage` field).
    pub async fn stages(&self) -> Result<Arc<Vec<StageDefinition>>, ApiError> {
        self.stages
            .try_get_with((), async {
                let url = format!("{}/crm/v8/settings/fields", self.api.base_url);
                let answer = self.get("stages", &url, &[("module", "Deals")]).await?;
                let Fetched::Found(body) = answer else {
                    return Ok(Arc::new(Vec::new()));
                };
                let stages = body
                    .get("fields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|field| field.get("api_name").and_then(Value::as_str) == Some("Stage"))
                    .and_then(|field| field.get("pick_list_values"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(StageDefinition::from_value)
                    .collect();
                Ok::<_, ApiError>(Arc::new(stages))
            })
            .await
            .map_err(|err| (*err).clone())
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
