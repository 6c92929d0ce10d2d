use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use tributary_fake_apis::hubspot::{
    FakeHubSpot, HubSpotState, ObjectType, Pipeline as FakePipeline,
};
use tributary_sources::hubspot::signature::{self, Legacy, SignatureError, SignatureVersion};

use super::MAX_BATCH;
use crate::*;

const SEED: u64 = 7;

fn world() -> World {
    World::generate(WorldConfig::small(SEED))
}

fn harbor(world: &World) -> (usize, &Tenant) {
    let index = world
        .tenants
        .iter()
        .position(|t| t.name == "harbor")
        .expect("harbor");
    (index, &world.tenants[index])
}

fn elements(delivery: &Delivery) -> Vec<Value> {
    match serde_json::from_slice(&delivery.body).expect("a HubSpot body is JSON") {
        Value::Array(elements) => elements,
        other => panic!("not an array: {other}"),
    }
}

/// The element without its attempt: what every delivery of an event shares.
fn content(element: &Value) -> Value {
    let mut element = element.clone();
    element
        .as_object_mut()
        .expect("an object")
        .remove("attemptNumber");
    element
}

fn is_id(value: &Value) -> bool {
    value.as_u64().is_some_and(|id| id > 0)
}

#[test]
fn hubspot_deliveries_are_arrays_of_documented_events_of_one_portal() {
    let world = world();
    let (index, tenant) = harbor(&world);
    let account = tenant.hubspot().expect("a HubSpot tenant");
    let portal: u64 = account.portal_id.parse().expect("numeric");
    let deliveries = world.deliveries(&Habits::default());
    let mut seen_types = BTreeSet::new();
    let mut largest = 0;
    for delivery in deliveries.iter().filter(|d| d.version == Version::HubSpot) {
        assert_eq!(delivery.tenant, index);
        assert_eq!(world.delivery_path(delivery), "/webhooks/hubspot");
        let elements = elements(delivery);
        assert!((1..=MAX_BATCH).contains(&elements.len()));
        largest = largest.max(elements.len());
        for e in &elements {
            let at = || format!("{e}");
            assert_eq!(e["portalId"], json!(portal), "{}", at());
            for id in ["eventId", "subscriptionId", "appId", "objectId"] {
                assert!(is_id(&e[id]), "{id} in {}", at());
            }
            assert!(
                e["occurredAt"]
                    .as_i64()
                    .is_some_and(|t| t > 1_600_000_000_000)
            );
            assert!(e["attemptNumber"].as_u64().is_some(), "{}", at());
            assert!(e["changeSource"].is_string(), "{}", at());
            let kind = e["subscriptionType"].as_str().expect("a subscription type");
            let (object, action) = kind.split_once('.').expect("object.action");
            match object {
                "deal" | "contact" | "company" => assert!(e.get("objectTypeId").is_none()),
                "object" => assert!(
                    ["0-48", "0-49", "0-47", "0-27"]
                        .contains(&e["objectTypeId"].as_str().unwrap_or("")),
                    "an engagement type: {}",
                    at()
                ),
                other => panic!("object {other}"),
            }
            match action {
                "creation" => assert_eq!(e["changeFlag"], "NEW"),
                "deletion" => assert_eq!(e["changeFlag"], "DELETED"),
                "restore" => {}
                "propertyChange" => {
                    assert!(
                        e["propertyName"].is_string() && e["propertyValue"].is_string(),
                        "{}",
                        at()
                    )
                }
                "merge" => {
                    assert_eq!(e["primaryObjectId"], e["objectId"]);
                    assert_eq!(e["newObjectId"], e["objectId"]);
                    let merged = e["mergedObjectIds"].as_array().expect("merged ids");
                    assert!(!merged.is_empty() && merged.iter().all(is_id));
                }
                "associationChange" => {
                    assert_eq!(e["fromObjectId"], e["objectId"]);
                    assert!(is_id(&e["toObjectId"]));
                    assert!(matches!(
                        e["associationType"].as_str(),
                        Some("DEAL_TO_COMPANY" | "DEAL_TO_CONTACT")
                    ));
                    assert!(e["associationRemoved"].is_boolean());
                    assert!(e["isPrimaryAssociation"].is_boolean());
                }
                other => panic!("action {other}"),
            }
            seen_types.insert(kind.to_owned());
        }
    }
    assert!(largest > 5, "some batches hold several changes' events");
    for kind in [
        "deal.creation",
        "deal.propertyChange",
        "deal.deletion",
        "deal.merge",
        "deal.restore",
        "deal.associationChange",
        "contact.creation",
        "contact.propertyChange",
        "company.creation",
        "company.propertyChange",
        "object.creation",
        "object.propertyChange",
        "object.deletion",
    ] {
        assert!(seen_types.contains(kind), "no {kind} in {seen_types:?}");
    }
    // The Pipedrive tenants of the same world are delivered as before.
    for delivery in deliveries
        .iter()
        .filter(|d| matches!(d.version, Version::V1 | Version::V2))
    {
        let name = &world.tenants[delivery.tenant].name;
        tributary_sources::pipedrive::prevalidate(name, &delivery.body)
            .unwrap_or_else(|refusal| panic!("{refusal:?}"));
        assert_eq!(
            world.delivery_path(delivery),
            format!("/webhooks/pipedrive/{name}")
        );
    }
}

