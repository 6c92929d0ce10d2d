//! Inputs the fuzz targets (`fuzz/`) found to break a parser, minimized,
//! fed through the same public API as the target that found them.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Uri};
use tributary_sources::{WebhookRequest, WebhookSource, dynamics, pipedrive, salesforce};

/// The collector's Pipedrive source for tenant `acme` (`hook` / `s3cret`).
fn pipedrive_source() -> Box<dyn WebhookSource> {
    let section = serde_json::json!({"username": "hook", "password": "s3cret"});
    let platform = tributary_sources::platform(pipedrive::NAME).expect("registered");
    (platform.webhook)(vec![("acme", &section)]).expect("valid settings")
}

/// A v2 delivery whose `previous.update_time` has a two-byte character
/// across byte 19, where the seconds of a shaped time end: the collector
/// accepts it (snapshots are only skimmed there), and reading it for
/// enrichment sliced the time inside that character and panicked
/// (`pipedrive_webhook`, `normalize_time`).
const MULTIBYTE_AT_SECONDS_END: &[u8] = b"{\n  \"meta\": {\n    \"action\": \"delete\",\n    \"entity\": \"organization\",\n   \"aempd\": \"70be964\",\n    \"entity_id\": \"521\",\n    \"id\": \"e7b3d1a9-6c2f-46\",\n  \"timestamp\": \"2025-03-06T10:00:00.004Z\",\n    \"ur_id\": \"1934781\",\n    \"version\": \"2.0\",\n    \"typeook_id\": \"520\"\n  },\n  \"data\": null,\n  \"previous\": {\n    \"id\": 521,  \"update_time\": \"2025-03-06T10:00:0\xd8\xa5\",\n    \"is_dustom_fields\": {}\n }\n}\n";

#[test]
fn pipedrive_time_with_a_multibyte_character_at_the_seconds_end_is_kept_as_given() {
    let source = pipedrive_source();
    let body = Bytes::from_static(MULTIBYTE_AT_SECONDS_END);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Basic aG9vazpzM2NyZXQ="),
    );
    let uri = Uri::from_static("/webhooks/pipedrive/acme");
    let request = WebhookRequest {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    source.authenticate("acme", &request).expect("authentic");
    let delivery = source.split("acme", &request).expect("accepted");
    assert_eq!(delivery.events.len(), 1);

    // What the enricher does with the stored event.
    let event = pipedrive::parse(&delivery.events[0].body).expect("readable");
    assert!(event.previous.is_some());

    let text = "2025-03-06T10:00:0\u{625}";
    assert_eq!(
        pipedrive::normalize_time(text),
        text,
        "not a time: kept as given"
    );
    assert_eq!(
        pipedrive::normalize_time("2025-03-06T10:00:00.004Z"),
        "2025-03-06T10:00:00Z"
    );
}

