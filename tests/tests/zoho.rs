//! Zoho CRM notifications through the whole pipeline: a channel's
//! notifications in at the collector (its token and channel id), one event
//! per record id with its 19 digits intact, into the canonical model and
//! the Sales operations dashboard's KPIs and stage-to-stage conversion.
#![cfg(all(feature = "kafka-broker-tests", feature = "clickhouse-tests"))]

use std::collections::HashSet;

use serde_json::{Value, json};
use tributary_fake_apis::zoho::{FakeZoho, ZohoState};
use tributary_tests::pipeline::{SourcePipeline, number};

const CHANNEL: &str = "1000000068001";
const TOKEN: &str = "channel-token";
const BIG: &str = "5725767000003000010";
const SMALL: &str = "5725767000003000011";

fn notification(time: u64, operation: &str, values: &str) -> String {
    // The second id is a JSON number: it must keep every digit.
    format!(
        r#"{{"server_time":{time},"module":"Deals","operation":"{operation}","ids":["{BIG}",{SMALL}],"affected_values":[{values}],"channel_id":{CHANNEL},"token":"{TOKEN}","resource_uri":"https://www.zohoapis.com/crm/v2/Deals","query_params":{{}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_load_each_record_once_with_its_ids_intact() {
    // The CRM API, for the stages' definitions: every stage these deals
    // reach is open.
    let api = FakeZoho::start(ZohoState {
        tokens: HashSet::from(["1000.api-token".to_owned()]),
        stages: ["Qualification", "Proposal", "Negotiation", "Closed Won"]
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                json!({"display_value": stage, "actual_value": stage, "sequence_number": i + 1,
                "forecast_type": if *stage == "Closed Won" { "Closed Won" } else { "Open" }})
            })
            .collect(),
        ..ZohoState::default()
    })
    .await
    .expect("fake Zoho");
    let run = SourcePipeline::start("zoho", format!(
            "[tenants.orbit]\nhome_currency = \"INR\"\n[tenants.orbit.zoho]\norg_id = \"60012345678\"\nchannel_ids = [\"{CHANNEL}\"]\ntoken = \"{TOKEN}\"\ncurrency = \"INR\"\napi_domain = \"{}\"\naccess_token = \"1000.api-token\"\n",
            api.base_url()
        )).await;
    let pipeline = &run.pipeline;
    let http = reqwest::Client::new();
    let url = format!("{}/webhooks/zoho/orbit", pipeline.collector_url);
    let post = |body: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let response = http
                .post(url)
                .header("content-type", "application/json")
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
    let created = notification(
        1_718_100_000_000,
        "insert",
        &format!(
            r#"{{"record_id":"{BIG}","values":{{"Deal_Name":"Big","Stage":"Qualification","Amount":900000.5}}}},{{"record_id":{SMALL},"values":{{"Deal_Name":"Small","Stage":"Qualification","Amount":10}}}}"#
        ),
    );
    for _ in 0..2 {
        let (status, body) = post(created.clone()).await;
        assert_eq!(status, 202, "{body}");
    }
    let moved = notification(
        1_718_200_000_000,
        "update",
        &format!(
            r#"{{"record_id":"{BIG}","values":{{"Stage":"Negotiation"}}}},{{"record_id":{SMALL},"values":{{"Stage":"Proposal"}}}}"#
        ),
    );
    let (status, body) = post(moved).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = post(created.replace(TOKEN, "stolen")).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = post(created.replace("\"Deals\"", "\"Invoices\"")).await;
    assert_eq!(status, 400, "{body}");

    run.wait_for_events("zoho", 4).await;
    let deals = run
        .deals(
            "zoho",
            "title, toFloat64(amount) AS amount, currency, stage_id",
        )
        .await;
    assert_eq!(deals.len(), 2, "{deals:?}");
    let deal =
        |id: &str| -> &Value { deals.get(id).unwrap_or_else(|| panic!("{id} in {deals:?}")) };
    assert_eq!(deal(BIG)["stage_id"], "Negotiation");
    assert_eq!(
        deal(BIG)["title"],
        "Big",
        "an update of the stage keeps the name"
    );
    assert_eq!(deal(BIG)["amount"], 900000.5);
    assert_eq!(deal(BIG)["currency"], "INR");
    assert_eq!(deal(SMALL)["stage_id"], "Proposal");
    // The Sales operations dashboard's KPIs, as for any CRM: both deals open
    // by their stages' forecast type.
    let kpis = run.pipeline_kpis("orbit").await;
    assert_eq!(number(&kpis, "open_pipeline_value"), 900010.5, "{kpis}");
    assert_eq!(number(&kpis, "won_deals"), 0.0, "{kpis}");
    assert_eq!(kpis["home_currency"], "INR");
    // Stage-to-stage conversion: each deal entered its first stage at its
    // insert and its next at the update that moved it.
    let conversion: Vec<(String, f64, f64)> = run
        .panel("orbit", "Stage-to-stage conversion")
        .await
        .iter()
        .map(|row| {
            (
                row["stage_name"].as_str().unwrap_or_default().to_owned(),
                number(row, "entered"),
                number(row, "advanced"),
            )
        })
        .collect();
    assert_eq!(
        conversion,
        [
            ("Qualification".to_owned(), 2.0, 2.0),
            ("Proposal".to_owned(), 1.0, 0.0),
            ("Negotiation".to_owned(), 1.0, 0.0),
        ]
    );
    assert_eq!(
        api.state().calls_to("/crm/v8/settings/fields"),
        1,
        "the stages read once"
    );
    pipeline.stop();
}
