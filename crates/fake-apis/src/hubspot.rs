//! A fake HubSpot CRM API: the read endpoints the pipeline uses, per portal,
//! the portal chosen by the `Authorization: Bearer` access token.
//!
//! - `GET /crm/v3/objects/{objectType}/{id}` (`properties`,
//!   `propertiesWithHistory`, `associations`, `archived`, `idProperty`),
//!   `GET /crm/v3/objects/{objectType}` (`limit`, `after`) and
//!   `POST /crm/v3/objects/{objectType}/batch/read` (at most 100 inputs, 50
//!   with history; ids it cannot find make a `207` with `errors`);
//! - `POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read`;
//! - `GET /crm/v3/pipelines/deals[/{pipelineId}]`, `GET /crm/v3/owners[/{ownerId}]`,
//!   `GET /crm/v3/properties/{objectType}[/{propertyName}]`.
//!
//! Object types are named by plural, singular or type id (`deals`, `deal`,
//! `0-3`). Every answer to a known token carries a private app's
//! `X-HubSpot-RateLimit-*` headers; past the burst limit (per rolling 10 s)
//! or the daily one the answer is HubSpot's `429` with `policyName`
//! `TEN_SECONDLY_ROLLING` or `DAILY` and no `Retry-After`. An unknown token
//! gets HubSpot's `401`. Errors use HubSpot's body: `status`, `message`,
//! `correlationId`, `category` (and `context`, `subCategory` where HubSpot
//! sends them). [`Behaviour`] adds outages, storms of `429` (with
//! `Retry-After`) and failures every n-th request, as for the Pipedrive fake;
//! its `burst_per_2s` is Pipedrive's and unused here ([`HubSpotState::limits`]
//! holds HubSpot's).

mod portal;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub use portal::{
    AssociationType, ChangeSource, CrmObject, HubSpotPortal, ObjectId, ObjectRef, ObjectType,
    Owner, Pipeline, PipelineStage, PropertyDefinition, PropertyOption, PropertyVersion, Team,
    association_type, association_types, iso_millis, standard_definitions,
};
use portal::{Projection, owner_json, pipeline_json, property_json};

use crate::{Behaviour, Call, Running, serve};

/// The window HubSpot's burst limit counts requests over.
const BURST_WINDOW: Duration = Duration::from_secs(10);
/// Inputs a batch read takes; with `propertiesWithHistory`, fewer.
pub const BATCH_LIMIT: usize = 100;
pub const BATCH_WITH_HISTORY_LIMIT: usize = 50;

/// A private app's limits: requests per rolling 10 seconds, and per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub per_10_seconds: u32,
    pub daily: u32,
}

impl RateLimits {
    /// Free and Starter accounts.
    pub const STARTER: RateLimits = RateLimits {
        per_10_seconds: 100,
        daily: 250_000,
    };
    /// Professional accounts.
    pub const PROFESSIONAL: RateLimits = RateLimits {
        per_10_seconds: 190,
        daily: 625_000,
    };
    /// Enterprise accounts.
    pub const ENTERPRISE: RateLimits = RateLimits {
        per_10_seconds: 190,
        daily: 1_000_000,
    };
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::PROFESSIONAL
    }
}

/// The fake's state: portals by access token, limits, behaviour and the call log.
#[derive(Debug, Default)]
pub struct HubSpotState {
    pub portals: HashMap<String, HubSpotPortal>,
    /// The same limits for every token.
    pub limits: RateLimits,
    pub behaviour: Behaviour,
    pub calls: Vec<Call>,
    usage: HashMap<String, Usage>,
    requests: u64,
}

/// One token's use of its limits.
#[derive(Debug, Default)]
struct Usage {
    window: VecDeque<Instant>,
    today: u32,
}

impl HubSpotState {
    /// A fake serving one portal to `access_token`.
    pub fn with_portal(access_token: &str, portal: HubSpotPortal) -> Self {
        let mut state = HubSpotState::default();
        state.portals.insert(access_token.to_owned(), portal);
        state
    }

    /// The portal of a token (created empty if the token is new).
    pub fn portal(&mut self, access_token: &str) -> &mut HubSpotPortal {
        self.portals.entry(access_token.to_owned()).or_default()
    }

