//! Salesforce's enriched events (the flat `salesforce-crm` shape) into the
//! canonical model.
//!
//! The account is the org. A notification carries the record's latest
//! values for the fields its message selected, at the record's
//! `LastModifiedDate`: every selected field is known at that version, every
//! other one stays unknown, so a message that selects fewer fields never
//! blanks the rest. An opportunity's status comes from `IsWon` and
//! `IsClosed` (closed and not won is lost), never from the stage's name;
//! its stage is the `StageName` (Salesforce's stages are org-wide picklist
//! values, so the stage's outcome is the same for every opportunity in it).
//! Salesforce dates a closed opportunity by its `CloseDate`, so a won or
//! lost opportunity is won or lost at the start of that day (UTC). A message
//! that selects neither `IsWon` nor `IsClosed` takes the outcome from the
//! stage's definition, when the enricher read it from the REST API. An
//! opportunity enters its stage at its `LastStageChangeDate` where the
//! message selects it, at the commit of a change event that changed the
//! stage, or at its creation if it was not modified since. A task or an
//! event is an activity: a task done when closed (at its
//! `CompletedDateTime`), an event (a meeting) never said done, Salesforce
//! keeping no such flag; each about the opportunity, account and contact
//! its `WhatId`, `AccountId` and `WhoId` name.

use serde_json::{Map, Value};
use tributary_model::flat::{Flat, domain_of_website};
use tributary_model::{
    Activity, ActivityType, Company, Contact, Context, Deal, DealStatus, Field, Key, Mapped,
    Mapping, MappingError, Outcome, Pipeline, Record, Stage, Timestamp, User, Version,
};

use crate::mapped::EventHeader;

/// The mapping the activator uses for Salesforce events.
pub struct SalesforceMapping;

/// The one pipeline opportunities are in: Salesforce's stages are org-wide.
pub const PIPELINE_ID: &str = "opportunities";
const PIPELINE_NAME: &str = "Opportunities";

struct Event<'a> {
    flat: Flat<'a>,
    header: EventHeader,
}

impl Event<'_> {
    fn key(&self, id: impl Into<String>) -> Key {
        self.header.key(id)
    }

    fn field(name: &str) -> String {
        format!("sobject_{name}")
    }

    fn text(&self, name: &str) -> Result<Field<String>, MappingError> {
        self.flat.text_or_empty(&Self::field(name))
    }

    fn flag(&self, name: &str) -> Result<Field<bool>, MappingError> {
        self.flat.flag(&Self::field(name))
    }

    fn time(&self, name: &str) -> Result<Field<Timestamp>, MappingError> {
        self.flat.time_or_empty(&Self::field(name))
    }
}

impl Mapping for SalesforceMapping {
    fn map(
        &self,
        context: &Context<'_>,
        fields: &Map<String, Value>,
    ) -> Result<Mapped, MappingError> {
        let flat = Flat::new(fields);
        let header = EventHeader::read(&flat, context, "event_organization_id")?;
        let event = Event { flat, header };
        let mut records = Vec::new();
        let canonical = match event.header.object.as_str() {
            "opportunity" => {
                opportunity(&event, &mut records)?;
                "deal"
            }
            "account" => {
                records.push(Record::Company(account_record(&event)?));
                owner(&event, &mut records)?;
                "company"
            }
            "contact" => {
                records.push(Record::Contact(contact(&event)?));
                owner(&event, &mut records)?;
                "contact"
            }
            "user" => {
                records.push(Record::User(user(&event)?));
                "user"
            }
            "task" | "event" => {
                records.push(Record::Activity(activity(&event)?));
                owner(&event, &mut records)?;
                "activity"
            }
            _ => return Err(event.header.unknown_object("Salesforce")),
        };
        Ok(event.header.into_mapped(canonical, records))
    }
}

