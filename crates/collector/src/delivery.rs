//! From a delivery to the messages the broker must store: its events for the
//! raw topic, and dead letters for what its source refused — a batch's
//! malformed elements, or the whole delivery when it cannot be split. The
//! webhook handler and `tributary dlq redrive` (which splits a kept delivery
//! again once its source's rules are fixed) build them the same way.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use bytes::Bytes;
use tributary_envelope::{
    DeadLetter, DeadLetterError, ENVELOPE_VERSION, Header, RawEvent, Verdict, Warning,
};
use tributary_sources::{
    Delivery, Prevalidated, Sources, Violation, WebhookRequest, WebhookSource,
};

use crate::error::Rejection;
use crate::webhook::{check_content_type, refusal_rejection};

/// Request headers kept with every event, whatever the source.
const GENERIC_FORWARDED_HEADERS: &[&str] = &[
    "user-agent",
    "x-request-id",
    "x-correlation-id",
    "traceparent",
];

/// The client's address, kept only with `[collector] keep_client_ip`.
const CLIENT_IP_HEADERS: &[&str] = &["x-forwarded-for", "forwarded", "x-real-ip"];

/// Never kept, even if a source asks: credentials and session material.
const NEVER_FORWARDED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// A kept request header longer than this is left out; at most
/// `MAX_KEPT_HEADERS` are kept. Together they bound an envelope's overhead,
/// so the broker's message limit can be set from the body limit.
const MAX_KEPT_HEADER_BYTES: usize = 1024;
const MAX_KEPT_HEADERS: usize = 32;
/// An envelope's fields besides its body and headers (ids, keys, type), at most.
const ENVELOPE_FIELDS_BYTES: usize = 8 * 1024;
/// A whole delivery's dead letter lists at most this many violations,
/// each cut to `MAX_ERROR_TEXT` characters.
const MAX_KEPT_VIOLATIONS: usize = 50;
const MAX_ERROR_TEXT: usize = 256;
/// A dead-letter record's fields besides its original, at most.
const DEAD_LETTER_FIELDS_BYTES: usize = 4 * 1024 + MAX_KEPT_VIOLATIONS * 2 * (MAX_ERROR_TEXT + 16);

/// The largest message the collector produces for a body of `max_body_bytes`:
/// a whole delivery's dead letter, its envelope in base64. The producer's
/// `message.max.bytes` and the brokers' `message.max.bytes` /
/// topics' `max.message.bytes` must be at least this.
pub fn largest_message_bytes(max_body_bytes: usize) -> usize {
    let envelope =
        max_body_bytes + MAX_KEPT_HEADERS * (MAX_KEPT_HEADER_BYTES + 64) + ENVELOPE_FIELDS_BYTES;
    DEAD_LETTER_FIELDS_BYTES + tributary_envelope::dead_letter::encoded_len(envelope)
}

/// The stage named in the collector's dead-letter records.
pub const STAGE: &str = "collector";

/// The dead-letter `reason` (and rejection metric label) of a batch's malformed element.
pub const INVALID_ELEMENT: &str = "invalid_element";

/// The reasons of dead letters that hold a whole delivery its source
/// refused after authenticating it (the answer was 4xx). Redriving one
/// splits it again with the source's current rules.
pub const WHOLE_DELIVERY_REASONS: &[&str] = &[
    "malformed_json",
    "invalid_webhook",
    "unsupported_media_type",
];

/// A message for the broker.
pub struct Message<'a> {
    pub topic: &'a str,
    pub key: String,
    pub payload: Vec<u8>,
}

/// The topics a delivery's messages go to.
#[derive(Clone, Copy)]
pub struct Topics<'a> {
    pub raw: &'a str,
    pub dead_letter: &'a str,
}

/// What every event of one delivery shares in its envelope.
pub(crate) struct Envelope<'a> {
    tenant: &'a str,
    source: &'a dyn WebhookSource,
    received_at_micros: u64,
    content_type: String,
    /// The request headers kept with each event.
    headers: Vec<Header>,
}

