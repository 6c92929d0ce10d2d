//! Dynamics 365 webhook steps through the whole pipeline: Dataverse
//! `RemoteExecutionContext`s in at the collector (the registration's webhook
//! key, the organization check), through the enricher and the activator
//! into the canonical model, with retries and a late, older update.
#![cfg(all(feature = "kafka-broker-tests", feature = "clickhouse-tests"))]

use serde_json::{Value, json};
use tributary_tests::pipeline::{SourcePipeline, number};

const ORG: &str = "9f2a1c34-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
const KEY: &str = "webhook-key-from-the-registration";
const WON: &str = "3a5b7c9d-1e2f-4a6b-8c0d-2e4f6a8b0c1d";
const OPEN: &str = "4b6c8d0e-2f3a-4b5c-9d1e-3f5a7b9c1d2e";

fn wcf(kind: &str, value: Value) -> Value {
    json!({"__type": format!("{kind}:http://schemas.microsoft.com/xrm/2011/Contracts"), "Value": value})
}

/// An Update of an opportunity with its post image, as Dataverse posts it.
fn update(operation: &str, id: &str, stage: &str, statecode: i64, modified_ms: i64) -> Value {
    let attributes = json!([
        {"key": "name", "value": format!("Opportunity {id}")},
        {"key": "estimatedvalue", "value": wcf("Money", json!(2500.75))},
        {"key": "statecode", "value": wcf("OptionSetValue", json!(statecode))},
        {"key": "stepname", "value": stage},
        {"key": "actualclosedate", "value": "/Date(1741046400000)/"},
        {"key": "modifiedon", "value": format!("/Date({modified_ms})/")}
    ]);
    let entity = json!({
        "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
        "Attributes": attributes, "Id": id, "LogicalName": "opportunity",
        "FormattedValues": [], "KeyAttributes": [], "RelatedEntities": []
    });
    json!({
        "CorrelationId": "39499111-e689-4be4-9d3a-7f5f0a5a8e2c",
        "Depth": 1,
        "InputParameters": [{"key": "Target", "value": entity.clone()}],
        "MessageName": "Update",
        "Mode": 1,
        "OperationCreatedOn": format!("/Date({modified_ms}+0000)/"),
        "OperationId": operation,
        "OrganizationId": ORG,
        "OrganizationName": "contoso",
        "OutputParameters": [],
        "PostEntityImages": [{"key": "PostImage", "value": entity}],
        "PreEntityImages": [],
        "PrimaryEntityId": id,
        "PrimaryEntityName": "opportunity",
        "RequestId": operation,
        "SecondaryEntityName": "none",
        "Stage": 40,
        "UserId": "77dfe2c9-3c5e-4b55-a6d8-d43c1b2c6a51"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_steps_load_each_opportunity_once_at_its_latest_state() {
    let run = SourcePipeline::start("dynamics", format!(
            "[tenants.contoso]\nhome_currency = \"GBP\"\n[tenants.contoso.dynamics]\norganization_id = \"{ORG}\"\nsecret = \"{KEY}\"\ncurrency = \"GBP\"\n"
        )).await;
    let pipeline = &run.pipeline;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/webhooks/dynamics/contoso?code={KEY}",
        pipeline.collector_url
    );
    let post = |body: Value, url: String| {
        let http = http.clone();
        async move {
            let response = http.post(url).json(&body).send().await.expect("an answer");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };
    let op = |n: u32| format!("c8a1b2d3-e4f5-4a6b-9c7d-8e9f0a1b2c{n:02}");
    let created = update(&op(1), WON, "1-Qualify", 0, 1_741_000_000_000);
    // Dataverse retries on 502-504: the same context twice is one event.
    for _ in 0..2 {
        let (status, body) = post(created.clone(), url.clone()).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = post(
        update(&op(2), OPEN, "2-Develop", 0, 1_741_000_000_000),
        url.clone(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = post(
        update(&op(3), WON, "4-Close", 1, 1_741_100_000_000),
        url.clone(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // An update from before the win, delivered after it.
    let (status, body) = post(
        update(&op(4), WON, "3-Propose", 0, 1_741_050_000_000),
        url.clone(),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    let mut foreign = update(&op(5), OPEN, "2-Develop", 2, 1_741_200_000_000);
    foreign["OrganizationId"] = json!("00000000-1111-2222-3333-444444444444");
    let (status, body) = post(foreign, url.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(
        update(&op(6), OPEN, "2-Develop", 2, 1_741_200_000_000),
        format!(
            "{}/webhooks/dynamics/contoso?code=wrong",
            pipeline.collector_url
        ),
    )
    .await;
    assert_eq!(status, 401, "{body}");

    run.wait_for_events("dynamics", 4).await;
    let deals = run.deals("dynamics", "account, toFloat64(amount) AS amount, currency, stage_id, status, toString(won_at) AS won_at").await;
    assert_eq!(deals.len(), 2, "{deals:?}");
    let deal =
        |id: &str| -> &Value { deals.get(id).unwrap_or_else(|| panic!("{id} in {deals:?}")) };
    assert_eq!(
        deal(WON)["status"],
        "won",
        "the late, older update does not regress it"
    );
    assert_eq!(deal(WON)["stage_id"], "4-Close");
    assert_eq!(deal(WON)["won_at"], "2025-03-04 00:00:00");
    assert_eq!(deal(WON)["account"], ORG);
    assert_eq!(deal(WON)["currency"], "GBP");
    assert_eq!(deal(WON)["amount"], 2500.75);
    assert_eq!(deal(OPEN)["status"], "open");
    assert_eq!(deal(OPEN)["stage_id"], "2-Develop");
    // The Sales operations dashboard's KPIs, as for any CRM.
    let kpis = run.pipeline_kpis("contoso").await;
    assert_eq!(number(&kpis, "open_pipeline_value"), 2500.75, "{kpis}");
    assert_eq!(number(&kpis, "won_deals"), 1.0, "{kpis}");
    assert_eq!(number(&kpis, "lost_deals"), 0.0, "{kpis}");
    assert_eq!(kpis["home_currency"], "GBP");
    pipeline.stop();
}
