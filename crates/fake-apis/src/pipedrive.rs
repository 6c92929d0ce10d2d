//! A fake Pipedrive API: the endpoints the enricher uses, per API token.
//!
//! Entities are kept in the API v2 response shape (field definitions and
//! users in v1's), as `serde_json::Value`s a test or the world simulator
//! fills in. Answers carry `x-ratelimit-limit`, `x-ratelimit-remaining` and
//! `x-ratelimit-reset`; an unknown token gets 401, an unknown id 404.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as CURSOR;
use serde_json::{Value, json};

use crate::{Behaviour, Call, Gate, Running, gate, serve};

/// One Pipedrive company's data.
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub persons: BTreeMap<i64, Value>,
    pub organizations: BTreeMap<i64, Value>,
    pub deals: BTreeMap<i64, Value>,
    pub stages: BTreeMap<i64, Value>,
    pub pipelines: BTreeMap<i64, Value>,
    pub users: BTreeMap<i64, Value>,
    pub deal_fields: Vec<Value>,
    pub person_fields: Vec<Value>,
    pub organization_fields: Vec<Value>,
}

/// The fake's state: accounts by API token, behaviour, and the call log.
#[derive(Debug, Default)]
pub struct PipedriveState {
    pub accounts: HashMap<String, Account>,
    pub behaviour: Behaviour,
    pub calls: Vec<Call>,
    /// Deals per page of `GET /api/v2/deals` (Pipedrive's default is 100).
    pub page_size: usize,
    window: Vec<Instant>,
}

impl PipedriveState {
    /// Calls whose path starts with `prefix`.
    pub fn calls_to(&self, prefix: &str) -> usize {
        self.calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .count()
    }

    pub fn account(&mut self, token: &str) -> &mut Account {
        self.accounts.entry(token.to_owned()).or_default()
    }
}

/// A field definition in API v1's shape; `options` as `(id, label)`.
pub fn field_definition(key: &str, name: &str, field_type: &str, options: &[(i64, &str)]) -> Value {
    let mut field = json!({"id": key.len(), "key": key, "name": name, "field_type": field_type, "active_flag": true});
    if !options.is_empty() {
        field["options"] = options
            .iter()
            .map(|(id, label)| json!({"id": id, "label": label}))
            .collect();
    }
    field
}

pub struct FakePipedrive;

type Shared = Arc<Mutex<PipedriveState>>;

impl FakePipedrive {
    pub async fn start(state: PipedriveState) -> std::io::Result<Running<PipedriveState>> {
        let mut state = state;
        if state.page_size == 0 {
            state.page_size = 100;
        }
        let shared: Shared = Arc::new(Mutex::new(state));
        let router = Router::new()
            .route(
                "/api/v2/persons/{id}",
                get(|s, h, p, r| entity(s, h, p, r, Kind::Person)),
            )
            .route(
                "/api/v2/organizations/{id}",
                get(|s, h, p, r| entity(s, h, p, r, Kind::Organization)),
            )
            .route(
                "/api/v2/stages/{id}",
                get(|s, h, p, r| entity(s, h, p, r, Kind::Stage)),
            )
            .route(
                "/api/v2/pipelines/{id}",
                get(|s, h, p, r| entity(s, h, p, r, Kind::Pipeline)),
            )
            .route(
                "/api/v1/users/{id}",
                get(|s, h, p, r| entity(s, h, p, r, Kind::User)),
            )
            .route(
                "/api/v2/stages",
                get(|s, h, q, r| list(s, h, q, r, Kind::Stage)),
            )
            .route(
                "/api/v2/pipelines",
                get(|s, h, q, r| list(s, h, q, r, Kind::Pipeline)),
            )
            .route(
                "/api/v1/users",
                get(|s, h, q, r| list(s, h, q, r, Kind::User)),
            )
            .route("/api/v2/deals", get(deals))
            .route(
                "/api/v1/dealFields",
                get(|s, h, q, r| fields(s, h, q, r, Kind::DealFields)),
            )
            .route(
                "/api/v1/personFields",
                get(|s, h, q, r| fields(s, h, q, r, Kind::PersonFields)),
            )
            .route(
                "/api/v1/organizationFields",
                get(|s, h, q, r| fields(s, h, q, r, Kind::OrganizationFields)),
            )
            .with_state(shared.clone());
        serve(router, shared).await
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Person,
    Organization,
    Stage,
    Pipeline,
    User,
    DealFields,
    PersonFields,
    OrganizationFields,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Person => "Person",
            Kind::Organization => "Organization",
            Kind::Stage => "Stage",
            Kind::Pipeline => "Pipeline",
            Kind::User => "User",
            Kind::DealFields | Kind::PersonFields | Kind::OrganizationFields => "Field",
        }
    }
}

