//! `POST /webhooks/{source}/{tenant}` and `POST /webhooks/{source}`: from an
//! HTTP request to stored raw events, one per event of the delivery.

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
use tributary_kafka::ProduceError;
use tributary_sources::{
    AuthFailure, Delivery, Refusal, Reply, SplitEvent, TenantOf, WebhookRequest, WebhookSource,
};

use crate::AppState;
use crate::delivery::{Envelope, INVALID_ELEMENT, Message, Topics};
use crate::error::Rejection;
use crate::internal_events::{self, UNKNOWN_SOURCE};

/// `POST /webhooks/{source}/{tenant}`.
pub async fn receive(
    State(state): State<Arc<AppState>>,
    Path((source_name, tenant)): Path<(String, String)>,
    request: Request,
) -> Response {
    handle(&state, source_name, Some(tenant), request).await
}

/// `POST /webhooks/{source}`: the source finds the tenant in the delivery.
pub async fn receive_untenanted(
    State(state): State<Arc<AppState>>,
    Path(source_name): Path<String>,
    request: Request,
) -> Response {
    handle(&state, source_name, None, request).await
}

async fn handle(
    state: &AppState,
    source_name: String,
    tenant: Option<String>,
    request: Request,
) -> Response {
    let received_at_micros = now_micros();
    let source = state.sources.get(&source_name);
    let path_tenant = tenant.clone().unwrap_or_default();
    // Shed load beyond the limit before reading anything.
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        let busy = Rejection::Busy {
            retry_after_seconds: state.settings.retry_after_seconds,
        };
        return refuse(source, &path_tenant, busy);
    };
    let (parts, body) = request.into_parts();
    let Some(source) = source else {
        drain_briefly(body, state.settings.max_body_bytes).await;
        internal_events::rejected(UNKNOWN_SOURCE, "unknown_source");
        return Rejection::UnknownSource(source_name).into_response();
    };
    // Credentials carried in headers are checked before the body is read.
    if let Some(tenant) = &tenant
        && source.credentials_in_headers()
    {
        let headers_only = WebhookRequest {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            body: &Bytes::new(),
        };
        if let Err(rejection) = check_credentials(source, tenant, &headers_only) {
            // A short, bounded drain, so the client reads the answer
            // rather than a reset connection; nothing of it is kept.
            drain_briefly(body, state.settings.max_body_bytes).await;
            return refuse(Some(source), &path_tenant, rejection);
        }
    }
    // Read (or drain) the body before answering anything: a peer whose
    // upload is left unread gets a reset connection instead of our answer.
    let read = read_body(body, &parts.headers, state.settings.max_body_bytes);
    let timeout = std::time::Duration::from_millis(state.settings.body_read_timeout_ms.max(1));
    let Ok(body) = tokio::time::timeout(timeout, read).await else {
        return refuse(
            Some(source),
            &path_tenant,
            Rejection::BodyTimeout { timeout },
        );
    };
    match accept(state, source, tenant, parts, body, received_at_micros).await {
        Ok(response) => response,
        Err(rejection) => refuse(Some(source), &path_tenant, rejection),
    }
}

/// The delivery's credentials or signature, checked by its source.
fn check_credentials(
    source: &dyn WebhookSource,
    tenant: &str,
    webhook: &WebhookRequest<'_>,
) -> Result<(), Rejection> {
    let authenticated = source
        .authenticate(tenant, webhook)
        .map_err(|failure| match failure {
            AuthFailure::Missing => Rejection::MissingCredentials(None),
            AuthFailure::Invalid => Rejection::InvalidCredentials(None),
            AuthFailure::MissingBecause(reason) => Rejection::MissingCredentials(Some(reason)),
            AuthFailure::InvalidBecause(reason) => Rejection::InvalidCredentials(Some(reason)),
            AuthFailure::Forbidden(reason) => Rejection::Forbidden(reason),
        });
    // An unknown tenant is answered as wrong credentials are (the source
    // checks them against credentials no one has), so the answers do not
    // tell which tenants exist; it is counted and logged as what it is.
    if !source.has_tenant(tenant) {
        let answer = authenticated
            .err()
            .unwrap_or(Rejection::InvalidCredentials(None));
        return Err(Rejection::UnknownTenant {
            tenant: tenant.to_owned(),
            source_name: source.name(),
            answer: Box::new(answer),
        });
    }
    authenticated
}

