//! Dynamics 365's enriched events (the flat `dynamics-crm` shape) into the
//! canonical model.
//!
//! The account is the Dataverse organization; versions are the record's
//! `modifiedon`. Only the attributes the context carries are known: an
//! `Update` whose step has no post image carries just what changed, so
//! nothing else is blanked. An opportunity's status is its `statecode`
//! (0 open, 1 won, 2 lost), or the message itself for `Win` and `Lose`;
//! its stage the business process stage's name (`stepname`), else its
//! sales stage option (`salesstagecode`), ordered by its leading number
//! (`1-Qualify` .. `4-Close`); won or lost at its
//! `actualclosedate` (a `Win` or `Lose`: the close's `actualend`). The
//! operation that set the stage (its target names it), or won or lost the
//! opportunity, enters the stage at its time. A `Delete` is a tombstone.

use serde_json::{Map, Value};
use tributary_model::flat::{Flat, domain_of_website};
use tributary_model::{
    Company, Contact, Context, Deal, DealStatus, Field, Key, Mapped, Mapping, MappingError,
    Outcome, Pipeline, Record, Stage, Timestamp, User,
};

use crate::mapped::EventHeader;

pub struct DynamicsMapping;

/// The one pipeline opportunities are in.
pub const PIPELINE_ID: &str = "opportunities";

struct Event<'a> {
    flat: Flat<'a>,
    header: EventHeader,
}

impl Event<'_> {
    fn key(&self) -> Key {
        self.header.record_key()
    }

    fn text(&self, name: &str) -> Result<Field<String>, MappingError> {
        self.flat.text_or_empty(&format!("attr_{name}"))
    }

    /// An option set's value, or a number, as text (`salesstagecode`: `"1"`).
    fn code(&self, name: &str) -> Result<Field<String>, MappingError> {
        let key = format!("attr_{name}");
        Ok(match self.flat.raw(&key) {
            None => Field::Unknown,
            Some(Value::Null) => Field::Null,
            Some(Value::Number(n)) => Field::Value(n.to_string()),
            Some(Value::String(s)) => Field::Value(s.clone()),
            Some(other) => {
                return Err(MappingError::new(
                    key,
                    format!("expected an option value, got {other}"),
                ));
            }
        })
    }

    fn time(&self, name: &str) -> Result<Field<Timestamp>, MappingError> {
        self.flat.time_or_empty(&format!("attr_{name}"))
    }

    fn deleted(&self) -> Field<bool> {
        if self.header.action == "Delete" {
            Field::Value(true)
        } else {
            Field::Unknown
        }
    }
}

impl Mapping for DynamicsMapping {
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
                let mut company = Company::new(event.key(), event.header.version);
                company.deleted = event.deleted();
                company.name = event.text("name")?;
                company.domain = event
                    .text("websiteurl")?
                    .map(|site| domain_of_website(&site));
                company.owner_id = event.text("ownerid")?;
                company.created_at = event.time("createdon")?;
                company.updated_at = event.time("modifiedon")?;
                records.push(Record::Company(company));
                "company"
            }
            "contact" => {
                let mut contact = Contact::new(event.key(), event.header.version);
                contact.deleted = event.deleted();
                contact.company_id = event.text("parentcustomerid")?;
                contact.owner_id = event.text("ownerid")?;
                contact.created_at = event.time("createdon")?;
                contact.updated_at = event.time("modifiedon")?;
                records.push(Record::Contact(contact));
                "contact"
            }
            "systemuser" => {
                let mut user = User::new(event.key(), event.header.version);
                user.deleted = event.deleted();
                user.name = event.text("fullname")?;
                user.email = event.text("internalemailaddress")?;
                user.active = event
                    .flat
                    .flag("attr_isdisabled")?
                    .map(|disabled| !disabled);
                user.updated_at = event.time("modifiedon")?;
                records.push(Record::User(user));
                "user"
            }
            _ => return Err(event.header.unknown_object("Dynamics")),
        };
        Ok(event.header.into_mapped(canonical, records))
    }
}

