//! The collector's side of a platform: [`WebhookSource`] and what it works with.
//!
//! For each request the collector asks the source, in this order: which
//! tenant it is for when the path does not say ([`WebhookSource::tenant_of`]),
//! whether it is authentic, whether it is a subscription handshake, whether
//! its media type is one the source takes, and how it splits into events
//! ([`WebhookSource::split`]: one per webhook for most platforms, one per
//! element for those that batch). Every event is stored before the delivery
//! is acknowledged, in the source's words if it has its own
//! ([`WebhookSource::acknowledge`], [`WebhookSource::refusal_reply`]).

use bytes::Bytes;
use serde::Serialize;

/// What a source sees of an HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub headers: &'a http::HeaderMap,
    /// The body exactly as received; events may share it (`Bytes::slice_ref`).
    pub body: &'a Bytes,
}

impl WebhookRequest<'_> {
    /// A query parameter's value, percent-decoded.
    pub fn query_parameter(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.uri.query()?.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

/// Why a delivery was not authenticated. The first four answer 401 (the
/// metric label says whether anything was presented), `Forbidden` 403.
/// Reasons are told to the sender: they name headers and checks, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials (or signature) at all.
    Missing,
    /// Credentials present but wrong or malformed.
    Invalid,
    /// No credentials, and what is missing (a header a signature needs...).
    MissingBecause(String),
    /// Wrong, malformed or expired credentials, and why (a stale timestamp...).
    InvalidBecause(String),
    /// Authentic, but not allowed to deliver for this tenant (another
    /// account's events posted to the tenant's address), and why.
    Forbidden(String),
}

/// An answer a source writes itself: to a subscription handshake, an
/// acknowledgement in the platform's format, a refusal in its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
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

/// Why a source refused a whole delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The body is not JSON; the parser's message.
    MalformedJson(String),
    /// The body is not well-formed XML, or not the XML document the
    /// platform sends; what is wrong.
    MalformedXml(String),
    /// The body is JSON but breaks the platform's rules.
    Invalid(Vec<Violation>),
}

impl From<Vec<Violation>> for Refusal {
    fn from(violations: Vec<Violation>) -> Self {
        Refusal::Invalid(violations)
    }
}

/// What prevalidation learned about an acceptable event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

impl Prevalidated {
    /// The raw-topic event of `body` with these keys and warnings, as
    /// received by `tenant`'s `source` at `received_at_micros` (the
    /// envelope's other fields at their defaults).
    pub fn raw_event(
        &self,
        tenant: &str,
        source: &str,
        received_at_micros: u64,
        body: Bytes,
    ) -> tributary_envelope::RawEvent {
        tributary_envelope::RawEvent {
            tenant: tenant.to_owned(),
            source: source.to_owned(),
            received_at_micros,
            event_id: self.event_id.clone(),
            warnings: self
                .warnings
                .iter()
                .map(|w| tributary_envelope::Warning {
                    code: w.code.to_owned(),
                    field: w.field.clone(),
                    message: w.message.clone(),
                })
                .collect(),
            body,
            keys: Some(tributary_envelope::EventKeys {
                payload_version: self.payload_version.clone(),
                object: self.object.clone(),
                object_id: self.object_id.clone(),
                action: self.action.clone(),
                attempt: self.attempt,
                occurred_at_micros: self.occurred_at_micros,
            }),
            ..tributary_envelope::RawEvent::default()
        }
    }
}

/// One event of a delivery, accepted by the source's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitEvent {
    /// The event's own bytes: the whole body for one-event deliveries, the
    /// element's bytes for a batch. Stored as they are.
    pub body: Bytes,
    pub keys: Prevalidated,
}

/// An element of a batch that breaks its platform's rules. The other
/// elements are accepted without it; the collector keeps it on the
/// dead-letter topic, in the envelope it would have had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedElement {
    /// Its position in the delivery, from 0.
    pub index: usize,
    /// Its bytes as received.
    pub body: Bytes,
    pub violations: Vec<Violation>,
    /// What could be read of its keys despite the violations; empty where
    /// unknown. A non-empty `event_id` is the one the element would have had.
    pub keys: Prevalidated,
}

/// A delivery, split into its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub events: Vec<SplitEvent>,
    pub rejected: Vec<RejectedElement>,
}