/// The answer to a refused delivery, counted and logged by reason.
fn refuse(source: Option<&dyn WebhookSource>, tenant: &str, rejection: Rejection) -> Response {
    let name = source.map_or(UNKNOWN_SOURCE, |s| s.name());
    internal_events::rejected(name, rejection.code());
    internal_events::log_refusal(name, rejection.code(), tenant, &rejection);
    rejection.into_reply(source)
}

/// The tenant a delivery without one in its path names, if it is configured.
fn tenant_of_delivery(
    source: &dyn WebhookSource,
    webhook: &WebhookRequest<'_>,
) -> Result<String, Rejection> {
    let source_name = source.name();
    match source.tenant_of(webhook) {
        // Unknown tenants are answered once their credentials are checked
        // (an unconfigured account by its description, which names no tenant).
        TenantOf::Tenant(tenant) | TenantOf::NotConfigured(tenant) => Ok(tenant),
        TenantOf::PathRequired => Err(Rejection::TenantRequired { source_name }),
        TenantOf::Unknown(reason) => Err(Rejection::TenantNotFound {
            source_name,
            reason,
        }),
        TenantOf::Unreadable(refusal) => Err(refusal_rejection(refusal)),
    }
}

async fn accept(
    state: &AppState,
    source: &dyn WebhookSource,
    tenant: Option<String>,
    parts: http::request::Parts,
    body: Result<Bytes, Rejection>,
    received_at_micros: u64,
) -> Result<Response, Rejection> {
    let name = source.name();
    let body = body?;
    let webhook = WebhookRequest {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body: &body,
    };
    let tenant = match tenant {
        Some(tenant) => tenant,
        None => tenant_of_delivery(source, &webhook)?,
    };
    internal_events::received(name, body.len());

    check_credentials(source, &tenant, &webhook)?;
    if let Some(reply) = source.handshake(&tenant, &webhook) {
        return Ok(reply_response(reply));
    }

    let content_type = content_type_header(&parts.headers);
    let checked_type = check_content_type(&content_type, source.content_types());
    let envelope = Envelope::new(
        &tenant,
        source,
        received_at_micros,
        content_type,
        &parts.headers,
        state.settings.keep_client_ip,
    );
    let topics = Topics {
        raw: &state.topic,
        dead_letter: &state.dead_letter_topic,
    };
    let split =
        checked_type.and_then(|_| source.split(&tenant, &webhook).map_err(refusal_rejection));
    let delivery = match split {
        Ok(delivery) => delivery,
        // Authenticated but refused: answered 4xx so the platform knows,
        // and kept whole for an operator to redrive once the rule is fixed.
        Err(rejection) => {
            let kept = envelope.quarantined(body.clone(), &rejection, topics);
            produce_all(state, name, &tenant, &[kept]).await?;
            internal_events::dead_lettered(name, rejection.code());
            return Err(rejection);
        }
    };
    for element in &delivery.rejected {
        internal_events::rejected(name, INVALID_ELEMENT);
        tracing::warn!(source = name, %tenant, index = element.index, violations = element.violations.len(), "an element of the delivery breaks its platform's rules: it goes to the dead-letter topic, the others are accepted without it");
    }
    let outgoing = envelope.messages(&delivery, topics);
    produce_all(state, name, &tenant, &outgoing).await?;
    for event in &delivery.events {
        internal_events::accepted(name, &event.keys.warnings);
    }
    for _ in &delivery.rejected {
        internal_events::dead_lettered(name, INVALID_ELEMENT);
    }
    Ok(match source.acknowledge(&tenant, &delivery) {
        Some(reply) => reply_response(reply),
        None => (StatusCode::ACCEPTED, Json(acknowledgement(&delivery))).into_response(),
    })
}

pub(crate) fn refusal_rejection(refusal: Refusal) -> Rejection {
    match refusal {
        Refusal::MalformedJson(message) => Rejection::MalformedJson(message),
        Refusal::MalformedXml(message) => Rejection::MalformedXml(message),
        Refusal::Invalid(violations) => Rejection::InvalidWebhook(violations),
    }
}

