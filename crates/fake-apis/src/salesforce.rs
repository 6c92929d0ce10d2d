//! A fake Salesforce REST API: the endpoints the enricher uses, per access
//! token (one org each).
//!
//! - `GET /services/data/v{version}/sobjects/{object}/{id}?fields=...`: the
//!   record with its `attributes` and the fields asked for (all without
//!   `fields`); 15- and 18-character ids name the same record; a deleted
//!   record answers 404 `ENTITY_IS_DELETED`, an unknown one 404 `NOT_FOUND`,
//!   an unknown field 400 `INVALID_FIELD`.
//! - `GET /services/data/v{version}/query?q=SELECT ... FROM ... [WHERE f >=
//!   2025-03-04T16:30:00Z] [ORDER BY f]` (one date-time condition, nothing
//!   else: it answers 400 `MALFORMED_QUERY`), in batches of `batch_size`
//!   with `nextRecordsUrl` to `GET /services/data/v{version}/query/{locator}`;
//!   `GET /services/data/v{version}/queryAll?q=...` also selects the
//!   records in the recycle bin (`IsDeleted` true).
//!
//! - `POST /services/oauth2/token`: the refresh-token grant (client id and
//!   secret in the form or as Basic credentials; the refresh token rotated
//!   on every use when the app says so) and the JWT bearer grant (an RS256
//!   assertion verified with the connected app's public key, `iss` the
//!   client id, `aud` `https://login.salesforce.com`, `exp` within 3
//!   minutes, `sub` a known user). Errors as `{"error", "error_description"}`.
//!
//! Every answer to a known token counts against the org's API allocation
//! and says so in `Sforce-Limit-Info: api-usage=N/M`; past the allocation
//! Salesforce answers 403 `REQUEST_LIMIT_EXCEEDED`. An unknown token gets
//! 401 `INVALID_SESSION_ID`. Errors are Salesforce's JSON error lists.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::{Behaviour, Call, Gate, Running, gate, serve};

/// One org's data.
#[derive(Debug, Clone)]
pub struct SalesforceOrg {
    /// Records by sObject type (`Opportunity`, `User`...) and 18-character
    /// id, in the REST shape (typed JSON, date-times as
    /// `2025-03-04T16:30:00.000+0000`), without `attributes`.
    pub records: BTreeMap<String, BTreeMap<String, Value>>,
    /// Ids of deleted records (in the recycle bin), by sObject type.
    pub deleted: BTreeMap<String, Vec<String>>,
    /// The deleted records themselves (`IsDeleted` true), which `queryAll`
    /// selects, by sObject type and id.
    pub recycle_bin: BTreeMap<String, BTreeMap<String, Value>>,
    /// The org's rolling 24-hour API request allocation, and what is used.
    pub api_limit: u64,
    pub api_used: u64,
}

impl Default for SalesforceOrg {
    fn default() -> Self {
        SalesforceOrg {
            records: BTreeMap::new(),
            deleted: BTreeMap::new(),
            recycle_bin: BTreeMap::new(),
            // An Enterprise org's base allocation.
            api_limit: 100_000,
            api_used: 0,
        }
    }
}

impl SalesforceOrg {
    /// Adds or replaces a record (its `Id` says which).
    pub fn put(&mut self, object: &str, record: Value) {
        let id = record["Id"].as_str().unwrap_or_default().to_owned();
        self.records
            .entry(object.to_owned())
            .or_default()
            .insert(id, record);
    }

    /// Adds an opportunity stage as `OpportunityStage` has it.
    pub fn put_stage(
        &mut self,
        name: &str,
        sort_order: i64,
        probability: f64,
        won: bool,
        closed: bool,
    ) {
        let id = format!("01J5g00000{:08}", sort_order);
        self.put(
            "OpportunityStage",
            json!({
                "Id": id, "ApiName": name, "MasterLabel": name, "SortOrder": sort_order,
                "DefaultProbability": probability, "IsWon": won, "IsClosed": closed, "IsActive": true,
                "ForecastCategoryName": if won { "Closed" } else if closed { "Omitted" } else { "Pipeline" },
            }),
        );
    }

