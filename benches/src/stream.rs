//! A realistic enrichment workload: one Pipedrive account with people,
//! organizations and deals, and a stream of webhooks in which each deal and
//! person recurs many times (stage moves, edits, activities), mixing v1 and
//! v2 deliveries.

use serde_json::{Value, json};
use tributary_fake_apis::{Account, shapes};
use tributary_tests::enricher::{INDUSTRY_FIELD, SIZE_FIELD, omni_account};

/// The workload's size.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub people: i64,
    pub organizations: i64,
    pub deals: i64,
    pub events: usize,
}

/// The account the fake API serves: the sample account plus `shape`'s entities.
pub fn account(shape: Shape) -> Account {
    let mut account = omni_account();
    for (stage, name, probability) in [
        (3, "Demo Scheduled", 40),
        (4, "Proposal Made", 60),
        (5, "Negotiations Started", 80),
        (6, "Contract Sent", 90),
    ] {
        account
            .stages
            .insert(stage, shapes::stage(stage, 1, stage, name, probability));
    }
    for org in 0..shape.organizations {
        let id = 40_000 + org;
        account.organizations.insert(
            id,
            shapes::organization(
                id,
                &format!("Company {org}"),
                11,
                json!({SIZE_FIELD: 26 + org % 3, INDUSTRY_FIELD: 19 + org % 2}),
            ),
        );
    }
    for person in 0..shape.people {
        let id = 50_000 + person;
        let (last, email) = (
            format!("Person{person}"),
            format!(
                "person{person}@company{}.example",
                person % shape.organizations
            ),
        );
        account.persons.insert(
            id,
            shapes::person(&shapes::PersonShape {
                id,
                first_name: "Alex",
                last_name: &last,
                email: Some(&email),
                phone: Some("+1 555 0199"),
                job_title: Some("Buyer"),
                org_id: Some(40_000 + person % shape.organizations),
                owner_id: 11,
            }),
        );
    }
    for deal in 0..shape.deals {
        let id = 60_000 + deal;
        let person = 50_000 + deal % shape.people;
        account.deals.insert(
            id,
            shapes::deal(&shapes::DealShape {
                id,
                person_id: Some(person),
                org_id: Some(40_000 + (deal % shape.people) % shape.organizations),
                stage_id: 1 + deal % 6,
                pipeline_id: 1,
                value: 1_000.0 + (deal * 37 % 50) as f64 * 500.0,
                currency: "USD",
                status: "open",
                update_time: "2025-01-01T00:00:00Z",
            }),
        );
    }
    account
}

/// Webhook bodies: 70 % deal updates (v2 and v1 alternating), 20 % activities,
/// 10 % person updates. `batch` makes every event id and time distinct from
/// other batches' over the same entities.
pub fn webhooks(shape: Shape, batch: usize) -> Vec<Value> {
    let start_micros = 1_741_000_000_000_000_i64;
    (batch * shape.events..(batch + 1) * shape.events)
        .map(|n| {
            let n64 = n as i64;
            let micros = start_micros + n64 * 250_000;
            match n % 10 {
                0..=6 => deal_update(shape, n64, micros),
                7 | 8 => activity_added(shape, n64, micros),
                _ => person_updated(shape, n64, micros),
            }
        })
        .collect()
}

