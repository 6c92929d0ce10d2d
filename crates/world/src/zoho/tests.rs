use std::collections::BTreeMap;

use serde_json::{Value, json};
use tributary_sources::zoho::enrich::ZohoEnricher;
use tributary_sources::zoho::mapping::ZohoMapping;
use tributary_sources::zoho::{Zoho, tenant_settings};

use crate::*;

/// The small world's Zoho org.
fn world() -> World {
    World::generate(WorldConfig::small(7).only(Platform::Zoho))
}

fn section(tenant: &Tenant) -> Value {
    let CrmAccount::Zoho(account) = &tenant.crm else {
        panic!("a Zoho org");
    };
    json!({"org_id": account.org_id, "channel_ids": [account.channel_id],
        "token": account.token, "currency": tenant.home_currency})
}

/// Every delivery through the collector's Zoho source and the enricher
/// (without the API) into the mapping: each distinct event's records.
fn mapped(world: &World, deliveries: &[Delivery]) -> tests::Mapped {
    let tenant = &world.tenants[0];
    let section = section(tenant);
    let source = Zoho::from_sections(vec![(tenant.name.as_str(), &section)]).expect("settings");
    let enricher = ZohoEnricher::new(BTreeMap::from([(
        tenant.name.clone(),
        tenant_settings(&section).expect("settings"),
    )]));
    tests::through_the_pipeline(
        world,
        &source,
        "/webhooks/zoho/delta",
        deliveries,
        |raw| {
            let (flat, _) = enricher.flat_event(raw).expect("enriched");
            flat.into_map().expect("unique fields")
        },
        &ZohoMapping,
    )
}

#[test]
fn every_change_is_one_event_the_collector_takes_however_often_it_arrives() {
    let world = world();
    tests::assert_one_event_per_change(&world, Version::Zoho, mapped);
}

#[test]
fn the_stage_entries_the_pipeline_records_are_the_worlds() {
    let world = world();
    tests::assert_stage_entries_are_the_worlds(&world, mapped);
    let tenant = &world.tenants[0];
    let reopened = tenant
        .deals
        .iter()
        .any(|d| d.entries.len() > 1 + d.entries.iter().map(|e| e.1).max().unwrap_or(0));
    assert!(
        reopened || tenant.deals.iter().any(|d| d.wins > 1),
        "a deal reopened"
    );
}

#[test]
fn a_deals_insert_carries_its_lookups_and_an_update_only_what_changed() {
    let world = world();
    let tenant = &world.tenants[0];
    let bodies: Vec<Value> = world
        .deliveries(&Habits::none())
        .iter()
        .map(|d| serde_json::from_slice(&d.body).expect("JSON"))
        .collect();
    let deals: Vec<&Value> = bodies.iter().filter(|b| b["module"] == "Deals").collect();
    let insert = deals
        .iter()
        .find(|b| b["operation"] == "insert")
        .expect("an insert");
    let values = &insert["affected_values"][0]["values"];
    for field in [
        "Deal_Name",
        "Amount",
        "Currency",
        "Stage",
        "Probability",
        "Owner",
        "Account_Name",
        "Created_Time",
    ] {
        assert!(values.get(field).is_some(), "{field} in {values}");
    }
    assert!(values["Owner"]["name"].is_string());
    let id = insert["ids"][0].as_str().expect("an id as text");
    assert_eq!(id.len(), 19, "Zoho's ids are 19 digits");
    let stage_moves = deals
        .iter()
        .filter(|b| b["operation"] == "update")
        .filter(|b| b["affected_values"][0]["values"].get("Stage").is_some())
        .count();
    let other_updates = deals
        .iter()
        .filter(|b| b["operation"] == "update")
        .filter(|b| b["affected_values"][0]["values"].get("Deal_Name").is_none())
        .filter(|b| b["affected_values"][0]["values"].get("Stage").is_none())
        .count();
    assert!(
        stage_moves > 50 && other_updates > 0,
        "{stage_moves} {other_updates}"
    );
    assert!(
        deals
            .iter()
            .any(|b| b["operation"] == "delete" && b.get("affected_values").is_none())
    );
    assert!(tenant.activities.is_empty(), "Zoho orgs have no activities");
}

#[test]
fn a_mass_update_is_one_notification_of_several_records() {
    let world = world();
    let bodies: Vec<Value> = world
        .deliveries(&Habits::none())
        .iter()
        .map(|d| serde_json::from_slice(&d.body).expect("JSON"))
        .collect();
    let mass: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["ids"].as_array().is_some_and(|ids| ids.len() > 1))
        .collect();
    assert!(!mass.is_empty(), "the world has mass updates");
    for body in mass {
        assert_eq!(body["operation"], "update");
        let ids = body["ids"].as_array().expect("ids");
        let values = body["affected_values"].as_array().expect("values");
        assert_eq!(values.len(), ids.len(), "each record's values");
        for (id, values) in ids.iter().zip(values) {
            assert_eq!(values["record_id"], *id);
            assert!(
                values["values"]["Deal_Name"]
                    .as_str()
                    .is_some_and(|name| name.ends_with("(key account)")),
                "{values}"
            );
        }
    }
}