fn opportunity(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let flat = &event.flat;
    let mut deal = Deal::new(event.header.record_key(), event.header.version);
    deal.deleted = event.flag("IsDeleted")?;
    deal.title = event.text("Name")?;
    deal.amount = flat.amount_or_empty(&Event::field("Amount"))?;
    deal.amount_text = event.text("Amount")?;
    // A multi-currency org says each record's currency; a single-currency
    // org's is the tenant's setting.
    deal.currency = match event.text("CurrencyIsoCode")? {
        Field::Unknown => flat.text("event_default_currency")?,
        known => known,
    };
    deal.stage_id = event.text("StageName")?;
    if deal.stage_id.is_known() {
        deal.pipeline_id = Field::Value(PIPELINE_ID.into());
    }
    // The stage's definition, when the enricher read it from the API.
    let stage_won = flat.flag("stage_is_won")?;
    let stage_closed = flat.flag("stage_is_closed")?;
    let change_event = flat.flag("event_change_event")?.is_known();
    let (won, closed) = match (event.flag("IsWon")?, event.flag("IsClosed")?) {
        (Field::Unknown, Field::Unknown) => (stage_won.clone(), stage_closed.clone()),
        // A change event carries only what changed. Closed without IsWon:
        // it was open, so not won, and stays not won. Not won any more
        // without IsClosed: it stays closed (a reopening changes IsClosed).
        (Field::Unknown, closed @ Field::Value(true)) if change_event => {
            (Field::Value(false), closed)
        }
        (won @ Field::Value(false), Field::Unknown) if change_event => (won, Field::Value(true)),
        known => known,
    };
    deal.status = match (won, closed) {
        (Field::Value(true), _) => Field::Value(DealStatus::Won),
        (Field::Value(false), Field::Value(true)) => Field::Value(DealStatus::Lost),
        (_, Field::Value(false)) => Field::Value(DealStatus::Open),
        (Field::Unknown, _) | (_, Field::Unknown) => Field::Unknown,
        _ => Field::Null,
    };
    deal.probability = flat.number(&Event::field("Probability"))?;
    deal.expected_close_date = flat.date_or_empty(&Event::field("CloseDate"))?;
    deal.created_at = event.time("CreatedDate")?;
    deal.updated_at = event.time("LastModifiedDate")?;
    deal.owner_id = event.text("OwnerId")?;
    deal.company_id = event.text("AccountId")?;
    deal.contact_id = event.text("ContactId")?;
    deal.marketing_source = event.text("LeadSource")?;
    deal.marketing_campaign = event.text("CampaignId")?;
    let mut closed_on = flat.day_start_or_empty(&Event::field("CloseDate"))?;
    // A change event that closes an opportunity without its CloseDate
    // (unchanged, and no REST API to read it) is dated by its commit.
    if !closed_on.is_known() && change_event {
        let day = event.header.version.at_micro.div_euclid(86_400_000_000) * 86_400_000_000;
        closed_on = Timestamp::from_micros(day)
            .map(Field::Value)
            .map_err(|reason| MappingError::new("event_timestamp_micro", reason))?;
    }
    (deal.won_at, deal.lost_at, deal.closed_at) = match deal.status {
        Field::Value(DealStatus::Won) => (closed_on.clone(), Field::Null, closed_on),
        Field::Value(DealStatus::Lost) => (Field::Null, closed_on.clone(), closed_on),
        Field::Value(DealStatus::Open) => (Field::Null, Field::Null, Field::Null),
        _ => (Field::Unknown, Field::Unknown, Field::Unknown),
    };
    if let Field::Value(stage) = &deal.stage_id {
        // The stage's outcome is the stage's own (IsWon and IsClosed follow
        // it). Its order, default probability and label come from its
        // definition, which the enricher reads when it has the API; without
        // it the stage is named by its value, in no particular order.
        let outcome = match (stage_won, stage_closed, &deal.status) {
            (Field::Value(true), _, _) => Some(Outcome::Won),
            (Field::Value(false), Field::Value(true), _) => Some(Outcome::Lost),
            (Field::Value(false), Field::Value(false), _) => Some(Outcome::Open),
            (_, _, Field::Value(DealStatus::Won)) => Some(Outcome::Won),
            (_, _, Field::Value(DealStatus::Lost)) => Some(Outcome::Lost),
            (_, _, Field::Value(DealStatus::Open)) => Some(Outcome::Open),
            _ => None,
        };
        if let Some(outcome) = outcome {
            let defined = flat.integer("stage_sort_order")?.value().copied();
            // A definition is as of its read; a stage known only from an
            // opportunity is version 0, so any definition replaces it.
            let version = match defined {
                Some(_) => flat
                    .integer("pipeline_enriched_at_micro")?
                    .value()
                    .copied()
                    .unwrap_or(event.header.version.at_micro),
                None => 0,
            };
            records.push(Record::Stage(Stage {
                key: event.key(stage.clone()),
                version,
                pipeline_id: PIPELINE_ID.into(),
                name: flat
                    .text("stage_label")?
                    .value()
                    .cloned()
                    .unwrap_or_else(|| stage.clone()),
                display_order: defined.unwrap_or(0),
                probability: flat.number("stage_default_probability")?.value().copied(),
                outcome,
                // An inactive stage is one the org no longer offers.
                archived: flat.flag("stage_is_active")?.value() == Some(&false),
            }));
            records.push(Record::Pipeline(Pipeline {
                key: event.key(PIPELINE_ID),
                version: 0,
                name: PIPELINE_NAME.into(),
                display_order: 0,
                archived: false,
            }));
        }
    }
    if let Some(at) = stage_entered_at(event, &deal)? {
        records.extend(event.header.stage_entry(
            &deal.pipeline_id,
            &deal.stage_id,
            &deal.status,
            at,
        ));
    }
    records.push(Record::Deal(deal));
    owner(event, records)?;
    opportunitys_account(event, records)?;
    Ok(())
}

