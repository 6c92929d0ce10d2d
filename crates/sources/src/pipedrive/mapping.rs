//! Pipedrive's enriched events (the flat `pipedrive-sales` shape the
//! enricher writes) into the canonical model.
//!
//! The record's account is the Pipedrive company (`event_company_id`), its
//! version the webhook's `timestamp_micro`. Webhooks carry the whole object
//! (v1 `current`, v2 `data`; the last state on a delete), so a deal's own
//! fields are always known; what the enricher looked up (stage, pipeline and
//! owner names, custom-field labels, the person and organization) is known
//! only when the lookup succeeded, so a partial event never blanks it.

use tributary_model::flat::Flat;
use tributary_model::{
    Activity, ActivityType, Company, Contact, ContactPii, Context, Deal, DealStatus, Field, Key,
    Mapped, Mapping, MappingError, Outcome, Pipeline, Record, Stage, StageTransition, User,
    Version,
};

use serde_json::{Map, Value};

/// The mapping the activator uses for Pipedrive events.
pub struct PipedriveMapping;

/// Lookup names in `pipeline_enrichment_missing` (see `enrich.rs`).
const STAGE: &str = "stage";
const PIPELINE: &str = "pipeline";
const DEAL_FIELDS: &str = "deal_fields";
const PERSON: &str = "person";
const ORGANIZATION: &str = "organization";
const ORGANIZATION_FIELDS: &str = "organization_fields";
const EMAIL_VALIDATION: &str = "email_validation";

/// What every record of one event shares.
struct Event<'a> {
    flat: Flat<'a>,
    context: &'a Context<'a>,
    account: String,
    action: String,
    version: Version,
}

impl Event<'_> {
    fn key(&self, id: String) -> Key {
        Key {
            tenant: self.context.tenant.to_owned(),
            source: self.context.source.to_owned(),
            account: self.account.clone(),
            id,
        }
    }

    fn deleted(&self) -> bool {
        self.action == "deleted"
    }
}

impl Mapping for PipedriveMapping {
    fn map(
        &self,
        context: &Context<'_>,
        fields: &Map<String, Value>,
    ) -> Result<Mapped, MappingError> {
        let flat = Flat::new(fields);
        let object = Flat::required("event_object", flat.text("event_object")?)?;
        let action = Flat::required("event_action", flat.text("event_action")?)?;
        let account = Flat::required("event_company_id", flat.id("event_company_id")?)?;
        let at_micro = Flat::required(
            "event_timestamp_micro",
            flat.integer("event_timestamp_micro")?,
        )?;
        let event = Event {
            flat,
            context,
            account,
            action,
            version: Version {
                at_micro,
                received_micro: context.received_at_micro,
            },
        };
        let (canonical, id_field) = match object.as_str() {
            "deal" => ("deal", "deal_id"),
            "activity" => ("activity", "activity_id"),
            "person" => ("contact", "contact_id"),
            "organization" => ("company", "organization_id"),
            other => {
                return Err(MappingError::new(
                    "event_object",
                    format!("no mapping for Pipedrive object {other:?}"),
                ));
            }
        };
        let remote_id = Flat::required(id_field, event.flat.id(id_field)?)?;
        let mut records = Vec::new();
        match canonical {
            "deal" => deal(&event, &remote_id, &mut records)?,
            "activity" => activity(&event, &remote_id, &mut records)?,
            "contact" => {
                person(&event, &remote_id, true, &mut records)?;
                organization(&event, false, &mut records)?;
            }
            _ => organization(&event, true, &mut records)?,
        }
        Ok(Mapped {
            account: event.account.clone(),
            object: canonical.to_owned(),
            remote_id,
            action: event.action.clone(),
            version: event.version,
            records,
        })
    }
}