#[test]
fn hubspot_deliveries_are_signed_v3_over_the_url_hubspot_called() {
    let world = world();
    let (_, tenant) = harbor(&world);
    let secret = &tenant.hubspot().expect("HubSpot").client_secret;
    let url = "http://127.0.0.1:8080/webhooks/hubspot";
    let now = 1_760_000_000_000;
    let deliveries = world.deliveries(&Habits::default());
    let mut checked = 0;
    for delivery in deliveries
        .iter()
        .filter(|d| d.version == Version::HubSpot)
        .take(50)
    {
        let headers = world.delivery_headers(delivery, url, now);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        let sent = header(signature::TIMESTAMP_HEADER);
        assert_eq!(sent, Some("1760000000000"));
        let v3 = header(signature::SIGNATURE_V3_HEADER).expect("a v3 signature");
        let verify = |secret: &str, url: &str, body: &[u8]| {
            signature::verify_v3(secret, "POST", url, body, v3, sent, now + 2_000)
        };
        assert_eq!(verify(secret, url, &delivery.body), Ok(()));
        assert_eq!(
            verify("another-secret", url, &delivery.body),
            Err(SignatureError::Wrong)
        );
        assert_eq!(
            verify(
                secret,
                "http://127.0.0.1:8080/webhooks/hubspot/harbor",
                &delivery.body
            ),
            Err(SignatureError::Wrong)
        );
        // As the collector reads them: v3 wins over the legacy header, which is good too.
        let mut map = http::HeaderMap::new();
        for (name, value) in &headers {
            map.insert(*name, value.parse().expect("a header value"));
        }
        let request = signature::SignedRequest {
            method: "POST",
            uri: url,
            headers: &map,
            body: &delivery.body,
        };
        assert_eq!(
            signature::verify(secret, &request, now, Legacy::Refuse),
            Ok(SignatureVersion::V3)
        );
        let legacy = header(signature::SIGNATURE_HEADER).expect("a legacy signature");
        assert_eq!(signature::verify_v1(secret, &delivery.body, legacy), Ok(()));
        checked += 1;
    }
    assert_eq!(checked, 50);
}

