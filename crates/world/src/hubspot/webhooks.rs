//! The app webhooks HubSpot sends for the world's changes.
//!
//! Each change makes one or more thin events, read off the portal as the
//! change leaves it: a record's creation (with a `propertyChange` for each
//! subscribed property it was created with, and for a deal the association
//! with its company and contact), one `propertyChange` per subscribed
//! property a change moved, a deletion, a merge, a restore. Deals, contacts
//! and companies use the legacy subscriptions (`deal.propertyChange`);
//! engagements the generic ones (`object.propertyChange` with
//! `objectTypeId`). A delivery is a JSON array of up to 100 events of one
//! portal, signed with `X-HubSpot-Signature-v3`; HubSpot's habits (the
//! shares of [`Habits`]) give duplicates (the same event again), retries
//! (`attemptNumber` > 0, same `eventId`) and events late in a later batch.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tributary_fake_apis::hubspot::{HubSpotPortal, ObjectType};

use super::api::{change_source, definitions, record_of};
use super::{APP_ID, LEAD_SOURCE};
use crate::World;
use crate::model::*;
use crate::webhooks::{Delivery, Habits, Version};

/// HubSpot batches events that happen within this long of each other.
const BATCH_WINDOW_MS: i64 = 15 * 60 * 1_000;
/// At most this many events in one request.
pub const MAX_BATCH: usize = 100;

/// An association a record gained (or lost) with another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationChange {
    /// HubSpot's name for it, e.g. `DEAL_TO_COMPANY`.
    pub association_type: &'static str,
    pub to_object_id: u64,
    pub primary: bool,
    pub removed: bool,
}

/// One webhook event: what HubSpot says about one change of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSpotEvent {
    pub tenant: usize,
    /// Index into `World::changes`.
    pub change: usize,
    /// HubSpot's `eventId`: the same on every delivery of this event.
    pub event_id: u64,
    pub subscription_id: u64,
    pub object_type: ObjectType,
    pub object_id: u64,
    /// `creation`, `propertyChange`, `deletion`, `merge`, `restore`, `associationChange`.
    pub action: &'static str,
    pub occurred_at_ms: i64,
    /// Name and new value of the changed property (`propertyChange`).
    pub property: Option<(String, String)>,
    /// The records merged into this one (`merge`).
    pub merged_object_ids: Vec<u64>,
    pub association: Option<AssociationChange>,
    /// `CRM_UI` or `API`.
    pub change_source: String,
    pub source_id: Option<String>,
}

/// The properties the app subscribes to changes of, per object type
/// (HubSpot's webhooks cannot subscribe to an email's subject).
pub(crate) fn subscribed(object_type: ObjectType) -> &'static [&'static str] {
    match object_type {
        ObjectType::Deals => &[
            "dealname",
            "amount",
            "deal_currency_code",
            "pipeline",
            "dealstage",
            "closedate",
            "hubspot_owner_id",
            "closed_lost_reason",
            LEAD_SOURCE,
        ],
        ObjectType::Contacts => &["firstname", "lastname", "email", "jobtitle"],
        ObjectType::Companies => &["name", "domain", "address"],
        ObjectType::Calls => &[
            "hs_call_title",
            "hs_call_status",
            "hs_timestamp",
            "hubspot_owner_id",
        ],
        ObjectType::Emails => &["hs_email_status", "hs_timestamp", "hubspot_owner_id"],
        ObjectType::Meetings => &[
            "hs_meeting_title",
            "hs_meeting_outcome",
            "hs_timestamp",
            "hubspot_owner_id",
        ],
        ObjectType::Tasks => &[
            "hs_task_subject",
            "hs_task_status",
            "hs_timestamp",
            "hs_task_completion_date",
            "hubspot_owner_id",
        ],
        ObjectType::Notes => &[],
    }
}

/// Deals, contacts and companies have their own subscription types
/// (`deal.creation`); the other objects HubSpot's generic ones (`object.creation`).
fn legacy(object_type: ObjectType) -> bool {
    matches!(
        object_type,
        ObjectType::Deals | ObjectType::Contacts | ObjectType::Companies
    )
}

const ACTIONS: [&str; 6] = [
    "creation",
    "propertyChange",
    "deletion",
    "merge",
    "restore",
    "associationChange",
];

/// The app's subscription that fires an event: one per object type and
/// action, and per property for property changes.
fn subscription_id(object_type: ObjectType, action: &str, property: Option<&str>) -> u64 {
    let object = ObjectType::ALL
        .iter()
        .position(|t| *t == object_type)
        .unwrap_or(0) as u64;
    let action = ACTIONS.iter().position(|a| *a == action).unwrap_or(0) as u64;
    let property = property
        .and_then(|p| subscribed(object_type).iter().position(|s| *s == p))
        .map_or(0, |i| i as u64 + 1);
    3_100_000 + object * 1_000 + action * 100 + property
}

