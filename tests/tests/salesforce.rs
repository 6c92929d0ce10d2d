//! Salesforce Outbound Messages through the whole pipeline: SOAP in at the
//! collector (the endpoint's secret, the org check, one event per
//! notification, the SOAP acknowledgement), through the enricher and the
//! activator into the canonical model, with Salesforce's at-least-once,
//! out-of-order delivery.
#![cfg(all(feature = "kafka-broker-tests", feature = "clickhouse-tests"))]

use serde_json::{Value, json};
use tributary_fake_apis::{FakeSalesforce, Running, SalesforceState};
use tributary_tests::pipeline::{SourcePipeline, number};

const ORG: &str = "00D5g000004ABCDEA4";
const SECRET: &str = "om-endpoint-secret";
const TOKEN: &str = "00D5g000004ABCD!rest-session";
const OWNER: &str = "0055g00000OwNeRAAA";

/// The org's REST API: its stages, the owner, and the won opportunity at
/// its latest version.
async fn fake_org(won: &str) -> Running<SalesforceState> {
    let mut state = SalesforceState::default();
    let org = state.org(TOKEN);
    for (order, (name, probability, won, closed)) in [
        ("Prospecting", 10.0, false, false),
        ("Qualification", 20.0, false, false),
        ("Negotiation", 80.0, false, false),
        ("Closed Won", 100.0, true, true),
        ("Closed Lost", 0.0, false, true),
    ]
    .into_iter()
    .enumerate()
    {
        org.put_stage(name, order as i64 + 1, probability, won, closed);
    }
    org.put(
        "User",
        json!({"Id": OWNER, "Name": "Dana Reyes", "IsActive": true}),
    );
    org.put(
        "Opportunity",
        json!({
            "Id": won, "Name": format!("Renewal {won}"), "Amount": 48000.25, "StageName": "Closed Won",
            "IsWon": true, "IsClosed": true, "IsDeleted": false, "Probability": 100,
            "CloseDate": "2025-03-04", "CreatedDate": "2025-03-01T10:00:00.000+0000",
            "LastStageChangeDate": "2025-03-04T16:30:00.000+0000",
            "LastModifiedDate": "2025-03-04T16:30:00.000+0000",
            "SystemModstamp": "2025-03-04T16:30:00.000+0000",
            "OwnerId": OWNER, "AccountId": null, "LeadSource": "Web"
        }),
    );
    FakeSalesforce::start(state).await.expect("fake Salesforce")
}

/// An Outbound Message of opportunities: (notification id, record id,
/// stage, won, closed, last modified).
fn message(org: &str, notifications: &[(&str, &str, &str, bool, bool, &str)]) -> String {
    let mut body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k5g000000XyZaAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5g000004ABCD</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5g000004ABCD</PartnerUrl>"#
    );
    for (notification, record, stage, won, closed, modified) in notifications {
        body.push_str(&format!(
            r#"
   <Notification>
    <Id>{notification}</Id>
    <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{record}</sf:Id>
     <sf:Amount>48000.25</sf:Amount>
     <sf:CloseDate>2025-03-04</sf:CloseDate>
     <sf:IsClosed>{closed}</sf:IsClosed>
     <sf:IsWon>{won}</sf:IsWon>
     <sf:LastModifiedDate>{modified}</sf:LastModifiedDate>
     <sf:Name>Renewal {record}</sf:Name>
     <sf:OwnerId>{OWNER}</sf:OwnerId>
     <sf:StageName>{stage}</sf:StageName>
    </sObject>
   </Notification>"#
        ));
    }
    body.push_str("\n  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>\n");
    body
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