    /// Moves a record to the recycle bin.
    pub fn delete(&mut self, object: &str, id: &str) {
        if let Some(records) = self.records.get_mut(object) {
            let gone: Vec<String> = records
                .keys()
                .filter(|stored| same_id(stored, id))
                .cloned()
                .collect();
            for stored in gone {
                if let Some(mut record) = records.remove(&stored) {
                    record["IsDeleted"] = json!(true);
                    self.recycle_bin
                        .entry(object.to_owned())
                        .or_default()
                        .insert(stored, record);
                }
            }
        }
        self.deleted
            .entry(object.to_owned())
            .or_default()
            .push(id.to_owned());
    }
}

/// A connected app the token endpoint knows.
#[derive(Debug, Clone, Default)]
pub struct ConnectedApp {
    pub client_id: String,
    pub client_secret: String,
    /// Refresh tokens that work, each to the org (its key in `orgs`) it
    /// signs in to.
    pub refresh_tokens: HashMap<String, String>,
    /// Whether each use of a refresh token gives a new one and voids it.
    pub rotate_refresh_tokens: bool,
    /// The JWT bearer grant: the certificate's public key (PKCS#1 DER) and
    /// users, each to their org's key.
    pub public_key: Option<Vec<u8>>,
    pub users: HashMap<String, String>,
    /// Access tokens issued so far.
    pub issued: u64,
}

/// The fake's state: orgs by access token, behaviour, and the call log.
#[derive(Debug, Default)]
pub struct SalesforceState {
    pub orgs: HashMap<String, SalesforceOrg>,
    /// Access tokens the token endpoint issued, each to its org's key.
    pub sessions: HashMap<String, String>,
    pub app: Option<ConnectedApp>,
    pub behaviour: Behaviour,
    pub calls: Vec<Call>,
    /// Rows per query batch (Salesforce's default is 2,000).
    pub batch_size: usize,
    window: Vec<Instant>,
    /// Rows not yet returned, by query locator.
    cursors: HashMap<String, Vec<Value>>,
    next_locator: u64,
}

impl SalesforceState {
    /// Calls whose path starts with `prefix`.
    pub fn calls_to(&self, prefix: &str) -> usize {
        self.calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .count()
    }

    pub fn org(&mut self, token: &str) -> &mut SalesforceOrg {
        self.orgs.entry(token.to_owned()).or_default()
    }

    /// Every issued access token stops working (sessions time out).
    pub fn expire_sessions(&mut self) {
        self.sessions.clear();
    }
}

pub struct FakeSalesforce;

type Shared = Arc<Mutex<SalesforceState>>;

impl FakeSalesforce {
    pub async fn start(state: SalesforceState) -> std::io::Result<Running<SalesforceState>> {
        let mut state = state;
        if state.batch_size == 0 {
            state.batch_size = 2_000;
        }
        let shared: Shared = Arc::new(Mutex::new(state));
        let router = Router::new()
            .route(
                "/services/data/{version}/sobjects/{object}/{id}",
                get(record),
            )
            .route("/services/data/{version}/query", get(query))
            .route("/services/data/{version}/queryAll", get(query_all))
            .route("/services/data/{version}/query/{locator}", get(more))
            .route("/services/oauth2/token", axum::routing::post(token))
            .with_state(shared.clone());
        serve(router, shared).await
    }
}

/// Whether two ids (15 or 18 characters) name the same record.
fn same_id(a: &str, b: &str) -> bool {
    a.len() >= 15 && b.len() >= 15 && a[..15] == b[..15]
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"message": message, "errorCode": code}])),
    )
        .into_response()
}

/// An admitted request: the token and what the org has used after it.
struct Admitted {
    token: String,
    usage: String,
}

/// Logs the call, applies the behaviour, the token and the allocation.
fn admit(
    state: &Shared,
    headers: &HeaderMap,
    request: &Request,
) -> Result<Admitted, Box<Response>> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    let state = &mut *guard;
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let outcome = match gate(&mut state.behaviour, &mut state.window) {
        Gate::Refuse(response) => Err(Box::new(response)),
        Gate::Pass { .. } => match state
            .orgs
            .get_mut(state.sessions.get(&token).unwrap_or(&token))
        {
            None => Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            ))),
            Some(org) => {
                org.api_used += 1;
                let usage = format!("api-usage={}/{}", org.api_used, org.api_limit);
                if org.api_used > org.api_limit {
                    let mut refused = error(
                        StatusCode::FORBIDDEN,
                        "REQUEST_LIMIT_EXCEEDED",
                        "TotalRequests Limit exceeded.",
                    );
                    if let Ok(value) = HeaderValue::from_str(&usage) {
                        refused.headers_mut().insert("sforce-limit-info", value);
                    }
                    Err(Box::new(refused))
                } else {
                    let token = state.sessions.get(&token).cloned().unwrap_or(token);
                    Ok(Admitted { token, usage })
                }
            }
        },
    };
    state.calls.push(Call {
        at: Instant::now(),
        path,
        status: match &outcome {
            Ok(_) => 200,
            Err(response) => response.status().as_u16(),
        },
    });
    outcome
}