impl HubSpotEvent {
    /// HubSpot's `subscriptionType`: `deal.propertyChange`, `object.creation`...
    pub fn subscription_type(&self) -> String {
        let prefix = if legacy(self.object_type) {
            self.object_type.singular()
        } else {
            "object"
        };
        format!("{prefix}.{}", self.action)
    }

    /// The event as one element of a delivery's array.
    pub fn element(&self, portal_id: &str, attempt_number: u32) -> Value {
        let portal: u64 = portal_id.parse().expect("a numeric portal id");
        let mut element = json!({
            "eventId": self.event_id,
            "subscriptionId": self.subscription_id,
            "portalId": portal,
            "appId": APP_ID,
            "occurredAt": self.occurred_at_ms,
            "subscriptionType": self.subscription_type(),
            "attemptNumber": attempt_number,
            "objectId": self.object_id,
            "changeSource": self.change_source,
        });
        if let Some(source) = &self.source_id {
            element["sourceId"] = json!(source);
        }
        if !legacy(self.object_type) {
            element["objectTypeId"] = json!(self.object_type.type_id());
        }
        match self.action {
            "creation" => element["changeFlag"] = json!("NEW"),
            "deletion" => element["changeFlag"] = json!("DELETED"),
            "propertyChange" => {
                if let Some((name, value)) = &self.property {
                    element["propertyName"] = json!(name);
                    element["propertyValue"] = json!(value);
                }
            }
            "merge" => {
                element["primaryObjectId"] = json!(self.object_id);
                element["mergedObjectIds"] = json!(self.merged_object_ids);
                element["newObjectId"] = json!(self.object_id);
                element["numberOfPropertiesMoved"] = json!(0);
            }
            "associationChange" => {
                if let Some(association) = &self.association {
                    // The record whose association changed is also its
                    // `objectId`, so every element names its object alike.
                    element["associationType"] = json!(association.association_type);
                    element["fromObjectId"] = json!(self.object_id);
                    element["toObjectId"] = json!(association.to_object_id);
                    element["associationRemoved"] = json!(association.removed);
                    element["isPrimaryAssociation"] = json!(association.primary);
                }
            }
            _ => {}
        }
        element
    }
}

/// The subscribed properties' current values of a record (`None`: never set).
fn values(portal: &HubSpotPortal, record: (ObjectType, u64)) -> Vec<Option<String>> {
    let object = portal.object(record.0, record.1);
    subscribed(record.0)
        .iter()
        .map(|name| object.and_then(|o| o.value(name)).map(str::to_owned))
        .collect()
}

