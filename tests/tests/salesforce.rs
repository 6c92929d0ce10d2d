//! Salesforce Outbound Messages through the whole pipeline: SOAP in at the
//! collector (the endpoint's secret, the org check, one event per
//! notification, the SOAP acknowledgement), through the enricher and the
//! activator into the canonical model, with Salesforce's at-least-once,
//! out-of-order delivery.
#![cfg(all(feature = "kafka-broker-tests", feature = "clickhouse-tests"))]

use serde_json::Value;
use tributary_tests::pipeline::SourcePipeline;

const ORG: &str = "00D5g000004ABCDEA4";
const SECRET: &str = "om-endpoint-secret";

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
    let run = SourcePipeline::start("salesforce", format!(
            "[tenants.summit.salesforce]\norganization_id = \"00D5g000004ABCD\"\nendpoint_secret = \"{SECRET}\"\ncurrency = \"EUR\"\n"
        )).await;
    let pipeline = &run.pipeline;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/webhooks/salesforce/summit?secret={SECRET}",
        pipeline.collector_url
    );
    let (won, open) = ("0065g00000AbCdEAAV", "0065g00000AbCdFAAV");

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

    // Four distinct notifications reach ClickHouse, each once.
    run.wait_for_events("salesforce", 4).await;
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
    let stages = run.db
        .query("SELECT name, outcome FROM tributary.stages FINAL WHERE source = 'salesforce' ORDER BY name")
        .await;
    let won_stage = stages
        .iter()
        .find(|s| s["name"] == "Closed Won")
        .expect("Closed Won stage");
    assert_eq!(won_stage["outcome"], "won", "{stages:?}");
    pipeline.stop();
}
