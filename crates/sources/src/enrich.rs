//! The enricher's side of a platform: [`SourceEnricher`], what it is built
//! from, and the pipeline fields every enriched event ends with.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use tributary_enrichment::EnrichmentSettings;
use tributary_enrichment::api_client::ApiError;
use tributary_enrichment::email_validation::EmailValidator;
use tributary_enrichment::flatten::FlatRecord;
use tributary_enrichment::internal_events;
use tributary_enrichment::oauth::TokenStore;
use tributary_envelope::RawEvent;

use crate::SourceConfigError;

/// A boxed future that can move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Builds a platform's enricher; called once at the enricher's start.
pub type BuildSourceEnricher =
    fn(context: &EnricherContext<'_>) -> Result<Box<dyn SourceEnricher>, SourceConfigError>;

/// What a platform's enricher is built from.
pub struct EnricherContext<'a> {
    /// Every tenant's `[tenants.<tenant>.<platform>]` section.
    pub tenants: Vec<(&'a str, &'a serde_json::Value)>,
    /// `[enrichment]`: timeouts, retries, breaker, cache lifetimes.
    pub settings: &'a EnrichmentSettings,
    /// One HTTP client (and connection pool) for every API.
    pub http: reqwest::Client,
    /// The email verifier, shared by every platform; `None` when none is configured.
    pub email: Option<Arc<EmailValidator>>,
}

/// A platform's enrichment: one raw event in, one flat JSON object out.
pub trait SourceEnricher: Send + Sync {
    /// The enriched event for `raw`, whose `source` is this platform.
    /// Lookups that fail make the event partial, never an error: an error
    /// means the event cannot be enriched at all and goes to the dead-letter topic.
    fn enrich<'a>(&'a self, raw: &'a RawEvent) -> BoxFuture<'a, Result<Enriched, EnrichFailure>>;

    /// Tries every configured tenant's API access once, with one cheap
    /// authenticated read, so a wrong token or address shows at start, per
    /// tenant, rather than as partial events later.
    fn check_access(&self) -> BoxFuture<'_, Vec<AccessCheck>> {
        Box::pin(async { Vec::new() })
    }

    /// What a platform's subscriptions need from time to time to keep
    /// delivering (subscriptions that expire), per tenant, with what it came
    /// to. The enricher calls it at start and every [`UPKEEP_EVERY`].
    fn upkeep(&self) -> BoxFuture<'_, Vec<AccessCheck>> {
        Box::pin(async { Vec::new() })
    }
}

/// How often the enricher runs every platform's [`SourceEnricher::upkeep`].
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(6 * 3_600);

/// What one tenant's API access came to when tried.
#[derive(Debug)]
pub struct AccessCheck {
    pub tenant: String,
    /// What the API answered (e.g. how many users it lists), or why not.
    pub outcome: Result<String, ApiError>,
}

/// An enriched event, ready to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enriched {
    /// The flat JSON object.
    pub payload: Vec<u8>,
    /// Every lookup succeeded (`pipeline_enrichment_status` is `complete`).
    pub complete: bool,
    /// The lookups that failed (`pipeline_enrichment_missing`).
    pub missing: Vec<&'static str>,
    /// A failed lookup may succeed if asked again later (the API was down
    /// or over budget), so the event is worth enriching again.
    pub may_heal: bool,
}

impl Enriched {
    /// Serialises a finished record (see [`put_pipeline_fields`]) whose
    /// failed lookups are `missing`.
    pub fn from_record(record: &FlatRecord, missing: Missing) -> Result<Self, EnrichFailure> {
        let payload = record.to_json_bytes().map_err(|collision| EnrichFailure {
            reason: FailureReason::FlattenCollision,
            message: collision.to_string(),
        })?;
        Ok(Enriched {
            payload,
            complete: missing.is_empty(),
            may_heal: missing.may_heal,
            missing: missing.names,
        })
    }
}

/// Why an event could not be enriched at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.code())]
pub struct EnrichFailure {
    pub reason: FailureReason,
    pub message: String,
}

/// The dead-letter reasons a platform's enricher may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// The body cannot be read as the platform's payload.
    UnreadableBody,
    /// Two fields of the event flatten to the same key.
    FlattenCollision,
}

