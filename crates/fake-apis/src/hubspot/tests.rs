use serde_json::{Value, json};

use super::*;
use crate::Storm;

const TOKEN: &str = "pat-na1-test";
const DAY_MS: i64 = 86_400_000;
const T0: i64 = SAMPLE_START_MS;

async fn start(state: HubSpotState) -> Running<HubSpotState> {
    FakeHubSpot::start(state).await.unwrap()
}

async fn started() -> Running<HubSpotState> {
    start(HubSpotState::with_portal(TOKEN, sample_portal())).await
}

async fn get(server: &Running<HubSpotState>, path: &str) -> (u16, HeaderMap, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn post(server: &Running<HubSpotState>, path: &str, body: Value) -> (u16, HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn answer(response: reqwest::Response) -> (u16, HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_deal_comes_with_string_properties_history_newest_first_and_associations() {
    let server = started().await;
    let (status, headers, deal) = get(
        &server,
        "/crm/v3/objects/deals/101?properties=dealname,amount,dealstage,hs_is_closed_won,closedate,lead_source,no_such_property&propertiesWithHistory=dealstage&associations=contacts&associations=companies,calls",
    )
    .await;
    assert_eq!(status, 200, "{deal}");
    assert_eq!(deal["id"], "101");
    let properties = &deal["properties"];
    assert_eq!(properties["dealname"], "Acme renewal");
    assert_eq!(properties["amount"], "13000");
    assert_eq!(properties["dealstage"], "1103");
    // Calculated from the closed, probability-1 stage; a string, as HubSpot sends booleans.
    assert_eq!(properties["hs_is_closed_won"], "true");
    assert_eq!(properties["hs_object_id"], "101");
    assert_eq!(properties["createdate"], "2025-03-01T00:00:00.000Z");
    assert_eq!(
        properties["hs_lastmodifieddate"],
        "2025-03-03T00:00:00.000Z"
    );
    // Defined but never set: null. Unknown: left out.
    assert_eq!(properties["closedate"], Value::Null);
    assert_eq!(properties["lead_source"], Value::Null);
    assert!(properties.get("no_such_property").is_none());
    assert_eq!(deal["createdAt"], "2025-03-01T00:00:00.000Z");
    assert_eq!(deal["updatedAt"], "2025-03-03T00:00:00.000Z");
    assert_eq!(deal["archived"], false);
    assert!(deal.get("archivedAt").is_none());

    let history = deal["propertiesWithHistory"]["dealstage"]
        .as_array()
        .unwrap();
    let values: Vec<&str> = history
        .iter()
        .map(|v| v["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["1103", "1102", "1101"]);
    assert_eq!(history[0]["timestamp"], "2025-03-03T00:00:00.000Z");
    assert_eq!(history[0]["sourceType"], "API");
    assert_eq!(history[0]["sourceId"], "4242");
    assert_eq!(history[2]["sourceType"], "CRM_UI");
    assert_eq!(history[2]["sourceId"], "userId:9001");
    assert_eq!(history[2]["updatedByUserId"], 9001);

    let associations = &deal["associations"];
    assert_eq!(
        associations["contacts"]["results"],
        json!([{"id": "201", "type": "deal_to_contact"}])
    );
    // The primary company shows twice, labeled and unlabeled, as HubSpot lists it.
    assert_eq!(
        associations["companies"]["results"],
        json!([
            {"id": "301", "type": "deal_to_company"},
            {"id": "301", "type": "deal_to_company_unlabeled"}
        ])
    );
    assert_eq!(
        associations["calls"]["results"],
        json!([{"id": "701", "type": "deal_to_call"}])
    );

    // A private app's rate-limit headers on every answer.
    assert_eq!(header(&headers, "x-hubspot-ratelimit-max"), Some("190"));
    assert_eq!(
        header(&headers, "x-hubspot-ratelimit-remaining"),
        Some("189")
    );
    assert_eq!(
        header(&headers, "x-hubspot-ratelimit-interval-milliseconds"),
        Some("10000")
    );
    assert_eq!(
        header(&headers, "x-hubspot-ratelimit-daily"),
        Some("625000")
    );
    assert_eq!(
        header(&headers, "x-hubspot-ratelimit-daily-remaining"),
        Some("624999")
    );
    assert!(header(&headers, "x-hubspot-correlation-id").is_some());
}

#[tokio::test]
async fn default_properties_type_ids_and_unknown_types() {
    let server = started().await;
    let (status, _, deal) = get(&server, "/crm/v3/objects/0-3/101").await;
    assert_eq!(status, 200);
    let mut names: Vec<&str> = deal["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline"
        ]
    );
    assert!(deal.get("associations").is_none());
    assert!(deal.get("propertiesWithHistory").is_none());
    let (status, _, contact) = get(&server, "/crm/v3/objects/contact/201").await;
    assert_eq!(status, 200);
    assert_eq!(contact["properties"]["email"], "marie@acme.example");
    assert_eq!(contact["properties"]["lastname"], Value::Null);
    assert_eq!(
        contact["properties"]["lastmodifieddate"],
        "2025-03-01T00:00:00.000Z"
    );

    let (status, _, body) = get(&server, "/crm/v3/objects/widgets/1").await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert_eq!(body["message"], "Unable to infer object type from: widgets");

    // By another unique property.
    let (status, _, contact) = get(
        &server,
        "/crm/v3/objects/contacts/pierre@acme.example?idProperty=email",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(contact["id"], "202");
}

#[tokio::test]
async fn unknown_and_archived_records_are_404_until_asked_for_archived() {
    let mut portal = sample_portal();
    portal.archive(ObjectType::Deals, 101, T0 + 5 * DAY_MS);
    let server = start(HubSpotState::with_portal(TOKEN, portal)).await;

    let (status, _, body) = get(&server, "/crm/v3/objects/deals/999").await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["context"], json!({"id": ["999"]}));
    assert!(body["correlationId"].as_str().is_some());

    let (status, _, _) = get(&server, "/crm/v3/objects/deals/101").await;
    assert_eq!(status, 404);
    let (status, _, deal) = get(
        &server,
        "/crm/v3/objects/deals/101?archived=true&associations=contacts",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(deal["archived"], true);
    assert_eq!(deal["archivedAt"], "2025-03-06T00:00:00.000Z");
    // Archiving moves neither updatedAt nor the last-modified property.
    assert_eq!(deal["updatedAt"], "2025-03-03T00:00:00.000Z");
    assert_eq!(
        deal["properties"]["hs_lastmodifieddate"],
        "2025-03-03T00:00:00.000Z"
    );
    assert!(deal.get("associations").is_none());

    server
        .state()
        .portal(TOKEN)
        .restore(ObjectType::Deals, 101, T0 + 6 * DAY_MS);
    let (status, _, deal) = get(&server, "/crm/v3/objects/deals/101").await;
    assert_eq!(status, 200);
    assert_eq!(deal["archived"], false);
    assert_eq!(deal["updatedAt"], "2025-03-07T00:00:00.000Z");
}

#[tokio::test]
async fn batch_read_answers_207_with_the_ids_it_cannot_find() {
    let server = started().await;
    let (status, _, body) = post(
        &server,
        "/crm/v3/objects/contacts/batch/read",
        json!({"properties": ["email", "firstname"], "propertiesWithHistory": [], "inputs": [{"id": "201"}, {"id": "202"}, {"id": "201"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "COMPLETE");
    let ids: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["201", "202"]);
    assert_eq!(
        body["results"][1]["properties"]["email"],
        "pierre@acme.example"
    );
    assert!(body.get("errors").is_none());
    assert!(body["startedAt"].as_str().is_some() && body["completedAt"].as_str().is_some());

    let (status, _, body) = post(
        &server,
        "/crm/v3/objects/contacts/batch/read",
        json!({"properties": ["email"], "inputs": [{"id": "201"}, {"id": "998"}, {"id": "999"}]}),
    )
    .await;
    assert_eq!(status, 207);
    assert_eq!(body["results"].as_array().unwrap().len(), 1);
    assert_eq!(body["numErrors"], 1);
    assert_eq!(
        body["errors"],
        json!([{
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
            "context": {"ids": ["998", "999"]},
        }])
    );

    let inputs: Vec<Value> = (0..101).map(|i| json!({"id": i.to_string()})).collect();
    let (status, _, body) = post(
        &server,
        "/crm/v3/objects/contacts/batch/read",
        json!({"properties": ["email"], "inputs": inputs}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert_eq!(
        body["message"],
        "The maximum number of inputs supported in a batch is 100. Please reduce the number of items and try again"
    );
    let inputs: Vec<Value> = (0..51).map(|i| json!({"id": i.to_string()})).collect();
    let (status, _, body) = post(
        &server,
        "/crm/v3/objects/deals/batch/read",
        json!({"properties": [], "propertiesWithHistory": ["dealstage"], "inputs": inputs}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("property histories is 50")
    );

    let (status, _, body) = post(&server, "/crm/v3/objects/deals/batch/read", json!("nope")).await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn listing_pages_with_after_until_no_paging_is_left() {
    let mut portal = HubSpotPortal::new("1");
    for id in [5, 3, 11, 7, 1] {
        portal.set(
            ObjectType::Deals,
            id,
            T0,
            &[("dealname", "d")],
            &ChangeSource::api(1),
        );
    }
    portal.archive(ObjectType::Deals, 7, T0 + 1);
    let server = start(HubSpotState::with_portal(TOKEN, portal)).await;
    let mut seen = Vec::new();
    let mut path = "/crm/v3/objects/deals?limit=2".to_owned();
    loop {
        let (status, _, page) = get(&server, &path).await;
        assert_eq!(status, 200);
        for result in page["results"].as_array().unwrap() {
            seen.push(result["id"].as_str().unwrap().to_owned());
        }
        match page["paging"]["next"]["after"].as_str() {
            Some(after) => path = format!("/crm/v3/objects/deals?limit=2&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, ["1", "3", "5", "11"]);
    let (_, _, archived) = get(&server, "/crm/v3/objects/deals?archived=true").await;
    assert_eq!(archived["results"][0]["id"], "7");
    assert_eq!(archived["results"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn associations_v4_batch_read_lists_types_and_207s_the_unassociated() {
    let server = started().await;
    let (status, _, body) = post(
        &server,
        "/crm/v4/associations/deals/companies/batch/read",
        json!({"inputs": [{"id": "101"}, {"id": "102"}]}),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(
        body["results"],
        json!([{
            "from": {"id": "101"},
            "to": [{"toObjectId": 301, "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"},
                {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": null},
            ]}],
        }])
    );
    assert_eq!(body["numErrors"], 1);
    assert_eq!(
        body["errors"][0]["subCategory"],
        "crm.associations.NO_ASSOCIATIONS_FOUND"
    );
    assert_eq!(
        body["errors"][0]["message"],
        "No company is associated with deal 102."
    );

    // Associations exist both ways.
    let (status, _, body) = post(
        &server,
        "/crm/v4/associations/companies/deals/batch/read",
        json!({"inputs": [{"id": "301"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["to"][0]["toObjectId"], 101);
    let types: Vec<u64> = body["results"][0]["to"][0]["associationTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["typeId"].as_u64().unwrap())
        .collect();
    assert_eq!(types, [6, 342]);
    let (status, _, body) = post(
        &server,
        "/crm/v4/associations/calls/deals/batch/read",
        json!({"inputs": [{"id": "701"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["results"][0]["to"][0]["associationTypes"][0]["typeId"],
        206
    );
}

#[tokio::test]
async fn pipelines_owners_and_properties() {
    let server = started().await;
    let (status, _, body) = get(&server, "/crm/v3/pipelines/deals").await;
    assert_eq!(status, 200);
    let pipelines = body["results"].as_array().unwrap();
    assert_eq!(pipelines.len(), 2);
    assert_eq!(pipelines[0]["id"], "default");
    let enterprise = &pipelines[1];
    assert_eq!(enterprise["label"], "Enterprise");
    assert_eq!(
        enterprise["stages"][1]["metadata"],
        json!({"isClosed": "false", "probability": "0.65"})
    );
    assert_eq!(
        enterprise["stages"][2]["metadata"],
        json!({"isClosed": "true", "probability": "1.0"})
    );
    assert_eq!(
        enterprise["stages"][3]["metadata"],
        json!({"isClosed": "true", "probability": "0.0"})
    );
    let (status, _, one) = get(&server, "/crm/v3/pipelines/0-3/811234").await;
    assert_eq!(status, 200);
    assert_eq!(&one, enterprise);
    let (status, _, _) = get(&server, "/crm/v3/pipelines/deals/nope").await;
    assert_eq!(status, 404);

    let (status, _, page) = get(&server, "/crm/v3/owners/?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(page["results"][0]["id"], "501");
    assert_eq!(page["results"][0]["firstName"], "Ada");
    assert_eq!(page["results"][0]["userId"], 9001);
    let after = page["paging"]["next"]["after"].as_str().unwrap().to_owned();
    let (_, _, page) = get(&server, &format!("/crm/v3/owners?limit=1&after={after}")).await;
    assert_eq!(page["results"][0]["id"], "502");
    assert!(
        page.get("paging").is_none(),
        "the archived owner is not listed"
    );
    let (_, _, archived) = get(&server, "/crm/v3/owners?archived=true").await;
    assert_eq!(archived["results"][0]["id"], "503");
    let (status, _, owner) = get(&server, "/crm/v3/owners/9002?idProperty=userId").await;
    assert_eq!(status, 200);
    assert_eq!(owner["email"], "alan@example.com");
    let (status, _, _) = get(&server, "/crm/v3/owners/503").await;
    assert_eq!(status, 404);

    let (status, _, body) = get(&server, "/crm/v3/properties/deals").await;
    assert_eq!(status, 200);
    let find = |name: &str| {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    let source = find("lead_source");
    assert_eq!(source["hubspotDefined"], false);
    assert_eq!(source["type"], "enumeration");
    assert_eq!(
        source["options"][1],
        json!({"label": "Event", "value": "event", "displayOrder": 1, "hidden": false})
    );
    let stages: Vec<String> = find("dealstage")["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap().to_owned())
        .collect();
    assert!(stages.contains(&"closedwon".to_owned()) && stages.contains(&"1104".to_owned()));
    let (status, _, call_status) = get(&server, "/crm/v3/properties/calls/hs_call_status").await;
    assert_eq!(status, 200);
    assert!(
        call_status["options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["value"] == "NO_ANSWER")
    );
}

#[tokio::test]
async fn a_merged_id_answers_with_the_surviving_record() {
    let mut portal = sample_portal();
    portal.merge(
        ObjectType::Contacts,
        202,
        201,
        T0 + 3 * DAY_MS,
        &ChangeSource::crm_ui(9001),
    );
    let server = start(HubSpotState::with_portal(TOKEN, portal)).await;
    let (status, _, contact) = get(
        &server,
        "/crm/v3/objects/contacts/201?properties=hs_merged_object_ids&associations=deals",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(contact["id"], "202");
    assert_eq!(contact["properties"]["hs_merged_object_ids"], "201");
    // The merged contact's deal now belongs to the survivor.
    assert_eq!(
        contact["associations"]["deals"]["results"],
        json!([{"id": "101", "type": "contact_to_deal"}])
    );
    let (_, _, deal) = get(&server, "/crm/v3/objects/deals/101?associations=contacts").await;
    assert_eq!(
        deal["associations"]["contacts"]["results"],
        json!([{"id": "202", "type": "deal_to_contact"}])
    );
}

#[tokio::test]
async fn unknown_token_gets_hubspots_401() {
    let server = started().await;
    let response = reqwest::Client::new()
        .get(format!("{}/crm/v3/objects/deals/101", server.base_url()))
        .bearer_auth("pat-na1-wrong")
        .send()
        .await
        .unwrap();
    let (status, headers, body) = answer(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Authentication credentials not found")
    );
    assert!(header(&headers, "x-hubspot-ratelimit-remaining").is_none());
    let response = reqwest::Client::new()
        .get(format!("{}/crm/v3/owners", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(server.state().calls.last().unwrap().status, 401);
}

#[tokio::test]
async fn over_the_burst_limit_answers_429_with_hubspots_body_and_headers() {
    let mut state = HubSpotState::with_portal(TOKEN, sample_portal());
    state.limits = RateLimits {
        per_10_seconds: 3,
        daily: 1_000,
    };
    let server = start(state).await;
    for remaining in ["2", "1", "0"] {
        let (status, headers, _) = get(&server, "/crm/v3/pipelines/deals").await;
        assert_eq!(status, 200);
        assert_eq!(
            header(&headers, "x-hubspot-ratelimit-remaining"),
            Some(remaining)
        );
    }
    let (status, headers, body) = get(&server, "/crm/v3/pipelines/deals").await;
    assert_eq!(status, 429);
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(
        body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert_eq!(header(&headers, "x-hubspot-ratelimit-max"), Some("3"));
    assert_eq!(header(&headers, "x-hubspot-ratelimit-remaining"), Some("0"));
    assert_eq!(
        header(&headers, "x-hubspot-ratelimit-interval-milliseconds"),
        Some("10000")
    );
    // HubSpot sends no Retry-After for its own limits.
    assert!(header(&headers, "retry-after").is_none());
    // A refused request does not count against the day.
    assert_eq!(server.state().used_today(TOKEN), 3);
}

#[tokio::test]
async fn over_the_daily_limit_answers_429_daily() {
    let mut state = HubSpotState::with_portal(TOKEN, sample_portal());
    state.limits = RateLimits {
        per_10_seconds: 100,
        daily: 2,
    };
    let server = start(state).await;
    get(&server, "/crm/v3/owners").await;
    let (_, headers, _) = get(&server, "/crm/v3/owners").await;
    assert_eq!(
        header(&headers, "x-hubspot-ratelimit-daily-remaining"),
        Some("0")
    );
    let (status, headers, body) = get(&server, "/crm/v3/owners").await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "DAILY");
    assert_eq!(body["message"], "You have reached your daily limit.");
    assert_eq!(header(&headers, "x-hubspot-ratelimit-daily"), Some("2"));
}

#[tokio::test]
async fn behaviour_injects_storms_and_failures_every_nth_request() {
    let mut state = HubSpotState::with_portal(TOKEN, sample_portal());
    state.behaviour.storm = Some(Storm {
        count: 2,
        retry_after_seconds: 3,
    });
    let server = start(state).await;
    for _ in 0..2 {
        let (status, headers, body) = get(&server, "/crm/v3/owners").await;
        assert_eq!(status, 429);
        assert_eq!(header(&headers, "retry-after"), Some("3"));
        assert_eq!(body["errorType"], "RATE_LIMIT");
        assert!(header(&headers, "x-hubspot-ratelimit-max").is_some());
    }
    let (status, _, _) = get(&server, "/crm/v3/owners").await;
    assert_eq!(status, 200);

    {
        let mut state = server.state();
        state.behaviour.flaky_every = Some(2);
        state.behaviour.seen = 0;
    }
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(get(&server, "/crm/v3/owners").await.0);
    }
    assert_eq!(statuses, [200, 503, 200, 429, 200, 503, 200, 429]);

    server.state().behaviour.outage = Some(503);
    let (status, _, body) = get(&server, "/crm/v3/owners").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "error");
    assert_eq!(server.state().calls_to("/crm/v3/owners"), 12);
}