/// When the opportunity entered the stage the event names, where the
/// event says: its `LastStageChangeDate` (a message or read that selects
/// it); a change event that carries `StageName` (a change event carries
/// only what changed; not a gap's record, read whole); else its creation,
/// for one not modified since.
fn stage_entered_at(event: &Event<'_>, deal: &Deal) -> Result<Option<i64>, MappingError> {
    if !deal.stage_id.is_known() {
        return Ok(None);
    }
    if let Field::Value(at) = event.time("LastStageChangeDate")? {
        return Ok(Some(at.seconds() * 1_000_000));
    }
    // A gap's record is read whole: it says the stage, not that it moved.
    // Salesforce keeps a record's times to the second, a commit's to the
    // millisecond: the entry is at the second, so a change event and a read
    // of `LastStageChangeDate` make the same entry.
    if event.flat.flag("event_change_event")?.is_known() {
        let gap = event.header.action.starts_with("gap_");
        let at = event.header.version.at_micro;
        return Ok((!gap).then_some(at - at.rem_euclid(1_000_000)));
    }
    Ok(match (&deal.created_at, &deal.updated_at) {
        (Field::Value(created), Field::Value(modified)) if created == modified => {
            Some(created.seconds() * 1_000_000)
        }
        _ => None,
    })
}

/// The opportunity's account as the enricher read it, at the account's own
/// `LastModifiedDate`.
fn opportunitys_account(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let flat = &event.flat;
    let (Field::Value(id), Field::Value(modified)) = (
        event.text("AccountId")?,
        flat.time_or_empty("account_LastModifiedDate")?,
    ) else {
        return Ok(());
    };
    let version = Version {
        at_micro: modified.seconds() * 1_000_000,
        received_micro: event.header.version.received_micro,
    };
    let mut company = Company::new(event.key(id), version);
    company.name = flat.text_or_empty("account_Name")?;
    company.domain = flat
        .text_or_empty("account_Website")?
        .map(|site| domain_of_website(&site));
    company.industry = flat.text_or_empty("account_Industry")?;
    company.size = flat.text_or_empty("account_NumberOfEmployees")?;
    company.owner_id = flat.text_or_empty("account_OwnerId")?;
    company.updated_at = Field::Value(modified);
    records.push(Record::Company(company));
    Ok(())
}

/// The record's owner, when the enricher read it: as it was at enrichment.
fn owner(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let flat = &event.flat;
    if let (Field::Value(id), Field::Value(name)) =
        (event.text("OwnerId")?, flat.text("owner_name")?)
    {
        let read_at = flat.integer("pipeline_enriched_at_micro")?.value().copied();
        let version = Version {
            at_micro: read_at.unwrap_or(event.header.version.at_micro),
            received_micro: event.header.version.received_micro,
        };
        let mut user = User::new(event.key(id), version);
        user.name = Field::Value(name);
        user.active = flat.flag("owner_is_active")?;
        records.push(Record::User(user));
    }
    Ok(())
}

