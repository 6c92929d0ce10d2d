//! The Salesforce REST API, per org: the opportunity stages (their order,
//! default probability and outcome, which an Outbound Message does not
//! carry), record owners, and records whose message lacks fields the
//! dashboards need.
//!
//! Stage definitions and users are cached for `definitions_ttl_seconds`;
//! concurrent lookups of the same key share one request. Records are read
//! afresh each time (an event needs the record's state after its change).
//! An org's API allocation is a rolling 24-hour request count shared with
//! everything else the customer runs; every answer reports it
//! (`Sforce-Limit-Info: api-usage=N/M`), and lookups pause once Tributary
//! has used its share, or when Salesforce answers `REQUEST_LIMIT_EXCEEDED`:
//! events meanwhile are `partial` and healed by re-enrichment later.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::future::Cache;
use serde_json::Value;
use tributary_enrichment::EnrichmentSettings;
use tributary_enrichment::api_client::{Allocation, ApiError, Fetched, RequestBudget};
use tributary_enrichment::oauth::{Access, AuthorizedClient, ClientAuth, Credentials, TokenStore};

use super::SalesforceTenant;

const API: &str = "salesforce";
/// The header reporting the org's API usage.
pub const LIMIT_INFO_HEADER: &str = "sforce-limit-info";
/// How long lookups pause once the allocation's share is used or
/// Salesforce refuses for the limit; then one lookup looks again.
const ALLOCATION_PAUSE: Duration = Duration::from_secs(15 * 60);
/// The SOQL reading every opportunity stage.
pub const STAGES_QUERY: &str = "SELECT ApiName, MasterLabel, SortOrder, DefaultProbability, IsWon, IsClosed, IsActive FROM OpportunityStage ORDER BY SortOrder";

/// One opportunity stage as Salesforce defines it (org-wide).
#[derive(Debug, Clone, PartialEq)]
pub struct StageDefinition {
    /// The picklist value an opportunity's `StageName` holds.
    pub api_name: String,
    pub label: String,
    pub sort_order: i64,
    /// Percent.
    pub default_probability: Option<f64>,
    pub is_won: bool,
    pub is_closed: bool,
    pub is_active: bool,
}

impl StageDefinition {
    fn from_row(row: &Value) -> Option<StageDefinition> {
        let label = row.get("MasterLabel")?.as_str()?.to_owned();
        Some(StageDefinition {
            // Orgs on API versions before ApiName existed name stages by label.
            api_name: row
                .get("ApiName")
                .and_then(Value::as_str)
                .unwrap_or(&label)
                .to_owned(),
            sort_order: row.get("SortOrder").and_then(Value::as_i64).unwrap_or(0),
            default_probability: row.get("DefaultProbability").and_then(Value::as_f64),
            is_won: row.get("IsWon").and_then(Value::as_bool).unwrap_or(false),
            is_closed: row
                .get("IsClosed")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            is_active: row.get("IsActive").and_then(Value::as_bool).unwrap_or(true),
            label,
        })
    }
}

/// A record owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    pub name: Option<String>,
    pub active: Option<bool>,
}

/// `(used, limit)` from `Sforce-Limit-Info` (`api-usage=25/15000`, possibly
/// followed by `; per-app-api-usage=...`).
pub fn read_api_usage(value: &str) -> Option<(u64, u64)> {
    let usage = value
        .split(';')
        .find_map(|part| part.trim().strip_prefix("api-usage="))?;
    let (used, limit) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
}

/// A REST date-time (`2025-03-04T16:30:00.000+0000`) or an RFC 3339 one.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// A REST value as the text an Outbound Message sends for it: booleans and
/// numbers as written, date-times in RFC 3339 UTC; `None` for null.
pub fn soap_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(match parse_datetime(s) {
            Some(time) if s.len() > 10 => time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            _ => s.clone(),
        }),
        other => Some(other.to_string()),
    }
}

/// Salesforce's examples send the client's id and secret in the form.
const CLIENT_AUTH: ClientAuth = ClientAuth::Body;

/// One org's REST API.
pub struct OrgApi {
    /// At the org's `instance_url`.
    api: AuthorizedClient,
    version: String,
    stages: Cache<(), Arc<Vec<StageDefinition>>>,
    owners: Cache<String, Option<Owner>>,
    accounts: Cache<String, Option<Arc<Value>>>,
}

/// The account fields an opportunity's company is made of.
pub const ACCOUNT_FIELDS: &[&str] = &[
    "Name",
    "Website",
    "Industry",
    "NumberOfEmployees",
    "OwnerId",
    "LastModifiedDate",
];