/// Logs the call and applies the behaviour and the token check. On success,
/// returns the account and the rate-limit headers to send.
fn admit(
    state: &Shared,
    headers: &HeaderMap,
    request: &Request,
) -> Result<(String, RateHeaders), Box<Response>> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    let state = &mut *guard;
    let outcome = match gate(&mut state.behaviour, &mut state.window) {
        Gate::Refuse(response) => Err(Box::new(response)),
        Gate::Pass {
            remaining,
            limit,
            reset_seconds,
        } => {
            let token = headers
                .get("x-api-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            match state.accounts.contains_key(token) {
                true => Ok((
                    token.to_owned(),
                    [
                        ("x-ratelimit-limit".to_owned(), limit.to_string()),
                        ("x-ratelimit-remaining".to_owned(), remaining.to_string()),
                        ("x-ratelimit-reset".to_owned(), reset_seconds.to_string()),
                    ],
                )),
                false => Err(Box::new(
                    (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({"success": false, "error": "unauthorized access", "errorCode": 401})),
                    )
                        .into_response(),
                )),
            }
        }
    };
    let status = match &outcome {
        Ok(_) => 200,
        Err(response) => response.status().as_u16(),
    };
    state.calls.push(Call {
        at: Instant::now(),
        path,
        status,
    });
    outcome
}

/// Runs `read` on the account of `token` (admitted, so it exists).
fn with_account<T: Default>(state: &Shared, token: &str, read: impl FnOnce(&Account) -> T) -> T {
    let guard = state.lock().unwrap_or_else(|p| p.into_inner());
    guard.accounts.get(token).map(read).unwrap_or_default()
}

/// `x-ratelimit-*` headers for an admitted request.
type RateHeaders = [(String, String); 3];

fn latency(state: &Shared) -> std::time::Duration {
    state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .behaviour
        .latency
}

fn with_headers(body: Value, status: StatusCode, headers: RateHeaders) -> Response {
    let mut response = (status, Json(body)).into_response();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

async fn entity(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    request: Request,
    kind: Kind,
) -> Response {
    tokio::time::sleep(latency(&state)).await;
    let (token, rate) = match admit(&state, &headers, &request) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let found = with_account(&state, &token, |account| {
        match kind {
            Kind::Person => account.persons.get(&id),
            Kind::Organization => account.organizations.get(&id),
            Kind::Stage => account.stages.get(&id),
            Kind::Pipeline => account.pipelines.get(&id),
            Kind::User => account.users.get(&id),
            _ => None,
        }
        .cloned()
    });
    match found {
        Some(data) => with_headers(json!({"success": true, "data": data}), StatusCode::OK, rate),
        None => with_headers(
            json!({"success": false, "error": format!("{} not found", kind.noun()), "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.", "data": null, "additional_data": null}),
            StatusCode::NOT_FOUND,
            rate,
        ),
    }
}

/// `GET /api/v2/stages?pipeline_id=&cursor=&limit=` and
/// `GET /api/v2/pipelines?cursor=&limit=`: cursor-paginated, by id;
/// `GET /api/v1/users`: every user at once, as v1 answers.
async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
    kind: Kind,
) -> Response {
    tokio::time::sleep(latency(&state)).await;
    let (token, rate) = match admit(&state, &headers, &request) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let pipeline: Option<i64> = query.get("pipeline_id").and_then(|p| p.parse().ok());
    let all: Vec<(i64, Value)> = with_account(&state, &token, |account| {
        let items = match kind {
            Kind::Stage => &account.stages,
            Kind::Pipeline => &account.pipelines,
            _ => &account.users,
        };
        items
            .iter()
            .filter(|(_, item)| {
                pipeline.is_none_or(|p| item.get("pipeline_id").and_then(Value::as_i64) == Some(p))
            })
            .map(|(id, item)| (*id, item.clone()))
            .collect()
    });
    if matches!(kind, Kind::User) {
        let users: Vec<Value> = all.into_iter().map(|(_, user)| user).collect();
        return with_headers(
            json!({"success": true, "data": users}),
            StatusCode::OK,
            rate,
        );
    }
    with_headers(cursor_page(&state, &query, all), StatusCode::OK, rate)
}