fn account_record(event: &Event<'_>) -> Result<Company, MappingError> {
    let mut company = Company::new(event.header.record_key(), event.header.version);
    company.deleted = event.flag("IsDeleted")?;
    company.name = event.text("Name")?;
    company.domain = event.text("Website")?.map(|site| domain_of_website(&site));
    company.owner_id = event.text("OwnerId")?;
    company.industry = event.text("Industry")?;
    company.size = event.text("NumberOfEmployees")?;
    company.created_at = event.time("CreatedDate")?;
    company.updated_at = event.time("LastModifiedDate")?;
    Ok(company)
}

fn contact(event: &Event<'_>) -> Result<Contact, MappingError> {
    let mut contact = Contact::new(event.header.record_key(), event.header.version);
    contact.deleted = event.flag("IsDeleted")?;
    contact.company_id = event.text("AccountId")?;
    contact.owner_id = event.text("OwnerId")?;
    contact.created_at = event.time("CreatedDate")?;
    contact.updated_at = event.time("LastModifiedDate")?;
    Ok(contact)
}

/// A task or an event as an activity.
fn activity(event: &Event<'_>) -> Result<Activity, MappingError> {
    let task = event.header.object == "task";
    let mut activity = Activity::new(event.header.record_key(), event.header.version);
    activity.deleted = event.flag("IsDeleted")?;
    let subtype = event.text(if task { "TaskSubtype" } else { "EventSubtype" })?;
    let kind = match event.text("Type")? {
        Field::Value(kind) if !kind.is_empty() => Field::Value(kind),
        _ => subtype,
    };
    activity.kind = match &kind {
        Field::Value(kind) => Field::Value(activity_kind(kind, task)),
        Field::Null if !task => Field::Value(ActivityType::Meeting),
        Field::Null => Field::Value(ActivityType::Task),
        Field::Unknown => Field::Unknown,
    };
    activity.raw_type = kind;
    activity.subject = event.text("Subject")?;
    if task {
        activity.due_date = event.flat.date_or_empty(&Event::field("ActivityDate"))?;
        activity.done = event.flag("IsClosed")?;
        activity.done_at = match activity.done {
            Field::Value(true) => event.time("CompletedDateTime")?,
            Field::Value(false) => Field::Null,
            _ => Field::Unknown,
        };
    } else {
        activity.due_at = event.time("StartDateTime")?;
        activity.done = Field::Null;
        activity.done_at = Field::Null;
    }
    activity.owner_id = event.text("OwnerId")?;
    // WhatId names an opportunity (006) or an account (001); WhoId a
    // contact (003) or a lead (00Q).
    let what = event.text("WhatId")?;
    let named = |field: &Field<String>, prefix: &str| match field {
        Field::Value(id) if id.starts_with(prefix) => Field::Value(id.clone()),
        Field::Unknown => Field::Unknown,
        _ => Field::Null,
    };
    activity.deal_id = named(&what, "006");
    activity.company_id = match (named(&what, "001"), event.text("AccountId")?) {
        (Field::Value(id), _) => Field::Value(id),
        (_, Field::Value(id)) if !id.is_empty() => Field::Value(id),
        (what, account) if what.is_known() && account.is_known() => Field::Null,
        _ => Field::Unknown,
    };
    activity.contact_id = named(&event.text("WhoId")?, "003");
    activity.created_at = event.time("CreatedDate")?;
    activity.updated_at = event.time("LastModifiedDate")?;
    Ok(activity)
}

/// The canonical kind of a task's or event's `Type` (or subtype): the
/// standard picklist's Call, Email and Meeting; anything else an event's
/// meeting or a task's task.
fn activity_kind(kind: &str, task: bool) -> ActivityType {
    match kind.to_ascii_lowercase().as_str() {
        "call" => ActivityType::Call,
        "email" | "listemail" => ActivityType::Email,
        "meeting" => ActivityType::Meeting,
        _ if task => ActivityType::Task,
        _ => ActivityType::Meeting,
    }
}

fn user(event: &Event<'_>) -> Result<User, MappingError> {
    let mut user = User::new(event.header.record_key(), event.header.version);
    user.name = event.text("Name")?;
    user.email = event.text("Email")?;
    user.active = event.flag("IsActive")?;
    user.updated_at = event.time("LastModifiedDate")?;
    Ok(user)
}

#[cfg(test)]
mod tests;
