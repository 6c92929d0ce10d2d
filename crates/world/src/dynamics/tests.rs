use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use tributary_model::{DealStatus, Field, Record};
use tributary_sources::dynamics::enrich::DynamicsEnricher;
use tributary_sources::dynamics::mapping::DynamicsMapping;
use tributary_sources::dynamics::{Dynamics, tenant_settings};

use crate::*;
use tests::{Newest, take};

/// The small world's Dynamics organization.
fn world() -> World {
    World::generate(WorldConfig::small(7).only(Platform::Dynamics))
}

fn account(tenant: &Tenant) -> &DynamicsAccount {
    match &tenant.crm {
        CrmAccount::Dynamics(account) => account,
        _ => panic!("a Dynamics organization"),
    }
}

fn section(tenant: &Tenant) -> Value {
    let account = account(tenant);
    json!({"organization_id": account.organization_id, "secret": account.webhook_key,
        "currency": tenant.home_currency})
}

/// Every delivery through the collector's Dynamics source and the enricher
/// (without the Web API) into the mapping: each distinct event's records.
fn mapped(world: &World, deliveries: &[Delivery]) -> tests::Mapped {
    let tenant = &world.tenants[0];
    let section = section(tenant);
    let source = Dynamics::from_sections(vec![(tenant.name.as_str(), &section)]).expect("settings");
    let enricher = DynamicsEnricher::new(BTreeMap::from([(
        tenant.name.clone(),
        tenant_settings(&section).expect("settings"),
    )]));
    let path = world.delivery_path(&deliveries[0]);
    tests::through_the_pipeline(
        world,
        &source,
        &path,
        deliveries,
        |raw| {
            let (flat, _) = enricher.flat_event(raw).expect("enriched");
            flat.into_map().expect("unique fields")
        },
        &DynamicsMapping,
    )
}

fn bodies(world: &World) -> Vec<Value> {
    world
        .deliveries(&Habits::none())
        .iter()
        .map(|d| serde_json::from_slice(&d.body).expect("JSON"))
        .collect()
}

/// A context's input parameter or image `key`.
fn keyed<'a>(list: &'a Value, key: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

fn attribute_names(entity: &Value) -> Vec<&str> {
    entity["Attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| kv["key"].as_str())
        .collect()
}

#[test]
fn every_change_is_one_event_the_collector_takes_however_often_it_arrives() {
    let world = world();
    tests::assert_one_event_per_change(&world, Version::Dynamics, mapped);
    assert!(world.tenants[0].activities.is_empty());
}

#[test]
fn the_stage_entries_the_pipeline_records_are_the_worlds() {
    tests::assert_stage_entries_are_the_worlds(&world(), mapped);
}

#[test]
fn the_deals_the_pipeline_maps_end_as_the_worlds() {
    let world = world();
    let tenant = &world.tenants[0];
    // Each deal's fields as of the newest event that knew them, whatever
    // order the events came in (versions decide, as in ClickHouse).
    /// A deal's status, stage and deletion.
    type Known = (Newest<DealStatus>, Newest<String>, Newest<bool>);
    let mut deals: HashMap<String, Known> = HashMap::new();
    for (_, records) in mapped(&world, &world.deliveries(&Habits::default())).into_values() {
        for record in records {
            let Record::Deal(deal) = record else {
                continue;
            };
            let version = deal.version.at_micro;
            let entry = deals.entry(deal.key.id.clone()).or_insert_with(|| {
                (
                    (i64::MIN, Field::Unknown),
                    (i64::MIN, Field::Unknown),
                    (i64::MIN, Field::Unknown),
                )
            });
            take(&mut entry.0, version, &deal.status);
            take(&mut entry.1, version, &deal.stage_id);
            take(&mut entry.2, version, &deal.deleted);
        }
    }
    assert_eq!(deals.len(), tenant.deals.len());
    for deal in &tenant.deals {
        let ((_, status), (_, stage), (_, deleted)) = &deals[&tenant.record_id(deal.id)];
        assert_eq!(deleted.value() == Some(&true), deal.deleted, "{}", deal.id);
        if deal.deleted {
            continue;
        }
        let want = match deal.last.status {
            "won" => DealStatus::Won,
            "lost" => DealStatus::Lost,
            _ => DealStatus::Open,
        };
        assert_eq!(*status, Field::Value(want), "{}", deal.id);
        let pipeline = &tenant.pipelines[deal.last.pipeline];
        assert_eq!(
            *stage,
            Field::Value(pipeline.stages[deal.last.stage].id.clone())
        );
    }
}

#[test]
fn contexts_carry_what_each_step_is_registered_with() {
    let world = world();
    let bodies = bodies(&world);
    let opportunities: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["PrimaryEntityName"] == "opportunity")
        .collect();
    let message = |name: &'static str| {
        opportunities
            .iter()
            .filter(move |b| b["MessageName"] == name)
    };
    // A create and an update carry the post image of every attribute; an
    // update's target only what it set. Some updates that neither move nor
    // close the opportunity arrive stripped for size: no image, no target.
    let stripped = |b: &&&Value| b["InputParameters"] == json!([]);
    for body in message("Create").chain(message("Update").filter(|b| !stripped(b))) {
        let image = keyed(&body["PostEntityImages"], "PostImage").expect("a post image");
        for name in [
            "name",
            "estimatedvalue",
            "transactioncurrencyid",
            "statecode",
            "stepname",
            "ownerid",
            "modifiedon",
        ] {
            assert!(attribute_names(image).contains(&name), "{name}");
        }
    }
    let target = |b: &&&Value| keyed(&b["InputParameters"], "Target").cloned();
    let moves = message("Update")
        .filter(|b| target(b).is_some_and(|t| attribute_names(&t).contains(&"stepname")))
        .count();
    let others = message("Update")
        .filter(|b| target(b).is_some_and(|t| !attribute_names(&t).contains(&"stepname")))
        .count();
    let stripped: Vec<&&Value> = message("Update").filter(stripped).collect();
    assert!(stripped.len() > 2, "{}", stripped.len());
    for body in &stripped {
        assert_eq!(body["PostEntityImages"], json!([]));
    }
    let deliveries = world.deliveries(&Habits::none());
    let headed = deliveries
        .iter()
        .filter(|d| {
            world
                .delivery_headers(d, "http://collector.example/", 0)
                .iter()
                .any(|(name, _)| *name == tributary_sources::dynamics::SIZE_EXCEEDED_HEADER)
        })
        .count();
    assert_eq!(headed, stripped.len(), "each stripped context says so");
    assert!(moves > 50 && others > 10, "{moves} {others}");
    // A win or a loss carries its close, on a date; the ids are GUIDs.
    let wins: Vec<&&Value> = message("Win").collect();
    assert!(!wins.is_empty() && message("Lose").count() > 0);
    for win in wins {
        let close = keyed(&win["InputParameters"], "OpportunityClose").expect("a close");
        let end = keyed(&close["Attributes"], "actualend")
            .and_then(Value::as_str)
            .expect("actualend");
        let ms: i64 = end
            .trim_start_matches("/Date(")
            .trim_end_matches(")/")
            .parse()
            .expect("milliseconds");
        assert_eq!(ms % (DAY * 1_000), 0, "closed on a date: {end}");
        assert_eq!(
            keyed(&win["InputParameters"], "Status").expect("a status")["Value"],
            3
        );
        assert!(
            tributary_sources::dynamics::context::guid(win["PrimaryEntityId"].as_str().unwrap())
                .is_some()
        );
    }
    assert!(message("Delete").count() > 0);
    // Accounts' and contacts' steps have no image.
    assert!(
        bodies
            .iter()
            .filter(|b| b["PrimaryEntityName"] != "opportunity")
            .all(|b| b["PostEntityImages"] == json!([]))
    );
    assert!(bodies.iter().any(|b| b["PrimaryEntityName"] == "contact"));
}

