//! What the fake HubSpot CRM API serves: each portal's definitions
//! (pipelines, owners, property definitions with the custom `lead_source`
//! enumeration) from the start, and its records as of each change, because
//! the sender applies each change before it delivers its events.

use std::collections::HashMap;

use tributary_fake_apis::hubspot::{
    ChangeSource, HubSpotPortal, ObjectId, ObjectType, Owner, Pipeline, PipelineStage,
    PropertyDefinition, iso_millis,
};

use super::{
    HubSpotAccount, LEAD_SOURCE, due_at, engagement_properties, engagement_status, engagement_type,
    lead_source_value, stage_of,
};
use crate::World;
use crate::model::*;

/// Another app that writes deals through the API now and then (an
/// integration of the account's own).
pub(crate) const INTEGRATION_APP_ID: i64 = 2_950_114;

/// Employees a company of each size has (`numberofemployees`).
const EMPLOYEES: [(i64, &str); 4] = [(26, "7"), (27, "35"), (28, "160"), (29, "1200")];

fn account(tenant: &Tenant) -> &HubSpotAccount {
    tenant.hubspot().expect("a HubSpot tenant")
}

/// The portal as the API shows it before any change: definitions only.
pub(crate) fn definitions(tenant: &Tenant) -> HubSpotPortal {
    let account = account(tenant);
    let mut portal = HubSpotPortal::new(&account.portal_id);
    portal.deal_pipelines = tenant
        .pipelines
        .iter()
        .zip(0..)
        .map(|(pipeline, order)| {
            let open = pipeline
                .stages
                .iter()
                .map(|s| PipelineStage::open(&s.id, s.name, s.order as i32, s.probability / 100.0));
            let won = pipeline
                .won_stage
                .iter()
                .map(|s| PipelineStage::won(&s.id, s.name, s.order as i32));
            let lost = pipeline
                .lost_stage
                .iter()
                .map(|s| PipelineStage::lost(&s.id, s.name, s.order as i32));
            Pipeline::new(
                &pipeline.id,
                pipeline.name,
                order,
                open.chain(won).chain(lost).collect(),
            )
        })
        .collect();
    portal.owners = account
        .owners
        .iter()
        .map(|o| {
            Owner::new(
                &o.id.to_string(),
                o.user_id,
                &o.first_name,
                &o.last_name,
                &o.email,
            )
        })
        .collect();
    let options: Vec<(String, &str)> = MARKETING_SOURCES
        .iter()
        .map(|(_, label)| (lead_source_value(label), *label))
        .collect();
    let options: Vec<(&str, &str)> = options.iter().map(|(v, l)| (v.as_str(), *l)).collect();
    portal.define(
        ObjectType::Deals,
        PropertyDefinition::enumeration(LEAD_SOURCE, "Lead source", &options).custom(),
    );
    portal.define(
        ObjectType::Companies,
        PropertyDefinition::text("address", "Street Address"),
    );
    portal
}

/// Who made a change, as HubSpot records it: a user in HubSpot, or (for
/// about one deal update in ten) an integration writing through the API.
pub(crate) fn change_source(tenant: &Tenant, change: &Change) -> ChangeSource {
    let by_api = matches!(change.subject, Subject::Deal { .. })
        && change.action == Action::Updated
        && change.at_micro.div_euclid(1_000).rem_euclid(10) == 3;
    if by_api {
        ChangeSource::api(INTEGRATION_APP_ID)
    } else {
        ChangeSource::crm_ui(account(tenant).user_id(change.user))
    }
}

/// The record a change is about: its type and id.
pub(crate) fn record_of(tenant: &Tenant, change: &Change) -> (ObjectType, ObjectId) {
    let id = change.object_id(tenant) as ObjectId;
    let object_type = match &change.subject {
        Subject::Deal { .. } => ObjectType::Deals,
        Subject::Person { .. } => ObjectType::Contacts,
        Subject::Organization { .. } => ObjectType::Companies,
        Subject::Activity {
            activity,
            before,
            after,
        } => {
            let state = after.as_ref().or(before.as_ref());
            engagement_type(state.map_or(tenant.activities[*activity].last.kind, |s| s.kind))
        }
    };
    (object_type, id)
}

