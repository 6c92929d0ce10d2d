//! Entities in Pipedrive API v2's response shape (users in v1's), for
//! filling a fake account.

use serde_json::{Value, json};

pub fn user(id: i64, name: &str) -> Value {
    json!({"id": id, "name": name, "email": format!("user{id}@example.com"), "active_flag": true, "is_deleted": false})
}

pub fn pipeline(id: i64, name: &str) -> Value {
    json!({"id": id, "name": name, "order_nr": id, "is_selected": id == 1, "is_deleted": false,
           "is_deal_probability_enabled": true, "add_time": "2024-01-01T00:00:00Z", "update_time": "2024-01-01T00:00:00Z"})
}

pub fn stage(id: i64, pipeline_id: i64, order_nr: i64, name: &str, deal_probability: i64) -> Value {
    json!({"id": id, "order_nr": order_nr, "name": name, "is_deleted": false, "deal_probability": deal_probability,
           "pipeline_id": pipeline_id, "is_deal_rot_enabled": false, "days_to_rotten": null,
           "add_time": "2024-01-01T00:00:00Z", "update_time": "2024-01-01T00:00:00Z"})
}

/// A person to put in a fake account.
#[derive(Debug, Clone, Default)]
pub struct PersonShape<'a> {
    pub id: i64,
    pub first_name: &'a str,
    pub last_name: &'a str,
    /// Becomes the primary entry of `emails`.
    pub email: Option<&'a str>,
    /// Becomes the primary entry of `phones`.
    pub phone: Option<&'a str>,
    pub job_title: Option<&'a str>,
    pub org_id: Option<i64>,
    pub owner_id: i64,
}

pub fn person(p: &PersonShape<'_>) -> Value {
    let entries = |value: Option<&str>| match value {
        Some(v) => json!([{"value": v, "primary": true, "label": "work"}]),
        None => json!([]),
    };
    json!({"id": p.id, "name": format!("{} {}", p.first_name, p.last_name), "first_name": p.first_name,
           "last_name": p.last_name, "owner_id": p.owner_id, "org_id": p.org_id, "add_time": "2024-06-01T09:00:00Z",
           "update_time": "2025-01-10T09:00:00Z", "emails": entries(p.email), "phones": entries(p.phone),
           "is_deleted": false, "visible_to": 3, "label_ids": [], "picture_id": null, "job_title": p.job_title,
           "custom_fields": {}})
}

pub fn organization(id: i64, name: &str, owner_id: i64, custom_fields: Value) -> Value {
    json!({"id": id, "name": name, "owner_id": owner_id, "add_time": "2024-06-01T09:00:00Z",
           "update_time": "2025-01-10T09:00:00Z", "is_deleted": false, "visible_to": 3, "label_ids": [],
           "address": {"value": null}, "custom_fields": custom_fields})
}

/// A deal to put in a fake account, as `GET /api/v2/deals` lists it.
#[derive(Debug, Clone)]
pub struct DealShape<'a> {
    pub id: i64,
    pub person_id: Option<i64>,
    pub org_id: Option<i64>,
    pub stage_id: i64,
    pub pipeline_id: i64,
    pub value: f64,
    pub currency: &'a str,
    pub status: &'a str,
    pub update_time: &'a str,
}

pub fn deal(d: &DealShape<'_>) -> Value {
    json!({"id": d.id, "title": format!("Deal {}", d.id), "owner_id": 1, "person_id": d.person_id, "org_id": d.org_id,
           "pipeline_id": d.pipeline_id, "stage_id": d.stage_id, "value": d.value, "currency": d.currency,
           "add_time": "2024-06-01T09:00:00Z", "update_time": d.update_time, "stage_change_time": d.update_time,
           "is_deleted": false, "is_archived": false, "status": d.status, "probability": null, "lost_reason": null,
           "visible_to": 3, "close_time": null, "won_time": null, "lost_time": null, "expected_close_date": null,
           "label_ids": [], "origin": "ManuallyCreated", "origin_id": null, "channel": null, "channel_id": null,
           "custom_fields": {}})
}

/// A verifier verdict (`data` of the answer) with `sources` as (domain, uri).
pub fn email_verdict(email: &str, status: &str, result: &str, sources: &[(&str, &str)]) -> Value {
    let sources: Vec<Value> = sources
        .iter()
        .map(|(domain, uri)| json!({"domain": domain, "uri": uri, "extracted_on": "2024-11-02", "last_seen_on": "2025-02-20", "still_on_page": true}))
        .collect();
    let deliverable = result == "deliverable";
    json!({"status": status, "result": result, "score": if deliverable { 94 } else { 30 }, "email": email,
           "regexp": true, "gibberish": false, "disposable": status == "disposable", "webmail": status == "webmail",
           "mx_records": deliverable, "smtp_server": deliverable, "smtp_check": deliverable, "accept_all": false,
           "block": false, "sources": sources})
}