fn opportunity(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let flat = &event.flat;
    let mut deal = Deal::new(event.key(), event.header.version);
    deal.deleted = event.deleted();
    if event.header.action == "Delete" {
        records.push(Record::Deal(deal));
        return Ok(());
    }
    deal.title = event.text("name")?;
    deal.amount = flat.amount("attr_estimatedvalue")?;
    deal.amount_text = flat.number_text("attr_estimatedvalue")?;
    // The currency the opportunity names, as looked up; the organization's
    // when it names none; unknown when the lookup failed.
    deal.currency = match flat.text("event_currency")? {
        Field::Unknown
            if flat.raw("attr_transactioncurrencyid").is_none() && deal.amount.is_known() =>
        {
            flat.text("event_default_currency")?
        }
        code => code,
    };
    deal.status = match event.header.action.as_str() {
        "Win" => Field::Value(DealStatus::Won),
        "Lose" => Field::Value(DealStatus::Lost),
        _ => match event.code("statecode")? {
            Field::Value(code) => match code.as_str() {
                "0" => Field::Value(DealStatus::Open),
                "1" => Field::Value(DealStatus::Won),
                "2" => Field::Value(DealStatus::Lost),
                other => {
                    return Err(MappingError::new(
                        "attr_statecode",
                        format!("{other:?} is not 0 (open), 1 (won) or 2 (lost)"),
                    ));
                }
            },
            Field::Null => Field::Null,
            Field::Unknown => Field::Unknown,
        },
    };
    deal.stage_id = match event.text("stepname")? {
        Field::Unknown => event.code("salesstagecode")?,
        known => known,
    };
    if deal.stage_id.is_known() {
        deal.pipeline_id = Field::Value(PIPELINE_ID.into());
    }
    deal.probability = flat.number("attr_closeprobability")?;
    deal.expected_close_date = flat.date_or_empty("attr_estimatedclosedate")?;
    deal.created_at = event.time("createdon")?;
    deal.updated_at = event.time("modifiedon")?;
    deal.owner_id = event.text("ownerid")?;
    deal.company_id = match event.text("parentaccountid")? {
        Field::Unknown => event.text("customerid")?,
        known => known,
    };
    deal.contact_id = event.text("parentcontactid")?;
    let closed_at = match flat.time_or_empty("close_actualend")? {
        Field::Unknown => flat.day_start_or_empty("attr_actualclosedate")?,
        known => known,
    };
    (deal.won_at, deal.lost_at, deal.closed_at) = match deal.status {
        Field::Value(DealStatus::Won) => (closed_at.clone(), Field::Null, closed_at),
        Field::Value(DealStatus::Lost) => (Field::Null, closed_at.clone(), closed_at),
        Field::Value(DealStatus::Open) => (Field::Null, Field::Null, Field::Null),
        _ => (Field::Unknown, Field::Unknown, Field::Unknown),
    };
    // The operation that set the stage, or won or lost the deal in it,
    // enters the stage (in that status) at its time.
    let moved = flat.flag("event_stage_changed")?.value() == Some(&true)
        || matches!(event.header.action.as_str(), "Win" | "Lose");
    if moved {
        records.extend(event.header.stage_entry(
            &deal.pipeline_id,
            &deal.stage_id,
            &deal.status,
            event.header.version.at_micro,
        ));
    }
    if let (Field::Value(stage), Field::Value(status)) = (&deal.stage_id, &deal.status) {
        let outcome = match status {
            DealStatus::Won => Outcome::Won,
            DealStatus::Lost => Outcome::Lost,
            DealStatus::Open => Outcome::Open,
        };
        // A closed opportunity keeps the stage it was in; only an open one
        // says its stage is an open stage.
        if outcome == Outcome::Open {
            records.push(Record::Stage(Stage {
                key: Key {
                    id: stage.clone(),
                    ..event.key()
                },
                version: event.header.version.at_micro,
                pipeline_id: PIPELINE_ID.into(),
                name: stage.clone(),
                display_order: stage_order(stage),
                probability: None,
                outcome,
                archived: false,
            }));
            records.push(Record::Pipeline(Pipeline {
                key: Key {
                    id: PIPELINE_ID.into(),
                    ..event.key()
                },
                version: 0,
                name: "Opportunities".into(),
                display_order: 0,
                archived: false,
            }));
        }
    }
    records.push(Record::Deal(deal));
    references(event, records)
}

/// A stage's place in the sales process: its leading number (the
/// standard process's stages are `1-Qualify` to `4-Close`; a sales stage
/// option is its value), else 0.
fn stage_order(stage: &str) -> i64 {
    let digits: String = stage.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

/// The owner (a user, not a team) and the account the opportunity names,
/// with their names as Dataverse gave them.
fn references(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let of_type = |name: &str, kind: &str| -> Result<bool, MappingError> {
        Ok(match event.text(&format!("{name}_type"))? {
            Field::Value(actual) => actual == kind,
            _ => false,
        })
    };
    if of_type("ownerid", "systemuser")? {
        records.extend(
            event
                .header
                .referenced_user(event.text("ownerid")?, event.text("ownerid_name")?),
        );
    }
    if of_type("parentaccountid", "account")? {
        records.extend(event.header.referenced_company(
            event.text("parentaccountid")?,
            event.text("parentaccountid_name")?,
        ));
    }
    Ok(())
}
