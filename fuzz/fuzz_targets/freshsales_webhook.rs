//! Freshsales workflow webhooks at the collector: arbitrary bytes as the
//! body, JSON and form-encoded, through the source the registry builds
//! (split and prevalidation); then the same bytes as the API's answer for
//! each event's record, through the enricher's reading of it and the mapping.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use tributary_envelope::{EventKeys, RawEvent};
use tributary_model::{Context, Mapping};
use tributary_sources::enrich::{Missing, put_pipeline_fields};
use tributary_sources::freshsales::api::ReadRecord;
use tributary_sources::freshsales::mapping::FreshsalesMapping;
use tributary_sources::freshsales::{self, FreshsalesTenant, enrich};
use tributary_sources::{Refusal, WebhookRequest, WebhookSource};

const TENANT: &str = "acme";

fn section() -> serde_json::Value {
    serde_json::json!({"secret": "workflow-secret-0123", "api_url": "https://acme.myfreshworks.com/crm/sales", "api_key": "k", "currency": "EUR"})
}

static SOURCE: LazyLock<Box<dyn WebhookSource>> = LazyLock::new(|| {
    let section = section();
    let platform = tributary_sources::platform(freshsales::NAME).expect("registered");
    (platform.webhook)(vec![(TENANT, &section)]).expect("tenant settings are valid")
});

static SETTINGS: LazyLock<FreshsalesTenant> =
    LazyLock::new(|| freshsales::tenant_settings(&section()).expect("valid"));

static URI: LazyLock<Uri> = LazyLock::new(|| Uri::from_static("/webhooks/freshsales/acme"));

fn headers(media_type: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert("x-tributary-secret", HeaderValue::from_static("workflow-secret-0123"));
    headers
}

static JSON: LazyLock<HeaderMap> = LazyLock::new(|| headers("application/json"));
static FORM: LazyLock<HeaderMap> = LazyLock::new(|| headers("application/x-www-form-urlencoded"));

fuzz_target!(|data: &[u8]| {
    let source = &**SOURCE;
    let body = Bytes::copy_from_slice(data);
    let method = Method::POST;
    let answer: Option<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(data).ok();
    for headers in [&*JSON, &*FORM] {
        let request = WebhookRequest { method: &method, uri: &URI, headers, body: &body };
        assert!(source.authenticate(TENANT, &request).is_ok(), "the secret header authenticates");
        match source.split(TENANT, &request) {
            Ok(delivery) => {
                assert_eq!(delivery.events.len(), 1);
                let keys = &delivery.events[0].keys;
                assert!(!keys.object_id.is_empty() && keys.object_id.bytes().all(|b| b.is_ascii_digit()));
                let keys = EventKeys {
                    payload_version: keys.payload_version.clone(),
                    object: keys.object.clone(),
                    object_id: keys.object_id.clone(),
                    action: keys.action.clone(),
                    attempt: 1,
                    occurred_at_micros: keys.occurred_at_micros,
                };
                let mut record = enrich::header(&SETTINGS, &keys);
                if let Some(answer) = &answer {
                    // The body as the API's answer: its record under the
                    // object's name when it has one, the rest side-loaded.
                    let mut included = answer.clone();
                    let read = match included.remove(keys.object.as_str()) {
                        Some(serde_json::Value::Object(record)) => record,
                        _ => answer.clone(),
                    };
                    enrich::put_read(&mut record, &keys, &ReadRecord { record: read, included }, None);
                }
                let raw = RawEvent {
                    tenant: TENANT.into(),
                    source: freshsales::NAME.into(),
                    event_id: "e".into(),
                    received_at_micros: 1,
                    keys: Some(keys),
                    ..RawEvent::default()
                };
                put_pipeline_fields(&mut record, &raw, &Missing::default());
                if let Ok(fields) = record.into_map() {
                    let context = Context { tenant: TENANT, source: freshsales::NAME, received_at_micro: 1, missing: &[] };
                    let _ = FreshsalesMapping.map(&context, &fields);
                }
            }
            Err(Refusal::MalformedJson(_)) => {}
            Err(Refusal::MalformedXml(_)) => panic!("Freshsales bodies are not read as XML"),
            Err(Refusal::Invalid(violations)) => {
                assert!(!violations.is_empty(), "a refusal names what is wrong");
            }
        }
    }
});