fn slug(tenant: &Tenant) -> String {
    tenant
        .name
        .to_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

fn ms(seconds: i64) -> i64 {
    seconds * 1_000
}

fn deal_properties(tenant: &Tenant, deal: &Deal, state: &DealState) -> Vec<(&'static str, String)> {
    let pipeline = &tenant.pipelines[state.pipeline];
    let close = deal
        .expected_close
        .and_hms_opt(0, 0, 0)
        .expect("a valid time")
        .and_utc()
        .timestamp();
    let mut properties = vec![
        ("dealname", state.title.clone()),
        ("amount", super::amount(state.value)),
        ("deal_currency_code", deal.currency.to_owned()),
        ("pipeline", pipeline.id.clone()),
        (
            "dealstage",
            stage_of(pipeline, state.stage, state.status).id.clone(),
        ),
        ("closedate", iso_millis(ms(close))),
        ("hubspot_owner_id", deal.owner.0.to_string()),
    ];
    if let Some(label) = deal.source_label() {
        properties.push((LEAD_SOURCE, lead_source_value(label)));
    }
    if state.status == "lost" {
        properties.push(("closed_lost_reason", "Price".to_owned()));
    }
    properties
}

fn contact_properties(
    tenant: &Tenant,
    person: &Person,
    state: &PersonState,
) -> Vec<(&'static str, String)> {
    let mut properties = vec![
        ("firstname", person.first_name.to_owned()),
        ("lastname", person.last_name.to_owned()),
        ("email", person.email.clone()),
        (
            "associatedcompanyid",
            tenant.organizations[person.org].id.to_string(),
        ),
        ("lifecyclestage", "salesqualifiedlead".to_owned()),
        ("hs_lead_status", "OPEN".to_owned()),
        ("hubspot_owner_id", person.owner.0.to_string()),
    ];
    if let Some(phone) = &state.phone {
        properties.push(("phone", phone.clone()));
    }
    if let Some(title) = &state.job_title {
        properties.push(("jobtitle", title.clone()));
    }
    properties
}

fn company_properties(
    tenant: &Tenant,
    org: &Organization,
    state: &OrganizationState,
) -> Vec<(&'static str, String)> {
    let industry = INDUSTRIES
        .iter()
        .find(|(id, _)| *id == state.industry)
        .map_or("", |(_, label)| label);
    let employees = EMPLOYEES
        .iter()
        .find(|(id, _)| *id == state.size)
        .map_or("", |(_, n)| n);
    vec![
        ("name", state.name.clone()),
        ("domain", format!("org{}.{}.example", org.id, slug(tenant))),
        ("industry", industry.to_owned()),
        ("numberofemployees", employees.to_owned()),
        ("address", state.address.clone()),
        ("hubspot_owner_id", org.owner.0.to_string()),
    ]
}

fn engagement_values(
    portal: &HubSpotPortal,
    activity: &Activity,
    before: Option<&ActivityState>,
    state: &ActivityState,
) -> Vec<(&'static str, String)> {
    let object_type = engagement_type(state.kind);
    let names = engagement_properties(object_type);
    let current = |name: &str| {
        portal
            .object(object_type, activity.id as ObjectId)
            .and_then(|o| o.value(name))
            .map(str::to_owned)
    };
    let undone_status = engagement_status(object_type, false, true);
    let undone = state.done_at.is_none()
        && (before.is_some_and(|b| b.done_at.is_some())
            || current(names.status).as_deref() == Some(undone_status));
    let timestamp = match (object_type, state.done_at) {
        // A call, email or meeting happened when it was done; a task is due.
        (ObjectType::Tasks, _) | (_, None) => due_at(activity),
        (_, Some(done)) => done,
    };
    let mut values = vec![
        (names.title, state.subject.clone()),
        (
            names.status,
            engagement_status(object_type, state.done_at.is_some(), undone).to_owned(),
        ),
        ("hs_timestamp", iso_millis(ms(timestamp))),
        ("hubspot_owner_id", state.user.0.to_string()),
    ];
    match object_type {
        ObjectType::Calls => values.push(("hs_call_direction", "OUTBOUND".to_owned())),
        ObjectType::Emails => values.push(("hs_email_direction", "EMAIL".to_owned())),
        ObjectType::Tasks => match state.done_at {
            Some(done) => values.push(("hs_task_completion_date", iso_millis(ms(done)))),
            // Reopened: HubSpot clears the completion date.
            None if current("hs_task_completion_date").is_some_and(|v| !v.is_empty()) => {
                values.push(("hs_task_completion_date", String::new()))
            }
            None => {}
        },
        _ => {}
    }
    values
}

fn set(
    portal: &mut HubSpotPortal,
    record: (ObjectType, ObjectId),
    at_ms: i64,
    values: &[(&'static str, String)],
    source: &ChangeSource,
) {
    let values: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
    portal.set(record.0, record.1, at_ms, &values, source);
}

impl World {
    /// Every HubSpot account's portal by access token, before any change
    /// (what the fake HubSpot API starts with).
    pub fn hubspot_portals(&self) -> HashMap<String, HubSpotPortal> {
        self.tenants
            .iter()
            .filter_map(|t| Some((t.hubspot()?.access_token.clone(), definitions(t))))
            .collect()
    }

    /// Brings `portal` (the HubSpot portal of the change's tenant) up to
    /// date with a change, as HubSpot records it: properties set with their
    /// history and source, records archived, restored and merged,
    /// associations made when a record is created.
    pub fn apply_to_portal(&self, portal: &mut HubSpotPortal, change: &Change) {
        let tenant = &self.tenants[change.tenant];
        let at_ms = change.at_micro.div_euclid(1_000);
        let source = change_source(tenant, change);
        let record = record_of(tenant, change);
        let added = change.action == Action::Added;
        match &change.subject {
            Subject::Deal {
                deal,
                after,
                merged_from,
                ..
            } => {
                let deal = &tenant.deals[*deal];
                match (change.action, after) {
                    (Action::Deleted, _) | (_, None) => portal.archive(record.0, record.1, at_ms),
                    (Action::Merged, _) => {
                        if let Some(gone) = merged_from {
                            portal.merge(record.0, record.1, *gone as ObjectId, at_ms, &source);
                        }
                    }
                    (Action::Restored, _) => portal.restore(record.0, record.1, at_ms),
                    (_, Some(state)) => {
                        set(
                            portal,
                            record,
                            at_ms,
                            &deal_properties(tenant, deal, state),
                            &source,
                        );
                        if added {
                            let company = tenant.organizations[deal.org].id as ObjectId;
                            let contact = tenant.persons[deal.person].id as ObjectId;
                            portal.associate_primary(record, (ObjectType::Companies, company));
                            portal.associate(record, (ObjectType::Contacts, contact));
                        }
                    }
                }
            }
            Subject::Activity {
                activity,
                before,
                after,
            } => {
                let activity = &tenant.activities[*activity];
                let Some(state) = after else {
                    portal.archive(record.0, record.1, at_ms);
                    return;
                };
                let values = engagement_values(portal, activity, before.as_ref(), state);
                set(portal, record, at_ms, &values, &source);
                if added {
                    let person = tenant.persons[activity.person].id as ObjectId;
                    let company = tenant.organizations[activity.org].id as ObjectId;
                    portal.associate(record, (ObjectType::Contacts, person));
                    portal.associate(record, (ObjectType::Companies, company));
                    // With the deal it is about, if that deal is still there
                    // (merged away: the deal that absorbed it).
                    if let Some(deal) = activity.deal {
                        let id = tenant.deals[deal].id as ObjectId;
                        if let Some(live) = portal
                            .resolve(ObjectType::Deals, id)
                            .filter(|d| !d.archived())
                        {
                            let live = live.id;
                            portal.associate(record, (ObjectType::Deals, live));
                        }
                    }
                }
            }
            Subject::Person { person, after, .. } => {
                let person = &tenant.persons[*person];
                let Some(state) = after else {
                    portal.archive(record.0, record.1, at_ms);
                    return;
                };
                set(
                    portal,
                    record,
                    at_ms,
                    &contact_properties(tenant, person, state),
                    &source,
                );
                if added {
                    let company = tenant.organizations[person.org].id as ObjectId;
                    portal.associate_primary(record, (ObjectType::Companies, company));
                }
            }
            Subject::Organization {
                organization,
                after,
                ..
            } => {
                let org = &tenant.organizations[*organization];
                match after {
                    Some(state) => set(
                        portal,
                        record,
                        at_ms,
                        &company_properties(tenant, org, state),
                        &source,
                    ),
                    None => portal.archive(record.0, record.1, at_ms),
                }
            }
        }
    }
}
