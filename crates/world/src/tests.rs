use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use tributary_envelope::RawEvent;
use tributary_model::{Context, Mapping, Record};
use tributary_sources::WebhookSource;

use tributary_sources::pipedrive::{self, Snapshot};

use super::*;

/// The Pipedrive accounts of the small world (HubSpot's have tests of their own).
fn world() -> World {
    World::generate(WorldConfig::small(7).only(Platform::Pipedrive))
}

#[test]
fn the_same_seed_makes_the_same_world_and_deliveries() {
    let (a, b) = (world(), world());
    assert_eq!(a.changes.len(), b.changes.len());
    let habits = Habits::default();
    let (da, db) = (a.deliveries(&habits), b.deliveries(&habits));
    assert_eq!(da.len(), db.len());
    assert!(da.iter().zip(&db).all(|(x, y)| x.body == y.body));
    let other = World::generate(WorldConfig::small(8));
    assert_ne!(
        other.deliveries(&habits)[..50]
            .iter()
            .map(|d| d.body.clone())
            .collect::<Vec<_>>(),
        da[..50].iter().map(|d| d.body.clone()).collect::<Vec<_>>()
    );
}

/// The worlds with HubSpot tenants too.
fn every_world() -> Vec<World> {
    vec![
        world(),
        World::generate(WorldConfig::sample(7)),
        World::generate(WorldConfig::demo(7, DEFAULT_START)),
    ]
}

#[test]
fn every_change_falls_inside_the_period_in_time_order() {
    for world in every_world() {
        let end = world.config.start + world.config.days * DAY;
        assert!(
            world
                .changes
                .windows(2)
                .all(|w| w[0].at_micro <= w[1].at_micro)
        );
        for change in &world.changes {
            assert!(
                (world.config.start..end).contains(&change.at()),
                "{change:?} outside the period"
            );
        }
    }
}

#[test]
fn every_delivery_passes_the_collectors_prevalidation_with_one_event_id_per_change() {
    let world = world();
    let deliveries = world.deliveries(&Habits::default());
    let mut ids: BTreeMap<usize, HashSet<String>> = BTreeMap::new();
    for delivery in &deliveries {
        let tenant = &world.tenants[delivery.tenant].name;
        let checked = pipedrive::prevalidate(tenant, &delivery.body).unwrap_or_else(|refusal| {
            panic!("{refusal:?}\n{}", String::from_utf8_lossy(&delivery.body))
        });
        let change = &world.changes[delivery.change];
        assert_eq!(checked.object, change.object());
        assert_eq!(checked.attempt, delivery.attempt);
        ids.entry(delivery.change)
            .or_default()
            .insert(checked.event_id);
    }
    assert_eq!(ids.len(), world.changes.len(), "every change is delivered");
    assert!(
        ids.values().all(|ids| ids.len() == 1),
        "retries and duplicates keep their event id"
    );
    let distinct: HashSet<&String> = ids.values().flatten().collect();
    assert_eq!(
        distinct.len(),
        world.changes.len(),
        "no two changes share an id"
    );
}

#[test]
fn the_habits_show_up_in_the_deliveries() {
    let world = world();
    let deliveries = world.deliveries(&Habits::default());
    assert!(deliveries.len() > world.changes.len(), "some arrive twice");
    assert!(deliveries.iter().any(|d| d.attempt > 1), "retries");
    let versions: HashSet<Version> = deliveries.iter().map(|d| d.version).collect();
    assert_eq!(versions.len(), 2, "v1 and v2");
    let late = deliveries
        .windows(2)
        .any(|w| w[0].change > w[1].change && w[0].attempt == 1 && w[1].attempt == 1);
    assert!(late, "some arrive after a later change");
    let bulk = world
        .changes
        .iter()
        .any(|c| matches!(c.subject, Subject::Deal { bulk: true, .. }));
    assert!(bulk, "bulk edits");
    let plain = world.deliveries(&Habits::none());
    assert_eq!(plain.len(), world.changes.len());
    assert!(
        plain
            .iter()
            .enumerate()
            .all(|(i, d)| d.change == i && d.version == Version::V1)
    );
}

/// What the enricher reads of a deal snapshot: stage, status, value, won time.
type DealReading = (Option<i64>, Option<String>, Option<f64>, Option<String>);

fn deal_of(snapshot: &Option<Snapshot>) -> Option<DealReading> {
    match snapshot {
        Some(Snapshot::Deal(d)) => {
            Some((d.stage_id, d.status.clone(), d.value, d.won_time.clone()))
        }
        _ => None,
    }
}

