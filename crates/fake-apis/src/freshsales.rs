//! A fake Freshsales (Freshworks CRM) API, one account, under `/crm/sales/api`.
//!
//! - `GET /crm/sales/api/{deals|contacts|sales_accounts|sales_activities}/{id}?include=...`:
//!   `{"deal": {...}}` with the included records side-loaded next to it
//!   (`users` for `owner`, `deal_stages`, `deal_pipelines`,
//!   `sales_accounts`); a record the account does not have answers `404`
//!   with `{"errors": {"code": 404, ...}}`; a record in the recycle bin has
//!   `is_deleted: true`.
//!   A sales activity answers as `{"sales_activity": {...}}`.
//! - `GET /crm/sales/api/selector/{currencies|owners|deal_stages|sales_activity_types}`.
//!
//! Requests must carry `Authorization: Token token=<api key>`; otherwise
//! `401` with `{"login": "failed", ...}`. Past `requests_per_hour`
//! (1,000 by default, Freshsales' limit) requests answer `429`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::{Call, Running, serve};

#[derive(Debug)]
pub struct FreshsalesState {
    pub api_keys: HashSet<String>,
    /// Records by collection (`deals`, `contacts`, `sales_accounts`) and id.
    pub records: HashMap<(String, String), Map<String, Value>>,
    pub users: Vec<Value>,
    pub deal_stages: Vec<Value>,
    pub deal_pipelines: Vec<Value>,
    pub currencies: Vec<Value>,
    pub sales_activity_types: Vec<Value>,
    pub requests_per_hour: u32,
    pub calls: Vec<Call>,
}

impl Default for FreshsalesState {
    fn default() -> Self {
        FreshsalesState {
            api_keys: HashSet::new(),
            records: HashMap::new(),
            users: Vec::new(),
            deal_stages: Vec::new(),
            deal_pipelines: Vec::new(),
            currencies: Vec::new(),
            sales_activity_types: Vec::new(),
            requests_per_hour: 1_000,
            calls: Vec::new(),
        }
    }
}

impl FreshsalesState {
    /// Stores `record` (an object with its `id`) in `collection`.
    pub fn put(&mut self, collection: &str, record: Value) {
        if let Value::Object(record) = record {
            let id = match record.get("id") {
                Some(Value::String(id)) => id.clone(),
                Some(other) => other.to_string(),
                None => return,
            };
            self.records.insert((collection.to_owned(), id), record);
        }
    }

    pub fn remove(&mut self, collection: &str, id: &str) {
        self.records.remove(&(collection.to_owned(), id.to_owned()));
    }

    pub fn calls_to(&self, prefix: &str) -> usize {
        self.calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .count()
    }
}

type Shared = Arc<Mutex<FreshsalesState>>;

pub struct FakeFreshsales;

impl FakeFreshsales {
    /// Serves `state`; the tenant's `api_url` is `base_url() + "/crm/sales"`.
    pub async fn start(state: FreshsalesState) -> std::io::Result<Running<FreshsalesState>> {
        let shared: Shared = Arc::new(Mutex::new(state));
        let router = Router::new()
            .route("/crm/sales/api/selector/{kind}", get(selector))
            .route("/crm/sales/api/{collection}/{id}", get(record))
            .with_state(shared.clone());
        serve(router, shared).await
    }
}

/// Authorization and the hourly limit; the refusal to answer, if any.
fn admit(state: &mut FreshsalesState, headers: &HeaderMap, path: String) -> Option<Response> {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token token="))
        .is_some_and(|key| state.api_keys.contains(key));
    let now = Instant::now();
    let last_hour = state
        .calls
        .iter()
        .filter(|c| c.status != 401 && now.duration_since(c.at) < Duration::from_secs(3_600))
        .count();
    let (status, refusal) = if !authorized {
        (
            StatusCode::UNAUTHORIZED,
            Some(
                Json(json!({"login": "failed", "message": "Incorrect or expired API key"}))
                    .into_response(),
            ),
        )
    } else if last_hour >= state.requests_per_hour as usize {
        (
            StatusCode::TOO_MANY_REQUESTS,
            Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "60")],
                    Json(json!({"errors": {"code": 429, "message": ["Too many requests"]}})),
                )
                    .into_response(),
            ),
        )
    } else {
        (StatusCode::OK, None)
    };
    state.calls.push(Call {
        at: now,
        path,
        status: status.as_u16(),
    });
    refusal.map(|mut response| {
        *response.status_mut() = status;
        response
    })
}

fn id_of(value: &Value) -> String {
    match value {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    }
}

fn find(list: &[Value], id: Option<&Value>) -> Option<Value> {
    let id = id_of(id?);
    list.iter()
        .find(|item| item.get("id").map(id_of).as_deref() == Some(id.as_str()))
        .cloned()
}

async fn record(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((collection, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let path = format!("/crm/sales/api/{collection}/{id}");
    if let Some(refusal) = admit(&mut state, &headers, path) {
        return refusal;
    }
    let Some(found) = state.records.get(&(collection.clone(), id)).cloned() else {
        if let Some(call) = state.calls.last_mut() {
            call.status = 404;
        }
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"errors": {"code": 404, "message": ["Record not found"]}})),
        )
            .into_response();
    };
    let mut body = Map::new();
    let includes: Vec<&str> = params
        .get("include")
        .map(|i| i.split(',').collect())
        .unwrap_or_default();
    for include in includes {
        let (name, item) = match include {
            "owner" => ("users", find(&state.users, found.get("owner_id"))),
            "deal_stage" => (
                "deal_stages",
                find(&state.deal_stages, found.get("deal_stage_id")),
            ),
            "deal_pipeline" => (
                "deal_pipelines",
                find(&state.deal_pipelines, found.get("deal_pipeline_id")),
            ),
            "sales_account" | "sales_accounts" => (
                "sales_accounts",
                found.get("sales_account_id").and_then(|account| {
                    let account = state
                        .records
                        .get(&("sales_accounts".to_owned(), id_of(account)))?;
                    Some(json!({"id": account.get("id"), "name": account.get("name"), "partial": true}))
                }),
            ),
            _ => continue,
        };
        if let Some(item) = item {
            body.insert(name.into(), json!([item]));
        }
    }
    let singular = match collection.strip_suffix("ies") {
        Some(stem) => format!("{stem}y"),
        None => collection.trim_end_matches('s').to_owned(),
    };
    body.insert(singular, Value::Object(found));
    Json(Value::Object(body)).into_response()
}

async fn selector(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(kind): Path<String>,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let path = format!("/crm/sales/api/selector/{kind}");
    if let Some(refusal) = admit(&mut state, &headers, path) {
        return refusal;
    }
    let (name, list) = match kind.as_str() {
        "currencies" => ("currencies", state.currencies.clone()),
        "owners" => ("users", state.users.clone()),
        "deal_stages" => ("deal_stages", state.deal_stages.clone()),
        "sales_activity_types" => ("sales_activity_types", state.sales_activity_types.clone()),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    Json(json!({ name: list })).into_response()
}
