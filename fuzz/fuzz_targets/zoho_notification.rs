//! Zoho CRM notifications at the collector: arbitrary bytes as the body,
//! through the source the registry builds (the token and channel checks,
//! split and prevalidation), then each record's event through the enricher
//! and the mapping.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use tributary_envelope::{EventKeys, RawEvent};
use tributary_model::{Context, Mapping};
use tributary_sources::zoho::enrich::ZohoEnricher;
use tributary_sources::zoho::mapping::ZohoMapping;
use tributary_sources::{Refusal, WebhookRequest, WebhookSource, zoho};

const TENANT: &str = "acme";

fn section() -> serde_json::Value {
    serde_json::json!({"org_id": "600", "channel_ids": ["1000000068001"], "token": "tok", "currency": "INR"})
}

static SOURCE: LazyLock<Box<dyn WebhookSource>> = LazyLock::new(|| {
    let section = section();
    let platform = tributary_sources::platform(zoho::NAME).expect("registered");
    (platform.webhook)(vec![(TENANT, &section)]).expect("tenant settings are valid")
});

static ENRICHER: LazyLock<ZohoEnricher> = LazyLock::new(|| {
    let settings = zoho::tenant_settings(&section()).expect("valid");
    ZohoEnricher::new(BTreeMap::from([(TENANT.to_owned(), settings)]))
});

static URI: LazyLock<Uri> = LazyLock::new(|| Uri::from_static("/webhooks/zoho/acme"));

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
    // Authentication reads the token from the body: most inputs fail it,
    // which is an answer, not a crash; the split is fuzzed either way.
    let _ = source.authenticate(TENANT, &request);
    match source.split(TENANT, &request) {
        Ok(delivery) => {
            assert!(!delivery.events.is_empty());
            for event in &delivery.events {
                assert!(event.keys.object_id.bytes().all(|b| b.is_ascii_digit()));
                let raw = RawEvent {
                    tenant: TENANT.into(),
                    source: zoho::NAME.into(),
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
                if let Ok((record, _)) = ENRICHER.flat_event(&raw)
                    && let Ok(fields) = record.into_map()
                {
                    let context = Context { tenant: TENANT, source: zoho::NAME, received_at_micro: 1, missing: &[] };
                    let _ = ZohoMapping.map(&context, &fields);
                }
            }
        }
        Err(Refusal::MalformedJson(_)) => {}
        Err(Refusal::MalformedXml(_)) => panic!("a JSON source does not read XML"),
        Err(Refusal::Invalid(violations)) => {
            assert!(!violations.is_empty(), "a refusal names what is wrong");
        }
    }
});