fn answer(admitted: &Admitted, status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&admitted.usage) {
        response.headers_mut().insert("sforce-limit-info", value);
    }
    response
}

fn latency(state: &Shared) -> std::time::Duration {
    state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .behaviour
        .latency
}

/// A record as the API returns it: `attributes`, then the fields asked for
/// (every field when `fields` is `None`). Field names are case-insensitive.
fn shaped(
    version: &str,
    object: &str,
    record: &Value,
    fields: Option<&[String]>,
) -> Result<Value, String> {
    let stored = record.as_object().cloned().unwrap_or_default();
    let id = stored.get("Id").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({"type": object, "url": format!("/services/data/{version}/sobjects/{object}/{id}")}),
    );
    match fields {
        None => out.extend(stored),
        Some(fields) => {
            for field in fields {
                let (name, value) = stored
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(field))
                    .ok_or_else(|| field.clone())?;
                out.insert(name.clone(), value.clone());
            }
        }
    }
    Ok(Value::Object(out))
}

fn field_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .collect()
}

async fn record(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((version, object, id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    tokio::time::sleep(latency(&state)).await;
    let admitted = match admit(&state, &headers, &request) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let guard = state.lock().unwrap_or_else(|p| p.into_inner());
    let Some(org) = guard.orgs.get(&admitted.token) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        );
    };
    let found = org
        .records
        .get(&object)
        .and_then(|records| records.iter().find(|(stored, _)| same_id(stored, &id)))
        .map(|(_, record)| record);
    let Some(found) = found else {
        let deleted = org
            .deleted
            .get(&object)
            .is_some_and(|ids| ids.iter().any(|d| same_id(d, &id)));
        return if deleted {
            answer(
                &admitted,
                StatusCode::NOT_FOUND,
                json!([{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]),
            )
        } else {
            answer(
                &admitted,
                StatusCode::NOT_FOUND,
                json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]),
            )
        };
    };
    let fields = params.get("fields").map(|f| field_list(f));
    match shaped(&version, &object, found, fields.as_deref()) {
        Ok(body) => answer(&admitted, StatusCode::OK, body),
        Err(field) => answer(
            &admitted,
            StatusCode::BAD_REQUEST,
            json!([{"errorCode": "INVALID_FIELD", "message": format!("No such column '{field}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.")}]),
        ),
    }
}

/// `SELECT <fields> FROM <object> [WHERE <field> >= <date-time>] [ORDER BY <field>]`.
struct Soql {
    fields: Vec<String>,
    object: String,
    since: Option<(String, chrono::DateTime<chrono::Utc>)>,
    order_by: Option<String>,
}

/// A record's date-time field (REST's `2025-03-04T16:30:00.000+0000`).
fn time_of(record: &Value, field: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = record
        .as_object()?
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(field))?
        .1
        .as_str()?;
    chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn parse_soql(text: &str) -> Result<Soql, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    if upper.first().map(String::as_str) != Some("SELECT") {
        return Err("unexpected token: the query must start with SELECT".into());
    }
    let from = upper
        .iter()
        .position(|w| w == "FROM")
        .ok_or("unexpected token: no FROM")?;
    let object = words
        .get(from + 1)
        .ok_or("unexpected token: no object after FROM")?;
    let mut rest = &upper[from + 2..];
    let mut since = None;
    if let [condition, _, operator, literal, ..] = rest
        && condition == "WHERE"
    {
        let field = words[from + 3];
        if operator != ">=" {
            return Err(format!(
                "unexpected token: '{operator}' (this fake reads WHERE {field} >= <date-time>)"
            ));
        }
        let at = chrono::DateTime::parse_from_rfc3339(literal)
            .map_err(|_| format!("unexpected token: '{literal}' (a date-time literal)"))?;
        since = Some((field.to_owned(), at.with_timezone(&chrono::Utc)));
        rest = &rest[4..];
    }
    let order_by = match rest {
        [] => None,
        [order, by, _] if order == "ORDER" && by == "BY" => Some(words[words.len() - 1].to_owned()),
        _ => {
            return Err(format!(
                "unexpected token: '{}' (this fake reads SELECT ... FROM ... [WHERE field >= date-time] [ORDER BY field])",
                rest.first().map(String::as_str).unwrap_or_default()
            ));
        }
    };
    Ok(Soql {
        fields: field_list(&words[1..from].join(" ")),
        object: (*object).to_owned(),
        since,
        order_by,
    })
}