#[test]
fn every_hubspot_event_keeps_one_event_id_however_often_it_is_delivered() {
    let world = world();
    let (index, _) = harbor(&world);
    let events = world.hubspot_events();
    let deliveries = world.deliveries(&Habits::default());
    // Each event id: the contents it was delivered with, and its attempts.
    let mut by_id: BTreeMap<u64, (BTreeSet<String>, Vec<u64>)> = BTreeMap::new();
    // Where each delivery of an event went out.
    let mut positions: HashMap<u64, Vec<usize>> = HashMap::new();
    for (position, delivery) in deliveries
        .iter()
        .enumerate()
        .filter(|(_, d)| d.version == Version::HubSpot)
    {
        for e in elements(delivery) {
            let id = e["eventId"].as_u64().expect("an id");
            let entry = by_id.entry(id).or_default();
            entry.0.insert(content(&e).to_string());
            entry
                .1
                .push(e["attemptNumber"].as_u64().expect("an attempt"));
            positions.entry(id).or_default().push(position);
        }
    }
    assert_eq!(by_id.len(), events.len(), "every event is delivered");
    assert!(
        by_id.values().all(|(contents, _)| contents.len() == 1),
        "an event id always comes with the same event"
    );
    let distinct: BTreeSet<&String> = by_id.values().flat_map(|(c, _)| c).collect();
    assert_eq!(distinct.len(), events.len(), "no two events share an id");
    for event in events {
        let (contents, _) = &by_id[&event.event_id];
        let element = event.element(&harbor(&world).1.hubspot().expect("HubSpot").portal_id, 0);
        assert!(contents.contains(&content(&element).to_string()));
    }
    // Every change of the HubSpot tenant made at least one event.
    let changed: BTreeSet<usize> = events.iter().map(|e| e.change).collect();
    let expected: BTreeSet<usize> = world
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.tenant == index)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(changed, expected);
    // HubSpot's habits.
    let retried = by_id
        .values()
        .filter(|(_, a)| a.iter().any(|n| *n > 0))
        .count();
    let duplicated = by_id
        .values()
        .filter(|(_, a)| a.iter().filter(|n| **n == 0).count() > 1)
        .count();
    assert!(
        retried > 0 && duplicated > 0,
        "retries {retried}, duplicates {duplicated}"
    );
    let first_position = |id: u64| positions[&id].iter().min().copied().unwrap_or(0);
    let late = events.windows(2).any(|w| {
        w[0].object_id == w[1].object_id
            && w[0].change < w[1].change
            && first_position(w[0].event_id) > first_position(w[1].event_id)
    });
    assert!(
        late,
        "some events arrive after a later event of their record"
    );
    // Without habits: each event once, in order, first attempts only.
    let plain: Vec<Value> = world
        .deliveries(&Habits::none())
        .iter()
        .filter(|d| d.version == Version::HubSpot)
        .flat_map(elements)
        .collect();
    let ids: Vec<u64> = plain
        .iter()
        .map(|e| e["eventId"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(ids, events.iter().map(|e| e.event_id).collect::<Vec<_>>());
    assert!(plain.iter().all(|e| e["attemptNumber"] == 0));
}

#[test]
fn a_deal_is_created_with_its_properties_and_associations() {
    let world = world();
    let events = world.hubspot_events();
    let creation = events
        .iter()
        .find(|e| e.object_type == ObjectType::Deals && e.action == "creation")
        .expect("a deal created");
    let same: Vec<&HubSpotEvent> = events
        .iter()
        .filter(|e| e.change == creation.change)
        .collect();
    let properties: BTreeSet<&str> = same
        .iter()
        .filter_map(|e| e.property.as_ref().map(|(name, _)| name.as_str()))
        .collect();
    for name in [
        "dealname",
        "amount",
        "deal_currency_code",
        "pipeline",
        "dealstage",
        "closedate",
        "hubspot_owner_id",
    ] {
        assert!(properties.contains(name), "{name} in {properties:?}");
    }
    let associations: Vec<&str> = same
        .iter()
        .filter_map(|e| e.association.as_ref().map(|a| a.association_type))
        .collect();
    assert_eq!(associations, ["DEAL_TO_COMPANY", "DEAL_TO_CONTACT"]);
    assert!(
        same.iter()
            .all(|e| e.occurred_at_ms == creation.occurred_at_ms)
    );
}

#[test]
fn the_default_pipeline_is_hubspots_own() {
    let world = world();
    let (_, tenant) = harbor(&world);
    let portals = world.hubspot_portals();
    let portal = &portals[&tenant.hubspot().expect("HubSpot").access_token];
    let ours = &portal.deal_pipelines[0];
    let theirs = FakePipeline::default_sales();
    assert_eq!(
        (ours.id.as_str(), ours.label.as_str()),
        ("default", "Sales Pipeline")
    );
    let stages = |p: &FakePipeline| -> Vec<(String, String, i32, f64, bool)> {
        p.stages
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    s.label.clone(),
                    s.display_order,
                    s.probability,
                    s.is_closed,
                )
            })
            .collect()
    };
    assert_eq!(stages(ours), stages(&theirs));
    // The custom pipeline has numeric ids.
    let custom = &portal.deal_pipelines[1];
    assert!(custom.id.parse::<u64>().is_ok());
    assert!(custom.stages.iter().all(|s| s.id.parse::<u64>().is_ok()));
    assert_eq!(portal.owners.len(), tenant.reps.len());
}

