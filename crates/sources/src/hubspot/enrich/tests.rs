//! The HubSpot enricher against the fake HubSpot CRM API.

use std::sync::Arc;

use serde_json::{Value, json};
use tributary_enrichment::EnrichmentSettings;
use tributary_envelope::{EventKeys, RawEvent};
use tributary_fake_apis::hubspot::{
    FakeHubSpot, HubSpotState, ObjectType as FakeType, SAMPLE_START_MS, sample_portal,
};
use tributary_fake_apis::{Behaviour, Running};

use super::build;
use crate::enrich::{EnricherContext, SourceEnricher};

const TOKEN: &str = "pat-na1-test";
const PORTAL: &str = "62515";

fn settings() -> EnrichmentSettings {
    EnrichmentSettings {
        max_attempts: 2,
        retry_budget_ms: 1_500,
        backoff_initial_ms: 20,
        backoff_max_ms: 100,
        ..EnrichmentSettings::default()
    }
}

fn enricher(base_url: &str) -> Box<dyn SourceEnricher> {
    let section = json!({
        "portal_id": PORTAL,
        "client_secret": "shh",
        "access_token": TOKEN,
        "api_base_url": base_url,
        "requests_per_10s": 190,
        "marketing_source_property": "lead_source",
    });
    let settings = settings();
    build(&EnricherContext {
        tenants: vec![("acme", &section)],
        settings: &settings,
        http: reqwest::Client::new(),
        email: None,
    })
    .expect("builds")
}

/// A webhook element as the collector stores it.
fn raw(object: &str, id: &str, action: &str, occurred_at_ms: i64, extra: Value) -> RawEvent {
    let mut element = json!({
        "eventId": 1, "subscriptionId": 2, "portalId": 62515, "appId": 3,
        "occurredAt": occurred_at_ms, "subscriptionType": format!("{object}.{action}"),
        "attemptNumber": 0, "objectId": id.parse::<u64>().unwrap_or_default(),
        "changeSource": "CRM_UI",
    });
    if let (Value::Object(element), Value::Object(extra)) = (&mut element, extra) {
        element.extend(extra);
    }
    RawEvent {
        envelope_version: tributary_envelope::ENVELOPE_VERSION,
        tenant: "acme".into(),
        source: "hubspot".into(),
        event_id: format!("e-{object}-{id}-{occurred_at_ms}"),
        received_at_micros: (occurred_at_ms * 1_000 + 500) as u64,
        body: serde_json::to_vec(&element).expect("json").into(),
        keys: Some(EventKeys {
            payload_version: "webhooks-v3".into(),
            object: object.into(),
            object_id: id.into(),
            action: action.into(),
            attempt: 1,
            occurred_at_micros: (occurred_at_ms * 1_000) as u64,
        }),
        ..RawEvent::default()
    }
}

async fn enrich(enricher: &dyn SourceEnricher, raw: &RawEvent) -> Value {
    let enriched = enricher.enrich(raw).await.expect("enriches");
    serde_json::from_slice(&enriched.payload).expect("a JSON object")
}

async fn fake() -> Running<HubSpotState> {
    FakeHubSpot::start(HubSpotState::with_portal(TOKEN, sample_portal()))
        .await
        .expect("the fake starts")
}