/// An Outbound Message preceded by a UTF-8 byte-order mark: the XML reader
/// skips the mark and counts positions after it, so every notification's
/// bytes were cut three bytes early and could not be read again alone
/// (`salesforce_outbound`).
#[test]
fn salesforce_notifications_after_a_byte_order_mark_are_cut_whole() {
    let section =
        serde_json::json!({"organization_id": "00D5g000004ABCD", "endpoint_secret": "s3cret"});
    let platform = tributary_sources::platform(salesforce::NAME).expect("registered");
    let source = (platform.webhook)(vec![("acme", &section)]).expect("valid settings");
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(include_bytes!(
        "../../../tests/fixtures/salesforce/opportunity-outbound-message.xml"
    ));
    let body = Bytes::from(body);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    let uri = Uri::from_static("/webhooks/salesforce/acme?secret=s3cret");
    let request = WebhookRequest {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    source.authenticate("acme", &request).expect("authentic");
    let delivery = source.split("acme", &request).expect("accepted");
    assert_eq!(delivery.events.len(), 2);
    for event in &delivery.events {
        assert!(
            event.body.starts_with(b"<Notification>"),
            "{:?}",
            event.body
        );
        assert!(event.body.ends_with(b"</Notification>"), "{:?}", event.body);
        salesforce::outbound::read_notification_bytes(&event.body).expect("readable alone");
    }
}

/// A Dynamics context whose `OperationCreatedOn` is a `/Date(ms)/` too large
/// to be microseconds: converting it overflowed (`dynamics_webhook`). It is
/// accepted, ordered by its receipt and warned so.
#[test]
fn dynamics_operation_time_past_the_microsecond_range_is_not_a_time() {
    let section = serde_json::json!({"organization_id": "9f2a1c34-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "secret": "k3y"});
    let platform = tributary_sources::platform(dynamics::NAME).expect("registered");
    let source = (platform.webhook)(vec![("acme", &section)]).expect("valid settings");
    let body = Bytes::from_static(
        br#"{"MessageName":"Update","PrimaryEntityName":"opportunity","PrimaryEntityId":"3a5b7c9d-1e2f-4a6b-8c0d-2e4f6a8b0c1d","OrganizationId":"9f2a1c34-5b6d-4e7f-8a9b-0c1d2e3f4a5b","OperationCreatedOn":"/Date(9223372036854775807)/"}"#,
    );
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let uri = Uri::from_static("/webhooks/dynamics/acme?code=k3y");
    let request = WebhookRequest {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    source.authenticate("acme", &request).expect("authentic");
    let delivery = source.split("acme", &request).expect("accepted");
    let keys = &delivery.events[0].keys;
    assert_eq!(keys.occurred_at_micros, 0);
    assert_eq!(keys.warnings[0].code, "no_modification_time");
}

/// `salesforce_change_event` found that a payload whose array claims 63
/// million items made the Avro reader reserve 3 GB before reading any of
/// them; bounded by the largest event, it is refused with why.
const ARRAY_CLAIMING_MILLIONS_OF_ITEMS: &[u8] = b"\x16\x00\x00\x00\x00\x00\x4f\x16\x4f\x70\x70\x03\xdc\xcf\xcf\x33\x30\x30\x30\x30\x4f\x77\x6c\x65\x73\x66\x6f\x72\x63\x65\x2f\x61\xf0\x69\x2f\x00\x65\x2f\x70\x70\x6f\x72\x74\x75\x6e\x69\x30\x30\x30\x30\x30\x4f\x77\x4e\x00\x00\x61\xf0\x69\x00\x00\x00\x00\x00\x00\x65\x52\x41\x41\x2f";

#[test]
fn a_change_event_claiming_a_huge_array_is_refused_not_allocated() {
    let schema = apache_avro::Schema::parse_str(include_str!(
        "../../../tests/fixtures/salesforce/OpportunityChangeEvent.avsc"
    ))
    .expect("schema");
    let err = salesforce::cdc::avro::decode(&schema, ARRAY_CLAIMING_MILLIONS_OF_ITEMS)
        .expect_err("refused");
    assert!(err.contains("Unable to allocate"), "{err}");
}

/// `salesforce_change_event` found a commit timestamp too large to be
/// microseconds overflowing a multiplication.
const COMMIT_TIME_PAST_MICROSECONDS: &[u8] = b"\x16\x4f\x70\x70\x6f\x72\x74\x75\x6e\x69\x74\x79\x02\x24\x30\x30\x36\x35\x67\x30\x30\x30\x30\x40\x41\x62\x43\x64\x45\x41\x41\x56\x00\x02\x68\x63\x6f\x6d\x2f\x73\x61\x6c\x65\x73\x66\x6f\x72\x63\x65\x2f\x61\x70\x69\x2f\x73\x6f\x61\x70\x2f\x36\x12\x2e\x30\x3b\x63\x6c\x69\x65\x6e\x74\x3d\x53\x66\x64\x63\x49\x6e\x74\x65\x72\x6e\x61\x6c\x41\x50\x49\x2f\x48\x30\x30\x30\x32\x33\x34\x33\x64\x2d\x39\x64\x39\x30\x2d\x65\x33\x39\x35\x2d\x65\x64\x32\x30\x2d\x63\x66\x34\x31\x36\x62\x61\x36\x35\x32\x61\x64\x02\x80\x8d\xff\xff\xff\xf1\x9f\xac\x65\xc0\xf4\xe4\x9c\x91\x0a\x24\x30\x30\x35\x35\x67\x30\x30\x30\x30\x12\x4f\x77\x4e\x65\x52\x41\x41\x41\x02\x10\x30\x78\x30\x30\x30\x32\x30\x30\x00\x00\x02\x10\x30\x78\x30\x34\x31\x38\x41\x30\x00\x00\x00\x00\x00\x02\x14\x43\x6c\x6f\x73\x65\x64\x20\x57\x6f\x6e\x00\x02\x00\x00\x00\x00\x00\x00\x59\x40\x00\x00\x00\x02\x01\x02\x01\x00\x00\x00\x00\x00\x02\x80\x8d\xf1\x9f\xac\x65\x00";

#[test]
fn a_change_event_committed_past_the_microsecond_range_is_ordered_by_receipt() {
    let schema = apache_avro::Schema::parse_str(include_str!(
        "../../../tests/fixtures/salesforce/OpportunityChangeEvent.avsc"
    ))
    .expect("schema");
    let event = tributary_salesforce_pubsub::ConsumerEvent {
        event: Some(tributary_salesforce_pubsub::ProducerEvent {
            id: "e-1".into(),
            schema_id: "s".into(),
            payload: COMMIT_TIME_PAST_MICROSECONDS.to_vec(),
            headers: Vec::new(),
        }),
        replay_id: vec![1],
    };
    let raw = salesforce::cdc::raw_events(
        "acme",
        "00D5g000004ABCDEA4",
        "/data/OpportunityChangeEvent",
        &event,
        Ok(&schema),
        1,
    );
    assert!(!raw.is_empty());
    assert!(
        raw.iter()
            .all(|e| e.keys.as_ref().is_some_and(|k| k.occurred_at_micros == 0))
    );
}