async fn get(base: &str, token: &str, path: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the fake answers");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response.json().await.expect("JSON")
}

#[tokio::test]
async fn the_fake_api_answers_as_of_each_change() {
    let world = world();
    let (index, tenant) = harbor(&world);
    let token = tenant.hubspot().expect("HubSpot").access_token.clone();
    let mut state = HubSpotState::default();
    state.portals = world.hubspot_portals();
    let server = FakeHubSpot::start(state).await.expect("the fake starts");
    let base = server.base_url();

    // Definitions from the start: pipelines, owners, the custom property.
    let pipelines = get(&base, &token, "/crm/v3/pipelines/deals").await;
    let ids: Vec<&str> = pipelines["results"]
        .as_array()
        .expect("pipelines")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        tenant
            .pipelines
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>()
    );
    let owners = get(&base, &token, "/crm/v3/owners").await;
    assert_eq!(
        owners["results"].as_array().map(Vec::len),
        Some(tenant.reps.len())
    );
    let source = get(&base, &token, "/crm/v3/properties/deals/lead_source").await;
    assert_eq!(source["hubspotDefined"], false);
    assert_eq!(source["options"][0]["label"], "LinkedIn");

    // A deal's stage change: before it, the API shows the old stage; after it, the new one.
    let (at, deal, old, new) = world
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.tenant == index && c.action == Action::Updated)
        .find_map(|(i, c)| match &c.subject {
            Subject::Deal {
                deal,
                before: Some(before),
                after: Some(after),
                ..
            } if before.stage != after.stage && after.status == "open" => {
                let pipeline = &tenant.pipelines[after.pipeline];
                Some((
                    i,
                    tenant.deals[*deal].id,
                    pipeline.stages[before.stage].id.clone(),
                    pipeline.stages[after.stage].id.clone(),
                ))
            }
            _ => None,
        })
        .expect("a stage change");
    let path = format!(
        "/crm/v3/objects/deals/{deal}?properties=dealstage,hs_is_closed&propertiesWithHistory=dealstage"
    );
    let mut applied = 0;
    let mut apply_through = |through: usize| {
        let mut state = server.state();
        for change in &world.changes[applied..=through] {
            if change.tenant == index {
                let portal = state.portals.get_mut(&token).expect("the portal");
                world.apply_to_portal(portal, change);
            }
        }
        applied = through + 1;
    };
    apply_through(at - 1);
    let before = get(&base, &token, &path).await;
    assert_eq!(before["properties"]["dealstage"], old.as_str());
    apply_through(at);
    let after = get(&base, &token, &path).await;
    assert_eq!(after["properties"]["dealstage"], new.as_str());
    assert_eq!(after["properties"]["hs_is_closed"], "false");
    let history = after["propertiesWithHistory"]["dealstage"]
        .as_array()
        .expect("a history");
    assert_eq!(history[0]["value"], new.as_str(), "newest first");
    assert_eq!(history[1]["value"], old.as_str());
    assert_eq!(
        history[0]["timestamp"],
        tributary_fake_apis::hubspot::iso_millis(world.changes[at].at_micro / 1_000)
    );
    assert_eq!(history[0]["sourceType"], "CRM_UI");
}