#[tokio::test]
async fn a_deal_event_is_hydrated_with_its_history_pipeline_company_owner_and_source_label() {
    let api = fake().await;
    let enricher = enricher(&api.base_url());
    let event = enrich(
        &*enricher,
        &raw(
            "deal",
            "101",
            "propertyChange",
            SAMPLE_START_MS,
            json!({
                "propertyName": "dealstage", "propertyValue": "1102"
            }),
        ),
    )
    .await;
    assert_eq!(event["pipeline_enrichment_status"], "complete", "{event:#}");
    assert_eq!(event["pipeline_source"], "hubspot");
    assert_eq!(event["event_portal_id"], PORTAL);
    assert_eq!(event["event_object_id"], "101");
    assert_eq!(event["event_property_name"], "dealstage");
    assert_eq!(event["record_found"], true);
    assert_eq!(event["record_id"], "101");
    assert_eq!(event["deal_name"], "Acme renewal");
    assert_eq!(event["deal_amount"], "13000", "kept as HubSpot's text");
    assert_eq!(event["deal_stage_id"], "1103");
    assert_eq!(event["deal_is_closed_won"], "true");
    assert_eq!(
        event["deal_stage_history_ids"],
        json!(["1101", "1102", "1103"]),
        "oldest first"
    );
    assert_eq!(event["deal_pipeline_name"], "Enterprise");
    assert_eq!(
        event["deal_pipeline_stage_outcomes"],
        json!(["open", "open", "won", "lost"])
    );
    assert_eq!(event["deal_company_id"], "301", "the primary company");
    assert_eq!(event["deal_contact_id"], "201");
    assert_eq!(event["company_name"], "Acme");
    assert_eq!(event["owner_name"], "Ada Lovelace");
    assert!(event["record_version_micro"].as_i64().is_some());
    let flat = event.as_object().expect("an object");
    assert!(
        flat.values().all(|v| !v.is_object()),
        "flat: no nested objects"
    );
}

#[tokio::test]
async fn a_burst_of_events_about_many_deals_costs_a_handful_of_calls() {
    let mut portal = sample_portal();
    let ui = tributary_fake_apis::hubspot::ChangeSource::crm_ui(9001);
    for id in 1_000..1_100 {
        portal.set(
            FakeType::Deals,
            id,
            SAMPLE_START_MS,
            &[
                ("dealname", &format!("Deal {id}")),
                ("amount", "100"),
                ("pipeline", "811234"),
                ("dealstage", "1101"),
                ("hubspot_owner_id", "501"),
            ],
            &ui,
        );
        portal.associate_primary((FakeType::Deals, id), (FakeType::Companies, 301));
    }
    let api = FakeHubSpot::start(HubSpotState::with_portal(TOKEN, portal))
        .await
        .expect("the fake starts");
    let enricher: Arc<dyn SourceEnricher> = Arc::from(enricher(&api.base_url()));
    let mut tasks = Vec::new();
    for id in 1_000..1_100 {
        let enricher = enricher.clone();
        tasks.push(tokio::spawn(async move {
            let raw = raw(
                "deal",
                &id.to_string(),
                "creation",
                SAMPLE_START_MS,
                json!({}),
            );
            enrich(&*enricher, &raw).await
        }));
    }
    for task in tasks {
        let event = task.await.expect("joins");
        assert_eq!(event["pipeline_enrichment_status"], "complete", "{event:#}");
        assert_eq!(event["company_name"], "Acme");
    }
    let state = api.state();
    let calls = state.calls.len();
    // Two batch reads of 50 (history limits them), two of each
    // association, one company read, pipelines, owners, properties.
    assert!(
        calls <= 10,
        "{calls} calls for 100 deals: {:?}",
        state.calls
    );
    assert!(state.calls_to("/crm/v3/objects/deals/batch/read") <= 2);
}

#[tokio::test]
async fn a_deleted_record_is_read_as_archived_and_an_api_outage_leaves_the_event_partial() {
    let api = fake().await;
    let enricher = enricher(&api.base_url());
    let deleted = enrich(
        &*enricher,
        &raw("deal", "103", "deletion", SAMPLE_START_MS, json!({})),
    )
    .await;
    assert_eq!(
        deleted["pipeline_enrichment_status"], "complete",
        "{deleted:#}"
    );
    assert_eq!(
        deleted["record_found"], true,
        "its last state is still there"
    );
    assert_eq!(deleted["record_archived"], true);
    assert_eq!(deleted["deal_name"], "Duplicate");
    assert!(deleted["record_archived_at"].is_string());
    assert_eq!(
        api.state()
            .calls_to("/crm/v3/objects/deals/batch/read?archived=true"),
        1,
        "read again among the archived ones"
    );
    let erased = enrich(
        &*enricher,
        &raw(
            "contact",
            "201",
            "privacyDeletion",
            SAMPLE_START_MS,
            json!({}),
        ),
    )
    .await;
    assert_eq!(
        erased["record_found"], false,
        "a GDPR deletion erases the record"
    );

    api.state().behaviour = Behaviour {
        outage: Some(503),
        ..Behaviour::default()
    };
    let event = enrich(
        &*enricher,
        &raw(
            "deal",
            "101",
            "propertyChange",
            SAMPLE_START_MS,
            json!({
                "propertyName": "amount", "propertyValue": "99.5"
            }),
        ),
    )
    .await;
    assert_eq!(event["pipeline_enrichment_status"], "partial");
    assert_eq!(event["pipeline_enrichment_missing"], json!(["record"]));
    assert_eq!(
        event["event_property_value"], "99.5",
        "the webhook's own facts stay"
    );
    assert!(
        event.get("deal_name").is_none(),
        "nothing read, nothing claimed"
    );
}

