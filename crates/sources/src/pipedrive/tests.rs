use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Value, json};
use uuid::Uuid;

use super::webhook::build;
use super::*;
use crate::{
    AuthFailure, Prevalidated, Refusal, TenantOf, Violation, WebhookRequest, WebhookSource,
};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/pipedrive")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Prevalidates a JSON value as the bytes a platform would send.
fn check(tenant: &str, body: &Value) -> Result<Prevalidated, Vec<Violation>> {
    match prevalidate(tenant, &serde_json::to_vec(body).expect("serializable")) {
        Ok(ok) => Ok(ok),
        Err(Refusal::Invalid(violations)) => Err(violations),
        Err(Refusal::MalformedJson(message) | Refusal::MalformedXml(message)) => {
            panic!("valid JSON called malformed: {message}")
        }
    }
}

fn accepted(name: &str) -> Prevalidated {
    check("acme", &fixture(name)).unwrap_or_else(|v| panic!("{name} rejected: {v:#?}"))
}

fn rejected(body: &Value) -> Vec<Violation> {
    match check("acme", body) {
        Ok(ok) => panic!("accepted: {ok:#?}"),
        Err(violations) => violations,
    }
}

fn fields(violations: &[Violation]) -> Vec<&str> {
    violations.iter().map(|v| v.field.as_str()).collect()
}

fn codes(p: &Prevalidated) -> Vec<&str> {
    p.warnings.iter().map(|w| w.code).collect()
}

#[test]
fn every_v1_action_and_object_fixture_is_accepted_with_its_keys() {
    for object in ["deal", "person", "organization", "activity"] {
        for action in V1_ACTIONS {
            let name = format!("v1/{object}-{action}.json");
            let p = accepted(&name);
            assert_eq!(p.payload_version, "1", "{name}");
            assert_eq!(p.object, object, "{name}");
            assert_eq!(p.action, *action, "{name}");
            assert_eq!(p.attempt, 1, "{name}");
            let body = fixture(&name);
            assert_eq!(p.object_id, body["meta"]["id"].to_string(), "{name}");
            assert_eq!(
                p.occurred_at_micros,
                body["meta"]["timestamp_micro"].as_u64().expect("micros")
            );
            assert!(p.warnings.is_empty(), "{name}: {:?}", p.warnings);
        }
    }
}

#[test]
fn v1_event_id_is_stable_across_retries_and_distinct_across_events() {
    let first = accepted("v1/deal-updated.json");
    let retry = accepted("v1/deal-updated-retry.json");
    assert_eq!(first.event_id, retry.event_id);
    assert_eq!(retry.attempt, 3);
    assert_eq!(codes(&retry), ["redelivery"]);
    let later = accepted("v1/deal-updated-trans-pending.json");
    assert_ne!(first.event_id, later.event_id);
    // Same delivery for another tenant is another event.
    let other = check("globex", &fixture("v1/deal-updated.json")).expect("accepted");
    assert_ne!(first.event_id, other.event_id);
    assert!(Uuid::parse_str(&first.event_id).is_ok());
}

#[test]
fn v1_oddities_are_warnings_not_rejections() {
    assert_eq!(
        codes(&accepted("v1/deal-updated-trans-pending.json")),
        ["transaction_pending"]
    );
    assert_eq!(
        codes(&accepted("v1/deal-updated-bulk.json")),
        ["bulk_update"]
    );
    let import = accepted("v1/person-added-import.json");
    assert_eq!(codes(&import), ["pipedrive_service"]);
    assert!(import.warnings[0].message.contains("Import"));
}

#[test]
fn v1_missing_optional_meta_fields_warn() {
    let mut body = fixture("v1/deal-added.json");
    let meta = body["meta"].as_object_mut().expect("meta");
    meta.remove("host");
    meta.remove("trans_pending");
    let p = check("acme", &body).expect("accepted");
    let warned: Vec<_> = p
        .warnings
        .iter()
        .map(|w| (w.code, w.field.as_str()))
        .collect();
    assert_eq!(
        warned,
        [
            ("missing_field", "meta.host"),
            ("missing_field", "meta.trans_pending")
        ]
    );
}