    /// Calls whose path starts with `prefix`.
    pub fn calls_to(&self, prefix: &str) -> usize {
        self.calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .count()
    }

    /// Requests of a token counted against its daily limit so far.
    pub fn used_today(&self, access_token: &str) -> u32 {
        self.usage.get(access_token).map_or(0, |u| u.today)
    }
}

pub struct FakeHubSpot;

type Shared = Arc<Mutex<HubSpotState>>;
type Params = Query<Vec<(String, String)>>;

impl FakeHubSpot {
    pub async fn start(state: HubSpotState) -> std::io::Result<Running<HubSpotState>> {
        let shared: Shared = Arc::new(Mutex::new(state));
        let router = Router::new()
            .route("/crm/v3/objects/{object_type}", get(list_objects))
            .route("/crm/v3/objects/{object_type}/batch/read", post(batch_read))
            .route("/crm/v3/objects/{object_type}/{id}", get(get_object))
            .route(
                "/crm/v4/associations/{from}/{to}/batch/read",
                post(batch_associations),
            )
            .route("/crm/v3/pipelines/{object_type}", get(pipelines))
            .route(
                "/crm/v3/pipelines/{object_type}/{pipeline_id}",
                get(pipeline),
            )
            .route("/crm/v3/owners", get(owners))
            // The official clients ask for the owners page with a trailing slash.
            .route("/crm/v3/owners/", get(owners))
            .route("/crm/v3/owners/{owner_id}", get(owner))
            .route("/crm/v3/properties/{object_type}", get(properties))
            .route("/crm/v3/properties/{object_type}/{name}", get(property))
            .fallback(unknown_route)
            .with_state(shared.clone());
        serve(router, shared).await
    }
}

/// An answer before the rate-limit and correlation headers are added.
type Answer = (StatusCode, Value);