impl FailureReason {
    /// The `reason` of the dead-letter record and of the metric.
    pub fn code(self) -> &'static str {
        match self {
            FailureReason::UnreadableBody => "unreadable_body",
            FailureReason::FlattenCollision => "flatten_collision",
        }
    }
}

impl EnrichFailure {
    pub fn unreadable_body(message: impl Into<String>) -> Self {
        EnrichFailure {
            reason: FailureReason::UnreadableBody,
            message: message.into(),
        }
    }
}

/// Every tenant's API client, made by `make` (`None` for a tenant without
/// API access); the token store is opened once, when a tenant uses OAuth.
pub fn api_clients<T, A>(
    source_name: &'static str,
    tenants: &BTreeMap<String, T>,
    context: &EnricherContext<'_>,
    uses_oauth: impl Fn(&T) -> bool,
    make: impl Fn(&str, &T, Option<Arc<TokenStore>>) -> Result<Option<A>, String>,
) -> Result<BTreeMap<String, A>, SourceConfigError> {
    let refusal = |tenant: &str, reason: String| SourceConfigError::Tenant {
        tenant: tenant.to_owned(),
        source_name,
        reason,
    };
    let mut store = None;
    if let Some((tenant, _)) = tenants.iter().find(|(_, t)| uses_oauth(t)) {
        store = TokenStore::open(&context.settings.token_store)
            .map_err(|err| refusal(tenant, err.to_string()))?
            .map(Arc::new);
    }
    let mut clients = BTreeMap::new();
    for (tenant, settings) in tenants {
        if let Some(client) =
            make(tenant, settings, store.clone()).map_err(|reason| refusal(tenant, reason))?
        {
            clients.insert(tenant.clone(), client);
        }
    }
    Ok(clients)
}

