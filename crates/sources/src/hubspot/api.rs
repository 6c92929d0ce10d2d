//! HubSpot CRM API v3 lookups, per portal: records read in batches, their
//! associations (v4), and the portal's definitions (deal pipelines, owners,
//! property definitions) cached.
//!
//! A burst of events about many records costs a handful of calls: each
//! record lookup waits up to [`BATCH_WINDOW`] for others of the same object
//! type, then one `batch/read` answers them all (100 ids a call, 50 with
//! property history), and likewise one v4 association read per pair of
//! object types. A batch takes its lookups only once the request budget
//! has a slot for it, and a lookup of a record being read joins that read,
//! so the busier the portal and the tighter its budget, the fuller each
//! call.
//!
//! Every read is kept with the time it started. An event may use a read
//! that started after the collector received it: that read saw the change
//! the event reports, so HubSpot's bursts (a creation and a property change
//! for each property set with it) cost one read, not one per event. A
//! record an event only refers to (a deal's company) may be any read of the
//! last `entity_ttl_seconds`; definitions are kept `definitions_ttl_seconds`.
//! Failures are never kept. Each portal has its own request budget (the
//! app's burst limit per 10 s, read from `X-HubSpot-RateLimit-*`) and
//! circuit breaker.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::future::Cache;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tributary_config::Secret;
use tributary_enrichment::EnrichmentSettings;
use tributary_enrichment::api_client::{
    ApiClient, ApiError, Fetched, RateLimitHeaders, RequestBudget, ResetHeader, RetryPolicy,
};

/// How long a record lookup waits for others to share its batch.
pub const BATCH_WINDOW: Duration = Duration::from_millis(25);
/// Ids per batch read, and per batch read with property history.
pub const BATCH_LIMIT: usize = 100;
pub const BATCH_WITH_HISTORY_LIMIT: usize = 50;

/// HubSpot's rate-limit headers: what is left of the rolling 10-second window.
const RATE_LIMIT_HEADERS: RateLimitHeaders = RateLimitHeaders {
    remaining: "x-hubspot-ratelimit-remaining",
    reset: ResetHeader::WindowMillis("x-hubspot-ratelimit-interval-milliseconds"),
};

/// The CRM object types Tributary reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    Deals,
    Contacts,
    Companies,
    Calls,
    Emails,
    Meetings,
    Tasks,
    Notes,
}

impl ObjectType {
    /// The name in API paths (`/crm/v3/objects/{type}`).
    pub fn path(self) -> &'static str {
        match self {
            ObjectType::Deals => "deals",
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
            ObjectType::Calls => "calls",
            ObjectType::Emails => "emails",
            ObjectType::Meetings => "meetings",
            ObjectType::Tasks => "tasks",
            ObjectType::Notes => "notes",
        }
    }

    /// From the webhook's object name (`deal`, `call`...).
    pub fn from_object(object: &str) -> Option<ObjectType> {
        Some(match object {
            "deal" => ObjectType::Deals,
            "contact" => ObjectType::Contacts,
            "company" => ObjectType::Companies,
            "call" => ObjectType::Calls,
            "email" => ObjectType::Emails,
            "meeting" => ObjectType::Meetings,
            "task" => ObjectType::Tasks,
            "note" => ObjectType::Notes,
            _ => return None,
        })
    }

    /// The standard properties the enriched event carries.
    pub fn properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Deals => &[
                "dealname",
                "amount",
                "deal_currency_code",
                "pipeline",
                "dealstage",
                "closedate",
                "createdate",
                "hs_is_closed",
                "hs_is_closed_won",
                "closed_lost_reason",
                "hubspot_owner_id",
                "hs_lastmodifieddate",
                "hs_merged_object_ids",
            ],
            ObjectType::Contacts => &[
                "firstname",
                "lastname",
                "email",
                "phone",
                "jobtitle",
                "associatedcompanyid",
                "hubspot_owner_id",
                "lifecyclestage",
                "hs_lead_status",
                "lastmodifieddate",
                "hs_merged_object_ids",
            ],
            ObjectType::Companies => &[
                "name",
                "domain",
                "industry",
                "numberofemployees",
                "hubspot_owner_id",
                "hs_lastmodifieddate",
                "hs_merged_object_ids",
            ],
            ObjectType::Calls => &[
                "hs_call_title",
                "hs_timestamp",
                "hs_call_status",
                "hs_call_direction",
                "hubspot_owner_id",
            ],
            ObjectType::Emails => &[
                "hs_email_subject",
                "hs_timestamp",
                "hs_email_status",
                "hs_email_direction",
                "hubspot_owner_id",
            ],
            ObjectType::Meetings => &[
                "hs_meeting_title",
                "hs_timestamp",
                "hs_meeting_outcome",
                "hubspot_owner_id",
            ],
            ObjectType::Tasks => &[
                "hs_task_subject",
                "hs_timestamp",
                "hs_task_status",
                "hs_task_completion_date",
                "hubspot_owner_id",
            ],
            ObjectType::Notes => &["hs_timestamp", "hubspot_owner_id"],
        }
    }

    /// Whether custom properties of this type are read (engagements' are not).
    pub fn has_custom_properties(self) -> bool {
        matches!(
            self,
            ObjectType::Deals | ObjectType::Contacts | ObjectType::Companies
        )
    }

    /// Properties read with their history.
    fn with_history(self) -> &'static [&'static str] {
        match self {
            ObjectType::Deals => &["dealstage"],
            _ => &[],
        }
    }
}