#[test]
fn v1_and_v2_bodies_of_a_change_read_the_same() {
    let world = world();
    let mut compared = 0;
    for (index, change) in world.changes.iter().enumerate() {
        if change.object() != "deal" {
            continue;
        }
        let v1 = pipedrive::parse(
            &serde_json::to_vec(&world.webhook(index, Version::V1, 1, false)).expect("json"),
        )
        .expect("v1 parses");
        let v2 = pipedrive::parse(
            &serde_json::to_vec(&world.webhook(index, Version::V2, 1, false)).expect("json"),
        )
        .expect("v2 parses");
        assert_eq!(v1.meta.timestamp_micro, v2.meta.timestamp_micro);
        assert_eq!(deal_of(&v1.current), deal_of(&v2.current), "{change:?}");
        if change.action == Action::Deleted {
            assert_eq!(deal_of(&v1.previous), deal_of(&v2.previous));
        }
        compared += 1;
    }
    assert!(compared > 100);
}

#[test]
fn the_api_answers_from_the_state_the_changes_made() {
    let world = world();
    let tenant = &world.tenants[0];
    let mut accounts = world.accounts();
    let token = &tenant.pipedrive().expect("a Pipedrive tenant").api_token;
    let account = accounts.get_mut(token).expect("an account");
    assert!(account.persons.is_empty() && !account.stages.is_empty());
    for change in world.changes.iter().filter(|c| c.tenant == 0) {
        world.apply(account, change);
    }
    assert_eq!(account.persons.len(), tenant.persons.len());
    let live = tenant.deals.iter().filter(|d| !d.deleted).count();
    assert_eq!(account.deals.len(), live, "deleted deals are gone");
    let deal = tenant
        .deals
        .iter()
        .find(|d| !d.deleted)
        .expect("a live deal");
    assert_eq!(account.deals[&deal.id]["status"], deal.last.status);
    let verdicts = world.email_verdicts();
    assert_eq!(
        verdicts.len(),
        world.tenants.iter().map(|t| t.persons.len()).sum::<usize>()
    );
    assert!(
        verdicts
            .values()
            .any(|v| v["sources"].as_array().is_some_and(|s| s.len() == 2))
    );
    assert!(verdicts.values().any(|v| v["result"] == "undeliverable"));
}

#[test]
fn people_and_organizations_are_added_before_what_refers_to_them() {
    for tenant in every_world().iter().flat_map(|w| &w.tenants) {
        for deal in &tenant.deals {
            let person = &tenant.persons[deal.person];
            assert!(
                person.add_time < deal.add_time,
                "deal {} before its person",
                deal.id
            );
            assert!(tenant.organizations[person.org].add_time < person.add_time);
        }
    }
}

/// Every delivery to the world's only tenant as the collector's `source`
/// takes it (posted to `uri` with the delivery's headers): each event's
/// change and raw event.
pub(crate) fn raw_events(
    world: &World,
    source: &dyn WebhookSource,
    uri: &str,
    deliveries: &[Delivery],
) -> Vec<(usize, RawEvent)> {
    let tenant = &world.tenants[0];
    let url = format!("http://collector.example{uri}");
    let uri: http::Uri = uri.parse().expect("a path");
    let mut raws = Vec::new();
    for delivery in deliveries {
        let mut headers = http::HeaderMap::new();
        for (name, value) in world.delivery_headers(delivery, &url, 0) {
            headers.insert(name, value.parse().expect("a header value"));
        }
        let body = Bytes::from(delivery.body.clone());
        let request = tributary_sources::WebhookRequest {
            method: &http::Method::POST,
            uri: &uri,
            headers: &headers,
            body: &body,
        };
        source
            .authenticate(&tenant.name, &request)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let split = source
            .split(&tenant.name, &request)
            .unwrap_or_else(|e| panic!("{e:?}: {}", String::from_utf8_lossy(&body)));
        assert!(
            split.rejected.is_empty(),
            "{:?}: {}",
            split.rejected,
            String::from_utf8_lossy(&body)
        );
        for event in split.events {
            let raw = event
                .keys
                .raw_event(&tenant.name, tenant.source(), 1, event.body);
            raws.push((delivery.change, raw));
        }
    }
    raws
}

