//! The webhooks the platforms send for the world's changes. Pipedrive's (in
//! this file) as v1 or v2 bodies, with its delivery habits: retries of the
//! same event, v1's duplicates, events of one entity arriving out of order,
//! bulk edits and transactions still pending. HubSpot's in `hubspot/`,
//! Zoho's in `zoho.rs`.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use tributary_sources::hubspot::signature;

use crate::World;
use crate::enriched::iso;
use crate::model::*;

/// The shape of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// Pipedrive webhooks v1.
    V1,
    /// Pipedrive webhooks v2.
    V2,
    /// A HubSpot app webhook: a JSON array of events, signed v3.
    HubSpot,
    /// A Zoho CRM channel notification with the changed values.
    Zoho,
    /// A Dynamics 365 webhook step's `RemoteExecutionContext`.
    Dynamics,
    /// A Salesforce Outbound Message (SOAP).
    SalesforceOutbound,
    /// A Salesforce change event (Avro), published on a Pub/Sub API
    /// channel for the collector to pull rather than posted to it.
    SalesforceChangeEvent,
}

/// How deliveries arrive. Shares are fractions of all changes (of HubSpot's
/// events for HubSpot).
#[derive(Debug, Clone)]
pub struct Habits {
    /// Pipedrive changes sent as webhooks v2 (the rest v1).
    pub v2_share: f64,
    /// Changes delivered twice or more: the platform retried (same event, next attempt).
    pub retries: f64,
    /// Changes delivered twice with the very same event (Pipedrive: v1's
    /// identical bodies; HubSpot: the same `eventId` and attempt).
    pub duplicates: f64,
    /// Changes that arrive after the entity's next change (HubSpot: in a later batch).
    pub late: f64,
    /// v1 changes sent while their transaction is still pending.
    pub trans_pending: f64,
}

impl Default for Habits {
    fn default() -> Self {
        Habits {
            v2_share: 0.5,
            retries: 0.03,
            duplicates: 0.02,
            late: 0.03,
            trans_pending: 0.01,
        }
    }
}

impl Habits {
    /// Every change once, in order, as v1.
    pub fn none() -> Self {
        Habits {
            v2_share: 0.0,
            retries: 0.0,
            duplicates: 0.0,
            late: 0.0,
            trans_pending: 0.0,
        }
    }
}

/// One HTTP delivery of a webhook.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub tenant: usize,
    /// Index into `World::changes`: the change it is about (a HubSpot batch:
    /// the latest change among its events). The fake API must reflect every
    /// change up to it before the delivery goes out.
    pub change: usize,
    pub version: Version,
    /// 1 for the first try (a HubSpot batch: 1 + its highest `attemptNumber`).
    pub attempt: u32,
    pub body: Vec<u8>,
}

