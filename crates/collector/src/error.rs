//! Every way a delivery can be refused, with its HTTP status and metric label.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tributary_sources::Violation;

#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("no webhook source named {0:?}")]
    UnknownSource(String),
    #[error("tenant {tenant:?} has no {source_name} webhook configured")]
    UnknownTenant {
        tenant: String,
        source_name: &'static str,
    },
    #[error("missing credentials")]
    MissingCredentials,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("content type {0:?} is not JSON; send application/json")]
    UnsupportedMediaType(String),
    #[error("body is larger than the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    UnreadableBody(String),
    #[error("body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the webhook breaks {} rule(s) of its platform", .0.len())]
    InvalidWebhook(Vec<Violation>),
    #[error("the broker did not take the event; retry later")]
    BrokerUnavailable { retry_after_seconds: u32 },
    #[error("too many events in flight; retry later")]
    Overloaded { retry_after_seconds: u32 },
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::UnknownSource(_) | Rejection::UnknownTenant { .. } => StatusCode::NOT_FOUND,
            Rejection::MissingCredentials | Rejection::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            Rejection::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::UnreadableBody(_)
            | Rejection::MalformedJson(_)
            | Rejection::InvalidWebhook(_) => StatusCode::BAD_REQUEST,
            Rejection::BrokerUnavailable { .. } | Rejection::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Stable machine-readable code, used in the response body and as the
    /// `reason` label of `tributary_collector_events_rejected_total`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::UnknownSource(_) => "unknown_source",
            Rejection::UnknownTenant { .. } => "unknown_tenant",
            Rejection::MissingCredentials => "missing_credentials",
            Rejection::InvalidCredentials => "invalid_credentials",
            Rejection::UnsupportedMediaType(_) => "unsupported_media_type",
            Rejection::PayloadTooLarge { .. } => "payload_too_large",
            Rejection::UnreadableBody(_) => "unreadable_body",
            Rejection::MalformedJson(_) => "malformed_json",
            Rejection::InvalidWebhook(_) => "invalid_webhook",
            Rejection::BrokerUnavailable { .. } => "broker_unavailable",
            Rejection::Overloaded { .. } => "producer_queue_full",
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        if let Rejection::InvalidWebhook(violations) = &self {
            body["violations"] = json!(violations);
        }
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Rejection::MissingCredentials | Rejection::InvalidCredentials => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"tributary\""),
                );
            }
            Rejection::BrokerUnavailable {
                retry_after_seconds,
            }
            | Rejection::Overloaded {
                retry_after_seconds,
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            _ => {}
        }
        response
    }
}