/// One CRM record as a batch read answered it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    pub id: String,
    pub properties: BTreeMap<String, Option<String>>,
    /// Per property with history: `(value, timestamp, sourceType)`, newest first as HubSpot lists them.
    pub history: BTreeMap<String, Vec<(String, String, String)>>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub archived: bool,
    pub archived_at: Option<String>,
}

impl Record {
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name)?.as_deref()
    }

    fn from_json(value: &Value) -> Option<Record> {
        let id = crate::hubspot::id_text(value.get("id")?)?;
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let properties = value
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(k, v)| (k.clone(), text(v)))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default();
        let history = value
            .get("propertiesWithHistory")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(name, entries)| {
                        let entries = entries
                            .as_array()
                            .map(|entries| {
                                entries
                                    .iter()
                                    .filter_map(|e| {
                                        Some((
                                            text(e.get("value")?)?,
                                            text(e.get("timestamp")?)?,
                                            e.get("sourceType").and_then(text).unwrap_or_default(),
                                        ))
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        (name.clone(), entries)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Record {
            id,
            properties,
            history,
            created_at: value.get("createdAt").and_then(text),
            updated_at: value.get("updatedAt").and_then(text),
            archived: value
                .get("archived")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            archived_at: value.get("archivedAt").and_then(text),
        })
    }

    /// The ids this record answers for: its own and those merged into it.
    fn answers_for(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(self.id.clone()).chain(
            self.property("hs_merged_object_ids")
                .unwrap_or_default()
                .split(';')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
        )
    }
}

/// A deal pipeline's stage.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineStage {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    /// `metadata.probability` as HubSpot sends it ("0.2").
    pub probability: Option<String>,
    pub is_closed: bool,
}

impl PipelineStage {
    /// `open`, `won` or `lost`: a closed stage with probability 1 is won.
    pub fn outcome(&self) -> &'static str {
        let probability = self
            .probability
            .as_deref()
            .and_then(|p| p.trim().parse::<f64>().ok());
        match (self.is_closed, probability) {
            (false, _) => "open",
            (true, Some(p)) if p >= 1.0 => "won",
            (true, _) => "lost",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DealPipeline {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    pub stages: Vec<PipelineStage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    pub name: Option<String>,
    pub email: Option<String>,
}

/// A property's definition, for custom fields and enumeration labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: String,
    pub label: String,
    pub field_type: String,
    pub custom: bool,
    /// Enumeration options: (value, label).
    pub options: Vec<(String, String)>,
}

/// What a record lookup answers.
pub type Looked = Result<Option<Arc<Record>>, ApiError>;

/// A read kept with when it started (µs since the epoch).
#[derive(Debug, Clone)]
struct Read<T> {
    started_micro: i64,
    answer: T,
}

fn now_micro() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
type Waiter<T> = oneshot::Sender<Result<T, ApiError>>;
/// Lookups by id, each with who waits for its answer.
type Lookups<T> = Vec<(String, Waiter<T>)>;

/// Lookups of one kind: those waiting for the next batch call, and those
/// joined to the call under way.
struct Pending<T> {
    waiters: Vec<(String, Waiter<T>)>,
    scheduled: bool,
    /// Ids the call under way reads, with when it started (µs since the
    /// epoch). A lookup that may use that read waits for it rather than
    /// queueing the same id for the next call: while a batch waits for the
    /// request budget, a busy record's later events would otherwise read
    /// it again.
    in_flight: HashMap<String, (i64, Vec<Waiter<T>>)>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            waiters: Vec::new(),
            scheduled: false,
            in_flight: HashMap::new(),
        }
    }
}