/// Every delivery to the world's only tenant through a platform's
/// collector source (posted to `uri`),
/// its enricher (`enrich`: the flat event of a raw one) and its mapping:
/// each distinct event's change and records.
pub(crate) fn through_the_pipeline(
    world: &World,
    source: &dyn WebhookSource,
    uri: &str,
    deliveries: &[Delivery],
    enrich: impl Fn(&RawEvent) -> serde_json::Map<String, serde_json::Value>,
    mapping: &dyn Mapping,
) -> Mapped {
    let mut events = HashMap::new();
    let tenant = &world.tenants[0];
    for (change, raw) in raw_events(world, source, uri, deliveries) {
        let fields = enrich(&raw);
        let context = Context {
            tenant: &tenant.name,
            source: tenant.source(),
            received_at_micro: 1,
            missing: &[],
        };
        let records = mapping.map(&context, &fields).expect("mapped").records;
        events.insert(raw.event_id, (change, records));
    }
    events
}

/// The open-stage entries among events' records, one per deal and time as
/// the table keeps them: (deal id, stage, second).
pub(crate) fn recorded_entries(events: Mapped, tenant: &Tenant) -> Vec<(String, String, i64)> {
    let open: HashSet<&str> = tenant.pipelines[0]
        .stages
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    let mut recorded: Vec<(String, String, i64)> = events
        .into_values()
        .flat_map(|(_, records)| records)
        .filter_map(|r| match r {
            Record::StageTransition(t) if open.contains(t.to_stage_id.as_str()) => {
                Some((t.deal.id, t.to_stage_id, t.entered_at_micro / 1_000_000))
            }
            _ => None,
        })
        .collect();
    recorded.sort();
    // Rows are keyed by deal and entry time: every report of one entry (a
    // message carrying the same LastStageChangeDate) is one row.
    recorded.dedup();
    recorded
}

/// The world's own open-stage entries of `tenant`: (deal id, stage, second).
pub(crate) fn world_entries(tenant: &Tenant) -> Vec<(String, String, i64)> {
    let mut entries: Vec<(String, String, i64)> = tenant
        .deals
        .iter()
        .flat_map(|d| {
            d.entries.iter().map(move |(p, s, at)| {
                (
                    tenant.record_id(d.id),
                    tenant.pipelines[*p].stages[*s].id.clone(),
                    *at,
                )
            })
        })
        .collect();
    entries.sort();
    entries
}

/// What the pipeline makes of deliveries: each distinct event's change and
/// records.
pub(crate) type Mapped = HashMap<String, (usize, Vec<Record>)>;

/// A platform that sends each change on its own (`version`): some
/// deliveries twice, some after a later change, and still one event per
/// change through `mapped`.
pub(crate) fn assert_one_event_per_change(
    world: &World,
    version: Version,
    mapped: impl Fn(&World, &[Delivery]) -> Mapped,
) {
    let deliveries = world.deliveries(&Habits::default());
    assert!(deliveries.iter().all(|d| d.version == version));
    assert!(
        deliveries.len() > world.changes.len(),
        "some deliveries arrive twice"
    );
    let late = deliveries
        .windows(2)
        .any(|w| w[0].change > w[1].change && w[0].attempt == 1 && w[1].attempt == 1);
    assert!(late, "some arrive after a later change");
    let events = mapped(world, &deliveries);
    assert_eq!(events.len(), world.changes.len(), "one event per change");
    assert_eq!(world.distinct_events(), world.changes.len());
}

/// The open-stage entries the pipeline records for the world's only
/// tenant (through `mapped`) are the world's own.
pub(crate) fn assert_stage_entries_are_the_worlds(
    world: &World,
    mapped: impl Fn(&World, &[Delivery]) -> Mapped,
) {
    let tenant = &world.tenants[0];
    let recorded = recorded_entries(mapped(world, &world.deliveries(&Habits::none())), tenant);
    let entries = world_entries(tenant);
    assert!(entries.len() > 100, "{}", entries.len());
    assert_eq!(recorded, entries);
}

/// A field as of the newest event that knew it, whatever order the events
/// came in (versions decide, as in ClickHouse): its version and value.
pub(crate) type Newest<T> = (i64, tributary_model::Field<T>);

/// Takes `value` at `version` into `newest` when it is known and not older.
pub(crate) fn take<T: Clone>(
    newest: &mut Newest<T>,
    version: i64,
    value: &tributary_model::Field<T>,
) {
    if value.is_known() && version >= newest.0 {
        *newest = (version, value.clone());
    }
}
