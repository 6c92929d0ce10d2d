//! HubSpot accounts (portals) of the simulated world: the same deals,
//! companies, contacts and engagements as any account, in HubSpot's shapes.
//!
//! - [`HubSpotAccount`]: the portal id, the app's client secret, the access
//!   token, the owners; pipelines with HubSpot's stage ids (its default
//!   "Sales Pipeline" and a custom one with numeric ids), won and lost deals
//!   in the pipeline's `closedwon` / `closedlost` stages, the marketing
//!   source in a custom enumeration property ([`LEAD_SOURCE`]).
//! - `api.rs`: the fake CRM API's portal, filled as of each change
//!   ([`crate::World::hubspot_portals`], [`crate::World::apply_to_portal`]).
//! - `webhooks.rs`: the app webhooks HubSpot sends for the changes
//!   ([`HubSpotEvent`]): JSON arrays of thin events of one portal, signed
//!   with `X-HubSpot-Signature-v3`, batched, duplicated, retried, late.
//! - `enriched.rs`: each event as the enricher makes it, hydrated as of its
//!   change (the flat `hubspot-crm` event).

mod api;
mod enriched;
mod webhooks;

pub(crate) use enriched::enriched_event;
pub use webhooks::{AssociationChange, HubSpotEvent, MAX_BATCH};

use fake::ObjectType;
use tributary_fake_apis::hubspot as fake;

use crate::model::{Activity, Pipeline, Rep, Stage};
use crate::simulate::stage;

/// The deal property holding the marketing source: a custom enumeration
/// whose option values are [`lead_source_value`]s, labelled as
/// [`crate::MARKETING_SOURCES`].
pub const LEAD_SOURCE: &str = "lead_source";

/// The app every portal installed: its id in every webhook.
pub const APP_ID: u64 = 4_018_231;

/// The option value of a marketing source label: `Google Ads` -> `google_ads`.
pub fn lead_source_value(label: &str) -> String {
    label.to_lowercase().replace(' ', "_")
}

/// A HubSpot user who owns records: the owner id is what `hubspot_owner_id`
/// holds, the user id what change sources name (`userId:...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpotOwner {
    pub id: i64,
    pub user_id: i64,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
}

impl HubSpotOwner {
    pub fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// A HubSpot account (portal), as an app installed in it sees it.
#[derive(Debug, Clone)]
pub struct HubSpotAccount {
    /// The portal id (`portalId` in webhooks), a numeric string.
    pub portal_id: String,
    /// The app's client secret: signs every webhook.
    pub client_secret: String,
    /// The private app's access token the fake API accepts and the enricher sends.
    pub access_token: String,
    /// One per rep, in the tenant's rep order.
    pub owners: Vec<HubSpotOwner>,
    /// The deal property the tenant configures as its marketing source.
    pub marketing_source_property: &'static str,
}

impl HubSpotAccount {
    /// The account of the `tenant`-th tenant, with an owner for each rep.
    pub(crate) fn new(tenant: usize, slug: &str, reps: &[Rep]) -> Self {
        let t = tenant as i64 + 1;
        let owners = reps
            .iter()
            .enumerate()
            .map(|(i, (id, name))| {
                let (first, last) = name.split_once(' ').unwrap_or((name, ""));
                HubSpotOwner {
                    id: *id,
                    user_id: 9_300_000 + 1_000 * t + i as i64,
                    first_name: first.to_owned(),
                    last_name: last.to_owned(),
                    email: format!(
                        "{}.{}@{slug}.example",
                        first.to_lowercase(),
                        last.to_lowercase()
                    ),
                }
            })
            .collect();
        HubSpotAccount {
            portal_id: (24_871_000 + 1_731 * t).to_string(),
            client_secret: format!("{slug}-client-secret"),
            access_token: format!("pat-na1-{slug}-access-token"),
            owners,
            marketing_source_property: LEAD_SOURCE,
        }
    }

    pub fn owner(&self, id: i64) -> Option<&HubSpotOwner> {
        self.owners.iter().find(|o| o.id == id)
    }

