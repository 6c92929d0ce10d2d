//! Pipedrive deliveries at the collector: arbitrary bytes as the body of an
//! authentic request, through the source the registry builds from a
//! tenant's settings (media type, handshake, split and prevalidation), then
//! accepted events through the enricher's reading of them.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use tributary_sources::{Refusal, TenantOf, WebhookRequest, WebhookSource, pipedrive};

const TENANT: &str = "acme";

static SOURCE: LazyLock<Box<dyn WebhookSource>> = LazyLock::new(|| {
    let section = serde_json::json!({"username": "hook", "password": "s3cret"});
    let platform = tributary_sources::platform(pipedrive::NAME).expect("registered");
    (platform.webhook)(vec![(TENANT, &section)]).expect("tenant settings are valid")
});

static URI: LazyLock<Uri> = LazyLock::new(|| Uri::from_static("/webhooks/pipedrive/acme"));

static HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // base64("hook:s3cret")
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Basic aG9vazpzM2NyZXQ="),
    );
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
    assert!(source.has_tenant(TENANT));
    assert_eq!(source.tenant_of(&request), TenantOf::PathRequired);
    source
        .authenticate(TENANT, &request)
        .expect("the tenant's own credentials are accepted");
    assert!(source.handshake(TENANT, &request).is_none());
    match source.split(TENANT, &request) {
        Ok(delivery) => {
            // A Pipedrive delivery is one event: the whole body, as received.
            assert_eq!(delivery.events.len(), 1);
            assert!(delivery.rejected.is_empty());
            let event = &delivery.events[0];
            assert_eq!(&event.body[..], data);
            assert!(!event.keys.event_id.is_empty());
            // What the enricher does with it (an error there is a dead letter).
            let _ = pipedrive::parse(&event.body);
            let _ = source.acknowledge(TENANT, &delivery);
        }
        Err(Refusal::MalformedJson(_) | Refusal::MalformedXml(_)) => {}
        Err(Refusal::Invalid(violations)) => {
            assert!(!violations.is_empty(), "a refusal names what is wrong");
        }
    }
});
