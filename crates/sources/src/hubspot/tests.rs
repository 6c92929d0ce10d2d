use std::path::PathBuf;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri};
use serde_json::{Value, json};

use super::signature::{
    MAX_AGE_MS, SIGNATURE_HEADER, SIGNATURE_V3_HEADER, SIGNATURE_VERSION_HEADER, TIMESTAMP_HEADER,
    sign_v1, sign_v2, sign_v3,
};
use super::*;
use crate::{AuthFailure, Delivery, Refusal, TenantOf, Violation, WebhookRequest, WebhookSource};

const PORTAL: &str = "62515";
const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
const PUBLIC_URL: &str = "https://hooks.example.com";
const NOW_MS: i64 = 1_700_000_000_000;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hubspot")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn section(extra: Value) -> Value {
    let mut section = json!({
        "portal_id": PORTAL,
        "client_secret": SECRET,
        "public_url": PUBLIC_URL,
    });
    for (key, value) in extra.as_object().expect("object") {
        section[key] = value.clone();
    }
    section
}

/// `acme` is portal 62515; `globex` is portal 99.
fn source_with(acme: Value) -> HubSpot {
    let globex = json!({"portal_id": 99, "client_secret": "globex-secret"});
    HubSpot::from_sections(vec![("acme", &acme), ("globex", &globex)])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn source() -> HubSpot {
    source_with(section(json!({})))
}

/// A request as the collector sees it.
struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Request {
    fn new(path: &str, body: impl Into<Bytes>) -> Self {
        Request {
            method: Method::POST,
            uri: path.parse().expect("uri"),
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers
            .insert(name, HeaderValue::from_str(value).expect("header"));
        self
    }

    /// Signed as HubSpot signs a call to `PUBLIC_URL` + path, at `sent_ms`.
    fn signed_v3(self, secret: &str, sent_ms: i64) -> Self {
        let uri = format!("{PUBLIC_URL}{}", self.uri);
        let signature = sign_v3(secret, "POST", &uri, &self.body, sent_ms);
        self.header(SIGNATURE_V3_HEADER, &signature)
            .header(TIMESTAMP_HEADER, &sent_ms.to_string())
    }

    fn webhook(&self) -> WebhookRequest<'_> {
        WebhookRequest {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

fn auth_at(
    source: &HubSpot,
    tenant: &str,
    request: &Request,
    now_ms: i64,
) -> Result<(), AuthFailure> {
    source.authenticate_at(tenant, &request.webhook(), now_ms)
}

fn split(source: &HubSpot, request: &Request) -> Delivery {
    source
        .split("acme", &request.webhook())
        .unwrap_or_else(|refusal| panic!("refused: {refusal:?}"))
}

fn body_text(body: &Bytes) -> &str {
    std::str::from_utf8(body).expect("utf-8")
}

fn fields(violations: &[Violation]) -> Vec<&str> {
    violations.iter().map(|v| v.field.as_str()).collect()
}

// --- Tenant settings ---------------------------------------------------------

#[test]
fn every_setting_is_read_with_its_default_and_secrets_stay_hidden() {
    let minimal = tenant_settings(&json!({"portal_id": 62515, "client_secret": "s"}))
        .expect("portal and secret suffice");
    assert_eq!(
        minimal.portal_id, "62515",
        "a number from the environment is text"
    );
    assert_eq!(minimal.api_base_url, DEFAULT_API_BASE_URL);
    assert_eq!(minimal.requests_per_10s, DEFAULT_REQUESTS_PER_10S);
    assert_eq!(
        minimal.marketing_source_property,
        DEFAULT_MARKETING_SOURCE_PROPERTY
    );
    assert!(minimal.legacy_signatures);
    assert_eq!(minimal.public_url, None);
    assert!(minimal.access_token.is_none() && minimal.workflow_secret.is_none());

    let full = tenant_settings(&json!({
        "portal_id": "62515",
        "client_secret": "app-secret",
        "access_token": "pat-na1-token",
        "api_base_url": "http://127.0.0.1:9100",
        "requests_per_10s": 190,
        "public_url": "https://hooks.example.com/tributary/",
        "marketing_source_property": "campaign_source",
        "workflow_secret": "wf-secret",
        "legacy_signatures": false,
    }))
    .expect("every key");
    assert_eq!(
        full.public_base(),
        Some("https://hooks.example.com/tributary")
    );
    assert_eq!(full.requests_per_10s, 190);
    assert!(!full.legacy_signatures);
    assert_eq!(full.marketing_source_property, "campaign_source");
    let shown = format!("{full:?}");
    for secret in ["app-secret", "pat-na1-token", "wf-secret"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn invalid_sections_are_refused_with_the_reason() {
    let refused = |section: Value, wanted: &str| {
        let err = tenant_settings(&section).expect_err("refused");
        assert!(err.contains(wanted), "{err} should mention {wanted}");
    };
    refused(json!({"client_secret": "s"}), "portal_id");
    refused(json!({"portal_id": "62515"}), "client_secret");
    refused(json!({"portal_id": "acme", "client_secret": "s"}), "digits");
    refused(
        json!({"portal_id": "62515", "client_secret": ""}),
        "client_secret",
    );
    refused(
        json!({"portal_id": "62515", "client_secret": "s", "requests_per_10s": 0}),
        "requests_per_10s",
    );
    refused(
        json!({"portal_id": "62515", "client_secret": "s", "public_url": "hooks.example.com"}),
        "public_url",
    );
    refused(
        json!({"portal_id": "62515", "client_secret": "s", "public_url": "https://h/x?y=1"}),
        "public_url",
    );
    refused(
        json!({"portal_id": "62515", "client_secret": "s", "workflow_secret": ""}),
        "workflow_secret",
    );
    refused(
        json!({"portal_id": "62515", "client_secret": "s", "acces_token": "t"}),
        "acces_token",
    );
}

#[test]
fn a_portal_belongs_to_one_tenant() {
    let acme = json!({"portal_id": "62515", "client_secret": "a"});
    let globex = json!({"portal_id": 62515, "client_secret": "b"});
    let err = HubSpot::from_sections(vec![("acme", &acme), ("globex", &globex)])
        .err()
        .expect("two tenants, one portal")
        .to_string();
    assert!(err.contains("62515") && err.contains("acme"), "{err}");
}

// --- Splitting a batch into events -------------------------------------------

#[test]
fn each_element_of_hubspots_documented_batch_is_an_event_with_its_own_bytes() {
    let body = fixture("app/contact-batch.json");
    let request = Request::new("/webhooks/hubspot/acme", body.clone());
    let delivery = split(&source(), &request);
    assert!(delivery.rejected.is_empty(), "{:?}", delivery.rejected);
    let elements: Vec<Value> = serde_json::from_slice(&body).expect("array");
    assert_eq!(delivery.events.len(), 2);
    for (event, element) in delivery.events.iter().zip(&elements) {
        // The element's exact bytes: parsing them gives the element back,
        // and they are a slice of the body as received.
        let text = body_text(&event.body);
        assert_eq!(&serde_json::from_str::<Value>(text).expect("json"), element);
        assert!(
            String::from_utf8_lossy(&body).contains(text),
            "not a verbatim slice"
        );
        assert!(text.starts_with('{') && text.ends_with('}'), "{text}");
        assert_eq!(event.keys.payload_version, PAYLOAD_VERSION_APP);
        assert_eq!(event.keys.object, "contact");
        assert_eq!(event.keys.object_id, element["objectId"].to_string());
        assert_eq!(event.keys.attempt, 1);
        assert_eq!(event.keys.occurred_at_micros, 1_462_216_307_945_000);
        assert!(event.keys.warnings.is_empty(), "{:?}", event.keys.warnings);
    }
    let actions: Vec<&str> = delivery
        .events
        .iter()
        .map(|e| e.keys.action.as_str())
        .collect();
    assert_eq!(actions, ["propertyChange", "creation"]);
    assert_ne!(
        delivery.events[0].keys.event_id,
        delivery.events[1].keys.event_id
    );
}

#[test]
fn legacy_deal_subscriptions_give_object_action_and_the_record_to_order_by() {
    let delivery = split(
        &source(),
        &Request::new("/webhooks/hubspot/acme", fixture("app/deal-batch.json")),
    );
    assert!(delivery.rejected.is_empty(), "{:?}", delivery.rejected);
    let keys: Vec<(&str, &str, &str)> = delivery
        .events
        .iter()
        .map(|e| {
            (
                e.keys.object.as_str(),
                e.keys.action.as_str(),
                e.keys.object_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("deal", "creation", "123"),
            ("deal", "propertyChange", "123"),
            ("deal", "deletion", "124"),
            ("deal", "restore", "124"),
            ("deal", "merge", "125"),
            // An association change names its record in fromObjectId.
            ("deal", "associationChange", "123"),
        ]
    );
    let merge = read_app_event(body_text(&delivery.events[4].body))
        .expect("merge")
        .0;
    assert_eq!(merge.primary_object_id.as_deref(), Some("125"));
    assert_eq!(merge.merged_object_ids, ["126", "127"]);
    assert_eq!(merge.new_object_id.as_deref(), Some("125"));
    assert_eq!(merge.number_of_properties_moved, Some(14));
    let association = read_app_event(body_text(&delivery.events[5].body))
        .expect("association")
        .0;
    assert_eq!(
        association.association_type.as_deref(),
        Some("DEAL_TO_COMPANY")
    );
    assert_eq!(
        (
            association.from_object_id.as_deref(),
            association.to_object_id.as_deref()
        ),
        (Some("123"), Some("9001"))
    );
    assert_eq!(association.association_removed, Some(false));
    assert_eq!(association.is_primary_association, Some(true));
    assert_eq!(association.source_id.as_deref(), Some("userId:82088707"));
    let change = read_app_event(body_text(&delivery.events[1].body))
        .expect("change")
        .0;
    assert_eq!(change.property_name.as_deref(), Some("dealstage"));
    assert_eq!(change.property_value.as_deref(), Some("closedwon"));
    let creation = read_app_event(body_text(&delivery.events[0].body))
        .expect("creation")
        .0;
    assert_eq!(creation.change_flag.as_deref(), Some("NEW"));
    assert_eq!(creation.app_id.as_deref(), Some("54321"));
}

#[test]
fn a_merge_is_ordered_with_its_surviving_record() {
    let element = json!({"objectId": 200, "primaryObjectId": 100, "mergedObjectIds": [200, 300],
        "newObjectId": null, "numberOfPropertiesMoved": 3, "eventId": 5, "subscriptionId": 1,
        "portalId": 62515, "occurredAt": 1564113840000_u64, "subscriptionType": "contact.merge",
        "attemptNumber": 0});
    let body = serde_json::to_vec(&json!([element])).expect("json");
    let delivery = split(&source(), &Request::new("/webhooks/hubspot/acme", body));
    assert_eq!(delivery.events[0].keys.object_id, "100");
    let merge = read_app_event(body_text(&delivery.events[0].body))
        .expect("merge")
        .0;
    assert_eq!(
        (merge.object_id.as_str(), merge.entity_id()),
        ("200", "100")
    );
    assert_eq!(merge.new_object_id, None);
}

#[test]
fn generic_subscriptions_take_the_object_from_its_type_id_engagements_included() {
    let delivery = split(
        &source(),
        &Request::new(
            "/webhooks/hubspot/acme",
            fixture("app/generic-engagements.json"),
        ),
    );
    assert!(delivery.rejected.is_empty(), "{:?}", delivery.rejected);
    let keys: Vec<(&str, &str)> = delivery
        .events
        .iter()
        .map(|e| (e.keys.object.as_str(), e.keys.action.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("call", "creation"),
            ("email", "creation"),
            ("meeting", "creation"),
            ("task", "creation"),
            ("note", "creation"),
            ("task", "propertyChange"),
            ("deal", "propertyChange"),
        ]
    );
    let task = read_app_event(body_text(&delivery.events[5].body))
        .expect("task")
        .0;
    assert_eq!(task.subscription_type, "object.propertyChange");
    assert_eq!(task.object_type_id.as_deref(), Some("0-27"));
    for (type_id, object) in OBJECT_TYPE_IDS {
        assert_eq!(object_of_type_id(type_id), Some(*object));
        assert!(OBJECTS.contains(object));
    }
}

#[test]
fn ids_keep_every_digit_as_numbers_and_as_strings() {
    let delivery = split(
        &source(),
        &Request::new("/webhooks/hubspot/acme", fixture("app/large-ids.json")),
    );
    assert!(delivery.rejected.is_empty(), "{:?}", delivery.rejected);
    let first = read_app_event(body_text(&delivery.events[0].body))
        .expect("first")
        .0;
    // Both beyond 2^53: a trip through f64 would change their last digits.
    assert_eq!(first.object_id, "1234567890123456789");
    assert_eq!(first.event_id, "9223372036854775807");
    assert_eq!(delivery.events[0].keys.object_id, "1234567890123456789");
    let second = read_app_event(body_text(&delivery.events[1].body))
        .expect("second")
        .0;
    assert_eq!(second.object_id, "9007199254740993123");
    assert_eq!(second.event_id, "9007199254740993");
    assert_eq!(second.portal_id, "62515");
    assert_eq!(second.subscription_id.as_deref(), Some("12345"));
    // Longer than any integer type: still the digits sent.
    let huge = r#"{"objectId": 123456789012345678901234567890, "eventId": 1, "portalId": 62515,
        "occurredAt": 1564114110000, "subscriptionType": "deal.creation", "attemptNumber": 0}"#;
    assert_eq!(
        read_app_event(huge).expect("huge").0.object_id,
        "123456789012345678901234567890"
    );
    // What is not an id is refused, not rounded or defaulted.
    for bad in ["1.5e3", "-7", "0", "\"12a\"", "\"\"", "true"] {
        let element = format!(
            r#"{{"objectId": {bad}, "eventId": 1, "portalId": 62515, "occurredAt": 1564114110000,
            "subscriptionType": "deal.creation", "attemptNumber": 0}}"#
        );
        let violations = read_app_event(&element).expect_err(bad);
        assert_eq!(fields(&violations), ["objectId"], "{bad}");
    }
}

#[test]
fn the_event_id_is_the_same_on_every_retry_and_differs_between_events() {
    let source = source();
    let first = split(
        &source,
        &Request::new("/webhooks/hubspot/acme", fixture("app/deal-batch.json")),
    );
    let retry = split(
        &source,
        &Request::new(
            "/webhooks/hubspot/acme",
            fixture("app/deal-stage-retry.json"),
        ),
    );
    let original = &first.events[1].keys;
    let again = &retry.events[0].keys;
    assert_eq!(original.event_id, again.event_id);
    assert_eq!((original.attempt, again.attempt), (1, 4));
    let codes: Vec<&str> = again.warnings.iter().map(|w| w.code).collect();
    assert_eq!(codes, ["redelivery"]);
    let ids: std::collections::BTreeSet<&str> = first
        .events
        .iter()
        .map(|e| e.keys.event_id.as_str())
        .collect();
    assert_eq!(
        ids.len(),
        first.events.len(),
        "distinct events, distinct ids"
    );
    // eventId alone is not unique (HubSpot says so): another subscription's
    // event with the same eventId is another event.
    let other_subscription = app_event_id(
        PORTAL,
        Some("26"),
        "deal.propertyChange",
        "123",
        "4130012002",
        1_564_113_660_000,
    );
    assert_ne!(other_subscription, original.event_id);
    assert_eq!(
        app_event_id(
            PORTAL,
            Some("25"),
            "deal.propertyChange",
            "123",
            "4130012002",
            1_564_113_660_000
        ),
        original.event_id
    );
}

#[test]
fn subscription_type_may_be_named_event_type_as_in_hubspots_examples() {
    let element = r#"{"objectId": 1246965, "propertyName": "lifecyclestage", "propertyValue": "subscriber",
        "changeSource": "ACADEMY", "eventId": 3816279340, "subscriptionId": 25, "portalId": 33,
        "appId": 1160452, "occurredAt": 1462216307945, "eventType": "contact.propertyChange", "attemptNumber": 0}"#;
    let (event, warnings) = read_app_event(element).expect("eventType accepted");
    assert_eq!(event.subscription_type, "contact.propertyChange");
    assert!(warnings.is_empty());
    let disagreeing = element.replace(
        r#""attemptNumber": 0"#,
        r#""attemptNumber": 0, "subscriptionType": "contact.creation""#,
    );
    assert_eq!(
        fields(&read_app_event(&disagreeing).expect_err("two types")),
        ["eventType"]
    );
}

#[test]
fn malformed_elements_are_left_out_with_their_reasons_and_the_others_kept() {
    let body = fixture("app/two-malformed.json");
    let delivery = split(
        &source(),
        &Request::new("/webhooks/hubspot/acme", body.clone()),
    );
    let kept: Vec<&str> = delivery
        .events
        .iter()
        .map(|e| e.keys.object_id.as_str())
        .collect();
    assert_eq!(kept, ["1246965", "123", "9001"]);
    let rejected: Vec<(usize, Vec<&str>)> = delivery
        .rejected
        .iter()
        .map(|r| (r.index, fields(&r.violations)))
        .collect();
    assert_eq!(
        rejected,
        [(1, vec!["objectId"]), (3, vec!["subscriptionType"])]
    );
    assert!(delivery.rejected[1].violations[0].reason.contains("ticket"));
    // What can be read of them is kept: their envelope's keys.
    let no_object = &delivery.rejected[0].keys;
    assert_eq!(
        (no_object.object.as_str(), no_object.action.as_str()),
        ("deal", "propertyChange")
    );
    assert_eq!(no_object.object_id, "");
    assert!(!no_object.event_id.is_empty());
    let ticket = &delivery.rejected[1].keys;
    assert_eq!(
        (ticket.object.as_str(), ticket.object_id.as_str()),
        ("", "777")
    );
    // Each rejected element keeps its own bytes.
    let elements: Vec<Value> = serde_json::from_slice(&body).expect("array");
    assert_eq!(
        serde_json::from_slice::<Value>(&delivery.rejected[0].body).expect("json"),
        elements[1]
    );
}

#[test]
fn every_kind_of_malformed_element_has_its_violation() {
    let valid = json!({"objectId": 1, "eventId": 2, "portalId": 62515, "occurredAt": 1564114110000_u64,
        "subscriptionType": "deal.creation", "attemptNumber": 0});
    let with = |key: &str, value: Value| {
        let mut element = valid.clone();
        if value.is_null() {
            element.as_object_mut().expect("object").remove(key);
        } else {
            element[key] = value;
        }
        element
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!(42), "$"),
        (json!("deal"), "$"),
        (json!([valid.clone()]), "$"),
        (with("objectId", Value::Null), "objectId"),
        (with("eventId", Value::Null), "eventId"),
        (with("occurredAt", json!(1564114110)), "occurredAt"),
        (with("occurredAt", json!("yesterday")), "occurredAt"),
        (with("subscriptionType", json!("deal")), "subscriptionType"),
        (
            with("subscriptionType", json!("deal.frobnicated")),
            "subscriptionType",
        ),
        (
            with("subscriptionType", json!("ticket.creation")),
            "subscriptionType",
        ),
        (
            with("subscriptionType", json!("object.creation")),
            "objectTypeId",
        ),
        (with("portalId", json!(99)), "portalId"),
        (with("attemptNumber", json!(-1)), "attemptNumber"),
        (
            with("subscriptionType", json!("deal.propertyChange")),
            "propertyName",
        ),
        (
            with("subscriptionType", json!("deal.merge")),
            "primaryObjectId",
        ),
        (
            with("subscriptionType", json!("deal.associationChange")),
            "fromObjectId",
        ),
    ];
    let generic_ticket = {
        let mut element = with("subscriptionType", json!("object.creation"));
        element["objectTypeId"] = json!("0-5");
        element
    };
    let mismatched_type = {
        let mut element = valid.clone();
        element["objectTypeId"] = json!("0-1");
        element
    };
    let mut all: Vec<Value> = vec![valid.clone()];
    all.extend(cases.iter().map(|(element, _)| element.clone()));
    all.push(generic_ticket);
    all.push(mismatched_type);
    let body = serde_json::to_vec(&all).expect("json");
    let delivery = split(&source(), &Request::new("/webhooks/hubspot/acme", body));
    assert_eq!(delivery.events.len(), 1, "only the valid element");
    let mut expected: Vec<(usize, &str)> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, field))| (i + 1, *field))
        .collect();
    expected.push((cases.len() + 1, "objectTypeId"));
    expected.push((cases.len() + 2, "objectTypeId"));
    let found: Vec<(usize, &str)> = delivery
        .rejected
        .iter()
        .map(|r| (r.index, r.violations[0].field.as_str()))
        .collect();
    assert_eq!(found, expected);
    // The portal's violation says which portal was expected.
    let foreign = delivery
        .rejected
        .iter()
        .find(|r| r.index == 12)
        .expect("portal");
    assert!(
        foreign.violations[0].reason.contains("62515"),
        "{:?}",
        foreign.violations
    );
}