/// Ids associated with one record, per target type: `(id, is primary)`.
pub type Associated = Vec<(String, bool)>;

/// One portal's API.
pub struct Portal {
    client: ApiClient,
    base_url: String,
    token: Secret,
    records: Mutex<HashMap<ObjectType, Pending<Option<Arc<Record>>>>>,
    associations: Mutex<HashMap<(ObjectType, ObjectType), Pending<Associated>>>,
    /// Record reads, by object type and id.
    reads: Cache<(ObjectType, String), Read<Option<Arc<Record>>>>,
    /// Association reads, by the pair of types and the record's id.
    linked: Cache<(ObjectType, ObjectType, String), Read<Associated>>,
    pipelines: Cache<(), Arc<Vec<DealPipeline>>>,
    owners: Cache<(), Arc<HashMap<String, Owner>>>,
    properties: Cache<ObjectType, Arc<Vec<Property>>>,
}

/// One portal's access, from its tenant's settings.
pub struct PortalAccess {
    pub tenant: String,
    pub base_url: String,
    pub token: Secret,
    pub requests_per_10s: u32,
}

/// Every configured portal's API, by tenant.
pub struct HubSpotApi {
    portals: HashMap<String, Arc<Portal>>,
}

impl HubSpotApi {
    pub fn new(
        access: Vec<PortalAccess>,
        settings: &EnrichmentSettings,
        http: reqwest::Client,
    ) -> Self {
        let policy = RetryPolicy::from_settings(settings);
        let ttl = |seconds: u64| Duration::from_secs(seconds.max(1));
        let portals = access
            .into_iter()
            .map(|access| {
                let budget = RequestBudget::new(access.requests_per_10s, Duration::from_secs(10))
                    .with_headers(RATE_LIMIT_HEADERS);
                let portal = Portal {
                    client: ApiClient::new("hubspot", http.clone(), policy.clone(), budget),
                    base_url: access.base_url.trim_end_matches('/').to_owned(),
                    token: access.token,
                    records: Mutex::default(),
                    associations: Mutex::default(),
                    reads: Cache::builder()
                        .max_capacity(100_000)
                        .time_to_live(ttl(settings.entity_ttl_seconds))
                        .build(),
                    linked: Cache::builder()
                        .max_capacity(100_000)
                        .time_to_live(ttl(settings.entity_ttl_seconds))
                        .build(),
                    pipelines: Cache::builder()
                        .time_to_live(ttl(settings.definitions_ttl_seconds))
                        .build(),
                    owners: Cache::builder()
                        .time_to_live(ttl(settings.definitions_ttl_seconds))
                        .build(),
                    properties: Cache::builder()
                        .time_to_live(ttl(settings.definitions_ttl_seconds))
                        .build(),
                };
                (access.tenant, Arc::new(portal))
            })
            .collect();
        HubSpotApi { portals }
    }

    /// Every portal whose API access is configured, by tenant.
    pub fn portals(&self) -> impl Iterator<Item = (&String, &Arc<Portal>)> {
        self.portals.iter()
    }

    /// The tenant's portal, if its API access is configured.
    pub fn portal(&self, tenant: &str) -> Option<&Arc<Portal>> {
        self.portals.get(tenant)
    }
}

