//! Local stand-ins for the external APIs the enricher calls, for tests, the
//! demo and benchmarks: they answer in the documented shapes, send the
//! documented rate-limit headers, and can be told to rate-limit, fail or
//! stall. Every call is logged so tests can count and time them.

pub mod dynamics;
mod email;
pub mod freshsales;
pub mod hubspot;
mod pipedrive;
pub mod salesforce;
pub mod salesforce_pubsub;
pub mod shapes;
pub mod zoho;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use email::{EmailVerifier, EmailVerifierState};
pub use hubspot::{FakeHubSpot, HubSpotPortal, HubSpotState};
pub use pipedrive::{Account, FakePipedrive, PipedriveState, field_definition};
pub use salesforce::{FakeSalesforce, SalesforceOrg, SalesforceState};

/// One call a fake API answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    /// Path and query, e.g. `/api/v2/persons/7`.
    pub path: String,
    pub status: u16,
}

/// How a fake API misbehaves, changeable while it runs.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Answer every request with this status (an outage), e.g. 503.
    pub outage: Option<u16>,
    /// Answer the next `count` requests with 429 and `Retry-After: seconds`.
    pub storm: Option<Storm>,
    /// Requests allowed per rolling 2 seconds before 429 (Pipedrive's burst limit).
    pub burst_per_2s: Option<u32>,
    /// Added to every answer.
    pub latency: Duration,
    /// Answer every `n`-th request with a failure, alternating `503` and
    /// `429` (with `Retry-After: 1`): the occasional errors a real API gives.
    pub flaky_every: Option<u32>,
    /// Requests seen so far (for `flaky_every`).
    pub seen: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct Storm {
    pub count: u32,
    pub retry_after_seconds: u64,
}

/// A running fake server; stops when dropped.
pub struct Running<S> {
    pub address: SocketAddr,
    pub state: Arc<Mutex<S>>,
    task: tokio::task::JoinHandle<()>,
}

impl<S> Running<S> {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn state(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S> Drop for Running<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S: Send + 'static>(
    router: axum::Router,
    state: Arc<Mutex<S>>,
) -> std::io::Result<Running<S>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Running {
        address,
        state,
        task,
    })
}

/// What a behaviour decides for one request before the route answers.
enum Gate {
    Pass {
        remaining: u32,
        limit: u32,
        reset_seconds: u64,
    },
    Refuse(axum::response::Response),
}

/// Applies outage, storm and burst limits; `window` holds recent request times.
fn gate(behaviour: &mut Behaviour, window: &mut Vec<Instant>) -> Gate {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let now = Instant::now();
    window.retain(|t| now.duration_since(*t) < Duration::from_secs(2));
    let limit = behaviour.burst_per_2s.unwrap_or(u32::MAX);
    if let Some(status) = behaviour.outage {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Gate::Refuse(
            (
                status,
                axum::Json(serde_json::json!({"success": false, "error": "Service unavailable"})),
            )
                .into_response(),
        );
    }
    behaviour.seen += 1;
    if let Some(every) = behaviour.flaky_every.filter(|n| *n > 0)
        && behaviour.seen.is_multiple_of(u64::from(every))
    {
        if (behaviour.seen / u64::from(every)).is_multiple_of(2) {
            return Gate::Refuse(too_many(1, limit));
        }
        return Gate::Refuse(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"success": false, "error": "Service temporarily unavailable"})),
            )
                .into_response(),
        );
    }
    if let Some(storm) = behaviour.storm.as_mut().filter(|s| s.count > 0) {
        storm.count -= 1;
        let retry_after = storm.retry_after_seconds;
        return Gate::Refuse(too_many(retry_after, limit));
    }
    if window.len() as u64 >= u64::from(limit) {
        let oldest = window.first().copied().unwrap_or(now);
        let reset =
            (Duration::from_secs(2).saturating_sub(now.duration_since(oldest))).as_secs() + 1;
        return Gate::Refuse(too_many(reset, limit));
    }
    window.push(now);
    let oldest = window.first().copied().unwrap_or(now);
    Gate::Pass {
        remaining: limit.saturating_sub(u32::try_from(window.len()).unwrap_or(u32::MAX)),
        limit,
        reset_seconds: (Duration::from_secs(2).saturating_sub(now.duration_since(oldest)))
            .as_secs()
            + 1,
    }
}

fn too_many(retry_after: u64, limit: u32) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(
            serde_json::json!({"success": false, "error": "Request over limit", "errorCode": 429}),
        ),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("retry-after", retry_after.into());
    headers.insert("x-ratelimit-limit", limit.into());
    headers.insert("x-ratelimit-remaining", 0.into());
    headers.insert("x-ratelimit-reset", retry_after.into());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaky_every_fails_every_nth_request_alternating_503_and_429() {
        let mut behaviour = Behaviour {
            flaky_every: Some(3),
            ..Default::default()
        };
        let mut window = Vec::new();
        let statuses: Vec<u16> = (0..12)
            .map(|_| match gate(&mut behaviour, &mut window) {
                Gate::Pass { .. } => 200,
                Gate::Refuse(response) => response.status().as_u16(),
            })
            .collect();
        assert_eq!(
            statuses,
            [200, 200, 503, 200, 200, 429, 200, 200, 503, 200, 200, 429]
        );
    }
}
