use std::collections::{BTreeMap, HashMap, HashSet};

use apache_avro::Schema;
use serde_json::{Value, json};
use tributary_model::{Context, DealStatus, Field, Mapping, Record};
use tributary_salesforce_pubsub::{ConsumerEvent, ProducerEvent};
use tributary_sources::salesforce::cdc::{avro, raw_events};
use tributary_sources::salesforce::enrich::SalesforceEnricher;
use tributary_sources::salesforce::mapping::SalesforceMapping;
use tributary_sources::salesforce::{Salesforce, tenant_settings};

use super::{CHANNEL, SCHEMA_ID, schema_json};
use crate::*;
use tests::{Newest, take};

/// One of the small world's Salesforce orgs: "fjord" (Change Data
/// Capture) or "kelp" (Outbound Messages only).
fn org(name: &str) -> World {
    let mut config = WorldConfig::small(7).only(Platform::Salesforce);
    config.tenants.retain(|t| t.name == name);
    World::generate(config)
}

/// The org with Change Data Capture.
fn world() -> World {
    org("fjord")
}

fn account(tenant: &Tenant) -> &SalesforceAccount {
    match &tenant.crm {
        CrmAccount::Salesforce(account) => account,
        _ => panic!("a Salesforce org"),
    }
}

fn schema() -> Schema {
    Schema::parse_str(&schema_json()).expect("the org's schema")
}

/// Every delivery through the collector (an Outbound Message through its
/// Salesforce source, a change event as its subscription reads it off the
/// channel), the enricher (without the REST API) and the mapping: each
/// distinct event's change and records.
fn mapped(world: &World, deliveries: &[Delivery]) -> tests::Mapped {
    let tenant = &world.tenants[0];
    let account = account(tenant);
    let section = json!({"organization_id": account.organization_id,
        "endpoint_secret": account.endpoint_secret});
    let source =
        Salesforce::from_sections(vec![(tenant.name.as_str(), &section)]).expect("settings");
    let enricher = SalesforceEnricher::new(BTreeMap::from([(
        tenant.name.clone(),
        tenant_settings(&section).expect("settings"),
    )]));
    let schema = schema();
    let (events, messages): (Vec<Delivery>, Vec<Delivery>) = deliveries
        .iter()
        .cloned()
        .partition(|d| d.version == Version::SalesforceChangeEvent);
    let path = world.delivery_path(&messages[0]);
    let mut raws = tests::raw_events(world, &source, &path, &messages);
    // The channel's events in the order published, each its position's id.
    for (position, delivery) in events.iter().enumerate() {
        let event = ConsumerEvent {
            event: Some(ProducerEvent {
                id: format!("e{position:05}"),
                schema_id: SCHEMA_ID.into(),
                payload: delivery.body.clone(),
                headers: Vec::new(),
            }),
            replay_id: (position as u64 + 1).to_be_bytes().to_vec(),
        };
        for raw in raw_events(
            &tenant.name,
            &account.organization_id,
            CHANNEL,
            &event,
            Ok(&schema),
            1,
        ) {
            raws.push((delivery.change, raw));
        }
    }
    let mut mapped = HashMap::new();
    for (change, raw) in raws {
        let fields = enricher
            .flat_event(&raw)
            .expect("enriched")
            .into_map()
            .expect("unique fields");
        let context = Context {
            tenant: &tenant.name,
            source: tenant.source(),
            received_at_micro: 1,
            missing: &[],
        };
        let records = SalesforceMapping
            .map(&context, &fields)
            .unwrap_or_else(|e| panic!("{e:?}: {fields:?}"))
            .records;
        mapped.insert(raw.event_id, (change, records));
    }
    mapped
}