impl Portal {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .http()
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(self.token.expose())
    }

    /// The record as read no earlier than `not_before` (µs since the epoch:
    /// an event's receipt), from a read kept or a new one in a batch with
    /// others; `None` when HubSpot no longer has it.
    pub async fn record(self: &Arc<Self>, object: ObjectType, id: &str, not_before: i64) -> Looked {
        if let Some(read) = self.reads.get(&(object, id.to_owned())).await
            && read.started_micro >= not_before
        {
            return Ok(read.answer);
        }
        let (sender, receiver) = oneshot::channel();
        if enqueue(&self.records, object, id, not_before, sender) {
            let portal = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(BATCH_WINDOW).await;
                portal.flush_records(object).await;
            });
        }
        receiver.await.unwrap_or_else(|_| {
            Err(ApiError::Unavailable {
                api: "hubspot",
                reason: "the batch read was dropped".into(),
            })
        })
    }

    /// A record the event refers to: any read of the entity lifetime.
    pub async fn referenced(self: &Arc<Self>, object: ObjectType, id: &str) -> Looked {
        self.record(object, id, i64::MIN).await
    }

    /// Reads what is pending, then what gathered meanwhile, until nothing is.
    async fn flush_records(self: &Arc<Self>, object: ObjectType) {
        while any_pending(&self.records, object) {
            // Lookups keep gathering while the call waits for its slot.
            self.client.reserve().await;
            let Some((started_micro, waiters)) = take_pending(&self.records, object) else {
                break;
            };
            self.read_records(object, started_micro, waiters).await;
        }
    }

    async fn read_records(
        self: &Arc<Self>,
        object: ObjectType,
        started_micro: i64,
        waiters: Vec<(String, Waiter<Option<Arc<Record>>>)>,
    ) {
        let limit = if object.with_history().is_empty() {
            BATCH_LIMIT
        } else {
            BATCH_WITH_HISTORY_LIMIT
        };
        let properties = match self.property_names(object).await {
            Ok(names) => names,
            Err(err) => {
                let failed = |_: &str| Err(err.clone());
                answer_waiters(&self.records, object, waiters, failed);
                return;
            }
        };
        let mut ids: Vec<String> = waiters.iter().map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        let mut answers: HashMap<String, Looked> = HashMap::new();
        for chunk in ids.chunks(limit) {
            self.batch_read(object, &properties, chunk, false, &mut answers)
                .await;
        }
        // Archived records are left out of a plain read; their last state
        // and history are still there to read (a deletion keeps its past).
        let unfound: Vec<String> = ids
            .iter()
            .filter(|id| matches!(answers.get(*id), Some(Ok(None))))
            .cloned()
            .collect();
        for chunk in unfound.chunks(limit) {
            self.batch_read(object, &properties, chunk, true, &mut answers)
                .await;
        }
        for (id, answer) in &answers {
            if let Ok(found) = answer {
                let read = Read {
                    started_micro,
                    answer: found.clone(),
                };
                self.reads.insert((object, id.clone()), read).await;
            }
        }
        let answer = |id: &str| answers.get(id).cloned().unwrap_or(Ok(None));
        answer_waiters(&self.records, object, waiters, answer);
    }

    /// One `batch/read` call for `ids` (archived records only, when
    /// `archived`), its answers added to `answers`: an id the answer lacks
    /// is not found (HubSpot lists it in `errors`, OBJECT_NOT_FOUND).
    async fn batch_read(
        &self,
        object: ObjectType,
        properties: &[String],
        ids: &[String],
        archived: bool,
        answers: &mut HashMap<String, Looked>,
    ) {
        let body = json!({
            "inputs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            "properties": properties,
            "propertiesWithHistory": object.with_history(),
        });
        let path = format!(
            "/crm/v3/objects/{}/batch/read?archived={archived}",
            object.path()
        );
        let result = self
            .client
            .get_json("batch_read", || {
                self.request(reqwest::Method::POST, &path).json(&body)
            })
            .await;
        match result {
            Ok(Fetched::Found(answer)) => {
                let records = answer
                    .get("results")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Record::from_json)
                    .map(Arc::new);
                for record in records {
                    for id in record.answers_for() {
                        answers.insert(id, Ok(Some(record.clone())));
                    }
                }
                for id in ids {
                    answers.entry(id.clone()).or_insert(Ok(None));
                }
            }
            Ok(Fetched::NotFound) => {
                for id in ids {
                    answers.entry(id.clone()).or_insert(Ok(None));
                }
            }
            Err(err) => {
                for id in ids {
                    answers.insert(id.clone(), Err(err.clone()));
                }
            }
        }
    }

    /// The ids of `to` records associated with the `from` record, the
    /// primary one marked, as read no earlier than `not_before` (see
    /// [`Portal::record`]).
    pub async fn associations(
        self: &Arc<Self>,
        from: ObjectType,
        to: ObjectType,
        id: &str,
        not_before: i64,
    ) -> Result<Associated, ApiError> {
        if let Some(read) = self.linked.get(&(from, to, id.to_owned())).await
            && read.started_micro >= not_before
        {
            return Ok(read.answer);
        }
        let (sender, receiver) = oneshot::channel();
        if enqueue(&self.associations, (from, to), id, not_before, sender) {
            let portal = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(BATCH_WINDOW).await;
                portal.flush_associations(from, to).await;
            });
        }
        receiver.await.unwrap_or_else(|_| {
            Err(ApiError::Unavailable {
                api: "hubspot",
                reason: "the association read was dropped".into(),
            })
        })
    }

    /// Reads what is pending, then what gathered meanwhile, until nothing is.
    async fn flush_associations(self: &Arc<Self>, from: ObjectType, to: ObjectType) {
        while any_pending(&self.associations, (from, to)) {
            self.client.reserve().await;
            let Some((started_micro, waiters)) = take_pending(&self.associations, (from, to))
            else {
                break;
            };
            self.read_associations(from, to, started_micro, waiters)
                .await;
        }
    }

    async fn read_associations(
        self: &Arc<Self>,
        from: ObjectType,
        to: ObjectType,
        started_micro: i64,
        waiters: Vec<(String, Waiter<Associated>)>,
    ) {
        let mut ids: Vec<String> = waiters.iter().map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        let mut answers: HashMap<String, Result<Associated, ApiError>> = HashMap::new();
        let path = format!(
            "/crm/v4/associations/{}/{}/batch/read",
            from.path(),
            to.path()
        );
        for chunk in ids.chunks(BATCH_LIMIT) {
            let body = json!({
                "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            });
            let result = self
                .client
                .get_json("associations", || {
                    self.request(reqwest::Method::POST, &path).json(&body)
                })
                .await;
            match result {
                Ok(Fetched::Found(answer)) => {
                    for result in answer
                        .get("results")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let Some(from_id) = result
                            .get("from")
                            .and_then(|f| f.get("id"))
                            .and_then(crate::hubspot::id_text)
                        else {
                            continue;
                        };
                        let targets = result
                            .get("to")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(|target| {
                                let id = crate::hubspot::id_text(target.get("toObjectId")?)?;
                                let primary = target
                                    .get("associationTypes")
                                    .and_then(Value::as_array)
                                    .is_some_and(|types| {
                                        types.iter().any(|t| {
                                            t.get("label").and_then(Value::as_str)
                                                == Some("Primary")
                                        })
                                    });
                                Some((id, primary))
                            })
                            .collect();
                        answers.insert(from_id, Ok(targets));
                    }
                    // No associations: HubSpot lists the id under `errors`.
                    for id in chunk {
                        answers.entry(id.clone()).or_insert(Ok(Vec::new()));
                    }
                }
                Ok(Fetched::NotFound) => {
                    for id in chunk {
                        answers.insert(id.clone(), Ok(Vec::new()));
                    }
                }
                Err(err) => {
                    for id in chunk {
                        answers.insert(id.clone(), Err(err.clone()));
                    }
                }
            }
        }
        for (id, answer) in &answers {
            if let Ok(associated) = answer {
                let read = Read {
                    started_micro,
                    answer: associated.clone(),
                };
                self.linked.insert((from, to, id.clone()), read).await;
            }
        }
        let answer = |id: &str| answers.get(id).cloned().unwrap_or(Ok(Vec::new()));
        answer_waiters(&self.associations, (from, to), waiters, answer);
    }

    /// The portal's deal pipelines with their stages.
    pub async fn pipelines(&self) -> Result<Arc<Vec<DealPipeline>>, ApiError> {
        self.pipelines
            .try_get_with((), async {
                let answer = self
                    .client
                    .get_json("pipelines", || {
                        self.request(reqwest::Method::GET, "/crm/v3/pipelines/deals")
                    })
                    .await?;
                let results = match answer {
                    Fetched::Found(answer) => {
                        answer["results"].as_array().cloned().unwrap_or_default()
                    }
                    Fetched::NotFound => Vec::new(),
                };
                Ok(Arc::new(results.iter().filter_map(pipeline).collect()))
            })
            .await
            .map_err(|err: Arc<ApiError>| (*err).clone())
    }

    /// The portal's owners, by owner id (every page).
    pub async fn owners(&self) -> Result<Arc<HashMap<String, Owner>>, ApiError> {
        self.owners
            .try_get_with((), async {
                let mut owners = HashMap::new();
                let mut after: Option<String> = None;
                loop {
                    let path = match &after {
                        Some(after) => format!("/crm/v3/owners/?limit=500&after={after}"),
                        None => "/crm/v3/owners/?limit=500".to_owned(),
                    };
                    let answer = self
                        .client
                        .get_json("owners", || self.request(reqwest::Method::GET, &path))
                        .await?;
                    let Fetched::Found(answer) = answer else {
                        break;
                    };
                    for owner in answer["results"].as_array().into_iter().flatten() {
                        let Some(id) = owner.get("id").and_then(crate::hubspot::id_text) else {
                            continue;
                        };
                        let part =
                            |key: &str| owner.get(key).and_then(Value::as_str).unwrap_or_default();
                        let name = format!("{} {}", part("firstName"), part("lastName"))
                            .trim()
                            .to_owned();
                        owners.insert(
                            id,
                            Owner {
                                name: (!name.is_empty()).then_some(name),
                                email: owner
                                    .get("email")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned),
                            },
                        );
                    }
                    after = answer["paging"]["next"]["after"]
                        .as_str()
                        .map(str::to_owned)
                        .filter(|a| after.as_ref() != Some(a));
                    if after.is_none() {
                        break;
                    }
                }
                Ok(Arc::new(owners))
            })
            .await
            .map_err(|err: Arc<ApiError>| (*err).clone())
    }

    /// The property definitions of an object type.
    pub async fn property_definitions(
        &self,
        object: ObjectType,
    ) -> Result<Arc<Vec<Property>>, ApiError> {
        self.properties
            .try_get_with(object, async {
                let path = format!("/crm/v3/properties/{}", object.path());
                let answer = self
                    .client
                    .get_json("properties", || self.request(reqwest::Method::GET, &path))
                    .await?;
                let results = match answer {
                    Fetched::Found(answer) => {
                        answer["results"].as_array().cloned().unwrap_or_default()
                    }
                    Fetched::NotFound => Vec::new(),
                };
                Ok(Arc::new(results.iter().filter_map(property).collect()))
            })
            .await
            .map_err(|err: Arc<ApiError>| (*err).clone())
    }

    /// The property names a batch read asks for: the standard ones and,
    /// where kept, every custom one.
    async fn property_names(&self, object: ObjectType) -> Result<Vec<String>, ApiError> {
        let mut names: Vec<String> = object
            .properties()
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
        if object.has_custom_properties() {
            for property in self.property_definitions(object).await?.iter() {
                if property.custom && !names.contains(&property.name) {
                    names.push(property.name.clone());
                }
            }
        }
        Ok(names)
    }
}

