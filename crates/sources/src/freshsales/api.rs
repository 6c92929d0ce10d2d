//! The Freshsales API, per account: every event's record read whole, with
//! what it refers to side-loaded (`include=`), and the account's currencies.
//!
//! Requests carry `Authorization: Token token=<api key>`, go to the
//! account's `api_url` and keep to `requests_per_hour` (Freshsales answers
//! `429` past its hourly limit, which the client waits out and retries). A
//! record Freshsales does not have (deleted) answers `404`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};
use tributary_enrichment::EnrichmentSettings;
use tributary_enrichment::api_client::{ApiError, Fetched, RequestBudget};
use tributary_enrichment::oauth::{Access, AuthorizedClient, ClientAuth};

use super::FreshsalesTenant;
use crate::checks::id_text;
use crate::enrich::AccountTable;

const API: &str = "freshsales";

/// What each collection's read side-loads: its owner, a deal's stage,
/// pipeline and account (a sales activity side-loads nothing: its type is
/// read from the account's list of types).
fn includes_of(collection: &str) -> Option<&'static str> {
    match collection {
        "deals" => Some("owner,deal_stage,deal_pipeline,sales_account"),
        "contacts" => Some("owner,sales_accounts"),
        "sales_activities" => None,
        _ => Some("owner"),
    }
}

/// A record as the API answered it: the record and the side-loaded
/// collections (`users`, `deal_stages`, ...), by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadRecord {
    pub record: Map<String, Value>,
    pub included: Map<String, Value>,
}

impl ReadRecord {
    /// A side-loaded record of `collection` by id (`users`, `deal_stages`...).
    pub fn included(&self, collection: &str, id: &Value) -> Option<&Map<String, Value>> {
        let id = id_text(id)?;
        self.included
            .get(collection)
            .and_then(Value::as_array)?
            .iter()
            .filter_map(Value::as_object)
            .find(|item| item.get("id").and_then(id_text).as_deref() == Some(id.as_str()))
    }
}

/// The key a collection's record answers under (`deals`: `deal`,
/// `sales_activities`: `sales_activity`).
fn singular(collection: &str) -> String {
    match collection.strip_suffix("ies") {
        Some(stem) => format!("{stem}y"),
        None => collection.trim_end_matches('s').to_owned(),
    }
}

/// One account's API.
pub struct FreshsalesApi {
    api: AuthorizedClient,
    /// The account's currencies (id to ISO code).
    currencies: AccountTable,
    /// The account's sales activity types (id to name).
    activity_types: AccountTable,
}

impl FreshsalesApi {
    pub fn for_tenant(
        tenant: &str,
        settings: &FreshsalesTenant,
        enrichment: &EnrichmentSettings,
        http: reqwest::Client,
    ) -> Result<Option<FreshsalesApi>, String> {
        let access = Access {
            api: API,
            tenant,
            base_url: Some(&settings.api_url),
            access_token: Some(&settings.api_key),
            oauth: None,
            client_auth: ClientAuth::Body,
            budget: RequestBudget::new(settings.requests_per_hour, Duration::from_secs(3_600)),
        };
        Ok(
            AuthorizedClient::new(access, enrichment, http, None)?.map(|api| FreshsalesApi {
                api,
                currencies: AccountTable::default(),
                activity_types: AccountTable::default(),
            }),
        )
    }

    async fn get(
        &self,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Fetched, ApiError> {
        let url = format!("{}/api/{path}", self.api.base_url);
        self.api
            .get_json(endpoint, |http, token| {
                http.get(&url)
                    .query(query)
                    .header("authorization", format!("Token token={}", token.expose()))
            })
            .await
    }

    /// A record of `collection` (`deals`, `contacts`, `sales_accounts`) as
    /// Freshsales has it now; `None` when it has none.
    pub async fn record(&self, collection: &str, id: &str) -> Result<Option<ReadRecord>, ApiError> {
        let include: Vec<(&str, &str)> = includes_of(collection)
            .map(|include| ("include", include))
            .into_iter()
            .collect();
        let answer = self
            .get("record", &format!("{collection}/{id}"), &include)
            .await?;
        let mut body = match answer {
            Fetched::NotFound => return Ok(None),
            Fetched::Found(Value::Object(body)) => body,
            // Not the API's shape: an answer to read again, never a deletion.
            Fetched::Found(other) => {
                return Err(ApiError::Unavailable {
                    api: API,
                    reason: format!(
                        "the answer for {collection}/{id} is not an object: {}",
                        crate::checks::short(&other)
                    ),
                });
            }
        };
        let singular = singular(collection);
        let Some(Value::Object(record)) = body.remove(&singular) else {
            return Err(ApiError::Unavailable {
                api: API,
                reason: format!("the answer for {collection}/{id} has no {singular:?}"),
            });
        };
        Ok(Some(ReadRecord {
            record,
            included: body,
        }))
    }

    /// The ISO code of the account's currency `id` (the account's
    /// currencies read once and shared, see [`AccountTable`]).
    pub async fn currency(&self, id: &Value) -> Result<Option<String>, ApiError> {
        let Some(id) = id_text(id) else {
            return Ok(None);
        };
        self.currencies.get(&id, || self.currency_codes()).await
    }

    /// The account's currencies, id to ISO code (`/api/selector/currencies`).
    async fn currency_codes(&self) -> Result<BTreeMap<String, String>, ApiError> {
        self.selector("currencies", "currencies", "currency_code")
            .await
    }

    /// The name of the account's sales activity type `id` (`Call`,
    /// `Meeting`...; the types read once and shared, see [`AccountTable`]).
    pub async fn activity_type(&self, id: &Value) -> Result<Option<String>, ApiError> {
        let Some(id) = id_text(id) else {
            return Ok(None);
        };
        self.activity_types
            .get(&id, || {
                self.selector("sales_activity_types", "sales_activity_types", "name")
            })
            .await
    }

    /// A selector's list (`/api/selector/<kind>`, the items under `list`),
    /// id to the item's `field`.
    async fn selector(
        &self,
        kind: &'static str,
        list: &str,
        field: &str,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        Ok(
            match self.get(kind, &format!("selector/{kind}"), &[]).await? {
                Fetched::Found(body) => body
                    .get(list)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|item| {
                        Some((
                            item.get("id").and_then(id_text)?,
                            item.get(field)?.as_str()?.to_owned(),
                        ))
                    })
                    .collect(),
                Fetched::NotFound => BTreeMap::new(),
            },
        )
    }

    /// The account's owners: the cheapest authenticated call, tried at start.
    pub async fn owners(&self) -> Result<String, ApiError> {
        let answer = self.get("owners", "selector/owners", &[]).await?;
        let count = match &answer {
            Fetched::Found(body) => body["users"].as_array().map_or(0, Vec::len),
            Fetched::NotFound => 0,
        };
        Ok(format!("the API key is accepted; {count} owners"))
    }
}