fn iso(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn v1_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn deal_update(shape: Shape, n: i64, micros: i64) -> Value {
    let deal = 60_000 + n % shape.deals;
    let person = 50_000 + (deal - 60_000) % shape.people;
    let org = 40_000 + (deal - 60_000) % shape.people % shape.organizations;
    let stage = 1 + (n / shape.deals) % 6;
    let value = 1_000.0 + (n % 97) as f64 * 250.0;
    if n % 2 == 0 {
        json!({
            "meta": {"action": "change", "entity": "deal", "entity_id": deal.to_string(), "id": format!("b0000000-0000-4000-8000-{n:012}"),
                     "company_id": "777", "user_id": "11", "timestamp": iso(micros), "version": "2.0", "webhook_id": "880002",
                     "change_source": "app", "attempt": 1, "is_bulk_edit": false, "host": "omni.pipedrive.com",
                     "permitted_user_ids": ["11"], "type": "general"},
            "data": {"id": deal, "title": format!("Deal {deal}"), "owner_id": 11, "value": value, "person_id": person, "org_id": org,
                     "stage_id": stage, "pipeline_id": 1, "currency": "USD", "add_time": "2025-01-01T00:00:00Z",
                     "update_time": iso(micros), "stage_change_time": iso(micros), "status": "open", "probability": null,
                     "expected_close_date": "2025-06-30", "channel": 5, "channel_id": "spring", "custom_fields": {}},
            "previous": {"stage_id": 1 + (stage % 6)}
        })
    } else {
        let snapshot = |stage: i64| {
            json!({"id": deal, "title": format!("Deal {deal}"), "user_id": 11, "owner_name": "Morgan Lee",
            "value": value, "person_id": person, "org_id": org, "stage_id": stage, "pipeline_id": 1, "currency": "USD",
            "add_time": "2025-01-01 00:00:00", "update_time": v1_time(micros), "status": "open", "channel": 5, "channel_id": "spring"})
        };
        json!({
            "v": 1, "matches_filters": {"current": []},
            "meta": {"v": 1, "action": "updated", "object": "deal", "id": deal, "company_id": 777, "user_id": 11,
                     "host": "omni.pipedrive.com", "timestamp": micros / 1_000_000, "timestamp_micro": micros,
                     "permitted_user_ids": [11], "trans_pending": false, "is_bulk_update": false,
                     "pipedrive_service_name": false, "matches_filters": {"current": []}, "webhook_id": "880001", "change_source": "app"},
            "retry": 0, "current": snapshot(stage), "previous": snapshot(1 + (stage % 6)), "event": "updated.deal"
        })
    }
}

fn activity_added(shape: Shape, n: i64, micros: i64) -> Value {
    let deal = 60_000 + n % shape.deals;
    let types = ["call", "email", "meeting"];
    json!({
        "meta": {"action": "create", "entity": "activity", "entity_id": (90_000 + n).to_string(), "id": format!("c0000000-0000-4000-8000-{n:012}"),
                 "company_id": "777", "user_id": "11", "timestamp": iso(micros), "version": "2.0", "webhook_id": "880002",
                 "change_source": "app", "attempt": 1, "is_bulk_edit": false, "host": "omni.pipedrive.com", "type": "general"},
        "data": {"id": 90_000 + n, "subject": "Follow-up", "type": types[(n % 3) as usize], "owner_id": 11, "deal_id": deal,
                 "person_id": 50_000 + (deal - 60_000) % shape.people, "org_id": null, "due_date": "2025-03-10", "done": n % 4 == 0,
                 "add_time": iso(micros), "update_time": iso(micros)},
        "previous": null
    })
}

fn person_updated(shape: Shape, n: i64, micros: i64) -> Value {
    let person = 50_000 + n % shape.people;
    json!({
        "meta": {"action": "change", "entity": "person", "entity_id": person.to_string(), "id": format!("d0000000-0000-4000-8000-{n:012}"),
                 "company_id": "777", "user_id": "11", "timestamp": iso(micros), "version": "2.0", "webhook_id": "880002",
                 "change_source": "app", "attempt": 1, "is_bulk_edit": false, "host": "omni.pipedrive.com", "type": "general"},
        "data": {"id": person, "name": format!("Alex Person{}", person - 50_000), "first_name": "Alex", "last_name": format!("Person{}", person - 50_000),
                 "owner_id": 11, "org_id": 40_000 + (person - 50_000) % shape.organizations,
                 "emails": [{"value": format!("person{}@company{}.example", person - 50_000, (person - 50_000) % shape.organizations), "primary": true}],
                 "phones": [], "job_title": "Buyer", "update_time": iso(micros), "custom_fields": {}},
        "previous": {"job_title": null}
    })
}
