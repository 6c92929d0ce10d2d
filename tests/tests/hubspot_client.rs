//! The fake HubSpot API speaks HubSpot's real shapes: HubSpot's official
//! Python client (`hubspot-api-client`, in the venv `deploy/local/up.sh`
//! installs at `<state>/hubspot-client`) reads deals, contacts, pipelines,
//! owners, properties and associations from it, waits out its 429s, and
//! parses its errors (`tests/scripts/hubspot_client.py` prints what it got).
#![cfg(feature = "client-library-tests")]

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use tributary_fake_apis::hubspot::{
    FakeHubSpot, HubSpotState, SAMPLE_START_MS, iso_millis, sample_portal,
};
use tributary_fake_apis::{Call, Storm};

const TOKEN: &str = "pat-na1-11111111-2222-3333-4444-555555555555";

fn client_python() -> PathBuf {
    let state = std::env::var("TRIBUTARY_LOCAL_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.local")));
    state.join("hubspot-client/bin/python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspots_official_python_client_reads_the_fake() {
    let python = client_python();
    assert!(
        python.exists(),
        "{} is missing: run deploy/local/up.sh, which installs HubSpot's official Python client into <state>/hubspot-client",
        python.display()
    );
    let mut state = HubSpotState::with_portal(TOKEN, sample_portal());
    state.behaviour.storm = Some(Storm {
        count: 2,
        retry_after_seconds: 1,
    });
    let server = FakeHubSpot::start(state).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/hubspot_client.py");
    let base_url = server.base_url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(script)
            .arg(base_url)
            .arg(TOKEN)
            .output()
    })
    .await
    .unwrap()
    .expect("running the client script");
    assert!(
        output.status.success(),
        "the client script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the script printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let day = |n: i64| iso_millis(SAMPLE_START_MS + n * 86_400_000).replace(".000Z", "+00:00");

    // A client that never retries sees HubSpot's 429; the default client
    // (urllib3's default retries) waits out the second as Retry-After says.
    let limited = &report["rate_limited"];
    assert_eq!(limited["status"], 429, "{report:#}");
    assert_eq!(limited["body"]["errorType"], "RATE_LIMIT");
    assert_eq!(limited["body"]["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(limited["headers"]["retry-after"], "1");
    assert_eq!(limited["headers"]["x-hubspot-ratelimit-max"], "190");
    assert!(report["retried_seconds"].as_f64().unwrap() >= 0.9);
    let statuses: Vec<u16> = server
        .state()
        .calls
        .iter()
        .map(|c: &Call| c.status)
        .collect();
    assert_eq!(statuses[..3], [429, 429, 200]);

    let deal = &report["deal"];
    assert_eq!(deal["id"], "101");
    assert_eq!(
        deal["properties"],
        json!({
            "dealname": "Acme renewal", "amount": "13000", "deal_currency_code": "EUR",
            "dealstage": "1103", "pipeline": "811234", "hs_is_closed_won": "true", "closedate": null,
            "hs_object_id": "101", "createdate": iso_millis(SAMPLE_START_MS),
            "hs_lastmodifieddate": iso_millis(SAMPLE_START_MS + 2 * 86_400_000),
        })
    );
    assert_eq!(deal["created_at"], day(0));
    assert_eq!(deal["updated_at"], day(2));
    assert_eq!(deal["archived"], false);
    assert_eq!(
        deal["dealstage_history"],
        json!([
            {"value": "1103", "timestamp": day(2), "source_type": "API", "source_id": "4242"},
            {"value": "1102", "timestamp": day(1), "source_type": "CRM_UI", "source_id": "userId:9001"},
            {"value": "1101", "timestamp": day(0), "source_type": "CRM_UI", "source_id": "userId:9001"},
        ])
    );
    assert_eq!(
        deal["associations"],
        json!({
            "contacts": [{"id": "201", "type": "deal_to_contact"}],
            "companies": [
                {"id": "301", "type": "deal_to_company"},
                {"id": "301", "type": "deal_to_company_unlabeled"},
            ],
        })
    );

    // A batch read with an unknown id: the 207 model, results and errors parsed.
    let contacts = &report["contacts"];
    assert_eq!(
        contacts["model"],
        "BatchResponseSimplePublicObjectWithErrors"
    );
    assert_eq!(contacts["status"], "COMPLETE");
    assert_eq!(
        contacts["results"],
        json!([
            {"id": "201", "email": "marie@acme.example", "created_at": day(0)},
            {"id": "202", "email": "pierre@acme.example", "created_at": day(0)},
        ])
    );
    assert_eq!(contacts["num_errors"], 1);
    assert_eq!(contacts["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(contacts["errors"][0]["context"], json!({"ids": ["999"]}));

    // Paging: the archived deal 103 is not listed.
    assert_eq!(report["paged_deals"], json!(["101", "102"]));
    assert_eq!(report["all_deals"], json!(["101", "102"]));

    let pipelines = report["pipelines"].as_array().unwrap();
    assert_eq!(pipelines.len(), 2);
    assert_eq!(pipelines[0]["id"], "default");
    assert_eq!(pipelines[0]["stages"].as_array().unwrap().len(), 7);
    assert_eq!(
        pipelines[1]["stages"],
        json!([
            {"id": "1101", "label": "Discovery", "metadata": {"isClosed": "false", "probability": "0.1"}},
            {"id": "1102", "label": "Negotiation", "metadata": {"isClosed": "false", "probability": "0.65"}},
            {"id": "1103", "label": "Signed", "metadata": {"isClosed": "true", "probability": "1.0"}},
            {"id": "1104", "label": "Lost", "metadata": {"isClosed": "true", "probability": "0.0"}},
        ])
    );

    assert_eq!(
        report["owners"],
        json!([
            {"id": "501", "email": "ada@example.com", "first_name": "Ada", "user_id": 9001},
            {"id": "502", "email": "alan@example.com", "first_name": "Alan", "user_id": 9002},
        ])
    );
    assert_eq!(report["owner_by_user_id"], "502");

    let properties = &report["deal_properties"];
    assert_eq!(
        properties["lead_source"],
        json!({"type": "enumeration", "field_type": "select", "options": ["web", "event"]})
    );
    assert_eq!(
        properties["hs_is_closed_won"]["type"], "bool",
        "{properties:#}"
    );
    let stages = properties["dealstage"]["options"].as_array().unwrap();
    assert!(stages.contains(&json!("closedwon")) && stages.contains(&json!("1103")));

    assert_eq!(
        report["deal_companies"],
        json!({
            "model": "BatchResponsePublicAssociationMultiWithLabelWithErrors",
            "results": [{"from": "101", "to": [{"id": "301", "types": [
                [5, "HUBSPOT_DEFINED", "Primary"],
                [341, "HUBSPOT_DEFINED", null],
            ]}]}],
            "errors": ["No company is associated with deal 102."],
        })
    );

    let missing = &report["missing_deal"];
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["body"]["category"], "OBJECT_NOT_FOUND");
    let unauthorized = &report["unauthorized"];
    assert_eq!(unauthorized["status"], 401);
    assert_eq!(unauthorized["body"]["category"], "INVALID_AUTHENTICATION");
}
