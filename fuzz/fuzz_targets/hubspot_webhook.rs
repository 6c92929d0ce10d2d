//! HubSpot deliveries at the collector: arbitrary bytes as the body of a
//! correctly signed (v3) request to the shared address, routed by the portal
//! the body names, authenticated, then split into events and checked (an
//! app's batch element by element, or a workflow's record).
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use tributary_sources::hubspot::signature::{SIGNATURE_V3_HEADER, TIMESTAMP_HEADER, sign_v3};
use tributary_sources::hubspot::{self, HubSpot, WORKFLOW_SECRET_HEADER};
use tributary_sources::{AuthFailure, Refusal, TenantOf, WebhookRequest, WebhookSource};

const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
const WORKFLOW_SECRET: &str = "workflow-secret";
const PUBLIC_URL: &str = "https://hooks.example.com";
const NOW_MS: i64 = 1_700_000_000_000;

/// `acme` is portal 62515, `globex` portal 99.
static SOURCE: LazyLock<HubSpot> = LazyLock::new(|| {
    let acme = serde_json::json!({
        "portal_id": "62515",
        "client_secret": SECRET,
        "public_url": PUBLIC_URL,
        "workflow_secret": WORKFLOW_SECRET,
    });
    let globex = serde_json::json!({"portal_id": 99, "client_secret": SECRET});
    HubSpot::from_sections(vec![("acme", &acme), ("globex", &globex)])
        .expect("tenant settings are valid")
});

/// Posted to the shared address, with and without a workflow's declared object.
const PATHS: &[&str] = &["/webhooks/hubspot", "/webhooks/hubspot?object=deal"];

fuzz_target!(|data: &[u8]| {
    let source: &HubSpot = &SOURCE;
    let body = Bytes::copy_from_slice(data);
    let method = Method::POST;
    for &path in PATHS {
        let uri = Uri::from_static(path);
        let signature = sign_v3(SECRET, "POST", &format!("{PUBLIC_URL}{path}"), data, NOW_MS);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            SIGNATURE_V3_HEADER,
            HeaderValue::from_str(&signature).expect("base64 is a header value"),
        );
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from(NOW_MS));
        let request = WebhookRequest {
            method: &method,
            uri: &uri,
            headers: &headers,
            body: &body,
        };
        let tenant = match source.tenant_of(&request) {
            TenantOf::Tenant(tenant) => {
                // Routed by its own portal and signed with the tenant's secret: authentic.
                source
                    .authenticate_at(&tenant, &request, NOW_MS)
                    .unwrap_or_else(|failure| {
                        panic!("routed to {tenant} but refused: {failure:?}")
                    });
                tenant
            }
            TenantOf::Unreadable(refusal) => {
                assert!(matches!(source.split("acme", &request), Err(r) if r == refusal));
                continue;
            }
            TenantOf::PathRequired => panic!("HubSpot routes by portal"),
            TenantOf::NotConfigured(_) | TenantOf::Unknown(_) => {
                let _ = source.authenticate_at("acme", &request, NOW_MS);
                "acme".to_owned()
            }
        };
        assert!(source.handshake(&tenant, &request).is_none());
        check_split(source, &tenant, &request);

        // The same body from a workflow that sends its secret instead of signing.
        let mut unsigned = HeaderMap::new();
        unsigned.insert(
            WORKFLOW_SECRET_HEADER,
            HeaderValue::from_static(WORKFLOW_SECRET),
        );
        let request = WebhookRequest {
            headers: &unsigned,
            ..request
        };
        match source.authenticate_at("acme", &request, NOW_MS) {
            Ok(()) | Err(AuthFailure::MissingBecause(_) | AuthFailure::Forbidden(_)) => {}
            Err(other) => panic!("the right workflow secret answered {other:?}"),
        }
    }
});

fn check_split(source: &HubSpot, tenant: &str, request: &WebhookRequest<'_>) {
    let range = request.body.as_ptr_range();
    match source.split(tenant, request) {
        Ok(delivery) => {
            for event in &delivery.events {
                // Each event is its own bytes of the body, stored as they are.
                let bytes = event.body.as_ptr_range();
                assert!(range.start <= bytes.start && bytes.end <= range.end);
                assert!(!event.keys.event_id.is_empty());
                if event.keys.payload_version == hubspot::PAYLOAD_VERSION_APP {
                    let text = std::str::from_utf8(&event.body).expect("JSON text is UTF-8");
                    let _ = hubspot::read_app_event(text);
                }
                // What the enricher reads.
                let _ = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(
                    &event.body,
                );
            }
            for rejected in &delivery.rejected {
                let bytes = rejected.body.as_ptr_range();
                assert!(range.start <= bytes.start && bytes.end <= range.end);
                assert!(
                    !rejected.violations.is_empty(),
                    "a rejection names what is wrong"
                );
            }
            let _ = source.acknowledge(tenant, &delivery);
        }
        Err(Refusal::MalformedJson(_) | Refusal::MalformedXml(_)) => {}
        Err(Refusal::Invalid(violations)) => {
            assert!(!violations.is_empty(), "a refusal names what is wrong");
        }
    }
}