/// Admits the request (behaviour, token, limits), answers it from the
/// token's portal, adds HubSpot's headers and logs the call.
async fn respond(
    shared: &Shared,
    headers: &HeaderMap,
    uri: &Uri,
    answer: impl FnOnce(&HubSpotPortal, &str) -> Answer,
) -> Response {
    let latency = lock(shared).behaviour.latency;
    tokio::time::sleep(latency).await;
    let mut guard = lock(shared);
    let state = &mut *guard;
    state.requests += 1;
    let correlation = correlation_id(state.requests);
    let mut response = match admit(state, headers, &correlation) {
        Err(response) => *response,
        Ok((token, rate)) => {
            let mut response = into_response(answer(&state.portals[&token], &correlation));
            insert_headers(&mut response, rate);
            response
        }
    };
    insert_headers(
        &mut response,
        vec![("x-hubspot-correlation-id", correlation)],
    );
    state.calls.push(Call {
        at: Instant::now(),
        path: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        status: response.status().as_u16(),
    });
    response
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, HubSpotState> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

type RateHeaders = Vec<(&'static str, String)>;

/// Outage, then the token, then injected failures, then the limits.
fn admit(
    state: &mut HubSpotState,
    headers: &HeaderMap,
    correlation: &str,
) -> Result<(String, RateHeaders), Box<Response>> {
    if let Some(status) = state.behaviour.outage {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Err(Box::new(unavailable(status, correlation)));
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if !state.portals.contains_key(&token) {
        let mut response = into_response(error(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "INVALID_AUTHENTICATION",
            correlation,
        ));
        insert_headers(
            &mut response,
            vec![("x-hubspot-auth-failure", "401 Unauthorized".into())],
        );
        return Err(Box::new(response));
    }
    let limits = state.limits;
    let behaviour = &mut state.behaviour;
    let usage = state.usage.entry(token.clone()).or_default();
    let now = Instant::now();
    while usage
        .window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= BURST_WINDOW)
    {
        usage.window.pop_front();
    }
    behaviour.seen += 1;
    if let Some(every) = behaviour.flaky_every.filter(|n| *n > 0)
        && behaviour.seen.is_multiple_of(u64::from(every))
    {
        // The occasional failures a real API gives, alternating like the other fakes.
        if (behaviour.seen / u64::from(every)).is_multiple_of(2) {
            return Err(Box::new(rate_limited(
                Policy::TenSecondlyRolling,
                Some(1),
                rate_headers(limits, usage, now),
                correlation,
            )));
        }
        return Err(Box::new(unavailable(
            StatusCode::SERVICE_UNAVAILABLE,
            correlation,
        )));
    }
    if let Some(storm) = behaviour.storm.as_mut().filter(|s| s.count > 0) {
        storm.count -= 1;
        return Err(Box::new(rate_limited(
            Policy::TenSecondlyRolling,
            Some(storm.retry_after_seconds),
            rate_headers(limits, usage, now),
            correlation,
        )));
    }
    if usage.today >= limits.daily {
        return Err(Box::new(rate_limited(
            Policy::Daily,
            None,
            rate_headers(limits, usage, now),
            correlation,
        )));
    }
    if usage.window.len() >= limits.per_10_seconds as usize {
        return Err(Box::new(rate_limited(
            Policy::TenSecondlyRolling,
            None,
            rate_headers(limits, usage, now),
            correlation,
        )));
    }
    usage.window.push_back(now);
    usage.today += 1;
    Ok((token, rate_headers(limits, usage, now)))
}

/// A private app's `X-HubSpot-RateLimit-*` headers. The secondly pair is
/// deprecated by HubSpot but still sent; it is a tenth of the burst limit.
fn rate_headers(limits: RateLimits, usage: &Usage, now: Instant) -> RateHeaders {
    let in_window = usage.window.len() as u32;
    let secondly = (limits.per_10_seconds / 10).max(1);
    let last_second = usage
        .window
        .iter()
        .filter(|t| now.duration_since(**t) < Duration::from_secs(1))
        .count() as u32;
    vec![
        ("x-hubspot-ratelimit-daily", limits.daily.to_string()),
        (
            "x-hubspot-ratelimit-daily-remaining",
            limits.daily.saturating_sub(usage.today).to_string(),
        ),
        (
            "x-hubspot-ratelimit-interval-milliseconds",
            BURST_WINDOW.as_millis().to_string(),
        ),
        ("x-hubspot-ratelimit-max", limits.per_10_seconds.to_string()),
        (
            "x-hubspot-ratelimit-remaining",
            limits.per_10_seconds.saturating_sub(in_window).to_string(),
        ),
        ("x-hubspot-ratelimit-secondly", secondly.to_string()),
        (
            "x-hubspot-ratelimit-secondly-remaining",
            secondly.saturating_sub(last_second).to_string(),
        ),
    ]
}

#[derive(Clone, Copy)]
enum Policy {
    TenSecondlyRolling,
    Daily,
}

/// HubSpot's 429: `errorType` `RATE_LIMIT`, the exhausted `policyName`.
fn rate_limited(
    policy: Policy,
    retry_after_seconds: Option<u64>,
    rate: RateHeaders,
    correlation: &str,
) -> Response {
    let (policy_name, message) = match policy {
        Policy::TenSecondlyRolling => (
            "TEN_SECONDLY_ROLLING",
            "You have reached your ten_secondly_rolling limit.",
        ),
        Policy::Daily => ("DAILY", "You have reached your daily limit."),
    };
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": correlation,
            "policyName": policy_name,
            "category": "RATE_LIMITS",
        })),
    )
        .into_response();
    let mut headers = rate;
    for (name, value) in &mut headers {
        if *name == "x-hubspot-ratelimit-remaining" && matches!(policy, Policy::TenSecondlyRolling)
            || *name == "x-hubspot-ratelimit-daily-remaining" && matches!(policy, Policy::Daily)
        {
            *value = "0".into();
        }
    }
    if let Some(seconds) = retry_after_seconds {
        headers.push(("retry-after", seconds.to_string()));
    }
    insert_headers(&mut response, headers);
    response
}

fn unavailable(status: StatusCode, correlation: &str) -> Response {
    into_response(error(
        status,
        "The service is temporarily unavailable. Please try again later.",
        "SERVICE_UNAVAILABLE",
        correlation,
    ))
}

fn into_response((status, body): Answer) -> Response {
    (status, Json(body)).into_response()
}

/// HubSpot's error body.
fn error(status: StatusCode, message: &str, category: &str, correlation: &str) -> Answer {
    (
        status,
        json!({"status": "error", "message": message, "correlationId": correlation, "category": category}),
    )
}

