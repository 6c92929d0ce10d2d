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
//! lost opportunity is won or lost at the start of that day (UTC).

use serde_json::{Map, Value};
use tributary_model::flat::{Flat, domain_of_website};
use tributary_model::{
    Company, Contact, Context, Deal, DealStatus, Field, Key, Mapped, Mapping, MappingError,
    Outcome, Pipeline, Record, Stage, Timestamp, User,
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
                "company"
            }
            "contact" => {
                records.push(Record::Contact(contact(&event)?));
                "contact"
            }
            "user" => {
                records.push(Record::User(user(&event)?));
                "user"
            }
            other => {
                return Err(MappingError::new(
                    "event_object",
                    format!("no mapping for Salesforce object {other:?}"),
                ));
            }
        };
        let header = event.header;
        Ok(Mapped {
            account: header.account,
            object: canonical.to_owned(),
            remote_id: header.object_id,
            action: header.action,
            version: header.version,
            records,
        })
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
    deal.status = match (event.flag("IsWon")?, event.flag("IsClosed")?) {
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
    let closed_on = flat.day_start_or_empty(&Event::field("CloseDate"))?;
    (deal.won_at, deal.lost_at, deal.closed_at) = match deal.status {
        Field::Value(DealStatus::Won) => (closed_on.clone(), Field::Null, closed_on),
        Field::Value(DealStatus::Lost) => (Field::Null, closed_on.clone(), closed_on),
        Field::Value(DealStatus::Open) => (Field::Null, Field::Null, Field::Null),
        _ => (Field::Unknown, Field::Unknown, Field::Unknown),
    };
    if let Field::Value(stage) = &deal.stage_id {
        let outcome = match deal.status {
            Field::Value(DealStatus::Won) => Some(Outcome::Won),
            Field::Value(DealStatus::Lost) => Some(Outcome::Lost),
            Field::Value(DealStatus::Open) => Some(Outcome::Open),
            _ => None,
        };
        // The stage's outcome is the stage's own (IsWon and IsClosed follow
        // it); its order and default probability are not in the message.
        if let Some(outcome) = outcome {
            records.push(Record::Stage(Stage {
                key: event.key(stage.clone()),
                version: event.header.version.at_micro,
                pipeline_id: PIPELINE_ID.into(),
                name: stage.clone(),
                display_order: 0,
                probability: None,
                outcome,
                archived: false,
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
    records.push(Record::Deal(deal));
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
