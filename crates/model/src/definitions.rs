//! Whole-row records: a tenant's pipelines and stages, custom field
//! definitions and values (the newest version of a row wins), and the
//! append-only history of deal stage transitions.

use crate::Key;
use crate::row::RowWriter;
use crate::value::Timestamp;

/// What reaching a stage means for a deal. Pipedrive's stages are all open
/// (won and lost are a deal's status); HubSpot and Salesforce have closed
/// won and closed lost stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Open,
    Won,
    Lost,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Won => "won",
            Outcome::Lost => "lost",
        }
    }
}

/// A sales pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub key: Key,
    /// Source version in microseconds: the newest definition wins.
    pub version: i64,
    pub name: String,
    pub display_order: i64,
    pub archived: bool,
}

impl Pipeline {
    pub(crate) fn write_row(&self, out: &mut Vec<u8>) {
        RowWriter::start(out)
            .key(&self.key)
            .column("version", &self.version)
            .column("name", &self.name)
            .column("display_order", &self.display_order)
            .column("archived", &self.archived)
            .finish();
    }
}

/// A stage of a pipeline, with its outcome and the CRM's win probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub key: Key,
    pub version: i64,
    pub pipeline_id: String,
    pub name: String,
    pub display_order: i64,
    /// Percent; `None` where the platform has none.
    pub probability: Option<f64>,
    pub outcome: Outcome,
    pub archived: bool,
}

impl Stage {
    pub(crate) fn write_row(&self, out: &mut Vec<u8>) {
        RowWriter::start(out)
            .key(&self.key)
            .column("version", &self.version)
            .column("pipeline_id", &self.pipeline_id)
            .column("name", &self.name)
            .column("display_order", &self.display_order)
            .optional("probability", self.probability.as_ref())
            .column("outcome", &self.outcome.as_str().to_owned())
            .column("archived", &self.archived)
            .finish();
    }
}

/// A deal entering a stage or a status: its creation (no `from`), a stage
/// change, a status change (won, lost, reopened), or both at once. Keyed by
/// deal and time, so a replayed transition replaces itself.
#[derive(Debug, Clone, PartialEq)]
pub struct StageTransition {
    /// The deal's key.
    pub deal: Key,
    pub entered_at_micro: i64,
    pub pipeline_id: String,
    /// Empty when the deal was created in `to_stage_id`.
    pub from_stage_id: String,
    pub to_stage_id: String,
    pub from_status: String,
    pub to_status: String,
    /// What made the change (`app`, `api`, a workflow...), where the platform says.
    pub change_source: String,
}

impl StageTransition {
    pub(crate) fn write_row(&self, out: &mut Vec<u8>) {
        let entered_at = Timestamp::from_micros(self.entered_at_micro).unwrap_or(Timestamp::EPOCH);
        RowWriter::start(out)
            .column("tenant", &self.deal.tenant)
            .column("source", &self.deal.source)
            .column("account", &self.deal.account)
            .column("deal_id", &self.deal.id)
            .column("entered_at_micro", &self.entered_at_micro)
            .column("entered_at", &entered_at)
            .column("pipeline_id", &self.pipeline_id)
            .column("from_stage_id", &self.from_stage_id)
            .column("to_stage_id", &self.to_stage_id)
            .column("from_status", &self.from_status)
            .column("to_status", &self.to_status)
            .column("change_source", &self.change_source)
            .finish();
    }
}

/// A custom field's definition, per tenant, source and object type, keyed
/// by the platform's stable field key (not its label).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomField {
    /// `id` is the field key.
    pub key: Key,
    /// The canonical object the field belongs to (`deal`, `company`...).
    pub object: String,
    pub version: i64,
    pub label: String,
    /// The platform's type word (`enum`, `varchar`, `number`...).
    pub field_type: String,
    /// Enumeration options: (id, label).
    pub options: Vec<(String, String)>,
}

impl CustomField {
    pub(crate) fn write_row(&self, out: &mut Vec<u8>) {
        let (ids, labels): (Vec<String>, Vec<String>) = self.options.iter().cloned().unzip();
        RowWriter::start(out)
            .column("tenant", &self.key.tenant)
            .column("source", &self.key.source)
            .column("account", &self.key.account)
            .column("object", &self.object)
            .column("field_key", &self.key.id)
            .column("version", &self.version)
            .column("label", &self.label)
            .column("field_type", &self.field_type)
            .column("option_ids", &ids)
            .column("option_labels", &labels)
            .finish();
    }
}

/// One custom field's value on one record (enumeration values are option
/// ids, resolved through [`CustomField`]). The newest version per field wins.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomValue {
    /// The record's key.
    pub record: Key,
    pub object: String,
    pub field_key: String,
    pub version: i64,
    /// `None` when the field was emptied.
    pub value: Option<String>,
}

impl CustomValue {
    pub(crate) fn write_row(&self, out: &mut Vec<u8>) {
        RowWriter::start(out)
            .column("tenant", &self.record.tenant)
            .column("source", &self.record.source)
            .column("account", &self.record.account)
            .column("object", &self.object)
            .column("id", &self.record.id)
            .column("field_key", &self.field_key)
            .column("version", &self.version)
            .optional("value", self.value.as_ref())
            .finish();
    }
}
