//! Pipedrive API lookups, per tenant, cached.
//!
//! Persons and organizations are cached for `entity_ttl_seconds`; a 404 for
//! `not_found_ttl_seconds`. The small sets every event needs (stages,
//! pipelines, users, field definitions) are fetched whole, one list per
//! tenant, kept for `definitions_ttl_seconds` and dropped when an event says
//! one of them changed; an id the list lacks fetches it again, at most once
//! per `not_found_ttl_seconds`. Concurrent lookups of one key make one
//! call, and failures are never cached. Each tenant has its own request
//! budget and circuit breaker. A person's deal list is fetched once per TTL
//! and then kept current by the deal events themselves.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use serde_json::Value;
use tributary_config::Secret;
use tributary_enrichment::EnrichmentSettings;
use tributary_enrichment::api_client::{ApiClient, ApiError, Fetched, RequestBudget, RetryPolicy};

use super::{Organization, Person, Snapshot};
use crate::pipedrive;

/// A stage as the enricher needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: Option<String>,
    pub order_nr: Option<i64>,
    pub pipeline_id: Option<i64>,
    /// Win probability of deals in this stage, percent.
    pub deal_probability: Option<f64>,
}

/// Custom field definitions of one kind, by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldDefinitions {
    pub fields: HashMap<String, FieldDefinition>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldDefinition {
    pub name: String,
    pub field_type: String,
    pub options: HashMap<i64, String>,
}

impl FieldDefinitions {
    /// A custom field's value as people read it: enum option ids become their
    /// labels, set option ids their comma-joined labels; other values as given.
    pub fn label(&self, key: &str, value: &Value) -> Value {
        let Some(field) = self.fields.get(key) else {
            return value.clone();
        };
        let option = |id: i64| field.options.get(&id).cloned();
        let ids: Vec<i64> = match value {
            Value::Number(n) => n.as_i64().into_iter().collect(),
            Value::String(s) => s.split(',').filter_map(|p| p.trim().parse().ok()).collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_i64().or_else(|| i.as_str()?.parse().ok()))
                .collect(),
            _ => Vec::new(),
        };
        if !matches!(field.field_type.as_str(), "enum" | "set") || ids.is_empty() {
            return value.clone();
        }
        let labels: Vec<String> = ids.into_iter().filter_map(option).collect();
        if labels.is_empty() {
            value.clone()
        } else {
            Value::from(labels.join(", "))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    Deal,
    Person,
    Organization,
}

impl FieldKind {
    fn path(self) -> &'static str {
        match self {
            FieldKind::Deal => "/api/v1/dealFields",
            FieldKind::Person => "/api/v1/personFields",
            FieldKind::Organization => "/api/v1/organizationFields",
        }
    }
}

/// One deal in a person's list: what the aggregates need.
#[derive(Debug, Clone, PartialEq)]
pub struct DealSummary {
    pub value: f64,
    pub status: String,
    /// When this state was true, microseconds; API copies use their `update_time`.
    pub as_of_micro: i64,
}

/// A person's deals, as the API listed them and later events updated them.
#[derive(Debug, Default)]
pub struct PersonDeals {
    pub deals: BTreeMap<i64, DealSummary>,
}

impl PersonDeals {
    /// Records a deal's state from an event, unless the list already holds a newer one.
    pub fn apply(&mut self, deal_id: i64, state: Option<DealSummary>) {
        let newer = |existing: &DealSummary, as_of: i64| existing.as_of_micro > as_of;
        match state {
            Some(state) => {
                if !self
                    .deals
                    .get(&deal_id)
                    .is_some_and(|e| newer(e, state.as_of_micro))
                {
                    self.deals.insert(deal_id, state);
                }
            }
            None => {
                self.deals.remove(&deal_id);
            }
        }
    }