impl Delivery {
    /// A delivery that is one event: its whole body.
    pub fn single(body: Bytes, keys: Prevalidated) -> Self {
        Delivery {
            events: vec![SplitEvent { body, keys }],
            rejected: Vec::new(),
        }
    }
}

/// The tenant of a delivery posted to `/webhooks/{source}`, without one in the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantOf {
    /// The source needs the tenant in the path, `/webhooks/{source}/{tenant}`.
    PathRequired,
    /// The delivery names this tenant (e.g. by its account id).
    Tenant(String),
    /// The delivery names an account no tenant is (described for the log):
    /// answered as wrong credentials are, so answers do not tell which
    /// accounts are configured.
    NotConfigured(String),
    /// The delivery names no tenant at all; why, for the 404's message.
    Unknown(String),
    /// The delivery cannot be read well enough to find its tenant: refused
    /// as a delivery (400) before any authentication.
    Unreadable(Refusal),
}

/// A refusal as the collector answers it by default (`{"error": code,
/// "message": ...}` with `status`), for a source that answers in its own format.
#[derive(Debug, Clone, Copy)]
pub struct RefusalReply<'a> {
    pub status: u16,
    /// The stable code, e.g. `invalid_credentials`, `broker_unavailable`.
    pub code: &'static str,
    pub message: &'a str,
    /// For `invalid_webhook`: every broken rule.
    pub violations: &'a [Violation],
}

/// The media type most platforms send.
pub const JSON_MEDIA_TYPES: &[&str] = &["application/json"];

/// A webhook platform at the collector.
pub trait WebhookSource: Send + Sync {
    /// The name in URLs and configuration.
    fn name(&self) -> &'static str;

    /// Whether `tenant` has this source configured.
    fn has_tenant(&self, tenant: &str) -> bool;

    /// The tenant of a delivery posted to `/webhooks/{source}`, for platforms
    /// that send every account's webhooks to one address. By default the
    /// tenant must be in the path.
    fn tenant_of(&self, _request: &WebhookRequest<'_>) -> TenantOf {
        TenantOf::PathRequired
    }

    /// Whether [`WebhookSource::authenticate`] needs the headers alone
    /// (credentials such as Basic auth, not a signature over the body): the
    /// collector then checks them before it reads the body, so a delivery
    /// that cannot be authentic costs no memory and no wait for its upload.
    fn credentials_in_headers(&self) -> bool {
        false
    }

    /// Checks the delivery's credentials or signature. Called only for
    /// configured tenants. Must compare secrets in constant time.
    fn authenticate(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure>;

    /// Answers a subscription handshake (challenge echo, intent to receive...).
    /// `None` means the request is an ordinary delivery.
    fn handshake(&self, _tenant: &str, _request: &WebhookRequest<'_>) -> Option<Reply> {
        None
    }

    /// The media types this source takes (without parameters). Each also
    /// admits its structured-syntax variants: `application/json` takes
    /// `application/vnd.x+json` too. Anything else is answered 415.
    fn content_types(&self) -> &'static [&'static str] {
        JSON_MEDIA_TYPES
    }

    /// Splits a delivery into its events and checks each against the
    /// platform's rules, extracting its keys and warnings. A refusal refuses
    /// the whole delivery (every violation at once); a malformed element of
    /// a batch is a [`RejectedElement`] instead.
    fn split(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<Delivery, Refusal>;

    /// The answer once every event of `delivery` is stored. `None`: the
    /// collector's JSON answer (`202`, the event ids and warnings).
    fn acknowledge(&self, _tenant: &str, _delivery: &Delivery) -> Option<Reply> {
        None
    }

    /// The answer to a refused delivery. `None`: the collector's JSON error.
    /// The collector adds `WWW-Authenticate` and `Retry-After` when the
    /// refusal calls for them and the reply does not set them.
    fn refusal_reply(&self, _refusal: &RefusalReply<'_>) -> Option<Reply> {
        None
    }

    /// Platform-specific request headers worth keeping with the event
    /// (lower-case names), beyond the generic ones the collector keeps.
    fn forwarded_headers(&self) -> &'static [&'static str] {
        &[]
    }

    /// The `WWW-Authenticate` challenge of a 401: the scheme this source's
    /// platform authenticates with.
    fn auth_challenge(&self) -> &'static str {
        BASIC_CHALLENGE
    }
}

/// The default `WWW-Authenticate` challenge: HTTP Basic credentials.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"tributary\"";