#[test]
fn v1_lists_every_violation_at_once() {
    let mut body = fixture("v1/deal-updated.json");
    body["meta"]["action"] = json!("edited");
    body["meta"]["timestamp"] = json!(174109815);
    body["meta"]["timestamp_micro"] = json!("1741098151384907");
    body["meta"]["trans_pending"] = json!("no");
    body["meta"]["permitted_user_ids"] = json!("1934781");
    body["meta"]["change_source"] = json!("zapier");
    body["meta"]["pipedrive_service_name"] = json!(true);
    body["meta"]
        .as_object_mut()
        .expect("meta")
        .remove("company_id");
    body["retry"] = json!(7);
    let violations = rejected(&body);
    assert_eq!(
        fields(&violations),
        [
            "meta.action",
            "meta.company_id",
            "meta.timestamp",
            "meta.timestamp_micro",
            "meta.change_source",
            "meta.permitted_user_ids",
            "meta.trans_pending",
            "meta.pipedrive_service_name",
            "retry",
        ]
    );
    assert!(violations[0].reason.contains("edited"));
    assert!(violations[2].reason.contains("10-digit"));
}

#[test]
fn v1_snapshots_must_match_the_action_and_the_id() {
    let mut added = fixture("v1/deal-added.json");
    added["previous"] = added["current"].clone();
    assert_eq!(fields(&rejected(&added)), ["previous"]);

    let mut deleted = fixture("v1/deal-deleted.json");
    deleted["previous"] = Value::Null;
    assert_eq!(fields(&rejected(&deleted)), ["previous"]);

    let mut wrong_id = fixture("v1/deal-updated.json");
    wrong_id["current"]["id"] = json!(99);
    assert_eq!(fields(&rejected(&wrong_id)), ["current.id"]);

    let mut wrong_event = fixture("v1/deal-updated.json");
    wrong_event["event"] = json!("updated.person");
    assert_eq!(fields(&rejected(&wrong_event)), ["event"]);
}

#[test]
fn v1_activity_notification_fields_are_type_checked() {
    let mut body = fixture("v1/activity-added.json");
    body["meta"]["send_activity_notifications"] = json!("yes");
    body["meta"]["activity_notifications_language"] = json!(1);
    assert_eq!(
        fields(&rejected(&body)),
        [
            "meta.send_activity_notifications",
            "meta.activity_notifications_language"
        ]
    );
}

#[test]
fn v1_user_snapshots_are_arrays() {
    let mut body = fixture("v1/person-updated.json");
    body["meta"]["object"] = json!("user");
    body["event"] = json!("updated.user");
    body["meta"]["id"] = json!(3318);
    let current = body["current"].clone();
    let previous = body["previous"].clone();
    body["current"] = json!([current]);
    body["previous"] = json!([previous]);
    assert_eq!(accepted_value(&body).object, "user");
    body["current"] = current;
    assert_eq!(fields(&rejected(&body)), ["current"]);
}

fn accepted_value(body: &Value) -> Prevalidated {
    check("acme", body).unwrap_or_else(|v| panic!("rejected: {v:#?}"))
}

#[test]
fn every_v2_fixture_is_accepted_with_its_keys() {
    let cases = [
        ("v2/deal-create.json", "deal", "1210", "create", 1, vec![]),
        ("v2/deal-change.json", "deal", "1210", "change", 1, vec![]),
        (
            "v2/deal-change-retry.json",
            "deal",
            "1210",
            "change",
            3,
            vec!["redelivery"],
        ),
        (
            "v2/deal-change-epoch-millis.json",
            "deal",
            "1210",
            "change",
            1,
            vec!["bulk_update"],
        ),
        (
            "v2/deal-delete-numeric-ids.json",
            "deal",
            "1210",
            "delete",
            1,
            vec![],
        ),
        (
            "v2/person-create-numeric-ids.json",
            "person",
            "3402",
            "create",
            1,
            vec![],
        ),
        (
            "v2/person-change.json",
            "person",
            "3402",
            "change",
            1,
            vec![],
        ),
        (
            "v2/organization-delete-merged.json",
            "organization",
            "521",
            "delete",
            1,
            vec!["merge"],
        ),
        (
            "v2/activity-create.json",
            "activity",
            "9077",
            "create",
            1,
            vec![],
        ),
        (
            "v2/lead-create.json",
            "lead",
            "adf21080-0e10-11eb-879b-05d71fb426ec",
            "create",
            1,
            vec![],
        ),
    ];
    for (name, object, id, action, attempt, warnings) in cases {
        let p = accepted(name);
        assert_eq!(p.payload_version, "2.0", "{name}");
        assert_eq!(
            (p.object.as_str(), p.object_id.as_str(), p.action.as_str()),
            (object, id, action),
            "{name}"
        );
        assert_eq!(p.attempt, attempt, "{name}");
        assert_eq!(codes(&p), warnings, "{name}");
        assert_eq!(
            p.event_id,
            fixture(name)["meta"]["id"].as_str().expect("id"),
            "{name}"
        );
    }
}

