//! `POST /webhooks/{source}/{tenant}`: from HTTP request to a stored raw event.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use tributary_envelope::{ENVELOPE_VERSION, EventKeys, Header, RawEvent, Verdict, Warning};
use tributary_kafka::ProduceError;
use tributary_sources::{AuthFailure, Prevalidated, Refusal, WebhookRequest, WebhookSource};

use crate::AppState;
use crate::error::Rejection;
use crate::internal_events::{self, UNKNOWN_SOURCE};

/// Request headers kept with every event, whatever the source.
const GENERIC_FORWARDED_HEADERS: &[&str] = &[
    "user-agent",
    "x-request-id",
    "x-correlation-id",
    "traceparent",
    "x-forwarded-for",
];

/// Never kept, even if a source asks: credentials and session material.
const NEVER_FORWARDED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

pub async fn receive(
    State(state): State<Arc<AppState>>,
    Path((source_name, tenant)): Path<(String, String)>,
    request: Request,
) -> Response {
    let received_at_micros = now_micros();
    let (parts, body) = request.into_parts();
    // Read (or drain) the body before answering anything: a peer whose
    // upload is left unread gets a reset connection instead of our answer.
    let body = read_body(body, &parts.headers, state.settings.max_body_bytes).await;
    let Some(source) = state.sources.get(&source_name) else {
        internal_events::rejected(UNKNOWN_SOURCE, "unknown_source");
        return Rejection::UnknownSource(source_name).into_response();
    };
    let name = source.name();
    match accept(&state, source, &tenant, parts, body, received_at_micros).await {
        Ok(response) => response,
        Err(rejection) => {
            internal_events::rejected(name, rejection.code());
            tracing::debug!(source = name, %tenant, error = %rejection, "delivery rejected");
            rejection.into_response()
        }
    }
}

async fn accept(
    state: &AppState,
    source: &dyn WebhookSource,
    tenant: &str,
    parts: http::request::Parts,
    body: Result<Bytes, Rejection>,
    received_at_micros: u64,
) -> Result<Response, Rejection> {
    let name = source.name();
    if !source.has_tenant(tenant) {
        return Err(Rejection::UnknownTenant {
            tenant: tenant.to_owned(),
            source_name: name,
        });
    }
    let body = body?;
    internal_events::received(name, body.len());

    let webhook = WebhookRequest {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body: &body,
    };
    source
        .authenticate(tenant, &webhook)
        .map_err(|failure| match failure {
            AuthFailure::Missing => Rejection::MissingCredentials,
            AuthFailure::Invalid => Rejection::InvalidCredentials,
        })?;
    if let Some(reply) = source.handshake(tenant, &webhook) {
        return Ok(handshake_response(reply));
    }

    let content_type = check_content_type(&parts.headers)?;
    let checked = source
        .prevalidate(tenant, &body)
        .map_err(|refusal| match refusal {
            Refusal::MalformedJson(message) => Rejection::MalformedJson(message),
            Refusal::Invalid(violations) => Rejection::InvalidWebhook(violations),
        })?;

    let event = envelope(
        tenant,
        source,
        received_at_micros,
        content_type,
        &parts.headers,
        &checked,
        body,
    );
    let key = event.partition_key();
    let started = Instant::now();
    let sent = state
        .producer
        .send(&state.topic, &key, &event.encode_to_vec())
        .await;
    internal_events::produce_latency(name, started.elapsed(), sent.is_ok());
    let retry_after_seconds = state.settings.retry_after_seconds;
    match sent {
        Ok(_delivered) => {}
        Err(ProduceError::QueueFull) => {
            return Err(Rejection::Overloaded {
                retry_after_seconds,
            });
        }
        Err(err) => {
            tracing::warn!(source = name, %tenant, error = %err, "broker did not store the event");
            return Err(Rejection::BrokerUnavailable {
                retry_after_seconds,
            });
        }
    }
    internal_events::accepted(name, &checked.warnings);
    let warnings: Vec<_> = checked.warnings.iter().map(|w| w.code).collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "event_id": checked.event_id, "warnings": warnings })),
    )
        .into_response())
}

/// How much of an oversized body is read and discarded before answering 413,
/// as a multiple of the limit; past it the connection is simply closed.
const DRAIN_FACTOR: usize = 8;

/// Reads the body, refusing more than `limit` bytes. An oversized body is
/// drained (up to `DRAIN_FACTOR` times the limit) so the client can read the 413.
async fn read_body(mut body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, Rejection> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let drain_limit = limit.saturating_mul(DRAIN_FACTOR);
    if declared.is_some_and(|len| len > drain_limit as u64) {
        return Err(Rejection::PayloadTooLarge { limit });
    }
    let mut collected =
        Vec::with_capacity(declared.map_or(0, |len| len.min(limit as u64) as usize));
    let mut seen = 0_usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Rejection::UnreadableBody(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= limit {
                collected.extend_from_slice(&data);
            } else if seen > drain_limit {
                break;
            }
        }
    }
    if seen > limit {
        Err(Rejection::PayloadTooLarge { limit })
    } else {
        Ok(Bytes::from(collected))
    }
}

/// JSON only: `application/json` or any `application/*+json`, with parameters.
fn check_content_type(headers: &HeaderMap) -> Result<String, Rejection> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(raw)
    } else if raw.is_empty() {
        Err(Rejection::UnsupportedMediaType("(none)".into()))
    } else {
        Err(Rejection::UnsupportedMediaType(raw))
    }
}

fn envelope(
    tenant: &str,
    source: &dyn WebhookSource,
    received_at_micros: u64,
    content_type: String,
    headers: &HeaderMap,
    checked: &Prevalidated,
    body: Bytes,
) -> RawEvent {
    let forwarded = source.forwarded_headers();
    let headers = headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !NEVER_FORWARDED.contains(&name)
                && (GENERIC_FORWARDED_HEADERS.contains(&name) || forwarded.contains(&name))
        })
        .map(|(name, value)| Header {
            name: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })
        .collect();
    let verdict = if checked.warnings.is_empty() {
        Verdict::Accepted
    } else {
        Verdict::AcceptedWithWarnings
    };
    RawEvent {
        envelope_version: ENVELOPE_VERSION,
        tenant: tenant.to_owned(),
        source: source.name().to_owned(),
        received_at_micros,
        event_id: checked.event_id.clone(),
        content_type,
        headers,
        verdict: verdict as i32,
        warnings: checked
            .warnings
            .iter()
            .map(|w| Warning {
                code: w.code.to_owned(),
                field: w.field.clone(),
                message: w.message.clone(),
            })
            .collect(),
        body,
        keys: Some(EventKeys {
            payload_version: checked.payload_version.clone(),
            object: checked.object.clone(),
            object_id: checked.object_id.clone(),
            action: checked.action.clone(),
            attempt: checked.attempt,
            occurred_at_micros: checked.occurred_at_micros,
        }),
    }
}

fn handshake_response(reply: tributary_sources::HandshakeReply) -> Response {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().expect("header"));
        headers
    }

    #[test]
    fn json_content_types_pass_and_others_are_named_in_the_error() {
        assert!(check_content_type(&headers("application/json")).is_ok());
        assert!(check_content_type(&headers("Application/JSON; charset=utf-8")).is_ok());
        assert!(check_content_type(&headers("application/vnd.pipedrive+json")).is_ok());
        let err = check_content_type(&headers("text/plain")).expect_err("text");
        assert!(err.to_string().contains("text/plain"));
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }
}
