//! Zoho CRM's enriched events (the flat `zoho-crm` shape) into the
//! canonical model.
//!
//! The account is the org. A notification's values are the fields that
//! changed, at Zoho's `server_time`: only those are known, so nothing else
//! is blanked. A deal's stage is its `Stage`; whether a stage is won or lost
//! is its deal category, which only the CRM's stage definitions say, so the
//! status stays unknown here rather than guessed from the stage's name. A
//! `delete` is a tombstone.

use serde_json::{Map, Value};
use tributary_model::flat::{Flat, domain_of_website};
use tributary_model::{Company, Contact, Context, Deal, Field, Key, Mapped, Mapping, MappingError};

use crate::mapped::EventHeader;

pub struct ZohoMapping;

pub const PIPELINE_ID: &str = "deals";

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
    fn references(&self) -> Result<Vec<tributary_model::Record>, MappingError> {
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
                deal.currency = match event.text("Currency")? {
                    Field::Unknown if deal.amount.is_known() => {
                        event.flat.text("event_default_currency")?
                    }
                    known => known,
                };
                deal.stage_id = event.text("Stage")?;
                if deal.stage_id.is_known() {
                    deal.pipeline_id = Field::Value(PIPELINE_ID.into());
                }
                deal.probability = event.flat.number("field_Probability")?;
                deal.expected_close_date = event.flat.date_or_empty("field_Closing_Date")?;
                deal.owner_id = event.id("Owner")?;
                deal.company_id = event.id("Account_Name")?;
                deal.contact_id = event.id("Contact_Name")?;
                deal.marketing_source = event.text("Lead_Source")?;
                deal.created_at = event.flat.time_or_empty("field_Created_Time")?;
                deal.updated_at = event.flat.time_or_empty("field_Modified_Time")?;
                let mut records = vec![tributary_model::Record::Deal(deal)];
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
                let mut records = vec![tributary_model::Record::Company(company)];
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
                let mut records = vec![tributary_model::Record::Contact(contact)];
                records.extend(event.references()?);
                records
            }
            other => {
                return Err(MappingError::new(
                    "event_object",
                    format!("no mapping for Zoho object {other:?}"),
                ));
            }
        };
        let canonical = if object == "account" {
            "company"
        } else {
            object.as_str()
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