#[tokio::test]
async fn an_engagement_names_its_deal_and_owner() {
    let api = fake().await;
    let enricher = enricher(&api.base_url());
    let event = enrich(
        &*enricher,
        &raw("call", "701", "creation", SAMPLE_START_MS, json!({})),
    )
    .await;
    assert_eq!(event["pipeline_enrichment_status"], "complete", "{event:#}");
    assert_eq!(event["activity_type"], "call");
    assert_eq!(event["activity_status"], "COMPLETED");
    assert_eq!(event["activity_deal_id"], "101");
    assert_eq!(event["activity_owner_id"], "502");
    assert_eq!(event["owner_name"], "Alan Turing");
}

/// What the enricher wrote, mapped: the canonical deal and what comes with it.
#[tokio::test]
async fn an_enriched_deal_maps_into_the_model_with_its_status_stages_and_history() {
    use tributary_model::{Context, DealStatus, Field, Mapping, Outcome, Record};
    let api = fake().await;
    let enricher = enricher(&api.base_url());
    let event = enrich(
        &*enricher,
        &raw("deal", "101", "creation", SAMPLE_START_MS, json!({})),
    )
    .await;
    let missing: Vec<String> = Vec::new();
    let context = Context {
        tenant: "acme",
        source: "hubspot",
        received_at_micro: 1,
        missing: &missing,
    };
    let mapped = super::super::mapping::HubSpotMapping
        .map(&context, event.as_object().expect("object"))
        .expect("maps");
    assert_eq!(mapped.account, PORTAL);
    let deal = mapped
        .records
        .iter()
        .find_map(|r| match r {
            Record::Deal(d) if d.title.is_known() => Some(d),
            _ => None,
        })
        .expect("the deal");
    assert_eq!(deal.status, Field::Value(DealStatus::Won));
    assert_eq!(deal.amount.value().map(|a| a.as_str()), Some("13000"));
    assert_eq!(deal.currency, Field::Value("EUR".into()));
    assert_eq!(deal.company_id, Field::Value("301".into()));
    assert_eq!(
        deal.probability,
        Field::Null,
        "the stage's probability applies"
    );
    let won_at = deal.won_at.value().expect("won at").seconds();
    assert_eq!(
        won_at,
        (SAMPLE_START_MS + 2 * 86_400_000) / 1_000,
        "when it entered Signed"
    );
    let transitions: Vec<(String, String, String)> = mapped
        .records
        .iter()
        .filter_map(|r| match r {
            Record::StageTransition(t) => Some((
                t.from_stage_id.clone(),
                t.to_stage_id.clone(),
                t.to_status.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        transitions,
        [
            ("".into(), "1101".into(), "open".into()),
            ("1101".into(), "1102".into(), "open".into()),
            ("1102".into(), "1103".into(), "won".into()),
        ]
    );
    let stages: Vec<(String, Option<f64>, Outcome)> = mapped
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Stage(s) => Some((s.key.id.clone(), s.probability, s.outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("1101".into(), Some(10.0), Outcome::Open),
            ("1102".into(), Some(65.0), Outcome::Open),
            ("1103".into(), Some(100.0), Outcome::Won),
            ("1104".into(), Some(0.0), Outcome::Lost),
        ]
    );
    assert!(
        mapped
            .records
            .iter()
            .any(|r| matches!(r, Record::User(u) if u.key.id == "501" && u.name == Field::Value("Ada Lovelace".into())))
    );
}
