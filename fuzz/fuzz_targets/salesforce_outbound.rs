//! Salesforce Outbound Messages at the collector: arbitrary bytes as the
//! body of a request carrying the tenant's endpoint secret, through the
//! source the registry builds (authentication with its org check, split and
//! prevalidation, the SOAP answers), then each accepted notification
//! through the enricher's reading of it.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use tributary_sources::{AuthFailure, Refusal, RefusalReply, WebhookRequest, WebhookSource, salesforce};

const TENANT: &str = "acme";

static SOURCE: LazyLock<Box<dyn WebhookSource>> = LazyLock::new(|| {
    let section = serde_json::json!({"organization_id": "00D5g000004ABCD", "endpoint_secret": "s3cret"});
    let platform = tributary_sources::platform(salesforce::NAME).expect("registered");
    (platform.webhook)(vec![(TENANT, &section)]).expect("tenant settings are valid")
});

static URI: LazyLock<Uri> =
    LazyLock::new(|| Uri::from_static("/webhooks/salesforce/acme?secret=s3cret"));

static HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    headers
});

fuzz_target!(|data: &[u8]| {
    let source = &**SOURCE;
    let body = Bytes::copy_from_slice(data);
    let method = Method::POST;
    let request = WebhookRequest {
        method: &method,
        uri: &URI,
        headers: &HEADERS,
        body: &body,
    };
    match source.authenticate(TENANT, &request) {
        Ok(()) => {}
        // Another org's message: refused before anything is split.
        Err(AuthFailure::Forbidden(why)) => {
            assert!(!why.is_empty());
            return;
        }
        Err(other) => panic!("the tenant's own secret refused: {other:?}"),
    }
    match source.split(TENANT, &request) {
        Ok(delivery) => {
            assert!(!delivery.events.is_empty() || !delivery.rejected.is_empty());
            for event in &delivery.events {
                // Each event is a notification's exact bytes, readable alone.
                assert!(data.windows(event.body.len()).any(|w| w == &event.body[..]));
                assert!(!event.keys.event_id.is_empty());
                salesforce::outbound::read_notification_bytes(&event.body)
                    .expect("a stored notification reads again alone");
            }
            let ack = source.acknowledge(TENANT, &delivery).expect("an acknowledgement");
            assert_eq!(ack.status, 200);
        }
        Err(Refusal::MalformedXml(message)) => {
            assert!(!message.is_empty());
            let fault = source
                .refusal_reply(&RefusalReply {
                    status: 400,
                    code: "malformed_xml",
                    message: &message,
                    violations: &[],
                })
                .expect("a SOAP fault");
            // The fault quotes the message escaped: it stays well-formed.
            salesforce::outbound::read_message(&fault.body).expect_err("a fault is not a message");
        }
        Err(Refusal::MalformedJson(_)) => panic!("an XML source does not read JSON"),
        Err(Refusal::Invalid(violations)) => {
            assert!(!violations.is_empty(), "a refusal names what is wrong");
        }
    }
});
