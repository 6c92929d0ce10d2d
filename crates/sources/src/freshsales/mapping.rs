//! Freshsales' enriched events (the flat `freshsales-crm` shape) into the
//! canonical model.
//!
//! The account is the API's host. Every event carries its record as read
//! whole, at the record's `updated_at`, so each field it has is known and
//! an event whose read failed changes nothing. A deal's status is its
//! stage's `forecast_type` (`Open`, `Closed Won`, `Closed Lost`), never the
//! stage's name; a closed deal is won or lost on its `closed_date` (the
//! start of that day, UTC), else when its stage last changed. A sales
//! activity (a call, meeting or email a rep logged) is a done activity,
//! done at its `end_date`, of the kind its type's name says, about the
//! deal, contact or account it targets. A delete is a tombstone.

use serde_json::{Map, Value};
use tributary_model::flat::{Flat, domain_of_website};
use tributary_model::{
    Activity, ActivityType, Company, Contact, Context, Deal, DealStatus, Field, Mapped, Mapping,
    MappingError, Outcome, Pipeline, Record, Stage, Timestamp,
};

use crate::mapped::EventHeader;

pub struct FreshsalesMapping;

struct Event<'a> {
    flat: Flat<'a>,
    header: EventHeader,
}

impl Event<'_> {
    fn field(name: &str) -> String {
        format!("record_{name}")
    }

    fn text(&self, name: &str) -> Result<Field<String>, MappingError> {
        self.flat.text_or_empty(&Self::field(name))
    }

    fn id(&self, name: &str) -> Result<Field<String>, MappingError> {
        self.flat.id(&Self::field(name))
    }

    fn time(&self, name: &str) -> Result<Field<Timestamp>, MappingError> {
        self.flat.time_or_empty(&Self::field(name))
    }

    /// Whether the record was read: only then is every field known.
    fn read(&self) -> bool {
        self.flat.raw(&Self::field("updated_at")).is_some()
    }

    fn deleted(&self) -> Field<bool> {
        if self.header.action == "delete" {
            Field::Value(true)
        } else if self.read() {
            Field::Value(false)
        } else {
            Field::Unknown
        }
    }

    /// The record's owner, with its name as of this read.
    fn owner(&self) -> Result<Option<Record>, MappingError> {
        Ok(self
            .header
            .referenced_user(self.id("owner_id")?, self.flat.text("owner_name")?))
    }
}

impl Mapping for FreshsalesMapping {
    fn map(
        &self,
        context: &Context<'_>,
        fields: &Map<String, Value>,
    ) -> Result<Mapped, MappingError> {
        let flat = Flat::new(fields);
        let header = EventHeader::read(&flat, context, "event_account")?;
        let event = Event { flat, header };
        let mut records = Vec::new();
        let canonical = match event.header.object.as_str() {
            "deal" => {
                deal(&event, &mut records)?;
                "deal"
            }
            "sales_account" => {
                let mut company = Company::new(event.header.record_key(), event.header.version);
                company.deleted = event.deleted();
                company.name = event.text("name")?;
                company.domain = event.text("website")?.map(|site| domain_of_website(&site));
                company.owner_id = event.id("owner_id")?;
                company.size = match event.flat.raw(&Event::field("number_of_employees")) {
                    Some(Value::Number(n)) => Field::Value(n.to_string()),
                    _ => event.text("number_of_employees")?,
                };
                company.created_at = event.time("created_at")?;
                company.updated_at = event.time("updated_at")?;
                records.push(Record::Company(company));
                records.extend(event.owner()?);
                "company"
            }
            "sales_activity" => {
                sales_activity(&event, &mut records)?;
                "activity"
            }
            "contact" => {
                let mut contact = Contact::new(event.header.record_key(), event.header.version);
                contact.deleted = event.deleted();
                contact.owner_id = event.id("owner_id")?;
                contact.company_id = event.id("sales_account_id")?;
                contact.created_at = event.time("created_at")?;
                contact.updated_at = event.time("updated_at")?;
                records.push(Record::Contact(contact));
                records.extend(event.owner()?);
                "contact"
            }
            _ => return Err(event.header.unknown_object("Freshsales")),
        };
        Ok(event.header.into_mapped(canonical, records))
    }
}

fn sales_activity(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let flat = &event.flat;
    let mut activity = Activity::new(event.header.record_key(), event.header.version);
    activity.deleted = event.deleted();
    let kind = flat.text("activity_type")?;
    activity.kind = kind.clone().map(|name| activity_kind(&name));
    activity.raw_type = kind;
    activity.subject = event.text("title")?;
    activity.due_at = event.time("start_date")?;
    // Logged after the fact: done when it ended (else when it started).
    let done_at = match event.time("end_date")? {
        Field::Value(at) => Field::Value(at),
        _ => activity.due_at.clone(),
    };
    activity.done = if event.read() {
        Field::Value(true)
    } else {
        Field::Unknown
    };
    activity.done_at = done_at;
    activity.owner_id = event.id("owner_id")?;
    let target = event.id("targetable_id")?;
    let about = |kind: &str| -> Result<Field<String>, MappingError> {
        Ok(match event.text("targetable_type")? {
            Field::Value(t) if t.eq_ignore_ascii_case(kind) => target.clone(),
            Field::Unknown => Field::Unknown,
            _ => Field::Null,
        })
    };
    activity.deal_id = about("Deal")?;
    activity.contact_id = about("Contact")?;
    activity.company_id = about("SalesAccount")?;
    activity.created_at = event.time("created_at")?;
    activity.updated_at = event.time("updated_at")?;
    records.push(Record::Activity(activity));
    records.extend(event.owner()?);
    Ok(())
}

