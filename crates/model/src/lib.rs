//! The canonical model: what every source's events become, whichever tool
//! sent them, so one set of tables and dashboards serves every platform.
//!
//! A source's mapping ([`Mapping`]) turns one enriched event into
//! [`Record`]s. Entity records (deals, activities, companies, contacts,
//! users) are *partial*: each field is [`Field::Unknown`] unless the event
//! knows it, and ClickHouse keeps, per field, the value of the newest
//! [`Version`] that knew it (see `schemas/clickhouse/0011_canonical_model.sql`).
//! So a property-change event that carries one field never blanks the
//! others, and a late or replayed event never regresses a row. Definitions
//! (pipelines, stages, custom fields) and history (stage transitions) are
//! whole rows.
//!
//! Ids are strings, verbatim: a mapping never parses an id into a number.

mod definitions;
mod entities;
pub mod flat;
mod row;
mod value;

pub use definitions::{CustomField, CustomValue, Outcome, Pipeline, Stage, StageTransition};
pub use entities::{Activity, ActivityType, Company, Contact, ContactPii, Deal, DealStatus, User};
pub use value::{Amount, Timestamp};

/// A ClickHouse table the activator writes records into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    DealChanges,
    ActivityChanges,
    CompanyChanges,
    ContactChanges,
    ContactPiiChanges,
    UserChanges,
    Pipelines,
    Stages,
    DealStageTransitions,
    CustomFieldValues,
    CustomFieldDefinitions,
}

impl Table {
    pub const ALL: &'static [Table] = &[
        Table::DealChanges,
        Table::ActivityChanges,
        Table::CompanyChanges,
        Table::ContactChanges,
        Table::ContactPiiChanges,
        Table::UserChanges,
        Table::Pipelines,
        Table::Stages,
        Table::DealStageTransitions,
        Table::CustomFieldValues,
        Table::CustomFieldDefinitions,
    ];

    /// The table's name, in the main database or (for [`Table::is_pii`]) the PII one.
    pub fn name(self) -> &'static str {
        match self {
            Table::DealChanges => "deal_changes",
            Table::ActivityChanges => "activity_changes",
            Table::CompanyChanges => "company_changes",
            Table::ContactChanges => "contact_changes",
            Table::ContactPiiChanges => "contact_changes",
            Table::UserChanges => "user_changes",
            Table::Pipelines => "pipelines",
            Table::Stages => "stages",
            Table::DealStageTransitions => "deal_stage_transitions",
            Table::CustomFieldValues => "custom_field_values",
            Table::CustomFieldDefinitions => "custom_field_definitions",
        }
    }

    /// Whether the table lives in the PII database, which dashboards cannot read.
    pub fn is_pii(self) -> bool {
        matches!(self, Table::ContactPiiChanges)
    }

    /// For an entity's change table: where its current rows are kept and
    /// the view they are resolved from (`0011_canonical_model.sql`).
    pub fn current(self) -> Option<CurrentRows> {
        let (table, resolved) = match self {
            Table::DealChanges => ("current_deals", "deals_resolved"),
            Table::ActivityChanges => ("current_activities", "activities_resolved"),
            Table::CompanyChanges => ("current_companies", "companies_resolved"),
            Table::ContactChanges => ("current_contacts", "contacts_resolved"),
            Table::UserChanges => ("current_users", "users_resolved"),
            _ => return None,
        };
        Some(CurrentRows { table, resolved })
    }
}

/// An entity's table of current rows, one per record (read with `FINAL`),
/// and the view that resolves a record's row from its merged changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentRows {
    pub table: &'static str,
    pub resolved: &'static str,
}

/// A record's identity: tenant, source, source account (Pipedrive company,
/// HubSpot portal, Salesforce org...) and the platform's own id. The object
/// type is the table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub tenant: String,
    pub source: String,
    pub account: String,
    pub id: String,
}

impl Key {
    /// The key of another record of the same tenant, source and account.
    pub fn sibling(&self, id: impl Into<String>) -> Key {
        Key {
            tenant: self.tenant.clone(),
            source: self.source.clone(),
            account: self.account.clone(),
            id: id.into(),
        }
    }
}

/// Where a record's facts stand in time: the source's own version (its
/// change time or sequence, in microseconds), with the time Tributary
/// received the event to break ties only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    pub at_micro: i64,
    pub received_micro: i64,
}

/// One field of a partial record.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    /// The event does not say: the stored value stays.
    #[default]
    Unknown,
    /// The event says the field is empty.
    Null,
    Value(T),
}