#[test]
fn every_change_is_one_event_however_often_its_message_arrives() {
    let world = world();
    let deliveries = world.deliveries(&Habits::default());
    let versions: HashSet<Version> = deliveries.iter().map(|d| d.version).collect();
    assert_eq!(versions.len(), 2, "Outbound Messages and change events");
    let messages: Vec<&Delivery> = deliveries
        .iter()
        .filter(|d| d.version == Version::SalesforceOutbound)
        .collect();
    let distinct: HashSet<usize> = messages.iter().map(|d| d.change).collect();
    assert!(messages.len() > distinct.len(), "some messages are retried");
    let events: Vec<usize> = deliveries
        .iter()
        .filter(|d| d.version == Version::SalesforceChangeEvent)
        .map(|d| d.change)
        .collect();
    assert!(
        events.windows(2).all(|w| w[0] < w[1]),
        "change events are in commit order, each once"
    );
    let mapped = mapped(&world, &deliveries);
    assert_eq!(mapped.len(), world.changes.len(), "one event per change");
    assert_eq!(world.distinct_events(), world.changes.len());
    assert!(
        world.tenants[0].activities.iter().all(|a| !a.deleted),
        "no deletion of a task would tell"
    );
}

#[test]
fn the_tasks_the_pipeline_maps_end_as_the_worlds_activities() {
    use tributary_model::ActivityType;
    let world = world();
    let tenant = &world.tenants[0];
    assert!(tenant.activities.len() > 20);
    // Each task's fields as of its newest message.
    let mut newest: HashMap<String, (i64, tributary_model::Activity)> = HashMap::new();
    for (_, records) in mapped(&world, &world.deliveries(&Habits::default())).into_values() {
        for record in records {
            if let Record::Activity(activity) = record {
                let version = activity.version.at_micro;
                let entry = newest
                    .entry(activity.key.id.clone())
                    .or_insert((i64::MIN, activity.clone()));
                if version >= entry.0 {
                    *entry = (version, activity);
                }
            }
        }
    }
    for activity in &tenant.activities {
        let (_, task) = &newest[&super::record_id("00T", activity.id)];
        let state = &activity.last;
        let kind = match state.kind {
            "call" => ActivityType::Call,
            "email" => ActivityType::Email,
            "meeting" => ActivityType::Meeting,
            _ => ActivityType::Task,
        };
        assert_eq!(task.kind, Field::Value(kind), "{activity:?}");
        assert_eq!(task.done, Field::Value(state.done_at.is_some()));
        assert_eq!(
            task.done_at.value().map(|t| t.seconds()),
            state.done_at,
            "{activity:?}"
        );
        assert_eq!(
            task.owner_id,
            Field::Value(super::record_id("005", state.user.0)),
            "reassigned, it is the new rep's"
        );
        if let Some(deal) = activity.deal {
            assert_eq!(
                task.deal_id,
                Field::Value(super::opportunity_id(tenant.deals[deal].id))
            );
        }
    }
}

#[test]
fn the_stage_entries_the_pipeline_records_are_the_worlds() {
    tests::assert_stage_entries_are_the_worlds(&world(), mapped);
}

#[test]
fn an_org_without_change_data_capture_sends_every_change_as_an_outbound_message() {
    let world = org("kelp");
    tests::assert_one_event_per_change(&world, Version::SalesforceOutbound, mapped);
    assert!(
        world.tenants[0].deals.iter().all(|d| !d.deleted),
        "no deletion would tell"
    );
    // A mass edit is one message of several notifications.
    let largest = world
        .deliveries(&Habits::none())
        .iter()
        .map(|d| {
            String::from_utf8_lossy(&d.body)
                .matches("<Notification>")
                .count()
        })
        .max();
    assert!(largest.is_some_and(|n| n > 1), "{largest:?}");
    let config = world.tenant_config(0, &test_apis());
    assert!(!config.contains("pubsub_url"), "{config}");
}

#[test]
fn an_org_without_change_data_capture_records_the_worlds_stage_entries() {
    tests::assert_stage_entries_are_the_worlds(&org("kelp"), mapped);
}