/// Adds a lookup of `id` under `key`: joined to the call under way if that
/// read started no earlier than `not_before`, else queued for the next
/// call. True when the caller must schedule that call's flush.
fn enqueue<K: std::hash::Hash + Eq, T>(
    pending: &Mutex<HashMap<K, Pending<T>>>,
    key: K,
    id: &str,
    not_before: i64,
    waiter: Waiter<T>,
) -> bool {
    let mut pending = lock(pending);
    let pending = pending.entry(key).or_default();
    match pending.in_flight.get_mut(id) {
        Some((started_micro, joined)) if *started_micro >= not_before => {
            joined.push(waiter);
            false
        }
        _ => {
            pending.waiters.push((id.to_owned(), waiter));
            !std::mem::replace(&mut pending.scheduled, true)
        }
    }
}

/// Whether lookups wait under `key`; when none do, no flush is scheduled
/// any more: the next lookup schedules a new one.
fn any_pending<K: std::hash::Hash + Eq, T>(
    pending: &Mutex<HashMap<K, Pending<T>>>,
    key: K,
) -> bool {
    let mut pending = lock(pending);
    let pending = pending.entry(key).or_default();
    if pending.waiters.is_empty() {
        pending.scheduled = false;
        return false;
    }
    true
}

/// The lookups waiting under `key`, now in flight, with when their read
/// starts; or `None` (and no flush scheduled any more) when there are none:
/// the next lookup schedules a new flush.
fn take_pending<K: std::hash::Hash + Eq, T>(
    pending: &Mutex<HashMap<K, Pending<T>>>,
    key: K,
) -> Option<(i64, Lookups<T>)> {
    let mut pending = lock(pending);
    let pending = pending.entry(key).or_default();
    if pending.waiters.is_empty() {
        pending.scheduled = false;
        return None;
    }
    // Stamped before the call waits for the budget: the read it makes is
    // no older than this.
    let started_micro = now_micro();
    let waiters = std::mem::take(&mut pending.waiters);
    for (id, _) in &waiters {
        pending
            .in_flight
            .insert(id.clone(), (started_micro, Vec::new()));
    }
    Some((started_micro, waiters))
}