#[tokio::test]
async fn every_opportunitys_currency_comes_from_the_fake_web_api() {
    let world = world();
    let tenant = &world.tenants[0];
    let fake = tributary_fake_apis::dynamics::FakeDataverse::start(
        world.dynamics_state().expect("a Dynamics organization"),
    )
    .await
    .expect("fake Dataverse");
    let mut section = section(tenant);
    section["web_api_url"] = json!(fake.base_url());
    section["access_token"] = json!(account(tenant).access_token);
    let settings = tributary_enrichment::EnrichmentSettings::default();
    let enricher =
        tributary_sources::dynamics::enrich::build(&tributary_sources::EnricherContext {
            tenants: vec![(tenant.name.as_str(), &section)],
            settings: &settings,
            http: reqwest::Client::new(),
            email: None,
        })
        .expect("settings");
    let source = Dynamics::from_sections(vec![(tenant.name.as_str(), &section)]).expect("settings");
    let creates: Vec<Delivery> = world
        .deliveries(&Habits::none())
        .into_iter()
        .filter(|d| {
            matches!(
                world.changes[d.change].subject,
                Subject::Deal { before: None, .. }
            )
        })
        .collect();
    let raws = tests::raw_events(&world, &source, &world.delivery_path(&creates[0]), &creates);
    let mut currencies = std::collections::BTreeSet::new();
    for (change, raw) in raws {
        let enriched = enricher.enrich(&raw).await.expect("enriched");
        assert!(enriched.complete, "{:?}", enriched.missing);
        let fields: serde_json::Map<String, Value> =
            serde_json::from_slice(&enriched.payload).expect("JSON");
        let Subject::Deal { deal, .. } = &world.changes[change].subject else {
            unreachable!("a deal's create");
        };
        let want = tenant.deals[*deal].currency;
        assert_eq!(fields["event_currency"], want);
        currencies.insert(want);
    }
    assert!(
        currencies.len() > 2,
        "deals in several currencies: {currencies:?}"
    );
    assert_eq!(
        fake.state()
            .calls_to("/api/data/v9.2/transactioncurrencies"),
        1,
        "the currencies are read once"
    );

    // A context stripped for size has its opportunity read as the Web API
    // has it (here: after every change).
    for change in &world.changes {
        world.apply_to_dataverse(&mut fake.state(), change);
    }
    let stripped: Vec<Delivery> = world
        .deliveries(&Habits::none())
        .into_iter()
        .filter(|d| {
            serde_json::from_slice::<Value>(&d.body).expect("JSON")["InputParameters"] == json!([])
        })
        .collect();
    assert!(!stripped.is_empty());
    for (change, raw) in tests::raw_events(
        &world,
        &source,
        &world.delivery_path(&stripped[0]),
        &stripped,
    ) {
        let enriched = enricher.enrich(&raw).await.expect("enriched");
        assert!(enriched.complete, "{:?}", enriched.missing);
        let fields: serde_json::Map<String, Value> =
            serde_json::from_slice(&enriched.payload).expect("JSON");
        let Subject::Deal { deal, .. } = &world.changes[change].subject else {
            unreachable!("an opportunity's update");
        };
        let deal = &tenant.deals[*deal];
        if !deal.deleted {
            assert_eq!(
                fields.get("attr_name"),
                Some(&json!(deal.last.title)),
                "{fields:?}"
            );
            assert_eq!(fields.get("event_currency"), Some(&json!(deal.currency)));
        }
    }
    assert!(fake.state().calls_to("/api/data/v9.2/opportunities(") >= stripped.len());
}
