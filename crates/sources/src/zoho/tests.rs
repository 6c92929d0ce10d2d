use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Value, json};
use tributary_envelope::{EventKeys, RawEvent};
use tributary_model::{Context, Field, Mapping, Record};

use super::enrich::ZohoEnricher;
use super::mapping::ZohoMapping;
use super::*;
use crate::{AuthFailure, Refusal, WebhookRequest, WebhookSource};

const DEAL: &str = "5725767000003000010";
const OTHER: &str = "5725767000003000011";

fn section() -> Value {
    json!({"org_id": "60012345678", "channel_ids": ["1000000068001"], "token": "tok-3n", "currency": "INR"})
}

fn source() -> Zoho {
    let section = section();
    Zoho::from_sections(vec![("acme", &section)]).expect("valid settings")
}

/// Zoho's documented notification, with two records and their values. The
/// ids are written as JSON numbers where Zoho may send numbers.
fn notification(operation: &str, with_values: bool) -> String {
    let values = if with_values {
        format!(
            r#","affected_fields":[{{"{DEAL}":["Stage","Amount"]}}],"affected_values":[{{"record_id":"{DEAL}","values":{{"Stage":"Closed Won","Amount":125000.75,"Owner":{{"id":"5725767000000411001","name":"Ada Rep"}},"Deal_Name":"Big deal"}}}},{{"record_id":{OTHER},"values":{{"Stage":"Negotiation"}}}}]"#
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"server_time":1718115953625,"module":"Deals","operation":"{operation}","ids":["{DEAL}",{OTHER}]{values},"channel_id":1000000068001,"token":"tok-3n","resource_uri":"https://www.zohoapis.com/crm/v2/Deals","query_params":{{}}}}"#
    )
}

fn request<'a>(
    uri: &'a http::Uri,
    headers: &'a http::HeaderMap,
    body: &'a Bytes,
) -> WebhookRequest<'a> {
    WebhookRequest {
        method: &http::Method::POST,
        uri,
        headers,
        body,
    }
}

#[test]
fn settings_need_channels_and_a_token_of_zohos_length() {
    assert!(tenant_settings(&section()).is_ok());
    let mut long = section();
    long["token"] = json!("x".repeat(51));
    assert!(tenant_settings(&long).expect_err("too long").contains("50"));
    let mut none = section();
    none["channel_ids"] = json!([]);
    assert!(
        tenant_settings(&none)
            .expect_err("no channel")
            .contains("channel_ids")
    );
    let shown = format!("{:?}", tenant_settings(&section()).unwrap());
    assert!(!shown.contains("tok-3n"), "{shown}");
}