fn deal(event: &Event<'_>, id: &str, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let flat = &event.flat;
    let context = event.context;
    let raw_status = flat.text("deal_status")?;
    let status = match &raw_status {
        Field::Value(s) => match s.as_str() {
            "open" => Field::Value(DealStatus::Open),
            "won" => Field::Value(DealStatus::Won),
            "lost" => Field::Value(DealStatus::Lost),
            // A deleted deal keeps its last status; deletion is its own field.
            "deleted" => Field::Unknown,
            other => {
                return Err(MappingError::new(
                    "deal_status",
                    format!("{other:?} is not a Pipedrive deal status"),
                ));
            }
        },
        Field::Null => Field::Null,
        Field::Unknown => Field::Unknown,
    };
    let deleted = event.deleted() || raw_status.value().is_some_and(|s| s == "deleted");
    let mut deal = Deal::new(event.key(id.to_owned()), event.version);
    deal.deleted = Field::Value(deleted);
    // Merges: v2 names the survivor on the merged-away deal's delete; v1
    // sends a plain delete for it (and `merged` for the survivor).
    deal.merged_into = match flat.id("event_merged_to_id")? {
        Field::Value(into) => Field::Value(into),
        _ if deleted => Field::Unknown,
        _ => Field::Null,
    };
    deal.title = flat.text("deal_title")?;
    deal.amount = flat.amount("deal_value")?;
    deal.amount_text = match flat.raw("deal_value") {
        None => Field::Unknown,
        Some(Value::Null) => Field::Null,
        Some(Value::String(s)) => Field::Value(s.clone()),
        Some(other) => Field::Value(other.to_string()),
    };
    deal.currency = flat.text("deal_currency")?;
    deal.pipeline_id = flat.id("deal_pipeline_id")?;
    deal.stage_id = flat.id("deal_stage_id")?;
    deal.status = status.clone();
    deal.probability = flat.number("deal_probability")?;
    deal.expected_close_date = flat.date("deal_expected_close_date")?;
    deal.created_at = flat.time("deal_add_time")?;
    deal.won_at = flat.time("deal_won_time")?;
    deal.lost_at = flat.time("deal_lost_time")?;
    deal.closed_at = match &status {
        Field::Value(DealStatus::Won) => deal.won_at.clone(),
        Field::Value(DealStatus::Lost) => deal.lost_at.clone(),
        Field::Value(DealStatus::Open) => Field::Null,
        _ => Field::Unknown,
    };
    deal.lost_reason = flat.text("deal_lost_reason")?;
    deal.owner_id = flat.id("deal_owner_id")?;
    deal.company_id = flat.id("organization_id")?;
    deal.contact_id = flat.id("contact_id")?;
    deal.stage_changed_at = flat.time("deal_stage_change_time")?;
    // Labels of custom fields: resolved through the field definitions.
    deal.marketing_source = flat
        .text("marketing_source")?
        .only_if(context.has(DEAL_FIELDS));
    deal.marketing_campaign = flat
        .text("marketing_campaign")?
        .only_if(context.has(DEAL_FIELDS));
    deal.updated_at = flat.time("deal_update_time")?;

    let stage_id = deal.stage_id.value().cloned();
    let pipeline_id = deal.pipeline_id.value().cloned();
    if !deleted && let Some(stage_id) = &stage_id {
        transition(
            event,
            id,
            stage_id,
            pipeline_id.as_deref(),
            &raw_status,
            records,
        )?;
    }
    if let (Some(stage_id), Field::Value(name), true) =
        (&stage_id, flat.text("deal_stage")?, context.has(STAGE))
    {
        records.push(Record::Stage(Stage {
            key: event.key(stage_id.clone()),
            version: event.version.at_micro,
            pipeline_id: pipeline_id.clone().unwrap_or_default(),
            name,
            display_order: flat
                .integer("deal_stage_order_nr")?
                .value()
                .copied()
                .unwrap_or(0),
            probability: flat.number("deal_stage_probability")?.value().copied(),
            outcome: Outcome::Open,
            archived: false,
        }));
    }
    if let (Some(pipeline_id), Field::Value(name), true) = (
        &pipeline_id,
        flat.text("deal_pipeline")?,
        context.has(PIPELINE),
    ) {
        records.push(Record::Pipeline(Pipeline {
            key: event.key(pipeline_id.clone()),
            version: event.version.at_micro,
            name,
            display_order: 0,
            archived: false,
        }));
    }
    user(
        event,
        &deal.owner_id,
        flat.text("deal_owner_name")?,
        records,
    );
    if context.has(PERSON) {
        person(event, "", false, records)?;
    }
    if context.has(ORGANIZATION) {
        organization(event, false, records)?;
    }
    records.insert(0, Record::Deal(deal));
    Ok(())
}

/// The deal's creation, or its move to another stage or status.
fn transition(
    event: &Event<'_>,
    deal_id: &str,
    stage_id: &str,
    pipeline_id: Option<&str>,
    status: &Field<String>,
    records: &mut Vec<Record>,
) -> Result<(), MappingError> {
    let flat = &event.flat;
    let status = status.value().cloned().unwrap_or_default();
    let previous_stage = flat.id("deal_previous_stage_id")?.value().cloned();
    let previous_status = flat.text("deal_previous_status")?.value().cloned();
    let (from_stage_id, from_status) = if event.action == "added" {
        (String::new(), String::new())
    } else if previous_stage.is_some() || previous_status.is_some() {
        (
            previous_stage.unwrap_or_else(|| stage_id.to_owned()),
            previous_status.unwrap_or_else(|| status.clone()),
        )
    } else {
        return Ok(());
    };
    records.push(Record::StageTransition(StageTransition {
        deal: event.key(deal_id.to_owned()),
        entered_at_micro: event.version.at_micro,
        pipeline_id: pipeline_id.unwrap_or_default().to_owned(),
        from_stage_id,
        to_stage_id: stage_id.to_owned(),
        from_status,
        to_status: status,
        change_source: flat
            .text("event_change_source")?
            .value()
            .cloned()
            .unwrap_or_default(),
    }));
    Ok(())
}