fn test_apis() -> Apis {
    Apis {
        pipedrive_url: String::new(),
        pipedrive_requests_per_2s: 1,
        hubspot_url: String::new(),
        hubspot_requests_per_10s: 1,
        public_url: String::new(),
        zoho_url: String::new(),
        dynamics_url: String::new(),
        salesforce_url: "http://127.0.0.1:9".into(),
        pubsub_url: "http://127.0.0.1:9".into(),
    }
}

#[test]
fn change_events_carry_what_changed_and_gaps_nothing() {
    let world = world();
    let schema = schema();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for delivery in world.deliveries(&Habits::none()) {
        if delivery.version != Version::SalesforceChangeEvent {
            continue;
        }
        let change = avro::decode(&schema, &delivery.body).expect("decodable");
        *kinds.entry(change.change_type().to_owned()).or_default() += 1;
        let fields: Vec<&String> = change.fields.keys().collect();
        let Subject::Deal { before, after, .. } = &world.changes[delivery.change].subject else {
            panic!("only opportunities are followed through change events");
        };
        match change.change_type() {
            "CREATE" => {
                for field in [
                    "Name",
                    "StageName",
                    "Amount",
                    "CurrencyIsoCode",
                    "CloseDate",
                ] {
                    assert!(fields.iter().any(|f| *f == field), "{field} in {fields:?}");
                }
            }
            "UPDATE" => {
                let (before, after) = (before.as_ref().unwrap(), after.as_ref().unwrap());
                assert!(fields.iter().any(|f| *f == "LastModifiedDate"));
                assert_eq!(
                    fields.iter().any(|f| *f == "Amount"),
                    before.value != after.value,
                    "Amount only when it changed"
                );
                assert_eq!(
                    fields.iter().any(|f| *f == "StageName"),
                    world.tenants[0].stage_in(before).id != world.tenants[0].stage_in(after).id,
                    "StageName only when it changed"
                );
            }
            "GAP_UPDATE" | "DELETE" => assert!(fields.is_empty(), "{fields:?}"),
            other => panic!("{other}"),
        }
    }
    for kind in ["CREATE", "UPDATE", "GAP_UPDATE", "DELETE"] {
        assert!(kinds.get(kind).is_some_and(|n| *n > 0), "{kind}: {kinds:?}");
    }
}

#[test]
fn the_deals_the_pipeline_maps_end_as_the_worlds() {
    let world = world();
    let tenant = &world.tenants[0];
    #[derive(Default)]
    struct Known {
        status: Option<Newest<DealStatus>>,
        stage: Option<Newest<String>>,
        currency: Option<Newest<String>>,
        deleted: Option<Newest<bool>>,
        won_at: Option<Newest<tributary_model::Timestamp>>,
    }
    fn value<T: Clone>(slot: &Option<Newest<T>>) -> Option<Field<T>> {
        slot.as_ref().map(|(_, v)| v.clone())
    }
    fn slot<T>(slot: &mut Option<Newest<T>>) -> &mut Newest<T> {
        slot.get_or_insert((i64::MIN, Field::Unknown))
    }
    let mut deals: HashMap<String, Known> = HashMap::new();
    for (_, records) in mapped(&world, &world.deliveries(&Habits::default())).into_values() {
        for record in records {
            let Record::Deal(deal) = record else {
                continue;
            };
            let version = deal.version.at_micro;
            let known = deals.entry(deal.key.id.clone()).or_default();
            take(slot(&mut known.status), version, &deal.status);
            take(slot(&mut known.stage), version, &deal.stage_id);
            take(slot(&mut known.currency), version, &deal.currency);
            take(slot(&mut known.deleted), version, &deal.deleted);
            take(slot(&mut known.won_at), version, &deal.won_at);
        }
    }
    for deal in &tenant.deals {
        let known = &deals[&super::opportunity_id(deal.id)];
        if deal.deleted {
            assert_eq!(value(&known.deleted), Some(Field::Value(true)));
            continue;
        }
        let status = match deal.last.status {
            "won" => DealStatus::Won,
            "lost" => DealStatus::Lost,
            _ => DealStatus::Open,
        };
        assert_eq!(value(&known.status), Some(Field::Value(status)));
        assert_eq!(
            value(&known.stage),
            Some(Field::Value(tenant.stage_in(&deal.last).id.clone()))
        );
        assert_eq!(
            value(&known.currency),
            Some(Field::Value(deal.currency.to_owned()))
        );
        let won_at = value(&known.won_at)
            .and_then(|f| f.value().map(|t| t.seconds()))
            .filter(|_| status == DealStatus::Won);
        assert_eq!(won_at, deal.last.won_time, "won on the day it closed");
    }
}