#[test]
fn the_channel_token_and_id_authenticate_a_notification() {
    let source = source();
    let uri: http::Uri = "/webhooks/zoho/acme".parse().unwrap();
    let headers = http::HeaderMap::new();
    let check = |body: String, tenant: &str| {
        let body = Bytes::from(body);
        source.authenticate(tenant, &request(&uri, &headers, &body))
    };
    assert_eq!(check(notification("update", true), "acme"), Ok(()));
    assert!(matches!(
        check(
            notification("update", true).replace("tok-3n", "nope"),
            "acme"
        ),
        Err(AuthFailure::InvalidBecause(_))
    ));
    assert!(matches!(
        check(notification("update", true), "globex"),
        Err(AuthFailure::InvalidBecause(_))
    ));
    assert!(matches!(
        check(
            notification("update", true).replace(r#","token":"tok-3n""#, ""),
            "acme"
        ),
        Err(AuthFailure::MissingBecause(_))
    ));
    assert!(matches!(
        check(
            notification("update", true).replace("1000000068001", "1000000068999"),
            "acme"
        ),
        Err(AuthFailure::Forbidden(_))
    ));
}

#[test]
fn each_id_is_an_event_with_its_nineteen_digits() {
    let source = source();
    let uri: http::Uri = "/webhooks/zoho/acme".parse().unwrap();
    let headers = http::HeaderMap::new();
    let body = Bytes::from(notification("update", true));
    let delivery = source
        .split("acme", &request(&uri, &headers, &body))
        .expect("accepted");
    let ids: Vec<&str> = delivery
        .events
        .iter()
        .map(|e| e.keys.object_id.as_str())
        .collect();
    assert_eq!(ids, [DEAL, OTHER], "a number id keeps every digit");
    assert_eq!(delivery.events[0].keys.object, "deal");
    assert_eq!(
        delivery.events[0].keys.occurred_at_micros,
        1_718_115_953_625_000
    );
    assert_ne!(
        delivery.events[0].keys.event_id,
        delivery.events[1].keys.event_id
    );
    let again = source
        .split("acme", &request(&uri, &headers, &body))
        .expect("accepted");
    assert_eq!(
        again.events[0].keys.event_id,
        delivery.events[0].keys.event_id
    );
}

#[test]
fn an_unknown_module_or_operation_is_refused_with_every_reason() {
    let source = source();
    let uri: http::Uri = "/webhooks/zoho/acme".parse().unwrap();
    let headers = http::HeaderMap::new();
    let body = Bytes::from(
        notification("merge", false)
            .replace(r#""module":"Deals""#, r#""module":"Invoices""#)
            .replace(&format!(r#""{DEAL}""#), "12.5"),
    );
    match source.split("acme", &request(&uri, &headers, &body)) {
        Err(Refusal::Invalid(violations)) => {
            let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
            assert_eq!(fields, ["module", "operation", "ids[0]"]);
        }
        other => panic!("{other:?}"),
    }
    let broken = Bytes::from_static(b"{\"ids\":");
    assert!(matches!(
        source.split("acme", &request(&uri, &headers, &broken)),
        Err(Refusal::MalformedJson(_))
    ));
}

fn enrich(body: &str, id: &str, operation: &str) -> (serde_json::Map<String, Value>, bool) {
    let raw = RawEvent {
        tenant: "acme".into(),
        source: NAME.into(),
        event_id: "e".into(),
        received_at_micros: 1,
        body: Bytes::from(body.to_owned()),
        keys: Some(EventKeys {
            payload_version: "notification".into(),
            object: "deal".into(),
            object_id: id.into(),
            action: operation.into(),
            attempt: 1,
            occurred_at_micros: 1_718_115_953_625_000,
        }),
        ..RawEvent::default()
    };
    let enricher = ZohoEnricher::new(BTreeMap::from([(
        "acme".to_owned(),
        tenant_settings(&section()).unwrap(),
    )]));
    let (record, missing) = enricher.flat_event(&raw).expect("enriched");
    (record.into_map().expect("unique"), missing.is_empty())
}

fn deal(fields: &serde_json::Map<String, Value>) -> tributary_model::Deal {
    let context = Context {
        tenant: "acme",
        source: NAME,
        received_at_micro: 1,
        missing: &[],
    };
    let records = ZohoMapping.map(&context, fields).expect("mapped").records;
    records
        .into_iter()
        .find_map(|record| match record {
            Record::Deal(deal) => Some(deal),
            _ => None,
        })
        .expect("a deal")
}

#[test]
fn a_records_affected_values_map_into_a_deal_and_the_status_is_not_guessed() {
    let (fields, complete) = enrich(&notification("update", true), DEAL, "update");
    assert!(complete);
    assert_eq!(fields["field_Owner"], "5725767000000411001");
    assert_eq!(fields["field_Owner_name"], "Ada Rep");
    let deal = deal(&fields);
    assert_eq!(deal.key.account, "60012345678");
    assert_eq!(deal.key.id, DEAL);
    assert_eq!(deal.stage_id, Field::Value("Closed Won".into()));
    assert_eq!(deal.amount_text, Field::Value("125000.75".into()));
    assert_eq!(
        deal.currency,
        Field::Unknown,
        "an update's new amount keeps the currency it had"
    );
    assert_eq!(deal.owner_id, Field::Value("5725767000000411001".into()));
    assert_eq!(
        deal.status,
        Field::Unknown,
        "a stage's name says nothing of its category"
    );
    assert_eq!(deal.deleted, Field::Unknown);

    // The record whole (an insert): a single-currency org's currency.
    let inserted = notification("insert", true).replace(
        r#""Deal_Name":"Big deal""#,
        r#""Deal_Name":"Big deal","Created_Time":"2024-06-11T10:00:00+05:30""#,
    );
    let (fields, _) = enrich(&inserted, DEAL, "insert");
    assert_eq!(self::deal(&fields).currency, Field::Value("INR".into()));

    let (fields, _) = enrich(&notification("update", true), OTHER, "update");
    let other = self::deal(&fields);
    assert_eq!(other.stage_id, Field::Value("Negotiation".into()));
    assert_eq!(other.amount, Field::Unknown, "only what changed is known");

    // Without values the event is partial, missing the record; a delete needs none.
    let (fields, complete) = enrich(&notification("update", false), DEAL, "update");
    assert!(!complete);
    assert_eq!(fields["pipeline_enrichment_missing"], json!(["record"]));
    let (fields, complete) = enrich(&notification("delete", false), DEAL, "delete");
    assert!(complete);
    assert_eq!(self::deal(&fields).deleted, Field::Value(true));
}

#[test]
fn the_fixture_notification_is_accepted_with_both_ids() {
    let fixture = include_str!("../../../../tests/fixtures/zoho/deals-update.json");
    let section = json!({"org_id": "600", "channel_ids": ["1000000068001"], "token": "tok"});
    let source = Zoho::from_sections(vec![("acme", &section)]).expect("valid");
    let uri: http::Uri = "/webhooks/zoho/acme".parse().unwrap();
    let headers = http::HeaderMap::new();
    let body = Bytes::from(fixture.to_owned());
    assert_eq!(
        source.authenticate("acme", &request(&uri, &headers, &body)),
        Ok(())
    );
    let delivery = source
        .split("acme", &request(&uri, &headers, &body))
        .expect("accepted");
    let ids: Vec<&str> = delivery
        .events
        .iter()
        .map(|e| e.keys.object_id.as_str())
        .collect();
    assert_eq!(ids, [DEAL, OTHER]);
}

mod crm_api {
    use std::collections::HashSet;

    use tributary_enrichment::EnrichmentSettings;
    use tributary_fake_apis::Running;
    use tributary_fake_apis::zoho::{FakeZoho, ZohoClient, ZohoState};

    use super::*;
    use crate::{EnricherContext, SourceEnricher};

    async fn fake() -> Running<ZohoState> {
        let mut state = ZohoState {
            client: Some(ZohoClient {
                client_id: "1000.SELFCLIENT".into(),
                client_secret: "self-secret".into(),
                refresh_tokens: HashSet::from(["1000.refresh.zoho".to_owned()]),
                issued: 0,
            }),
            stages: vec![
                json!({"display_value": "Negotiation/Review", "actual_value": "Negotiation/Review", "sequence_number": 5, "forecast_type": "Open", "forecast_category": {"name": "Pipeline", "id": "2766660000000007092"}}),
                json!({"display_value": "Won", "actual_value": "Closed Won", "sequence_number": 6, "forecast_type": "Closed Won", "forecast_category": {"name": "Closed", "id": "2766660000000007094"}}),
            ],
            ..ZohoState::default()
        };
        state.put(
            "Deals",
            DEAL,
            json!({
                "Deal_Name": "Big deal", "Amount": 125000.75, "Stage": "Negotiation/Review",
                "Closing_Date": "2024-06-30", "Currency": "INR",
                "Owner": {"name": "Ada Rep", "id": "5725767000000411001", "email": "ada@example.com"},
                "Account_Name": {"name": "Zylker", "id": "5725767000000800001"},
                "Created_Time": "2024-06-01T10:00:00+05:30",
                "Modified_Time": "2024-06-11T20:30:00+05:30",
                "Description": "not asked for"
            }),
        );
        FakeZoho::start(state).await.expect("fake Zoho")
    }

    fn enricher(
        fake: &Running<ZohoState>,
        refresh_token: &str,
        dir: &tempfile::TempDir,
    ) -> Box<dyn SourceEnricher> {
        enricher_with(fake, refresh_token, dir, json!({}))
    }

    /// The enricher with `extra` settings in the tenant's section.
    fn enricher_with(
        fake: &Running<ZohoState>,
        refresh_token: &str,
        dir: &tempfile::TempDir,
        extra: Value,
    ) -> Box<dyn SourceEnricher> {
        let mut section = section();
        if let (Some(section), Value::Object(extra)) = (section.as_object_mut(), extra) {
            section.extend(extra);
        }
        section["api_domain"] = json!(fake.base_url());
        section["oauth"] = json!({
            "token_url": format!("{}/oauth/v2/token", fake.base_url()),
            "client_id": "1000.SELFCLIENT", "client_secret": "self-secret",
            "refresh_token": refresh_token,
        });
        let settings = EnrichmentSettings {
            max_attempts: 2,
            retry_budget_ms: 2_000,
            token_store: tributary_enrichment::oauth::TokenStoreSettings {
                dir: Some(dir.path().to_owned()),
                key: Some(Secret::new("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=")),
            },
            ..EnrichmentSettings::default()
        };
        enrich::build(&EnricherContext {
            tenants: vec![("acme", &section)],
            settings: &settings,
            http: reqwest::Client::new(),
            email: None,
        })
        .expect("valid settings")
    }

    fn raw(body: String, id: &str) -> RawEvent {
        RawEvent {
            tenant: "acme".into(),
            source: NAME.into(),
            event_id: "e".into(),
            received_at_micros: 1,
            body: Bytes::from(body),
            keys: Some(EventKeys {
                payload_version: "notification".into(),
                object: "deal".into(),
                object_id: id.into(),
                action: "update".into(),
                attempt: 1,
                occurred_at_micros: 1_718_115_953_625_000,
            }),
            ..RawEvent::default()
        }
    }

    #[tokio::test]
    async fn spent_credits_leave_lookups_partial_without_calling_zoho() {
        let fake = fake().await;
        let dir = tempfile::tempdir().expect("dir");
        // One credit a day: the first lookup spends it.
        let enricher = enricher_with(
            &fake,
            "1000.refresh.zoho",
            &dir,
            json!({"credits_per_day": 1}),
        );
        let first = enricher
            .enrich(&raw(notification("update", false), DEAL))
            .await
            .expect("enriched");
        assert!(!first.missing.contains(&"record"), "{:?}", first.missing);
        let calls = fake.state().calls.len();
        let second = enricher
            .enrich(&raw(notification("update", false), DEAL))
            .await
            .expect("enriched");
        assert!(second.missing.contains(&"record"), "{:?}", second.missing);
        assert!(second.may_heal, "credits come back as the window rolls");
        assert_eq!(fake.state().calls.len(), calls, "no call without a credit");
        assert!(
            tenant_settings(
                &json!({"org_id": "1", "channel_ids": ["1"], "token": "t", "credits_per_day": 0})
            )
            .unwrap_err()
            .contains("credits_per_day")
        );
    }

    #[tokio::test]
    async fn a_notification_without_values_has_its_record_read() {
        let fake = fake().await;
        let dir = tempfile::tempdir().expect("dir");
        let enricher = enricher(&fake, "1000.refresh.zoho", &dir);
        let enriched = enricher
            .enrich(&raw(notification("update", false), DEAL))
            .await
            .expect("enriched");
        assert!(enriched.complete, "{:?}", enriched.missing);
        let fields: serde_json::Map<String, Value> =
            serde_json::from_slice(&enriched.payload).expect("JSON");
        assert_eq!(fields["field_Stage"], "Negotiation/Review");
        assert_eq!(fields["field_Owner"], "5725767000000411001");
        assert_eq!(fields["field_Account_Name_name"], "Zylker");
        assert!(
            !fields.contains_key("field_Description"),
            "only the fields asked for"
        );
        // Modified 2024-06-11T15:00:00Z, after the notification's time.
        assert_eq!(
            fields["event_timestamp_micro"],
            json!(1_718_118_000_000_000_u64)
        );
        let deal = deal(&fields);
        assert_eq!(deal.title, Field::Value("Big deal".into()));
        assert_eq!(deal.stage_id, Field::Value("Negotiation/Review".into()));
        // A record Zoho no longer has (204): the event stays as it came.
        let gone = enricher
            .enrich(&raw(notification("update", false), OTHER))
            .await
            .expect("enriched");
        assert!(gone.complete);
        let state = fake.state();
        assert_eq!(state.calls_to("/oauth/v2/token"), 1);
        assert_eq!(state.calls_to("/crm/v8/Deals/"), 2);
    }

    #[tokio::test]
    async fn a_stage_is_won_by_its_forecast_type_when_the_event_moved_it() {
        let fake = fake().await;
        let dir = tempfile::tempdir().expect("dir");
        let enricher = enricher(&fake, "1000.refresh.zoho", &dir);
        let fields_of = |enriched: crate::Enriched| -> serde_json::Map<String, Value> {
            assert!(enriched.complete, "{:?}", enriched.missing);
            serde_json::from_slice(&enriched.payload).expect("JSON")
        };
        // The notification's values move the deal to Closed Won.
        let moved = fields_of(
            enricher
                .enrich(&raw(notification("update", true), DEAL))
                .await
                .expect("enriched"),
        );
        assert_eq!(moved["stage_forecast_type"], "Closed Won");
        assert_eq!(moved["event_stage_changed"], true);
        let context = Context {
            tenant: "acme",
            source: NAME,
            received_at_micro: 1,
            missing: &[],
        };
        let records = ZohoMapping.map(&context, &moved).expect("mapped").records;
        let won = deal(&moved);
        assert_eq!(won.status, Field::Value(tributary_model::DealStatus::Won));
        let at = won.won_at.value().expect("won at").seconds();
        assert_eq!(at, 1_718_115_953, "the notification's time");
        let stage = records
            .iter()
            .find_map(|r| match r {
                Record::Stage(stage) => Some(stage),
                _ => None,
            })
            .expect("the stage");
        assert_eq!(
            (stage.name.as_str(), stage.display_order, stage.outcome),
            ("Won", 6, tributary_model::Outcome::Won)
        );
        let entries = crate::mapped::stage_entries;
        assert_eq!(
            entries(&records),
            [(
                "Closed Won".to_owned(),
                1_718_115_953_625_000,
                "won".to_owned()
            )],
            "the deal entered the stage at the notification"
        );
        // A record read whose change did not touch the stage: open, and no
        // close time is said.
        let read = fields_of(
            enricher
                .enrich(&raw(notification("update", false), DEAL))
                .await
                .expect("enriched"),
        );
        assert_eq!(read["event_stage_changed"], false);
        let open = deal(&read);
        assert_eq!(open.status, Field::Value(tributary_model::DealStatus::Open));
        assert_eq!(open.won_at, Field::Null);
        let records = ZohoMapping.map(&context, &read).expect("mapped").records;
        assert!(entries(&records).is_empty(), "the stage did not move");
        assert_eq!(
            fake.state().calls_to("/crm/v8/settings/fields"),
            1,
            "stages are cached"
        );
    }

    #[tokio::test]
    async fn upkeep_moves_each_channels_expiry_a_day_ahead_and_names_a_lost_one() {
        let fake = fake().await;
        fake.state().channels = vec![json!({
            "channel_id": "1000000068001", "events": ["Deals.all"], "token": "tok-3n",
            "channel_expiry": "2024-06-11T20:30:00+05:30", "notify_url": "https://hooks.example.com/webhooks/zoho/acme",
            "return_affected_field_values": true, "resource_name": "Deals"
        })];
        let dir = tempfile::tempdir().expect("dir");
        let enricher = enricher(&fake, "1000.refresh.zoho", &dir);
        let renewed = enricher.upkeep().await;
        let detail = renewed[0].outcome.as_ref().expect("renewed");
        assert!(detail.contains("1 channels renewed"), "{detail}");
        let channel = fake.state().channels[0].clone();
        let expiry =
            chrono::DateTime::parse_from_rfc3339(channel["channel_expiry"].as_str().expect("text"))
                .expect("RFC 3339");
        let ahead = expiry.with_timezone(&chrono::Utc) - chrono::Utc::now();
        assert!(
            ahead > chrono::Duration::hours(23) && ahead <= chrono::Duration::hours(24),
            "{ahead}"
        );
        assert_eq!(
            channel["events"],
            json!(["Deals.all"]),
            "the events are kept"
        );
        assert_eq!(
            channel["return_affected_field_values"], true,
            "what was not sent is kept"
        );

        // Expired and gone: said, with what to do.
        fake.state().channels.clear();
        let lost = enricher.upkeep().await;
        let err = lost[0]
            .outcome
            .as_ref()
            .expect_err("no channel")
            .to_string();
        assert!(
            err.contains("1000000068001") && err.contains("actions/watch"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_refused_refresh_token_is_said_at_start_and_not_retried() {
        let fake = fake().await;
        let dir = tempfile::tempdir().expect("dir");
        let enricher = enricher(&fake, "1000.revoked", &dir);
        let checks = enricher.check_access().await;
        let err = checks[0].outcome.as_ref().expect_err("refused");
        assert!(err.to_string().contains("invalid_code"), "{err}");
        let enriched = enricher
            .enrich(&raw(notification("update", false), DEAL))
            .await
            .expect("enriched");
        assert_eq!(enriched.missing, ["record"]);
        assert!(!enriched.may_heal);
        assert_eq!(fake.state().calls_to("/crm/v8/"), 0);
    }
}

#[test]
fn a_deals_owner_is_a_user_by_name() {
    let (fields, _) = enrich(&notification("update", true), DEAL, "update");
    let context = Context {
        tenant: "acme",
        source: NAME,
        received_at_micro: 1,
        missing: &[],
    };
    let records = ZohoMapping.map(&context, &fields).expect("mapped").records;
    let owner = records
        .iter()
        .find_map(|r| match r {
            Record::User(user) => Some(user),
            _ => None,
        })
        .expect("the owner");
    assert_eq!(owner.key.id, "5725767000000411001");
    assert_eq!(owner.name, Field::Value("Ada Rep".into()));
    // The notification names no account: no company.
    assert!(!records.iter().any(|r| matches!(r, Record::Company(_))));
}