/// One page of an API v2 list: of `items` (ascending ids), at most `limit`
/// (capped at the page size) after the `cursor`, with the next cursor when
/// more follow.
fn cursor_page(state: &Shared, query: &HashMap<String, String>, items: Vec<(i64, Value)>) -> Value {
    let page_size = state.lock().unwrap_or_else(|p| p.into_inner()).page_size;
    let limit = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(page_size)
        .min(page_size)
        .max(1);
    let after: i64 = query
        .get("cursor")
        .and_then(|c| CURSOR.decode(c).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(i64::MIN);
    let matching: Vec<(i64, Value)> = items
        .into_iter()
        .filter(|(id, _)| *id > after)
        .take(limit + 1)
        .collect();
    let has_more = matching.len() > limit;
    let page: Vec<(i64, Value)> = matching.into_iter().take(limit).collect();
    let next_cursor = has_more
        .then(|| page.last().map(|(id, _)| CURSOR.encode(id.to_string())))
        .flatten();
    let data: Vec<Value> = page.into_iter().map(|(_, item)| item).collect();
    json!({"success": true, "data": data, "additional_data": {"next_cursor": next_cursor}})
}

/// `GET /api/v2/deals?person_id=&cursor=&limit=`: cursor-paginated, oldest id first.
async fn deals(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    tokio::time::sleep(latency(&state)).await;
    let (token, rate) = match admit(&state, &headers, &request) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let person: Option<i64> = query.get("person_id").and_then(|p| p.parse().ok());
    let matching: Vec<(i64, Value)> = with_account(&state, &token, |account| {
        account
            .deals
            .iter()
            .filter(|(_, deal)| {
                person.is_none_or(|p| deal.get("person_id").and_then(Value::as_i64) == Some(p))
            })
            .filter(|(_, deal)| deal.get("is_deleted").and_then(Value::as_bool) != Some(true))
            .map(|(id, deal)| (*id, deal.clone()))
            .collect()
    });
    with_headers(cursor_page(&state, &query, matching), StatusCode::OK, rate)
}

/// `GET /api/v1/{deal,person,organization}Fields?start=&limit=`: offset-paginated.
async fn fields(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
    kind: Kind,
) -> Response {
    tokio::time::sleep(latency(&state)).await;
    let (token, rate) = match admit(&state, &headers, &request) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let all = with_account(&state, &token, |account| match kind {
        Kind::DealFields => account.deal_fields.clone(),
        Kind::PersonFields => account.person_fields.clone(),
        _ => account.organization_fields.clone(),
    });
    let start: usize = query.get("start").and_then(|s| s.parse().ok()).unwrap_or(0);
    let limit: usize = query
        .get("limit")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let page: Vec<&Value> = all.iter().skip(start).take(limit).collect();
    let more = start + page.len() < all.len();
    with_headers(
        json!({
            "success": true,
            "data": page,
            "additional_data": {"pagination": {"start": start, "limit": limit, "more_items_in_collection": more, "next_start": start + page.len()}}
        }),
        StatusCode::OK,
        rate,
    )
}
