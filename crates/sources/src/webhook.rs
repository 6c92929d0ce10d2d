//! The collector's side of a platform: [`WebhookSource`] and what it works with.

use serde::Serialize;

/// What a source sees of an HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// Why a delivery was not authenticated. Both answer 401; the metric label differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials (or signature) at all.
    Missing,
    /// Credentials present but wrong or malformed.
    Invalid,
}

/// A reply to a subscription handshake, sent instead of accepting an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A broken rule: the field (dotted path) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub field: String,
    pub reason: String,
}

/// An oddity that does not justify rejecting the delivery, kept with the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

/// Why prevalidation refused a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The body is not JSON; the parser's message.
    MalformedJson(String),
    /// The body is JSON but breaks the platform's rules.
    Invalid(Vec<Violation>),
}

impl From<Vec<Violation>> for Refusal {
    fn from(violations: Vec<Violation>) -> Self {
        Refusal::Invalid(violations)
    }
}

/// What prevalidation learned about an acceptable delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prevalidated {
    /// De-duplication id, identical for every delivery of the same event.
    pub event_id: String,
    /// The platform's payload format version ("1", "2.0").
    pub payload_version: String,
    /// The changed object's kind ("deal", "person", ...).
    pub object: String,
    /// The changed object's id.
    pub object_id: String,
    /// The platform's action word, verbatim.
    pub action: String,
    /// Delivery attempt, 1 for the first.
    pub attempt: u32,
    /// The platform's event time in microseconds since the epoch.
    pub occurred_at_micros: u64,
    pub warnings: Vec<Warning>,
}

/// A webhook platform.
pub trait WebhookSource: Send + Sync {
    /// The name in URLs and configuration.
    fn name(&self) -> &'static str;

    /// Whether `tenant` has this source configured.
    fn has_tenant(&self, tenant: &str) -> bool;

    /// Checks the delivery's credentials or signature. Called only for
    /// configured tenants. Must compare secrets in constant time.
    fn authenticate(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure>;

    /// Answers a subscription handshake (challenge echo, intent to receive...).
    /// `None` means the request is an ordinary delivery.
    fn handshake(&self, _tenant: &str, _request: &WebhookRequest<'_>) -> Option<HandshakeReply> {
        None
    }

    /// Checks a body against the platform's rules, returning the extracted
    /// keys and any warnings, or why it is refused (every violation at once).
    fn prevalidate(&self, tenant: &str, body: &[u8]) -> Result<Prevalidated, Refusal>;

    /// Platform-specific request headers worth keeping with the event
    /// (lower-case names), beyond the generic ones the collector keeps.
    fn forwarded_headers(&self) -> &'static [&'static str] {
        &[]
    }
}