impl OrgApi {
    /// The org's API, when the tenant's section configures it. OAuth with a
    /// refresh token needs `store`: the rotated token must outlive the process.
    pub fn for_tenant(
        tenant: &str,
        settings: &SalesforceTenant,
        enrichment: &EnrichmentSettings,
        http: reqwest::Client,
        store: Option<Arc<TokenStore>>,
    ) -> Result<Option<OrgApi>, String> {
        let budget = RequestBudget::new(settings.requests_per_10s, Duration::from_secs(10))
            .with_allocation(Allocation {
                header: LIMIT_INFO_HEADER,
                read: read_api_usage,
                share: settings.api_allocation_share,
                pause: ALLOCATION_PAUSE,
            });
        let access = Access {
            api: API,
            tenant,
            base_url: settings.instance_url.as_ref(),
            access_token: settings.access_token.as_ref(),
            oauth: settings.oauth.as_ref(),
            client_auth: CLIENT_AUTH,
            budget,
        };
        let Some(api) = AuthorizedClient::new(access, enrichment, http, store)? else {
            return Ok(None);
        };
        let ttl = Duration::from_secs(enrichment.definitions_ttl_seconds.max(1));
        Ok(Some(OrgApi {
            api,
            version: settings.api_version.clone(),
            stages: Cache::builder().time_to_live(ttl).build(),
            owners: Cache::builder()
                .max_capacity(enrichment.cache_max_entries)
                .time_to_live(ttl)
                .build(),
            accounts: Cache::builder()
                .max_capacity(enrichment.cache_max_entries)
                .time_to_live(Duration::from_secs(enrichment.entity_ttl_seconds.max(1)))
                .build(),
        }))
    }

    /// The org's token (fixed, or OAuth's, renewed when refused).
    pub fn credentials(&self) -> &Credentials {
        &self.api.credentials
    }