async fn query(
    state: State<Shared>,
    headers: HeaderMap,
    version: Path<String>,
    params: Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    run_query(state, headers, version, params, request, false).await
}

/// `queryAll`: the query over the records and the recycle bin.
async fn query_all(
    state: State<Shared>,
    headers: HeaderMap,
    version: Path<String>,
    params: Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    run_query(state, headers, version, params, request, true).await
}

async fn run_query(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(version): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
    all: bool,
) -> Response {
    tokio::time::sleep(latency(&state)).await;
    let admitted = match admit(&state, &headers, &request) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let soql = match parse_soql(params.get("q").map(String::as_str).unwrap_or_default()) {
        Ok(soql) => soql,
        Err(reason) => {
            return answer(
                &admitted,
                StatusCode::BAD_REQUEST,
                json!([{"errorCode": "MALFORMED_QUERY", "message": reason}]),
            );
        }
    };
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    let state = &mut *guard;
    let org = state.orgs.get(&admitted.token);
    let live = org.and_then(|org| org.records.get(&soql.object));
    let recycled = org
        .and_then(|org| org.recycle_bin.get(&soql.object))
        .filter(|_| all);
    let stored: Vec<Value> = live
        .into_iter()
        .chain(recycled)
        .flat_map(|records| records.values().cloned())
        .filter(|record| match &soql.since {
            Some((field, since)) => time_of(record, field).is_some_and(|t| t >= *since),
            None => true,
        })
        .collect();
    let mut rows = Vec::new();
    for record in &stored {
        match shaped(&version, &soql.object, record, Some(&soql.fields)) {
            Ok(row) => rows.push(row),
            Err(field) => {
                return answer(
                    &admitted,
                    StatusCode::BAD_REQUEST,
                    json!([{"errorCode": "INVALID_FIELD", "message": format!("No such column '{field}' on entity '{}'.", soql.object)}]),
                );
            }
        }
    }
    if let Some(order) = &soql.order_by {
        let key = |row: &Value| {
            row.as_object()
                .and_then(|r| r.iter().find(|(k, _)| k.eq_ignore_ascii_case(order)))
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        rows.sort_by(|a, b| {
            match (
                a.get(order).and_then(Value::as_f64),
                b.get(order).and_then(Value::as_f64),
            ) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => key(a).cmp(&key(b)),
            }
        });
    }
    let total = rows.len();
    let body = page(state, &version, rows, total);
    answer(&admitted, StatusCode::OK, body)
}

/// The first `batch_size` rows, and a locator for the rest.
fn page(state: &mut SalesforceState, version: &str, mut rows: Vec<Value>, total: usize) -> Value {
    let rest = rows.split_off(rows.len().min(state.batch_size));
    let mut body = json!({"totalSize": total, "done": rest.is_empty(), "records": rows});
    if !rest.is_empty() {
        state.next_locator += 1;
        let locator = format!(
            "01gD0000002HU{:05}AW-{}",
            state.next_locator,
            total - rest.len()
        );
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{locator}"));
        state.cursors.insert(locator, rest);
    }
    body
}

async fn more(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((version, locator)): Path<(String, String)>,
    request: Request,
) -> Response {
    tokio::time::sleep(latency(&state)).await;
    let admitted = match admit(&state, &headers, &request) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    let state = &mut *guard;
    let Some(rows) = state.cursors.remove(&locator) else {
        return answer(
            &admitted,
            StatusCode::BAD_REQUEST,
            json!([{"errorCode": "INVALID_QUERY_LOCATOR", "message": "invalid query locator"}]),
        );
    };
    let total = locator
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse::<usize>().ok())
        .unwrap_or(0)
        + rows.len();
    let body = page(state, &version, rows, total);
    answer(&admitted, StatusCode::OK, body)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The token endpoint.
async fn token(
    State(state): State<Shared>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    let state = &mut *guard;
    let answer = issue(state, &headers, &form);
    state.calls.push(Call {
        at: Instant::now(),
        path: "/services/oauth2/token".into(),
        status: answer.status().as_u16(),
    });
    answer
}

