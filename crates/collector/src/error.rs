//! Every way a delivery can be refused, with its HTTP status and metric label.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tributary_sources::{BASIC_CHALLENGE, RefusalReply, Violation, WebhookSource};

use crate::webhook::reply_response;

#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("no webhook source named {0:?}")]
    UnknownSource(String),
    /// Answered as `answer` (what wrong credentials get), so that answers
    /// do not tell which tenants exist.
    #[error("tenant {tenant:?} has no {source_name} webhook configured (answered: {answer})")]
    UnknownTenant {
        tenant: String,
        source_name: &'static str,
        answer: Box<Rejection>,
    },
    #[error("{reason}")]
    TenantNotFound {
        source_name: &'static str,
        reason: String,
    },
    #[error(
        "{source_name} webhooks name their tenant in the path: /webhooks/{source_name}/{{tenant}}"
    )]
    TenantRequired { source_name: &'static str },
    #[error("missing credentials{}", because(.0))]
    MissingCredentials(Option<String>),
    #[error("invalid credentials{}", because(.0))]
    InvalidCredentials(Option<String>),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error(
        "content type {got:?} is not one this source takes; send {}",
        accepted_list(accepted)
    )]
    UnsupportedMediaType {
        got: String,
        accepted: &'static [&'static str],
    },
    #[error("body is larger than the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    UnreadableBody(String),
    #[error("body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("body is not the XML message expected: {0}")]
    MalformedXml(String),
    #[error("the webhook breaks {} rule(s) of its platform", .0.len())]
    InvalidWebhook(Vec<Violation>),
    #[error(
        "the broker refuses messages this large: its message.max.bytes (or the topic's max.message.bytes) is below what max_body_bytes = {limit} needs"
    )]
    BrokerRefusedSize { limit: usize },
    #[error("the broker did not take the event; retry later")]
    BrokerUnavailable { retry_after_seconds: u32 },
    #[error("too many events in flight; retry later")]
    Overloaded { retry_after_seconds: u32 },
    #[error("too many requests in flight; retry later")]
    Busy { retry_after_seconds: u32 },
    #[error("the body did not arrive within {timeout:?}")]
    BodyTimeout { timeout: std::time::Duration },
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::UnknownTenant { answer, .. } => answer.status(),
            Rejection::UnknownSource(_)
            | Rejection::TenantNotFound { .. }
            | Rejection::TenantRequired { .. } => StatusCode::NOT_FOUND,
            Rejection::MissingCredentials(_) | Rejection::InvalidCredentials(_) => {
                StatusCode::UNAUTHORIZED
            }
            Rejection::Forbidden(_) => StatusCode::FORBIDDEN,
            Rejection::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::PayloadTooLarge { .. } | Rejection::BrokerRefusedSize { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Rejection::UnreadableBody(_)
            | Rejection::MalformedJson(_)
            | Rejection::MalformedXml(_)
            | Rejection::InvalidWebhook(_) => StatusCode::BAD_REQUEST,
            Rejection::BrokerUnavailable { .. }
            | Rejection::Overloaded { .. }
            | Rejection::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Stable machine-readable code, used in the response body and as the
    /// `reason` label of `tributary_collector_events_rejected_total`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::UnknownSource(_) => "unknown_source",
            Rejection::UnknownTenant { .. } | Rejection::TenantNotFound { .. } => "unknown_tenant",
            Rejection::TenantRequired { .. } => "tenant_required",
            Rejection::MissingCredentials(_) => "missing_credentials",
            Rejection::InvalidCredentials(_) => "invalid_credentials",
            Rejection::Forbidden(_) => "forbidden",
            Rejection::UnsupportedMediaType { .. } => "unsupported_media_type",
            Rejection::PayloadTooLarge { .. } => "payload_too_large",
            Rejection::BrokerRefusedSize { .. } => "broker_refused_size",
            Rejection::UnreadableBody(_) => "unreadable_body",
            Rejection::MalformedJson(_) => "malformed_json",
            Rejection::MalformedXml(_) => "malformed_xml",
            Rejection::InvalidWebhook(_) => "invalid_webhook",
            Rejection::BrokerUnavailable { .. } => "broker_unavailable",
            Rejection::Overloaded { .. } => "producer_queue_full",
            Rejection::Busy { .. } => "too_many_requests_in_flight",
            Rejection::BodyTimeout { .. } => "body_timeout",
        }
    }
}

impl Rejection {
    /// The answer: the source's own, if it writes one, else the JSON error.
    pub fn into_reply(self, source: Option<&dyn WebhookSource>) -> Response {
        if let Rejection::UnknownTenant { answer, .. } = self {
            return answer.into_reply(source);
        }
        let message = self.to_string();
        let violations = match &self {
            Rejection::InvalidWebhook(violations) => violations.as_slice(),
            _ => &[],
        };
        let refusal = RefusalReply {
            status: self.status().as_u16(),
            code: self.code(),
            message: &message,
            violations,
        };
        let mut response = match source.and_then(|source| source.refusal_reply(&refusal)) {
            Some(reply) => reply_response(reply),
            None => {
                let mut body = json!({ "error": self.code(), "message": message });
                if let Rejection::InvalidWebhook(violations) = &self {
                    body["violations"] = json!(violations);
                }
                (self.status(), Json(body)).into_response()
            }
        };
        // The source's reply may set these itself; otherwise they are added.
        let headers = response.headers_mut();
        match &self {
            Rejection::MissingCredentials(_) | Rejection::InvalidCredentials(_) => {
                let challenge = source.map_or(BASIC_CHALLENGE, |source| source.auth_challenge());
                headers
                    .entry(header::WWW_AUTHENTICATE)
                    .or_insert(HeaderValue::from_static(challenge));
            }
            Rejection::BrokerUnavailable {
                retry_after_seconds,
            }
            | Rejection::Overloaded {
                retry_after_seconds,
            }
            | Rejection::Busy {
                retry_after_seconds,
            } => {
                headers
                    .entry(header::RETRY_AFTER)
                    .or_insert(HeaderValue::from(*retry_after_seconds));
            }
            // The rest of a slow body is not waited for.
            Rejection::BodyTimeout { .. } => {
                headers
                    .entry(header::CONNECTION)
                    .or_insert(HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.into_reply(None)
    }
}

/// `: <reason>` when there is one.
fn because(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map(|reason| format!(": {reason}"))
        .unwrap_or_default()
}

/// `application/json or application/*+json, text/xml or text/*+xml`.
fn accepted_list(accepted: &[&str]) -> String {
    accepted
        .iter()
        .map(|media_type| match media_type.split_once('/') {
            Some((kind, subtype)) => format!("{media_type} or {kind}/*+{subtype}"),
            None => (*media_type).to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