impl<T> Field<T> {
    /// `Null` for `None`, the value otherwise.
    pub fn known(value: Option<T>) -> Field<T> {
        value.map_or(Field::Null, Field::Value)
    }

    pub fn is_known(&self) -> bool {
        !matches!(self, Field::Unknown)
    }

    pub fn value(&self) -> Option<&T> {
        match self {
            Field::Value(value) => Some(value),
            _ => None,
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Field<U> {
        match self {
            Field::Unknown => Field::Unknown,
            Field::Null => Field::Null,
            Field::Value(value) => Field::Value(f(value)),
        }
    }

    /// This field if the event knows it, else `other`.
    pub fn or(self, other: Field<T>) -> Field<T> {
        if self.is_known() { self } else { other }
    }

    /// `Unknown` unless `known` holds: for values that depend on a lookup
    /// that failed, so a gap in enrichment never blanks a stored value.
    pub fn only_if(self, known: bool) -> Field<T> {
        if known { self } else { Field::Unknown }
    }
}

/// Anything a mapping produces.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Deal(Deal),
    Activity(Activity),
    Company(Company),
    Contact(Contact),
    ContactPii(ContactPii),
    User(User),
    Pipeline(Pipeline),
    Stage(Stage),
    StageTransition(StageTransition),
    CustomField(CustomField),
    CustomValue(CustomValue),
}

impl Record {
    pub fn table(&self) -> Table {
        match self {
            Record::Deal(_) => Table::DealChanges,
            Record::Activity(_) => Table::ActivityChanges,
            Record::Company(_) => Table::CompanyChanges,
            Record::Contact(_) => Table::ContactChanges,
            Record::ContactPii(_) => Table::ContactPiiChanges,
            Record::User(_) => Table::UserChanges,
            Record::Pipeline(_) => Table::Pipelines,
            Record::Stage(_) => Table::Stages,
            Record::StageTransition(_) => Table::DealStageTransitions,
            Record::CustomField(_) => Table::CustomFieldDefinitions,
            Record::CustomValue(_) => Table::CustomFieldValues,
        }
    }

    /// The record an entity change is about; `None` for definitions,
    /// transitions and custom values, which have no current row.
    pub fn entity_key(&self) -> Option<&Key> {
        match self {
            Record::Deal(r) => Some(&r.key),
            Record::Activity(r) => Some(&r.key),
            Record::Company(r) => Some(&r.key),
            Record::Contact(r) => Some(&r.key),
            Record::ContactPii(r) => Some(&r.key),
            Record::User(r) => Some(&r.key),
            _ => None,
        }
    }

    /// Appends the record's row to `out` as one `JSONEachRow` line.
    pub fn write_row(&self, out: &mut Vec<u8>) {
        match self {
            Record::Deal(r) => r.write_row(out),
            Record::Activity(r) => r.write_row(out),
            Record::Company(r) => r.write_row(out),
            Record::Contact(r) => r.write_row(out),
            Record::ContactPii(r) => r.write_row(out),
            Record::User(r) => r.write_row(out),
            Record::Pipeline(r) => r.write_row(out),
            Record::Stage(r) => r.write_row(out),
            Record::StageTransition(r) => r.write_row(out),
            Record::CustomField(r) => r.write_row(out),
            Record::CustomValue(r) => r.write_row(out),
        }
    }
}

/// What one enriched event becomes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapped {
    /// The source account the event is about.
    pub account: String,
    /// The canonical object the event is about (`deal`, `activity`, ...).
    pub object: String,
    /// The platform's id of that object.
    pub remote_id: String,
    /// The platform's action word, verbatim.
    pub action: String,
    /// The event's own version (source time, microseconds).
    pub version: Version,
    pub records: Vec<Record>,
}

/// What a mapping knows of the event beyond its fields.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub tenant: &'a str,
    pub source: &'a str,
    pub received_at_micro: i64,
    /// Lookups the enricher could not make (`pipeline_enrichment_missing`):
    /// fields that depend on them are unknown, not empty.
    pub missing: &'a [String],
}

impl Context<'_> {
    /// Whether the enricher made the lookup named `what`.
    pub fn has(&self, what: &str) -> bool {
        !self.missing.iter().any(|m| m == what)
    }
}

/// Why an event cannot be mapped: the field and the reason. The event goes
/// to the dead-letter topic; nothing is defaulted silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct MappingError {
    pub field: String,
    pub reason: String,
}

impl MappingError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        MappingError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A source's mapping from its enriched events into the model.
pub trait Mapping: Send + Sync {
    fn map(
        &self,
        context: &Context<'_>,
        event: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Mapped, MappingError>;
}

#[cfg(test)]
mod tests;
