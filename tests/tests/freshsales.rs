//! Freshsales workflow webhooks through the whole pipeline: bodies the
//! workflow's author wrote (JSON and form-encoded, dated or not) in at the
//! collector with the tenant's secret header, each record read whole from
//! the fake Freshsales API, into the canonical model: won by its stage's
//! forecast type, deleted when the API no longer has it; a logged sales
//! activity as a done activity of its type's kind.
#![cfg(all(feature = "kafka-broker-tests", feature = "clickhouse-tests"))]

use std::collections::HashSet;

use serde_json::{Value, json};
use tributary_fake_apis::freshsales::{FakeFreshsales, FreshsalesState};
use tributary_tests::pipeline::{SourcePipeline, number};

const SECRET: &str = "freshsales-workflow-secret";
const KEY: &str = "fs-api-key-1";
const WON: &str = "17000123456";
const DELETED: &str = "17000123457";
const PIPELINE: u64 = 17_000_029_663;
const CALL: &str = "17000700001";

fn deal(id: &str, stage: u64, updated_at: &str) -> Value {
    json!({
        "id": id.parse::<u64>().expect("digits"), "name": format!("Deal {id}"), "amount": "2500.0",
        "currency_id": 1, "deal_stage_id": stage, "deal_pipeline_id": PIPELINE,
        "expected_close": "2026-12-20", "closed_date": if stage == 2 { json!("2026-11-30") } else { Value::Null },
        "stage_updated_time": updated_at, "owner_id": 9, "is_deleted": false,
        "created_at": "2026-11-01T08:00:00Z", "updated_at": updated_at
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_webhooks_load_each_deal_as_the_api_has_it() {
    let mut state = FreshsalesState {
        api_keys: HashSet::from([KEY.to_owned()]),
        users: vec![json!({"id": 9, "display_name": "Ada Rep"})],
        deal_stages: vec![
            json!({"id": 1, "name": "New", "position": 1, "forecast_type": "Open", "deal_pipeline_id": PIPELINE}),
            json!({"id": 2, "name": "Won", "position": 6, "forecast_type": "Closed Won", "deal_pipeline_id": PIPELINE}),
        ],
        deal_pipelines: vec![json!({"id": PIPELINE, "name": "Default Pipeline"})],
        currencies: vec![json!({"id": 1, "currency_code": "EUR"})],
        sales_activity_types: vec![json!({"id": 5, "name": "Call"})],
        ..FreshsalesState::default()
    };
    state.put(
        "sales_activities",
        json!({"id": 17000700001u64, "title": "Pricing call", "start_date": "2026-11-20T10:00:00Z",
            "end_date": "2026-11-20T10:20:00Z", "sales_activity_type_id": 5, "owner_id": 9,
            "targetable_type": "Deal", "targetable_id": WON.parse::<u64>().expect("digits"),
            "created_at": "2026-11-20T10:21:00Z", "updated_at": "2026-11-20T10:21:00Z"}),
    );
    state.put("deals", deal(WON, 1, "2026-11-10T09:00:00Z"));
    state.put("deals", deal(DELETED, 1, "2026-11-10T09:05:00Z"));
    let api = FakeFreshsales::start(state).await.expect("fake Freshsales");
    let run = SourcePipeline::start(
        "freshsales",
        format!(
            "[tenants.quay]\nhome_currency = \"EUR\"\n[tenants.quay.freshsales]\nsecret = \"{SECRET}\"\napi_url = \"{}/crm/sales\"\napi_key = \"{KEY}\"\n",
            api.base_url()
        ),
    )
    .await;
    let pipeline = &run.pipeline;
    let http = reqwest::Client::new();
    let url = format!("{}/webhooks/freshsales/quay", pipeline.collector_url);
    let post = |content_type: &'static str, secret: &'static str, body: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let response = http
                .post(url)
                .header("content-type", content_type)
                .header("x-tributary-secret", secret)
                .body(body)
                .send()
                .await
                .expect("an answer");
            (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        }
    };
    const JSON: &str = "application/json";
    // Created: the same dated change twice is one event.
    let created = format!(r#"{{"deal": {{"id": "{WON}", "updated_at": "2026-11-10T09:00:00Z"}}}}"#);
    for _ in 0..2 {
        let (status, body) = post(JSON, SECRET, created.clone()).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = post(
        "application/x-www-form-urlencoded",
        SECRET,
        format!("deal%5Bid%5D={DELETED}"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    run.wait_for_events("freshsales", 2).await;

    // Won in Freshsales, then the workflow fires with an undated body; the
    // other deal is deleted (Freshsales fires no workflow for that, so it
    // shows when its record is next read).
    api.state()
        .put("deals", deal(WON, 2, "2026-11-30T15:00:00Z"));
    api.state().remove("deals", DELETED);
    for body in [
        format!(r#"{{"freshsales_webhook": {{"deal_id": {WON}, "stage": "Won"}}}}"#),
        format!(r#"{{"deal_id": "{DELETED}"}}"#),
        format!(r#"{{"sales_activity": {{"id": "{CALL}"}}, "deal_id": "{WON}"}}"#),
    ] {
        let (status, answer) = post(JSON, SECRET, body).await;
        assert_eq!(status, 202, "{answer}");
    }
    let (status, body) = post(JSON, "not-the-secret-at-all", created.clone()).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = post(JSON, SECRET, r#"{"deal": {"id": "{{deal.id}}"}}"#.into()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("placeholder"), "{body}");

    run.wait_for_events("freshsales", 5).await;
    let activities = run
        .db
        .query(&format!(
            "SELECT kind, raw_type, subject, done, toString(done_at) AS done_at, deal_id \
             FROM tributary.current_activities FINAL WHERE source = 'freshsales' AND id = '{CALL}'"
        ))
        .await;
    assert_eq!(
        activities,
        [
            json!({"kind": "call", "raw_type": "Call", "subject": "Pricing call", "done": 1,
            "done_at": "2026-11-20 10:20:00", "deal_id": WON})
        ],
        "a logged call about the won deal"
    );
    let deals = run
        .deals(
            "freshsales",
            "title, toFloat64(amount) AS amount, currency, stage_id, status, toString(won_at) AS won, deleted",
        )
        .await;
    let won = &deals[WON];
    assert_eq!(won["status"], "won", "{deals:?}");
    assert_eq!(won["stage_id"], "2");
    assert_eq!(won["currency"], "EUR");
    assert_eq!(won["amount"], 2500.0);
    assert_eq!(won["won"], "2026-11-30 00:00:00");
    assert_eq!(deals[DELETED]["deleted"], 1, "{deals:?}");
    // The Sales operations dashboard's KPIs, as for any CRM: the deleted
    // deal is out of the pipeline; the won one took 28 days and 16 hours.
    let kpis = run.pipeline_kpis("quay").await;
    assert_eq!(number(&kpis, "open_pipeline_value"), 0.0, "{kpis}");
    assert_eq!(number(&kpis, "won_deals"), 1.0, "{kpis}");
    assert_eq!(number(&kpis, "win_rate_percent"), 100.0, "{kpis}");
    assert!(
        (number(&kpis, "velocity_days") - (28.0 + 16.0 / 24.0)).abs() < 1e-9,
        "{kpis}"
    );
    assert_eq!(kpis["home_currency"], "EUR");
    pipeline.stop();
}