    /// Count and average value of the person's deals, `this` deal's state taking
    /// precedence over the list's copy (`None`: this deal is gone).
    pub fn aggregates(
        &self,
        this: Option<(i64, &DealSummary)>,
        removed: Option<i64>,
    ) -> (i64, f64) {
        let mut count = 0_i64;
        let mut total = 0.0;
        let mut count_one = |summary: &DealSummary| {
            if summary.status != "deleted" {
                count += 1;
                total += summary.value;
            }
        };
        for (id, summary) in &self.deals {
            if Some(*id) == removed || this.is_some_and(|(this_id, _)| this_id == *id) {
                continue;
            }
            count_one(summary);
        }
        if let Some((_, summary)) = this {
            count_one(summary);
        }
        let average = if count == 0 {
            0.0
        } else {
            total / count as f64
        };
        (count, average)
    }
}

type Key = (Arc<str>, i64);
type Found<T> = Option<Arc<T>>;

/// A small set fetched whole per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SmallSet {
    Stages,
    Pipelines,
    Users,
}

impl SmallSet {
    fn endpoint(self) -> &'static str {
        match self {
            SmallSet::Stages => "stages",
            SmallSet::Pipelines => "pipelines",
            SmallSet::Users => "users",
        }
    }

    /// The first page: v2 lists are cursor-paginated, v1's users come at once.
    fn first_page(self) -> &'static str {
        match self {
            SmallSet::Stages => "/api/v2/stages?limit=500",
            SmallSet::Pipelines => "/api/v2/pipelines?limit=500",
            SmallSet::Users => "/api/v1/users",
        }
    }

    fn of_object(object: &str) -> Option<Self> {
        match object {
            "stage" => Some(SmallSet::Stages),
            "pipeline" => Some(SmallSet::Pipelines),
            "user" => Some(SmallSet::Users),
            _ => None,
        }
    }
}

/// Every item of a small set, by id, and when it was fetched.
struct Listing {
    items: HashMap<i64, Value>,
    fetched: Instant,
}

/// Not-found answers live shorter than found ones.
struct NotFoundExpiry(Duration);

impl<K, T> Expiry<K, Option<T>> for NotFoundExpiry {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Option<T>,
        _created_at: Instant,
    ) -> Option<Duration> {
        value.is_none().then_some(self.0)
    }
}

struct TenantApi {
    base_url: String,
    token: Secret,
    client: ApiClient,
}

pub struct PipedriveApi {
    tenants: HashMap<String, TenantApi>,
    persons: Cache<Key, Found<Person>>,
    organizations: Cache<Key, Found<Organization>>,
    lists: Cache<(Arc<str>, SmallSet), Arc<Listing>>,
    /// How soon an id missing from a list may fetch the list again.
    not_found_ttl: Duration,
    fields: Cache<(Arc<str>, FieldKind), Arc<FieldDefinitions>>,
    person_deals: Cache<Key, Arc<Mutex<PersonDeals>>>,
}

/// A tenant's API address, token and request budget.
pub struct TenantAccess {
    pub tenant: String,
    pub base_url: String,
    pub token: Secret,
    pub requests_per_2s: u32,
}