/// The canonical kind of a sales activity type, by its name (Freshsales'
/// defaults are Call, Meeting, Email, Chat...; an account's own are
/// `other`, the name kept in `raw_type`).
fn activity_kind(name: &str) -> ActivityType {
    let name = name.to_ascii_lowercase();
    if name.contains("call") || name.contains("phone") {
        ActivityType::Call
    } else if name.contains("meeting") || name.contains("demo") {
        ActivityType::Meeting
    } else if name.contains("email") || name.contains("e-mail") {
        ActivityType::Email
    } else if name.contains("task") {
        ActivityType::Task
    } else if name.contains("note") {
        ActivityType::Note
    } else {
        ActivityType::Other
    }
}

fn deal(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let flat = &event.flat;
    let mut deal = Deal::new(event.header.record_key(), event.header.version);
    deal.deleted = event.deleted();
    deal.title = event.text("name")?;
    deal.amount = flat.amount_or_empty(&Event::field("amount"))?;
    deal.amount_text = flat.number_text(&Event::field("amount"))?;
    deal.currency = match event.text("currency")? {
        Field::Unknown if event.read() => flat.text("event_default_currency")?,
        known => known,
    };
    deal.pipeline_id = event.id("deal_pipeline_id")?;
    deal.stage_id = event.id("deal_stage_id")?;
    let outcome = flat
        .text("stage_forecast_type")?
        .value()
        .and_then(|t| crate::mapped::forecast_outcome(t));
    deal.status = match (outcome, event.read()) {
        (Some(Outcome::Won), _) => Field::Value(DealStatus::Won),
        (Some(Outcome::Lost), _) => Field::Value(DealStatus::Lost),
        (Some(Outcome::Open), _) => Field::Value(DealStatus::Open),
        _ => Field::Unknown,
    };
    deal.probability = flat.number(&Event::field("probability"))?;
    deal.expected_close_date = flat.date_or_empty(&Event::field("expected_close"))?;
    deal.created_at = event.time("created_at")?;
    deal.updated_at = event.time("updated_at")?;
    deal.stage_changed_at = event.time("stage_updated_time")?;
    deal.owner_id = event.id("owner_id")?;
    deal.company_id = event.id("sales_account_id")?;
    let closed_on = match flat.day_start_or_empty(&Event::field("closed_date"))? {
        Field::Value(day) => Field::Value(day),
        _ => match deal.stage_changed_at.clone() {
            Field::Value(at) => Field::Value(at),
            _ => Field::Value(
                Timestamp::from_micros(event.header.version.at_micro)
                    .map_err(|reason| MappingError::new("event_timestamp_micro", reason))?,
            ),
        },
    };
    (deal.won_at, deal.lost_at, deal.closed_at) = match deal.status {
        Field::Value(DealStatus::Won) => (closed_on.clone(), Field::Null, closed_on),
        Field::Value(DealStatus::Lost) => (Field::Null, closed_on.clone(), closed_on),
        Field::Value(DealStatus::Open) => (Field::Null, Field::Null, Field::Null),
        _ => (Field::Unknown, Field::Unknown, Field::Unknown),
    };
    // The stage and its pipeline as defined when the deal was read.
    let defined_at = flat
        .integer("pipeline_enriched_at_micro")?
        .value()
        .copied()
        .unwrap_or(event.header.version.at_micro);
    if let (Field::Value(stage), Field::Value(pipeline), Some(outcome), Field::Value(name)) = (
        &deal.stage_id,
        &deal.pipeline_id,
        outcome,
        flat.text("stage_name")?,
    ) {
        records.push(Record::Stage(Stage {
            key: event.header.key(stage.clone()),
            version: defined_at,
            pipeline_id: pipeline.clone(),
            name,
            display_order: flat
                .integer("stage_position")?
                .value()
                .copied()
                .unwrap_or(0),
            probability: flat.number("stage_probability")?.value().copied(),
            outcome,
            archived: false,
        }));
    }
    if let (Field::Value(pipeline), Field::Value(name)) =
        (&deal.pipeline_id, flat.text("deal_pipeline_name")?)
    {
        records.push(Record::Pipeline(Pipeline {
            key: event.header.key(pipeline.clone()),
            version: defined_at,
            name,
            display_order: 0,
            archived: false,
        }));
    }
    // A deal read whole says when it entered its stage: its last stage
    // change, else its creation (it never moved). Reads of the same entry
    // make the same row; an entry passed between two reads is not seen.
    let entered = match (&deal.stage_changed_at, &deal.created_at) {
        (Field::Value(at), _) | (Field::Null, Field::Value(at)) => Some(at.seconds() * 1_000_000),
        _ => None,
    };
    if let Some(at) = entered {
        records.extend(event.header.stage_entry(
            &deal.pipeline_id,
            &deal.stage_id,
            &deal.status,
            at,
        ));
    }
    let owner = event.owner()?;
    let account = event
        .header
        .referenced_company(deal.company_id.clone(), flat.text("account_name")?);
    records.push(Record::Deal(deal));
    records.extend(owner.into_iter().chain(account));
    Ok(())
}