/// Queues every message of a delivery (its events, and its malformed
/// elements' dead letters), then waits for all of them: `Ok` only once the
/// broker has stored each one. Any failure fails the delivery, so the
/// platform sends it again; the events' ids make that retry harmless.
async fn produce_all(
    state: &AppState,
    name: &'static str,
    tenant: &str,
    messages: &[Message<'_>],
) -> Result<(), Rejection> {
    let retry_after_seconds = state.settings.retry_after_seconds;
    let refused = |err: ProduceError| match err {
        ProduceError::QueueFull => Rejection::Overloaded {
            retry_after_seconds,
        },
        // Sending it again would fail the same way: a misconfigured broker
        // limit, answered 413 rather than a 503 repeated forever.
        err if err.refuses_the_message() => {
            tracing::error!(source = name, %tenant, error = %err, "the broker refuses a message for its size; raise its message.max.bytes to what [collector] max_body_bytes needs");
            Rejection::BrokerRefusedSize {
                limit: state.settings.max_body_bytes,
            }
        }
        err => {
            tracing::warn!(source = name, %tenant, error = %err, "broker did not store the event");
            Rejection::BrokerUnavailable {
                retry_after_seconds,
            }
        }
    };
    let started = Instant::now();
    let mut acknowledgements = Vec::with_capacity(messages.len());
    for message in messages {
        let queued = state
            .producer
            .enqueue(message.topic, &message.key, &message.payload);
        match queued {
            Ok(acknowledgement) => acknowledgements.push(acknowledgement),
            Err(err) => {
                internal_events::produce_latency(name, started.elapsed(), false);
                return Err(refused(err));
            }
        }
    }
    let mut failure = None;
    for acknowledgement in acknowledgements {
        let stored = acknowledgement.await;
        internal_events::produce_latency(name, started.elapsed(), stored.is_ok());
        if let Err(err) = stored {
            failure.get_or_insert(err);
        }
    }
    match failure {
        None => Ok(()),
        Some(err) => Err(refused(err)),
    }
}

/// The collector's own acknowledgement: for one event `{"event_id",
/// "warnings"}`; for a batch each event's, and the elements left out.
fn acknowledgement(delivery: &Delivery) -> serde_json::Value {
    let event = |event: &SplitEvent| {
        let warnings: Vec<_> = event.keys.warnings.iter().map(|w| w.code).collect();
        json!({ "event_id": event.keys.event_id, "warnings": warnings })
    };
    match (&delivery.events[..], delivery.rejected.is_empty()) {
        ([one], true) => event(one),
        _ => json!({
            "events": delivery.events.iter().map(event).collect::<Vec<_>>(),
            "rejected": delivery
                .rejected
                .iter()
                .map(|element| json!({ "index": element.index, "violations": element.violations }))
                .collect::<Vec<_>>(),
        }),
    }
}

/// How much of an oversized body is read and discarded before answering 413,
/// as a multiple of the limit; past it the connection is simply closed.
const DRAIN_FACTOR: usize = 8;

/// Reads the body, refusing more than `limit` bytes. An oversized body is
/// drained (up to `DRAIN_FACTOR` times the limit) so the client can read the 413.
/// Reads and discards what of `body` arrives within a moment (at most
/// `DRAIN_FACTOR` times `limit` bytes), before a refusal is answered.
async fn drain_briefly(mut body: Body, limit: usize) {
    let drain = async {
        let mut seen = 0_usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > limit.saturating_mul(DRAIN_FACTOR) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), drain).await;
}

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

/// The `Content-Type` header as sent, `(none)` without one (or an empty one).
pub(crate) fn content_type_header(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "(none)".into())
}

/// Whether the source takes the media type of `content_type` (a header
/// value): one it names, or a structured-syntax variant of one
/// (`application/vnd.x+json` for `application/json`), parameters allowed.
pub(crate) fn check_content_type(
    content_type: &str,
    accepted: &'static [&'static str],
) -> Result<(), Rejection> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type_accepted(&essence, accepted) {
        Ok(())
    } else {
        Err(Rejection::UnsupportedMediaType {
            got: content_type.to_owned(),
            accepted,
        })
    }
}

