//! Zoho CRM's enriched events (the flat `zoho-crm` shape) into the
//! canonical model.
//!
//! The account is the org. A notification's values are the fields that
//! changed, at Zoho's `server_time`: only those are known, so nothing else
//! is blanked. A deal's stage is its `Stage`; whether a stage is won or lost
//! is its `forecast_type` in the org's stage definitions, which the
//! enricher reads when the tenant configures the API: without them the
//! status stays unknown rather than guessed from the stage's name. A deal
//! is won or lost when the event that moved it into the stage happened
//! (Zoho keeps no close time of its own), and enters the stage then (a
//! stage transition). A `delete` is a tombstone.

use serde_json::{Map, Value};
use tributary_model::flat::{Flat, domain_of_website};
use tributary_model::{
    Company, Contact, Context, Deal, DealStatus, Field, Key, Mapped, Mapping, MappingError,
    Outcome, Pipeline, Record, Stage, Timestamp,
};

use crate::mapped::EventHeader;

pub struct ZohoMapping;

pub const PIPELINE_ID: &str = "deals";
const PIPELINE_NAME: &str = "Deals";

struct Event<'a> {
    flat: Flat<'a>,
    header: EventHeader,
}

impl Event<'_> {
    fn key(&self) -> Key {
        self.header.record_key()
    }

    fn text(&self, name: &str) -> Result<Field<String>, MappingError> {
        self.flat.text_or_empty(&format!("field_{name}"))
    }

    /// The owner and the account the record names, with their names.
    fn references(&self) -> Result<Vec<Record>, MappingError> {
        let owner = self
            .header
            .referenced_user(self.id("Owner")?, self.text("Owner_name")?);
        let account = self
            .header
            .referenced_company(self.id("Account_Name")?, self.text("Account_Name_name")?);
        Ok(owner.into_iter().chain(account).collect())
    }

    fn id(&self, name: &str) -> Result<Field<String>, MappingError> {
        self.flat.id(&format!("field_{name}"))
    }

    fn deleted(&self) -> Field<bool> {
        match self.header.action.as_str() {
            "delete" => Field::Value(true),
            "insert" => Field::Value(false),
            _ => Field::Unknown,
        }
    }
}