#[test]
fn hubspot_deals_are_merged_deleted_and_restored() {
    let world = world();
    let (index, tenant) = harbor(&world);
    let mut portals = world.hubspot_portals();
    let portal = portals
        .get_mut(&tenant.hubspot().expect("HubSpot").access_token)
        .expect("the portal");
    for change in world.changes.iter().filter(|c| c.tenant == index) {
        world.apply_to_portal(portal, change);
    }
    let count = |action: Action| {
        world
            .changes
            .iter()
            .filter(|c| c.tenant == index && c.action == action && c.object() == "deal")
            .count()
    };
    assert!(count(Action::Merged) > 0, "merges");
    assert!(count(Action::Deleted) > 0, "deletions");
    assert!(count(Action::Restored) > 0, "restores");
    for deal in &tenant.deals {
        let id = deal.id as u64;
        let read = portal
            .resolve(ObjectType::Deals, id)
            .expect("every deal reads");
        match deal.merged_into {
            Some(survivor) => {
                assert_eq!(
                    read.id, survivor as u64,
                    "a merged id reads as its survivor"
                );
                let merged = read.value("hs_merged_object_ids").unwrap_or_default();
                assert!(merged.split(';').any(|m| m == id.to_string()));
                let survivor = tenant
                    .deals
                    .iter()
                    .find(|d| d.id == survivor)
                    .expect("the survivor");
                assert_eq!(
                    survivor.org, deal.org,
                    "duplicates of one company are merged"
                );
            }
            None => {
                assert_eq!(read.id, id);
                assert_eq!(read.archived(), deal.deleted, "deal {id}");
            }
        }
    }
    let restored: Vec<&Deal> = world
        .changes
        .iter()
        .filter(|c| c.tenant == index && c.action == Action::Restored)
        .filter_map(|c| match c.subject {
            Subject::Deal { deal, .. } => Some(&tenant.deals[deal]),
            _ => None,
        })
        .collect();
    assert!(
        restored
            .iter()
            .all(|d| !d.deleted || d.merged_into.is_some())
    );
}

