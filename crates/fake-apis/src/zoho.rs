//! A fake Zoho CRM API (v8, one org) and its accounts server.
//!
//! - `GET /crm/v8/{module}/{id}?fields=...`: `{"data": [record]}` with the
//!   fields asked for and `id`; a record the org does not have answers
//!   `204 No Content`.
//! - `GET /crm/v8/users?type=CurrentUser`.
//! - `GET /crm/v8/actions/watch`: the org's channels; `PATCH` the same
//!   path updates the given keys of the channels it names (a channel the
//!   org does not have answers `{"code": "INVALID_DATA"...}` in its slot).
//! - `GET /crm/v8/settings/fields?module=Deals`: the `Stage` field with
//!   its `pick_list_values` (each with `forecast_type`).
//! - `POST /oauth/v2/token`: the refresh-token grant (client id, secret and
//!   refresh token as parameters), answering an access token, the org's
//!   `api_domain` and `expires_in`. A refused grant is answered, as Zoho
//!   does, with `200` and `{"error": "invalid_code"}`.
//!
//! Requests must carry `Authorization: Zoho-oauthtoken <token>`; otherwise
//! `401` with `{"code": "INVALID_TOKEN", ...}`. [`Behaviour`] adds outages
//! and the occasional `503` or `429` with `Retry-After`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::{Behaviour, Call, Gate, Running, gate, serve};

/// A self client registered in the developer console.
#[derive(Debug, Clone, Default)]
pub struct ZohoClient {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_tokens: HashSet<String>,
    pub issued: u64,
}

#[derive(Debug, Default)]
pub struct ZohoState {
    /// Records by module and id, in the API's shape.
    pub records: HashMap<(String, String), Map<String, Value>>,
    pub tokens: HashSet<String>,
    /// The `Stage` picklist's values, as `pick_list_values` holds them.
    pub stages: Vec<Value>,
    /// Notification channels, as `GET /actions/watch` lists them.
    pub channels: Vec<Value>,
    pub client: Option<ZohoClient>,
    pub calls: Vec<Call>,
    /// Outages, storms and occasional failures of the CRM API's routes.
    pub behaviour: Behaviour,
    /// Recent request times (for the behaviour's limits).
    pub window: Vec<Instant>,
}

impl ZohoState {
    pub fn put(&mut self, module: &str, id: &str, record: Value) {
        if let Value::Object(record) = record {
            self.records
                .insert((module.to_owned(), id.to_owned()), record);
        }
    }

    pub fn calls_to(&self, prefix: &str) -> usize {
        self.calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .count()
    }
}

type Shared = Arc<Mutex<ZohoState>>;

pub struct FakeZoho;

impl FakeZoho {
    pub async fn start(state: ZohoState) -> std::io::Result<Running<ZohoState>> {
        let shared: Shared = Arc::new(Mutex::new(state));
        let router = Router::new()
            .route("/crm/v8/users", get(users))
            .route("/crm/v8/settings/fields", get(fields))
            .route(
                "/crm/v8/actions/watch",
                get(channels).patch(update_channels),
            )
            .route("/crm/v8/{module}/{id}", get(record))
            .route("/oauth/v2/token", post(token))
            .with_state(shared.clone());
        serve(router, shared).await
    }
}

fn log(state: &mut ZohoState, path: String, status: StatusCode) {
    state.calls.push(Call {
        at: Instant::now(),
        path,
        status: status.as_u16(),
    });
}

/// The behaviour's and the token's verdict on a request to `path`: the
/// refusal (logged), or `None` to answer it.
fn refused(state: &mut ZohoState, headers: &HeaderMap, path: &str) -> Option<Response> {
    if let Gate::Refuse(refused) = gate(&mut state.behaviour, &mut state.window) {
        log(state, path.to_owned(), refused.status());
        return Some(refused);
    }
    if !authorized(state, headers) {
        log(state, path.to_owned(), StatusCode::UNAUTHORIZED);
        return Some(invalid_token());
    }
    None
}

fn authorized(state: &ZohoState, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Zoho-oauthtoken "))
        .is_some_and(|token| state.tokens.contains(token))
}

fn invalid_token() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"})),
    )
        .into_response()
}