impl<'a> Envelope<'a> {
    pub(crate) fn new(
        tenant: &'a str,
        source: &'a dyn WebhookSource,
        received_at_micros: u64,
        content_type: String,
        request_headers: &HeaderMap,
        keep_client_ip: bool,
    ) -> Self {
        let forwarded = source.forwarded_headers();
        let headers = request_headers
            .iter()
            .filter(|(name, value)| {
                let name = name.as_str();
                !NEVER_FORWARDED.contains(&name)
                    && (GENERIC_FORWARDED_HEADERS.contains(&name)
                        || forwarded.contains(&name)
                        || (keep_client_ip && CLIENT_IP_HEADERS.contains(&name)))
                    && value.len() <= MAX_KEPT_HEADER_BYTES
            })
            .take(MAX_KEPT_HEADERS)
            .map(|(name, value)| Header {
                name: name.as_str().to_owned(),
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            })
            .collect();
        Envelope {
            tenant,
            source,
            received_at_micros,
            content_type: cut(&content_type, MAX_KEPT_HEADER_BYTES),
            headers,
        }
    }

    /// The envelope of one event (or of something refused, `Verdict::Rejected`).
    fn event(&self, checked: &Prevalidated, body: Bytes, verdict: Verdict) -> RawEvent {
        RawEvent {
            envelope_version: ENVELOPE_VERSION,
            content_type: self.content_type.clone(),
            headers: self.headers.clone(),
            verdict: verdict as i32,
            enrichment_retry: None,
            ..checked.raw_event(
                self.tenant,
                self.source.name(),
                self.received_at_micros,
                body,
            )
        }
    }

    /// Every event of `delivery` for the raw topic, then a dead letter for
    /// each of its malformed elements.
    pub(crate) fn messages<'t>(&self, delivery: &Delivery, topics: Topics<'t>) -> Vec<Message<'t>> {
        let mut messages: Vec<Message<'t>> = delivery
            .events
            .iter()
            .map(|event| {
                let verdict = if event.keys.warnings.is_empty() {
                    Verdict::Accepted
                } else {
                    Verdict::AcceptedWithWarnings
                };
                let event = self.event(&event.keys, event.body.clone(), verdict);
                Message {
                    topic: topics.raw,
                    key: event.partition_key(),
                    payload: event.encode_to_vec(),
                }
            })
            .collect();
        messages.extend(delivery.rejected.iter().map(|element| {
            let rejected = self.rejected(
                &element.keys,
                element.body.clone(),
                INVALID_ELEMENT,
                &element.violations,
            );
            dead_letter(topics, &rejected, INVALID_ELEMENT, &element.violations)
        }));
        messages
    }

    /// The dead letter of a whole delivery its source refused (`rejection`:
    /// why), so an operator can find it and redrive it once the rule is fixed.
    pub(crate) fn quarantined<'t>(
        &self,
        body: Bytes,
        rejection: &Rejection,
        topics: Topics<'t>,
    ) -> Message<'t> {
        let violations = match rejection {
            Rejection::InvalidWebhook(all) => {
                let mut kept: Vec<Violation> = all
                    .iter()
                    .take(MAX_KEPT_VIOLATIONS)
                    .map(|violation| Violation {
                        field: cut(&violation.field, MAX_ERROR_TEXT),
                        reason: cut(&violation.reason, MAX_ERROR_TEXT),
                    })
                    .collect();
                if all.len() > MAX_KEPT_VIOLATIONS {
                    kept[MAX_KEPT_VIOLATIONS - 1] = Violation {
                        field: "$".into(),
                        reason: format!("and {} more", all.len() - MAX_KEPT_VIOLATIONS + 1),
                    };
                }
                kept
            }
            other => vec![Violation {
                field: "$".into(),
                reason: cut(&other.to_string(), MAX_ERROR_TEXT),
            }],
        };
        let code = rejection.code();
        let kept = self.rejected(&Prevalidated::default(), body, code, &violations);
        dead_letter(topics, &kept, code, &violations)
    }

    /// The envelope something refused would have had: verdict rejected, its
    /// violations as warnings.
    fn rejected(
        &self,
        keys: &Prevalidated,
        body: Bytes,
        code: &str,
        violations: &[Violation],
    ) -> RawEvent {
        let mut rejected = self.event(keys, body, Verdict::Rejected);
        rejected.warnings = violations
            .iter()
            .map(|violation| Warning {
                code: code.to_owned(),
                field: violation.field.clone(),
                message: violation.reason.clone(),
            })
            .collect();
        rejected
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The dead-letter record of something refused: `original` is the raw
/// envelope it would have had, addressed to the raw topic, so `tributary dlq
/// redrive` sends it on once the cause is fixed. It was never on the raw
/// topic: partition and offset are -1.
fn dead_letter<'t>(
    topics: Topics<'t>,
    envelope: &RawEvent,
    reason: &str,
    violations: &[Violation],
) -> Message<'t> {
    let letter = DeadLetter {
        stage: STAGE.into(),
        reason: reason.into(),
        errors: violations
            .iter()
            .map(|violation| DeadLetterError::new(&violation.field, &violation.reason))
            .collect(),
        event_id: Some(envelope.event_id.clone()).filter(|id| !id.is_empty()),
        tenant: Some(envelope.tenant.clone()),
        source: Some(envelope.source.clone()),
        original_topic: topics.raw.to_owned(),
        original_partition: -1,
        original_offset: -1,
        failed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        original: DeadLetter::encode_original(&envelope.encode_to_vec()),
        original_by_reference: false,
    };
    Message {
        topic: topics.dead_letter,
        key: envelope.partition_key(),
        payload: letter.to_json(),
    }
}