fn insert_headers(response: &mut Response, headers: RateHeaders) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
}

/// A UUID-shaped id unique per request.
fn correlation_id(request: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        request.wrapping_mul(2_654_435_761) & 0xffff_ffff,
        (request >> 16) & 0xffff,
        request & 0xfff,
        (request >> 12) & 0xfff,
        request
    )
}

/// Values of a list parameter, repeated (`properties=a&properties=b`) or
/// comma-separated (`properties=a,b`); `None` when absent.
fn list_param(params: &[(String, String)], key: &str) -> Option<Vec<String>> {
    let mut found = false;
    let values: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == key)
        .inspect(|_| found = true)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    found.then_some(values)
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `archived=true` (Python's client sends `True`).
fn archived_flag(params: &[(String, String)]) -> bool {
    param(params, "archived").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn object_type_or_400(name: &str, correlation: &str) -> Result<ObjectType, Answer> {
    ObjectType::parse(name).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("Unable to infer object type from: {name}"),
            "VALIDATION_ERROR",
            correlation,
        )
    })
}

fn projection(
    properties: Option<Vec<String>>,
    with_history: Option<Vec<String>>,
    associations: Option<Vec<String>>,
) -> Projection {
    let mut seen = BTreeSet::new();
    Projection {
        properties,
        with_history: with_history.unwrap_or_default(),
        associations: associations
            .unwrap_or_default()
            .iter()
            .filter_map(|name| ObjectType::parse(name))
            .filter(|t| seen.insert(*t))
            .collect(),
    }
}

/// Finds a record by id (following merges) or by the value of `id_property`,
/// archived or not as asked.
fn find<'p>(
    portal: &'p HubSpotPortal,
    object_type: ObjectType,
    id: &str,
    id_property: Option<&str>,
    archived: bool,
) -> Option<&'p CrmObject> {
    let found = match id_property.filter(|p| *p != "hs_object_id") {
        Some(property) => portal
            .objects
            .get(&object_type)?
            .values()
            .find(|o| o.archived() == archived && o.value(property) == Some(id)),
        None => portal.resolve(object_type, id.parse().ok()?),
    };
    found.filter(|o| o.archived() == archived)
}

fn not_found(id: &str, correlation: &str) -> Answer {
    let (status, mut body) = error(
        StatusCode::NOT_FOUND,
        "Object not found.  objectId are usually numeric.",
        "OBJECT_NOT_FOUND",
        correlation,
    );
    body["context"] = json!({"id": [id]});
    (status, body)
}

async fn get_object(
    State(shared): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path((object_type, id)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    respond(&shared, &headers, &uri, |portal, correlation| {
        let object_type = match object_type_or_400(&object_type, correlation) {
            Ok(t) => t,
            Err(answer) => return answer,
        };
        let archived = archived_flag(&params);
        match find(
            portal,
            object_type,
            &id,
            param(&params, "idProperty"),
            archived,
        ) {
            Some(object) => {
                let projection = projection(
                    list_param(&params, "properties"),
                    list_param(&params, "propertiesWithHistory"),
                    list_param(&params, "associations"),
                );
                (
                    StatusCode::OK,
                    portal.object_json(object_type, object, &projection),
                )
            }
            None => not_found(&id, correlation),
        }
    })
    .await
}

/// `GET /crm/v3/objects/{objectType}?limit=&after=`: by id, `after` is the
/// next id to read (an opaque cursor to clients).
async fn list_objects(
    State(shared): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path(object_type): Path<String>,
    Query(params): Params,
) -> Response {
    respond(&shared, &headers, &uri, |portal, correlation| {
        let object_type = match object_type_or_400(&object_type, correlation) {
            Ok(t) => t,
            Err(answer) => return answer,
        };
        let projection = projection(
            list_param(&params, "properties"),
            list_param(&params, "propertiesWithHistory"),
            list_param(&params, "associations"),
        );
        let most = if projection.with_history.is_empty() {
            BATCH_LIMIT
        } else {
            BATCH_WITH_HISTORY_LIMIT
        };
        let limit = param(&params, "limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(10)
            .clamp(1, most);
        let after: ObjectId = match param(&params, "after").map(str::parse) {
            None => 0,
            Some(Ok(after)) => after,
            Some(Err(_)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Invalid value for 'after': not a paging cursor this endpoint gave",
                    "VALIDATION_ERROR",
                    correlation,
                );
            }
        };
        let archived = archived_flag(&params);
        let page: Vec<&CrmObject> = portal
            .objects
            .get(&object_type)
            .into_iter()
            .flat_map(|objects| objects.range(after..))
            .map(|(_, object)| object)
            .filter(|o| o.archived() == archived)
            .take(limit + 1)
            .collect();
        let more = page.len() > limit;
        let results: Vec<Value> = page
            .iter()
            .take(limit)
            .map(|o| portal.object_json(object_type, o, &projection))
            .collect();
        let mut body = json!({"results": results});
        if more && let Some(next) = page.get(limit) {
            let after = next.id.to_string();
            body["paging"] = json!({"next": {
                "after": after,
                "link": format!("https://api.hubapi.com/crm/v3/objects/{}?after={after}", object_type.plural()),
            }});
        }
        (StatusCode::OK, body)
    })
    .await
}

fn parse_body(body: &Bytes, correlation: &str) -> Result<Value, Answer> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid input JSON on line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
            "VALIDATION_ERROR",
            correlation,
        )
    })
}