#[test]
fn the_fake_rest_api_holds_each_record_as_of_each_change() {
    let world = world();
    let tenant = &world.tenants[0];
    let mut state = world.salesforce_state().expect("a Salesforce org");
    for change in &world.changes {
        world.apply_to_salesforce(&mut state, change);
    }
    let org = state.org(&account(tenant).access_token);
    let opportunities = &org.records["Opportunity"];
    // When each opportunity last entered a stage (of any outcome): what a
    // read's LastStageChangeDate must say, since a read makes a stage entry
    // keyed by that time.
    let mut entered: HashMap<usize, i64> = HashMap::new();
    for change in &world.changes {
        if let Subject::Deal {
            deal,
            before,
            after: Some(after),
            ..
        } = &change.subject
        {
            let moved = before
                .as_ref()
                .is_none_or(|b| tenant.stage_in(b).id != tenant.stage_in(after).id);
            if moved {
                entered.insert(*deal, change.at());
            }
        }
    }
    for deal in &tenant.deals {
        let id = super::opportunity_id(deal.id);
        if deal.deleted {
            assert!(!opportunities.contains_key(&id));
            assert!(org.deleted["Opportunity"].contains(&id));
            continue;
        }
        let record = &opportunities[&id];
        assert_eq!(record["StageName"], json!(tenant.stage_in(&deal.last).id));
        let index = tenant.deals.iter().position(|d| d.id == deal.id).unwrap();
        assert_eq!(
            record["LastStageChangeDate"],
            json!(super::rest_time(entered[&index])),
            "{id}"
        );
        assert_eq!(record["IsWon"], json!(deal.last.status == "won"));
        assert_eq!(
            record["AccountId"],
            json!(super::record_id("001", tenant.organizations[deal.org].id))
        );
    }
    let stages: Vec<&Value> = org.records["OpportunityStage"].values().collect();
    assert_eq!(stages.len(), 8);
    assert_eq!(org.records["User"].len(), tenant.reps.len());
    for organization in &tenant.organizations {
        let record = &org.records["Account"][&super::record_id("001", organization.id)];
        assert_eq!(record["Name"], json!(organization.last.name));
    }
}

#[test]
fn a_bulk_edits_change_events_are_one_transaction_numbered_in_order() {
    let world = world();
    let schema = schema();
    let mut transactions: BTreeMap<String, Vec<(i64, bool)>> = BTreeMap::new();
    for delivery in world.deliveries(&Habits::none()) {
        if delivery.version != Version::SalesforceChangeEvent {
            continue;
        }
        let change = avro::decode(&schema, &delivery.body).expect("decodable");
        let key = change.header["transactionKey"].as_str().unwrap().to_owned();
        let sequence = change.header["sequenceNumber"].as_i64().unwrap();
        let bulk = matches!(
            world.changes[delivery.change].subject,
            Subject::Deal { bulk: true, .. }
        );
        transactions.entry(key).or_default().push((sequence, bulk));
    }
    let shared: Vec<&Vec<(i64, bool)>> = transactions.values().filter(|t| t.len() > 1).collect();
    assert!(!shared.is_empty(), "some bulk edits");
    for transaction in transactions.values() {
        let numbers: Vec<i64> = transaction.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, (1..=numbers.len() as i64).collect::<Vec<_>>());
        if transaction.len() > 1 {
            assert!(
                transaction.iter().all(|(_, bulk)| *bulk),
                "only bulk edits share one"
            );
        }
    }
}