fn v1_time(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .expect("a valid time")
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn v2_timestamp(micro: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micro)
        .expect("a valid time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// SplitMix64: spreads (seed, n) over 64 bits.
pub(crate) fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl World {
    /// The v2 event id (`meta.id`) of a change: a UUID, the same on every
    /// attempt.
    pub fn event_uuid(&self, change: usize) -> String {
        let change = change as u64;
        self.seeded_uuid(2 * change, 2 * change + 1)
    }

    /// A random-looking UUID made of the world's seed and `a` and `b`: the
    /// same for the same world.
    pub(crate) fn seeded_uuid(&self, a: u64, b: u64) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&mix(self.config.seed, a).to_le_bytes());
        bytes[8..].copy_from_slice(&mix(self.config.seed, b).to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// The version a change is sent in.
    pub fn version_of(&self, change: usize, habits: &Habits) -> Version {
        let roll = mix(self.config.seed ^ 0x5EED, change as u64) as f64 / u64::MAX as f64;
        if roll < habits.v2_share {
            Version::V2
        } else {
            Version::V1
        }
    }

    /// The deliveries of a platform that sends each change on its own,
    /// `render` giving the body of a change (the `index`th) of one of its
    /// accounts (`None` for the others'), in arrival order: each change
    /// once, some again (`duplicates` and `retries`: the same body sent
    /// again), some after their record's next change (`late`).
    pub(crate) fn each_change_delivered(
        &self,
        habits: &Habits,
        seed: u64,
        version: Version,
        render: impl Fn(usize, &Change) -> Option<Vec<u8>>,
    ) -> Vec<Delivery> {
        let mut rng = StdRng::seed_from_u64(self.config.seed ^ seed);
        let mut out: Vec<Delivery> = Vec::new();
        // Deliveries held back until their record's next change goes out,
        // by record (tenant, id).
        let mut held: Vec<((usize, i64), Delivery)> = Vec::new();
        for (index, change) in self.changes.iter().enumerate() {
            let Some(body) = render(index, change) else {
                continue;
            };
            let record = (
                change.tenant,
                change.object_id(&self.tenants[change.tenant]),
            );
            let delivery = Delivery {
                tenant: change.tenant,
                change: index,
                version,
                attempt: 1,
                body,
            };
            let again = rng.random_bool(habits.duplicates + habits.retries);
            let late = change.action != Action::Added && rng.random_bool(habits.late);
            let again = again.then(|| Delivery {
                attempt: 2,
                ..delivery.clone()
            });
            // A held delivery of the same record goes out after this one.
            let (ready, waiting): (Vec<_>, Vec<_>) = held
                .into_iter()
                .partition(|(held_record, _)| *held_record == record);
            held = waiting;
            if late {
                held.push((record, delivery));
            } else {
                out.push(delivery);
            }
            out.extend(
                ready
                    .into_iter()
                    .map(|(_, d)| Delivery { change: index, ..d }),
            );
            out.extend(again);
        }
        out.extend(held.into_iter().map(|(_, d)| d));
        out
    }

    /// For a platform that tells of a mass update in one delivery: the
    /// changes the delivery of each change (by index) tells of. A mass
    /// update's (the deal updates of one tenant in one second that are part
    /// of a bulk edit) all go with its last, so its others tell of none;
    /// any other change of itself alone.
    pub(crate) fn told_with(&self, platform: Platform) -> impl Fn(usize) -> Vec<usize> + '_ {
        let groups = self.mass_updates(platform);
        let in_group: HashSet<usize> = groups.values().flatten().copied().collect();
        move |index| match groups.get(&index) {
            Some(members) => members.clone(),
            None if in_group.contains(&index) => Vec::new(),
            None => vec![index],
        }
    }

    /// The mass updates among `platform`'s changes, by the index of the
    /// last.
    fn mass_updates(&self, platform: Platform) -> HashMap<usize, Vec<usize>> {
        let mut groups: HashMap<(usize, i64), Vec<usize>> = HashMap::new();
        for (index, change) in self.changes.iter().enumerate() {
            let bulk = matches!(
                change.subject,
                Subject::Deal {
                    bulk: true,
                    before: Some(_),
                    after: Some(_),
                    ..
                }
            );
            if bulk && self.tenants[change.tenant].platform() == platform {
                groups
                    .entry((change.tenant, change.at()))
                    .or_default()
                    .push(index);
            }
        }
        groups
            .into_values()
            .map(|members| (*members.last().expect("a member"), members))
            .collect()
    }

    /// Every delivery the platforms make for the world, in arrival order
    /// (each platform's habits kept, their streams interleaved by time).
    pub fn deliveries(&self, habits: &Habits) -> Vec<Delivery> {
        let mut streams = vec![self.pipedrive_deliveries(habits)];
        streams.extend(self.hubspot_deliveries(habits));
        streams.push(self.zoho_deliveries(habits));
        streams.push(self.dynamics_deliveries(habits));
        streams.extend(self.salesforce_deliveries(habits));
        interleave(streams)
    }

    /// Where the collector takes a delivery (below its base URL): Pipedrive
    /// and Zoho name the tenant in the path; HubSpot's app posts every
    /// portal to one URL.
    pub fn delivery_path(&self, delivery: &Delivery) -> String {
        let tenant = &self.tenants[delivery.tenant];
        match tenant.platform() {
            Platform::Pipedrive => format!("/webhooks/pipedrive/{}", tenant.name),
            Platform::HubSpot => "/webhooks/hubspot".to_owned(),
            Platform::Zoho => format!("/webhooks/zoho/{}", tenant.name),
            // The registration's `WebhookKey` travels as `code`.
            Platform::Dynamics => match &tenant.crm {
                CrmAccount::Dynamics(account) => {
                    format!(
                        "/webhooks/dynamics/{}?code={}",
                        tenant.name, account.webhook_key
                    )
                }
                _ => unreachable!("a Dynamics tenant has a Dynamics account"),
            },
            // The endpoint's secret is in its URL.
            Platform::Salesforce => match &tenant.crm {
                CrmAccount::Salesforce(account) => format!(
                    "/webhooks/salesforce/{}?secret={}",
                    tenant.name, account.endpoint_secret
                ),
                _ => unreachable!("a Salesforce tenant has a Salesforce account"),
            },
        }
    }

    /// The headers a delivery is posted with to `url` (the full URL, which
    /// HubSpot's signature covers) at `now_ms`: Pipedrive's Basic
    /// credentials; HubSpot's `X-HubSpot-Signature-v3` with its timestamp,
    /// beside the legacy v1 signature it also sends; Zoho's notifications
    /// carry their channel's token in the body.
    pub fn delivery_headers(
        &self,
        delivery: &Delivery,
        url: &str,
        now_ms: i64,
    ) -> Vec<(&'static str, String)> {
        let tenant = &self.tenants[delivery.tenant];
        let mut headers = vec![("content-type", "application/json".to_owned())];
        match &tenant.crm {
            CrmAccount::Pipedrive(account) => {
                let credentials = format!("{}:{}", account.webhook_user, account.webhook_password);
                headers.push((
                    "authorization",
                    format!("Basic {}", BASE64.encode(credentials)),
                ));
            }
            CrmAccount::HubSpot(account) => {
                let secret = &account.client_secret;
                let body = &delivery.body;
                headers.extend([
                    (
                        signature::SIGNATURE_V3_HEADER,
                        signature::sign_v3(secret, "POST", url, body, now_ms),
                    ),
                    (signature::TIMESTAMP_HEADER, now_ms.to_string()),
                    (
                        signature::SIGNATURE_HEADER,
                        signature::sign_v1(secret, body),
                    ),
                    (signature::SIGNATURE_VERSION_HEADER, "v1".to_owned()),
                ]);
            }
            CrmAccount::Dynamics(_) => {
                let body: Value = serde_json::from_slice(&delivery.body).unwrap_or_default();
                if body["InputParameters"] == json!([]) {
                    headers.push((
                        tributary_sources::dynamics::SIZE_EXCEEDED_HEADER,
                        "true".to_owned(),
                    ));
                }
            }
            CrmAccount::Salesforce(_) => {
                headers = vec![
                    ("content-type", "text/xml; charset=utf-8".to_owned()),
                    ("soapaction", "\"\"".to_owned()),
                ];
            }
            CrmAccount::Zoho(_) => {}
        }
        headers
    }

    /// Pipedrive's deliveries, in arrival order.
    fn pipedrive_deliveries(&self, habits: &Habits) -> Vec<Delivery> {
        let mut rng = StdRng::seed_from_u64(self.config.seed ^ 0xDE11_7E55);
        let mut out: Vec<Delivery> = Vec::with_capacity(self.changes.len() * 11 / 10);
        for index in 0..self.changes.len() {
            if self.tenants[self.changes[index].tenant].platform() != Platform::Pipedrive {
                continue;
            }
            let version = self.version_of(index, habits);
            let pending = version == Version::V1 && rng.random_bool(habits.trans_pending);
            let delivery = |attempt| Delivery {
                tenant: self.changes[index].tenant,
                change: index,
                version,
                attempt,
                body: serde_json::to_vec(&self.webhook(index, version, attempt, pending))
                    .expect("JSON"),
            };
            out.push(delivery(1));
            if version == Version::V1 && rng.random_bool(habits.duplicates) {
                out.push(delivery(1));
            }
            if rng.random_bool(habits.retries) {
                out.push(delivery(2));
                if rng.random_bool(0.25) {
                    out.push(delivery(3));
                }
            }
        }
        // Retries arrive a little later than the first try; late changes
        // after the entity's next one.
        let key = |d: &Delivery| {
            let change = &self.changes[d.change];
            (
                change.tenant,
                change.object(),
                change.object_id(&self.tenants[change.tenant]),
            )
        };
        for i in 0..out.len() {
            if out[i].attempt > 1 {
                let to = (i + rng.random_range(1..20)).min(out.len() - 1);
                let moved = out.remove(i);
                out.insert(to, moved);
            }
        }
        let mut i = 0;
        while i < out.len() {
            if out[i].attempt == 1 && rng.random_bool(habits.late) {
                let entity = key(&out[i]);
                if let Some(next) = (i + 1..out.len().min(i + 200))
                    .find(|&j| key(&out[j]) == entity && out[j].change != out[i].change)
                {
                    let late = out.remove(i);
                    out.insert(next, late);
                }
            }
            i += 1;
        }
        out
    }

    /// The Pipedrive webhook body for a change (HubSpot's events are
    /// [`World::hubspot_events`]).
    pub fn webhook(
        &self,
        index: usize,
        version: Version,
        attempt: u32,
        trans_pending: bool,
    ) -> Value {
        assert!(
            matches!(version, Version::V1 | Version::V2),
            "a Pipedrive webhook version"
        );
        let change = &self.changes[index];
        let tenant = &self.tenants[change.tenant];
        let account = tenant.pipedrive().expect("a Pipedrive tenant");
        let object = change.object();
        let id = change.object_id(tenant);
        let (before, after) = self.snapshots(change, version);
        let bulk = matches!(change.subject, Subject::Deal { bulk: true, .. });
        let (merged_to, merged_from) = match change.subject {
            Subject::Deal {
                merged_to,
                merged_from,
                ..
            } => (merged_to, merged_from),
            _ => (None, None),
        };
        let colleague = tenant.reps.iter().map(|r| r.0).find(|r| *r != change.user);
        let permitted: Vec<i64> = std::iter::once(change.user).chain(colleague).collect();
        match version {
            Version::V1 => {
                let mut meta = json!({
                    "v": 1, "action": change.action.word(), "object": object, "id": id,
                    "company_id": account.company_id, "user_id": change.user, "host": account.host,
                    "timestamp": change.at(), "timestamp_micro": change.at_micro,
                    "permitted_user_ids": permitted, "trans_pending": trans_pending,
                    "is_bulk_update": bulk, "pipedrive_service_name": false,
                    "matches_filters": {"current": [], "previous": []},
                    "webhook_id": account.webhook_v1_id, "change_source": "app",
                    "prepublish_timestamp": change.at_micro / 1_000 + 180
                });
                if object == "activity" {
                    meta["send_activity_notifications"] = json!(false);
                    meta["activity_notifications_language"] = Value::Null;
                }
                // A merge's survivor and the deal merged away: v1 says it with
                // the action (`merged`, `deleted`) alone.
                json!({
                    "v": 1, "matches_filters": {"current": [], "previous": []}, "meta": meta,
                    "retry": attempt.saturating_sub(1),
                    "current": if change.action == Action::Deleted { Value::Null } else { after },
                    "previous": if change.action == Action::Added { Value::Null } else { before },
                    "event": format!("{}.{object}", change.action.word())
                })
            }
            _ => {
                let action = match change.action {
                    Action::Added => "create",
                    Action::Updated | Action::Merged | Action::Restored => "change",
                    Action::Deleted => "delete",
                };
                let permitted: Vec<String> = permitted.iter().map(i64::to_string).collect();
                let mut meta = json!({
                    "action": action, "entity": object, "company_id": account.company_id.to_string(),
                    "correlation_id": self.event_uuid(index).replace('-', "").chars().rev().collect::<String>(),
                    "entity_id": id.to_string(), "id": self.event_uuid(index), "is_bulk_edit": bulk,
                    "timestamp": v2_timestamp(change.at_micro), "type": "general",
                    "user_id": change.user.to_string(), "version": "2.0",
                    "webhook_id": account.webhook_v2_id, "webhook_owner_id": change.user.to_string(),
                    "change_source": "app", "attempt": attempt, "host": account.host,
                    "permitted_user_ids": permitted
                });
                if let Some(to) = merged_to {
                    meta["merged_to_id"] = json!(to.to_string());
                }
                if let Some(from) = merged_from {
                    meta["merged_from_id"] = json!(from.to_string());
                }
                let (data, previous) = match change.action {
                    Action::Added => (after, Value::Null),
                    Action::Deleted => (Value::Null, before),
                    // Only what changed.
                    Action::Updated | Action::Merged | Action::Restored => {
                        let changed = changed_fields(&before, &after);
                        (after, changed)
                    }
                };
                json!({"meta": meta, "data": data, "previous": previous})
            }
        }
    }

    /// The entity before and after the change, in the version's shape
    /// (`Null` where there is no such state).
    fn snapshots(&self, change: &Change, version: Version) -> (Value, Value) {
        let tenant = &self.tenants[change.tenant];
        let at = change.at();
        match &change.subject {
            Subject::Deal {
                deal,
                before,
                after,
                ..
            } => {
                let deal = &tenant.deals[*deal];
                let render = |state: &Option<DealState>, deleted: bool| match state {
                    Some(state) => deal_snapshot(tenant, deal, state, version, deleted),
                    None => Value::Null,
                };
                (
                    render(before, change.action == Action::Deleted),
                    render(after, false),
                )
            }
            Subject::Activity {
                activity,
                before,
                after,
            } => {
                let activity = &tenant.activities[*activity];
                let render = |state: &Option<ActivityState>| match state {
                    Some(state) => activity_snapshot(tenant, activity, state, version),
                    None => Value::Null,
                };
                (render(before), render(after))
            }
            Subject::Person {
                person,
                before,
                after,
            } => {
                let person = &tenant.persons[*person];
                let render = |state: &Option<PersonState>, time: i64| match state {
                    Some(state) => person_snapshot(tenant, person, state, time, version),
                    None => Value::Null,
                };
                (render(before, person.add_time), render(after, at))
            }
            Subject::Organization {
                organization,
                before,
                after,
            } => {
                let org = &tenant.organizations[*organization];
                let render = |state: &Option<OrganizationState>, time: i64| match state {
                    Some(state) => organization_snapshot(tenant, org, state, time, version),
                    None => Value::Null,
                };
                (render(before, org.add_time), render(after, at))
            }
        }
    }
}

fn company_id(tenant: &Tenant) -> i64 {
    tenant.pipedrive().expect("a Pipedrive tenant").company_id
}

/// The members of `after` that differ from `before` (v2's `previous`
/// holds their old values).
fn changed_fields(before: &Value, after: &Value) -> Value {
    let (Value::Object(before), Value::Object(after)) = (before, after) else {
        return json!({});
    };
    let changed: Map<String, Value> = before
        .iter()
        .filter(|(key, old)| after.get(*key) != Some(*old))
        .map(|(key, old)| (key.clone(), old.clone()))
        .collect();
    Value::Object(changed)
}

fn time(version: Version, seconds: i64) -> String {
    match version {
        Version::V1 => v1_time(seconds),
        _ => iso(seconds),
    }
}

fn deal_snapshot(
    tenant: &Tenant,
    deal: &Deal,
    state: &DealState,
    version: Version,
    deleted: bool,
) -> Value {
    let pipeline = &tenant.pipelines[state.pipeline];
    let stage = &pipeline.stages[state.stage];
    let t = |s: i64| time(version, s);
    let close_time = state.won_time.or(state.lost_time);
    let person = &tenant.persons[deal.person];
    let org = &tenant.organizations[deal.org];
    let lost_reason = state.lost_time.map(|_| "Price");
    match version {
        Version::V1 => {
            let mut snapshot = json!({
                "id": deal.id, "creator_user_id": deal.owner.0, "user_id": deal.owner.0,
                "person_id": person.id, "org_id": org.id, "stage_id": stage.numeric_id(), "title": state.title,
                "value": state.value, "currency": deal.currency, "add_time": t(deal.add_time),
                "update_time": t(state.update_time), "stage_change_time": t(state.stage_change_time),
                "active": state.status == "open" && !deleted, "deleted": deleted, "status": state.status,
                "probability": deal.probability, "next_activity_date": null, "lost_reason": lost_reason,
                "visible_to": "3", "close_time": close_time.map(t), "pipeline_id": pipeline.numeric_id(),
                "won_time": state.won_time.map(t), "first_won_time": state.won_time.map(t),
                "lost_time": state.lost_time.map(t), "expected_close_date": deal.expected_close.to_string(),
                "stage_order_nr": stage.order, "person_name": format!("{} {}", person.first_name, person.last_name),
                "org_name": org.last.name, "owner_name": deal.owner.1, "channel": null, "channel_id": null,
                "origin": "ManuallyCreated", "weighted_value": state.value * deal.probability.unwrap_or(stage.probability) / 100.0,
                "weighted_value_currency": deal.currency
            });
            snapshot[SOURCE_FIELD] = json!(deal.source.map(|(id, _)| id.to_string()));
            snapshot[CAMPAIGN_FIELD] = json!(deal.campaign);
            snapshot
        }
        _ => json!({
            "id": deal.id, "title": state.title, "creator_user_id": deal.owner.0, "owner_id": deal.owner.0,
            "value": state.value, "person_id": person.id, "org_id": org.id, "stage_id": stage.numeric_id(),
            "pipeline_id": pipeline.numeric_id(), "currency": deal.currency, "add_time": t(deal.add_time),
            "update_time": t(state.update_time), "stage_change_time": t(state.stage_change_time),
            "is_deleted": deleted, "is_archived": false, "status": state.status, "probability": deal.probability,
            "lost_reason": lost_reason, "visible_to": 3, "close_time": close_time.map(t),
            "won_time": state.won_time.map(t), "lost_time": state.lost_time.map(t),
            "expected_close_date": deal.expected_close.to_string(), "label_ids": [], "origin": "ManuallyCreated",
            "origin_id": null, "channel": null, "channel_id": null,
            "custom_fields": {
                SOURCE_FIELD: deal.source.map(|(id, _)| json!({"type": "enum", "id": id})),
                CAMPAIGN_FIELD: deal.campaign.as_ref().map(|c| json!({"type": "varchar", "value": c}))
            }
        }),
    }
}

fn activity_snapshot(
    tenant: &Tenant,
    activity: &Activity,
    state: &ActivityState,
    version: Version,
) -> Value {
    let t = |s: i64| time(version, s);
    let deal_id = activity.deal.map(|d| tenant.deals[d].id);
    let person_id = tenant.persons[activity.person].id;
    let org_id = tenant.organizations[activity.org].id;
    match version {
        Version::V1 => json!({
            "id": activity.id, "company_id": company_id(tenant), "user_id": state.user.0,
            "done": state.done_at.is_some(), "type": state.kind, "due_date": activity.due_date.to_string(),
            "due_time": "10:00", "duration": "00:30", "busy_flag": true, "add_time": t(activity.add_time),
            "marked_as_done_time": state.done_at.map(t), "subject": state.subject, "public_description": "",
            "org_id": org_id, "person_id": person_id, "deal_id": deal_id, "lead_id": null,
            "active_flag": true, "update_time": t(state.update_time), "update_user_id": state.user.0,
            "created_by_user_id": state.user.0, "owner_name": state.user.1
        }),
        _ => json!({
            "id": activity.id, "subject": state.subject, "type": state.kind, "owner_id": state.user.0,
            "creator_user_id": state.user.0, "is_deleted": false, "add_time": t(activity.add_time),
            "update_time": t(state.update_time), "deal_id": deal_id, "lead_id": null, "person_id": person_id,
            "org_id": org_id, "project_id": null, "due_date": activity.due_date.to_string(), "due_time": "10:00:00",
            "duration": "00:30:00", "busy": true, "done": state.done_at.is_some(),
            "marked_as_done_time": state.done_at.map(t),
            "participants": [{"person_id": person_id, "primary": true}], "attendees": [], "note": null
        }),
    }
}

fn person_snapshot(
    tenant: &Tenant,
    person: &Person,
    state: &PersonState,
    at: i64,
    version: Version,
) -> Value {
    let t = |s: i64| time(version, s);
    let entries = |value: Option<&str>| match value {
        Some(v) => json!([{"value": v, "primary": true, "label": "work"}]),
        None => json!([]),
    };
    let name = format!("{} {}", person.first_name, person.last_name);
    let org_id = tenant.organizations[person.org].id;
    let mut snapshot = json!({
        "id": person.id, "name": name, "first_name": person.first_name, "last_name": person.last_name,
        "owner_id": person.owner.0, "org_id": org_id, "add_time": t(person.add_time), "update_time": t(at),
        "job_title": state.job_title
    });
    let extra = match version {
        Version::V1 => json!({
            "company_id": company_id(tenant), "email": entries(Some(&person.email)),
            "phone": entries(state.phone.as_deref()), "active_flag": true, "visible_to": "3",
            "org_name": tenant.organizations[person.org].last.name, "owner_name": person.owner.1
        }),
        _ => json!({
            "emails": entries(Some(&person.email)), "phones": entries(state.phone.as_deref()),
            "is_deleted": false, "visible_to": 3, "label_ids": [], "custom_fields": {}
        }),
    };
    if let (Value::Object(snapshot), Value::Object(extra)) = (&mut snapshot, extra) {
        snapshot.extend(extra);
    }
    snapshot
}

fn organization_snapshot(
    tenant: &Tenant,
    org: &Organization,
    state: &OrganizationState,
    at: i64,
    version: Version,
) -> Value {
    let t = |s: i64| time(version, s);
    match version {
        Version::V1 => {
            let mut snapshot = json!({
                "id": org.id, "company_id": company_id(tenant), "owner_id": org.owner.0, "name": state.name,
                "active_flag": true, "update_time": t(at), "add_time": t(org.add_time), "visible_to": "3",
                "address": state.address, "owner_name": org.owner.1, "label_ids": []
            });
            snapshot[SIZE_FIELD] = json!(state.size.to_string());
            snapshot[INDUSTRY_FIELD] = json!(state.industry.to_string());
            snapshot
        }
        _ => json!({
            "id": org.id, "name": state.name, "owner_id": org.owner.0, "add_time": t(org.add_time),
            "update_time": t(at), "is_deleted": false, "visible_to": 3, "label_ids": [],
            "address": {"value": state.address},
            "custom_fields": {
                SIZE_FIELD: {"type": "enum", "id": state.size},
                INDUSTRY_FIELD: {"type": "enum", "id": state.industry}
            }
        }),
    }
}

/// Several streams of deliveries as one, each stream's order kept: the
/// delivery about the earliest change goes next.
fn interleave(streams: Vec<Vec<Delivery>>) -> Vec<Delivery> {
    let total = streams.iter().map(Vec::len).sum();
    let mut streams: Vec<std::iter::Peekable<std::vec::IntoIter<Delivery>>> = streams
        .into_iter()
        .map(|s| s.into_iter().peekable())
        .collect();
    let mut out = Vec::with_capacity(total);
    loop {
        let next = streams
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| Some((s.peek()?.change, i)))
            .min();
        let Some((_, i)) = next else {
            return out;
        };
        out.extend(streams[i].next());
    }
}