/// Tries each tenant's API once with `check` (see
/// [`SourceEnricher::check_access`]), in tenant order.
pub async fn check_each<'a, A, F, Fut>(apis: &'a BTreeMap<String, A>, check: F) -> Vec<AccessCheck>
where
    F: Fn(&'a A) -> Fut,
    Fut: Future<Output = Result<String, ApiError>>,
{
    let mut checks = Vec::with_capacity(apis.len());
    for (tenant, api) in apis {
        checks.push(AccessCheck {
            tenant: tenant.clone(),
            outcome: check(api).await,
        });
    }
    checks
}

/// The lookups that failed for one event, in the order they were noticed.
#[derive(Debug, Default)]
pub struct Missing {
    names: Vec<&'static str>,
    /// One of them failed for a reason that may pass.
    may_heal: bool,
}

impl Missing {
    /// The lookup's value, or `None` with `what` noted as missing.
    pub fn note<T>(&mut self, what: &'static str, result: Result<T, ApiError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::debug!(what, error = %err, "lookup failed; the event will be partial");
                internal_events::missing(what);
                self.may_heal |= err.may_pass();
                if !self.names.contains(&what) {
                    self.names.push(what);
                }
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The `pipeline_*` fields every enriched event ends with: its identity in
/// the pipeline, the collector's verdict, and whether enrichment is complete.
pub fn put_pipeline_fields(record: &mut FlatRecord, raw: &RawEvent, missing: &Missing) {
    let keys = raw.keys.clone().unwrap_or_default();
    record.put("pipeline_event_id", raw.event_id.as_str());
    record.put("pipeline_tenant", raw.tenant.as_str());
    record.put("pipeline_source", raw.source.as_str());
    record.put("pipeline_payload_version", keys.payload_version);
    record.put("pipeline_received_at_micro", raw.received_at_micros);
    record.put(
        "pipeline_warnings",
        raw.warnings
            .iter()
            .map(|w| w.code.clone())
            .collect::<Vec<_>>(),
    );
    record.put(
        "pipeline_enriched_at_micro",
        chrono::Utc::now().timestamp_micros(),
    );
    let status = if missing.is_empty() {
        "complete"
    } else {
        "partial"
    };
    record.put("pipeline_enrichment_status", status);
    record.put("pipeline_enrichment_missing", missing.names.clone())
}

/// A small table of an account read whole and shared (its currencies, id to
/// ISO code): read once, and again when asked for a key it lacks (one
/// added since).
pub struct AccountTable {
    rows: moka::future::Cache<(), Arc<BTreeMap<String, String>>>,
}

impl Default for AccountTable {
    fn default() -> Self {
        AccountTable {
            rows: moka::future::Cache::new(1),
        }
    }
}

impl AccountTable {
    /// The value of `key`, the table read with `read` when needed.
    pub async fn get<F, Fut>(&self, key: &str, read: F) -> Result<Option<String>, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<BTreeMap<String, String>, ApiError>>,
    {
        let mut rows = self.rows(&read).await?;
        if !rows.contains_key(key) {
            self.rows.invalidate(&()).await;
            rows = self.rows(&read).await?;
        }
        Ok(rows.get(key).cloned())
    }

    async fn rows<F, Fut>(&self, read: &F) -> Result<Arc<BTreeMap<String, String>>, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<BTreeMap<String, String>, ApiError>>,
    {
        self.rows
            .try_get_with((), async { read().await.map(Arc::new) })
            .await
            .map_err(|err| (*err).clone())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use tributary_envelope::EventKeys;

    use super::*;

    fn raw() -> RawEvent {
        RawEvent {
            tenant: "acme".into(),
            source: "pipedrive".into(),
            event_id: "e-1".into(),
            received_at_micros: 7,
            keys: Some(EventKeys {
                payload_version: "2.0".into(),
                ..EventKeys::default()
            }),
            ..RawEvent::default()
        }
    }

    #[test]
    fn an_event_with_a_failed_lookup_is_partial_and_says_what_is_missing() {
        let mut missing = Missing::default();
        let failed: Result<(), ApiError> = Err(ApiError::Unavailable {
            api: "x",
            reason: "down".into(),
        });
        assert_eq!(missing.note("person", failed.clone()), None);
        assert_eq!(missing.note("person", failed), None);
        assert_eq!(missing.note("stage", Ok(3)), Some(3));
        let mut record = FlatRecord::new();
        put_pipeline_fields(&mut record, &raw(), &missing);
        let enriched = Enriched::from_record(&record, missing).expect("no collision");
        assert!(!enriched.complete);
        assert_eq!(enriched.missing, ["person"]);
        assert!(enriched.may_heal, "an unavailable API may come back");
        let event: Value = serde_json::from_slice(&enriched.payload).expect("json");
        assert_eq!(event["pipeline_enrichment_status"], "partial");
        assert_eq!(event["pipeline_enrichment_missing"], json!(["person"]));
        assert_eq!(event["pipeline_payload_version"], "2.0");

        let mut record = FlatRecord::new();
        put_pipeline_fields(&mut record, &raw(), &Missing::default());
        let enriched = Enriched::from_record(&record, Missing::default()).expect("unique");
        assert!(enriched.complete && !enriched.may_heal);
    }

    #[test]
    fn only_a_lookup_that_may_pass_makes_a_partial_event_worth_enriching_again() {
        let refused = |missing: &mut Missing| {
            missing.note::<()>(
                "person",
                Err(ApiError::Refused {
                    api: "x",
                    status: 401,
                    body: "bad token".into(),
                }),
            )
        };
        let unconfigured = |missing: &mut Missing| {
            missing.note::<()>(
                "stage",
                Err(ApiError::NotConfigured {
                    api: "x",
                    reason: "no token".into(),
                }),
            )
        };
        let mut missing = Missing::default();
        refused(&mut missing);
        unconfigured(&mut missing);
        let mut record = FlatRecord::new();
        put_pipeline_fields(&mut record, &raw(), &missing);
        let enriched = Enriched::from_record(&record, missing).expect("unique");
        assert!(!enriched.complete && !enriched.may_heal);

        let mut missing = Missing::default();
        refused(&mut missing);
        missing.note::<()>(
            "organization",
            Err(ApiError::Unavailable {
                api: "x",
                reason: "429 past the budget".into(),
            }),
        );
        let enriched = Enriched::from_record(&record, missing).expect("unique");
        assert!(enriched.may_heal);
        assert_eq!(enriched.missing, ["person", "organization"]);
    }

    #[test]
    fn a_collision_is_a_flatten_collision_failure() {
        let mut record = FlatRecord::new();
        record.put("deal_id", 1);
        record.put("deal_id", 2);
        let failure = Enriched::from_record(&record, Missing::default()).expect_err("collision");
        assert_eq!(failure.reason.code(), "flatten_collision");
        assert!(failure.message.contains("deal_id"), "{failure}");
    }
}
