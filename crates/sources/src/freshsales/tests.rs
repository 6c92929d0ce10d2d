use bytes::Bytes;
use serde_json::{Value, json};
use tributary_envelope::{EventKeys, RawEvent};
use tributary_model::{Context, DealStatus, Field, Mapping, Outcome, Record};

use super::mapping::FreshsalesMapping;
use super::*;
use crate::{AuthFailure, Refusal, WebhookRequest, WebhookSource};

const SECRET: &str = "workflow-secret-0123";
const DEAL: &str = "17000123456";

fn section(api_url: &str) -> Value {
    json!({"secret": SECRET, "api_url": api_url, "api_key": "sfg999666t673t7t82", "currency": "EUR"})
}

fn source() -> Freshsales {
    let section = section("https://acme.myfreshworks.com/crm/sales");
    Freshsales::from_sections(vec![("acme", &section)]).expect("valid settings")
}

fn split(
    headers: &[(&str, &str)],
    body: &str,
) -> (Result<(), AuthFailure>, Result<crate::Delivery, Refusal>) {
    let uri: http::Uri = "/webhooks/freshsales/acme".parse().expect("uri");
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    let body = Bytes::from(body.to_owned());
    let request = WebhookRequest {
        method: &http::Method::POST,
        uri: &uri,
        headers: &map,
        body: &body,
    };
    let source = source();
    (
        source.authenticate("acme", &request),
        source.split("acme", &request),
    )
}

#[test]
fn settings_need_a_long_secret_a_custom_header_and_the_api() {
    let url = "https://acme.myfreshworks.com/crm/sales";
    let settings = tenant_settings(&section(url)).expect("valid");
    assert_eq!(settings.secret_header, DEFAULT_SECRET_HEADER);
    assert_eq!(settings.account(), "acme.myfreshworks.com");
    assert_eq!(settings.requests_per_hour, 1_000);
    let mut short = section(url);
    short["secret"] = json!("short");
    assert!(tenant_settings(&short).expect_err("short").contains("16"));
    let mut header = section(url);
    header["secret_header"] = json!("Authorization");
    assert!(tenant_settings(&header).is_err());
    let mut no_key = section(url);
    no_key.as_object_mut().expect("object").remove("api_key");
    assert!(
        tenant_settings(&no_key)
            .expect_err("no key")
            .contains("api_key")
    );
    assert!(tenant_settings(&section("acme.myfreshworks.com")).is_err());
    let mut currency = section(url);
    currency["currency"] = json!("euro");
    assert!(tenant_settings(&currency).is_err());
}

#[test]
fn the_secret_header_or_basic_password_authenticates_a_delivery() {
    let body = format!(r#"{{"deal": {{"id": "{DEAL}"}}}}"#);
    let (auth, _) = split(&[("x-tributary-secret", SECRET)], &body);
    assert_eq!(auth, Ok(()));
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("freshsales:{SECRET}")
        )
    );
    let (auth, _) = split(&[("authorization", &basic)], &body);
    assert_eq!(auth, Ok(()));
    let (auth, _) = split(&[("x-tributary-secret", "guessed-secret-0000")], &body);
    assert!(
        matches!(auth, Err(AuthFailure::InvalidBecause(_))),
        "{auth:?}"
    );
    let (auth, _) = split(&[], &body);
    match auth {
        Err(AuthFailure::MissingBecause(reason)) => assert!(reason.contains("x-tributary-secret")),
        other => panic!("{other:?}"),
    }
    let (auth, _) = split(&[("authorization", "Token token=abc")], &body);
    assert!(auth.is_err());
}

