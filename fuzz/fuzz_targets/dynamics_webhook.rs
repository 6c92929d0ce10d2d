//! Dynamics 365 deliveries at the collector: arbitrary bytes as the body of
//! a request carrying the tenant's webhook key, through the source the
//! registry builds (authentication with its organization check, split and
//! prevalidation), then each accepted context through the enricher and the
//! mapping.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use tributary_envelope::{EventKeys, RawEvent};
use tributary_model::{Context, Mapping};
use tributary_sources::dynamics::enrich::DynamicsEnricher;
use tributary_sources::dynamics::mapping::DynamicsMapping;
use tributary_sources::{AuthFailure, Refusal, WebhookRequest, WebhookSource, dynamics};

const TENANT: &str = "acme";
const ORG: &str = "9f2a1c34-5b6d-4e7f-8a9b-0c1d2e3f4a5b";

fn section() -> serde_json::Value {
    serde_json::json!({"organization_id": ORG, "secret": "k3y", "currency": "GBP"})
}

static SOURCE: LazyLock<Box<dyn WebhookSource>> = LazyLock::new(|| {
    let section = section();
    let platform = tributary_sources::platform(dynamics::NAME).expect("registered");
    (platform.webhook)(vec![(TENANT, &section)]).expect("tenant settings are valid")
});

static ENRICHER: LazyLock<DynamicsEnricher> = LazyLock::new(|| {
    let settings = dynamics::tenant_settings(&section()).expect("valid");
    DynamicsEnricher::new(BTreeMap::from([(TENANT.to_owned(), settings)]))
});

static URI: LazyLock<Uri> = LazyLock::new(|| Uri::from_static("/webhooks/dynamics/acme?code=k3y"));

static HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers
});

fuzz_target!(|data: &[u8]| {
    let source = &**SOURCE;
    let body = Bytes::copy_from_slice(data);
    let method = Method::POST;
    let request = WebhookRequest { method: &method, uri: &URI, headers: &HEADERS, body: &body };
    match source.authenticate(TENANT, &request) {
        Ok(()) => {}
        Err(AuthFailure::Forbidden(why)) => {
            assert!(!why.is_empty());
            return;
        }
        Err(other) => panic!("the tenant's own key refused: {other:?}"),
    }
    match source.split(TENANT, &request) {
        Ok(delivery) => {
            assert_eq!(delivery.events.len(), 1);
            let event = &delivery.events[0];
            assert_eq!(&event.body[..], data);
            let raw = RawEvent {
                tenant: TENANT.into(),
                source: dynamics::NAME.into(),
                event_id: event.keys.event_id.clone(),
                received_at_micros: 1,
                body: event.body.clone(),
                keys: Some(EventKeys {
                    payload_version: event.keys.payload_version.clone(),
                    object: event.keys.object.clone(),
                    object_id: event.keys.object_id.clone(),
                    action: event.keys.action.clone(),
                    attempt: 1,
                    occurred_at_micros: event.keys.occurred_at_micros,
                }),
                ..RawEvent::default()
            };
            // An error from either is a dead letter, never a panic.
            if let Ok((record, _)) = ENRICHER.flat_event(&raw)
                && let Ok(fields) = record.into_map()
            {
                let context = Context { tenant: TENANT, source: dynamics::NAME, received_at_micro: 1, missing: &[] };
                let _ = DynamicsMapping.map(&context, &fields);
            }
        }
        Err(Refusal::MalformedJson(_)) => {}
        Err(Refusal::MalformedXml(_)) => panic!("a JSON source does not read XML"),
        Err(Refusal::Invalid(violations)) => {
            assert!(!violations.is_empty(), "a refusal names what is wrong");
        }
    }
});