fn issue(
    state: &mut SalesforceState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Response {
    use base64::Engine;
    let Some(app) = state.app.as_mut() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_id",
            "client identifier invalid",
        );
    };
    let org = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let basic = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                .and_then(|v| String::from_utf8(v).ok());
            let (id, secret) = match &basic {
                Some(pair) => pair
                    .split_once(':')
                    .map(|(a, b)| (a.to_owned(), b.to_owned())),
                None => form
                    .get("client_id")
                    .cloned()
                    .zip(form.get("client_secret").cloned()),
            }
            .unwrap_or_default();
            if id != app.client_id || secret != app.client_secret {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client",
                    "invalid client credentials",
                );
            }
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(org) = app.refresh_tokens.get(&presented).cloned() else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "expired access/refresh token",
                );
            };
            org
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            match verify_assertion(
                app,
                form.get("assertion")
                    .map(String::as_str)
                    .unwrap_or_default(),
            ) {
                Ok(org) => org,
                Err(description) => {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &description);
                }
            }
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant type not supported",
            );
        }
    };
    app.issued += 1;
    let access_token = format!("00D5g000004ABCD!AQ0AQ.session{}", app.issued);
    let mut body = json!({
        "access_token": access_token,
        "signature": "fake-signature",
        "scope": "api refresh_token",
        "instance_url": "https://acme.my.salesforce.com",
        "id": "https://login.salesforce.com/id/00D5g000004ABCDEA4/0055g00000OwNeRAAA",
        "token_type": "Bearer",
        "issued_at": chrono::Utc::now().timestamp_millis().to_string(),
    });
    if form.get("grant_type").map(String::as_str) == Some("refresh_token")
        && app.rotate_refresh_tokens
    {
        let presented = form.get("refresh_token").cloned().unwrap_or_default();
        app.refresh_tokens.remove(&presented);
        let rotated = format!("5Aep861.rotated{}", app.issued);
        app.refresh_tokens.insert(rotated.clone(), org.clone());
        body["refresh_token"] = json!(rotated);
    }
    state.sessions.insert(access_token, org);
    (StatusCode::OK, Json(body)).into_response()
}

/// The org of a valid JWT bearer assertion, or why it is not valid.
fn verify_assertion(app: &ConnectedApp, assertion: &str) -> Result<String, String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("invalid assertion".into());
    };
    let key = app
        .public_key
        .as_ref()
        .ok_or("no certificate for the app")?;
    let signature = b64.decode(signature).map_err(|_| "invalid assertion")?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "invalid assertion signature")?;
    let claims: Value = b64
        .decode(claims)
        .ok()
        .and_then(|c| serde_json::from_slice(&c).ok())
        .ok_or("invalid assertion")?;
    if claims["iss"] != app.client_id.as_str() {
        return Err("invalid client credentials".into());
    }
    if claims["aud"] != "https://login.salesforce.com" {
        return Err("audience is invalid".into());
    }
    let now = chrono::Utc::now().timestamp();
    let exp = claims["exp"].as_i64().unwrap_or(0);
    if exp < now || exp > now + 300 {
        return Err("expired authorization code".into());
    }
    let user = claims["sub"].as_str().unwrap_or_default();
    app.users
        .get(user)
        .cloned()
        .ok_or_else(|| "user hasn't approved this consumer".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soql_of_the_supported_form_is_read_and_the_rest_refused() {
        let soql = parse_soql("SELECT ApiName, SortOrder FROM OpportunityStage ORDER BY SortOrder")
            .expect("supported");
        assert_eq!(soql.fields, ["ApiName", "SortOrder"]);
        assert_eq!(soql.object, "OpportunityStage");
        assert_eq!(soql.order_by.as_deref(), Some("SortOrder"));
        let since = parse_soql(
            "SELECT Id, IsDeleted FROM Opportunity WHERE SystemModstamp >= 2025-03-04T16:30:00Z",
        )
        .expect("supported");
        let (field, at) = since.since.expect("a condition");
        assert_eq!(field, "SystemModstamp");
        assert_eq!(at.timestamp(), 1_741_105_800);
        assert!(since.order_by.is_none());
        assert!(parse_soql("SELECT Id FROM Opportunity WHERE IsClosed = false").is_err());
        assert!(parse_soql("SELECT Id FROM Opportunity WHERE SystemModstamp >= today").is_err());
        assert!(parse_soql("Id FROM Opportunity").is_err());
    }
}