async fn record(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((module, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let path = format!("/crm/v8/{module}/{id}");
    if let Some(refusal) = refused(&mut state, &headers, &path) {
        return refusal;
    }
    let Some(stored) = state.records.get(&(module.clone(), id.clone())).cloned() else {
        log(&mut state, path, StatusCode::NO_CONTENT);
        return StatusCode::NO_CONTENT.into_response();
    };
    let fields: Vec<&str> = params
        .get("fields")
        .map(|f| f.split(',').collect())
        .unwrap_or_default();
    let mut body: Map<String, Value> = stored
        .into_iter()
        .filter(|(key, _)| fields.is_empty() || fields.contains(&key.as_str()))
        .collect();
    body.insert("id".into(), json!(id));
    log(&mut state, path, StatusCode::OK);
    Json(json!({"data": [body]})).into_response()
}

async fn channels(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let path = "/crm/v8/actions/watch".to_owned();
    if let Some(refusal) = refused(&mut state, &headers, &path) {
        return refusal;
    }
    log(&mut state, path, StatusCode::OK);
    Json(json!({"watch": state.channels})).into_response()
}

async fn update_channels(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let path = "/crm/v8/actions/watch (PATCH)".to_owned();
    if let Some(refusal) = refused(&mut state, &headers, &path) {
        return refusal;
    }
    let mut answers = Vec::new();
    for update in body["watch"].as_array().cloned().unwrap_or_default() {
        let id = update["channel_id"].clone();
        let found = state.channels.iter_mut().find(|c| {
            c["channel_id"].to_string().trim_matches('"') == id.to_string().trim_matches('"')
        });
        match (found, update) {
            (Some(Value::Object(channel)), Value::Object(update)) => {
                channel.extend(update);
                answers.push(json!({"code": "SUCCESS", "details": {"channel_id": id}, "message": "Successfully updated the subscribe details", "status": "success"}));
            }
            _ => answers.push(json!({"code": "INVALID_DATA", "details": {"channel_id": id}, "message": "the channel is not subscribed", "status": "error"})),
        }
    }
    log(&mut state, path, StatusCode::OK);
    Json(json!({"watch": answers})).into_response()
}

async fn fields(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let path = "/crm/v8/settings/fields".to_owned();
    if let Some(refusal) = refused(&mut state, &headers, &path) {
        return refusal;
    }
    if params.get("module").map(String::as_str) != Some("Deals") {
        log(&mut state, path, StatusCode::BAD_REQUEST);
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "INVALID_MODULE", "details": {}, "message": "the module name given seems to be invalid", "status": "error"})),
        )
            .into_response();
    }
    log(&mut state, path, StatusCode::OK);
    Json(json!({"fields": [
        {"api_name": "Deal_Name", "data_type": "text"},
        {"api_name": "Stage", "data_type": "picklist", "pick_list_values": state.stages},
    ]}))
    .into_response()
}

async fn users(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(refusal) = refused(&mut state, &headers, "/crm/v8/users") {
        return refusal;
    }
    log(&mut state, "/crm/v8/users".into(), StatusCode::OK);
    Json(json!({"users": [{"full_name": "Ada Rep", "id": "5725767000000411001"}]})).into_response()
}

async fn token(
    State(state): State<Shared>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let accepted = state.client.as_ref().is_some_and(|client| {
        form.get("client_id") == Some(&client.client_id)
            && form.get("client_secret") == Some(&client.client_secret)
            && form.get("grant_type").map(String::as_str) == Some("refresh_token")
            && form
                .get("refresh_token")
                .is_some_and(|t| client.refresh_tokens.contains(t))
    });
    if !accepted {
        log(&mut state, "/oauth/v2/token".into(), StatusCode::OK);
        return Json(json!({"error": "invalid_code"})).into_response();
    }
    let issued = match state.client.as_mut() {
        Some(client) => {
            client.issued += 1;
            client.issued
        }
        None => 0,
    };
    let token = format!("1000.access{issued}.fake");
    state.tokens.insert(token.clone());
    log(&mut state, "/oauth/v2/token".into(), StatusCode::OK);
    Json(json!({"access_token": token, "scope": "ZohoCRM.modules.READ ZohoCRM.users.READ", "api_domain": "https://www.zohoapis.com", "token_type": "Bearer", "expires_in": 3600})).into_response()
}