/// Answers a call's lookups and those joined to it; its ids are no longer
/// in flight.
fn answer_waiters<K: std::hash::Hash + Eq, T>(
    pending: &Mutex<HashMap<K, Pending<T>>>,
    key: K,
    waiters: Vec<(String, Waiter<T>)>,
    answer: impl Fn(&str) -> Result<T, ApiError>,
) {
    let joined: Vec<(String, Vec<Waiter<T>>)> = {
        let mut pending = lock(pending);
        let pending = pending.entry(key).or_default();
        waiters
            .iter()
            .filter_map(|(id, _)| {
                let (_, joined) = pending.in_flight.remove(id)?;
                Some((id.clone(), joined))
            })
            .collect()
    };
    for (id, waiter) in waiters {
        let _ = waiter.send(answer(&id));
    }
    for (id, joined) in joined {
        for waiter in joined {
            let _ = waiter.send(answer(&id));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn pipeline(value: &Value) -> Option<DealPipeline> {
    let stages = value["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|stage| {
            let metadata = &stage["metadata"];
            Some(PipelineStage {
                id: crate::hubspot::id_text(stage.get("id")?)?,
                label: text(stage, "label").unwrap_or_default(),
                display_order: stage["displayOrder"].as_i64().unwrap_or_default(),
                probability: metadata.get("probability").and_then(|p| {
                    p.as_str()
                        .map(str::to_owned)
                        .or_else(|| p.as_f64().map(|f| f.to_string()))
                }),
                is_closed: crate::hubspot::truthy(metadata.get("isClosed")),
            })
        })
        .collect();
    Some(DealPipeline {
        id: crate::hubspot::id_text(value.get("id")?)?,
        label: text(value, "label").unwrap_or_default(),
        display_order: value["displayOrder"].as_i64().unwrap_or_default(),
        stages,
    })
}

fn property(value: &Value) -> Option<Property> {
    Some(Property {
        name: text(value, "name")?,
        label: text(value, "label").unwrap_or_default(),
        field_type: text(value, "type").unwrap_or_default(),
        // HubSpot marks its own properties `hubspotDefined`; the rest are the account's.
        custom: !value["hubspotDefined"].as_bool().unwrap_or(false),
        options: value["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| Some((text(o, "value")?, text(o, "label").unwrap_or_default())))
            .collect(),
    })
}

#[cfg(test)]
mod tests;