/// Splits a delivery kept whole on the dead-letter topic (one of
/// [`WHOLE_DELIVERY_REASONS`]) again, with its source's current rules and the
/// headers, time and tenant it arrived with: its events for the raw topic and
/// its malformed elements' dead letters. `Err`: why it is still refused.
pub fn redeliver<'t>(
    sources: &Sources,
    kept: &RawEvent,
    topics: Topics<'t>,
) -> Result<Vec<Message<'t>>, String> {
    let source = sources
        .get(&kept.source)
        .ok_or_else(|| format!("no source {:?} is configured", kept.source))?;
    if !source.has_tenant(&kept.tenant) {
        return Err(format!(
            "tenant {:?} has no {} section any more",
            kept.tenant, kept.source
        ));
    }
    let mut headers = HeaderMap::new();
    for kept_header in &kept.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(kept_header.name.as_bytes()),
            HeaderValue::from_str(&kept_header.value),
        ) {
            headers.append(name, value);
        }
    }
    if let Ok(content_type) = HeaderValue::from_str(&kept.content_type) {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    let uri: Uri = format!("/webhooks/{}/{}", kept.source, kept.tenant)
        .parse()
        .unwrap_or_default();
    let refused = |rejection: Rejection| match rejection {
        Rejection::InvalidWebhook(violations) => {
            let listed: Vec<String> = violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.reason))
                .collect();
            format!("still refused: {}", listed.join("; "))
        }
        other => format!("still refused: {other}"),
    };
    check_content_type(&kept.content_type, source.content_types()).map_err(refused)?;
    let webhook = WebhookRequest {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body: &kept.body,
    };
    let delivery = source
        .split(&kept.tenant, &webhook)
        .map_err(|refusal| refused(refusal_rejection(refusal)))?;
    // Headers were filtered when the delivery arrived: what was kept stays.
    let envelope = Envelope::new(
        &kept.tenant,
        source,
        kept.received_at_micros,
        kept.content_type.clone(),
        &headers,
        true,
    );
    Ok(envelope.messages(&delivery, topics))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_sources::{AuthFailure, Refusal, SplitEvent};

    /// Takes deliveries whose events are all numbered `id`s; `strict`
    /// refuses an `id` given as a string, as a source might before a fix.
    struct Numbered {
        strict: bool,
    }

    impl WebhookSource for Numbered {
        fn name(&self) -> &'static str {
            "numbered"
        }
        fn has_tenant(&self, tenant: &str) -> bool {
            tenant == "acme"
        }
        fn authenticate(&self, _: &str, _: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
            Ok(())
        }
        fn forwarded_headers(&self) -> &'static [&'static str] {
            &["x-numbered-delivery"]
        }
        fn split(&self, _: &str, request: &WebhookRequest<'_>) -> Result<Delivery, Refusal> {
            let items: Vec<serde_json::Value> = serde_json::from_slice(request.body)
                .map_err(|err| Refusal::MalformedJson(err.to_string()))?;
            let mut delivery = Delivery::default();
            for (index, item) in items.iter().enumerate() {
                let id = match &item["id"] {
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::String(s) if !self.strict => s.clone(),
                    _ => {
                        let violations = vec![Violation {
                            field: format!("[{index}].id"),
                            reason: "must be a number".into(),
                        }];
                        if items.len() == 1 {
                            return Err(Refusal::Invalid(violations));
                        }
                        delivery.rejected.push(tributary_sources::RejectedElement {
                            index,
                            body: Bytes::from(item.to_string()),
                            violations,
                            keys: Prevalidated::default(),
                        });
                        continue;
                    }
                };
                delivery.events.push(SplitEvent {
                    body: Bytes::from(item.to_string()),
                    keys: Prevalidated {
                        event_id: format!("acme:{id}"),
                        object: "deal".into(),
                        object_id: id,
                        ..Prevalidated::default()
                    },
                });
            }
            Ok(delivery)
        }
    }

    fn sources(strict: bool) -> Sources {
        let source: Box<dyn WebhookSource> = Box::new(Numbered { strict });
        Sources::new([source])
    }

    const TOPICS: Topics<'static> = Topics {
        raw: "raw",
        dead_letter: "dead",
    };

    /// The dead letter the collector keeps of `body` refused by a strict source.
    fn kept_by_strict_source(body: &'static [u8]) -> RawEvent {
        let source = Numbered { strict: true };
        let mut headers = HeaderMap::new();
        headers.insert("x-numbered-delivery", HeaderValue::from_static("d-7"));
        headers.insert("authorization", HeaderValue::from_static("Bearer secret"));
        let request = WebhookRequest {
            method: &Method::POST,
            uri: &Uri::from_static("/webhooks/numbered/acme"),
            headers: &headers,
            body: &Bytes::from_static(body),
        };
        let rejection = refusal_rejection(source.split("acme", &request).expect_err("refused"));
        let envelope = Envelope::new(
            "acme",
            &source,
            42,
            "application/json".into(),
            &headers,
            false,
        );
        let message = envelope.quarantined(Bytes::from_static(body), &rejection, TOPICS);
        assert_eq!(message.topic, "dead");
        let letter: DeadLetter = serde_json::from_slice(&message.payload).expect("a dead letter");
        assert_eq!(
            (letter.stage.as_str(), letter.reason.as_str()),
            (STAGE, "invalid_webhook")
        );
        assert_eq!(letter.errors[0].path, "[0].id");
        assert_eq!(letter.original_topic, "raw");
        RawEvent::decode_from(&letter.original_bytes().expect("base64")).expect("envelope")
    }

    #[test]
    fn a_kept_delivery_is_split_again_by_the_fixed_rules_as_it_arrived() {
        let kept = kept_by_strict_source(br#"[{"id": "7"}]"#);
        assert_eq!(kept.verdict, Verdict::Rejected as i32);
        assert!(kept.headers.iter().all(|h| h.name != "authorization"));

        let still_strict = sources(true);
        let why = redeliver(&still_strict, &kept, TOPICS)
            .err()
            .expect("still refused");
        assert!(why.contains("[0].id: must be a number"), "{why}");

        let fixed = sources(false);
        let messages = redeliver(&fixed, &kept, TOPICS).expect("accepted now");
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].topic, "raw");
        assert_eq!(messages[0].key, "acme:numbered:deal:7");
        let event = RawEvent::decode_from(&messages[0].payload).expect("envelope");
        assert_eq!(event.verdict, Verdict::Accepted as i32);
        assert_eq!(event.event_id, "acme:7");
        assert_eq!(event.received_at_micros, 42, "the time it first arrived");
        assert_eq!(event.content_type, "application/json");
        assert_eq!(
            event
                .headers
                .iter()
                .map(|h| (h.name.as_str(), h.value.as_str()))
                .collect::<Vec<_>>(),
            [("x-numbered-delivery", "d-7")]
        );
        assert_eq!(&event.body[..], br#"{"id":"7"}"#);
    }

    #[test]
    fn a_kept_delivery_for_a_tenant_or_source_no_longer_configured_stays_kept() {
        let mut kept = kept_by_strict_source(br#"[{"id": "7"}]"#);
        let fixed = sources(false);
        kept.tenant = "globex".into();
        let why = redeliver(&fixed, &kept, TOPICS).err().expect("no tenant");
        assert!(why.contains("globex"), "{why}");
        kept.source = "other".into();
        let why = redeliver(&fixed, &kept, TOPICS).err().expect("no source");
        assert!(why.contains("other"), "{why}");
    }
}