fn media_type_accepted(essence: &str, accepted: &[&str]) -> bool {
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    accepted.iter().any(|media_type| {
        let Some((want_kind, want_subtype)) = media_type.split_once('/') else {
            return false;
        };
        kind.eq_ignore_ascii_case(want_kind)
            && (subtype.eq_ignore_ascii_case(want_subtype)
                || subtype.rsplit_once('+').is_some_and(|(prefix, suffix)| {
                    !prefix.is_empty() && suffix.eq_ignore_ascii_case(want_subtype)
                }))
    })
}

/// A source's own answer as an HTTP response.
pub(crate) fn reply_response(reply: Reply) -> Response {
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
    use tributary_sources::{Prevalidated, RejectedElement, Violation};

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().expect("header"));
        headers
    }

    #[test]
    fn json_content_types_pass_and_others_are_named_in_the_error() {
        let json = tributary_sources::JSON_MEDIA_TYPES;
        assert!(
            check_content_type(&content_type_header(&headers("application/json")), json).is_ok()
        );
        assert!(
            check_content_type(
                &content_type_header(&headers("Application/JSON; charset=utf-8")),
                json
            )
            .is_ok()
        );
        assert!(
            check_content_type(
                &content_type_header(&headers("application/vnd.pipedrive+json")),
                json
            )
            .is_ok()
        );
        let err = check_content_type(&content_type_header(&headers("text/plain")), json)
            .expect_err("text");
        assert!(err.to_string().contains("text/plain"), "{err}");
        assert!(err.to_string().contains("application/json"), "{err}");
        assert!(check_content_type(&content_type_header(&HeaderMap::new()), json).is_err());
        assert!(
            check_content_type(&content_type_header(&headers("application/+json")), json).is_err()
        );
        assert!(check_content_type(&content_type_header(&headers("text/json")), json).is_err());
    }

    #[test]
    fn a_source_declares_the_media_types_it_takes_and_the_415_names_them() {
        const SOAP: &[&str] = &["text/xml", "application/soap+xml"];
        assert!(
            check_content_type(
                &content_type_header(&headers("text/xml; charset=utf-8")),
                SOAP
            )
            .is_ok()
        );
        assert!(
            check_content_type(&content_type_header(&headers("application/soap+xml")), SOAP)
                .is_ok()
        );
        assert!(
            check_content_type(&content_type_header(&headers("text/vnd.sfdc+xml")), SOAP).is_ok()
        );
        let err = check_content_type(&content_type_header(&headers("application/json")), SOAP)
            .expect_err("json");
        assert_eq!(err.code(), "unsupported_media_type");
        let message = err.to_string();
        assert!(
            message.contains("\"application/json\"")
                && message.contains("text/xml")
                && message.contains("application/soap+xml"),
            "{message}"
        );
    }

    fn keys(event_id: &str, warnings: &[&'static str]) -> Prevalidated {
        Prevalidated {
            event_id: event_id.into(),
            payload_version: "1".into(),
            object: "deal".into(),
            object_id: "1".into(),
            action: "added".into(),
            attempt: 1,
            occurred_at_micros: 0,
            warnings: warnings
                .iter()
                .map(|code| tributary_sources::Warning {
                    code,
                    field: String::new(),
                    message: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn one_event_is_acknowledged_as_before_and_a_batch_lists_each_and_the_elements_left_out() {
        let one = Delivery::single(Bytes::from_static(b"{}"), keys("a", &["bulk_update"]));
        assert_eq!(
            acknowledgement(&one),
            json!({"event_id": "a", "warnings": ["bulk_update"]})
        );
        let batch = Delivery {
            events: vec![
                SplitEvent {
                    body: Bytes::from_static(b"{}"),
                    keys: keys("a", &[]),
                },
                SplitEvent {
                    body: Bytes::from_static(b"{}"),
                    keys: keys("b", &["redelivery"]),
                },
            ],
            rejected: vec![RejectedElement {
                index: 2,
                body: Bytes::from_static(b"7"),
                violations: vec![Violation {
                    field: "$".into(),
                    reason: "must be an object".into(),
                }],
                keys: Prevalidated::default(),
            }],
        };
        assert_eq!(
            acknowledgement(&batch),
            json!({
                "events": [
                    {"event_id": "a", "warnings": []},
                    {"event_id": "b", "warnings": ["redelivery"]}
                ],
                "rejected": [{"index": 2, "violations": [{"field": "$", "reason": "must be an object"}]}]
            })
        );
    }
}
