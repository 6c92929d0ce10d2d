//! A fake Dataverse Web API (one organization) and its Microsoft Entra ID
//! token endpoint.
//!
//! - `GET /api/data/v9.2/{set}({id})`: a record in the Web API's shape;
//!   annotations (`@OData.Community.Display.V1.FormattedValue`,
//!   `@Microsoft.Dynamics.CRM.lookuplogicalname`...) only when the request
//!   says `Prefer: odata.include-annotations="*"`; an unknown id `404` with
//!   Dataverse's `0x80040217` error.
//! - `GET /api/data/v9.2/{set}`: every record of the set, as `value`
//!   (`transactioncurrencies`, say).
//! - `GET /api/data/v9.2/WhoAmI`.
//! - `POST /{directory}/oauth2/v2.0/token`: the client-credentials grant
//!   (`client_id`, `client_secret`, `scope` in the form), answering a
//!   bearer token with `expires_in`.
//!
//! A request without an issued or configured token gets `401` with
//! `WWW-Authenticate: Bearer`; [`Behaviour`] adds outages and the
//! occasional `503` or `429` with `Retry-After` (Dataverse's service
//! protection).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::{Behaviour, Call, Gate, Running, gate, serve};

/// An application user's registration in Entra ID.
#[derive(Debug, Clone, Default)]
pub struct EntraApp {
    pub directory: String,
    pub client_id: String,
    pub client_secret: String,
    /// The scope it may ask for, e.g. `https://acme.crm.dynamics.com/.default`.
    pub scope: String,
    /// Tokens issued so far.
    pub issued: u64,
}

/// The fake's state.
#[derive(Debug, Default)]
pub struct DataverseState {
    /// Records by entity set and id, in the Web API's shape with annotations.
    pub records: HashMap<(String, String), Map<String, Value>>,
    /// Bearer tokens that are accepted.
    pub tokens: HashSet<String>,
    pub app: Option<EntraApp>,
    pub calls: Vec<Call>,
    /// Outages, storms and occasional failures of the Web API's routes.
    pub behaviour: Behaviour,
    /// Recent request times (for the behaviour's limits).
    pub window: Vec<Instant>,
}

impl DataverseState {
    pub fn put(&mut self, set: &str, id: &str, record: Value) {
        if let Value::Object(record) = record {
            self.records.insert((set.to_owned(), id.to_owned()), record);
        }
    }

    pub fn calls_to(&self, prefix: &str) -> usize {
        self.calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .count()
    }
}

type Shared = Arc<Mutex<DataverseState>>;

pub struct FakeDataverse;

impl FakeDataverse {
    pub async fn start(state: DataverseState) -> std::io::Result<Running<DataverseState>> {
        let shared: Shared = Arc::new(Mutex::new(state));
        let router = Router::new()
            .route("/api/data/v9.2/{resource}", get(resource))
            .route("/{directory}/oauth2/v2.0/token", post(token))
            .with_state(shared.clone());
        serve(router, shared).await
    }
}

fn log(state: &mut DataverseState, path: String, status: StatusCode) {
    state.calls.push(Call {
        at: Instant::now(),
        path,
        status: status.as_u16(),
    });
}

async fn resource(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(resource): Path<String>,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let path = format!("/api/data/v9.2/{resource}");
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let state = &mut *state;
    if let Gate::Refuse(refused) = gate(&mut state.behaviour, &mut state.window) {
        log(state, path, refused.status());
        return refused;
    }
    if !state.tokens.contains(token) {
        log(state, path, StatusCode::UNAUTHORIZED);
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize")],
        )
            .into_response();
    }
    if resource == "WhoAmI" {
        log(state, path, StatusCode::OK);
        return Json(json!({
            "@odata.context": "https://acme.crm.dynamics.com/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": "6b0c5f2a-3c1b-4f0e-9a57-2b8d3c1e0a00",
            "UserId": "7c0c5f2a-3c1b-4f0e-9a57-2b8d3c1e0a01",
            "OrganizationId": "8d0c5f2a-3c1b-4f0e-9a57-2b8d3c1e0a02"
        }))
        .into_response();
    }
    if resource.chars().all(|c| c.is_ascii_lowercase()) {
        // A collection: every record of the set (no paging: the fake's sets
        // are small).
        let value: Vec<Value> = state
            .records
            .iter()
            .filter(|((set, _), _)| *set == resource)
            .map(|(_, record)| Value::Object(plain(record.clone())))
            .collect();
        log(state, path, StatusCode::OK);
        return Json(json!({
            "@odata.context": format!("https://acme.crm.dynamics.com/api/data/v9.2/$metadata#{resource}"),
            "value": value,
        }))
        .into_response();
    }
    let Some((set, id)) = resource
        .strip_suffix(')')
        .and_then(|rest| rest.split_once('('))
    else {
        log(state, path, StatusCode::NOT_FOUND);
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "0x8006088a", "message": format!("Resource not found for the segment '{resource}'.")}})),
        )
            .into_response();
    };
    let Some(record) = state.records.get(&(set.to_owned(), id.to_owned())).cloned() else {
        log(state, path, StatusCode::NOT_FOUND);
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "0x80040217", "message": format!("{set} With Id = {id} Does Not Exist")}})),
        )
            .into_response();
    };
    let annotated = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("odata.include-annotations"));
    let mut body = if annotated { record } else { plain(record) };
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "https://acme.crm.dynamics.com/api/data/v9.2/$metadata#{set}/$entity"
        )),
    );
    log(state, path, StatusCode::OK);
    Json(Value::Object(body)).into_response()
}

/// A record without its annotations.
fn plain(record: Map<String, Value>) -> Map<String, Value> {
    record
        .into_iter()
        .filter(|(key, _)| !key.contains('@'))
        .collect()
}

async fn token(
    State(state): State<Shared>,
    Path(directory): Path<String>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let path = format!("/{directory}/oauth2/v2.0/token");
    let refuse = |code: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": code, "error_description": description})),
        )
            .into_response()
    };
    let answer = match state.app.as_mut() {
        None => refuse(
            "invalid_client",
            "AADSTS700016: Application not found in the directory.",
        ),
        Some(app) if app.directory != directory => {
            refuse("invalid_request", "AADSTS90002: Tenant not found.")
        }
        Some(app)
            if form.get("client_id") != Some(&app.client_id)
                || form.get("client_secret") != Some(&app.client_secret) =>
        {
            refuse(
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            )
        }
        Some(_) if form.get("grant_type").map(String::as_str) != Some("client_credentials") => {
            refuse(
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            )
        }
        Some(app) if form.get("scope") != Some(&app.scope) => refuse(
            "invalid_scope",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
        ),
        Some(app) => {
            app.issued += 1;
            let token = format!("eyJ0eXAiOiJKV1Qi.dataverse.{}", app.issued);
            state.tokens.insert(token.clone());
            Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}))
                .into_response()
        }
    };
    let status = answer.status();
    log(&mut state, path, status);
    answer
}