impl Mapping for ZohoMapping {
    fn map(
        &self,
        context: &Context<'_>,
        fields: &Map<String, Value>,
    ) -> Result<Mapped, MappingError> {
        let flat = Flat::new(fields);
        let header = EventHeader::read(&flat, context, "event_org_id")?;
        let event = Event { flat, header };
        let object = event.header.object.clone();
        let records = match object.as_str() {
            "deal" => {
                let mut deal = Deal::new(event.key(), event.header.version);
                deal.deleted = event.deleted();
                deal.title = event.text("Deal_Name")?;
                deal.amount = event.flat.amount("field_Amount")?;
                deal.amount_text = event.flat.number_text("field_Amount")?;
                // A single-currency org sends no `Currency`: an event that
                // carries the record whole (its insert, or a read, which has
                // `Created_Time`) is in the org's currency. An update's
                // values are what changed: a new amount keeps the currency.
                let whole = event.header.action == "insert"
                    || event.flat.text("field_Created_Time")?.is_known();
                deal.currency = match event.text("Currency")? {
                    Field::Unknown if whole && deal.amount.is_known() => {
                        event.flat.text("event_default_currency")?
                    }
                    known => known,
                };
                deal.stage_id = event.text("Stage")?;
                if deal.stage_id.is_known() {
                    deal.pipeline_id = Field::Value(PIPELINE_ID.into());
                }
                let outcome = event
                    .flat
                    .text("stage_forecast_type")?
                    .value()
                    .and_then(|t| crate::mapped::forecast_outcome(t));
                deal.status = match outcome {
                    Some(Outcome::Won) => Field::Value(DealStatus::Won),
                    Some(Outcome::Lost) => Field::Value(DealStatus::Lost),
                    Some(Outcome::Open) => Field::Value(DealStatus::Open),
                    None => Field::Unknown,
                };
                let moved = event.flat.flag("event_stage_changed")?.value() == Some(&true);
                let at = Timestamp::from_micros(event.header.version.at_micro)
                    .map_err(|reason| MappingError::new("event_timestamp_micro", reason))?;
                if moved {
                    deal.stage_changed_at = Field::Value(at);
                }
                (deal.won_at, deal.lost_at, deal.closed_at) = match (&deal.status, moved) {
                    (Field::Value(DealStatus::Open), _) => (Field::Null, Field::Null, Field::Null),
                    (Field::Value(DealStatus::Won), true) => {
                        (Field::Value(at), Field::Null, Field::Value(at))
                    }
                    (Field::Value(DealStatus::Lost), true) => {
                        (Field::Null, Field::Value(at), Field::Value(at))
                    }
                    // Closed earlier: when is not this event's to say.
                    _ => (Field::Unknown, Field::Unknown, Field::Unknown),
                };
                deal.probability = event.flat.number("field_Probability")?;
                deal.expected_close_date = event.flat.date_or_empty("field_Closing_Date")?;
                deal.owner_id = event.id("Owner")?;
                deal.company_id = event.id("Account_Name")?;
                deal.contact_id = event.id("Contact_Name")?;
                deal.marketing_source = event.text("Lead_Source")?;
                deal.created_at = event.flat.time_or_empty("field_Created_Time")?;
                deal.updated_at = event.flat.time_or_empty("field_Modified_Time")?;
                let mut records = Vec::new();
                if moved {
                    records.extend(event.header.stage_entry(
                        &deal.pipeline_id,
                        &deal.stage_id,
                        &deal.status,
                        event.header.version.at_micro,
                    ));
                }
                if let (Field::Value(stage), Some(outcome)) = (&deal.stage_id, outcome) {
                    let defined_at = event
                        .flat
                        .integer("pipeline_enriched_at_micro")?
                        .value()
                        .copied()
                        .unwrap_or(event.header.version.at_micro);
                    records.push(Record::Stage(Stage {
                        key: event.header.key(stage.clone()),
                        version: defined_at,
                        pipeline_id: PIPELINE_ID.into(),
                        name: event
                            .flat
                            .text("stage_display_value")?
                            .value()
                            .cloned()
                            .unwrap_or_else(|| stage.clone()),
                        display_order: event
                            .flat
                            .integer("stage_sequence_number")?
                            .value()
                            .copied()
                            .unwrap_or(0),
                        probability: None,
                        outcome,
                        archived: false,
                    }));
                    records.push(Record::Pipeline(Pipeline {
                        key: event.header.key(PIPELINE_ID),
                        version: 0,
                        name: PIPELINE_NAME.into(),
                        display_order: 0,
                        archived: false,
                    }));
                }
                records.push(Record::Deal(deal));
                records.extend(event.references()?);
                records
            }
            "account" => {
                let mut company = Company::new(event.key(), event.header.version);
                company.deleted = event.deleted();
                company.name = event.text("Account_Name")?;
                company.domain = event.text("Website")?.map(|site| domain_of_website(&site));
                company.owner_id = event.id("Owner")?;
                company.industry = event.text("Industry")?;
                let mut records = vec![Record::Company(company)];
                records.extend(
                    event
                        .header
                        .referenced_user(event.id("Owner")?, event.text("Owner_name")?),
                );
                records
            }
            "contact" => {
                let mut contact = Contact::new(event.key(), event.header.version);
                contact.deleted = event.deleted();
                contact.company_id = event.id("Account_Name")?;
                contact.owner_id = event.id("Owner")?;
                let mut records = vec![Record::Contact(contact)];
                records.extend(event.references()?);
                records
            }
            _ => return Err(event.header.unknown_object("Zoho")),
        };
        let canonical = if object == "account" {
            "company"
        } else {
            object.as_str()
        };
        Ok(event.header.into_mapped(canonical, records))
    }
}
