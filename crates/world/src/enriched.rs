//! The world's changes as the enricher turns them into flat events, for
//! tests and benchmarks of the activator and the dashboards that skip the
//! collector and the enricher. The webhook path (`webhooks`) is what the
//! whole pipeline is fed with; both describe the same changes.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::World;
use crate::model::*;

pub(crate) fn iso(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .expect("a valid time")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn label(options: &[(i64, &'static str)], id: i64) -> Option<&'static str> {
    options.iter().find(|(i, _)| *i == id).map(|(_, l)| *l)
}

impl World {
    /// Every Pipedrive and HubSpot change as the enricher emits it
    /// (complete enrichment), in time order: one event per Pipedrive
    /// change, one per HubSpot event (see [`World::distinct_events`]). Zoho
    /// orgs' events are left out: the worlds fed to the activator alone
    /// have none.
    pub fn enriched_events(&self) -> Vec<Value> {
        let mut hubspot: Vec<Vec<Value>> = vec![Vec::new(); self.changes.len()];
        self.replay_hubspot(|index, portal, events| {
            let tenant = &self.tenants[self.changes[index].tenant];
            hubspot[index] = events
                .iter()
                .map(|e| crate::hubspot::enriched_event(tenant, portal, e))
                .collect();
        });
        let mut out = Vec::with_capacity(self.distinct_events());
        for (change, hubspot) in self.changes.iter().zip(hubspot) {
            match self.tenants[change.tenant].platform() {
                Platform::Pipedrive => out.push(self.pipedrive_enriched_event(change)),
                Platform::HubSpot => out.extend(hubspot),
                // Zoho's events are made by the enricher in the end-to-end
                // runs only.
                Platform::Zoho | Platform::Dynamics | Platform::Salesforce => {}
            }
        }
        out
    }

    /// One Pipedrive change as the enricher would emit it (complete enrichment).
    fn pipedrive_enriched_event(&self, change: &Change) -> Value {
        let tenant = &self.tenants[change.tenant];
        let account = tenant.pipedrive().expect("a Pipedrive tenant");
        let at = change.at();
        let id = change.object_id(tenant);
        let object = change.object();
        let mut event = Map::new();
        let mut put = |fields: Value| {
            if let Value::Object(fields) = fields {
                event.extend(fields);
            }
        };
        put(json!({
            "pipeline_event_id": format!("{}-{object}-{id}-{}", tenant.name, change.at_micro),
            "pipeline_tenant": tenant.name, "pipeline_source": "pipedrive", "pipeline_payload_version": "1",
            "pipeline_received_at_micro": change.at_micro + 1_000, "pipeline_enriched_at_micro": change.at_micro + 2_000,
            "pipeline_warnings": [], "pipeline_enrichment_status": "complete", "pipeline_enrichment_missing": [],
            "event_action": change.action.word(), "event_object": object, "event_id": id,
            "event_timestamp": at, "event_timestamp_micro": change.at_micro,
            "event_change_source": "app", "event_is_bulk_update": false, "event_permitted_user_ids": [change.user],
            "event_pipedrive_service_name": false, "event_trans_pending": false, "event_user_id": change.user,
            "event_webhook_id": account.webhook_v1_id, "event_company_id": account.company_id.to_string()
        }));
        match &change.subject {
            Subject::Deal {
                deal,
                before,
                after,
                bulk,
                ..
            } => {
                let deal = &tenant.deals[*deal];
                // A deletion describes the last state.
                let state = after.as_ref().or(before.as_ref()).expect("a deal state");
                put(json!({"event_is_bulk_update": bulk}));
                put(deal_fields(tenant, deal, state));
                if after.is_none() {
                    put(json!({"deal_status": "deleted", "deal_previous_status": state.status}));
                } else if let Some(before) = before {
                    if (before.pipeline, before.stage) != (state.pipeline, state.stage) {
                        let old = &tenant.pipelines[before.pipeline].stages[before.stage];
                        put(json!({
                            "deal_previous_stage_id": old.numeric_id(), "deal_previous_stage": old.name
                        }));
                    }
                    if before.status != state.status {
                        put(json!({"deal_previous_status": before.status}));
                    }
                }
                put(contact_fields(tenant, deal.person, None));
            }
            Subject::Activity {
                activity,
                before,
                after,
            } => {
                let activity = &tenant.activities[*activity];
                let state = after
                    .as_ref()
                    .or(before.as_ref())
                    .expect("an activity state");
                put(json!({
                    "activity_id": activity.id, "activity_type": state.kind, "activity_subject": state.subject,
                    "activity_user_id": state.user.0, "activity_user_name": state.user.1,
                    "activity_deal_id": activity.deal.map(|d| tenant.deals[d].id),
                    "activity_person_id": tenant.persons[activity.person].id,
                    "activity_org_id": tenant.organizations[activity.org].id,
                    "activity_done": state.done_at.is_some(), "activity_due_date": activity.due_date.to_string(),
                    "activity_add_time": iso(activity.add_time), "activity_marked_as_done_time": state.done_at.map(iso),
                    "activity_update_time": iso(state.update_time)
                }));
            }
            Subject::Person {
                person,
                before,
                after,
            } => put(contact_fields(
                tenant,
                *person,
                after.as_ref().or(before.as_ref()),
            )),
            Subject::Organization {
                organization,
                before,
                after,
            } => put(organization_fields(
                tenant,
                *organization,
                after.as_ref().or(before.as_ref()),
            )),
        }
        Value::Object(event)
    }
}

fn deal_fields(tenant: &Tenant, deal: &Deal, state: &DealState) -> Value {
    let pipeline = &tenant.pipelines[state.pipeline];
    let stage = &pipeline.stages[state.stage];
    json!({
        "deal_id": deal.id, "deal_title": state.title,
        "deal_stage": stage.name, "deal_stage_id": stage.numeric_id(), "deal_stage_order_nr": stage.order,
        "deal_stage_probability": stage.probability,
        "deal_pipeline": pipeline.name, "deal_pipeline_id": pipeline.numeric_id(),
        "deal_value": state.value, "deal_currency": deal.currency, "deal_status": state.status,
        "deal_probability": deal.probability, "deal_owner_id": deal.owner.0, "deal_owner_name": deal.owner.1,
        "deal_expected_close_date": deal.expected_close.to_string(),
        "deal_add_time": iso(deal.add_time), "deal_update_time": iso(state.update_time),
        "deal_won_time": state.won_time.map(iso), "deal_lost_time": state.lost_time.map(iso),
        "deal_lost_reason": state.lost_time.map(|_| "Price"),
        "deal_stage_change_time": iso(state.stage_change_time),
        "marketing_source": deal.source_label(), "marketing_campaign": deal.campaign
    })
}

/// The person's fields, as of `state` (else its latest state).
fn contact_fields(tenant: &Tenant, person: usize, state: Option<&PersonState>) -> Value {
    let person = &tenant.persons[person];
    let state = state.unwrap_or(&person.last);
    let mut fields = json!({
        "contact_id": person.id, "contact_email": person.email,
        "contact_first_name": person.first_name, "contact_last_name": person.last_name,
        "contact_phone_number": state.phone, "contact_position": state.job_title
    });
    if let (Value::Object(fields), Value::Object(org)) =
        (&mut fields, organization_fields(tenant, person.org, None))
    {
        fields.extend(org);
    }
    fields
}

fn organization_fields(
    tenant: &Tenant,
    organization: usize,
    state: Option<&OrganizationState>,
) -> Value {
    let org = &tenant.organizations[organization];
    let state = state.unwrap_or(&org.last);
    json!({
        "organization_id": org.id, "organization_name": state.name,
        "organization_company_size": label(&COMPANY_SIZES, state.size),
        "organization_industry": label(&INDUSTRIES, state.industry)
    })
}