    /// Whether the org's configured REST API version is `major` or later
    /// (a field newer than the version is refused as `INVALID_FIELD`).
    pub fn version_at_least(&self, major: u32) -> bool {
        self.version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|v| v >= major)
    }

    fn data_url(&self, rest: &str) -> String {
        format!(
            "{}/services/data/v{}/{rest}",
            self.api.base_url, self.version
        )
    }

    /// A GET with the org's budget and retries, authorized with a current
    /// token (under OAuth a `401` renews it and asks once more). Salesforce
    /// answers an exhausted allocation with 403 `REQUEST_LIMIT_EXCEEDED`:
    /// lookups pause and the failure may pass.
    async fn get(
        &self,
        endpoint: &'static str,
        request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Fetched, ApiError> {
        let answer = self
            .api
            .get_json(endpoint, |http, token| {
                request(http).bearer_auth(token.expose())
            })
            .await;
        match answer {
            Err(ApiError::Refused {
                status: 403, body, ..
            }) if body.contains("REQUEST_LIMIT_EXCEEDED") => {
                self.api.client.pause(ALLOCATION_PAUSE);
                Err(ApiError::Unavailable {
                    api: API,
                    reason: format!("the org's API request limit is exceeded: {body}"),
                })
            }
            other => other,
        }
    }

    /// Every row a SOQL query selects, following `nextRecordsUrl`.
    pub async fn query(&self, endpoint: &'static str, soql: &str) -> Result<Vec<Value>, ApiError> {
        self.query_at("query", endpoint, soql).await
    }

    /// Every row a SOQL query selects among the records and the recycle
    /// bin (`queryAll`: deleted records with `IsDeleted` true).
    pub async fn query_all(
        &self,
        endpoint: &'static str,
        soql: &str,
    ) -> Result<Vec<Value>, ApiError> {
        self.query_at("queryAll", endpoint, soql).await
    }

    /// The ids of the `sobject` records modified at or after `since`
    /// (`SystemModstamp`), deleted ones included, each with whether it is
    /// deleted.
    pub async fn modified_since(
        &self,
        sobject: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, bool)>, ApiError> {
        let soql = format!(
            "SELECT Id, IsDeleted FROM {sobject} WHERE SystemModstamp >= {}",
            since.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let rows = self.query_all("modified_since", &soql).await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let id = row.get("Id")?.as_str()?.to_owned();
                let deleted = row.get("IsDeleted").and_then(Value::as_bool) == Some(true);
                Some((id, deleted))
            })
            .collect())
    }

    async fn query_at(
        &self,
        resource: &str,
        endpoint: &'static str,
        soql: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let mut rows = Vec::new();
        let first = self.data_url(resource);
        let mut next: Option<String> = None;
        loop {
            let answer = match &next {
                None => {
                    self.get(endpoint, |http| http.get(&first).query(&[("q", soql)]))
                        .await?
                }
                Some(path) => {
                    let url = format!("{}{path}", self.api.base_url);
                    self.get(endpoint, |http| http.get(&url)).await?
                }
            };
            let Fetched::Found(answer) = answer else {
                return Err(ApiError::Refused {
                    api: API,
                    status: 404,
                    body: format!("the query endpoint was not found ({endpoint})"),
                });
            };
            if let Some(records) = answer.get("records").and_then(Value::as_array) {
                rows.extend(records.iter().cloned());
            }
            let done = answer.get("done").and_then(Value::as_bool).unwrap_or(true);
            match answer.get("nextRecordsUrl").and_then(Value::as_str) {
                Some(path) if !done && path.starts_with('/') => next = Some(path.to_owned()),
                _ => return Ok(rows),
            }
        }
    }

    /// Every opportunity stage, in Salesforce's order.
    pub async fn stages(&self) -> Result<Arc<Vec<StageDefinition>>, ApiError> {
        self.stages
            .try_get_with((), async {
                let rows = self.query("opportunity_stages", STAGES_QUERY).await?;
                let mut stages: Vec<StageDefinition> =
                    rows.iter().filter_map(StageDefinition::from_row).collect();
                stages.sort_by_key(|stage| stage.sort_order);
                Ok::<_, ApiError>(Arc::new(stages))
            })
            .await
            .map_err(|err| (*err).clone())
    }

    /// A user's name and whether they are active; `None` for an id the org
    /// does not have.
    pub async fn owner(&self, id: &str) -> Result<Option<Owner>, ApiError> {
        self.owners
            .try_get_with(id.to_owned(), async {
                let record = self.record("User", id, &["Name", "IsActive"]).await?;
                Ok::<_, ApiError>(record.map(|user| Owner {
                    name: user.get("Name").and_then(Value::as_str).map(str::to_owned),
                    active: user.get("IsActive").and_then(Value::as_bool),
                }))
            })
            .await
            .map_err(|err| (*err).clone())
    }

    /// An account as an opportunity's company (cached `entity_ttl_seconds`;
    /// concurrent lookups share one read); `None` when the org has none.
    pub async fn account(&self, id: &str) -> Result<Option<Arc<Value>>, ApiError> {
        self.accounts
            .try_get_with(id.to_owned(), async {
                let record = self.record("Account", id, ACCOUNT_FIELDS).await?;
                Ok::<_, ApiError>(record.map(Arc::new))
            })
            .await
            .map_err(|err| (*err).clone())
    }

    /// A record's fields as the REST API has them now; `None` when the org
    /// has no such record (any more).
    pub async fn record(
        &self,
        object: &str,
        id: &str,
        fields: &[&str],
    ) -> Result<Option<Value>, ApiError> {
        let url = self.data_url(&format!("sobjects/{object}/{id}"));
        let fields = fields.join(",");
        let answer = self
            .get("record", |http| {
                http.get(&url).query(&[("fields", fields.as_str())])
            })
            .await?;
        Ok(match answer {
            Fetched::Found(record) => Some(record),
            Fetched::NotFound => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn api_usage_is_read_from_the_limit_header() {
        assert_eq!(read_api_usage("api-usage=25/15000"), Some((25, 15_000)));
        assert_eq!(
            read_api_usage("api-usage=18/5000; per-app-api-usage=17/250(appName=sample-app)"),
            Some((18, 5_000))
        );
        assert_eq!(read_api_usage("per-app-api-usage=17/250"), None);
        assert_eq!(read_api_usage("api-usage=x/5000"), None);
    }

    #[test]
    fn rest_values_read_as_outbound_message_text() {
        assert_eq!(soap_text(&json!(true)).as_deref(), Some("true"));
        assert_eq!(soap_text(&json!(48000.25)).as_deref(), Some("48000.25"));
        assert_eq!(soap_text(&json!(null)), None);
        assert_eq!(
            soap_text(&json!("2025-03-04")).as_deref(),
            Some("2025-03-04")
        );
        assert_eq!(
            soap_text(&json!("2025-03-04T16:30:00.000+0000")).as_deref(),
            Some("2025-03-04T16:30:00.000Z")
        );
        assert_eq!(
            soap_text(&json!("Closed Won")).as_deref(),
            Some("Closed Won")
        );
    }

    #[test]
    fn a_stage_without_an_api_name_is_named_by_its_label() {
        let stage = StageDefinition::from_row(&json!({
            "attributes": {"type": "OpportunityStage"},
            "MasterLabel": "Closed Won", "SortOrder": 9, "DefaultProbability": 100.0,
            "IsWon": true, "IsClosed": true, "IsActive": true
        }))
        .expect("a stage");
        assert_eq!(stage.api_name, "Closed Won");
        assert_eq!(stage.sort_order, 9);
        assert_eq!(stage.default_probability, Some(100.0));
        assert!(stage.is_won && stage.is_closed);
    }
}