async fn post(http: &reqwest::Client, url: &str, body: String) -> Answer {
    let response = http
        .post(url)
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", "\"\"")
        .body(body)
        .send()
        .await
        .expect("an answer");
    Answer {
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: response.text().await.expect("body"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_messages_load_each_opportunity_once_at_its_latest_state() {
    let (won, open) = ("0065g00000AbCdEAAV", "0065g00000AbCdFAAV");
    let api = fake_org(won).await;
    let run = SourcePipeline::start(
        "salesforce",
        format!(
            "[tenants.summit]\nhome_currency = \"EUR\"\n[tenants.summit.salesforce]\norganization_id = \"00D5g000004ABCD\"\nendpoint_secret = \"{SECRET}\"\ncurrency = \"EUR\"\ninstance_url = \"{}\"\naccess_token = \"{TOKEN}\"\n",
            api.base_url()
        ),
    )
    .await;
    let pipeline = &run.pipeline;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/webhooks/salesforce/summit?secret={SECRET}",
        pipeline.collector_url
    );

    // Created, then the same message again (Salesforce retries until acknowledged).
    let first = message(
        ORG,
        &[
            (
                "04l5g000000N0001AA",
                won,
                "Prospecting",
                false,
                false,
                "2025-03-01T10:00:00.000Z",
            ),
            (
                "04l5g000000N0002AA",
                open,
                "Qualification",
                false,
                false,
                "2025-03-01T10:00:00.000Z",
            ),
        ],
    );
    for _ in 0..2 {
        let answer = post(&http, &url, first.clone()).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(
            answer.content_type.starts_with("text/xml"),
            "{}",
            answer.content_type
        );
        assert!(answer.body.contains("<Ack>true</Ack>"), "{}", answer.body);
    }
    // Won; then a message from before it, delivered late.
    let answer = post(
        &http,
        &url,
        message(
            ORG,
            &[(
                "04l5g000000N0003AA",
                won,
                "Closed Won",
                true,
                true,
                "2025-03-04T16:30:00.000Z",
            )],
        ),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = post(
        &http,
        &url,
        message(
            ORG,
            &[(
                "04l5g000000N0004AA",
                won,
                "Negotiation",
                false,
                false,
                "2025-03-02T09:00:00.000Z",
            )],
        ),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // Refused, in SOAP, and nothing stored.
    let foreign = post(
        &http,
        &url,
        message(
            "00D000000000001AAA",
            &[(
                "04l5g000000N0005AA",
                open,
                "Closed Lost",
                false,
                true,
                "2025-03-05T00:00:00.000Z",
            )],
        ),
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    assert!(
        foreign
            .body
            .contains("<faultcode>soapenv:Client</faultcode>"),
        "{}",
        foreign.body
    );
    let wrong_secret = post(
        &http,
        &format!(
            "{}/webhooks/salesforce/summit?secret=nope",
            pipeline.collector_url
        ),
        first.clone(),
    )
    .await;
    assert_eq!(wrong_secret.status, 401, "{}", wrong_secret.body);
    let malformed = post(&http, &url, "<soapenv:Envelope><soapenv:Body>".into()).await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert!(
        malformed.body.contains("malformed_xml"),
        "{}",
        malformed.body
    );

    // A task's message: an activity about the won opportunity.
    let envelope = &first[..first.find("\n   <Notification>").expect("a notification")];
    let task = format!(
        r#"{envelope}
   <Notification><Id>04l5g000000N0006AA</Id><sObject xsi:type="sf:Task" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>00T5g00000TaSkAAAV</sf:Id><sf:Subject>Pricing call</sf:Subject><sf:TaskSubtype>Call</sf:TaskSubtype><sf:IsClosed>true</sf:IsClosed><sf:CompletedDateTime>2025-03-03T11:00:00.000Z</sf:CompletedDateTime><sf:WhatId>{won}</sf:WhatId><sf:OwnerId>{OWNER}</sf:OwnerId><sf:LastModifiedDate>2025-03-03T11:00:00.000Z</sf:LastModifiedDate></sObject></Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>
"#
    );
    let answer = post(&http, &url, task).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // Five distinct notifications reach ClickHouse, each once.
    run.wait_for_events("salesforce", 5).await;
    let activities = run
        .db
        .query("SELECT kind, subject, done, toString(done_at) AS done_at, deal_id FROM tributary.current_activities FINAL WHERE source = 'salesforce'")
        .await;
    assert_eq!(
        activities,
        [json!({"kind": "call", "subject": "Pricing call", "done": 1,
            "done_at": "2025-03-03 11:00:00", "deal_id": won})]
    );
    let deals = run.deals("salesforce", "account, title, toFloat64(amount) AS amount, currency, stage_id, status, toString(won_at) AS won_at").await;
    assert_eq!(deals.len(), 2, "{deals:?}");
    let deal =
        |id: &str| -> &Value { deals.get(id).unwrap_or_else(|| panic!("{id} in {deals:?}")) };
    assert_eq!(
        deal(won)["status"],
        "won",
        "the late, older message does not regress it"
    );
    assert_eq!(deal(won)["stage_id"], "Closed Won");
    assert_eq!(deal(won)["won_at"], "2025-03-04 00:00:00");
    assert_eq!(deal(won)["account"], ORG);
    assert_eq!(deal(won)["currency"], "EUR");
    assert_eq!(deal(won)["amount"], 48000.25);
    assert_eq!(deal(open)["status"], "open");
    assert_eq!(deal(open)["stage_id"], "Qualification");
    // The Sales operations dashboard's KPIs, as for any CRM: the open
    // opportunity weighted by its stage's default probability (20 %).
    let kpis = run.pipeline_kpis("summit").await;
    assert_eq!(number(&kpis, "open_pipeline_value"), 48000.25, "{kpis}");
    assert!(
        (number(&kpis, "weighted_forecast") - 9600.05).abs() < 1e-6,
        "{kpis}"
    );
    assert_eq!(number(&kpis, "won_deals"), 1.0, "{kpis}");
    assert_eq!(number(&kpis, "lost_deals"), 0.0, "{kpis}");
    assert_eq!(kpis["home_currency"], "EUR");
    // Stages in the org's order with their default probabilities, read once
    // from the REST API; the owner by name. The won opportunity's earlier
    // messages (Prospecting, Negotiation) lacked fields, so the REST read
    // filled them in with the record's newer version: Closed Won.
    let versions = run
        .db
        .query(&format!("SELECT count() AS events FROM tributary.event_log FINAL WHERE source = 'salesforce' AND remote_id = '{won}' AND version_micro = 1741105800000000"))
        .await;
    assert_eq!(versions[0]["events"], 3, "{versions:?}");
    let stages = run.db
        .query("SELECT name, outcome, display_order, probability FROM tributary.stages FINAL WHERE source = 'salesforce' ORDER BY display_order")
        .await;
    let described: Vec<(String, String, i64, f64)> = stages
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["outcome"].as_str().unwrap_or_default().to_owned(),
                s["display_order"].as_i64().unwrap_or(-1),
                s["probability"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            ("Qualification".to_owned(), "open".to_owned(), 2, 20.0),
            ("Closed Won".to_owned(), "won".to_owned(), 4, 100.0),
        ],
        "{stages:?}"
    );
    let owners = run
        .db
        .query("SELECT id, name FROM tributary.users_resolved WHERE source = 'salesforce'")
        .await;
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0]["id"], OWNER);
    assert_eq!(owners[0]["name"], "Dana Reyes");
    let complete = run
        .db
        .query("SELECT count() AS partial FROM tributary.event_log WHERE source = 'salesforce' AND enrichment_status != 'complete'")
        .await;
    assert_eq!(complete[0]["partial"], 0, "{complete:?}");
    {
        let state = api.state();
        assert_eq!(
            state.calls_to("/services/data/v62.0/query"),
            1,
            "stages are read once"
        );
        assert_eq!(
            state.calls_to("/services/data/v62.0/sobjects/User/"),
            1,
            "the owner once"
        );
    }
    pipeline.stop();
}

/// Change Data Capture: the collector subscribes to the fake Pub/Sub API,
/// and the changes load as deal changes; a collector killed and restarted
/// resumes from its checkpoint, reading nothing twice and skipping nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_events_load_and_a_restarted_collector_resumes_from_its_checkpoint() {
    use apache_avro::types::Value as Avro;
    use tributary_fake_apis::salesforce_pubsub::{
        Change, FakePubSub, OPPORTUNITY_CHANGE_EVENT_SCHEMA, OPPORTUNITY_SCHEMA_ID, PubSubState,
        encode,
    };
    use tributary_salesforce_pubsub::ReplayPreset;

    const CHANNEL: &str = "/data/OpportunityChangeEvent";
    let opportunity = "0065g00000CdCeEAAV";
    let api = fake_org(opportunity).await;
    let mut state = PubSubState {
        keepalive: std::time::Duration::from_millis(500),
        ..PubSubState::default()
    };
    state.tokens.insert(TOKEN.into());
    let pubsub = FakePubSub::start(state).await.expect("fake Pub/Sub");
    let schema = apache_avro::Schema::parse_str(OPPORTUNITY_CHANGE_EVENT_SCHEMA).expect("schema");
    let publish = |change: Change| {
        pubsub.publish(CHANNEL, OPPORTUNITY_SCHEMA_ID, encode(&schema, &change));
    };
    let run = SourcePipeline::start(
        "salesforce_cdc",
        format!(
            "[tenants.summit.salesforce]\norganization_id = \"00D5g000004ABCD\"\nendpoint_secret = \"{SECRET}\"\ncurrency = \"EUR\"\ninstance_url = \"{}\"\naccess_token = \"{TOKEN}\"\npubsub_url = \"{}\"\nchange_events = [\"{CHANNEL}\"]\nchange_events_start = \"earliest\"\n",
            api.base_url(),
            pubsub.url()
        ),
    )
    .await;
    publish(Change {
        change_type: "CREATE",
        record_ids: vec![opportunity.into()],
        commit_timestamp_ms: 1_741_000_000_000,
        fields: vec![
            ("Name", Some(Avro::String("Expansion".into()))),
            ("Amount", Some(Avro::Double(12_000.0))),
            ("StageName", Some(Avro::String("Prospecting".into()))),
            ("IsWon", Some(Avro::Boolean(false))),
            ("IsClosed", Some(Avro::Boolean(false))),
            ("CloseDate", Some(Avro::Int(20_151))),
            ("OwnerId", Some(Avro::String(OWNER.into()))),
            ("CreatedDate", Some(Avro::Long(1_741_000_000_000))),
        ],
    });
    publish(Change {
        change_type: "UPDATE",
        record_ids: vec![opportunity.into()],
        commit_timestamp_ms: 1_741_105_800_000,
        fields: vec![
            ("StageName", Some(Avro::String("Closed Won".into()))),
            ("IsWon", Some(Avro::Boolean(true))),
            ("IsClosed", Some(Avro::Boolean(true))),
        ],
    });
    run.wait_for_events("salesforce", 2).await;
    let deals = run
        .deals("salesforce", "title, toFloat64(amount) AS amount, currency, stage_id, status, toString(won_at) AS won_at")
        .await;
    let deal = &deals[opportunity];
    assert_eq!(deal["status"], "won", "{deals:?}");
    assert_eq!(
        deal["title"], "Expansion",
        "kept from the creation: the update did not blank it"
    );
    assert_eq!(deal["amount"], 12_000.0);
    assert_eq!(deal["won_at"], "2025-03-04 00:00:00");

    // Killed and restarted: the next change arrives once, nothing again.
    run.pipeline
        .kill_and_restart(
            tributary_demo::Stage::Collector,
            std::time::Duration::from_secs(60),
        )
        .await
        .expect("the collector restarts");
    publish(Change {
        change_type: "UPDATE",
        record_ids: vec![opportunity.into()],
        commit_timestamp_ms: 1_741_106_000_000,
        fields: vec![("Amount", Some(Avro::Double(15_500.0)))],
    });
    run.wait_for_events("salesforce", 3).await;
    let deals = run
        .deals("salesforce", "toFloat64(amount) AS amount, status")
        .await;
    assert_eq!(deals[opportunity]["amount"], 15_500.0);
    assert_eq!(deals[opportunity]["status"], "won");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let loaded = run
        .db
        .query("SELECT count() AS events, uniqExact(event_id) AS distinct_events FROM tributary.event_log FINAL WHERE source = 'salesforce'")
        .await;
    assert_eq!(loaded[0]["events"], 3, "{loaded:?}");
    let state = pubsub.state();
    let presets: Vec<ReplayPreset> = state.subscriptions.iter().map(|s| s.preset).collect();
    assert_eq!(presets.first(), Some(&ReplayPreset::Earliest));
    assert_eq!(presets.last(), Some(&ReplayPreset::Custom), "{presets:?}");
    run.pipeline.stop();
}