#[test]
fn any_body_naming_a_record_is_one_event_of_that_record() {
    let bodies = [
        (
            format!(
                r#"{{"deal": {{"id": {DEAL}, "name": "Big", "updated_at": "2026-11-02T10:15:30+05:30"}}}}"#
            ),
            "deal",
            true,
        ),
        (
            format!(r#"{{"deal_id": "{DEAL}", "stage": "Won"}}"#),
            "deal",
            false,
        ),
        (
            format!(r#"{{"freshsales_webhook": {{"contact_id": "{DEAL}"}}}}"#),
            "contact",
            false,
        ),
        (
            format!(r#"{{"sales_account": {{"id": "{DEAL}"}}, "event": "sales_account_update"}}"#),
            "sales_account",
            false,
        ),
        // A sales activity's body may name the deal it is about too.
        (
            format!(r#"{{"sales_activity": {{"id": "{DEAL}"}}, "deal_id": "17000999999"}}"#),
            "sales_activity",
            false,
        ),
    ];
    for (body, object, dated) in bodies {
        let (_, delivery) = split(&[("content-type", "application/json")], &body);
        let delivery = delivery.unwrap_or_else(|e| panic!("{body}: {e:?}"));
        let keys = &delivery.events[0].keys;
        assert_eq!(
            (keys.object.as_str(), keys.object_id.as_str()),
            (object, DEAL),
            "{body}"
        );
        assert_eq!(keys.action, "update");
        let (_, again) = split(&[], &body);
        let same = again.expect("accepted").events[0].keys.event_id == keys.event_id;
        assert_eq!(
            same, dated,
            "{body}: a dated change is the same event when sent twice"
        );
        if dated {
            assert_eq!(keys.occurred_at_micros, 1_793_594_730_000_000);
        }
    }
    let (_, form) = split(
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("deal%5Bid%5D={DEAL}&deal%5Bname%5D=Big"),
    );
    let form = form.expect("form accepted");
    assert_eq!(form.events[0].keys.object_id, DEAL);
    let (_, deleted) = split(
        &[],
        &format!(r#"{{"deal_id": {DEAL}, "action": "Deal deleted"}}"#),
    );
    assert_eq!(deleted.expect("accepted").events[0].keys.action, "delete");
}

#[test]
fn a_body_naming_no_record_or_an_unfilled_placeholder_is_refused_with_why() {
    let (_, refused) = split(&[], r#"{"deal": {"id": "{{deal.id}}"}}"#);
    match refused {
        Err(Refusal::Invalid(violations)) => {
            assert_eq!(violations[0].field, "deal.id");
            assert!(
                violations[0].reason.contains("placeholder"),
                "{violations:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let (_, refused) = split(&[], r#"{"ticket": {"id": 5}}"#);
    assert!(matches!(refused, Err(Refusal::Invalid(_))), "{refused:?}");
    let (_, refused) = split(&[], r#"{"deal": "#);
    assert!(matches!(refused, Err(Refusal::MalformedJson(_))));
    let (_, refused) = split(&[], "[1]");
    assert!(matches!(refused, Err(Refusal::Invalid(_))));
}

fn raw(object: &str, id: &str, action: &str) -> RawEvent {
    RawEvent {
        tenant: "acme".into(),
        source: NAME.into(),
        event_id: "e".into(),
        received_at_micros: 5,
        body: Bytes::from(format!(r#"{{"{object}_id": "{id}"}}"#)),
        keys: Some(EventKeys {
            payload_version: "workflow".into(),
            object: object.into(),
            object_id: id.into(),
            action: action.into(),
            attempt: 1,
            occurred_at_micros: 1_800_000_000_000_000,
        }),
        ..RawEvent::default()
    }
}

fn map(fields: &serde_json::Map<String, Value>) -> Vec<Record> {
    let context = Context {
        tenant: "acme",
        source: NAME,
        received_at_micro: 5,
        missing: &[],
    };
    FreshsalesMapping
        .map(&context, fields)
        .expect("mapped")
        .records
}

mod api {
    use std::collections::HashSet;

    use tributary_enrichment::EnrichmentSettings;
    use tributary_fake_apis::Running;
    use tributary_fake_apis::freshsales::{FakeFreshsales, FreshsalesState};

    use super::*;
    use crate::{EnricherContext, SourceEnricher};

    async fn fake() -> Running<FreshsalesState> {
        let mut state = FreshsalesState {
            api_keys: HashSet::from(["sfg999666t673t7t82".to_owned()]),
            users: vec![
                json!({"id": 17000000001u64, "display_name": "Ada Rep", "email": "ada@example.com"}),
            ],
            deal_stages: vec![
                json!({"id": 17000207787u64, "name": "New", "position": 1, "forecast_type": "Open", "deal_pipeline_id": 17000029663u64, "choice_type": 5, "probability": 10}),
                json!({"id": 17000207790u64, "name": "Won", "position": 5, "forecast_type": "Closed Won", "deal_pipeline_id": 17000029663u64, "choice_type": 3, "probability": 100}),
            ],
            deal_pipelines: vec![
                json!({"id": 17000029663u64, "name": "Default Pipeline", "position": 1}),
            ],
            currencies: vec![json!({"id": 2, "currency_code": "GBP", "exchange_rate": "0.86"})],
            sales_activity_types: vec![
                json!({"id": 17000018001u64, "name": "Call", "internal_name": "call"}),
                json!({"id": 17000018002u64, "name": "Product demo", "internal_name": "product_demo"}),
                json!({"id": 17000018003u64, "name": "Site visit", "internal_name": "site_visit"}),
            ],
            ..FreshsalesState::default()
        };
        state.put(
            "sales_activities",
            json!({
                "id": 17000700001u64, "title": "Pricing call", "notes": "asked about her family",
                "start_date": "2026-11-02T10:00:00+05:30", "end_date": "2026-11-02T10:30:00+05:30",
                "sales_activity_type_id": 17000018001u64, "sales_activity_outcome_id": null,
                "owner_id": 17000000001u64, "targetable_type": "Deal", "targetable_id": 17000123456u64,
                "created_at": "2026-11-02T10:31:00+05:30", "updated_at": "2026-11-02T10:31:00+05:30"
            }),
        );
        state.put(
            "sales_activities",
            json!({
                "id": 17000700002u64, "title": "On site", "notes": null,
                "start_date": "2026-11-03T09:00:00Z", "end_date": null,
                "sales_activity_type_id": 17000018003u64, "sales_activity_outcome_id": null,
                "owner_id": 17000000001u64, "targetable_type": "SalesAccount", "targetable_id": 17000500001u64,
                "created_at": "2026-11-03T12:00:00Z", "updated_at": "2026-11-03T12:00:00Z"
            }),
        );
        state.put(
            "deals",
            json!({
                "id": 17000123456u64, "name": "Big deal", "amount": "12500.5", "currency_id": 2,
                "deal_stage_id": 17000207790u64, "deal_pipeline_id": 17000029663u64,
                "probability": null, "expected_close": "2026-11-30", "closed_date": "2026-11-02",
                "stage_updated_time": "2026-11-02T10:15:30+05:30", "owner_id": 17000000001u64,
                "sales_account_id": 17000500001u64, "is_deleted": false,
                "created_at": "2026-10-01T09:00:00+05:30", "updated_at": "2026-11-02T10:15:30+05:30"
            }),
        );
        state.put(
            "sales_accounts",
            json!({"id": 17000500001u64, "name": "Widgetz", "website": "https://www.widgetz.io", "owner_id": 17000000001u64, "updated_at": "2026-10-01T09:00:00Z"}),
        );
        FakeFreshsales::start(state).await.expect("fake Freshsales")
    }

    fn enricher(fake: &Running<FreshsalesState>, api_key: &str) -> Box<dyn SourceEnricher> {
        let mut section = section(&format!("{}/crm/sales", fake.base_url()));
        section["api_key"] = json!(api_key);
        let settings = EnrichmentSettings {
            max_attempts: 2,
            retry_budget_ms: 2_000,
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

    async fn enriched(
        enricher: &dyn SourceEnricher,
        raw: &RawEvent,
    ) -> (serde_json::Map<String, Value>, bool) {
        let enriched = enricher.enrich(raw).await.expect("enriched");
        let Value::Object(fields) = serde_json::from_slice(&enriched.payload).expect("json") else {
            panic!("an object");
        };
        (fields, enriched.complete)
    }

    #[tokio::test]
    async fn a_deal_is_read_whole_and_its_stage_says_won() {
        let fake = fake().await;
        let enricher = enricher(&fake, "sfg999666t673t7t82");
        let (fields, complete) = enriched(&*enricher, &raw("deal", DEAL, "update")).await;
        assert!(complete, "{fields:?}");
        assert_eq!(fields["event_timestamp_micro"], 1_793_594_730_000_000u64);
        assert_eq!(fields["stage_forecast_type"], "Closed Won");
        assert_eq!(fields["record_currency"], "GBP");
        let records = map(&fields);
        let deal = records
            .iter()
            .find_map(|r| match r {
                Record::Deal(deal) => Some(deal),
                _ => None,
            })
            .expect("a deal");
        assert_eq!(deal.status, Field::Value(DealStatus::Won));
        assert_eq!(deal.title, Field::Value("Big deal".into()));
        assert_eq!(deal.currency, Field::Value("GBP".into()));
        assert_eq!(deal.stage_id, Field::Value("17000207790".into()));
        assert_eq!(deal.company_id, Field::Value("17000500001".into()));
        assert_eq!(deal.deleted, Field::Value(false));
        let won = deal.won_at.value().expect("won at").seconds();
        assert_eq!(won, 1_793_577_600, "the start of the closed_date");
        let stage = records
            .iter()
            .find_map(|r| match r {
                Record::Stage(stage) => Some(stage),
                _ => None,
            })
            .expect("the stage");
        assert_eq!((stage.outcome, stage.name.as_str()), (Outcome::Won, "Won"));
        assert_eq!(
            crate::mapped::stage_entries(&records),
            [(
                "17000207790".to_owned(),
                1_793_594_730_000_000,
                "won".to_owned()
            )],
            "the deal entered its stage at its stage_updated_time"
        );
        assert!(
            records
                .iter()
                .all(|r| !matches!(r, Record::StageTransition(t)
                if t.pipeline_id != "17000029663")),
            "in the deal's pipeline"
        );
        assert!(
            records
                .iter()
                .any(|r| matches!(r, Record::User(u) if u.name == Field::Value("Ada Rep".into())))
        );
        assert!(
            records.iter().any(
                |r| matches!(r, Record::Company(c) if c.name == Field::Value("Widgetz".into()))
            )
        );
        assert!(
            records
                .iter()
                .any(|r| matches!(r, Record::Pipeline(p) if p.name == "Default Pipeline"))
        );
        let calls = fake.state().calls_to("/crm/sales/api/selector/currencies");
        enriched(&*enricher, &raw("deal", DEAL, "update")).await;
        assert_eq!(
            fake.state().calls_to("/crm/sales/api/selector/currencies"),
            calls,
            "currencies are read once"
        );
    }

    #[tokio::test]
    async fn a_deal_the_api_no_longer_has_is_a_tombstone_and_a_bad_key_a_partial_event() {
        let fake = fake().await;
        fake.state().remove("deals", DEAL);
        let enricher = enricher(&fake, "sfg999666t673t7t82");
        let (fields, complete) = enriched(&*enricher, &raw("deal", DEAL, "update")).await;
        assert!(complete);
        assert_eq!(fields["event_action"], "delete");
        let records = map(&fields);
        assert!(matches!(&records[0], Record::Deal(d) if d.deleted == Field::Value(true)));

        let wrong = enricher_with_wrong_key(&fake);
        let (fields, complete) =
            enriched(&*wrong, &raw("sales_account", "17000500001", "update")).await;
        assert!(!complete);
        assert_eq!(fields["pipeline_enrichment_missing"], json!(["record"]));
        let records = map(&fields);
        assert!(
            matches!(&records[0], Record::Company(c) if c.deleted == Field::Unknown && c.name == Field::Unknown),
            "an unread record changes nothing: {records:?}"
        );
        let checks = wrong.check_access().await;
        assert!(checks[0].outcome.is_err(), "{checks:?}");
        let checks = enricher.check_access().await;
        assert!(
            checks[0]
                .outcome
                .as_ref()
                .is_ok_and(|o| o.contains("1 owners")),
            "{checks:?}"
        );
    }

    #[tokio::test]
    async fn a_sales_activity_is_a_done_activity_of_its_types_kind_about_what_it_targets() {
        let fake = fake().await;
        let enricher = enricher(&fake, "sfg999666t673t7t82");
        let activity = |fields: &serde_json::Map<String, Value>| {
            map(fields)
                .into_iter()
                .find_map(|r| match r {
                    Record::Activity(activity) => Some(activity),
                    _ => None,
                })
                .expect("an activity")
        };
        let (fields, complete) =
            enriched(&*enricher, &raw("sales_activity", "17000700001", "update")).await;
        assert!(complete, "{fields:?}");
        assert!(
            !fields.contains_key("record_notes"),
            "notes are free text about people: not passed on"
        );
        let call = activity(&fields);
        assert_eq!(call.kind, Field::Value(tributary_model::ActivityType::Call));
        assert_eq!(call.raw_type, Field::Value("Call".into()));
        assert_eq!(call.subject, Field::Value("Pricing call".into()));
        assert_eq!(call.done, Field::Value(true));
        assert_eq!(
            call.done_at.value().map(|t| t.seconds()),
            Some(1_793_595_600),
            "done when it ended"
        );
        assert_eq!(call.deal_id, Field::Value(DEAL.into()));
        assert_eq!(call.company_id, Field::Null);
        assert_eq!(call.owner_id, Field::Value("17000000001".into()));
        assert_eq!(fields["event_timestamp_micro"], 1_793_595_660_000_000u64);

        let (fields, _) =
            enriched(&*enricher, &raw("sales_activity", "17000700002", "update")).await;
        let visit = activity(&fields);
        assert_eq!(
            visit.kind,
            Field::Value(tributary_model::ActivityType::Other)
        );
        assert_eq!(visit.raw_type, Field::Value("Site visit".into()));
        assert_eq!(visit.company_id, Field::Value("17000500001".into()));
        assert_eq!(visit.deal_id, Field::Null);
        assert_eq!(
            visit.done_at, visit.due_at,
            "without an end, done when it started"
        );
        assert_eq!(
            fake.state()
                .calls_to("/crm/sales/api/selector/sales_activity_types"),
            1,
            "the types are read once"
        );

        fake.state().remove("sales_activities", "17000700001");
        let (fields, _) =
            enriched(&*enricher, &raw("sales_activity", "17000700001", "update")).await;
        assert_eq!(activity(&fields).deleted, Field::Value(true));
    }

    fn enricher_with_wrong_key(fake: &Running<FreshsalesState>) -> Box<dyn SourceEnricher> {
        enricher(fake, "not-the-key")
    }

    #[tokio::test]
    async fn an_account_maps_into_a_company_with_its_domain() {
        let fake = fake().await;
        let enricher = enricher(&fake, "sfg999666t673t7t82");
        let (fields, complete) =
            enriched(&*enricher, &raw("sales_account", "17000500001", "update")).await;
        assert!(complete);
        let records = map(&fields);
        match &records[0] {
            Record::Company(company) => {
                assert_eq!(company.domain, Field::Value("widgetz.io".into()));
                assert_eq!(company.owner_id, Field::Value("17000000001".into()));
            }
            other => panic!("{other:?}"),
        }
    }
}