impl World {
    /// Replays every HubSpot tenant's changes on portals made from their
    /// definitions; `visit` sees each change's index, the portal as the
    /// change leaves it and the events HubSpot sends for it.
    pub(crate) fn replay_hubspot(
        &self,
        mut visit: impl FnMut(usize, &HubSpotPortal, Vec<HubSpotEvent>),
    ) {
        let mut portals: HashMap<usize, HubSpotPortal> = self
            .tenants
            .iter()
            .enumerate()
            .filter(|(_, t)| t.platform() == Platform::HubSpot)
            .map(|(i, t)| (i, definitions(t)))
            .collect();
        // HubSpot's event ids are ten-digit numbers.
        let mut next_event_id = 4_000_000_000 + (self.config.seed % 1_000) * 1_000_000;
        for (index, change) in self.changes.iter().enumerate() {
            let Some(portal) = portals.get_mut(&change.tenant) else {
                continue;
            };
            let tenant = &self.tenants[change.tenant];
            let record = record_of(tenant, change);
            let before = values(portal, record);
            self.apply_to_portal(portal, change);
            let after = values(portal, record);
            let source = change_source(tenant, change);
            let event = |action: &'static str| HubSpotEvent {
                tenant: change.tenant,
                change: index,
                event_id: 0,
                subscription_id: subscription_id(record.0, action, None),
                object_type: record.0,
                object_id: record.1,
                action,
                occurred_at_ms: change.at_micro.div_euclid(1_000),
                property: None,
                merged_object_ids: Vec::new(),
                association: None,
                change_source: source.source_type.clone(),
                source_id: source.source_id.clone(),
            };
            let property_change = |name: &str, value: &str| HubSpotEvent {
                subscription_id: subscription_id(record.0, "propertyChange", Some(name)),
                property: Some((name.to_owned(), value.to_owned())),
                ..event("propertyChange")
            };
            let mut events = Vec::new();
            match change.action {
                Action::Added => {
                    events.push(event("creation"));
                    if legacy(record.0) {
                        for (name, value) in subscribed(record.0).iter().zip(&after) {
                            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                                events.push(property_change(name, value));
                            }
                        }
                    }
                    if let Subject::Deal { deal, .. } = &change.subject {
                        let deal = &tenant.deals[*deal];
                        let associations = [
                            ("DEAL_TO_COMPANY", tenant.organizations[deal.org].id, true),
                            ("DEAL_TO_CONTACT", tenant.persons[deal.person].id, false),
                        ];
                        for (association_type, to, primary) in associations {
                            events.push(HubSpotEvent {
                                association: Some(AssociationChange {
                                    association_type,
                                    to_object_id: to as u64,
                                    primary,
                                    removed: false,
                                }),
                                ..event("associationChange")
                            });
                        }
                    }
                }
                Action::Updated => {
                    for ((name, old), new) in subscribed(record.0).iter().zip(&before).zip(&after) {
                        if old != new {
                            events.push(property_change(name, new.as_deref().unwrap_or("")));
                        }
                    }
                }
                Action::Deleted => events.push(event("deletion")),
                Action::Restored => events.push(event("restore")),
                Action::Merged => {
                    let merged = match &change.subject {
                        Subject::Deal { merged_from, .. } => merged_from.map(|id| id as u64),
                        _ => None,
                    };
                    events.push(HubSpotEvent {
                        merged_object_ids: merged.into_iter().collect(),
                        ..event("merge")
                    });
                }
            }
            debug_assert!(!events.is_empty(), "HubSpot sends something for {change:?}");
            for event in &mut events {
                event.event_id = next_event_id;
                next_event_id += 1;
            }
            visit(index, portal, events);
        }
    }

    /// Every event HubSpot sends for the world's changes, in time order.
    pub fn hubspot_events(&self) -> &[HubSpotEvent] {
        &self.hubspot_events
    }

    /// HubSpot's deliveries, per HubSpot tenant, each list in the order
    /// HubSpot sends them.
    pub(crate) fn hubspot_deliveries(&self, habits: &Habits) -> Vec<Vec<Delivery>> {
        let mut rng = StdRng::seed_from_u64(self.config.seed ^ 0x4B5B_0700);
        let mut out = Vec::new();
        for (t, tenant) in self.tenants.iter().enumerate() {
            let Some(account) = tenant.hubspot() else {
                continue;
            };
            let events: Vec<&HubSpotEvent> = self
                .hubspot_events
                .iter()
                .filter(|e| e.tenant == t)
                .collect();
            // Each send of an event: where in the stream it goes out, which
            // event, which attempt.
            let mut sends: Vec<(f64, usize, u32)> = Vec::with_capacity(events.len() * 11 / 10);
            for p in 0..events.len() {
                let at = p as f64;
                let first = if rng.random_bool(habits.late) {
                    at + rng.random_range(1.5..30.0)
                } else {
                    at
                };
                sends.push((first, p, 0));
                if rng.random_bool(habits.duplicates) {
                    sends.push((at + rng.random_range(0.5..10.0), p, 0));
                }
                if rng.random_bool(habits.retries) {
                    let retry = first + rng.random_range(1.0..40.0);
                    sends.push((retry, p, 1));
                    if rng.random_bool(0.25) {
                        sends.push((retry + rng.random_range(1.0..40.0), p, 2));
                    }
                }
            }
            sends.sort_by(|a, b| a.0.total_cmp(&b.0));
            let sent_at = |position: f64| {
                let i = (position as usize).min(events.len().saturating_sub(1));
                events[i].occurred_at_ms
            };
            let mut deliveries = Vec::new();
            let mut batch: Vec<(usize, u32)> = Vec::new();
            let mut opened_at = 0;
            let mut limit = MAX_BATCH;
            let close = |batch: &mut Vec<(usize, u32)>, deliveries: &mut Vec<Delivery>| {
                if batch.is_empty() {
                    return;
                }
                let elements: Vec<Value> = batch
                    .iter()
                    .map(|(p, attempt)| events[*p].element(&account.portal_id, *attempt))
                    .collect();
                deliveries.push(Delivery {
                    tenant: t,
                    change: batch
                        .iter()
                        .map(|(p, _)| events[*p].change)
                        .max()
                        .unwrap_or(0),
                    version: Version::HubSpot,
                    attempt: 1 + batch.iter().map(|(_, a)| *a).max().unwrap_or(0),
                    body: serde_json::to_vec(&Value::Array(elements)).expect("JSON"),
                });
                batch.clear();
            };
            for (position, p, attempt) in sends {
                let at = sent_at(position);
                let full = batch.len() >= limit
                    || at - opened_at > BATCH_WINDOW_MS
                    || batch.iter().any(|(q, _)| *q == p);
                if full {
                    close(&mut batch, &mut deliveries);
                }
                if batch.is_empty() {
                    opened_at = at;
                    // Now and then HubSpot sends what it has early.
                    limit = if rng.random_bool(0.2) {
                        rng.random_range(1..=5)
                    } else {
                        MAX_BATCH
                    };
                }
                batch.push((p, attempt));
            }
            close(&mut batch, &mut deliveries);
            out.push(deliveries);
        }
        out
    }
}