/// A user's name, where the event has it.
fn user(event: &Event<'_>, id: &Field<String>, name: Field<String>, records: &mut Vec<Record>) {
    if let (Some(id), Field::Value(name)) = (id.value(), name) {
        let mut user = User::new(event.key(id.clone()), event.version);
        user.name = Field::Value(name);
        records.push(Record::User(user));
    }
}

fn activity(event: &Event<'_>, id: &str, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let flat = &event.flat;
    let mut activity = Activity::new(event.key(id.to_owned()), event.version);
    activity.deleted = Field::Value(event.deleted());
    let raw_type = flat.text("activity_type")?;
    activity.kind = raw_type.clone().map(|t| activity_kind(&t));
    activity.raw_type = raw_type;
    activity.subject = flat.text("activity_subject")?;
    activity.due_date = flat.date("activity_due_date")?;
    activity.due_at = match (
        flat.text("activity_due_date")?,
        flat.text("activity_due_time")?,
    ) {
        (Field::Value(date), Field::Value(time)) if !time.is_empty() => {
            let time = if time.len() == 5 {
                format!("{time}:00")
            } else {
                time
            };
            Field::Value(
                tributary_model::flat::parse_time(&format!("{date} {time}"))
                    .map_err(|reason| MappingError::new("activity_due_time", reason))?,
            )
        }
        (Field::Unknown, _) => Field::Unknown,
        _ => Field::Null,
    };
    let done = flat.flag("activity_done")?;
    activity.done_at = match &done {
        Field::Value(true) => flat.time("activity_marked_as_done_time")?,
        Field::Value(false) | Field::Null => Field::Null,
        Field::Unknown => Field::Unknown,
    };
    activity.done = done;
    activity.owner_id = flat.id("activity_user_id")?;
    activity.deal_id = flat.id("activity_deal_id")?;
    activity.contact_id = flat.id("activity_person_id")?;
    activity.company_id = flat.id("activity_org_id")?;
    activity.created_at = flat.time("activity_add_time")?;
    activity.updated_at = flat.time("activity_update_time")?;
    let owner = activity.owner_id.clone();
    records.push(Record::Activity(activity));
    user(event, &owner, flat.text("activity_user_name")?, records);
    Ok(())
}

/// Pipedrive's default activity types, by their canonical kind; a tenant's
/// own types are `other` (the type is kept in `raw_type`).
fn activity_kind(raw: &str) -> ActivityType {
    match raw {
        "call" => ActivityType::Call,
        "email" => ActivityType::Email,
        "meeting" | "lunch" => ActivityType::Meeting,
        "task" | "deadline" => ActivityType::Task,
        _ => ActivityType::Other,
    }
}

/// The person of the event: the changed person itself (`own`), or the deal's.
fn person(
    event: &Event<'_>,
    id: &str,
    own: bool,
    records: &mut Vec<Record>,
) -> Result<(), MappingError> {
    let flat = &event.flat;
    let id = if own {
        id.to_owned()
    } else {
        match flat.id("contact_id")? {
            Field::Value(id) => id,
            _ => return Ok(()),
        }
    };
    let key = event.key(id);
    if own {
        let mut contact = Contact::new(key.clone(), event.version);
        contact.deleted = Field::Value(event.deleted());
        contact.company_id = flat.id("organization_id")?;
        contact.email_status = flat
            .text("email_validation_status")?
            .only_if(event.context.has(EMAIL_VALIDATION));
        records.push(Record::Contact(contact));
    }
    let mut pii = ContactPii::new(key, event.version);
    pii.first_name = flat.text("contact_first_name")?;
    pii.last_name = flat.text("contact_last_name")?;
    pii.email = flat.text("contact_email")?;
    pii.phone = flat.text("contact_phone_number")?;
    pii.position = flat.text("contact_position")?;
    if pii.knows_anything() {
        records.push(Record::ContactPii(pii));
    }
    Ok(())
}

/// The organization of the event: the changed one itself (`own`), or the
/// deal's or person's, with what was looked up of it.
fn organization(
    event: &Event<'_>,
    own: bool,
    records: &mut Vec<Record>,
) -> Result<(), MappingError> {
    let flat = &event.flat;
    let Field::Value(id) = flat.id("organization_id")? else {
        return Ok(());
    };
    let context = event.context;
    let mut company = Company::new(event.key(id), event.version);
    if own {
        company.deleted = Field::Value(event.deleted());
    }
    company.name = match flat.text("organization_name")? {
        // Another object's organization: known only from the lookup.
        Field::Null if !own => Field::Unknown,
        name => name,
    };
    let labels = context.has(ORGANIZATION_FIELDS);
    company.industry = flat.text("organization_industry")?.only_if(labels);
    company.size = flat.text("organization_company_size")?.only_if(labels);
    if company.knows_anything() {
        records.push(Record::Company(company));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