/// The open stages a deal's HubSpot stage history passes through, in order.
fn open_entries(tenant: &Tenant, history: &[Value]) -> Vec<String> {
    let open: BTreeSet<&str> = tenant
        .pipelines
        .iter()
        .flat_map(|p| &p.stages)
        .map(|s| s.id.as_str())
        .collect();
    history
        .iter()
        .filter_map(Value::as_str)
        .filter(|id| open.contains(id))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_truths_stage_entries_are_what_hubspots_stage_history_shows() {
    let world = world();
    let (_, tenant) = harbor(&world);
    assert_eq!(tenant.source(), "hubspot");
    let account = tenant.hubspot().expect("HubSpot");
    assert_eq!(tenant.account(), account.portal_id);
    assert_eq!(
        tenant.pipeline_key(&tenant.pipelines[1]),
        format!("hubspot:{}:87312450", account.portal_id)
    );
    // The last enriched event of each deal has its whole stage history.
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for event in world.enriched_events() {
        if event["pipeline_tenant"] == "harbor"
            && event["event_object"] == "deal"
            && event["record_found"] == true
        {
            last.insert(
                event["record_id"].as_str().unwrap_or_default().to_owned(),
                event,
            );
        }
    }
    let mut reentered = 0;
    for deal in tenant.deals.iter().filter(|d| d.merged_into.is_none()) {
        let event = &last[&deal.id.to_string()];
        let history = event["deal_stage_history_ids"]
            .as_array()
            .expect("a history");
        let entries: Vec<String> = deal
            .entries
            .iter()
            .map(|(p, s, _)| tenant.pipelines[*p].stages[*s].id.clone())
            .collect();
        assert_eq!(open_entries(tenant, history), entries, "deal {}", deal.id);
        let won = tenant.pipelines[deal.last.pipeline]
            .won_stage
            .as_ref()
            .expect("a won stage");
        let wins = history.iter().filter(|id| **id == won.id.as_str()).count();
        assert_eq!(wins, deal.wins, "deal {}", deal.id);
        if entries.windows(2).any(|w| w[0] == w[1]) {
            reentered += 1;
        }
    }
    assert!(reentered > 0, "reopened deals enter their open stage again");
}

/// Reads the enriched events as the contract's mapping does, just enough
/// to say which deals are open, won or lost now and for how much, which
/// are gone, and which activities are done by whom.
#[test]
fn the_enriched_events_carry_what_the_dashboards_count() {
    let world = world();
    let (_, tenant) = harbor(&world);
    let events: Vec<Value> = world
        .enriched_events()
        .into_iter()
        .filter(|e| e["pipeline_tenant"] == "harbor")
        .collect();
    assert_eq!(
        events.len(),
        world.hubspot_events().len(),
        "one enriched event per HubSpot event"
    );
    let text = |e: &Value, field: &str| e[field].as_str().map(str::to_owned);
    // Deals: the status and the latest hydrated event; gone ones.
    let mut deals: BTreeMap<String, (&str, &Value)> = BTreeMap::new();
    let mut gone: BTreeMap<String, bool> = BTreeMap::new();
    let mut activities: BTreeMap<String, Option<(String, String, String)>> = BTreeMap::new();
    for e in &events {
        let id = text(e, "event_object_id").expect("an object id");
        match e["event_action"].as_str() {
            Some("deletion") => {
                // Read among the archived records: its last state.
                assert_eq!(e["record_archived"], true, "{e}");
                gone.insert(id.clone(), true);
            }
            Some("restore") => {
                gone.insert(id.clone(), false);
            }
            Some("merge") => {
                for merged in e["event_merged_object_ids"].as_array().expect("ids") {
                    gone.insert(merged.as_str().expect("a string id").to_owned(), true);
                }
            }
            _ => {}
        }
        if e["record_found"] != true {
            continue;
        }
        for field in [
            "event_id",
            "event_object_id",
            "event_portal_id",
            "record_id",
            "record_created_at",
        ] {
            assert!(e[field].is_string(), "{field} in {e}");
        }
        if e["event_object"] == "deal" {
            let status = match (
                e["deal_is_closed_won"].as_str(),
                e["deal_is_closed"].as_str(),
            ) {
                (Some("true"), _) => "won",
                (Some("false"), Some("true")) => "lost",
                (Some("false"), Some("false")) => "open",
                other => panic!("unreadable status {other:?}"),
            };
            let record = text(e, "record_id").expect("a record id");
            deals.insert(record, (status, e));
        } else if let Some(kind) = e["activity_type"].as_str() {
            let status = e["activity_status"].as_str().unwrap_or_default();
            let done = match kind {
                "email" => status == "SENT",
                _ => status == "COMPLETED",
            };
            let at = if kind == "task" {
                text(e, "activity_completed_at")
            } else {
                text(e, "activity_timestamp")
            };
            activities.insert(
                id,
                done.then(|| {
                    (
                        text(e, "activity_owner_id").expect("an owner"),
                        kind.to_owned(),
                        at.expect("a done time"),
                    )
                }),
            );
        }
    }
    for deal in &tenant.deals {
        let id = deal.id.to_string();
        assert_eq!(
            gone.get(&id).copied().unwrap_or(false),
            deal.deleted,
            "deal {id} deleted"
        );
        if deal.deleted {
            continue;
        }
        let (status, e) = deals[&id];
        assert_eq!(status, deal.last.status, "deal {id}");
        let amount = text(e, "deal_amount").expect("an amount");
        assert_eq!(amount.parse::<f64>().ok(), Some(deal.last.value));
        assert_eq!(e["deal_currency"], deal.currency);
        assert_eq!(e["deal_marketing_source"].as_str(), deal.source_label());
        // Times as the dashboards read them: whole seconds.
        let seconds = |field: &str| {
            chrono::DateTime::parse_from_rfc3339(e[field].as_str().expect("a time"))
                .expect("ISO")
                .timestamp()
        };
        assert_eq!(seconds("deal_create_date"), deal.add_time);
        assert_eq!(
            seconds("record_updated_at"),
            deal.last.update_time,
            "deal {id}"
        );
        let pipeline = &tenant.pipelines[deal.last.pipeline];
        assert_eq!(e["deal_pipeline_id"], pipeline.id.as_str());
        assert_eq!(e["deal_pipeline_name"], pipeline.name);
        // Open stages: the CRM's probability as the model has it (in percent).
        let ids = e["deal_pipeline_stage_ids"].as_array().expect("stage ids");
        let probabilities = e["deal_pipeline_stage_probabilities"]
            .as_array()
            .expect("probabilities");
        for stage in &pipeline.stages {
            let at = ids
                .iter()
                .position(|i| *i == stage.id.as_str())
                .expect("listed");
            let p: f64 = probabilities[at]
                .as_str()
                .expect("text")
                .parse()
                .expect("a number");
            assert_eq!(p * 100.0, stage.probability);
        }
        if deal.last.status == "open" {
            assert_eq!(
                e["deal_stage_id"],
                pipeline.stages[deal.last.stage].id.as_str()
            );
            let close = chrono::NaiveDate::parse_from_str(
                &e["deal_close_date"].as_str().expect("a close date")[..10],
                "%Y-%m-%d",
            );
            assert_eq!(close.ok(), Some(deal.expected_close));
        }
        let company = &tenant.organizations[deal.org];
        assert_eq!(e["deal_company_id"], company.id.to_string().as_str());
        assert_eq!(e["company_name"], company.last.name.as_str());
        assert_eq!(e["owner_name"], deal.owner.1);
    }
    let iso = |s: i64| tributary_fake_apis::hubspot::iso_millis(s * 1_000);
    for activity in &tenant.activities {
        let id = activity.id.to_string();
        if activity.deleted {
            assert!(events.iter().any(|e| e["event_object_id"] == id.as_str()
                && e["event_action"] == "deletion"));
            continue;
        }
        let expected = activity.last.done_at.map(|done| {
            (
                activity.last.user.0.to_string(),
                activity.last.kind.to_owned(),
                iso(done),
            )
        });
        assert_eq!(activities[&id], expected, "activity {id}");
    }
    // Some done activities were reassigned, moved or undone: HubSpot's twists.
    let edits = world
        .changes
        .iter()
        .filter(|c| c.tenant == harbor(&world).0)
        .filter(|c| {
            matches!(&c.subject, Subject::Activity { before: Some(b), after: Some(a), .. }
            if b.done_at.is_some() && (a.user != b.user || a.done_at != b.done_at))
        })
        .count();
    assert!(edits > 5);
    assert!(
        world.changes.iter().all(
            |c| !matches!(&c.subject, Subject::Activity { before: Some(b), after: Some(a), .. }
            if world.tenants[c.tenant].platform() == Platform::HubSpot && a.kind != b.kind)
        ),
        "HubSpot engagements are never retyped"
    );
}

#[test]
fn hubspot_tenants_are_configured_in_their_own_section() {
    let world = world();
    let (index, tenant) = harbor(&world);
    let account = tenant.hubspot().expect("HubSpot");
    let apis = Apis {
        pipedrive_url: "http://127.0.0.1:1".into(),
        pipedrive_requests_per_2s: 20,
        hubspot_url: "http://127.0.0.1:2".into(),
        hubspot_requests_per_10s: 190,
        public_url: "http://127.0.0.1:8080".into(),
        zoho_url: "http://127.0.0.1:9".into(),
        dynamics_url: "http://127.0.0.1:9".into(),
        salesforce_url: "http://127.0.0.1:9".into(),
        pubsub_url: "http://127.0.0.1:9".into(),
    };
    let config = world.tenant_config(index, &apis);
    for line in [
        "[tenants.harbor.hubspot]".to_owned(),
        format!("portal_id = \"{}\"", account.portal_id),
        format!("client_secret = \"{}\"", account.client_secret),
        format!("access_token = \"{}\"", account.access_token),
        "api_base_url = \"http://127.0.0.1:2\"".to_owned(),
        "requests_per_10s = 190".to_owned(),
        "public_url = \"http://127.0.0.1:8080\"".to_owned(),
        "marketing_source_property = \"lead_source\"".to_owned(),
    ] {
        assert!(config.lines().any(|l| l == line), "{line} in\n{config}");
    }
    let north = world.tenant_config(0, &apis);
    assert!(north.starts_with("[tenants.north.pipedrive]"));
    assert!(
        world
            .tenants_toml()
            .contains("[tenants.harbor]\nhome_currency = \"EUR\"")
    );
    assert_eq!(world.hubspot_portals().len(), 1);
    assert_eq!(world.accounts().len(), 2);
}

#[test]
fn the_same_seed_makes_the_same_hubspot_world() {
    let (a, b) = (world(), world());
    assert_eq!(a.hubspot_events(), b.hubspot_events());
    let habits = Habits::default();
    let bodies =
        |w: &World| -> Vec<Vec<u8>> { w.deliveries(&habits).into_iter().map(|d| d.body).collect() };
    assert_eq!(bodies(&a), bodies(&b));
    assert_eq!(a.enriched_events(), b.enriched_events());
    let other = World::generate(WorldConfig::small(SEED + 1));
    assert_ne!(other.hubspot_events()[..50], a.hubspot_events()[..50]);
    // The Pipedrive tenants are the world without HubSpot's.
    let plain = World::generate(WorldConfig::small(SEED).only(Platform::Pipedrive));
    assert_eq!(
        plain.changes.len(),
        a.changes
            .iter()
            .filter(|c| a.tenants[c.tenant].platform() == Platform::Pipedrive)
            .count()
    );
    assert_eq!(plain.distinct_events(), plain.changes.len());
    let one_each = a
        .changes
        .iter()
        .filter(|c| {
            matches!(
                a.tenants[c.tenant].platform(),
                Platform::Zoho | Platform::Dynamics | Platform::Salesforce
            )
        })
        .count();
    assert_eq!(
        a.distinct_events(),
        plain.changes.len() + a.hubspot_events().len() + one_each
    );
}

#[test]
fn the_sample_hubspot_tenant_exercises_every_panel() {
    let world = World::generate(WorldConfig::sample(20_250_106));
    let (_, tenant) = harbor(&world);
    assert!(tenant.closed_deals() >= 50, "harbor calibrates");
    let (first, last) = world.span();
    let scope = tributary_clickhouse::dashboard::Scope {
        from: first - DAY,
        to: last + DAY,
        tenant: "harbor".into(),
        pipeline: None,
    };
    for (title, rows) in world.expected_panels(&scope) {
        assert!(!rows.is_empty(), "{title} has rows");
    }
    let live = |d: &&Deal| !d.deleted && d.last.status == "open";
    for (currency, _) in FOREIGN_CURRENCIES {
        assert!(
            tenant
                .deals
                .iter()
                .filter(live)
                .any(|d| d.currency == currency),
            "open deals in {currency}"
        );
    }
    assert!(
        tenant.deals.iter().any(|d| d.wins >= 2),
        "won, reopened, won again"
    );
    assert!(
        tenant.deals.iter().any(|d| d.last.pipeline == 1),
        "both pipelines"
    );
    assert!(tenant.deals.iter().all(|d| d.probability.is_none()));
}