/// The ids of `inputs: [{"id": ...}]`, strings or numbers, without repeats.
fn input_ids(body: &Value, correlation: &str) -> Result<Vec<String>, Answer> {
    let Some(inputs) = body.get("inputs").and_then(Value::as_array) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Invalid input JSON: inputs is required",
            "VALIDATION_ERROR",
            correlation,
        ));
    };
    let mut ids: Vec<String> = Vec::new();
    for input in inputs {
        let id = match input.get("id") {
            Some(Value::String(id)) => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "Invalid input JSON: every input needs an id",
                    "VALIDATION_ERROR",
                    correlation,
                ));
            }
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn strings(body: &Value, key: &str) -> Option<Vec<String>> {
    body.get(key).and_then(Value::as_array).map(|values| {
        values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

fn too_many_inputs(limit: usize, history: bool, correlation: &str) -> Answer {
    let message = if history {
        format!(
            "The maximum number of inputs supported in a batch request for property histories is {limit}. Please reduce the number of items and try again"
        )
    } else {
        format!(
            "The maximum number of inputs supported in a batch is {limit}. Please reduce the number of items and try again"
        )
    };
    error(
        StatusCode::BAD_REQUEST,
        &message,
        "VALIDATION_ERROR",
        correlation,
    )
}

fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A batch answer: `200`, or `207` with `numErrors` and `errors` when some inputs failed.
fn batch_answer(results: Vec<Value>, errors: Vec<Value>, started_at: String) -> Answer {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started_at,
        "completedAt": now_iso(),
    });
    if errors.is_empty() {
        return (StatusCode::OK, body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    (StatusCode::MULTI_STATUS, body)
}

async fn batch_read(
    State(shared): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path(object_type): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    respond(&shared, &headers, &uri, |portal, correlation| {
        let started_at = now_iso();
        let object_type = match object_type_or_400(&object_type, correlation) {
            Ok(t) => t,
            Err(answer) => return answer,
        };
        let body = match parse_body(&body, correlation) {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let ids = match input_ids(&body, correlation) {
            Ok(ids) => ids,
            Err(answer) => return answer,
        };
        let projection = projection(
            strings(&body, "properties").filter(|p| !p.is_empty()),
            strings(&body, "propertiesWithHistory"),
            None,
        );
        if ids.len() > BATCH_LIMIT {
            return too_many_inputs(BATCH_LIMIT, false, correlation);
        }
        if !projection.with_history.is_empty() && ids.len() > BATCH_WITH_HISTORY_LIMIT {
            return too_many_inputs(BATCH_WITH_HISTORY_LIMIT, true, correlation);
        }
        let id_property = body.get("idProperty").and_then(Value::as_str);
        let archived = archived_flag(&params);
        let mut results = Vec::new();
        let mut missing = Vec::new();
        let mut returned = BTreeSet::new();
        for id in &ids {
            match find(portal, object_type, id, id_property, archived) {
                // Two inputs naming one record (a merged id and its survivor) give it once.
                Some(object) if !returned.insert(object.id) => {}
                Some(object) => results.push(portal.object_json(object_type, object, &projection)),
                None => missing.push(id.clone()),
            }
        }
        let errors = if missing.is_empty() {
            Vec::new()
        } else {
            vec![json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": format!(
                    "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                    object_type.singular().to_uppercase()
                ),
                "context": {"ids": missing},
            })]
        };
        batch_answer(results, errors, started_at)
    })
    .await
}

async fn batch_associations(
    State(shared): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    respond(&shared, &headers, &uri, |portal, correlation| {
        let started_at = now_iso();
        let (from, to) = match (
            object_type_or_400(&from, correlation),
            object_type_or_400(&to, correlation),
        ) {
            (Ok(from), Ok(to)) => (from, to),
            (Err(answer), _) | (_, Err(answer)) => return answer,
        };
        let body = match parse_body(&body, correlation) {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let ids = match input_ids(&body, correlation) {
            Ok(ids) => ids,
            Err(answer) => return answer,
        };
        if ids.len() > BATCH_LIMIT {
            return too_many_inputs(BATCH_LIMIT, false, correlation);
        }
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for id in &ids {
            let associated = id
                .parse()
                .ok()
                .filter(|id| portal.object(from, *id).is_some_and(|o| !o.archived()))
                .map(|id| portal.associated((from, id), to))
                .unwrap_or_default();
            if associated.is_empty() {
                errors.push(json!({
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": format!("No {} is associated with {} {id}.", to.singular(), from.singular()),
                    "context": {
                        "fromObjectId": [id],
                        "fromObjectType": [from.singular()],
                        "toObjectType": [to.singular()],
                    },
                }));
                continue;
            }
            let targets: Vec<Value> = associated
                .into_iter()
                .map(|(to_id, types)| {
                    // Labeled types first, as HubSpot lists them.
                    let mut types: Vec<AssociationType> =
                        types.iter().filter_map(|t| association_type(*t)).collect();
                    types.sort_by_key(|t| (t.label.is_none(), t.type_id));
                    json!({
                        "toObjectId": to_id,
                        "associationTypes": types.iter().map(|t| json!({
                            "category": "HUBSPOT_DEFINED",
                            "typeId": t.type_id,
                            "label": t.label,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            results.push(json!({"from": {"id": id}, "to": targets}));
        }
        batch_answer(results, errors, started_at)
    })
    .await
}

fn deal_pipelines_only(name: &str, correlation: &str) -> Result<(), Answer> {
    match ObjectType::parse(name) {
        Some(ObjectType::Deals) => Ok(()),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("Object type {name} has no pipelines in this portal"),
            "VALIDATION_ERROR",
            correlation,
        )),
    }
}

async fn pipelines(
    State(shared): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path(object_type): Path<String>,
) -> Response {
    respond(&shared, &headers, &uri, |portal, correlation| {
        if let Err(answer) = deal_pipelines_only(&object_type, correlation) {
            return answer;
        }
        let mut pipelines: Vec<&Pipeline> = portal
            .deal_pipelines
            .iter()
            .filter(|p| !p.archived)
            .collect();
        pipelines.sort_by_key(|p| p.display_order);
        let results: Vec<Value> = pipelines.into_iter().map(pipeline_json).collect();
        (StatusCode::OK, json!({"results": results}))
    })
    .await
}

async fn pipeline(
    State(shared): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path((object_type, pipeline_id)): Path<(String, String)>,
) -> Response {
    respond(&shared, &headers, &uri, |portal, correlation| {
        if let Err(answer) = deal_pipelines_only(&object_type, correlation) {
            return answer;
        }
        match portal.deal_pipelines.iter().find(|p| p.id == pipeline_id) {
            Some(pipeline) => (StatusCode::OK, pipeline_json(pipeline)),
            None => error(
                StatusCode::NOT_FOUND,
                &format!("Unable to find pipeline {pipeline_id}"),
                "OBJECT_NOT_FOUND",
                correlation,
            ),
        }
    })
    .await
}

/// `GET /crm/v3/owners?limit=&after=&email=&archived=`: 100 per page by default, 500 at most.
async fn owners(
    State(shared): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Query(params): Params,
) -> Response {
    respond(&shared, &headers, &uri, |portal, _| {
        let limit = param(&params, "limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(100)
            .clamp(1, 500);
        let start: usize = param(&params, "after")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        let archived = archived_flag(&params);
        let email = param(&params, "email");
        let matching: Vec<&Owner> = portal
            .owners
            .iter()
            .filter(|o| o.archived == archived)
            .filter(|o| email.is_none_or(|e| o.email.eq_ignore_ascii_case(e)))
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(start)
            .take(limit)
            .map(|o| owner_json(o))
            .collect();
        let mut body = json!({"results": page});
        let next = start + limit;
        if next < matching.len() {
            body["paging"] = json!({"next": {
                "after": next.to_string(),
                "link": format!("https://api.hubapi.com/crm/v3/owners/?after={next}"),
            }});
        }
        (StatusCode::OK, body)
    })
    .await
}

/// `GET /crm/v3/owners/{ownerId}?idProperty=id|userId&archived=`.
async fn owner(
    State(shared): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path(owner_id): Path<String>,
    Query(params): Params,
) -> Response {
    respond(&shared, &headers, &uri, |portal, correlation| {
        let by_user_id = param(&params, "idProperty") == Some("userId");
        let archived = archived_flag(&params);
        let found = portal.owners.iter().find(|o| {
            o.archived == archived
                && if by_user_id {
                    o.user_id.map(|u| u.to_string()).as_deref() == Some(owner_id.as_str())
                } else {
                    o.id == owner_id
                }
        });
        match found {
            Some(owner) => (StatusCode::OK, owner_json(owner)),
            None => error(
                StatusCode::NOT_FOUND,
                &format!("Owner {owner_id} not found"),
                "OBJECT_NOT_FOUND",
                correlation,
            ),
        }
    })
    .await
}

async fn properties(
    State(shared): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path(object_type): Path<String>,
    Query(params): Params,
) -> Response {
    respond(&shared, &headers, &uri, |portal, correlation| {
        let object_type = match object_type_or_400(&object_type, correlation) {
            Ok(t) => t,
            Err(answer) => return answer,
        };
        let archived = archived_flag(&params);
        let results: Vec<Value> = portal
            .properties
            .get(&object_type)
            .into_iter()
            .flatten()
            .filter(|d| d.archived == archived)
            .map(|d| property_json(portal, object_type, d))
            .collect();
        (StatusCode::OK, json!({"results": results}))
    })
    .await
}

async fn property(
    State(shared): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path((object_type, name)): Path<(String, String)>,
) -> Response {
    respond(&shared, &headers, &uri, |portal, correlation| {
        let object_type = match object_type_or_400(&object_type, correlation) {
            Ok(t) => t,
            Err(answer) => return answer,
        };
        match portal
            .properties
            .get(&object_type)
            .and_then(|d| d.iter().find(|d| d.name == name))
        {
            Some(definition) => (
                StatusCode::OK,
                property_json(portal, object_type, definition),
            ),
            None => error(
                StatusCode::NOT_FOUND,
                &format!(
                    "Unable to find property {name} for object type {}",
                    object_type.type_id()
                ),
                "OBJECT_NOT_FOUND",
                correlation,
            ),
        }
    })
    .await
}

async fn unknown_route(State(shared): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    respond(&shared, &headers, &uri, |_, correlation| {
        error(
            StatusCode::NOT_FOUND,
            &format!("No endpoint at {path} in this fake"),
            "OBJECT_NOT_FOUND",
            correlation,
        )
    })
    .await
}

/// When [`sample_portal`]'s history starts: 2025-03-01T00:00:00Z.
pub const SAMPLE_START_MS: i64 = 1_740_787_200_000;

/// A small portal for tests (portal id `62515`): HubSpot's default pipeline
/// and a custom one (`811234` "Enterprise": `1101` Discovery 0.1, `1102`
/// Negotiation 0.65, `1103` Signed won, `1104` Lost); owners `501` Ada
/// (user 9001), `502` Alan (user 9002) and archived `503` Grace; a custom
/// deal property `lead_source`; company `301` Acme, primary company of
/// contacts `201` Marie and `202` Pierre; deal `101` "Acme renewal" (EUR,
/// owner 501) created on day 0 in Discovery, in Negotiation on day 1, Signed
/// with amount 13000 through the API on day 2, associated with contact 201
/// and primary company 301; deal `102` "Globex pilot" (USD, default
/// pipeline, no associations); deal `103` archived on day 3; and call `701`
/// (completed, owner 502) on deal 101.
pub fn sample_portal() -> HubSpotPortal {
    const DAY_MS: i64 = 86_400_000;
    const T0: i64 = SAMPLE_START_MS;
    let mut portal = HubSpotPortal::new("62515");
    portal.deal_pipelines.push(Pipeline::new(
        "811234",
        "Enterprise",
        1,
        vec![
            PipelineStage::open("1101", "Discovery", 0, 0.1),
            PipelineStage::open("1102", "Negotiation", 1, 0.65),
            PipelineStage::won("1103", "Signed", 2),
            PipelineStage::lost("1104", "Lost", 3),
        ],
    ));
    portal.owners = vec![
        Owner::new("501", 9001, "Ada", "Lovelace", "ada@example.com"),
        Owner::new("502", 9002, "Alan", "Turing", "alan@example.com"),
        Owner::new("503", 9003, "Grace", "Hopper", "grace@example.com"),
    ];
    portal.owners[2].archived = true;
    portal.define(
        ObjectType::Deals,
        PropertyDefinition::enumeration(
            "lead_source",
            "Lead source",
            &[("web", "Web"), ("event", "Event")],
        )
        .custom(),
    );
    let ui = ChangeSource::crm_ui(9001);
    portal.set(
        ObjectType::Companies,
        301,
        T0,
        &[("name", "Acme"), ("domain", "acme.example")],
        &ui,
    );
    for (id, first, email) in [
        (201, "Marie", "marie@acme.example"),
        (202, "Pierre", "pierre@acme.example"),
    ] {
        portal.set(
            ObjectType::Contacts,
            id,
            T0,
            &[("firstname", first), ("email", email)],
            &ui,
        );
        portal.associate_primary((ObjectType::Contacts, id), (ObjectType::Companies, 301));
    }
    portal.set(
        ObjectType::Deals,
        101,
        T0,
        &[
            ("dealname", "Acme renewal"),
            ("amount", "12500.50"),
            ("deal_currency_code", "EUR"),
            ("pipeline", "811234"),
            ("dealstage", "1101"),
            ("hubspot_owner_id", "501"),
        ],
        &ui,
    );
    portal.set(
        ObjectType::Deals,
        101,
        T0 + DAY_MS,
        &[("dealstage", "1102")],
        &ui,
    );
    portal.set(
        ObjectType::Deals,
        101,
        T0 + 2 * DAY_MS,
        &[("dealstage", "1103"), ("amount", "13000")],
        &ChangeSource::api(4242),
    );
    portal.associate((ObjectType::Deals, 101), (ObjectType::Contacts, 201));
    portal.associate_primary((ObjectType::Deals, 101), (ObjectType::Companies, 301));
    portal.set(
        ObjectType::Calls,
        701,
        T0 + DAY_MS,
        &[
            ("hs_timestamp", &iso_millis(T0 + DAY_MS)),
            ("hs_call_status", "COMPLETED"),
            ("hs_call_direction", "OUTBOUND"),
            ("hubspot_owner_id", "502"),
        ],
        &ui,
    );
    portal.associate((ObjectType::Calls, 701), (ObjectType::Deals, 101));
    portal.set(
        ObjectType::Deals,
        102,
        T0 + DAY_MS,
        &[
            ("dealname", "Globex pilot"),
            ("amount", "4000"),
            ("deal_currency_code", "USD"),
            ("pipeline", "default"),
            ("dealstage", "qualifiedtobuy"),
            ("hubspot_owner_id", "502"),
        ],
        &ui,
    );
    portal.set(
        ObjectType::Deals,
        103,
        T0 + DAY_MS,
        &[("dealname", "Duplicate")],
        &ui,
    );
    portal.archive(ObjectType::Deals, 103, T0 + 3 * DAY_MS);
    portal
}

#[cfg(test)]
mod tests;