#[test]
fn v2_redelivery_keeps_the_event_id() {
    assert_eq!(
        accepted("v2/deal-change.json").event_id,
        accepted("v2/deal-change-retry.json").event_id
    );
}

#[test]
fn v2_timestamps_in_every_documented_form_agree() {
    let iso = accepted("v2/deal-create.json").occurred_at_micros;
    assert_eq!(iso, 1_741_161_669_412_000);
    assert_eq!(
        v2_timestamp_micros(&json!(1_741_161_669)),
        Some(1_741_161_669_000_000)
    );
    assert_eq!(
        v2_timestamp_micros(&json!("1741161669")),
        Some(1_741_161_669_000_000)
    );
    assert_eq!(
        v2_timestamp_micros(&json!(1_741_161_669_412_u64)),
        Some(iso)
    );
    assert_eq!(
        v2_timestamp_micros(&json!("2025-03-05T09:01:09.412+01:00")),
        Some(iso)
    );
    assert_eq!(v2_timestamp_micros(&json!("yesterday")), None);
    assert_eq!(v2_timestamp_micros(&json!(12345)), None);
}

#[test]
fn v2_lists_every_violation_at_once() {
    let mut body = fixture("v2/deal-change.json");
    body["meta"]["version"] = json!("2");
    body["meta"]["action"] = json!("updated");
    body["meta"]["entity_id"] = json!("");
    body["meta"]["timestamp"] = json!("24/11/2022");
    body["meta"]["attempt"] = json!(9);
    body["meta"]["is_bulk_edit"] = json!("false");
    body["meta"].as_object_mut().expect("meta").remove("id");
    let violations = rejected(&body);
    assert_eq!(
        fields(&violations),
        [
            "meta.version",
            "meta.action",
            "meta.entity_id",
            "meta.id",
            "meta.timestamp",
            "meta.attempt",
            "meta.is_bulk_edit",
        ]
    );
}

#[test]
fn v2_data_and_previous_must_match_the_action() {
    let mut create = fixture("v2/deal-create.json");
    create["previous"] = json!({"stage_id": 1});
    assert_eq!(fields(&rejected(&create)), ["previous"]);

    let mut delete = fixture("v2/deal-delete-numeric-ids.json");
    delete["data"] = delete["previous"].clone();
    assert_eq!(fields(&rejected(&delete)), ["data"]);

    let mut change = fixture("v2/deal-change.json");
    change["data"]["id"] = json!(1211);
    assert_eq!(fields(&rejected(&change)), ["data.id"]);
}

#[test]
fn v2_unknown_entities_are_accepted_with_a_warning() {
    let mut body = fixture("v2/deal-create.json");
    body["meta"]["entity"] = json!("invoice");
    assert_eq!(codes(&accepted_value(&body)), ["unknown_entity"]);
}

#[test]
fn the_exact_bytes_are_read_and_malformed_json_is_told_apart() {
    let body = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pipedrive/v1/deal-updated-trans-pending.json"),
    )
    .expect("fixture");
    assert!(prevalidate("acme", &body).is_ok());
    let cut = &body[..body.len() / 2];
    assert!(matches!(
        prevalidate("acme", cut),
        Err(Refusal::MalformedJson(_))
    ));
    assert!(matches!(
        prevalidate("acme", b""),
        Err(Refusal::MalformedJson(_))
    ));
}

#[test]
fn snapshots_of_the_wrong_kind_are_named() {
    let mut body = fixture("v1/deal-updated.json");
    body["current"] = json!("deal 1207");
    body["previous"] = json!([1]);
    let violations = rejected(&body);
    assert_eq!(fields(&violations), ["current", "previous"]);
    assert!(violations[0].reason.contains("a string"), "{violations:?}");
    let mut v2 = fixture("v2/deal-change.json");
    v2["previous"] = json!(7);
    assert_eq!(fields(&rejected(&v2)), ["previous"]);
}

#[test]
fn bodies_without_a_recognisable_meta_are_rejected() {
    assert_eq!(fields(&rejected(&json!([1, 2]))), ["$"]);
    assert_eq!(fields(&rejected(&json!({"current": {}}))), ["meta"]);
    assert_eq!(fields(&rejected(&json!({"meta": "x"}))), ["meta"]);
    let violations = rejected(&json!({"meta": {"action": "added"}}));
    assert!(violations[0].reason.contains("meta.v"), "{violations:?}");
}

