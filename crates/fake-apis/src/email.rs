//! A fake Hunter-style email verifier: `GET /v2/email-verifier?email=&api_key=`
//! answering `{"data": {...}, "meta": {...}}`, `202` while a check is still
//! running, 401 for a wrong key, 429 with `Retry-After` when rate-limited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::{Behaviour, Call, Gate, Running, gate, serve};

#[derive(Debug, Default)]
pub struct EmailVerifierState {
    pub api_key: String,
    /// The `data` object per email; unknown emails get an "unknown" verdict.
    pub results: HashMap<String, Value>,
    /// Answer `202` this many times per email before the result.
    pub pending_answers: u32,
    pub behaviour: Behaviour,
    pub calls: Vec<Call>,
    pending_seen: HashMap<String, u32>,
    window: Vec<Instant>,
}

impl EmailVerifierState {
    /// A verifier accepting `api_key`.
    pub fn with_key(api_key: &str) -> Self {
        EmailVerifierState {
            api_key: api_key.to_owned(),
            ..Default::default()
        }
    }

    pub fn calls_for(&self, email: &str) -> usize {
        let needle = format!("email={}", email.replace('@', "%40"));
        self.calls
            .iter()
            .filter(|c| c.path.contains(&needle) || c.path.contains(&format!("email={email}")))
            .count()
    }
}

pub struct EmailVerifier;

type Shared = Arc<Mutex<EmailVerifierState>>;

impl EmailVerifier {
    pub async fn start(state: EmailVerifierState) -> std::io::Result<Running<EmailVerifierState>> {
        let shared: Shared = Arc::new(Mutex::new(state));
        let router = Router::new()
            .route("/v2/email-verifier", get(verify))
            .with_state(shared.clone());
        serve(router, shared).await
    }
}

async fn verify(
    State(state): State<Shared>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let latency = state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .behaviour
        .latency;
    tokio::time::sleep(latency).await;
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    let state = &mut *guard;
    let email = query.get("email").cloned().unwrap_or_default();
    let response = match gate(&mut state.behaviour, &mut state.window) {
        Gate::Refuse(response) => response,
        Gate::Pass { .. } if query.get("api_key") != Some(&state.api_key) => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errors": [{"id": "authentication_failed", "code": 401, "details": "No user found for the API key supplied"}]})),
        )
            .into_response(),
        Gate::Pass { .. } if email.is_empty() => (
            StatusCode::BAD_REQUEST,
            Json(json!({"errors": [{"id": "wrong_params", "code": 400, "details": "You are missing the email parameter"}]})),
        )
            .into_response(),
        Gate::Pass { .. } => {
            let seen = state.pending_seen.entry(email.clone()).or_default();
            if *seen < state.pending_answers {
                *seen += 1;
                (StatusCode::ACCEPTED, Json(json!({"data": null}))).into_response()
            } else {
                let data = state.results.get(&email).cloned().unwrap_or_else(|| unknown(&email));
                Json(json!({"data": data, "meta": {"params": {"email": email}}})).into_response()
            }
        }
    };
    let path = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    state.calls.push(Call {
        at: Instant::now(),
        path,
        status: response.status().as_u16(),
    });
    response
}

fn unknown(email: &str) -> Value {
    json!({
        "status": "unknown", "result": "risky", "score": 50, "email": email,
        "regexp": true, "gibberish": false, "disposable": false, "webmail": false,
        "mx_records": false, "smtp_server": false, "smtp_check": false,
        "accept_all": false, "block": false, "sources": []
    })
}