#[test]
fn a_body_that_is_not_an_array_or_object_is_refused_whole() {
    let source = source();
    let refusal = |body: &'static str| {
        source
            .split(
                "acme",
                &Request::new("/webhooks/hubspot/acme", body).webhook(),
            )
            .expect_err(body)
    };
    assert!(matches!(
        refusal("[{\"eventId\": 1,"),
        Refusal::MalformedJson(_)
    ));
    assert!(matches!(refusal("not json"), Refusal::MalformedJson(_)));
    for body in ["\"events\"", "42", "null", "true"] {
        match refusal(body) {
            Refusal::Invalid(violations) => {
                assert_eq!(fields(&violations), ["$"], "{body}");
                assert!(violations[0].reason.contains("array"), "{violations:?}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    // An empty batch is nothing to store, not an error.
    assert_eq!(
        split(&source, &Request::new("/webhooks/hubspot/acme", "[]")),
        Delivery::default()
    );
}

// --- Routing by portal -------------------------------------------------------

#[test]
fn a_delivery_without_a_tenant_in_the_path_goes_to_its_portals_tenant() {
    let source = source();
    let tenant = |body: &str| {
        source.tenant_of(&Request::new("/webhooks/hubspot", body.to_owned()).webhook())
    };
    let contact = String::from_utf8(fixture("app/contact-batch.json")).expect("utf-8");
    assert_eq!(tenant(&contact), TenantOf::Tenant("acme".into()));
    assert_eq!(
        tenant(r#"[{"portalId": 99, "objectId": 1}]"#),
        TenantOf::Tenant("globex".into())
    );
    // The portal most elements name; a malformed element does not decide.
    assert_eq!(
        tenant(r#"[{"portalId": 99}, 7, {"portalId": "62515"}, {"portalId": 62515}]"#),
        TenantOf::Tenant("acme".into())
    );
    // A portal no tenant is: named for the log, answered as a wrong signature.
    assert_eq!(
        tenant(r#"[{"portalId": 4242, "objectId": 1}]"#),
        TenantOf::NotConfigured("HubSpot portal 4242".into())
    );
    assert!(matches!(tenant("[1, 2]"), TenantOf::Unknown(_)));
    assert!(matches!(
        tenant("[{\"portalId\":"),
        TenantOf::Unreadable(Refusal::MalformedJson(_))
    ));
    // A workflow's record names its portal too.
    let workflow = String::from_utf8(fixture("workflow/contact-converted.json")).expect("utf-8");
    assert_eq!(tenant(&workflow), TenantOf::Tenant("acme".into()));
}

// --- Authentication ----------------------------------------------------------

#[test]
fn a_v3_signature_over_the_public_uri_is_accepted_within_five_minutes() {
    let source = source();
    let body = fixture("app/contact-batch.json");
    let sent = NOW_MS - 1_000;
    let request = Request::new("/webhooks/hubspot?via=app", body.clone())
        // The proxy's host, not the one HubSpot called: the signature covers the public one.
        .header("host", "collector.internal:8080")
        .signed_v3(SECRET, sent);
    assert_eq!(auth_at(&source, "acme", &request, NOW_MS), Ok(()));
    assert_eq!(
        auth_at(&source, "acme", &request, sent + MAX_AGE_MS),
        Ok(()),
        "five minutes exactly"
    );
    match auth_at(&source, "acme", &request, sent + MAX_AGE_MS + 1) {
        Err(AuthFailure::InvalidBecause(reason)) => {
            assert!(reason.contains("stale"), "{reason}");
        }
        other => panic!("stale: {other:?}"),
    }
    // Another tenant's secret, or a changed body, does not verify.
    let wrong = Request::new("/webhooks/hubspot", body.clone()).signed_v3("another-secret", sent);
    match auth_at(&source, "acme", &wrong, NOW_MS) {
        Err(AuthFailure::InvalidBecause(reason)) => {
            assert!(reason.contains("signature_wrong"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let mut tampered = Request::new("/webhooks/hubspot", body).signed_v3(SECRET, sent);
    tampered.body = Bytes::from(body_text(&tampered.body).replace("subscriber", "customer"));
    assert!(matches!(
        auth_at(&source, "acme", &tampered, NOW_MS),
        Err(AuthFailure::InvalidBecause(_))
    ));
    // Signed for another path than the one received.
    let mut moved = Request::new("/webhooks/hubspot", fixture("app/contact-batch.json"))
        .signed_v3(SECRET, sent);
    moved.uri = "/webhooks/hubspot/acme".parse().expect("uri");
    assert!(matches!(
        auth_at(&source, "acme", &moved, NOW_MS),
        Err(AuthFailure::InvalidBecause(_))
    ));
}

#[test]
fn without_a_public_url_the_signed_uri_is_https_and_the_host_header() {
    let source = source_with(json!({"portal_id": PORTAL, "client_secret": SECRET}));
    let body = fixture("app/contact-batch.json");
    let uri = "https://hooks.acme.example/webhooks/hubspot";
    let signature = sign_v3(SECRET, "POST", uri, &body, NOW_MS);
    let request = Request::new("/webhooks/hubspot", body)
        .header("host", "hooks.acme.example")
        .header(SIGNATURE_V3_HEADER, &signature)
        .header(TIMESTAMP_HEADER, &NOW_MS.to_string());
    assert_eq!(auth_at(&source, "acme", &request, NOW_MS), Ok(()));
}

#[test]
fn missing_signatures_are_missing_credentials_with_the_header_named() {
    let source = source();
    let request = Request::new("/webhooks/hubspot/acme", fixture("app/contact-batch.json"));
    match auth_at(&source, "acme", &request, NOW_MS) {
        Err(AuthFailure::MissingBecause(reason)) => {
            assert!(reason.contains(SIGNATURE_V3_HEADER), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A signature without its timestamp is incomplete, not absent.
    let request = request.header(SIGNATURE_V3_HEADER, "AAAA");
    match auth_at(&source, "acme", &request, NOW_MS) {
        Err(AuthFailure::InvalidBecause(reason)) => {
            assert!(reason.contains(TIMESTAMP_HEADER), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn legacy_signatures_are_accepted_only_where_the_tenant_allows_them() {
    let body = fixture("app/contact-batch.json");
    let v1 = Request::new("/webhooks/hubspot/acme", body.clone())
        .header(SIGNATURE_HEADER, &sign_v1(SECRET, &body))
        .header(SIGNATURE_VERSION_HEADER, "v1");
    let v2 = Request::new("/webhooks/hubspot/acme", body.clone())
        .header(
            SIGNATURE_HEADER,
            &sign_v2(
                SECRET,
                "POST",
                &format!("{PUBLIC_URL}/webhooks/hubspot/acme"),
                &body,
            ),
        )
        .header(SIGNATURE_VERSION_HEADER, "v2");
    let lenient = source();
    assert_eq!(auth_at(&lenient, "acme", &v1, NOW_MS), Ok(()));
    assert_eq!(auth_at(&lenient, "acme", &v2, NOW_MS), Ok(()));
    let strict = source_with(section(json!({"legacy_signatures": false})));
    for request in [&v1, &v2] {
        match auth_at(&strict, "acme", request, NOW_MS) {
            Err(AuthFailure::InvalidBecause(reason)) => {
                assert!(reason.contains("legacy"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    let wrong = Request::new("/webhooks/hubspot/acme", body.clone())
        .header(SIGNATURE_HEADER, &sign_v1("another-secret", &body))
        .header(SIGNATURE_VERSION_HEADER, "v1");
    assert!(matches!(
        auth_at(&lenient, "acme", &wrong, NOW_MS),
        Err(AuthFailure::InvalidBecause(_))
    ));
}

#[test]
fn another_portals_authentic_delivery_is_forbidden_on_a_tenants_address() {
    let source = source();
    // globex's events, signed with the app's secret (one app, every portal).
    let body = br#"[{"objectId": 1, "eventId": 2, "portalId": 99, "occurredAt": 1564114110000,
        "subscriptionType": "deal.creation", "attemptNumber": 0}]"#
        .to_vec();
    let request = Request::new("/webhooks/hubspot/acme", body).signed_v3(SECRET, NOW_MS);
    match auth_at(&source, "acme", &request, NOW_MS) {
        Err(AuthFailure::Forbidden(reason)) => {
            assert!(
                reason.contains("99") && reason.contains("62515"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // An unauthentic one is told it is unauthentic, not whose it is.
    let unsigned = Request::new("/webhooks/hubspot/acme", request.body.clone());
    assert!(matches!(
        auth_at(&source, "acme", &unsigned, NOW_MS),
        Err(AuthFailure::MissingBecause(_))
    ));
    // A batch mostly of the tenant's portal is accepted; the stray element is malformed.
    let mixed = format!(
        "[{},{}]",
        body_text(&Bytes::from(fixture("app/deal-stage-retry.json")))
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']'),
        body_text(&request.body)
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']'),
    );
    let mixed = Request::new("/webhooks/hubspot/acme", mixed).signed_v3(SECRET, NOW_MS);
    assert_eq!(auth_at(&source, "acme", &mixed, NOW_MS), Ok(()));
    let delivery = split(&source, &mixed);
    assert_eq!((delivery.events.len(), delivery.rejected.len()), (1, 1));
    assert_eq!(fields(&delivery.rejected[0].violations), ["portalId"]);
}

// --- Workflow "Send a webhook" actions -----------------------------------------

#[test]
fn a_workflows_contact_is_one_event_with_its_id_and_modification_time() {
    let source = source();
    let body = fixture("workflow/contact-converted.json");
    let delivery = split(
        &source,
        &Request::new("/webhooks/hubspot/acme", body.clone()),
    );
    assert!(delivery.rejected.is_empty());
    let [event] = &delivery.events[..] else {
        panic!("one event: {delivery:?}");
    };
    assert_eq!(event.body, body, "the whole body, as received");
    assert_eq!(event.keys.payload_version, PAYLOAD_VERSION_WORKFLOW);
    assert_eq!(event.keys.action, "workflow");
    assert_eq!(
        (event.keys.object.as_str(), event.keys.object_id.as_str()),
        ("contact", "3234574")
    );
    assert_eq!(event.keys.occurred_at_micros, 1_484_026_620_000_000);
    assert_eq!(event.keys.attempt, 1);
    // HubSpot's retry of the same request is the same event.
    let again = split(&source, &Request::new("/webhooks/hubspot/acme", body));
    assert_eq!(again.events[0].keys.event_id, event.keys.event_id);

    let deal = split(
        &source,
        &Request::new("/webhooks/hubspot/acme", fixture("workflow/deal.json")),
    );
    assert_eq!(
        (
            deal.events[0].keys.object.as_str(),
            deal.events[0].keys.object_id.as_str()
        ),
        ("deal", "1234567890")
    );
    assert_eq!(
        deal.events[0].keys.occurred_at_micros,
        1_484_026_700_000_000
    );
}

#[test]
fn a_customized_workflow_body_declares_its_object_in_the_url() {
    let source = source();
    let body = fixture("workflow/contact-custom-body.json");
    let refused = source
        .split(
            "acme",
            &Request::new("/webhooks/hubspot/acme", body.clone()).webhook(),
        )
        .expect_err("no object");
    match refused {
        Refusal::Invalid(violations) => {
            assert!(violations[0].reason.contains("?object="), "{violations:?}");
        }
        other => panic!("{other:?}"),
    }
    for query in ["object=contact", "object=0-1"] {
        let request = Request::new(&format!("/webhooks/hubspot/acme?{query}"), body.clone());
        let delivery = split(&source, &request);
        let keys = &delivery.events[0].keys;
        assert_eq!(
            (keys.object.as_str(), keys.object_id.as_str()),
            ("contact", "3234574")
        );
        assert_eq!(keys.occurred_at_micros, 1_484_026_620_000_000);
    }
    let request = Request::new("/webhooks/hubspot/acme?object=ticket", body);
    assert!(source.split("acme", &request.webhook()).is_err());
    // A declared object the body contradicts is refused.
    let request = Request::new(
        "/webhooks/hubspot/acme?object=deal",
        fixture("workflow/contact-converted.json"),
    );
    assert!(source.split("acme", &request.webhook()).is_err());
}

#[test]
fn an_unsigned_workflow_request_needs_the_tenants_workflow_secret() {
    let source = source_with(section(json!({"workflow_secret": "wf-s3cret"})));
    let body = fixture("workflow/contact-converted.json");
    let by_header = Request::new("/webhooks/hubspot/acme", body.clone())
        .header(WORKFLOW_SECRET_HEADER, "wf-s3cret");
    assert_eq!(auth_at(&source, "acme", &by_header, NOW_MS), Ok(()));
    let by_query = Request::new(
        "/webhooks/hubspot/acme?object=contact&secret=wf-s3cret",
        body.clone(),
    );
    assert_eq!(auth_at(&source, "acme", &by_query, NOW_MS), Ok(()));
    let wrong = Request::new("/webhooks/hubspot/acme", body.clone())
        .header(WORKFLOW_SECRET_HEADER, "guess");
    match auth_at(&source, "acme", &wrong, NOW_MS) {
        Err(AuthFailure::InvalidBecause(reason)) => {
            assert!(
                !reason.contains("guess") && !reason.contains("wf-s3cret"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let none = Request::new("/webhooks/hubspot/acme", body.clone());
    assert!(matches!(
        auth_at(&source, "acme", &none, NOW_MS),
        Err(AuthFailure::MissingBecause(_))
    ));
    // A signed workflow request is checked by its signature (v2, as workflows sign).
    let signed = Request::new("/webhooks/hubspot/acme", body.clone())
        .header(
            SIGNATURE_HEADER,
            &sign_v2(
                SECRET,
                "POST",
                &format!("{PUBLIC_URL}/webhooks/hubspot/acme"),
                &body,
            ),
        )
        .header(SIGNATURE_VERSION_HEADER, "v2");
    assert_eq!(auth_at(&source, "acme", &signed, NOW_MS), Ok(()));
    // The workflow secret does not open the door to app-webhook batches.
    let batch = Request::new("/webhooks/hubspot/acme", fixture("app/contact-batch.json"))
        .header(WORKFLOW_SECRET_HEADER, "wf-s3cret");
    assert!(matches!(
        auth_at(&source, "acme", &batch, NOW_MS),
        Err(AuthFailure::MissingBecause(_))
    ));
    // Nor does it work for a tenant that has none.
    let plain = source_with(section(json!({})));
    assert!(auth_at(&plain, "acme", &by_header, NOW_MS).is_err());
}

#[test]
fn a_workflow_record_of_another_portal_is_forbidden() {
    let source = source_with(section(json!({"workflow_secret": "wf"})));
    let body = body_text(&Bytes::from(fixture("workflow/deal.json"))).replace("62515", "99");
    let request = Request::new("/webhooks/hubspot/acme", body).header(WORKFLOW_SECRET_HEADER, "wf");
    assert!(matches!(
        auth_at(&source, "acme", &request, NOW_MS),
        Err(AuthFailure::Forbidden(_))
    ));
}

#[test]
fn registered_with_its_webhook_source_and_template_routes() {
    let platform = crate::platform(NAME).expect("registered");
    assert_eq!(platform.templates[0].template, "hubspot-crm");
    assert!(platform.templates[0].objects.contains(&"meeting"));
    let section = section(json!({}));
    let built = (platform.webhook)(vec![("acme", &section)]).expect("builds");
    assert_eq!(built.name(), NAME);
    assert!(built.has_tenant("acme") && !built.has_tenant("globex"));
    assert_eq!(
        built.auth_challenge(),
        "HubSpot-Signature-v3 realm=\"tributary\""
    );
}