fn source() -> Box<dyn WebhookSource> {
    let section = json!({"username": "hook", "password": "s3cret"});
    build(vec![("acme", &section)]).unwrap_or_else(|e| panic!("{e}"))
}

fn auth(header: Option<&str>) -> Result<(), AuthFailure> {
    let mut headers = http::HeaderMap::new();
    if let Some(value) = header {
        headers.insert(http::header::AUTHORIZATION, value.parse().expect("header"));
    }
    let method = http::Method::POST;
    let uri: http::Uri = "/webhooks/pipedrive/acme".parse().expect("uri");
    let request = WebhookRequest {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &Bytes::from_static(b"{}"),
    };
    source().authenticate("acme", &request)
}

#[test]
fn a_delivery_is_one_event_of_the_whole_body_with_the_collector_defaults() {
    let body = Bytes::from(serde_json::to_vec(&fixture("v2/deal-change.json")).expect("json"));
    let (method, headers) = (http::Method::POST, http::HeaderMap::new());
    let uri: http::Uri = "/webhooks/pipedrive/acme".parse().expect("uri");
    let request = WebhookRequest {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    let source = source();
    let delivery = source.split("acme", &request).expect("accepted");
    assert!(delivery.rejected.is_empty());
    let [event] = &delivery.events[..] else {
        panic!("one event: {delivery:?}")
    };
    assert_eq!(event.body, body, "the bytes as received");
    assert_eq!(
        event.body.as_ptr(),
        body.as_ptr(),
        "shared with the request, not copied"
    );
    assert_eq!(event.keys, prevalidate("acme", &body).expect("valid"));

    let broken = Bytes::from_static(b"{\"meta\": {\"v\": 1,");
    let request = WebhookRequest {
        body: &broken,
        ..request
    };
    assert!(matches!(
        source.split("acme", &request),
        Err(Refusal::MalformedJson(_))
    ));
    // The tenant is in the path; the answers are the collector's own.
    assert_eq!(source.tenant_of(&request), TenantOf::PathRequired);
    assert_eq!(source.content_types(), ["application/json"]);
    assert_eq!(source.acknowledge("acme", &delivery), None);
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
}

#[test]
fn basic_auth_accepts_only_the_configured_pair() {
    assert_eq!(auth(Some(&basic("hook", "s3cret"))), Ok(()));
    assert_eq!(
        auth(Some(&basic("hook", "s3cret:extra"))),
        Err(AuthFailure::Invalid)
    );
    assert_eq!(
        auth(Some(&basic("hook", "wrong"))),
        Err(AuthFailure::Invalid)
    );
    assert_eq!(
        auth(Some(&basic("other", "s3cret"))),
        Err(AuthFailure::Invalid)
    );
    assert_eq!(auth(Some("Bearer s3cret")), Err(AuthFailure::Invalid));
    assert_eq!(auth(Some("Basic !!!not-base64")), Err(AuthFailure::Invalid));
    assert_eq!(auth(None), Err(AuthFailure::Missing));
}

#[test]
fn tenant_sections_need_both_credentials_and_no_unknown_keys() {
    let empty = json!({"username": "hook", "password": ""});
    assert!(build(vec![("acme", &empty)]).is_err());
    let typo = json!({"username": "hook", "pasword": "x"});
    let err = build(vec![("acme", &typo)])
        .err()
        .expect("rejected")
        .to_string();
    assert!(err.contains("acme") && err.contains("pasword"), "{err}");
}

fn parsed(name: &str) -> PipedriveEvent {
    parse(&serde_json::to_vec(&fixture(name)).expect("bytes"))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn v1_and_v2_read_into_one_model() {
    let v1 = parsed("v1/deal-updated.json");
    assert_eq!(v1.action, Action::Updated);
    assert_eq!(v1.object, "deal");
    assert_eq!(v1.object_id, ObjectId::Number(1207));
    let Some(Snapshot::Deal(deal)) = &v1.current else {
        panic!("deal")
    };
    assert_eq!(deal.stage_id, Some(3));
    assert_eq!(deal.owner_id, Some(1_934_781));
    assert_eq!(deal.owner_name.as_deref(), Some("Dana Whitfield"));
    assert_eq!(deal.add_time.as_deref(), Some("2025-02-11T09:03:12Z"));
    assert_eq!(
        deal.custom_fields["5f2c8e1a9b0d4c7e8f6a3b2c1d0e9f8a7b6c5d4e"],
        json!("41")
    );
    let Some(Snapshot::Deal(before)) = &v1.previous else {
        panic!("previous deal")
    };
    assert_eq!(before.stage_id, Some(2));
    assert_eq!(v1.meta.timestamp_micro, 1_741_098_151_384_907);
    assert_eq!(v1.meta.webhook_id.as_deref(), Some("1148302"));

    let v2 = parsed("v2/deal-change.json");
    assert_eq!(v2.action, Action::Updated, "change reads as updated");
    assert_eq!(
        v2.object_id,
        ObjectId::Number(1210),
        "numeric string ids read as numbers"
    );
    let Some(Snapshot::Deal(deal)) = &v2.current else {
        panic!("deal")
    };
    assert_eq!(deal.owner_id, Some(1_934_790));
    assert_eq!(
        deal.custom_fields["5f2c8e1a9b0d4c7e8f6a3b2c1d0e9f8a7b6c5d4e"],
        json!(41)
    );
    assert_eq!(
        deal.custom_fields["a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"],
        json!("Trade fair Hannover")
    );
    let Some(Snapshot::Deal(changed)) = &v2.previous else {
        panic!("previous")
    };
    assert_eq!(changed.stage_id, Some(1));
    assert_eq!(changed.title, None, "v2 previous holds only changed fields");
    assert_eq!(v2.meta.timestamp_micro, 1_741_162_527_905_000);
    assert_eq!(v2.meta.user_id, Some(1_934_781));
    assert_eq!(v2.meta.permitted_user_ids, [1_934_781, 1_934_790]);
}

#[test]
fn deletes_keep_the_last_state_and_leads_keep_text_ids() {
    let deleted = parsed("v2/deal-delete-numeric-ids.json");
    assert_eq!(deleted.action, Action::Deleted);
    assert!(deleted.current.is_none());
    let Some(Snapshot::Deal(last)) = deleted.latest() else {
        panic!("last state")
    };
    assert_eq!(last.status.as_deref(), Some("lost"));
    let lead = parsed("v2/lead-create.json");
    assert_eq!(
        lead.object_id,
        ObjectId::Text("adf21080-0e10-11eb-879b-05d71fb426ec".into())
    );
    assert!(matches!(
        lead.current,
        Some(Snapshot::Other {
            id: Some(ObjectId::Text(_))
        })
    ));
}

#[test]
fn people_and_activities_read_from_both_versions() {
    let Some(Snapshot::Person(v1)) = parsed("v1/person-added.json").current else {
        panic!("person")
    };
    assert_eq!(v1.email.as_deref(), Some("ana.ferreira@globex-iberia.es"));
    assert_eq!(v1.phone.as_deref(), Some("+34 911 234 567"));
    assert_eq!(v1.job_title.as_deref(), Some("Head of Procurement"));
    let Some(Snapshot::Person(v2)) = parsed("v2/person-change.json").current else {
        panic!("person")
    };
    assert_eq!(v2.email.as_deref(), Some("j.weber@umbrella.de"));
    assert_eq!(v2.first_name.as_deref(), Some("Jonas"));
    let Some(Snapshot::Activity(call)) = parsed("v1/activity-added.json").current else {
        panic!("activity")
    };
    assert_eq!(
        (call.activity_type.as_deref(), call.user_id, call.deal_id),
        (Some("call"), Some(1_934_790), Some(1207))
    );
    let Some(Snapshot::Activity(meeting)) = parsed("v2/activity-create.json").current else {
        panic!("activity")
    };
    assert_eq!(
        (meeting.activity_type.as_deref(), meeting.user_id),
        (Some("meeting"), Some(1_934_790))
    );
}

#[test]
fn times_normalise_to_rfc3339_utc_seconds() {
    assert_eq!(
        normalize_time("2025-03-04 14:22:31"),
        "2025-03-04T14:22:31Z"
    );
    assert_eq!(
        normalize_time("2025-03-04T14:22:31Z"),
        "2025-03-04T14:22:31Z"
    );
    assert_eq!(
        normalize_time("2025-03-05T11:00:00.000Z"),
        "2025-03-05T11:00:00Z"
    );
    assert_eq!(
        normalize_time("2025-03-05T12:00:00+01:00"),
        "2025-03-05T11:00:00Z"
    );
    assert_eq!(normalize_time("2025-03-31"), "2025-03-31");
}

#[test]
fn tenant_settings_check_what_depends_on_what() {
    let base = json!({"username": "hook", "password": "p"});
    let with = |extra: Value| {
        let mut section = base.clone();
        section
            .as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        tenant_settings(&section)
    };
    let ok = with(json!({})).expect("webhook only");
    assert_eq!(ok.requests_per_2s, 20);
    assert_eq!(
        ok.pii.action_for("contact_email"),
        PiiAction::Mask,
        "personal data is masked unless the tenant chose otherwise"
    );
    assert!(
        with(json!({"api_base_url": "http://x"}))
            .unwrap_err()
            .contains("api_token")
    );
    assert!(with(json!({"requests_per_2s": 0})).is_err());
    let err = with(json!({"pii": {"contact_email": "hash"}})).unwrap_err();
    assert!(err.contains("pii_salt"), "{err}");
    let hashed = with(json!({"pii": {"contact_email": "hash", "contact_phone_number": "drop"}, "pii_salt": "pepper"}))
        .expect("with salt");
    assert_eq!(
        hashed.pii.action_for("email_validation_email"),
        PiiAction::Hash
    );
    assert_eq!(
        hashed.pii.action_for("contact_phone_number"),
        PiiAction::Drop
    );
    assert!(
        with(json!({"pii": {"contact_mail": "drop"}})).is_err(),
        "unknown policy fields are refused"
    );
}

/// The API lookups' own logic: deal aggregates, option labels, times.
mod api_lookups {
    use std::collections::HashMap;

    use serde_json::json;

    use crate::pipedrive::api::*;

    fn summary(value: f64, status: &str, as_of: i64) -> DealSummary {
        DealSummary {
            value,
            status: status.into(),
            as_of_micro: as_of,
        }
    }

    #[test]
    fn the_event_state_takes_precedence_and_deleted_deals_do_not_count() {
        let mut list = PersonDeals::default();
        list.deals.insert(1, summary(100.0, "open", 10));
        list.deals.insert(2, summary(300.0, "won", 10));
        list.deals.insert(3, summary(50.0, "deleted", 10));
        assert_eq!(list.aggregates(None, None), (2, 200.0));
        let this = summary(500.0, "open", 20);
        assert_eq!(
            list.aggregates(Some((1, &this)), None),
            (2, 400.0),
            "event's value replaces the list's copy"
        );
        assert_eq!(
            list.aggregates(Some((9, &this)), None),
            (3, 300.0),
            "a deal the list lacks is added"
        );
        assert_eq!(
            list.aggregates(None, Some(2)),
            (1, 100.0),
            "a removed deal is left out"
        );
    }

    #[test]
    fn older_states_never_overwrite_newer_ones() {
        let mut list = PersonDeals::default();
        list.apply(1, Some(summary(100.0, "open", 20)));
        list.apply(1, Some(summary(999.0, "open", 10)));
        assert_eq!(list.deals[&1].value, 100.0);
        list.apply(1, Some(summary(150.0, "won", 30)));
        assert_eq!(list.deals[&1].value, 150.0);
        list.apply(1, None);
        assert!(list.deals.is_empty());
    }

    #[test]
    fn option_ids_resolve_to_labels() {
        let mut definitions = FieldDefinitions::default();
        definitions.fields.insert(
            "size".into(),
            FieldDefinition {
                name: "Company size".into(),
                field_type: "enum".into(),
                options: HashMap::from([(27, "small".to_owned()), (28, "large".to_owned())]),
            },
        );
        definitions.fields.insert(
            "tags".into(),
            FieldDefinition {
                name: "Tags".into(),
                field_type: "set".into(),
                options: HashMap::from([(1, "a".to_owned()), (2, "b".to_owned())]),
            },
        );
        assert_eq!(definitions.label("size", &json!(27)), json!("small"));
        assert_eq!(definitions.label("size", &json!("28")), json!("large"));
        assert_eq!(definitions.label("tags", &json!("1,2")), json!("a, b"));
        assert_eq!(
            definitions.label("size", &json!(99)),
            json!(99),
            "unknown options stay as given"
        );
        assert_eq!(definitions.label("free_text", &json!("x")), json!("x"));
    }

    #[test]
    fn times_in_both_formats_read_as_micros() {
        assert_eq!(
            time_micros("2025-03-04 14:22:31"),
            Some(1_741_098_151_000_000)
        );
        assert_eq!(
            time_micros("2025-03-04T14:22:31Z"),
            Some(1_741_098_151_000_000)
        );
        assert_eq!(time_micros("soon"), None);
    }
}