impl PipedriveApi {
    pub fn new(
        tenants: Vec<TenantAccess>,
        settings: &EnrichmentSettings,
        http: reqwest::Client,
    ) -> Self {
        let policy = RetryPolicy::from_settings(settings);
        let tenants = tenants
            .into_iter()
            .map(|access| {
                let budget = RequestBudget::new(access.requests_per_2s, Duration::from_secs(2));
                let client = ApiClient::new("pipedrive", http.clone(), policy.clone(), budget);
                let base_url = access.base_url.trim_end_matches('/').to_owned();
                (
                    access.tenant,
                    TenantApi {
                        base_url,
                        token: access.token,
                        client,
                    },
                )
            })
            .collect();
        let entity_ttl = Duration::from_secs(settings.entity_ttl_seconds);
        let definitions_ttl = Duration::from_secs(settings.definitions_ttl_seconds);
        let not_found = Duration::from_secs(settings.not_found_ttl_seconds);
        let capacity = settings.cache_max_entries;
        fn lookups<T: Send + Sync + 'static>(
            capacity: u64,
            ttl: Duration,
            not_found: Duration,
        ) -> Cache<Key, Found<T>> {
            Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .expire_after(NotFoundExpiry(not_found))
                .build()
        }
        PipedriveApi {
            tenants,
            persons: lookups(capacity, entity_ttl, not_found),
            organizations: lookups(capacity, entity_ttl, not_found),
            lists: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(definitions_ttl)
                .build(),
            not_found_ttl: not_found,
            fields: Cache::builder()
                .max_capacity(1_000)
                .time_to_live(definitions_ttl)
                .build(),
            person_deals: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(entity_ttl)
                .build(),
        }
    }

    fn tenant(&self, tenant: &str) -> Result<&TenantApi, ApiError> {
        self.tenants
            .get(tenant)
            .ok_or_else(|| ApiError::NotConfigured {
                api: "pipedrive",
                reason: format!("no api_base_url/api_token configured for tenant {tenant}"),
            })
    }

    async fn get(
        &self,
        tenant: &str,
        endpoint: &'static str,
        path: &str,
    ) -> Result<Fetched, ApiError> {
        let api = self.tenant(tenant)?;
        let url = format!("{}{path}", api.base_url);
        api.client
            .get_json(endpoint, || {
                api.client
                    .http()
                    .get(&url)
                    .header("x-api-token", api.token.expose())
            })
            .await
    }

    /// `data` of a single-entity answer, `None` for 404.
    async fn get_data(
        &self,
        tenant: &str,
        endpoint: &'static str,
        path: &str,
    ) -> Result<Option<Value>, ApiError> {
        Ok(match self.get(tenant, endpoint, path).await? {
            Fetched::Found(body) => body.get("data").cloned().filter(|d| !d.is_null()),
            Fetched::NotFound => None,
        })
    }

    async fn entity(
        &self,
        tenant: &str,
        endpoint: &'static str,
        object: &str,
        path: &str,
    ) -> Result<Option<Snapshot>, ApiError> {
        let Some(data) = self.get_data(tenant, endpoint, path).await? else {
            return Ok(None);
        };
        let bytes = serde_json::to_vec(&data).unwrap_or_default();
        pipedrive::read_entity(object, &bytes).map_err(|e| ApiError::Unavailable {
            api: "pipedrive",
            reason: format!("unreadable {object}: {e}"),
        })
    }

    pub async fn person(&self, tenant: &Arc<str>, id: i64) -> Result<Found<Person>, ApiError> {
        let fetch = async {
            Ok(
                match self
                    .entity(
                        tenant,
                        "persons",
                        "person",
                        &format!("/api/v2/persons/{id}"),
                    )
                    .await?
                {
                    Some(Snapshot::Person(person)) => Some(Arc::new(person)),
                    _ => None,
                },
            )
        };
        self.persons
            .try_get_with((tenant.clone(), id), fetch)
            .await
            .map_err(unshare)
    }

    pub async fn organization(
        &self,
        tenant: &Arc<str>,
        id: i64,
    ) -> Result<Found<Organization>, ApiError> {
        let fetch = async {
            Ok(
                match self
                    .entity(
                        tenant,
                        "organizations",
                        "organization",
                        &format!("/api/v2/organizations/{id}"),
                    )
                    .await?
                {
                    Some(Snapshot::Organization(org)) => Some(Arc::new(org)),
                    _ => None,
                },
            )
        };
        self.organizations
            .try_get_with((tenant.clone(), id), fetch)
            .await
            .map_err(unshare)
    }

    /// Each configured tenant's access, tried with one read of its users.
    pub async fn check_access(&self) -> Vec<(String, Result<String, ApiError>)> {
        let mut checks = Vec::new();
        for (tenant, api) in &self.tenants {
            let outcome = match self.fetch_listing(tenant, SmallSet::Users).await {
                Ok(Some(users)) => {
                    let detail =
                        format!("the token is accepted; {} users listed", users.items.len());
                    // Kept: enrichment needs this very list.
                    let key = (Arc::from(tenant.as_str()), SmallSet::Users);
                    self.lists.insert(key, Arc::new(users)).await;
                    Ok(detail)
                }
                Ok(None) => Err(ApiError::Refused {
                    api: "pipedrive",
                    status: 404,
                    body: format!(
                        "{}{} does not exist: is api_base_url right?",
                        api.base_url,
                        SmallSet::Users.first_page()
                    ),
                }),
                Err(err) => Err(err),
            };
            checks.push((tenant.clone(), outcome));
        }
        checks
    }

    /// Every item of `set` for `tenant`, all pages; `None` when the list
    /// itself is not found (404).
    async fn fetch_listing(
        &self,
        tenant: &str,
        set: SmallSet,
    ) -> Result<Option<Listing>, ApiError> {
        let mut items = HashMap::new();
        let mut path = set.first_page().to_owned();
        loop {
            let body = match self.get(tenant, set.endpoint(), &path).await? {
                Fetched::Found(body) => body,
                Fetched::NotFound if items.is_empty() => return Ok(None),
                Fetched::NotFound => break,
            };
            for item in body
                .get("data")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = item.get("id").and_then(Value::as_i64) {
                    items.insert(id, item.clone());
                }
            }
            let Some(cursor) = body
                .get("additional_data")
                .and_then(|a| a.get("next_cursor"))
                .and_then(Value::as_str)
            else {
                break;
            };
            path = format!("{}&cursor={cursor}", set.first_page());
        }
        Ok(Some(Listing {
            items,
            fetched: Instant::now(),
        }))
    }

    /// Item `id` of `set`, from the tenant's whole list.
    async fn listed(
        &self,
        tenant: &Arc<str>,
        set: SmallSet,
        id: i64,
    ) -> Result<Option<Value>, ApiError> {
        let key = (tenant.clone(), set);
        let listing = || {
            self.lists.try_get_with(key.clone(), async {
                let listing = self.fetch_listing(tenant, set).await?;
                Ok(Arc::new(listing.unwrap_or_else(|| Listing {
                    items: HashMap::new(),
                    fetched: Instant::now(),
                })))
            })
        };
        let found = listing().await.map_err(unshare)?;
        if let Some(item) = found.items.get(&id) {
            return Ok(Some(item.clone()));
        }
        // Not listed: the list may be older than the item.
        if found.fetched.elapsed() < self.not_found_ttl {
            return Ok(None);
        }
        self.lists.invalidate(&key).await;
        let found = listing().await.map_err(unshare)?;
        Ok(found.items.get(&id).cloned())
    }

    pub async fn stage(&self, tenant: &Arc<str>, id: i64) -> Result<Found<Stage>, ApiError> {
        let data = self.listed(tenant, SmallSet::Stages, id).await?;
        Ok(data.map(|d| {
            Arc::new(Stage {
                name: d.get("name").and_then(Value::as_str).map(str::to_owned),
                order_nr: d.get("order_nr").and_then(Value::as_i64),
                pipeline_id: d.get("pipeline_id").and_then(Value::as_i64),
                deal_probability: d.get("deal_probability").and_then(Value::as_f64),
            })
        }))
    }

    pub async fn pipeline_name(
        &self,
        tenant: &Arc<str>,
        id: i64,
    ) -> Result<Found<String>, ApiError> {
        Ok(name_of(self.listed(tenant, SmallSet::Pipelines, id).await?))
    }

    pub async fn user_name(&self, tenant: &Arc<str>, id: i64) -> Result<Found<String>, ApiError> {
        Ok(name_of(self.listed(tenant, SmallSet::Users, id).await?))
    }

    pub async fn fields(
        &self,
        tenant: &Arc<str>,
        kind: FieldKind,
    ) -> Result<Arc<FieldDefinitions>, ApiError> {
        let fetch = async {
            let mut definitions = FieldDefinitions::default();
            let mut start = 0_u64;
            loop {
                let path = format!("{}?start={start}&limit=500", kind.path());
                let body = match self.get(tenant, "fields", &path).await? {
                    Fetched::Found(body) => body,
                    Fetched::NotFound => break,
                };
                let items = body
                    .get("data")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for item in &items {
                    let Some(key) = item.get("key").and_then(Value::as_str) else {
                        continue;
                    };
                    let options = item
                        .get("options")
                        .and_then(Value::as_array)
                        .map(|options| {
                            options
                                .iter()
                                .filter_map(|o| {
                                    let id = o.get("id")?;
                                    let id = id.as_i64().or_else(|| id.as_str()?.parse().ok())?;
                                    Some((id, o.get("label")?.as_str()?.to_owned()))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    definitions.fields.insert(
                        key.to_owned(),
                        FieldDefinition {
                            name: item
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            field_type: item
                                .get("field_type")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            options,
                        },
                    );
                }
                // v1 documents the pagination both nested and flat.
                let extra = body.get("additional_data");
                let pagination = extra.and_then(|a| a.get("pagination")).or(extra);
                let more = pagination
                    .and_then(|p| p.get("more_items_in_collection"))
                    .and_then(Value::as_bool)
                    == Some(true);
                if !more || items.is_empty() {
                    break;
                }
                start = pagination
                    .and_then(|p| p.get("next_start"))
                    .and_then(Value::as_u64)
                    .unwrap_or(start + items.len() as u64);
            }
            Ok(Arc::new(definitions))
        };
        self.fields
            .try_get_with((tenant.clone(), kind), fetch)
            .await
            .map_err(unshare)
    }

    /// The person's deal list (fetched once per TTL, all pages).
    pub async fn person_deals(
        &self,
        tenant: &Arc<str>,
        person_id: i64,
    ) -> Result<Arc<Mutex<PersonDeals>>, ApiError> {
        let fetch = async {
            let mut list = PersonDeals::default();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/api/v2/deals?person_id={person_id}&limit=500");
                if let Some(cursor) = &cursor {
                    path.push_str("&cursor=");
                    path.push_str(cursor);
                }
                let body = match self.get(tenant, "deals", &path).await? {
                    Fetched::Found(body) => body,
                    Fetched::NotFound => break,
                };
                for deal in body
                    .get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let Some(id) = deal.get("id").and_then(Value::as_i64) else {
                        continue;
                    };
                    list.deals.insert(
                        id,
                        DealSummary {
                            value: deal.get("value").and_then(Value::as_f64).unwrap_or(0.0),
                            status: deal
                                .get("status")
                                .and_then(Value::as_str)
                                .unwrap_or("open")
                                .to_owned(),
                            as_of_micro: deal
                                .get("update_time")
                                .and_then(Value::as_str)
                                .and_then(time_micros)
                                .unwrap_or(0),
                        },
                    );
                }
                cursor = body
                    .get("additional_data")
                    .and_then(|a| a.get("next_cursor"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
            Ok(Arc::new(Mutex::new(list)))
        };
        self.person_deals
            .try_get_with((tenant.clone(), person_id), fetch)
            .await
            .map_err(unshare)
    }

    /// A person's deal list if it is cached (to move a deal off it without a call).
    pub async fn cached_person_deals(
        &self,
        tenant: &Arc<str>,
        person_id: i64,
    ) -> Option<Arc<Mutex<PersonDeals>>> {
        self.person_deals.get(&(tenant.clone(), person_id)).await
    }

    /// Forget what an event says has changed.
    pub async fn invalidate(&self, tenant: &Arc<str>, object: &str, id: i64) {
        let key = (tenant.clone(), id);
        match object {
            "person" => self.persons.invalidate(&key).await,
            "organization" => self.organizations.invalidate(&key).await,
            _ => {
                if let Some(set) = SmallSet::of_object(object) {
                    self.lists.invalidate(&(tenant.clone(), set)).await;
                }
            }
        }
    }
}

fn name_of(data: Option<Value>) -> Found<String> {
    data.and_then(|d| {
        d.get("name")
            .and_then(Value::as_str)
            .map(|n| Arc::new(n.to_owned()))
    })
}

fn unshare(err: Arc<ApiError>) -> ApiError {
    (*err).clone()
}

/// RFC 3339 (or Pipedrive's `YYYY-MM-DD HH:MM:SS`, UTC) to microseconds.
pub fn time_micros(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(&pipedrive::normalize_time(text))
        .ok()
        .map(|t| t.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use tributary_fake_apis::{FakePipedrive, PipedriveState, Running, shapes};

    use super::*;

    const TOKEN: &str = "pd-token";

    async fn api(not_found_ttl_seconds: u64) -> (Running<PipedriveState>, PipedriveApi) {
        let mut state = PipedriveState::default();
        let account = state.account(TOKEN);
        account.pipelines.insert(1, shapes::pipeline(1, "Sales"));
        account.pipelines.insert(2, shapes::pipeline(2, "Renewals"));
        for id in 1..=3 {
            let stage = shapes::stage(id, 1, id, &format!("Stage {id}"), id * 10);
            account.stages.insert(id, stage);
        }
        account.users.insert(7, shapes::user(7, "Morgan Lee"));
        // Two pages of stages: the list follows the cursor.
        state.page_size = 2;
        let fake = FakePipedrive::start(state).await.expect("the fake starts");
        let settings = EnrichmentSettings {
            not_found_ttl_seconds,
            ..EnrichmentSettings::default()
        };
        let api = PipedriveApi::new(
            vec![TenantAccess {
                tenant: "acme".into(),
                base_url: fake.base_url(),
                token: Secret::new(TOKEN),
                requests_per_2s: 100,
            }],
            &settings,
            reqwest::Client::new(),
        );
        (fake, api)
    }

    #[tokio::test]
    async fn stages_pipelines_and_users_are_fetched_whole_once_per_tenant() {
        let (fake, api) = api(30).await;
        let tenant: Arc<str> = Arc::from("acme");
        for id in [1, 2, 3, 1, 3] {
            let stage = api
                .stage(&tenant, id)
                .await
                .expect("stage")
                .expect("listed");
            assert_eq!(stage.name.as_deref(), Some(format!("Stage {id}").as_str()));
            assert_eq!(stage.pipeline_id, Some(1));
        }
        assert_eq!(
            api.pipeline_name(&tenant, 2)
                .await
                .expect("pipeline")
                .as_deref()
                .map(String::as_str),
            Some("Renewals")
        );
        assert_eq!(
            api.user_name(&tenant, 7)
                .await
                .expect("user")
                .as_deref()
                .map(String::as_str),
            Some("Morgan Lee")
        );
        // Unknown ids within the not-found lifetime: no call at all.
        assert_eq!(api.stage(&tenant, 99).await.expect("answer"), None);
        assert_eq!(api.user_name(&tenant, 99).await.expect("answer"), None);
        let state = fake.state();
        assert_eq!(state.calls_to("/api/v2/stages?"), 2, "two pages, once");
        assert_eq!(state.calls_to("/api/v2/pipelines?"), 1);
        assert_eq!(state.calls_to("/api/v1/users"), 1);
        assert_eq!(state.calls_to("/api/v2/stages/"), 0, "never one by one");
    }

    #[tokio::test]
    async fn a_new_stage_is_found_by_fetching_the_list_again() {
        let (fake, api) = api(0).await;
        let tenant: Arc<str> = Arc::from("acme");
        assert!(api.stage(&tenant, 1).await.expect("stage").is_some());
        // Added after the list was fetched: a miss fetches it again.
        fake.state()
            .account(TOKEN)
            .stages
            .insert(4, shapes::stage(4, 1, 4, "Won over", 90));
        let stage = api
            .stage(&tenant, 4)
            .await
            .expect("stage")
            .expect("listed now");
        assert_eq!(stage.name.as_deref(), Some("Won over"));
        let calls = fake.state().calls_to("/api/v2/stages?");
        assert_eq!(calls, 4, "two pages, then two pages again");

        // A renamed stage is read again once an event says it changed.
        fake.state()
            .account(TOKEN)
            .stages
            .insert(2, shapes::stage(2, 1, 2, "Qualified", 20));
        let cached = api.stage(&tenant, 2).await.expect("stage").expect("listed");
        assert_eq!(cached.name.as_deref(), Some("Stage 2"), "cached until told");
        api.invalidate(&tenant, "stage", 2).await;
        let renamed = api.stage(&tenant, 2).await.expect("stage").expect("listed");
        assert_eq!(renamed.name.as_deref(), Some("Qualified"));
    }
}