    /// The user behind an owner (for change sources).
    pub(crate) fn user_id(&self, owner: i64) -> i64 {
        self.owner(owner).map_or(owner, |o| o.user_id)
    }
}

/// The pipelines of a HubSpot account: HubSpot's default "Sales Pipeline"
/// (as every portal has it) and, if `two`, a custom "Partnerships"
/// pipeline with numeric ids. Probabilities are in percent, as the model
/// keeps them (HubSpot's 0.2 is 20).
pub(crate) fn pipelines(two: bool) -> Vec<Pipeline> {
    let mut pipelines = vec![Pipeline {
        id: "default".into(),
        name: "Sales Pipeline",
        stages: vec![
            stage("appointmentscheduled", "Appointment Scheduled", 0, 20.0),
            stage("qualifiedtobuy", "Qualified To Buy", 1, 40.0),
            stage("presentationscheduled", "Presentation Scheduled", 2, 60.0),
            stage("decisionmakerboughtin", "Decision Maker Bought-In", 3, 80.0),
            stage("contractsent", "Contract Sent", 4, 90.0),
        ],
        won_stage: Some(stage("closedwon", "Closed Won", 5, 100.0)),
        lost_stage: Some(stage("closedlost", "Closed Lost", 6, 0.0)),
    }];
    if two {
        pipelines.push(Pipeline {
            id: "87312450".into(),
            name: "Partnerships",
            stages: vec![
                stage("143001001", "Intro", 0, 25.0),
                stage("143001002", "Pilot", 1, 50.0),
                stage("143001003", "Contract", 2, 75.0),
            ],
            won_stage: Some(stage("143001004", "Signed", 3, 100.0)),
            lost_stage: Some(stage("143001005", "Not pursued", 4, 0.0)),
        });
    }
    pipelines
}

/// The stage a deal in `status` sits in: its open stage, or the pipeline's
/// won or lost stage.
pub(crate) fn stage_of<'p>(pipeline: &'p Pipeline, stage: usize, status: &str) -> &'p Stage {
    match status {
        "won" => pipeline
            .won_stage
            .as_ref()
            .expect("a HubSpot pipeline has a won stage"),
        "lost" => pipeline
            .lost_stage
            .as_ref()
            .expect("a HubSpot pipeline has a lost stage"),
        _ => &pipeline.stages[stage],
    }
}

/// The engagement type of an activity.
pub(crate) fn engagement_type(kind: &str) -> ObjectType {
    match kind {
        "call" => ObjectType::Calls,
        "email" => ObjectType::Emails,
        "meeting" => ObjectType::Meetings,
        _ => ObjectType::Tasks,
    }
}

/// What HubSpot calls an activity's title, status and (calls, emails)
/// direction, per engagement type.
pub(crate) struct EngagementProperties {
    pub title: &'static str,
    pub status: &'static str,
    pub direction: Option<&'static str>,
}

pub(crate) fn engagement_properties(object_type: ObjectType) -> EngagementProperties {
    let (title, status, direction) = match object_type {
        ObjectType::Calls => ("hs_call_title", "hs_call_status", Some("hs_call_direction")),
        ObjectType::Emails => (
            "hs_email_subject",
            "hs_email_status",
            Some("hs_email_direction"),
        ),
        ObjectType::Meetings => ("hs_meeting_title", "hs_meeting_outcome", None),
        _ => ("hs_task_subject", "hs_task_status", None),
    };
    EngagementProperties {
        title,
        status,
        direction,
    }
}

/// An engagement's status value: done, never done yet, or undone (done
/// before, not any more). Done is what the dashboards count: a completed
/// call, meeting or task, a sent email.
pub(crate) fn engagement_status(object_type: ObjectType, done: bool, undone: bool) -> &'static str {
    match (object_type, done, undone) {
        (ObjectType::Emails, true, _) => "SENT",
        (ObjectType::Emails, false, _) => "SCHEDULED",
        (_, true, _) => "COMPLETED",
        (ObjectType::Calls, false, false) => "QUEUED",
        (ObjectType::Calls, false, true) => "CANCELED",
        (ObjectType::Meetings, false, false) => "SCHEDULED",
        (ObjectType::Meetings, false, true) => "RESCHEDULED",
        (_, false, false) => "NOT_STARTED",
        (_, false, true) => "DEFERRED",
    }
}

/// When an activity is due: 10:00 UTC on its due date.
pub(crate) fn due_at(activity: &Activity) -> i64 {
    activity
        .due_date
        .and_hms_opt(10, 0, 0)
        .expect("a valid time")
        .and_utc()
        .timestamp()
}

/// HubSpot's amounts: the number as written, no trailing `.0`.
pub(crate) fn amount(value: f64) -> String {
    format!("{value}")
}

#[cfg(test)]
mod tests;
